//! `fd/*`: a server out of file descriptors. With every fd in use,
//! `accept` fails with EMFILE and the connection stays in the listen
//! queue, so the listener is still readable: a loop that just waits again
//! spins at full speed until an fd frees up.

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use pingpong::observe::{wire, Sample};

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::exchange::newcomer;
use crate::target::{death, launch};

/// The fd limit the server is started with, and the clients it must hold.
const FD_LIMIT: u32 = 64;
const HELD: usize = 100;
/// The share of a core a server may use while out of fds.
const WAITING_CORES: f64 = 0.20;

pub const CASES: [Case; 1] = [Case {
    id: "fd/emfile",
    title: "starts the server with 64 fds (ulimit -n 64); 100 connections are held, then closed",
    rule: "under 20% of a core while they wait, and a newcomer is served once they close",
    mistake: Some(
        "out of fds, accept() fails with EMFILE, the listener stays readable and the \
         loop spins (or the error ends the server): keep a spare fd, or stop \
         listening for a while",
    ),
    lab: Some("no-spare-fd"),
    see: None,
    needs: Needs::Command,
    window: Duration::from_secs(2),
    run: emfile,
}];

fn emfile(ctx: &Ctx) -> Result<Outcome, String> {
    let command = ctx.command.as_ref().ok_or("no command")?;
    let (mut server, addr) = launch(command, None, Some(FD_LIMIT))
        .map_err(|e| format!("could not start it with ulimit -n {FD_LIMIT}: {e}"))?;
    let pid = server.pid();
    let ctx =
        Ctx { addr, pid: Some(pid), command: None, timeout: ctx.timeout, deadline: ctx.deadline };
    let connecting: Vec<_> = (0..HELD)
        .map(|_| thread::spawn(move || wire::connect(addr, Duration::from_secs(1)).ok()))
        .collect();
    let held: Vec<TcpStream> =
        connecting.into_iter().filter_map(|c| c.join().ok().flatten()).collect();
    thread::sleep(Duration::from_millis(300));
    let sample = || Sample::take(pid).map_err(|e| format!("could not read /proc/{pid}: {e}"));
    let measured = sample().and_then(|before| {
        thread::sleep(Duration::from_secs(1));
        Ok(sample()?.cores_since(&before))
    });
    let connected = held.len();
    drop(held);
    if server.exit_status().is_some() {
        return Err(format!("with {connected} connections held: {}", death(&mut server)));
    }
    let cores = measured?;
    let busy = format!("{:.0}% of a core with {connected} connections held", cores * 100.0);
    if cores >= WAITING_CORES {
        let _ = server.stop(Duration::from_secs(2));
        return Err(busy);
    }
    thread::sleep(Duration::from_millis(300));
    let served = newcomer(&ctx, ctx.left());
    let died = server.exit_status().is_some().then(|| death(&mut server));
    let _ = server.stop(Duration::from_secs(2));
    if let Some(died) = died {
        return Err(format!("{busy}, then {died}"));
    }
    let took = served.map_err(|e| format!("{busy}; once they closed, a newcomer: {e}"))?;
    Ok(Outcome::Pass(format!(
        "{busy}; once they closed, a newcomer's pong in {} ms",
        took.as_millis()
    )))
}
