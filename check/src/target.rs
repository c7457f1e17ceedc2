//! The server under check: an address (with a pid if one was given), or a
//! command check starts, restarts after a crash, and stops at the end.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

use pingpong::observe::launched::{fill_port, free_port, how_it_ended, wants_port};
use pingpong::observe::{Launched, Stream};

/// How long a started server may take to accept connections.
pub const START_PATIENCE: Duration = Duration::from_secs(10);
/// How long a server may take to stop on SIGTERM before SIGKILL.
const STOP_PATIENCE: Duration = Duration::from_secs(2);

/// The server being checked.
pub struct Target {
    /// Where it listens now (a restart may move it to a new free port).
    pub addr: SocketAddr,
    /// Its pid, when known: given with `--pid`, or the child check started.
    pub pid: Option<i32>,
    /// The command, `{port}` not yet filled in, when check starts it.
    pub command: Option<Vec<String>>,
    /// The address given with the command, if any (then it has no `{port}`).
    fixed: Option<SocketAddr>,
    launched: Option<Launched>,
}

impl Target {
    /// A server already running at `addr` (pid `pid`, if given): it must
    /// accept a connection now, or check cannot run.
    pub fn running(addr: SocketAddr, pid: Option<i32>) -> io::Result<Target> {
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(io::Error::other(format!("no process has pid {pid}")));
            }
        }
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("nothing accepts connections on {addr}: {}", pingpong::words::cause(&e)),
            )
        })?;
        Ok(Target { addr, pid, command: None, fixed: None, launched: None })
    }

    /// Start `command` (`{port}` in it becomes a free port; without one,
    /// `addr` says where it listens) and wait until it accepts.
    pub fn start(command: Vec<String>, addr: Option<SocketAddr>) -> io::Result<Target> {
        if addr.is_none() && !wants_port(&command) {
            return Err(io::Error::other(
                "the command has no {port} to fill in: add one (`--port {port}`), or give \
                 the address it listens on before the `--`",
            ));
        }
        let (launched, addr) = launch(&command, addr, None)?;
        let pid = Some(launched.pid());
        Ok(Target {
            addr,
            pid,
            fixed: addr_if(&command, addr),
            command: Some(command),
            launched: Some(launched),
        })
    }

    /// `python3 server.py --port 41234 (pid 4242)`, `127.0.0.1:8000`.
    pub fn describe(&self) -> String {
        match (&self.launched, self.pid) {
            (Some(launched), Some(pid)) => format!("{} (pid {pid})", launched.command_line()),
            (_, Some(pid)) => format!("{} (pid {pid})", self.addr),
            _ => self.addr.to_string(),
        }
    }

    /// If check started the server and it has died: how, and what it
    /// printed last.
    pub fn died(&mut self) -> Option<String> {
        let launched = self.launched.as_mut()?;
        launched.exit_status()?;
        Some(death(launched))
    }

    /// Start the command again, after a crash.
    pub fn restart(&mut self) -> io::Result<()> {
        let Some(command) = &self.command else { return Ok(()) };
        if let Some(mut old) = self.launched.take() {
            let _ = old.stop(STOP_PATIENCE);
        }
        let (launched, addr) = launch(command, self.fixed, None)?;
        self.pid = Some(launched.pid());
        self.addr = addr;
        self.launched = Some(launched);
        Ok(())
    }

    /// SIGTERM, then SIGKILL: the end of the check.
    pub fn stop(&mut self) {
        if let Some(mut launched) = self.launched.take() {
            let _ = launched.stop(STOP_PATIENCE);
        }
    }
}

/// The fixed address, when the command has no `{port}`.
fn addr_if(command: &[String], addr: SocketAddr) -> Option<SocketAddr> {
    (!wants_port(command)).then_some(addr)
}

/// How a started server died: `killed by SIGPIPE; it printed: ...`.
pub fn death(launched: &mut Launched) -> String {
    let ended = launched.exit_status().map_or("is still running".into(), how_it_ended);
    // `killed by SIGPIPE` → `was killed by SIGPIPE`; `exited with status 1` stays.
    let ended = if ended.starts_with("killed") { format!("was {ended}") } else { ended };
    launched.await_output_end(Stream::Stderr, Duration::from_millis(300));
    let mut last = last_lines(launched, Stream::Stderr);
    if last.is_empty() {
        last = last_lines(launched, Stream::Stdout);
    }
    match last.is_empty() {
        true => format!("the server {ended}"),
        false => format!("the server {ended}; its last lines: {}", last.join(" | ")),
    }
}

/// The last five lines of `stream` that say something: Python's `^^^^`
/// marks under a traceback's code are left out.
fn last_lines(launched: &Launched, stream: Stream) -> Vec<String> {
    let said = |line: &String| !line.trim().chars().all(|c| matches!(c, '^' | '~' | ' '));
    let lines: Vec<String> = launched.tail(stream, 20).into_iter().filter(said).collect();
    lines[lines.len().saturating_sub(5)..].iter().map(|l| l.trim().to_string()).collect()
}

/// Start `command` on a free port (or at `addr`), with at most `fd_limit`
/// open files, and wait until it accepts. The pid is the server's own: the
/// shell that lowers the limit `exec`s it.
pub fn launch(
    command: &[String],
    addr: Option<SocketAddr>,
    fd_limit: Option<u32>,
) -> io::Result<(Launched, SocketAddr)> {
    let addr = match addr {
        Some(addr) => addr,
        None => SocketAddr::from(([127, 0, 0, 1], free_port()?)),
    };
    let args = fill_port(command, addr.port());
    let (program, rest) = args.split_first().ok_or_else(|| io::Error::other("no command"))?;
    let mut cmd = match fd_limit {
        Some(limit) => {
            let mut sh = Command::new("sh");
            sh.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\""), program]);
            sh
        }
        None => Command::new(program),
    };
    cmd.args(rest);
    let mut launched = Launched::spawn(&mut cmd)?;
    launched.await_accepting(addr, START_PATIENCE)?;
    Ok((launched, addr))
}

/// `HOST:PORT` as an address: `127.0.0.1:8000`, `localhost:8000`, `[::1]:8000`.
pub fn resolve(text: &str) -> io::Result<SocketAddr> {
    text.to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("`{text}` is not HOST:PORT ({e})")))?
        .next()
        .ok_or_else(|| io::Error::other(format!("`{text}` names no address")))
}
