//! Helpers shared by the integration tests: start a real `pingpong serve`
//! on a free port, talk to it, stop it with SIGTERM, run the client.
//!
//! Each test file uses a subset, hence `allow(dead_code)`.
//!
//! - [`strace`]: a server under strace, and the transcript strace writes;
//! - [`per_mode!`](crate::per_mode): one `#[test]` per mode for a behaviour.
#![allow(dead_code)]

#[cfg(target_os = "linux")]
pub mod strace;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use pingpong::observe::{Banner, Launched, Sample, Stream};

/// The binary under test, built by cargo for integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_pingpong");

/// Every server mode this build has.
#[allow(dead_code)]
#[cfg(all(target_os = "linux", not(kqueue)))]
pub const ALL_MODES: &[&str] =
    &["blocking", "epoll", "poll", "select", "threads", "pool", "hybrid", "uring"];
/// Linux linked against libkqueue (`make test-kqueue`) has kqueue as well.
#[allow(dead_code)]
#[cfg(all(target_os = "linux", kqueue))]
pub const ALL_MODES: &[&str] =
    &["blocking", "epoll", "kqueue", "poll", "select", "threads", "pool", "hybrid", "uring"];
#[allow(dead_code)]
#[cfg(not(target_os = "linux"))]
pub const ALL_MODES: &[&str] =
    &["blocking", "kqueue", "poll", "select", "threads", "pool", "hybrid"];

/// How long anything that should happen may take, on a slow, busy machine.
/// Waits end as soon as the thing happens, so a wide margin costs nothing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A `pingpong serve` child process, killed on drop if still running.
///
/// It stands on [`pingpong::observe::Launched`], the layer the labs and the
/// benchmark use too: the child's output is read by threads and kept, so it
/// never blocks on a full pipe. A test keeps every line (a `--trace`
/// narration is read whole), where a long-running watcher would keep only
/// the newest.
pub struct Server {
    launched: Launched,
    pub addr: SocketAddr,
    pub mode: String,
    /// The start-up line, as printed.
    pub banner: String,
}

/// How a server ended: its exit status and what it printed after start-up.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Server {
    /// Run `pingpong serve --mode MODE --port 0 EXTRA...` and wait (up to
    /// [`PATIENCE`]) for its `listening on ADDR (mode M, pid P)` line.
    pub fn start(mode: &str, extra_args: &[&str]) -> Server {
        let mut command = Command::new(BIN);
        command.args(["serve", "--mode", mode, "--port", "0"]).args(extra_args);
        let mut launched = Launched::spawn_keeping(&mut command, usize::MAX)
            .unwrap_or_else(|e| panic!("spawn pingpong serve: {e}"));
        let banner = first_line(&mut launched, Stream::Stdout);
        let addr = parse_banner(&banner, mode, launched.pid());
        Server { launched, addr, mode: mode.to_string(), banner }
    }

    /// A connection to the server, with read and write timeouts of [`PATIENCE`].
    #[allow(dead_code)]
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr)
            .unwrap_or_else(|e| panic!("connect to {} ({}): {e}", self.addr, self.mode));
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    #[allow(dead_code)]
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.launched.pid())
    }

    /// SIGTERM, then wait for the exit (up to [`PATIENCE`]; after that,
    /// SIGKILL and fail the test: a server that ignores SIGTERM is a bug).
    pub fn stop(mut self) -> Stopped {
        let (status, on_term) = self.launched.stop(PATIENCE).expect("stop the server");
        assert!(on_term, "{} server still running {PATIENCE:?} after SIGTERM; killed", self.mode);
        let (stdout, stderr) = everything_after(&self.launched, 1);
        Stopped { status, stdout, stderr }
    }
}

/// The first line a child prints on `stream` (up to [`PATIENCE`]); the test
/// fails, saying how the child ended and what it printed, if none comes.
pub fn first_line(launched: &mut Launched, stream: Stream) -> String {
    let mut from = 0;
    match launched.wait_line(stream, &mut from, PATIENCE, |_| true) {
        Some(line) => line,
        None => panic!("{}", launched.failure(&format!("printed no line in {PATIENCE:?}"))),
    }
}

