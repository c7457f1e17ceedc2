//! `make trace-diff` tells the truth about every fd it annotates.
//!
//! The README promises that every `close(N)` in a story has the call that
//! opened N above it, or a `#` line saying where N came from. A student
//! trusts those lines (they are the only explanation on the page), so a
//! wrong one teaches something false: calling the ring's fd "inherited from
//! the shell" hides that `io_uring_setup` made it.
//!
//! The test runs `scripts/strace-diff.sh` for epoll against every other
//! mode, then replays each full transcript (`traces/MODE.strace`) itself and
//! checks every `close` of the story against what the transcript shows:
//!
//! - no `#` line: some call of the story opened the fd;
//! - "opened before the first socket()": a call of the start-up did;
//! - "not opened ... (inherited ...)": no call did, and the fd is 0, 1 or 2,
//!   the only ones the test leaves open for the server (Rust opens every other
//!   fd close-on-exec);
//! - "accepted by the ring on fd R": no call did, R is what `io_uring_setup`
//!   returned, and the fd is above 2.
//!
//! Skipped, saying why, without strace; `PINGPONG_REQUIRE_STRACE=1` (CI)
//! makes that a failure, as in `tests/strace.rs`.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::strace::strace_usable;
use common::{run_with_timeout, BIN};

/// The modes `make trace-diff` can put beside epoll.
const OTHERS: &[&str] = &["poll", "select", "threads", "pool", "hybrid", "uring", "blocking"];

