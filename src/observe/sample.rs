//! One look at a process in `/proc` (proc(5), proc_pid_stat(5),
//! proc_pid_status(5)): what `top` and `ps` read, for any process the
//! same user owns.
//!
//! Every figure names its file, so a student can `cat` it and see the same
//! number. `/proc` is Linux's: on other systems every function here
//! returns [`io::ErrorKind::Unsupported`].

use std::io;
use std::time::{Duration, Instant};

/// What a process is and has used so far, read at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When it was read.
    pub at: Instant,
    /// The main thread's state (`stat` field 3): `R` running, `S` asleep,
    /// `D` in uninterruptible sleep, `T` stopped, `Z` a zombie.
    pub state: char,
    /// CPU time in user mode and in the kernel, every thread, dead ones
    /// included (`stat` fields 14 and 15, `utime` and `stime`; clock ticks,
    /// so 10 ms steps on most machines).
    pub user: Duration,
    pub system: Duration,
    /// Resident memory now and at its peak (`status`: `VmRSS`, `VmHWM`).
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    /// Threads (`status`: `Threads`).
    pub threads: u64,
    /// Open file descriptors (the entries of `/proc/PID/fd`).
    pub fds: u64,
    /// Context switches, summed over the threads alive now
    /// (`task/TID/status`: `voluntary_ctxt_switches`,
    /// `nonvoluntary_ctxt_switches`). A thread that waits gives the CPU
    /// up voluntarily; a busy loop is only ever preempted.
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

impl Sample {
    /// Read process `pid` now.
    pub fn take(pid: i32) -> io::Result<Sample> {
        let at = Instant::now();
        let stat = proc_file(pid, "stat")?;
        let (state, user_ticks, system_ticks) = parse_stat(&stat)
            .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: unexpected {stat:?}")))?;
        let status = proc_file(pid, "status")?;
        let kib = |key: &str| status_field(&status, key).unwrap_or(0) * 1024;
        let (mut voluntary_switches, mut involuntary_switches) = (0, 0);
        for tid in tids(pid)? {
            // A thread may end between the listing and the read: skip it.
            if let Ok(task) = proc_file(pid, &format!("task/{tid}/status")) {
                voluntary_switches += status_field(&task, "voluntary_ctxt_switches").unwrap_or(0);
                involuntary_switches +=
                    status_field(&task, "nonvoluntary_ctxt_switches").unwrap_or(0);
            }
        }
        Ok(Sample {
            at,
            state,
            user: ticks(user_ticks),
            system: ticks(system_ticks),
            rss_bytes: kib("VmRSS"),
            peak_rss_bytes: kib("VmHWM"),
            threads: status_field(&status, "Threads").unwrap_or(0),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64,
            voluntary_switches,
            involuntary_switches,
        })
    }

    /// CPU time in all, user and kernel.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }

    /// The share of one core used between `earlier` and this sample: 1.0 is
    /// one core, all the time (more than 1.0 with several threads).
    pub fn cores_since(&self, earlier: &Sample) -> f64 {
        let wall = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if wall == 0.0 {
            return 0.0;
        }
        self.cpu().saturating_sub(earlier.cpu()).as_secs_f64() / wall
    }
}

/// The soft limit on open files (`limits`: `Max open files`, what
/// `ulimit -n` sets); `None` for unlimited.
pub fn fd_limit(pid: i32) -> io::Result<Option<u64>> {
    let limits = proc_file(pid, "limits")?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/limits has no Max open files")))?;
    let soft = line["Max open files".len()..].split_whitespace().next().unwrap_or("unlimited");
    Ok(soft.parse().ok())
}

/// The signals the process ignores (`status`: `SigIgn`, a mask in hex: bit
/// `n - 1` for signal `n`, so SIGPIPE, 13, is `0x1000`). A server that
/// writes to sockets usually ignores SIGPIPE, or sends with `MSG_NOSIGNAL`.
pub fn ignored_signals(pid: i32) -> io::Result<u64> {
    let status = proc_file(pid, "status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no SigIgn")))
}

/// The ids of the process's threads (`/proc/PID/task`), the main thread's
/// (equal to `pid`) among them.
pub fn tids(pid: i32) -> io::Result<Vec<i32>> {
    unsupported_elsewhere()?;
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// Where a thread is, by `/proc/PID/task/TID/syscall` (proc_pid_syscall(5)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InSyscall {
    /// Inside system call `nr` (this architecture's number), with its six
    /// argument registers.
    Call { nr: i64, args: [u64; 6] },
    /// Blocked, but not in a system call (a page fault, say): `-1 SP PC`.
    Blocked,
    /// On a CPU, running its own code: the word `running`.
    Running,
}

