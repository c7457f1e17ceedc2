//! The selector server: one thread, one loop, every client at once. This is
//! the course's multi-select server, line for line:
//!
//! | the course's Python                                  | here                  |
//! |------------------------------------------------------|-----------------------|
//! | `sel.register(lsock, EVENT_READ, data=None)`         | [`serve`], `Listener` |
//! | `for key, mask in sel.select(timeout=None):`         | `serve_forever`       |
//! | `if key.data is None: accept_wrapper(key.fileobj)`   | `accept`, `add_client` |
//! | `data = SimpleNamespace(addr=addr, inb=b"", outb=b"")` | [`Conn`] (`conn.rs`) |
//! | `else: service_connection(key, mask)`                | `service_connection`  |
//! | `recv_data = sock.recv(1024)`; `data.outb += ...`    | `service_read`, `feed` |
//! | `sent = sock.send(data.outb)`                        | `service_write`       |
//! | `sel.unregister(sock)`; `sock.close()`               | `close`               |
//!
//! Unlike the Python, replies are written at once, and EVENT_WRITE is asked
//! for (`update`) only while the kernel's send buffer is full; a [`Handler`]
//! turns requests into replies (inline, or hybrid mode's worker pool). The
//! guards live in files of their own, each called at one point: `spare_fd.rs`
//! in `accept`, `limits.rs` in `add_client` and `update`, `deadlines.rs`
//! around the wait, `signals.rs` in `on_signal`, `reuseport.rs` around it all.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::conn::{Conn, Next, Phase};
use super::deadlines::{Deadlines, Due};
use super::handler::{Handler, Input};
use super::limits::Limits;
use super::signals::{self, Signals};
use super::spare_fd::SpareFd;
use super::syscalls::Syscalls;
use super::{Config, Summary, Totals};
use crate::protocol;
use crate::selector::{Backend, Events, Selector, EVENT_READ};

/// The data the selector keeps for each fd: `key.data` in the course.
pub enum Record {
    Listener,     // the listening socket: the course's `data=None`
    Signals,      // the read end of the signal handlers' self-pipe
    Waker,        // the handler's "work is done" fd (hybrid mode)
    Client(Conn), // a connected client
}

struct EventLoop<H> {
    selector: Selector<Record>,
    /// `None` once the server stops accepting.
    listener: Option<TcpListener>,
    handler: H,
    signals: Signals,
    spare: SpareFd,
    limits: Limits,
    deadlines: Deadlines,
    /// Every socket call goes through here: counted, and narrated with `--trace`.
    calls: Syscalls,
    totals: Totals,
    /// The one read buffer, shared by every client; and one read's replies.
    scratch: Vec<u8>,
    replies: Vec<u8>,
}

/// Serve on `listener` until SIGINT or SIGTERM, answering with `handler`.
pub fn serve<H: Handler>(
    listener: TcpListener,
    backend: Backend,
    config: &Config,
    handler: H,
) -> io::Result<Summary> {
    let mut selector = Selector::with_options(backend, config.edge)?;
    selector.set_trace(config.trace);
    let signals = Signals::install()?;
    selector.register(listener.as_raw_fd(), EVENT_READ, Record::Listener)?;
    selector.register(signals.fd(), EVENT_READ, Record::Signals)?;
    if let Some(waker) = handler.waker() {
        selector.register(waker, EVENT_READ, Record::Waker)?;
    }
    let mut el = EventLoop {
        selector,
        listener: Some(listener),
        handler,
        signals,
        spare: SpareFd::new(),
        limits: Limits::new(config),
        deadlines: Deadlines::new(config.idle_timeout),
        calls: Syscalls::new(config.trace),
        totals: Totals::default(),
        scratch: vec![0; 64 * 1024],
        replies: Vec::new(),
    };
    el.serve_forever()?;
    el.handler.finish();
    Ok(Summary::of_loop(
        &el.selector,
        &el.calls,
        &el.totals,
        &el.handler,
    ))
}

