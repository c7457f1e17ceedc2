//! The selector server: one thread, one loop, every client at once.
//!
//! This is the course's multi-select server, line for line:
//!
//! ```python
//! sel.register(lsock, selectors.EVENT_READ, data=None)
//! while True:
//!     for key, mask in sel.select(timeout=None):
//!         if key.data is None:
//!             accept_wrapper(key.fileobj)
//!         else:
//!             service_connection(key, mask)
//! ```
//!
//! Each registered fd carries a [`Record`]: the listener's is `Listener` (the
//! course's `data=None`), each client's is a [`Conn`] with its address and
//! buffers. A third kind, `Signals`, is the read end of the self-pipe that
//! SIGINT, SIGTERM and SIGUSR1 write to, so the loop hears signals through the
//! selector like any other input.
//!
//! Rules that keep it fast and fair (DESIGN.md, "Rules of the selector"):
//! - read once per readiness (level-triggered: the selector reports the fd
//!   again if more is waiting), or until EAGAIN with `--edge`;
//! - answer every complete line of a read in one batch and write the replies
//!   at once (optimistic write); ask for EVENT_WRITE only when the kernel's
//!   send buffer is full, and drop it as soon as the backlog is written;
//! - keep no buffer while a client is idle: memory per idle client is the
//!   record alone.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::deadlines::Deadlines;
use super::hybrid::Pool;
use super::syscalls::Syscalls;
use super::{Config, Summary, Totals};
use crate::net;
use crate::protocol;
use crate::selector::{sys, Backend, Events, Selector, EVENT_READ, EVENT_WRITE};

/// How many bytes one `read` may bring in: the loop's one shared buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Hybrid mode: how much a client may send ahead while a worker has its
/// earlier requests (more waits in the kernel, and TCP slows the client).
const READ_AHEAD: usize = 64 * 1024;

/// How long a closing connection keeps discarding the client's input after
/// our last reply, so the kernel does not answer late data with a reset.
const LINGER: Duration = Duration::from_secs(2);

