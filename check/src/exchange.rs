//! The checking client's moves, each bounded twice: by a deadline that
//! holds however slowly bytes arrive (each read waits only for what is
//! left of it), and by size (no read takes more than the case can want,
//! so a server that sends without end costs a failure, not memory).
//!
//! Check is the client of servers that are broken by definition: it must
//! be the robust end of every connection.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pingpong::words::cause;

/// Bytes of a reply shown in a report.
pub const SHOWN: usize = 48;

/// What one bounded read got.
pub enum Got {
    Bytes(usize),
    /// The server closed its end (EOF).
    Eof,
    /// The deadline passed.
    Late,
    /// The connection failed: a reset, say.
    Broken(io::Error),
}

/// One read into `buf`, waiting no later than `deadline`.
pub fn read_by(mut stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> Got {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Got::Late;
        }
        if let Err(e) = stream.set_read_timeout(Some(left)) {
            return Got::Broken(e);
        }
        match stream.read(buf) {
            Ok(0) => return Got::Eof,
            Ok(n) => return Got::Bytes(n),
            Err(e) if transient(&e) => {}
            Err(e) => return Got::Broken(e),
        }
    }
}

/// A timeout or an interruption: try again while the deadline allows.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Write all of `bytes` by `deadline`, waiting through EAGAIN.
pub fn send(mut stream: &TcpStream, bytes: &[u8], deadline: Instant) -> Result<(), String> {
    let mut sent = 0;
    while sent < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the server took only {} of {} bytes in time (it stopped reading)",
                count(sent),
                count(bytes.len())
            ));
        }
        stream.set_write_timeout(Some(left)).map_err(|e| cause(&e))?;
        match stream.write(&bytes[sent..]) {
            Ok(n) => sent += n,
            Err(e) if transient(&e) => {}
            Err(e) => {
                return Err(format!(
                    "writing failed after {} of {} bytes: {}",
                    count(sent),
                    count(bytes.len()),
                    cause(&e)
                ))
            }
        }
    }
    Ok(())
}

/// [`send`] on a thread of its own (on a clone of the connection), so the
/// case can read the replies while the requests go out.
pub fn send_aside(
    stream: &TcpStream,
    bytes: Vec<u8>,
    deadline: Instant,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let stream = stream.try_clone().map_err(|e| cause(&e))?;
    Ok(thread::spawn(move || send(&stream, &bytes, deadline)))
}

/// Write `chunk` over and over until `stop`, `cap` bytes, the deadline, or
/// the server ends the connection: a client that keeps pushing however
/// full the pipe is, waiting on EAGAIN rather than stopping at it. `sent`
/// counts the bytes as they go (another thread may watch it stall).
/// Returns whether the server ended the connection.
pub fn push_until(
    mut stream: &TcpStream,
    chunk: &[u8],
    cap: usize,
    stop: &AtomicBool,
    sent: &AtomicUsize,
    deadline: Instant,
) -> bool {
    // Short waits, so that `stop` is seen soon.
    let _ = stream.set_write_timeout(Some(Duration::from_millis(50)));
    loop {
        let so_far = sent.load(Ordering::Relaxed);
        if so_far >= cap || stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return false;
        }
        let room = chunk.len().min(cap - so_far);
        match stream.write(&chunk[..room]) {
            Ok(n) => _ = sent.fetch_add(n, Ordering::Relaxed),
            Err(e) if transient(&e) => {}
            Err(_) => return true,
        }
    }
}

