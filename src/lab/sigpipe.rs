//! Lab `sigpipe`: one client that resets kills the whole server
//! (tokio-rs/mio#577).
//!
//! A write to a connection the peer has torn down fails with EPIPE, and the
//! kernel also sends the writer SIGPIPE, whose default action ends the
//! process: a sensible default for `cat file | head`, a fatal one for a
//! server. The lab's client shuts down its side (the server's socket is
//! then in CLOSE_WAIT), then resets, with a ping the server has not read
//! yet. (The server is stopped meanwhile, as Ctrl-Z does, so the order is
//! sure.) The server reads the ping and writes its pong to a socket that
//! is gone. Guarded (`MSG_NOSIGNAL`), the write fails with EPIPE and only
//! that client is closed. Broken, SIGPIPE kills the server.

use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};

use super::probe::LabServer;
use super::{Lab, Symptoms};
use crate::bugs::Bug;
use crate::observe::wire;

pub const LAB: Lab = Lab {
    bug: Bug::Sigpipe,
    scenario: "a client shuts down, then resets with a ping unread; then a newcomer pings",
    serve: &[],
    fd_limit: None,
    // The write that fails, the signal it raises, the end.
    strace: ("sendto", &["EPIPE", "SIGPIPE", "killed by"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let rude = server.connect()?;
    wire::ask(&rude, b"ping\n", Duration::from_secs(1))?; // accepted, and served
    kill(server.pid, Signal::SIGSTOP)?;
    (&rude).write_all(b"ping\n")?;
    rude.shutdown(Shutdown::Write)?; // our FIN: the server's socket is in CLOSE_WAIT
    thread::sleep(Duration::from_millis(50));
    wire::reset(rude)?;
    thread::sleep(Duration::from_millis(50));
    kill(server.pid, Signal::SIGCONT)?;
    thread::sleep(Duration::from_millis(300));
    let alive = server.alive();
    let served = server.serves_newcomer();
    let ending = match server.exit_status() {
        None => "alive after the reset".to_string(),
        Some(status) => match status.signal().and_then(|n| Signal::try_from(n).ok()) {
            Some(signal) => format!("killed by {signal}"),
            None => format!("exited ({status})"),
        },
    };
    Ok(Symptoms::default()
        .reading(ending)
        .reading(if served { "newcomer served" } else { "newcomer refused" })
        .broken_if(!alive || !served))
}
