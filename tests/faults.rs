//! When a system call fails, the server does what `docs/faults.md` says.
//!
//! Each case starts the real server, attaches `strace -f -p PID
//! --inject=CALL:error=ERRNO:when=...` to it (the failure made to happen the
//! Nth time a thread makes the call: strace counts per thread, from the
//! attach), and sends six clients at it, each writing four lines a little
//! apart, half-closing and reading every reply up to the server's FIN. The
//! class the policy gives that (call, errno), `pingpong::server::faults::class`,
//! says what must be seen:
//!
//! - retry: every client gets exactly its replies;
//! - connection: the clients whose own calls failed (strace's log names the
//!   fd, `accept4` names its client) were closed, none left hanging, and
//!   every other client got exactly its replies; the server says why in one
//!   line, in words; a newcomer is served; the server is idle afterwards;
//! - listener: every client served (but one told `error: server busy` when
//!   out of fds), a newcomer too, the server idle;
//! - fatal: exit status 1 soon after, with one line `pingpong serve: cannot
//!   ...`, and no client left hanging. The setup's failures start the
//!   server under strace instead, as they come before the attach could.
//!
//! Every other server is then stopped with SIGTERM and must exit 0. The
//! cases run in parallel, each server on a port of its own. `make faults`
//! prints the matrix as measured (`-- --nocapture`). Skipped, saying why,
//! without strace; a failure when `PINGPONG_REQUIRE_STRACE` is set.
#![cfg(target_os = "linux")]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::strace::{self, strace_usable};
use common::{collect, mode_usable, wait_timeout, Server, BIN, PATIENCE};
use nix::unistd::Pid;
use pingpong::observe::{Launched, Sample, Stream};
use pingpong::server::faults::{self, Call, Class};

/// One failure to inject: in `mode`, the system call `call` fails with
/// `errno` at the times `when` says (strace's syntax: `first[..last][+step]`).
struct Case {
    mode: &'static str,
    call: &'static str,
    errno: (&'static str, i32),
    when: &'static str,
    /// What the call is for, in the policy's words; `None`: a call of the
    /// setup, whose failure is fatal before the start-up line.
    policy: Option<Call>,
}

impl Case {
    fn class(&self) -> Class {
        match self.policy {
            Some(call) => faults::class(call, &io::Error::from_raw_os_error(self.errno.1)),
            None => Class::Fatal,
        }
    }

    fn inject(&self) -> String {
        format!("--inject={}:error={}:when={}", self.call, self.errno.0, self.when)
    }

    /// strace's `-P`: hybrid's wake-ups are the writes to its eventfd (the
    /// main thread's are its output, which must not fail here).
    fn only_path(&self) -> Vec<&'static str> {
        match (self.mode, self.call) {
            ("hybrid", "write") => vec!["-P", "anon_inode:[eventfd]"],
            _ => vec![],
        }
    }

    fn name(&self) -> String {
        format!("{} {}:{}:when={}", self.mode, self.call, self.errno.0, self.when)
    }
}

