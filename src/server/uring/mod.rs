//! The uring server: completions instead of readiness.
//!
//! The selector server asks the kernel "which fds are ready?", then reads
//! and sends itself: a system call per read, per send, and one to wait. This
//! one puts requests in the ring (`uring/`) and reaps their completions:
//!
//! | the selector server (`event_loop.rs`)  | here                                            |
//! |----------------------------------------|-------------------------------------------------|
//! | `accept4` each time the listener is ready | one multishot accept: a completion per client (`accept.rs`) |
//! | `read` each time a client is ready      | one multishot receive per client, into a buffer the kernel picks from a shared ring only when bytes arrive (`on_recv`) |
//! | `sendto` at once, EVENT_WRITE when full | one send request in flight per client, the rest queued (`flush`, `on_send`) |
//! | `epoll_wait`, then a call per event     | one `io_uring_enter` per turn of the loop: every request queued since the last is submitted, and the wait for completions is the same call |
//! | drop EVENT_READ above `--max-pending`   | cancel the multishot receive; arm it again below half |
//! | unregister, then close                  | cancel what is in flight, close after its last completion (`begin_close`, `close_now`) |
//!
//! The guards are the selector server's (`guards.rs`): deadlines, limits,
//! the signal pipe (watched by a multishot poll) and the spare fd; so are
//! the handler (`handler::Inline`), the connection's life (`life.rs`: `Phase`)
//! and the counters.

mod accept;
mod client;
mod spares;

use std::io;
use std::net::TcpListener;
use std::os::fd::RawFd;
use std::time::Instant;

use super::faults;
use super::handler::{Handler, Inline, Input};
use super::life::{self, Phase, Settled};
use super::summary::{Summary, Totals};
use super::syscalls::Syscalls;
use super::{deadlines::Due, guards::Guards};
use crate::protocol;
use crate::uring::{self, op, Cqe, Ring, Sqe, IORING_CQE_BUFFER_SHIFT};
use crate::uring::{IORING_CQE_F_BUFFER, IORING_CQE_F_MORE};
use crate::words::{self, Failure};
use client::{Client, Kind, Shot, Token};
use spares::Spares;

use super::config::Config;

/// The provided-buffer group every receive picks from.
const GROUP: u16 = 0;

/// Set up the ring (a refusal is one line naming the cause), then serve on
/// `listener` until SIGINT or SIGTERM. `announce` prints the start-up line
/// once the ring is there.
pub fn serve(
    listener: TcpListener,
    config: &Config,
    announce: impl FnOnce(&TcpListener) -> io::Result<()>,
) -> io::Result<Summary> {
    let ring = setup(config)?;
    let mut calls = Syscalls::new(config.trace);
    accept::no_delay(&listener, &mut calls);
    let guards = Guards::new(config)?;
    announce(&listener)?;
    let mut server = UringServer {
        ring,
        listener: Some(listener),
        accept: Shot::Off,
        parked_until: None,
        signals: Shot::Off,
        stopping: false,
        clients: Vec::new(),
        generation: 0,
        handler: Inline::new(config),
        guards,
        calls,
        totals: Totals::default(),
        cqes: Vec::new(),
        spares: Spares::default(),
        trace: config.trace,
        broken: None,
    };
    server.serve_forever()?;
    Ok(server.summary())
}

/// The ring and its provided buffers, or the reason there is none.
fn setup(config: &Config) -> io::Result<Ring> {
    let entries = config.uring_entries as u32;
    // Completions come in bursts (a receive and a send per client per turn):
    // 16 per SQE, within the kernel's most (65536).
    let cq_entries = Some(config.uring_cq_entries.map_or(entries * 16, |n| n as u32).min(65536));
    let options = uring::Options { entries, cq_entries, trace: config.trace };
    let mut ring = Ring::new(options).map_err(|e| {
        let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
        let why = uring::unavailable(&e, sysctl.as_deref());
        Failure::new("serve with --mode uring", why)
            .hint(Some("--mode epoll serves the same on readiness"))
            .into_io(io::ErrorKind::Unsupported)
    })?;
    let (count, size) = (config.uring_buffers, config.uring_buffer_size as u32);
    ring.register_buffers(GROUP, count, size).map_err(|e| {
        let hint = Some("provided buffer rings need Linux 5.19; --mode epoll serves the same");
        words::failed("register the receive buffers", e, hint)
    })?;
    Ok(ring)
}

