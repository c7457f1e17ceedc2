//! The selector server: one thread, one loop, every client at once. This is
//! the course's multi-select server, line for line:
//!
//! | the course's Python                              | here                     |
//! |--------------------------------------------------|--------------------------|
//! | `sel.register(lsock, EVENT_READ, data=None)`     | [`serve`]: `Record::Listener` |
//! | `events = sel.select(timeout=None)`              | `serve_forever`          |
//! | `if key.data is None: accept_wrapper(...)`       | `accept`, `add_client`   |
//! | `data = SimpleNamespace(addr=, inb=b"", outb=b"")` | [`Conn`]               |
//! | `else: service_connection(key, mask)`            | `service_connection`     |
//! | `recv_data = sock.recv(1024)` ... `data.outb += ...` | `service_read`       |
//! | `if mask & EVENT_WRITE: sent = sock.send(data.outb)` | `service_write`      |
//! | `sel.unregister(sock); sock.close()`             | `close`                  |
//!
//! Two differences from the Python, both for speed: replies are written at
//! once, and EVENT_WRITE is asked for (`update`) only while the kernel's send
//! buffer is full; and a [`Handler`] turns requests into replies, inline or
//! on hybrid mode's worker threads. The guards that make it survive hostile
//! clients live in files of their own, each called at one point here:
//! `spare_fd.rs` (out of fds, in `accept`), `limits.rs` (`add_client`,
//! `update`), `deadlines.rs` (the wait's timeout, `on_deadline`),
//! `signals.rs` (`on_signal`, `stop`) and `reuseport.rs` (several loops).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::conn::{Conn, Next, Phase};
use super::deadlines::{Deadlines, Due};
use super::handler::{Handler, Input};
use super::limits::Limits;
use super::signals::Signals;
use super::spare_fd::{Refusal, SpareFd};
use super::syscalls::Syscalls;
use super::{Config, Summary, Totals};
use crate::protocol;
use crate::selector::{Backend, Events, Selector, EVENT_READ, EVENT_WRITE};

/// The data the selector keeps for each fd: `key.data` in the course.
pub enum Record {
    /// The listening socket (the course's `data=None`).
    Listener,
    /// The read end of the self-pipe that signal handlers write to.
    Signals,
    /// The handler's fd for "work is done" (hybrid mode).
    Waker,
    /// A connected client (`conn.rs`).
    Client(Conn),
}

