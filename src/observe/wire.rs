//! What a client does on the wire to provoke a server: the moves the labs
//! make, and the grader makes on any server.
//!
//! Each is a plain blocking socket with timeouts, so that no move can hang
//! the tool that makes it: a server that never answers costs a timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The longest answer [`ask`] reads before it gives up on a newline.
pub const ASK_LIMIT: usize = 1 << 20;

/// A connection whose reads time out after `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    Ok(stream)
}

/// A connection with a receive buffer of only `bytes` (`SO_RCVBUF`, set
/// before `connect` so the window the server is offered is small from the
/// first byte): a client that cannot take much at a time. Without it,
/// Linux's loopback grows the buffer to several MiB, and a server that
/// takes a short write for a whole one never meets a short write.
pub fn connect_small(addr: SocketAddr, bytes: usize, timeout: Duration) -> io::Result<TcpStream> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket::socket(family, SockType::Stream, SockFlag::empty(), None)?;
    socket::setsockopt(&fd, sockopt::RcvBuf, &bytes)?;
    // A blocking connect: on the loopback it completes or is refused at once.
    socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(timeout))?;
    Ok(stream)
}

/// Write `chunk` to `stream` over and over for `span`, or until `cap` bytes
/// are sent, or the server ends the connection; returns the bytes sent. A
/// write the server does not take returns after 50 ms, and is tried again:
/// a client that keeps pushing however full the pipe is.
pub fn push_for(stream: &TcpStream, chunk: &[u8], span: Duration, cap: usize) -> io::Result<usize> {
    stream.set_write_timeout(Some(Duration::from_millis(50)))?;
    let (mut sent, deadline) = (0, Instant::now() + span);
    while sent < cap && Instant::now() < deadline {
        match (&*stream).write(chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => break, // the server ended the connection
        }
    }
    Ok(sent)
}

/// Close `stream` with a reset rather than a FIN: `SO_LINGER` with a zero
/// timeout makes close(2) send RST and drop whatever is unsent or unread
/// (socket(7)), as a client that crashes or is killed can.
pub fn reset(stream: TcpStream) -> io::Result<()> {
    let abort = libc::linger { l_onoff: 1, l_linger: 0 };
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &abort)?;
    drop(stream);
    Ok(())
}

/// Send `line`, and read the line the server answers within `timeout`,
/// without its newline. `None`: no answer in time, or the connection ended
/// first. An answer longer than [`ASK_LIMIT`] is an error, not a buffer to
/// grow: the server may be sending without end.
pub fn ask(mut stream: &TcpStream, line: &[u8], timeout: Duration) -> io::Result<Option<String>> {
    let deadline = Instant::now() + timeout;
    stream.write_all(line)?;
    let mut answer = Vec::new();
    let mut buf = [0; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        stream.set_read_timeout(Some(left))?;
        // One byte at a time: whatever follows the newline is the next
        // answer's, and must stay in the socket for it.
        match stream.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(_) if buf[0] == b'\n' => return Ok(Some(String::from_utf8_lossy(&answer).into())),
            Ok(_) if answer.len() == ASK_LIMIT => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("an answer of over {ASK_LIMIT} bytes with no newline"),
                ))
            }
            Ok(_) => answer.push(buf[0]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    }
}
