//! `--format junit`: JUnit XML, which CI systems (GitLab, Jenkins, GitHub
//! actions that publish test results) read: one `testsuite`, a `testcase`
//! per case with the group as its `classname`, a `failure` with the
//! message, a `skipped` with the reason.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::{Report, Status};

/// The report as JUnit XML.
pub fn render(report: &Report) -> String {
    let mut xml = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail.
    let _ = write(&mut xml, report);
    String::from_utf8_lossy(&xml.into_inner()).into_owned() + "\n"
}

fn write(xml: &mut Writer<Vec<u8>>, report: &Report) -> std::io::Result<()> {
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let total: u64 = report.cases.iter().map(|c| c.ms).sum();
    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let (tests, failures, skipped) =
        (report.cases.len().to_string(), report.failed.to_string(), report.skipped.to_string());
    let attributes = |name: &'static str| {
        BytesStart::new(name).with_attributes([
            ("name", "pingpong check"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("skipped", skipped.as_str()),
            ("time", secs(total).as_str()),
        ])
    };
    xml.write_event(Event::Start(attributes("testsuites")))?;
    let mut suite = attributes("testsuite");
    suite.push_attribute(("hostname", report.target.as_str()));
    xml.write_event(Event::Start(suite))?;
    for case in &report.cases {
        let time = secs(case.ms);
        let testcase = BytesStart::new("testcase").with_attributes([
            ("classname", case.group()),
            ("name", case.id.as_str()),
            ("time", time.as_str()),
        ]);
        match case.status {
            Status::Pass => xml.write_event(Event::Empty(testcase))?,
            Status::Fail => {
                xml.write_event(Event::Start(testcase))?;
                let failure = BytesStart::new("failure")
                    .with_attributes([("message", case.actual.as_str()), ("type", "fail")]);
                xml.write_event(Event::Start(failure))?;
                let body = super::text::failure_lines(case, "").join("\n");
                xml.write_event(Event::Text(BytesText::new(&body)))?;
                xml.write_event(Event::End(BytesEnd::new("failure")))?;
                xml.write_event(Event::End(BytesEnd::new("testcase")))?;
            }
            Status::Skip => {
                xml.write_event(Event::Start(testcase))?;
                let skip =
                    BytesStart::new("skipped").with_attributes([("message", case.actual.as_str())]);
                xml.write_event(Event::Empty(skip))?;
                xml.write_event(Event::End(BytesEnd::new("testcase")))?;
            }
        }
    }
    xml.write_event(Event::End(BytesEnd::new("testsuite")))?;
    xml.write_event(Event::End(BytesEnd::new("testsuites")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_testcase_per_case_with_its_failure_or_skip() {
        let xml = render(&super::super::sample::report());
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{xml}");
        assert!(
            xml.contains(
                r#"<testsuite name="pingpong check" tests="3" failures="1" errors="0" skipped="1""#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase classname="line" name="line/ping" time="0.012"/>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<testcase classname="flow" name="flow/slow-reader""#), "{xml}");
        // The bytes and the mistake are escaped, not pasted in as markup.
        assert!(xml.contains("<failure message=\"&quot;pong\\npo&quot; at byte 4,096"), "{xml}");
        assert!(xml.contains("a &lt;send&gt; taken for &quot;sendall&quot; &amp; lost"), "{xml}");
        assert!(xml.contains(r#"<skipped message="needs the pid"/>"#), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 3);
    }
}
