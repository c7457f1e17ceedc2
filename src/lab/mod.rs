//! The break-it labs: `pingpong lab NAME` switches one guard off
//! (`serve --bug NAME`, see [`crate::bugs`]) and measures what goes
//! wrong, side by side with the same server guarded.
//!
//! Each lab is one file: the server it starts, what it does to it, and what
//! it counts. [`run`] plays the lab twice (guard on, guard off), and a third
//! time under strace where strace is installed, to show the lines that give
//! the bug away. Every count comes from outside the server ([`probe`]): CPU
//! and memory from `/proc`, wait returns from `--stats`, bytes and replies
//! from the lab's own clients.
//!
//! `docs/labs.md` has a section per lab: where it happened in a real
//! project, what to run, what to look for, and a question to answer.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bugs::Bug;
use probe::{LabServer, Launch};

mod always_writable;
mod blocking_client;
mod edge_no_drain;
mod eintr_fatal;
mod no_backpressure;
mod no_line_limit;
mod no_spare_fd;
pub mod probe;
mod short_write_lost;
mod sigpipe;
mod stale_events;

/// One lab: a bug, the server that shows it, and how to make it show.
pub struct Lab {
    /// The guard switched off.
    pub bug: Bug,
    /// What the lab does, in one line, for `pingpong lab --list`.
    pub scenario: &'static str,
    /// `serve` options, besides `--port 0 --stats` and the `--bug` itself.
    pub serve: &'static [&'static str],
    /// RLIMIT_NOFILE for the server, when the lab needs fds to run out.
    pub fd_limit: Option<u32>,
    /// The calls strace is told to trace, and words that mark the lines
    /// worth showing: the excerpt starts at the first line holding the
    /// first mark, and takes the next lines holding any mark.
    pub strace: (&'static str, &'static [&'static str]),
    /// Where no word marks the first line worth showing (a `sendto` that
    /// took fewer bytes than it was given), the test that finds it instead
    /// of the first mark.
    pub first_line: Option<fn(&str) -> bool>,
    /// Drive the server into the trigger and count what happens.
    pub drive: fn(&mut LabServer) -> io::Result<Symptoms>,
}

/// What one run measured, and whether the bug's symptom showed.
#[derive(Clone, Debug, Default)]
pub struct Symptoms {
    /// The readings, as shown: `0.98 core`, `184,000 waits/s`.
    pub readings: Vec<String>,
    /// Whether the symptom the lab looks for appeared.
    pub broken: bool,
}

impl Symptoms {
    /// Add a reading.
    pub fn reading(mut self, reading: impl Into<String>) -> Symptoms {
        self.readings.push(reading.into());
        self
    }

    /// Mark the symptom as seen when `seen`.
    pub fn broken_if(mut self, seen: bool) -> Symptoms {
        self.broken |= seen;
        self
    }
}

impl fmt::Display for Symptoms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.readings.join(", "))
    }
}

/// A lab played both ways.
#[derive(Debug)]
pub struct Outcome {
    /// Which lab.
    pub bug: Bug,
    /// With the guard in place.
    pub guarded: Symptoms,
    /// With `--bug NAME`.
    pub broken: Symptoms,
    /// The strace lines that show the bug, or why there are none.
    pub strace: Result<Vec<String>, String>,
    /// How long the lab took, in seconds.
    pub secs: f64,
}

impl Outcome {
    /// The lab did what it teaches: the symptom with the bug, none without.
    pub fn shows_bug(&self) -> bool {
        self.broken.broken && !self.guarded.broken
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.bug.name();
        write!(f, "{name:<17} guard on: {} | guard off: {}", self.guarded, self.broken)
    }
}

impl Lab {
    /// Whether `line` (of strace's, without its pid) is where the excerpt
    /// starts: it holds the first mark, or passes [`Lab::first_line`].
    pub fn starts_excerpt(&self, line: &str) -> bool {
        match self.first_line {
            Some(first) => first(line),
            None => self.strace.1.first().is_some_and(|mark| line.contains(mark)),
        }
    }
}

/// Every lab, in [`Bug::ALL`]'s order.
pub fn labs() -> Vec<Lab> {
    vec![
        no_spare_fd::LAB,
        always_writable::LAB,
        edge_no_drain::LAB,
        short_write_lost::LAB,
        no_backpressure::LAB,
        no_line_limit::LAB,
        sigpipe::LAB,
        blocking_client::LAB,
        stale_events::LAB,
        eintr_fatal::LAB,
    ]
}