const fn case(
    mode: &'static str,
    call: &'static str,
    errno: (&'static str, i32),
    when: &'static str,
    policy: Option<Call>,
) -> Case {
    Case { mode, call, errno, when, policy }
}

const EINTR: (&str, i32) = ("EINTR", libc::EINTR);
const EAGAIN: (&str, i32) = ("EAGAIN", libc::EAGAIN);
const EBUSY: (&str, i32) = ("EBUSY", libc::EBUSY);
const ENOMEM: (&str, i32) = ("ENOMEM", libc::ENOMEM);
const ENOBUFS: (&str, i32) = ("ENOBUFS", libc::ENOBUFS);
const ENOSPC: (&str, i32) = ("ENOSPC", libc::ENOSPC);
const ECONNRESET: (&str, i32) = ("ECONNRESET", libc::ECONNRESET);
const ECONNABORTED: (&str, i32) = ("ECONNABORTED", libc::ECONNABORTED);
const EPIPE: (&str, i32) = ("EPIPE", libc::EPIPE);
const EPERM: (&str, i32) = ("EPERM", libc::EPERM);
const EPROTO: (&str, i32) = ("EPROTO", libc::EPROTO);
const EMFILE: (&str, i32) = ("EMFILE", libc::EMFILE);
const EBADF: (&str, i32) = ("EBADF", libc::EBADF);
const EFAULT: (&str, i32) = ("EFAULT", libc::EFAULT);

/// The matrix. The `when`s are chosen so that every case hits clients of
/// the load (six clients, four writes each) and, where a failure costs a
/// client, never the newcomer after it: a range (`5..10+5`) in the
/// single-threaded loops, where one count runs over every client and the
/// load always makes at least that many calls, however its writes merge; a
/// small first call (`3`) in the thread modes, where each client's thread
/// counts from 1 and the newcomer makes only two reads and two sends.
const MATRIX: &[Case] = &[
    // epoll: one thread, one count for every client.
    case("epoll", "read", EINTR, "2..20+3", Some(Call::Read)),
    case("epoll", "read", EAGAIN, "2..20+3", Some(Call::Read)),
    case("epoll", "read", ENOMEM, "5..10+5", Some(Call::Read)),
    case("epoll", "read", ECONNRESET, "5..10+5", Some(Call::Read)),
    case("epoll", "sendto", EINTR, "2..12+3", Some(Call::Send)),
    case("epoll", "sendto", EAGAIN, "2..12+3", Some(Call::Send)),
    case("epoll", "sendto", ENOBUFS, "3..9+3", Some(Call::Send)),
    case("epoll", "sendto", EPIPE, "3..9+3", Some(Call::Send)),
    case("epoll", "accept4", EINTR, "1..4+2", Some(Call::Accept)),
    case("epoll", "accept4", EAGAIN, "1..4+2", Some(Call::Accept)),
    case("epoll", "accept4", ECONNABORTED, "1..4+2", Some(Call::Accept)),
    case("epoll", "accept4", EPERM, "1..4+2", Some(Call::Accept)),
    case("epoll", "accept4", EPROTO, "1..4+2", Some(Call::Accept)),
    case("epoll", "accept4", ENOBUFS, "1..4+2", Some(Call::Accept)),
    case("epoll", "accept4", EMFILE, "2", Some(Call::Accept)),
    case("epoll", "epoll_ctl", ENOMEM, "1..7+3", Some(Call::Register)),
    case("epoll", "epoll_ctl", ENOSPC, "1..7+3", Some(Call::Register)),
    case("epoll", "epoll_wait", EINTR, "2..10+2", Some(Call::Wait)),
    case("epoll", "epoll_wait", EBADF, "3", Some(Call::Wait)),
    case("epoll", "epoll_create1", ENOMEM, "1", None),
    // threads: a count per thread; the main thread accepts and starts them.
    case("threads", "read", EINTR, "2+2", Some(Call::Read)),
    case("threads", "read", EAGAIN, "2+2", Some(Call::Read)),
    case("threads", "read", ENOMEM, "3", Some(Call::Read)),
    case("threads", "sendto", EAGAIN, "2+2", Some(Call::Send)),
    case("threads", "sendto", ENOBUFS, "3", Some(Call::Send)),
    case("threads", "accept4", EINTR, "2..5+2", Some(Call::Accept)),
    case("threads", "accept4", EPERM, "2..5+2", Some(Call::Accept)),
    case("threads", "accept4", ENOBUFS, "2..5+2", Some(Call::Accept)),
    // One clone3 per client, counted from the attach (the newcomer's is the
    // seventh); the first one of all is the signal watcher's.
    case("threads", "clone3", EAGAIN, "2..6+4", Some(Call::Spawn)),
    case("threads", "clone3", EAGAIN, "1", None),
    case("pool", "clone3", EAGAIN, "2", None),
    // blocking: the loop every thread of `threads` runs, on the main thread.
    case("blocking", "read", EAGAIN, "2+2", Some(Call::Read)),
    case("blocking", "sendto", EPIPE, "2", Some(Call::Send)),
    // hybrid: the loop's reads are epoll's; the workers wake it with write(2).
    case("hybrid", "read", ENOMEM, "5..10+5", Some(Call::Read)),
    case("hybrid", "write", EAGAIN, "1..2", Some(Call::Wake)),
    case("hybrid", "write", EBADF, "1", Some(Call::Wake)),
    // uring: the sockets' calls are in the ring, out of strace's reach; the
    // one call to fail is the enter.
    case("uring", "io_uring_enter", EINTR, "3..30+3", Some(Call::Wait)),
    case("uring", "io_uring_enter", EAGAIN, "3..30+3", Some(Call::Wait)),
    case("uring", "io_uring_enter", EBUSY, "3..30+3", Some(Call::Wait)),
    case("uring", "io_uring_enter", EFAULT, "4", Some(Call::Wait)),
    case("uring", "io_uring_setup", ENOMEM, "1", None),
];

/// Clients in the load, and how long one may wait for its replies before
/// it counts as left hanging.
const CLIENTS: usize = 6;
const HANG: Duration = PATIENCE;

/// How many cases run at once.
const PARALLEL: usize = 6;

#[test]
fn every_injected_failure_lands_in_its_class() {
    let test = "every_injected_failure_lands_in_its_class";
    if !strace_usable(test) {
        return;
    }
    let cases: Vec<&'static Case> = MATRIX.iter().filter(|c| mode_usable(c.mode, test)).collect();
    let started = Instant::now();
    let next = Arc::new(Mutex::new(cases.clone().into_iter().enumerate()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let runners: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (next, results) = (Arc::clone(&next), Arc::clone(&results));
            thread::spawn(move || loop {
                let Some((i, case)) = next.lock().ok().and_then(|mut it| it.next()) else {
                    return;
                };
                let measured = run(case);
                let verdict = judge(case, &measured);
                if let Ok(mut results) = results.lock() {
                    results.push((i, measured, verdict));
                }
            })
        })
        .collect();
    for runner in runners {
        runner.join().expect("a case's thread panicked");
    }
    let mut results = Arc::try_unwrap(results).ok().and_then(|r| r.into_inner().ok()).unwrap();
    results.sort_by_key(|(i, _, _)| *i);
    println!("\n{:<42} {:<10} {:<66} server said", "mode call:errno:when", "class", "clients");
    let (mut failures, mut skipped) = (Vec::new(), None);
    for (i, measured, verdict) in &results {
        let case = cases[*i];
        let mark = if verdict.is_ok() { "" } else { " <-- WRONG" };
        println!(
            "{:<42} {:<10} {:<66} {}{mark}",
            case.name(),
            format!("{:?}", case.class()).to_lowercase(),
            measured.clients(),
            measured.said()
        );
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}\n  stderr: {}", case.name(), measured.stderr.trim()));
        }
        skipped = skipped.or(measured.skipped.clone());
    }
    if let Some(why) = skipped {
        // The rows that attach strace to a running server did not run.
        let rows = results.iter().filter(|(_, m, _)| m.skipped.is_some()).count();
        strace::skip(test, &format!("{rows} rows skipped: {why}"));
    }
    println!("{} cases in {:.1} s", results.len(), started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------- a case

/// What one client saw.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// Exactly its replies, then the server's FIN.
    Exact,
    /// `error: server busy`, then the FIN.
    Busy,
    /// Closed early: fewer replies than it asked for (EOF or reset).
    Closed(usize),
    /// Neither its replies nor a close, for `HANG`.
    Hung(usize),
    /// Its connect failed.
    Refused,
}