/// The system call thread `tid` of `pid` is in now. Reading it needs
/// ptrace rights over the process (its parent, with Yama's
/// `ptrace_scope=1`, or root): without them the error is
/// [`io::ErrorKind::PermissionDenied`].
pub fn syscall_of(pid: i32, tid: i32) -> io::Result<InSyscall> {
    let text = proc_file(pid, &format!("task/{tid}/syscall"))?;
    parse_syscall(&text)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/task/{tid}/syscall: {text:?}")))
}

/// `/proc/PID/NAME` as text.
pub fn proc_file(pid: i32, name: &str) -> io::Result<String> {
    unsupported_elsewhere()?;
    std::fs::read_to_string(format!("/proc/{pid}/{name}"))
}

fn unsupported_elsewhere() -> io::Result<()> {
    if cfg!(target_os = "linux") {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "a process is read in /proc, which only Linux has (ps, lsof or procstat show some of it)",
    ))
}

/// `PID (COMM) STATE ... utime stime ...` → state, utime, stime. The
/// command name may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64, u64)> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// `Key:   123 kB` → 123.
fn status_field(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.split(':').next() == Some(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse_syscall(text: &str) -> Option<InSyscall> {
    let mut words = text.split_whitespace();
    match words.next()? {
        "running" => Some(InSyscall::Running),
        "-1" => Some(InSyscall::Blocked),
        nr => {
            let nr = nr.parse().ok()?;
            let mut args = [0; 6];
            for arg in &mut args {
                *arg = u64::from_str_radix(words.next()?.trim_start_matches("0x"), 16).ok()?;
            }
            Some(InSyscall::Call { nr, args })
        }
    }
}

/// Clock ticks (`sysconf(_SC_CLK_TCK)`, 100 on most Linux machines) as time.
fn ticks(n: u64) -> Duration {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    Duration::from_secs_f64(n as f64 / hz.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_from_the_last_parenthesis() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat), Some(('S', 7, 3)));
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

    #[test]
    fn syscall_lines_of_every_shape_are_read() {
        let line = "232 0x3 0x7ffd 0x400 0xffffffff 0x0 0x0 0x7ffc 0x7f12\n";
        assert_eq!(
            parse_syscall(line),
            Some(InSyscall::Call { nr: 232, args: [3, 0x7ffd, 0x400, 0xffff_ffff, 0, 0] })
        );
        assert_eq!(parse_syscall("-1 0x7ffc 0x7f12\n"), Some(InSyscall::Blocked));
        assert_eq!(parse_syscall("running\n"), Some(InSyscall::Running));
        assert_eq!(parse_syscall("232 0x3\n"), None);
    }

    #[test]
    fn status_fields_are_found_by_their_whole_key() {
        let status = "VmRSS:\t    1234 kB\nThreads:\t3\nvoluntary_ctxt_switches:\t9\n\
                      nonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(status_field(status, "VmRSS"), Some(1234));
        assert_eq!(status_field(status, "Threads"), Some(3));
        assert_eq!(status_field(status, "voluntary_ctxt_switches"), Some(9));
        assert_eq!(status_field(status, "ctxt_switches"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_sampled() {
        let me = std::process::id() as i32;
        let before = Sample::take(me).unwrap();
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(100) {}
        let after = Sample::take(me).unwrap();
        assert!(after.threads >= 1 && after.fds >= 3, "{after:?}");
        assert!(after.rss_bytes > 0 && after.peak_rss_bytes >= after.rss_bytes, "{after:?}");
        assert!(after.cores_since(&before) > 0.0, "{before:?} {after:?}");
        assert!(tids(me).unwrap().contains(&me));
        // Rust's runtime ignores SIGPIPE before main, in tests too.
        assert_ne!(ignored_signals(me).unwrap() & (1 << (libc::SIGPIPE - 1)), 0);
        assert!(fd_limit(me).unwrap().is_none_or(|n| n >= after.fds));
        // This thread is inside read(2) as it reads its own syscall file;
        // the main thread waits for the test threads, in futex(2).
        let tid = nix::unistd::gettid().as_raw();
        assert!(
            matches!(syscall_of(me, tid).unwrap(), InSyscall::Call { nr, .. } if nr == libc::SYS_read)
        );
        if tid != me {
            assert!(
                matches!(syscall_of(me, me).unwrap(), InSyscall::Call { nr, .. } if nr == libc::SYS_futex)
            );
        }
    }
}
