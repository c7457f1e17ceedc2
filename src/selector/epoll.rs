//! epoll(7): Linux's readiness interface, and the selector's default there.
//!
//! The kernel keeps the interest list (`epoll_ctl`), so each `epoll_wait`
//! costs O(ready fds), not O(registered fds) as poll and select do. The
//! cookie stored with each fd is the fd itself (`data.u64 = fd`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{sys, timeout_ms, Events, EVENT_READ, EVENT_WRITE};

/// The first `epoll_wait` asks for this many events; the buffer doubles each
/// time a wait fills it, up to `MAX_EVENTS`, so a busy server needs fewer waits.
const FIRST_EVENTS: usize = 64;
const MAX_EVENTS: usize = 4096;

pub(crate) struct Poller {
    epfd: OwnedFd,
    /// `EPOLLET` on every registration when edge-triggered, else 0.
    edge: u32,
    events: Vec<libc::epoll_event>,
}

/// EVENT_READ / EVENT_WRITE → epoll's bits.
fn interest(events: Events) -> u32 {
    let mut bits = 0;
    if events.is_readable() {
        bits |= libc::EPOLLIN as u32;
    }
    if events.is_writable() {
        bits |= libc::EPOLLOUT as u32;
    }
    bits
}

/// epoll's bits → EVENT_READ / EVENT_WRITE. EPOLLERR and EPOLLHUP are always
/// reported, asked for or not (epoll_ctl(2)); they make both calls return at
/// once, so they count as readable and writable.
fn readiness(bits: u32) -> Events {
    let mut events = Events::NONE;
    if bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
        events |= EVENT_READ;
    }
    if bits & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
        events |= EVENT_WRITE;
    }
    events
}

impl Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub(crate) fn new(edge: bool) -> io::Result<Poller> {
        Ok(Poller {
            epfd: sys::epoll_create1()?,
            edge: if edge { libc::EPOLLET as u32 } else { 0 },
            events: Vec::with_capacity(FIRST_EVENTS),
        })
    }

    /// `epoll_ctl(EPOLL_CTL_ADD)`.
    pub(crate) fn add(&mut self, fd: RawFd, events: Events) -> io::Result<()> {
        let bits = interest(events) | self.edge;
        sys::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, bits)
    }

    /// `epoll_ctl(EPOLL_CTL_MOD)`: epoll replaces the whole interest set.
    pub(crate) fn modify(&mut self, fd: RawFd, _old: Events, new: Events) -> io::Result<()> {
        let bits = interest(new) | self.edge;
        sys::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, bits)
    }

    /// `epoll_ctl(EPOLL_CTL_DEL)`.
    pub(crate) fn delete(&mut self, fd: RawFd, _old: Events) -> io::Result<()> {
        sys::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// `epoll_wait`, then one `(fd, events)` per ready fd into `ready`.
    pub(crate) fn wait(
        &mut self,
        ready: &mut Vec<(RawFd, Events)>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let capacity = self.events.capacity();
        self.events.resize(capacity, libc::epoll_event { events: 0, u64: 0 });
        let n = sys::epoll_wait(self.epfd.as_raw_fd(), &mut self.events, timeout_ms(timeout))?;
        for event in &self.events[..n] {
            // epoll_event is packed on x86-64: copy the fields out by value
            // before use, never take a reference to them.
            let (bits, fd) = (event.events, event.u64 as RawFd);
            ready.push((fd, readiness(bits)));
        }
        if n == self.events.len() && n < MAX_EVENTS {
            self.events.reserve(n);
        }
        Ok(())
    }
}
