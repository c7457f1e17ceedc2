//! Watched under strace, each server makes the calls its design promises.
//!
//! These are the checks a student can repeat by hand with
//! `strace -f -o trace.txt pingpong serve --mode M`: each test runs the real
//! server under `strace -f` (or attaches `strace -p` to a running one),
//! drives clients against it, and reads the transcript strace wrote.
//!
//! Every test that needs strace is skipped, with the reason printed, when
//! strace is missing or may not trace here (ptrace forbidden, as in some
//! containers). Set `PINGPONG_REQUIRE_STRACE=1` to make that a failure
//! instead, as CI should once it has installed strace.
#![cfg(target_os = "linux")]

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::strace::{
    narrated, parse, strace_quoted_start, strace_usable, Attached, Call, Traced, THREAD_STARTS,
};
use common::{
    ping_pong, read_to_end_with_timeout, run_client, wait_for_state, Server, ALL_MODES, PATIENCE,
};
use nix::sys::signal::{kill, Signal};

/// The calls that tell the story, as `make strace-MODE` traces them. A
/// leading `?` means "not an error if this architecture lacks the call"
/// (aarch64 has no epoll_wait, poll or select: only epoll_pwait, ppoll, pselect6).
const STORY: &str = "socket,setsockopt,bind,listen,?accept,accept4,read,recvfrom,write,\
    sendto,shutdown,close,epoll_create1,epoll_ctl,?epoll_wait,epoll_pwait,?poll,ppoll,\
    ?select,pselect6,pipe2,eventfd2,clone,?clone3";

/// Each selector backend's wait, under every name the kernel may show.
const EPOLL_WAITS: &[&str] = &["epoll_wait", "epoll_pwait", "epoll_pwait2"];
const POLL_WAITS: &[&str] = &["poll", "ppoll"];
const SELECT_WAITS: &[&str] = &["select", "pselect6", "_newselect"];
const EPOLL_CALLS: &[&str] =
    &["epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2"];

// ------------------------------------------------------------------ tests

#[test]
fn epoll_serves_20_clients_on_one_thread_and_waits_in_epoll_wait() {
    if !strace_usable("epoll_serves_20_clients_on_one_thread_and_waits_in_epoll_wait") {
        return;
    }
    let server = Traced::start("epoll", &[], Some(STORY));
    assert_clients_served(server.addr, 20, 3);
    let trace = server.stop();

    assert_eq!(
        trace.count(THREAD_STARTS),
        0,
        "epoll mode started a thread:\n{}",
        trace.excerpt(THREAD_STARTS)
    );
    let served = trace.after_listen();
    assert!(
        served.iter().any(|c| c.is(EPOLL_WAITS)),
        "epoll mode never called epoll_wait:\n{}",
        trace.story()
    );
    let accepted = served.iter().filter(|c| c.is(&["accept4"]) && c.ok()).count();
    assert_eq!(accepted, 20, "successful accept4 calls, one per client");
}

#[test]
fn epoll_accepts_every_client_with_accept4_cloexec_nonblock() {
    if !strace_usable("epoll_accepts_every_client_with_accept4_cloexec_nonblock") {
        return;
    }
    let server = Traced::start("epoll", &[], Some(STORY));
    assert_clients_served(server.addr, 5, 2);
    half_close_session(server.addr);
    let trace = server.stop();
    let calls = trace.after_listen();

    assert_eq!(
        calls.iter().filter(|c| c.is(&["accept"])).count(),
        0,
        "plain accept(2) in epoll mode:\n{}",
        trace.excerpt(&["accept"])
    );
    let mut accepted = Vec::new();
    for call in calls.iter().filter(|c| c.is(&["accept4"]) && c.ok()) {
        let flags = call.last_arg();
        assert!(
            flags.contains("SOCK_CLOEXEC") && flags.contains("SOCK_NONBLOCK"),
            "accept4 without SOCK_CLOEXEC|SOCK_NONBLOCK: {}",
            call.line
        );
        accepted.push(call.ret.unwrap_or(-1));
    }
    assert_eq!(accepted.len(), 6, "one accept4 per client (5 + 1)");

    // Every fd the selector is given once clients come came from one of
    // those accept4s (before them: the listener and the signal pipe).
    let first_accept = calls.iter().position(|c| c.is(&["accept4"])).unwrap();
    let added = |range: &[Call]| -> Vec<i64> {
        range
            .iter()
            .filter(|c| c.is(&["epoll_ctl"]) && c.arg(1) == "EPOLL_CTL_ADD")
            .map(|c| c.arg(2).parse().unwrap_or(-1))
            .collect()
    };
    let at_start = added(&calls[..first_accept]);
    assert!(
        at_start.contains(&trace.listener_fd()),
        "the listener is registered before any client: {at_start:?}"
    );
    let clients = added(&calls[first_accept..]);
    assert_eq!(clients.len(), accepted.len(), "one EPOLL_CTL_ADD per accepted client");
    for fd in &clients {
        assert!(
            accepted.contains(fd),
            "fd {fd} registered but never returned by accept4:\n{}",
            trace.story()
        );
    }
}

