//! Helpers shared by the integration tests: start a real `pingpong serve`
//! on a free port, talk to it, stop it with SIGTERM, run the client.
//!
//! Each test file uses a subset, hence `allow(dead_code)`.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

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
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub mode: String,
    /// The start-up line, as printed.
    pub banner: String,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
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
        let mut child = Command::new(BIN)
            .args(["serve", "--mode", mode, "--port", "0"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pingpong serve");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (first_line, stdout) = read_first_line_then_rest(stdout);
        let stderr = collect(stderr);
        let banner = match first_line.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr.join().unwrap_or_default();
                panic!("`serve --mode {mode} {extra_args:?}` printed no start-up line ({e}); stderr: {stderr}");
            }
        };
        let addr = parse_banner(&banner, mode, child.id());
        Server {
            child,
            addr,
            mode: mode.to_string(),
            banner,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
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
        Pid::from_raw(self.child.id() as i32)
    }

    /// SIGTERM, then wait for the exit (up to [`PATIENCE`]; after that,
    /// SIGKILL and fail the test: a server that ignores SIGTERM is a bug).
    pub fn stop(mut self) -> Stopped {
        kill(self.pid(), Signal::SIGTERM).expect("send SIGTERM");
        let status = match wait_timeout(&mut self.child, PATIENCE) {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} server still running {PATIENCE:?} after SIGTERM; killed", self.mode);
            }
        };
        let join =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Stopped { status, stdout: join(self.stdout.take()), stderr: join(self.stderr.take()) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `listening on 127.0.0.1:4321 (mode epoll, pid 99)` → the address, after
/// checking the mode and pid are the ones started, and that anything between
/// them is a count: `(mode pool, 6 workers, pid 99)`, `(mode epoll, 2 event
/// loops, pid 99)`.
fn parse_banner(line: &str, mode: &str, pid: u32) -> SocketAddr {
    let parsed = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.trim_end().split_once(" (mode "))
        .and_then(|(addr, rest)| Some((addr.parse().ok()?, rest.strip_suffix(')')?)));
    let Some((addr, rest)) = parsed else {
        panic!("unexpected start-up line: {line:?}");
    };
    let parts: Vec<&str> = rest.split(", ").collect();
    assert!(parts.len() >= 2, "start-up line: {line:?}");
    let pid = format!("pid {pid}");
    let (first, last, between) = (parts[0], parts[parts.len() - 1], &parts[1..parts.len() - 1]);
    assert!(first == mode && last == pid, "start-up line: {line:?}");
    assert!(between.len() <= 1 && between.iter().all(|c| is_count(c)), "start-up line: {line:?}");
    addr
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

/// A thread that hands over a pipe's first line at once, then keeps
/// everything after it (so the child never blocks on a full pipe).
pub fn read_first_line_then_rest(
    pipe: impl Read + Send + 'static,
) -> (mpsc::Receiver<String>, JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return String::new(); // dropping tx tells start() the server died
        }
        let _ = tx.send(line);
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        rest
    });
    (rx, handle)
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
