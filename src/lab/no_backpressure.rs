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

use super::probe::LabServer;
use super::{Lab, Symptoms};
use crate::bugs::Bug;
use crate::observe::wire;

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
    // The replies kept for the client outgrowing 8 MiB, and doubling on.
    strace: ("mremap", &["mremap"]),
    first_line: Some(grows_past_8_mib),
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let before = server.rss_kib()?;
    let client = server.connect()?;
    let pings = b"ping\n".repeat((64 << 10) / 5);
    let sent = wire::push_for(&client, &pings, Duration::from_millis(1500), CAP)?;
    let grown = server.rss_kib()?.saturating_sub(before) as f64 / 1024.0;
    Ok(Symptoms::default()
        .reading(format!("client got {:.0} MiB in", sent as f64 / (1 << 20) as f64))
        .reading(format!("server memory +{grown:.1} MiB"))
        .broken_if(grown > GROWN_MIB))
}

/// `mremap(0x7f.., 8392704, 16781312, MREMAP_MAYMOVE) = 0x7f..`: a buffer
/// the allocator moves as it grows, here past [`GROWN_MIB`].
fn grows_past_8_mib(line: &str) -> bool {
    let Some(args) = line.strip_prefix("mremap(") else { return false };
    let new_size = args.split(", ").nth(2).and_then(|n| n.parse::<u64>().ok());
    new_size.is_some_and(|n| n as f64 > GROWN_MIB * (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::grows_past_8_mib;

    #[test]
    fn growth_is_read_from_mremaps_new_size() {
        assert!(grows_past_8_mib("mremap(0x7f00, 8392704, 16781312, MREMAP_MAYMOVE) = 0x7e00"));
        assert!(!grows_past_8_mib("mremap(0x7f00, 266240, 528384, MREMAP_MAYMOVE) = 0x7e00"));
        assert!(!grows_past_8_mib("munmap(0x7f00, 16781312) = 0"));
    }
}
