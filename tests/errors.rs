//! The errors as a user sees them: the real binary, its exact stderr line
//! and its exit status (1 for what went wrong while running, 2 for a command
//! line clap refused), for every mistake a person is likely to make.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::{ping_pong, run_with_timeout, Server, ALL_MODES, BIN, PATIENCE};

/// How a run of `pingpong ARGS...` ended: exit code, stdout, stderr.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn pingpong(args: &[&str]) -> Ran {
    let out = run_with_timeout(Command::new(BIN).args(args), PATIENCE);
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A port nothing listens on: bound, read, let go.
fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

#[test]
fn serve_on_a_port_in_use_names_the_address_the_cause_and_a_way_out() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let ran = pingpong(&["serve", "--port", &port]);
    assert_eq!(
        ran.stderr,
        format!(
            "pingpong serve: cannot listen on 127.0.0.1:{port}: address already in use \
             (another server? --port 0 picks a free port)\n"
        )
    );
    assert_eq!(ran.code, Some(1));
    assert_eq!(ran.stdout, "", "no start-up line for a server that never listened");
}

fn refused_connection_is_one_line_for_all_clients(client_mode: &str) {
    let port = unused_port().to_string();
    let args = ["client", "--port", &port, "--num-clients", "5", "--mode", client_mode];
    let ran = pingpong(&args);
    assert_eq!(
        ran.stderr,
        format!(
            "pingpong client: 5 of 5 clients could not connect to 127.0.0.1:{port}: \
             connection refused (is a server running?)\n"
        ),
        "--mode {client_mode}"
    );
    assert_eq!(ran.code, Some(1), "--mode {client_mode}");
    let summary = ran.stdout.trim_end();
    assert!(summary.starts_with("5 clients x 10 messages: 0/50 replies in "), "{summary}");
    assert!(summary.ends_with(" s, 5 errors"), "{summary}");
}

#[test]
fn refused_connection_threads_client() {
    refused_connection_is_one_line_for_all_clients("threads");
}

#[test]
fn refused_connection_selector_client() {
    refused_connection_is_one_line_for_all_clients("selector");
}

/// A listener that never accepts: the kernel completes the handshake and
/// takes the ping into its buffer, and nothing ever answers.
fn silent_server_is_no_reply_within_the_timeout(client_mode: &str) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let args =
        ["client", "--port", &port, "--num-clients", "2", "--timeout", "1", "--mode", client_mode];
    let ran = pingpong(&args);
    assert_eq!(
        ran.stderr,
        format!(
            "pingpong client: 2 of 2 clients got no reply within 1 s from 127.0.0.1:{port} \
             (a slow server? --timeout waits longer)\n"
        ),
        "--mode {client_mode}"
    );
    assert_eq!(ran.code, Some(1), "--mode {client_mode}");
    assert!(ran.stdout.contains(": 0/20 replies in "), "{}", ran.stdout);
    drop(silent);
}

#[test]
fn timeout_threads_client() {
    silent_server_is_no_reply_within_the_timeout("threads");
}

#[test]
fn timeout_selector_client() {
    silent_server_is_no_reply_within_the_timeout("selector");
}

/// `--max-clients 1` with one client already in: the others are told, and
/// the client says so once, naming the limit.
#[test]
fn server_busy_is_one_line_naming_the_limit() {
    let server = Server::start("poll", &["--max-clients", "1"]);
    let inside = server.connect();
    ping_pong(&inside, 1); // accepted and counted before the others come
    for client_mode in ["threads", "selector"] {
        let (host, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
        let args = [
            "client",
            "--host",
            &host,
            "--port",
            &port,
            "--num-clients",
            "2",
            "--mode",
            client_mode,
        ];
        let ran = pingpong(&args);
        assert_eq!(
            ran.stderr,
            format!(
                "pingpong client: 2 of 2 clients got `error: server busy` from {} \
                 (the server is at its --max-clients)\n",
                server.addr
            ),
            "--mode {client_mode}"
        );
        assert_eq!(ran.code, Some(1), "--mode {client_mode}");
    }
    drop(inside);
    assert!(server.stop().status.success());
}

#[test]
fn a_host_that_is_not_an_address_is_refused_by_the_parser_with_the_value_shown() {
    for command in ["serve", "client"] {
        let ran = pingpong(&[command, "--host", "not-an-ip"]);
        let first = ran.stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            "error: invalid value 'not-an-ip' for '--host <HOST>': not an IP address; \
             give one such as 127.0.0.1, 0.0.0.0 or ::1, or localhost",
            "{command}"
        );
        assert_eq!(ran.code, Some(2), "{command}");
        assert_eq!(ran.stdout, "", "{command}");
    }
}

