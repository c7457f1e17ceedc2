//! `line/*`: the protocol itself. Each line gets one reply, whatever way
//! its bytes arrive: all at once, in pieces, a byte at a time, thousands
//! in one write, 60,000 bytes long, or holding every byte value.
//!
//! TCP is a stream: it keeps the bytes and their order, never the writes.
//! A server that takes one `recv` for one message works while every
//! request fits in one segment, and fails on all of these.

use std::time::{Duration, Instant};

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::exchange::{arrives_within, count, expect, nothing_more, one_exchange, send, shown};

const ONE_RECV: &str = "one recv() taken for one message: TCP keeps bytes, not the writes \
                        they came in, so a line can arrive in pieces or many in one read";

pub const CASES: [Case; 8] = [
    Case {
        id: "line/ping",
        title: "sends `ping\\n`",
        rule: "\"pong\\n\" back, and nothing more",
        mistake: None,
        lab: None,
        see: None,
        needs: Needs::Address,
        window: Duration::ZERO,
        run: |ctx| exchange(ctx, b"ping\n", b"pong\n"),
    },
    Case {
        id: "line/echo",
        title: "sends `hello, world\\n`",
        rule: "the same line back",
        mistake: None,
        lab: None,
        see: None,
        needs: Needs::Address,
        window: Duration::ZERO,
        run: |ctx| exchange(ctx, b"hello, world\n", b"hello, world\n"),
    },
    Case {
        id: "line/crlf",
        title: "sends `ping\\r\\n`, as telnet does",
        rule: "\"pong\\r\\n\": the \\r is not part of the line, and the reply keeps the ending",
        mistake: Some("the line ending mishandled: \"ping\\r\" compared with \"ping\""),
        lab: None,
        see: Some("src/protocol.rs, respond"),
        needs: Needs::Address,
        window: Duration::ZERO,
        run: |ctx| exchange(ctx, b"ping\r\n", b"pong\r\n"),
    },
    Case {
        id: "line/pipelined",
        title: "sends 20,000 lines (pings and echoes, 330 KB) in one write",
        rule: "every reply, in order",
        mistake: Some(
            "one recv() taken for one message, or (edge-triggered) a read not repeated \
             until EAGAIN: the rest of the bytes wait for an event that never comes",
        ),
        lab: Some("edge-no-drain"),
        see: None,
        needs: Needs::Address,
        window: Duration::ZERO,
        run: pipelined,
    },
    Case {
        id: "line/split",
        title: "sends `ping\\n` in three writes, 200 ms apart",
        rule: "one \"pong\\n\", after the last piece, and nothing before it",
        mistake: Some(ONE_RECV),
        lab: None,
        see: None,
        needs: Needs::Address,
        window: Duration::from_millis(400),
        run: split,
    },
    Case {
        id: "line/bytewise",
        title: "sends `ping\\n` one byte per write",
        rule: "\"pong\\n\"",
        mistake: Some(ONE_RECV),
        lab: None,
        see: None,
        needs: Needs::Address,
        window: Duration::from_millis(100),
        run: bytewise,
    },
    Case {
        id: "line/long",
        title: "sends a 60,000-byte line",
        rule: "the line echoed intact",
        mistake: Some(
            "a line cut at one recv(1024), or a send() taken for sendall(): \
             send returns how much the kernel took, which may be less",
        ),
        lab: None,
        see: Some("`pingpong lab short-write-lost` shows a send taken for sendall"),
        needs: Needs::Address,
        window: Duration::ZERO,
        run: long,
    },
    Case {
        id: "line/binary",
        title: "sends a line of every byte value but \\n",
        rule: "the line echoed intact",
        mistake: Some(
            "bytes decoded as text (UTF-8): the protocol is bytes, and not every \
             byte string is valid UTF-8",
        ),
        lab: None,
        see: None,
        needs: Needs::Address,
        window: Duration::ZERO,
        run: binary,
    },
];

