//! Reads the JUnit XML another tool wrote (`<run junit="...">`, DESIGN
//! section 11, "Results from other tools"): pytest, pytest-embedded,
//! ctest, Unity's reports.
//!
//! Accepted: a `<testsuites>` or `<testsuite>` root (suites may nest),
//! each `<testcase classname= name= time=>` one case: passed, unless it
//! holds `<failure>` or `<error>` (failed) or `<skipped>` (skipped). The
//! message is the element's `message` attribute, else its text, cut to
//! [`MAX_MESSAGE_CHARS`]. `<error>` is the tool's word for a test that
//! broke rather than asserted (an exception in a fixture): it is the
//! code's failure, not the farm's, so it is recorded `failed` too.
//! Everything else (properties, system-out) is skipped over. A file
//! that is not well-formed XML, has another root, names a DOCTYPE, or
//! holds more than [`MAX_CASES`] cases is refused with a message saying
//! where.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::status::Status;

/// The largest JUnit file read: like a scenario file's limit.
pub const MAX_JUNIT_BYTES: usize = crate::scenario::MAX_SCENARIO_BYTES;
/// The most test cases one file may give.
pub const MAX_CASES: usize = 10_000;
/// Messages longer than this are cut (with `…`).
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JunitCase {
    pub classname: String,
    pub name: String,
    /// `passed`, `failed` or `skipped`.
    pub status: Status,
    pub duration_ms: Option<u64>,
    pub message: Option<String>,
}

impl JunitCase {
    /// `classname.name`, or `name` without a class.
    pub fn full_name(&self) -> String {
        if self.classname.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.classname, self.name)
        }
    }
}

/// Why a file was refused, in words (with its line where known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JunitError(pub String);

