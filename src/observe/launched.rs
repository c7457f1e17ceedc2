//! A server started as a child process, watched from outside.
//!
//! What it prints is read by a thread per stream and kept (the last
//! [`KEPT_LINES`] lines of each, each line at most [`KEPT_LINE_BYTES`]), so
//! the child never blocks on a full pipe and a chatty server cannot make
//! the watcher grow without bound. Lines are numbered as they arrive, so a
//! caller can wait for "the next `stats:` line after this signal" without
//! mistaking an older one for the answer.
//!
//! It is stopped the way a service manager stops a service: SIGTERM, a
//! while to finish, then SIGKILL; and it is always reaped, on drop too, so
//! an error anywhere never leaves a server behind.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Banner;

/// Lines kept of each stream: the newest ones.
pub const KEPT_LINES: usize = 10_000;
/// Bytes kept of one line; a longer one is cut there (and its rest kept as
/// the next lines).
pub const KEPT_LINE_BYTES: usize = 8 << 10;

/// One of the child's two output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A child process with its output kept. Killed and reaped when dropped.
pub struct Launched {
    child: Child,
    pid: i32,
    command_line: String,
    stdout: Arc<Kept>,
    stderr: Arc<Kept>,
    status: Option<ExitStatus>,
}

impl Launched {
    /// Start `command` with stdin from /dev/null and stdout and stderr
    /// kept. The pid watched is the child's: start servers directly, or
    /// through `sh -c 'exec ...'`, so that it is the server's own; or, when
    /// the child is a wrapper that stays (strace), name the server with
    /// [`Launched::serving`].
    pub fn spawn(command: &mut Command) -> io::Result<Launched> {
        Launched::spawn_keeping(command, KEPT_LINES)
    }

    /// [`Launched::spawn`], keeping the newest `lines` lines of each stream
    /// instead of [`KEPT_LINES`]. A watcher that runs for hours wants a
    /// bound; a test that reads every line a short run printed (a whole
    /// `--trace` narration, to count its completions) wants none, and
    /// passes `usize::MAX`: a line it never saw would weaken what it checks.
    pub fn spawn_keeping(command: &mut Command, lines: usize) -> io::Result<Launched> {
        let command_line = shown(command);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start `{command_line}`: {e}")))?;
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        let stdout = Kept::reading(child.stdout.take(), lines);
        let stderr = Kept::reading(child.stderr.take(), lines);
        Ok(Launched { child, pid, command_line, stdout, stderr, status: None })
    }

    /// The server's process id: the child's, unless [`Launched::serving`]
    /// named another.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The child is a wrapper (strace) and the server is `pid`, started by
    /// it: from now on [`Launched::pid`], [`Launched::signal`],
    /// [`Launched::stop`] and the kill on drop aim at the server. Aiming at
    /// the wrapper would not do: strace, sent SIGTERM or SIGKILL, detaches
    /// and lets the server run on with no parent.
    pub fn serving(&mut self, pid: i32) {
        self.pid = pid;
    }