/// What an exited child printed, stdout without its first `skip` lines
/// (the start-up line) and all of stderr, once both streams have ended: each
/// line with its newline, as it was printed.
pub fn everything_after(launched: &Launched, skip: usize) -> (String, String) {
    let text = |stream, skip| {
        launched.await_output_end(stream, PATIENCE);
        let lines = launched.lines(stream);
        lines.iter().skip(skip).map(|line| format!("{line}\n")).collect::<String>()
    };
    (text(Stream::Stdout, skip), text(Stream::Stderr, 0))
}

/// `listening on 127.0.0.1:4321 (mode epoll, pid 99)` → the address, after
/// checking the mode and pid are the ones started, and that anything between
/// them is a count: `(mode pool, 6 workers, pid 99)`, `(mode epoll, 2 event
/// loops, pid 99)`. [`Banner::parse`] reads the line; the checks are the
/// tests' own, stricter than a tool that watches any server needs.
fn parse_banner(line: &str, mode: &str, pid: i32) -> SocketAddr {
    let Some(banner) = Banner::parse(line) else {
        panic!("unexpected start-up line: {line:?}");
    };
    assert!(banner.mode == mode && banner.pid == pid, "start-up line: {line:?}");
    assert!(banner.detail.as_deref().is_none_or(is_count), "start-up line: {line:?}");
    banner.addr
}

/// `1 worker`, `6 workers`, `1 event loop`, `3 event loops`: the plural
/// agreeing with the number.
pub fn is_count(said: &str) -> bool {
    let Some((n, what)) = said.split_once(' ') else {
        return false;
    };
    let Ok(n) = n.parse::<u64>() else {
        return false;
    };
    let (one, many) = match what {
        "worker" | "workers" => ("worker", "workers"),
        "event loop" | "event loops" => ("event loop", "event loops"),
        _ => return false,
    };
    what == if n == 1 { one } else { many }
}

/// Wait until `/proc/PID/stat` shows the process in `state` ('T': stopped),
/// up to [`PATIENCE`]. Linux's: elsewhere it fails the test.
pub fn wait_for_state(pid: Pid, state: char, mode: &str) {
    let until = Instant::now() + PATIENCE;
    loop {
        let now = Sample::take(pid.as_raw()).ok().map(|now| now.state);
        if now == Some(state) {
            return;
        }
        assert!(Instant::now() < until, "{mode}: server never reached state {state} (now {now:?})");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A thread reading a pipe to its end.
pub fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The child's exit status, or `None` if it runs longer than `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        if Instant::now() > until {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Run a command to completion with its output captured; kill it and fail
/// the test if it takes longer than `timeout`.
#[allow(dead_code)]
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdout = collect(child.stdout.take().expect("stdout piped"));
    let stderr = collect(child.stderr.take().expect("stderr piped"));
    let Some(status) = wait_timeout(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command:?} still running after {timeout:?}; killed");
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default().into_bytes(),
        stderr: stderr.join().unwrap_or_default().into_bytes(),
    }
}

/// `pingpong client --host H --port P ARGS...` (at most a minute).
#[allow(dead_code)]
pub fn run_client(addr: SocketAddr, args: &[&str]) -> Output {
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    run_with_timeout(
        Command::new(BIN).args(["client", "--host", &host, "--port", &port]).args(args),
        Duration::from_secs(60),
    )
}

/// `n` times: send `ping`, read exactly `pong`.
#[allow(dead_code)]
pub fn ping_pong(mut stream: &TcpStream, n: usize) {
    for i in 1..=n {
        stream.write_all(b"ping\n").expect("send ping");
        let mut reply = [0u8; 5];
        stream.read_exact(&mut reply).unwrap_or_else(|e| panic!("reading pong {i}/{n}: {e}"));
        assert_eq!(&reply, b"pong\n", "reply {i}/{n}");
    }
}

