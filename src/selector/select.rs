//! select(2): the oldest readiness call, portable, O(highest fd) per wait.
//!
//! The interest list is two bitmaps (`fd_set`), one bit per fd number, that
//! the kernel overwrites with the ready subset, so they are copied before each
//! call. The bitmaps hold `FD_SETSIZE` (1024) bits: an fd numbered 1024 or
//! more cannot be watched at all, and registering one is refused with a clear
//! error instead of writing past the bitmap. No edge-triggered mode.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::sys::{self, FdSet};
use super::{Events, EVENT_READ, EVENT_WRITE};
use crate::trace;

pub(crate) struct Poller {
    /// Narrate each call on stderr (`--trace`).
    pub(crate) trace: bool,
    read: FdSet,
    write: FdSet,
    /// Every registered fd, parked ones included.
    registered: FdSet,
    /// The highest registered fd, or -1: select's first argument is this + 1.
    max_fd: RawFd,
}

impl Poller {
    pub(crate) fn new() -> Poller {
        Poller {
            trace: false,
            read: FdSet::new(),
            write: FdSet::new(),
            registered: FdSet::new(),
            max_fd: -1,
        }
    }

    pub(crate) fn add(&mut self, fd: RawFd, events: Events) -> io::Result<()> {
        if fd >= libc::FD_SETSIZE as RawFd {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "select(2) cannot watch fd {fd}: fd_set holds only fds below FD_SETSIZE ({})",
                    libc::FD_SETSIZE
                ),
            ));
        }
        let r = sys::check_open(fd);
        if self.trace {
            let why = format_args!("is fd {fd} open? then set its bit for {events:?}");
            trace::line(
                format_args!("fcntl({fd}, F_GETFD)"),
                &trace::result(r.as_ref().map(|()| 1)),
                why,
            );
        }
        r?;
        self.registered.insert(fd);
        self.max_fd = self.max_fd.max(fd);
        self.modify(fd, Events::NONE, events)
    }

    pub(crate) fn modify(&mut self, fd: RawFd, _old: Events, new: Events) -> io::Result<()> {
        if new.is_readable() {
            self.read.insert(fd);
        } else {
            self.read.remove(fd);
        }
        if new.is_writable() {
            self.write.insert(fd);
        } else {
            self.write.remove(fd);
        }
        Ok(())
    }

    pub(crate) fn delete(&mut self, fd: RawFd, _old: Events) -> io::Result<()> {
        self.modify(fd, Events::NONE, Events::NONE)?;
        self.registered.remove(fd);
        while self.max_fd >= 0 && !self.registered.contains(self.max_fd) {
            self.max_fd -= 1;
        }
        Ok(())
    }

    pub(crate) fn wait(
        &mut self,
        ready: &mut Vec<(RawFd, Events)>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        // The kernel overwrites the sets with the ready subset: pass copies.
        let (mut read, mut write) = (self.read, self.write);
        let mut tv = timeout.map(|d| {
            // Rounded up to whole microseconds: never a busy 0.
            let micros = d.as_nanos().div_ceil(1000);
            libc::timeval {
                tv_sec: (micros / 1_000_000).try_into().unwrap_or(libc::time_t::MAX),
                tv_usec: (micros % 1_000_000) as libc::suseconds_t,
            }
        });
        let call = self.trace.then(|| {
            let tv = tv.map_or("NULL".to_string(), |t| {
                format!("{{tv_sec={}, tv_usec={}}}", t.tv_sec, t.tv_usec)
            });
            let (r, w) = (self.set_str(&self.read), self.set_str(&self.write));
            format!("select({}, [{r}], [{w}], NULL, {tv})", self.max_fd + 1)
        });
        let r = sys::select(self.max_fd + 1, &mut read, &mut write, tv.as_mut());
        if let Some(call) = call {
            let r = r.as_ref().map(|&n| n as i64);
            let mut result = trace::result(r);
            if matches!(r, Ok(1..)) {
                let (rd, wr) = (self.set_str(&read), self.set_str(&write));
                result = format!("{result} (in [{rd}], out [{wr}])");
            }
            trace::line(
                format_args!("{call}"),
                &result,
                format_args!("{}", trace::wait_reason(r)),
            );
        }
        let n = r?;
        if n == 0 {
            return Ok(());
        }
        // select tells how many bits are set, not which: scan them all.
        for fd in 0..=self.max_fd {
            let mut events = Events::NONE;
            if read.contains(fd) {
                events |= EVENT_READ;
            }
            if write.contains(fd) {
                events |= EVENT_WRITE;
            }
            if !events.is_empty() {
                ready.push((fd, events));
            }
        }
        Ok(())
    }
}

impl Poller {
    /// The fds in `set`, space-separated, as strace prints an fd_set.
    fn set_str(&self, set: &FdSet) -> String {
        let fds: Vec<String> = (0..=self.max_fd)
            .filter(|&fd| set.contains(fd))
            .map(|fd| fd.to_string())
            .collect();
        fds.join(" ")
    }
}
