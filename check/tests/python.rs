//! Check on servers written as students write them, in Python, each with
//! one classic mistake (`tests/servers/`): check must fail the case that
//! mistake is for. Skipped where python3 is not installed.

mod common;

use common::{at_once, check_command, python_usable, Checked};

type Job =
    Box<dyn FnOnce() -> (&'static str, &'static [&'static str], &'static str, Checked) + Send>;

/// (the server, the cases it must fail, a case it must still pass)
const BROKEN: [(&str, &[&str], &str); 5] = [
    ("send_not_sendall.py", &["flow/slow-reader"], "line/ping"),
    ("one_recv_one_message.py", &["line/split", "line/bytewise", "line/pipelined"], "line/ping"),
    ("blocking_in_selector.py", &["conc/stuck-reader"], "line/ping"),
    ("no_line_limit.py", &["limit/huge-line"], "line/ping"),
    ("one_at_a_time.py", &["conc/second-client"], "line/ping"),
];

#[test]
fn each_classic_mistake_fails_its_case() {
    if !python_usable("each_classic_mistake_fails_its_case") {
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers");
    let jobs = BROKEN
        .iter()
        .map(|&(server, fails, passes)| {
            Box::new(move || {
                let only = [fails, &[passes][..]].concat().join(",");
                let path = format!("{dir}/{server}");
                (
                    server,
                    fails,
                    passes,
                    check_command(Some(&only), &["python3", &path, "--port", "{port}"]),
                )
            }) as Job
        })
        .collect();
    for (server, fails, passes, checked) in at_once(jobs) {
        for case in fails {
            assert_eq!(checked.status(case), "fail", "{server}, {case}: {}", checked.stdout);
        }
        assert_eq!(checked.status(passes), "pass", "{server}, {passes}: {}", checked.stdout);
        assert_eq!(checked.code, 1, "{server}");
    }
}