#[test]
fn threads_mode_makes_one_clone_per_client() {
    if !strace_usable("threads_mode_makes_one_clone_per_client") {
        return;
    }
    // The same server twice: once with no client (the threads it starts
    // anyway, such as the signal watcher), once with 20.
    let idle = Traced::start("threads", &[], Some(STORY));
    let busy = Traced::start("threads", &[], Some(STORY));
    assert_clients_served(busy.addr, 20, 2);
    let (idle, busy) = (idle.stop(), busy.stop());

    let at_start = idle.threads_started();
    assert!(at_start >= 1, "threads mode starts its signal watcher at start:\n{}", idle.story());
    assert_eq!(
        busy.threads_started(),
        at_start + 20,
        "{at_start} threads at start, then one per client:\n{}",
        busy.excerpt(THREAD_STARTS)
    );
}

#[test]
fn blocking_mode_makes_no_selector_call() {
    if !strace_usable("blocking_mode_makes_no_selector_call") {
        return;
    }
    let server = Traced::start("blocking", &[], Some(STORY));
    assert_clients_served(server.addr, 3, 3);
    half_close_session(server.addr);
    let trace = server.stop();

    // Rust's runtime polls fds 0-2 once before main; from listen() on, the
    // blocking server waits only in accept and read.
    let waits = [EPOLL_CALLS, POLL_WAITS, SELECT_WAITS].concat();
    let found: Vec<&Call> = trace.after_listen().iter().filter(|c| c.is(&waits)).collect();
    assert!(found.is_empty(), "blocking mode called a selector: {found:#?}");
    assert!(trace.after_listen().iter().any(|c| c.is(&["accept4", "accept"])));
}

#[test]
fn poll_mode_waits_in_poll() {
    if !strace_usable("poll_mode_waits_in_poll") {
        return;
    }
    selector_waits_in("poll", POLL_WAITS, &[EPOLL_CALLS, SELECT_WAITS].concat());
}

#[test]
fn select_mode_waits_in_select() {
    if !strace_usable("select_mode_waits_in_select") {
        return;
    }
    selector_waits_in("select", SELECT_WAITS, &[EPOLL_CALLS, POLL_WAITS].concat());
}

/// Served clients, waited in `waits` for the listener among others, and
/// never called one of `foreign` once listening.
fn selector_waits_in(mode: &str, waits: &[&str], foreign: &[&str]) {
    let server = Traced::start(mode, &[], Some(STORY));
    assert_clients_served(server.addr, 3, 3);
    let trace = server.stop();
    let listener = trace.listener_fd();
    let calls = trace.after_listen();
    let watching_listener =
        calls.iter().filter(|c| c.is(waits)).filter(|c| watches(c, listener)).count();
    assert!(
        watching_listener > 0,
        "{mode} mode never waited in {waits:?} on the listener (fd {listener}):\n{}",
        trace.story()
    );
    let others: Vec<&Call> = calls.iter().filter(|c| c.is(foreign)).collect();
    assert!(others.is_empty(), "{mode} mode called another backend: {others:#?}");
}

