//! Guards switched off on purpose: `serve --bug NAME`, for the labs
//! (`pingpong lab`, `docs/labs.md`).
//!
//! Every guard in the server exists because a real project shipped the bug
//! it prevents. A student learns a guard best by removing it and watching
//! what goes wrong, with the tools the course teaches: `strace`, `--trace`,
//! `--stats`, `top`. Each [`Bug`] undoes exactly one guard, and the code that
//! does it is one named check next to that guard:
//!
//! ```text
//! if Bug::NoSpareFd.is_on() {
//!     return false; // the bug: back to the wait, with the listener still readable
//! }
//! ```
//!
//! so the correct path reads as it always did, and `grep -rn Bug::` lists
//! every place a guard can be undone. Which bugs are on is decided once,
//! before the server starts ([`switch_on`]), and never changes after: a
//! process-wide switchboard rather than a flag handed down through every
//! constructor the guards would not otherwise need.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// One guard switched off. The names are the command line's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// No reserve fd and no parking at EMFILE: the listener spins.
    NoSpareFd,
    /// EVENT_WRITE stays registered with nothing to write: the wait never waits.
    AlwaysWritable,
    /// With `--edge`, one read per readiness: the rest of a request is never read.
    EdgeNoDrain,
    /// A partial write taken for a whole one: the rest of the reply is lost.
    ShortWriteLost,
    /// Reading never pauses for a client that does not read: memory grows.
    NoBackpressure,
    /// `--max-line` ignored: a line without a newline grows without end.
    NoLineLimit,
    /// SIGPIPE's default action, and sends without `MSG_NOSIGNAL`: one reset kills the server.
    Sigpipe,
    /// Accepted sockets left blocking: one client that does not read stalls all.
    BlockingClient,
    /// A finished job delivered by fd number alone: a reply reaches the wrong client.
    StaleEvents,
    /// EINTR from the wait is fatal: `strace -p`, Ctrl-Z then `fg`, kill the server.
    EintrFatal,
}

impl Bug {
    /// Every bug, in the order `pingpong lab --list` shows them.
    pub const ALL: [Bug; 10] = [
        Bug::NoSpareFd,
        Bug::AlwaysWritable,
        Bug::EdgeNoDrain,
        Bug::ShortWriteLost,
        Bug::NoBackpressure,
        Bug::NoLineLimit,
        Bug::Sigpipe,
        Bug::BlockingClient,
        Bug::StaleEvents,
        Bug::EintrFatal,
    ];

    /// The name on the command line, and the lab's anchor in `docs/labs.md`.
    pub fn name(self) -> &'static str {
        match self {
            Bug::NoSpareFd => "no-spare-fd",
            Bug::AlwaysWritable => "always-writable",
            Bug::EdgeNoDrain => "edge-no-drain",
            Bug::ShortWriteLost => "short-write-lost",
            Bug::NoBackpressure => "no-backpressure",
            Bug::NoLineLimit => "no-line-limit",
            Bug::Sigpipe => "sigpipe",
            Bug::BlockingClient => "blocking-client",
            Bug::StaleEvents => "stale-events",
            Bug::EintrFatal => "eintr-fatal",
        }
    }

    /// What goes wrong, in one line (for `--help` and `pingpong lab --list`).
    pub fn what(self) -> &'static str {
        match self {
            Bug::NoSpareFd => "no reserve fd at EMFILE: the listener spins at 100% CPU",
            Bug::AlwaysWritable => {
                "EVENT_WRITE always asked for: the wait returns at once, forever"
            }
            Bug::EdgeNoDrain => {
                "--edge, one read per event: a request split over reads waits forever"
            }
            Bug::ShortWriteLost => "a partial write taken for a whole one: replies lose bytes",
            Bug::NoBackpressure => "never stop reading a client that never reads: memory grows",
            Bug::NoLineLimit => "--max-line ignored: a line without a newline grows without end",
            Bug::Sigpipe => "SIGPIPE left to kill: one client that resets kills the server",
            Bug::BlockingClient => {
                "accepted sockets left blocking: one client that never reads stalls all"
            }
            Bug::StaleEvents => {
                "work done for a closed fd delivered anyway: a reply reaches the wrong client"
            }
            Bug::EintrFatal => "EINTR from the wait is fatal: strace -p or Ctrl-Z kills the server",
        }
    }

    /// Where the guard this bug removes lives: file and function.
    pub fn guard(self) -> &'static str {
        match self {
            Bug::NoSpareFd => "src/server/spare_fd.rs, SpareFd::after_accept",
            Bug::AlwaysWritable => "src/server/conn.rs, Conn::interest",
            Bug::EdgeNoDrain => "src/server/event_loop.rs, service_connection",
            Bug::ShortWriteLost => "src/server/conn.rs, Conn::send",
            Bug::NoBackpressure => "src/server/limits.rs, Limits::may_read",
            Bug::NoLineLimit => "src/server/handler.rs, line_limit",
            Bug::Sigpipe => "src/net.rs, sigpipe_guarded (send_flags)",
            Bug::BlockingClient => "src/server/event_loop.rs, accept",
            Bug::StaleEvents => "src/server/hybrid.rs, WorkerPool::finished",
            Bug::EintrFatal => "src/selector/mod.rs, Selector::select",
        }
    }

    /// Whether this bug was switched on for this process ([`switch_on`]).
    pub fn is_on(self) -> bool {
        SWITCHED_ON.load(Relaxed) & self.bit() != 0
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }

    /// What the code this bug undoes runs in: `serve` refuses the bug
    /// anywhere else, since it would change nothing.
    pub fn needs(self) -> Needs {
        match self {
            Bug::EdgeNoDrain => Needs::EdgeTriggered,
            Bug::StaleEvents => Needs::WorkerPool,
            _ => Needs::EventLoop,
        }
    }

    /// The line printed at start-up, on stderr.
    pub fn warning(self) -> String {
        format!(
            "warning: --bug {0}: this server is broken on purpose; see docs/labs.md#{0}",
            self.name()
        )
    }
}

