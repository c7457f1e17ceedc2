//! Two readings of a process joined into what a person wants to see: each
//! thread with the call it sits in and what its fd is, each fd with what
//! the kernel holds for it, rates over the time between the readings.
//!
//! Pure code: it reads nothing, so the screens and the JSON can be checked
//! from recorded readings. The field names are those of `pingpong watch
//! --json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fdinfo::{self, Ring};
use crate::problems::{self, Problem};
use crate::raw::{Raw, RawFd, RawSyscall, TcpRow};

/// What `watch` shows at one refresh.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub pid: i32,
    pub command: String,
    /// The time between the two readings the rates are taken over.
    pub interval_ms: u64,
    pub cpu: Cpu,
    pub rss_bytes: u64,
    /// Open fds, and the limit on them (RLIMIT_NOFILE, soft; `null`:
    /// unlimited).
    pub fd_count: usize,
    pub fd_limit: Option<u64>,
    pub switches: Switches,
    /// Calls of the read and write families per second (`/proc/PID/io`);
    /// `null` where it cannot be read.
    pub io: Option<IoRates>,
    pub threads: Vec<Thread>,
    pub fds: Vec<Fd>,
    pub problems: Vec<Problem>,
    /// Why some threads' system calls are not shown, and how to see them.
    pub syscalls_hidden: Option<String>,
}

/// CPU used between the readings (`/proc/PID/stat` utime, stime).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Cpu {
    /// Milliseconds of CPU in user mode and in the kernel, so far.
    pub user_ms: u64,
    pub system_ms: u64,
    /// The share of one core used over the interval, in percent: 100 is
    /// one core all the time; more with several threads.
    pub percent: f64,
    pub user_percent: f64,
    pub system_percent: f64,
}

/// Context switches per second, every thread (`/proc/PID/task/TID/status`).
/// A thread that waits gives the CPU up (voluntary); a busy loop is only
/// ever preempted (involuntary).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Switches {
    pub voluntary_per_sec: f64,
    pub involuntary_per_sec: f64,
}

/// `/proc/PID/io` rates: syscr and syscw count read(2), write(2) and their
/// kin, not recvfrom, sendto, recvmsg or sendmsg.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct IoRates {
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
}

/// A thread and where it is.
#[derive(Clone, Debug, Serialize)]
pub struct Thread {
    pub tid: i32,
    pub name: String,
    /// `stat`'s state letter: R, S, D, T, Z, I.
    pub state: String,
    /// The system call it is in, by name; `running` on a CPU; `null` when
    /// `/proc/PID/task/TID/syscall` cannot be read.
    pub syscall: Option<String>,
    /// The call's fd argument, for calls whose first argument is one.
    pub fd: Option<i32>,
    /// Where it is, in words: `epoll_wait on epoll fd 3 (6 fds)`.
    pub doing: String,
    /// The kernel function it sleeps in (`wchan`), if any.
    pub wchan: Option<String>,
}

/// What an fd is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Listener,
    Tcp,
    Epoll,
    IoUring,
    Eventfd,
    Pipe,
    File,
    Other,
}

/// One open fd and what the kernel holds for it.
#[derive(Clone, Debug, Serialize)]
pub struct Fd {
    pub fd: i32,
    pub kind: Kind,
    /// Where `/proc/PID/fd/N` points.
    pub target: String,
    /// TCP: addresses, state (the kernel's word), and the queues: bytes
    /// the server has not read, bytes the peer has not acknowledged.
    pub local: Option<String>,
    pub remote: Option<String>,
    pub state: Option<String>,
    pub rx_queue: Option<u32>,
    pub tx_queue: Option<u32>,
    /// O_NONBLOCK, from fdinfo's flags.
    pub nonblocking: Option<bool>,
    /// A listener: connections waiting to be accepted, and the most the
    /// queue may hold (the backlog, from NETLINK_SOCK_DIAG).
    pub accept_queue: Option<u32>,
    pub backlog: Option<u32>,
    /// An epoll fd: its interest list.
    pub interest: Option<Vec<Interest>>,
    /// The epoll sets this fd is in, with the events each asks for.
    pub in_epoll: Vec<Membership>,
    /// An io_uring fd: its rings.
    pub ring: Option<Ring>,
    /// An eventfd: its count.
    pub eventfd_count: Option<u64>,
}

