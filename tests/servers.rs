//! The servers, end to end: a real `pingpong serve` process per test, real
//! sockets, asserting what a user would notice.
//!
//! Each behaviour below is a function taking the mode; `per_mode!` at the
//! bottom turns it into one `#[test]` per mode, so `cargo test --test servers`
//! lists `epoll::fifty_clients_ten_pings_each`, `blocking::...` and so on.
//! A few behaviours that belong to one mode are plain tests at the end.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ping_pong, read_to_end_with_timeout, run_client, run_with_timeout, Server, ALL_MODES, PATIENCE,
};

/// The selector mode of this OS, for the single tests that need one.
#[cfg(target_os = "linux")]
const SELECTOR: &str = "epoll";
#[cfg(not(target_os = "linux"))]
const SELECTOR: &str = "kqueue";

/// SIGTERM, then check the server exited 0 and printed its summary line;
/// returns that line. Every test ends with it, so a server that crashed or
/// hung during the test fails the test.
fn stop_cleanly(server: Server) -> String {
    let mode = server.mode.clone();
    let stopped = server.stop();
    assert!(
        stopped.status.success(),
        "{mode} server exited with {}; stdout: {:?}; stderr: {:?}",
        stopped.status,
        stopped.stdout,
        stopped.stderr
    );
    let summaries: Vec<&str> =
        stopped.stdout.lines().filter(|l| l.starts_with("served ")).collect();
    assert_eq!(
        summaries.len(),
        1,
        "{mode}: expected one `served ...` line; stdout: {:?}",
        stopped.stdout
    );
    summaries[0].to_string()
}

/// Fail with the first differing offset rather than printing megabytes.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    let show = |b: &[u8]| String::from_utf8_lossy(&b[at..b.len().min(at + 40)]).into_owned();
    panic!(
        "{what}: got {} bytes, want {}; first difference at byte {at}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        show(got),
        show(want)
    );
}

// ------------------------------------------------------- per-mode behaviours

fn fifty_clients_ten_pings_each(mode: &str) {
    let server = Server::start(mode, &[]);
    // All connect first; the blocking server then serves them one by one
    // from its backlog, the others all at once.
    let streams: Vec<TcpStream> = (0..50).map(|_| server.connect()).collect();
    thread::scope(|s| {
        for stream in &streams {
            s.spawn(move || {
                ping_pong(stream, 10);
                stream.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_to_end_with_timeout(stream, PATIENCE), b"");
            });
        }
    });
    drop(streams);
    let summary = stop_cleanly(server);
    assert!(summary.starts_with("served 50 connections, 500 lines"), "{summary}");
}

fn line_echoed_byte_exact(mode: &str) {
    let server = Server::start(mode, &[]);
    let mut stream = server.connect();
    let request: &[u8] = b"hello, world\n\
        telnet line\r\n\
        ping\r\n\
        caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x8f\x93\n\
        not utf-8: \xff\xfe\x80 and a NUL \x00 and a lone \r in the middle\n\
        \n\
        \x20 ping \n";
    let expected: &[u8] = b"hello, world\n\
        telnet line\r\n\
        pong\r\n\
        caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x8f\x93\n\
        not utf-8: \xff\xfe\x80 and a NUL \x00 and a lone \r in the middle\n\
        \n\
        \x20 ping \n";
    stream.write_all(request).unwrap();
    let mut reply = vec![0u8; expected.len()];
    stream.read_exact(&mut reply).unwrap();
    assert_same_bytes(&reply, expected, "echoed lines");
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end_with_timeout(&stream, PATIENCE), b"");
    drop(stream);
    stop_cleanly(server);
}

/// DESIGN.md: "Nothing a client sent is ever lost": a last line without a
/// newline, then EOF, is answered (without an ending) before the server's EOF.
fn unterminated_last_line_answered_before_eof(mode: &str) {
    let server = Server::start(mode, &[]);
    let mut stream = server.connect();
    stream.write_all(b"ping\nlast words").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let reply = read_to_end_with_timeout(&stream, PATIENCE);
    assert_same_bytes(&reply, b"pong\nlast words", "replies before EOF");
    let mut stream = server.connect();
    stream.write_all(b"ping").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let reply = read_to_end_with_timeout(&stream, PATIENCE);
    assert_same_bytes(&reply, b"pong", "reply to a lone unterminated ping");
    drop(stream);
    stop_cleanly(server);
}

