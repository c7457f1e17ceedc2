//! The servers: one file per mode, all speaking [`crate::protocol`].
//!
//! | mode                          | file            | how it waits                           |
//! |-------------------------------|-----------------|----------------------------------------|
//! | `blocking`                    | `blocking.rs`   | in `accept`, then in one client's `read` |
//! | `epoll`/`kqueue`/`poll`/`select` | `event_loop.rs` | in the selector, for every fd at once  |
//! | `threads`, `pool`             | `threaded.rs`   | one blocked thread per client          |
//! | `hybrid`                      | `hybrid.rs`     | in the selector; workers wait for jobs |
//!
//! Every socket call goes through `syscalls.rs` (counted, narrated by
//! `--trace`); the selector modes keep their deadlines in `deadlines.rs`.
//!
//! [`serve`] binds the listener, prints the start-up line and hands over to
//! the mode; each mode returns a [`Summary`] printed on the way out.

use std::fmt;
use std::io::{self, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::net;
use crate::selector::Backend;

pub mod blocking;
pub mod deadlines;
pub mod event_loop;
pub mod hybrid;
pub mod syscalls;
pub mod threaded;

/// How the server serves many clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One client at a time; the others wait in the listen backlog.
    Blocking,
    /// One thread, one selector loop, over the given backend.
    Selector(Backend),
    /// A new thread for every client.
    Threads,
    /// A fixed pool of threads, fed by the accept loop.
    Pool,
    /// A selector loop for the I/O, a pool of threads for the handler.
    Hybrid,
}

impl Mode {
    /// The name used on the command line and in the start-up line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Blocking => "blocking",
            Mode::Selector(backend) => backend.name(),
            Mode::Threads => "threads",
            Mode::Pool => "pool",
            Mode::Hybrid => "hybrid",
        }
    }

    fn nonblocking_listener(self) -> bool {
        matches!(self, Mode::Selector(_) | Mode::Hybrid)
    }
}

/// Everything `pingpong serve` can be told, with the defaults of DESIGN.md.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub backlog: i32,
    /// Time the handler spends before each reply: the slow-handler lesson.
    pub work: Duration,
    /// Raw echo (RFC 862) instead of the line protocol.
    pub echo: bool,
    /// The longest line accepted, not counting its ending.
    pub max_line: usize,
    /// Threads in `pool` and `hybrid` modes (default: [`default_workers`]);
    /// event loops in the selector modes (default: 1).
    pub workers: Option<usize>,
    /// Edge-triggered selector (epoll and kqueue only).
    pub edge: bool,
    /// Print the counters on exit (they are always kept).
    pub stats: bool,
    /// Narrate every system call on stderr, in strace's syntax.
    pub trace: bool,
    /// Close a client silent for this long (`None` = never).
    pub idle_timeout: Option<Duration>,
    /// Clients served at once; the next one is told `error: server busy`.
    pub max_clients: usize,
    /// Unsent reply bytes per client above which the server stops reading it.
    pub max_pending: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: 8000,
            backlog: 128,
            work: Duration::ZERO,
            echo: false,
            max_line: crate::protocol::DEFAULT_MAX_LINE,
            workers: None,
            edge: false,
            stats: false,
            trace: false,
            idle_timeout: Some(Duration::from_secs(300)),
            max_clients: default_max_clients(),
            max_pending: 1 << 20,
        }
    }
}

impl Config {
    /// Worker threads for `pool` and `hybrid`.
    pub fn pool_size(&self) -> usize {
        self.workers.unwrap_or_else(default_workers).max(1)
    }
}

/// Python's `ThreadPoolExecutor` default: min(32, CPUs + 4).
pub fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}

/// The default `--max-clients`: what RLIMIT_NOFILE leaves after a reserve
/// for the listener, the selector, the signal pipe and the spare fd.
pub fn default_max_clients() -> usize {
    const RESERVE: libc::rlim_t = 16; // rlim_t: u64 on Linux, i64 on FreeBSD
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    soft.saturating_sub(RESERVE).max(1) as usize
}