    /// Kill the server, and the wrapper around it if there is one.
    fn kill(&mut self) -> io::Result<()> {
        if self.pid != self.child.id() as i32 {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
        self.child.kill()
    }

    /// The command as started, for messages: `python3 server.py --port 8123`.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// The lines of `stream` kept so far (the newest [`KEPT_LINES`]).
    pub fn lines(&self, stream: Stream) -> Vec<String> {
        self.kept(stream).lock().lines.iter().cloned().collect()
    }

    /// The last `n` lines of `stream`.
    pub fn tail(&self, stream: Stream, n: usize) -> Vec<String> {
        let kept = self.kept(stream).lock();
        kept.lines.iter().skip(kept.lines.len().saturating_sub(n)).cloned().collect()
    }

    /// The number the next line of `stream` will have: pass it to
    /// [`Launched::wait_line`] to wait only for lines printed from now on.
    pub fn cursor(&self, stream: Stream) -> u64 {
        let kept = self.kept(stream).lock();
        kept.first + kept.lines.len() as u64
    }

    /// Wait up to `timeout` for a line of `stream`, numbered `from` or
    /// later, that `wanted` accepts; `from` moves past every line looked
    /// at. `None`: no such line in time, or the stream ended.
    pub fn wait_line(
        &self,
        stream: Stream,
        from: &mut u64,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let kept = self.kept(stream);
        let deadline = Instant::now() + timeout;
        let mut state = kept.lock();
        loop {
            *from = (*from).max(state.first);
            while *from < state.first + state.lines.len() as u64 {
                let line = &state.lines[(*from - state.first) as usize];
                *from += 1;
                if wanted(line) {
                    return Some(line.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed || left.is_zero() {
                return None;
            }
            state = match kept.arrived.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Wait up to `timeout` for pingpong's start-up line on stdout.
    pub fn await_banner(&mut self, timeout: Duration) -> io::Result<Banner> {
        let mut from = 0;
        let line =
            self.wait_line(Stream::Stdout, &mut from, timeout, |l| Banner::parse(l).is_some());
        match line.as_deref().and_then(Banner::parse) {
            Some(banner) => Ok(banner),
            None => Err(self.failure(&format!("printed no start-up line in {timeout:?}"))),
        }
    }

    /// Connect to `addr` every 20 ms until it accepts, the child exits, or
    /// `timeout` passes: for a server that prints no start-up line.
    pub fn await_accepting(&mut self, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if self.exit_status().is_some() || Instant::now() >= deadline {
                return Err(self.failure(&format!("did not accept on {addr} in {timeout:?}")));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// How it ended, if it has (reaped then, and remembered).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Send it `signal`, unless it has been reaped (its pid may be reused).
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        if self.exit_status().is_some() {
            return Err(io::Error::other(format!("`{}` has exited", self.command_line)));
        }
        kill(Pid::from_raw(self.pid), signal)?;
        Ok(())
    }

    /// Wait up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, up to `patience` to finish, then SIGKILL. `Ok(status, true)`
    /// if it stopped on SIGTERM, `false` if it had to be killed.
    pub fn stop(&mut self, patience: Duration) -> io::Result<(ExitStatus, bool)> {
        if let Some(status) = self.exit_status() {
            return Ok((status, true));
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        if let Some(status) = self.wait_exit(patience) {
            return Ok((status, true));
        }
        self.kill()?;
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok((status, false))
    }

    /// Wait (up to `timeout`) until a stream's reader has seen its end:
    /// after the child exits, its last lines may still be on their way.
    pub fn await_output_end(&self, stream: Stream, timeout: Duration) -> bool {
        let kept = self.kept(stream);
        let deadline = Instant::now() + timeout;
        let mut state = kept.lock();
        while !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match kept.arrived.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// An error saying what went wrong: `` `CMD` WHAT ``, how it ended if it
    /// has, and its last lines on stderr (or stdout, if stderr is empty).
    pub fn failure(&mut self, what: &str) -> io::Error {
        let mut said = format!("`{}` {what}", self.command_line);
        if let Some(status) = self.exit_status() {
            self.await_output_end(Stream::Stderr, Duration::from_millis(300));
            said.push_str(&format!(" ({})", how_it_ended(status)));
        }
        let mut last = self.tail(Stream::Stderr, 5);
        if last.is_empty() {
            last = self.tail(Stream::Stdout, 5);
        }
        if !last.is_empty() {
            said.push_str(&format!("; it printed: {}", last.join(" | ")));
        }
        io::Error::other(said)
    }

    fn kept(&self, stream: Stream) -> &Kept {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.kill();
            let _ = self.child.wait();
        }
    }
}

/// `exited with status 1`, `killed by SIGSEGV (core dumped)`.
pub fn how_it_ended(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    let signal = status.signal().unwrap_or(0);
    let name =
        Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.to_string());
    let core = if status.core_dumped() { " (core dumped)" } else { "" };
    format!("killed by {name}{core}")
}

/// A port nobody listens on now: bind port 0 on the loopback, read what the
/// kernel chose, let it go. Another process could take it before the server
/// does; on a test machine that is rare, and the server then says so.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Each argument with `{port}` replaced by `port`: `-- python3 server.py
/// --port {port}` as the tools take it.
pub fn fill_port<S: AsRef<str>>(args: &[S], port: u16) -> Vec<String> {
    args.iter().map(|arg| arg.as_ref().replace("{port}", &port.to_string())).collect()
}

/// Whether any argument asks for a port.
pub fn wants_port<S: AsRef<str>>(args: &[S]) -> bool {
    args.iter().any(|arg| arg.as_ref().contains("{port}"))
}

/// A command as a person would type it.
fn shown(command: &Command) -> String {
    let mut words = vec![command.get_program()];
    words.extend(command.get_args());
    words.iter().map(|w| OsStr::to_string_lossy(w)).collect::<Vec<_>>().join(" ")
}

/// One stream's kept lines.
struct Kept {
    state: Mutex<KeptState>,
    arrived: Condvar,
    /// The most lines kept: older ones are dropped from the front.
    limit: usize,
}

struct KeptState {
    lines: VecDeque<String>,
    /// The number of `lines[0]`: lines dropped from the front so far.
    first: u64,
    /// The stream has ended (the child closed it, or exited).
    closed: bool,
}

impl Kept {
    fn reading(pipe: Option<impl Read + Send + 'static>, limit: usize) -> Arc<Kept> {
        let kept = Arc::new(Kept {
            state: Mutex::new(KeptState { lines: VecDeque::new(), first: 0, closed: false }),
            arrived: Condvar::new(),
            limit: limit.max(1),
        });
        let Some(pipe) = pipe else {
            kept.lock().closed = true;
            return kept;
        };
        let keeper = Arc::clone(&kept);
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                // `take` bounds one line: a server that prints without a
                // newline is cut into pieces instead of growing a buffer.
                match (&mut reader).take(KEPT_LINE_BYTES as u64).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => keeper.push(&line),
                }
            }
            keeper.lock().closed = true;
            keeper.arrived.notify_all();
        });
        kept
    }

    fn push(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut state = self.lock();
        if state.lines.len() >= self.limit {
            state.lines.pop_front();
            state.first += 1;
        }
        state.lines.push_back(String::from_utf8_lossy(line).into_owned());
        drop(state);
        self.arrived.notify_all();
    }

    /// The state, even if a reader panicked while holding it (a line or two
    /// lost is better than a watcher that panics in turn).
    fn lock(&self) -> MutexGuard<'_, KeptState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Launched {
        Launched::spawn(Command::new("sh").args(["-c", script])).expect("sh starts")
    }

    #[test]
    fn lines_are_kept_and_waited_for_in_order() {
        let mut child = sh("echo one; echo two >&2; echo 'stats: x'; sleep 5");
        let mut from = 0;
        let line = child.wait_line(Stream::Stdout, &mut from, Duration::from_secs(5), |l| {
            l.starts_with("stats:")
        });
        assert_eq!(line.as_deref(), Some("stats: x"));
        assert_eq!(from, 2, "both lines looked at");
        assert_eq!(child.lines(Stream::Stdout), ["one", "stats: x"]);
        let mut from = 0;
        child.wait_line(Stream::Stderr, &mut from, Duration::from_secs(5), |l| l == "two");
        assert_eq!(child.tail(Stream::Stderr, 3), ["two"]);
        let (status, on_term) = child.stop(Duration::from_secs(5)).unwrap();
        assert!(on_term);
        assert_eq!(how_it_ended(status), "killed by SIGTERM");
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed() {
        let mut child = sh("trap '' TERM; echo ready; sleep 10 & wait");
        let mut from = 0;
        child.wait_line(Stream::Stdout, &mut from, Duration::from_secs(5), |_| true);
        let (status, on_term) = child.stop(Duration::from_millis(200)).unwrap();
        assert!(!on_term);
        assert_eq!(how_it_ended(status), "killed by SIGKILL");
    }

    #[test]
    fn a_failure_says_how_it_ended_and_what_it_printed() {
        let mut child = sh("echo 'Traceback: port in use' >&2; exit 3");
        child.wait_exit(Duration::from_secs(5)).expect("exits");
        let error = child.await_banner(Duration::from_secs(1)).unwrap_err().to_string();
        assert!(error.contains("exited with status 3"), "{error}");
        assert!(error.contains("Traceback: port in use"), "{error}");
        assert!(error.contains("`sh -c echo"), "{error}");
    }

    #[test]
    fn a_line_without_end_is_kept_in_bounded_pieces() {
        let mut child = sh("head -c 20000 /dev/zero | tr '\\0' x");
        child.wait_exit(Duration::from_secs(5)).expect("exits");
        assert!(child.await_output_end(Stream::Stdout, Duration::from_secs(5)));
        let lines = child.lines(Stream::Stdout);
        assert_eq!(lines.iter().map(String::len).sum::<usize>(), 20000);
        assert!(lines.iter().all(|l| l.len() <= KEPT_LINE_BYTES));
    }

    #[test]
    fn a_bound_keeps_the_newest_lines_and_numbers_stay_true() {
        let mut child =
            Launched::spawn_keeping(Command::new("sh").args(["-c", "seq 1 5"]), 2).unwrap();
        child.wait_exit(Duration::from_secs(5)).expect("exits");
        assert!(child.await_output_end(Stream::Stdout, Duration::from_secs(5)));
        assert_eq!(child.lines(Stream::Stdout), ["4", "5"]);
        assert_eq!(child.cursor(Stream::Stdout), 5, "three dropped, two kept");
    }

    #[test]
    fn ports_are_filled_in() {
        assert!(wants_port(&["--port", "{port}"]));
        assert!(!wants_port(&["--port", "8000"]));
        assert_eq!(fill_port(&["-p{port}", "x"], 9), ["-p9", "x"]);
        assert_ne!(free_port().unwrap(), 0);
    }
}
