//! epoll(7): Linux's readiness interface, and the selector's default there.
//!
//! The kernel keeps the interest list (`epoll_ctl`), so each `epoll_wait`
//! costs O(ready fds), not O(registered fds) as poll and select do. The
//! cookie stored with each fd is the fd itself (`data.u64 = fd`).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::events::{timeout_ms, Events, EVENT_READ, EVENT_WRITE};
use super::sys;
use crate::trace;

/// The first `epoll_wait` asks for this many events; the buffer doubles each
/// time a wait fills it, up to `MAX_EVENTS`, so a busy server needs fewer waits.
const FIRST_EVENTS: usize = 64;
const MAX_EVENTS: usize = 4096;

pub(crate) struct Poller {
    /// Narrate each call on stderr (`--trace`).
    pub(crate) trace: bool,
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

/// Whether libc's `epoll_wait()` is the `epoll_pwait` system call, the name
/// strace shows and so the one narrated ([`super::sys::GENERIC_SYSCALL_TABLE`]):
/// glibc and musl call `epoll_pwait(epfd, events, max, timeout, NULL, 8)`
/// (no signal mask; 8 bytes is the size of the kernel's sigset).
const EPOLL_PWAIT: bool = super::sys::GENERIC_SYSCALL_TABLE;

/// The name of the wait as strace shows it, for the summary line.
pub(crate) const WAIT_CALL: &str = if EPOLL_PWAIT { "epoll_pwait" } else { "epoll_wait" };

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
            trace: false,
            epfd: sys::epoll_create1()?,
            edge: if edge { libc::EPOLLET as u32 } else { 0 },
            events: Vec::with_capacity(FIRST_EVENTS),
        })
    }

    /// `epoll_ctl(EPOLL_CTL_ADD)`. A parked fd (no events) is not added:
    /// epoll would report its errors and hang-ups anyway, over and over.
    pub(crate) fn add(&mut self, fd: RawFd, events: Events) -> io::Result<()> {
        if events.is_empty() {
            // No epoll_ctl would fail for a closed fd: check it as poll.rs does.
            let r = sys::check_open(fd);
            if self.trace {
                let why = format_args!("is fd {fd} open? then park it: not in epoll's set");
                let result = trace::fd_flags_result(r.as_ref());
                trace::line(format_args!("fcntl({fd}, F_GETFD)"), &result, why);
            }
            return r.map(drop);
        }
        let why = format_args!("register fd {fd} for {events:?}");
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest(events) | self.edge, why)
    }

    /// `epoll_ctl(EPOLL_CTL_MOD)`: epoll replaces the whole interest set.
    /// Parking and unparking are a DEL and an ADD (see `add`).
    pub(crate) fn modify(&mut self, fd: RawFd, old: Events, new: Events) -> io::Result<()> {
        if old.is_empty() {
            return self.add(fd, new);
        }
        if new.is_empty() {
            return self.ctl(libc::EPOLL_CTL_DEL, fd, 0, format_args!("park fd {fd}"));
        }
        let why = format_args!("fd {fd} now wants {new:?}");
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest(new) | self.edge, why)
    }

    /// `epoll_ctl(EPOLL_CTL_DEL)`.
    pub(crate) fn delete(&mut self, fd: RawFd, old: Events) -> io::Result<()> {
        if old.is_empty() {
            return Ok(()); // parked: epoll does not have it
        }
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, format_args!("unregister fd {fd}"))
    }

    fn ctl(
        &mut self,
        op: libc::c_int,
        fd: RawFd,
        bits: u32,
        why: fmt::Arguments,
    ) -> io::Result<()> {
        let epfd = self.epfd.as_raw_fd();
        let r = sys::epoll_ctl(epfd, op, fd, bits);
        if self.trace {
            let (name, event) = match op {
                libc::EPOLL_CTL_ADD => ("EPOLL_CTL_ADD", event_str(bits, fd)),
                libc::EPOLL_CTL_MOD => ("EPOLL_CTL_MOD", event_str(bits, fd)),
                _ => ("EPOLL_CTL_DEL", "NULL".to_string()),
            };
            let call = format_args!("epoll_ctl({epfd}, {name}, {fd}, {event})");
            trace::line(call, &trace::result(r.as_ref().map(|()| 0)), why);
        }
        r
    }

    /// `epoll_wait`, then one `(fd, events)` per ready fd into `ready`.
    pub(crate) fn wait(
        &mut self,
        ready: &mut Vec<(RawFd, Events)>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let capacity = self.events.capacity();
        self.events.resize(capacity, libc::epoll_event { events: 0, u64: 0 });
        let (epfd, ms) = (self.epfd.as_raw_fd(), timeout_ms(timeout));
        let r = sys::epoll_wait(epfd, &mut self.events, ms);
        if self.trace {
            self.narrate_wait(&r, ms);
        }
        let n = r?;
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

impl Poller {
    fn narrate_wait(&self, r: &io::Result<usize>, ms: libc::c_int) {
        let ready: Vec<String> = match r {
            Ok(n) => self.events[..*n]
                .iter()
                .map(|e| {
                    let (bits, fd) = (e.events, e.u64 as RawFd);
                    event_str(bits, fd)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let (epfd, max) = (self.epfd.as_raw_fd(), self.events.len());
        let ready = ready.join(", ");
        let call = if EPOLL_PWAIT {
            format!("epoll_pwait({epfd}, [{ready}], {max}, {ms}, NULL, 8)")
        } else {
            format!("epoll_wait({epfd}, [{ready}], {max}, {ms})")
        };
        let r = r.as_ref().map(|&n| n as i64);
        trace::line(
            format_args!("{call}"),
            &trace::result(r),
            format_args!("{}", trace::wait_reason(r)),
        );
    }
}

/// `{events=EPOLLIN|EPOLLOUT, data={u32=5, u64=5}}`, as strace prints it.
fn event_str(bits: u32, fd: RawFd) -> String {
    let events = trace::flags(
        u64::from(bits),
        &[
            (libc::EPOLLIN as u64, "EPOLLIN"),
            (libc::EPOLLOUT as u64, "EPOLLOUT"),
            (libc::EPOLLERR as u64, "EPOLLERR"),
            (libc::EPOLLHUP as u64, "EPOLLHUP"),
            (libc::EPOLLRDHUP as u64, "EPOLLRDHUP"),
            (libc::EPOLLET as u64, "EPOLLET"),
        ],
    );
    format!("{{events={events}, data={{u32={fd}, u64={fd}}}}}")
}