#[test]
fn localhost_is_127_0_0_1() {
    let server = Server::start("blocking", &["--host", "localhost"]);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1", "{}", server.banner);
    ping_pong(&server.connect(), 1);
    assert!(server.stop().status.success());
}

#[test]
fn each_value_out_of_range_is_refused_with_the_range() {
    let refused = [
        (&["serve", "--workers", "0"][..], "--workers <WORKERS>", "0", "1..=1024"),
        (&["serve", "--workers", "1025"], "--workers <WORKERS>", "1025", "1..=1024"),
        (&["serve", "--max-line", "0"], "--max-line <MAX_LINE>", "0", "1..=16777216"),
        (&["serve", "--backlog", "0"], "--backlog <BACKLOG>", "0", "1..=65535"),
        (&["serve", "--max-clients", "0"], "--max-clients <MAX_CLIENTS>", "0", "1..=1048576"),
        (&["client", "--num-clients", "0"], "--num-clients <NUM_CLIENTS>", "0", "1..=100000"),
        (&["client", "--port", "0"], "--port <PORT>", "0", "1..=65535"),
        (&["client", "--timeout", "0"], "--timeout <TIMEOUT>", "0", "1..=3600"),
    ];
    for (args, arg, value, range) in refused {
        let ran = pingpong(args);
        let first = ran.stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!("error: invalid value '{value}' for '{arg}': {value} is not in {range}"),
            "{args:?}"
        );
        assert_eq!(ran.code, Some(2), "{args:?}");
        assert_eq!(ran.stdout, "", "{args:?}: nothing ran");
    }
}

#[test]
fn a_mode_this_os_lacks_is_refused_naming_the_modes_it_has() {
    let missing = ["epoll", "kqueue"].into_iter().find(|m| !ALL_MODES.contains(m));
    let Some(missing) = missing else {
        eprintln!("skipped: this build has both epoll and kqueue");
        return;
    };
    let ran = pingpong(&["serve", "--mode", missing, "--port", "0"]);
    let (rest, last) = ALL_MODES.split_at(ALL_MODES.len() - 1);
    assert_eq!(
        ran.stderr,
        format!(
            "pingpong serve: cannot serve with --mode {missing}: {missing} is not available on {} \
             (this build has {} and {})\n",
            std::env::consts::OS,
            rest.join(", "),
            last[0]
        )
    );
    assert_eq!(ran.code, Some(1));
    assert_eq!(ran.stdout, "");
}

#[test]
fn edge_where_it_means_nothing_is_refused_before_listening() {
    let edge: Vec<&str> =
        ["epoll", "kqueue", "hybrid"].into_iter().filter(|m| ALL_MODES.contains(m)).collect();
    let hint = format!("--edge needs --mode {}", one_of(&edge));
    for (mode, why) in [
        ("poll", "poll is level-triggered only".to_string()),
        ("select", "select is level-triggered only".to_string()),
        ("threads", "threads mode waits in blocking calls, not in a selector".to_string()),
    ] {
        let ran = pingpong(&["serve", "--mode", mode, "--edge", "--port", "0"]);
        assert_eq!(
            ran.stderr,
            format!("pingpong serve: cannot use --edge with --mode {mode}: {why} ({hint})\n")
        );
        assert_eq!(ran.code, Some(1), "{mode}");
        assert_eq!(ran.stdout, "", "{mode}: no start-up line");
    }
}
