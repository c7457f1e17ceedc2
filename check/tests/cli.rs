//! What a user of `pingpong check` sees: the exit status, a server that
//! dies and is started again, skips with their reason, `--list`, the
//! report written to a file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{check, check_command, pingpong, serve};
use pingpong::observe::Launched;

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Every id of issue 25's table, in its order: graders key on them.
const IDS: [&str; 22] = [
    "line/ping",
    "line/echo",
    "line/crlf",
    "line/pipelined",
    "line/split",
    "line/bytewise",
    "line/long",
    "line/binary",
    "eof/half-close",
    "eof/closes",
    "flow/slow-reader",
    "conc/second-client",
    "conc/many",
    "conc/stuck-reader",
    "reset/storm",
    "reset/close-wait",
    "limit/slowloris",
    "limit/huge-line",
    "cpu/idle",
    "cpu/stopped",
    "mem/never-reader",
    "fd/emfile",
];

#[test]
fn list_names_every_case_with_what_it_catches_and_its_lab() {
    let listed = check(&args(&["--list"]));
    assert_eq!(listed.code, 0);
    let ids: Vec<&str> = listed
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, IDS);
    assert!(listed.stdout.contains("lab: pingpong lab short-write-lost"), "{}", listed.stdout);
    assert!(listed.stdout.contains("catches: "), "{}", listed.stdout);
}

#[test]
fn check_that_cannot_run_exits_2_and_says_why() {
    let port = pingpong::observe::launched::free_port().unwrap().to_string();
    let nobody = check(&args(&[&format!("127.0.0.1:{port}")]));
    assert_eq!(nobody.code, 2, "{nobody:?}");
    assert!(
        nobody.stderr.contains("nothing accepts connections on 127.0.0.1:"),
        "{}",
        nobody.stderr
    );

    let unknown = check(&args(&["--only", "line/pong", "--", "true", "{port}"]));
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no case or group is called `line/pong`"),
        "{}",
        unknown.stderr
    );

    let broken =
        check(&args(&["--", "sh", "-c", "echo 'Traceback: no port' >&2; exit 3", "{port}"]));
    assert_eq!(broken.code, 2, "{broken:?}");
    assert!(broken.stderr.contains("exited with status 3"), "{}", broken.stderr);
    assert!(broken.stderr.contains("Traceback: no port"), "{}", broken.stderr);

    let no_port = check(&args(&["--", "python3", "server.py"]));
    assert_eq!(no_port.code, 2, "{no_port:?}");
    assert!(no_port.stderr.contains("{port}"), "{}", no_port.stderr);
}

#[test]
fn a_server_that_dies_fails_that_case_and_is_started_again_for_the_next() {
    let command = serve(&["--bug", "sigpipe"]);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let checked = check_command(Some("reset/close-wait,line/ping"), &command);
    assert_eq!(checked.code, 1, "{}", checked.stdout);
    let died = checked.case("reset/close-wait");
    assert_eq!(died["status"], "fail");
    let actual = died["actual"].as_str().unwrap_or_default();
    assert!(actual.starts_with("the server was killed by SIGPIPE"), "{actual}");
    assert!(
        actual.contains("--bug sigpipe: this server is broken on purpose"),
        "its stderr: {actual}"
    );
    assert_eq!(checked.status("line/ping"), "pass", "restarted: {}", checked.stdout);
}

#[test]
fn without_a_pid_the_cases_that_need_one_are_skipped_with_the_reason() {
    let mut server =
        Launched::spawn(Command::new(pingpong()).args(["serve", "--port", "0"])).unwrap();
    let banner = server.await_banner(Duration::from_secs(10)).unwrap();
    let addr = banner.addr.to_string();
    let only = "line/ping,cpu/idle,fd/emfile";
    let text = check(&args(&["--only", only, &addr]));
    assert_eq!(text.code, 0, "skips are not failures: {text:?}");
    assert!(text.stdout.contains("  - cpu/idle: "), "{}", text.stdout);
    assert!(text.stdout.contains("skipped: needs the server's pid"), "{}", text.stdout);
    assert!(
        text.stdout.ends_with("1 of 3 passed, 2 skipped (no --pid; no -- CMD)\n"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains('\x1b'), "no colour into a pipe");

    // With the pid, the CPU case runs too; the report goes to a file.
    let out = std::env::temp_dir().join(format!("pingpong-check-{}.xml", std::process::id()));
    let pid = banner.pid.to_string();
    let with_pid = check(&args(&[
        "--format",
        "junit",
        "--out",
        &out.display().to_string(),
        "--only",
        "line/ping,cpu/idle",
        "--pid",
        &pid,
        &addr,
    ]));
    let xml = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    assert_eq!(with_pid.code, 0, "{with_pid:?}");
    assert_eq!(with_pid.stdout, "2 of 2 passed\n", "the score line still shows");
    assert!(xml.contains(r#"<testcase classname="cpu" name="cpu/idle""#), "{xml}");
    assert!(xml.contains(r#"tests="2" failures="0""#), "{xml}");
    let _ = server.stop(Duration::from_secs(5));
}

#[test]
fn a_failure_reads_as_rule_expected_actual_mistake_and_lab() {
    let command = serve(&["--bug", "always-writable"]);
    let mut words = vec!["--only", "cpu/idle", "--"];
    words.extend(command.iter().map(String::as_str));
    let text = check(&args(&words));
    assert_eq!(text.code, 1, "{text:?}");
    for line in [
        "  \u{00d7} cpu/idle: 10 clients connect, ping once and go quiet",
        "      expected: the server uses less than 5% of a core",
        "        actual: ",
        "       mistake: EVENT_WRITE always asked for",
        "           lab: pingpong lab always-writable",
        "0 of 1 passed, 1 failed",
    ] {
        assert!(text.stdout.contains(line), "{line:?} in:\n{}", text.stdout);
    }
}

/// A server that answers every connection with `chunk` every `pause`, for
/// ever, without a newline, reading nothing.
fn endless(chunk: &'static [u8], pause: Duration) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                while std::io::Write::write_all(&mut stream, chunk).is_ok() {
                    std::thread::sleep(pause);
                }
            });
        }
    });
    addr
}

#[test]
fn a_server_that_never_stops_sending_cannot_hold_or_grow_check() {
    // A byte every 50 ms: a read timeout restarted by each byte would wait
    // for ever; the case's deadline does not move.
    let trickle = endless(b"x", Duration::from_millis(50));
    let start = std::time::Instant::now();
    let checked =
        check(&args(&["--format", "json", "--timeout", "1", "--only", "line/long", &trickle]));
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    assert_eq!(checked.code, 1, "{checked:?}");
    let actual = checked.case("line/long")["actual"].as_str().unwrap_or_default().to_string();
    assert!(actual.starts_with("\"x") && actual.contains("at byte 0"), "{actual}");

    // A flood: the reply is read no further than it could be right.
    let flood = endless(&[b'x'; 1 << 16], Duration::ZERO);
    let checked = check(&args(&["--format", "json", "--only", "line/ping", &flood]));
    assert_eq!(checked.code, 1, "{checked:?}");
    let actual = checked.case("line/ping")["actual"].as_str().unwrap_or_default().to_string();
    // Five bytes read, as many as "pong\n" has, and no more.
    assert_eq!(actual, "\"xxxxx\" at byte 0, where \"pong\\n\" was due", "{actual}");
}
