//! `pingpong watch --json` on pingpong's own servers: each design shows as
//! the lesson draws it, and each lab's bug shows as a problem that the
//! guarded server does not have.
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn epoll_one_thread_waits_over_the_listener_the_signal_pipe_and_every_client() {
    let server = Server::start(&["--mode", "epoll"]);
    let clients = server.pinged_clients(2);
    let snap = server.watch(300, &[]);

    let threads = array(&snap["threads"]);
    assert_eq!(threads.len(), 1, "{threads:?}");
    let epoll = fds_of(&snap, "epoll");
    assert_eq!(epoll.len(), 1);
    let waiting = threads_in(&snap, EPOLL_WAITS);
    assert_eq!(waiting.len(), 1, "the loop's thread in its wait: {threads:?}");
    assert_eq!(waiting[0]["fd"], epoll[0]["fd"], "waiting on the epoll fd");
    assert!(waiting[0]["doing"].as_str().unwrap_or("").contains("(4 fds)"), "{:?}", waiting[0]);

    // The interest list: the listener, the signal pipe and both clients,
    // each asked for EPOLLIN, none stale.
    let interest = array(&epoll[0]["interest"]);
    let tfds: Vec<i64> = interest.iter().filter_map(|e| e["fd"].as_i64()).collect();
    let listener = fds_of(&snap, "listener");
    let sockets: Vec<&Value> =
        listener.iter().chain(fds_of(&snap, "tcp").iter()).copied().collect();
    assert_eq!(sockets.len(), 1 + clients.len());
    for socket in &sockets {
        assert!(tfds.contains(&socket["fd"].as_i64().unwrap_or(-1)), "{socket} not in {tfds:?}");
        assert_eq!(socket["nonblocking"], true, "{socket}");
    }
    let pipes = fds_of(&snap, "pipe");
    assert_eq!(tfds.iter().filter(|t| pipes.iter().any(|p| p["fd"] == **t)).count(), 1);
    assert_eq!(interest.len(), 4);
    assert!(interest.iter().all(|e| e["stale"] == false && e["events"][0] == "EPOLLIN"));
    assert_eq!(listener[0]["backlog"], 128, "backlog from NETLINK_SOCK_DIAG");
    assert_eq!(problems(&snap), Vec::<String>::new());
    drop(clients);
}

#[test]
fn threads_a_thread_per_client_each_in_its_own_read() {
    let server = Server::start(&["--mode", "threads"]);
    let clients = server.pinged_clients(3);
    let snap = server.watch(300, &[]);
    let readers = threads_in(&snap, READS);
    assert_eq!(readers.len(), 3, "{:?}", snap["threads"]);
    let mut fds: Vec<i64> = readers.iter().filter_map(|t| t["fd"].as_i64()).collect();
    fds.sort_unstable();
    fds.dedup();
    assert_eq!(fds.len(), 3, "each on its own client");
    let clients_fds: Vec<i64> =
        fds_of(&snap, "tcp").iter().filter_map(|f| f["fd"].as_i64()).collect();
    assert!(fds.iter().all(|fd| clients_fds.contains(fd)), "{fds:?} {clients_fds:?}");
    assert!(readers
        .iter()
        .all(|t| t["doing"].as_str().unwrap_or("").contains(", client 127.0.0.1:")));
    assert_eq!(problems(&snap), Vec::<String>::new());
    drop(clients);
}

#[test]
fn blocking_the_one_thread_reads_its_client_while_the_others_wait_to_be_accepted() {
    let server = Server::start(&["--mode", "blocking"]);
    let first = server.pinged_clients(1);
    let waiting: Vec<_> = (0..2).map(|_| server.connect()).collect();
    thread::sleep(Duration::from_millis(100));
    let snap = server.watch(300, &[]);
    let readers = threads_in(&snap, READS);
    assert_eq!(array(&snap["threads"]).len(), 1);
    assert_eq!(readers.len(), 1, "{:?}", snap["threads"]);
    let tcp = fds_of(&snap, "tcp");
    assert_eq!(tcp.len(), 1, "one client accepted");
    assert_eq!(readers[0]["fd"], tcp[0]["fd"]);
    assert_eq!(tcp[0]["nonblocking"], false);
    assert_eq!(fds_of(&snap, "listener")[0]["accept_queue"], 2);
    assert_eq!(problems(&snap), ["accept-queue"]);
    drop((first, waiting));
}