/// What a receive completion brought.
enum Got {
    /// `n` bytes (0: EOF), and whether they are requests to answer.
    Bytes(usize, bool),
    /// The multishot ended without an error of the connection's: cancelled,
    /// or out of buffers.
    Ended,
    /// The connection's own error (`faults.rs`: this client only).
    Failed(io::Error),
}

/// The client on `fd`, borrowing only the table (so the guards can be used
/// beside it).
fn at(clients: &mut [Option<Client>], fd: RawFd) -> Option<&mut Client> {
    clients.get_mut(usize::try_from(fd).ok()?)?.as_mut()
}

struct UringServer {
    ring: Ring,
    listener: Option<TcpListener>, // `None` once the server stops accepting
    accept: Shot,
    /// Out of fds: accept again at this time (or when a client leaves).
    parked_until: Option<Instant>,
    signals: Shot,
    stopping: bool,
    /// Indexed by fd.
    clients: Vec<Option<Client>>,
    /// The next connection's generation.
    generation: u32,
    handler: Inline,
    guards: Guards,
    calls: Syscalls, // the plain calls: close, shutdown, the signal pipe's read
    totals: Totals,
    cqes: Vec<Cqe>,
    /// Reply buffers kept between sends (`spares.rs`).
    spares: Spares,
    trace: bool,
    /// The ring failed while queueing: the loop returns this.
    broken: Option<io::Error>,
}

impl UringServer {
    /// Enter the ring (submit what is queued, wait for a completion or the
    /// nearest deadline), handle every completion, then the deadlines.
    fn serve_forever(&mut self) -> io::Result<()> {
        self.arm_signals();
        self.arm_accept();
        while self.listener.is_some() || self.guards.limits.clients() > 0 {
            // The ring's wait failing (but for EINTR, EAGAIN and EBUSY,
            // which `Ring::enter` retries) is fatal: `faults.rs`.
            if let Some(e) = self.broken.take() {
                return Err(faults::wait_failed("io_uring_enter", e));
            }
            let timeout = self.timeout();
            let entered = self.ring.enter(1, timeout);
            entered.map_err(|e| faults::wait_failed("io_uring_enter", e))?;
            self.guards.deadlines.tick();
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.clear();
            self.ring.reap(&mut cqes)?;
            for &cqe in &cqes {
                self.dispatch(cqe)?;
            }
            self.cqes = cqes;
            while let Some((fd, due)) = self.guards.deadlines.next_due() {
                if due == Due::Linger || !self.end(fd, "idle timeout", protocol::IDLE_TIMEOUT) {
                    self.begin_close(fd, "timed out");
                }
            }
            self.unpark_if_due();
        }
        Ok(())
    }

