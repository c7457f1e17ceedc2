//! The figures of a run, and their medians and ranges over its repeats.
//!
//! A run's [`Measure`] holds a value for each [`Fig`] it has; a [`Row`] of
//! the report holds the measures of every repeat, and gives their median
//! and range, already written for people (`156k`, `6.3µs`, `160B`).

use std::fmt::Write as _;

use crate::workloads::{bytes, Run};

/// Every figure a run can report. Not every run has every figure: a peer
/// has no counters of its own, an echo load has a bandwidth, only the hold
/// test has a memory cost per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fig {
    /// Round trips completed per second (all connections).
    Rps,
    /// Active connections that got no reply in the whole window.
    Starved,
    /// Payload echoed per second, one direction (echo loads).
    MiBps,
    /// Latency percentiles, nanoseconds.
    P50,
    P99,
    P999,
    /// Server CPU time (user + system, all threads) per round trip, ns.
    CpuPerRt,
    /// Share of that CPU time spent in user space, percent.
    UserShare,
    /// The load generator's own CPU time per round trip, ns: how much of
    /// the machine the measuring took.
    ClientCpuPerRt,
    /// System calls per round trip by the server's own counters.
    SyscallsPerRt,
    /// System calls per round trip counted by `perf` (every call).
    PerfPerRt,
    /// io_uring operations completed per round trip, counted by `perf`
    /// (the `io_uring:io_uring_complete` tracepoint; uring mode).
    UringOpsPerRt,
    /// Events handed out per wake-up of the selector.
    EventsPerWakeup,
    /// Context switches of the server per round trip.
    CtxPerRt,
    /// Server threads during the measurement.
    Threads,
    /// Peak resident memory (VmHWM), bytes.
    PeakRss,
    /// Resident memory per idle connection (hold test), bytes.
    RssPerConn,
}

impl Fig {
    pub const ALL: [Fig; 17] = [
        Fig::Rps,
        Fig::Starved,
        Fig::MiBps,
        Fig::P50,
        Fig::P99,
        Fig::P999,
        Fig::CpuPerRt,
        Fig::UserShare,
        Fig::ClientCpuPerRt,
        Fig::SyscallsPerRt,
        Fig::PerfPerRt,
        Fig::UringOpsPerRt,
        Fig::EventsPerWakeup,
        Fig::CtxPerRt,
        Fig::Threads,
        Fig::PeakRss,
        Fig::RssPerConn,
    ];

    /// The column heading in report.md.
    pub fn heading(self) -> &'static str {
        match self {
            Fig::Rps => "round trips/s",
            Fig::Starved => "starved conns",
            Fig::MiBps => "MiB/s",
            Fig::P50 => "p50",
            Fig::P99 => "p99",
            Fig::P999 => "p99.9",
            Fig::CpuPerRt => "CPU/rt",
            Fig::UserShare => "user %",
            Fig::ClientCpuPerRt => "client CPU/rt",
            Fig::SyscallsPerRt => "syscalls/rt",
            Fig::PerfPerRt => "perf syscalls/rt",
            Fig::UringOpsPerRt => "io_uring ops/rt",
            Fig::EventsPerWakeup => "events/wakeup",
            Fig::CtxPerRt => "ctx switches/rt",
            Fig::Threads => "threads",
            Fig::PeakRss => "peak RSS",
            Fig::RssPerConn => "RSS/idle conn",
        }
    }

    /// The figure's name in `bench-results.csv` and `bench-results.json`:
    /// spelled out, its unit last (values there are raw numbers in it).
    pub fn key(self) -> &'static str {
        match self {
            Fig::Rps => "round_trips_per_s",
            Fig::Starved => "starved_connections",
            Fig::MiBps => "echoed_mib_per_s",
            Fig::P50 => "latency_p50_ns",
            Fig::P99 => "latency_p99_ns",
            Fig::P999 => "latency_p99_9_ns",
            Fig::CpuPerRt => "server_cpu_ns_per_round_trip",
            Fig::UserShare => "server_cpu_user_percent",
            Fig::ClientCpuPerRt => "client_cpu_ns_per_round_trip",
            Fig::SyscallsPerRt => "syscalls_per_round_trip",
            Fig::PerfPerRt => "perf_syscalls_per_round_trip",
            Fig::UringOpsPerRt => "perf_io_uring_ops_per_round_trip",
            Fig::EventsPerWakeup => "events_per_wakeup",
            Fig::CtxPerRt => "context_switches_per_round_trip",
            Fig::Threads => "threads",
            Fig::PeakRss => "peak_rss_bytes",
            Fig::RssPerConn => "rss_bytes_per_idle_connection",
        }
    }

    /// A value of this figure, for people.
    pub fn show(self, v: f64) -> String {
        match self {
            Fig::Rps => rate(v),
            Fig::P50 | Fig::P99 | Fig::P999 | Fig::CpuPerRt | Fig::ClientCpuPerRt => duration_ns(v),
            Fig::MiBps => format!("{v:.0}"),
            Fig::UserShare => format!("{v:.0}"),
            Fig::SyscallsPerRt | Fig::PerfPerRt | Fig::UringOpsPerRt | Fig::EventsPerWakeup => {
                format!("{v:.2}")
            }
            Fig::CtxPerRt => format!("{v:.3}"),
            Fig::Starved if v == 0.0 => "-".into(),
            Fig::Threads | Fig::Starved => format!("{v:.0}"),
            Fig::PeakRss | Fig::RssPerConn => bytes(v),
        }
    }
}

