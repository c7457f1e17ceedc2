//! `pingpong client` against servers that never finish a reply: it must
//! stop, say what arrived, and not grow while it waits (issue 25: pointed
//! at a server answering `x` forever, the threads client once grew to
//! 5.9 GB in 6 s).
//!
//! The servers here are a few lines each, in the test: a real pingpong
//! server cannot misbehave this way.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{run_client, PATIENCE};

/// A server that reads nothing it is sent and answers every connection
/// with `chunk`, every `pause`, until the client goes.
fn answering_forever(chunk: &'static [u8], pause: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || endless(stream, chunk, pause));
        }
    });
    addr
}

fn endless(mut stream: TcpStream, chunk: &[u8], pause: Duration) {
    let mut sink = stream.try_clone().expect("clone");
    // Take what the client sends, so its writes never block.
    thread::spawn(move || while matches!(sink.read(&mut [0; 512]), Ok(n) if n > 0) {});
    while stream.write_all(chunk).is_ok() {
        thread::sleep(pause);
    }
}

/// The client's stderr, after checking it failed, and in far less time
/// than the test's patience (its own `--timeout` is 1 s).
fn failing_client(addr: SocketAddr, mode: &str) -> String {
    let start = Instant::now();
    let out = run_client(addr, &["--timeout", "1", "--mode", mode, "--quiet"]);
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{mode}: the client passed: {stderr}");
    assert!(took < PATIENCE, "{mode}: the client took {took:?}: {stderr}");
    stderr
}

#[test]
fn a_reply_without_end_is_an_error_showing_its_first_bytes() {
    let x = &*Box::leak(vec![b'x'; 64 << 10].into_boxed_slice());
    let addr = answering_forever(x, Duration::ZERO);
    for mode in ["threads", "selector"] {
        let stderr = failing_client(addr, mode);
        assert!(
            stderr.contains(&format!(
                "the client got a reply of over 1024 bytes with no newline from {addr}"
            )),
            "{mode}: {stderr}"
        );
        assert!(stderr.contains("\"xxxxxxxxxx"), "{mode}: the bytes are shown: {stderr}");
    }
}

#[test]
fn a_reply_that_trickles_ends_at_the_timeout() {
    // One byte each 50 ms: 20 in the client's one second, never a newline.
    // A read timeout restarted by each byte would wait for ever.
    let addr = answering_forever(b"x", Duration::from_millis(50));
    for mode in ["threads", "selector"] {
        let stderr = failing_client(addr, mode);
        assert!(
            stderr.contains(&format!("the client got no whole reply within 1 s from {addr}: ")),
            "{mode}: {stderr}"
        );
        assert!(stderr.contains("bytes, \"xxx"), "{mode}: what arrived is shown: {stderr}");
        assert!(stderr.contains("and no newline"), "{mode}: {stderr}");
    }
}
