//! Helpers for check's tests: find the binaries, run `pingpong-check` with
//! `--format json` and read its report, run several checks at once (but
//! not too many: the machine is shared, and the cases measure time).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The grader under test.
pub const CHECK: &str = env!("CARGO_BIN_EXE_pingpong-check");

/// Checks run at once by one test.
const AT_ONCE: usize = 3;

/// `pingpong`, beside `pingpong-check` (`cargo test --workspace` builds
/// both); built with `cargo build -p pingpong` if it is not there.
pub fn pingpong() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = PathBuf::from(CHECK).with_file_name("pingpong");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "pingpong"])
                .status()
                .expect("run cargo build -p pingpong");
            assert!(status.success(), "cargo build -p pingpong failed");
        }
        assert!(bin.exists(), "{} is missing", bin.display());
        bin.display().to_string()
    })
}

/// What one run of check said.
#[derive(Debug)]
pub struct Checked {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Checked {
    /// The JSON report.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("{:?}: not JSON ({e}): {}{}", self.args, self.stdout, self.stderr)
        })
    }

    /// Each case's id and status.
    pub fn statuses(&self) -> Vec<(String, String)> {
        let json = self.json();
        let cases = json["cases"].as_array().cloned().unwrap_or_default();
        cases
            .iter()
            .map(|c| {
                (c["id"].as_str().unwrap_or("?").into(), c["status"].as_str().unwrap_or("?").into())
            })
            .collect()
    }

    /// The status of case `id`, failing the test if it did not run.
    pub fn status(&self, id: &str) -> String {
        let found = self.statuses().into_iter().find(|(case, _)| case == id);
        found
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("{:?}: no case {id}: {}", self.args, self.stdout))
    }

    /// The report's case `id`, for messages.
    pub fn case(&self, id: &str) -> Value {
        let json = self.json();
        let cases = json["cases"].as_array().cloned().unwrap_or_default();
        cases.into_iter().find(|c| c["id"] == id).unwrap_or(Value::Null)
    }
}

/// Run `pingpong-check ARGS` (killed after two minutes: a check that hangs
/// fails the test rather than the whole run).
pub fn check(args: &[String]) -> Checked {
    let mut child = Command::new(CHECK)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pingpong-check");
    let (mut out, mut err) =
        (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let stdout = thread::spawn(move || std::io::read_to_string(&mut out).unwrap_or_default());
    let stderr = thread::spawn(move || std::io::read_to_string(&mut err).unwrap_or_default());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running after 2 minutes");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Checked {
        args: args.to_vec(),
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `--format json [--only ONLY] -- CMD...`.
pub fn check_command(only: Option<&str>, command: &[&str]) -> Checked {
    let mut args: Vec<String> = vec!["--format".into(), "json".into()];
    if let Some(only) = only {
        args.extend(["--only".into(), only.into()]);
    }
    args.push("--".into());
    args.extend(command.iter().map(|s| s.to_string()));
    check(&args)
}

/// `pingpong serve --port {port} ARGS...` as a command for check.
pub fn serve(args: &[&str]) -> Vec<String> {
    let mut command =
        vec![pingpong().to_string(), "serve".into(), "--port".into(), "{port}".into()];
    command.extend(args.iter().map(|s| s.to_string()));
    command
}

/// Run `jobs` with at most [`AT_ONCE`] at a time; their results in order.
pub fn at_once<T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    let mut results = Vec::new();
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let batch: Vec<_> = jobs.by_ref().take(AT_ONCE).collect();
        thread::scope(|scope| {
            let running: Vec<_> = batch.into_iter().map(|job| scope.spawn(job)).collect();
            for handle in running {
                results.push(handle.join().expect("a check job panicked"));
            }
        });
    }
    results
}

/// Whether `pingpong serve --mode uring` starts here (io_uring may be
/// missing or forbidden, in a container say). Skipped with the reason,
/// unless PINGPONG_REQUIRE_URING is set, as in the crate's own tests.
pub fn uring_usable(test: &str) -> bool {
    let out = Command::new(pingpong())
        .args(["serve", "--mode", "uring", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let mut out = child.stdout.take().expect("piped");
            let mut first = [0u8; 13];
            let read = std::io::Read::read_exact(&mut out, &mut first);
            let _ = child.kill();
            let output = child.wait_with_output()?;
            Ok((
                read.is_ok() && &first == b"listening on ",
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ))
        });
    match out {
        Ok((true, _)) => true,
        Ok((false, why)) if std::env::var_os("PINGPONG_REQUIRE_URING").is_some() => {
            panic!("{test}: io_uring is not usable here ({why}), and PINGPONG_REQUIRE_URING is set")
        }
        Ok((false, why)) => {
            eprintln!("skipped {test}: io_uring is not usable here: {}", why.trim());
            false
        }
        Err(e) => panic!("{test}: could not start pingpong: {e}"),
    }
}

/// Whether python3 runs here; skipped with the reason if not.
pub fn python_usable(test: &str) -> bool {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!("skipped {test}: python3 is not installed");
            false
        }
    }
}