impl<H: Handler> EventLoop<H> {
    /// `select` → for each ready fd: accept, or service the client.
    fn serve_forever(&mut self) -> io::Result<()> {
        let mut ready = Vec::new();
        while self.listener.is_some() || self.limits.clients() > 0 {
            self.selector.select(self.deadlines.timeout(), &mut ready)?;
            self.deadlines.tick();
            for &(fd, events) in &ready {
                // An fd closed earlier in this batch (maybe reused by a client
                // accepted since) is skipped: its event is stale.
                let Some(key) = self.selector.ready_key_mut(fd) else {
                    continue;
                };
                match key.data {
                    Record::Listener => self.accept(),
                    Record::Signals => self.on_signal()?,
                    Record::Client(_) => self.service_connection(fd, events),
                    // Work done on the handler's threads: offer each client it
                    // names its input again, and its replies come back.
                    Record::Waker => {
                        for fd in self.handler.finished(&mut self.calls) {
                            let fed = self.feed(fd, 0);
                            self.update(fd, fed);
                        }
                    }
                }
            }
            // An idle client is told so and ended; a lingering one is closed.
            while let Some((fd, due)) = self.deadlines.next_due() {
                if due == Due::Linger || !self.end(fd, "idle timeout", protocol::IDLE_TIMEOUT) {
                    self.close(fd, "timed out");
                }
            }
        }
        Ok(())
    }

    /// The course's `accept_wrapper`: accept every pending connection (until
    /// EAGAIN), each non-blocking and close-on-exec.
    fn accept(&mut self) {
        while let Some(listener) = &self.listener {
            match self.calls.accept(listener, true) {
                Ok((fd, addr)) => self.add_client(fd, addr),
                // EAGAIN: that was all. Out of fds: see `spare_fd.rs`.
                Err(e) => {
                    if !self
                        .spare
                        .go_on(&e, listener, &mut self.selector, &mut self.calls)
                    {
                        return;
                    }
                }
            }
        }
    }

    fn add_client(&mut self, fd: OwnedFd, addr: SocketAddr) {
        let conn = Conn::new(fd, addr);
        let (raw, id) = (conn.raw(), conn.id);
        // On failure the record (and the fd inside it) is dropped: closed.
        if let Err(e) = self
            .selector
            .register(raw, EVENT_READ, Record::Client(conn))
        {
            return eprintln!("cannot register client {addr}: {e}");
        }
        Totals::add(&self.totals.connections, 1);
        self.deadlines.start(raw, id);
        if !self.limits.admit() {
            // One over the limit: accepted only to be told so, then closed.
            self.end(raw, "server busy", protocol::SERVER_BUSY);
        }
    }

    /// The course's `service_connection(key, mask)`.
    fn service_connection(&mut self, fd: RawFd, events: Events) {
        let mut outcome = Ok(());
        if events.is_readable() {
            // Level-triggered: one read; the selector reports the fd again if
            // more is waiting. Edge-triggered: read until EAGAIN, or the rest
            // would never be reported.
            outcome = loop {
                match self.service_read(fd) {
                    Ok(true)
                        if self.selector.is_edge() && self.update(fd, Ok(())).is_readable() => {}
                    done => break done.map(drop),
                }
            };
        }
        // The kernel has room in the send buffer again: write the backlog.
        if let Some(conn) = client(&mut self.selector, fd).filter(|_| events.is_writable()) {
            let sent = outcome.and_then(|()| conn.flush(&mut self.calls, &self.totals));
            outcome = sent.map(|sent| self.deadlines.touch_if(sent > 0, fd));
        }
        self.update(fd, outcome);
    }

