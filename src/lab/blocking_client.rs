//! Lab `blocking-client`: one socket left blocking, and a client that does
//! not read stops the whole event loop, as in the blocking server.
//!
//! An event loop may only make calls that return at once. The readiness it
//! waits for promises *some* room in the send buffer, not room for every
//! reply: on a blocking socket, a `send` bigger than the room waits for the
//! client to read. The lab's first client sends pings and never reads a
//! pong; 400 ms later a second client sends one ping. Guarded, the first
//! client's replies wait in `outb` (and backpressure stops reading it), and
//! the second is answered. Broken, the loop sits inside one `sendto` to the
//! first client, and nobody else is served until that client goes.

use std::io;
use std::thread;
use std::time::Duration;

use super::probe::LabServer;
use super::{Lab, Symptoms};
use crate::bugs::Bug;
use crate::observe::wire;

pub const LAB: Lab = Lab {
    bug: Bug::BlockingClient,
    scenario: "one client sends pings and never reads; 400 ms later a second client pings",
    serve: &[],
    fd_limit: None,
    // The send to the first client ends only when that client goes (its
    // reset); only then is the second accepted (without SOCK_NONBLOCK) and
    // answered.
    strace: ("accept4,read,sendto", &["ECONNRESET", "16], SOCK_CLOEXEC)", "\"pong\\n\", 5"]),
    first_line: None,
    drive,
};

fn drive(server: &mut LabServer) -> io::Result<Symptoms> {
    let silent = server.connect()?;
    let writer = silent.try_clone()?;
    let sending = thread::spawn(move || {
        let pings = b"ping\n".repeat(64 << 10);
        wire::push_for(&writer, &pings, Duration::from_secs(1), usize::MAX).map(|_| writer)
    });
    thread::sleep(Duration::from_millis(400));
    let stuck = blocked_in_sendto(server);
    let second = server.connect()?;
    let answered =
        wire::ask(&second, b"ping\n", Duration::from_secs(1))?.as_deref() == Some("pong");
    // The first client goes (with pongs unread: a reset), which frees the loop.
    let writer = sending.join().map_err(|_| io::Error::other("the writer panicked"))?;
    drop((silent, writer));
    let late = !answered && wire::ask(&second, b"", Duration::from_secs(1))?.is_some();
    Ok(Symptoms::default()
        .reading(if stuck { "server inside sendto(2)" } else { "server not inside sendto(2)" })
        .reading(match (answered, late) {
            (true, _) => "second client answered",
            (false, true) => "second client answered only once the first left",
            (false, false) => "second client never answered",
        })
        .broken_if(!answered))
}

/// Whether the server is blocked in `sendto(2)` right now.
fn blocked_in_sendto(server: &LabServer) -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(server.blocked_in(), Ok(Some(call)) if call == libc::SYS_sendto)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = server;
        false
    }
}
