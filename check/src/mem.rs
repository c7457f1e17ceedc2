//! `mem/*`: what a server keeps for a client that takes nothing. Replies a
//! client does not read pile up somewhere; a server with backpressure
//! stops reading that client until it reads (TCP's flow control then
//! stops the client), and its memory stays put.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;
use std::time::{Duration, Instant};

use pingpong::observe::Sample;

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::exchange::{mib, push_until};

/// Growth that counts as no backpressure, whatever the client sent.
const GROWN: u64 = 64 << 20;
/// Growth that counts when it tracks what the client sent: a server slow
/// to read (a debug build, Python) takes less than 64 MiB in 2 s, and
/// keeps all of it.
const GROWN_IN_STEP: u64 = 16 << 20;
/// What the client writes at most, so a broken server cannot take the machine.
const CAP: usize = 192 << 20;

pub const CASES: [Case; 1] = [Case {
    id: "mem/never-reader",
    title: "a client (4 KiB receive buffer) writes for 2 s, never reading: pings, each \
            followed by a 60,000-byte line to echo",
    rule: "the server's memory grows by less than 64 MiB, and not in step with what the \
           client sends (16 MiB or more, and over half of it)",
    mistake: Some(
        "no backpressure: the server reads on and keeps every reply it cannot send; \
         stop reading a client while its replies wait",
    ),
    lab: Some("no-backpressure"),
    see: None,
    needs: Needs::Pid,
    window: Duration::from_secs(2),
    run: never_reader,
}];

fn never_reader(ctx: &Ctx) -> Result<Outcome, String> {
    let pid = ctx.pid.ok_or("no pid")?;
    let rss = || {
        Sample::take(pid)
            .map(|s| s.rss_bytes)
            .map_err(|e| format!("could not read /proc/{pid}: {e}"))
    };
    let before = rss()?;
    let client = ctx.connect_small()?;
    let writer = client.try_clone().map_err(|e| e.to_string())?;
    let until = Instant::now() + Duration::from_secs(2);
    let pushing = thread::spawn(move || {
        // Long lines as well as pings: a server that keeps its replies in
        // one growing buffer (Python's `outb += reply`) copies it whole per
        // reply, and with pings alone it would crawl so slowly that it
        // hardly grew in 2 s, hiding the mistake.
        let mut chunk = b"ping\n".to_vec();
        chunk.extend((0..60_000).map(|i| b'a' + (i % 23) as u8));
        chunk.push(b'\n');
        let sent = AtomicUsize::new(0);
        push_until(&writer, &chunk, CAP, &AtomicBool::new(false), &sent, until);
        sent.into_inner()
    });
    let mut peak = before;
    while !pushing.is_finished() {
        peak = peak.max(rss().unwrap_or(peak));
        thread::sleep(Duration::from_millis(50));
    }
    peak = peak.max(rss().unwrap_or(peak));
    let sent = pushing.join().unwrap_or(0);
    let _ = pingpong::observe::wire::reset(client);
    let grown = peak.saturating_sub(before);
    let said = format!(
        "the server took {} in 2 s and its memory grew by {}",
        mib(sent as f64),
        mib(grown as f64)
    );
    let in_step = grown >= GROWN_IN_STEP && grown > sent as u64 / 2;
    match grown < GROWN && !in_step {
        true => Ok(Outcome::Pass(said)),
        false => Err(said),
    }
}
