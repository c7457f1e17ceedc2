//! One answering function for every mode (`server/handler.rs: answer`): the
//! same request gets the same reply, after the same `--work-ms`, whichever
//! mode serves it.
//!
//! The rule: `--work-ms` is slept once per line answered (the last line at
//! EOF, sent without a newline, is a line too), or, with `--echo`, once per
//! batch of bytes echoed. The times asserted are lower bounds only: a sleep
//! can last longer on a busy machine, never shorter, so these cannot fail
//! by chance.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use common::{mode_usable, read_to_end_with_timeout, Server, ALL_MODES, PATIENCE};

const WORK: Duration = Duration::from_millis(300);

/// Run `check` on a server of every mode started with `args`, in parallel.
fn in_every_mode(test: &str, args: &'static [&'static str], check: fn(&Server)) {
    let modes = ALL_MODES.iter().filter(|mode| mode_usable(mode, test));
    let runs: Vec<_> = modes
        .map(|&mode| {
            thread::spawn(move || {
                let server = Server::start(mode, args);
                check(&server);
                let stopped = server.stop();
                assert!(stopped.status.success(), "{mode}: exit {:?}", stopped.status);
            })
        })
        .collect();
    let failed = runs.into_iter().map(|run| run.join()).filter(Result::is_err).count();
    assert_eq!(failed, 0, "{failed} modes failed (their panics are above)");
}

#[test]
fn echo_work_is_slept_once_per_batch_in_every_mode() {
    in_every_mode("echo_work", &["--echo", "--work-ms", "300"], |server| {
        let mut stream = server.connect();
        let start = Instant::now();
        stream.write_all(b"abc").unwrap();
        let mut echoed = [0u8; 3];
        stream.read_exact(&mut echoed).unwrap();
        let took = start.elapsed();
        assert_eq!(&echoed, b"abc", "{}", server.mode);
        assert!(took >= WORK, "{}: echoed after {took:?}, before --work-ms", server.mode);
    });
}

#[test]
fn the_last_line_at_eof_gets_its_work_too_in_every_mode() {
    in_every_mode("last_line_work", &["--work-ms", "300"], |server| {
        let stream = server.connect();
        let start = Instant::now();
        (&stream).write_all(b"ping\nlast").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let replies = read_to_end_with_timeout(&stream, PATIENCE);
        let took = start.elapsed();
        assert_eq!(replies, b"pong\nlast", "{}", server.mode);
        assert!(took >= 2 * WORK, "{}: two requests answered in {took:?}", server.mode);
    });
}