/// The data the selector keeps for each fd: `key.data` in the course.
pub enum Record {
    /// The listening socket (the course's `data=None`).
    Listener,
    /// The read end of the self-pipe that signal handlers write to.
    Signals,
    /// A connected client.
    Client(Conn),
    /// Hybrid mode: the fd the workers write to when work is done.
    Waker,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Reading requests and answering them.
    Open,
    /// The client shut down its side: flush every reply owed, then close.
    Draining,
    /// We are ending it (the reason is logged): flush the last reply, then linger.
    Closing(&'static str),
    /// Our side is shut down; read and discard until the client's EOF (or
    /// `LINGER`), so unread input does not turn our close into a reset that
    /// could destroy the reply the client has not read yet.
    Lingering,
}

/// One client: the course's `types.SimpleNamespace(addr=, inb=, outb=)`.
pub struct Conn {
    pub(super) fd: OwnedFd,
    pub(super) addr: SocketAddr,
    /// Tells this connection from an earlier one that had the same fd number.
    pub(super) id: u64,
    pub(super) phase: Phase,
    /// The start of a line still arriving. Empty (and unallocated) between
    /// lines, which is most of the time.
    pub(super) inb: Vec<u8>,
    /// Replies the kernel has not taken yet. Like `inb`, it holds memory only
    /// while there is something in it.
    pub(super) outb: Vec<u8>,
    /// Too many unsent replies: stop reading until half of them are sent.
    paused: bool,
    /// When the idle timeout (or the linger) ends, if one applies.
    deadline: Option<Instant>,
    /// Hybrid mode: requests of this client are with a worker.
    pub(super) in_flight: bool,
    /// Hybrid mode: the job queue was full; waiting for room.
    pub(super) waiting: bool,
}

impl Conn {
    /// The events this connection needs next. READ while it takes requests
    /// (and is not paused by backpressure) or lingers; WRITE only while
    /// replies wait for room in the kernel's send buffer.
    fn interest(&self) -> Events {
        let mut events = Events::NONE;
        let reading = match self.phase {
            // Hybrid mode: while a worker has this client's requests, read
            // ahead only so far, then let TCP hold the rest.
            Phase::Open => {
                let read_ahead_full = self.in_flight && self.inb.len() > READ_AHEAD;
                !(self.paused || self.waiting || read_ahead_full)
            }
            Phase::Lingering => true,
            Phase::Draining | Phase::Closing(_) => false,
        };
        if reading {
            events |= EVENT_READ;
        }
        if !self.outb.is_empty() {
            events |= EVENT_WRITE;
        }
        events
    }
}

pub(super) struct EventLoop {
    pub(super) selector: Selector<Record>,
    /// `None` once the server stops accepting.
    listener: Option<TcpListener>,
    signals: OwnedFd,
    /// Shared by every client: a read lands here first, and only the part
    /// that is not answered at once is copied into the client's own `inb`.
    scratch: Vec<u8>,
    /// Replies to one read, before they are sent.
    replies: Vec<u8>,
    pub(super) config: Config,
    pub(super) totals: Totals,
    /// Every socket call goes through here: counted, and narrated with `--trace`.
    pub(super) calls: Syscalls,
    deadlines: Deadlines,
    /// The time of the latest wake-up: one clock read per wake, not per event.
    now: Instant,
    clients: usize,
    next_id: u64,
    /// An fd held in reserve for when the process runs out (see `accept`).
    spare: Option<File>,
    /// Hybrid mode: the workers that run the handler.
    pub(super) pool: Option<Pool>,
}

/// Run the selector server on `listener` until SIGINT or SIGTERM.
///
/// With `--workers N` (N > 1), N loops run, one per thread, each with its own
/// listener on the same port (`SO_REUSEPORT`): the kernel spreads new
/// connections between them, and no two loops ever wake for the same one.
pub fn serve(listener: TcpListener, backend: Backend, config: &Config) -> io::Result<Summary> {
    let loops = config.workers.unwrap_or(1).max(1);
    let addr = listener.local_addr()?;
    let mut others = Vec::new();
    for _ in 1..loops {
        let listener = net::listen(
            &addr.ip().to_string(),
            addr.port(),
            config.backlog,
            true,
            true,
        )?;
        let config = config.clone();
        others.push(std::thread::spawn(move || -> io::Result<Summary> {
            EventLoop::new(listener, backend, &config, None)?.run()
        }));
    }
    let mut summary = EventLoop::new(listener, backend, config, None)?.run()?;
    for other in others {
        match other.join() {
            Ok(Ok(theirs)) => summary.absorb(&theirs),
            Ok(Err(e)) => eprintln!("event loop: {e}"),
            Err(_) => eprintln!("an event loop panicked"),
        }
    }
    Ok(summary)
}

impl EventLoop {
    /// A loop owning `listener`, hearing signals through its own self-pipe;
    /// hybrid mode passes the worker pool.
    pub(super) fn new(
        listener: TcpListener,
        backend: Backend,
        config: &Config,
        pool: Option<Pool>,
    ) -> io::Result<EventLoop> {
        let mut selector = Selector::with_options(backend, config.edge)?;
        selector.set_trace(config.trace);
        let signals = sys::signal_pipe(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1])?;
        selector.register(listener.as_raw_fd(), EVENT_READ, Record::Listener)?;
        selector.register(signals.as_raw_fd(), EVENT_READ, Record::Signals)?;
        if let Some(pool) = &pool {
            selector.register(pool.waker_fd(), EVENT_READ, Record::Waker)?;
        }
        Ok(EventLoop {
            selector,
            listener: Some(listener),
            signals,
            scratch: vec![0; READ_CHUNK],
            replies: Vec::new(),
            config: config.clone(),
            totals: Totals::default(),
            calls: Syscalls::new(config.trace),
            deadlines: Deadlines::default(),
            now: Instant::now(),
            clients: 0,
            next_id: 0,
            spare: File::open("/dev/null").ok(),
            pool,
        })
    }

    /// Serve until stopped, then report.
    pub(super) fn run(mut self) -> io::Result<Summary> {
        self.serve_forever()?;
        if let Some(pool) = self.pool.take() {
            pool.finish(&mut self.calls);
        }
        Ok(self.summary())
    }