/// Read exactly `expected.len()` bytes by `deadline`, comparing them as
/// they come: the first byte that differs ends the case, showing the line
/// it is in, and nothing past what was expected is ever read.
pub fn expect(stream: &TcpStream, expected: &[u8], deadline: Instant) -> Result<(), String> {
    let mut buf = vec![0u8; expected.len().clamp(1, 64 << 10)];
    let mut got = 0;
    while got < expected.len() {
        let want = (expected.len() - got).min(buf.len());
        let n = match read_by(stream, &mut buf[..want], deadline) {
            Got::Bytes(n) => n,
            end => return Err(short(expected, got, &end)),
        };
        let chunk = &buf[..n];
        if let Some(i) = chunk.iter().zip(&expected[got..]).position(|(a, b)| a != b) {
            let at = got + i;
            // Everything before `at` matched: show the line it is in.
            let line = expected[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let mut actual = expected[line..at].to_vec();
            actual.extend_from_slice(&chunk[i..]);
            return Err(format!(
                "{} at byte {}, where {} was due",
                snippet(&actual),
                count(at),
                snippet(&expected[line..])
            ));
        }
        got += n;
    }
    Ok(())
}

/// How an expected answer fell short after `got` of its bytes.
fn short(expected: &[u8], got: usize, end: &Got) -> String {
    let how = match end {
        Got::Eof => "the connection ended".to_string(),
        Got::Late => "nothing more came in time".to_string(),
        Got::Broken(e) => format!("the connection failed ({})", cause(e)),
        Got::Bytes(_) => String::new(),
    };
    if got == 0 {
        return match end {
            Got::Late => "no reply in time".into(),
            _ => format!("no reply: {how}"),
        };
    }
    let line = expected[..got].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let last = match got > line {
        true => format!("; the last line began {}", snippet(&expected[line..got])),
        false => String::new(),
    };
    format!("{} of {} bytes, then {how}{last}", count(got), count(expected.len()))
}

/// The first [`SHOWN`] bytes, escaped and quoted, `...` after them if
/// there are more: for bytes shown side by side.
pub fn snippet(bytes: &[u8]) -> String {
    let more = if bytes.len() > SHOWN { "..." } else { "" };
    format!("\"{}\"{more}", bytes[..bytes.len().min(SHOWN)].escape_ascii())
}

/// Whatever arrives within `wait` (at most [`SHOWN`] bytes of it), `None`
/// if nothing does; an end of the connection is an error.
pub fn arrives_within(stream: &TcpStream, wait: Duration) -> Result<Option<Vec<u8>>, String> {
    let mut buf = [0u8; SHOWN];
    match read_by(stream, &mut buf, Instant::now() + wait) {
        Got::Bytes(n) => Ok(Some(buf[..n].to_vec())),
        Got::Late => Ok(None),
        Got::Eof => Err("the server closed the connection".into()),
        Got::Broken(e) => Err(format!("the connection failed: {}", cause(&e))),
    }
}

/// After a whole answer, a short look for more: a reply longer than
/// expected is a failure, with its extra bytes shown.
pub fn nothing_more(stream: &TcpStream) -> Result<(), String> {
    match arrives_within(stream, Duration::from_millis(100)) {
        Ok(Some(extra)) => Err(format!("the right reply, then more: {}", shown(&extra))),
        _ => Ok(()),
    }
}

/// Wait for the server's EOF by `deadline`. `allowed` may come first.
pub fn expect_eof(stream: &TcpStream, allowed: &[u8], deadline: Instant) -> Result<(), String> {
    let mut buf = [0u8; SHOWN];
    let mut extra = Vec::new();
    loop {
        match read_by(stream, &mut buf, deadline) {
            Got::Eof if allowed.starts_with(&extra) => return Ok(()),
            Got::Bytes(n) if extra.len() + n <= allowed.len() => extra.extend(&buf[..n]),
            Got::Bytes(n) => {
                extra.extend(&buf[..n]);
                return Err(format!("the right reply, then more: {}", shown(&extra)));
            }
            Got::Eof => return Err(format!("the right reply, then {}", shown(&extra))),
            Got::Late => return Err("the right reply, but the connection stayed open".into()),
            Got::Broken(e) => {
                return Err(format!("the right reply, then a failed connection: {}", cause(&e)))
            }
        }
    }
}

/// Bytes as a person reads them, escaped like a Rust byte string, the
/// first [`SHOWN`] of them and how many there were: `"pong\r\n"`,
/// `"xxxx..." (1,024 bytes)`.
pub fn shown(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(SHOWN)];
    let mut said = format!("\"{}\"", head.escape_ascii());
    if bytes.len() > SHOWN {
        said.push_str(&format!("... ({} bytes)", count(bytes.len())));
    }
    said
}

/// `1234567` → `1,234,567`.
pub fn count(n: usize) -> String {
    pingpong::lab::thousands(n as f64)
}

/// Bytes in MiB, for memory: `12.3 MiB`.
pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / f64::from(1 << 20))
}

/// Send `request` on a new connection and expect exactly `reply`, by the
/// case's deadline, and nothing more.
pub fn one_exchange(ctx: &crate::case::Ctx, request: &[u8], reply: &[u8]) -> Result<(), String> {
    let stream = ctx.connect()?;
    send(&stream, request, ctx.deadline)?;
    expect(&stream, reply, ctx.deadline)?;
    nothing_more(&stream)
}

/// Whether a newcomer is served: a new connection, `ping`, `pong` within
/// `within` (the connection included).
pub fn newcomer(ctx: &crate::case::Ctx, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + within;
    let stream = pingpong::observe::wire::connect(ctx.addr, within)
        .map_err(|e| format!("could not connect: {}", cause(&e)))?;
    send(&stream, b"ping\n", deadline)?;
    expect(&stream, b"pong\n", deadline)?;
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_escaped_and_cut() {
        assert_eq!(shown(b"pong\r\n"), "\"pong\\r\\n\"");
        let long = shown(&[b'x'; 1000]);
        assert!(long.starts_with(&format!("\"{}\"...", "x".repeat(SHOWN))), "{long}");
        assert!(long.ends_with("(1,000 bytes)"), "{long}");
        assert_eq!(shown(&[0, 255]), "\"\\x00\\xff\"");
    }
}
