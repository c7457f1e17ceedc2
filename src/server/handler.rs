//! The seam between the event loop and the work: who answers the requests.
//!
//! The event loop reads bytes and writes replies; what turns one into the
//! other is a [`Handler`]. There are two:
//!
//! - [`Inline`], the course's way: the loop answers every complete line the
//!   moment it is read, on its own thread (so a slow `--work-ms` handler
//!   stalls every client: that is the lesson of the selector modes);
//! - hybrid mode's worker pool (`hybrid.rs`), which takes the lines, answers
//!   them on other threads, and hands the replies back through a waker fd the
//!   loop watches like any socket.
//!
//! A trait, because this is a true seam: the loop calls the same few methods
//! and does not know which of the two it has. Every method but
//! [`Handler::input`] has a default that suits the inline handler.
//!
//! Whoever runs it, the answer itself is one function, [`answer`], with the
//! command line's [`Rules`]: the blocking loop of the `blocking`, `threads`
//! and `pool` modes calls it too, so no two modes can answer differently.

use std::os::fd::RawFd;
use std::time::Duration;

use super::config::Config;
use super::syscalls::Syscalls;
use crate::bugs::Bug;
use crate::protocol;

/// One client's unanswered input, lent by the loop to the handler.
pub struct Input<'a> {
    /// The client's socket: how the handler tells clients apart.
    pub fd: RawFd,
    /// Tells this connection from an earlier one that had the same fd number.
    pub id: u64,
    /// The start of a line still arriving, kept between reads (the course's
    /// `data.inb`). A handler leaves in it what it has not taken; the loop
    /// decides whether an emptied one keeps its memory.
    pub inb: &'a mut Vec<u8>,
    /// What the latest read brought; empty at the client's EOF, or when the
    /// loop only offers `inb` again (after a worker finished).
    pub fresh: &'a [u8],
    /// The client has shut down its side: nothing more will come, and an
    /// unterminated last line is answered too.
    pub eof: bool,
}

/// What a handler did with an [`Input`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// Complete lines answered.
    pub lines: u64,
    /// End the connection once the replies are sent, for this reason (a line
    /// over `--max-line`).
    pub close: Option<&'static str>,
}

/// Who answers requests: the event loop calls these at fixed points.
pub trait Handler {
    /// Bytes arrived for a client (or the loop offers its `inb` again):
    /// answer what can be answered now into `replies`, or take complete
    /// lines to answer later, through [`Handler::finished`].
    fn input(&mut self, input: Input<'_>, replies: &mut Vec<u8>) -> Handled;

    /// Whether the loop should read more from client `fd` now, given what
    /// it already holds unanswered (`inb`).
    fn wants_input(&self, _fd: RawFd, _inb: &[u8]) -> bool {
        true
    }

    /// Whether replies to client `fd` are still being worked on: then its
    /// connection is not finished, whatever else says so.
    fn owes(&self, _fd: RawFd) -> bool {
        false
    }

    /// An fd that becomes readable when finished work is waiting; the loop
    /// registers it (`Record::Waker`) and calls [`Handler::finished`].
    fn waker(&self) -> Option<RawFd> {
        None
    }

    /// The waker fired: the clients that have replies ready, or may now be
    /// read from again. The loop offers each its input again
    /// ([`Handler::input`], with nothing fresh), and the replies come back
    /// as the answer.
    fn finished(&mut self, _calls: &mut Syscalls) -> Vec<RawFd> {
        Vec::new()
    }

    /// Client `fd` is gone: forget whatever is kept for it.
    fn forget(&mut self, _fd: RawFd) {}

    /// Add the system calls made on the handler's own threads.
    fn count(&self, _calls: &mut Syscalls) {}

    /// The server stops: let the work in progress end.
    fn finish(&mut self) {}
}

/// What the handler is told on the command line: `--echo`, `--max-line`
/// (with its bug), `--work-ms`. Every mode answers with these rules and
/// [`answer`]: the event loop's [`Inline`] handler, hybrid's workers, uring's
/// loop (through `Inline` too), and the blocking loop the `blocking`,
/// `threads` and `pool` modes run for each client.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    echo: bool,
    max_line: usize,
    work: Duration,
}

impl Rules {
    /// The rules of `config`.
    pub fn new(config: &Config) -> Rules {
        Rules { echo: config.echo, max_line: line_limit(config), work: config.work }
    }

