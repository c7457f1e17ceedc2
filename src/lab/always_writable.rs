//! Lab `always-writable`: EVENT_WRITE left registered turns the wait into a
//! storm (blabaere/scaproust#12).
//!
//! Five clients connect, ping once, and go quiet. Guarded, the loop asks for
//! EVENT_WRITE only while a reply waits in `outb`, so with everyone quiet
//! it sleeps in its wait. Broken, it asks for it always: a socket with room
//! in its send buffer is always writable, so every wait returns at once
//! with EPOLLOUT, for nothing, forever.

use std::io;
use std::thread;
use std::time::Duration;

use super::probe::LabServer;
use super::{thousands, Lab, Symptoms};
use crate::bugs::Bug;
use crate::observe::wire;

pub const LAB: Lab = Lab {
    bug: Bug::AlwaysWritable,
    scenario: "5 clients ping once and go quiet; the server's wait returns are counted for 1 s",
    serve: &[],
    fd_limit: None,
    strace: ("?epoll_wait,epoll_pwait", &["EPOLLOUT"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let quiet = (0..5).map(|_| server.connect()).collect::<io::Result<Vec<_>>>()?;
    let answered = quiet
        .iter()
        .map(|client| wire::ask(client, b"ping\n", Duration::from_secs(2)))
        .filter(|answer| matches!(answer, Ok(Some(line)) if line == "pong"))
        .count();
    thread::sleep(Duration::from_millis(100));
    let load = server.load_over(Duration::from_secs(1))?;
    Ok(Symptoms::default()
        .reading(format!("{:.2} core", load.cores))
        .reading(format!("{} waits/s with every client quiet", thousands(load.waits_per_sec)))
        .reading(format!("{answered} of 5 pinged"))
        .broken_if(load.waits_per_sec > 1000.0))
}
