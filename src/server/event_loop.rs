//! The selector server: one thread, one loop, every client at once. This is
//! the course's multi-select server, line for line:
//!
//! | the course's Python                                    | here                   |
//! |--------------------------------------------------------|------------------------|
//! | `sel.register(lsock, EVENT_READ, data=None)`           | [`serve`], `Listener`  |
//! | `for key, mask in sel.select(timeout=None):`           | `serve_forever`        |
//! | `if key.data is None: accept_wrapper(key.fileobj)`     | `accept`               |
//! | `data = SimpleNamespace(addr=addr, inb=b"", outb=b"")` | [`Conn`] (`conn.rs`)   |
//! | `else: service_connection(key, mask)`                  | `service_connection`   |
//! | `recv_data = sock.recv(1024)`; `data.outb += ...`      | `service_read`, `feed` |
//! | `sent = sock.send(data.outb)`                          | `service_write`        |
//! | `sel.unregister(sock)`; `sock.close()`                 | `close`                |
//!
//! Unlike the Python, replies are written at once, and EVENT_WRITE is asked for
//! only while the send buffer is full (`update`); a [`Handler`] answers (inline,
//! or hybrid's pool); the guards (`guards.rs`) are called as `self.guards.NAME`.

use std::{io, net::TcpListener, os::fd::AsRawFd, os::fd::OwnedFd, os::fd::RawFd};

use super::{config::Config, handler::Handler, handler::Input, summary::Summary, summary::Totals};
use super::{conn::Conn, conn::Next, deadlines::Due, guards::Guards, life::Phase};
use super::{faults, signals, spare_fd::Accepting, syscalls::Syscalls};
use crate::bugs::Bug;
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
    listener: Option<TcpListener>, // `None` once the server stops accepting
    handler: H,
    guards: Guards,
    calls: Syscalls, // every socket call: counted, and narrated with `--trace`
    totals: Totals,
    scratch: Vec<u8>, // the one read buffer, shared by every client
    replies: Vec<u8>, // the replies to one read
}

/// Serve on `listener` until SIGINT or SIGTERM, answering with `handler`.
pub fn serve<H: Handler>(
    listener: TcpListener,
    backend: Backend,
    config: &Config,
    handler: H,
) -> io::Result<Summary> {
    let mut selector = Selector::with_options(backend, config.edge).map_err(|e| {
        crate::words::failed(format!("create the {} selector", backend.name()), e, None)
    })?;
    selector.set_trace(config.trace);
    let guards = Guards::new(config)?;
    selector.register(listener.as_raw_fd(), EVENT_READ, Record::Listener)?;
    selector.register(guards.signals.fd(), EVENT_READ, Record::Signals)?;
    if let Some(waker) = handler.waker() {
        selector.register(waker, EVENT_READ, Record::Waker)?;
    }
    let (listener, scratch, replies) = (Some(listener), vec![0; 64 * 1024], Vec::new());
    let (calls, totals) = (Syscalls::new(config.trace), Totals::default());
    let mut el = EventLoop { selector, listener, handler, guards, calls, totals, scratch, replies };
    el.serve_forever()?;
    el.handler.finish();
    Ok(Summary::of_loop(&el.selector, &el.calls, &el.totals, &el.handler))
}

impl<H: Handler> EventLoop<H> {
    /// `select` → for each ready fd: accept, or service the client. Then the
    /// deadlines: an idle client is told so and ended, a lingering one closed.
    fn serve_forever(&mut self) -> io::Result<()> {
        let mut ready = Vec::new();
        while self.listener.is_some() || self.guards.limits.clients() > 0 {
            let waited = self.selector.select(self.guards.deadlines.timeout(), &mut ready);
            waited.map_err(|e| faults::wait_failed(self.selector.backend().wait_call(), e))?;
            self.guards.deadlines.tick();
            for &(fd, events) in &ready {
                // An fd closed earlier in this batch (maybe reused by a client
                // accepted since) is skipped: its event is stale.
                match self.selector.ready_key_mut(fd).map(|key| &key.data) {
                    Some(Record::Listener) => self.accept(),
                    Some(Record::Client(_)) => self.service_connection(fd, events),
                    Some(Record::Signals) => self.on_signal()?,
                    Some(Record::Waker) => self.on_work_done(),
                    None => {}
                }
            }
            while let Some((fd, due)) = self.guards.deadlines.next_due() {
                if due == Due::Linger || !self.end(fd, "idle timeout", protocol::IDLE_TIMEOUT) {
                    self.close(fd, "timed out");
                }
            }
        }
        Ok(())
    }