#[test]
fn hybrid_the_eventfd_is_in_the_set_and_the_workers_wait_for_work() {
    let server = Server::start(&["--mode", "hybrid", "--workers", "3"]);
    let clients = server.pinged_clients(1);
    let snap = server.watch(300, &[]);
    let epoll = fds_of(&snap, "epoll");
    let eventfd = fds_of(&snap, "eventfd");
    assert_eq!((epoll.len(), eventfd.len()), (1, 1));
    let in_set = array(&epoll[0]["interest"]).iter().any(|e| e["fd"] == eventfd[0]["fd"]);
    assert!(in_set, "the workers' eventfd in the loop's set: {}", epoll[0]);
    assert_eq!(threads_in(&snap, EPOLL_WAITS).len(), 1);
    let workers: Vec<&Value> = array(&snap["threads"])
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("worker")))
        .collect();
    assert_eq!(workers.len(), 3);
    assert!(workers.iter().all(|w| w["syscall"] == "futex"), "{workers:?}");
    assert_eq!(problems(&snap), Vec::<String>::new());
    drop(clients);
}

#[test]
fn uring_the_thread_sits_in_io_uring_enter_on_its_ring() {
    let server = match Server::try_start(&["--mode", "uring"], None) {
        Ok(server) => server,
        Err(why) if std::env::var_os("PINGPONG_REQUIRE_URING").is_some() => {
            panic!("io_uring is not usable here ({why}), and PINGPONG_REQUIRE_URING is set")
        }
        Err(why) => {
            eprintln!("skipped: io_uring is not usable here: {why}");
            return;
        }
    };
    let clients = server.pinged_clients(2);
    let snap = server.watch(300, &[]);
    let rings = fds_of(&snap, "io_uring");
    assert_eq!(rings.len(), 1);
    let entering = threads_in(&snap, &["io_uring_enter"]);
    assert_eq!(entering.len(), 1, "{:?}", snap["threads"]);
    assert_eq!(entering[0]["fd"], rings[0]["fd"]);
    let ring = &rings[0]["ring"];
    assert!(ring["sq_entries"].as_u64().unwrap_or(0) > 0, "{ring}");
    assert_eq!(ring["sqes_pending"], 0, "every submission taken: {ring}");
    // The accept and a receive per client, armed in the kernel.
    let in_flight: Vec<&str> = array(&ring["in_flight"]).iter().filter_map(Value::as_str).collect();
    assert!(in_flight.len() >= 3, "{ring}");
    assert!(fds_of(&snap, "epoll").is_empty());
    drop(clients);
}

#[test]
fn a_slow_handler_stalls_the_loop_while_the_others_requests_sit_unread() {
    let server = Server::start(&["--mode", "epoll", "--work-ms", "200"]);
    // Three clients send 20 pings each at once: 20 × 200 ms of work for
    // each, 12 s in all, while the others' pings wait in their sockets.
    let clients: Vec<_> = (0..3).map(|_| server.connect()).collect();
    for mut client in &clients {
        client.write_all(&b"ping\n".repeat(20)).expect("send");
    }
    server.await_fds(9);
    thread::sleep(Duration::from_millis(300));
    let snap = server.watch(300, &[]);
    assert!(problems(&snap).contains(&"stall".to_string()), "{:#}", snap["problems"]);
    assert_eq!(
        threads_in(&snap, &["clock_nanosleep", "nanosleep"]).len(),
        1,
        "{:?}",
        snap["threads"]
    );
    let unread: u64 = fds_of(&snap, "tcp").iter().filter_map(|f| f["rx_queue"].as_u64()).sum();
    assert!(unread >= 100, "the others' 20 pings unread: {unread} bytes");
    drop(clients);
}

/// Five clients ping once and go quiet, as in the lab.
fn quiet_clients(server: &Server) -> Vec<std::net::TcpStream> {
    server.pinged_clients(5)
}

#[test]
fn always_writable_shows_with_the_bug_and_not_without() {
    let broken = Server::start(&["--mode", "epoll", "--bug", "always-writable"]);
    let guarded = Server::start(&["--mode", "epoll"]);
    let (a, b) = (quiet_clients(&broken), quiet_clients(&guarded));
    thread::sleep(Duration::from_millis(100));
    let snap = broken.watch(600, &[]);
    assert!(problems(&snap).contains(&"always-writable".into()), "{snap:#}");
    let out: usize = fds_of(&snap, "tcp")
        .iter()
        .filter(|fd| array(&fd["in_epoll"]).iter().any(|m| m["events"] == "EPOLLIN|EPOLLOUT"))
        .count();
    assert_eq!(out, 5);
    assert_eq!(problems(&guarded.watch(600, &[])), Vec::<String>::new());
    drop((a, b));
}