/// One entry of an interest list.
#[derive(Clone, Debug, Serialize)]
pub struct Interest {
    /// The fd number at registration (`tfd`).
    pub fd: i32,
    /// The events, in the kernel's names (EPOLLERR and EPOLLHUP are on
    /// every entry: epoll_ctl adds them).
    pub events: Vec<String>,
    pub data: u64,
    /// The fd is closed, or now names another file (its inode differs).
    pub stale: bool,
    /// What the fd is now, in words.
    pub what: String,
}

/// An epoll set an fd is in.
#[derive(Clone, Debug, Serialize)]
pub struct Membership {
    pub epoll_fd: i32,
    /// What the set asks for, without EPOLLERR|EPOLLHUP: `EPOLLIN|EPOLLOUT`.
    pub events: String,
}

/// How to see the system calls when `/proc/PID/task/TID/syscall` is closed.
pub const NEEDS_PTRACE: &str = "/proc/PID/task/TID/syscall needs ptrace rights over the \
    process (Yama's ptrace_scope lets a parent or root): start the server under watch \
    (pingpong watch -- CMD), or use sudo";

/// Join two readings, `before` and `now`, into a snapshot.
pub fn snapshot(before: &Raw, now: &Raw) -> Snapshot {
    let seconds = now.at_ms.saturating_sub(before.at_ms) as f64 / 1000.0;
    let per_sec =
        |a: u64, b: u64| if seconds > 0.0 { b.saturating_sub(a) as f64 / seconds } else { 0.0 };
    let percent = |a: u64, b: u64| per_sec(a, b) / 10.0; // ms per s → % of a core
    let fds = fds(now);
    let threads: Vec<Thread> = now.threads.iter().map(|t| thread(t, &fds)).collect();
    let hidden = now
        .threads
        .iter()
        .any(|t| matches!(t.syscall, RawSyscall::Unreadable { permission: true, .. }));
    let mut snapshot = Snapshot {
        pid: now.pid,
        command: now.command.clone(),
        interval_ms: now.at_ms.saturating_sub(before.at_ms),
        cpu: Cpu {
            user_ms: now.user_ms,
            system_ms: now.system_ms,
            percent: percent(before.user_ms + before.system_ms, now.user_ms + now.system_ms),
            user_percent: percent(before.user_ms, now.user_ms),
            system_percent: percent(before.system_ms, now.system_ms),
        },
        rss_bytes: now.rss_bytes,
        fd_count: now.fds.len(),
        fd_limit: now.fd_limit,
        switches: Switches {
            voluntary_per_sec: per_sec(before.voluntary_switches, now.voluntary_switches),
            involuntary_per_sec: per_sec(before.involuntary_switches, now.involuntary_switches),
        },
        io: match (before.io, now.io) {
            (Some(a), Some(b)) => Some(IoRates {
                reads_per_sec: per_sec(a.syscr, b.syscr),
                writes_per_sec: per_sec(a.syscw, b.syscw),
            }),
            _ => None,
        },
        threads,
        fds,
        problems: Vec::new(),
        syscalls_hidden: hidden.then(|| NEEDS_PTRACE.to_string()),
    };
    snapshot.problems = problems::find(before, now, &snapshot);
    snapshot
}

