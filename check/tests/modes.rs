//! Check on pingpong's own modes: each passes every case, and the two
//! modes built to show a limit fail where they should.

mod common;

use common::{at_once, check_command, serve, uring_usable, Checked};

/// Every case passes on every mode that serves many clients at once.
#[test]
fn every_mode_passes_every_case() {
    let mut modes = vec!["epoll", "poll", "select", "threads", "hybrid"];
    if uring_usable("every_mode_passes_every_case (uring)") {
        modes.push("uring");
    }
    type Job = Box<dyn FnOnce() -> (&'static str, Checked) + Send>;
    let jobs = modes
        .iter()
        .map(|&mode| {
            Box::new(move || (mode, check_command(None, &as_strs(&serve(&["--mode", mode])))))
                as Job
        })
        .collect();
    for (mode, checked) in at_once(jobs) {
        let json = checked.json();
        let failed: Vec<_> = json["cases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] != "pass")
            .map(|c| format!("{} {}: {}", c["id"], c["status"], c["actual"]))
            .collect();
        assert!(failed.is_empty(), "--mode {mode}: {failed:#?}");
        assert_eq!(json["passed"], 22, "--mode {mode}: all 22 cases ran");
        assert_eq!(checked.code, 0, "--mode {mode}: {}", checked.stderr);
    }
}

/// The blocking server serves one client at a time (the course's simple
/// server); the pool's workers are all held by slow clients.
#[test]
fn the_limited_modes_fail_where_they_should() {
    let jobs: Vec<Box<dyn FnOnce() -> _ + Send>> = vec![
        Box::new(|| {
            check_command(
                Some("conc/second-client,line/ping"),
                &as_strs(&serve(&["--mode", "blocking"])),
            )
        }),
        Box::new(|| {
            check_command(
                Some("limit/slowloris,line/ping"),
                &as_strs(&serve(&["--mode", "pool", "--workers", "4"])),
            )
        }),
    ];
    let [blocking, pool]: [_; 2] = at_once(jobs).try_into().expect("two runs");
    assert_eq!(blocking.status("conc/second-client"), "fail", "{}", blocking.stdout);
    assert_eq!(blocking.status("line/ping"), "pass", "{}", blocking.stdout);
    assert_eq!(blocking.code, 1);
    assert_eq!(pool.status("limit/slowloris"), "fail", "{}", pool.stdout);
    assert_eq!(pool.status("line/ping"), "pass", "{}", pool.stdout);
    assert_eq!(pool.code, 1);
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
