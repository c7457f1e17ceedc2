//! The server under test: a child process, started, watched and stopped.
//!
//! Everything the benchmark knows about the server comes from outside it,
//! the way an operator would look at any process (`/proc` is read through
//! the `procfs` crate, which parses each file into a struct):
//!
//! - **CPU time** from the kernel's per-process CPU clock
//!   (`clock_getcpuclockid(pid)` + `clock_gettime`, nanoseconds, every
//!   thread, dead ones included), and the user/system split from the
//!   `utime` and `stime` fields of `/proc/PID/stat` (clock ticks);
//! - **memory and threads** from `/proc/PID/status`: `VmRSS`, `VmHWM` (the
//!   peak RSS), `Threads`;
//! - **context switches** summed over `/proc/PID/task/*/status`;
//! - **system calls** from the server's own counters: the `stats:` line it
//!   prints on SIGUSR1 (every mode but blocking, on stderr) and at exit
//!   (`--stats`, on stdout); and, for any process, from `perf stat` (`perf.rs`)
//!   counting the `raw_syscalls:sys_enter` tracepoint.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use procfs::process::Process;
use wait_timeout::ChildExt;

use crate::cpu_clock::process_cpu_ns;
use crate::workloads::{Target, Workload};

/// How long a server may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A `stats:` line, as numbers: `syscalls`, `wakeups`, `read`, ...
pub type Stats = HashMap<String, f64>;

/// Parse `stats: connections=3 lines=10 ... syscalls=40 read=12 ...`.
pub fn parse_stats(line: &str) -> Option<Stats> {
    let rest = line.trim().strip_prefix("stats:")?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect(),
    )
}

/// Add up per-loop stats lines (`--workers N` prints one per loop).
pub fn sum_stats<'a>(lines: impl IntoIterator<Item = &'a Stats>) -> Stats {
    let mut total = Stats::new();
    for stats in lines {
        for (k, v) in stats {
            *total.entry(k.clone()).or_default() += v;
        }
    }
    total
}

/// One look at the process from outside.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// CPU time of every thread, in nanoseconds.
    pub cpu_ns: u64,
    /// `utime` and `stime` from `/proc/PID/stat`, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// `VmRSS`, `VmHWM`, in bytes.
    pub rss: u64,
    pub hwm: u64,
    pub threads: u64,
}

/// A line the child printed that the benchmark cares about.
enum Said {
    Listening(SocketAddr),
    Stats(Stats),
}

/// A server started for one run. Dropping it kills the child, so an error
/// anywhere in a run never leaves a server behind.
pub struct Server {
    child: Child,
    pub pid: i32,
    /// `/proc/PID`, opened once.
    process: Process,
    pub addr: SocketAddr,
    /// `stats:` lines from stderr (answers to SIGUSR1).
    signalled: Receiver<Said>,
    /// The start-up line and the exit `stats:` line, from stdout.
    stdout: Receiver<Said>,
    /// The last lines of anything else it printed, for error messages.
    tail: Arc<Mutex<VecDeque<String>>>,
    finished: bool,
}

impl Server {
    /// Start `bin serve` in `target`'s mode for `workload`, or the peer's
    /// command, and wait until it listens.
    pub fn start(bin: &Path, target: &Target, workload: &Workload) -> io::Result<Server> {
        match target {
            Target::Mode { mode, workers, edge } => {
                let mut cmd = Command::new(bin);
                cmd.args(["serve", "--mode", mode.name(), "--port", "0"])
                    // Never close a client for being quiet: the hold test's
                    // idle connections must stay.
                    .args(["--idle-timeout", "0", "--stats"])
                    // 10,000 connects arrive faster than threads are spawned.
                    .args(["--backlog", "4096"]);
                if let Some(n) = workers {
                    cmd.args(["--workers", &n.to_string()]);
                }
                if *edge {
                    cmd.arg("--edge");
                }
                if workload.work_ms > 0 {
                    cmd.args(["--work-ms", &workload.work_ms.to_string()]);
                }
                Server::spawn(cmd, None)
            }
            Target::Peer(peer) => {
                let port = free_port()?;
                let line = peer.command.replace("{port}", &port.to_string());
                let mut cmd = Command::new("sh");
                // `exec`, so the pid we measure is the server's, not a shell's.
                cmd.args(["-c", &format!("exec {line}")]);
                Server::spawn(cmd, Some(SocketAddr::from(([127, 0, 0, 1], port))))
            }
        }
    }

