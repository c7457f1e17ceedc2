//! Lab `no-backpressure`: a client that sends and never reads grows the
//! server's memory (libevent#1211, oven-sh/bun#32469).
//!
//! One client writes pings as fast as the server takes them, for 1.5 s, and
//! never reads a pong. Guarded, the server stops reading it once 1 MiB of
//! pongs is owed (`--max-pending`): TCP's flow control then stops the
//! client, and the server's memory stays put. Broken, the server reads on
//! and keeps every pong it cannot send.

use std::io;
use std::time::Duration;

use super::probe::{self, Server};
use super::{Lab, Symptoms};
use crate::server::bugs::Bug;

/// What the client writes at most (so a broken server cannot take the machine).
const CAP: usize = 96 << 20;
/// Growth of the server's memory that counts as the symptom: guarded it
/// stays near `--max-pending` (1 MiB), whatever the client sends.
const GROWN_MIB: f64 = 8.0;

pub const LAB: Lab = Lab {
    bug: Bug::NoBackpressure,
    scenario: "one client writes pings for 1.5 s and never reads; the server's memory is measured",
    serve: &[],
    fd_limit: None,
    // The last reply sent: everything owed to the client, at its reset.
    strace: ("sendto", &["ECONNRESET"]),
    first_line: None,
    drive,
};

fn drive(server: &mut Server) -> io::Result<Symptoms> {
    let before = server.rss_kib()?;
    let client = server.connect()?;
    let pings = b"ping\n".repeat((64 << 10) / 5);
    let sent = probe::push_for(&client, &pings, Duration::from_millis(1500), CAP)?;
    let grown = server.rss_kib()?.saturating_sub(before) as f64 / 1024.0;
    Ok(Symptoms::default()
        .reading(format!("client got {:.0} MiB in", sent as f64 / (1 << 20) as f64))
        .reading(format!("server memory +{grown:.1} MiB"))
        .broken_if(grown > GROWN_MIB))
}
