//! `cpu/*`: what a server does while nobody asks anything. Idle, it should
//! sleep in its wait; stopped and continued (Ctrl-Z, `fg`), it should wait
//! again. Both are read from outside: CPU time in `/proc/PID/stat`, and
//! signals, so both need the pid.

use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pingpong::observe::Sample;

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::exchange::{expect, newcomer, send};

/// The share of one core an idle server may use.
const IDLE_CORES: f64 = 0.05;

pub const CASES: [Case; 2] = [
    Case {
        id: "cpu/idle",
        title: "10 clients connect, ping once and go quiet; the server's CPU is read over 2 s",
        rule: "the server uses less than 5% of a core",
        mistake: Some(
            "EVENT_WRITE always asked for: a socket with room to write is always \
             writable, so select() returns at once, forever (a busy loop)",
        ),
        lab: Some("always-writable"),
        see: None,
        needs: Needs::Pid,
        window: Duration::from_millis(2500),
        run: idle,
    },
    Case {
        id: "cpu/stopped",
        title: "the server is stopped and continued (SIGSTOP, SIGCONT), as Ctrl-Z and fg do",
        rule: "a client is served after",
        mistake: Some(
            "EINTR taken as fatal: a wait interrupted by a signal fails with EINTR, \
             and must simply be made again",
        ),
        lab: Some("eintr-fatal"),
        see: None,
        needs: Needs::Pid,
        window: Duration::from_millis(500),
        run: stopped,
    },
];

fn idle(ctx: &Ctx) -> Result<Outcome, String> {
    let pid = ctx.pid.ok_or("no pid")?;
    let mut quiet = Vec::new();
    for _ in 0..10 {
        let client = ctx.connect()?;
        send(&client, b"ping\n", ctx.deadline)?;
        expect(&client, b"pong\n", ctx.deadline)?;
        quiet.push(client);
    }
    thread::sleep(Duration::from_millis(200));
    let sample = || Sample::take(pid).map_err(|e| format!("could not read /proc/{pid}: {e}"));
    let before = sample()?;
    thread::sleep(Duration::from_secs(2));
    let cores = sample()?.cores_since(&before);
    drop(quiet);
    let used = format!("{:.0}% of a core over 2 s, with 10 clients quiet", cores * 100.0);
    match cores < IDLE_CORES {
        true => Ok(Outcome::Pass(used)),
        false => Err(used),
    }
}

fn stopped(ctx: &Ctx) -> Result<Outcome, String> {
    let pid = Pid::from_raw(ctx.pid.ok_or("no pid")?);
    thread::sleep(Duration::from_millis(100)); // let it settle into its wait
    kill(pid, Signal::SIGSTOP).map_err(|e| format!("could not stop the server: {e}"))?;
    thread::sleep(Duration::from_millis(100));
    kill(pid, Signal::SIGCONT).map_err(|e| format!("could not continue the server: {e}"))?;
    thread::sleep(Duration::from_millis(300));
    let took =
        newcomer(ctx, ctx.left()).map_err(|e| format!("a client after SIGSTOP, SIGCONT: {e}"))?;
    Ok(Outcome::Pass(format!("served after SIGSTOP, SIGCONT (pong in {} ms)", took.as_millis())))
}
