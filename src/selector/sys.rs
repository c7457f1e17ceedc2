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

/// `fcntl(fd, F_GETFD)`: is `fd` an open descriptor? (`man 2 fcntl`)
///
/// poll(2) and select(2) only learn about a bad fd when they wait; the
/// selector checks at registration instead, so every backend refuses a closed
/// fd the same way, at the same moment.
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD takes no pointer argument; any integer fd is allowed.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) }).map(drop)
}

/// Mark `fd` close-on-exec, for kernels whose creating call has no flag for it.
#[cfg(kqueue)]
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
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
    let mut event = libc::epoll_event {
        events,
        u64: fd as u64,
    };
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

/// `kqueue()` (`man 2 kqueue`), then close-on-exec.
#[cfg(kqueue)]
pub(crate) fn kqueue() -> io::Result<OwnedFd> {
    // SAFETY: kqueue() takes no arguments.
    let fd = owned(cvt(unsafe { libc::kqueue() })?);
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
    changes: &[libc::kevent],
    events: &mut [libc::kevent],
    timeout: Option<&libc::timespec>,
) -> io::Result<usize> {
    // The count parameters are `int` on macOS/FreeBSD and `size_t` on NetBSD:
    // `as _` lets each platform's libc pick its own type.
    let timeout_ptr = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: both slices are live for the call; the kernel reads `changes`
    // and writes at most `events.len()` entries into `events`; the timeout is
    // null or points to a live timespec.
    let n = cvt(unsafe {
        libc::kevent(
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
pub(crate) fn kevent_zeroed() -> libc::kevent {
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
        libc::select(
            nfds,
            &mut read.0,
            &mut write.0,
            std::ptr::null_mut(),
            timeout_ptr,
        )
    })?;
    Ok(n as usize)
}

// ------------------------------------------------------------------ accept

/// Accept one pending connection as a close-on-exec socket (non-blocking if
/// asked: the selector modes), with the peer's address. An interrupted call
/// returns EINTR rather than retrying, so a blocking server hears signals.
///
/// Linux does it in one call, `accept4(fd, &addr, &len,
/// SOCK_CLOEXEC|SOCK_NONBLOCK)` (`man 2 accept4`), so no other thread can
/// fork-exec with the fd open in between.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub fn accept(listener: RawFd, nonblocking: bool) -> io::Result<(OwnedFd, std::net::SocketAddr)> {
    let mut storage = SockaddrBuf::new();
    let mut flags = libc::SOCK_CLOEXEC;
    if nonblocking {
        flags |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: `storage` is a writable sockaddr_storage and `len` holds its
    // size, as accept4 requires; it writes at most that many bytes.
    let fd =
        cvt(unsafe { libc::accept4(listener, storage.as_mut_ptr(), &mut storage.len, flags) })?;
    let fd = owned(fd);
    Ok((fd, storage.to_socket_addr()?))
}

/// Accept one pending connection as a non-blocking, close-on-exec socket.
///
/// macOS and some BSDs have no `accept4`: `accept(2)`, then `fcntl(2)` twice,
/// and on macOS `SO_NOSIGPIPE` so a write to a closed peer returns EPIPE instead of
/// killing the process (there is no `MSG_NOSIGNAL` there).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub fn accept(listener: RawFd, nonblocking: bool) -> io::Result<(OwnedFd, std::net::SocketAddr)> {
    let mut storage = SockaddrBuf::new();
    // SAFETY: `storage` is a writable sockaddr_storage and `len` holds its size.
    let fd = cvt(unsafe { libc::accept(listener, storage.as_mut_ptr(), &mut storage.len) })?;
    let fd = owned(fd);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    set_cloexec(raw)?;
    if nonblocking {
        // SAFETY: integer arguments only.
        let fl = cvt(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
        // SAFETY: integer arguments only.
        cvt(unsafe { libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK) })?;
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        let one: libc::c_int = 1;
        // SAFETY: the option value points to a live c_int of the size passed.
        cvt(unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    Ok((fd, storage.to_socket_addr()?))
}

/// A `sockaddr_storage` for accept to fill in, and its length.
struct SockaddrBuf {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockaddrBuf {
    fn new() -> SockaddrBuf {
        SockaddrBuf {
            // SAFETY: sockaddr_storage is plain integers; all-zero is valid.
            storage: unsafe { std::mem::zeroed() },
            len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    /// Read the address the kernel wrote, by its family.
    fn to_socket_addr(&self) -> io::Result<std::net::SocketAddr> {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
        match libc::c_int::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the kernel wrote a sockaddr_in, and
                // sockaddr_storage is large and aligned enough for any address.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("accept returned address family {family}"),
            )),
        }
    }
}

// ------------------------------------------------------ the self-pipe trick

/// The write ends of the signal pipes, one per event loop, for the handler
/// (which may only call async-signal-safe functions and cannot capture
/// anything). Slots hold -1 when free.
static SIGNAL_PIPES: [std::sync::atomic::AtomicI32; 64] =
    [const { std::sync::atomic::AtomicI32::new(-1) }; 64];

/// Set once SIGINT or SIGTERM has arrived: see [`stop_requested`].
static STOP_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether SIGINT or SIGTERM has been delivered to a handler installed by
/// [`signal_pipe`]. A load of an atomic: a blocking server can ask between
/// two calls without making a third.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(std::sync::atomic::Ordering::Relaxed)
}

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe calls here (`man 7 signal-safety`): write(2) and
    // atomics are. Save errno so the interrupted code does not see ours.
    let saved = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if signal == libc::SIGINT || signal == libc::SIGTERM {
        STOP_REQUESTED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let byte = signal as u8;
    for slot in &SIGNAL_PIPES {
        let fd = slot.load(std::sync::atomic::Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: `byte` is a live one-byte buffer. If the pipe is full
            // the write fails with EAGAIN, which is fine: a wake-up is pending.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
    }
    set_errno(saved);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_errno(value: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = value }
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
fn set_errno(value: libc::c_int) {
    // SAFETY: __error returns this thread's errno slot.
    unsafe { *libc::__error() = value }
}

#[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
fn set_errno(value: libc::c_int) {
    // SAFETY: __errno returns this thread's errno slot.
    unsafe { *libc::__errno() = value }
}

/// `pipe2(fds, O_CLOEXEC|O_NONBLOCK)`: both ends non-blocking and
/// close-on-exec in one call; macOS has no pipe2, so there it is `pipe` and
/// four `fcntl`s.
pub fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?)
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        let (read, write) = nix::unistd::pipe()?;
        for fd in [&read, &write] {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        Ok((read, write))
    }
}

/// Route `signals` into a new pipe: each delivery writes the signal's number
/// as one byte into every pipe made this way (one per event loop), and the
/// returned read end can be registered with a selector like any socket. This
/// is how an event loop hears SIGINT/SIGTERM without a flag polled on a timer
/// (the "self-pipe trick"; `man 7 signal`).
///
/// No `SA_RESTART`: a blocking call in progress fails with EINTR, and the
/// selector turns that into an empty batch.
pub fn signal_pipe(signals: &[nix::sys::signal::Signal]) -> io::Result<OwnedFd> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet};
    use std::sync::atomic::Ordering::SeqCst;
    let (read, write) = nonblocking_pipe()?;
    // The write end lives as long as the process: the handler may run any time.
    let write = std::os::fd::IntoRawFd::into_raw_fd(write);
    let slot = SIGNAL_PIPES
        .iter()
        .find(|slot| slot.compare_exchange(-1, write, SeqCst, SeqCst).is_ok());
    if slot.is_none() {
        return Err(io::Error::other("too many signal pipes"));
    }
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for &signal in signals {
        // SAFETY: `on_signal` only makes async-signal-safe calls (write and
        // errno access) and reads only atomics.
        unsafe { nix::sys::signal::sigaction(signal, &action) }?;
    }
    Ok(read)
}

// ------------------------------------------------------------ searching

/// `memchr(haystack, byte, len)` (`man 3 memchr`): the index of the first
/// `byte`. The C library's version scans 32 or 64 bytes per instruction with
/// SIMD; a 64 KiB line is searched in about a microsecond. It is the same
/// function the C reference server calls.
pub fn memchr(byte: u8, haystack: &[u8]) -> Option<usize> {
    let start = haystack.as_ptr();
    // SAFETY: the pointer and length describe a live slice, and memchr reads
    // at most `len` bytes from the pointer.
    let found = unsafe { libc::memchr(start.cast(), libc::c_int::from(byte), haystack.len()) };
    if found.is_null() {
        None
    } else {
        Some(found as usize - start as usize)
    }
}
