//! A live process read from `/proc` (Linux): the [`Source`] behind the
//! view. Each figure comes from the file named beside it, through
//! `pingpong::observe` where that layer reads it already.

use std::io;
use std::time::Instant;

use pingpong::observe::sample::{self, InSyscall};
use pingpong::observe::Sample;

use crate::raw::{IoCounts, Raw, RawFd, RawSyscall, RawThread, Source, TcpRow};
use crate::sock_diag;

/// Reads process `pid` each time it is asked.
pub struct ProcSource {
    pid: i32,
    started: Instant,
    /// Act as if `/proc/PID/task/TID/syscall` were closed to us, as it is
    /// to a user without ptrace rights: how the tests see that path on a
    /// machine where it is open.
    pub hide_syscalls: bool,
}

impl ProcSource {
    pub fn new(pid: i32) -> ProcSource {
        ProcSource { pid, started: Instant::now(), hide_syscalls: false }
    }
}

impl Source for ProcSource {
    fn read(&mut self) -> io::Result<Raw> {
        let pid = self.pid;
        let process = procfs::process::Process::new(pid).map_err(gone(pid))?;
        // /proc/PID/stat, status, task/*/status: CPU, memory, switches.
        let sample = Sample::take(pid).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => io::Error::new(e.kind(), format!("no process {pid}")),
            _ => e,
        })?;
        let at_ms = sample.at.saturating_duration_since(self.started).as_millis() as u64;
        let command = process.cmdline().map(|words| words.join(" ")).unwrap_or_default();
        let command = if command.is_empty() {
            sample::proc_file(pid, "comm").unwrap_or_default().trim().to_string()
        } else {
            command
        };
        let io = process.io().ok().map(|io| IoCounts {
            syscr: io.syscr,
            syscw: io.syscw,
            rchar: io.rchar,
            wchar: io.wchar,
        });
        let threads = sample::tids(pid)?.into_iter().filter_map(|tid| self.thread(tid)).collect();
        Ok(Raw {
            pid,
            command,
            at_ms,
            user_ms: sample.user.as_millis() as u64,
            system_ms: sample.system.as_millis() as u64,
            rss_bytes: sample.rss_bytes,
            fd_limit: sample::fd_limit(pid).unwrap_or(None),
            voluntary_switches: sample.voluntary_switches,
            involuntary_switches: sample.involuntary_switches,
            io,
            threads,
            fds: fds(pid)?,
            tcp: tcp(&process),
            // Without netlink the backlog is unknown; the rest stands.
            backlogs: sock_diag::listener_backlogs().unwrap_or_default(),
        })
    }
}

impl ProcSource {
    /// `/proc/PID/task/TID/`: comm, stat, wchan, syscall. `None` if the
    /// thread ended while we looked.
    fn thread(&self, tid: i32) -> Option<RawThread> {
        let pid = self.pid;
        let file = |name: &str| sample::proc_file(pid, &format!("task/{tid}/{name}"));
        let stat = file("stat").ok()?;
        // The state is the first field after the command's closing ')'.
        let state = stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()?;
        let syscall = if self.hide_syscalls {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "hidden (--hide-syscalls)"))
        } else {
            sample::syscall_of(pid, tid)
        };
        let syscall = match syscall {
            Ok(InSyscall::Running) => RawSyscall::Running,
            Ok(InSyscall::Blocked) => RawSyscall::Blocked,
            Ok(InSyscall::Call { nr, args }) => {
                RawSyscall::Call { nr, name: syscall_name(nr), args }
            }
            Err(e) => RawSyscall::Unreadable {
                permission: e.kind() == io::ErrorKind::PermissionDenied,
                why: e.to_string(),
            },
        };
        Some(RawThread {
            tid,
            name: file("comm").unwrap_or_default().trim().to_string(),
            state,
            wchan: file("wchan").unwrap_or_default().trim().to_string(),
            syscall,
        })
    }
}

/// This architecture's name for system call `nr` (the syscalls crate's
/// table): `epoll_wait` is 232 on x86_64, and absent on aarch64, where
/// glibc's epoll_wait() is epoll_pwait.
fn syscall_name(nr: i64) -> Option<String> {
    let nr = usize::try_from(nr).ok()?;
    Some(syscalls::Sysno::new(nr)?.name().to_string())
}

/// `/proc/PID/fd/N` links and `/proc/PID/fdinfo/N`. An fd closed between
/// the listing and the read is skipped.
fn fds(pid: i32) -> io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Some(fd) = entry.ok().and_then(|e| e.file_name().to_str()?.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else { continue };
        fds.push(RawFd {
            fd,
            target: target.to_string_lossy().into_owned(),
            fdinfo: sample::proc_file(pid, &format!("fdinfo/{fd}")).unwrap_or_default(),
        });
    }
    fds.sort_by_key(|fd| fd.fd);
    Ok(fds)
}

/// `/proc/PID/net/tcp` and `tcp6`: every TCP socket of the process's
/// network namespace; the model keeps those whose inode is one of its fds.
fn tcp(process: &procfs::process::Process) -> Vec<TcpRow> {
    use procfs::net::TcpState::*;
    let mut rows = Vec::new();
    for table in [process.tcp(), process.tcp6()].into_iter().flatten() {
        for entry in table {
            // The kernel's names (include/net/tcp_states.h), as ss prints
            // them but for the underscores.
            let state = match entry.state {
                Established => "ESTABLISHED",
                SynSent => "SYN_SENT",
                SynRecv => "SYN_RECV",
                FinWait1 => "FIN_WAIT1",
                FinWait2 => "FIN_WAIT2",
                TimeWait => "TIME_WAIT",
                Close => "CLOSE",
                CloseWait => "CLOSE_WAIT",
                LastAck => "LAST_ACK",
                Listen => "LISTEN",
                Closing => "CLOSING",
                NewSynRecv => "NEW_SYN_RECV",
            };
            rows.push(TcpRow {
                local: entry.local_address.to_string(),
                remote: entry.remote_address.to_string(),
                state: state.to_string(),
                rx_queue: entry.rx_queue,
                tx_queue: entry.tx_queue,
                inode: entry.inode,
            });
        }
    }
    // Time-wait rows have no inode (0): they belong to no fd.
    rows.retain(|row| row.inode != 0);
    rows
}

fn gone(pid: i32) -> impl Fn(procfs::ProcError) -> io::Error {
    move |e| io::Error::new(io::ErrorKind::NotFound, format!("no process {pid} ({e})"))
}