/// Every fd of a reading, each joined to its TCP row, its fdinfo and the
/// epoll sets that hold it.
pub fn fds(raw: &Raw) -> Vec<Fd> {
    let by_inode: BTreeMap<u64, &TcpRow> = raw.tcp.iter().map(|row| (row.inode, row)).collect();
    let mut fds: Vec<Fd> = raw.fds.iter().map(|fd| one_fd(fd, &by_inode, raw)).collect();
    fds.sort_by_key(|fd| fd.fd);
    // The interest lists, now that every fd is known: describe each entry,
    // mark the stale ones, and tell each member which sets hold it.
    let inodes: BTreeMap<i32, Option<u64>> =
        raw.fds.iter().map(|fd| (fd.fd, inode_of(fd))).collect();
    let mut memberships: Vec<(i32, Membership)> = Vec::new();
    let described: BTreeMap<i32, String> = fds.iter().map(|fd| (fd.fd, describe(fd))).collect();
    let raw_by_fd: BTreeMap<i32, &RawFd> = raw.fds.iter().map(|fd| (fd.fd, fd)).collect();
    for fd in fds.iter_mut().filter(|fd| fd.kind == Kind::Epoll) {
        let Some(raw_fd) = raw_by_fd.get(&fd.fd) else { continue };
        let entries = fdinfo::epoll_entries(&raw_fd.fdinfo);
        let interest: Vec<Interest> = entries
            .iter()
            .map(|entry| {
                let now = inodes.get(&entry.tfd).copied();
                let stale = match now {
                    None => true,                        // closed since
                    Some(Some(ino)) => ino != entry.ino, // reused for another file
                    Some(None) => false,                 // no inode to compare
                };
                if !stale {
                    memberships.push((
                        entry.tfd,
                        Membership { epoll_fd: fd.fd, events: fdinfo::asked_for(entry.events) },
                    ));
                }
                let what = match (&now, stale) {
                    (None, _) => "not open".to_string(),
                    (_, true) => "stale: the fd now names another file".to_string(),
                    _ => described.get(&entry.tfd).cloned().unwrap_or_default(),
                };
                Interest {
                    fd: entry.tfd,
                    events: fdinfo::event_names(entry.events),
                    data: entry.data,
                    stale,
                    what,
                }
            })
            .collect();
        // The kernel lists them in its own order (a red-black tree keyed by
        // file address); by fd they read as a person counts.
        let mut interest: Vec<Interest> = interest;
        interest.sort_by_key(|entry| entry.fd);
        fd.interest = Some(interest);
    }
    for (member, membership) in memberships {
        if let Some(fd) = fds.iter_mut().find(|fd| fd.fd == member) {
            fd.in_epoll.push(membership);
        }
    }
    fds
}

fn one_fd(raw_fd: &RawFd, by_inode: &BTreeMap<u64, &TcpRow>, raw: &Raw) -> Fd {
    let info = &raw_fd.fdinfo;
    let socket = link_inode(&raw_fd.target, "socket:");
    let row = socket.and_then(|inode| by_inode.get(&inode).copied());
    let kind = match (&raw_fd.target, row) {
        (_, Some(row)) if row.state == "LISTEN" => Kind::Listener,
        (_, Some(_)) => Kind::Tcp,
        (t, None) if t == "anon_inode:[eventpoll]" => Kind::Epoll,
        (t, None) if t == "anon_inode:[io_uring]" => Kind::IoUring,
        (t, None) if t == "anon_inode:[eventfd]" => Kind::Eventfd,
        (t, None) if t.starts_with("pipe:") => Kind::Pipe,
        (t, None) if t.starts_with('/') => Kind::File,
        _ => Kind::Other,
    };
    let listener = kind == Kind::Listener;
    Fd {
        fd: raw_fd.fd,
        kind,
        target: raw_fd.target.clone(),
        local: row.map(|r| r.local.clone()),
        remote: row.filter(|_| !listener).map(|r| r.remote.clone()),
        state: row.map(|r| r.state.clone()),
        rx_queue: row.filter(|_| !listener).map(|r| r.rx_queue),
        tx_queue: row.filter(|_| !listener).map(|r| r.tx_queue),
        nonblocking: fdinfo::nonblocking(info),
        accept_queue: row.filter(|_| listener).map(|r| r.rx_queue),
        backlog: socket.filter(|_| listener).and_then(|inode| raw.backlogs.get(&inode).copied()),
        interest: None,
        in_epoll: Vec::new(),
        ring: fdinfo::ring(info).filter(|_| kind == Kind::IoUring),
        eventfd_count: fdinfo::eventfd_count(info).filter(|_| kind == Kind::Eventfd),
    }
}

