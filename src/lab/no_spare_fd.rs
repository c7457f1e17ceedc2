//! Lab `no-spare-fd`: out of fds, the listener spins (redis#246).
//!
//! The server may open 32 fds; 40 clients connect and stay. Those it has no
//! fd for wait in the listen queue, so the listener stays readable. Guarded,
//! the spare fd refuses them (`error: server busy`) and the loop sleeps.
//! Broken, `accept` fails with EMFILE and the loop goes back to a wait that
//! returns at once, forever. Then one client leaves and a newcomer asks for
//! a pong: guarded, it is served; broken, the freed fd goes to the oldest
//! client in the queue, and the newcomer waits behind the rest.

use std::io;
use std::thread;
use std::time::Duration;

use super::probe::LabServer;
use super::{thousands, Lab, Symptoms};
use crate::bugs::Bug;
use crate::observe::wire;

/// Clients that connect and say nothing: more than 32 fds can hold.
const CROWD: usize = 40;

pub const LAB: Lab = Lab {
    bug: Bug::NoSpareFd,
    scenario: "40 clients against a server allowed 32 fds, then one leaves and a newcomer pings",
    serve: &["--max-clients", "1000"],
    fd_limit: Some(32),
    strace: ("accept4,?epoll_wait,epoll_pwait", &["EMFILE", "epoll_"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let mut crowd = (0..CROWD).map(|_| server.connect()).collect::<io::Result<Vec<_>>>()?;
    thread::sleep(Duration::from_millis(200));
    let load = server.load_over(Duration::from_secs(1))?;
    drop(crowd.remove(0)); // one leaves: an fd is free
    thread::sleep(Duration::from_millis(100));
    let newcomer = server.connect()?;
    let answer = wire::ask(&newcomer, b"ping\n", Duration::from_secs(1))?;
    let served = answer.as_deref() == Some("pong");
    Ok(Symptoms::default()
        .reading(format!("{:.2} core", load.cores))
        .reading(format!("{} waits/s", thousands(load.waits_per_sec)))
        .reading(match answer.as_deref() {
            Some("pong") => "newcomer served".to_string(),
            Some(line) => format!("newcomer told {line:?}"),
            None => "newcomer not answered in 1 s".to_string(),
        })
        .broken_if(load.waits_per_sec > 1000.0 || !served))
}
