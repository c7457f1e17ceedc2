//! `--format text` (the default): h2spec's shape, a line per case under
//! its group, a failure spelled out as the rule, `expected:` and
//! `actual:`, plus what pingpong adds: the likely mistake and the lab
//! that shows it. It ends with the score line. Coloured only when stdout
//! is a terminal (and `NO_COLOR` is not set).

use super::{CaseReport, Report, Status};

/// The report for a person.
pub fn render(report: &Report, colour: bool) -> String {
    let paint = |code: &str, text: &str| match colour {
        true => format!("\x1b[{code}m{text}\x1b[0m"),
        false => text.to_string(),
    };
    let mut out = format!("pingpong check: {}\n", report.target);
    let mut group = "";
    for case in &report.cases {
        if case.group() != group {
            group = case.group();
            out.push_str(&format!("\n{group}\n"));
        }
        let (mark, code) = match case.status {
            Status::Pass => ("\u{2714}", "32"),
            Status::Fail => ("\u{00d7}", "31"),
            Status::Skip => ("-", "33"),
        };
        out.push_str(&format!("  {} {}: {}\n", paint(code, mark), case.id, case.title));
        match case.status {
            Status::Pass => {}
            Status::Fail => {
                for line in failure_lines(case, "      ") {
                    out.push_str(&paint(code, &line));
                    out.push('\n');
                }
            }
            Status::Skip => out.push_str(&format!("      skipped: {}\n", case.actual)),
        }
    }
    let score = report.score_line();
    let code = match (report.failed, report.skipped) {
        (0, 0) => "32",
        (0, _) => "33",
        _ => "31",
    };
    out.push_str(&format!("\n{}\n", paint(code, &score)));
    out
}

/// A failure's lines: `expected:`, `actual:`, the likely mistake, the lab
/// (or what else shows it), each after `indent`.
pub fn failure_lines(case: &CaseReport, indent: &str) -> Vec<String> {
    let mut lines = vec![
        format!("{indent}expected: {}", case.expected),
        format!("{indent}  actual: {}", case.actual),
    ];
    if let Some(mistake) = &case.mistake {
        lines.push(format!("{indent} mistake: {mistake}"));
    }
    match (&case.lab, &case.see) {
        (Some(lab), _) => lines.push(format!("{indent}     lab: pingpong lab {lab}")),
        (None, Some(see)) => lines.push(format!("{indent}     see: {see}")),
        (None, None) => {}
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_rule_expected_actual_mistake_and_lab() {
        let text = render(&super::super::sample::report(), false);
        let want = "pingpong check: python3 server.py --port 41234 (pid 4242)

line
  \u{2714} line/ping: what line/ping does

flow
  \u{00d7} flow/slow-reader: what flow/slow-reader does
      expected: \"pong\\r\\n\"
        actual: \"pong\\npo\" at byte 4,096, where \"pong\\n\" was due
       mistake: a <send> taken for \"sendall\" & lost
           lab: pingpong lab short-write-lost

cpu
  - cpu/idle: what cpu/idle does
      skipped: needs the pid

1 of 3 passed, 1 failed, 1 skipped (no --pid)
";
        assert_eq!(text, want);
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_only_when_asked() {
        let text = render(&super::super::sample::report(), true);
        assert!(text.contains("\x1b[31m\u{00d7}\x1b[0m flow/slow-reader"), "{text}");
        assert!(text.ends_with("\x1b[31m1 of 3 passed, 1 failed, 1 skipped (no --pid)\x1b[0m\n"));
    }
}
