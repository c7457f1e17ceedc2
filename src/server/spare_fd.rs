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

use super::faults::{self, Call, Class};
use super::syscalls::Syscalls;
use crate::bugs::Bug;
use crate::protocol;

/// The one fd held in reserve.
pub struct SpareFd {
    file: Option<File>,
}

/// What the loop does after a failed `accept`, as [`SpareFd::after_accept`]
/// decides. The guard only decides (and refuses a client with the spare);
/// the loop acts, each its own way: the selector loop asks for no events on
/// the listener to park it, the io_uring loop leaves its accept unarmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepting {
    /// Accept again: more clients may be waiting.
    GoOn,
    /// Back to the wait: the queue is empty, or the error is not one to
    /// retry.
    Stop,
    /// Out of fds with no spare to refuse a client with: stop watching the
    /// listener until a client leaves ([`SpareFd::fd_freed`] says when).
    Park,
}

impl SpareFd {
    /// Open the spare (on `/dev/null`).
    pub fn new() -> SpareFd {
        SpareFd { file: File::open("/dev/null").ok() }
    }

    /// `accept` failed with `e`: what now (the class is `faults.rs`'s).
    /// EAGAIN: the queue is empty, stop. A signal (EINTR): go on. Out of
    /// fds (the process's table, EMFILE, or the system's, ENFILE): refuse
    /// one client with the spare, and go on while the spare comes back;
    /// park when it does not. Any other failure concerns one connection:
    /// said in a line (but for ECONNABORTED, the client's own doing), then
    /// go on, for the kernel took that connection off the queue (ECONNABORTED,
    /// EPERM, EPROTO); or, short of memory or buffers, stop and let the
    /// wait come back to it (level-triggered, at once).
    pub fn after_accept(
        &mut self,
        e: &io::Error,
        listener: &TcpListener,
        calls: &mut Syscalls,
    ) -> Accepting {
        match (faults::class(Call::Accept, e), e.raw_os_error()) {
            (Class::Retry, _) if e.kind() == io::ErrorKind::WouldBlock => Accepting::Stop,
            (Class::Retry, _) => Accepting::GoOn,
            // The bug (`--bug no-spare-fd`): back to the wait with the client
            // still queued, so the listener is still readable: a spin.
            (_, Some(libc::EMFILE | libc::ENFILE)) if Bug::NoSpareFd.is_on() => Accepting::Stop,
            (_, Some(libc::EMFILE | libc::ENFILE)) => {
                let refused = self.refuse_one(listener, calls);
                match self.file {
                    None => Accepting::Park,
                    Some(_) if refused => Accepting::GoOn,
                    Some(_) => Accepting::Stop,
                }
            }
            _ => {
                faults::accept_failed(e);
                if faults::is_shortage(e) {
                    Accepting::Stop
                } else {
                    Accepting::GoOn
                }
            }
        }
    }

    /// Out of fds: free the spare, accept one waiting client with it, tell
    /// it we are busy, close it, and take the spare back (it may be lost
    /// when another thread took the fd it freed). Returns whether a client
    /// was refused.
    fn refuse_one(&mut self, listener: &TcpListener, calls: &mut Syscalls) -> bool {
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
        refused
    }

    /// A client left, so an fd is free: take the spare back if it was lost.
    /// Returns whether it had been (then a listener parked for want of it
    /// may be watched again).
    pub fn fd_freed(&mut self) -> bool {
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
