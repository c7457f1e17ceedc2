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
use super::signals::Signals;
use super::spare_fd::{Refusal, SpareFd};
use super::syscalls::Syscalls;
use super::{Config, Summary, Totals};
use crate::protocol;
use crate::selector::{Backend, Events, Selector, EVENT_READ};

/// The data the selector keeps for each fd: `key.data` in the course.
pub enum Record {
    /// The listening socket (the course's `data=None`).
    Listener,
    /// The read end of the self-pipe that signal handlers write to.
    Signals,
    /// The handler's "work is done" fd (hybrid mode).
    Waker,
    /// A connected client.
    Client(Conn),
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
    clients: usize,
    next_id: u64,
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
    let (limits, deadlines) = (Limits::new(config), Deadlines::new(config.idle_timeout));
    let (calls, totals) = (Syscalls::new(config.trace), Totals::default());
    let (scratch, replies) = (vec![0; 64 * 1024], Vec::new());
    let spare = SpareFd::new();
    let mut el = EventLoop {
        selector,
        listener: Some(listener),
        handler,
        signals,
        spare,
        limits,
        deadlines,
        calls,
        totals,
        scratch,
        replies,
        clients: 0,
        next_id: 0,
    };
    el.serve_forever()?;
    el.handler.finish();
    Ok(el.summary())
}

impl<H: Handler> EventLoop<H> {
    /// `select` → for each ready fd: accept, or service the client.
    fn serve_forever(&mut self) -> io::Result<()> {
        let mut ready = Vec::new();
        while self.listener.is_some() || self.clients > 0 {
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
                    Record::Waker => self.on_work_done(),
                    Record::Client(_) => self.service_connection(fd, events),
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if SpareFd::out_of_fds(&e) => {
                    match self.spare.refuse(listener, &mut self.calls) {
                        Refusal::Refused => {}
                        Refusal::Done => return,
                        Refusal::Park => return self.watch_listener(Events::NONE),
                    }
                }
                // The client gave up before we accepted it, or a signal came.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
                Err(e) => return eprintln!("accept: {e}"),
            }
        }
    }

    fn add_client(&mut self, fd: OwnedFd, addr: SocketAddr) {
        self.next_id += 1;
        let conn = Conn::new(fd, addr, self.next_id);
        let raw = conn.raw();
        // On failure the record (and the fd inside it) is dropped: closed.
        if let Err(e) = self
            .selector
            .register(raw, EVENT_READ, Record::Client(conn))
        {
            return eprintln!("cannot register client {addr}: {e}");
        }
        self.deadlines.start(raw, self.next_id);
        Totals::add(&self.totals.connections, 1);
        self.clients += 1;
        if !self.limits.admits(self.clients - 1) {
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
                    Ok(true) if self.selector.is_edge() && self.update(fd).is_readable() => {}
                    done => break done.map(drop),
                }
            };
        }
        if events.is_writable() && outcome.is_ok() {
            outcome = self.service_write(fd);
        }
        self.settle(fd, outcome);
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
        if !conn.takes_input(n) {
            return Ok(n > 0); // we are ending it: the input is discarded
        }
        self.deadlines.touch(fd);
        self.feed(fd, n)?;
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

    /// The kernel has room in the send buffer again: write the backlog.
    fn service_write(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Ok(());
        };
        if conn.flush(&mut self.calls, &self.totals)? > 0 {
            self.deadlines.touch(fd);
        }
        Ok(())
    }

    /// End client `fd` on purpose, if it is still open, with `last` as its
    /// last reply. Returns whether it was open.
    fn end(&mut self, fd: RawFd, reason: &'static str, last: &[u8]) -> bool {
        let Some(conn) = client(&mut self.selector, fd).filter(|c| c.phase == Phase::Open) else {
            return false;
        };
        let sent = conn.respond(Some(reason), last, &mut self.calls, &self.totals);
        self.settle(fd, sent);
        true
    }

    /// After servicing: close on an error, else `update`.
    fn settle(&mut self, fd: RawFd, outcome: io::Result<()>) {
        match outcome {
            Ok(()) => drop(self.update(fd)),
            Err(e) => self.close(fd, &e.to_string()),
        }
    }

    /// Move the connection on in its life (`conn.rs`), and ask the selector
    /// for exactly the events it needs now (no system call when they are
    /// unchanged, which is almost always). Returns them.
    fn update(&mut self, fd: RawFd) -> Events {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Events::NONE;
        };
        let next = conn.next(self.handler.owes(fd), &mut self.calls);
        if next == Next::Linger {
            self.deadlines.linger(fd, conn.id);
        }
        // Backpressure and the handler may hold reading back.
        let may_read = self.limits.may_read(fd, conn.outb.len());
        let events = conn.interest(may_read && self.handler.wants_input(fd, &conn.inb));
        let closing = match next {
            Next::Close(reason) => reason.to_string(),
            _ => match self.selector.modify(fd, events) {
                Ok(()) => return events,
                Err(e) => e.to_string(),
            },
        };
        self.close(fd, &closing);
        Events::NONE
    }

    /// Unregister, then close: in that order, so the selector never holds an
    /// fd number the kernel may hand to someone else.
    fn close(&mut self, fd: RawFd, reason: &str) {
        let Ok(Record::Client(conn)) = self.selector.unregister(fd) else {
            return;
        };
        self.clients -= 1;
        self.calls
            .close(conn.fd, &format!("{}: {reason}", conn.addr));
        self.deadlines.forget(fd);
        self.limits.forget(fd);
        self.handler.forget(fd);
        if self.spare.restore() {
            self.watch_listener(EVENT_READ); // an fd is free: accept again
        }
    }

    /// SIGUSR1 prints the counters; SIGINT/SIGTERM close the listener (the
    /// kernel refuses the backlog from then on) and end every client gently.
    fn on_signal(&mut self) -> io::Result<()> {
        let heard = self.signals.take(&mut self.calls);
        if heard.report {
            eprintln!("{}", self.summary().stats_line());
        }
        if let Some(listener) = self.listener.take_if(|_| heard.stop) {
            self.selector.unregister(listener.as_raw_fd())?;
            let why = "stop accepting: the kernel refuses the backlog from now on";
            self.calls.close(OwnedFd::from(listener), why);
            let fds: Vec<RawFd> = self.selector.keys().map(|key| key.fd).collect();
            for fd in fds {
                self.end(fd, "server stopping", b"");
            }
        }
        Ok(())
    }

    /// The handler finished work on other threads: offer each client it
    /// names its input again, and the replies come with the answer.
    fn on_work_done(&mut self) {
        for fd in self.handler.finished(&mut self.calls) {
            let fed = self.feed(fd, 0);
            self.settle(fd, fed);
        }
    }

    /// Stop or resume watching the listener (out of fds: `spare_fd.rs`).
    fn watch_listener(&mut self, events: Events) {
        if let Some(listener) = &self.listener {
            let _ = self.selector.modify(listener.as_raw_fd(), events);
        }
    }

    fn summary(&self) -> Summary {
        let mut calls = self.calls.clone();
        self.handler.count(&mut calls);
        Summary::of_loop(&self.selector, &calls, &self.totals)
    }
}

/// The client record of `fd`, if it is one.
fn client(selector: &mut Selector<Record>, fd: RawFd) -> Option<&mut Conn> {
    match selector.get_key_mut(fd).map(|key| &mut key.data) {
        Some(Record::Client(conn)) => Some(conn),
        _ => None,
    }
}
