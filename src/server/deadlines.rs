//! When the event loop must wake even if no fd is ready: idle timeouts and
//! the end of a lingering close.
//!
//! A selector loop has no timer thread. It passes the time until the nearest
//! deadline as the wait's timeout, so an idle server with nothing due sleeps
//! in `epoll_wait(..., -1)` and makes no system call at all.
//!
//! Finding the nearest of 10,000 deadlines must not mean scanning 10,000
//! clients on every wake-up, so they sit in a min-heap. Clients are busy far
//! more often than they time out, so activity does *not* touch the heap: it
//! only moves the client's own deadline later. When a heap entry comes due,
//! the client's real deadline is checked; if it has moved, the entry is put
//! back at the new time (a "lazy" heap, as libuv and nginx do with their timer
//! trees). Each client has at most one entry, tagged with its connection id so
//! an entry for a closed client is recognised even if its fd number was reused.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// A min-heap of `(when, fd, connection id)`.
#[derive(Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, RawFd, u64)>>,
}

impl Deadlines {
    /// Remember that client `id` on `fd` has a deadline at `when`.
    pub fn push(&mut self, when: Instant, fd: RawFd, id: u64) {
        self.heap.push(Reverse((when, fd, id)));
    }

    /// How long the selector may sleep: until the nearest entry, rounded up
    /// by the selector, or forever (`None`) when there is none.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((when, _, _))| when.saturating_duration_since(now))
    }

    /// The client of the nearest entry, if any.
    pub fn peek(&self) -> Option<(RawFd, u64)> {
        self.heap.peek().map(|Reverse((_, fd, id))| (*fd, *id))
    }

    /// Drop the nearest entry.
    pub fn pop(&mut self) {
        self.heap.pop();
    }

    /// Take the next entry that is due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(RawFd, u64)> {
        match self.heap.peek() {
            Some(Reverse((when, _, _))) if *when <= now => {
                self.heap.pop().map(|Reverse((_, fd, id))| (fd, id))
            }
            _ => None,
        }
    }

    /// Entries held (one per client with a deadline, plus stale ones).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_deadline_sets_the_timeout_and_pops_first() {
        let now = Instant::now();
        let mut d = Deadlines::default();
        assert_eq!(d.timeout(now), None, "nothing due: sleep forever");
        d.push(now + Duration::from_secs(5), 7, 1);
        d.push(now + Duration::from_secs(2), 8, 2);
        assert_eq!(d.timeout(now), Some(Duration::from_secs(2)));
        assert_eq!(d.pop_due(now), None);
        let later = now + Duration::from_secs(3);
        assert_eq!(d.pop_due(later), Some((8, 2)));
        assert_eq!(d.pop_due(later), None);
        assert_eq!(d.len(), 1);
    }
}
