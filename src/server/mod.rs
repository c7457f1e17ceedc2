//! The servers: one file per mode, all speaking [`crate::protocol`].
//!
//! | mode                             | file            | how it waits                             |
//! |----------------------------------|-----------------|------------------------------------------|
//! | `blocking`                       | `blocking.rs`   | in `accept`, then in one client's `read` |
//! | `epoll`/`kqueue`/`poll`/`select` | `event_loop.rs` | in the selector, for every fd at once    |
//! | `threads`, `pool`                | `threaded.rs`   | one blocked thread per client            |
//! | `hybrid`                         | `hybrid.rs`     | in the selector; workers wait for jobs   |
//! | `uring` (Linux)                  | `uring/`        | in `io_uring_enter`, for completions     |
//!
//! The event loop is the course's, and only that; around it, each in a file
//! of its own: the connection's life (`conn.rs`), the handler that answers
//! (`handler.rs`: inline, or hybrid's pool), and the guards (`guards.rs`
//! lists them: `spare_fd.rs`, `limits.rs`, `deadlines.rs`, `signals.rs`;
//! `reuseport.rs` runs several loops). Every socket call goes through
//! `syscalls.rs` (counted, narrated by `--trace`). The command line is
//! `config.rs`; what a server did, `summary.rs`.
//!
//! [`serve`] binds the listener, prints the start-up line and hands over to
//! the mode; each mode returns a [`Summary`] printed on the way out. Adding a
//! mode is a variant of [`Mode`], its arm in [`serve`], and its file.

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::LazyLock;

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::bugs::{self, Needs};
use crate::net;
use crate::selector::Backend;
use crate::words::{self, plural, Failure};
pub use config::{default_max_clients, default_workers, Config, Idle};
use handler::Inline;
pub use summary::{Summary, Totals};

pub mod blocking;
pub mod config;
pub mod conn;
pub mod deadlines;
pub mod event_loop;
pub mod faults;
pub mod guards;
pub mod handler;
pub mod hybrid;
pub mod life;
pub mod limits;
pub mod reuseport;
pub mod signals;
pub mod spare_fd;
pub mod summary;
pub mod syscalls;
pub mod threaded;
#[cfg(target_os = "linux")]
pub mod uring;

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
    /// One thread, one io_uring: requests and their completions (Linux).
    Uring,
}

impl Mode {
    /// Every mode, in the order `--help` lists them.
    pub fn all() -> &'static [Mode] {
        static ALL: LazyLock<Vec<Mode>> = LazyLock::new(|| {
            let selectors = Backend::ALL.into_iter().map(Mode::Selector);
            std::iter::once(Mode::Blocking)
                .chain(selectors)
                .chain([Mode::Threads, Mode::Pool, Mode::Hybrid, Mode::Uring])
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
            Mode::Uring => "uring",
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
            Mode::Uring => "io_uring: completions instead of readiness (Linux 6.1+)",
        }
    }

    /// Whether this build can run the mode (kqueue exists only on macOS and
    /// the BSDs, epoll and io_uring only on Linux). Whether the running
    /// kernel lets us use io_uring is known only when the ring is set up.
    pub fn is_available(self) -> bool {
        match self {
            Mode::Selector(backend) => backend.is_available(),
            Mode::Uring => cfg!(target_os = "linux"),
            _ => true,
        }
    }

    /// A single selector loop serves every client (`--workers N` then runs N
    /// loops; in pool and hybrid it sizes a thread pool instead).
    pub fn is_selector(self) -> bool {
        matches!(self, Mode::Selector(_))
    }

    /// Whether `--edge` means something here: an epoll or kqueue loop (hybrid
    /// runs one too); poll and select have no edge mode, and blocking,
    /// threads and pool no selector.
    pub fn supports_edge(self) -> bool {
        match self {
            Mode::Selector(backend) => matches!(backend, Backend::Epoll | Backend::Kqueue),
            Mode::Hybrid => true,
            _ => false,
        }
    }

