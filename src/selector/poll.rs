//! poll(2): portable, and O(registered fds) on every wait.
//!
//! The interest list lives in user space, as an array of `pollfd` that is
//! handed to the kernel whole on each call; the kernel checks every entry and
//! the loop below scans every entry again for a non-zero `revents`. That is
//! why a poll server slows down as idle connections pile up, while epoll does
//! not. There is no edge-triggered mode.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::events::{timeout_ms, Events, EVENT_READ, EVENT_WRITE};
use super::sys;
use crate::trace;

pub(crate) struct Poller {
    /// Narrate each call on stderr (`--trace`).
    pub(crate) trace: bool,
    /// The array the kernel sees.
    fds: Vec<libc::pollfd>,
    /// fd → its index in `fds`, so modify and delete need no search.
    slot: Vec<Option<usize>>,
}

/// The `pollfd` for `fd`. A parked fd (no events) gets a negative number,
/// which poll(2) skips entirely: with `events = 0` it would still report
/// POLLHUP and POLLERR, and a reset on a parked socket would wake every wait.
/// `!fd` (= -fd - 1) keeps fd 0 negative too and is undone by `real_fd`.
fn pollfd(fd: RawFd, events: Events) -> libc::pollfd {
    libc::pollfd {
        fd: if events.is_empty() { !fd } else { fd },
        events: interest(events),
        revents: 0,
    }
}

fn real_fd(pfd: &libc::pollfd) -> RawFd {
    if pfd.fd < 0 {
        !pfd.fd
    } else {
        pfd.fd
    }
}

fn interest(events: Events) -> libc::c_short {
    let mut bits = 0;
    if events.is_readable() {
        bits |= libc::POLLIN;
    }
    if events.is_writable() {
        bits |= libc::POLLOUT;
    }
    bits
}

/// POLLERR, POLLHUP and POLLNVAL are reported whether asked for or not;
/// like epoll's ERR/HUP they count as readable and writable.
fn readiness(revents: libc::c_short) -> Events {
    let mut events = Events::NONE;
    let trouble = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
    if revents & (libc::POLLIN | trouble) != 0 {
        events |= EVENT_READ;
    }
    if revents & (libc::POLLOUT | trouble) != 0 {
        events |= EVENT_WRITE;
    }
    events
}

impl Poller {
    pub(crate) fn new() -> Poller {
        Poller { trace: false, fds: Vec::new(), slot: Vec::new() }
    }

    /// Append a `pollfd`. poll(2) itself would accept a closed fd and report
    /// POLLNVAL later; `fcntl(F_GETFD)` refuses it now, like epoll_ctl does.
    pub(crate) fn add(&mut self, fd: RawFd, events: Events) -> io::Result<()> {
        let r = sys::check_open(fd);
        if self.trace {
            let why =
                format_args!("is fd {fd} open? then add it to the pollfd array for {events:?}");
            trace::line(
                format_args!("fcntl({fd}, F_GETFD)"),
                &trace::fd_flags_result(r.as_ref()),
                why,
            );
        }
        r?;
        let index = fd as usize;
        if index >= self.slot.len() {
            self.slot.resize(index + 1, None);
        }
        self.slot[index] = Some(self.fds.len());
        self.fds.push(pollfd(fd, events));
        Ok(())
    }

    pub(crate) fn modify(&mut self, fd: RawFd, _old: Events, new: Events) -> io::Result<()> {
        let i = self.index(fd)?;
        self.fds[i] = pollfd(fd, new);
        Ok(())
    }

    /// Remove the `pollfd` by moving the last one into its place.
    pub(crate) fn delete(&mut self, fd: RawFd, _old: Events) -> io::Result<()> {
        let i = self.index(fd)?;
        self.slot[fd as usize] = None;
        self.fds.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.slot[real_fd(moved) as usize] = Some(i);
        }
        Ok(())
    }

    pub(crate) fn wait(
        &mut self,
        ready: &mut Vec<(RawFd, Events)>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let ms = timeout_ms(timeout);
        let r = sys::poll(&mut self.fds, ms);
        if self.trace {
            self.narrate_wait(&r, ms);
        }
        let mut left = r?;
        for pfd in &self.fds {
            if left == 0 {
                break;
            }
            if pfd.revents != 0 {
                left -= 1;
                ready.push((pfd.fd, readiness(pfd.revents)));
            }
        }
        Ok(())
    }

    fn index(&self, fd: RawFd) -> io::Result<usize> {
        self.slot
            .get(fd as usize)
            .copied()
            .flatten()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// Whether libc's `poll()` is the `ppoll` system call, the name strace
/// shows and so the one narrated ([`super::sys::GENERIC_SYSCALL_TABLE`]): glibc
/// calls `ppoll(fds, nfds, timeout, NULL, 0)`. (strace then also prints the
/// time left, `left {tv_sec=...}`, after the ready entries; the narration
/// cannot know it and leaves it out.)
const PPOLL: bool = super::sys::GENERIC_SYSCALL_TABLE;

/// The name of the wait as strace shows it, for the summary line.
pub(crate) const WAIT_CALL: &str = if PPOLL { "ppoll" } else { "poll" };

impl Poller {
    /// `poll([{fd=3, events=POLLIN}, ...], 2, -1) = 1 ([{fd=3, revents=POLLIN}])`
    fn narrate_wait(&self, r: &io::Result<usize>, ms: libc::c_int) {
        let all: Vec<String> = self
            .fds
            .iter()
            .map(|p| format!("{{fd={}, events={}}}", p.fd, bits_str(p.events)))
            .collect();
        let fired: Vec<String> = self
            .fds
            .iter()
            .filter(|p| p.revents != 0)
            .map(|p| format!("{{fd={}, revents={}}}", p.fd, bits_str(p.revents)))
            .collect();
        let (all, n) = (all.join(", "), self.fds.len());
        let call = if PPOLL {
            // glibc turns the milliseconds into a timespec (NULL: forever).
            let timeout = match ms {
                ..0 => "NULL".to_string(),
                _ => format!("{{tv_sec={}, tv_nsec={}}}", ms / 1000, (ms % 1000) * 1_000_000),
            };
            format!("ppoll([{all}], {n}, {timeout}, NULL, 0)")
        } else {
            format!("poll([{all}], {n}, {ms})")
        };
        let r = r.as_ref().map(|&n| n as i64);
        let mut result = trace::result(r);
        match r {
            Ok(0) => result += " (Timeout)",
            Ok(_) => result = format!("{result} ([{}])", fired.join(", ")),
            Err(_) => {}
        }
        // A signal: the program gets -1 EINTR; strace shows the kernel's
        // code from before the handler ran, `? ERESTART_RESTARTBLOCK` (ppoll
        // with a timeout: `? ERESTARTNOHAND`).
        let why = match r {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && cfg!(target_os = "linux") => {
                let code =
                    if PPOLL && ms >= 0 { "ERESTARTNOHAND" } else { "ERESTART_RESTARTBLOCK" };
                format!("{} (strace: ? {code})", trace::wait_reason(r))
            }
            _ => trace::wait_reason(r),
        };
        trace::line(format_args!("{call}"), &result, format_args!("{why}"));
    }
}

fn bits_str(bits: libc::c_short) -> String {
    trace::flags(
        bits as u64,
        &[
            (libc::POLLIN as u64, "POLLIN"),
            (libc::POLLOUT as u64, "POLLOUT"),
            (libc::POLLERR as u64, "POLLERR"),
            (libc::POLLHUP as u64, "POLLHUP"),
            (libc::POLLNVAL as u64, "POLLNVAL"),
        ],
    )
}