#[test]
fn blocking_client_shows_with_the_bug_and_not_without() {
    let broken = Server::start(&["--mode", "epoll", "--bug", "blocking-client"]);
    let guarded = Server::start(&["--mode", "epoll"]);
    let (a, b) = (broken.pinged_clients(1), guarded.pinged_clients(1));
    let snap = broken.watch(300, &[]);
    assert_eq!(problems(&snap), ["blocking-client"]);
    assert_eq!(fds_of(&snap, "tcp")[0]["nonblocking"], false);
    assert_eq!(problems(&guarded.watch(300, &[])), Vec::<String>::new());
    drop((a, b));
}

#[test]
fn no_spare_fd_shows_the_fd_limit_with_the_bug_and_not_without() {
    // As in the lab: 32 fds allowed, 40 clients. The guarded server's
    // --max-clients (by default what RLIMIT_NOFILE leaves after a reserve)
    // turns the extra clients away; the broken one takes fds to the limit.
    let broken = Server::try_start(&["--bug", "no-spare-fd", "--max-clients", "1000"], Some(32))
        .expect("start the broken server");
    let guarded = Server::try_start(&[], Some(32)).expect("start the guarded server");
    let crowd = |server: &Server| (0..40).map(|_| server.connect()).collect::<Vec<_>>();
    let (a, b) = (crowd(&broken), crowd(&guarded));
    broken.await_fds(30);
    thread::sleep(Duration::from_millis(200));
    let snap = broken.watch(300, &[]);
    assert!(problems(&snap).contains(&"fd-limit".into()), "{:#}", snap["problems"]);
    assert_eq!(snap["fd_limit"], 32);
    let calm = guarded.watch(300, &[]);
    assert!(!problems(&calm).contains(&"fd-limit".into()), "{:#}", calm["problems"]);
    drop((a, b));
}

#[test]
fn without_ptrace_rights_the_calls_are_hidden_and_the_view_says_how_to_see_them() {
    let server = Server::start(&["--mode", "epoll"]);
    let snap = server.watch(200, &["--hide-syscalls"]);
    let thread = &snap["threads"][0];
    assert_eq!(thread["syscall"], Value::Null);
    let doing = thread["doing"].as_str().unwrap_or("");
    assert!(doing.contains("no ptrace rights") && doing.contains("epoll"), "{doing}");
    let hint = snap["syscalls_hidden"].as_str().unwrap_or("");
    assert!(hint.contains("pingpong watch -- CMD") && hint.contains("sudo"), "{hint}");
    // The rest is read with plain read rights, and still there.
    assert_eq!(fds_of(&snap, "listener").len(), 1);
}

#[test]
fn started_under_watch_with_a_free_port_and_printed_as_text() {
    let bin = pingpong().display().to_string();
    let output = Command::new(WATCH)
        .args(["--once", "--interval", "200", "--", &bin, "serve", "--mode", "epoll"])
        .args(["--port", "{port}"])
        .output()
        .expect("run watch");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(!text.contains("{port}"), "{text}");
    for shown in ["threads (1)", "listener 127.0.0.1:", "LISTEN", "what looks wrong\n  nothing"] {
        assert!(text.contains(shown), "{shown:?} not in:\n{text}");
    }
}

#[test]
fn a_course_style_python_server_shows_always_writable() {
    use pingpong::observe::launched::free_port;
    use pingpong::observe::{wire, Launched};
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3");
        return;
    }
    let port = free_port().expect("a free port");
    let script = format!("{}/tests/course_server.py", env!("CARGO_MANIFEST_DIR"));
    let mut server =
        Launched::spawn(Command::new("python3").arg(&script).args(["--port", &port.to_string()]))
            .expect("start python3");
    let addr = ([127, 0, 0, 1], port).into();
    server.await_accepting(addr, PATIENCE).expect("python server accepting");
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let client = wire::connect(addr, PATIENCE).expect("connect");
            assert_eq!(
                wire::ask(&client, b"ping\n", PATIENCE).expect("ask").as_deref(),
                Some("pong")
            );
            client
        })
        .collect();
    let snap = watch_json(&["--pid", &server.pid().to_string(), "--interval", "600"], &[]);
    assert!(problems(&snap).contains(&"always-writable".into()), "{:#}", snap["problems"]);
    // Python's selectors.DefaultSelector is epoll, its sockets non-blocking.
    let epoll = fds_of(&snap, "epoll");
    assert_eq!(epoll.len(), 1);
    let tcp = fds_of(&snap, "tcp");
    assert!(tcp.len() >= 3 && tcp.iter().all(|fd| fd["nonblocking"] == true), "{tcp:?}");
    drop(clients);
}
