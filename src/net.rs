//! Socket plumbing shared by every mode: listen, accept, send without SIGPIPE.
//!
//! The course's `socket(); setsockopt(SO_REUSEADDR); bind(); listen()` in
//! one function, on `nix`, so the calls read one to one against strace.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::bugs::Bug;

use nix::sys::socket::{
    self, setsockopt, sockopt, AddressFamily, Backlog, MsgFlags, SockFlag, SockType,
    SockaddrLike as _, SockaddrStorage,
};

/// `socket(2)`, `setsockopt(SO_REUSEADDR)`, `bind(2)`, `listen(2)`.
///
/// `SO_REUSEADDR` lets a restarted server bind its port at once instead of
/// waiting out the old connections' TIME_WAIT. `nonblocking` is for the
/// selector modes, whose accept must return EAGAIN rather than block the loop.
/// `reuse_port` (`SO_REUSEPORT`) lets several event loops each own a listener
/// on the same port, the kernel spreading new connections between them.
pub fn listen(
    addr: SocketAddr,
    backlog: i32,
    nonblocking: bool,
    reuse_port: bool,
) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // Linux and FreeBSD set both flags in socket(2) itself; the others need
    // fcntl(2) afterwards (see the end of this function).
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let flags = if nonblocking {
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK
    } else {
        SockFlag::SOCK_CLOEXEC
    };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let flags = SockFlag::empty();
    let fd: OwnedFd = socket::socket(family, SockType::Stream, flags, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    // nix refuses a backlog over the C headers' SOMAXCONN (4096 in glibc, 128
    // on macOS); the kernel caps it at its own limit (net.core.somaxconn,
    // kern.ipc.somaxconn) anyway, so a larger one asks for as many as allowed.
    socket::listen(&fd, Backlog::new(backlog).unwrap_or(Backlog::MAXCONN))?;
    let listener = TcpListener::from(fd);
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        fcntl(&listener, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        listener.set_nonblocking(nonblocking)?;
    }
    Ok(listener)
}

/// Accept one connection, close-on-exec, with the peer's address; made
/// non-blocking for a selector loop, left blocking for a thread to serve.
/// Unlike `TcpListener::accept`, a signal interrupting it returns EINTR
/// instead of retrying, so a blocking server hears SIGTERM.
///
/// Linux and FreeBSD do it in one call, `accept4(fd, &addr, &len,
/// SOCK_CLOEXEC|SOCK_NONBLOCK)` (`man 2 accept4`), so no other thread can
/// fork-exec with the fd open in between. Elsewhere it is `accept(2)`, then
/// the flags by `fcntl(2)`, and on macOS `SO_NOSIGPIPE` (see [`send`]).
pub fn accept(listener: &TcpListener, nonblocking: bool) -> io::Result<(OwnedFd, SocketAddr)> {
    let (fd, peer) = ffi::accept(listener.as_raw_fd(), nonblocking)?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        if nonblocking {
            let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
            fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        }
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        if sigpipe_guarded() {
            ffi::no_sigpipe(fd.as_raw_fd())?;
        }
    }
    let addr = if let Some(v4) = peer.as_sockaddr_in() {
        SocketAddr::from(*v4)
    } else if let Some(v6) = peer.as_sockaddr_in6() {
        SocketAddr::from(*v6)
    } else {
        let why = format!("accept returned a non-IP address ({:?})", peer.family());
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    };
    Ok((fd, addr))
}

/// The socket calls nix has no wrapper for: `accept4` that also hands back
/// the peer's address, and macOS's `SO_NOSIGPIPE`. The one place in this
/// file where `unsafe` is allowed, each block with its reason.
#[allow(unsafe_code)]
mod ffi {
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    use nix::sys::socket::{SockaddrLike as _, SockaddrStorage};

