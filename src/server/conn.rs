//! One client of the event loop: the course's
//! `SimpleNamespace(addr=, inb=b"", outb=b"")`, with the reads and sends it
//! makes. Its life, from the first read to a close that loses nothing (the
//! half-close, the lingering close), is [`Phase`]'s, in `life.rs`: the rules
//! without the I/O, shared with the io_uring loop.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::faults::{self, Call};
use super::life::{self, Phase, Settled};
use super::summary::Totals;
use super::syscalls::Syscalls;
use crate::bugs::Bug;
use crate::selector::{Events, EVENT_READ, EVENT_WRITE};

/// What a connection needs once its replies are all sent (see [`Conn::next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Carry on.
    Stay,
    /// Our side was shut down: it lingers now (start its deadline).
    Linger,
}

/// One client: its socket, address and buffers, and where it is in its life.
pub struct Conn {
    pub fd: OwnedFd,
    pub addr: SocketAddr,
    /// Tells this connection from an earlier one that had the same fd number.
    pub id: u64,
    pub phase: Phase,
    /// The start of a line still arriving. Empty (and unallocated) between
    /// lines, which is most of the time.
    pub inb: Vec<u8>,
    /// Replies the kernel has not taken yet. Like `inb`, it holds memory only
    /// while there is something in it.
    pub outb: Vec<u8>,
}

impl Conn {
    /// A new client, open, with empty buffers and an id no other
    /// connection of this process has had.
    pub fn new(fd: OwnedFd, addr: SocketAddr) -> Conn {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (inb, outb) = (Vec::new(), Vec::new());
        Conn { fd, addr, id, phase: Phase::Open, inb, outb }
    }

    /// The raw fd, as the selector knows it.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Send `replies` now, or queue them. With `close`, they are the last:
    /// the connection ends for that reason once they are sent, and requests
    /// not answered yet are dropped. An `inb` the handler emptied gives its
    /// memory back (the uring loop hands it to its buffer pool instead).
    pub fn respond(
        &mut self,
        close: Option<&'static str>,
        replies: &[u8],
        calls: &mut Syscalls,
        totals: &Totals,
    ) -> io::Result<()> {
        if let Some(reason) = close {
            // The handler ends it (a line too long): requests after the
            // bad one are not answered.
            self.phase = self.phase.end(reason).unwrap_or(self.phase);
            self.inb = Vec::new();
        }
        if self.inb.is_empty() {
            self.inb = Vec::new(); // give the memory back while idle
        }
        self.send_or_queue(replies, calls, totals)
    }

    /// `read` into `buf`: how many bytes came (0: the client's EOF), or
    /// `None` if nothing was there after all.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        calls: &mut Syscalls,
        totals: &Totals,
    ) -> io::Result<Option<usize>> {
        match calls.read(&self.fd, buf, &self.addr) {
            Ok(n) => {
                Totals::add(&totals.bytes_in, n as u64);
                Ok(Some(n))
            }
            // EAGAIN, EINTR: nothing this time; the selector says when
            // (`faults.rs`). Any other error ends this client only.
            Err(e) if faults::is_retry(Call::Read, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// After a read of `n` bytes: whether they are requests to answer. At
    /// the client's EOF an open connection starts draining. A connection we
    /// are ending (or a hang-up reported as readable) only discards input,
    /// until the EOF that lets it close.
    pub fn takes_input(&mut self, n: usize) -> bool {
        let read = self.phase.after_read(n);
        self.phase = read.phase;
        if read.drop_unsent {
            self.outb = Vec::new();
        }
        read.answer
    }

    /// Send `reply` now if nothing is queued ahead of it, else queue it
    /// behind the older replies, in order. The optimistic write: most of the
    /// time the kernel takes it all and the selector never hears of
    /// EVENT_WRITE for this client.
    fn send_or_queue(
        &mut self,
        reply: &[u8],
        calls: &mut Syscalls,
        totals: &Totals,
    ) -> io::Result<()> {
        let sent = if self.outb.is_empty() && !reply.is_empty() {
            self.send(reply, calls, totals)?
        } else {
            0
        };
        self.outb.extend_from_slice(&reply[sent..]);
        Ok(())
    }

    /// Write what is queued; returns how many bytes the kernel took.
    pub fn flush(&mut self, calls: &mut Syscalls, totals: &Totals) -> io::Result<usize> {
        let sent = self.send(&self.outb, calls, totals)?;
        self.outb.drain(..sent);
        if self.outb.is_empty() {
            self.outb = Vec::new(); // give the memory back while idle
        }
        Ok(sent)
    }

    /// One `send`; EAGAIN means "nothing taken", not an error. The count
    /// it returns is what the callers keep or drop: the kernel may take
    /// fewer bytes than offered (a short write), and the rest stays queued.
    fn send(&self, buf: &[u8], calls: &mut Syscalls, totals: &Totals) -> io::Result<usize> {
        match calls.send(self.raw(), buf, &self.addr) {
            Ok(n) => {
                Totals::add(&totals.bytes_out, n as u64);
                // The bug (`--bug short-write-lost`): a short write taken for
                // a whole one. The bytes the kernel did not take are dropped.
                if Bug::ShortWriteLost.is_on() {
                    return Ok(buf.len());
                }
                Ok(n)
            }
            Err(e) if faults::is_retry(Call::Send, &e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Move on in life once every reply is sent (and the handler `owes`
    /// none): a draining client is closed (close(2) sends our FIN after the
    /// last reply, the client reads EOF); a closing one gets our FIN now and
    /// lingers. An error means: close it now, for the reason it gives.
    pub fn next(&mut self, owes: bool, calls: &mut Syscalls) -> io::Result<Next> {
        match self.phase.settled(!self.outb.is_empty() || owes) {
            Settled::Stay => Ok(Next::Stay),
            Settled::Close => Err(io::Error::other("client done")),
            Settled::ShutDown(reason) => {
                if calls.shutdown_write(self.raw(), &life::our_fin(reason)).is_err() {
                    return Err(io::Error::other("shutdown failed"));
                }
                self.phase = Phase::Lingering;
                Ok(Next::Linger)
            }
        }
    }

    /// The events this connection needs next: READ while it takes requests
    /// (and `may_read`: no guard holds it back) or lingers; WRITE only while
    /// replies wait for room in the kernel's send buffer.
    pub fn interest(&self, may_read: bool) -> Events {
        let mut events = Events::NONE;
        if self.phase.reads(may_read) {
            events |= EVENT_READ;
        }
        // The bug (`--bug always-writable`): EVENT_WRITE asked for with
        // nothing to write. A socket with room in its send buffer is always
        // writable, so the wait returns at once, forever.
        if !self.outb.is_empty() || Bug::AlwaysWritable.is_on() {
            events |= EVENT_WRITE;
        }
        events
    }
}
