//! A snapshot as rows of words: the tables that `--once` prints and the
//! live view draws (one source for both, so they cannot disagree).

use std::fmt::Write as _;

use crate::model::{describe, Fd, Kind, Snapshot};

/// A table: its title, column heads, and rows of cells.
pub struct Table {
    pub title: String,
    /// How to read it, printed under the title in text (the view has no
    /// room for it).
    pub note: &'static str,
    pub heads: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// What `/proc/PID/io` does not count: the footnote to the `*` of
/// [`process_lines`], said wherever its rates are shown.
pub const IO_NOTE: &str = "* /proc/PID/io counts read(2), write(2) and kin: recvfrom, sendto, \
                           recvmsg, sendmsg are not counted";
/// The same, for the live view's bottom line.
pub const IO_NOTE_SHORT: &str = "* not counted: recvfrom, sendto, recvmsg, sendmsg";

/// `2.1 MiB`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The process in three lines: who, what it uses, how it switches.
pub fn process_lines(s: &Snapshot) -> Vec<String> {
    let threads = match s.threads.len() {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    };
    let limit = s.fd_limit.map_or("unlimited".to_string(), |l| l.to_string());
    let io = match s.io {
        Some(io) => {
            format!("read/write calls/s {:.0} / {:.0}*", io.reads_per_sec, io.writes_per_sec)
        }
        None => "read/write calls/s ?* (/proc/PID/io unreadable)".to_string(),
    };
    vec![
        format!("pid {}  {}", s.pid, s.command),
        format!(
            "{threads}   CPU {:.0}% of a core (user {:.0}%, sys {:.0}%)   RSS {}   fds {} of {limit}",
            s.cpu.percent,
            s.cpu.user_percent,
            s.cpu.system_percent,
            bytes(s.rss_bytes),
            s.fd_count,
        ),
        format!(
            "switches/s {:.0} voluntary, {:.0} involuntary   {io}",
            s.switches.voluntary_per_sec, s.switches.involuntary_per_sec
        ),
    ]
}

/// Each thread, the call it sits in and what its fd is.
pub fn threads(s: &Snapshot) -> Table {
    Table {
        title: format!("threads ({})", s.threads.len()),
        note: "",
        heads: vec!["TID", "NAME", "ST", "IN"],
        rows: s
            .threads
            .iter()
            .map(|t| vec![t.tid.to_string(), t.name.clone(), t.state.clone(), t.doing.clone()])
            .collect(),
    }
}

/// Each TCP socket: state, queues, O_NONBLOCK, the epoll sets it is in.
pub fn sockets(s: &Snapshot) -> Table {
    let sockets: Vec<&Fd> =
        s.fds.iter().filter(|fd| matches!(fd.kind, Kind::Listener | Kind::Tcp)).collect();
    let rows = sockets
        .iter()
        .map(|fd| {
            let listener = fd.kind == Kind::Listener;
            let count = |q: Option<u32>| q.map_or("-".to_string(), |q| q.to_string());
            // A listener's queues are read as ss reads them: RECV-Q is the
            // accept queue, SEND-Q the backlog.
            let (recv_q, send_q) = if listener {
                (count(fd.accept_queue), count(fd.backlog))
            } else {
                (count(fd.rx_queue), count(fd.tx_queue))
            };
            let epoll: Vec<String> = fd
                .in_epoll
                .iter()
                .map(|m| format!("{}:{}", m.epoll_fd, short(&m.events)))
                .collect();
            vec![
                fd.fd.to_string(),
                if listener { "listener" } else { "client" }.to_string(),
                if listener { fd.local.clone() } else { fd.remote.clone() }.unwrap_or_default(),
                fd.state.clone().unwrap_or_default(),
                recv_q,
                send_q,
                match fd.nonblocking {
                    Some(true) => "no",
                    Some(false) => "yes",
                    None => "?",
                }
                .to_string(),
                if epoll.is_empty() { "-".to_string() } else { epoll.join(" ") },
            ]
        })
        .collect();
    Table {
        title: format!("sockets ({})", sockets.len()),
        note: "ADDRESS: a listener's own, a client's peer; a listener's RECV-Q is its accept \
               queue, SEND-Q its backlog, as in ss",
        heads: vec![
            "FD",
            "KIND",
            "ADDRESS",
            "STATE",
            "RECV-Q",
            "SEND-Q",
            "BLOCKING",
            "EPOLL:EVENTS",
        ],
        rows,
    }
}

/// `EPOLLIN|EPOLLOUT` → `IN|OUT`, for narrow columns.
fn short(events: &str) -> String {
    events.replace("EPOLL", "")
}

/// Each epoll set's interest list, one row per entry.
pub fn epoll_sets(s: &Snapshot) -> Table {
    let mut rows = Vec::new();
    let mut sets = 0;
    for epoll in &s.fds {
        let Some(interest) = &epoll.interest else { continue };
        sets += 1;
        for entry in interest {
            let events: Vec<&str> = entry
                .events
                .iter()
                .map(String::as_str)
                .filter(|e| *e != "EPOLLERR" && *e != "EPOLLHUP")
                .collect();
            rows.push(vec![
                epoll.fd.to_string(),
                entry.fd.to_string(),
                if events.is_empty() { "-".to_string() } else { events.join("|") },
                format!("{:#x}", entry.data),
                if entry.stale { format!("STALE ({})", entry.what) } else { entry.what.clone() },
            ]);
        }
    }
    Table {
        title: format!("epoll interest lists ({sets})"),
        note: "every entry also has EPOLLERR|EPOLLHUP: epoll_ctl adds them",
        heads: vec!["EPFD", "TFD", "EVENTS", "DATA", "IS NOW"],
        rows,
    }
}

/// Each io_uring's rings.
pub fn rings(s: &Snapshot) -> Table {
    let rows = s
        .fds
        .iter()
        .filter_map(|fd| Some((fd.fd, fd.ring.as_ref()?)))
        .map(|(fd, r)| {
            vec![
                fd.to_string(),
                format!("{}/{} ({} pending)", r.sq_head, r.sq_tail, r.sqes_pending),
                format!("{}/{} ({} ready)", r.cq_head, r.cq_tail, r.cqes_ready),
                r.overflow.to_string(),
                if r.in_flight.is_empty() { "-".to_string() } else { r.in_flight.join(" ") },
            ]
        })
        .collect();
    Table {
        title: "io_uring rings".to_string(),
        note: "IN FLIGHT: requests the kernel holds armed on a file (fdinfo's PollList)",
        heads: vec!["FD", "SQ HEAD/TAIL", "CQ HEAD/TAIL", "OVERFLOW", "IN FLIGHT (armed)"],
        rows,
    }
}

/// The other fds, briefly: `0 /dev/null`, `5 pipe`.
pub fn other_fds(s: &Snapshot) -> Vec<String> {
    s.fds
        .iter()
        .filter(|fd| !matches!(fd.kind, Kind::Listener | Kind::Tcp | Kind::Epoll | Kind::IoUring))
        .map(|fd| {
            let member = if fd.in_epoll.is_empty() { "" } else { " (in epoll)" };
            match fd.kind {
                Kind::Eventfd => format!(
                    "{}{member} count {}",
                    describe(fd),
                    fd.eventfd_count.map_or("?".to_string(), |c| c.to_string())
                ),
                _ => format!("{}{member}", describe(fd)),
            }
        })
        .collect()
}

/// Each problem in a line, with its lab.
pub fn problem_lines(s: &Snapshot) -> Vec<String> {
    s.problems
        .iter()
        .map(|p| {
            let lab = match (p.lab, p.see) {
                (Some(lab), _) => format!(" [lab: pingpong lab {lab}]"),
                (None, Some(see)) => format!(" [{see}]"),
                (None, None) => String::new(),
            };
            format!("{}: {}{lab}", p.id, p.detail)
        })
        .collect()
}

/// The table as aligned text, each line indented by two spaces.
pub fn render_table(table: &Table) -> String {
    let mut widths: Vec<usize> = table.heads.iter().map(|h| h.len()).collect();
    for row in &table.rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            let last = i + 1 == cells.len();
            if last {
                let _ = write!(out, " {cell}");
            } else {
                let _ = write!(out, " {cell:<w$}", w = widths.get(i).copied().unwrap_or(0));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = format!("{}\n", table.title);
    if !table.note.is_empty() {
        let _ = writeln!(out, "  ({})", table.note);
    }
    out.push_str(&line(table.heads.clone()));
    out.push('\n');
    for row in &table.rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The whole snapshot as text (`--once`).
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    for line in process_lines(s) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{IO_NOTE}");
    if let Some(hidden) = &s.syscalls_hidden {
        let _ = writeln!(out, "note: {hidden}");
    }
    out.push('\n');
    out.push_str(&render_table(&threads(s)));
    let sockets = sockets(s);
    if !sockets.rows.is_empty() {
        out.push('\n');
        out.push_str(&render_table(&sockets));
    }
    let sets = epoll_sets(s);
    if !sets.rows.is_empty() {
        out.push('\n');
        out.push_str(&render_table(&sets));
    }
    let rings = rings(s);
    if !rings.rows.is_empty() {
        out.push('\n');
        out.push_str(&render_table(&rings));
    }
    let others = other_fds(s);
    if !others.is_empty() {
        let _ = write!(out, "\nother fds\n  {}\n", others.join("; "));
    }
    out.push_str("\nwhat looks wrong\n");
    let problems = problem_lines(s);
    if problems.is_empty() {
        out.push_str("  nothing\n");
    }
    for line in problems {
        let _ = writeln!(out, "  {line}");
    }
    out
}
