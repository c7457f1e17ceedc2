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
//! ([`driver`]), warms up, then measures a window: round trips and their
//! latencies on the client side, CPU time, memory, threads and system calls
//! on the server side. The figures go to a table on stdout, to
//! `DIR/report.md` and to SVG charts ([`report`], [`charts`]).
//!
//! ```text
//! pingpong-bench --quick                          # about a minute
//! pingpong-bench --modes epoll,threads --clients 100,10000 --secs 5 --repeat 3
//! pingpong-bench --peer c-epoll='/tmp/c-epoll {port}'
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
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{ArgAction, Parser};
use indicatif::{ProgressBar, ProgressStyle};

mod charts;
mod cpu_clock;
mod driver;
mod report;
mod server;
mod workloads;

use cpu_clock::process_cpu_ns;
use driver::Driver;
use hdrhistogram::Histogram;
use pingpong::server::Mode;
use report::{Fig, Measure, Row, SyscallMethod};
use server::{Sample, Server, SyscallCounter};
use workloads::{Family, Peer, Run, Target};

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

/// The options, checked and with the defaults of `--quick` filled in.
struct Settings {
    bin: PathBuf,
    secs: f64,
    warmup: f64,
    perf_secs: f64,
    repeat: usize,
    perf: bool,
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
    };
    let (nofile, nofile_note) = raise_nofile();
    // rlim_t is u64 on Linux but i64 on FreeBSD: one conversion for both.
    #[allow(clippy::useless_conversion)]
    let nofile = u64::try_from(nofile).unwrap_or(0);
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
    let families = args.workloads.clone().unwrap_or_else(|| {
        vec![
            Family::Ping,
            Family::Echo,
            Family::Pipeline,
            Family::Slow,
            Family::Hold,
        ]
    });
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
    let mut rows: Vec<Row> = plan
        .into_iter()
        .map(|run| Row {
            run,
            outcomes: Vec::new(),
        })
        .collect();
    let todo = rows.iter().filter(|r| r.run.skip.is_none()).count();
    std::fs::create_dir_all(&args.out)?;

    let bar = ProgressBar::new((todo * settings.repeat) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .map_err(io::Error::other)?
            .progress_chars("=> "),
    );
    // Interleaved: every pair once, then every pair again.
    for _ in 0..settings.repeat {
        for row in rows.iter_mut().filter(|r| r.run.skip.is_none()) {
            bar.set_message(format!("{} / {}", row.run.workload.label(), row.run.target));
            let outcome = measure(&row.run, &settings).map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                bar.println(format!(
                    "{} / {}: {e}",
                    row.run.workload.label(),
                    row.run.target
                ));
            }
            row.outcomes.push(outcome);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    print!("{}", report::table(&rows));
    let charts = charts::draw_all(&args.out, &rows)?;
    let context = report::Context {
        // This command line, quoted so that it can be pasted into a shell.
        command: shell_words::join(std::env::args()),
        started,
        elapsed_secs: clock.elapsed().as_secs_f64(),
        secs: settings.secs,
        warmup: settings.warmup,
        repeat: settings.repeat,
        nofile_note,
        perf_note,
        charts: charts.clone(),
    };
    report::write_markdown(&args.out, &rows, &context)?;
    let mut written = vec![args.out.join("report.md")];
    written.extend(charts.iter().map(|(file, _)| args.out.join(file)));
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!(
        "\n† lifetime count (the mode's counters are complete only at exit). wrote {} in {:.0} s",
        names.join(", "),
        clock.elapsed().as_secs_f64()
    );
    Ok(())
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
        return bad(format!(
            "--size {s}: at most 65536 (the server's longest line, --max-line)"
        ));
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

/// Measure one run: start its server, load it, look at it, stop it.
fn measure(run: &Run, settings: &Settings) -> io::Result<Measure> {
    let mut server = Server::start(&settings.bin, &run.target, &run.workload)?;
    let (mut m, driver, loops) = match load(run, settings, &server) {
        Ok(done) => done,
        Err(e) => return Err(server.explain(e)),
    };
    let lifetime_rts = driver.completed();
    drop(driver); // close every connection before asking the server to stop
    let exit_stats = server.stop()?;
    if loops.is_none() && matches!(run.target, Target::Mode { .. }) {
        match exit_stats.as_ref().and_then(|s| s.get("syscalls")) {
            Some(total) => {
                m.set(Fig::SyscallsPerRt, total / lifetime_rts.max(1) as f64);
                m.method = SyscallMethod::Lifetime;
            }
            None => m.notes.push("no stats line at exit".into()),
        }
    }
    Ok(m)
}

/// Whether `mode`'s SIGUSR1 counters are up to date at any moment, so that
/// two answers frame the window. Every mode but blocking prints them, but the
/// thread modes add up a connection's system calls only when it closes: over
/// a window of open connections they would count none, so theirs are taken
/// over the server's life, from the line it prints at exit.
fn counts_live(mode: Mode) -> bool {
    mode.stats_on_sigusr1() && !matches!(mode, Mode::Threads | Mode::Pool)
}

/// The measuring itself, on a server that runs: connect, (hold idle
/// connections,) warm up, measure the window, count system calls. Returns
/// the figures, the driver (its connections still open) and, for servers
/// that answer SIGUSR1, how many event loops answer.
fn load(
    run: &Run,
    settings: &Settings,
    server: &Server,
) -> io::Result<(Measure, Driver, Option<usize>)> {
    let w = &run.workload;
    let mut driver = Driver::new(w.size, w.pipeline)?;
    let mut m = Measure::default();
    driver.connect(server.addr, w.clients, w.pipeline)?;
    if w.idle > 0 {
        let per_conn = hold_idle(&mut driver, server, w.idle)?;
        m.set(Fig::RssPerConn, per_conn);
    }

    // A slow handler needs a whole cycle (every client served once) before
    // the loop is in its steady state, and a window of a few cycles.
    let cycle = (w.clients as u64 * w.work_ms) as f64 / 1000.0;
    driver.start()?;
    driver.run_for(Duration::from_secs_f64(settings.warmup.max(cycle * 1.2)))?;

    // A slow handler answers signals only between requests, late and in
    // bunches: its counters are taken over its life instead.
    let loops = match run.target {
        _ if w.family == Family::Slow => None,
        Target::Mode { mode, workers, .. } if counts_live(mode) => Some(if mode.is_selector() {
            workers.unwrap_or(1)
        } else {
            1
        }),
        _ => None,
    };
    let window = Window::measure(
        &mut driver,
        server,
        settings.secs.max(cycle * 2.0),
        loops.is_some(),
    )?;
    window.figures(&mut m, w.size, driver.histogram());

    if settings.perf && w.family != Family::Slow {
        match perf_window(&mut driver, server, settings.perf_secs) {
            Ok(per_rt) => m.set(Fig::PerfPerRt, per_rt),
            Err(e) => m.notes.push(format!("perf: {e}")),
        }
    }
    if let Some(loops) = loops {
        own_counters(server, loops, window.round_trips as f64, &mut m);
    }
    Ok((m, driver, loops))
}

/// The hold test: open `idle` connections that each send one request and
/// then stay silent, and return the server's resident memory per
/// connection.
fn hold_idle(driver: &mut Driver, server: &Server, idle: usize) -> io::Result<f64> {
    // Let the active connections run a moment first, so the memory the
    // server needs anyway (buffers, the selector's tables) is in the
    // "before" figure and only the idle connections make the difference.
    driver.start()?;
    driver.run_for(Duration::from_millis(100))?;
    driver.drain()?;
    let before = server.sample()?.rss;
    driver.connect(server.addr, idle, 0)?;
    driver.drain()?;
    let after = server.sample()?.rss;
    Ok(after.saturating_sub(before) as f64 / idle as f64)
}

/// What the measured window saw, from both sides.
struct Window {
    round_trips: u64,
    elapsed: f64,
    starved: usize,
    /// The server, before and after.
    before: Sample,
    after: Sample,
    /// Its context switches, before and after.
    switches: (u64, u64),
    /// Our own CPU time (ns), before and after.
    client_cpu: (u64, u64),
}

impl Window {
    /// Run the load for `secs` with latencies recorded, looking at the
    /// server just before and just after; `signal` asks it for its
    /// counters at both ends (SIGUSR1).
    fn measure(
        driver: &mut Driver,
        server: &Server,
        secs: f64,
        signal: bool,
    ) -> io::Result<Window> {
        let me = std::process::id() as i32;
        // The slow readings first, the CPU clocks last, so they frame the
        // load closely.
        let switches0 = server.context_switches();
        let before = server.sample()?;
        if signal {
            server.request_stats()?;
        }
        let client0 = process_cpu_ns(me)?;
        let completed = driver.completed();
        driver.measure(true);
        let t0 = Instant::now();
        driver.run_for(Duration::from_secs_f64(secs))?;
        let elapsed = t0.elapsed().as_secs_f64();
        driver.measure(false);
        let round_trips = driver.completed() - completed;
        let client1 = process_cpu_ns(me)?;
        let after = server.sample()?;
        if signal {
            server.request_stats()?;
        }
        let switches1 = server.context_switches();
        if round_trips == 0 {
            return Err(io::Error::other("no round trip completed in the window"));
        }
        Ok(Window {
            round_trips,
            elapsed,
            starved: driver.starved_since(t0),
            before,
            after,
            switches: (switches0, switches1),
            client_cpu: (client0, client1),
        })
    }

    /// The figures of the window, per round trip where that is how they read.
    fn figures(&self, m: &mut Measure, size: usize, h: &Histogram<u64>) {
        let rts = self.round_trips as f64;
        let (b, a) = (&self.before, &self.after);
        m.set(Fig::Rps, rts / self.elapsed);
        m.set(Fig::Starved, self.starved as f64);
        if size > 0 {
            m.set(
                Fig::MiBps,
                rts * size as f64 / self.elapsed / (1024.0 * 1024.0),
            );
        }
        m.set(Fig::P50, h.value_at_quantile(0.5) as f64);
        m.set(Fig::P99, h.value_at_quantile(0.99) as f64);
        m.set(Fig::P999, h.value_at_quantile(0.999) as f64);
        m.quantiles = report::QUANTILES
            .iter()
            .map(|&q| (q, h.value_at_quantile(q) as f64))
            .collect();
        m.set(
            Fig::CpuPerRt,
            a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / rts,
        );
        let (c0, c1) = self.client_cpu;
        m.set(Fig::ClientCpuPerRt, c1.saturating_sub(c0) as f64 / rts);
        let user = a.utime.saturating_sub(b.utime);
        let system = a.stime.saturating_sub(b.stime);
        if user + system > 0 {
            m.set(Fig::UserShare, 100.0 * user as f64 / (user + system) as f64);
        }
        let (s0, s1) = self.switches;
        m.set(Fig::CtxPerRt, s1.saturating_sub(s0) as f64 / rts);
        m.set(Fig::Threads, a.threads as f64);
        m.set(Fig::PeakRss, a.hwm as f64);
    }
}

/// The server's own counters over the window: the two `stats:` answers to
/// SIGUSR1 (one line per event loop each time), subtracted.
fn own_counters(server: &Server, loops: usize, round_trips: f64, m: &mut Measure) {
    match server.signalled_stats(2 * loops, Duration::from_secs(3)) {
        Ok(lines) => {
            let start = server::sum_stats(&lines[..loops]);
            let end = server::sum_stats(&lines[loops..]);
            let delta = |k: &str| end.get(k).unwrap_or(&0.0) - start.get(k).unwrap_or(&0.0);
            m.set(Fig::SyscallsPerRt, delta("syscalls") / round_trips);
            if delta("wakeups") > 0.0 {
                m.set(Fig::EventsPerWakeup, delta("events") / delta("wakeups"));
            }
            m.method = SyscallMethod::Window;
        }
        Err(e) => m.notes.push(format!("SIGUSR1 counters: {e}")),
    }
}

/// Count every system call the server makes over a window of its own,
/// after the measured one (the tracepoint slows every call a little, which
/// must not land in CPU/rt). Returns calls per round trip.
fn perf_window(driver: &mut Driver, server: &Server, secs: f64) -> io::Result<f64> {
    // The load pauses while perf attaches (longer with many threads); the
    // counter only starts on `enable`, once perf has acknowledged it.
    let mut counter = SyscallCounter::start(server.pid)?;
    counter.enable()?;
    let before = driver.completed();
    driver.run_for(Duration::from_secs_f64(secs))?;
    let round_trips = driver.completed() - before;
    counter.disable()?;
    let calls = counter.finish()?;
    if round_trips == 0 {
        return Err(io::Error::other("no round trip in the perf window"));
    }
    Ok(calls as f64 / round_trips as f64)
}

/// Raise this process's RLIMIT_NOFILE soft limit to the hard limit (the
/// servers it starts inherit it), and say what it is now.
fn raise_nofile() -> (libc::rlim_t, String) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return (1024, "RLIMIT_NOFILE unknown; assuming 1024".into());
    };
    // An unlimited hard limit still stops at the kernel's fs.nr_open.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(hard);
    let target = hard.min(nr_open);
    if soft >= target {
        return (
            soft,
            format!("RLIMIT_NOFILE is {soft}, already the hard limit"),
        );
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => (
            target,
            format!(
                "raised RLIMIT_NOFILE from {soft} to {target} (the hard limit); servers inherit it"
            ),
        ),
        Err(e) => (
            soft,
            format!("RLIMIT_NOFILE stays {soft}: raising it to {target} failed ({e})"),
        ),
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
