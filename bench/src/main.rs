//! `pingpong-bench`: every pingpong mode side by side, on the same loads, in
//! one run.
//!
//! The benchmark is a package of its own, beside the library rather than in
//! it: the crate students read stays free of charts and progress bars. It
//! depends on the library for two things only, the [`Selector`] its load
//! generator runs on and [`Mode`], the one list of server modes; the servers
//! themselves are the `pingpong` binary, started as child processes.
//!
//! For each pair of a workload and a server in the plan ([`workloads`]), the
//! benchmark starts the server as a child process on a free port
//! ([`server`]), opens the connections and drives them from one thread
//! ([`driver`]), warms up, then measures a window ([`measure`]): round
//! trips and their latencies on the client side, CPU time, memory, threads
//! and system calls on the server side ([`perf`] counts every one). The
//! [`figures`] go to a table on stdout, to `DIR/report.md` and to SVG charts
//! beside it ([`report`], [`charts`]), and with `--format csv,json` to
//! `DIR/bench-results.csv` and `.json` ([`results`]). The progress bar
//! ([`progress`]) counts in expected seconds, so it can tell the time left.
//!
//! ```text
//! pingpong-bench --quick                          # about a minute
//! pingpong-bench --modes epoll,threads --clients 100,10000 --secs 5 --repeat 3
//! pingpong-bench --peer c-epoll='/tmp/c-epoll {port}'
//! pingpong-bench --quick --format csv,json --out /tmp/bench
//! ```
//!
//! The load generator runs on the same machine as the server and shares
//! its cores, so absolute numbers say little on their own; ratios between
//! servers measured in the same run are what the report is for. `--repeat`
//! interleaves the runs (A B A B, not A A B B), so a slow minute of the
//! machine does not land on one server only.
//!
//! [`Selector`]: pingpong::selector::Selector
//! [`Mode`]: pingpong::server::Mode

// No raw system calls here: `cpu_clock` reads the CPU clock through nix.
#![forbid(unsafe_code)]

// The benchmark looks at its servers through /proc and their CPU clocks, both
// Linux's; the library and its servers build everywhere.
#[cfg(not(target_os = "linux"))]
compile_error!("pingpong-bench reads /proc and per-process CPU clocks: it builds on Linux only");

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use clap::{ArgAction, Parser, ValueEnum};

mod charts;
mod cpu_clock;
mod driver;
mod figures;
mod measure;
mod perf;
mod progress;
mod report;
mod results;
mod server;
mod workloads;

use figures::Row;
use measure::Settings;
use perf::SyscallCounter;
use pingpong::server::Mode;
use progress::Progress;
use workloads::{Family, Peer};

/// The benchmark's options.
#[derive(Parser, Debug)]
#[command(
    name = "pingpong-bench",
    version,
    about = "Measure every pingpong mode side by side (starts its own servers)"
)]
struct BenchArgs {
    /// Server modes to measure, comma-separated [default: every mode this OS
    /// has but blocking]
    #[arg(long, value_enum, value_delimiter = ',')]
    modes: Option<Vec<Mode>>,
    /// Connection counts of the ping-pong sweep [default: 1,10,100,1000,10000;
    /// with --quick 1,10,100,1000]
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
    /// Request sizes in bytes, newline included: 0 is ping/pong (the sweep),
    /// others are lines echoed back, on 10 connections.
    #[arg(long, value_delimiter = ',', default_value = "0,1024,65536")]
    size: Vec<usize>,
    /// Requests in flight per connection: each value above 1 adds a
    /// pipelined load on 100 connections.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pipeline: Vec<usize>,
    /// Milliseconds of the slow handler's work per request (0: no slow load).
    #[arg(long, default_value_t = 20)]
    work_ms: u64,
    /// Idle connections held in the memory test (0: no hold test).
    #[arg(long, default_value_t = 10_000)]
    hold: usize,
    /// Seconds measured per run [default: 3; with --quick 0.5]
    #[arg(long)]
    secs: Option<f64>,
    /// Seconds of warm-up before each measured window [default: 1; with --quick 0.2]
    #[arg(long)]
    warmup: Option<f64>,
    /// Runs of each pair, interleaved; the report gives medians and min–max.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// About a minute: short windows and a smaller sweep.
    #[arg(long)]
    quick: bool,
    /// Where report.md and the charts go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Also write the figures for programs, beside report.md: csv
    /// (bench-results.csv) and/or json (bench-results.json), comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    format: Vec<results::Format>,
    /// Event loop counts compared in the selector modes (values above 1 add
    /// runs beside the 100-connection ping load).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Measure edge-triggered epoll (`serve --edge`) beside level-triggered.
    #[arg(long, action = ArgAction::Set, default_value_t = true, value_name = "BOOL")]
    edge: bool,
    /// Count every system call with `perf stat` (when perf works here).
    #[arg(long, action = ArgAction::Set, default_value_t = true, value_name = "BOOL")]
    perf: bool,
    /// A reference server, NAME=CMD, CMD holding `{port}` (repeatable), e.g.
    /// --peer c-epoll='/tmp/c-epoll {port}'. It must speak the line protocol.
    #[arg(long = "peer", value_name = "NAME=CMD", value_parser = workloads::parse_peer)]
    peers: Vec<Peer>,
    /// Which workloads to run [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    workloads: Option<Vec<Family>>,
    /// The pingpong binary to start as the server [default: `pingpong`
    /// beside this program, as cargo builds them: target/release/pingpong]
    #[arg(long)]
    bin: Option<PathBuf>,
}

