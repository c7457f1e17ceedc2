//! What looks wrong, each with the lab that reproduces it.
//!
//! A rule looks at two readings a refresh apart: what must last ("for
//! longer than a refresh") is asked of both, so a queue caught for an
//! instant on its way to being served is not a problem.
//!
//! | id | when |
//! |---|---|
//! | always-writable | a socket registered for EPOLLOUT with nothing in its tx queue, and the process using CPU with few voluntary switches |
//! | blocking-client | a blocking socket in an epoll set, or a thread of a process with an epoll set blocked in a write on a client socket |
//! | stall | clients' requests unread in both readings, and no thread in its epoll wait |
//! | accept-queue | connections waiting in a listener's accept queue in both readings |
//! | close-wait | sockets in CLOSE_WAIT in both readings |
//! | fd-limit | open fds above 90% of RLIMIT_NOFILE, with connections left in the accept queue in both readings |
//! | stale-registration | an epoll entry for an fd no longer open, or reused |

use std::collections::BTreeSet;

use serde::Serialize;

use crate::model::{self, Fd, Kind, Snapshot};
use crate::raw::Raw;

/// One thing that looks wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    /// A stable id: `always-writable`, `stall`, ...
    pub id: &'static str,
    /// What was seen, with the fds and figures.
    pub detail: String,
    /// The `pingpong lab` that shows this bug, if one does.
    pub lab: Option<&'static str>,
    /// Where else to see it: `make demo-stall`, a mode to run.
    pub see: Option<&'static str>,
}

/// Below this many voluntary switches per second of CPU, a process that
/// uses CPU is spinning: a loop that waits even a few hundred times a
/// second gives the CPU up each time.
const SPIN_SWITCHES_PER_CPU_SECOND: f64 = 100.0;

/// Share of RLIMIT_NOFILE above which a server is about to fail accept(2)
/// with EMFILE.
const FD_LIMIT_SHARE: f64 = 0.9;

/// Every problem `now` shows (with `before` for what must last). `snapshot`
/// is `now` joined, rates over the interval included.
pub fn find(before: &Raw, now: &Raw, snapshot: &Snapshot) -> Vec<Problem> {
    let earlier = model::fds(before);
    let fds = &snapshot.fds;
    let mut problems = Vec::new();
    always_writable(snapshot, &earlier, &mut problems);
    blocking_client(snapshot, &mut problems);
    stall(snapshot, &earlier, &mut problems);
    accept_queue(fds, &earlier, &mut problems);
    close_wait(fds, &earlier, &mut problems);
    fd_limit(now, fds, &earlier, &mut problems);
    stale(fds, &mut problems);
    problems
}

fn always_writable(snapshot: &Snapshot, earlier: &[Fd], problems: &mut Vec<Problem>) {
    let idle_out = |fds: &[Fd]| -> BTreeSet<(i32, String)> {
        fds.iter()
            .filter(|fd| fd.kind == Kind::Tcp && fd.tx_queue == Some(0))
            .filter(|fd| fd.in_epoll.iter().any(|m| m.events.contains("EPOLLOUT")))
            .map(|fd| (fd.fd, fd.target.clone()))
            .collect()
    };
    let lasting: Vec<i32> =
        idle_out(&snapshot.fds).intersection(&idle_out(earlier)).map(|(fd, _)| *fd).collect();
    let cpu = snapshot.cpu.percent;
    let voluntary = snapshot.switches.voluntary_per_sec;
    let spinning = cpu >= 10.0 && voluntary < SPIN_SWITCHES_PER_CPU_SECOND * cpu / 100.0;
    if lasting.is_empty() || !spinning {
        return;
    }
    problems.push(Problem {
        id: "always-writable",
        detail: format!(
            "{} registered for EPOLLOUT with nothing to send (tx queue 0), and the process \
             uses {cpu:.0}% of a core with {voluntary:.0} voluntary switches/s: each wait \
             returns at once, for nothing",
            fd_list(&lasting)
        ),
        lab: Some("always-writable"),
        see: None,
    });
}

