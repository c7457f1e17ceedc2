//! What the tests of `pingpong watch` share: pingpong's own servers started
//! with clients on them, and `pingpong watch --json` run on them.
#![allow(dead_code)]

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pingpong::observe::{wire, Launched, Sample};
use serde_json::Value;

/// How long anything that should happen may take on a slow, busy machine.
/// Waits end as soon as it happens: a wide margin costs nothing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The `pingpong-watch` under test.
pub const WATCH: &str = env!("CARGO_BIN_EXE_pingpong-watch");

/// The `pingpong` binary beside it (`cargo test --workspace` builds both;
/// built here with cargo if it is missing).
pub fn pingpong() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = PathBuf::from(WATCH).parent().map(PathBuf::from).unwrap_or_default();
        let bin = dir.join("pingpong");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "pingpong", "--bin", "pingpong"])
                .status()
                .expect("run cargo build -p pingpong");
            assert!(status.success(), "cargo build -p pingpong failed");
        }
        bin
    })
}

/// A pingpong server, started by the test (so the test process is its
/// parent), with its address and pid.
pub struct Server {
    pub launched: Launched,
    pub addr: SocketAddr,
    pub pid: i32,
}

impl Server {
    /// `pingpong serve --port 0 ARGS`, under `ulimit -n LIMIT` if given.
    pub fn try_start(args: &[&str], fd_limit: Option<u32>) -> io::Result<Server> {
        let limit = fd_limit.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("{limit}exec \"$0\" \"$@\"")])
            .arg(pingpong())
            .args(["serve", "--port", "0"])
            .args(args);
        let mut launched = Launched::spawn(&mut command)?;
        let banner = launched.await_banner(PATIENCE)?;
        Ok(Server { launched, addr: banner.addr, pid: banner.pid })
    }

    pub fn start(args: &[&str]) -> Server {
        Server::try_start(args, None).unwrap_or_else(|e| panic!("serve {args:?}: {e}"))
    }

    /// A client connection.
    pub fn connect(&self) -> TcpStream {
        wire::connect(self.addr, PATIENCE).expect("connect")
    }

    /// `n` clients, each answered once (so each is accepted and registered).
    pub fn pinged_clients(&self, n: usize) -> Vec<TcpStream> {
        (0..n)
            .map(|_| {
                let client = self.connect();
                let answer = wire::ask(&client, b"ping\n", PATIENCE).expect("ask");
                assert_eq!(answer.as_deref(), Some("pong"));
                client
            })
            .collect()
    }

    /// Wait until the server holds at least `n` fds (clients accepted).
    pub fn await_fds(&self, n: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let fds = Sample::take(self.pid).map(|s| s.fds).unwrap_or(0);
            if fds >= n {
                return;
            }
            assert!(Instant::now() < deadline, "server has {fds} fds, not {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `pingpong watch --json --pid PID --interval MS EXTRA`.
    pub fn watch(&self, interval_ms: u64, extra: &[&str]) -> Value {
        watch_json(&["--pid", &self.pid.to_string(), "--interval", &interval_ms.to_string()], extra)
    }
}

/// `pingpong watch --json ARGS EXTRA`, parsed.
pub fn watch_json(args: &[&str], extra: &[&str]) -> Value {
    let output =
        Command::new(WATCH).arg("--json").args(args).args(extra).output().expect("run watch");
    let _ = io::stderr().write_all(&output.stderr);
    assert!(output.status.success(), "watch {args:?} {extra:?} failed");
    serde_json::from_slice(&output.stdout).expect("watch printed JSON")
}

/// The fds of kind `kind`.
pub fn fds_of<'a>(snapshot: &'a Value, kind: &str) -> Vec<&'a Value> {
    array(&snapshot["fds"]).iter().filter(|fd| fd["kind"] == kind).collect()
}

pub fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The ids of the problems shown.
pub fn problems(snapshot: &Value) -> Vec<String> {
    array(&snapshot["problems"]).iter().filter_map(|p| p["id"].as_str().map(String::from)).collect()
}

/// The threads sitting in one of `calls`.
pub fn threads_in<'a>(snapshot: &'a Value, calls: &[&str]) -> Vec<&'a Value> {
    array(&snapshot["threads"])
        .iter()
        .filter(|t| t["syscall"].as_str().is_some_and(|s| calls.contains(&s)))
        .collect()
}

/// glibc's waits, by the name each architecture has for them.
pub const EPOLL_WAITS: &[&str] = &["epoll_wait", "epoll_pwait", "epoll_pwait2"];
pub const READS: &[&str] = &["read", "recvfrom", "recvmsg", "readv"];
