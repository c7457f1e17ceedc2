//! When a system call fails: the policy, written once.
//!
//! A server makes a handful of calls over and over, and any of them can
//! fail. What it does then is one of four things, and [`class`] says which,
//! for every call ([`Call`]) and errno. Where the errno matters, the modes
//! ask it at the line that decides; where it cannot (a failed registration
//! or thread start is always one client's), that line does what it says.
//! `docs/faults.md` lists those lines, row by row, with the man page that
//! lists each errno; `tests/faults.rs` makes each failure happen with
//! `strace --inject` and checks the outcome against [`class`]:
//!
//! | [`Class`]      | what the server does                                        |
//! |----------------|-------------------------------------------------------------|
//! | `Retry`        | nothing lost: try again (at the next readiness, or at once) |
//! | `Connection`   | that client is closed on purpose, one line says why         |
//! | `Listener`     | that accept is given up; serving, and accepting, go on      |
//! | `Fatal`        | one line (what, where, why), exit status 1                  |
//!
//! The rule of thumb: an error is only as big as the thing it is about. A
//! failed `read` is about one socket, so one client pays; a failed `accept4`
//! is about one connection not yet ours; a failed wait is about the loop
//! itself, and a loop that cannot wait cannot serve anyone.

use std::fmt;
use std::io;

use crate::words;

/// The calls whose failure a server decides on, by what they are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `accept4` (`accept` without it): the next client from the listen queue.
    Accept,
    /// `read` (or `recvfrom`) on a client's socket.
    Read,
    /// `sendto` (or `write`) on a client's socket.
    Send,
    /// `epoll_ctl`/`kevent` for one client: add it, change or drop its events.
    Register,
    /// Starting a thread for one client (`clone3`): the thread modes.
    Spawn,
    /// The wait: `epoll_wait`, `kevent`, `poll`, `select`, `io_uring_enter`.
    Wait,
    /// Hybrid's worker waking the loop (`write` to its eventfd or pipe).
    Wake,
}

/// What the server does when a call fails (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Try again: nothing is lost, and the retry waits for a reason to
    /// succeed (readiness, a blocking call) rather than spin.
    Retry,
    /// Close this one client, on purpose, with a line saying why.
    Connection,
    /// Give up this accept; the listener and every client carry on.
    Listener,
    /// Stop the server: one line, exit status 1.
    Fatal,
}

/// What the server does when `call` fails with `e`.
pub fn class(call: Call, e: &io::Error) -> Class {
    let errno = e.raw_os_error();
    // EINTR: a signal arrived during the call (signal(7), "Interruption of
    // system calls"); nothing happened, so do it again. EAGAIN (EWOULDBLOCK):
    // not now; on a non-blocking socket, "wait for readiness", which is what
    // the loops do next. io_uring_enter(2) says EBUSY and EAGAIN when the
    // kernel is short of room for completions: reap, then enter again.
    let transient = matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock);
    match call {
        // No thread for a client: clone(2)'s EAGAIN is RLIMIT_NPROC or
        // threads-max, not "not now", and trying again at once fails the
        // same way. That client is told "server busy" and closed.
        Call::Spawn => Class::Connection,
        _ if transient => Class::Retry,
        Call::Wait if errno == Some(libc::EBUSY) => Class::Retry,
        // Anything else on one client's socket (ECONNRESET, EPIPE, ENOMEM,
        // ENOBUFS, ETIMEDOUT) or in its registration (ENOMEM, ENOSPC: see
        // epoll_ctl(2) and /proc/sys/fs/epoll/max_user_watches).
        Call::Read | Call::Send | Call::Register => Class::Connection,
        // accept(2): ECONNABORTED, EPERM (a firewall), EPROTO, ENOBUFS,
        // ENOMEM, EMFILE, ENFILE all concern the next connection, not the
        // listener: give that one up (out of fds: `spare_fd.rs`), go on.
        Call::Accept => Class::Listener,
        // A loop that cannot wait, or a worker that cannot wake it, serves
        // nobody: stop, and say why.
        Call::Wait | Call::Wake => Class::Fatal,
    }
}

/// Whether `call`'s failure `e` is one to try again: [`class`] says
/// [`Class::Retry`].
pub fn is_retry(call: Call, e: &io::Error) -> bool {
    class(call, e) == Class::Retry
}

/// Whether an accept failed because the process or the system is short of
/// something (fds, memory, buffers): trying again at once fails the same
/// way, so a blocking accept loop pauses first.
pub fn is_shortage(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// The one line a [`Class::Connection`] failure prints: `client
/// 127.0.0.1:5555 dropped: connection reset by peer`.
pub fn dropped(who: &dyn fmt::Display, e: &io::Error) {
    eprintln!("client {who} dropped: {}", words::cause(e));
}

/// The one line a [`Class::Listener`] failure prints: `cannot accept a
/// client: no buffer space available`. A client that gave up before we
/// accepted it (ECONNABORTED) is its own business, said nowhere.
pub fn accept_failed(e: &io::Error) {
    if e.raw_os_error() != Some(libc::ECONNABORTED) {
        eprintln!("cannot accept a client: {}", words::cause(e));
    }
}

/// A [`Class::Fatal`] failure of the wait, said as the one line the server
/// exits with: `cannot wait in epoll_wait: invalid argument (...)`. The
/// selector has retried EINTR already; anything else is not going away.
pub fn wait_failed(call: &str, e: io::Error) -> io::Error {
    let hint = "its clients are closed; start it again, under strace -f to see the call";
    words::failed(format!("wait in {call}"), e, Some(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn a_signal_or_not_now_is_retried_on_every_socket_call_and_the_wait() {
        for call in [Call::Accept, Call::Read, Call::Send, Call::Wait, Call::Wake] {
            assert_eq!(class(call, &errno(libc::EINTR)), Class::Retry, "{call:?}");
            assert_eq!(class(call, &errno(libc::EAGAIN)), Class::Retry, "{call:?}");
        }
        assert_eq!(class(Call::Wait, &errno(libc::EBUSY)), Class::Retry);
    }

    #[test]
    fn one_clients_failure_costs_that_client_only() {
        for (call, code) in [
            (Call::Read, libc::ECONNRESET),
            (Call::Read, libc::ENOMEM),
            (Call::Send, libc::EPIPE),
            (Call::Send, libc::ENOBUFS),
            (Call::Register, libc::ENOMEM),
            (Call::Register, libc::ENOSPC),
            (Call::Spawn, libc::EAGAIN),
        ] {
            assert_eq!(class(call, &errno(code)), Class::Connection, "{call:?} {code}");
        }
    }

    #[test]
    fn a_failed_accept_gives_up_that_connection_only() {
        for code in [libc::ECONNABORTED, libc::EPERM, libc::ENOBUFS, libc::EMFILE, libc::EPROTO] {
            assert_eq!(class(Call::Accept, &errno(code)), Class::Listener, "{code}");
        }
    }

    #[test]
    fn a_wait_that_fails_for_real_stops_the_server() {
        for code in [libc::EBADF, libc::EINVAL, libc::EFAULT, libc::ENOMEM] {
            assert_eq!(class(Call::Wait, &errno(code)), Class::Fatal, "{code}");
        }
    }
}