/// The `<testcase>`s of a JUnit file, in document order.
pub fn read(bytes: &[u8]) -> Result<Vec<JunitCase>, JunitError> {
    if bytes.len() > MAX_JUNIT_BYTES {
        return Err(JunitError(format!(
            "file is {} bytes; JUnit files are limited to {} MiB",
            bytes.len(),
            MAX_JUNIT_BYTES / (1024 * 1024)
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = line_of(bytes, e.valid_up_to());
        JunitError(format!("line {line}: not UTF-8"))
    })?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut cases = Vec::new();
    let mut depth = 0usize;
    let mut root_seen = false;
    // The case being read, and the result element open inside it.
    let mut case: Option<JunitCase> = None;
    // The text is the message only when no `message` attribute gave one.
    let mut result: Option<(Status, String, bool)> = None;
    loop {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let malformed = |what: String| JunitError(format!("line {}: {what}", line_of(bytes, at)));
        let event = reader
            .read_event()
            .map_err(|e| malformed(format!("not well-formed XML: {e}")))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                let name = start.local_name();
                let name = name.as_ref();
                if depth == 0 {
                    if root_seen || !matches!(name, b"testsuites" | b"testsuite") {
                        return Err(malformed(format!(
                            "not JUnit XML: the root element is <{}>, not <testsuites> or <testsuite>",
                            String::from_utf8_lossy(name)
                        )));
                    }
                    root_seen = true;
                }
                match name {
                    b"testcase" if case.is_none() => {
                        if cases.len() >= MAX_CASES {
                            return Err(malformed(format!("more than {MAX_CASES} test cases")));
                        }
                        let new = JunitCase {
                            classname: attribute(start, b"classname")
                                .map_err(malformed)?
                                .unwrap_or_default(),
                            name: attribute(start, b"name")
                                .map_err(malformed)?
                                .filter(|n| !n.trim().is_empty())
                                .ok_or_else(|| malformed("a <testcase> without a name".into()))?,
                            status: Status::Passed,
                            duration_ms: attribute(start, b"time")
                                .map_err(malformed)?
                                .and_then(|t| seconds_to_ms(&t)),
                            message: None,
                        };
                        if empty {
                            cases.push(new);
                        } else {
                            case = Some(new);
                        }
                    }
                    b"testcase" => {
                        return Err(malformed("a <testcase> inside a <testcase>".into()));
                    }
                    b"failure" | b"error" | b"skipped" if case.is_some() && result.is_none() => {
                        let status = if name == b"skipped" {
                            Status::Skipped
                        } else {
                            Status::Failed
                        };
                        let message = attribute(start, b"message")
                            .map_err(malformed)?
                            .unwrap_or_default();
                        if empty {
                            settle(case.as_mut(), status, message);
                        } else {
                            let texts = message.trim().is_empty();
                            result = Some((status, message, texts));
                        }
                    }
                    _ => {}
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                match end.local_name().as_ref() {
                    b"testcase" => cases.extend(case.take()),
                    b"failure" | b"error" | b"skipped" => {
                        if let Some((status, message, _)) = result.take() {
                            settle(case.as_mut(), status, message);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((_, message, true)) = result.as_mut() {
                    message.push_str(&t.xml10_content().unwrap_or_default());
                }
            }
            Event::CData(t) => {
                if let Some((_, message, true)) = result.as_mut() {
                    message.push_str(&t.xml10_content().unwrap_or_default());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().map(String::from)
                } else {
                    let name = String::from_utf8_lossy(&r).into_owned();
                    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_owned)
                };
                let resolved = resolved.ok_or_else(|| {
                    malformed(format!("unknown entity &{};", String::from_utf8_lossy(&r)))
                })?;
                if let Some((_, message, true)) = result.as_mut() {
                    message.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(malformed("DOCTYPE is not allowed".into())),
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !root_seen {
        return Err(JunitError(
            "not JUnit XML: no <testsuites> or <testsuite> element".into(),
        ));
    }
    if depth > 0 {
        return Err(JunitError(format!(
            "line {}: not well-formed XML: the file ends inside an element",
            line_of(bytes, bytes.len())
        )));
    }
    Ok(cases)
}

/// The first result element of a case decides it.
fn settle(case: Option<&mut JunitCase>, status: Status, message: String) {
    let Some(case) = case else { return };
    if case.status != Status::Passed {
        return;
    }
    case.status = status;
    let message = message.trim();
    if !message.is_empty() {
        case.message = Some(cut(message));
    }
}

fn cut(message: &str) -> String {
    if message.chars().count() > MAX_MESSAGE_CHARS {
        let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        cut.push('…');
        cut
    } else {
        message.to_owned()
    }
}

/// An attribute's unescaped value, if present.
fn attribute(start: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, String> {
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("not well-formed XML: {e}"))?;
        if attr.key.local_name().as_ref() == name {
            let value = attr
                .unescape_value()
                .map_err(|e| format!("not well-formed XML: {e}"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// JUnit's `time` (seconds, maybe fractional) in milliseconds; `None`
/// when it is not a finite, non-negative number.
fn seconds_to_ms(time: &str) -> Option<u64> {
    let s: f64 = time.trim().replace(',', "").parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| (s * 1000.0).round() as u64)
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="1.250">
    <testcase classname="tests.test_fib" name="test_small" time="0.012"/>
    <testcase classname="tests.test_fib" name="test_big" time="1.2">
      <failure message="assert 41 == 42">def test_big():
&gt;       assert fib(20) == 42</failure>
      <system-out>some output</system-out>
    </testcase>
    <testcase classname="tests.test_io" name="test_uart" time="0.003">
      <skipped type="pytest.skip" message="no board"/>
    </testcase>
    <testcase classname="tests.test_io" name="test_fixture" time="0">
      <error message="">fixture 'dut' not found</error>
    </testcase>
    <testcase name="bare" time="abc"><properties><property name="x" value="1"/></properties></testcase>
  </testsuite>
</testsuites>
"#;

    #[test]
    fn passes_failures_skips_and_durations() {
        let cases = read(PYTEST.as_bytes()).unwrap();
        let view: Vec<_> = cases
            .iter()
            .map(|c| (c.full_name(), c.status, c.duration_ms, c.message.as_deref()))
            .collect();
        assert_eq!(
            view,
            [
                (
                    "tests.test_fib.test_small".to_owned(),
                    Status::Passed,
                    Some(12),
                    None
                ),
                (
                    "tests.test_fib.test_big".to_owned(),
                    Status::Failed,
                    Some(1200),
                    Some("assert 41 == 42")
                ),
                (
                    "tests.test_io.test_uart".to_owned(),
                    Status::Skipped,
                    Some(3),
                    Some("no board")
                ),
                (
                    "tests.test_io.test_fixture".to_owned(),
                    Status::Failed,
                    Some(0),
                    Some("fixture 'dut' not found")
                ),
                ("bare".to_owned(), Status::Passed, None, None),
            ]
        );
    }

    #[test]
    fn a_failure_s_text_is_its_message_without_an_attribute() {
        let xml = "<testsuite><testcase classname=\"c\" name=\"n\"><failure><![CDATA[x < y]]> &amp; more\n</failure></testcase></testsuite>";
        let cases = read(xml.as_bytes()).unwrap();
        assert_eq!(cases[0].message.as_deref(), Some("x < y & more"));
        let long = format!(
            "<testsuite><testcase name=\"n\"><failure message=\"{}\"/></testcase></testsuite>",
            "x".repeat(MAX_MESSAGE_CHARS + 10)
        );
        let message = read(long.as_bytes()).unwrap()[0].message.clone().unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn nested_suites_and_an_empty_report() {
        let xml = "<testsuites><testsuite name=\"a\"><testsuite name=\"b\"><testcase name=\"deep\"/></testsuite></testsuite></testsuites>";
        assert_eq!(read(xml.as_bytes()).unwrap()[0].name, "deep");
        assert!(read(b"<testsuites/>").unwrap().is_empty());
    }

    #[test]
    fn malformed_files_are_refused_with_where() {
        for (xml, expected) in [
            ("", "not JUnit XML: no <testsuites> or <testsuite> element"),
            (
                "garbage",
                "not JUnit XML: no <testsuites> or <testsuite> element",
            ),
            (
                "<html><body/></html>",
                "line 1: not JUnit XML: the root element is <html>, not <testsuites> or <testsuite>",
            ),
            (
                "<testsuite>\n<testcase name=\"a\">\n</testsuite>",
                "line 3: not well-formed XML",
            ),
            (
                "<testsuite>\n<testcase name=\"a\"/>",
                "not well-formed XML: the file ends inside an element",
            ),
            (
                "<testsuite><testcase/></testsuite>",
                "line 1: a <testcase> without a name",
            ),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><testsuite/>",
                "line 1: DOCTYPE is not allowed",
            ),
            (
                "<testsuite><testcase name=\"a\"><failure>&nope;</failure></testcase></testsuite>",
                "unknown entity &nope;",
            ),
            (
                "<testsuite/><testsuite/>",
                "the root element is <testsuite>",
            ),
        ] {
            let err = read(xml.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{xml:?}: {err}");
        }
        let err = read(b"<testsuite>\n\xff</testsuite>")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "line 2: not UTF-8");
    }

    #[test]
    fn oversize_files_and_too_many_cases_are_refused() {
        let big = vec![b' '; MAX_JUNIT_BYTES + 1];
        assert_eq!(
            read(&big).unwrap_err().to_string(),
            format!(
                "file is {} bytes; JUnit files are limited to 1 MiB",
                MAX_JUNIT_BYTES + 1
            )
        );
        let many = format!(
            "<testsuite>{}</testsuite>",
            "<testcase name=\"t\"/>".repeat(MAX_CASES + 1)
        );
        let err = read(many.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("more than 10000 test cases"), "{err}");
    }
}