    /// `select` → for each ready fd: accept, or service the client.
    fn serve_forever(&mut self) -> io::Result<()> {
        let mut ready = Vec::new();
        while self.listener.is_some() || self.clients > 0 {
            self.forget_departed_deadlines();
            let timeout = self.deadlines.timeout(self.now);
            self.selector.select(timeout, &mut ready)?;
            self.now = Instant::now();
            for &(fd, events) in &ready {
                // An fd closed earlier in this batch (and maybe reused by a
                // client accepted since) is skipped: its event is stale.
                let Some(key) = self.selector.ready_key_mut(fd) else {
                    continue;
                };
                match key.data {
                    Record::Listener => self.accept(),
                    Record::Signals => self.on_signal()?,
                    Record::Client(_) => self.service_connection(fd, events),
                    Record::Waker => self.on_work_done(),
                }
            }
            self.expire_deadlines();
        }
        Ok(())
    }

    /// The course's `accept_wrapper`: accept every pending connection (until
    /// EAGAIN), each non-blocking and close-on-exec, and register it for READ.
    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match self.calls.accept(listener, true) {
                Ok((fd, addr)) => self.add_client(fd, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The client gave up before we accepted it: nothing to do.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if !self.refuse_with_spare_fd() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    return;
                }
            }
        }
    }

    /// Out of fds. A pending connection keeps the listener readable, so just
    /// returning would spin: level-triggered epoll reports it again at once,
    /// forever. Instead free the spare fd, accept the connection with it, tell
    /// the client we are busy, close it, and take the spare back (the
    /// reserve-fd technique of libev and nginx). Returns whether to go on
    /// accepting.
    ///
    /// Should the spare be gone (another loop of `--workers N` took the fd),
    /// the listener is parked instead, until a client leaves and frees an fd.
    fn refuse_with_spare_fd(&mut self) -> bool {
        let Some(listener) = &self.listener else {
            return false;
        };
        let refused = match self.spare.take() {
            None => false,
            Some(spare) => {
                self.calls
                    .close(spare.into(), "out of fds: free the spare one");
                // Linux checks the fd table before the queue, so EMFILE may
                // have hidden an empty queue: then this is EAGAIN, and done.
                match self.calls.accept(listener, true) {
                    Ok((fd, addr)) => {
                        let _ = self
                            .calls
                            .send(fd.as_raw_fd(), protocol::SERVER_BUSY, &addr);
                        self.calls.close(fd, "out of file descriptors: refused");
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        self.spare = File::open("/dev/null").ok();
        if self.spare.is_none() {
            self.park_listener(true);
        }
        refused && self.spare.is_some()
    }

    /// Stop (or resume) watching the listener: while no fd can be had, a
    /// pending connection would otherwise wake every wait.
    fn park_listener(&mut self, park: bool) {
        if let Some(listener) = &self.listener {
            let events = if park { Events::NONE } else { EVENT_READ };
            let _ = self.selector.modify(listener.as_raw_fd(), events);
        }
    }

    fn add_client(&mut self, fd: OwnedFd, addr: SocketAddr) {
        let raw = fd.as_raw_fd();
        self.next_id += 1;
        let mut conn = Conn {
            fd,
            addr,
            id: self.next_id,
            phase: Phase::Open,
            inb: Vec::new(),
            outb: Vec::new(),
            paused: false,
            deadline: self.config.idle_timeout.map(|t| self.now + t),
            in_flight: false,
            waiting: false,
        };
        if self.clients >= self.config.max_clients {
            // One over the limit: accepted only to be told so, then closed.
            conn.phase = Phase::Closing("server busy");
            conn.outb.extend_from_slice(protocol::SERVER_BUSY);
        }
        if let Some(when) = conn.deadline {
            self.deadlines.push(when, raw, conn.id);
        }
        let events = conn.interest();
        // On failure the record (and the fd inside it) is dropped: closed.
        if let Err(e) = self.selector.register(raw, events, Record::Client(conn)) {
            eprintln!("cannot register client {addr}: {e}");
            return;
        }
        self.clients += 1;
        Totals::add(&self.totals.connections, 1);
        if events.is_writable() {
            self.service_connection(raw, EVENT_WRITE);
        }
    }

    /// Drain the self-pipe: SIGINT/SIGTERM start a graceful stop, SIGUSR1
    /// prints the counters.
    fn on_signal(&mut self) -> io::Result<()> {
        let mut bytes = [0u8; 64];
        while let Ok(n @ 1..) = self
            .calls
            .read(&self.signals, &mut bytes, &"the signal pipe")
        {
            for &b in &bytes[..n] {
                if b == Signal::SIGUSR1 as i32 as u8 {
                    eprintln!("{}", self.summary().stats_line());
                } else {
                    self.stop()?;
                }
            }
        }
        Ok(())
    }

    /// Stop accepting and let every client finish: what it sent is answered,
    /// then it gets our FIN. The listener closes, so connections still in its
    /// backlog are refused by the kernel.
    fn stop(&mut self) -> io::Result<()> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        self.selector.unregister(listener.as_raw_fd())?;
        let why = "stop accepting: the kernel refuses the backlog from now on";
        self.calls.close(OwnedFd::from(listener), why);
        let open: Vec<RawFd> = self
            .selector
            .keys()
            .filter(|k| matches!(&k.data, Record::Client(c) if c.phase == Phase::Open))
            .map(|k| k.fd)
            .collect();
        for fd in open {
            if let Some(conn) = self.conn(fd) {
                conn.phase = Phase::Closing("server stopping");
            }
            self.update(fd);
        }
        Ok(())
    }

    fn wants_read(&mut self, fd: RawFd) -> bool {
        self.conn(fd).is_some_and(|c| c.interest().is_readable())
    }

    pub(super) fn conn(&mut self, fd: RawFd) -> Option<&mut Conn> {
        match self.selector.get_key_mut(fd).map(|k| &mut k.data) {
            Some(Record::Client(conn)) => Some(conn),
            _ => None,
        }
    }

    /// The course's `service_connection(key, mask)`.
    pub(super) fn service_connection(&mut self, fd: RawFd, events: Events) {
        let mut outcome = Ok(());
        if events.is_readable() {
            // Level-triggered: one read; the selector reports the fd again
            // if more is waiting. Edge-triggered: read until EAGAIN, or the
            // rest would never be reported.
            loop {
                match self.service_read(fd) {
                    Ok(true) if self.config.edge && self.wants_read(fd) => {}
                    Ok(_) => break,
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
        }
        if events.is_writable() && outcome.is_ok() {
            outcome = self.service_write(fd);
        }
        match outcome {
            Ok(()) => self.update(fd),
            Err(e) => self.close(fd, &e.to_string()),
        }
    }

    /// One `read`, then answer every complete line in it and send the
    /// replies. Returns whether the read brought data (so more may follow).
    fn service_read(&mut self, fd: RawFd) -> io::Result<bool> {
        let Some(Record::Client(conn)) = self.selector.get_key_mut(fd).map(|k| &mut k.data) else {
            return Ok(false);
        };
        let n = match self.calls.read(&conn.fd, &mut self.scratch, &conn.addr) {
            Ok(n) => n,
            Err(e) if is_transient(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        Totals::add(&self.totals.bytes_in, n as u64);
        if let (Some(idle), Phase::Open) = (self.config.idle_timeout, conn.phase) {
            conn.deadline = Some(self.now + idle);
        }
        if conn.phase != Phase::Open {
            // Lingering (or a hang-up reported as readable): discard input
            // until EOF, and close then.
            if n == 0 {
                conn.phase = Phase::Draining;
                conn.outb = Vec::new();
            }
            return Ok(n > 0);
        }
        if self.pool.is_some() {
            // Hybrid mode: the lines go to a worker, not to `answer`.
            if n == 0 {
                conn.phase = Phase::Draining;
            }
            conn.inb.extend_from_slice(&self.scratch[..n]);
            self.hand_off(fd);
            return Ok(n > 0);
        }
        self.replies.clear();
        if n == 0 {
            // The client shut down its side: answer its last unterminated
            // line, if any, then flush and close (see `update`).
            conn.phase = Phase::Draining;
            if !self.config.echo {
                protocol::respond_final(&conn.inb, &mut self.replies);
                conn.inb = Vec::new();
            }
        } else if self.config.echo {
            self.replies.extend_from_slice(&self.scratch[..n]);
        } else {
            let lines = answer(
                conn,
                &self.scratch[..n],
                &mut self.replies,
                self.config.max_line,
            );
            Totals::add(&self.totals.lines, lines);
            if !self.config.work.is_zero() && lines > 0 {
                // The slow handler, run right here in the loop: every other
                // client waits while this one "computes". That is the lesson.
                std::thread::sleep(self.config.work * lines as u32);
            }
        }
        if !self.replies.is_empty() {
            send_or_queue(conn, &self.replies, &mut self.calls, &self.totals)?;
        }
        Ok(n > 0)
    }

    /// The kernel has room in the send buffer again: write the backlog.
    fn service_write(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(Record::Client(conn)) = self.selector.get_key_mut(fd).map(|k| &mut k.data) else {
            return Ok(());
        };
        if conn.outb.is_empty() {
            return Ok(());
        }
        let sent = send(conn, &conn.outb, &mut self.calls, &self.totals)?;
        if sent > 0 {
            if let Some(idle) = self.config.idle_timeout {
                conn.deadline = Some(self.now + idle);
            }
        }
        conn.outb.drain(..sent);
        if conn.outb.is_empty() {
            conn.outb = Vec::new(); // give the memory back while idle
        }
        Ok(())
    }

    /// After servicing: move the connection on in its life, and ask the
    /// selector for exactly the events it needs now (no system call when
    /// they are unchanged, which is almost always).
    pub(super) fn update(&mut self, fd: RawFd) {
        let now = self.now;
        let (max_pending, calls) = (self.config.max_pending, &mut self.calls);
        let Some(Record::Client(conn)) = self.selector.get_key_mut(fd).map(|k| &mut k.data) else {
            return;
        };
        // Hybrid mode: nothing is finished while a worker still has work.
        if conn.outb.is_empty() && !conn.in_flight && !conn.waiting {
            match conn.phase {
                // close(2) sends our FIN after the last reply: the client
                // reads EOF, the half-close the protocol promises.
                Phase::Draining => return self.close(fd, "client done"),
                Phase::Closing(reason) => {
                    // Everything owed is sent: our FIN, then discard input.
                    let why = format!("{reason}: the last reply is sent, our FIN");
                    if calls.shutdown_write(fd, &why).is_err() {
                        return self.close(fd, "shutdown failed");
                    }
                    conn.phase = Phase::Lingering;
                    conn.deadline = Some(now + LINGER);
                    self.deadlines.push(now + LINGER, fd, conn.id);
                }
                Phase::Open | Phase::Lingering => {}
            }
        }
        // Backpressure with hysteresis: stop reading above the limit, start
        // again below half of it, so TCP flow control slows the sender.
        if conn.outb.len() > max_pending {
            conn.paused = true;
        } else if conn.outb.len() <= max_pending / 2 {
            conn.paused = false;
        }
        let interest = conn.interest();
        if let Err(e) = self.selector.modify(fd, interest) {
            self.close(fd, &e.to_string());
        }
    }

    /// Entries of clients that have left stay in the heap (it cannot remove
    /// from the middle); drop those on top, so an idle server does not wake
    /// at the deadline of someone long gone.
    fn forget_departed_deadlines(&mut self) {
        while let Some((fd, id)) = self.deadlines.peek() {
            if self.conn(fd).is_some_and(|c| c.id == id) {
                return;
            }
            self.deadlines.pop();
        }
    }

    /// Wake-ups with nothing ready come from here: idle clients are told so
    /// and closed, lingering ones are closed.
    fn expire_deadlines(&mut self) {
        while let Some((fd, id)) = self.deadlines.pop_due(self.now) {
            let now = self.now;
            let Some(Record::Client(conn)) = self.selector.get_key_mut(fd).map(|k| &mut k.data)
            else {
                continue;
            };
            if conn.id != id {
                continue; // that client is gone; the fd is someone else's now
            }
            match conn.deadline {
                None => {}
                Some(when) if when > now => self.deadlines.push(when, fd, id),
                Some(_) if conn.phase == Phase::Open => {
                    conn.deadline = None;
                    conn.phase = Phase::Closing("idle timeout");
                    conn.inb = Vec::new();
                    let reply = protocol::IDLE_TIMEOUT;
                    match send_or_queue(conn, reply, &mut self.calls, &self.totals) {
                        Ok(()) => self.update(fd),
                        Err(e) => self.close(fd, &e.to_string()),
                    }
                }
                Some(_) => self.close(fd, "timed out"),
            }
        }
    }

    /// Unregister, then close: in that order, so the selector never holds an
    /// fd number the kernel may hand to someone else.
    pub(super) fn close(&mut self, fd: RawFd, reason: &str) {
        let Ok(Record::Client(conn)) = self.selector.unregister(fd) else {
            return;
        };
        self.clients -= 1;
        let why = format!("{}: {reason}", conn.addr);
        self.calls.close(conn.fd, &why);
        if self.spare.is_none() {
            // An fd is free again: take the spare back, watch the listener.
            self.spare = File::open("/dev/null").ok();
            self.park_listener(false);
        }
    }

    fn summary(&self) -> Summary {
        let stats = self.selector.stats();
        let mut syscalls = match self.selector.backend() {
            Backend::Epoll => vec![("epoll_wait", stats.waits), ("epoll_ctl", stats.ctl_calls)],
            Backend::Kqueue => vec![("kevent", stats.waits + stats.ctl_calls)],
            Backend::Poll => vec![("poll", stats.waits)],
            Backend::Select => vec![("select", stats.waits)],
        };
        let mut calls = self.calls.clone();
        if let Some(pool) = &self.pool {
            calls.write += pool.wakes(); // the workers' write(eventfd)s so far
        }
        syscalls.extend(calls.named());
        Summary {
            totals: self.totals.snapshot(),
            syscalls,
            wakeups: Some((stats.waits, stats.events)),
        }
    }
}

/// Answer the complete lines of `conn.inb` + `input` into `replies`, keeping
/// the unfinished last line in `conn.inb`. Returns the lines answered.
fn answer(conn: &mut Conn, input: &[u8], replies: &mut Vec<u8>, max_line: usize) -> u64 {
    let answered = if conn.inb.is_empty() {
        // The common case: no partial line was waiting, so the read buffer
        // is parsed where it is, and only an unfinished last line is copied.
        let answered = protocol::respond(input, replies, max_line);
        conn.inb.extend_from_slice(&input[answered.consumed..]);
        answered
    } else {
        // The start of a line was waiting. Unless this read finishes it (or
        // makes it too long), it is only appended: what is already in `inb`
        // has been searched for a newline once and is not searched again.
        let finished = protocol::find_newline(input).is_some();
        conn.inb.extend_from_slice(input);
        if !finished && conn.inb.len() <= max_line {
            return 0;
        }
        let answered = protocol::respond(&conn.inb, replies, max_line);
        conn.inb.drain(..answered.consumed);
        answered
    };
    if answered.too_long {
        conn.phase = Phase::Closing("line too long");
    }
    if answered.too_long || conn.inb.is_empty() {
        conn.inb = Vec::new(); // give the memory back while idle
    }
    answered.lines
}

/// Send `reply` now if nothing is queued ahead of it, else queue it behind
/// the older replies, in order. The optimistic write: most of the time the
/// kernel takes it all and the selector never hears of EVENT_WRITE for this
/// client.
pub(super) fn send_or_queue(
    conn: &mut Conn,
    reply: &[u8],
    calls: &mut Syscalls,
    totals: &Totals,
) -> io::Result<()> {
    let sent = if conn.outb.is_empty() {
        send(conn, reply, calls, totals)?
    } else {
        0
    };
    conn.outb.extend_from_slice(&reply[sent..]);
    Ok(())
}

/// EAGAIN and EINTR: try again at the next readiness.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// One `send`; EAGAIN means "nothing taken", not an error.
fn send(conn: &Conn, buf: &[u8], calls: &mut Syscalls, totals: &Totals) -> io::Result<usize> {
    match calls.send(conn.fd.as_raw_fd(), buf, &conn.addr) {
        Ok(n) => {
            Totals::add(&totals.bytes_out, n as u64);
            Ok(n)
        }
        Err(e) if is_transient(&e) => Ok(0),
        Err(e) => Err(e),
    }
}
