//! A server under observation: started as `pingpong serve`, watched from
//! outside the way a student would watch it with `top` and `--stats`.
//!
//! What is measured is counted, not guessed: CPU time from
//! `/proc/PID/stat` (`man 5 proc`), resident memory from `/proc/PID/status`,
//! and the event loop's own count of wait returns, asked for with SIGUSR1
//! and read off the `stats:` line it prints on stderr.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

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
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server's own pid (not strace's, nor the shell's).
    pub pid: Pid,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// What a server used over a span of time.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// CPU time over wall time: 1.0 is one core, all the time.
    pub cores: f64,
    /// How often its wait returned, per second.
    pub waits_per_sec: f64,
}

impl Server {
    /// Start `bin serve --port 0 --stats ARGS` and wait for its start-up line.
    pub fn start(bin: &Path, launch: &Launch) -> io::Result<Server> {
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
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
            })?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (lines, stderr) = watch_stderr(stderr);
        let mut stdout = BufReader::new(stdout.ok_or(io::ErrorKind::BrokenPipe)?);
        let mut banner = String::new();
        stdout.read_line(&mut banner)?;
        thread::spawn(move || io::copy(&mut stdout, &mut io::sink()));
        let Some((addr, pid)) = parse_banner(&banner) else {
            let _ = child.kill();
            let _ = child.wait();
            let said = stderr.lock().map(|lines| lines.join("\n")).unwrap_or_default();
            return Err(io::Error::other(format!("the server did not start: {said}")));
        };
        Ok(Server { child, addr, pid, lines, stderr })
    }

    /// A new connection to the server.
    pub fn connect(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&self.addr, PATIENCE)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        Ok(stream)
    }

    /// A new connection with a receive buffer of only `bytes` (SO_RCVBUF,
    /// set before `connect` so the window the server is offered is small
    /// from the first byte): a client that cannot take much at a time.
    pub fn connect_small(&self, bytes: usize) -> io::Result<TcpStream> {
        use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
        let family = if self.addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let fd = socket::socket(family, SockType::Stream, SockFlag::empty(), None)?;
        socket::setsockopt(&fd, sockopt::RcvBuf, &bytes)?;
        socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(self.addr))?;
        let stream = TcpStream::from(fd);
        stream.set_read_timeout(Some(PATIENCE))?;
        Ok(stream)
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
        let stat = proc_file(self.pid, "stat")?;
        // The fields after the command's `(name)`: state is the first, utime
        // the 12th and stime the 13th, in clock ticks.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        let hz =
            nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
        Ok(Duration::from_secs_f64((tick(11) + tick(12)) as f64 / hz.max(1) as f64))
    }

    /// The server's resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> io::Result<u64> {
        let status = proc_file(self.pid, "status")?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or_default();
        Ok(line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    /// The system call the server is blocked in now (its number, from
    /// `/proc/PID/syscall`), or `None` while it runs.
    pub fn blocked_in(&self) -> io::Result<Option<i64>> {
        let now = proc_file(self.pid, "syscall")?;
        Ok(now.split_whitespace().next().and_then(|n| n.parse().ok()))
    }

    /// How many times the event loop's wait has returned so far: SIGUSR1,
    /// then the `wakeups=` of the `stats:` line it prints.
    pub fn waits(&self) -> io::Result<u64> {
        while self.lines.try_recv().is_ok() {} // older lines: not the answer
        kill(self.pid, Signal::SIGUSR1)?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("stats:") => {
                    let field = line.split_whitespace().find_map(|f| f.strip_prefix("wakeups="));
                    return field.and_then(|n| n.parse().ok()).ok_or_else(|| {
                        io::Error::other(format!("no wakeups= in the stats line: {line}"))
                    });
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no stats line"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the server is gone"))
                }
            }
        }
    }

    /// CPU share and wait returns per second over the next `span`.
    pub fn load_over(&self, span: Duration) -> io::Result<Load> {
        let (cpu, waits, start) = (self.cpu()?, self.waits()?, Instant::now());
        thread::sleep(span);
        let (cpu_after, waits_after) = (self.cpu()?, self.waits()?);
        let secs = start.elapsed().as_secs_f64();
        Ok(Load {
            cores: (cpu_after - cpu).as_secs_f64() / secs,
            waits_per_sec: waits_after.saturating_sub(waits) as f64 / secs,
        })
    }

    /// Whether the server process is still running (an exited one is reaped).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How it ended, if it has: killed by a signal, or exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().map(|lines| lines.clone()).unwrap_or_default()
    }

    /// SIGTERM, and wait for it to finish (killed if it takes too long).
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        let _ = kill(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.alive() {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Write `chunk` to `stream` over and over for `span`, or until `cap` bytes
/// are sent, or the server ends the connection; returns the bytes sent. A
/// write the server does not take returns after 50 ms, and is tried again:
/// a client that keeps pushing however full the pipe is.
pub fn push_for(stream: &TcpStream, chunk: &[u8], span: Duration, cap: usize) -> io::Result<usize> {
    stream.set_write_timeout(Some(Duration::from_millis(50)))?;
    let (mut sent, deadline) = (0, Instant::now() + span);
    while sent < cap && Instant::now() < deadline {
        match (&*stream).write(chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => break, // the server ended the connection
        }
    }
    Ok(sent)
}

/// Close `stream` with a reset rather than a FIN: `SO_LINGER` with a zero
/// timeout makes close(2) send RST and drop whatever is unsent or unread
/// (socket(7)), as a client that crashes or is killed can.
pub fn reset(stream: TcpStream) -> io::Result<()> {
    let abort = libc::linger { l_onoff: 1, l_linger: 0 };
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &abort)?;
    drop(stream);
    Ok(())
}

/// A line the server is sent, and the line it answers within `timeout`
/// (`None`: no answer in time, or the connection ended first).
pub fn ask(mut stream: &TcpStream, line: &[u8], timeout: Duration) -> io::Result<Option<String>> {
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(line)?;
    let mut answer = Vec::new();
    let mut byte = [0];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) if byte[0] == b'\n' => return Ok(Some(String::from_utf8_lossy(&answer).into())),
            Ok(_) => answer.push(byte[0]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    }
}

/// `listening on 127.0.0.1:41234 (mode epoll, pid 4242)` → address and pid.
fn parse_banner(line: &str) -> Option<(SocketAddr, Pid)> {
    let rest = line.strip_prefix("listening on ")?;
    let (addr, rest) = rest.split_once(' ')?;
    let pid = rest.rsplit_once("pid ")?.1.trim_end().trim_end_matches(')');
    Some((addr.parse().ok()?, Pid::from_raw(pid.parse().ok()?)))
}

/// Read the server's stderr on a thread of its own: every line is kept,
/// and sent on for [`Server::waits`] to pick its `stats:` line.
fn watch_stderr(
    pipe: Option<impl Read + Send + 'static>,
) -> (Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (send, lines) = mpsc::channel();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&kept);
    if let Some(pipe) = pipe {
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut kept) = keep.lock() {
                    kept.push(line.clone());
                }
                let _ = send.send(line);
            }
        });
    }
    (lines, kept)
}

fn proc_file(pid: Pid, name: &str) -> io::Result<String> {
    if !cfg!(target_os = "linux") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the labs measure the server through /proc, which only Linux has",
        ));
    }
    std::fs::read_to_string(format!("/proc/{pid}/{name}"))
}