/// What a case measured.
struct Measured {
    /// Each client's port and what it saw.
    clients: Vec<(u16, Seen)>,
    /// The ports of the clients whose calls failed (from strace's log).
    affected: HashSet<u16>,
    /// How many calls strace made fail.
    injected: usize,
    /// A client connected after the load: served?
    newcomer: Option<Seen>,
    /// CPU the server used in `IDLE_WINDOW` after the load.
    busy: Option<Duration>,
    /// The exit status, and how long after the load started it came
    /// (fatal cases); the status after SIGTERM otherwise.
    exit: Option<i32>,
    exited_after: Option<Duration>,
    stderr: String,
    /// Why the case could not be measured at all.
    broken: Option<String>,
    /// Why the case could not run here (strace may not attach).
    skipped: Option<String>,
}

impl Measured {
    fn clients(&self) -> String {
        if let Some(why) = self.broken.as_ref().or(self.skipped.as_ref()) {
            return why.clone();
        }
        let count = |f: &dyn Fn(&Seen) -> bool| self.clients.iter().filter(|(_, s)| f(s)).count();
        let exact = count(&|s| *s == Seen::Exact);
        let busy = count(&|s| *s == Seen::Busy);
        let closed = count(&|s| matches!(s, Seen::Closed(_)));
        let hung = count(&|s| matches!(s, Seen::Hung(_)));
        let refused = count(&|s| *s == Seen::Refused);
        let mut said = format!("{exact}/{} exact", self.clients.len());
        for (n, what) in [(busy, "busy"), (closed, "closed"), (refused, "refused"), (hung, "HUNG")]
        {
            if n > 0 {
                said += &format!(", {n} {what}");
            }
        }
        said += &format!(" ({} failed, {} clients')", self.injected, self.affected.len());
        let exit = self.exit.map_or("none".into(), |code| code.to_string());
        match self.exited_after {
            Some(after) => said += &format!("; exit {exit} in {:.2} s", after.as_secs_f64()),
            None if self.newcomer == Some(Seen::Exact) => said += "; newcomer ok",
            None => said += &format!("; newcomer {:?}", self.newcomer),
        }
        if let Some(busy) = self.busy {
            said += if busy <= BUSY_CPU { ", idle" } else { ", BUSY" };
        }
        said
    }

