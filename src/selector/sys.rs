//! The one funnel for raw system calls.
//!
//! Every `unsafe` block in pingpong's selector lives in this file, each with a
//! `// SAFETY:` line saying why the call cannot break memory safety. The
//! backends (`epoll.rs`, `kqueue.rs`, `poll.rs`, `select.rs`) call these safe
//! wrappers and never touch `libc` pointers themselves, so a student reading a
//! backend sees the system call's shape without the pointer plumbing.
//!
//! The convention is the C one: a call returns -1 and sets `errno` on failure.
//! [`cvt`] turns that into an [`io::Error`], the way mio's `syscall!` macro does.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Linux on aarch64, riscv64 and loongarch64 has the kernel's generic system
/// call table (`include/uapi/asm-generic/unistd.h`), without the old
/// `epoll_wait`, `poll` and `select`: libc makes those calls `epoll_pwait`,
/// `ppoll` and `pselect6`, which is what strace shows, and so what the
/// backends narrate.
pub(crate) const GENERIC_SYSCALL_TABLE: bool = cfg!(all(
    any(target_os = "linux", target_os = "android"),
    any(target_arch = "aarch64", target_arch = "riscv64", target_arch = "loongarch64")
));

/// Turn a C return value into a `Result`: -1 means "look at errno".
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wrap a freshly created descriptor so it is closed when dropped.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor the kernel just returned to us and that
    // nothing else owns, which is exactly OwnedFd's requirement.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `fcntl(fd, F_GETFD)`: is `fd` an open descriptor? Returns its fd flags
/// (`FD_CLOEXEC`), or EBADF. (`man 2 fcntl`)
///
/// poll(2) and select(2) only learn about a bad fd when they wait; the
/// selector checks at registration instead, so every backend refuses a closed
/// fd the same way, at the same moment.
pub(crate) fn check_open(fd: RawFd) -> io::Result<libc::c_int> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD takes no pointer argument; any integer fd is allowed.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })
}

/// Mark `fd` close-on-exec, for kernels whose creating call has no flag for it.
#[cfg(kqueue)]
fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD takes an integer flag argument, no pointer.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

// ---------------------------------------------------------------- epoll (Linux)

/// `epoll_create1(EPOLL_CLOEXEC)` (`man 2 epoll_create1`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn epoll_create1() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the flag is a valid constant.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    Ok(owned(fd))
}

/// `epoll_ctl(epfd, op, fd, &{events, u64 = fd})` (`man 2 epoll_ctl`).
///
/// The cookie the kernel hands back on every event is the fd itself, so
/// strace prints `data={u32=5, u64=5}` just as for the course's Python.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn epoll_ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: fd as u64 };
    // SAFETY: `event` is a valid, initialised epoll_event that outlives the
    // call; the kernel only reads it (and ignores it for EPOLL_CTL_DEL).
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) }).map(drop)
}

/// `epoll_wait(epfd, events, maxevents, timeout_ms)` (`man 2 epoll_wait`).
///
/// Fills `events` from the start and returns how many entries the kernel wrote.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut [libc::epoll_event],
    timeout_ms: libc::c_int,
) -> io::Result<usize> {
    let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: the pointer and length describe a live, writable slice; the
    // kernel writes at most `max` entries into it.
    let n = cvt(unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), max, timeout_ms) })?;
    Ok(n as usize)
}

// ------------------------------------------------------- kqueue (macOS and BSD)

// `<sys/event.h>`, where the kqueue names come from: libc's copy on macOS and
// the BSDs; on Linux built with libkqueue, our declarations (libkqueue.rs).
#[cfg(libkqueue)]
use super::libkqueue as event_h;
#[cfg(all(kqueue, not(libkqueue)))]
use libc as event_h;

