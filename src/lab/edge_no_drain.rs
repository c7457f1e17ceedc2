//! Lab `edge-no-drain`: edge-triggered, one read per event, and the rest
//! of a request is never read (the pitfall epoll(7) warns of).
//!
//! An edge-triggered wait reports an fd when new bytes arrive, not while
//! bytes are waiting. The server reads at most 64 KiB at a time; the lab's
//! client sends 40,000 pings (200 KB) in one write and waits for as many
//! pongs. Guarded, the loop reads until EAGAIN and answers them all.
//! Broken, it reads once per event: whatever is left after the last
//! arrival waits for an event that never comes.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use super::probe::LabServer;
use super::{thousands, Lab, Symptoms};
use crate::bugs::Bug;

/// Pings sent in one write: three times what one read takes.
const PINGS: usize = 40_000;

pub const LAB: Lab = Lab {
    bug: Bug::EdgeNoDrain,
    scenario:
        "with --edge, one client sends 40,000 pings (200 KB) in one write and counts the pongs",
    serve: &["--edge"],
    fd_limit: None,
    // A read that filled the whole buffer, then waits that never report the rest.
    strace: ("read,?epoll_wait,epoll_pwait", &["65536) = 65536", "epoll_"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let mut client = server.connect()?;
    let writer = client.try_clone()?;
    let sending = std::thread::spawn(move || (&writer).write_all(&b"ping\n".repeat(PINGS)));
    // Count pongs until all came, or none came for a whole second.
    let (mut got, mut buf, mut last) = (0, vec![0; 64 << 10], Instant::now());
    client.set_read_timeout(Some(Duration::from_millis(100)))?;
    while got < PINGS * 5 && last.elapsed() < Duration::from_secs(1) {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => (got, last) = (got + n, Instant::now()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = sending.join();
    let pongs = got / 5;
    Ok(Symptoms::default()
        .reading(format!(
            "{} of {} pings answered",
            thousands(pongs as f64),
            thousands(PINGS as f64)
        ))
        .broken_if(pongs < PINGS))
}
