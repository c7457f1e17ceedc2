//! The break-it labs (`pingpong lab NAME`): each switches one guard off with
//! `serve --bug NAME`, plays its scenario with the guard and without it, and
//! must show its symptom only without it. The symptom is counted (wait
//! returns, bytes lost, replies, exit status, memory) with wide margins,
//! by the lab's own code in `src/lab/`: these tests play the very labs a
//! student runs.
//!
//! Under strace (installed in CI) each lab also plays once traced, and the
//! lines it shows must hold the call that gives the bug away.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::BIN;
use pingpong::bugs::Bug;
use pingpong::lab::{self, Outcome};

/// The labs load the machine (a spinning server, thousands of bytes in
/// flight): one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Play the lab of `bug`, and check what every lab must do: the symptom
/// with the bug, none without, and (under strace) an excerpt that starts
/// at the line that gives the bug away.
fn play(bug: Bug) -> Outcome {
    let _one = serial();
    let lab = lab::lab(bug).unwrap_or_else(|| panic!("no lab for --bug {bug}"));
    let outcome = lab::run(&lab, Path::new(BIN), true).unwrap_or_else(|e| panic!("lab {bug}: {e}"));
    assert!(outcome.broken.broken, "{bug}: no symptom with the guard off:\n{outcome}");
    assert!(!outcome.guarded.broken, "{bug}: the symptom shows with the guard on:\n{outcome}");
    match &outcome.strace {
        // The excerpt begins at the first line that passes the lab's test
        // (`Lab::starts_excerpt`): an empty one means strace never showed it.
        Ok(lines) => assert!(!lines.is_empty(), "{bug}: no strace line showed the bug"),
        Err(why) => eprintln!("{bug}: strace part skipped: {why}"),
    }
    outcome
}

#[test]
fn no_spare_fd_spins_at_emfile_and_leaves_the_newcomer_waiting() {
    let outcome = play(Bug::NoSpareFd);
    assert!(outcome.broken.to_string().contains("not answered"), "{outcome}");
    assert!(outcome.guarded.to_string().contains("newcomer served"), "{outcome}");
}

#[test]
fn a_broken_server_says_so_at_start_and_in_its_summary() {
    let out = common::run_with_timeout(
        Command::new("sh").args([
            "-c",
            "\"$0\" serve --port 0 --bug no-spare-fd & sleep 0.5; kill $!; wait",
            BIN,
        ]),
        common::PATIENCE,
    );
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        stderr.contains("warning: --bug no-spare-fd: this server is broken on purpose; see docs/labs.md#no-spare-fd"),
        "{stderr}"
    );
    assert!(stdout.contains("; broken on purpose: --bug no-spare-fd"), "{stdout}");
}

