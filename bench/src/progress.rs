//! The progress bar, in seconds of expected work rather than in runs.
//!
//! The plan knows how long each run should take ([`expected_secs`]): its
//! warm-up, its window, the perf window, a guess at the rest. The bar's
//! length is their sum in milliseconds, and while a run is under way a
//! helper thread moves the bar along that run's share with the clock, so
//! that indicatif's `{eta}` (time left at the rate seen so far) counts down
//! smoothly instead of jumping from one run's end to the next.
//!
//! [`expected_secs`]: crate::measure::expected_secs

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the helper thread moves the bar during a run.
const STEP: Duration = Duration::from_millis(200);

pub struct Progress {
    bar: ProgressBar,
    /// Runs done, and runs in all (for the message).
    done: usize,
    runs: usize,
    /// Milliseconds of expected work done so far.
    at: u64,
}

impl Progress {
    /// A bar for `runs` runs expected to take `total_secs` in all.
    pub fn new(runs: usize, total_secs: f64) -> io::Result<Progress> {
        let bar = ProgressBar::new((total_secs * 1000.0) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed:>4} [{bar:30}] {percent:>3}% ~{eta} left  {msg:.dim}",
            )
            .map_err(io::Error::other)?
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        bar.println(format!("{runs} runs, about {:.0} s by the plan", total_secs.ceil()));
        Ok(Progress { bar, done: 0, runs, at: 0 })
    }

    /// Do `work`, expected to take `secs`, shown as `label`.
    pub fn run<T>(&mut self, label: &str, secs: f64, work: impl FnOnce() -> T) -> T {
        self.bar.set_message(format!("{}/{} {label}", self.done + 1, self.runs));
        let share = (secs * 1000.0) as u64;
        let (start, bar) = (self.at, self.bar.clone());
        let (stop, stopped) = mpsc::channel::<()>();
        let out = thread::scope(|scope| {
            scope.spawn(move || {
                let t0 = Instant::now();
                // Along the run's share with the clock, stopping short of its
                // end: a run that takes longer than expected waits there.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(STEP) {
                    let ms = t0.elapsed().as_millis() as u64;
                    bar.set_position(start + ms.min(share.saturating_sub(1)));
                }
            });
            let out = work();
            let _ = stop.send(());
            out
        });
        self.done += 1;
        self.at += share;
        self.bar.set_position(self.at);
        out
    }

    /// A line above the bar.
    pub fn println(&self, line: String) {
        self.bar.println(line);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