    /// The server's lines, but the summary and strace's own.
    fn said(&self) -> String {
        let lines: Vec<&str> = self.server_lines().collect();
        match lines.as_slice() {
            [] => "(nothing)".into(),
            [one] => one.to_string(),
            [first, ..] => format!("{first} (+{} more)", lines.len() - 1),
        }
    }

    fn server_lines(&self) -> impl Iterator<Item = &str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("strace:"))
    }
}

/// How long the server is watched for CPU after the load, and the most CPU
/// it may use there and count as idle (ten clock ticks of 10 ms: a fifth of
/// the window).
const IDLE_WINDOW: Duration = Duration::from_millis(500);
const BUSY_CPU: Duration = Duration::from_millis(100);

impl Measured {
    fn new() -> Measured {
        Measured {
            clients: Vec::new(),
            affected: HashSet::new(),
            injected: 0,
            newcomer: None,
            busy: None,
            exit: None,
            exited_after: None,
            stderr: String::new(),
            broken: None,
            skipped: None,
        }
    }
}

/// Run one case; a panic in it (a server that ignores SIGTERM) is its verdict.
fn run(case: &'static Case) -> Measured {
    let ran = thread::spawn(move || match case.policy {
        Some(_) => run_attached(case),
        None => run_from_start(case),
    });
    ran.join().unwrap_or_else(|panic| {
        let mut measured = Measured::new();
        let why = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        measured.broken = Some(format!("the case panicked: {why}"));
        measured
    })
}

