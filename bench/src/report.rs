//! How the figures are shown: a table on stdout and `report.md` (the
//! charts are in `charts.rs`). The tables are drawn by `tabled`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use nix::sys::utsname::uname;
use procfs::{CpuInfo, Current, Meminfo};
use tabled::builder::Builder;
use tabled::grid::config::Offset;
use tabled::settings::object::{Columns, Object, Rows};
use tabled::settings::style::LineChar;
use tabled::settings::{Alignment, Padding, Span, Style};
use tabled::Table;

use crate::figures::{Fig, Row};
use crate::workloads::{bytes, Family};

/// The columns of the stdout table.
const TABLE: [Fig; 11] = [
    Fig::Rps,
    Fig::Starved,
    Fig::P50,
    Fig::P99,
    Fig::P999,
    Fig::CpuPerRt,
    Fig::SyscallsPerRt,
    Fig::PerfPerRt,
    Fig::Threads,
    Fig::PeakRss,
    Fig::RssPerConn,
];

/// The table printed on stdout: one line per run, medians (and the range
/// of round trips/s when runs were repeated).
pub fn table(rows: &[Row]) -> String {
    let headings = [
        "workload", "server", "rt/s", "starved", "p50", "p99", "p99.9", "CPU/rt", "sc/rt",
        "perf/rt", "thr", "peak RSS", "RSS/conn",
    ];
    let mut lines = vec![headings.map(String::from).to_vec()];
    let mut last_workload = String::new();
    for row in rows {
        // The workload is named once, on the first of its rows.
        let label = row.run.workload.label();
        let shown = if label == last_workload { String::new() } else { label.clone() };
        last_workload = label;
        let mut line = vec![shown, row.run.target.to_string()];
        match row.reason() {
            Some(reason) => line.push(reason),
            None => line.extend(TABLE.map(|fig| row.cell(fig, fig == Fig::Rps))),
        }
        lines.push(line);
    }
    // No borders: columns two spaces apart (one of padding, one of line).
    let mut table = grid(lines, 2);
    table.with(Style::blank()).with(Padding::new(0, 1, 0, 0));
    let text = table.to_string();
    text.lines().map(|l| l.trim_end().to_string() + "\n").collect()
}

/// `lines` as a table, the first line its header. The columns from
/// `figures` on are right-aligned, so that digits line up. A line that stops
/// at its first figure holds a reason there instead (`n/a: FD_SETSIZE`),
/// which spans the figure columns.
fn grid(lines: Vec<Vec<String>>, figures: usize) -> Table {
    let width = lines.first().map_or(0, Vec::len);
    let short: Vec<usize> = (1..lines.len()).filter(|&i| lines[i].len() < width).collect();
    let mut table = Builder::from(lines).build();
    if figures < width {
        table.modify(Columns::new(figures..), Alignment::right());
        let span = Span::column((width - figures) as isize);
        for line in short {
            table.modify((line, figures), (span, Alignment::left()));
        }
    }
    table
}

/// [`grid`] in Markdown, the figure columns marked right-aligned (`---:`).
fn markdown(lines: Vec<Vec<String>>, figures: usize) -> String {
    let mut table = grid(lines, figures);
    table.with(Style::markdown());
    if figures < table.count_columns() {
        let under_header = Rows::one(1).intersect(Columns::new(figures..));
        table.modify(under_header, LineChar::horizontal(':', Offset::End(0)));
    }
    table.to_string() + "\n"
}

/// What report.md says about the machine and the run.
pub struct Context {
    pub command: String,
    pub started: SystemTime,
    pub elapsed_secs: f64,
    pub secs: f64,
    pub warmup: f64,
    pub repeat: usize,
    pub nofile_note: String,
    pub perf_note: String,
    pub charts: Vec<(String, String)>,
}

