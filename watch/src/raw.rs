//! What the kernel says about a process at one moment, as it said it: the
//! input of everything `watch` shows.
//!
//! The readers (`proc_read`, Linux only) fill a [`Raw`] from `/proc` and
//! netlink; the model, the problem rules and the screens only ever see a
//! `Raw`. So a test can hand them a recorded one (a JSON file of this
//! shape) and check, byte for byte, what a user would see, on any machine,
//! with no server running: the shape bandwhich gives its OS inputs.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

/// One reading of a process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Raw {
    pub pid: i32,
    /// `/proc/PID/cmdline`, its NUL-separated words joined by spaces.
    pub command: String,
    /// When it was read, in milliseconds since the watcher started.
    pub at_ms: u64,
    /// CPU time so far, every thread (`/proc/PID/stat` utime and stime).
    pub user_ms: u64,
    pub system_ms: u64,
    /// Resident memory (`/proc/PID/status` VmRSS).
    pub rss_bytes: u64,
    /// RLIMIT_NOFILE's soft limit (`/proc/PID/limits`, Max open files);
    /// `None`: unlimited.
    pub fd_limit: Option<u64>,
    /// Context switches so far, summed over the threads
    /// (`/proc/PID/task/TID/status`).
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// `/proc/PID/io`; `None` where it cannot be read (it needs the same
    /// rights as ptrace, like `syscall`).
    pub io: Option<IoCounts>,
    pub threads: Vec<RawThread>,
    pub fds: Vec<RawFd>,
    /// The TCP sockets of the process's network namespace
    /// (`/proc/PID/net/tcp` and `tcp6`), joined to the fds by inode.
    pub tcp: Vec<TcpRow>,
    /// A listener's backlog (the limit of its accept queue) by socket
    /// inode, from NETLINK_SOCK_DIAG: `/proc/net/tcp` does not have it.
    pub backlogs: BTreeMap<u64, u32>,
}

/// `/proc/PID/io`: calls of the read and write families, and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IoCounts {
    pub syscr: u64,
    pub syscw: u64,
    pub rchar: u64,
    pub wchar: u64,
}

/// One thread (`/proc/PID/task/TID/`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawThread {
    pub tid: i32,
    /// `comm`: `pingpong`, `worker-0`, `python3`.
    pub name: String,
    /// `stat` field 3: R running, S asleep, D uninterruptible, T stopped,
    /// Z zombie, I idle.
    pub state: char,
    /// `wchan`: the kernel function it sleeps in (`do_epoll_wait`,
    /// `futex_do_wait`), empty or `0` when running. Readable without
    /// ptrace rights, so it says something when `syscall` cannot.
    pub wchan: String,
    pub syscall: RawSyscall,
}

/// `/proc/PID/task/TID/syscall`, with the call's name decoded for the
/// architecture the reading was made on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawSyscall {
    /// Inside a system call: its number, name and six argument registers.
    Call { nr: i64, name: Option<String>, args: [u64; 6] },
    /// Blocked outside a system call (`-1 SP PC`).
    Blocked,
    /// On a CPU (`running`).
    Running,
    /// Could not be read: the reason (no ptrace rights, the thread ended).
    Unreadable { why: String, permission: bool },
}

/// One open fd: where `/proc/PID/fd/N` points, and `/proc/PID/fdinfo/N`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawFd {
    pub fd: i32,
    /// The link: `socket:[603064]`, `anon_inode:[eventpoll]`, a path.
    pub target: String,
    /// The fdinfo text, whole (empty if it could not be read).
    pub fdinfo: String,
}

/// A row of `/proc/PID/net/tcp{,6}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpRow {
    pub local: String,
    pub remote: String,
    /// The kernel's name of the state: `ESTABLISHED`, `LISTEN`, `CLOSE_WAIT`.
    pub state: String,
    /// Bytes received and not yet read by the process; for a listener, the
    /// connections waiting in its accept queue.
    pub rx_queue: u32,
    /// Bytes sent and not yet acknowledged by the peer.
    pub tx_queue: u32,
    pub inode: u64,
}

/// Where readings come from: `/proc` for a live process, a recording in
/// tests.
pub trait Source {
    /// Read the process now.
    fn read(&mut self) -> io::Result<Raw>;
}

/// Readings played back in order (the last one again once they run out).
pub struct Recorded {
    readings: Vec<Raw>,
    next: usize,
}

impl Recorded {
    pub fn new(readings: Vec<Raw>) -> Recorded {
        Recorded { readings, next: 0 }
    }
}

impl Source for Recorded {
    fn read(&mut self) -> io::Result<Raw> {
        let reading = self
            .readings
            .get(self.next)
            .or(self.readings.last())
            .cloned()
            .ok_or_else(|| io::Error::other("no recorded readings"))?;
        self.next += 1;
        Ok(reading)
    }
}
