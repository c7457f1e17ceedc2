//! The line protocol, shared by every server mode: pure code, no I/O.
//!
//! - Requests are lines ending in `\n`; a trailing `\r` is tolerated and kept
//!   out of the match, so `ping\r\n` from telnet is a ping too.
//! - Each line gets exactly one reply line: `ping` → `pong`, anything else is
//!   echoed back unchanged. The reply keeps the request's line ending
//!   (`\n` or `\r\n`), so an echo is byte-exact.
//! - A line longer than the limit (`--max-line`, not counting its ending) is
//!   refused with [`LINE_TOO_LONG`]; the server then closes the connection,
//!   as it does after [`SERVER_BUSY`] and [`IDLE_TIMEOUT`].
//!
//! The servers differ only in how they wait for bytes; once bytes arrive they
//! all call [`respond`], which answers every complete line in a buffer at
//! once, appending into one output buffer: no allocation per line, one write
//! per batch. That is what makes pipelined requests cheap.

/// The reply sent before closing a connection whose line exceeded the limit.
pub const LINE_TOO_LONG: &[u8] = b"error: line too long\n";

/// The reply to a client over `--max-clients` (or beyond the fd limit).
pub const SERVER_BUSY: &[u8] = b"error: server busy\n";

/// The reply to a client silent for `--idle-timeout` seconds.
pub const IDLE_TIMEOUT: &[u8] = b"error: idle timeout\n";

/// The default `--max-line`: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 65536;

/// What [`respond`] did with a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// Bytes of input used up by complete lines; the rest is the start of a
    /// line still arriving and must be kept for the next read.
    pub consumed: usize,
    /// Complete lines answered.
    pub lines: u64,
    /// The input holds a line longer than the limit; [`LINE_TOO_LONG`] was
    /// appended after the replies to the lines before it, and nothing after
    /// it was read. The connection should be closed once the output is sent.
    pub too_long: bool,
}

/// Answer every complete line in `input`, appending the replies to `out`.
///
/// A line over `max_line` bytes is refused as soon as that many bytes have
/// arrived without a newline, so a client that never sends one cannot make
/// the server buffer more than `max_line` bytes of it.
///
/// ```
/// use pingpong::protocol::respond;
/// let mut out = Vec::new();
/// let answered = respond(b"ping\nhello\r\npin", &mut out, 65536);
/// assert_eq!(out, b"pong\nhello\r\n");
/// assert_eq!(answered.consumed, 12); // "pin" waits for the rest of its line
/// ```
pub fn respond(input: &[u8], out: &mut Vec<u8>, max_line: usize) -> Answered {
    let mut answered = Answered { consumed: 0, lines: 0, too_long: false };
    let mut rest = input;
    while let Some(newline) = find_newline(rest) {
        let line = &rest[..=newline];
        if content_len(line) > max_line {
            answered.too_long = true;
            out.extend_from_slice(LINE_TOO_LONG);
            return answered;
        }
        reply(line, out);
        answered.consumed += line.len();
        answered.lines += 1;
        rest = &rest[newline + 1..];
    }
    // A partial line's last "\r" may be the start of its "\r\n" ending.
    if rest.len() - usize::from(rest.ends_with(b"\r")) > max_line {
        answered.too_long = true;
        out.extend_from_slice(LINE_TOO_LONG);
    }
    answered
}

/// Answer the last line of a connection, sent without a newline before the
/// client shut down its side: nothing a client sends is lost, so it gets a
/// reply too (without an ending, as it had none).
pub fn respond_final(partial: &[u8], out: &mut Vec<u8>) {
    if !partial.is_empty() {
        reply(partial, out);
    }
}

/// One line (with its ending, if any) → its reply, appended to `out`.
fn reply(line: &[u8], out: &mut Vec<u8>) {
    let content = &line[..content_len(line)];
    if content == b"ping" {
        out.extend_from_slice(b"pong");
        out.extend_from_slice(&line[content.len()..]);
    } else {
        out.extend_from_slice(line);
    }
}

/// The length of a line without its `\n` or `\r\n`.
fn content_len(line: &[u8]) -> usize {
    let mut len = line.len();
    if line[..len].ends_with(b"\n") {
        len -= 1;
    }
    if line[..len].ends_with(b"\r") {
        len -= 1;
    }
    len
}

/// The index of the first `\n`. This is the hot loop of every server (a
/// 64 KiB line is 64 K bytes to look at), so it is the `memchr` crate's
/// search, which compares 16 or 32 bytes per instruction with SIMD (as the C
/// library's `memchr(3)` does), rather than a byte-by-byte `iter().position()`.
pub fn find_newline(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(input: &[u8]) -> (Vec<u8>, Answered) {
        let mut out = Vec::new();
        let a = respond(input, &mut out, 16);
        (out, a)
    }

    #[test]
    fn ping_gets_pong_and_other_lines_echo() {
        let (out, a) = answer(b"ping\nhi there\n");
        assert_eq!(out, b"pong\nhi there\n");
        assert_eq!((a.consumed, a.lines, a.too_long), (14, 2, false));
    }

    #[test]
    fn carriage_return_is_kept_out_of_the_match_and_in_the_reply() {
        assert_eq!(answer(b"ping\r\n").0, b"pong\r\n");
        assert_eq!(answer(b"PING\r\n").0, b"PING\r\n");
        assert_eq!(answer(b"ping \n").0, b"ping \n");
    }

    #[test]
    fn empty_line_is_echoed() {
        assert_eq!(answer(b"\n\n").0, b"\n\n");
    }

    #[test]
    fn partial_line_waits() {
        let (out, a) = answer(b"ping\npi");
        assert_eq!(out, b"pong\n");
        assert_eq!(a.consumed, 5);
    }

    #[test]
    fn line_at_the_limit_is_fine_and_one_over_is_refused() {
        let ok = [b'x'; 16];
        let mut line = ok.to_vec();
        line.extend_from_slice(b"\r\n");
        assert!(!answer(&line).1.too_long);
        assert!(!answer(&ok).1.too_long, "16 bytes may still get their newline");
        assert!(!answer(b"xxxxxxxxxxxxxxxx\r").1.too_long);
        let (out, a) = answer(b"ping\nxxxxxxxxxxxxxxxxx");
        assert!(a.too_long);
        assert_eq!(out, b"pong\nerror: line too long\n");
        let (_, a) = answer(b"xxxxxxxxxxxxxxxxx\nping\n");
        assert!(a.too_long);
        assert_eq!(a.consumed, 0);
    }

    #[test]
    fn final_partial_line_is_answered_without_an_ending() {
        let mut out = Vec::new();
        respond_final(b"ping", &mut out);
        respond_final(b"", &mut out);
        respond_final(b"hi", &mut out);
        assert_eq!(out, b"ponghi");
    }

    #[test]
    fn find_newline_agrees_with_a_plain_scan() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![b'a'; len];
                if at < len {
                    v[at] = b'\n';
                }
                let expect = v.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&v), expect, "len {len} at {at}");
            }
        }
        assert_eq!(find_newline(&[0x8a, 0x0b, 0x0a]), Some(2));
        assert_eq!(find_newline(&[]), None);
    }
}
