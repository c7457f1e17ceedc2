//! The course's first server: one client at a time.
//!
//! ```python
//! while True:
//!     conn, addr = s.accept()
//!     with conn:
//!         while data := conn.recv(1024):
//!             conn.sendall(reply(data))
//! ```
//!
//! While it serves one client, the next ones wait in the kernel's listen
//! backlog: their `connect` has succeeded, but nobody reads what they send.
//! [`serve_client`] is also what each thread runs in the `threads` and
//! `pool` modes: a thread per client turns this loop into a concurrent server.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use super::config::Config;
use super::deadlines::LINGER;
use super::faults::{self, Call};
use super::handler::{self, Rules};
use super::signals::{self, Signals};
use super::summary::{Summary, Totals};
use super::syscalls::Syscalls;
use crate::protocol;

/// Read buffer per client. Smaller than the event loop's single 64 KiB
/// buffer, because here every client (every thread) has its own.
const READ_CHUNK: usize = 16 * 1024;

/// Accept, serve that client until it leaves, repeat; until SIGINT/SIGTERM.
pub fn serve(listener: TcpListener, config: &Config) -> io::Result<Summary> {
    // The signal handler writes to this pipe, and, since it is installed
    // without SA_RESTART, makes the blocked accept or read return EINTR.
    // SIGUSR1 (the others' "print your counters") is caught too, so it does not
    // kill this mode; it only interrupts a read, which is then retried.
    let _signals = Signals::install()?;
    let stop = signals::stop_requested;
    let totals = Totals::default();
    let mut calls = Syscalls::new(config.trace);
    while !stop() {
        let (fd, addr) = match calls.accept(&listener, false) {
            Ok(accepted) => accepted,
            Err(e) => {
                after_failed_accept(&e);
                continue;
            }
        };
        Totals::add(&totals.connections, 1);
        let stream = TcpStream::from(fd);
        if let Err(e) = serve_client(&stream, &addr, config, &totals, &mut calls, &stop) {
            faults::dropped(&addr, &e);
        }
        calls.close(OwnedFd::from(stream), &format!("{addr}: client done"));
    }
    Ok(Summary { totals, syscalls: calls.named(), wakeups: None })
}

/// Serve one client on a blocking socket until it leaves: read, answer every
/// complete line, write the replies, repeat. `stop` is asked before each
/// read (a signal may have come while we were busy) and whenever a read is
/// interrupted by one. The caller closes the socket.
///
/// On the client's EOF, the replies are all written, then our side is shut
/// down (the half-close the protocol promises). A line over `--max-line` is
/// answered with the error, then the connection is closed gently.
pub fn serve_client(
    stream: &TcpStream,
    addr: &SocketAddr,
    config: &Config,
    totals: &Totals,
    calls: &mut Syscalls,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    // SO_RCVTIMEO: a read that waits longer than this fails with EAGAIN.
    stream.set_read_timeout(config.idle_timeout)?;
    let rules = Rules::new(config);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut partial: Vec<u8> = Vec::new();
    let mut replies = Vec::new();
    while !stop() {
        let asked = Instant::now();
        let n = match calls.read(stream, &mut buf, addr) {
            Ok(n) => n,
            // SO_RCVTIMEO expired: the client has been silent too long. On a
            // blocking socket that is the only EAGAIN the kernel gives; one
            // sooner (strace's `--inject`) is retried, as EINTR is.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && timed_out(asked, config) => {
                send_all(stream, protocol::IDLE_TIMEOUT, addr, totals, calls)?;
                return linger(stream, calls);
            }
            Err(e) if faults::is_retry(Call::Read, &e) => continue,
            Err(e) => return Err(e),
        };
        Totals::add(&totals.bytes_in, n as u64);
        replies.clear();
        // The one answering function every mode calls (`handler::answer`):
        // with `--work-ms`, only this client's thread sleeps in it.
        let handled = handler::answer(&rules, &mut partial, &buf[..n], n == 0, &mut replies);
        Totals::add(&totals.lines, handled.lines);
        send_all(stream, &replies, addr, totals, calls)?;
        if n == 0 {
            break;
        }
        if handled.close.is_some() {
            return linger(stream, calls);
        }
    }
    // Everything owed is written. The caller's close sends our FIN, which
    // the client reads as EOF: no separate shutdown(2) is needed.
    Ok(())
}

/// `send` until the kernel has taken all of `buf` (Python's `sendall`).
fn send_all(
    stream: &TcpStream,
    mut buf: &[u8],
    addr: &SocketAddr,
    totals: &Totals,
    calls: &mut Syscalls,
) -> io::Result<()> {
    while !buf.is_empty() {
        match calls.send(stream.as_raw_fd(), buf, addr) {
            Ok(n) => {
                Totals::add(&totals.bytes_out, n as u64);
                buf = &buf[n..];
            }
            // EINTR; or EAGAIN, which a blocking socket without SO_SNDTIMEO
            // never gives (strace can): the next send blocks until there is room.
            Err(e) if faults::is_retry(Call::Send, &e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a read asked at `asked` waited out `--idle-timeout`. Half of it
/// will do: the kernel counts in clock ticks and may round, while an EAGAIN
/// that is not the timeout comes back in microseconds.
fn timed_out(asked: Instant, config: &Config) -> bool {
    config.idle_timeout.is_some_and(|idle| asked.elapsed() >= idle / 2)
}

/// A failed `accept` (`faults.rs`: it costs that connection only): said in
/// a line, then accept again; short of fds or memory, after a pause, for
/// the queue is not going anywhere and trying at once would spin.
pub fn after_failed_accept(e: &io::Error) {
    if faults::is_retry(Call::Accept, e) {
        return;
    }
    faults::accept_failed(e);
    if faults::is_shortage(e) {
        thread::sleep(SHORTAGE_PAUSE);
    }
}

/// How long a blocking accept loop waits after running short of fds or
/// memory: long enough not to spin, short enough that nobody notices.
const SHORTAGE_PAUSE: Duration = Duration::from_millis(50);

/// Shut down our side, then read and discard until the client's EOF (or
/// `LINGER`), so the error just written is not destroyed by a reset.
fn linger(stream: &TcpStream, calls: &mut Syscalls) -> io::Result<()> {
    calls.shutdown_write(stream.as_raw_fd(), "refused: our FIN, then discard input")?;
    stream.set_read_timeout(Some(LINGER))?;
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    while let Ok(1..) = calls.read(stream, &mut sink, &"a refused client") {
        if Instant::now() > until {
            break;
        }
    }
    Ok(())
}
