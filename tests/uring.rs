//! The traps of a completion server, each pinned from outside: a real
//! `pingpong serve --mode uring`, real sockets, and its `--trace`, which
//! shows the requests and completions strace cannot see.
//!
//! - the provided buffers running dry (`-ENOBUFS` ends a multishot receive:
//!   recycle, re-arm) under many clients sending at once into a tiny ring;
//! - the completion queue overflowing under many clients (a tiny CQ): no
//!   completion lost, every multishot that ended early re-armed;
//! - closing a socket with its multishot receive armed: cancelled, and
//!   closed only after its last completion;
//! - io_uring refused (ENOSYS, EPERM, injected by strace): one clear line.
//!
//! Each test skips, saying why, where io_uring is unavailable, unless
//! `PINGPONG_REQUIRE_URING` is set.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{
    mode_usable, read_to_end_with_timeout, run_with_timeout, wait_for_state, Server, BIN, PATIENCE,
};
use nix::sys::signal::{kill, Signal};

/// `n` clients at once, each writing `pings` pings in one go and then
/// reading every pong: returns the failures.
fn pipelining_clients(addr: SocketAddr, n: usize, pings: usize) -> Vec<String> {
    let clients: Vec<_> = (0..n)
        .map(|who| {
            thread::spawn(move || -> Result<(), String> {
                let stream = TcpStream::connect(addr).map_err(|e| format!("{who}: {e}"))?;
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                let (request, want) = pipelined(who, pings);
                (&stream).write_all(&request).map_err(|e| format!("{who}: write: {e}"))?;
                stream.shutdown(Shutdown::Write).map_err(|e| format!("{who}: {e}"))?;
                let mut got = Vec::new();
                (&stream).read_to_end(&mut got).map_err(|e| format!("{who}: read: {e}"))?;
                if got != want {
                    return Err(format!(
                        "{who}: {} bytes back, {} expected",
                        got.len(),
                        want.len()
                    ));
                }
                Ok(())
            })
        })
        .collect();
    clients
        .into_iter()
        .filter_map(|c| c.join().unwrap_or_else(|_| Err("a client panicked".into())).err())
        .collect()
}

/// Client `who`'s `pings` lines, pings and a line of its own by turns, and
/// the replies they must get: pongs, and its line echoed.
fn pipelined(who: usize, pings: usize) -> (Vec<u8>, Vec<u8>) {
    let line = format!("client {who} says hello\n");
    let (mut request, mut reply) = (Vec::new(), Vec::new());
    for i in 0..pings {
        request.extend_from_slice(if i % 2 == 0 { b"ping\n" } else { line.as_bytes() });
        reply.extend_from_slice(if i % 2 == 0 { b"pong\n" } else { line.as_bytes() });
    }
    (request, reply)
}

/// The `# cqe recv ...` comment lines of a `--trace` narration.
fn recv_completions(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.trim_start().starts_with("# cqe recv fd=")).collect()
}

/// A multishot receive that ended before its client was done: a completion
/// without `F_MORE` that carried bytes (the kernel could not post the next
/// one: a full completion queue) or said the buffers ran dry (`-ENOBUFS`).
/// The client's EOF (`res=0`) and a cancel are ends that need no re-arm.
fn ended_early(line: &str) -> bool {
    !line.contains("F_MORE")
        && !line.contains("(stale")
        && (res(line) > 0 || res(line) == -libc::ENOBUFS as i64)
}

/// The narrated early ends (see [`ended_early`]) after which the server
/// never armed a receive on that fd again before closing it: each one a
/// client whose remaining bytes would never be read. Empty when the re-arm
/// path works.
fn ends_not_rearmed(stderr: &str) -> Vec<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_start();
        let Some(fd) = line.strip_prefix("# cqe recv fd=") else { continue };
        if !ended_early(line) {
            continue;
        }
        let fd = fd.split_whitespace().next().unwrap_or_default();
        let (arm, close) = (format!("# sqe recv fd={fd} "), format!("close({fd})"));
        let rearmed = lines[i + 1..]
            .iter()
            .map(|l| l.trim_start())
            .take_while(|l| !l.starts_with(&close))
            .any(|l| l.starts_with(&arm));
        if !rearmed {
            missing.push(line.to_string());
        }
    }
    missing
}

