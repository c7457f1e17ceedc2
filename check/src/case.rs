//! What a case is: an id, what it does, the rule it checks, the mistake
//! it catches and the lab that shows that mistake; and what it found.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pingpong::observe::wire;

/// What a case needs beyond an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Only the address: any server anywhere.
    Address,
    /// The server's pid, to read it in `/proc` or signal it (`--pid`, or
    /// `-- CMD`).
    Pid,
    /// The command, to start a copy of the server with other limits (`-- CMD`).
    Command,
}

/// One case of the grader. Its id is stable: graders and scripts key on it.
#[derive(Clone, Copy)]
pub struct Case {
    /// `line/ping`: the group, a slash, the name.
    pub id: &'static str,
    /// What check does, in one line.
    pub title: &'static str,
    /// When it passes: the report's `expected`.
    pub rule: &'static str,
    /// The likely mistake behind a failure, in one sentence.
    pub mistake: Option<&'static str>,
    /// The lab that reproduces that mistake (`pingpong lab NAME`).
    pub lab: Option<&'static str>,
    /// Where no lab does, what else shows it.
    pub see: Option<&'static str>,
    pub needs: Needs,
    /// Time the case spends measuring on purpose (a CPU share over 2 s, a
    /// reader that waits 1 s), on top of `--timeout`: its deadline is
    /// `window + timeout` from its start.
    pub window: Duration,
    pub run: fn(&Ctx) -> Result<Outcome, String>,
}

impl Case {
    /// `line` of `line/ping`.
    pub fn group(&self) -> &'static str {
        self.id.split_once('/').map_or(self.id, |(group, _)| group)
    }
}

/// What a case found. `Err(actual)` from a case is a failure too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The rule held; what was seen.
    Pass(String),
    /// The rule did not hold; what was seen instead.
    Fail(String),
    /// Not run, and why.
    Skip(String),
}

/// What a case runs with: where the server is, its pid if known, the
/// command that starts it if check started it, and the case's deadline.
pub struct Ctx {
    pub addr: SocketAddr,
    pub pid: Option<i32>,
    /// The command with `{port}` still in it (for cases that start their
    /// own copy), if check was given one.
    pub command: Option<Vec<String>>,
    /// `--timeout`.
    pub timeout: Duration,
    /// When the case must be over.
    pub deadline: Instant,
}

/// A receive buffer small enough that a server's writes fall short or
/// block within a second (issue 25: with Linux's autotuning the loopback
/// absorbs several MiB, and the mistakes never show).
pub const SMALL_RCVBUF: usize = 4 << 10;

impl Ctx {
    /// A new connection, its reads bounded by the deadline.
    pub fn connect(&self) -> Result<TcpStream, String> {
        let stream = wire::connect(self.addr, self.left().max(Duration::from_millis(1)))
            .map_err(|e| could_not("connect", &e))?;
        // Small writes go out at once: a case that writes a byte at a time
        // means a segment at a time.
        stream.set_nodelay(true).map_err(|e| could_not("set TCP_NODELAY", &e))?;
        Ok(stream)
    }

    /// A new connection with a receive buffer of [`SMALL_RCVBUF`].
    pub fn connect_small(&self) -> Result<TcpStream, String> {
        wire::connect_small(self.addr, SMALL_RCVBUF, self.left().max(Duration::from_millis(1)))
            .map_err(|e| could_not("connect", &e))
    }

    /// What is left of the deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// `could not connect: connection refused`.
pub fn could_not(what: &str, e: &io::Error) -> String {
    format!("could not {what}: {}", pingpong::words::cause(e))
}
