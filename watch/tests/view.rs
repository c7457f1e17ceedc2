//! The view and the text, drawn from recorded readings (`recorded/*.json`)
//! and compared with the screens kept in `snapshots/` (insta). Runs
//! anywhere, with no server: the readings are what `/proc` said when they
//! were recorded.
//!
//! Each recording is the two readings behind one `--once` of pingpong's own
//! servers (Linux 6, x86_64), written by the hidden `--record FILE` option:
//!
//! - `epoll`: `serve --mode epoll`, two clients answered once;
//! - `stall`: `serve --mode epoll --work-ms 200`, three clients that sent 20
//!   pings each at once;
//! - `uring`: `serve --mode uring`, two clients answered once;
//! - `threads`: `serve --mode threads`, three clients answered once;
//! - `blocking`: `serve --mode blocking`, one client answered and two more
//!   connected.

use pingpong_watch::model::{self, Snapshot};
use pingpong_watch::raw::{Raw, Recorded, Source};
use pingpong_watch::{text, ui};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn recorded(name: &str) -> Snapshot {
    let path = format!("{}/tests/recorded/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let readings: Vec<Raw> = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Through the Source trait, as the live view reads them.
    let mut source = Recorded::new(readings);
    let before = source.read().expect("first reading");
    let now = source.read().expect("second reading");
    model::snapshot(&before, &now)
}

fn screen(snapshot: &Snapshot, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| ui::draw(frame, snapshot, "refresh 500 ms")).expect("draw");
    terminal.backend().to_string()
}

#[test]
fn epoll_at_80x24() {
    let snapshot = recorded("epoll");
    let screen = screen(&snapshot, 80, 24);
    assert!(screen.contains("epoll_wait on epoll fd 4 (4 fds)"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn epoll_at_120x40() {
    insta::assert_snapshot!(screen(&recorded("epoll"), 120, 40));
}

#[test]
fn the_stall_at_80x24_shows_the_problem() {
    let snapshot = recorded("stall");
    let screen = screen(&snapshot, 80, 24);
    assert!(screen.contains("stall"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn uring_at_80x24() {
    insta::assert_snapshot!(screen(&recorded("uring"), 80, 24));
}

#[test]
fn threads_at_80x24() {
    insta::assert_snapshot!(screen(&recorded("threads"), 80, 24));
}

#[test]
fn blocking_at_100x30() {
    insta::assert_snapshot!(screen(&recorded("blocking"), 100, 30));
}

#[test]
fn a_tiny_terminal_does_not_break_the_view() {
    for (w, h) in [(20, 5), (80, 8), (10, 30)] {
        let _ = screen(&recorded("stall"), w, h);
    }
}

#[test]
fn once_text_of_each_design() {
    for name in ["epoll", "stall", "uring", "threads", "blocking"] {
        insta::assert_snapshot!(format!("text_{name}"), text::render(&recorded(name)));
    }
}

#[test]
fn json_names_are_the_issues() {
    let value = serde_json::to_value(recorded("blocking")).expect("to JSON");
    for key in ["pid", "command", "cpu", "rss_bytes", "fd_limit", "threads", "fds", "problems"] {
        assert!(value.get(key).is_some(), "{key} missing");
    }
    for key in ["tid", "name", "state", "syscall", "fd"] {
        assert!(value["threads"][0].get(key).is_some(), "threads[].{key} missing");
    }
    for key in [
        "fd",
        "kind",
        "local",
        "remote",
        "state",
        "rx_queue",
        "tx_queue",
        "nonblocking",
        "accept_queue",
        "backlog",
        "interest",
        "ring",
    ] {
        assert!(value["fds"][0].get(key).is_some(), "fds[].{key} missing");
    }
    let problem = &value["problems"][0];
    assert_eq!(problem["id"], "accept-queue");
    assert!(problem.get("detail").is_some() && problem.get("lab").is_some());
}
