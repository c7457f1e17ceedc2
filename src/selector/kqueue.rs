//! kqueue(2): the readiness interface of macOS and the BSDs, and the
//! selector's default there.
//!
//! Like epoll, the kernel keeps the interest list, so a wait costs O(ready
//! fds). Unlike epoll, interest is not one bit mask per fd: each kind of
//! readiness is a separate *filter* (`EVFILT_READ`, `EVFILT_WRITE`), added
//! and deleted on its own and reporting on its own. A single call, `kevent`,
//! both applies a list of changes and waits for events. The cookie is
//! `ident`, which for these two filters is the fd itself.
//!
//! Man pages: `kqueue(2)` and `kevent(2)` (one page on most systems).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::events::{Events, EVENT_READ, EVENT_WRITE};
use super::sys;
// Linux has no kqueue in the libc crate: with libkqueue, the same names come
// from our declarations of its header (libkqueue.rs).
#[cfg(libkqueue)]
use super::libkqueue as libc;
use crate::trace;

/// The first wait asks for this many events; the buffer doubles each time a
/// wait fills it, up to `MAX_EVENTS`, as in epoll.rs. One fd can take two
/// entries (its read and its write filter).
const FIRST_EVENTS: usize = 64;
const MAX_EVENTS: usize = 4096;

// `struct kevent` differs between systems (sys/event.h): `filter` and
// `flags` are short and unsigned short on macOS, FreeBSD, OpenBSD and
// DragonFly, but uint32_t on NetBSD, whose EVFILT_* numbers are positive
// (EVFILT_READ is 0 there, -1 elsewhere). libc copies each header as is, so
// the types are named once here and the compiler checks them on every OS
// (scripts/check-platforms.sh).
#[cfg(not(target_os = "netbsd"))]
type Filter = libc::c_short;
#[cfg(target_os = "netbsd")]
type Filter = u32;
#[cfg(not(target_os = "netbsd"))]
type Flags = libc::c_ushort;
#[cfg(target_os = "netbsd")]
type Flags = u32;

pub(crate) struct Poller {
    /// Narrate each call on stderr (`--trace`).
    pub(crate) trace: bool,
    kq: OwnedFd,
    /// `EV_CLEAR` on every added filter when edge-triggered, else 0.
    edge: Flags,
    events: Vec<libc::kevent>,
    /// fd → what its filters reported so far in this wait; all NONE between
    /// waits. Redis's ae_kqueue.c keeps the same mask array to fire an fd
    /// once when both of its filters report.
    merged: Vec<Events>,
}

/// EVENT_READ / EVENT_WRITE → the filters that watch for them.
fn filters(events: Events) -> impl Iterator<Item = Filter> {
    [(EVENT_READ, libc::EVFILT_READ), (EVENT_WRITE, libc::EVFILT_WRITE)]
        .into_iter()
        .filter(move |&(event, _)| events.contains(event))
        .map(|(_, filter)| filter)
}

/// One entry of a changelist: C's `EV_SET(&kev, fd, filter, flags, 0, 0, NULL)`.
///
/// libc has no `EV_SET` (it is a C macro), so the struct is built here. The
/// fields left out (`fflags`, `data`, `udata`, FreeBSD's `ext`) stay zero:
/// the cookie is `ident`, so `udata` is not needed, which also spares us its
/// type (a pointer today, an intptr_t on NetBSD in older libc releases).
fn change(fd: RawFd, filter: Filter, flags: Flags) -> libc::kevent {
    libc::kevent { ident: fd as libc::uintptr_t, filter, flags, ..sys::kevent_zeroed() }
}

/// What one reported event means for its fd.
fn readiness(filter: Filter, flags: Flags) -> Events {
    if flags & libc::EV_ERROR != 0 {
        // The kernel could not watch the fd: let either handler find out.
        EVENT_READ | EVENT_WRITE
    } else if filter == libc::EVFILT_READ {
        // EV_EOF here means the peer shut down its side: the next read
        // returns 0 (or the pending error, which `fflags` also holds). Only
        // readable, like epoll's EPOLLRDHUP: after a half-close we may
        // still write.
        EVENT_READ
    } else if filter == libc::EVFILT_WRITE {
        // EV_EOF on the write filter: nothing more can be sent (reset, or
        // both sides closed). A hang-up, so both, as with EPOLLHUP.
        if flags & libc::EV_EOF != 0 {
            EVENT_READ | EVENT_WRITE
        } else {
            EVENT_WRITE
        }
    } else {
        Events::NONE
    }
}