/// How the `syscalls/rt` figure was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyscallMethod {
    /// Counters read over the measured window (SIGUSR1 before and after).
    #[default]
    Window,
    /// The exit line's total over every round trip of the server's life,
    /// warm-up and connection set-up included (the thread modes, see
    /// `counts_live`, and the slow-handler load).
    Lifetime,
}

impl SyscallMethod {
    /// `window` or `lifetime`, as bench-results.csv writes it.
    pub fn name(self) -> &'static str {
        match self {
            SyscallMethod::Window => "window",
            SyscallMethod::Lifetime => "lifetime",
        }
    }
}

/// The figures of one run.
#[derive(Clone, Debug, Default)]
pub struct Measure {
    pub values: [Option<f64>; Fig::ALL.len()],
    /// `(quantile, latency ns)` for the percentile chart.
    pub quantiles: Vec<(f64, f64)>,
    pub method: SyscallMethod,
    /// Things worth a footnote (a perf failure, a missing stats line).
    pub notes: Vec<String>,
}

impl Measure {
    pub fn set(&mut self, fig: Fig, value: f64) {
        if value.is_finite() {
            self.values[fig as usize] = Some(value);
        }
    }

    pub fn get(&self, fig: Fig) -> Option<f64> {
        self.values[fig as usize]
    }
}

/// The quantiles drawn in the latency chart.
pub const QUANTILES: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

/// Median and range of one figure over the repeats of a run.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &mut [f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median =
            if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Spread { median, min: values[0], max: values[n - 1] })
    }
}

/// One row of the report: a run of the plan, and what its repeats gave.
pub struct Row {
    pub run: Run,
    /// One entry per repeat: the figures, or why the run failed.
    pub outcomes: Vec<Result<Measure, String>>,
}

impl Row {
    /// The median and range of `fig` over the repeats that succeeded.
    pub fn spread(&self, fig: Fig) -> Option<Spread> {
        let mut values: Vec<f64> =
            self.outcomes.iter().filter_map(|o| o.as_ref().ok()?.get(fig)).collect();
        Spread::of(&mut values)
    }

    /// The median of `fig`.
    pub fn median(&self, fig: Fig) -> Option<f64> {
        self.spread(fig).map(|s| s.median)
    }

    /// Median latency at each charted quantile.
    pub fn quantiles(&self) -> Vec<(f64, f64)> {
        QUANTILES
            .iter()
            .filter_map(|&q| {
                let mut at: Vec<f64> = self
                    .outcomes
                    .iter()
                    .filter_map(|o| o.as_ref().ok())
                    .filter_map(|m| m.quantiles.iter().find(|(mq, _)| *mq == q).map(|p| p.1))
                    .collect();
                Spread::of(&mut at).map(|s| (q, s.median))
            })
            .collect()
    }

    /// Why the row has no figures: skipped, or every repeat failed.
    pub fn reason(&self) -> Option<String> {
        if let Some(skip) = &self.run.skip {
            return Some(skip.clone());
        }
        if self.outcomes.iter().any(Result::is_ok) {
            return None;
        }
        let first = self.outcomes.iter().find_map(|o| o.as_ref().err());
        Some(format!("failed: {}", first.map_or("not run", String::as_str)))
    }

    /// How `syscalls/rt` was counted (the first repeat that succeeded).
    pub fn method(&self) -> SyscallMethod {
        self.outcomes.iter().find_map(|o| o.as_ref().ok()).map(|m| m.method).unwrap_or_default()
    }

    /// One figure as a cell: the median, and with repeats its range.
    pub fn cell(&self, fig: Fig, with_range: bool) -> String {
        let Some(s) = self.spread(fig) else {
            return "-".into();
        };
        let mut cell = fig.show(s.median);
        if fig == Fig::SyscallsPerRt && self.method() == SyscallMethod::Lifetime {
            cell.push('†');
        }
        if with_range && self.outcomes.len() > 1 && s.min != s.max {
            let _ = write!(cell, " ({}–{})", fig.show(s.min), fig.show(s.max));
        }
        cell
    }
}

/// `950`, `12.3k`, `156k`, `1.20M`.
pub fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e5 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `850ns`, `12.3µs`, `4.56ms`, `2.01s`.
pub fn duration_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_like_people_write_them() {
        assert_eq!(rate(156_000.0), "156k");
        assert_eq!(rate(12_340.0), "12.3k");
        assert_eq!(duration_ns(6_300.0), "6.3µs");
        assert_eq!(duration_ns(2_000_000_000.0), "2.00s");
    }

    #[test]
    fn medians_and_ranges() {
        let s = Spread::of(&mut [3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert!(Spread::of(&mut []).is_none());
    }
}
