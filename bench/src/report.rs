//! How the figures are shown: a table on stdout and `report.md` (the
//! charts are in `charts.rs`). The tables are drawn by `tabled`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use nix::sys::utsname::uname;
use tabled::builder::Builder;
use tabled::grid::config::Offset;
use tabled::settings::object::{Columns, Object, Rows};
use tabled::settings::style::LineChar;
use tabled::settings::{Alignment, Padding, Span, Style};
use tabled::Table;

use crate::charts::Chart;
use crate::figures::{Fig, Row};
use crate::workloads::{bytes, Family};

/// The columns of the stdout table, and their headings: a few figures,
/// each explained by [`legend`]; report.md has every figure.
const TABLE: [(Fig, &str); 8] = [
    (Fig::Rps, "rt/s"),
    (Fig::Starved, "starved"),
    (Fig::P50, "p50"),
    (Fig::P99, "p99"),
    (Fig::CpuPerRt, "CPU/rt"),
    (Fig::SyscallsPerRt, "syscalls/rt"),
    (Fig::Threads, "threads"),
    (Fig::PeakRss, "peak RSS"),
];

/// The table printed on stdout, then its legend: a line naming each
/// workload, then one line per server under it, medians only. Under 100
/// columns for every workload and server name the plan makes.
pub fn table(rows: &[Row], repeat: usize) -> String {
    let mut lines = vec![["workload, server"]
        .into_iter()
        .chain(TABLE.iter().map(|(_, h)| *h))
        .map(String::from)
        .collect::<Vec<_>>()];
    let mut last_workload = String::new();
    for row in rows {
        let label = row.run.workload.label();
        if label != last_workload {
            lines.push(vec![label.clone()]);
            last_workload = label;
        }
        let mut line = vec![format!("  {}", row.run.target)];
        match row.reason() {
            Some(reason) => line.push(reason),
            None => line.extend(TABLE.iter().map(|&(fig, _)| row.cell(fig, false))),
        }
        lines.push(line);
    }
    // No borders: columns two spaces apart (one of padding, one of line).
    let mut table = grid(lines, 1);
    table.with(Style::blank()).with(Padding::new(0, 1, 0, 0));
    let text = table.to_string();
    let mut out: String = text.lines().map(|l| l.trim_end().to_string() + "\n").collect();
    out.push('\n');
    out += &legend(repeat);
    out
}

/// What the headings of [`table`] mean, one per line.
fn legend(repeat: usize) -> String {
    let medians = match repeat {
        1 => "one run of each pair".to_string(),
        n => format!("medians of {n} interleaved runs"),
    };
    [
        "rt/s         round trips per second: replies received in the measured window / its length"
            .to_string(),
        "starved      active connections that got no reply in the whole window".into(),
        "p50, p99     latency, request queued to whole reply: median and 99th percentile".into(),
        "CPU/rt       server CPU time (user + system, every thread) per round trip".into(),
        "syscalls/rt  server system calls per round trip, by its own counters over the window;"
            .into(),
        "             † over its whole life instead (warm-up included); perf's count in report.md"
            .into(),
        "threads      server threads;  peak RSS  its peak resident memory (VmHWM)".into(),
        "-            none, or not measured (peers have no counters of their own)".into(),
        format!("{medians}; every figure, p99.9 and memory per idle connection in report.md"),
    ]
    .map(|l| l + "\n")
    .concat()
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
    /// The charts drawn beside report.md.
    pub charts: Vec<Chart>,
    /// The machine-readable files written beside it (`--format`).
    pub data_files: Vec<&'static str>,
}

/// Write `report.md` into `dir`.
pub fn write_markdown(dir: &Path, rows: &[Row], ctx: &Context) -> io::Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# pingpong bench\n");
    let _ = writeln!(md, "```\n{}\n```\n", ctx.command);
    let _ = writeln!(md, "## Environment\n");
    let _ = writeln!(
        md,
        "Every figure below was measured in this run, on this machine, the load generator \
         sharing its cores with the servers.\n"
    );
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
    if !ctx.charts.is_empty() {
        let _ = writeln!(md, "## Charts\n");
        let _ = writeln!(md, "Each chart answers one question, from the figures above.\n");
    }
    for chart in &ctx.charts {
        let _ = writeln!(md, "### {}\n\n![{}]({})\n", chart.title, chart.title, chart.file);
        let _ = writeln!(md, "{} Made by `{}`.\n", chart.caption, ctx.command);
    }
    if !ctx.data_files.is_empty() {
        let links: Vec<String> = ctx.data_files.iter().map(|f| format!("[{f}]({f})")).collect();
        let _ = writeln!(
            md,
            "## Data\n\nEvery figure of every repeat, in raw units (ns, bytes, per second): {}.\n",
            links.join(", ")
        );
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

/// The first CPU's `model name` in `/proc/cpuinfo` (x86 has one; many ARM
/// kernels do not, and the table says `unknown`).
fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// `MemTotal` of `/proc/meminfo`, in bytes (the file says kB, meaning KiB).
fn memory_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find_map(|line| line.strip_prefix("MemTotal:"))?;
    Some(line.split_whitespace().next()?.parse::<u64>().ok()? * 1024)
}

