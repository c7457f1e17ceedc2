//! What check found, and the four ways it says so: text for a person
//! (h2spec's shape, plus the likely mistake and the lab), JSON for
//! scripts, Gradescope's `results.json`, and JUnit XML for CI.

use serde::Serialize;

use crate::case::{Case, Outcome};

pub mod gradescope;
pub mod json;
pub mod junit;
pub mod text;

/// A case's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One case as reported.
#[derive(Clone, Debug, Serialize)]
pub struct CaseReport {
    pub id: String,
    pub title: String,
    pub status: Status,
    /// The rule: what passes.
    pub expected: String,
    /// What was seen (the bytes, shortened; a time; a figure); for a skip,
    /// why it was skipped.
    pub actual: String,
    /// The likely mistake behind a failure.
    pub mistake: Option<String>,
    /// The lab that shows it: `pingpong lab NAME`.
    pub lab: Option<String>,
    /// How long the case took.
    pub ms: u64,
    /// Where no lab shows the mistake, what does (text report only).
    #[serde(skip)]
    pub see: Option<String>,
    /// A skip's reason in a word or two, for the score line (`no --pid`).
    #[serde(skip)]
    pub skip_tag: Option<String>,
}

impl CaseReport {
    /// The report of `case`, which came out as `outcome` in `ms`.
    pub fn new(case: &Case, outcome: Outcome, ms: u64) -> CaseReport {
        let (status, actual) = match outcome {
            Outcome::Pass(seen) => (Status::Pass, seen),
            Outcome::Fail(seen) => (Status::Fail, seen),
            Outcome::Skip(why) => (Status::Skip, why),
        };
        CaseReport {
            id: case.id.into(),
            title: case.title.into(),
            status,
            expected: case.rule.into(),
            actual,
            mistake: case.mistake.map(String::from),
            lab: case.lab.map(String::from),
            ms,
            see: case.see.map(String::from),
            skip_tag: None,
        }
    }

    /// `line` of `line/ping`.
    pub fn group(&self) -> &str {
        self.id.split_once('/').map_or(&self.id, |(group, _)| group)
    }
}

/// Everything check found about one server.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The server: `python3 server.py --port 41234 (pid 4242)`.
    pub target: String,
    pub cases: Vec<CaseReport>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Report {
    /// A report of `cases` on `target`, counted.
    pub fn new(target: String, cases: Vec<CaseReport>) -> Report {
        let count = |status| cases.iter().filter(|c| c.status == status).count();
        let (passed, failed, skipped) =
            (count(Status::Pass), count(Status::Fail), count(Status::Skip));
        Report { target, cases, passed, failed, skipped }
    }

    /// `19 of 22 passed, 3 skipped (no --pid)`.
    pub fn score_line(&self) -> String {
        let mut line = format!("{} of {} passed", self.passed, self.cases.len());
        if self.failed > 0 {
            line.push_str(&format!(", {} failed", self.failed));
        }
        if self.skipped > 0 {
            let mut tags: Vec<&str> =
                self.cases.iter().filter_map(|c| c.skip_tag.as_deref()).collect();
            tags.dedup();
            line.push_str(&format!(", {} skipped", self.skipped));
            if !tags.is_empty() {
                line.push_str(&format!(" ({})", tags.join("; ")));
            }
        }
        line
    }

    /// Every case passed (or was skipped).
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

#[cfg(test)]
pub mod sample {
    //! A small report with one case of each status, for the formats' tests.
    use super::*;

    pub fn report() -> Report {
        let case =
            |id: &str, status, actual: &str, lab: Option<&str>, tag: Option<&str>| CaseReport {
                id: id.into(),
                title: format!("what {id} does"),
                status,
                expected: "\"pong\\r\\n\"".into(),
                actual: actual.into(),
                mistake: lab.map(|_| "a <send> taken for \"sendall\" & lost".into()),
                lab: lab.map(String::from),
                ms: 12,
                see: None,
                skip_tag: tag.map(String::from),
            };
        Report::new(
            "python3 server.py --port 41234 (pid 4242)".into(),
            vec![
                case("line/ping", Status::Pass, "\"pong\\n\"", None, None),
                case(
                    "flow/slow-reader",
                    Status::Fail,
                    "\"pong\\npo\" at byte 4,096, where \"pong\\n\" was due",
                    Some("short-write-lost"),
                    None,
                ),
                case("cpu/idle", Status::Skip, "needs the pid", None, Some("no --pid")),
            ],
        )
    }

    #[test]
    fn the_score_line_counts_and_says_why_cases_were_skipped() {
        assert_eq!(report().score_line(), "1 of 3 passed, 1 failed, 1 skipped (no --pid)");
    }
}
