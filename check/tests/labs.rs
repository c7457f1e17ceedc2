//! Each case is known to catch the mistake it is for: for every lab whose
//! bug shows from outside (all but stale-events), check fails the case the
//! table names on `serve --bug NAME`, and passes it on the same server
//! without the bug.

mod common;

use common::{at_once, check_command, serve};

/// (the bug, the case that must catch it, the serve options the lab uses)
const LABS: [(&str, &str, &[&str]); 9] = [
    ("edge-no-drain", "line/pipelined", &["--edge"]),
    ("short-write-lost", "flow/slow-reader", &[]),
    ("blocking-client", "conc/stuck-reader", &[]),
    ("sigpipe", "reset/close-wait", &[]),
    ("no-line-limit", "limit/huge-line", &[]),
    ("always-writable", "cpu/idle", &[]),
    ("eintr-fatal", "cpu/stopped", &[]),
    ("no-backpressure", "mem/never-reader", &[]),
    // Otherwise --max-clients, sized from the fd limit, refuses clients
    // before the fds run out.
    ("no-spare-fd", "fd/emfile", &["--max-clients", "1000"]),
];

#[test]
fn each_case_fails_on_its_labs_bug_and_passes_without_it() {
    let mut jobs: Vec<Box<dyn FnOnce() -> _ + Send>> = Vec::new();
    for (bug, case, options) in LABS {
        for broken in [true, false] {
            jobs.push(Box::new(move || {
                let mut args: Vec<&str> = options.to_vec();
                if broken {
                    args.extend(["--bug", bug]);
                }
                let command = serve(&args);
                let command: Vec<&str> = command.iter().map(String::as_str).collect();
                (bug, case, broken, check_command(Some(case), &command))
            }));
        }
    }
    for (bug, case, broken, checked) in at_once(jobs) {
        let want = if broken { "fail" } else { "pass" };
        assert_eq!(
            checked.status(case),
            want,
            "{case} with{} --bug {bug}: {:#}",
            if broken { "" } else { "out" },
            checked.case(case)
        );
        if broken {
            // The failure points to the lab that shows the mistake.
            assert_eq!(checked.case(case)["lab"], bug, "{case}");
        }
    }
}