    /// Spawn with stdout and stderr read by threads; learn the address from
    /// the start-up line, or (`peer`) by connecting until it answers.
    fn spawn(mut cmd: Command, peer: Option<SocketAddr>) -> io::Result<Server> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        let process = Process::new(pid).map_err(io::Error::other)?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (out_tx, stdout) = mpsc::channel();
        let (err_tx, signalled) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let tail = Arc::clone(&tail);
            thread::spawn(move || forward_lines(out, &out_tx, &tail));
        }
        if let Some(err) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            thread::spawn(move || forward_lines(err, &err_tx, &tail));
        }
        let mut server = Server {
            child,
            pid,
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            signalled,
            stdout,
            tail,
            finished: false,
        };
        server.addr = match peer {
            None => server.await_listening()?,
            Some(addr) => server.await_connectable(addr)?,
        };
        Ok(server)
    }

    fn await_listening(&mut self) -> io::Result<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(Said::Listening(addr)) => return Ok(addr),
                Ok(Said::Stats(_)) => {}
                Err(_) => return Err(self.failure("did not say it listens")),
            }
        }
    }

    fn await_connectable(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(addr);
            }
            if Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return Err(self.failure(&format!("does not accept on {addr}")));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `error`, and if the server has died, that too, with its last words:
    /// a refused connection is a symptom, the server's exit is the cause.
    pub fn explain(&mut self, error: io::Error) -> io::Error {
        // A server that is dying may not have been reaped yet: give it a moment.
        match self.child.wait_timeout(Duration::from_millis(300)) {
            Ok(Some(_)) => self.failure(&format!("exited ({error})")),
            _ => error,
        }
    }

    /// An error naming what went wrong, with the last lines it printed.
    fn failure(&mut self, what: &str) -> io::Error {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!(" ({status})"),
            _ => String::new(),
        };
        let tail = self
            .tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default();
        io::Error::other(format!("the server {what}{status}: {tail}"))
    }

    /// Look at the process now.
    pub fn sample(&self) -> io::Result<Sample> {
        sample(&self.process)
    }

    /// Context switches, voluntary and not, summed over every thread alive.
    pub fn context_switches(&self) -> u64 {
        let Ok(tasks) = self.process.tasks() else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|task| task.status().ok())
            .map(|s| {
                s.voluntary_ctxt_switches.unwrap_or(0) + s.nonvoluntary_ctxt_switches.unwrap_or(0)
            })
            .sum()
    }

    /// Ask the server for its counters (SIGUSR1); the answer comes later,
    /// see [`Server::signalled_stats`].
    pub fn request_stats(&self) -> io::Result<()> {
        kill(Pid::from_raw(self.pid), Signal::SIGUSR1)?;
        Ok(())
    }

    /// The next `count` `stats:` lines printed on stderr, waiting up to
    /// `timeout` for them.
    pub fn signalled_stats(&self, count: usize, timeout: Duration) -> io::Result<Vec<Stats>> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::with_capacity(count);
        while lines.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.signalled.recv_timeout(left) {
                Ok(Said::Stats(stats)) => lines.push(stats),
                Ok(Said::Listening(_)) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("got {} of {count} stats lines", lines.len()),
                    ))
                }
            }
        }
        Ok(lines)
    }

    /// SIGTERM, wait for the exit (SIGKILL after a while), and return the
    /// `stats:` line it printed on the way out, if it printed one.
    pub fn stop(mut self) -> io::Result<Option<Stats>> {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        // No polling loop: wait_timeout sleeps until SIGCHLD says a child
        // has exited (its handler writes to a self-pipe, the trick the
        // servers use for their own signals) or the time is up.
        if self.child.wait_timeout(STOP_TIMEOUT)?.is_none() {
            // Dropping `self` kills it.
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the server ignored SIGTERM for {} s", STOP_TIMEOUT.as_secs()),
            ));
        }
        self.finished = true;
        // The reader thread sees EOF once the child is gone.
        let mut stats = None;
        while let Ok(said) = self.stdout.recv_timeout(Duration::from_secs(2)) {
            if let Said::Stats(s) = said {
                stats = Some(s);
            }
        }
        Ok(stats)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Read a child's output line by line: the lines the benchmark understands
/// go to `tx`, the rest to a short tail kept for error messages.
fn forward_lines(out: impl io::Read, tx: &mpsc::Sender<Said>, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { return };
        let said = if let Some(stats) = parse_stats(&line) {
            Some(Said::Stats(stats))
        } else {
            parse_listening(&line).map(Said::Listening)
        };
        match said {
            Some(said) => {
                let _ = tx.send(said);
            }
            None => {
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == 5 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        }
    }
}

/// `listening on 127.0.0.1:40123 (mode epoll, pid 1234)` → the address.
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("listening on ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// One look at `process`: its CPU clock, `/proc/PID/stat` and `/proc/PID/status`.
fn sample(process: &Process) -> io::Result<Sample> {
    let stat = process.stat().map_err(io::Error::other)?;
    let status = process.status().map_err(io::Error::other)?;
    let kib = |value: Option<u64>| value.unwrap_or(0) * 1024;
    Ok(Sample {
        cpu_ns: process_cpu_ns(process.pid)?,
        utime: stat.utime,
        stime: stat.stime,
        rss: kib(status.vmrss),
        hwm: kib(status.vmhwm),
        threads: status.threads,
    })
}

/// A port nobody listens on now, for a peer that takes its port as an
/// argument: bind port 0, read what the kernel chose, let it go.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_become_numbers() {
        let s =
            parse_stats("stats: connections=3 lines=10 events_per_wakeup=1.50 syscalls=40 read=12")
                .unwrap();
        assert_eq!(s["syscalls"], 40.0);
        assert_eq!(s["events_per_wakeup"], 1.5);
        assert!(parse_stats("served 3 connections").is_none());
        let total = sum_stats([&s, &s]);
        assert_eq!(total["read"], 24.0);
    }

    #[test]
    fn the_startup_line_gives_the_address() {
        let addr = parse_listening("listening on 127.0.0.1:40123 (mode epoll, pid 1234)");
        assert_eq!(addr, Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(parse_listening("hello"), None);
    }

    #[test]
    fn our_own_process_can_be_sampled() {
        let seen = sample(&Process::myself().unwrap()).unwrap();
        assert!(seen.threads >= 1);
        assert!(seen.cpu_ns > 0);
        assert!(seen.rss > 0 && seen.hwm >= seen.rss);
    }
}