fn thousand_lines_in_one_write_answered_in_order(mode: &str) {
    let server = Server::start(mode, &[]);
    let mut stream = server.connect();
    let (mut request, mut expected) = (Vec::new(), Vec::new());
    for i in 0..1000 {
        if i % 3 == 0 {
            request.extend_from_slice(b"ping\n");
            expected.extend_from_slice(b"pong\n");
        } else {
            let line = format!("line {i}\n");
            request.extend_from_slice(line.as_bytes());
            expected.extend_from_slice(line.as_bytes());
        }
    }
    stream.write_all(&request).unwrap();
    let mut reply = vec![0u8; expected.len()];
    stream.read_exact(&mut reply).unwrap();
    assert_same_bytes(&reply, &expected, "1,000 replies");
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end_with_timeout(&stream, PATIENCE), b"");
    drop(stream);
    stop_cleanly(server);
}

fn two_hundred_pings_then_half_close_get_two_hundred_pongs_then_eof(mode: &str) {
    let server = Server::start(mode, &[]);
    let mut stream = server.connect();
    stream.write_all(&b"ping\n".repeat(200)).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let reply = read_to_end_with_timeout(&stream, PATIENCE);
    assert_same_bytes(&reply, &b"pong\n".repeat(200), "replies before EOF");
    drop(stream);
    stop_cleanly(server);
}

fn raw_echo_returns_8_mib_byte_exact(mode: &str) {
    const SIZE: usize = 8 << 20;
    let server = Server::start(mode, &["--echo"]);
    let stream = server.connect();
    // Not a repeating pattern, so a lost or repeated chunk cannot hide.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data: Vec<u8> = (0..SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let echoed = thread::scope(|s| {
        // Write and read at once: the server cannot take 8 MiB it cannot
        // send back, so a writer alone would deadlock.
        s.spawn(|| {
            let mut writer = &stream;
            for chunk in data.chunks(64 * 1024) {
                writer.write_all(chunk).unwrap();
            }
            stream.shutdown(Shutdown::Write).unwrap();
        });
        read_to_end_with_timeout(&stream, Duration::from_secs(30))
    });
    assert_same_bytes(&echoed, &data, "echo of 8 MiB");
    drop(stream);
    let summary = stop_cleanly(server);
    let bytes = format!("{SIZE} bytes in, {SIZE} bytes out");
    assert!(summary.contains(&bytes), "{summary}");
}

fn line_over_max_line_gets_error_then_eof(mode: &str) {
    let server = Server::start(mode, &["--max-line", "1024"]);
    let long = vec![b'x'; 5000];
    // Without a newline: refused once more than 1024 bytes have come.
    let mut stream = server.connect();
    stream.write_all(b"ping\nhello\n").unwrap();
    stream.write_all(&long).unwrap();
    let reply = read_to_end_with_timeout(&stream, PATIENCE);
    assert_same_bytes(&reply, b"pong\nhello\nerror: line too long\n", "no newline");
    // With one, in a single write with lines after it: those are not answered.
    let mut stream = server.connect();
    let mut request = b"ping\n".to_vec();
    request.extend_from_slice(&long);
    request.extend_from_slice(b"\nping\n");
    stream.write_all(&request).unwrap();
    let reply = read_to_end_with_timeout(&stream, PATIENCE);
    assert_same_bytes(&reply, b"pong\nerror: line too long\n", "with newline");
    // Exactly the limit is fine.
    let stream = server.connect();
    let mut request = vec![b'y'; 1024];
    request.extend_from_slice(b"\r\n");
    (&stream).write_all(&request).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let reply = read_to_end_with_timeout(&stream, PATIENCE);
    assert_same_bytes(&reply, &request, "a line of exactly --max-line");
    drop(stream);
    stop_cleanly(server);
}

fn sigterm_during_traffic_exits_zero_with_summary(mode: &str) {
    let server = Server::start(mode, &[]);
    let streams: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    let pongs = AtomicUsize::new(0);
    let wrong = Mutex::new(Vec::new());
    let summary = thread::scope(|s| {
        for stream in &streams {
            let (pongs, wrong) = (&pongs, &wrong);
            // Ping-pong until the server ends the connection (EOF, reset, or
            // the read timeout for one it never served).
            s.spawn(move || {
                let (mut writer, mut reader) = (stream, stream);
                let mut reply = [0u8; 5];
                while writer.write_all(b"ping\n").is_ok() && reader.read_exact(&mut reply).is_ok() {
                    if &reply != b"pong\n" {
                        wrong.lock().unwrap().push(reply);
                        break;
                    }
                    pongs.fetch_add(1, SeqCst);
                }
            });
        }
        let until = Instant::now() + PATIENCE;
        while pongs.load(SeqCst) < 100 {
            assert!(Instant::now() < until, "no traffic: {pongs:?} pongs");
            thread::sleep(Duration::from_millis(5));
        }
        stop_cleanly(server)
    });
    assert!(wrong.lock().unwrap().is_empty(), "wrong replies: {wrong:?}");
    assert!(summary.starts_with("served "), "{summary}");
}