/// `kqueue()` (`man 2 kqueue`), then close-on-exec.
#[cfg(kqueue)]
pub(crate) fn kqueue() -> io::Result<OwnedFd> {
    // SAFETY: kqueue() takes no arguments.
    let fd = owned(cvt(unsafe { event_h::kqueue() })?);
    set_cloexec(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
    Ok(fd)
}

/// `kevent(kq, changes, nchanges, events, nevents, timeout)` (`man 2 kevent`).
///
/// Applies `changes`, then waits up to `timeout` (None = forever) for events
/// and returns how many were written to the front of `events`.
#[cfg(kqueue)]
pub(crate) fn kevent(
    kq: RawFd,
    changes: &[event_h::kevent],
    events: &mut [event_h::kevent],
    timeout: Option<&libc::timespec>,
) -> io::Result<usize> {
    // The count parameters are `int` on macOS/FreeBSD and `size_t` on NetBSD:
    // `as _` lets each platform's libc pick its own type.
    let timeout_ptr = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: both slices are live for the call; the kernel reads `changes`
    // and writes at most `events.len()` entries into `events`; the timeout is
    // null or points to a live timespec.
    let n = cvt(unsafe {
        event_h::kevent(
            kq,
            changes.as_ptr(),
            changes.len() as _,
            events.as_mut_ptr(),
            events.len() as _,
            timeout_ptr,
        )
    })?;
    Ok(n as usize)
}

/// An all-zero `struct kevent`, the blank that C's `EV_SET` fills in.
///
/// The struct is not the same everywhere (FreeBSD 12 and later add an `ext`
/// array), so kqueue.rs sets the fields it needs and takes the rest from here.
#[cfg(kqueue)]
pub(crate) fn kevent_zeroed() -> event_h::kevent {
    // SAFETY: struct kevent holds only integers and the `udata` pointer, for
    // which all-zero bytes are valid values (the pointer is null).
    unsafe { std::mem::zeroed() }
}

// ------------------------------------------------------------ poll (portable)

/// `poll(fds, nfds, timeout_ms)` (`man 2 poll`): returns how many entries
/// have a non-zero `revents`.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a live, writable slice of
    // pollfd; the kernel reads `fd`/`events` and writes `revents` of each.
    let n = cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) })?;
    Ok(n as usize)
}

// ---------------------------------------------------------- select (portable)

/// A `fd_set`: a bitmap of FD_SETSIZE (1024) bits, one per possible fd.
///
/// This is select(2)'s famous limit: an fd numbered 1024 or more cannot be
/// put in the set at all, whatever the process's fd limit.
#[derive(Clone, Copy)]
pub(crate) struct FdSet(libc::fd_set);

impl FdSet {
    pub(crate) fn new() -> FdSet {
        // SAFETY: fd_set is a plain bitmap of integers, for which all-zero
        // bytes are a valid value (FD_ZERO writes exactly that).
        FdSet(unsafe { std::mem::zeroed() })
    }

    /// FD_SET. Callers keep `fd` in `0..FD_SETSIZE` (the select backend
    /// refuses any other fd at registration).
    pub(crate) fn insert(&mut self, fd: RawFd) {
        assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: `fd` was just checked to lie inside the bitmap.
        unsafe { libc::FD_SET(fd, &mut self.0) }
    }

    /// FD_CLR.
    pub(crate) fn remove(&mut self, fd: RawFd) {
        assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: `fd` was just checked to lie inside the bitmap.
        unsafe { libc::FD_CLR(fd, &mut self.0) }
    }

    /// FD_ISSET.
    pub(crate) fn contains(&self, fd: RawFd) -> bool {
        assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: `fd` was just checked to lie inside the bitmap.
        unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

/// `select(nfds, readfds, writefds, NULL, timeout)` (`man 2 select`).
///
/// The kernel overwrites both sets with the ready subset, which is why the
/// select backend passes copies of its interest sets on every call.
pub(crate) fn select(
    nfds: RawFd,
    read: &mut FdSet,
    write: &mut FdSet,
    timeout: Option<&mut libc::timeval>,
) -> io::Result<usize> {
    let timeout_ptr = timeout.map_or(std::ptr::null_mut(), |t| t as *mut libc::timeval);
    // SAFETY: both sets are live and writable; `nfds` never exceeds
    // FD_SETSIZE, so the kernel stays inside the bitmaps; the timeout is null
    // or a live timeval (Linux writes the time left back into it).
    let n = cvt(unsafe {
        libc::select(nfds, &mut read.0, &mut write.0, std::ptr::null_mut(), timeout_ptr)
    })?;
    Ok(n as usize)
}
