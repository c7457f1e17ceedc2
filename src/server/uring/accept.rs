//! Accepting, the uring way: one multishot accept request, a completion per
//! new client; running out of fds; and the stop.
//!
//! Out of fds, the completion carries `-EMFILE` (or `-ENFILE`) and the
//! multishot ends. Arming it again at once would spin: Linux checks the fd
//! table before the listen queue, so the new request fails the same way at
//! once, forever. Instead the spare-fd guard (`spare_fd.rs`) refuses the
//! waiting clients with plain calls (free the spare, accept, `error: server
//! busy`, close, take the spare back), and the accept is *parked*: armed
//! again when a client leaves (an fd is free), or after `PARK` at the latest.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::client::{Client, Kind, Shot, Token};
use super::{op, UringServer};
use crate::protocol;
use crate::server::signals;
use crate::server::spare_fd::Accepting;
use crate::server::summary::Totals;
use crate::server::syscalls::Syscalls;
use crate::uring::{self, Cqe, IORING_CQE_F_MORE};
use crate::words;

/// How long a parked accept waits at most before trying again.
const PARK: Duration = Duration::from_millis(100);

/// `setsockopt(listener, SOL_TCP, TCP_NODELAY, [1], 4)`, once: Linux hands
/// the option down to every socket accepted from it, which saves a system
/// call per client (the selector server makes one per accept).
pub(super) fn no_delay(listener: &TcpListener, calls: &mut Syscalls) {
    let why = "on the listener: every accepted socket inherits it (no Nagle delay)";
    let _ = calls.no_delay(listener.as_fd(), why);
}

impl UringServer {
    /// Arm the multishot accept, if there is a listener and it is not armed.
    pub(super) fn arm_accept(&mut self) {
        let Some(listener) = &self.listener else { return };
        if self.accept != Shot::Off || self.stopping {
            return;
        }
        let fd = listener.as_raw_fd();
        self.accept = Shot::Armed;
        self.parked_until = None;
        self.submit(op::accept_multishot(fd, Token::new(Kind::Accept, fd, 0).encode()));
    }

    /// An accept completed: a new client, or the end of the multishot.
    pub(super) fn on_accept(&mut self, cqe: Cqe) {
        if cqe.flags & IORING_CQE_F_MORE == 0 {
            self.accept = Shot::Off;
        }
        match cqe.res {
            res if res >= 0 => {
                if let Some(fd) = uring::accepted_fd(cqe) {
                    self.admit(fd);
                }
            }
            res if res == -libc::EMFILE || res == -libc::ENFILE => self.out_of_fds(),
            // A client that gave up before we accepted it; our own cancel.
            res if res == -libc::ECONNABORTED || res == -libc::ECANCELED => {}
            res => {
                let e = std::io::Error::from_raw_os_error(-res);
                eprintln!("cannot accept a client: {}", words::cause(&e));
                self.parked_until = Some(Instant::now() + PARK); // do not spin on it
            }
        }
        if self.accept == Shot::Off {
            if self.stopping {
                self.close_listener();
            } else if self.parked_until.is_none() {
                self.arm_accept();
            }
        }
    }

    /// A new client: count it, start its idle deadline, and arm its receive;
    /// one over `--max-clients` (or come while stopping) is told so instead.
    fn admit(&mut self, fd: OwnedFd) {
        let raw = fd.as_raw_fd();
        let Ok(index) = usize::try_from(raw) else { return };
        if index >= self.clients.len() {
            self.clients.resize_with(index + 1, || None);
        }
        let generation = self.generation;
        self.generation = self.generation.wrapping_add(1);
        self.clients[index] = Some(Client::new(fd, generation % super::client::GENERATIONS));
        Totals::add(&self.totals.connections, 1);
        let generation = self.clients[index].as_ref().map_or(0, |c| c.generation);
        self.guards.deadlines.start(raw, u64::from(generation));
        // Counted either way, until it is closed (`limits.forget`).
        let admitted = self.guards.limits.admit();
        if self.stopping {
            self.end(raw, "server stopping", b"");
        } else if !admitted {
            self.end(raw, "server busy", protocol::SERVER_BUSY);
        } else {
            self.advance(raw);
        }
    }

    /// Out of fds: refuse every waiting client with the spare, then park
    /// the accept (see the module's comment).
    fn out_of_fds(&mut self) {
        if let Some(listener) = &self.listener {
            let emfile = io::Error::from_raw_os_error(libc::EMFILE);
            while self.guards.spare.after_accept(&emfile, listener, &mut self.calls)
                == Accepting::GoOn
            {}
        }
        self.parked_until = Some(Instant::now() + PARK);
    }

    /// A client left: an fd is free. Take the spare back, and resume a
    /// parked accept.
    pub(super) fn fd_freed(&mut self) {
        self.guards.spare.fd_freed();
        if self.parked_until.is_some() {
            self.arm_accept();
        }
    }

    /// The parked accept's time has come.
    pub(super) fn unpark_if_due(&mut self) {
        if self.parked_until.is_some_and(|at| at <= Instant::now()) {
            self.parked_until = None;
            if self.stopping {
                self.close_listener();
            } else {
                self.arm_accept();
            }
        }
    }

    /// The graceful stop's first step: cancel the multishot accept; the
    /// listener is closed on its last completion (closing it before would
    /// leave the request holding the socket open, still accepting).
    pub(super) fn stop_accepting(&mut self) {
        let Some(listener) = &self.listener else { return };
        let fd: RawFd = listener.as_raw_fd();
        match self.accept {
            Shot::Armed => {
                self.accept = Shot::Cancelling;
                let target = Token::new(Kind::Accept, fd, 0).encode();
                self.submit(op::cancel(target, Token::new(Kind::Cancel, fd, 0).encode()));
            }
            Shot::Cancelling => {}
            Shot::Off => self.close_listener(),
        }
    }

    fn close_listener(&mut self) {
        if let Some(listener) = self.listener.take() {
            self.calls.close(OwnedFd::from(listener), signals::STOP_ACCEPTING);
        }
    }
}
