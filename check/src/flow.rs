//! `flow/*`: a client slower than the server. Its receive buffer fills, the
//! server's `send` takes less than it was given (or, blocking, waits), and
//! what it did not take must be kept and sent later, in order.

use std::thread;
use std::time::Duration;

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::exchange::{count, expect, send_aside};

/// 4 MiB of pings.
const PINGS: usize = (4 << 20) / 5;

pub const CASES: [Case; 1] = [Case {
    id: "flow/slow-reader",
    title: "writes 4 MiB of pings with a 4 KiB receive buffer, reads nothing for 1 s, \
            then reads everything",
    rule: "every pong, exactly: 4 MiB of \"pong\\n\"",
    mistake: Some(
        "a partial write taken for a whole one: send() returned less than it was given \
         and the rest was dropped (sendall, or keep the rest in outb)",
    ),
    lab: Some("short-write-lost"),
    see: None,
    needs: Needs::Address,
    window: Duration::from_secs(1),
    run: slow_reader,
}];

fn slow_reader(ctx: &Ctx) -> Result<Outcome, String> {
    // The small buffer is what makes the server's writes fall short: with
    // the loopback's autotuning, several MiB would fit and nothing would.
    let stream = ctx.connect_small()?;
    let writer = send_aside(&stream, b"ping\n".repeat(PINGS), ctx.deadline)?;
    thread::sleep(Duration::from_secs(1));
    let read = expect(&stream, &b"pong\n".repeat(PINGS), ctx.deadline);
    let written = writer.join().unwrap_or_else(|_| Err("the writer panicked".into()));
    read?;
    written?;
    Ok(Outcome::Pass(format!("{} pongs, exact", count(PINGS))))
}
