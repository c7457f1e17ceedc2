//! `conc/*`: many clients at once. A server serves one client at a time
//! unless something lets it wait for several: threads, or a selector with
//! non-blocking sockets. Here a client that stalls must not stall the
//! others, and many clients at once must each get their own replies.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::exchange::{count, expect, newcomer, push_until, send};

pub const CASES: [Case; 3] = [
    Case {
        id: "conc/second-client",
        title: "client A sends half a line and waits; client B pings",
        rule: "B's pong within 1 s",
        mistake: Some(
            "one client at a time: the server waits in A's recv() while B waits to be \
             accepted (the course's simple server)",
        ),
        lab: None,
        see: Some("`pingpong serve --mode blocking` does the same, on purpose"),
        needs: Needs::Address,
        window: Duration::from_millis(100),
        run: second_client,
    },
    Case {
        id: "conc/many",
        title: "100 clients at once, each sending 10 lines (pings and its own echoes)",
        rule: "1,000 replies, each to the client that asked, in order",
        mistake: Some("replies lost, or sent to the wrong client (state shared between clients)"),
        lab: None,
        see: None,
        needs: Needs::Address,
        window: Duration::ZERO,
        run: many,
    },
    Case {
        id: "conc/stuck-reader",
        title: "client A (4 KiB receive buffer) writes up to 8 MiB of pings and never \
                reads; once A's writes stall (or after 3 s) client B pings",
        rule: "B's pong within 1 s",
        mistake: Some(
            "a blocking write inside an event loop (sendall on a blocking socket): the \
             whole loop waits for A to read; or a loop kept so busy by A (copying a \
             reply buffer that only grows) that B waits",
        ),
        lab: Some("blocking-client"),
        see: None,
        needs: Needs::Address,
        window: Duration::from_secs(4),
        run: stuck_reader,
    },
];

fn second_client(ctx: &Ctx) -> Result<Outcome, String> {
    let first = ctx.connect()?;
    send(&first, b"pi", ctx.deadline)?;
    // Time for the server to accept A and start waiting on it.
    thread::sleep(Duration::from_millis(100));
    let took = newcomer(ctx, Duration::from_secs(1))
        .map_err(|e| format!("B, within 1 s: {e} (while A waits with half a line sent)"))?;
    drop(first);
    Ok(Outcome::Pass(format!("B's pong after {} ms", took.as_millis())))
}

const CLIENTS: usize = 100;
const LINES: usize = 10;

fn many(ctx: &Ctx) -> Result<Outcome, String> {
    let start = Arc::new(Barrier::new(CLIENTS));
    let deadline = ctx.deadline;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (start, connected) = (Arc::clone(&start), ctx.connect());
            thread::spawn(move || {
                start.wait(); // everyone connected (or not) before anyone speaks
                let stream = connected.map_err(|e| format!("client {id}: {e}"))?;
                for i in 0..LINES {
                    let line = if i % 2 == 0 {
                        "ping\n".to_string()
                    } else {
                        format!("client {id} line {i}\n")
                    };
                    let reply = if i % 2 == 0 { "pong\n" } else { &line };
                    send(&stream, line.as_bytes(), deadline)
                        .and_then(|()| expect(&stream, reply.as_bytes(), deadline))
                        .map_err(|e| format!("client {id}, line {}: {e}", i + 1))?;
                }
                Ok::<usize, String>(LINES)
            })
        })
        .collect();
    let (mut replies, mut failures) = (0, Vec::new());
    for client in clients {
        match client.join() {
            Ok(Ok(n)) => replies += n,
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a client thread panicked".into()),
        }
    }
    match failures.first() {
        None => Ok(Outcome::Pass(format!("{} replies, each to its client", count(replies)))),
        Some(first) => {
            Err(format!("{} of {} clients failed; the first: {first}", failures.len(), CLIENTS))
        }
    }
}

fn stuck_reader(ctx: &Ctx) -> Result<Outcome, String> {
    let stuck = ctx.connect_small()?;
    let writer = stuck.try_clone().map_err(|e| e.to_string())?;
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let deadline = ctx.deadline;
    let pushing = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        // Keep writing the whole time B waits: a client that stopped at the
        // first EAGAIN would let a blocked server go on.
        thread::spawn(move || {
            let pings = b"ping\n".repeat((64 << 10) / 5);
            push_until(&writer, &pings, 8 << 20, &stop, &sent, deadline)
        })
    };
    // B comes once A's writes stall (the server has stopped reading A:
    // blocked writing to it, or holding back on purpose), or after 3 s
    // (a server that reads on). Before that, the server may still be
    // filling its send buffer, which the kernel grows to MiBs.
    let start = Instant::now();
    thread::sleep(Duration::from_millis(500));
    let (mut last, mut moved) = (sent.load(Ordering::Relaxed), Instant::now());
    while moved.elapsed() < Duration::from_millis(300) && start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(50));
        let now = sent.load(Ordering::Relaxed);
        if now != last {
            (last, moved) = (now, Instant::now());
        }
    }
    let answered = newcomer(ctx, Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = pushing.join();
    let sent = sent.load(Ordering::Relaxed);
    close_unread(stuck);
    let took = answered.map_err(|e| {
        format!("B, within 1 s: {e} (while A had written {} bytes and read none)", count(sent))
    })?;
    Ok(Outcome::Pass(format!(
        "B's pong after {} ms, while A had written {} bytes and read none",
        took.as_millis(),
        count(sent)
    )))
}

/// Close a connection with replies unread: close(2) then sends a reset,
/// which frees a server that was blocked writing to it at once.
fn close_unread(stream: TcpStream) {
    let _ = pingpong::observe::wire::reset(stream);
}
