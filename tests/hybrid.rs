//! The hybrid mode: a selector loop for the I/O, a worker pool for the work.
//!
//! Each test is a behaviour a student can check by hand with `pingpong serve
//! --mode hybrid` and a few clients.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use common::{ping_pong, read_to_end_with_timeout, Server, PATIENCE};
use nix::sys::signal::{kill, Signal};

/// `clients` connections at once, each `pings` round trips; the wall time.
fn slow_batch(server: &Server, clients: usize, pings: usize) -> Duration {
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..clients {
            let stream = server.connect();
            scope.spawn(move || ping_pong(&stream, pings));
        }
    });
    start.elapsed()
}

/// One look at the server in `/proc` (`pingpong::observe::Sample`): its
/// `threads`, its peak resident memory.
#[cfg(target_os = "linux")]
fn proc_status(server: &Server) -> pingpong::observe::Sample {
    pingpong::observe::Sample::take(server.pid().as_raw()).expect("read /proc/PID")
}

#[test]
fn slow_handler_does_not_stall_others_with_enough_workers() {
    let server = Server::start("hybrid", &["--work-ms", "200", "--workers", "20"]);
    let took = slow_batch(&server, 20, 2);
    // 2 rounds of 200 ms in parallel; the selector mode takes 20 × 2 × 200 ms.
    assert!(
        took <= Duration::from_millis(1200),
        "20 clients x 2 slow pings took {took:?} in hybrid mode"
    );
    assert!(server.stop().status.success());
}

#[test]
fn the_same_load_stalls_the_selector_server() {
    let server = Server::start("epoll", &["--work-ms", "200"]);
    let took = slow_batch(&server, 20, 2);
    assert!(
        took >= Duration::from_secs(6),
        "20 clients x 2 slow pings took only {took:?} in epoll mode"
    );
    assert!(server.stop().status.success());
}

#[test]
fn pipelined_requests_come_back_in_order() {
    let server = Server::start("hybrid", &["--work-ms", "1", "--workers", "4"]);
    let mut stream = server.connect();
    let mut requests = String::new();
    let mut expected = String::new();
    for i in 0..100 {
        if i % 3 == 0 {
            requests.push_str("ping\n");
            expected.push_str("pong\n");
        } else {
            requests.push_str(&format!("request {i}\n"));
            expected.push_str(&format!("request {i}\n"));
        }
    }
    stream.write_all(requests.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let replies = read_to_end_with_timeout(&stream, PATIENCE);
    assert_eq!(String::from_utf8_lossy(&replies), expected);
    assert!(server.stop().status.success());
}

#[test]
#[cfg(target_os = "linux")] // /proc
fn a_thousand_idle_connections_add_no_thread() {
    let server = Server::start("hybrid", &["--workers", "4"]);
    // The workers start right after the start-up line; give them a moment.
    let until = Instant::now() + PATIENCE;
    while proc_status(&server).threads < 5 && Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
    let before = proc_status(&server).threads;
    assert_eq!(before, 4 + 1, "the loop and its 4 workers");
    let idle: Vec<_> = (0..1000).map(|_| server.connect()).collect();
    // They are all accepted: one more is served at once.
    ping_pong(&server.connect(), 1);
    assert_eq!(proc_status(&server).threads, before);
    drop(idle);
    assert!(server.stop().status.success());
}

#[test]
#[cfg(target_os = "linux")] // /proc
fn a_full_job_queue_stops_reading_instead_of_growing() {
    // One slow worker and a queue of two jobs, flooded by clients that send
    // pings as fast as they can and never read a reply.
    let server =
        Server::start("hybrid", &["--workers", "1", "--work-ms", "5", "--max-pending", "65536"]);
    let flood = b"ping\n".repeat(20_000); // 100 KB per write
    thread::scope(|scope| {
        for _ in 0..20 {
            let mut stream = server.connect();
            stream.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
            let flood = &flood;
            scope.spawn(move || {
                // Until the server stops reading and TCP pushes back.
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until && stream.write_all(flood).is_ok() {}
                stream
            });
        }
    });
    let peak_kib = proc_status(&server).peak_rss_bytes / 1024;
    assert!(
        peak_kib < 48 * 1024,
        "server RSS peaked at {peak_kib} KiB while 20 clients flooded it"
    );
    // And it still serves a newcomer: its line queues behind at most one
    // 16-line batch per flooding client (22 × 16 × 5 ms ≈ 2 s).
    let newcomer = server.connect();
    ping_pong(&newcomer, 1);
    assert!(server.stop().status.success());
}

#[test]
fn sigterm_delivers_work_in_progress_then_exits_zero() {
    let server = Server::start("hybrid", &["--workers", "2", "--work-ms", "500"]);
    let mut stream = server.connect();
    stream.write_all(b"ping\n").unwrap();
    thread::sleep(Duration::from_millis(150)); // the worker is on it now
    kill(server.pid(), Signal::SIGTERM).unwrap();
    let mut reply = Vec::new();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"pong\n", "the reply owed, then EOF");
    let stopped = server.stop(); // a second SIGTERM changes nothing
    assert!(stopped.status.success(), "exit status {:?}", stopped.status);
    assert!(stopped.stdout.contains("served 1 connection, 1 line,"));
}