/// Does this poll/select call watch `fd`?
fn watches(call: &Call, fd: i64) -> bool {
    if call.name.contains("poll") {
        call.args.contains(&format!("{{fd={fd}, "))
    } else {
        // select(nfds, [3 4 7], [...], ...): the read set is the second argument.
        let read_set = call.arg(1).trim_matches(|c| c == '[' || c == ']');
        read_set.split(' ').any(|n| n == fd.to_string())
    }
}

#[test]
fn an_idle_selector_server_makes_no_system_call_for_a_second() {
    if !strace_usable("an_idle_selector_server_makes_no_system_call_for_a_second") {
        return;
    }
    // Every call traced (no filter): if the server woke up for anything at
    // all while idle, the transcript would show it.
    const IDLE: Duration = Duration::from_millis(1500);
    thread::scope(|scope| {
        for (mode, waits) in
            [("epoll", EPOLL_WAITS), ("poll", POLL_WAITS), ("select", SELECT_WAITS)]
        {
            scope.spawn(move || {
                let server = Traced::start(mode, &[], None);
                let client = connect(server.addr);
                ping_pong(&client, 1);
                // The last client leaves; its EOF means the server has closed
                // it, and is back in its wait...
                client.shutdown(Shutdown::Write).unwrap();
                read_to_end_with_timeout(&client, PATIENCE);
                thread::sleep(IDLE); // ...where nothing happens for a while.
                let trace = server.stop();

                // The client's fd: the last one accept4 returned. After the
                // server closes it, it must go to sleep in its wait and make
                // no other call until the SIGTERM that ends the test.
                let calls = trace.after_listen();
                let fd = calls
                    .iter()
                    .rfind(|c| c.is(&["accept4"]) && c.ok())
                    .and_then(|c| c.ret)
                    .expect("an accepted client");
                let closed = calls
                    .iter()
                    .rposition(|c| c.is(&["close"]) && c.arg(0) == fd.to_string())
                    .unwrap_or_else(|| panic!("{mode}: close({fd}) not seen:\n{}", trace.story()));
                let wait = calls[closed..]
                    .iter()
                    .position(|c| c.is(waits))
                    .map(|i| closed + i)
                    .unwrap_or_else(|| panic!("{mode}: no wait after close:\n{}", trace.story()));
                let next = calls.get(wait + 1).expect("the calls after SIGTERM");
                let slept = next.time - calls[wait].time;
                assert!(
                    slept >= 1.0,
                    "{mode}: idle, yet the server called {} {slept:.3} s after it \
                     started waiting:\n{}\n{}",
                    next.name,
                    calls[wait].line,
                    next.line
                );
            });
        }
    });
}

#[test]
fn hybrid_starts_its_workers_at_once_and_none_per_client() {
    if !strace_usable("hybrid_starts_its_workers_at_once_and_none_per_client") {
        return;
    }
    let server = Traced::start("hybrid", &["--workers", "4"], Some(STORY));
    assert_clients_served(server.addr, 100, 2);
    let trace = server.stop();

    let first_accept =
        trace.calls.iter().position(|c| c.is(&["accept4"]) && c.ok()).expect("an accepted client");
    let started = |calls: &[Call]| calls.iter().filter(|c| c.is(THREAD_STARTS) && c.ok()).count();
    assert_eq!(
        started(&trace.calls[..first_accept]),
        4,
        "--workers 4: four workers before the first client:\n{}",
        trace.excerpt(THREAD_STARTS)
    );
    assert_eq!(
        started(&trace.calls[first_accept..]),
        0,
        "a thread started for a client:\n{}",
        trace.excerpt(THREAD_STARTS)
    );
}

#[test]
fn trace_narration_lists_the_epoll_ctl_calls_strace_sees() {
    if !strace_usable("trace_narration_lists_the_epoll_ctl_calls_strace_sees") {
        return;
    }
    let server = Traced::start("epoll", &["--trace"], Some("epoll_ctl"));
    assert_clients_served(server.addr, 5, 2);
    half_close_session(server.addr);
    let trace = server.stop();

    // (op, fd) of each epoll_ctl, in order: as narrated on stderr, and as
    // the kernel saw them.
    let narrated: Vec<(String, String)> = trace
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("epoll_ctl("))
        .map(|args| {
            let args: Vec<&str> = args.split(", ").collect();
            (args[1].to_string(), args[2].to_string())
        })
        .collect();
    let seen: Vec<(String, String)> = trace
        .calls
        .iter()
        .filter(|c| c.is(&["epoll_ctl"]))
        .map(|c| (c.arg(1).to_string(), c.arg(2).to_string()))
        .collect();
    assert!(
        seen.iter().any(|(op, _)| op == "EPOLL_CTL_ADD")
            && seen.iter().any(|(op, _)| op == "EPOLL_CTL_DEL"),
        "strace saw no ADD or no DEL: {seen:?}"
    );
    assert_eq!(narrated, seen, "--trace narration (left) against strace (right)");
}