/// A failure while serving: the server is started as the other tests start
/// it, strace attached to it (`strace -f -p PID`: every thread, and each
/// new one), so that its counts start with the serving, not with the
/// dynamic loader's reads. Then the load, a newcomer, the idle check, and
/// SIGTERM; a fatal case is waited for instead.
fn run_attached(case: &Case) -> Measured {
    let mut measured = Measured::new();
    let server = Server::start(case.mode, &[]);
    let pid = server.pid();
    let log = log_path(case);
    let spawned = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg(case.inject())
        .args(case.only_path())
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut strace) = spawned else {
        measured.broken = Some("cannot run strace".into());
        return measured;
    };
    let said = collect(strace.stderr.take().expect("piped"));
    if !attached(pid, &mut strace) {
        let _ = strace.kill();
        let _ = strace.wait();
        let said = said.join().unwrap_or_default();
        // Yama's ptrace_scope 1 (Ubuntu's default) lets a process trace
        // only its own descendants, unless it is root.
        if said.contains("Operation not permitted") {
            let why = "strace may not attach to a running process here (kernel.yama.ptrace_scope)";
            measured.skipped = Some(why.into());
        } else {
            measured.broken = Some(format!("strace did not attach: {}", said.trim()));
        }
    } else {
        let load = Instant::now();
        measured.clients = load_clients(server.addr);
        if case.class() == Class::Fatal {
            if exited(pid) {
                measured.exited_after = Some(load.elapsed());
            }
        } else {
            // One write and our FIN: two reads, two sends, one thread,
            // fewer than any `when` of the matrix reaches in a thread of
            // its own.
            let newcomer = session(server.addr, &["ping\nlast".into()], "pong\nlast");
            measured.newcomer = Some(newcomer.1);
            measured.busy = cpu_over(pid, IDLE_WINDOW);
        }
    }
    let stopped = server.stop();
    measured.exit = stopped.status.code();
    measured.stderr = stopped.stderr;
    if wait_timeout(&mut strace, PATIENCE).is_none() {
        let _ = strace.kill();
        let _ = strace.wait();
    }
    read_log(&log, case, &mut measured);
    measured
}

/// A failure of the setup: the server started under strace, since the
/// call fails before (or just after) its start-up line.
fn run_from_start(case: &Case) -> Measured {
    let mut measured = Measured::new();
    let log = log_path(case);
    let mut command = Command::new("strace");
    command.args(["-f", "-qq", "-o"]).arg(&log).arg(case.inject());
    command.args(["--", BIN, "serve", "--mode", case.mode, "--port", "0"]);
    let mut strace = Launched::spawn(&mut command).expect("spawn strace");
    let started = Instant::now();
    let mut from = 0;
    let banner =
        strace.wait_line(Stream::Stdout, &mut from, PATIENCE, |l| l.starts_with("listening"));
    if let Some(addr) = banner.as_deref().and_then(banner_addr) {
        measured.clients = load_clients(addr);
    }
    // strace exits with its tracee's status.
    measured.exit = strace.wait_exit(PATIENCE).and_then(|s| s.code());
    measured.exited_after = Some(started.elapsed());
    if measured.exit.is_none() {
        measured.broken = Some("the server did not exit; killed".into()); // on drop
    } else {
        strace.await_output_end(Stream::Stderr, PATIENCE);
        measured.stderr = strace.lines(Stream::Stderr).join("\n");
    }
    read_log(&log, case, &mut measured);
    measured
}

