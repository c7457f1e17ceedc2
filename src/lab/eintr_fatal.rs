//! Lab `eintr-fatal`: a `?` on the wait kills the server whenever a signal
//! interrupts it (rust-lang/futures-rs#2).
//!
//! The lab does what a student's shell does on Ctrl-Z and then `fg`:
//! SIGSTOP, then SIGCONT. On Linux a wait in `epoll_wait` then fails with
//! EINTR even though no handler ran (signal(7), "Interruption of system
//! calls ... by stop signals"); so does any wait a signal handler
//! interrupts, and `strace -p` attaching. Guarded, EINTR is an empty batch
//! and the loop waits again. Broken, it is an error, and the server exits.

use std::io;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};

use super::probe::LabServer;
use super::{Lab, Symptoms};
use crate::bugs::Bug;

pub const LAB: Lab = Lab {
    bug: Bug::EintrFatal,
    scenario: "the server is stopped and continued (Ctrl-Z, fg), then a client pings",
    serve: &[],
    fd_limit: None,
    strace: ("?epoll_wait,epoll_pwait", &["EINTR", "SIGCONT", "exited"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    thread::sleep(Duration::from_millis(100)); // let it settle into its wait
    kill(server.pid, Signal::SIGSTOP)?;
    thread::sleep(Duration::from_millis(100));
    kill(server.pid, Signal::SIGCONT)?;
    thread::sleep(Duration::from_millis(300));
    let alive = server.alive();
    let served = server.serves_newcomer();
    let said = server.stderr().into_iter().find(|line| line.starts_with("pingpong serve:"));
    let ending = match (alive, said) {
        (true, _) => "alive after Ctrl-Z, fg".to_string(),
        (false, Some(line)) => format!("exited: {line:?}"),
        (false, None) => "exited".to_string(),
    };
    Ok(Symptoms::default()
        .reading(ending)
        .reading(if served { "next client served" } else { "next client refused" })
        .broken_if(!alive || !served))
}