    /// The longest line a client may send ([`line_limit`]).
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Raw echo: bytes, not lines.
    pub fn echo(&self) -> bool {
        self.echo
    }
}

/// The longest line a client may send, `--max-line`: the guard that keeps a
/// client from growing its `inb` without end. Past it, the line is refused
/// with `error: line too long` before more of it is buffered ([`answer`],
/// `protocol::respond`; hybrid's batches too).
pub fn line_limit(config: &Config) -> usize {
    // The bug (`--bug no-line-limit`): no limit, so a line without a newline
    // is buffered for as long as the client sends it (redis#2679).
    if Bug::NoLineLimit.is_on() {
        return usize::MAX;
    }
    config.max_line
}

/// The one place a request becomes its reply, in every mode.
///
/// `inb` holds the start of a line that was waiting (the course's
/// `data.inb`), `fresh` what just arrived, `eof` whether the client has shut
/// down its side. Every complete line is answered into `replies`
/// ([`protocol::respond`]); what is left of an unfinished line stays in
/// `inb`. At EOF the last line, sent without a newline, is answered too
/// ([`protocol::respond_final`]): nothing a client sends is lost.
///
/// `--work-ms` is the time the handler spends on each request, slept right
/// here on the caller's thread: per line answered, or, in raw echo (where
/// there are no lines), once per batch of bytes echoed. So the same client
/// waits the same in every mode; what differs is who else waits with it
/// (everyone, on an event loop's thread: that is the lesson).
pub fn answer(
    rules: &Rules,
    inb: &mut Vec<u8>,
    fresh: &[u8],
    eof: bool,
    replies: &mut Vec<u8>,
) -> Handled {
    let (requests, handled) = if rules.echo {
        replies.extend_from_slice(fresh); // RFC 862: every byte back
        (u32::from(!fresh.is_empty()), Handled::default())
    } else {
        let mut handled = answer_lines(inb, fresh, replies, rules.max_line);
        if eof && handled.close.is_none() {
            if !inb.is_empty() {
                protocol::respond_final(inb, replies);
                handled.lines += 1;
            }
            *inb = Vec::new();
        }
        (u32::try_from(handled.lines).unwrap_or(u32::MAX), handled)
    };
    if !rules.work.is_zero() && requests > 0 {
        // The slow handler: its thread does nothing else meanwhile.
        std::thread::sleep(rules.work.saturating_mul(requests));
    }
    handled
}

/// The course's handler: answer on the loop's own thread, at once.
pub struct Inline {
    rules: Rules,
}

impl Inline {
    /// An inline handler for `--echo`, `--max-line` and `--work-ms`.
    pub fn new(config: &Config) -> Inline {
        Inline { rules: Rules::new(config) }
    }
}

impl Handler for Inline {
    /// Answered at once ([`answer`]). With `--work-ms`, the sleep happens
    /// right here in the loop: every other client waits while this one
    /// "computes". That is the lesson.
    fn input(&mut self, input: Input<'_>, replies: &mut Vec<u8>) -> Handled {
        answer(&self.rules, input.inb, input.fresh, input.eof, replies)
    }
}

/// Answer the complete lines of `inb` + `fresh` into `replies`, keeping the
/// unfinished last line in `inb`.
fn answer_lines(
    inb: &mut Vec<u8>,
    fresh: &[u8],
    replies: &mut Vec<u8>,
    max_line: usize,
) -> Handled {
    let answered = if inb.is_empty() {
        // The common case: no partial line was waiting, so the read buffer
        // is parsed where it is, and only an unfinished last line is copied.
        let answered = protocol::respond(fresh, replies, max_line);
        inb.extend_from_slice(&fresh[answered.consumed..]);
        answered
    } else {
        // The start of a line was waiting. Unless this read finishes it (or
        // makes it too long), it is only appended: what is already in `inb`
        // has been searched for a newline once and is not searched again.
        let finished = protocol::find_newline(fresh).is_some();
        inb.extend_from_slice(fresh);
        if !finished && inb.len() <= max_line {
            return Handled::default();
        }
        let answered = protocol::respond(inb, replies, max_line);
        inb.drain(..answered.consumed);
        answered
    };
    // An emptied `inb` keeps its memory: what becomes of it is the loop's
    // choice (the selector loop frees it; the uring loop pools it).
    Handled { lines: answered.lines, close: answered.too_long.then_some("line too long") }
}