/// Write `report.md` into `dir`.
pub fn write_markdown(dir: &Path, rows: &[Row], ctx: &Context) -> io::Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# pingpong bench\n");
    let _ = writeln!(md, "```\n{}\n```\n", ctx.command);
    let _ = writeln!(md, "## Environment\n");
    let mut lines = vec![vec![String::new(), String::new()]];
    lines.extend(environment(ctx).into_iter().map(|(k, v)| vec![k.to_string(), v]));
    md += &markdown(lines, 2);
    let _ = writeln!(md, "\n## How each figure is measured\n");
    md += METHOD;
    let _ = writeln!(md, "\n## Results\n");
    let mut i = 0;
    while i < rows.len() {
        let label = rows[i].run.workload.label();
        let end = rows[i..]
            .iter()
            .position(|r| r.run.workload.label() != label)
            .map_or(rows.len(), |n| i + n);
        workload_table(&mut md, &rows[i..end]);
        i = end;
    }
    let _ = writeln!(md, "## Charts\n");
    for (file, caption) in &ctx.charts {
        let _ = writeln!(md, "### {caption}\n\n![{caption}]({file})\n");
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            let who = format!("{} / {}", row.run.workload.label(), row.run.target);
            let failures = row
                .outcomes
                .iter()
                .filter_map(|o| o.as_ref().err())
                .map(move |e| format!("failed: {e}"));
            let notes = row
                .outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok())
                .flat_map(|m| m.notes.iter().cloned());
            failures.chain(notes).map(move |n| format!("- {who}: {n}")).collect::<Vec<_>>()
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(md, "## Notes\n\n{}\n", notes.join("\n"));
    }
    fs::write(dir.join("report.md"), md)
}

/// One workload's table in report.md: every figure that any row has.
fn workload_table(md: &mut String, rows: &[Row]) {
    let Some(first) = rows.first() else { return };
    let w = &first.run.workload;
    let _ = writeln!(md, "### {}\n", w.label());
    let _ = writeln!(md, "{}\n", describe(w));
    let figs: Vec<Fig> =
        Fig::ALL.into_iter().filter(|&f| rows.iter().any(|r| r.spread(f).is_some())).collect();
    let mut lines = vec![["server"]
        .into_iter()
        .chain(figs.iter().map(|f| f.heading()))
        .map(String::from)
        .collect()];
    for row in rows {
        let mut line = vec![row.run.target.to_string()];
        match row.reason() {
            Some(reason) => line.push(reason),
            None => line.extend(figs.iter().map(|&f| row.cell(f, true))),
        }
        lines.push(line);
    }
    *md += &markdown(lines, 1);
    md.push('\n');
}

/// One sentence on what a workload does to the server.
fn describe(w: &crate::workloads::Workload) -> String {
    match w.family {
        Family::Ping if w.clients == 1 => {
            "1 connection, sending `ping` and waiting for `pong` before the next.".to_string()
        }
        Family::Ping => format!(
            "{} connections, each sending `ping` and waiting for `pong` before the next.",
            w.clients
        ),
        Family::Echo => format!(
            "{} connections, each sending a line of {} (newline included) and waiting for it to come back.",
            w.clients,
            bytes(w.size as f64)
        ),
        Family::Pipeline => format!(
            "{} connections, each keeping {} pings in flight: the server reads many lines per wake-up.",
            w.clients, w.pipeline
        ),
        Family::Slow => format!(
            "{} connections, one ping in flight each, and a handler that spends {} ms per request \
             (`--work-ms`). A single event loop answers at most {:.0}/s; N threads at most N × {:.0}/s.",
            w.clients,
            w.work_ms,
            1000.0 / w.work_ms as f64,
            1000.0 / w.work_ms as f64
        ),
        Family::Hold => format!(
            "{} idle connections (each sent one ping, then fell silent) beside {} active ones. \
             RSS/idle conn = (RSS after opening them − RSS before) / {}; the round trips are the \
             active connections', with every idle one still registered.",
            w.idle, w.clients, w.idle
        ),
    }
}