/// Where a bug's guard runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// A selector loop: the selector modes, and hybrid's loop.
    EventLoop,
    /// An edge-triggered selector loop (`--edge`).
    EdgeTriggered,
    /// Hybrid's worker pool, whose finished work comes back to the loop.
    WorkerPool,
}

/// The bugs switched on, one bit each. Written once, by [`switch_on`],
/// before any guard runs; read (`Relaxed`: nothing else is ordered by it)
/// wherever a guard may be undone.
static SWITCHED_ON: AtomicU32 = AtomicU32::new(0);

/// Switch `bugs` on for the rest of this process's life.
pub fn switch_on(bugs: &[Bug]) {
    let bits = bugs.iter().fold(0, |bits, bug| bits | bug.bit());
    SWITCHED_ON.fetch_or(bits, Relaxed);
}

/// The bugs switched on, in [`Bug::ALL`]'s order.
pub fn switched_on() -> Vec<Bug> {
    Bug::ALL.into_iter().filter(|bug| bug.is_on()).collect()
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bug_has_its_own_bit_and_name() {
        let bits = Bug::ALL.iter().fold(0, |bits, bug| bits | bug.bit());
        assert_eq!(bits.count_ones() as usize, Bug::ALL.len());
        let mut names: Vec<_> = Bug::ALL.iter().map(|bug| bug.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Bug::ALL.len());
    }

    /// `guard()` is what the labs print and the docs quote: a reader who
    /// follows it must land on the guard, so every file and function it
    /// names must exist (a move or a rename that forgets it fails here).
    #[test]
    fn every_guard_named_is_where_it_says() {
        for bug in Bug::ALL {
            let (file, place) = bug.guard().split_once(", ").expect("FILE, PLACE");
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let code = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{bug}: {}: {e}", path.display()));
            // `Type::function (detail)`, `Type::function` or `function`.
            let place = place.split(' ').next().unwrap_or(place);
            let (owner, function) = place.rsplit_once("::").unwrap_or(("", place));
            let defines = |l: &str| {
                l.contains(&format!("fn {function}(")) || l.contains(&format!("fn {function}<"))
            };
            assert!(code.lines().any(defines), "{bug}: no fn {function} in {file}");
            let implements = |l: &str| {
                let mut words = l.split(|c: char| !c.is_alphanumeric() && c != '_');
                l.trim_start().starts_with("impl") && words.any(|w| w == owner)
            };
            assert!(
                owner.is_empty() || code.lines().any(implements),
                "{bug}: no impl {owner} in {file}"
            );
        }
    }
}