fn main() -> ExitCode {
    match bench(&BenchArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchArgs) -> io::Result<()> {
    let started = SystemTime::now();
    let clock = Instant::now();
    check(args)?;
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => pingpong_beside_us()?,
    };
    let settings = Settings {
        bin,
        secs: args.secs.unwrap_or(if args.quick { 0.5 } else { 3.0 }),
        warmup: args.warmup.unwrap_or(if args.quick { 0.2 } else { 1.0 }),
        perf_secs: if args.quick { 0.2 } else { 1.0 },
        repeat: args.repeat,
        perf: args.perf && SyscallCounter::available(),
        perf_uring: args.perf && SyscallCounter::counts_uring(),
    };
    let (nofile, nofile_note) = raise_nofile();
    eprintln!("{nofile_note}");
    let perf_note = if !args.perf {
        "not used (--perf false)".to_string()
    } else if settings.perf {
        "perf stat -e raw_syscalls:sys_enter: available".to_string()
    } else {
        "perf cannot count system calls here: perf syscalls/rt is n/a".to_string()
    };
    eprintln!("{perf_note}");

    let modes = dedup(args.modes.clone().unwrap_or_else(workloads::default_modes));
    let clients = args.clients.clone().unwrap_or_else(|| {
        if args.quick {
            vec![1, 10, 100, 1000]
        } else {
            vec![1, 10, 100, 1000, 10_000]
        }
    });
    let families = args.workloads.clone().unwrap_or_else(|| Family::value_variants().to_vec());
    let plan = workloads::plan(&workloads::PlanInput {
        families: &families,
        modes: &modes,
        peers: &args.peers,
        clients: &clients,
        sizes: &args.size,
        pipelines: &args.pipeline,
        work_ms: args.work_ms,
        slow_clients: if args.quick { 20 } else { 100 },
        idle: args.hold,
        workers: &args.workers,
        edge: args.edge,
        nofile,
        pool_size: pingpong::server::default_workers(),
    });
    if modes.contains(&Mode::Blocking) {
        eprintln!("blocking mode serves one client at a time: it runs the 1-connection loads only");
    }
    let mut rows: Vec<Row> =
        plan.into_iter().map(|run| Row { run, outcomes: Vec::new() }).collect();
    std::fs::create_dir_all(&args.out)?;
    // This command line, quoted so that it can be pasted into a shell.
    let command = shell_words::join(std::env::args());

    let todo: Vec<f64> = rows
        .iter()
        .filter(|r| r.run.skip.is_none())
        .map(|r| measure::expected_secs(&r.run, &settings))
        .collect();
    let mut bar = Progress::new(
        todo.len() * settings.repeat,
        todo.iter().sum::<f64>() * settings.repeat as f64,
    )?;
    // Interleaved: every pair once, then every pair again.
    for _ in 0..settings.repeat {
        for (row, &secs) in rows.iter_mut().filter(|r| r.run.skip.is_none()).zip(&todo) {
            let who = format!("{} / {}", row.run.workload.label(), row.run.target);
            let outcome = bar.run(&who, secs, || measure::measure(&row.run, &settings));
            let outcome = outcome.map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                bar.println(format!("{who}: {e}"));
            }
            row.outcomes.push(outcome);
        }
    }
    bar.finish();

    print!("{}", report::table(&rows, settings.repeat));
    let charts = charts::draw_all(&args.out, &rows, &command)?;
    let formats = dedup(args.format.clone());
    let context = report::Context {
        command,
        started,
        elapsed_secs: clock.elapsed().as_secs_f64(),
        secs: settings.secs,
        warmup: settings.warmup,
        repeat: settings.repeat,
        nofile_note,
        perf_note,
        charts: charts.clone(),
        data_files: formats.iter().map(|f| f.file()).collect(),
    };
    report::write_markdown(&args.out, &rows, &context)?;
    for &format in &formats {
        results::write(&args.out, format, &rows, &context)?;
    }
    let secs = clock.elapsed().as_secs_f64();
    println!("\n{}", wrote_line(&args.out, secs, charts.len(), &context.data_files));
    Ok(())
}

