//! Watching a server under strace: starting one under `strace -f`,
//! attaching to a running one, and reading the transcript strace writes
//! (`PID SECONDS name(args) = ret`) into [`Call`]s a test can question.
//!
//! `tests/strace.rs` holds the tests; this is what they stand on, kept apart
//! so that the tests read as what each server promises, not as a parser.
//! strace's output is read as `pingpong::observe` reads any server's: the
//! start-up line through [`Banner`], the output kept by [`Launched`].

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use pingpong::observe::{Banner, Launched, Stream};

use super::{everything_after, first_line, BIN, PATIENCE};

/// The calls that start a thread (clone3 on newer glibc, clone before).
pub const THREAD_STARTS: &[&str] = &["clone", "clone3"];

/// Can strace trace a child here? Asked once; the answer (or the reason it
/// cannot) is kept for every test.
pub fn strace_usable(test: &str) -> bool {
    static USABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let usable = USABLE.get_or_init(|| {
        let out = Command::new("strace")
            .args(["-f", "-o", "/dev/null", "--", BIN, "--version"])
            .stdin(Stdio::null())
            .output();
        match out {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err("strace is not installed".to_string())
            }
            Err(e) => Err(format!("cannot run strace: {e}")),
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "strace cannot trace here (is ptrace allowed?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    });
    match usable {
        Ok(()) => true,
        Err(why) => skip(test, why),
    }
}

/// Print why a test did not run (past the test harness's capture, so it is
/// seen), or fail if `PINGPONG_REQUIRE_STRACE` is set. Returns false.
pub fn skip(test: &str, why: &str) -> bool {
    if std::env::var_os("PINGPONG_REQUIRE_STRACE").is_some() {
        panic!("{test}: {why} (and PINGPONG_REQUIRE_STRACE is set)");
    }
    let _ = writeln!(io::stderr(), "skipped {test}: {why}");
    false
}

/// A server started under `strace -f -ttt -o FILE`.
pub struct Traced {
    /// strace itself, its output (the server's: strace passes it through)
    /// kept whole.
    strace: Launched,
    /// The server's pid, from its start-up line (strace's is `strace.pid()`).
    pub server: Pid,
    pub addr: SocketAddr,
    mode: String,
    log: PathBuf,
}

impl Traced {
    /// `strace -f -ttt [-e trace=FILTER] -o FILE pingpong serve --mode MODE
    /// --port 0 ARGS...`, once it has printed its start-up line.
    pub fn start(mode: &str, args: &[&str], filter: Option<&str>) -> Traced {
        Traced::start_with(mode, args, filter, &[])
    }

    /// [`Traced::start`], with more options for strace (`--inject=...`).
    pub fn start_with(mode: &str, args: &[&str], filter: Option<&str>, options: &[&str]) -> Traced {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "pingpong-strace-{}-{}.log",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let mut command = Command::new("strace");
        command.args(["-f", "-ttt", "-o"]).arg(&log);
        if let Some(filter) = filter {
            command.arg(format!("--trace={filter}"));
        }
        command.args(options).args(["--", BIN, "serve", "--mode", mode, "--port", "0"]).args(args);
        // Every line kept: a `--trace` narration is compared whole.
        let mut strace = Launched::spawn_keeping(&mut command, usize::MAX).expect("spawn strace");
        let line = first_line(&mut strace, Stream::Stdout);
        // `listening on 127.0.0.1:4321 (mode epoll, pid 99)`: the pid is the
        // server's, strace's child, not strace's own.
        let banner =
            Banner::parse(&line).unwrap_or_else(|| panic!("unexpected start-up line: {line:?}"));
        // Signals, and the kill on drop, go to the server, not to strace.
        strace.serving(banner.pid);
        Traced {
            strace,
            server: Pid::from_raw(banner.pid),
            addr: banner.addr,
            mode: mode.to_string(),
            log,
        }
    }

    /// SIGTERM to the server (strace -o FILE ignores it), wait for both to
    /// end, and read the transcript. A server that does not exit cleanly
    /// fails the test.
    pub fn stop(mut self) -> Transcript {
        self.strace.signal(Signal::SIGTERM).expect("SIGTERM the server");
        let status = self.strace.wait_exit(PATIENCE).unwrap_or_else(|| {
            panic!("{} server under strace still running {PATIENCE:?} after SIGTERM", self.mode)
        });
        let (stdout, stderr) = everything_after(&self.strace, 1);
        assert!(
            status.success(),
            "{} server under strace: {status:?}; stdout: {stdout}; stderr: {stderr}",
            self.mode
        );
        let text = std::fs::read_to_string(&self.log).expect("read the strace log");
        Transcript { calls: parse(&text), text, stderr }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        // `Launched` kills the server (`serving`), then strace, and reaps it.
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `strace -f -p PID` attached to a running server (killed on drop).
pub struct Attached {
    strace: Launched,
}

impl Attached {
    /// Attach, and return once strace says it has. `None` (with the reason
    /// printed) when this system does not let strace attach.
    pub fn to(pid: Pid, mode: &str) -> Option<Attached> {
        let mut strace = Launched::spawn(Command::new("strace").args([
            "-f",
            "-o",
            "/dev/null",
            "-p",
            &pid.to_string(),
        ]))
        .expect("spawn strace -p");
        let mut from = 0;
        match strace.wait_line(Stream::Stderr, &mut from, PATIENCE, |_| true) {
            Some(line) if line.contains("attached") => Some(Attached { strace }),
            other => {
                let _ = strace.stop(Duration::ZERO);
                let why = other.unwrap_or_else(|| "no word from strace".to_string());
                if why.contains("Operation not permitted") {
                    skip(
                        "attaching_and_detaching_strace_does_not_disturb_a_server",
                        &format!("strace may not attach here: {why}"),
                    );
                    return None;
                }
                panic!("{mode}: strace -p {pid} did not attach: {why}");
            }
        }
    }

    /// SIGINT makes strace detach and exit.
    pub fn detach(mut self) {
        self.strace.signal(Signal::SIGINT).unwrap();
        let status = self.strace.wait_exit(PATIENCE);
        assert!(status.is_some(), "strace -p did not detach on SIGINT");
    }
}

/// One system call from strace's transcript.
#[derive(Debug)]
pub struct Call {
    /// The thread that made it.
    #[allow(dead_code)] // shown in failure messages
    pub pid: i32,
    /// When it started, in seconds (`-ttt`).
    pub time: f64,
    pub name: String,
    /// Everything between the parentheses.
    pub args: String,
    /// The return value (`0x1` read as 1); `None` for `?`.
    pub ret: Option<i64>,
    /// The error's name after a `-1` (or a `?`): `EAGAIN`, `ERESTARTSYS`.
    pub errno: Option<String>,
    /// The whole line (both halves, when another thread split it).
    pub line: String,
}

impl Call {
    pub fn is(&self, names: &[&str]) -> bool {
        names.contains(&self.name.as_str())
    }

    pub fn ok(&self) -> bool {
        self.ret.is_some_and(|r| r >= 0)
    }

    /// The `i`th argument, split at top-level commas.
    pub fn arg(&self, i: usize) -> &str {
        split_args(&self.args).get(i).copied().unwrap_or("")
    }

    pub fn last_arg(&self) -> &str {
        split_args(&self.args).last().copied().unwrap_or("")
    }

    /// The fd a call is about, as the narration is checked against strace:
    /// its first argument (the listener for accept4, whose result is the new
    /// fd; the epoll fd for epoll_ctl and epoll_wait; the eventfd for
    /// hybrid's read and write; nfds for pselect6), except for
    /// - poll: the fds of its pollfd array, `3 4 -8` (negative: parked);
    /// - clone3: none. Its argument is a struct the narration abbreviates;
    ///   the result, the new thread's id, is what tells one from another.
    pub fn fd(&self) -> String {
        match self.name.as_str() {
            "clone" | "clone3" => String::new(),
            "poll" | "ppoll" => {
                let fds = self.arg(0).split("fd=").skip(1);
                let fds = fds.map(|s| s.split([',', '}']).next().unwrap_or(s).trim());
                fds.collect::<Vec<_>>().join(" ")
            }
            _ => self.arg(0).to_string(),
        }
    }

    /// The result as the program saw it: `5`, or `-1 EAGAIN`. strace shows a
    /// call a signal interrupted as `? ERESTARTSYS` (or ERESTARTNOHAND,
    /// ERESTART_RESTARTBLOCK, ERESTARTNOINTR): the kernel's own code at the
    /// moment the call stopped, which becomes `-1 EINTR` once the handler has
    /// run (the `rt_sigreturn(...) = -1 EINTR` strace shows next).
    pub fn outcome(&self) -> String {
        match (self.ret, &self.errno) {
            (None, Some(e)) if e.starts_with("ERESTART") => "-1 EINTR".to_string(),
            (Some(-1), Some(e)) => format!("-1 {e}"),
            (Some(v), _) => v.to_string(),
            (None, _) => "?".to_string(),
        }
    }
}

/// The calls `--trace` narrated on stderr (`CALL = RESULT   # WHY`), each
/// with its line; the server's other messages are left out.
pub fn narrated(stderr: &str) -> Vec<(&str, Call)> {
    stderr
        .lines()
        .filter_map(|line| {
            let (call, _why) = line.split_once("   # ")?;
            Some((line, parse_call(0, 0.0, call.trim_end())?))
        })
        .collect()
}

/// A line's first 32 bytes as strace quotes the buffer of the `write(2,
/// ...)` that printed it (its default `-s 32`).
pub fn strace_quoted_start(line: &str) -> String {
    let mut quoted = String::from("\"");
    for &b in line.as_bytes().iter().take(32) {
        match b {
            b'"' => quoted.push_str("\\\""),
            b'\\' => quoted.push_str("\\\\"),
            0x20..=0x7e => quoted.push(b as char),
            _ => quoted.push_str(&format!("\\{b:o}")),
        }
    }
    quoted.push('"');
    quoted
}

/// `3, {a=1, b=2}, [4 5]` → `["3", "{a=1, b=2}", "[4 5]"]`.
fn split_args(args: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    let mut in_string = false;
    let bytes = args.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            _ if in_string => {}
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(args[start..].trim());
    parts
}

/// Read an `strace -f -ttt` transcript: `PID SECONDS name(args) = ret ...`.
/// A call another thread interrupted (`name(args <unfinished ...>` then
/// `<... name resumed>rest`) is put back together; signals and exits are
/// left out.
pub fn parse(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut unfinished: HashMap<i32, (f64, String)> = HashMap::new();
    for line in text.lines() {
        // `-f` pads the pid field: `1234  1700000000.123456 read(...)`.
        let Some((pid, rest)) = field(line) else {
            continue;
        };
        let Some((time, body)) = field(rest) else {
            continue;
        };
        let (Ok(pid), Ok(time)) = (pid.parse::<i32>(), time.parse::<f64>()) else {
            continue;
        };
        let body = body.trim_start();
        let (time, whole) = if let Some(head) = body.strip_suffix("<unfinished ...>") {
            unfinished.insert(pid, (time, head.to_string()));
            continue;
        } else if let Some(tail) = body.strip_prefix("<... ") {
            let Some((_, tail)) = tail.split_once(" resumed>") else {
                continue;
            };
            let Some((started, head)) = unfinished.remove(&pid) else {
                continue;
            };
            (started, format!("{head}{tail}"))
        } else {
            (time, body.to_string())
        };
        if let Some(call) = parse_call(pid, time, &whole) {
            calls.push(call);
        }
    }
    calls
}

/// The next space-separated field, and what follows it.
fn field(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s.find(' ')?;
    Some((&s[..end], &s[end..]))
}

/// `name(args) = ret [...]` → a [`Call`].
fn parse_call(pid: i32, time: f64, text: &str) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None; // `--- SIGTERM ...`, `+++ exited ...`
    }
    // The last ` = ` after the closing parenthesis (strace pads short
    // calls: `listen(3, 128)    = 0`).
    let (close, equals) = text.rmatch_indices(" = ").find_map(|(at, _)| {
        let call = text[..at].trim_end();
        call.ends_with(')').then(|| (call.len() - 1, at))
    })?;
    // `5`, `0x1 (flags FD_CLOEXEC)`, `-1 EAGAIN (...)`, `? ERESTARTSYS (...)`.
    let mut result = text[equals + 3..].split_whitespace();
    let ret = result.next().and_then(|r| match r.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => r.parse().ok(),
    });
    let errno = result
        .next()
        .filter(|e| e.len() > 1 && e.starts_with('E'))
        .filter(|e| e.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .map(str::to_string);
    Some(Call {
        pid,
        time,
        name: name.to_string(),
        args: text[open + 1..close].to_string(),
        ret,
        errno,
        line: text.to_string(),
    })
}

/// What strace saw of one run, and what the server said on stderr.
pub struct Transcript {
    pub calls: Vec<Call>,
    pub text: String,
    pub stderr: String,
}

impl Transcript {
    pub fn count(&self, names: &[&str]) -> usize {
        self.calls.iter().filter(|c| c.is(names)).count()
    }

    /// Threads started: clone/clone3 calls that returned a thread id.
    pub fn threads_started(&self) -> usize {
        self.calls.iter().filter(|c| c.is(THREAD_STARTS) && c.ok()).count()
    }

    /// The calls from `listen()` on: the server's own, after the loader's
    /// and the runtime's start-up.
    pub fn after_listen(&self) -> &[Call] {
        let at = self
            .calls
            .iter()
            .position(|c| c.is(&["listen"]))
            .unwrap_or_else(|| panic!("no listen() in the transcript:\n{}", self.story()));
        &self.calls[at..]
    }

    pub fn listener_fd(&self) -> i64 {
        self.after_listen()[0].arg(0).parse().expect("listen(FD, ...)")
    }

    /// The transcript from `socket()` on, cut to a readable length.
    pub fn story(&self) -> String {
        let lines: Vec<&str> = self.text.lines().skip_while(|l| !l.contains("socket(")).collect();
        let shown = lines.len().min(80);
        let mut s = lines[..shown].join("\n");
        if lines.len() > shown {
            s += &format!("\n... ({} more lines)", lines.len() - shown);
        }
        s
    }

    /// `Ok(narrated calls checked)` when each call `--trace` narrated is in
    /// strace's transcript with the same name, fd and result ([`Call::fd`],
    /// [`Call::outcome`]), each strace call standing for one narration at
    /// most. Otherwise the narrated lines strace never showed, each with the
    /// calls strace saw that thread make just before it wrote that line.
    pub fn narration_lies(&self) -> Result<usize, String> {
        let said = narrated(&self.stderr);
        let key = |c: &Call| (c.name.clone(), c.fd(), c.outcome());
        let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
        for call in &self.calls {
            *seen.entry(key(call)).or_default() += 1;
        }
        let mut lies = Vec::new();
        for (i, (_, call)) in said.iter().enumerate() {
            match seen.get_mut(&key(call)) {
                Some(n) if *n > 0 => *n -= 1,
                _ => lies.push(i),
            }
        }
        if said.is_empty() {
            return Err(format!("nothing narrated; stderr:\n{}", self.stderr));
        }
        if lies.is_empty() {
            return Ok(said.len());
        }
        let mut report = format!(
            "{} of {} narrated calls are not in strace's transcript \
             (same name, fd and result):",
            lies.len(),
            said.len()
        );
        for &i in lies.iter().take(8) {
            let (line, call) = &said[i];
            report += &format!("\n  narrated: {line}\n{}", self.before_narration(&said, i, call));
        }
        if lies.len() > 8 {
            report += &format!("\n  ... and {} more", lies.len() - 8);
        }
        Err(report)
    }

    /// What strace saw the thread that narrated `said[i]` do just before its
    /// `write(2, ...)` of that line; if that write is not found, the calls
    /// strace saw with the same name.
    pub fn before_narration(&self, said: &[(&str, Call)], i: usize, call: &Call) -> String {
        let (line, _) = said[i];
        let quoted = strace_quoted_start(line);
        // The same 32 bytes may start several lines: take the same one of them.
        let nth = said[..i].iter().filter(|(l, _)| strace_quoted_start(l) == quoted).count();
        let is_narration = |c: &Call| c.is(&["write"]) && c.arg(0) == "2";
        let write = self
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| is_narration(c) && c.arg(1).starts_with(&quoted))
            .nth(nth);
        let shown: Vec<String> = match write {
            Some((at, write)) => {
                let mut before: Vec<String> = self.calls[..at]
                    .iter()
                    .rev()
                    .filter(|c| c.pid == write.pid && !is_narration(c))
                    .take(3)
                    .map(|c| format!("      {}", c.line))
                    .collect();
                before.reverse();
                before.insert(
                    0,
                    format!(
                        "    strace, thread {}, the calls before it wrote that line:",
                        write.pid
                    ),
                );
                before
            }
            None => {
                let mut same: Vec<String> = self
                    .calls
                    .iter()
                    .filter(|c| c.name == call.name)
                    .take(3)
                    .map(|c| format!("      {} {}", c.pid, c.line))
                    .collect();
                same.insert(0, format!("    strace's {} calls:", call.name));
                same
            }
        };
        shown.join("\n")
    }

    /// The lines for these calls, cut to a readable length.
    pub fn excerpt(&self, names: &[&str]) -> String {
        let lines: Vec<&str> =
            self.calls.iter().filter(|c| c.is(names)).map(|c| c.line.as_str()).take(40).collect();
        lines.join("\n")
    }
}