/// What a uring server is watched with: the story's calls, and io_uring's.
const URING_STORY: &str = "socket,setsockopt,bind,listen,?accept,accept4,read,recvfrom,write,\
    sendto,shutdown,close,epoll_create1,epoll_ctl,?epoll_wait,epoll_pwait,?poll,ppoll,\
    ?select,pselect6,pipe2,clone,?clone3,io_uring_setup,io_uring_enter,io_uring_register";

#[test]
fn uring_serves_20_clients_in_io_uring_enter_alone() {
    let test = "uring_serves_20_clients_in_io_uring_enter_alone";
    if !strace_usable(test) || !common::mode_usable("uring", test) {
        return;
    }
    let server = Traced::start("uring", &[], Some(URING_STORY));
    assert_clients_served(server.addr, 20, 5);
    half_close_session(server.addr);
    let trace = server.stop();
    let served = trace.after_listen();
    // The fds a read or write may name: stdout, stderr, and the signal pipe.
    let mut allowed: Vec<String> = vec!["1".into(), "2".into()];
    for pipe in served.iter().filter(|c| c.is(&["pipe2"])) {
        let ends = pipe.arg(0).trim_matches(|c| c == '[' || c == ']');
        allowed.extend(ends.split(", ").map(str::to_string));
    }
    let socket_io: Vec<&Call> = served
        .iter()
        .filter(|c| {
            c.is(&["accept4", "accept", "recvfrom", "sendto"])
                || c.is(EPOLL_CALLS)
                || (c.is(&["read", "write"]) && !allowed.contains(&c.arg(0).to_string()))
        })
        .collect();
    assert!(
        socket_io.is_empty(),
        "uring mode made socket calls of its own: {:#?}",
        socket_io.iter().map(|c| &c.line).collect::<Vec<_>>()
    );
    assert_eq!(trace.threads_started(), 0, "uring mode started a thread");
    let enters = served.iter().filter(|c| c.is(&["io_uring_enter"])).count();
    // 21 clients, 101 replies: at least a send for each of the 100 pongs
    // (the half-closer's two may share one), and a multishot receive armed
    // per client: all of it through the ring.
    assert!(enters > 0, "no io_uring_enter at all:\n{}", trace.story());
    let submitted: i64 =
        served.iter().filter(|c| c.is(&["io_uring_enter"])).filter_map(|c| c.ret).sum();
    assert!(submitted >= 100 + 21, "only {submitted} requests submitted for 101 replies");
}

#[test]
fn trace_narration_lists_the_io_uring_enters_strace_sees() {
    let test = "trace_narration_lists_the_io_uring_enters_strace_sees";
    if !strace_usable(test) || !common::mode_usable("uring", test) {
        return;
    }
    let filter = "io_uring_setup,io_uring_enter,io_uring_register,mmap";
    let server = Traced::start("uring", &["--trace"], Some(filter));
    assert_clients_served(server.addr, 5, 2);
    half_close_session(server.addr);
    let trace = server.stop();
    // Every argument and the result of each io_uring_enter, in order: as
    // narrated, and as strace printed them.
    let said: Vec<String> = narrated(&trace.stderr)
        .into_iter()
        .filter(|(_, c)| c.is(&["io_uring_enter"]))
        .map(|(_, c)| format!("({}) = {}", c.args, c.outcome()))
        .collect();
    let seen: Vec<String> = trace
        .calls
        .iter()
        .filter(|c| c.is(&["io_uring_enter"]))
        .map(|c| format!("({}) = {}", c.args, c.outcome()))
        .collect();
    assert!(seen.len() > 5, "strace saw {} io_uring_enter calls", seen.len());
    assert_eq!(said, seen, "--trace narration (left) against strace (right)");
    // The ring's setup, mapped and registered as narrated.
    for name in ["io_uring_setup", "io_uring_register"] {
        let said = narrated(&trace.stderr).iter().filter(|(_, c)| c.is(&[name])).count();
        let seen = trace.calls.iter().filter(|c| c.is(&[name])).count();
        assert!(said >= 1 && said <= seen, "{name}: narrated {said}, strace saw {seen}");
    }
    // Under the enters, as comments: the requests and completions.
    for said in ["# sqe accept fd=", "# sqe recv fd=", "# cqe recv fd=", "# cqe send fd="] {
        assert!(trace.stderr.contains(said), "no {said:?} in the narration");
    }
}