/// Whether strace has attached to every thread of `pid` (each one's
/// `TracerPid` in `/proc/PID/task/TID/status`), waiting up to `PATIENCE`,
/// or until strace gives up.
fn attached(pid: Pid, strace: &mut std::process::Child) -> bool {
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until && matches!(strace.try_wait(), Ok(None)) {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten();
        let traced = tasks.flatten().all(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let tracer = status.lines().find_map(|l| l.strip_prefix("TracerPid:"));
            tracer.is_some_and(|t| t.trim() != "0")
        });
        if traced {
            // TracerPid is set the moment strace seizes a thread
            // (PTRACE_SEIZE), a little before it asks to stop it at every
            // system call (PTRACE_SYSCALL). A client accepted in between
            // has no accept4 in the log, so its failed calls could not be
            // told apart: let strace finish attaching first. (Seen once on
            // a loaded machine: a blocking-mode client whose failed sendto
            // was counted as nobody's.)
            thread::sleep(Duration::from_millis(250));
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Whether process `pid` is still in /proc, zombie or not.
fn exists(pid: Pid) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` has exited (a zombie, not reaped yet), waiting up to `PATIENCE`.
fn exited(pid: Pid) -> bool {
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until {
        // Gone from /proc, or a zombie (`Sample::state`, `stat` field 3).
        if Sample::take(pid.as_raw()).is_ok_and(|s| s.state == 'Z') || !exists(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Read strace's log (what failed, whose), then remove it.
fn read_log(log: &PathBuf, case: &Case, measured: &mut Measured) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    (measured.injected, measured.affected) = affected(&text, case.call);
}

fn log_path(case: &Case) -> PathBuf {
    let name: String =
        case.name().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    std::env::temp_dir().join(format!("pingpong-faults-{}-{name}.log", std::process::id()))
}

/// `listening on 127.0.0.1:4321 (mode epoll, pid 99)` → the address.
fn banner_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.trim_end().strip_prefix("listening on ")?;
    rest.split_once(" (mode ")?.0.parse().ok()
}

/// The load: `CLIENTS` sessions at once. Returns each one's port and outcome.
fn load_clients(addr: SocketAddr) -> Vec<(u16, Seen)> {
    let one = move |i: usize| {
        let writes =
            [format!("ping\nc{i}-1\n"), format!("c{i}-2\n"), "ping\n".into(), format!("c{i}-end")];
        session(addr, &writes, &format!("pong\nc{i}-1\nc{i}-2\npong\nc{i}-end"))
    };
    let sessions: Vec<_> = (0..CLIENTS).map(|i| thread::spawn(move || one(i))).collect();
    sessions.into_iter().map(|s| s.join().unwrap_or((0, Seen::Refused))).collect()
}

/// One client: its `writes` a little apart (so the server reads them one
/// by one), the last line without its newline, our FIN; then every reply up
/// to the server's FIN, `expected` or not. `ping` is answered `pong`,
/// anything else echoed.
fn session(addr: SocketAddr, writes: &[String], expected: &str) -> (u16, Seen) {
    let Ok(stream) = TcpStream::connect(addr) else { return (0, Seen::Refused) };
    let port = stream.local_addr().map_or(0, |a| a.port());
    let _ = stream.set_read_timeout(Some(HANG));
    let mut sent_all = true;
    for (n, chunk) in writes.iter().enumerate() {
        if n > 0 {
            thread::sleep(Duration::from_millis(15));
        }
        sent_all &= (&stream).write_all(chunk.as_bytes()).is_ok();
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let ended = (&stream).read_to_end(&mut got);
    let seen = match ended {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            Seen::Hung(got.len())
        }
        _ if got.ends_with(b"error: server busy\n") => Seen::Busy,
        Ok(_) if sent_all && got == expected.as_bytes() => Seen::Exact,
        _ => Seen::Closed(got.len()),
    };
    (port, seen)
}

/// CPU time (user + system, every thread) the process used over `window`
/// (`/proc/PID/stat`, read by `observe::Sample`).
fn cpu_over(pid: Pid, window: Duration) -> Option<Duration> {
    let before = Sample::take(pid.as_raw()).ok()?;
    thread::sleep(window);
    Some(Sample::take(pid.as_raw()).ok()?.cpu().saturating_sub(before.cpu()))
}

/// From strace's log: how many calls it made fail, and the ports of the
/// clients they belonged to. A client's fd is named by the `accept4` that
/// returned it (its `sin_port` is the client's port); a failed `epoll_ctl`
/// names it as its third argument, the others as their first; a failed
/// `clone3` was for the client accepted just before it.
fn affected(log: &str, call: &str) -> (usize, HashSet<u16>) {
    let (mut injected, mut ports) = (0, HashSet::new());
    let mut port_of: HashMap<i32, u16> = HashMap::new();
    let mut last_accepted = None;
    let mut unfinished: HashMap<&str, i32> = HashMap::new();
    for line in log.lines() {
        let Some((pid, rest)) = line.split_once(' ') else { continue };
        let rest = rest.trim_start();
        if rest.contains("accept4") {
            let port = between(rest, "sin_port=htons(", ")").and_then(|p| p.parse().ok());
            let fd = rest.rsplit_once("= ").and_then(|(_, fd)| fd.trim().parse().ok());
            if let (Some(port), Some(fd)) = (port, fd) {
                port_of.insert(fd, port);
                last_accepted = Some(port);
            }
        }
        let fd_arg = |args: &str| -> Option<i32> {
            let n = if call == "epoll_ctl" { 2 } else { 0 };
            args.split(", ").nth(n)?.trim().parse().ok()
        };
        let opening = format!("{call}(");
        if let Some(args) = rest.strip_prefix(&opening) {
            if rest.ends_with("<unfinished ...>") {
                if let Some(fd) = fd_arg(args) {
                    unfinished.insert(pid, fd);
                }
            }
        }
        if !rest.ends_with("(INJECTED)") {
            continue;
        }
        injected += 1;
        let fd = match rest.strip_prefix(&opening) {
            Some(args) => fd_arg(args),
            None => unfinished.remove(pid),
        };
        let port = match call {
            "clone3" => last_accepted,
            "read" | "sendto" | "epoll_ctl" => fd.and_then(|fd| port_of.get(&fd).copied()),
            _ => None,
        };
        ports.extend(port);
    }
    (injected, ports)
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

// ---------------------------------------------------------------- the verdict

/// Whether what was measured is what the case's class promises.
fn judge(case: &Case, m: &Measured) -> Result<(), String> {
    if let Some(why) = &m.broken {
        return Err(why.clone());
    }
    if m.skipped.is_some() {
        return Ok(());
    }
    if m.injected == 0 {
        return Err("strace made no call fail: the case tests nothing".into());
    }
    if m.stderr.contains("os error") {
        return Err("an error said as `os error N`, not in words".into());
    }
    if m.stderr.contains("panicked") {
        return Err("a panic".into());
    }
    let hung: Vec<_> = m.clients.iter().filter(|(_, s)| matches!(s, Seen::Hung(_))).collect();
    if !hung.is_empty() {
        return Err(format!("clients left hanging: {hung:?}"));
    }
    let cause = pingpong::words::cause(&io::Error::from_raw_os_error(case.errno.1));
    let lines: Vec<&str> = m.server_lines().collect();
    match case.class() {
        Class::Fatal => {
            if m.exit != Some(1) {
                return Err(format!("exit status {:?}, not 1", m.exit));
            }
            if let Some(after) = m.exited_after.filter(|t| *t > Duration::from_secs(3)) {
                return Err(format!("exited only {after:?} after the load began"));
            }
            match lines.as_slice() {
                [line] if line.starts_with("pingpong serve: cannot ") && line.contains(&cause) => {}
                _ => return Err(format!("not the one line `pingpong serve: cannot ...: {cause}`")),
            }
            return Ok(());
        }
        _ if m.exit != Some(0) => return Err(format!("exit status {:?} after SIGTERM", m.exit)),
        _ => {}
    }
    if m.newcomer != Some(Seen::Exact) {
        return Err(format!("a newcomer after the load: {:?}", m.newcomer));
    }
    if case.class() == Class::Connection
        && !m.affected.is_empty()
        && !lines.iter().any(|l| l.contains(&cause))
    {
        return Err(format!("no line saying why (`{cause}`)"));
    }
    // Idle: a few ticks at most (a spinning loop takes them all, even on a
    // busy machine: half of the window at the very least).
    if let Some(busy) = m.busy.filter(|&b| b > BUSY_CPU) {
        return Err(format!("busy after the load: {busy:?} of CPU in {IDLE_WINDOW:?}"));
    }
    let out_of_fds = matches!(case.errno.1, libc::EMFILE | libc::ENFILE);
    for (port, seen) in &m.clients {
        let fine = match case.class() {
            Class::Retry => *seen == Seen::Exact,
            Class::Listener => *seen == Seen::Exact || (out_of_fds && *seen == Seen::Busy),
            _ => m.affected.contains(port) || *seen == Seen::Exact,
        };
        if !fine {
            return Err(format!(
                "client :{port} saw {seen:?} (its calls failed: {})",
                m.affected.contains(port)
            ));
        }
    }
    let said = case.class() == Class::Listener
        && !matches!(case.errno.1, libc::ECONNABORTED | libc::EMFILE | libc::ENFILE);
    if said && !lines.iter().any(|l| l.contains(&cause)) {
        return Err(format!("no line saying why (`{cause}`)"));
    }
    Ok(())
}

// ---------------------------------------------------------------- strace
