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
use std::sync::LazyLock;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::net;
use crate::selector::{Backend, Selector};
use handler::{Handler, Inline};
use syscalls::Syscalls;

pub mod blocking;
pub mod conn;
pub mod deadlines;
pub mod event_loop;
pub mod guards;
pub mod handler;
pub mod hybrid;
pub mod limits;
pub mod reuseport;
pub mod signals;
pub mod spare_fd;
pub mod syscalls;
pub mod threaded;

/// How the server serves many clients: the one list of modes. `serve
/// --mode`, the start-up line and the benchmark all take their names from
/// here, and the selector modes from [`Backend::ALL`].
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
    /// Every mode, in the order `--help` lists them.
    pub fn all() -> &'static [Mode] {
        static ALL: LazyLock<Vec<Mode>> = LazyLock::new(|| {
            let selectors = Backend::ALL.into_iter().map(Mode::Selector);
            std::iter::once(Mode::Blocking)
                .chain(selectors)
                .chain([Mode::Threads, Mode::Pool, Mode::Hybrid])
                .collect()
        });
        &ALL
    }

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

    /// One line for `--help`.
    fn help(self) -> &'static str {
        match self {
            Mode::Blocking => "One client at a time (the course's simple server)",
            Mode::Selector(backend) => backend.help(),
            Mode::Threads => "A thread per client",
            Mode::Pool => "A fixed pool of --workers threads",
            Mode::Hybrid => "Selector loop for the I/O, a pool of --workers threads for the work",
        }
    }

    /// Whether this build can run the mode (kqueue exists only on macOS and
    /// the BSDs, epoll only on Linux).
    pub fn is_available(self) -> bool {
        match self {
            Mode::Selector(backend) => backend.is_available(),
            _ => true,
        }
    }

    /// A single selector loop serves every client (`--workers N` then runs N
    /// loops; in pool and hybrid it sizes a thread pool instead).
    pub fn is_selector(self) -> bool {
        matches!(self, Mode::Selector(_))
    }

    /// Whether the server prints its counters on SIGUSR1 (blocking mode only
    /// survives the signal).
    pub fn stats_on_sigusr1(self) -> bool {
        self != Mode::Blocking
    }

    fn nonblocking_listener(self) -> bool {
        matches!(self, Mode::Selector(_) | Mode::Hybrid)
    }
}

/// The default mode: the selector loop on the platform's best backend.
impl Default for Mode {
    fn default() -> Mode {
        Mode::Selector(Backend::default_for_os())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--mode NAME` for clap, from [`Mode::all`].
impl ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Mode] {
        Mode::all()
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.help()))
    }
}

/// Everything `pingpong serve` can be told. The command line is this struct
/// (clap derive), so each default is written once, here.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 picks any free port (the start-up line names it).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    #[arg(long, default_value_t = 128)]
    pub backlog: i32,
    /// Milliseconds the handler spends before each reply: the slow-handler lesson.
    #[arg(long = "work-ms", value_name = "MS", default_value = "0", value_parser = millis)]
    pub work: Duration,
    /// Raw echo (RFC 862): send back every byte, no lines.
    #[arg(long)]
    pub echo: bool,
    /// Longest line accepted, in bytes, not counting its ending.
    #[arg(long, default_value_t = crate::protocol::DEFAULT_MAX_LINE)]
    pub max_line: usize,
    /// Threads in pool and hybrid modes [default: min(32, CPUs + 4)]; event
    /// loops in the selector modes [default: 1]
    #[arg(long)]
    pub workers: Option<usize>,
    /// Edge-triggered selector (EPOLLET / EV_CLEAR; epoll and kqueue only).
    #[arg(long)]
    pub edge: bool,
    /// Print counters (system calls, lines, bytes) on exit.
    #[arg(long)]
    pub stats: bool,
    /// Narrate every system call on stderr, as strace would show it.
    #[arg(long)]
    pub trace: bool,
    /// Close clients silent for this many seconds (0 = never).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = seconds_or_never)]
    pub idle_timeout: Idle,
    /// Clients served at once; the next one is told `error: server busy`
    /// [default: from RLIMIT_NOFILE]
    #[arg(long, default_value_t = default_max_clients(), hide_default_value = true)]
    pub max_clients: usize,
    /// Unsent reply bytes per client before the server stops reading it.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_pending: usize,
}

/// `--idle-timeout`: how long a client may stay silent (`None` = forever).
pub type Idle = Option<Duration>;

fn millis(s: &str) -> Result<Duration, String> {
    s.parse().map(Duration::from_millis).map_err(|e| format!("{e}"))
}

fn seconds_or_never(s: &str) -> Result<Idle, String> {
    let secs: u64 = s.parse().map_err(|e| format!("{e}"))?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// The defaults of the command line, as `pingpong serve` with no options.
impl Default for Config {
    fn default() -> Config {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        <Defaults as clap::Parser>::parse_from(["serve"]).config
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
    /// An event loop's summary: its totals, the selector's calls (named as
    /// strace shows them for its backend), then the socket calls, its own
    /// and those of the handler's threads.
    pub fn of_loop<T>(
        selector: &Selector<T>,
        calls: &Syscalls,
        totals: &Totals,
        handler: &impl Handler,
    ) -> Summary {
        let mut calls = calls.clone();
        handler.count(&mut calls);
        let stats = selector.stats();
        let mut syscalls = match selector.backend() {
            Backend::Epoll => vec![("epoll_wait", stats.waits), ("epoll_ctl", stats.ctl_calls)],
            Backend::Kqueue => vec![("kevent", stats.waits + stats.ctl_calls)],
            Backend::Poll => vec![("poll", stats.waits)],
            Backend::Select => vec![("select", stats.waits)],
        };
        syscalls.extend(calls.named());
        Summary { totals: totals.snapshot(), syscalls, wakeups: Some((stats.waits, stats.events)) }
    }

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
    if !mode.is_available() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{mode} is not available on this OS"),
        ));
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
        Mode::Selector(backend) => {
            let config = config.clone();
            reuseport::serve(listener, &config.clone(), move |listener| {
                event_loop::serve(listener, backend, &config, Inline::new(&config))
            })
        }
        Mode::Threads => threaded::serve(listener, config, None),
        Mode::Pool => threaded::serve(listener, config, Some(config.pool_size())),
        Mode::Hybrid => {
            let pool = hybrid::Pool::start(config.pool_size(), config)?;
            event_loop::serve(listener, Backend::default_for_os(), config, pool)
        }
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
