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
use crate::bugs::Bug;
use crate::protocol;
use crate::selector::{Events, Selector, EVENT_READ};
use crate::words;

/// The one fd held in reserve.
pub struct SpareFd {
    file: Option<File>,
}

impl SpareFd {
    /// Open the spare (on `/dev/null`).
    pub fn new() -> SpareFd {
        SpareFd { file: File::open("/dev/null").ok() }
    }

    /// `accept` failed with `e`: whether to go on accepting. EAGAIN: the
    /// queue is empty, stop. A client that gave up before we accepted it
    /// (ECONNABORTED), or a signal (EINTR): go on. Out of fds (the process's
    /// table, EMFILE, or the system's, ENFILE): refuse one client with the spare.
    pub fn go_on<R>(
        &mut self,
        e: &io::Error,
        listener: &TcpListener,
        selector: &mut Selector<R>,
        calls: &mut Syscalls,
    ) -> bool {
        match e.raw_os_error() {
            // The bug (`--bug no-spare-fd`): back to the wait with the client
            // still queued, so the listener is still readable: a spin.
            Some(libc::EMFILE | libc::ENFILE) if Bug::NoSpareFd.is_on() => false,
            Some(libc::EMFILE | libc::ENFILE) => self.refuse(listener, selector, calls),
            Some(libc::ECONNABORTED | libc::EINTR) => true,
            _ if e.kind() == io::ErrorKind::WouldBlock => false,
            _ => {
                eprintln!("cannot accept a client: {}", words::cause(e));
                false
            }
        }
    }

    /// Out of fds: free the spare, accept the waiting client with it, tell
    /// it we are busy, close it, and take the spare back. Returns whether to
    /// go on accepting. With no spare to be had, the listener is parked.
    fn refuse<R>(
        &mut self,
        listener: &TcpListener,
        selector: &mut Selector<R>,
        calls: &mut Syscalls,
    ) -> bool {
        let refused = self.refuse_one(listener, calls);
        if self.file.is_none() {
            let _ = selector.modify(listener.as_raw_fd(), Events::NONE);
        }
        refused && self.file.is_some()
    }

    /// The refusal itself, with no selector to park the listener in (uring
    /// mode parks it its own way): free the spare, accept one waiting client
    /// with it, tell it we are busy, close it, and take the spare back.
    /// Returns whether a client was refused; [`SpareFd::is_held`] says
    /// whether the spare came back.
    pub fn refuse_one(&mut self, listener: &TcpListener, calls: &mut Syscalls) -> bool {
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

    /// Whether the spare is held (it may be lost when another thread took
    /// the fd it freed).
    pub fn is_held(&self) -> bool {
        self.file.is_some()
    }

    /// An fd is free: take the spare back if it was lost. Returns whether
    /// it is held now.
    pub fn reopen(&mut self) -> bool {
        if self.file.is_none() {
            self.file = File::open("/dev/null").ok();
        }
        self.file.is_some()
    }

    /// A client left, so an fd is free: take the spare back if it was lost,
    /// and watch the listener again if it was parked for want of it.
    pub fn restore<R>(&mut self, listener: Option<&TcpListener>, selector: &mut Selector<R>) {
        if self.file.is_some() {
            return;
        }
        self.file = File::open("/dev/null").ok();
        if let Some(listener) = listener {
            let _ = selector.modify(listener.as_raw_fd(), EVENT_READ);
        }
    }
}

impl Default for SpareFd {
    fn default() -> SpareFd {
        SpareFd::new()
    }
}