    /// The course's `accept_wrapper`: accept every pending connection (until EAGAIN),
    /// non-blocking (but for `--bug blocking-client`) and close-on-exec; register it.
    fn accept(&mut self) {
        while let Some(listener) = &self.listener {
            let (fd, addr) = match self.calls.accept(listener, !Bug::BlockingClient.is_on()) {
                Ok(accepted) => accepted,
                // EAGAIN: that was all. Out of fds: see `spare_fd.rs`.
                Err(e) => match self.guards.spare.after_accept(&e, listener, &mut self.calls) {
                    Accepting::GoOn => continue,
                    Accepting::Stop => return,
                    Accepting::Park => return self.watch_listener(Events::NONE),
                },
            };
            let conn = Conn::new(fd, addr);
            let (raw, id) = (conn.raw(), conn.id);
            // On failure the record (and the fd inside it) is dropped: closed.
            if let Err(e) = self.selector.register(raw, EVENT_READ, Record::Client(conn)) {
                eprintln!("cannot register client {addr}: {}", crate::words::cause(&e));
                continue;
            }
            Totals::add(&self.totals.connections, 1);
            self.guards.deadlines.start(raw, id);
            if !self.guards.limits.admit() {
                // One over the limit: accepted only to be told so, then closed.
                self.end(raw, "server busy", protocol::SERVER_BUSY);
            }
        }
    }

    /// The course's `service_connection(key, mask)`.
    fn service_connection(&mut self, fd: RawFd, events: Events) {
        let (mut outcome, drain) = (Ok(()), self.selector.is_edge() && !Bug::EdgeNoDrain.is_on());
        if events.is_readable() {
            // Level-triggered: one read; the selector reports the fd again if
            // more is waiting. Edge-triggered: read until EAGAIN, or the rest
            // is never reported (the bug `--bug edge-no-drain` makes).
            outcome = loop {
                match self.service_read(fd) {
                    Ok(true) if drain && self.update(fd, Ok(())).is_readable() => {}
                    done => break done.map(drop),
                }
            };
        }
        if events.is_writable() && outcome.is_ok() {
            outcome = self.service_write(fd);
        }
        self.update(fd, outcome);
    }

    /// One `read`, then hand the bytes to the handler. Returns whether the
    /// read brought data (so more may follow).
    fn service_read(&mut self, fd: RawFd) -> io::Result<bool> {
        let conn = client(&mut self.selector, fd)?;
        let read = conn.read(&mut self.scratch, &mut self.calls, &self.totals)?;
        let Some(n) = read else { return Ok(false) };
        if conn.takes_input(n) {
            self.guards.deadlines.touch(fd);
            self.feed(fd, n)?;
        }
        Ok(n > 0)
    }

    /// Hand the client's input (the `n` bytes just read, and what waits in
    /// `inb`) to the handler, and send what it answers now.
    fn feed(&mut self, fd: RawFd, n: usize) -> io::Result<()> {
        let conn = client(&mut self.selector, fd)?;
        let (fresh, eof) = (&self.scratch[..n], conn.phase == Phase::Draining);
        let input = Input { fd, id: conn.id, inb: &mut conn.inb, fresh, eof };
        self.replies.clear();
        let handled = self.handler.input(input, &mut self.replies);
        Totals::add(&self.totals.lines, handled.lines);
        conn.respond(handled.close, &self.replies, &mut self.calls, &self.totals)
    }

    /// The kernel has room in the send buffer again: write the backlog.
    fn service_write(&mut self, fd: RawFd) -> io::Result<()> {
        let conn = client(&mut self.selector, fd)?;
        let sent = conn.flush(&mut self.calls, &self.totals)?;
        self.guards.deadlines.touch_if(sent > 0, fd);
        Ok(())
    }

