//! One measured run: start its server, load it, look at it from both
//! sides over a window, stop it.
//!
//! The order matters. Connections are opened and warmed up first, so the
//! window sees a server in its steady state; the slow readings (`/proc`,
//! SIGUSR1) come before and after the CPU clocks, so the clocks frame the
//! load closely; `perf` counts in a window of its own, after the measured
//! one, because its tracepoint slows every system call a little.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pingpong::server::Mode;

use crate::cpu_clock::process_cpu_ns;
use crate::driver::Driver;
use crate::figures::{self, Fig, Measure, SyscallMethod};
use crate::perf::SyscallCounter;
use crate::server::{self, Reading, Server};
use crate::workloads::{Family, Run, Target};

/// The options, checked and with the defaults of `--quick` filled in.
pub struct Settings {
    pub bin: PathBuf,
    pub secs: f64,
    pub warmup: f64,
    pub perf_secs: f64,
    pub repeat: usize,
    pub perf: bool,
    /// perf can count io_uring completions too (for uring mode).
    pub perf_uring: bool,
}

/// Measure one run: start its server, load it, look at it, stop it.
pub fn measure(run: &Run, settings: &Settings) -> io::Result<Measure> {
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

    let (warmup, secs) = windows(run, settings);
    driver.start()?;
    driver.run_for(Duration::from_secs_f64(warmup))?;

    // A slow handler answers signals only between requests, late and in
    // bunches: its counters are taken over its life instead.
    let loops = match run.target {
        _ if w.family == Family::Slow => None,
        Target::Mode { mode, workers, .. } if counts_live(mode) => {
            Some(if mode.is_selector() { workers.unwrap_or(1) } else { 1 })
        }
        _ => None,
    };
    let window = Window::measure(&mut driver, server, secs, loops.is_some())?;
    window.figures(&mut m, w.size, driver.histogram());

    if settings.perf && w.family != Family::Slow {
        let uring =
            settings.perf_uring && matches!(run.target, Target::Mode { mode: Mode::Uring, .. });
        match perf_window(&mut driver, server, settings.perf_secs, uring) {
            Ok((per_rt, ops)) => {
                m.set(Fig::PerfPerRt, per_rt);
                if let Some(ops) = ops {
                    m.set(Fig::UringOpsPerRt, ops);
                }
            }
            Err(e) => m.notes.push(format!("perf: {e}")),
        }
    }
    if let Some(loops) = loops {
        own_counters(server, loops, window.round_trips as f64, &mut m);
    }
    Ok((m, driver, loops))
}

/// The warm-up and the measured window of `run`, in seconds. A slow
/// handler needs a whole cycle (every client served once) before the loop
/// is in its steady state, and a window of a few cycles.
fn windows(run: &Run, settings: &Settings) -> (f64, f64) {
    let w = &run.workload;
    let cycle = (w.clients as u64 * w.work_ms) as f64 / 1000.0;
    (settings.warmup.max(cycle * 1.2), settings.secs.max(cycle * 2.0))
}

/// About how long [`measure`] takes on `run`, in seconds: its windows,
/// and a guess at the rest (starting and stopping the server, opening the
/// connections, attaching perf), for the progress bar's time left.
pub fn expected_secs(run: &Run, settings: &Settings) -> f64 {
    let w = &run.workload;
    let (warmup, secs) = windows(run, settings);
    let perf =
        if settings.perf && w.family != Family::Slow { settings.perf_secs + 0.3 } else { 0.0 };
    let hold = if w.idle > 0 { 0.8 } else { 0.0 };
    0.25 + warmup + secs + perf + hold + w.connections() as f64 * 40e-6
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
    let before = server.sample()?.proc.rss_bytes;
    driver.connect(server.addr, idle, 0)?;
    driver.drain()?;
    let after = server.sample()?.proc.rss_bytes;
    Ok(after.saturating_sub(before) as f64 / idle as f64)
}

/// What the measured window saw, from both sides.
struct Window {
    round_trips: u64,
    elapsed: f64,
    starved: usize,
    /// The server, before and after (its context switches among the rest).
    before: Reading,
    after: Reading,
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
        if round_trips == 0 {
            return Err(io::Error::other("no round trip completed in the window"));
        }
        Ok(Window {
            round_trips,
            elapsed,
            starved: driver.starved_since(t0),
            before,
            after,
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
            m.set(Fig::MiBps, rts * size as f64 / self.elapsed / (1024.0 * 1024.0));
        }
        m.set(Fig::P50, h.value_at_quantile(0.5) as f64);
        m.set(Fig::P99, h.value_at_quantile(0.99) as f64);
        m.set(Fig::P999, h.value_at_quantile(0.999) as f64);
        m.quantiles =
            figures::QUANTILES.iter().map(|&q| (q, h.value_at_quantile(q) as f64)).collect();
        m.set(Fig::CpuPerRt, a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / rts);
        let (c0, c1) = self.client_cpu;
        m.set(Fig::ClientCpuPerRt, c1.saturating_sub(c0) as f64 / rts);
        let user = a.proc.user.saturating_sub(b.proc.user).as_secs_f64();
        let system = a.proc.system.saturating_sub(b.proc.system).as_secs_f64();
        if user + system > 0.0 {
            m.set(Fig::UserShare, 100.0 * user / (user + system));
        }
        let switches = a.context_switches().saturating_sub(b.context_switches());
        m.set(Fig::CtxPerRt, switches as f64 / rts);
        m.set(Fig::Threads, a.proc.threads as f64);
        m.set(Fig::PeakRss, a.proc.peak_rss_bytes as f64);
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
/// must not land in CPU/rt). Returns calls per round trip, and with `uring`
/// io_uring completions per round trip.
fn perf_window(
    driver: &mut Driver,
    server: &Server,
    secs: f64,
    uring: bool,
) -> io::Result<(f64, Option<f64>)> {
    // The load pauses while perf attaches (longer with many threads); the
    // counter only starts on `enable`, once perf has acknowledged it.
    let mut counter = SyscallCounter::start(server.pid, uring)?;
    counter.enable()?;
    let before = driver.completed();
    driver.run_for(Duration::from_secs_f64(secs))?;
    let round_trips = driver.completed() - before;
    counter.disable()?;
    let (calls, ops) = counter.finish()?;
    if round_trips == 0 {
        return Err(io::Error::other("no round trip in the perf window"));
    }
    let per_rt = |n: u64| n as f64 / round_trips as f64;
    Ok((per_rt(calls), ops.map(per_rt)))
}
