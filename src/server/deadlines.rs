//! Guard: idle and linger deadlines, the times the event loop must wake up
//! even if no fd is ready.
//!
//! - **Idle timeout** (`--idle-timeout`): a client that says nothing for that
//!   long is told `error: idle timeout` and closed, so silent connections
//!   cannot hold the server's fds forever.
//! - **Linger**: after our last reply to a client we are closing, we keep
//!   discarding its input for a little while (see `Phase::Lingering` in the
//!   event loop), but not forever.
//!
//! A selector loop has no timer thread. It passes the time until the nearest
//! deadline as the wait's timeout, so an idle server with nothing due sleeps
//! in `epoll_wait(..., -1)` and makes no system call at all.
//!
//! Finding the nearest of 10,000 deadlines must not mean scanning 10,000
//! clients on every wake-up, so they sit in a min-heap. Clients are busy far
//! more often than they time out, so activity does *not* touch the heap: it
//! only moves the client's own deadline later, in a table indexed by fd. When
//! a heap entry comes due, the table is checked; if the deadline has moved,
//! the entry is put back at the new time (a "lazy" heap, as libuv and nginx
//! do with their timer trees). Each client has at most one heap entry, and
//! the table remembers when it is queued for, so an entry of a client that
//! left (or of an older time) is recognised and dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// How long a closing connection keeps discarding the client's input after
/// our last reply, so the kernel does not answer late data with a reset.
pub const LINGER: Duration = Duration::from_secs(2);

/// Which deadline came due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// The client was silent for `--idle-timeout`.
    Idle,
    /// The lingering close has waited long enough.
    Linger,
}

/// One client's deadline.
#[derive(Clone, Copy)]
struct Deadline {
    id: u64,
    when: Instant,
    /// The time of this client's one heap entry (at or before `when`).
    queued: Instant,
    due: Due,
}

/// The clients' deadlines: a table by fd, and a min-heap of `(when, fd)`;
/// and the loop's clock.
pub struct Deadlines {
    idle: Option<Duration>,
    /// The time of the loop's latest wake-up: one clock read per wake-up,
    /// not one per event.
    now: Instant,
    table: Vec<Option<Deadline>>,
    heap: BinaryHeap<Reverse<(Instant, RawFd)>>,
}

impl Deadlines {
    /// Deadlines for `--idle-timeout` (`None`: clients may stay silent).
    pub fn new(idle: Option<Duration>) -> Deadlines {
        Deadlines { idle, now: Instant::now(), table: Vec::new(), heap: BinaryHeap::new() }
    }

    /// The loop woke up: read the clock.
    pub fn tick(&mut self) {
        self.now = Instant::now();
    }

    /// A new client `id` on `fd`: its idle deadline starts now.
    pub fn start(&mut self, fd: RawFd, id: u64) {
        if let Some(idle) = self.idle {
            self.set(fd, id, self.now + idle, Due::Idle);
        }
    }

    /// The client on `fd` did something: its idle deadline moves later.
    /// No heap work: the entry is moved when it comes due.
    pub fn touch(&mut self, fd: RawFd) {
        let now = self.now;
        if let (Some(idle), Some(Some(d))) = (self.idle, self.slot(fd)) {
            if d.due == Due::Idle {
                d.when = now + idle;
            }
        }
    }

    /// [`Deadlines::touch`], if the client did something (`active`).
    pub fn touch_if(&mut self, active: bool, fd: RawFd) {
        if active {
            self.touch(fd);
        }
    }

    /// The client `id` on `fd` is lingering: close it `LINGER` from now.
    pub fn linger(&mut self, fd: RawFd, id: u64) {
        self.set(fd, id, self.now + LINGER, Due::Linger);
    }

    /// The client on `fd` is gone.
    pub fn forget(&mut self, fd: RawFd) {
        if let Some(slot) = self.slot(fd) {
            *slot = None;
        }
    }

    /// How long the selector may sleep: until the nearest deadline, rounded
    /// up by the selector, or forever (`None`) when there is none. Entries
    /// of departed clients are dropped first, so an idle server does not wake
    /// at the deadline of someone long gone.
    pub fn timeout(&mut self) -> Option<Duration> {
        while let Some(&Reverse((at, fd))) = self.heap.peek() {
            if self.is_current(at, fd) {
                return Some(at.saturating_duration_since(self.now));
            }
            self.heap.pop();
        }
        None
    }