/// The last line: where the files went, and what they are. The charts are
/// counted, not listed (they are DIR/bench-*.svg, and report.md links each),
/// so the line stays inside the table's 100 columns even with
/// `--format csv,json`.
fn wrote_line(out: &Path, secs: f64, charts: usize, data_files: &[&str]) -> String {
    let mut what = vec!["report.md".to_string()];
    match charts {
        0 => {}
        1 => what.push("1 chart".into()),
        n => what.push(format!("{n} charts")),
    }
    what.extend(data_files.iter().map(|f| f.to_string()));
    format!("wrote in {} ({secs:.0} s): {}", out.display(), what.join(", "))
}

/// The `pingpong` binary that cargo built beside this one: both land in
/// the workspace's `target/release/` (or `target/debug/`).
fn pingpong_beside_us() -> io::Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("pingpong");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no server binary at {}: build it (`cargo build --release`) or pass --bin",
                bin.display()
            ),
        ))
    }
}

/// Refuse options that cannot make a run, with a message that says why.
fn check(args: &BenchArgs) -> io::Result<()> {
    let bad = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if let Some(s) = args.size.iter().find(|&&s| s > 65_536) {
        return bad(format!("--size {s}: at most 65536 (the server's longest line, --max-line)"));
    }
    if let Some(mode) = args.modes.iter().flatten().find(|m| !m.is_available()) {
        return bad(format!("--modes {mode}: this OS has no {mode}"));
    }
    if args.pipeline.contains(&0) {
        return bad("--pipeline: at least 1 request in flight".into());
    }
    if args.clients.as_ref().is_some_and(|c| c.contains(&0)) {
        return bad("--clients: at least 1 connection".into());
    }
    if args.workers.contains(&0) {
        return bad("--workers: at least 1 event loop".into());
    }
    if args.repeat == 0 {
        return bad("--repeat: at least 1".into());
    }
    for (name, value) in [("--secs", args.secs), ("--warmup", args.warmup)] {
        if value.is_some_and(|v| !(0.0..3600.0).contains(&v)) {
            return bad(format!("{name}: a number of seconds, 0 to 3600"));
        }
    }
    if args.secs == Some(0.0) {
        return bad("--secs: the measured window cannot be empty".into());
    }
    Ok(())
}

/// Raise this process's RLIMIT_NOFILE soft limit to the hard limit (the
/// servers it starts inherit it), and say what it is now.
fn raise_nofile() -> (u64, String) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return (1024, "RLIMIT_NOFILE unknown; assuming 1024".into());
    };
    // An unlimited hard limit still stops at the kernel's fs.nr_open (one
    // number in a file, read as it is).
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(hard);
    let target = hard.min(nr_open);
    if soft >= target {
        return (soft, format!("RLIMIT_NOFILE is {soft}, already the hard limit"));
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => (
            target,
            format!(
                "raised RLIMIT_NOFILE from {soft} to {target} (the hard limit); servers inherit it"
            ),
        ),
        Err(e) => {
            (soft, format!("RLIMIT_NOFILE stays {soft}: raising it to {target} failed ({e})"))
        }
    }
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_fits_the_tables_width() {
        // The README promises every line of the output under 100 columns:
        // the default directory with every format, and a /tmp one.
        let every = [results::Format::Csv.file(), results::Format::Json.file()];
        let line = wrote_line(Path::new("bench-out"), 442.0, 4, &every);
        assert_eq!(
            line,
            "wrote in bench-out (442 s): report.md, 4 charts, bench-results.csv, bench-results.json"
        );
        assert!(line.len() < 100, "{} columns: {line}", line.len());
        let line = wrote_line(Path::new("/tmp/bench-full"), 83.0, 4, &[]);
        assert!(line.len() < 100, "{} columns: {line}", line.len());
    }
}