/// The lab for `bug`.
pub fn lab(bug: Bug) -> Option<Lab> {
    labs().into_iter().find(|lab| lab.bug == bug)
}

/// Play `lab` with the server binary `bin`: guarded, broken, and (with
/// `strace`, when it is installed) broken again under strace.
pub fn run(lab: &Lab, bin: &Path, strace: bool) -> io::Result<Outcome> {
    let start = Instant::now();
    let launch = |bug: Option<Bug>, traced: Option<PathBuf>| {
        let mut args: Vec<String> = lab.serve.iter().map(|s| s.to_string()).collect();
        args.extend(bug.map(|bug| format!("--bug={bug}")));
        let strace = traced.map(|file| (lab.strace.0.to_string(), file));
        Launch { args, fd_limit: lab.fd_limit, strace }
    };
    let play = |launch: Launch| -> io::Result<Symptoms> {
        let mut server = LabServer::start(bin, &launch)?;
        let symptoms = (lab.drive)(&mut server)?;
        let _ = server.stop();
        Ok(symptoms)
    };
    let guarded = play(launch(None, None))?;
    let broken = play(launch(Some(lab.bug), None))?;
    let strace = match strace.then(strace_missing) {
        None => Err("not asked for".into()),
        Some(Some(why)) => Err(why),
        Some(None) => {
            let file = std::env::temp_dir().join(format!(
                "pingpong-lab-{}-{}.strace",
                lab.bug,
                std::process::id()
            ));
            let excerpt = play(launch(Some(lab.bug), Some(file.clone())))
                .and_then(|_| std::fs::read_to_string(&file))
                .map(|text| excerpt(&text, lab))
                .map_err(|e| format!("strace: {e}"));
            let _ = std::fs::remove_file(&file);
            excerpt
        }
    };
    Ok(Outcome { bug: lab.bug, guarded, broken, strace, secs: start.elapsed().as_secs_f64() })
}

/// Why strace cannot be used here, if it cannot.
fn strace_missing() -> Option<String> {
    let ran =
        std::process::Command::new("strace").args(["-qq", "-o", "/dev/null", "true"]).output();
    match ran {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some("strace may not trace here (ptrace forbidden?)".into()),
        Err(_) => Some("strace is not installed".into()),
    }
}

/// The three lines of `trace` that show the bug: from the first that
/// starts the excerpt ([`Lab::starts_excerpt`]), the lines holding any of
/// the lab's marks. Each loses strace's pid column.
fn excerpt(trace: &str, lab: &Lab) -> Vec<String> {
    let marks = lab.strace.1;
    let mut lines =
        trace.lines().map(|line| line.split_once(' ').map_or(line, |(_, call)| call.trim_start()));
    let Some(first) = lines.find(|line| lab.starts_excerpt(line)) else { return Vec::new() };
    let rest = lines.filter(|line| marks.iter().any(|mark| line.contains(mark)));
    std::iter::once(first).chain(rest).take(3).map(String::from).collect()
}

/// `184000` → `184,000`: counts a person can read at a glance.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excerpt_starts_at_the_first_mark_and_keeps_marked_lines() {
        let trace = "12 epoll_wait(3, [], 1, -1) = 0\n\
                     12 accept4(4, NULL) = -1 EMFILE (Too many open files)\n\
                     12 read(5, \"x\", 1) = 1\n\
                     12 epoll_wait(3, [{EPOLLIN}], 1, -1) = 1\n\
                     12 accept4(4, NULL) = -1 EMFILE (Too many open files)\n\
                     12 epoll_wait(3, [{EPOLLIN}], 1, -1) = 1\n";
        let lab = Lab {
            strace: ("accept4,?epoll_wait,epoll_pwait", &["EMFILE", "epoll_"]),
            ..no_spare_fd::LAB
        };
        let lines = excerpt(trace, &lab);
        assert_eq!(
            lines,
            [
                "accept4(4, NULL) = -1 EMFILE (Too many open files)",
                "epoll_wait(3, [{EPOLLIN}], 1, -1) = 1",
                "accept4(4, NULL) = -1 EMFILE (Too many open files)",
            ]
        );
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(184_000.4), "184,000");
        assert_eq!(thousands(3.0), "3");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
