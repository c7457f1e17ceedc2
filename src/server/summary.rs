//! What a server did: the counters every mode keeps, and the one line it
//! prints when it stops (and, with `--stats`, every counter as `key=value`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::handler::Handler;
use super::syscalls::Syscalls;
use crate::bugs;
use crate::selector::{Backend, Selector};
use crate::words::plural;

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
        // kqueue registers through the same kevent call it waits in.
        let backend = selector.backend();
        let mut syscalls = match backend {
            Backend::Epoll => {
                vec![(backend.wait_call(), stats.waits), ("epoll_ctl", stats.ctl_calls)]
            }
            Backend::Kqueue => vec![(backend.wait_call(), stats.waits + stats.ctl_calls)],
            Backend::Poll | Backend::Select => vec![(backend.wait_call(), stats.waits)],
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
            "served {}, {}, {} in, {} out",
            plural(t.connections.load(Relaxed), "connection", "connections"),
            plural(t.lines.load(Relaxed), "line", "lines"),
            plural(t.bytes_in.load(Relaxed), "byte", "bytes"),
            plural(t.bytes_out.load(Relaxed), "byte", "bytes"),
        )?;
        if !self.syscalls.is_empty() {
            f.write_str("; syscalls:")?;
            for (name, count) in &self.syscalls {
                write!(f, " {name} {count}")?;
            }
        }
        for bug in bugs::switched_on() {
            write!(f, "; broken on purpose: --bug {bug}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_reads_right_for_one_and_for_many() {
        let summary = |n: u64| {
            let totals = Totals::default();
            for counter in [&totals.connections, &totals.lines, &totals.bytes_in] {
                Totals::add(counter, n);
            }
            Totals::add(&totals.bytes_out, 1);
            Summary { totals, syscalls: vec![("read", 1)], wakeups: None }.to_string()
        };
        assert_eq!(
            summary(1),
            "served 1 connection, 1 line, 1 byte in, 1 byte out; syscalls: read 1"
        );
        assert_eq!(
            summary(5),
            "served 5 connections, 5 lines, 5 bytes in, 1 byte out; syscalls: read 1"
        );
    }
}