/// The sessions of the test below: every mode, and a selector mode running
/// two event loops (`--workers 2`, two threads).
const NARRATED_SESSIONS: &[(&str, &[&str])] = &[
    ("blocking", &[]),
    ("epoll", &[]),
    ("epoll", &["--workers", "2"]),
    ("poll", &[]),
    ("select", &[]),
    ("threads", &[]),
    ("pool", &[]),
    ("hybrid", &[]),
    ("uring", &[]),
];

#[test]
fn trace_narrates_only_calls_strace_shows_in_every_mode() {
    if !strace_usable("trace_narrates_only_calls_strace_shows_in_every_mode") {
        return;
    }
    // All sessions at once, to keep the test short (nothing in it depends
    // on timing), and every call traced, with no filter: the narration may
    // name any call, and strace must have seen it.
    let results: Vec<(String, Result<usize, String>)> = thread::scope(|scope| {
        let runs: Vec<_> = NARRATED_SESSIONS
            .iter()
            .filter(|&&(mode, _)| {
                common::mode_usable(mode, "trace_narrates_only_calls_strace_shows_in_every_mode")
            })
            .map(|&(mode, extra)| {
                scope.spawn(move || {
                    let mut args = vec!["--trace", "--max-line", "100"];
                    args.extend_from_slice(extra);
                    let server = Traced::start(mode, &args, None);
                    narration_session(server.addr);
                    let trace = server.stop();
                    let label = [mode].iter().chain(extra).copied().collect::<Vec<_>>();
                    (label.join(" "), trace.narration_lies())
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (label, result) in results {
        match result {
            Ok(checked) => eprintln!("{label}: {checked} narrated calls, each seen by strace"),
            Err(lies) => failures.push(format!("--mode {label}: {lies}")),
        }
    }
    assert!(
        failures.is_empty(),
        "--trace narrated calls that strace never showed:\n\n{}",
        failures.join("\n\n")
    );
}

/// What each mode is watched doing: clients with pings, a half-close, a
/// line over `--max-line 100` (an error reply, then a lingering close),
/// then (in `stop`) SIGTERM.
fn narration_session(addr: SocketAddr) {
    assert_clients_served(addr, 3, 2);
    half_close_session(addr);
    let stream = connect(addr);
    (&stream).write_all(&[b'x'; 150]).unwrap();
    (&stream).write_all(b"\n").unwrap();
    // The server's FIN comes after the error; our close ends its linger.
    let reply = read_to_end_with_timeout(&stream, PATIENCE);
    assert_eq!(reply, b"error: line too long\n", "reply to a line too long");
}

#[test]
fn attaching_and_detaching_strace_does_not_disturb_a_server() {
    if !strace_usable("attaching_and_detaching_strace_does_not_disturb_a_server") {
        return;
    }
    for &mode in ALL_MODES {
        if !common::mode_usable(mode, "attaching_and_detaching_strace_does_not_disturb_a_server") {
            continue;
        }
        let server = Server::start(mode, &[]);
        let client = server.connect();
        ping_pong(&client, 1);

        let Some(strace) = Attached::to(server.pid(), mode) else {
            return; // the reason is printed
        };
        ping_pong(&client, 2); // served while traced
        strace.detach();
        ping_pong(&client, 2); // and after

        drop(client);
        serves_a_newcomer_then_stops(server, mode, "strace came and went");
    }
}

/// After `what`, a new client is still served and SIGTERM still ends the
/// server cleanly.
fn serves_a_newcomer_then_stops(server: Server, mode: &str, what: &str) {
    let next = server.connect();
    ping_pong(&next, 1);
    drop(next);
    let stopped = server.stop();
    assert!(
        stopped.status.success(),
        "{mode}: {:?} after {what}; stderr: {}",
        stopped.status,
        stopped.stderr
    );
}

#[test]
fn sigstop_and_sigcont_do_not_disturb_a_server() {
    // No strace needed: SIGSTOP/SIGCONT is what Ctrl-Z and `fg` send, and on
    // Linux it makes epoll_wait (and a few other waits) return EINTR even
    // with no handler installed (signal(7)).
    for &mode in ALL_MODES {
        if !common::mode_usable(mode, "sigstop_and_sigcont_do_not_disturb_a_server") {
            continue;
        }
        let server = Server::start(mode, &[]);
        let mut client = server.connect();
        ping_pong(&client, 1);

        kill(server.pid(), Signal::SIGSTOP).unwrap();
        wait_for_state(server.pid(), 'T', mode);
        client.write_all(b"ping\n").unwrap(); // sent while it is stopped
        client.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut reply = [0u8; 5];
        // A signal may interrupt this read (EINTR): that is no reply; read again.
        let early = loop {
            match client.read(&mut reply) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        assert!(
            matches!(&early, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
            "{mode}: a stopped server replied: {early:?}"
        );
        kill(server.pid(), Signal::SIGCONT).unwrap();
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        client
            .read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("{mode}: no pong after SIGCONT: {e}"));
        assert_eq!(&reply, b"pong\n", "{mode}");
        ping_pong(&client, 2);

        drop(client);
        serves_a_newcomer_then_stops(server, mode, "SIGSTOP/SIGCONT");
    }
}

/// The calls right after the start-up line (the signal pipe's pipe2, the
/// threads that take signals in the thread modes), made to return 300 ms late.
const DELAY_AFTER_THE_LINE: &str = "--inject=pipe2,clone,?clone3:delay_exit=300000";

#[test]
fn a_signal_sent_as_soon_as_the_start_up_line_shows_is_taken_not_fatal() {
    // A script reads the port from the start-up line and may signal at
    // once. Until the handler is installed, SIGUSR1's default action is to
    // kill the process; so the server holds the signals pending from before
    // that line until it can take them. strace stretches the moment between
    // the two: the calls right after the line (the signal pipe's pipe2, and
    // the threads that take signals in the thread modes) return 300 ms late.
    let test = "a_signal_sent_as_soon_as_the_start_up_line_shows_is_taken_not_fatal";
    if !strace_usable(test) {
        return;
    }
    for &mode in ALL_MODES {
        if !common::mode_usable(mode, test) {
            continue;
        }
        let delayed = Some("pipe2,clone,?clone3");
        let server = Traced::start_with(mode, &[], delayed, &[DELAY_AFTER_THE_LINE]);
        kill(server.server, Signal::SIGUSR1).expect("SIGUSR1 the server");
        ping_pong(&connect(server.addr), 1);
        // It must also exit cleanly (`stop` checks). The blocking server takes
        // SIGUSR1 only so as not to die of it: no stats line there.
        let stderr = server.stop().stderr;
        if mode != "blocking" {
            assert!(
                stderr.contains("stats:"),
                "{mode}: no stats line for the early SIGUSR1: {stderr}"
            );
        }
    }
}

// ---------------------------------------------------------------- sessions

/// `n` clients, `messages` pings each, all answered.
fn assert_clients_served(addr: SocketAddr, n: usize, messages: usize) {
    let out = run_client(
        addr,
        &["--num-clients", &n.to_string(), "--messages", &messages.to_string(), "--quiet"],
    );
    assert!(
        out.status.success(),
        "{n} clients x {messages}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The course's half-close: two lines, the last without its newline, then
/// our FIN; both are answered before the server's.
fn half_close_session(addr: SocketAddr) {
    let stream = connect(addr);
    (&stream).write_all(b"ping\nhello").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let replies = read_to_end_with_timeout(&stream, PATIENCE);
    assert_eq!(replies, b"pong\nhello", "replies to a half-closed client");
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

// ------------------------------------------------- the transcript reader

#[test]
fn transcripts_are_read_like_strace_writes_them() {
    // The parser itself, on lines as strace 6 writes them.
    let text = "\
101 1700000000.000100 listen(3, 128)    = 0
101 1700000000.000200 accept4(3,  <unfinished ...>
102 1700000000.000300 read(5, \"a, b\", 16384) = 4
101 1700000000.000400 <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(1), \
sin_addr=inet_addr(\"127.0.0.1\")}, [128 => 16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 8
101 1700000000.000500 --- SIGTERM {si_signo=SIGTERM} ---
101 1700000000.000600 epoll_wait(4, 0x55, 64, -1) = -1 EINTR (Interrupted system call)
101 1700000000.000700 +++ exited with 0 +++
";
    let calls = parse(text);
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["listen", "read", "accept4", "epoll_wait"]);
    let accept = &calls[2];
    assert_eq!((accept.time, accept.ret), (1700000000.0002, Some(8)));
    assert_eq!(accept.last_arg(), "SOCK_CLOEXEC|SOCK_NONBLOCK");
    assert_eq!(calls[1].arg(1), "\"a, b\"");
    assert_eq!(calls[3].ret, Some(-1));
    assert!(!calls[3].ok());
    assert_eq!(calls[3].outcome(), "-1 EINTR");
    assert_eq!(calls[3].fd(), "4");
}

#[test]
fn narration_and_strace_lines_compare_by_name_fd_and_result() {
    // strace's side: results in hex, interrupted calls, pollfd arrays.
    let strace = parse(
        "\
7 1.1 fcntl(3, F_GETFD)                 = 0x1 (flags FD_CLOEXEC)
7 1.2 pselect6(5, [3 4], [], NULL, NULL, NULL) = ? ERESTARTNOHAND (To be restarted if no handler)
7 1.3 poll([{fd=3, events=POLLIN}, {fd=-9, events=0}], 2, -1) = 1 ([{fd=3, revents=POLLIN}])
7 1.4 read(4, 0x7ffd53b238f0, 64)       = -1 EAGAIN (Resource temporarily unavailable)
7 1.5 clone3({flags=CLONE_VM|CLONE_FS, child_tid=0x7f, stack_size=0xff00} => {parent_tid=[12]}, 88) = 12
",
    );
    let shown: Vec<(String, String)> = strace.iter().map(|c| (c.fd(), c.outcome())).collect();
    let expected = [("3", "1"), ("5", "-1 EINTR"), ("3 -9", "1"), ("4", "-1 EAGAIN"), ("", "12")];
    let expected: Vec<(String, String)> =
        expected.iter().map(|&(fd, r)| (fd.to_string(), r.to_string())).collect();
    assert_eq!(shown, expected);
    // The narration's side: the same calls as --trace prints them.
    let stderr = "\
listening on 127.0.0.1:1 (mode select, pid 7)
pselect6(5, [3 4], [], NULL, NULL, NULL) = -1 EINTR (Interrupted system call)   # interrupted
read(4, 0x..., 64)                      = -1 EAGAIN (Resource temporarily unavailable)   # nothing left
clone3({flags=CLONE_VM|..., ...}, 88) = 12   # a thread
served 1 connection, 1 line; syscalls: read 1
";
    let said: Vec<(String, String, String)> =
        narrated(stderr).iter().map(|(_, c)| (c.name.clone(), c.fd(), c.outcome())).collect();
    let said: Vec<(&str, &str, &str)> =
        said.iter().map(|(n, f, r)| (n.as_str(), f.as_str(), r.as_str())).collect();
    assert_eq!(
        said,
        [("pselect6", "5", "-1 EINTR"), ("read", "4", "-1 EAGAIN"), ("clone3", "", "12")]
    );
    assert_eq!(
        strace_quoted_start("read(4, \"ping\\n\", 65536)                = 5"),
        "\"read(4, \\\"ping\\\\n\\\", 65536)        \""
    );
}