    /// The next client whose deadline has passed, if any; its deadline is
    /// then cleared.
    pub fn next_due(&mut self) -> Option<(RawFd, Due)> {
        let now = self.now;
        while let Some(&Reverse((at, fd))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if !self.is_current(at, fd) {
                continue; // that client left, or its entry was replaced
            }
            let slot = self.table.get_mut(usize::try_from(fd).ok()?)?;
            let d = slot.as_mut()?;
            if d.when > now {
                // It moved since it was queued: queue it again, later.
                d.queued = d.when;
                self.heap.push(Reverse((d.when, fd)));
                continue;
            }
            let due = d.due;
            *slot = None;
            return Some((fd, due));
        }
        None
    }

    fn set(&mut self, fd: RawFd, id: u64, when: Instant, due: Due) {
        let Ok(index) = usize::try_from(fd) else {
            return;
        };
        if index >= self.table.len() {
            self.table.resize(index + 1, None);
        }
        let slot = &mut self.table[index];
        // Keep one heap entry per client: a new one only if it must fire
        // sooner than the one queued (a later one is found when that fires).
        let queued = match slot {
            Some(d) if d.id == id && d.queued <= when => d.queued,
            _ => {
                self.heap.push(Reverse((when, fd)));
                when
            }
        };
        *slot = Some(Deadline { id, when, queued, due });
    }

    /// Whether a heap entry is the one the table has queued for its client.
    fn is_current(&self, at: Instant, fd: RawFd) -> bool {
        let slot = usize::try_from(fd).ok().and_then(|i| self.table.get(i));
        matches!(slot, Some(Some(d)) if d.queued == at)
    }

    fn slot(&mut self, fd: RawFd) -> Option<&mut Option<Deadline>> {
        self.table.get_mut(usize::try_from(fd).ok()?)
    }

    /// Entries in the heap (one per client with a deadline, plus stale ones).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// Deadlines whose clock is set by hand, `idle` seconds of idle timeout.
    fn deadlines(idle: u64) -> Deadlines {
        Deadlines::new(Some(SEC * idle as u32))
    }

    #[test]
    fn nearest_deadline_sets_the_timeout_and_comes_due_first() {
        let mut d = deadlines(5);
        let start = d.now;
        assert_eq!(d.timeout(), None, "nothing due: sleep forever");
        d.start(7, 1);
        d.now = start - 3 * SEC;
        d.start(8, 2);
        d.now = start;
        assert_eq!(d.timeout(), Some(2 * SEC));
        assert_eq!(d.next_due(), None);
        d.now = start + 3 * SEC;
        assert_eq!(d.next_due(), Some((8, Due::Idle)));
        assert_eq!(d.next_due(), None);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn activity_moves_the_deadline_without_a_second_entry() {
        let mut d = deadlines(5);
        let start = d.now;
        d.start(7, 1);
        d.now = start + 4 * SEC;
        d.touch(7);
        assert_eq!(d.len(), 1);
        d.now = start + 6 * SEC;
        assert_eq!(d.next_due(), None, "moved");
        assert_eq!(d.len(), 1, "queued again at the new time");
        d.now = start + 9 * SEC;
        assert_eq!(d.next_due(), Some((7, Due::Idle)));
    }

    #[test]
    fn a_departed_client_neither_wakes_the_loop_nor_comes_due() {
        let mut d = deadlines(5);
        let start = d.now;
        d.start(7, 1);
        d.forget(7);
        assert_eq!(d.timeout(), None);
        // The same fd number, a new client: only its own deadline counts.
        d.now = start + 10 * SEC;
        d.start(7, 2);
        d.now = start + 6 * SEC;
        assert_eq!(d.next_due(), None);
        d.now = start + 15 * SEC;
        assert_eq!(d.next_due(), Some((7, Due::Idle)));
    }

    #[test]
    fn linger_replaces_the_idle_deadline() {
        let mut d = deadlines(300);
        d.start(7, 1);
        d.linger(7, 1);
        assert_eq!(d.timeout(), Some(LINGER));
        d.now += LINGER;
        assert_eq!(d.next_due(), Some((7, Due::Linger)));
        assert_eq!(d.timeout(), None);
    }
}
