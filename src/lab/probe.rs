//! A server under observation: started as `pingpong serve`, watched from
//! outside the way a student would watch it with `top` and `--stats`.
//!
//! What is measured is counted, not guessed: CPU time and resident memory
//! from `/proc` ([`crate::observe::sample`]), and the event loop's own count
//! of wait returns, asked for with SIGUSR1 and read off the `stats:` line it
//! prints on stderr. Starting, keeping its output and stopping it is
//! [`crate::observe::Launched`]'s.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::observe::sample::{self, InSyscall};
use crate::observe::{wire, Launched, Sample, Stream};

/// How long a server may take to say `listening on`, or to stop.
const PATIENCE: Duration = Duration::from_secs(5);

/// How a lab starts one server.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// `serve` options (the lab adds `--port 0 --stats`).
    pub args: Vec<String>,
    /// RLIMIT_NOFILE for the server, lowered with the shell's `ulimit -n`.
    pub fd_limit: Option<u32>,
    /// Run under `strace -f -e trace=CALLS -o FILE`: the calls and the file.
    pub strace: Option<(String, PathBuf)>,
}

/// One running `pingpong serve`, stopped (and reaped) when dropped.
pub struct LabServer {
    launched: Launched,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server's own pid (not strace's, nor the shell's).
    pub pid: Pid,
}

/// What a server used over a span of time.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// CPU time over wall time: 1.0 is one core, all the time.
    pub cores: f64,
    /// How often its wait returned, per second.
    pub waits_per_sec: f64,
}

impl LabServer {
    /// Start `bin serve --port 0 --stats ARGS` and wait for its start-up line.
    pub fn start(bin: &Path, launch: &Launch) -> io::Result<LabServer> {
        let mut command = match &launch.strace {
            Some((calls, file)) => {
                let mut strace = Command::new("strace");
                strace.args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"]).arg(file);
                strace.arg("sh");
                strace
            }
            None => Command::new("sh"),
        };
        // `exec` keeps the pid: the server is the process the shell was.
        let limit = launch.fd_limit.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        command.args(["-c", &format!("{limit}exec \"$0\" \"$@\""), &bin.display().to_string()]);
        command.args(["serve", "--port", "0", "--stats"]).args(&launch.args);
        let mut launched = Launched::spawn(&mut command)?;
        // The banner's pid, not the child's: under strace the child is
        // strace, and the server is the one to signal and to kill.
        let banner = launched.await_banner(PATIENCE)?;
        launched.serving(banner.pid);
        Ok(LabServer { launched, addr: banner.addr, pid: Pid::from_raw(banner.pid) })
    }

    /// A new connection to the server.
    pub fn connect(&self) -> io::Result<TcpStream> {
        wire::connect(self.addr, PATIENCE)
    }

    /// A new connection with a receive buffer of only `bytes`
    /// ([`wire::connect_small`]).
    pub fn connect_small(&self, bytes: usize) -> io::Result<TcpStream> {
        wire::connect_small(self.addr, bytes, PATIENCE)
    }

    /// Whether a newcomer is served: `pingpong client` (the course's
    /// client, [`crate::client::run_threads`]) with one connection and one
    /// ping, given a second for each step.
    pub fn serves_newcomer(&self) -> bool {
        let config = crate::client::ClientConfig {
            host: self.addr.ip(),
            port: self.addr.port(),
            num_clients: 1,
            messages: 1,
            quiet: true,
            timeout: Duration::from_secs(1),
        };
        crate::client::run_threads(&config).ok()
    }

    /// CPU time the server has used so far (user + system).
    pub fn cpu(&self) -> io::Result<Duration> {
        Ok(Sample::take(self.pid.as_raw())?.cpu())
    }

    /// The server's resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> io::Result<u64> {
        Ok(Sample::take(self.pid.as_raw())?.rss_bytes / 1024)
    }

    /// The system call the server's main thread is blocked in now (its
    /// number, from `/proc/PID/task/PID/syscall`), or `None` while it runs.
    pub fn blocked_in(&self) -> io::Result<Option<i64>> {
        let pid = self.pid.as_raw();
        Ok(match sample::syscall_of(pid, pid)? {
            InSyscall::Call { nr, .. } => Some(nr),
            InSyscall::Blocked | InSyscall::Running => None,
        })
    }

    /// How many times the event loop's wait has returned so far: SIGUSR1,
    /// then the `wakeups=` of the `stats:` line it prints.
    pub fn waits(&self) -> io::Result<u64> {
        // Only a line printed after the signal is the answer.
        let mut from = self.launched.cursor(Stream::Stderr);
        nix::sys::signal::kill(self.pid, Signal::SIGUSR1)?;
        let line = self
            .launched
            .wait_line(Stream::Stderr, &mut from, PATIENCE, |line| line.starts_with("stats:"))
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no stats line"))?;
        let field = line.split_whitespace().find_map(|f| f.strip_prefix("wakeups="));
        field
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no wakeups= in the stats line: {line}")))
    }

    /// CPU share and wait returns per second over the next `span`.
    pub fn load_over(&self, span: Duration) -> io::Result<Load> {
        let (before, waits) = (Sample::take(self.pid.as_raw())?, self.waits()?);
        thread::sleep(span);
        let (after, waits_after) = (Sample::take(self.pid.as_raw())?, self.waits()?);
        let secs = after.at.duration_since(before.at).as_secs_f64();
        Ok(Load {
            cores: after.cores_since(&before),
            waits_per_sec: waits_after.saturating_sub(waits) as f64 / secs,
        })
    }

    /// Whether the server process is still running (an exited one is reaped).
    pub fn alive(&mut self) -> bool {
        self.launched.alive()
    }

    /// How it ended, if it has: killed by a signal, or exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.launched.exit_status()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.launched.lines(Stream::Stderr)
    }

    /// SIGTERM, and wait for it to finish (killed if it takes too long).
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        Ok(self.launched.stop(PATIENCE)?.0)
    }
}