#[test]
fn a_bug_with_no_meaning_in_the_mode_is_refused_in_one_line() {
    let out = common::run_with_timeout(
        Command::new(BIN).args([
            "serve",
            "--port",
            "0",
            "--mode",
            "threads",
            "--bug",
            "no-spare-fd",
        ]),
        common::PATIENCE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.trim(),
        "pingpong serve: cannot use --bug no-spare-fd with --mode threads: it undoes a guard of \
         the selector loop, which threads mode does not run (--bug no-spare-fd needs --mode epoll, \
         poll, select or hybrid)"
    );
    let out = common::run_with_timeout(
        Command::new(BIN).args(["serve", "--port", "0", "--bug", "edge-no-drain"]),
        common::PATIENCE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot use --bug edge-no-drain with --mode epoll"), "{stderr}");
    assert!(stderr.contains("needs --edge"), "{stderr}");
    let out = common::run_with_timeout(
        Command::new(BIN).args(["serve", "--port", "0", "--bug", "stale-events"]),
        common::PATIENCE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--bug stale-events needs --mode hybrid"), "{stderr}");
}

#[test]
fn always_writable_turns_the_wait_into_a_storm_with_every_client_quiet() {
    let outcome = play(Bug::AlwaysWritable);
    assert!(outcome.guarded.to_string().contains("5 of 5 pinged"), "{outcome}");
}

#[test]
fn no_backpressure_lets_a_client_that_never_reads_grow_the_server() {
    let outcome = play(Bug::NoBackpressure);
    assert!(outcome.broken.to_string().contains("server memory +"), "{outcome}");
}

#[test]
fn eintr_fatal_lets_ctrl_z_and_fg_kill_the_server() {
    let outcome = play(Bug::EintrFatal);
    assert!(outcome.broken.to_string().contains("interrupted system call"), "{outcome}");
    assert!(outcome.guarded.to_string().contains("alive after Ctrl-Z, fg"), "{outcome}");
}

#[test]
fn edge_no_drain_leaves_the_rest_of_a_request_unread() {
    let outcome = play(Bug::EdgeNoDrain);
    assert!(outcome.guarded.to_string().contains("40,000 of 40,000 pings answered"), "{outcome}");
}

#[test]
fn short_write_lost_leaves_holes_in_an_echo_to_a_slow_reader() {
    let outcome = play(Bug::ShortWriteLost);
    assert!(outcome.guarded.to_string().contains("4,194,304 of 4,194,304 bytes echoed, in order"));
    assert!(outcome.broken.to_string().contains(" lost"), "{outcome}");
}

#[test]
fn blocking_client_lets_one_client_that_never_reads_stall_the_loop() {
    let outcome = play(Bug::BlockingClient);
    assert!(outcome.guarded.to_string().contains("second client answered"), "{outcome}");
    let broken = outcome.broken.to_string();
    assert!(broken.contains("never answered") || broken.contains("only once the first left"));
}

#[test]
fn no_line_limit_lets_a_line_without_end_grow_the_server() {
    let outcome = play(Bug::NoLineLimit);
    assert!(outcome.guarded.to_string().contains("told \"error: line too long\""), "{outcome}");
    assert!(outcome.broken.to_string().contains("no answer"), "{outcome}");
}

#[test]
fn sigpipe_lets_one_client_that_resets_kill_the_server() {
    let outcome = play(Bug::Sigpipe);
    assert!(outcome.broken.to_string().contains("killed by SIGPIPE"), "{outcome}");
    assert!(outcome.guarded.to_string().contains("alive after the reset, newcomer served"));
    if let Ok(lines) = &outcome.strace {
        assert!(lines.iter().any(|line| line.starts_with("--- SIGPIPE")), "{lines:?}");
    }
}

#[test]
fn the_lab_command_lists_every_lab_and_plays_one_without_strace() {
    let out = common::run_with_timeout(Command::new(BIN).args(["lab", "--list"]), common::PATIENCE);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for bug in Bug::ALL {
        assert!(listed.contains(bug.name()), "{bug} missing from:\n{listed}");
    }
    let _one = serial();
    let out = common::run_with_timeout(
        Command::new(BIN).args(["lab", "sigpipe", "--no-strace"]),
        common::PATIENCE,
    );
    let played = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{played}{}", String::from_utf8_lossy(&out.stderr));
    assert!(played.contains("guard off: killed by SIGPIPE"), "{played}");
    assert!(!played.contains("strace"), "{played}");
}

#[test]
fn stale_events_hand_a_gone_clients_reply_to_the_one_on_its_fd() {
    let outcome = play(Bug::StaleEvents);
    assert!(outcome.guarded.to_string().contains("B was told \"hello from B\""), "{outcome}");
    assert!(outcome.broken.to_string().contains("B was told \"secret for A\""), "{outcome}");
}

#[test]
fn every_bug_serve_accepts_has_its_lab() {
    let labs: Vec<Bug> = lab::labs().iter().map(|lab| lab.bug).collect();
    assert_eq!(labs, Bug::ALL, "one lab per --bug, in the order --help lists them");
}

/// A lab's server under strace is strace's child, not ours: stopping it,
/// or dropping it after an error, must end the server itself, never leave it
/// running with no parent (strace, sent SIGTERM or SIGKILL, detaches and
/// lets its tracee go on).
#[test]
fn a_lab_server_under_strace_leaves_nothing_behind() {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use pingpong::lab::probe::{LabServer, Launch};
    if !common::strace::strace_usable("a_lab_server_under_strace_leaves_nothing_behind") {
        return;
    }
    for stop in [true, false] {
        let file = std::env::temp_dir().join(format!("lab-orphan-{}-{stop}", std::process::id()));
        let launch = Launch { strace: Some(("accept4".into(), file.clone())), ..Launch::default() };
        let server = LabServer::start(Path::new(BIN), &launch).expect("start under strace");
        let pid = server.pid;
        if stop {
            server.stop().expect("stop");
        } else {
            drop(server);
        }
        // A zombie still answers kill(pid, 0) until init reaps it.
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            kill(pid, None) == Err(Errno::ESRCH)
        });
        let _ = std::fs::remove_file(&file);
        assert!(gone, "the server (pid {pid}) outlived its lab (stopped: {stop})");
    }
}