/// A wait timeout as kevent wants it. kevent takes seconds and nanoseconds,
/// so the `Duration` converts exactly: no rounding up to milliseconds as
/// for epoll_wait and poll.
fn timespec(timeout: Duration) -> libc::timespec {
    // macOS answers EINVAL to more than 10^8 seconds (xnu's kern_event.c
    // checks the timeout with itimerfix()), so cap it there: a wait of three
    // years that ends early is as good as forever; the caller waits again.
    const MAX_SECS: u64 = 100_000_000;
    libc::timespec {
        tv_sec: timeout.as_secs().min(MAX_SECS) as libc::time_t,
        // Below one billion, so it fits even where C's long is 32 bits.
        tv_nsec: timeout.subsec_nanos() as _,
    }
}

impl Poller {
    /// `kqueue()`, then close-on-exec (there is no flag for it at creation).
    pub(crate) fn new(edge: bool) -> io::Result<Poller> {
        Ok(Poller {
            trace: false,
            kq: sys::kqueue()?,
            edge: if edge { libc::EV_CLEAR } else { 0 },
            events: Vec::with_capacity(FIRST_EVENTS),
            merged: Vec::new(),
        })
    }

    /// `kevent` with `EV_ADD` for each wanted filter, in one call.
    pub(crate) fn add(&mut self, fd: RawFd, events: Events) -> io::Result<()> {
        if events.is_empty() {
            // A parked fd gets no filter, so no kevent call would fail for a
            // closed fd: check it the way poll.rs does.
            let r = sys::check_open(fd);
            if self.trace {
                let why = format_args!("is fd {fd} open? then park it: no filter");
                let result = trace::fd_flags_result(r.as_ref());
                trace::line(format_args!("fcntl({fd}, F_GETFD)"), &result, why);
            }
            return r.map(drop);
        }
        let why = format_args!("register fd {fd} for {events:?}");
        let result = self.apply(fd, events, Events::NONE, why);
        if result.is_err() {
            // One filter may have gone in before the other was refused (old
            // macOS refuses EVFILT_WRITE on a pipe whose reader is gone, with
            // EPIPE). Take back what went in, so a failed registration
            // leaves nothing behind in the kernel either.
            let why = format_args!("take back the half-made registration of fd {fd}");
            let _ = self.apply(fd, Events::NONE, events, why);
        }
        result
    }

    /// `kevent` with `EV_ADD` for the filters gained and `EV_DELETE` for the
    /// filters dropped, in one call. epoll replaces the whole set with
    /// EPOLL_CTL_MOD; kqueue has no "replace", hence the `old` events.
    pub(crate) fn modify(&mut self, fd: RawFd, old: Events, new: Events) -> io::Result<()> {
        let why = format_args!("fd {fd} now wants {new:?}");
        self.apply(fd, new - old, old - new, why)
    }

    /// `kevent` with `EV_DELETE` for each filter the fd had. Closing an fd
    /// deletes its filters already (kqueue(2)), so after a close this fails
    /// with EBADF, or ENOENT if the number was reused; the Selector allows both.
    pub(crate) fn delete(&mut self, fd: RawFd, old: Events) -> io::Result<()> {
        let why = format_args!("unregister fd {fd}");
        self.apply(fd, Events::NONE, old, why)
    }

    /// `kevent` with no changes, then one `(fd, events)` per ready fd.
    pub(crate) fn wait(
        &mut self,
        ready: &mut Vec<(RawFd, Events)>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let capacity = self.events.capacity();
        self.events.resize(capacity, sys::kevent_zeroed());
        let timeout = timeout.map(timespec);
        let r = sys::kevent(self.kq.as_raw_fd(), &[], &mut self.events, timeout.as_ref());
        let n = *r.as_ref().unwrap_or(&0);
        // The read and write filters of one fd report as two events: merge
        // them, keeping the order in which fds first appear.
        let first = ready.len();
        for event in &self.events[..n] {
            // struct kevent is packed on macOS (`#pragma pack(4)`): copy the
            // fields out by value, never take a reference to them.
            let (fd, filter, flags) = (event.ident as RawFd, event.filter, event.flags);
            let events = readiness(filter, flags);
            if events.is_empty() {
                continue;
            }
            let index = fd as usize;
            if index >= self.merged.len() {
                self.merged.resize(index + 1, Events::NONE);
            }
            if self.merged[index].is_empty() {
                ready.push((fd, Events::NONE));
            }
            self.merged[index] |= events;
        }
        for (fd, events) in &mut ready[first..] {
            *events = std::mem::take(&mut self.merged[*fd as usize]);
        }
        if self.trace {
            let fds = ready.len() - first;
            let why = match r {
                Ok(got) if fds < got => {
                    format!("{}: {got} filter events, merged", trace::wait_reason(Ok(fds as i64)))
                }
                _ => trace::wait_reason(r.as_ref().map(|&n| n as i64)),
            };
            let call = Kevent {
                kq: self.kq.as_raw_fd(),
                changes: &[],
                out: &self.events[..n],
                nevents: self.events.len(),
                timeout: timeout.as_ref(),
            };
            let result = trace::result(r.as_ref().map(|&n| n as i64));
            trace::line(format_args!("{call}"), &result, format_args!("{why}"));
        }
        r?;
        if n == self.events.len() && n < MAX_EVENTS {
            self.events.reserve(n);
        }
        Ok(())
    }

