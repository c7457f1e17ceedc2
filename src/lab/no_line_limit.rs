//! Lab `no-line-limit`: a line that never ends grows the server's memory
//! without end (redis#2679).
//!
//! The server keeps the start of a line until its newline comes. The lab's
//! client sends 24 MiB of `x` and no newline. Guarded, once `--max-line`
//! (64 KiB) has come without a newline the server answers
//! `error: line too long` and ends the connection: it never holds more than
//! 64 KiB of the line. Broken, it keeps every byte, waiting for a newline.

use std::io;
use std::thread;
use std::time::Duration;

use super::probe::LabServer;
use super::{Lab, Symptoms};
use crate::bugs::Bug;
use crate::observe::wire;

/// What the client sends, all of it one line.
const SENT: usize = 24 << 20;
/// Growth of the server's memory that counts as the symptom: guarded it
/// holds at most 64 KiB of the line.
const GROWN_MIB: f64 = 8.0;

pub const LAB: Lab = Lab {
    bug: Bug::NoLineLimit,
    scenario: "one client sends a 24 MiB line without a newline; the server's memory is measured",
    serve: &[],
    fd_limit: None,
    // The line buffer doubling, in place or moved: realloc's mremap.
    strace: ("mremap", &["mremap"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let before = server.rss_kib()?;
    let client = server.connect()?;
    let sent = wire::push_for(&client, &[b'x'; 64 << 10], Duration::from_secs(2), SENT)?;
    thread::sleep(Duration::from_millis(100)); // let the last bytes land
    let grown = server.rss_kib()?.saturating_sub(before) as f64 / 1024.0;
    let answer = wire::ask(&client, b"", Duration::from_millis(500)).unwrap_or(None);
    Ok(Symptoms::default()
        .reading(format!("sent {:.0} MiB", sent as f64 / (1 << 20) as f64))
        .reading(match answer {
            Some(line) => format!("told {line:?}"),
            None => "no answer".to_string(),
        })
        .reading(format!("server memory +{grown:.1} MiB"))
        .broken_if(grown > GROWN_MIB))
}
