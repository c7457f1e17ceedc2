//! `eof/*`: the end of a connection. A client's EOF (its FIN, `recv`
//! returning empty) means it will send nothing more, not that it wants
//! nothing more: what it is owed is still sent, then the server closes.

use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use pingpong::observe::tcp_table::{self, CLOSE_WAIT};

/// `st` 01.
const ESTABLISHED: u8 = 0x01;

use crate::case::{could_not, Case, Ctx, Needs, Outcome};
use crate::exchange::{expect, expect_eof, send};

pub const CASES: [Case; 2] = [
    Case {
        id: "eof/half-close",
        title: "sends `ping\\nhello` (no newline at the end), then shuts down its side",
        rule: "\"pong\\nhello\", then the server closes (EOF)",
        mistake: Some(
            "the last line dropped at EOF, or the replies still owed thrown away when \
             recv() returns empty",
        ),
        lab: None,
        see: Some("`printf 'ping\\nhello' | nc -N HOST PORT` does the same"),
        needs: Needs::Address,
        window: Duration::ZERO,
        run: half_close,
    },
    Case {
        id: "eof/closes",
        title: "a client pings, reads its pong, and closes",
        rule: "the server's socket for it is closed (not left in CLOSE_WAIT) within 1 s",
        mistake: Some(
            "the socket never closed after recv() returned empty: each such client \
             leaves an fd behind, until the server runs out",
        ),
        lab: None,
        see: Some("`ss -tan state close-wait` shows them"),
        needs: Needs::Address,
        window: Duration::from_secs(1),
        run: closes,
    },
];

fn half_close(ctx: &Ctx) -> Result<Outcome, String> {
    let stream = ctx.connect()?;
    send(&stream, b"ping\nhello", ctx.deadline)?;
    stream.shutdown(Shutdown::Write).map_err(|e| could_not("shut down", &e))?;
    expect(&stream, b"pong\nhello", ctx.deadline)?;
    // The last line had no newline: a server may end its reply with one.
    expect_eof(&stream, b"\n", ctx.deadline)?;
    Ok(Outcome::Pass("\"pong\\nhello\", then EOF".into()))
}

fn closes(ctx: &Ctx) -> Result<Outcome, String> {
    let stream = ctx.connect()?;
    send(&stream, b"ping\n", ctx.deadline)?;
    expect(&stream, b"pong\n", ctx.deadline)?;
    let (client, server) = (
        stream.local_addr().map_err(|e| could_not("read our address", &e))?,
        stream.peer_addr().map_err(|e| could_not("read the server's address", &e))?,
    );
    // The server's end of this connection: local = server, remote = us.
    let servers_end = || -> Result<Option<u8>, String> {
        let rows = tcp_table::table().map_err(|e| could_not("read /proc/net/tcp", &e))?;
        Ok(rows.iter().find(|r| r.local == server && r.remote == client).map(|r| r.state))
    };
    if servers_end()?.is_none() {
        return Ok(Outcome::Skip(
            "the server's end of the connection is not in /proc/net/tcp: it runs on \
             another host (or in another network namespace)"
                .into(),
        ));
    }
    drop(stream);
    let closed = Instant::now();
    loop {
        // ESTABLISHED for a moment (our FIN on its way), then CLOSE_WAIT
        // until the server calls close(2); LAST_ACK or gone once it has.
        let state = servers_end()?;
        let open = matches!(state, Some(ESTABLISHED | CLOSE_WAIT));
        if !open {
            let now =
                state.map_or(String::new(), |s| format!(" (now {})", tcp_table::state_name(s)));
            return Ok(Outcome::Pass(format!(
                "closed after {} ms{now}",
                closed.elapsed().as_millis()
            )));
        }
        if closed.elapsed() >= Duration::from_secs(1) {
            let state = tcp_table::state_name(state.unwrap_or(CLOSE_WAIT));
            return Err(format!(
                "the server's socket is still in {state} 1 s after the client closed: \
                 the server never closed it"
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}
