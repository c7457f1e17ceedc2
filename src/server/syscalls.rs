//! Every socket call a server makes, in one place: made, counted, narrated.
//!
//! The servers never call `accept`, `read`, `send`, `shutdown` or `close`
//! directly; they go through [`Syscalls`], which keeps a count of each (for
//! the summary line and `--stats`) and, with `--trace`, prints the call as
//! strace would, followed by why it was made. The selector narrates its own
//! calls (`epoll_ctl`, `epoll_wait`, ...) the same way.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::net;
use crate::trace;
use crate::words;

/// Counters of the calls made, and whether to narrate them. The fields are
/// private: a call is counted (and narrated) by making it here, or, for the
/// few a mode must make itself, by telling this funnel ([`Syscalls::made`],
/// [`Syscalls::count`]).
#[derive(Default, Clone)]
pub struct Syscalls {
    trace: bool,
    accept: u64,
    read: u64,
    send: u64,
    shutdown: u64,
    close: u64,
    setsockopt: u64,
    /// Threads started (`clone3` on Linux), in the thread modes.
    clone: u64,
    /// Hybrid mode: workers' `write(eventfd)` wake-ups of the loop.
    write: u64,
}

/// A call a mode makes outside this funnel's wrappers, to be counted here:
/// a thread's `clone3`, hybrid's `read` and `write` of its eventfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Read,
    Write,
    Clone,
}

impl Syscalls {
    /// Counters that narrate when `trace` is set.
    pub fn new(trace: bool) -> Syscalls {
        Syscalls { trace, ..Syscalls::default() }
    }

    /// Whether calls are narrated (`--trace`).
    pub fn tracing(&self) -> bool {
        self.trace
    }

    /// Count `n` calls of `call` made elsewhere (a thread started, the
    /// wake-ups hybrid's workers wrote).
    pub fn count(&mut self, call: Counted, n: u64) {
        *match call {
            Counted::Read => &mut self.read,
            Counted::Write => &mut self.write,
            Counted::Clone => &mut self.clone,
        } += n;
    }

    /// Count one call the caller made itself, and narrate it: `shown` as
    /// strace prints it, its `result`, and why it was made.
    pub fn made(&mut self, call: Counted, shown: &str, result: &str, why: &str) {
        self.count(call, 1);
        self.narrate(shown, result, why);
    }

    /// Narrate a call counted elsewhere (by another thread, added up later
    /// with [`Syscalls::count`]).
    pub fn narrate(&self, shown: &str, result: &str, why: &str) {
        if self.trace {
            trace::line(format_args!("{shown}"), result, format_args!("{why}"));
        }
    }

    /// `accept4(listener, ..., SOCK_CLOEXEC[|SOCK_NONBLOCK])`.
    pub fn accept(
        &mut self,
        listener: &TcpListener,
        nonblocking: bool,
    ) -> io::Result<(OwnedFd, SocketAddr)> {
        self.accept += 1;
        let fd = listener.as_raw_fd();
        let r = net::accept(listener, nonblocking);
        if self.trace {
            let flags = match (net::ACCEPT4, nonblocking) {
                (false, _) => "",
                (true, true) => ", SOCK_CLOEXEC|SOCK_NONBLOCK",
                (true, false) => ", SOCK_CLOEXEC",
            };
            let (addr, result, why) = match &r {
                Ok((client, addr)) => (
                    format!("{}, [16]", trace::sockaddr(addr)),
                    client.as_raw_fd().to_string(),
                    format!("new client {addr}"),
                ),
                Err(e) => ("NULL, NULL".into(), trace::result(Err(e)), accept_failure(e).into()),
            };
            let call = format_args!("{}({fd}, {addr}{flags})", net::ACCEPT_CALL);
            trace::line(call, &result, format_args!("{why}"));
            if let Ok((client, _)) = &r {
                narrate_accept_extras(client.as_raw_fd(), nonblocking);
            }
        }
        if let Ok((client, _)) = &r {
            let _ = self.no_delay(client.as_fd(), "replies leave at once: no Nagle delay");
        }
        r
    }

    /// `setsockopt(fd, SOL_TCP, TCP_NODELAY, [1], 4)`: turn off Nagle's
    /// algorithm, which holds a small segment back while an earlier one is
    /// unacknowledged, hoping to merge them. For a request/reply protocol that
    /// only adds latency: each reply should leave at once. On a listener,
    /// Linux hands the option down to every socket accepted from it.
    pub fn no_delay(&mut self, fd: BorrowedFd<'_>, why: &str) -> io::Result<()> {
        self.setsockopt += 1;
        let r = net::no_delay(fd);
        if self.trace {
            let call = format_args!("setsockopt({}, SOL_TCP, TCP_NODELAY, [1], 4)", fd.as_raw_fd());
            trace::line(call, &trace::result(r.as_ref().map(|()| 0)), format_args!("{why}"));
        }
        r
    }