    /// Until the nearest deadline, or the parked accept's retry.
    fn timeout(&mut self) -> Option<std::time::Duration> {
        let deadline = self.guards.deadlines.timeout();
        let parked = self.parked_until.map(|at| at.saturating_duration_since(Instant::now()));
        match (deadline, parked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queue a request; if the submission queue is full, hand it to the
    /// kernel first (an enter that does not wait).
    fn submit(&mut self, sqe: Sqe) {
        while !self.ring.push(sqe) {
            if let Err(e) = self.ring.enter(0, None) {
                self.broken.get_or_insert(e);
                return;
            }
        }
    }

    fn dispatch(&mut self, cqe: Cqe) -> io::Result<()> {
        let Some(token) = Token::decode(cqe.user_data) else { return Ok(()) };
        if self.trace {
            self.narrate(token, &cqe);
        }
        match token.kind {
            Kind::Accept => self.on_accept(cqe),
            Kind::Signals => self.on_signal(cqe)?,
            Kind::Recv => self.on_recv(token, cqe),
            Kind::Send => self.on_send(token, cqe),
            Kind::Cancel => {} // its target's last completion says what happened
        }
        Ok(())
    }

    /// The client a completion is for, if it is still the one that asked.
    fn client(&mut self, token: Token) -> Option<&mut Client> {
        let slot = self.clients.get_mut(usize::try_from(token.fd).ok()?)?;
        slot.as_mut().filter(|c| c.generation == token.generation)
    }

    fn client_at(&mut self, fd: RawFd) -> Option<&mut Client> {
        self.clients.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    /// A receive completed: bytes in a provided buffer, the client's EOF, or
    /// the end of the multishot (no `F_MORE`): cancelled, an error, or the
    /// buffers ran dry (`-ENOBUFS`); `advance` arms it again if it should be.
    fn on_recv(&mut self, token: Token, cqe: Cqe) {
        let bid = (cqe.flags & IORING_CQE_F_BUFFER != 0)
            .then_some((cqe.flags >> IORING_CQE_BUFFER_SHIFT) as u16);
        let more = cqe.flags & IORING_CQE_F_MORE != 0;
        let fd = token.fd;
        let got = self.client(token).map(|client| {
            if !more {
                client.recv = Shot::Off;
            }
            match cqe.res {
                n if n >= 0 => Got::Bytes(n as usize, client.takes_input(n as usize)),
                e if e == -libc::ENOBUFS || e == -libc::ECANCELED => Got::Ended,
                e => Got::Failed(io::Error::from_raw_os_error(-e)),
            }
        });
        match &got {
            &Some(Got::Bytes(n, requests)) => {
                Totals::add(&self.totals.bytes_in, n as u64);
                if requests {
                    self.guards.deadlines.touch(fd);
                    self.feed(fd, bid.map(|bid| (bid, n)));
                }
            }
            Some(Got::Failed(e)) => {
                faults::dropped(&format!("fd {fd}"), e);
                self.begin_close(fd, "receive failed");
            }
            Some(Got::Ended) | None => {}
        }
        if got.is_some() {
            self.advance(fd);
        }
        // Stale or not, the buffer goes back to the ring.
        if let (Some(bid), Some(bufs)) = (bid, self.ring.buffers_mut()) {
            bufs.give_back(bid);
        }
    }

    /// Hand the client's input (`fresh`: buffer and length) to the handler,
    /// and queue what it answers.
    fn feed(&mut self, fd: RawFd, fresh: Option<(u16, usize)>) {
        let Some(client) = self.clients.get_mut(fd as usize).and_then(Option::as_mut) else {
            return;
        };
        let bytes = match (fresh, self.ring.buffers()) {
            (Some((bid, n)), Some(bufs)) => bufs.get(bid, n),
            _ => &[],
        };
        let eof = client.phase == Phase::Draining;
        if client.inb.capacity() == 0 && !bytes.is_empty() && !bytes.ends_with(b"\n") {
            // A line arrives in pieces (longer than a provided buffer): it
            // is gathered in `inb`, so give it kept memory to grow into.
            client.inb = self.spares.take();
        }
        let input =
            Input { fd, id: u64::from(client.generation), inb: &mut client.inb, fresh: bytes, eof };
        let mut replies = self.spares.take();
        let handled = self.handler.input(input, &mut replies);
        Totals::add(&self.totals.lines, handled.lines);
        if let Some(reason) = handled.close {
            client.phase = client.phase.end(reason).unwrap_or(client.phase);
            client.inb = Vec::new();
        }
        if client.inb.is_empty() {
            // The line is answered: its memory goes back to the pool, not
            // to malloc (nor stays with an idle connection).
            self.spares.give(std::mem::take(&mut client.inb));
        }
        self.spares.give(client.queue(replies));
        self.flush(fd);
    }

    /// Start the next send, unless one is in flight.
    fn flush(&mut self, fd: RawFd) {
        let Some(client) = at(&mut self.clients, fd) else { return };
        let token = client.token(Kind::Send).encode();
        let Some(bytes) = client.next_send(&mut self.spares) else { return };
        let sqe = op::send(fd, bytes, token);
        client.send_in_flight = true;
        self.submit(sqe);
    }

    /// A send completed: some or all of its bytes taken, or an error (the
    /// client reset).
    fn on_send(&mut self, token: Token, cqe: Cqe) {
        let fd = token.fd;
        let Some(client) = self.client(token) else { return };
        client.send_in_flight = false;
        if cqe.res <= 0 {
            // The bytes cannot go anywhere now.
            (client.outb, client.sending, client.sent) = (Vec::new(), Vec::new(), 0);
            if cqe.res < 0 {
                faults::dropped(&format!("fd {fd}"), &io::Error::from_raw_os_error(-cqe.res));
            }
            self.begin_close(fd, "send failed");
        } else {
            let n = cqe.res as usize;
            client.sent += n;
            Totals::add(&self.totals.bytes_out, n as u64);
            self.guards.deadlines.touch(fd);
            self.flush(fd);
        }
        self.advance(fd);
    }

    /// After a completion: close when done, else move the connection on in
    /// its life (as `Conn::next` does), and arm or cancel its receive as it
    /// needs now: reading while open (and not held back by `--max-pending`)
    /// or lingering.
    fn advance(&mut self, fd: RawFd) {
        let Some(client) = at(&mut self.clients, fd) else { return };
        if client.leaving.is_some() {
            if client.quiet() {
                self.close_now(fd);
            }
            return;
        }
        match client.phase.settled(client.pending() > 0 || client.send_in_flight) {
            Settled::Stay => {}
            Settled::Close => return self.begin_close(fd, "client done"),
            Settled::ShutDown(reason) => {
                if self.calls.shutdown_write(fd, &life::our_fin(reason)).is_err() {
                    return self.begin_close(fd, "shutdown failed");
                }
                client.phase = Phase::Lingering;
                self.guards.deadlines.linger(fd, u64::from(client.generation));
            }
        }
        let may_read = self.guards.limits.may_read(fd, client.pending());
        let recv = client.token(Kind::Recv).encode();
        let sqe = match (client.phase.reads(may_read), client.recv) {
            (true, Shot::Off) => {
                client.recv = Shot::Armed;
                op::recv_multishot(fd, GROUP, recv)
            }
            (false, Shot::Armed) if client.phase == Phase::Open => {
                // Backpressure: a multishot receive can only be paused by
                // cancelling it. (A connection flushing before its close
                // keeps its receive armed: the EOF or reset it brings is
                // what lets the close happen.)
                client.recv = Shot::Cancelling;
                op::cancel(recv, client.token(Kind::Cancel).encode())
            }
            _ => return,
        };
        self.submit(sqe);
    }

    /// End client `fd` on purpose if it is open (returns whether), `last` its
    /// last reply: sent, then our FIN, then the lingering close.
    fn end(&mut self, fd: RawFd, reason: &'static str, last: &[u8]) -> bool {
        let Some(client) = at(&mut self.clients, fd).filter(|c| c.leaving.is_none()) else {
            return false;
        };
        let Some(closing) = client.phase.end(reason) else { return false };
        (client.phase, client.inb) = (closing, Vec::new());
        let mut reply = self.spares.take();
        reply.extend_from_slice(last);
        self.spares.give(client.queue(reply));
        self.flush(fd);
        self.advance(fd);
        true
    }

    /// Close client `fd` for `reason` as soon as nothing is in flight: its
    /// receive is cancelled, a send in flight finishes (or fails).
    fn begin_close(&mut self, fd: RawFd, reason: &'static str) {
        let Some(client) = self.client_at(fd) else { return };
        if client.leaving.is_some() {
            return;
        }
        client.leaving = Some(reason);
        if client.recv == Shot::Armed {
            client.recv = Shot::Cancelling;
            let (target, cancel) = (client.token(Kind::Recv), client.token(Kind::Cancel));
            self.submit(op::cancel(target.encode(), cancel.encode()));
        }
        self.guards.deadlines.forget(fd);
        if self.client_at(fd).is_some_and(|c| c.quiet()) {
            self.close_now(fd);
        }
    }

    /// Nothing is in flight for `fd` any more: close it, and the guards
    /// forget it. An fd is free, so the spare can be taken back and a
    /// parked accept resumed.
    fn close_now(&mut self, fd: RawFd) {
        let Some(client) = self.clients.get_mut(fd as usize).and_then(Option::take) else {
            return;
        };
        let reason = client.leaving.unwrap_or("closed");
        self.calls.close(client.fd, &format!("client fd {fd}: {reason}"));
        self.guards.limits.forget(fd);
        self.handler.forget(fd);
        self.fd_freed();
    }

    /// SIGUSR1 prints the counters; SIGINT/SIGTERM stop accepting and end
    /// every client gently, as the selector server does.
    fn on_signal(&mut self, cqe: Cqe) -> io::Result<()> {
        if cqe.flags & IORING_CQE_F_MORE == 0 {
            self.signals = Shot::Off;
            self.arm_signals();
        }
        let heard = self.guards.signals.take(&mut self.calls);
        if heard.report {
            eprintln!("{}", self.summary().stats_line());
        }
        if heard.stop && !self.stopping {
            self.stopping = true;
            self.stop_accepting();
            let fds: Vec<RawFd> = self.clients.iter().flatten().map(Client::raw).collect();
            for fd in fds {
                self.end(fd, "server stopping", b"");
            }
        }
        Ok(())
    }

    /// A multishot poll on the signal pipe: a completion whenever a signal
    /// handler has written into it.
    fn arm_signals(&mut self) {
        if self.signals == Shot::Off {
            self.signals = Shot::Armed;
            let token = Token::new(Kind::Signals, self.guards.signals.fd(), 0).encode();
            self.submit(op::poll_multishot(self.guards.signals.fd(), token));
        }
    }

    /// The counters, as the selector server's: the ring's enters, then the
    /// plain calls; its waits and the completions they brought as wake-ups
    /// and events.
    fn summary(&self) -> Summary {
        let stats = self.ring.stats();
        let mut syscalls = vec![("io_uring_enter", stats.enters)];
        syscalls.extend(self.calls.named());
        Summary {
            totals: self.totals.snapshot(),
            syscalls,
            wakeups: Some((stats.waits, stats.reaped)),
        }
    }

    /// `--trace`: a completion, as a comment line under the enter that reaped it.
    fn narrate(&mut self, token: Token, cqe: &Cqe) {
        let flags = op::cqe_flags(cqe.flags);
        let fd = token.fd;
        let stale = match token.kind {
            Kind::Recv | Kind::Send => self.client(token).is_none(),
            _ => false,
        };
        let what = match token.kind {
            Kind::Accept => "accept",
            Kind::Signals => "poll (signal pipe)",
            Kind::Recv => "recv",
            Kind::Send => "send",
            Kind::Cancel => "cancel",
        };
        let mut line = format!("cqe {what} fd={fd} res={} {flags}", cqe.res);
        if token.kind == Kind::Recv && cqe.res > 0 && cqe.flags & IORING_CQE_F_BUFFER != 0 {
            let bid = (cqe.flags >> IORING_CQE_BUFFER_SHIFT) as u16;
            if let Some(bufs) = self.ring.buffers() {
                line += &format!(" {}", crate::trace::bytes(bufs.get(bid, cqe.res as usize)));
            }
        }
        if cqe.res < 0 {
            line += &format!(" ({})", words::cause(&io::Error::from_raw_os_error(-cqe.res)));
        }
        if stale {
            line += " (stale: that connection is gone; ignored)";
        }
        uring::comment(format_args!("{line}"));
    }
}