fn blocking_client(snapshot: &Snapshot, problems: &mut Vec<Problem>) {
    let blocking: Vec<i32> = snapshot
        .fds
        .iter()
        .filter(|fd| {
            fd.kind == Kind::Tcp && fd.nonblocking == Some(false) && !fd.in_epoll.is_empty()
        })
        .map(|fd| fd.fd)
        .collect();
    if !blocking.is_empty() {
        problems.push(Problem {
            id: "blocking-client",
            detail: format!(
                "{} in an epoll set without O_NONBLOCK: a read or write on it can put the \
                 whole event loop to sleep",
                fd_list(&blocking)
            ),
            lab: Some("blocking-client"),
            see: None,
        });
    }
    let has_epoll = snapshot.fds.iter().any(|fd| fd.kind == Kind::Epoll);
    const WRITES: &[&str] = &["write", "writev", "sendto", "sendmsg", "sendmmsg", "pwrite64"];
    for thread in &snapshot.threads {
        let writing = thread.syscall.as_deref().is_some_and(|call| WRITES.contains(&call));
        let on_client = thread
            .fd
            .and_then(|n| snapshot.fds.iter().find(|fd| fd.fd == n))
            .is_some_and(|fd| fd.kind == Kind::Tcp);
        if has_epoll && writing && on_client && thread.state != "R" {
            problems.push(Problem {
                id: "blocking-client",
                detail: format!(
                    "thread {} of an event-loop server is asleep in {}: the client does not \
                     read, and nobody else is served meanwhile",
                    thread.tid, thread.doing
                ),
                lab: Some("blocking-client"),
                see: None,
            });
        }
    }
}

fn stall(snapshot: &Snapshot, earlier: &[Fd], problems: &mut Vec<Problem>) {
    let unread = |fds: &[Fd]| -> Vec<(i32, u32)> {
        fds.iter()
            .filter(|fd| fd.kind == Kind::Tcp && !fd.in_epoll.is_empty())
            .filter_map(|fd| Some((fd.fd, fd.rx_queue.filter(|q| *q > 0)?)))
            .collect()
    };
    let now = unread(&snapshot.fds);
    let loops = snapshot.fds.iter().filter(|fd| fd.kind == Kind::Epoll).count();
    let waiting = snapshot.threads.iter().any(model::in_epoll_wait);
    if loops == 0 || waiting || now.is_empty() || unread(earlier).is_empty() {
        return;
    }
    let bytes: u32 = now.iter().map(|(_, q)| q).sum();
    let fds: Vec<i32> = now.iter().map(|(fd, _)| *fd).collect();
    let busy: Vec<String> =
        snapshot.threads.iter().map(|t| format!("thread {} {}", t.tid, t.doing)).take(2).collect();
    problems.push(Problem {
        id: "stall",
        detail: format!(
            "no thread is in its epoll wait ({}), while {} {} {bytes} unread bytes: requests \
             nobody reads until the handler returns",
            busy.join("; "),
            fd_list(&fds),
            if fds.len() == 1 { "holds" } else { "hold" },
        ),
        lab: None,
        see: Some("the stall: make demo-stall"),
    });
}

fn accept_queue(fds: &[Fd], earlier: &[Fd], problems: &mut Vec<Problem>) {
    for fd in fds.iter().filter(|fd| fd.kind == Kind::Listener) {
        let waiting = fd.accept_queue.unwrap_or(0);
        let before = earlier
            .iter()
            .find(|e| e.target == fd.target)
            .and_then(|e| e.accept_queue)
            .unwrap_or(0);
        if waiting > 0 && before > 0 {
            let backlog = fd.backlog.map_or(String::new(), |b| format!(" (backlog {b})"));
            problems.push(Problem {
                id: "accept-queue",
                detail: format!(
                    "{waiting} connections wait in the accept queue of listener fd {} {}{backlog} \
                     for longer than a refresh: nobody calls accept",
                    fd.fd,
                    fd.local.as_deref().unwrap_or("?"),
                ),
                lab: None,
                see: Some("the blocking server: pingpong serve --mode blocking"),
            });
        }
    }
}

