//! Guard: running out of file descriptors.
//!
//! When the process has no fd left, `accept` fails with EMFILE, but the
//! connection stays in the listen queue, so the listener stays readable. A
//! level-triggered loop that just returns is woken again at once, forever: a
//! 100% CPU spin that serves nobody (Redis had it, and libuv, libevent and
//! tokio after it). The cure is the reserve-fd technique of libev and nginx:
//! keep one fd open on `/dev/null`; at EMFILE, close it, accept the waiting
//! connection with the fd that frees, tell the client we are busy, close it,
//! and open the spare again.
//!
//! Should the spare be gone (another loop of `--workers N` took the fd), the
//! loop parks the listener instead (no events asked for it), until a client
//! leaves and an fd is free again.

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;

use super::syscalls::Syscalls;
use crate::protocol;

/// What to do after an accept that found no fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// One client was told `error: server busy`: more may be waiting.
    Refused,
    /// The queue was empty after all: stop accepting for this wake-up.
    Done,
    /// No spare fd either: stop watching the listener until a client leaves.
    Park,
}

/// The one fd held in reserve.
pub struct SpareFd {
    file: Option<File>,
}

impl SpareFd {
    /// Open the spare (on `/dev/null`).
    pub fn new() -> SpareFd {
        SpareFd {
            file: File::open("/dev/null").ok(),
        }
    }

    /// Whether `accept` failed for want of an fd (the process's or the
    /// system's table is full).
    pub fn out_of_fds(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }

    /// Out of fds: free the spare, accept the waiting client with it, tell
    /// it we are busy, close it, and take the spare back.
    pub fn refuse(&mut self, listener: &TcpListener, calls: &mut Syscalls) -> Refusal {
        let refused = match self.file.take() {
            None => false,
            Some(spare) => {
                calls.close(spare.into(), "out of fds: free the spare one");
                // Linux checks the fd table before the queue, so EMFILE may
                // have hidden an empty queue: then this is EAGAIN, and done.
                match calls.accept(listener, true) {
                    Ok((fd, addr)) => {
                        let _ = calls.send(fd.as_raw_fd(), protocol::SERVER_BUSY, &addr);
                        calls.close(fd, "out of file descriptors: refused");
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        self.file = File::open("/dev/null").ok();
        match (refused, self.file.is_some()) {
            (_, false) => Refusal::Park,
            (true, true) => Refusal::Refused,
            (false, true) => Refusal::Done,
        }
    }

    /// A client left, so an fd is free: take the spare back if it was lost.
    /// Returns whether the listener, parked for want of it, may be watched
    /// again.
    pub fn restore(&mut self) -> bool {
        if self.file.is_some() {
            return false;
        }
        self.file = File::open("/dev/null").ok();
        true
    }
}

impl Default for SpareFd {
    fn default() -> SpareFd {
        SpareFd::new()
    }
}
