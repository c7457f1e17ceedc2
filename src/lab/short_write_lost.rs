//! Lab `short-write-lost`: the kernel took part of a reply, the server
//! believed it took it all, and the rest is gone.
//!
//! `send(2)` on a non-blocking socket takes what fits in the kernel's send
//! buffer and says how much; the rest is the program's to keep and send
//! later. The lab's client sends 4 MiB to an `--echo` server in 64 KiB
//! writes, and starts reading only 300 ms later: by then the buffers
//! between them are full, and the server's sends come back short. Guarded,
//! the rest waits in `outb` and every byte comes back, in order. Broken,
//! each short write drops its tail, and the echo has holes.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use super::probe::LabServer;
use super::{thousands, Lab, Symptoms};
use crate::bugs::Bug;

/// What the client sends: more than every buffer between the two can hold.
const SENT: usize = 4 << 20;

pub const LAB: Lab = Lab {
    bug: Bug::ShortWriteLost,
    scenario:
        "an --echo client sends 4 MiB and reads only 300 ms later; the bytes back are counted",
    serve: &["--echo"],
    fd_limit: None,
    // The short write, then the reads and writes of new bytes that follow it.
    strace: ("read,sendto", &["sendto", "read"]),
    first_line: Some(short_write),
    drive,
};

/// The bytes sent: each position has its own value (mod 251, a prime, so
/// the pattern does not line up with any buffer size), so a hole shows.
fn pattern() -> Vec<u8> {
    (0..SENT).map(|i| (i % 251) as u8).collect()
}

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let mut client = server.connect_small(16 << 10)?;
    let writer = client.try_clone()?;
    let sending = thread::spawn(move || {
        let sent = pattern().chunks(64 << 10).try_for_each(|chunk| (&writer).write_all(chunk));
        // Our EOF: the server flushes what it owes, then closes.
        sent.and_then(|()| writer.shutdown(Shutdown::Write))
    });
    thread::sleep(Duration::from_millis(300)); // the slow reader
    let (mut back, mut buf, mut last) =
        (Vec::with_capacity(SENT), vec![0; 64 << 10], Instant::now());
    client.set_read_timeout(Some(Duration::from_millis(100)))?;
    while back.len() < SENT && last.elapsed() < Duration::from_secs(1) {
        match client.read(&mut buf) {
            Ok(0) => break, // the server closed: nothing more is coming
            Ok(n) => (back.extend_from_slice(&buf[..n]), last = Instant::now()).1,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    drop(client);
    let _ = sending.join();
    let intact = back == pattern();
    let lost = SENT.saturating_sub(back.len());
    Ok(Symptoms::default()
        .reading(format!(
            "{} of {} bytes echoed",
            thousands(back.len() as f64),
            thousands(SENT as f64)
        ))
        .reading(if intact {
            "in order".to_string()
        } else {
            format!("{} lost", thousands(lost as f64))
        })
        .broken_if(!intact))
}

/// `sendto(5, "..."..., 65536, MSG_NOSIGNAL, NULL, 0) = 12345`: a send the
/// kernel took less of than it was given.
fn short_write(line: &str) -> bool {
    let Some((call, result)) = line.strip_prefix("sendto(").and_then(|l| l.rsplit_once(") = "))
    else {
        return false;
    };
    // The length is the first argument after the quoted bytes.
    let after_bytes = call.rsplit_once('"').map_or(call, |(_, rest)| rest);
    let length = after_bytes.split(", ").find_map(|arg| arg.parse::<u64>().ok());
    match (length, result.trim().parse::<u64>()) {
        (Some(length), Ok(taken)) => taken < length,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::short_write;

    #[test]
    fn a_short_write_is_a_sendto_that_took_less_than_it_was_given() {
        let line = r#"sendto(5, "\0\1\2, \3"..., 65536, MSG_NOSIGNAL, NULL, 0) = 12345"#;
        assert!(short_write(line));
        assert!(!short_write(r#"sendto(5, "\0\1"..., 65536, MSG_NOSIGNAL, NULL, 0) = 65536"#));
        assert!(!short_write(
            r#"sendto(5, "\0"..., 65536, MSG_NOSIGNAL, NULL, 0) = -1 EAGAIN (Resource temporarily unavailable)"#
        ));
        assert!(!short_write(r#"read(5, "\0\1"..., 65536) = 100"#));
    }
}
