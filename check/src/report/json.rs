//! `--format json`: the report as one JSON object, for scripts:
//! `{"target", "cases": [{"id", "title", "status", "expected", "actual",
//! "mistake", "lab", "ms"}], "passed", "failed", "skipped"}`.

use super::Report;

/// The report as pretty-printed JSON.
pub fn render(report: &Report) -> String {
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_shape_is_the_documented_one() {
        let json: Value = serde_json::from_str(&render(&super::super::sample::report())).unwrap();
        assert_eq!(json["target"], "python3 server.py --port 41234 (pid 4242)");
        assert_eq!((json["passed"].as_u64(), json["failed"].as_u64()), (Some(1), Some(1)));
        assert_eq!(json["skipped"], 1);
        let cases = json["cases"].as_array().unwrap();
        let keys: Vec<&str> = cases[1].as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = ["id", "title", "status", "expected", "actual", "mistake", "lab", "ms"];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want);
        let statuses: Vec<&str> = cases.iter().map(|c| c["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["pass", "fail", "skip"]);
        assert_eq!(cases[1]["lab"], "short-write-lost");
        assert!(cases[0]["lab"].is_null() && cases[0]["mistake"].is_null());
        assert_eq!(cases[1]["ms"], 12);
    }
}