    /// `read(fd, buf, len)`: 0 is the client's EOF.
    pub fn read(
        &mut self,
        fd: &impl AsFd,
        buf: &mut [u8],
        who: &dyn fmt::Display,
    ) -> io::Result<usize> {
        let fd = fd.as_fd();
        self.read += 1;
        let r = net::read(fd, buf);
        if self.trace {
            let shown = match &r {
                Ok(n) => trace::bytes(&buf[..*n]),
                Err(_) => "0x...".into(),
            };
            let why = match &r {
                Ok(0) => format!("{who}: end of file"),
                Ok(_) => format!("bytes from {who}"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => "nothing left to read".into(),
                Err(e) => format!("{who}: {}", words::cause(e)),
            };
            let call = format_args!("read({}, {shown}, {})", fd.as_raw_fd(), buf.len());
            trace::line(call, &trace::result(r.as_ref().map(|&n| n as i64)), format_args!("{why}"));
        }
        r
    }

    /// `sendto(fd, buf, len, MSG_NOSIGNAL, NULL, 0)`: may take fewer bytes.
    pub fn send(&mut self, fd: RawFd, buf: &[u8], who: &dyn fmt::Display) -> io::Result<usize> {
        self.send += 1;
        let r = net::send(fd, buf);
        if self.trace {
            let why = match &r {
                Ok(n) if *n == buf.len() => format!("replies to {who}"),
                Ok(n) => {
                    format!("the kernel took {n} of {} bytes: its send buffer is full", buf.len())
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    "send buffer full: wait for EVENT_WRITE".into()
                }
                Err(e) => format!("{who}: {}", words::cause(e)),
            };
            let call = format_args!(
                "sendto({fd}, {}, {}, {}, NULL, 0)",
                trace::bytes(buf),
                buf.len(),
                send_flags()
            );
            trace::line(call, &trace::result(r.as_ref().map(|&n| n as i64)), format_args!("{why}"));
        }
        r
    }

    /// `shutdown(fd, SHUT_WR)`: our FIN; the client's read returns 0.
    pub fn shutdown_write(&mut self, fd: RawFd, why: &str) -> io::Result<()> {
        self.shutdown += 1;
        let r = net::shutdown_write(fd);
        if self.trace {
            let call = format_args!("shutdown({fd}, SHUT_WR)");
            trace::line(call, &trace::result(r.as_ref().map(|()| 0)), format_args!("{why}"));
        }
        r
    }

    /// `close(fd)`, with the reason the client is dropped.
    pub fn close(&mut self, fd: OwnedFd, why: &str) {
        self.close += 1;
        let raw = fd.as_raw_fd();
        // Never retried, whatever it says: Linux frees the fd number before
        // anything can fail, so after an EINTR the number may already be
        // another thread's new socket (close(2), "Dealing with error returns
        // from close()"; docs/faults.md).
        drop(fd);
        if self.trace {
            trace::line(format_args!("close({raw})"), "0", format_args!("{why}"));
        }
    }

    /// Narrate the start of a thread: strace shows a `clone3` in the parent,
    /// returning the new thread's id. Call it first thing in the new thread,
    /// where that id is known for certain (it is the caller's, `gettid`).
    pub fn narrate_clone(&self, why: &str) {
        if self.trace {
            let tid = thread_id();
            let call = format_args!("clone3({{flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|..., ...}}, 88)");
            trace::line(call, &tid.to_string(), format_args!("{why}"));
        }
    }

    /// Add another thread's counts into these.
    pub fn absorb(&mut self, other: &Syscalls) {
        self.accept += other.accept;
        self.read += other.read;
        self.send += other.send;
        self.shutdown += other.shutdown;
        self.close += other.close;
        self.setsockopt += other.setsockopt;
        self.clone += other.clone;
        self.write += other.write;
    }

    /// `(name, count)` pairs for the summary line.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        let mut named = vec![
            (net::ACCEPT_CALL, self.accept),
            ("read", self.read),
            (net::SEND_CALL, self.send),
            ("shutdown", self.shutdown),
            ("close", self.close),
            ("setsockopt", self.setsockopt),
        ];
        if self.clone > 0 {
            named.push(("clone3", self.clone));
        }
        if self.write > 0 {
            named.push(("write", self.write));
        }
        named
    }
}

/// [`net::send_flags`] as strace prints them.
fn send_flags() -> &'static str {
    // The only flag ever passed is MSG_NOSIGNAL (and never on macOS).
    if net::send_flags().is_empty() {
        "0"
    } else {
        "MSG_NOSIGNAL"
    }
}

/// Without `accept4`, the flags take calls of their own: narrate them too.
fn narrate_accept_extras(fd: RawFd, nonblocking: bool) {
    if net::ACCEPT4 {
        return;
    }
    let why = "no accept4 here: the flags take calls of their own";
    let line = |call: &str| trace::line(format_args!("{call}"), "0", format_args!("{why}"));
    line(&format!("fcntl({fd}, F_SETFD, FD_CLOEXEC)"));
    if nonblocking {
        line(&format!("fcntl({fd}, F_GETFL)"));
        line(&format!("fcntl({fd}, F_SETFL, O_RDWR|O_NONBLOCK)"));
    }
    if cfg!(any(target_os = "macos", target_os = "ios")) && net::sigpipe_guarded() {
        line(&format!("setsockopt({fd}, SOL_SOCKET, SO_NOSIGPIPE, [1], 4)"));
    }
}

/// Why an accept failed, in a word.
fn accept_failure(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EAGAIN) => "no more pending connections",
        Some(libc::EMFILE | libc::ENFILE) => "out of file descriptors",
        Some(libc::ECONNABORTED) => "the client gave up before we accepted",
        // The program gets EINTR; strace shows the kernel's code from before
        // the handler ran: `= ? ERESTARTSYS (To be restarted if SA_RESTART is set)`.
        Some(libc::EINTR) if cfg!(target_os = "linux") => {
            "interrupted by a signal (strace: ? ERESTARTSYS)"
        }
        Some(libc::EINTR) => "interrupted by a signal",
        _ => "accept failed",
    }
}

/// The kernel's id for the calling thread, as strace prints it.
fn thread_id() -> i64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        i64::from(nix::unistd::gettid().as_raw())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        i64::from(std::process::id())
    }
}
