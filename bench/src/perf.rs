//! Counting every system call of a server with `perf stat`.
//!
//! The server's own counters see only the calls it makes through its
//! counted wrappers; the kernel's `raw_syscalls:sys_enter` tracepoint sees
//! all of them (futex and clone included), in any process, peers too.
//!
//! A uring server makes few system calls: its work is in the requests each
//! `io_uring_enter` carries. The `io_uring:io_uring_complete` tracepoint
//! fires once per completion posted, so, counted beside the system calls,
//! it says how many io_uring operations a round trip took.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long perf may take to attach, or to acknowledge a command.
const PERF_TIMEOUT: Duration = Duration::from_secs(20);

/// `perf stat -e raw_syscalls:sys_enter -p PID`: every system call of a
/// process (all its threads), counted by the kernel's tracepoint.
///
/// perf attaches with its counter disabled (`-D -1`) and takes `enable` and
/// `disable` on a control FIFO, answering `ack` on another (`--control`), so
/// the counted window starts and ends exactly when the benchmark says, however
/// long attaching to ten thousand threads takes.
pub struct SyscallCounter {
    child: Child,
    /// Also counting `io_uring:io_uring_complete`.
    uring: bool,
    ctl: fs::File,
    ack: fs::File,
    dir: PathBuf,
    finished: bool,
}

impl SyscallCounter {
    /// Attach to `pid`, counter off; with `uring`, count io_uring
    /// completions too.
    pub fn start(pid: i32, uring: bool) -> io::Result<SyscallCounter> {
        use nix::sys::stat::Mode;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir().join(format!("pingpong-bench-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let (ctl, ack) = (dir.join("perf-ctl"), dir.join("perf-ack"));
        for fifo in [&ctl, &ack] {
            let _ = fs::remove_file(fifo);
            nix::unistd::mkfifo(fifo, Mode::S_IRUSR | Mode::S_IWUSR)?;
        }
        let events =
            if uring { "raw_syscalls:sys_enter,io_uring:io_uring_complete" } else { SYS_ENTER };
        let mut child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", events, "-D", "-1"])
            .arg("--control")
            .arg(format!("fifo:{},{}", ctl.display(), ack.display()))
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // perf opens both FIFOs read-write; a non-blocking open for writing
        // fails (ENXIO) until it has, so perf failing cannot hang us here.
        let deadline = Instant::now() + PERF_TIMEOUT;
        let ctl = loop {
            let opened =
                fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&ctl);
            match opened {
                Ok(file) => break file,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("perf did not start"));
            }
            thread::sleep(Duration::from_millis(2));
        };
        let ack = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&ack)?;
        Ok(SyscallCounter { child, uring, ctl, ack, dir, finished: false })
    }

    /// Start counting; returns once perf has.
    pub fn enable(&mut self) -> io::Result<()> {
        self.command("enable")
    }

    /// Stop counting; returns once perf has.
    pub fn disable(&mut self) -> io::Result<()> {
        self.command("disable")
    }

    fn command(&mut self, what: &str) -> io::Result<()> {
        use std::io::{Read, Write};
        self.ctl.write_all(format!("{what}\n").as_bytes())?;
        let deadline = Instant::now() + PERF_TIMEOUT;
        let mut buf = [0u8; 64];
        loop {
            match self.ack.read(&mut buf) {
                Ok(n) if buf[..n].windows(3).any(|w| w == b"ack") => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!("perf did not acknowledge {what}")));
            }
            thread::sleep(Duration::from_micros(500));
        }
    }

    /// Detach (SIGINT, as Ctrl-C would) and read the counts: system calls,
    /// and io_uring completions if asked for.
    pub fn finish(mut self) -> io::Result<(u64, Option<u64>)> {
        self.finished = true;
        let pid = i32::try_from(self.child.id()).map_err(io::Error::other)?;
        kill(Pid::from_raw(pid), Signal::SIGINT)?;
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            io::Read::read_to_string(&mut err, &mut text)?;
        }
        self.child.wait()?;
        // CSV: `12345,,raw_syscalls:sys_enter,...`
        let count = |event: &str| {
            text.lines()
                .find(|l| l.contains(event))
                .and_then(|l| l.split(',').next())
                .and_then(|n| n.trim().parse::<u64>().ok())
        };
        let calls = count(SYS_ENTER)
            .ok_or_else(|| io::Error::other(format!("perf said: {}", text.trim())))?;
        Ok((calls, if self.uring { count(URING_COMPLETE) } else { None }))
    }

    /// Whether perf can count io_uring completions here (the tracepoint
    /// exists in this kernel, and perf may open it).
    pub fn counts_uring() -> bool {
        counts(URING_COMPLETE)
    }

    /// Whether `perf` can count system calls here at all (installed, and
    /// allowed to open the tracepoint): try it on a short-lived child.
    pub fn available() -> bool {
        counts(SYS_ENTER)
    }
}

const SYS_ENTER: &str = "raw_syscalls:sys_enter";
const URING_COMPLETE: &str = "io_uring:io_uring_complete";

/// `perf stat -e EVENT true` works and prints a count.
fn counts(event: &str) -> bool {
    Command::new("perf")
        .args(["stat", "-x", ",", "-e", event, "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stderr);
            out.status.success()
                && text
                    .lines()
                    .any(|l| l.split(',').next().is_some_and(|n| n.parse::<u64>().is_ok()))
        })
        .unwrap_or(false)
}

impl Drop for SyscallCounter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