fn close_wait(fds: &[Fd], earlier: &[Fd], problems: &mut Vec<Problem>) {
    let waiting = |fds: &[Fd]| -> BTreeSet<(i32, String)> {
        fds.iter()
            .filter(|fd| fd.state.as_deref() == Some("CLOSE_WAIT"))
            .map(|fd| (fd.fd, fd.target.clone()))
            .collect()
    };
    let lasting: Vec<i32> =
        waiting(fds).intersection(&waiting(earlier)).map(|(fd, _)| *fd).collect();
    if !lasting.is_empty() {
        problems.push(Problem {
            id: "close-wait",
            detail: format!(
                "{} in CLOSE_WAIT for longer than a refresh: the peer left, the server never \
                 closed",
                fd_list(&lasting)
            ),
            lab: None,
            see: None,
        });
    }
}

fn fd_limit(now: &Raw, fds: &[Fd], earlier: &[Fd], problems: &mut Vec<Problem>) {
    let Some(limit) = now.fd_limit else { return };
    let open = now.fds.len() as u64;
    if limit == 0 || open as f64 <= FD_LIMIT_SHARE * limit as f64 {
        return;
    }
    // Near the limit is harmless while every connection is taken: a server
    // with a spare fd refuses the extra ones and its queue stays empty.
    // Connections left waiting in the accept queue, a refresh apart, are
    // the ones accept(2) fails on with EMFILE, again and again.
    let stuck: u32 = fds
        .iter()
        .filter(|fd| fd.kind == Kind::Listener && fd.accept_queue.unwrap_or(0) > 0)
        .filter(|fd| {
            earlier.iter().any(|e| e.target == fd.target && e.accept_queue.unwrap_or(0) > 0)
        })
        .filter_map(|fd| fd.accept_queue)
        .sum();
    if stuck == 0 {
        return;
    }
    problems.push(Problem {
        id: "fd-limit",
        detail: format!(
            "{open} fds open of {limit} allowed (RLIMIT_NOFILE), and {stuck} connections wait \
             to be accepted: accept fails with EMFILE while they stay queued"
        ),
        lab: Some("no-spare-fd"),
        see: None,
    });
}

fn stale(fds: &[Fd], problems: &mut Vec<Problem>) {
    for epoll in fds {
        let stale: Vec<i32> = epoll
            .interest
            .iter()
            .flatten()
            .filter(|entry| entry.stale)
            .map(|entry| entry.fd)
            .collect();
        if !stale.is_empty() {
            problems.push(Problem {
                id: "stale-registration",
                detail: format!(
                    "epoll fd {} holds entries for {} no longer open, or now another file: \
                     unregister before close",
                    epoll.fd,
                    fd_list(&stale)
                ),
                lab: None,
                see: None,
            });
        }
    }
}