/// What a server did, printed as one line when it stops.
#[derive(Default)]
pub struct Totals {
    pub connections: AtomicU64,
    pub lines: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Totals {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// A copy of the current values.
    pub fn snapshot(&self) -> Totals {
        let copy = |c: &AtomicU64| AtomicU64::new(c.load(Relaxed));
        Totals {
            connections: copy(&self.connections),
            lines: copy(&self.lines),
            bytes_in: copy(&self.bytes_in),
            bytes_out: copy(&self.bytes_out),
        }
    }
}

/// The last line a server prints: totals and the system calls it made, by
/// kind (for selector modes, the waits and registrations too).
pub struct Summary {
    pub totals: Totals,
    /// `(name, count)` for each system call the server made, by kind.
    pub syscalls: Vec<(&'static str, u64)>,
    /// Selector modes: how many times the wait returned, and the events it
    /// delivered in all.
    pub wakeups: Option<(u64, u64)>,
}

impl Summary {
    /// Add another event loop's counts into this one (`--workers N`).
    pub fn absorb(&mut self, other: &Summary) {
        let (t, o) = (&self.totals, &other.totals);
        Totals::add(&t.connections, o.connections.load(Relaxed));
        Totals::add(&t.lines, o.lines.load(Relaxed));
        Totals::add(&t.bytes_in, o.bytes_in.load(Relaxed));
        Totals::add(&t.bytes_out, o.bytes_out.load(Relaxed));
        for (name, count) in &other.syscalls {
            match self.syscalls.iter_mut().find(|(n, _)| n == name) {
                Some((_, mine)) => *mine += count,
                None => self.syscalls.push((name, *count)),
            }
        }
        if let (Some((w, e)), Some((ow, oe))) = (&mut self.wakeups, other.wakeups) {
            *w += ow;
            *e += oe;
        }
    }

    /// `--stats`: every counter as `key=value`, one line, for people and for
    /// the benchmark alike.
    pub fn stats_line(&self) -> String {
        let t = &self.totals;
        let mut line = format!(
            "stats: connections={} lines={} bytes_in={} bytes_out={}",
            t.connections.load(Relaxed),
            t.lines.load(Relaxed),
            t.bytes_in.load(Relaxed),
            t.bytes_out.load(Relaxed),
        );
        if let Some((wakeups, events)) = self.wakeups {
            let per = events as f64 / wakeups.max(1) as f64;
            line += &format!(" wakeups={wakeups} events={events} events_per_wakeup={per:.2}");
        }
        let total: u64 = self.syscalls.iter().map(|(_, n)| n).sum();
        line += &format!(" syscalls={total}");
        for (name, count) in &self.syscalls {
            line += &format!(" {name}={count}");
        }
        line
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        write!(
            f,
            "served {} connections, {} lines, {} bytes in, {} bytes out",
            t.connections.load(Relaxed),
            t.lines.load(Relaxed),
            t.bytes_in.load(Relaxed),
            t.bytes_out.load(Relaxed),
        )?;
        if !self.syscalls.is_empty() {
            f.write_str("; syscalls:")?;
            for (name, count) in &self.syscalls {
                write!(f, " {name} {count}")?;
            }
        }
        Ok(())
    }
}

/// Bind, print `listening on ADDR (mode M, pid P)`, serve until SIGINT or
/// SIGTERM, and return the summary.
pub fn serve(mode: Mode, config: &Config) -> io::Result<Summary> {
    if let Mode::Selector(backend) = mode {
        if !Backend::available().contains(&backend) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{} is not available on this OS", backend.name()),
            ));
        }
    }
    // Several event loops (`--workers N` in a selector mode) each bind their
    // own listener to the port: every one of them needs SO_REUSEPORT.
    let reuse_port = matches!(mode, Mode::Selector(_)) && config.workers.unwrap_or(1) > 1;
    let listener = net::listen(
        &config.host,
        config.port,
        config.backlog,
        mode.nonblocking_listener(),
        reuse_port,
    )?;
    announce(&listener, mode)?;
    match mode {
        Mode::Blocking => blocking::serve(listener, config),
        Mode::Selector(backend) => event_loop::serve(listener, backend, config),
        Mode::Threads => threaded::serve(listener, config, None),
        Mode::Pool => threaded::serve(listener, config, Some(config.pool_size())),
        Mode::Hybrid => hybrid::serve(listener, config),
    }
}

/// The start-up line, flushed at once: tests and scripts wait for it to learn
/// the port (`--port 0` picks a free one).
fn announce(listener: &TcpListener, mode: Mode) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "listening on {} (mode {}, pid {})",
        listener.local_addr()?,
        mode.name(),
        std::process::id()
    )?;
    out.flush()
}