struct EventLoop<H> {
    selector: Selector<Record>,
    /// `None` once the server stops accepting.
    listener: Option<TcpListener>,
    handler: H,
    /// The guards, each in its own file.
    signals: Signals,
    spare: SpareFd,
    limits: Limits,
    deadlines: Deadlines,
    /// Every socket call goes through here: counted, and narrated with `--trace`.
    calls: Syscalls,
    totals: Totals,
    edge: bool,
    /// The one read buffer, shared by every client; and one read's replies.
    scratch: Vec<u8>,
    replies: Vec<u8>,
    /// The time of the latest wake-up: one clock read per wake, not per event.
    now: Instant,
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
    let mut el = EventLoop {
        selector,
        listener: Some(listener),
        handler,
        signals,
        spare: SpareFd::new(),
        limits,
        deadlines,
        calls: Syscalls::new(config.trace),
        totals: Totals::default(),
        edge: config.edge,
        scratch: vec![0; 64 * 1024],
        replies: Vec::new(),
        now: Instant::now(),
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
            let timeout = self.deadlines.timeout(self.now);
            self.selector.select(timeout, &mut ready)?;
            self.now = Instant::now();
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
            while let Some((fd, due)) = self.deadlines.next_due(self.now) {
                self.on_deadline(fd, due);
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
        let mut conn = Conn::new(fd, addr, self.next_id);
        let (raw, busy) = (conn.raw(), !self.limits.admits(self.clients));
        if busy {
            // One over the limit: accepted only to be told so, then closed.
            (conn.phase, conn.outb) = (
                Phase::Closing("server busy"),
                protocol::SERVER_BUSY.to_vec(),
            );
        }
        // On failure the record (and the fd inside it) is dropped: closed.
        if let Err(e) = self
            .selector
            .register(raw, conn.interest(true), Record::Client(conn))
        {
            return eprintln!("cannot register client {addr}: {e}");
        }
        self.clients += 1;
        self.deadlines.start(raw, self.next_id, self.now);
        Totals::add(&self.totals.connections, 1);
        if busy {
            self.service_connection(raw, EVENT_WRITE);
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
                    Ok(true) if self.edge && self.update(fd).is_readable() => {}
                    done => break done.map(drop),
                }
            };
        }
        if events.is_writable() && outcome.is_ok() {
            outcome = self.service_write(fd);
        }
        match outcome {
            Ok(()) => self.update(fd),
            Err(e) => self.close(fd, &e.to_string()),
        };
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
        match conn.phase {
            // Lingering (or a hang-up reported as readable): discard input
            // until EOF, and close then.
            _ if conn.phase != Phase::Open => {
                if n == 0 {
                    (conn.phase, conn.outb) = (Phase::Draining, Vec::new());
                }
                return Ok(n > 0);
            }
            _ if n == 0 => conn.phase = Phase::Draining, // flush, then close
            _ => {}
        }
        self.deadlines.touch(fd, self.now);
        self.replies.clear();
        self.feed(fd, n)?;
        Ok(n > 0)
    }

    /// Hand the client's input (the `n` bytes just read, and what waits in
    /// `inb`) to the handler, and send what it answers now: read → protocol
    /// → write. A line too long ends the connection after its error reply.
    fn feed(&mut self, fd: RawFd, n: usize) -> io::Result<()> {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Ok(());
        };
        let (id, fresh, eof) = (conn.id, &self.scratch[..n], conn.phase == Phase::Draining);
        let handled = self.handler.input(
            Input {
                fd,
                id,
                inb: &mut conn.inb,
                fresh,
                eof,
            },
            &mut self.replies,
        );
        Totals::add(&self.totals.lines, handled.lines);
        if let Some(reason) = handled.close {
            (conn.phase, conn.inb) = (Phase::Closing(reason), Vec::new());
        }
        conn.send_or_queue(&self.replies, &mut self.calls, &self.totals)
    }

    /// The kernel has room in the send buffer again: write the backlog.
    fn service_write(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Ok(());
        };
        if conn.flush(&mut self.calls, &self.totals)? > 0 {
            self.deadlines.touch(fd, self.now);
        }
        Ok(())
    }

    /// After servicing: move the connection on in its life, and ask the
    /// selector for exactly the events it needs now (no system call when
    /// they are unchanged, which is almost always). Returns them.
    fn update(&mut self, fd: RawFd) -> Events {
        let Some(conn) = client(&mut self.selector, fd) else {
            return Events::NONE;
        };
        match conn.next(self.handler.owes(fd), &mut self.calls) {
            Next::Stay => {}
            Next::Close(reason) => return self.close(fd, reason),
            Next::Linger => self.deadlines.linger(fd, conn.id, self.now),
        }
        // Guards that hold reading back: backpressure, the handler's own.
        let may_read =
            self.limits.may_read(fd, conn.outb.len()) && self.handler.wants_input(fd, &conn.inb);
        let events = conn.interest(may_read);
        match self.selector.modify(fd, events) {
            Ok(()) => events,
            Err(e) => self.close(fd, &e.to_string()),
        }
    }

    /// Unregister, then close: in that order, so the selector never holds an
    /// fd number the kernel may hand to someone else. Returns the events a
    /// closed connection wants: none.
    fn close(&mut self, fd: RawFd, reason: &str) -> Events {
        if let Ok(Record::Client(conn)) = self.selector.unregister(fd) {
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
        Events::NONE
    }

    /// Guard (`deadlines.rs`): an idle client is told so and closed gently;
    /// a lingering (or stuck) one is closed.
    fn on_deadline(&mut self, fd: RawFd, due: Due) {
        let Some(conn) = client(&mut self.selector, fd) else {
            return;
        };
        let ended = match (due, conn.phase) {
            (Due::Idle, Phase::Open) => conn.end(
                "idle timeout",
                protocol::IDLE_TIMEOUT,
                &mut self.calls,
                &self.totals,
            ),
            _ => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
        };
        match ended {
            Ok(()) => self.update(fd),
            Err(e) => self.close(fd, &e.to_string()),
        };
    }

    /// Guard (`signals.rs`): SIGUSR1 prints the counters; SIGINT/SIGTERM
    /// close the listener (the kernel refuses the backlog from then on) and
    /// end every client gently: what it sent is answered, then our FIN.
    fn on_signal(&mut self) -> io::Result<()> {
        let heard = self.signals.take(&mut self.calls);
        if heard.report {
            eprintln!("{}", self.summary().stats_line());
        }
        let Some(listener) = self.listener.take_if(|_| heard.stop) else {
            return Ok(());
        };
        self.selector.unregister(listener.as_raw_fd())?;
        let why = "stop accepting: the kernel refuses the backlog from now on";
        self.calls.close(OwnedFd::from(listener), why);
        let clients: Vec<RawFd> = self.selector.keys().map(|key| key.fd).collect();
        for fd in clients {
            if let Some(conn) = client(&mut self.selector, fd).filter(|c| c.phase == Phase::Open) {
                conn.phase = Phase::Closing("server stopping");
                self.update(fd);
            }
        }
        Ok(())
    }

    /// The handler's seam (`handler.rs`): work finished on other threads.
    /// Send the replies, offer each client's waiting input again, and read
    /// again from clients whose requests had to wait for room.
    fn on_work_done(&mut self) {
        let finished = self.handler.finished(&mut self.calls);
        for done in finished.done {
            Totals::add(&self.totals.lines, done.handled.lines);
            let Some(conn) = client(&mut self.selector, done.fd).filter(|c| c.id == done.id) else {
                continue; // the client left while its work ran
            };
            if let Some(reason) = done.handled.close {
                (conn.phase, conn.inb) = (Phase::Closing(reason), Vec::new());
            }
            let offer_more = matches!(conn.phase, Phase::Open | Phase::Draining);
            let mut sent = conn.send_or_queue(&done.replies, &mut self.calls, &self.totals);
            if offer_more && sent.is_ok() {
                self.replies.clear();
                sent = self.feed(done.fd, 0);
            }
            match sent {
                Ok(()) => self.update(done.fd),
                Err(e) => self.close(done.fd, &e.to_string()),
            };
        }
        for (fd, id) in finished.resumed {
            if client(&mut self.selector, fd).is_some_and(|c| c.id == id) {
                self.update(fd);
            }
        }
    }

    /// Guard (`spare_fd.rs`): stop or resume watching the listener.
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