fn client_subcommand(mode: &str, client_mode: &str) {
    let server = Server::start(mode, &[]);
    let args = ["--num-clients", "5", "--messages", "10", "--mode", client_mode, "--quiet"];
    let output = run_client(server.addr, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client --mode {client_mode} against {mode}: {}; stdout: {stdout}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("50/50 replies"), "{stdout}");
    stop_cleanly(server);
}

fn client_subcommand_threads_gets_every_reply(mode: &str) {
    client_subcommand(mode, "threads");
}

fn client_subcommand_selector_gets_every_reply(mode: &str) {
    client_subcommand(mode, "selector");
}

/// The course's threaded client: a thread per connection, `sendall`, read a
/// line, 10 times, then half-close and expect EOF.
const PYTHON_THREADED_CLIENT: &str = r#"
import socket, sys, threading
host, port, clients, messages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
replies, errors, lock = 0, [], threading.Lock()

def client(n):
    global replies
    try:
        with socket.create_connection((host, port), timeout=20) as s:
            f = s.makefile("rb")
            for i in range(messages):
                s.sendall(b"ping\n")
                line = f.readline()
                if line != b"pong\n":
                    raise RuntimeError(f"reply {i + 1}: {line!r}")
                with lock:
                    replies += 1
            s.shutdown(socket.SHUT_WR)
            rest = f.read()
            if rest:
                raise RuntimeError(f"after half-close: {rest!r}")
    except Exception as e:
        with lock:
            errors.append(f"client {n}: {e!r}")

threads = [threading.Thread(target=client, args=(n,)) for n in range(1, clients + 1)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"{replies}/{clients * messages} replies, {len(errors)} errors")
for e in errors:
    print(e, file=sys.stderr)
sys.exit(0 if not errors and replies == clients * messages else 1)
"#;

/// The course's multi-connection client: non-blocking sockets registered with
/// `selectors.DefaultSelector()`, each carrying a `SimpleNamespace`.
const PYTHON_SELECTORS_CLIENT: &str = r#"
import selectors, socket, sys, time, types
host, port, clients, messages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sel = selectors.DefaultSelector()
for connid in range(1, clients + 1):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex((host, port))
    data = types.SimpleNamespace(connid=connid, received=0, outb=b"ping\n", inb=b"", done=False)
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, data=data)

replies, errors = 0, []
deadline = time.monotonic() + 20

def close(sock, error=None):
    if error:
        errors.append(error)
    sel.unregister(sock)
    sock.close()

def service_connection(key, mask):
    global replies
    sock, data = key.fileobj, key.data
    if mask & selectors.EVENT_READ:
        chunk = sock.recv(4096)
        if not chunk:
            ok = data.done and not data.inb
            return close(sock, None if ok else f"connection {data.connid}: early EOF")
        data.inb += chunk
        while b"\n" in data.inb:
            line, data.inb = data.inb.split(b"\n", 1)
            if line != b"pong" or data.done:
                return close(sock, f"connection {data.connid}: unexpected {line!r}")
            data.received += 1
            replies += 1
            if data.received < messages:
                data.outb += b"ping\n"
            else:
                sock.shutdown(socket.SHUT_WR)
                data.done = True
    if mask & selectors.EVENT_WRITE and data.outb:
        sent = sock.send(data.outb)
        data.outb = data.outb[sent:]
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if data.outb else 0)
    sel.modify(sock, events, data=data)

while sel.get_map():
    left = deadline - time.monotonic()
    if left <= 0:
        errors.append(f"timed out with {len(sel.get_map())} connections open")
        break
    for key, mask in sel.select(timeout=left):
        try:
            service_connection(key, mask)
        except OSError as e:
            close(key.fileobj, f"connection {key.data.connid}: {e!r}")
print(f"{replies}/{clients * messages} replies, {len(errors)} errors")
for e in errors:
    print(e, file=sys.stderr)
sys.exit(0 if not errors and replies == clients * messages else 1)
"#;

fn python_client(mode: &str, script: &str) {
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|out| out.status.success()) {
        eprintln!("skipped: no python3 on this host");
        return;
    }
    let server = Server::start(mode, &[]);
    let (host, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
    let output = run_with_timeout(
        Command::new("python3").args(["-c", script, &host, &port, "5", "10"]),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client against {mode}: {}; stdout: {stdout}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("50/50 replies, 0 errors"), "{stdout}");
    stop_cleanly(server);
}

fn python_threaded_client_gets_every_reply(mode: &str) {
    python_client(mode, PYTHON_THREADED_CLIENT);
}

fn python_selectors_client_gets_every_reply(mode: &str) {
    python_client(mode, PYTHON_SELECTORS_CLIENT);
}