/// The `res=N` of a narrated completion.
fn res(line: &str) -> i64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("res="))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_dry_buffer_ring_under_forty_clients_loses_no_byte() {
    if !mode_usable("uring", "a_dry_buffer_ring_under_forty_clients_loses_no_byte") {
        return;
    }
    // Two buffers of 64 bytes for everyone: they run dry at once.
    let args = ["--trace", "--uring-buffers", "2", "--uring-buffer-size", "64"];
    let server = Server::start("uring", &args);
    let failures = pipelining_clients(server.addr, 40, 200);
    let stopped = server.stop();
    assert!(failures.is_empty(), "{} clients failed: {:?}", failures.len(), &failures[..1]);
    assert!(stopped.status.success(), "exit {:?}", stopped.status);
    let recvs = recv_completions(&stopped.stderr);
    let dry = recvs.iter().filter(|l| res(l) == -libc::ENOBUFS as i64).count();
    eprintln!("{} receive completions, {dry} of them -ENOBUFS", recvs.len());
    assert!(dry > 0, "the ring never ran dry: the test tests nothing");
    assert!(
        recvs.iter().filter(|l| res(l) == -libc::ENOBUFS as i64).all(|l| !l.contains("F_MORE")),
        "an ENOBUFS completion kept F_MORE"
    );
    // The re-arm path, pinned where it is forced: every receive the dry ring
    // ended was armed again (the bytes all came back above; this says how).
    let missing = ends_not_rearmed(&stopped.stderr);
    assert!(missing.is_empty(), "receives ended early and never re-armed: {missing:?}");
}

#[test]
fn the_rearm_check_tells_a_rearmed_end_from_a_forgotten_one() {
    // The checker itself, on a narration written by hand: fd 7's receive
    // runs dry and is armed again; fd 8's ends with bytes and is closed
    // without one; fd 9's ends at EOF, which needs none.
    let narration = "\
    # cqe recv fd=7 res=-105 0 (No buffer space available)
    # sqe recv fd=7 multishot buf_group=0 user_data=0x7
    # cqe recv fd=8 res=64 F_BUFFER(bid=1) \"ping\\n\"
close(8)                                = 0   # client fd 8: closed
    # sqe recv fd=8 multishot buf_group=0 user_data=0x8
    # cqe recv fd=9 res=0 0
";
    let missing = ends_not_rearmed(narration);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].starts_with("# cqe recv fd=8 res=64"), "{missing:?}");
}

#[test]
fn an_overflowing_completion_queue_loses_no_reply() {
    if !mode_usable("uring", "an_overflowing_completion_queue_loses_no_reply") {
        return;
    }
    // Four SQ entries, eight CQ entries, and forty clients whose connections
    // and bytes all arrive while the server is stopped (SIGSTOP). When it
    // runs again (SIGCONT), the kernel accepts all forty in one go: forty
    // completions for eight slots, so the queue overflows on every run, not
    // on lucky ones.
    //
    // A multishot receive ends early, and must be armed again, when the
    // kernel cannot post its next completion (a full queue: whether that
    // happens is up to the scheduling, and on a quiet machine it may not),
    // or when the provided buffers run dry. Two buffers of 64 bytes for
    // forty clients that each have 1,100 bytes waiting make the second
    // certain: the kernel fills both before the server can give one back,
    // and the next receive finds none (-ENOBUFS). So every run shows an
    // early end, and every early end must be followed by a re-arm.
    let args = [
        "--trace",
        "--uring-entries",
        "4",
        "--uring-cq-entries",
        "8",
        "--uring-buffers",
        "2",
        "--uring-buffer-size",
        "64",
    ];
    let server = Server::start("uring", &args);
    let failures = pipelining_clients_while_stopped(&server, 40, 100);
    let stopped = server.stop();
    assert!(failures.is_empty(), "{} clients failed: {:?}", failures.len(), &failures[..1]);
    assert!(stopped.status.success(), "exit {:?}", stopped.status);
    let flushes = stopped.stderr.matches("IORING_SQ_CQ_OVERFLOW").count();
    let recvs = recv_completions(&stopped.stderr);
    let full = recvs.iter().filter(|l| ended_early(l) && res(l) > 0).count();
    let dry = recvs.iter().filter(|l| ended_early(l) && res(l) < 0).count();
    eprintln!(
        "{flushes} overflow flushes; receives ended early: {full} with bytes (queue full), \
         {dry} with -ENOBUFS (ring dry)"
    );
    assert!(flushes > 0, "the completion queue never overflowed: the test tests nothing");
    assert!(full + dry > 0, "no multishot receive ended early: nothing was re-armed");
    let missing = ends_not_rearmed(&stopped.stderr);
    assert!(missing.is_empty(), "receives ended early and never re-armed: {missing:?}");
}

