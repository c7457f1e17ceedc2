//! The server under test: a child process, started, watched and stopped.
//!
//! Everything the benchmark knows about the server comes from outside it,
//! the way an operator would look at any process. It stands on
//! `pingpong::observe`, the layer the labs and the tests use too: the child
//! is an [`observe::Launched`] (its output kept, its start-up line read as
//! an [`observe::Banner`], stopped with SIGTERM then SIGKILL), and `/proc` is
//! read through [`observe::Sample`]:
//!
//! - **CPU time** from the kernel's per-process CPU clock
//!   (`clock_getcpuclockid(pid)` + `clock_gettime`, nanoseconds, every
//!   thread, dead ones included: `cpu_clock.rs`), and the user/system split
//!   from the `utime` and `stime` fields of `/proc/PID/stat`;
//! - **memory and threads** from `/proc/PID/status`: `VmRSS`, `VmHWM` (the
//!   peak RSS), `Threads`;
//! - **context switches** summed over `/proc/PID/task/*/status`;
//! - **system calls** from the server's own counters: the `stats:` line it
//!   prints on SIGUSR1 (every mode but blocking, on stderr) and at exit
//!   (`--stats`, on stdout); and, for any process, from `perf stat` (`perf.rs`)
//!   counting the `raw_syscalls:sys_enter` tracepoint.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pingpong::observe::{self, launched, Launched, Stream};

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
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// CPU time of every thread, in nanoseconds, from the process's CPU
    /// clock. `/proc` has the same time in clock ticks of 10 ms, too coarse
    /// for the half-second windows of `--quick`: this figure stays the
    /// benchmark's own.
    pub cpu_ns: u64,
    /// Everything else: user and system time, RSS and its peak, threads,
    /// context switches (`/proc/PID/stat`, `status`, `task/*/status`).
    pub proc: observe::Sample,
}

impl Reading {
    /// Context switches, voluntary and not, summed over every thread alive.
    pub fn context_switches(&self) -> u64 {
        self.proc.voluntary_switches + self.proc.involuntary_switches
    }
}

/// A server started for one run. Dropping it kills the child (`Launched`
/// does), so an error anywhere in a run never leaves a server behind.
pub struct Server {
    launched: Launched,
    pub pid: i32,
    pub addr: SocketAddr,
    /// The number of the next stderr line to look at for a `stats:` answer
    /// to SIGUSR1: each answer is taken once, in order.
    stderr_seen: Cell<u64>,
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
                let mut launched = Launched::spawn(&mut cmd)?;
                let addr = launched.await_banner(START_TIMEOUT)?.addr;
                Ok(Server::watching(launched, addr))
            }
            Target::Peer(peer) => {
                let port = launched::free_port()?;
                let line = launched::fill_port(&[peer.command.as_str()], port).remove(0);
                let mut cmd = Command::new("sh");
                // `exec`, so the pid we measure is the server's, not a shell's.
                cmd.args(["-c", &format!("exec {line}")]);
                let mut launched = Launched::spawn(&mut cmd)?;
                // A peer prints no start-up line we know: it listens when it
                // accepts a connection.
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                launched.await_accepting(addr, START_TIMEOUT)?;
                Ok(Server::watching(launched, addr))
            }
        }
    }

    fn watching(launched: Launched, addr: SocketAddr) -> Server {
        Server { pid: launched.pid(), launched, addr, stderr_seen: Cell::new(0) }
    }

    /// `error`, and if the server has died, that too, with its last words:
    /// a refused connection is a symptom, the server's exit is the cause.
    pub fn explain(&mut self, error: io::Error) -> io::Error {
        // A server that is dying may not have been reaped yet: give it a moment.
        match self.launched.wait_exit(Duration::from_millis(300)) {
            Some(_) => self.launched.failure(&format!("exited ({error})")),
            None => error,
        }
    }

    /// Look at the process now: `/proc` first, the CPU clock last, so that
    /// a window that starts with this sample is framed closely by the clock.
    pub fn sample(&self) -> io::Result<Reading> {
        sample(self.pid)
    }

    /// Ask the server for its counters (SIGUSR1); the answer comes later,
    /// see [`Server::signalled_stats`].
    pub fn request_stats(&self) -> io::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGUSR1)?;
        Ok(())
    }

    /// The next `count` `stats:` lines printed on stderr, waiting up to
    /// `timeout` for them.
    pub fn signalled_stats(&self, count: usize, timeout: Duration) -> io::Result<Vec<Stats>> {
        let deadline = Instant::now() + timeout;
        let mut from = self.stderr_seen.get();
        let mut lines = Vec::with_capacity(count);
        while lines.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .launched
                .wait_line(Stream::Stderr, &mut from, left, |l| parse_stats(l).is_some());
            match line.as_deref().and_then(parse_stats) {
                Some(stats) => lines.push(stats),
                None => {
                    self.stderr_seen.set(from);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("got {} of {count} stats lines", lines.len()),
                    ));
                }
            }
        }
        self.stderr_seen.set(from);
        Ok(lines)
    }

    /// SIGTERM, wait for the exit (SIGKILL after a while), and return the
    /// `stats:` line it printed on the way out, if it printed one.
    pub fn stop(mut self) -> io::Result<Option<Stats>> {
        let (_, on_term) = self.launched.stop(STOP_TIMEOUT)?;
        if !on_term {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the server ignored SIGTERM for {} s; killed", STOP_TIMEOUT.as_secs()),
            ));
        }
        // The reader thread sees EOF once the child is gone: the exit line
        // may still be on its way.
        self.launched.await_output_end(Stream::Stdout, Duration::from_secs(2));
        Ok(self.launched.lines(Stream::Stdout).iter().rev().find_map(|l| parse_stats(l)))
    }
}

/// One look at process `pid`: `/proc` (stat, status, task/*/status), then
/// its CPU clock.
fn sample(pid: i32) -> io::Result<Reading> {
    let proc = observe::Sample::take(pid)?;
    Ok(Reading { cpu_ns: process_cpu_ns(pid)?, proc })
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
        let banner = observe::Banner::parse("listening on 127.0.0.1:40123 (mode epoll, pid 1234)");
        assert_eq!(banner.map(|b| b.addr), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(observe::Banner::parse("hello"), None);
    }

    #[test]
    fn our_own_process_can_be_sampled() {
        let seen = sample(std::process::id() as i32).unwrap();
        assert!(seen.proc.threads >= 1);
        assert!(seen.cpu_ns > 0);
        assert!(seen.proc.rss_bytes > 0 && seen.proc.peak_rss_bytes >= seen.proc.rss_bytes);
        assert!(seen.context_switches() > 0);
    }
}
