//! A connection's life, from the first read to a close that loses nothing,
//! as plain functions: no sockets, no system calls, so the readiness loop's
//! `Conn` (`conn.rs`) and the io_uring loop's `Client` (`uring/client.rs`)
//! run the very same rules, and the tests below can check each step.
//!
//! The course closes a socket as soon as `recv` returns `b""`. A server that
//! must never lose a reply needs a little more:
//!
//! ```text
//!            EOF read                     every reply sent
//!   Open ─────────────────▶ Draining ───────────────────────▶ closed
//!    │
//!    │ we end it (a line too long, idle, stopping, busy)
//!    ▼                   last reply sent: our FIN           EOF read (or the
//!   Closing(reason) ────────────────────────▶ Lingering ──── linger deadline) ─▶ closed
//! ```
//!
//! Lingering is the "lingering close" of Apache and nginx: closing a socket
//! with unread input makes the kernel send a reset, which can destroy the
//! reply the client has not read yet; so after our FIN the server keeps
//! reading, and discarding, until the client's EOF.

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading requests and answering them.
    Open,
    /// The client shut down its side: flush every reply owed, then close.
    Draining,
    /// We are ending it, for this reason: flush the last reply, then linger.
    Closing(&'static str),
    /// Our side is shut down: discard input until the client's EOF (or the
    /// linger deadline).
    Lingering,
}

/// What a read means, by [`Phase::after_read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterRead {
    /// The bytes are requests, to be answered (else they are discarded).
    pub answer: bool,
    /// The phase from now on.
    pub phase: Phase,
    /// Replies not sent yet are dropped: the connection was ending already
    /// and the client has gone, so nobody will read them.
    pub drop_unsent: bool,
}

/// What to do once nothing is owed any more, by [`Phase::settled`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Carry on as it is.
    Stay,
    /// Close it now: the client is done, and so are we.
    Close,
    /// Shut down our side (our FIN, after the last reply), then linger
    /// ([`Phase::Lingering`], with its deadline).
    ShutDown(&'static str),
}

impl Phase {
    /// After a read of `n` bytes, 0 meaning the client's EOF. An open
    /// connection answers what came, and at EOF starts draining. A
    /// connection we are ending only discards input, until the EOF that
    /// lets it close.
    pub fn after_read(self, n: usize) -> AfterRead {
        let answer = self == Phase::Open;
        let phase = if n == 0 { Phase::Draining } else { self };
        AfterRead { answer, phase, drop_unsent: n == 0 && !answer }
    }

    /// We end the connection for `reason`: its last reply is on its way,
    /// requests not answered yet are dropped. Only an open connection can
    /// be ended; `None` for one that is ending already.
    pub fn end(self, reason: &'static str) -> Option<Phase> {
        (self == Phase::Open).then_some(Phase::Closing(reason))
    }

    /// The next step once `owed` is false: every reply sent, the handler
    /// working on none, nothing in flight in the kernel. A draining
    /// connection is closed (close(2) sends our FIN after the last reply;
    /// the client reads EOF); a closing one shuts down our side and lingers.
    pub fn settled(self, owed: bool) -> Settled {
        match self {
            _ if owed => Settled::Stay,
            Phase::Draining => Settled::Close,
            Phase::Closing(reason) => Settled::ShutDown(reason),
            Phase::Open | Phase::Lingering => Settled::Stay,
        }
    }

    /// Whether to read from the client now: while it takes requests (and
    /// `may_read`: no guard holds it back), and while it lingers, to
    /// discard; never while replies are flushed before a close.
    pub fn reads(self, may_read: bool) -> bool {
        match self {
            Phase::Open => may_read,
            Phase::Lingering => true,
            Phase::Draining | Phase::Closing(_) => false,
        }
    }
}

/// What `--trace` says of the shutdown(2) that starts the lingering close.
pub fn our_fin(reason: &str) -> String {
    format!("{reason}: the last reply is sent, our FIN")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Phase; 4] = [Phase::Open, Phase::Draining, Phase::Closing("x"), Phase::Lingering];

    #[test]
    fn the_clients_eof_drains_an_open_connection_and_loses_no_reply() {
        let read = Phase::Open.after_read(0);
        assert_eq!(read, AfterRead { answer: true, phase: Phase::Draining, drop_unsent: false });
        assert_eq!(Phase::Draining.settled(true), Settled::Stay, "replies still owed");
        assert_eq!(Phase::Draining.settled(false), Settled::Close);
    }

    #[test]
    fn an_open_connection_answers_what_it_reads_and_stays_open() {
        let read = Phase::Open.after_read(5);
        assert_eq!(read, AfterRead { answer: true, phase: Phase::Open, drop_unsent: false });
        assert_eq!(Phase::Open.settled(false), Settled::Stay);
        assert!(Phase::Open.reads(true) && !Phase::Open.reads(false));
    }

    #[test]
    fn ending_sends_the_last_reply_then_our_fin_then_lingers() {
        let closing = Phase::Open.end("idle timeout").unwrap();
        assert_eq!(closing, Phase::Closing("idle timeout"));
        assert!(!closing.reads(true), "no more requests are read");
        assert_eq!(closing.settled(true), Settled::Stay, "the last reply first");
        assert_eq!(closing.settled(false), Settled::ShutDown("idle timeout"));
        assert!(Phase::Lingering.reads(false), "lingering reads to discard, whatever the guards");
        assert_eq!(Phase::Lingering.settled(false), Settled::Stay, "until EOF or the deadline");
    }

    #[test]
    fn only_an_open_connection_can_be_ended() {
        for phase in ALL {
            assert_eq!(phase.end("r").is_some(), phase == Phase::Open, "{phase:?}");
        }
    }

    #[test]
    fn input_to_a_connection_we_are_ending_is_discarded() {
        for phase in [Phase::Closing("x"), Phase::Lingering, Phase::Draining] {
            let read = phase.after_read(7);
            assert!(!read.answer && read.phase == phase && !read.drop_unsent, "{phase:?}");
            let eof = phase.after_read(0);
            assert_eq!(eof.phase, Phase::Draining, "{phase:?}: EOF lets it close");
            assert!(eof.drop_unsent, "{phase:?}: the client is gone, nobody reads them");
            assert_eq!(eof.phase.settled(false), Settled::Close);
        }
    }

    #[test]
    fn nothing_moves_on_while_something_is_owed() {
        for phase in ALL {
            assert_eq!(phase.settled(true), Settled::Stay, "{phase:?}");
        }
    }
}