const METHOD: &str = "\
- **round trips/s**: replies received by the load generator during the measured window, \
divided by its length. The generator is one thread with non-blocking sockets on pingpong's \
own selector (level-triggered epoll); each connection is a closed loop.
- **starved conns**: active connections that received no reply during the whole window. \
A pool of N threads serves N connections at a time, each until it closes; the others wait in \
its queue, so their requests never complete and the latency figures cover the served ones only.
- **p50/p99/p99.9**: latency of each request from the moment it was queued to the moment its \
whole reply arrived, in an HDR histogram (3 significant digits).
- **CPU/rt**: the server's CPU time (user + system, every thread) over the window, read from \
the kernel's per-process CPU clock, divided by the round trips. **user %** splits it with \
`utime`/`stime` of `/proc/PID/stat`. **client CPU/rt** is the same for the load generator \
itself: what measuring cost the machine.
- **syscalls/rt**: the server's own counters (`stats:` line). Selector and hybrid modes print \
them on SIGUSR1, so the figure covers exactly the window. † marks counts taken over the \
server's life instead, from the line it prints at exit: total calls divided by every round trip \
of its life (warm-up and connection set-up included). That is so for the thread modes, which \
add up a connection's calls only when it closes, and under the slow handler, which answers \
signals late. Peers have no counters.
- **perf syscalls/rt**: every system call of the server (futex and clone included), counted by \
`perf stat -e raw_syscalls:sys_enter -p PID` over a separate short window after the measured \
one (so the tracepoint's cost does not land in CPU/rt). perf attaches with its counter off and \
is switched on and off through its control FIFO (`--control`), so the window is exact.
- **events/wakeup**: events the selector handed out per return of its wait, over the window.
- **ctx switches/rt**: voluntary + involuntary context switches of all server threads \
(`/proc/PID/task/*/status`) over the window, per round trip.
- **threads**, **peak RSS**: `Threads` and `VmHWM` of `/proc/PID/status` at the end of the window.
- **RSS/idle conn**: hold test only; see its workload.
- Requests of `--size` N are lines of N bytes (N − 1 `x` and a newline) in the line protocol, \
so peers that speak only lines are measured on the same load. The load generator and the \
server share the machine's cores: ratios between servers measured in one run hold, absolute \
figures vary from machine to machine.
";

/// Machine, kernel, date, limits: the rows of the environment table.
fn environment(ctx: &Context) -> Vec<(&'static str, String)> {
    let unknown = || "unknown".to_string();
    let model = CpuInfo::current()
        .ok()
        .and_then(|cpus| cpus.model_name(0).map(str::to_string))
        .unwrap_or_else(unknown);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = uname().map_or_else(|_| unknown(), |u| u.release().to_string_lossy().into());
    let memory = Meminfo::current().map_or_else(|_| unknown(), |m| bytes(m.mem_total as f64));
    vec![
        ("date (UTC)", humantime::format_rfc3339_seconds(ctx.started).to_string()),
        ("CPU", model),
        ("cores", cores.to_string()),
        ("memory", memory),
        ("kernel", format!("Linux {kernel}")),
        (
            "windows",
            format!(
                "{} s measured after {} s of warm-up, {} repeat(s), interleaved",
                ctx.secs, ctx.warmup, ctx.repeat
            ),
        ),
        ("file descriptors", ctx.nofile_note.clone()),
        ("perf", ctx.perf_note.clone()),
        ("whole run", format!("{:.0} s", ctx.elapsed_secs)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::Measure;
    use crate::workloads::{Run, Target, Workload};
    use pingpong::selector::Backend;
    use pingpong::server::Mode;

    /// A row of `ping 100c` served by `backend`: measured at `rps`, or
    /// skipped for `skip`.
    fn row(backend: Backend, rps: f64, skip: Option<&str>) -> Row {
        let workload = Workload {
            family: Family::Ping,
            clients: 100,
            size: 0,
            pipeline: 1,
            work_ms: 0,
            idle: 0,
        };
        let mut m = Measure::default();
        m.set(Fig::Rps, rps);
        m.set(Fig::P50, 52_000.0);
        Row {
            run: Run {
                workload,
                target: Target::mode(Mode::Selector(backend)),
                skip: skip.map(String::from),
            },
            outcomes: if skip.is_some() { vec![] } else { vec![Ok(m)] },
        }
    }

    #[test]
    fn a_reason_spans_the_figure_columns() {
        let rows = [
            row(Backend::Epoll, 156_000.0, None),
            row(Backend::Select, 0.0, Some("n/a: FD_SETSIZE")),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("workload   server  "), "{text}");
        assert!(lines[1].starts_with("ping 100c  epoll   "), "{text}");
        assert!(lines[1].contains(" 156k ") && lines[1].contains(" 52.0µs "));
        assert_eq!(lines[2], "           select  n/a: FD_SETSIZE");

        let mut md = String::new();
        workload_table(&mut md, &rows);
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(
            lines,
            [
                "| server | round trips/s |    p50 |",
                "|--------|--------------:|-------:|",
                "| epoll  |          156k | 52.0µs |",
                "| select | n/a: FD_SETSIZE        |",
            ]
        );
    }
}