    /// One `kevent` call adding the filters of `add` and deleting those of
    /// `delete` (never both for one filter), returning the first refusal.
    fn apply(&self, fd: RawFd, add: Events, delete: Events, why: fmt::Arguments) -> io::Result<()> {
        // EV_RECEIPT makes the kernel answer every change with an entry
        // flagged EV_ERROR whose `data` is an errno, 0 for success, instead
        // of failing the whole call or handing back pending events.
        let mut changes = [sys::kevent_zeroed(); 2];
        let mut n = 0;
        for filter in filters(add) {
            changes[n] = change(fd, filter, libc::EV_ADD | libc::EV_RECEIPT | self.edge);
            n += 1;
        }
        for filter in filters(delete) {
            changes[n] = change(fd, filter, libc::EV_DELETE | libc::EV_RECEIPT);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let mut receipts = [sys::kevent_zeroed(); 2];
        // A zero timeout: only apply, never sleep.
        let zero = timespec(Duration::ZERO);
        let kq = self.kq.as_raw_fd();
        let r = sys::kevent(kq, &changes[..n], &mut receipts[..n], Some(&zero));
        let got = *r.as_ref().unwrap_or(&0);
        if self.trace {
            let call = Kevent {
                kq,
                changes: &changes[..n],
                out: &receipts[..got],
                nevents: n,
                timeout: Some(&zero),
            };
            let result = trace::result(r.as_ref().map(|&n| n as i64));
            trace::line(format_args!("{call}"), &result, why);
        }
        r?;
        for receipt in &receipts[..got] {
            let (flags, errno) = (receipt.flags, receipt.data);
            if flags & libc::EV_ERROR != 0 && errno != 0 {
                return Err(io::Error::from_raw_os_error(errno as i32));
            }
        }
        Ok(())
    }
}

/// One kevent call for `--trace`, printed the way strace prints structs:
/// `kevent(3, [{ident=5, filter=EVFILT_READ, flags=EV_ADD|EV_RECEIPT}], 1,
/// [{ident=5, filter=EVFILT_READ, flags=EV_ERROR, data=0}], 1, {tv_sec=0, tv_nsec=0})`.
/// A receipt's `data` is its errno; a read event's `data` is the bytes ready.
struct Kevent<'a> {
    kq: RawFd,
    changes: &'a [libc::kevent],
    out: &'a [libc::kevent],
    nevents: usize,
    timeout: Option<&'a libc::timespec>,
}

impl fmt::Display for Kevent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |events: &[libc::kevent], with_data: bool| -> String {
            let all: Vec<String> = events.iter().map(|e| kevent_str(e, with_data)).collect();
            all.join(", ")
        };
        let timeout = self.timeout.map_or("NULL".to_string(), |t| {
            format!("{{tv_sec={}, tv_nsec={}}}", t.tv_sec, t.tv_nsec)
        });
        write!(
            f,
            "kevent({}, [{}], {}, [{}], {}, {timeout})",
            self.kq,
            list(self.changes, false),
            self.changes.len(),
            list(self.out, true),
            self.nevents,
        )
    }
}

/// `{ident=5, filter=EVFILT_READ, flags=EV_EOF, data=0}`; `data` only for
/// what the kernel wrote back (it is always 0 in a change).
fn kevent_str(event: &libc::kevent, with_data: bool) -> String {
    // Packed on macOS: copy each field out before formatting it, since
    // format! would take a reference.
    let (ident, filter, flags) = (event.ident, event.filter, event.flags);
    let (fflags, data) = (event.fflags, event.data);
    let filter = if filter == libc::EVFILT_READ {
        "EVFILT_READ".to_string()
    } else if filter == libc::EVFILT_WRITE {
        "EVFILT_WRITE".to_string()
    } else {
        filter.to_string()
    };
    let flags = trace::flags(
        flags as u64,
        &[
            (libc::EV_ADD as u64, "EV_ADD"),
            (libc::EV_DELETE as u64, "EV_DELETE"),
            (libc::EV_CLEAR as u64, "EV_CLEAR"),
            (libc::EV_RECEIPT as u64, "EV_RECEIPT"),
            (libc::EV_EOF as u64, "EV_EOF"),
            (libc::EV_ERROR as u64, "EV_ERROR"),
        ],
    );
    let mut s = format!("{{ident={ident}, filter={filter}, flags={flags}");
    if fflags != 0 {
        s += &format!(", fflags={fflags}");
    }
    if with_data {
        s += &format!(", data={data}");
    }
    s + "}"
}