// ------------------------------------------------------------- single tests

/// The course's first lesson: while the blocking server serves A, B's
/// connect succeeds (the backlog) but nobody reads B's ping until A leaves.
#[test]
fn blocking_mode_serves_clients_one_after_another() {
    let server = Server::start("blocking", &[]);
    let a = server.connect();
    ping_pong(&a, 1); // A is being served now
    let mut b = server.connect();
    b.write_all(b"ping\n").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut reply = [0u8; 5];
    match b.read(&mut reply) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("B was answered while A was served: {other:?} {reply:?}"),
    }
    drop(a);
    b.set_read_timeout(Some(PATIENCE)).unwrap();
    b.read_exact(&mut reply).expect("B answered once A left");
    assert_eq!(&reply, b"pong\n");
    drop(b);
    stop_cleanly(server);
}

#[test]
fn ipv6_loopback_served_by_every_mode() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        eprintln!("skipped: this host cannot bind [::1] ({e})");
        return;
    }
    for mode in ALL_MODES {
        let server = Server::start(mode, &["--host", "::1"]);
        assert!(server.addr.is_ipv6() && server.addr.ip().is_loopback(), "{}", server.banner);
        let stream = server.connect();
        ping_pong(&stream, 3);
        stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end_with_timeout(&stream, PATIENCE), b"");
        drop(stream);
        stop_cleanly(server);
    }
}

/// 5 clients x 2 pings at once against a 200 ms handler: the wall time of
/// the whole batch.
fn slow_handler_batch(mode: &str) -> Duration {
    let server = Server::start(mode, &["--work-ms", "200"]);
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..5 {
            s.spawn(|| ping_pong(&server.connect(), 2));
        }
    });
    let elapsed = start.elapsed();
    stop_cleanly(server);
    elapsed
}

/// The course's lesson, part 1: the handler runs in the one loop thread, so
/// the 10 replies come one after another: about 2 s.
#[test]
fn slow_handler_stalls_every_client_in_selector_mode() {
    let elapsed = slow_handler_batch(SELECTOR);
    assert!(
        elapsed >= Duration::from_millis(1500),
        "{SELECTOR}: 10 replies x 200 ms took only {elapsed:?}"
    );
}

/// Part 2: a thread per client, so each waits only for its own 2 x 200 ms.
#[test]
fn slow_handler_delays_only_its_own_client_in_threads_mode() {
    let elapsed = slow_handler_batch("threads");
    assert!(
        elapsed <= Duration::from_millis(1000),
        "threads: 5 clients x 2 x 200 ms in parallel took {elapsed:?}"
    );
}

/// The start-up line names what was chosen, in agreement with its count.
#[test]
fn startup_line_names_the_workers_or_event_loops_chosen() {
    for (mode, workers, said) in
        [("pool", "3", "3 workers"), ("hybrid", "1", "1 worker"), (SELECTOR, "2", "2 event loops")]
    {
        let server = Server::start(mode, &["--workers", workers]);
        let expected = format!("(mode {mode}, {said}, pid ");
        assert!(server.banner.contains(&expected), "{}", server.banner);
        // Served once, so the mode is running (and hears SIGTERM) when stopped.
        ping_pong(&server.connect(), 1);
        stop_cleanly(server);
    }
}

/// One client, one ping: every count on both sides in the singular.
#[test]
fn one_client_one_ping_is_said_in_the_singular() {
    let server = Server::start(SELECTOR, &[]);
    let output = run_client(server.addr, &["--messages", "1", "--quiet"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let line = stdout.trim_end();
    assert!(line.starts_with("1 client x 1 message: 1/1 reply in "), "{line}");
    assert!(line.ends_with(" s, 0 errors"), "{line}");
    let summary = stop_cleanly(server);
    assert!(
        summary.starts_with("served 1 connection, 1 line, 5 bytes in, 5 bytes out; "),
        "{summary}"
    );
}

// ------------------------------------------------------- one test per mode

// One `#[test]` per mode of this build, from `tests/common`'s `per_mode!`:
// `epoll::fifty_clients_ten_pings_each`, `blocking::...` and so on.
per_mode!(
    fifty_clients_ten_pings_each,
    line_echoed_byte_exact,
    unterminated_last_line_answered_before_eof,
    thousand_lines_in_one_write_answered_in_order,
    two_hundred_pings_then_half_close_get_two_hundred_pongs_then_eof,
    raw_echo_returns_8_mib_byte_exact,
    line_over_max_line_gets_error_then_eof,
    sigterm_during_traffic_exits_zero_with_summary,
    client_subcommand_threads_gets_every_reply,
    client_subcommand_selector_gets_every_reply,
    python_threaded_client_gets_every_reply,
    python_selectors_client_gets_every_reply,
);
