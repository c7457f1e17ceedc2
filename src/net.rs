//! Socket plumbing shared by every mode: listen, accept, send without SIGPIPE.
//!
//! The course's `socket(); setsockopt(SO_REUSEADDR); bind(); listen()` in
//! one function, on `nix`, so the calls read one to one against strace.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    self, setsockopt, sockopt, AddressFamily, Backlog, MsgFlags, SockFlag, SockType,
    SockaddrStorage,
};

/// `socket(2)`, `setsockopt(SO_REUSEADDR)`, `bind(2)`, `listen(2)`.
///
/// `SO_REUSEADDR` lets a restarted server bind its port at once instead of
/// waiting out the old connections' TIME_WAIT. `nonblocking` is for the
/// selector modes, whose accept must return EAGAIN rather than block the loop.
/// `reuse_port` (`SO_REUSEPORT`) lets several event loops each own a listener
/// on the same port, the kernel spreading new connections between them.
pub fn listen(
    host: &str,
    port: u16,
    backlog: i32,
    nonblocking: bool,
    reuse_port: bool,
) -> io::Result<TcpListener> {
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no address for {host}"),
        )
    })?;
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
    socket::listen(&fd, Backlog::new(backlog).map_err(io::Error::from)?)?;
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
/// `accept4(fd, &addr, &len, SOCK_CLOEXEC|SOCK_NONBLOCK)` on Linux (the
/// code is in `selector/sys.rs`). Unlike `TcpListener::accept`, a signal
/// interrupting it returns EINTR instead of retrying, so a blocking server
/// hears SIGTERM.
pub fn accept(listener: &TcpListener, nonblocking: bool) -> io::Result<(OwnedFd, SocketAddr)> {
    crate::selector::sys::accept(listener.as_raw_fd(), nonblocking)
}

/// The name strace shows for [`accept`], for the summary line.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub const ACCEPT_CALL: &str = "accept4";
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub const ACCEPT_CALL: &str = "accept";
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

/// `send(fd, buf, MSG_NOSIGNAL)`: write without risking SIGPIPE. Returns how
/// many bytes the kernel took, which may be fewer than `buf.len()`.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    Ok(socket::send(fd, buf, SEND_FLAGS)?)
}

/// `read(2)` into `buf`: 0 means the peer has shut down its side.
pub fn read(fd: impl std::os::fd::AsFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(fd, buf)?)
}

/// `setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1)`: no Nagle delay.
pub fn no_delay(fd: &OwnedFd) -> io::Result<()> {
    Ok(setsockopt(fd, sockopt::TcpNoDelay, &true)?)
}

/// `shutdown(fd, SHUT_WR)`: send our FIN, keep reading. The half-close the
/// protocol uses after the last reply.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    Ok(socket::shutdown(fd, socket::Shutdown::Write)?)
}
