//! Lab `stale-events`: news about a connection that is gone reaches the
//! connection that now has its fd number (tokio-rs/mio#361).
//!
//! The kernel hands out the lowest free fd number, so a connection accepted
//! just after another closed gets the number the closed one had. Anything
//! that names a connection by its fd alone can then reach the wrong one: a
//! readiness event from earlier in the batch, or, in hybrid mode, the
//! replies a worker finished for a client that left while it worked. The
//! lab's first client sends `secret for A`, and resets while the one worker
//! is busy with it (`--work-ms 300`); a second client connects at once, gets
//! the same fd number, and sends `hello from B`. Guarded, the finished job
//! carries A's connection id, which is not B's: it is dropped, and B gets its
//! own echo. Broken, the fd number is enough, and B is told A's secret.

use std::io::Write;
use std::time::Duration;
use std::{io, thread};

use super::probe::LabServer;
use super::{Lab, Symptoms};
use crate::bugs::Bug;
use crate::observe::wire;

pub const LAB: Lab = Lab {
    bug: Bug::StaleEvents,
    scenario:
        "hybrid: A sends a line and resets while a worker has it; B gets A's fd and sends one",
    serve: &["--mode", "hybrid", "--workers", "1", "--work-ms", "300"],
    fd_limit: None,
    // A's reset, B accepted on the same fd, and A's reply sent to B.
    strace: ("read,accept4,sendto", &["ECONNRESET", "16], SOCK_CLOEXEC", "secret for A"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let a = server.connect()?;
    (&a).write_all(b"secret for A\n")?;
    thread::sleep(Duration::from_millis(50)); // a worker has it now
    wire::reset(a)?;
    thread::sleep(Duration::from_millis(50)); // the server closes A's fd
    let b = server.connect()?;
    let told = wire::ask(&b, b"hello from B\n", Duration::from_secs(2))?;
    let wrong = told.as_deref() == Some("secret for A");
    Ok(Symptoms::default()
        .reading(match told {
            Some(line) => format!("B was told {line:?}"),
            None => "B was told nothing".to_string(),
        })
        .reading(if wrong { "1 reply reached the wrong client" } else { "0 replies misdelivered" })
        .broken_if(wrong))
}