/// Everything until EOF, failing the test if it takes longer than `timeout`
/// (or on any other error), with what had come so far.
#[allow(dead_code)]
pub fn read_to_end_with_timeout(mut stream: &TcpStream, timeout: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        let kind = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "no EOF within the timeout",
            _ => "error before EOF",
        };
        panic!(
            "{kind} ({e}) after {} bytes: {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(200)..])
        );
    }
    bytes
}

/// Whether a test in `mode` can run here: every mode can, but uring only
/// where the kernel lets us set up an io_uring (not an old kernel, not
/// `kernel.io_uring_disabled`, not a seccomp profile refusing it). When it
/// cannot, the reason is printed and the test passes, unless
/// `PINGPONG_REQUIRE_URING` is set: then it fails, as CI wants.
#[allow(dead_code)]
pub fn mode_usable(mode: &str, test: &str) -> bool {
    if mode != "uring" {
        return true;
    }
    match uring_probe() {
        Ok(()) => true,
        Err(why) if std::env::var_os("PINGPONG_REQUIRE_URING").is_some() => {
            panic!("{test}: io_uring is not usable here ({why}), and PINGPONG_REQUIRE_URING is set")
        }
        Err(why) => {
            let _ = writeln!(io::stderr(), "skipped {test}: io_uring is not usable here: {why}");
            false
        }
    }
}

/// io_uring_setup(2) of a one-entry ring, closed at once.
#[cfg(target_os = "linux")]
fn uring_probe() -> Result<(), String> {
    // struct io_uring_params: 120 bytes, all zero asks for the defaults.
    let mut params = [0u8; 120];
    // SAFETY: the kernel writes at most the 120 bytes of io_uring_params.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(io::Error::last_os_error().to_string());
    }
    // SAFETY: the fd was just returned to us and is closed once.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn uring_probe() -> Result<(), String> {
    Err("io_uring is Linux's".to_string())
}

/// One `#[test]` per mode for each behaviour, a function taking the mode:
///
/// ```text
/// per_mode!(f, g);                      // every mode of this build
/// per_mode!(modes [epoll poll]; f, g);  // only these
/// ```
///
/// become `mod epoll { #[test] fn f() { super::f("epoll") } ... }` and so
/// on, so `cargo test --test servers epoll::` runs one mode, and a failure
/// names its mode. A mode this build lacks is left out at compile time (epoll
/// and uring are Linux's; kqueue is macOS's and the BSDs', or Linux's linked
/// against libkqueue); a mode the machine refuses at run time (io_uring
/// disabled) is skipped by [`mode_usable`], saying why.
#[macro_export]
macro_rules! per_mode {
    (modes [$($mode:ident)*]; $($test:ident),* $(,)?) => {
        $crate::per_mode!(@each [$($mode)*] $($test),*);
    };
    ($($test:ident),* $(,)?) => {
        $crate::per_mode!(
            modes [blocking epoll kqueue poll select threads pool hybrid uring];
            $($test),*
        );
    };
    // One mode at a time: a macro cannot repeat the tests inside a
    // repetition over the modes, so it recurses on the list instead.
    (@each [$mode:ident $($rest:ident)*] $($test:ident),*) => {
        $crate::per_mode!(@mode $mode $($test),*);
        $crate::per_mode!(@each [$($rest)*] $($test),*);
    };
    (@each [] $($test:ident),*) => {};
    (@mode epoll $($test:ident),*) => {
        #[cfg(target_os = "linux")]
        $crate::per_mode!(@module epoll $($test),*);
    };
    (@mode uring $($test:ident),*) => {
        #[cfg(target_os = "linux")]
        $crate::per_mode!(@module uring $($test),*);
    };
    (@mode kqueue $($test:ident),*) => {
        #[cfg(kqueue)]
        $crate::per_mode!(@module kqueue $($test),*);
    };
    (@mode $mode:ident $($test:ident),*) => {
        $crate::per_mode!(@module $mode $($test),*);
    };
    (@module $mode:ident $($test:ident),*) => {
        mod $mode {
            $(
                #[test]
                fn $test() {
                    if !$crate::common::mode_usable(stringify!($mode), stringify!($test)) {
                        return;
                    }
                    super::$test(stringify!($mode));
                }
            )*
        }
    };
}