/// [`pipelining_clients`], with every client connected and every request
/// sent while the server is stopped (SIGSTOP): the kernel completes the
/// handshakes and takes the bytes into the sockets without it. Then SIGCONT,
/// and each client reads its replies to the end. Returns the failures.
fn pipelining_clients_while_stopped(server: &Server, n: usize, pings: usize) -> Vec<String> {
    kill(server.pid(), Signal::SIGSTOP).expect("SIGSTOP the server");
    wait_for_state(server.pid(), 'T', "uring");
    let mut clients = Vec::new();
    let mut failures = Vec::new();
    for who in 0..n {
        let (request, reply) = pipelined(who, pings);
        let stream = server.connect();
        if let Err(e) =
            (&stream).write_all(&request).and_then(|()| stream.shutdown(Shutdown::Write))
        {
            failures.push(format!("{who}: write: {e}"));
        }
        clients.push((who, stream, reply));
    }
    kill(server.pid(), Signal::SIGCONT).expect("SIGCONT the server");
    for (who, stream, want) in clients {
        let got = read_to_end_with_timeout(&stream, PATIENCE);
        if got != want {
            failures.push(format!("{who}: {} bytes back, {} expected", got.len(), want.len()));
        }
    }
    failures
}

#[test]
fn a_socket_with_its_receive_armed_is_closed_after_the_last_completion() {
    let test = "a_socket_with_its_receive_armed_is_closed_after_the_last_completion";
    if !mode_usable("uring", test) {
        return;
    }
    // --max-line 10: a long line ends the connection; the client reads the
    // error and EOF but keeps its side open, so the server's lingering close
    // ends by its deadline, with the multishot receive still armed.
    let server = Server::start("uring", &["--trace", "--max-line", "10"]);
    let stream = server.connect();
    (&stream).write_all(b"this line is far too long\n").unwrap();
    let mut error = String::new();
    BufReader::new(&stream).read_line(&mut error).unwrap();
    assert_eq!(error, "error: line too long\n");
    assert_eq!(read_to_end_with_timeout(&stream, PATIENCE), b"", "our FIN after the error");
    thread::sleep(Duration::from_secs(3)); // the linger deadline (2 s) passes
    drop(stream);
    let stopped = server.stop();
    assert!(stopped.status.success(), "exit {:?}", stopped.status);
    let lines: Vec<&str> = stopped.stderr.lines().collect();
    let close = lines
        .iter()
        .position(|l| l.starts_with("close(") && l.contains("timed out"))
        .unwrap_or_else(|| panic!("no close for the linger deadline:\n{}", stopped.stderr));
    let fd = lines[close].trim_start_matches("close(").split(')').next().unwrap().to_string();
    let cancel = lines.iter().position(|l| l.contains("# sqe cancel"));
    let last = lines.iter().rposition(|l| {
        l.contains(&format!("# cqe recv fd={fd} ")) && res(l) == -libc::ECANCELED as i64
    });
    match (cancel, last) {
        (Some(cancel), Some(last)) => {
            assert!(
                cancel < last && last < close,
                "cancel at {cancel}, ECANCELED at {last}, close at {close}"
            )
        }
        _ => panic!("fd {fd}: no cancel, or no ECANCELED completion:\n{}", stopped.stderr),
    }
}

/// `serve --mode uring` with io_uring_setup failing as strace makes it
/// fail: exit status 1, one line naming `cause`, no start-up line, no panic.
fn refused_with(errno: &str, cause: &str) {
    let test = format!("io_uring_setup failing with {errno}");
    let probe = Command::new("strace").args(["-o", "/dev/null", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        if std::env::var_os("PINGPONG_REQUIRE_STRACE").is_some() {
            panic!("{test}: strace cannot run here, and PINGPONG_REQUIRE_STRACE is set");
        }
        eprintln!("skipped {test}: strace cannot run here");
        return;
    }
    let out = run_with_timeout(
        Command::new("strace")
            .args(["-f", "-o", "/dev/null", &format!("--inject=io_uring_setup:error={errno}")])
            .args(["--", BIN, "serve", "--mode", "uring", "--port", "0"]),
        PATIENCE,
    );
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{errno}: stdout {stdout:?}, stderr {stderr:?}");
    assert!(!stdout.contains("listening on"), "{errno}: it announced a server: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{errno}: one line, not {stderr:?}");
    assert!(
        lines[0].starts_with("pingpong serve: cannot serve with --mode uring: "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(cause) && lines[0].contains("--mode epoll"), "{}", lines[0]);
}

#[test]
fn a_kernel_without_io_uring_gets_one_clear_line() {
    refused_with("ENOSYS", "this kernel has no io_uring");
}

#[test]
fn a_refused_io_uring_gets_one_clear_line() {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
    let cause = match sysctl.trim() {
        "" | "0" => "seccomp",
        _ => "kernel.io_uring_disabled",
    };
    refused_with("EPERM", cause);
}

#[test]
fn options_that_mean_nothing_to_a_ring_are_refused() {
    for (args, said) in [
        (&["--edge"][..], "cannot use --edge with --mode uring"),
        (&["--workers", "2"][..], "cannot use --workers with --mode uring"),
    ] {
        let out = run_with_timeout(
            Command::new(BIN).args(["serve", "--mode", "uring", "--port", "0"]).args(args),
            PATIENCE,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}