    /// After servicing: close on an error, else move the connection on in
    /// its life (`conn.rs`) and ask the selector for exactly the events it
    /// needs now (no system call if unchanged, as is usual). Returns them.
    fn update(&mut self, fd: RawFd, outcome: io::Result<()>) -> Events {
        let Ok(conn) = client(&mut self.selector, fd) else { return Events::NONE };
        let next = outcome.and_then(|()| conn.next(self.handler.owes(fd), &mut self.calls));
        if let Ok(Next::Linger) = next {
            self.guards.deadlines.linger(fd, conn.id);
        }
        // Backpressure and the handler may hold reading back.
        let may_read = self.guards.limits.may_read(fd, conn.outb.len());
        let events = conn.interest(may_read && self.handler.wants_input(fd, &conn.inb));
        match next.and_then(|_| self.selector.modify(fd, events)) {
            Ok(()) => events,
            Err(e) => {
                // A failed call (not the end of a life): said in a line.
                if let (Some(_), Ok(conn)) = (e.raw_os_error(), client(&mut self.selector, fd)) {
                    faults::dropped(&conn.addr, &e);
                }
                self.close(fd, &crate::words::cause(&e));
                Events::NONE
            }
        }
    }

    /// End client `fd` on purpose if it is open (returns whether), `last` its last reply.
    fn end(&mut self, fd: RawFd, reason: &'static str, last: &[u8]) -> bool {
        let open = client(&mut self.selector, fd).ok().filter(|c| c.phase == Phase::Open);
        let Some(conn) = open else { return false };
        let sent = conn.respond(Some(reason), last, &mut self.calls, &self.totals);
        self.update(fd, sent);
        true
    }

    /// Unregister, then close: in that order, so the selector never holds an
    /// fd number the kernel may hand to someone else. The guards forget it.
    fn close(&mut self, fd: RawFd, reason: &str) {
        let Ok(Record::Client(conn)) = self.selector.unregister(fd) else { return };
        self.calls.close(conn.fd, &format!("{}: {reason}", conn.addr));
        self.guards.deadlines.forget(fd);
        self.guards.limits.forget(fd);
        self.handler.forget(fd);
        if self.guards.spare.fd_freed() {
            self.watch_listener(EVENT_READ); // parked for want of an fd: one is free
        }
    }

    /// Park the listener (no events: out of fds, see `spare_fd.rs`), or watch it again.
    fn watch_listener(&mut self, events: Events) {
        if let Some(listener) = &self.listener {
            let _ = self.selector.modify(listener.as_raw_fd(), events);
        }
    }

    /// SIGUSR1 prints the counters; SIGINT/SIGTERM stop accepting and end
    /// every client gently: what it sent is answered, then our FIN.
    fn on_signal(&mut self) -> io::Result<()> {
        let heard = self.guards.signals.take(&mut self.calls);
        if heard.report {
            let now = Summary::of_loop(&self.selector, &self.calls, &self.totals, &self.handler);
            eprintln!("{}", now.stats_line());
        }
        if let Some(listener) = self.listener.take_if(|_| heard.stop) {
            // The graceful stop's first step: unregister and close the
            // listener. The kernel refuses connections still in its backlog
            // from then on; the clients, ended one by one, finish what they sent.
            self.selector.unregister(listener.as_raw_fd())?;
            self.calls.close(OwnedFd::from(listener), signals::STOP_ACCEPTING);
            for fd in self.selector.keys().map(|key| key.fd).collect::<Vec<_>>() {
                self.end(fd, "server stopping", b"");
            }
        }
        Ok(())
    }

    /// Work done on the handler's threads: feed each client it names again.
    fn on_work_done(&mut self) {
        for fd in self.handler.finished(&mut self.calls) {
            let fed = self.feed(fd, 0);
            self.update(fd, fed);
        }
    }
}

/// The client record of `fd` (an error if it is not one: it left).
fn client(selector: &mut Selector<Record>, fd: RawFd) -> io::Result<&mut Conn> {
    match selector.get_key_mut(fd).map(|key| &mut key.data) {
        Some(Record::Client(conn)) => Ok(conn),
        _ => Err(io::ErrorKind::NotFound.into()),
    }
}