/// `socket:[603064]` → 603064.
fn link_inode(target: &str, prefix: &str) -> Option<u64> {
    target.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// The inode an fd is open on: fdinfo's `ino:` line, or the link's number.
fn inode_of(fd: &RawFd) -> Option<u64> {
    fdinfo::ino(&fd.fdinfo)
        .or_else(|| link_inode(&fd.target, "socket:"))
        .or_else(|| link_inode(&fd.target, "pipe:"))
}

/// An fd in words: `epoll fd 3 (6 fds)`, `fd 7, client 127.0.0.1:51234`.
pub fn describe(fd: &Fd) -> String {
    let n = fd.fd;
    match fd.kind {
        Kind::Listener => {
            let waiting = fd.accept_queue.map_or(String::new(), |q| format!(" ({q} waiting)"));
            format!("fd {n}, listener {}{waiting}", fd.local.as_deref().unwrap_or("?"))
        }
        Kind::Tcp => {
            let remote = fd.remote.as_deref().unwrap_or("?");
            match fd.state.as_deref() {
                Some("ESTABLISHED") | None => format!("fd {n}, client {remote}"),
                Some(state) => format!("fd {n}, client {remote} ({state})"),
            }
        }
        Kind::Epoll => {
            let size =
                fd.interest.as_ref().map_or(String::new(), |i| format!(" ({} fds)", i.len()));
            format!("epoll fd {n}{size}")
        }
        Kind::IoUring => format!("ring fd {n}"),
        Kind::Eventfd => format!("eventfd {n}"),
        Kind::Pipe => format!("fd {n}, a pipe"),
        Kind::File => format!("fd {n}, {}", fd.target),
        Kind::Other => format!("fd {n}, {}", fd.target),
    }
}

/// The calls whose first argument is an fd: the ones a server waits in.
const FD_FIRST: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "recvmmsg",
    "sendmmsg",
    "accept",
    "accept4",
    "connect",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "io_uring_enter",
    "close",
    "shutdown",
    "sendfile",
    "splice",
    "fsync",
    "ioctl",
    "fcntl",
];

fn thread(raw: &crate::raw::RawThread, fds: &[Fd]) -> Thread {
    let wchan = Some(raw.wchan.trim()).filter(|w| !w.is_empty() && *w != "0").map(str::to_string);
    let (syscall, fd, doing) = match &raw.syscall {
        RawSyscall::Running => (Some("running".to_string()), None, "running".to_string()),
        RawSyscall::Blocked => {
            (None, None, format!("blocked outside a system call{}", in_kernel(&wchan)))
        }
        RawSyscall::Unreadable { permission, .. } => {
            let why = if *permission { "system call hidden (no ptrace rights)" } else { "gone" };
            (None, None, format!("{why}{}", in_kernel(&wchan)))
        }
        RawSyscall::Call { nr, name, args } => {
            let name = name.clone().unwrap_or_else(|| format!("syscall {nr}"));
            if FD_FIRST.contains(&name.as_str()) {
                // The register holds an int: its low 32 bits are the fd.
                let fd = args[0] as u32 as i32;
                let what = match fds.iter().find(|f| f.fd == fd) {
                    Some(f) => describe(f),
                    None => format!("fd {fd}"),
                };
                (Some(name.clone()), Some(fd), format!("{name} on {what}"))
            } else {
                let doing = match name.as_str() {
                    "futex" => "futex (waits for another thread)".to_string(),
                    "clock_nanosleep" | "nanosleep" => {
                        format!("{name} (asleep on a timer, on no fd)")
                    }
                    "poll" | "ppoll" | "select" | "pselect6" => {
                        format!("{name} (its fds are behind a pointer: not readable from here)")
                    }
                    _ => name.clone(),
                };
                (Some(name), None, doing)
            }
        }
    };
    Thread {
        tid: raw.tid,
        name: raw.name.clone(),
        state: raw.state.to_string(),
        syscall,
        fd,
        doing,
        wchan,
    }
}

fn in_kernel(wchan: &Option<String>) -> String {
    wchan.as_ref().map_or(String::new(), |w| format!(", asleep in {w}"))
}

/// Whether a thread is in an epoll wait: by its system call, or, when that
/// is hidden, by the kernel function it sleeps in.
pub fn in_epoll_wait(thread: &Thread) -> bool {
    match thread.syscall.as_deref() {
        Some(call) => call.starts_with("epoll_wait") || call.starts_with("epoll_pwait"),
        None => thread
            .wchan
            .as_deref()
            .is_some_and(|w| w.contains("ep_poll") || w.contains("epoll_wait")),
    }
}
