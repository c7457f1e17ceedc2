//! `reset/*`: clients that vanish. A client that crashes, or closes with
//! bytes unread, sends a reset (RST) instead of a FIN: the server's next
//! `recv` fails with ECONNRESET, its next `send` with EPIPE, and on a
//! socket with no `MSG_NOSIGNAL` the kernel also sends it SIGPIPE, which
//! ends a process by default. One client's end must stay that client's.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pingpong::observe::wire;

use crate::case::{could_not, Case, Ctx, Needs, Outcome};
use crate::exchange::{expect, newcomer, send};

pub const CASES: [Case; 2] = [
    Case {
        id: "reset/storm",
        title: "200 clients send a ping each and reset (SO_LINGER 0), all at once",
        rule: "a newcomer is served after",
        mistake: Some(
            "an uncaught ConnectionResetError (ECONNRESET) from recv() or send() ends \
             the server, or its loop",
        ),
        lab: None,
        see: None,
        needs: Needs::Address,
        window: Duration::from_secs(1),
        run: storm,
    },
    Case {
        id: "reset/close-wait",
        title: "a client sends a ping, shuts down its side, then resets with its pong \
                owed (with a pid, the server is stopped meanwhile, as the lab does)",
        rule: "a newcomer is served after",
        mistake: Some(
            "SIGPIPE (or an uncaught BrokenPipeError) kills the server when it writes to \
             a client that is gone: send with MSG_NOSIGNAL, or ignore SIGPIPE",
        ),
        lab: Some("sigpipe"),
        see: None,
        needs: Needs::Address,
        window: Duration::from_millis(500),
        run: close_wait,
    },
];

const STORM: usize = 200;

fn storm(ctx: &Ctx) -> Result<Outcome, String> {
    let addr = ctx.addr;
    // Connected from threads, so that a server slow to accept (its queue
    // full) costs one second, not one second per client.
    let connecting: Vec<_> = (0..STORM)
        .map(|_| {
            thread::spawn(move || {
                let stream = wire::connect(addr, Duration::from_secs(1)).ok()?;
                (&stream).write_all(b"ping\n").ok()?;
                Some(stream)
            })
        })
        .collect();
    let clients: Vec<TcpStream> =
        connecting.into_iter().filter_map(|c| c.join().ok().flatten()).collect();
    let connected = clients.len();
    for client in clients {
        let _ = wire::reset(client);
    }
    thread::sleep(Duration::from_millis(200));
    let took = newcomer(ctx, ctx.left()).map_err(|e| {
        format!("a newcomer: {e} (after {connected} clients had sent a ping and reset)")
    })?;
    Ok(Outcome::Pass(format!(
        "{connected} resets, then a newcomer's pong after {} ms",
        took.as_millis()
    )))
}

/// Sends SIGCONT when dropped: a server stopped by a case is continued
/// however the case ends.
struct Stopped(Option<Pid>);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }
}

fn close_wait(ctx: &Ctx) -> Result<Outcome, String> {
    let rude = ctx.connect()?;
    send(&rude, b"ping\n", ctx.deadline)?;
    expect(&rude, b"pong\n", ctx.deadline)?; // accepted, and served
                                             // Stopped, the server cannot read the ping before the reset is in: the
                                             // order is sure. Without a pid, it is likely on a quiet machine.
    let stopped = Stopped(ctx.pid.map(Pid::from_raw));
    if let Some(pid) = stopped.0 {
        kill(pid, Signal::SIGSTOP).map_err(|e| format!("could not stop the server: {e}"))?;
    }
    send(&rude, b"ping\n", ctx.deadline)?;
    rude.shutdown(Shutdown::Write).map_err(|e| could_not("shut down", &e))?;
    thread::sleep(Duration::from_millis(50));
    wire::reset(rude).map_err(|e| could_not("reset", &e))?;
    thread::sleep(Duration::from_millis(50));
    let held = stopped.0.is_some();
    drop(stopped); // SIGCONT: it reads the ping and writes to a reset socket
    thread::sleep(Duration::from_millis(300));
    let took = newcomer(ctx, ctx.left())
        .map_err(|e| format!("a newcomer: {e} (after a client reset with its pong owed)"))?;
    let how = if held { " (the server held stopped meanwhile)" } else { "" };
    Ok(Outcome::Pass(format!("a newcomer's pong after {} ms{how}", took.as_millis())))
}
