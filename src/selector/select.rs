//! select(2): the oldest readiness call, portable, O(highest fd) per wait.
//!
//! The interest list is two bitmaps (`fd_set`), one bit per fd number, that
//! the kernel overwrites with the ready subset, so they are copied before each
//! call. The bitmaps hold `FD_SETSIZE` (1024) bits: an fd numbered 1024 or
//! more cannot be watched at all, and registering one is refused with a clear
//! error instead of writing past the bitmap. No edge-triggered mode.
//!
//! On Linux, strace shows the call as `pselect6`: glibc's `select()` is a
//! wrapper around it (see [`PSELECT6`]), and `--trace` narrates it so.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::events::{Events, EVENT_READ, EVENT_WRITE};
use super::sys::{self, FdSet};
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
                &trace::fd_flags_result(r.as_ref()),
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
        let call = self.trace.then(|| self.narrate_call(tv.as_ref()));
        let r = sys::select(self.max_fd + 1, &mut read, &mut write, tv.as_mut());
        if let Some(call) = call {
            self.narrate_result(&call, r.as_ref().map(|&n| n as i64), &read, &write);
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

/// Whether libc's `select()` is the `pselect6` system call, the name strace
/// shows and so the one narrated. Recent glibc (2.36 on the Debian 12 this
/// was checked on) and Android's bionic make no `select` system call on
/// Linux: they turn the `timeval` into a `timespec` (`tv_usec` × 1000
/// nanoseconds) and call `pselect6` with no signal mask (its last argument,
/// NULL); aarch64 and riscv64 have no `select` system call at all. musl on
/// x86 still calls `select`, as the BSDs and macOS do.
const PSELECT6: bool = cfg!(any(
    target_os = "android",
    all(
        target_os = "linux",
        not(all(target_env = "musl", any(target_arch = "x86_64", target_arch = "x86")))
    )
));

/// The name of the wait as strace shows it, for the summary line.
pub(crate) const WAIT_CALL: &str = if PSELECT6 { "pselect6" } else { "select" };

impl Poller {
    /// `pselect6(nfds, [3 4], [], NULL, {tv_sec=1, tv_nsec=500000000}, NULL)`,
    /// or `select(nfds, [3 4], [], NULL, {tv_sec=1, tv_usec=500000})` where
    /// libc makes that call (see [`PSELECT6`]).
    fn narrate_call(&self, tv: Option<&libc::timeval>) -> String {
        let (r, w) = (self.set_str(&self.read), self.set_str(&self.write));
        let nfds = self.max_fd + 1;
        if PSELECT6 {
            let ts = tv.map_or("NULL".to_string(), |t| {
                let nanos = t.tv_usec * 1000; // < 10^9: fits an i32 suseconds_t too
                format!("{{tv_sec={}, tv_nsec={nanos}}}", t.tv_sec)
            });
            format!("pselect6({nfds}, [{r}], [{w}], NULL, {ts}, NULL)")
        } else {
            let tv = tv.map_or("NULL".to_string(), |t| {
                format!("{{tv_sec={}, tv_usec={}}}", t.tv_sec, t.tv_usec)
            });
            format!("select({nfds}, [{r}], [{w}], NULL, {tv})")
        }
    }

    /// The result as strace decodes it: `2 (in [7 8])`, `1 (out [9])`,
    /// `0 (Timeout)`. strace also shows `left {tv_sec=.., tv_nsec=..}`, the
    /// time not slept, which the kernel writes back to the timespec; glibc
    /// hands it on in our timeval cut to microseconds, so it is left out
    /// rather than shown with nanoseconds made up. A signal: `-1 EINTR`, the
    /// result the program gets; strace shows `? ERESTARTNOHAND` there.
    fn narrate_result(&self, call: &str, r: Result<i64, &io::Error>, read: &FdSet, write: &FdSet) {
        let mut result = trace::result(r);
        match r {
            Ok(0) => result += " (Timeout)",
            Ok(_) => {
                let (rd, wr) = (self.set_str(read), self.set_str(write));
                let sets: Vec<String> = [("in", rd), ("out", wr)]
                    .into_iter()
                    .filter(|(_, fds)| !fds.is_empty())
                    .map(|(name, fds)| format!("{name} [{fds}]"))
                    .collect();
                result = format!("{result} ({})", sets.join(", "));
            }
            Err(_) => {}
        }
        let why = match r {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && PSELECT6 => {
                format!("{} (strace: ? ERESTARTNOHAND)", trace::wait_reason(r))
            }
            _ => trace::wait_reason(r),
        };
        trace::line(format_args!("{call}"), &result, format_args!("{why}"));
    }

    /// The fds in `set`, space-separated, as strace prints an fd_set.
    fn set_str(&self, set: &FdSet) -> String {
        let fds: Vec<String> =
            (0..=self.max_fd).filter(|&fd| set.contains(fd)).map(|fd| fd.to_string()).collect();
        fds.join(" ")
    }
}