    /// Whether the server prints its counters on SIGUSR1 (blocking mode only
    /// survives the signal).
    pub fn stats_on_sigusr1(self) -> bool {
        self != Mode::Blocking
    }

    /// The uring server's listener is non-blocking too: the ring does not
    /// mind, and the spare fd's plain accept must not block on an empty queue.
    fn nonblocking_listener(self) -> bool {
        matches!(self, Mode::Selector(_) | Mode::Hybrid | Mode::Uring)
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

/// Check what was asked, bind, print `listening on ADDR (mode M, pid P)`,
/// serve until SIGINT or SIGTERM, and return the summary. Every error says
/// what failed, where, and why, in words (see [`crate::words`]).
pub fn serve(mode: Mode, config: &Config) -> io::Result<Summary> {
    check(mode, config)?;
    bugs::switch_on(&config.bugs);
    for bug in bugs::switched_on() {
        eprintln!("{}", bug.warning());
    }
    // Several event loops (`--workers N` in a selector mode) each bind their
    // own listener to the port: every one of them needs SO_REUSEPORT.
    let reuse_port = mode.is_selector() && config.event_loops() > 1;
    let addr = SocketAddr::new(config.host, config.port);
    let listener = listen(addr, config, mode.nonblocking_listener(), reuse_port)?;
    let addr = listener.local_addr().unwrap_or(addr);
    run(listener, mode, config).map_err(|e| words::failed(format!("serve on {addr}"), e, None))
}

/// Refuse, before anything is bound, what this build or this mode cannot do.
fn check(mode: Mode, config: &Config) -> io::Result<()> {
    // `epoll, poll or select`: the modes for which `keep` holds.
    let modes = |keep: fn(Mode) -> bool, and_or: &str| {
        let names: Vec<&str> = Mode::all().iter().filter(|m| keep(**m)).map(|m| m.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => {
                format!("{} {and_or} {last}", rest.join(", "))
            }
            _ => names.concat(),
        }
    };
    if !mode.is_available() {
        let why = format!("{mode} is not available on {}", std::env::consts::OS);
        let hint = format!("this build has {}", modes(Mode::is_available, "and"));
        let failure = Failure::new(format!("serve with --mode {mode}"), why).hint(Some(hint));
        return Err(failure.into_io(io::ErrorKind::Unsupported));
    }
    if config.edge && !mode.supports_edge() {
        let why = match mode {
            Mode::Selector(backend) => format!("{} is level-triggered only", backend.name()),
            Mode::Uring => {
                "uring mode waits for completions, not readiness: it has no edges".into()
            }
            _ => format!("{mode} mode waits in blocking calls, not in a selector"),
        };
        let hint = format!(
            "--edge needs --mode {}",
            modes(|m| m.is_available() && m.supports_edge(), "or")
        );
        let failure = Failure::new(format!("use --edge with --mode {mode}"), why).hint(Some(hint));
        return Err(failure.into_io(io::ErrorKind::Unsupported));
    }
    if mode == Mode::Uring && config.workers.is_some_and(|n| n > 1) {
        let why = "uring mode runs one ring on one thread";
        let hint = "--mode epoll --workers N runs N event loops on one port";
        let failure = Failure::new("use --workers with --mode uring", why).hint(Some(hint));
        return Err(failure.into_io(io::ErrorKind::Unsupported));
    }
    for bug in &config.bugs {
        let event_loop = |m: Mode| m.is_available() && (m.is_selector() || m == Mode::Hybrid);
        let (applies, why, hint) = match bug.needs() {
            Needs::EventLoop => (
                event_loop(mode),
                format!("it undoes a guard of the selector loop, which {mode} mode does not run"),
                format!("--bug {bug} needs --mode {}", modes(event_loop, "or")),
            ),
            Needs::EdgeTriggered => (
                config.edge && mode.supports_edge(),
                "it undoes the drain an edge-triggered loop must do".into(),
                format!(
                    "--bug {bug} needs --edge, with --mode {}",
                    modes(|m| m.is_available() && m.supports_edge(), "or")
                ),
            ),
            Needs::WorkerPool => (
                mode == Mode::Hybrid,
                format!(
                    "it undoes a guard of hybrid's worker pool, which {mode} mode does not run"
                ),
                format!("--bug {bug} needs --mode hybrid"),
            ),
        };
        if !applies {
            let attempt = format!("use --bug {bug} with --mode {mode}");
            let failure = Failure::new(attempt, why).hint(Some(hint));
            return Err(failure.into_io(io::ErrorKind::Unsupported));
        }
    }
    Ok(())
}

/// [`net::listen`] on `addr`, a failure said as a person can act on it:
/// `cannot listen on 127.0.0.1:8000: address already in use (another
/// server? --port 0 picks a free port)`.
pub(crate) fn listen(
    addr: SocketAddr,
    config: &Config,
    nonblocking: bool,
    reuse_port: bool,
) -> io::Result<TcpListener> {
    net::listen(addr, config.backlog, nonblocking, reuse_port).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::AddrInUse => Some("another server? --port 0 picks a free port"),
            io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
                Some("ports below 1024 need root; --port 0 picks a free port")
            }
            io::ErrorKind::AddrNotAvailable if addr.is_ipv6() => {
                Some("that address is not on this host; ::1 or :: is")
            }
            io::ErrorKind::AddrNotAvailable => {
                Some("that address is not on this host; 127.0.0.1 or 0.0.0.0 is")
            }
            _ if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                Some("this host has no IPv6; try 127.0.0.1")
            }
            _ => None,
        };
        words::failed(format!("listen on {addr}"), e, hint)
    })
}