/// Machine, kernel, date, limits: the rows of the environment table.
pub fn environment(ctx: &Context) -> Vec<(&'static str, String)> {
    let unknown = || "unknown".to_string();
    let model = cpu_model().unwrap_or_else(unknown);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = uname().map_or_else(|_| unknown(), |u| u.release().to_string_lossy().into());
    let memory = memory_total().map_or_else(unknown, |total| bytes(total as f64));
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
    use crate::figures::{Measure, QUANTILES};
    use crate::workloads::{parse_peer, Run, Target, Workload};
    use pingpong::selector::Backend;
    use pingpong::server::Mode;
    use std::path::PathBuf;

    fn ping(clients: usize) -> Workload {
        Workload { family: Family::Ping, clients, size: 0, pipeline: 1, work_ms: 0, idle: 0 }
    }

    /// A row of `workload` served by `target`, measured with `figs`, or
    /// skipped for `skip`.
    fn row(workload: Workload, target: Target, figs: &[(Fig, f64)], skip: Option<&str>) -> Row {
        let mut m = Measure::default();
        for &(fig, v) in figs {
            m.set(fig, v);
        }
        let p50 = m.get(Fig::P50).unwrap_or(50_000.0);
        m.quantiles = QUANTILES.iter().map(|&q| (q, p50 / (1.0 - q).sqrt() / 1.4)).collect();
        let outcomes = if skip.is_some() { vec![] } else { vec![Ok(m)] };
        Row { run: Run { workload, target, skip: skip.map(String::from) }, outcomes }
    }

    fn epoll() -> Target {
        Target::mode(Mode::Selector(Backend::Epoll))
    }

    #[test]
    fn a_reason_spans_the_figure_columns() {
        let rows = [
            row(ping(100), epoll(), &[(Fig::Rps, 156_000.0), (Fig::P50, 52_000.0)], None),
            row(
                ping(100),
                Target::mode(Mode::Selector(Backend::Select)),
                &[],
                Some("n/a: FD_SETSIZE"),
            ),
        ];
        let text = table(&rows, 1);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("workload, server  rt/s  starved "), "{text}");
        assert_eq!(lines[1], "ping 100c");
        assert!(lines[2].starts_with("  epoll           156k        - "), "{text}");
        assert!(lines[2].contains(" 52.0µs "), "{text}");
        assert_eq!(lines[3], "  select          n/a: FD_SETSIZE");

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

    /// The widest cells the plan and the figures make: the table and its
    /// legend still fit in 100 columns, and the legend names every heading.
    #[test]
    fn the_table_fits_in_100_columns_and_its_legend_explains_it() {
        let hold = Workload { family: Family::Hold, clients: 10, idle: 10_000, ..ping(1) };
        let peer = Target::Peer(parse_peer("c-epoll=/tmp/c {port}").unwrap());
        let widest = [
            (Fig::Rps, 2_620_000.0),
            (Fig::Starved, 9_994.0),
            (Fig::P50, 282_590_000.0),
            (Fig::P99, 867_700_000.0),
            (Fig::CpuPerRt, 128_400.0),
            (Fig::SyscallsPerRt, 15.04),
            (Fig::Threads, 10_012.0),
            (Fig::PeakRss, 184.2 * 1024.0 * 1024.0),
        ];
        let variant =
            Target::Mode { mode: Mode::Selector(Backend::Select), workers: Some(2), edge: true };
        let rows = [
            row(hold.clone(), peer, &widest, None),
            row(hold, variant, &widest, None),
            row(ping(1), epoll(), &[], Some("n/a: the pool serves 6 connections at a time")),
        ];
        let text = table(&rows, 3);
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
        }
        let (head, legend) = text.split_once("\n\n").unwrap();
        let header = head.lines().next().unwrap();
        for (_, heading) in TABLE {
            assert!(header.contains(heading));
            assert!(legend.contains(heading), "{heading} is not in the legend:\n{legend}");
        }
        assert!(legend.contains('†') && legend.contains("medians of 3"));
    }

    /// The targets of every `![alt](target)` in `md`.
    fn image_links(md: &str) -> Vec<String> {
        md.split("![")
            .skip(1)
            .filter_map(|rest| {
                let (_, after) = rest.split_once("](")?;
                Some(after.split_once(')')?.0.to_string())
            })
            .collect()
    }

    /// Every image `md` (in `dir`) links exists there, and every `.svg`
    /// of `dir` whose name starts with `prefix` is linked from one of
    /// `linked`.
    fn check_pictures(dir: &Path, md: &str, prefix: &str, linked: &[String]) {
        let links = image_links(md);
        assert!(!links.is_empty(), "no picture in the report of {}", dir.display());
        for link in &links {
            assert!(dir.join(link).is_file(), "{} links {link}, not in it", dir.display());
        }
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.ends_with(".svg") {
                assert!(linked.iter().any(|l| l.ends_with(&name)), "{name} is linked from nowhere");
            }
        }
    }

    /// The report the benchmark writes (from synthetic figures: no server
    /// is started) and the one kept in `docs/` link only pictures that
    /// exist beside them, and every chart beside them is linked.
    #[test]
    fn every_image_link_names_a_file_that_exists() {
        // A report written now, into a fresh directory.
        let dir = std::env::temp_dir().join(format!("pingpong-bench-links-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let pool = Target::mode(Mode::Pool);
        let threads = Target::mode(Mode::Threads);
        let hold = Workload { family: Family::Hold, clients: 10, idle: 1000, ..ping(1) };
        let fast = [(Fig::Rps, 15_000.0), (Fig::P50, 60_000.0), (Fig::CpuPerRt, 25_000.0)];
        let starving = [(Fig::Rps, 80_000.0), (Fig::Starved, 94.0), (Fig::P50, 60_000.0)];
        let rows = vec![
            row(ping(1), epoll(), &fast, None),
            row(ping(1), pool.clone(), &fast, None),
            row(ping(100), epoll(), &fast, None),
            row(ping(100), pool.clone(), &starving, None),
            row(ping(100), threads.clone(), &fast, None),
            row(hold.clone(), epoll(), &[(Fig::Rps, 1.0), (Fig::RssPerConn, 160.0)], None),
            row(hold.clone(), threads, &[(Fig::Rps, 1.0), (Fig::RssPerConn, 18_900.0)], None),
            row(hold, pool, &[], Some("n/a: the pool serves 6 connections at a time")),
        ];
        let command = "pingpong-bench --test".to_string();
        let charts = crate::charts::draw_all(&dir, &rows, &command).unwrap();
        assert_eq!(charts.len(), 4, "every chart has data: {charts:?}");
        let ctx = Context {
            command,
            started: SystemTime::now(),
            elapsed_secs: 1.0,
            secs: 0.5,
            warmup: 0.2,
            repeat: 1,
            nofile_note: String::new(),
            perf_note: String::new(),
            charts,
            data_files: vec!["bench-results.csv", "bench-results.json"],
        };
        write_markdown(&dir, &rows, &ctx).unwrap();
        for format in [crate::results::Format::Csv, crate::results::Format::Json] {
            crate::results::write(&dir, format, &rows, &ctx).unwrap();
        }
        let md = fs::read_to_string(dir.join("report.md")).unwrap();
        check_pictures(&dir, &md, "", &image_links(&md));
        for file in &ctx.data_files {
            assert!(md.contains(&format!("]({file})")) && dir.join(file).is_file());
        }
        // The latency chart says the starving pool is left out.
        let latency = fs::read_to_string(dir.join("bench-latency.svg")).unwrap();
        assert!(latency.contains("pool (94 of 100 connections starved): left out"));
        assert!(!latency.contains(">\npool\n<"), "pool drawn in the latency legend");
        fs::remove_dir_all(&dir).unwrap();

        // The record in docs/, and the README that shows one of its charts.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let docs = root.join("docs");
        let report = fs::read_to_string(docs.join("bench-report.md")).unwrap();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        for link in image_links(&readme) {
            assert!(root.join(&link).is_file(), "README.md links {link}, which is not there");
        }
        let mut linked = image_links(&report);
        linked.extend(image_links(&readme));
        check_pictures(&docs, &report, "bench-", &linked);
    }
}