    /// One `read`, then hand the bytes to the handler. Returns whether the
    /// read brought data (so more may follow).
    fn service_read(&mut self, fd: RawFd) -> io::Result<bool> {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Ok(false);
        };
        let Some(n) = conn.read(&mut self.scratch, &mut self.calls, &self.totals)? else {
            return Ok(false);
        };
        if conn.takes_input(n) {
            self.deadlines.touch(fd);
            self.feed(fd, n)?;
        }
        Ok(n > 0)
    }

    /// Hand the client's input (the `n` bytes just read, and what waits in
    /// `inb`) to the handler, and send what it answers now.
    fn feed(&mut self, fd: RawFd, n: usize) -> io::Result<()> {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Ok(());
        };
        let (fresh, eof) = (&self.scratch[..n], conn.phase == Phase::Draining);
        let input = Input {
            fd,
            id: conn.id,
            inb: &mut conn.inb,
            fresh,
            eof,
        };
        self.replies.clear();
        let handled = self.handler.input(input, &mut self.replies);
        Totals::add(&self.totals.lines, handled.lines);
        conn.respond(handled.close, &self.replies, &mut self.calls, &self.totals)
    }

    /// End client `fd` on purpose if it is open, `last` its last reply.
    /// Returns whether it was open.
    fn end(&mut self, fd: RawFd, reason: &'static str, last: &[u8]) -> bool {
        let Some(conn) = client(&mut self.selector, fd).filter(|c| c.phase == Phase::Open) else {
            return false;
        };
        let sent = conn.respond(Some(reason), last, &mut self.calls, &self.totals);
        self.update(fd, sent);
        true
    }

    /// After servicing: close on an error; else move the connection on in
    /// its life (`conn.rs`), and ask the selector for exactly the events it
    /// needs now (no system call when they are unchanged, which is almost
    /// always). Returns them.
    fn update(&mut self, fd: RawFd, outcome: io::Result<()>) -> Events {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Events::NONE;
        };
        // Backpressure and the handler may hold reading back.
        let may_read = self.limits.may_read(fd, conn.outb.len());
        let may_read = may_read && self.handler.wants_input(fd, &conn.inb);
        let outcome =
            outcome.and_then(
                |()| match conn.next(self.handler.owes(fd), &mut self.calls) {
                    Next::Close(reason) => Err(io::Error::other(reason)),
                    Next::Linger => Ok(self.deadlines.linger(fd, conn.id)),
                    Next::Stay => Ok(()),
                },
            );
        let events = conn.interest(may_read);
        match outcome.and_then(|()| self.selector.modify(fd, events)) {
            Ok(()) => events,
            Err(e) => {
                self.close(fd, &e.to_string());
                Events::NONE
            }
        }
    }

    /// Unregister, then close: in that order, so the selector never holds an
    /// fd number the kernel may hand to someone else.
    fn close(&mut self, fd: RawFd, reason: &str) {
        let Ok(Record::Client(conn)) = self.selector.unregister(fd) else {
            return;
        };
        self.calls
            .close(conn.fd, &format!("{}: {reason}", conn.addr));
        self.deadlines.forget(fd);
        self.limits.forget(fd);
        self.handler.forget(fd);
        self.spare
            .restore(self.listener.as_ref(), &mut self.selector);
    }

    /// SIGUSR1 prints the counters; SIGINT/SIGTERM stop accepting and end
    /// every client gently: what it sent is answered, then our FIN.
    fn on_signal(&mut self) -> io::Result<()> {
        let heard = self.signals.take(&mut self.calls);
        if heard.report {
            let summary =
                Summary::of_loop(&self.selector, &self.calls, &self.totals, &self.handler);
            eprintln!("{}", summary.stats_line());
        }
        if let Some(listener) = self.listener.take_if(|_| heard.stop) {
            signals::stop_accepting(listener, &mut self.selector, &mut self.calls)?;
            let fds: Vec<RawFd> = self.selector.keys().map(|key| key.fd).collect();
            for fd in fds {
                self.end(fd, "server stopping", b"");
            }
        }
        Ok(())
    }
}

/// The client record of `fd`, if it is one.
fn client(selector: &mut Selector<Record>, fd: RawFd) -> Option<&mut Conn> {
    match selector.get_key_mut(fd).map(|key| &mut key.data) {
        Some(Record::Client(conn)) => Some(conn),
        _ => None,
    }
}