/// Announce the listener, then hand it to the mode.
fn run(listener: TcpListener, mode: Mode, config: &Config) -> io::Result<Summary> {
    // From the start-up line on, a signal must find the server ready for it.
    signals::hold()?;
    #[cfg(target_os = "linux")]
    if mode == Mode::Uring {
        // The ring is set up before the start-up line: where io_uring is
        // refused, that refusal is the one line printed.
        return uring::serve(listener, config, |listener| announce(listener, mode, config));
    }
    announce(&listener, mode, config)?;
    match mode {
        Mode::Blocking => blocking::serve(listener, config),
        Mode::Selector(backend) => {
            let listen_again = |addr| listen(addr, config, true, true);
            let for_each_loop = config.clone();
            reuseport::serve(listener, config, listen_again, move |listener| {
                let config = &for_each_loop;
                event_loop::serve(listener, backend, config, Inline::new(config))
            })
        }
        Mode::Threads => threaded::serve(listener, config, None),
        Mode::Pool => threaded::serve(listener, config, Some(config.pool_size())),
        Mode::Uring => unreachable!("not in this build: check() refuses it"),
        Mode::Hybrid => {
            let n = config.pool_size();
            let pool = hybrid::WorkerPool::start(n, config).map_err(|e| {
                let attempt = format!("start {}", plural(n as u64, "worker", "workers"));
                words::failed(attempt, e, Some("fewer --workers?"))
            })?;
            event_loop::serve(listener, Backend::default_for_os(), config, pool)
        }
    }
}

/// The start-up line, flushed at once: tests and scripts wait for it to learn
/// the port (`--port 0` picks a free one). Between the mode and the pid, what
/// was chosen for it: `listening on 127.0.0.1:8000 (mode hybrid, 6 workers,
/// pid 1234)`; a selector mode given `--workers N` says `N event loops`.
fn announce(listener: &TcpListener, mode: Mode, config: &Config) -> io::Result<()> {
    let chosen = match mode {
        Mode::Pool | Mode::Hybrid => {
            format!(", {}", plural(config.pool_size() as u64, "worker", "workers"))
        }
        Mode::Selector(_) if config.workers.is_some() => {
            format!(", {}", plural(config.event_loops() as u64, "event loop", "event loops"))
        }
        _ => String::new(),
    };
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "listening on {} (mode {}{chosen}, pid {})",
        listener.local_addr()?,
        mode.name(),
        std::process::id()
    )?;
    out.flush()
}
