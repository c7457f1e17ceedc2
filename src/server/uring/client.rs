//! One client of the uring server, and the `user_data` that ties each
//! completion to the request, and the connection, it completes.
//!
//! The selector server's `Conn` does its own reads and sends; here the
//! kernel does them, later, so a connection also remembers what it has
//! asked the kernel for and not yet heard back about: a multishot receive
//! (armed, or being cancelled), and at most one send. One at most, because
//! two sends on one socket in flight at once may complete out of order.
//! Its fd is closed only when nothing is in flight any more: a request still
//! running on a closed fd number could otherwise complete on whatever
//! connection the kernel gives that number to next.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::spares::Spares;
use crate::server::life::Phase;

/// What a completion is for: the top byte of its `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Accept = 1,
    Signals = 2,
    Recv = 3,
    Send = 4,
    Cancel = 5,
}

/// A request's `user_data`, unpacked: `kind << 56 | generation << 32 | fd`.
///
/// The generation tells this connection from an earlier one the kernel gave
/// the same fd number: a completion whose generation is not the current
/// one's is stale and is ignored (its buffer, if any, given back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub generation: u32,
    pub fd: RawFd,
}

/// Generations are 24 bits wide: what is left of the 64 once the kind and
/// the fd have theirs.
pub const GENERATIONS: u32 = 1 << 24;

impl Token {
    pub fn new(kind: Kind, fd: RawFd, generation: u32) -> Token {
        Token { kind, generation: generation % GENERATIONS, fd }
    }

    pub fn encode(self) -> u64 {
        (self.kind as u64) << 56 | u64::from(self.generation) << 32 | u64::from(self.fd as u32)
    }

    /// `None` for a `user_data` we never made.
    pub fn decode(user_data: u64) -> Option<Token> {
        let kind = match user_data >> 56 {
            1 => Kind::Accept,
            2 => Kind::Signals,
            3 => Kind::Recv,
            4 => Kind::Send,
            5 => Kind::Cancel,
            _ => return None,
        };
        let generation = (user_data >> 32) as u32 % GENERATIONS;
        Some(Token { kind, generation, fd: user_data as u32 as RawFd })
    }
}

/// A multishot request's state: one request, many completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shot {
    /// Not in the kernel (never armed, or its last completion came).
    Off,
    /// In the kernel; its completions carry `F_MORE` until the last.
    Armed,
    /// A cancel is on its way; its last completion is still to come.
    Cancelling,
}

/// One client: the course's `SimpleNamespace(addr, inb, outb)`, and what is
/// in flight for it.
pub struct Client {
    pub fd: OwnedFd,
    pub generation: u32,
    pub phase: Phase,
    /// The start of a line still arriving.
    pub inb: Vec<u8>,
    /// Replies waiting for the send in flight to finish.
    pub outb: Vec<u8>,
    /// The bytes of the send in flight (or about to be): the kernel reads
    /// them until the send completes, so they are not touched till then.
    pub sending: Vec<u8>,
    /// Of `sending`, the bytes the kernel has taken.
    pub sent: usize,
    pub recv: Shot,
    pub send_in_flight: bool,
    /// Closing for this reason, as soon as nothing is in flight.
    pub leaving: Option<&'static str>,
}

impl Client {
    pub fn new(fd: OwnedFd, generation: u32) -> Client {
        Client {
            fd,
            generation,
            phase: Phase::Open,
            inb: Vec::new(),
            outb: Vec::new(),
            sending: Vec::new(),
            sent: 0,
            recv: Shot::Off,
            send_in_flight: false,
            leaving: None,
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn token(&self, kind: Kind) -> Token {
        Token::new(kind, self.raw(), self.generation)
    }

    /// Reply bytes not yet taken by the kernel.
    pub fn pending(&self) -> usize {
        self.outb.len() + self.sending.len() - self.sent
    }

    /// Nothing in flight: the fd may be closed.
    pub fn quiet(&self) -> bool {
        self.recv == Shot::Off && !self.send_in_flight
    }

    /// Queue `replies`, taking the buffer itself: when no send is in flight
    /// or waiting, it becomes `sending` (no copy: the handler wrote the
    /// reply where the kernel will read it); else its bytes go behind, in
    /// order. Returns the buffer left over, emptied, for the pool.
    pub fn queue(&mut self, mut replies: Vec<u8>) -> Vec<u8> {
        if !self.send_in_flight && self.sending.is_empty() {
            std::mem::swap(&mut self.sending, &mut replies);
            self.sent = 0;
        } else {
            self.outb.extend_from_slice(&replies);
        }
        replies.clear();
        replies
    }

    /// The bytes the next send should carry, if one may start now: the rest
    /// of `sending`, or else the queue, moved into `sending`. When there is
    /// nothing to send, a large buffer goes back to `spares`; a small one
    /// is kept for the next reply, so ping-pong allocates nothing.
    pub fn next_send(&mut self, spares: &mut Spares) -> Option<&[u8]> {
        if self.send_in_flight {
            return None;
        }
        if self.sent == self.sending.len() {
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.sending, &mut self.outb);
        }
        if self.sending.is_empty() {
            for buf in [&mut self.sending, &mut self.outb] {
                if buf.capacity() > 4096 {
                    spares.give(std::mem::take(buf));
                }
            }
            return None;
        }
        Some(&self.sending[self.sent..])
    }

    /// After a read of `n` bytes (0: the client's EOF): whether they are
    /// requests to answer, as the selector's `Conn::takes_input`: at EOF an
    /// open connection starts draining; one we are ending only discards.
    pub fn takes_input(&mut self, n: usize) -> bool {
        let read = self.phase.after_read(n);
        self.phase = read.phase;
        if read.drop_unsent {
            // But for a send in flight, whose bytes the kernel holds.
            self.outb = Vec::new();
            if !self.send_in_flight {
                (self.sending, self.sent) = (Vec::new(), 0);
            }
        }
        read.answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_survives_the_round_trip_through_user_data() {
        let token = Token::new(Kind::Send, 1_000_000, GENERATIONS + 5);
        assert_eq!(token.generation, 5, "generations wrap at 24 bits");
        assert_eq!(Token::decode(token.encode()), Some(token));
        assert_eq!(Token::decode(0), None);
    }
}
