//! Running the cases on a target, one after another, each with its own
//! connections and its own deadline; a server check started that dies is
//! blamed on the case it died in, and started again for the next.

use std::thread;
use std::time::{Duration, Instant};

use crate::case::{Case, Ctx, Needs, Outcome};
use crate::report::{CaseReport, Report};
use crate::target::Target;

/// Every case, in the order they run (and `--list` shows them).
pub fn all_cases() -> Vec<Case> {
    [
        &crate::line::CASES[..],
        &crate::eof::CASES,
        &crate::flow::CASES,
        &crate::conc::CASES,
        &crate::reset::CASES,
        &crate::limit::CASES,
        &crate::cpu::CASES,
        &crate::mem::CASES,
        &crate::fd::CASES,
    ]
    .concat()
}

/// The cases `only` names (ids or group names), in their usual order;
/// every case when `only` is empty. A name that matches nothing is an error.
pub fn select(only: &[String]) -> Result<Vec<Case>, String> {
    let cases = all_cases();
    if let Some(unknown) =
        only.iter().find(|name| !cases.iter().any(|c| c.id == *name || c.group() == *name))
    {
        return Err(format!("no case or group is called `{unknown}` (`--list` lists them)"));
    }
    Ok(cases
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|n| c.id == n || c.group() == n))
        .collect())
}

/// Run `cases` on `target`, each with `timeout`.
pub fn run(target: &mut Target, cases: &[Case], timeout: Duration) -> Report {
    let mut reports: Vec<CaseReport> = Vec::new();
    for case in cases {
        // A server that died after the last case ended (a SIGPIPE a moment
        // late, say) is that case's failure, and is started again.
        if let Some(death) = target.died() {
            if let Some(last) = reports.last_mut() {
                blame(last, &format!("just after this case, {death}"));
            }
            if let Err(e) = target.restart() {
                reports.push(CaseReport::new(case, could_not_restart(&e), 0));
                continue;
            }
        }
        let start = Instant::now();
        let (outcome, tag) = match skip_reason(case, target) {
            Some((why, tag)) => (Outcome::Skip(why.into()), Some(tag)),
            None => {
                let ctx = Ctx {
                    addr: target.addr,
                    pid: target.pid,
                    command: target.command.clone(),
                    timeout,
                    deadline: start + case.window + timeout,
                };
                ((case.run)(&ctx).unwrap_or_else(Outcome::Fail), None)
            }
        };
        let mut report = CaseReport::new(case, outcome, start.elapsed().as_millis() as u64);
        report.skip_tag = tag.map(String::from);
        if report.status != crate::report::Status::Skip {
            // A moment for a crash the case caused to show.
            thread::sleep(Duration::from_millis(50));
            if let Some(death) = target.died() {
                blame(&mut report, &death);
                if let Err(e) = target.restart() {
                    report.actual.push_str(&format!("; and it {e}"));
                }
            }
        }
        reports.push(report);
    }
    Report::new(target.describe(), reports)
}

/// Why `case` cannot run on `target`, in words and in a tag for the score line.
fn skip_reason(case: &Case, target: &Target) -> Option<(&'static str, &'static str)> {
    match case.needs {
        Needs::Pid if target.pid.is_none() => Some((
            "needs the server's pid, to read /proc or send it signals: give --pid PID, \
             or let check start it (-- CMD)",
            "no --pid",
        )),
        Needs::Command if target.command.is_none() => Some((
            "needs the command that starts the server, to start a copy with 64 fds: \
             -- CMD ARGS ({port})",
            "no -- CMD",
        )),
        _ => None,
    }
}

/// Make `report` a failure because the server died: how, then what the
/// case itself saw.
fn blame(report: &mut CaseReport, death: &str) {
    let saw = match report.status {
        crate::report::Status::Skip => String::new(),
        _ => format!(" (the case saw: {})", report.actual),
    };
    report.status = crate::report::Status::Fail;
    report.actual = format!("{death}{saw}");
}

fn could_not_restart(e: &std::io::Error) -> Outcome {
    Outcome::Fail(format!("the server died, and could not be started again: {e}"))
}