    /// `accept4(fd, &addr, &len, flags)` where there is one, else `accept`;
    /// the new socket and the address the kernel wrote.
    pub(super) fn accept(
        listener: RawFd,
        nonblocking: bool,
    ) -> io::Result<(OwnedFd, SockaddrStorage)> {
        // SAFETY: sockaddr_storage is plain integers, for which all-zero is valid.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of_val(&storage) as libc::socklen_t;
        let addr = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let fd = {
            let mut flags = libc::SOCK_CLOEXEC;
            if nonblocking {
                flags |= libc::SOCK_NONBLOCK;
            }
            // SAFETY: `addr` points to a writable sockaddr_storage and `len`
            // holds its size; the kernel writes at most that many bytes.
            unsafe { libc::accept4(listener, addr, &mut len, flags) }
        };
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let fd = {
            // O_NONBLOCK is set by fcntl afterwards, in `net::accept`.
            let _ = nonblocking;
            // SAFETY: as above.
            unsafe { libc::accept(listener, addr, &mut len) }
        };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the kernel wrote a socket address of `len` bytes into the
        // storage, which is large and aligned enough for any address.
        let peer = unsafe { SockaddrStorage::from_raw(addr, Some(len)) };
        let peer = peer.ok_or_else(|| io::Error::other("accept returned no address"))?;
        Ok((fd, peer))
    }

    /// `setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, [1], 4)`.
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    pub(super) fn no_sigpipe(fd: RawFd) -> io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: the option value points to a live c_int of the size passed.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Whether this OS has `accept4`, which sets the new socket's flags in the
/// same call (Linux and FreeBSD); elsewhere [`accept`] makes `fcntl` calls too.
pub const ACCEPT4: bool =
    cfg!(any(target_os = "linux", target_os = "android", target_os = "freebsd"));

/// The name strace shows for [`accept`], for the summary line.
pub const ACCEPT_CALL: &str = if ACCEPT4 { "accept4" } else { "accept" };
/// The name strace shows for [`send`]: libc's send() is sendto() underneath.
pub const SEND_CALL: &str = "sendto";

/// The flags that keep a write to a vanished peer from raising SIGPIPE.
///
/// By default, writing to a socket whose peer has gone sends the process
/// SIGPIPE, which kills it: one rude client would take the server down.
/// (Rust's runtime happens to ignore SIGPIPE before `main`, but a server
/// should not lean on that.) Linux and the BSDs have `MSG_NOSIGNAL` per call
/// (strace shows it on every `sendto`); macOS has no such flag and sets
/// `SO_NOSIGPIPE` once per socket instead, at accept.
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
const SEND_FLAGS: MsgFlags = MsgFlags::MSG_NOSIGNAL;
#[cfg(any(target_os = "macos", target_os = "ios"))]
const SEND_FLAGS: MsgFlags = MsgFlags::empty();

/// Whether writes are kept from raising SIGPIPE: always, but for the bug
/// `--bug sigpipe`, which sends without `MSG_NOSIGNAL` (on macOS, skips
/// `SO_NOSIGPIPE`) and puts SIGPIPE back to its default action, death
/// (`signals.rs`), as a C program has it.
pub fn sigpipe_guarded() -> bool {
    !Bug::Sigpipe.is_on()
}

/// The flags [`send`] passes: `MSG_NOSIGNAL` where there is one.
pub fn send_flags() -> MsgFlags {
    if sigpipe_guarded() {
        SEND_FLAGS
    } else {
        MsgFlags::empty()
    }
}

/// `send(fd, buf, MSG_NOSIGNAL)`: write without risking SIGPIPE. Returns how
/// many bytes the kernel took, which may be fewer than `buf.len()`.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    Ok(socket::send(fd, buf, send_flags())?)
}

/// `read(2)` into `buf`: 0 means the peer has shut down its side.
pub fn read(fd: impl std::os::fd::AsFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(fd, buf)?)
}

/// `setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1)`: no Nagle delay.
pub fn no_delay(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(setsockopt(&fd, sockopt::TcpNoDelay, &true)?)
}

/// `shutdown(fd, SHUT_WR)`: send our FIN, keep reading. The half-close the
/// protocol uses after the last reply.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    Ok(socket::shutdown(fd, socket::Shutdown::Write)?)
}
