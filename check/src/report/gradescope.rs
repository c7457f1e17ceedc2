//! `--format gradescope`: the `results.json` Gradescope's autograder reads
//! (`score`, `execution_time`, `output`, `tests[]` with `name`, `score`,
//! `max_score`, `status`, `output`). A case is worth one point; a skipped
//! case is worth none (max_score 0), so it neither helps nor hurts.

use serde::Serialize;

use super::{Report, Status};

#[derive(Serialize)]
struct Results<'a> {
    score: f64,
    execution_time: f64,
    output: String,
    tests: Vec<Test<'a>>,
}

#[derive(Serialize)]
struct Test<'a> {
    name: String,
    number: &'a str,
    score: f64,
    max_score: f64,
    status: &'static str,
    output: String,
}

/// The report as Gradescope's results.json.
pub fn render(report: &Report) -> String {
    let tests = report
        .cases
        .iter()
        .map(|case| {
            let (score, max_score, status, output) = match case.status {
                Status::Pass => (1.0, 1.0, "passed", format!("actual: {}", case.actual)),
                Status::Fail => {
                    (0.0, 1.0, "failed", super::text::failure_lines(case, "").join("\n"))
                }
                Status::Skip => (0.0, 0.0, "passed", format!("skipped: {}", case.actual)),
            };
            Test {
                name: format!("{}: {}", case.id, case.title),
                number: &case.id,
                score,
                max_score,
                status,
                output,
            }
        })
        .collect();
    let results = Results {
        score: report.passed as f64,
        execution_time: report.cases.iter().map(|c| c.ms).sum::<u64>() as f64 / 1000.0,
        output: format!("pingpong check: {}\n{}", report.target, report.score_line()),
        tests,
    };
    serde_json::to_string_pretty(&results).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn gradescope_reads_a_score_and_a_test_per_case() {
        let json: Value = serde_json::from_str(&render(&super::super::sample::report())).unwrap();
        assert_eq!(json["score"], 1.0);
        let tests = json["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[0]["name"], "line/ping: what line/ping does");
        let marks: Vec<(f64, f64, &str)> = tests
            .iter()
            .map(|t| {
                (
                    t["score"].as_f64().unwrap(),
                    t["max_score"].as_f64().unwrap(),
                    t["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(marks, [(1.0, 1.0, "passed"), (0.0, 1.0, "failed"), (0.0, 0.0, "passed")]);
        let failure = tests[1]["output"].as_str().unwrap();
        assert!(failure.contains("pingpong lab short-write-lost"), "{failure}");
        assert!(tests[2]["output"].as_str().unwrap().starts_with("skipped: "));
    }
}