/// `fd 7`, `fds 7, 8, 9`.
fn fd_list(fds: &[i32]) -> String {
    let list: Vec<String> = fds.iter().map(i32::to_string).collect();
    match fds.len() {
        1 => format!("fd {}", list[0]),
        _ => format!("fds {}", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot;
    use crate::raw::{RawFd, RawSyscall, RawThread, TcpRow};

    /// An event-loop server: listener fd 3, epoll fd 4 holding it and
    /// client fd 8; the loop's thread as given.
    fn server(at_ms: u64, syscall: RawSyscall, client_rx: u32, client_state: &str) -> Raw {
        let socket = |fd: i32, inode: u64| RawFd {
            fd,
            target: format!("socket:[{inode}]"),
            fdinfo: format!("pos:\t0\nflags:\t02004002\nmnt_id:\t10\nino:\t{inode}\n"),
        };
        let row = |inode: u64, state: &str, rx: u32| TcpRow {
            local: "127.0.0.1:8000".into(),
            remote: if state == "LISTEN" { "0.0.0.0:0" } else { "127.0.0.1:5000" }.into(),
            state: state.into(),
            rx_queue: rx,
            tx_queue: 0,
            inode,
        };
        Raw {
            pid: 10,
            command: "server".into(),
            at_ms,
            fd_limit: Some(1024),
            threads: vec![RawThread {
                tid: 10,
                name: "server".into(),
                state: 'S',
                wchan: "do_epoll_wait".into(),
                syscall,
            }],
            fds: vec![
                socket(3, 100),
                RawFd {
                    fd: 4,
                    target: "anon_inode:[eventpoll]".into(),
                    fdinfo: "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1039\n\
                             tfd:        3 events:       19 data:                3  pos:0 ino:64 sdev:9\n\
                             tfd:        8 events:       19 data:                8  pos:0 ino:c8 sdev:9\n"
                        .into(),
                },
                socket(8, 200),
            ],
            tcp: vec![row(100, "LISTEN", 0), row(200, client_state, client_rx)],
            ..Raw::default()
        }
    }

    fn ids(before: &Raw, now: &Raw) -> Vec<&'static str> {
        snapshot(before, now).problems.iter().map(|p| p.id).collect()
    }

    const HANDLER: RawSyscall = RawSyscall::Call { nr: 230, name: None, args: [0; 6] };

    #[test]
    fn an_entry_for_a_closed_fd_is_stale() {
        // An entry 9 (inode 0x12c) with no fd 9 behind it.
        let mut now = server(500, RawSyscall::Running, 0, "ESTABLISHED");
        now.fds[1].fdinfo.push_str(
            "tfd:        9 events:       19 data:                9  pos:0 ino:12c sdev:9\n",
        );
        let snap = snapshot(&server(0, RawSyscall::Running, 0, "ESTABLISHED"), &now);
        let interest = snap.fds.iter().find_map(|fd| fd.interest.clone()).unwrap();
        assert_eq!(
            interest.iter().map(|e| (e.fd, e.stale)).collect::<Vec<_>>(),
            [(3, false), (8, false), (9, true)]
        );
        assert_eq!(snap.problems.iter().map(|p| p.id).collect::<Vec<_>>(), ["stale-registration"]);
    }

    #[test]
    fn an_entry_whose_fd_now_names_another_file_is_stale() {
        let mut now = server(500, RawSyscall::Running, 0, "ESTABLISHED");
        now.fds[2].fdinfo = now.fds[2].fdinfo.replace("ino:\t200", "ino:\t201");
        let snap = snapshot(&now, &now);
        let entry = snap.fds.iter().find_map(|fd| fd.interest.clone()).unwrap()[1].clone();
        assert!(entry.stale && entry.what.contains("another file"), "{entry:?}");
    }

    #[test]
    fn what_must_last_is_asked_of_both_readings() {
        let calm = server(0, HANDLER, 0, "ESTABLISHED");
        let unread = server(500, HANDLER, 40, "ESTABLISHED");
        assert_eq!(ids(&calm, &unread), Vec::<&str>::new(), "unread once: not yet a stall");
        assert_eq!(ids(&unread, &unread), ["stall"]);
        // In its wait, the loop is not stalled, whatever is unread.
        let mut waiting = unread.clone();
        waiting.threads[0].syscall =
            RawSyscall::Call { nr: 232, name: Some("epoll_wait".into()), args: [4, 0, 0, 0, 0, 0] };
        assert_eq!(ids(&unread, &waiting), Vec::<&str>::new());
        // Hidden calls: wchan says it is in the wait.
        waiting.threads[0].syscall =
            RawSyscall::Unreadable { why: "EACCES".into(), permission: true };
        assert_eq!(ids(&unread, &waiting), Vec::<&str>::new());
        let closing = server(500, HANDLER, 0, "CLOSE_WAIT");
        assert_eq!(ids(&calm, &closing), Vec::<&str>::new());
        assert_eq!(ids(&closing, &closing), ["close-wait"]);
    }
}