#[test]
fn trace_diff_annotates_every_close_truthfully_in_every_mode() {
    let test = "trace_diff_annotates_every_close_truthfully_in_every_mode";
    if !strace_usable(test) {
        return;
    }
    let others: Vec<&str> =
        OTHERS.iter().copied().filter(|m| common::mode_usable(m, test)).collect();
    let root = scratch_dir();
    // The pairs side by side, in parallel: each in its own traces directory,
    // and nothing in a session depends on timing.
    let runs: Vec<(String, Result<Checked, String>)> = thread::scope(|scope| {
        let handles: Vec<_> = others
            .iter()
            .map(|&mode| {
                let dir = root.join(mode);
                scope.spawn(move || (mode.to_string(), trace_diff("epoll", mode, &dir)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    let mut by_mode = HashMap::new();
    for (mode, run) in runs {
        match run {
            Ok(checked) => {
                by_mode.insert(mode, checked);
            }
            Err(why) => failures.push(format!("trace-diff LEFT=epoll RIGHT={mode}:\n{why}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let _ = std::fs::remove_dir_all(&root);

    // Not vacuous: every story closed client sockets, and the uring story
    // has clients whose fds came in completions.
    for (mode, checked) in &by_mode {
        assert!(checked.closes >= 4, "{mode}: only {} closes checked", checked.closes);
    }
    if let Some(uring) = by_mode.get("uring") {
        assert!(
            uring.from_ring >= 4,
            "uring: {} fds annotated as accepted by the ring, for 4 clients",
            uring.from_ring
        );
        assert!(
            uring.table.iter().any(|(call, n)| call == "munmap" && *n >= 3),
            "uring: the call table has no munmap row with the ring's three: {:?}",
            uring.table
        );
    }
}

/// What one pair's run showed, once found true.
struct Checked {
    /// `close` lines of the right-hand story checked against the transcript.
    closes: usize,
    /// Of those, fds the ring's multishot accept delivered.
    from_ring: usize,
    /// The call table's right-hand column: (call, count).
    table: Vec<(String, usize)>,
}

/// Run `scripts/strace-diff.sh BIN left right` with its traces in `dir`,
/// then check both stories against their transcripts.
fn trace_diff(left: &str, right: &str, dir: &Path) -> Result<Checked, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/strace-diff.sh");
    let out = run_with_timeout(
        Command::new(script)
            .args([BIN, left, right])
            .env("TRACES", dir)
            .env("COLUMNS", "200")
            .stdin(Stdio::null()),
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{:?}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let mut checked = None;
    for mode in [left, right] {
        let strace = read(&dir.join(format!("{mode}.strace")))?;
        let story = read(&dir.join(format!("{mode}.story")))?;
        let (closes, from_ring) =
            check_story(&strace, &story).map_err(|e| format!("{mode}: {e}"))?;
        checked = Some(Checked { closes, from_ring, table: table(&stdout) });
    }
    checked.ok_or_else(|| "no story".into())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The call table under "== calls per design": the right-hand column.
fn table(stdout: &str) -> Vec<(String, usize)> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("== calls per design"))
        .skip(2)
        .map_while(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols[..] {
                [call, _, right] => Some((call.to_string(), right.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// Where the transcript says an fd came from, at the moment it is closed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Origin {
    /// A call before the first `socket(` (the loader, the runtime).
    StartUp,
    /// A call of the story.
    Story,
    /// No call in the transcript returned it.
    Nowhere,
}

/// Replay the transcript, then pair its closes (from the first `socket(`
/// on) with the story's, in order, and check each one's annotation. Returns
/// (closes checked, fds annotated as the ring's).
fn check_story(strace: &str, story: &str) -> Result<(usize, usize), String> {
    let mut origin: HashMap<i64, Origin> = HashMap::new();
    let mut ring = None;
    let mut started = false;
    let mut truths = Vec::new(); // (fd, origin) for each close of the story
    for raw in strace.lines() {
        // `PID  HH:MM:SS.micro call(...) = result` (the pid padded to a width)
        let line = raw.trim_start();
        let line = line.split_once(' ').map_or("", |(_, rest)| rest.trim_start());
        let line = line.split_once(' ').map_or("", |(_, rest)| rest);
        started |= line.contains("socket(");
        if let Some(fd) = closed_fd(line) {
            let was = origin.remove(&fd).unwrap_or(Origin::Nowhere);
            if started {
                truths.push((fd, was));
            }
        }
        let made = if started { Origin::Story } else { Origin::StartUp };
        for fd in opened_fds(line) {
            origin.insert(fd, made);
            if call_name(line) == "io_uring_setup" {
                ring = Some(fd);
            }
        }
    }
    let mut claims = Vec::new(); // (fd, the `#` line above it, if any)
    let mut note: Option<&str> = None;
    for line in story.lines() {
        if line.starts_with('#') {
            note = Some(line);
            continue;
        }
        let call = line.split_once(' ').map_or("", |(_, c)| c.trim_start());
        if let Some(fd) = closed_fd(call) {
            claims.push((fd, note.take()));
        } else {
            note = None;
        }
    }
    if claims.len() != truths.len() {
        return Err(format!(
            "{} closes in the story, {} in the transcript from socket() on",
            claims.len(),
            truths.len()
        ));
    }
    let mut from_ring = 0;
    for (&(fd, claim), &(true_fd, was)) in claims.iter().zip(&truths) {
        if fd != true_fd {
            return Err(format!("the story closes fd {fd} where the transcript closes {true_fd}"));
        }
        let claim = claim.unwrap_or("(no # line)");
        let ring_note = ring.map(|r| format!("fd {fd}: accepted by the ring on fd {r} "));
        let true_ = match was {
            Origin::Story => claim == "(no # line)",
            Origin::StartUp => {
                claim.contains(&format!("fd {fd}: opened before the first socket()"))
            }
            Origin::Nowhere if fd <= 2 => claim.contains(&format!("fd {fd}: not opened")),
            Origin::Nowhere => {
                let said = ring_note.is_some_and(|n| claim.contains(&n));
                from_ring += usize::from(said);
                said
            }
        };
        if !true_ {
            return Err(format!(
                "close({fd}): the transcript shows it {}, yet the story says: {claim}",
                match was {
                    Origin::Story => "opened by a call of the story".to_string(),
                    Origin::StartUp => "opened in the start-up".to_string(),
                    Origin::Nowhere if fd <= 2 => "inherited (0, 1, 2)".to_string(),
                    Origin::Nowhere => format!(
                        "never returned by a call, above 2 (the ring: {ring:?}): \
                         not inherited, so received some other way"
                    ),
                }
            ));
        }
    }
    Ok((claims.len(), from_ring))
}

/// The call's name, for a plain line or a `<... NAME resumed>` one.
fn call_name(line: &str) -> &str {
    let line = line.strip_prefix("<... ").unwrap_or(line);
    line.split(['(', ' ']).next().unwrap_or("")
}

/// `close(N)`'s N, finished or not.
fn closed_fd(line: &str) -> Option<i64> {
    let rest = line.strip_prefix("close(")?;
    rest.split([')', ' ']).next()?.parse().ok()
}

/// The fds a finished call returned: every call that makes an fd, under
/// any name strace may show for it.
fn opened_fds(line: &str) -> Vec<i64> {
    const MAKERS: &[&str] = &[
        "socket",
        "accept",
        "accept4",
        "open",
        "openat",
        "openat2",
        "epoll_create",
        "epoll_create1",
        "eventfd",
        "eventfd2",
        "io_uring_setup",
        "dup",
        "dup2",
        "dup3",
        "timerfd_create",
        "signalfd4",
        "memfd_create",
    ];
    let name = call_name(line);
    if line.ends_with("<unfinished ...>") {
        return Vec::new();
    }
    let result = line.rsplit_once(" = ").map(|(_, r)| r.split(' ').next().unwrap_or(""));
    let Some(Ok(ret)) = result.map(str::parse::<i64>) else { return Vec::new() };
    if ret < 0 {
        return Vec::new();
    }
    if name == "pipe" || name == "pipe2" || name == "socketpair" {
        // pipe2([5, 6], O_NONBLOCK|O_CLOEXEC) = 0
        let Some((_, after)) = line.split_once('[') else { return Vec::new() };
        let Some((pair, _)) = after.split_once(']') else { return Vec::new() };
        return pair.split(", ").filter_map(|n| n.parse().ok()).collect();
    }
    if name == "fcntl" && line.contains("F_DUPFD") || MAKERS.contains(&name) {
        return vec![ret];
    }
    Vec::new()
}

#[test]
fn the_replay_reads_strace_lines_as_they_come() {
    // The checker itself, on lines as strace writes them.
    assert_eq!(opened_fds("pipe2([5, 6], O_NONBLOCK|O_CLOEXEC) = 0"), [5, 6]);
    assert_eq!(opened_fds("<... accept4 resumed>{sa_family=AF_INET}, [16], 0) = 8"), [8]);
    assert_eq!(
        opened_fds("accept4(3, 0x7f, [128], SOCK_NONBLOCK) = -1 EAGAIN (x)"),
        [] as [i64; 0]
    );
    assert_eq!(opened_fds("io_uring_setup(256, {flags=0}) = 4"), [4]);
    assert_eq!(opened_fds("read(5, \"x\", 64) = 1"), [] as [i64; 0]);
    assert_eq!(closed_fd("close(11)          = 0"), Some(11));
    assert_eq!(closed_fd("close(9 <unfinished ...>"), Some(9));
    let strace = "\
12  00:00:00.1 openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY) = 3
1 00:00:00.2 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 4
1 00:00:00.3 io_uring_setup(256, {}) = 5
1 00:00:00.4 close(8)          = 0
1 00:00:00.5 close(3)          = 0
1 00:00:00.6 close(4)          = 0
";
    let truthful = "\
main socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 4
main io_uring_setup(256, {}) = 5
#    fd 8: accepted by the ring on fd 5 (a completion of the multishot accept)
main close(8)          = 0
#    fd 3: opened before the first socket(), in the start-up
main close(3)          = 0
main close(4)          = 0
";
    assert_eq!(check_story(strace, truthful), Ok((3, 1)));
    let inherited =
        truthful.replace("accepted by the ring on fd 5", "not opened in this transcript");
    assert!(check_story(strace, &inherited).is_err(), "fd 8 called inherited");
    let unannotated =
        truthful.replace("#    fd 3: opened before the first socket(), in the start-up\n", "");
    assert!(check_story(strace, &unannotated).is_err(), "close(3) without its # line");
}

// ---------------------------------------------------------------- helpers

/// A directory of our own for the transcripts, so the test neither writes
/// into the clone's `traces/` nor meets another run's files.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pingpong-trace-diff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