fn exchange(ctx: &Ctx, request: &[u8], reply: &[u8]) -> Result<Outcome, String> {
    one_exchange(ctx, request, reply)?;
    Ok(Outcome::Pass(shown(reply)))
}

/// Pings and numbered echoes, alternately.
const LINES: usize = 20_000;

fn pipelined(ctx: &Ctx) -> Result<Outcome, String> {
    let (mut requests, mut replies) = (Vec::new(), Vec::new());
    for i in 0..LINES {
        if i % 2 == 0 {
            requests.extend_from_slice(b"ping\n");
            replies.extend_from_slice(b"pong\n");
        } else {
            let line = format!("line {i:05} of the pipelined case\n");
            requests.extend_from_slice(line.as_bytes());
            replies.extend_from_slice(line.as_bytes());
        }
    }
    let stream = ctx.connect()?;
    // Written from a thread while this one reads: a server that answers as
    // it reads must not be blocked by a client that does not read.
    let writer = crate::exchange::send_aside(&stream, requests, ctx.deadline)?;
    let read = expect(&stream, &replies, ctx.deadline);
    let written = writer.join().unwrap_or_else(|_| Err("the writer panicked".into()));
    read?;
    written?;
    nothing_more(&stream)?;
    Ok(Outcome::Pass(format!("{} replies, in order", count(LINES))))
}

fn split(ctx: &Ctx) -> Result<Outcome, String> {
    let stream = ctx.connect()?;
    let pieces: [&[u8]; 3] = [b"pi", b"n", b"g\n"];
    let mut sent = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        send(&stream, piece, ctx.deadline)?;
        sent.extend_from_slice(piece);
        if i + 1 < pieces.len() {
            // 200 ms for the piece to arrive alone; any answer now is early.
            if let Some(early) = arrives_within(&stream, Duration::from_millis(200))? {
                return Err(format!(
                    "{} came back when only {} had been sent",
                    shown(&early),
                    shown(&sent)
                ));
            }
        }
    }
    expect(&stream, b"pong\n", ctx.deadline)?;
    nothing_more(&stream)?;
    Ok(Outcome::Pass("\"pong\\n\", after the last piece".into()))
}

fn bytewise(ctx: &Ctx) -> Result<Outcome, String> {
    let stream = ctx.connect()?;
    for byte in b"ping\n" {
        send(&stream, &[*byte], ctx.deadline)?;
        // TCP_NODELAY is on: a pause makes each byte its own segment.
        std::thread::sleep(Duration::from_millis(20));
    }
    expect(&stream, b"pong\n", ctx.deadline)?;
    nothing_more(&stream)?;
    Ok(Outcome::Pass("\"pong\\n\"".into()))
}

fn long(ctx: &Ctx) -> Result<Outcome, String> {
    // Letters in a pattern that does not line up with any buffer size, so a
    // hole or a repeat shows.
    let mut line: Vec<u8> = (0..60_000).map(|i| b'a' + (i % 23) as u8).collect();
    line.push(b'\n');
    echoed(ctx, line)
}

fn binary(ctx: &Ctx) -> Result<Outcome, String> {
    let mut line: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
    line.push(b'\n');
    echoed(ctx, line)
}

fn echoed(ctx: &Ctx, line: Vec<u8>) -> Result<Outcome, String> {
    let stream = ctx.connect()?;
    let start = Instant::now();
    let writer = crate::exchange::send_aside(&stream, line.clone(), ctx.deadline)?;
    let read = expect(&stream, &line, ctx.deadline);
    let written = writer.join().unwrap_or_else(|_| Err("the writer panicked".into()));
    read?;
    written?;
    nothing_more(&stream)?;
    Ok(Outcome::Pass(format!(
        "{} bytes back intact in {} ms",
        count(line.len()),
        start.elapsed().as_millis()
    )))
}
