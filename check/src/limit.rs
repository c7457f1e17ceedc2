//! `limit/*`: clients that take without end. A slow client must cost the
//! server one connection, not its whole attention; a line without a
//! newline must cost it at most a line's worth of memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pingpong::observe::{wire, Sample};

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::exchange::{mib, newcomer, push_until, shown, SHOWN};

pub const CASES: [Case; 2] = [
    Case {
        id: "limit/slowloris",
        title: "200 connections each trickle a byte (no newline) every 100 ms",
        rule: "a newcomer's pong within 1 s",
        mistake: Some(
            "one slow client holds the server (a blocking recv), or a bounded pool of \
             workers, one per connection, all held by slow clients",
        ),
        lab: None,
        see: Some("`pingpong serve --mode pool` does the same, on purpose"),
        needs: Needs::Address,
        window: Duration::from_secs(2),
        run: slowloris,
    },
    Case {
        id: "limit/huge-line",
        title: "sends 32 MiB with no newline",
        rule: "the server closes the connection (an error line first is welcome), or, \
               with a pid, its memory grows by less than 16 MiB",
        mistake: Some(
            "a line without a limit: the server keeps every byte, waiting for a newline \
             that never comes",
        ),
        lab: Some("no-line-limit"),
        see: None,
        needs: Needs::Address,
        window: Duration::ZERO,
        run: huge_line,
    },
];

const SLOW: usize = 200;

fn slowloris(ctx: &Ctx) -> Result<Outcome, String> {
    let addr = ctx.addr;
    let connecting: Vec<_> = (0..SLOW)
        .map(|_| thread::spawn(move || wire::connect(addr, Duration::from_secs(1)).ok()))
        .collect();
    let slow: Vec<TcpStream> =
        connecting.into_iter().filter_map(|c| c.join().ok().flatten()).collect();
    let connected = slow.len();
    let stop = Arc::new(AtomicBool::new(false));
    let trickling = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for mut client in &slow {
                    let _ = client.write(b"x");
                }
                thread::sleep(Duration::from_millis(100));
            }
            slow // closed only once the newcomer has been tried
        })
    };
    thread::sleep(Duration::from_millis(300));
    let answered = newcomer(ctx, Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    drop(trickling.join());
    let took = answered.map_err(|e| {
        format!("a newcomer, within 1 s: {e} (with {connected} slow clients connected)")
    })?;
    Ok(Outcome::Pass(format!(
        "with {connected} slow clients connected, a newcomer's pong after {} ms",
        took.as_millis()
    )))
}

const HUGE: usize = 32 << 20;
/// Growth a line limit stays far below (pingpong's is 64 KiB).
const GROWN: u64 = 16 << 20;

fn huge_line(ctx: &Ctx) -> Result<Outcome, String> {
    let rss = |pid: i32| Sample::take(pid).map(|s| s.rss_bytes).ok();
    let before = ctx.pid.and_then(rss);
    let stream = ctx.connect()?;
    let (writer, reader) = (clone(&stream)?, clone(&stream)?);
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let deadline = ctx.deadline;
    let pushing = {
        let stop = Arc::clone(&stop);
        let sent = Arc::clone(&sent);
        thread::spawn(move || push_until(&writer, &[b'x'; 64 << 10], HUGE, &stop, &sent, deadline))
    };
    // Whatever the server says (an error line, welcome), its first bytes
    // kept; and whether it closed.
    let listening = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || told(reader, &stop, deadline))
    };
    // The memory is read as the bytes go in, and for half a second after
    // the last is sent: the buffers between us held several MiB still on
    // their way to the server.
    let (mut peak, mut settled) = (before, None);
    while settled.is_none_or(|at: Instant| at.elapsed() < Duration::from_millis(500)) {
        if let (Some(pid), Some(p)) = (ctx.pid, peak) {
            peak = Some(rss(pid).map_or(p, |now| now.max(p)));
        }
        if settled.is_none() && pushing.is_finished() {
            settled = Some(Instant::now());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let ended = pushing.join().unwrap_or(false);
    let sent = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let (said, closed) = listening.join().unwrap_or_default();
    drop(stream);
    let said = if said.is_empty() { String::new() } else { format!(", saying {}", shown(&said)) };
    if ended || closed {
        return Ok(Outcome::Pass(format!(
            "the server closed the connection after {}{said}",
            mib(sent as f64)
        )));
    }
    let grown = match (before, peak) {
        (Some(before), Some(peak)) => peak.saturating_sub(before),
        _ => {
            return Err(format!(
                "the server took {} without a newline and kept the connection open{said}",
                mib(sent as f64)
            ))
        }
    };
    let report = format!(
        "the server took {} without a newline, kept the connection open, and its memory \
         grew by {}",
        mib(sent as f64),
        mib(grown as f64)
    );
    match grown < GROWN {
        true => Ok(Outcome::Pass(report)),
        false => Err(report),
    }
}

fn clone(stream: &TcpStream) -> Result<TcpStream, String> {
    stream.try_clone().map_err(|e| pingpong::words::cause(&e))
}

/// Read what the server sends until it closes, `stop` or the deadline,
/// keeping the first [`SHOWN`] bytes; and whether it closed (EOF or a reset).
fn told(mut stream: TcpStream, stop: &AtomicBool, deadline: Instant) -> (Vec<u8>, bool) {
    let (mut kept, mut buf) = (Vec::new(), [0u8; 4096]);
    // Short waits, so that `stop` is seen soon.
    if stream.set_read_timeout(Some(Duration::from_millis(50))).is_err() {
        return (kept, false);
    }
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (kept, true),
            Ok(n) => kept.extend_from_slice(&buf[..n.min(SHOWN.saturating_sub(kept.len()))]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (kept, true),
            Err(_) => {} // a timeout: look at `stop` again
        }
    }
    (kept, false)
}
