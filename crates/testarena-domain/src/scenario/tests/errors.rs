//! Every way a scenario is refused, with its message and line.

use super::*;

#[test]
fn every_error_names_its_line() {
    // (what, file, line, part of the message)
    let s = |body: &str| format!("<scenario name=\"s\">\n{body}\n</scenario>\n");
    let run = "<test name=\"ok\"><run>true</run></test>";
    let cases: Vec<(&str, String, u32, &str)> = vec![
        ("empty file", String::new(), 1, "no <scenario> element"),
        (
            "doctype",
            format!("<?xml version=\"1.0\"?>\n<!DOCTYPE scenario>\n{}", s(run)),
            2,
            "DOCTYPE is not allowed",
        ),
        (
            "doctype inside",
            s(&format!("{run}\n<!DOCTYPE x>")),
            3,
            "DOCTYPE",
        ),
        (
            "unknown element",
            s(&format!("{run}\n<foo/>")),
            3,
            "unknown element <foo>",
        ),
        (
            "unknown nested element",
            s("<test name=\"t\">\n<run>x<b>y</b></run></test>"),
            3,
            "unknown element <b>",
        ),
        (
            "misplaced element",
            s(&format!("{run}\n<expect>x</expect>")),
            3,
            "<expect> is not allowed inside <scenario>",
        ),
        (
            "misplaced in boot",
            s("<test name=\"t\"><boot>\n<unity/></boot></test>"),
            3,
            "<unity> is not allowed inside <boot>",
        ),
        (
            "wrong root",
            "<test name=\"t\"/>".into(),
            1,
            "the root element must be <scenario>, not <test>",
        ),
        (
            "unknown attribute",
            s("<test\n  name=\"t\"\n  color=\"red\"><run>x</run></test>"),
            4,
            "unknown attribute \"color\" on <test>",
        ),
        (
            "namespaced attribute",
            "<scenario xmlns=\"x\" name=\"s\"/>".into(),
            1,
            "unknown attribute \"xmlns\"",
        ),
        (
            "duplicate attribute",
            s("<test name=\"t\"\n name=\"u\"><run>x</run></test>"),
            3,
            "duplicate attribute \"name\" on <test>",
        ),
        (
            "malformed attribute",
            s("<test name><run>x</run></test>"),
            2,
            "malformed attribute",
        ),
        (
            "missing name",
            s("<test timeout=\"5\"><run>x</run></test>"),
            2,
            "<test> needs a \"name\" attribute",
        ),
        (
            "missing scenario name",
            "<scenario>\n</scenario>".into(),
            1,
            "<scenario> needs a \"name\" attribute",
        ),
        (
            "missing env value",
            s(&format!("<env name=\"A\"/>\n{run}")),
            2,
            "<env> needs a \"value\" attribute",
        ),
        (
            "blank scenario name",
            "<scenario name=\" \"/>".into(),
            1,
            "must not be blank",
        ),
        (
            "text in test",
            s("<test name=\"t\">\n\n  hello <run>x</run></test>"),
            4,
            "text is not allowed inside <test>",
        ),
        (
            "text in scenario",
            s(&format!("{run}\n&amp;")),
            3,
            "text is not allowed inside <scenario>",
        ),
        (
            "cdata in unity",
            s("<test name=\"t\"><boot/><unity>\n<![CDATA[x]]></unity></test>"),
            3,
            "text is not allowed inside <unity>",
        ),
        (
            "text before root",
            format!("junk\n{}", s(run)),
            1,
            "text is not allowed outside <scenario>",
        ),
        (
            "trailing garbage",
            format!("{}\n\ngarbage", s(run)),
            6,
            "text is not allowed outside <scenario>",
        ),
        (
            "second root",
            format!("{}<scenario name=\"b\"/>", s(run)),
            4,
            "second root element",
        ),
        (
            "empty expect",
            s("<test name=\"t\"><boot/>\n<expect>  </expect></test>"),
            3,
            "empty <expect>",
        ),
        (
            "empty send",
            s("<test name=\"t\"><boot/>\n<send/></test>"),
            3,
            "empty <send>",
        ),
        (
            "empty run",
            s("<test name=\"t\">\n<run> \n </run></test>"),
            3,
            "empty <run>",
        ),
        (
            "empty fail-on",
            s("<test name=\"t\"><boot/>\n<fail-on></fail-on></test>"),
            3,
            "empty <fail-on>",
        ),
        (
            "empty qemu-arg",
            s("<test name=\"t\"><boot>\n<qemu-arg/></boot></test>"),
            3,
            "empty <qemu-arg>",
        ),
        (
            "invalid regex",
            s("<test name=\"t\"><boot/>\n<expect regex=\"true\">a(</expect></test>"),
            3,
            "invalid regex in <expect>: regex parse error",
        ),
        (
            "huge regex",
            s("<test name=\"t\"><boot/>\n<expect regex=\"true\">(?:\\w{100}){100}</expect></test>"),
            3,
            "exceeds size limit",
        ),
        (
            "empty junit path",
            s("<test name=\"t\"><run\n junit=\" \">x</run></test>"),
            3,
            "junit=\"\" must name a file",
        ),
        (
            "absolute junit path",
            s("<test name=\"t\">\n<run junit=\"/etc/report.xml\">x</run></test>"),
            3,
            "junit=\"/etc/report.xml\" must be relative to the checkout",
        ),
        (
            "junit path out of the checkout",
            s("<test name=\"t\">\n<run junit=\"build/../../r.xml\">x</run></test>"),
            3,
            "must stay inside the checkout",
        ),
        (
            "junit on boot",
            s("<test name=\"t\">\n<boot junit=\"r.xml\"/></test>"),
            3,
            "unknown attribute \"junit\" on <boot>",
        ),
        (
            "bad regex flag",
            s("<test name=\"t\"><boot/><expect\n regex=\"yes\">a</expect></test>"),
            3,
            "regex=\"yes\" must be \"true\" or \"false\"",
        ),
        (
            "duplicate test",
            s("<test name=\"t\"><run>x</run></test>\n\n<test name=\"t\"><run>y</run></test>"),
            4,
            "duplicate test name \"t\" (first at line 2)",
        ),
        (
            "test name space",
            s("<test name=\"a b\"><run>x</run></test>"),
            2,
            "test name \"a b\" must match",
        ),
        (
            "test name dot",
            s("<test name=\".hidden\"><run>x</run></test>"),
            2,
            "must match",
        ),
        (
            "test name slash",
            s("<test name=\"a/b\"><run>x</run></test>"),
            2,
            "must match",
        ),
        (
            "test name too long",
            s(&format!(
                "<test name=\"{}\"><run>x</run></test>",
                "a".repeat(65)
            )),
            2,
            "must match",
        ),
        (
            "timeout zero",
            s("<test name=\"t\" timeout=\"0\"><run>x</run></test>"),
            2,
            "timeout=\"0\" must be a whole number of seconds from 1 to 86400",
        ),
        (
            "timeout word",
            s("<test name=\"t\" timeout=\"ten\"><run>x</run></test>"),
            2,
            "timeout=\"ten\"",
        ),
        (
            "timeout sign",
            s("<test name=\"t\" timeout=\"+5\"><run>x</run></test>"),
            2,
            "timeout=\"+5\"",
        ),
        (
            "timeout too big",
            s("<test name=\"t\" timeout=\"86401\"><run>x</run></test>"),
            2,
            "timeout=\"86401\"",
        ),
        (
            "timeout overflow",
            s("<test name=\"t\" timeout=\"99999999999999999999999\"><run>x</run></test>"),
            2,
            "must be a whole number",
        ),
        (
            "quiet timeout",
            s("<test name=\"t\"\n quiet-timeout=\"1.5\"><run>x</run></test>"),
            3,
            "quiet-timeout=\"1.5\"",
        ),
        (
            "scenario timeout",
            "<scenario name=\"s\" timeout=\"\">".into(),
            1,
            "timeout=\"\" must be",
        ),
        (
            "control character",
            s("<test name=\"t\">\n<run>a\u{1}b</run></test>"),
            3,
            "control character U+0001",
        ),
        (
            "mismatched tags",
            s("<test name=\"t\">\n<run>x</test></run>"),
            3,
            "malformed XML: expected `</run>`, but `</test>` was found",
        ),
        (
            "unclosed element",
            "<scenario name=\"s\">\n<test name=\"t\"><run>x</run>\n".into(),
            2,
            "<test> is not closed",
        ),
        (
            "unclosed tag",
            "<scenario name=\"s\">\n<test name=\"t\"".into(),
            2,
            "malformed XML",
        ),
        (
            "unmatched end",
            format!("{}</test>", s(run)),
            4,
            "malformed XML",
        ),
        (
            "processing instruction",
            format!("<?xml version=\"1.0\"?>\n<?php echo 1?>\n{}", s(run)),
            2,
            "processing instruction <?php?> is not allowed",
        ),
        (
            "late declaration",
            format!("\n<?xml version=\"1.0\"?>{}", s(run)),
            2,
            "the XML declaration must come first",
        ),
        (
            "other encoding",
            format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{}", s(run)),
            1,
            "the encoding must be UTF-8",
        ),
        (
            "unknown entity",
            s("<test name=\"t\">\n<run>a &nbsp; b</run></test>"),
            3,
            "unknown entity &nbsp;",
        ),
        (
            "unknown entity in attribute",
            s("<test\n name=\"&x;\"><run>x</run></test>"),
            3,
            "unknown entity &x; in name",
        ),
        (
            "dangling ampersand",
            s("<test name=\"t\">\n<run>a & b</run></test>"),
            3,
            "malformed XML",
        ),
        (
            "nul reference",
            s("<test name=\"t\">\n<run>a&#0;</run></test>"),
            3,
            "invalid character reference &#0;",
        ),
        (
            "control reference",
            s("<test name=\"t\">\n<run>a&#x1b;</run></test>"),
            3,
            "invalid character reference &#x1b;",
        ),
        (
            "control reference in attribute",
            s(&format!("<env name=\"A\"\n value=\"&#27;\"/>{run}")),
            3,
            "value holds control character U+001B",
        ),
        (
            "bad comment",
            s(&format!("{run}\n<!-- a -- b -->")),
            3,
            "malformed XML",
        ),
        (
            "no tests",
            "<scenario name=\"s\">\n</scenario>".into(),
            1,
            "a scenario needs at least one <test>",
        ),
        (
            "send without boot",
            s("<test name=\"t\">\n<send>x</send></test>"),
            3,
            "<send> needs <boot/> in the same test",
        ),
        (
            "expect in run test",
            s("<test name=\"t\"><run>x</run>\n<expect>y</expect></test>"),
            3,
            "<expect> is not allowed in a <run> test",
        ),
        (
            "unity in run test",
            s("<test name=\"t\">\n<unity/><run>x</run></test>"),
            3,
            "<unity> is not allowed in a <run> test",
        ),
        (
            "boot and run",
            s("<test name=\"t\"><run>x</run>\n<boot/></test>"),
            3,
            "either <boot> or <run>, not both",
        ),
        (
            "run and boot",
            s("<test name=\"t\"><boot/>\n<run>x</run></test>"),
            3,
            "either <boot> or <run>, not both",
        ),
        (
            "two runs",
            s("<test name=\"t\"><run>x</run>\n<run>y</run></test>"),
            3,
            "duplicate <run>",
        ),
        (
            "two boots",
            s("<test name=\"t\"><boot/>\n<boot/></test>"),
            3,
            "duplicate <boot>",
        ),
        (
            "two unity",
            s("<test name=\"t\"><boot/><unity/>\n<unity/></test>"),
            3,
            "duplicate <unity>",
        ),
        (
            "two descriptions",
            s(&format!(
                "<description>a</description>\n<description>b</description>{run}"
            )),
            3,
            "duplicate <description>",
        ),
        (
            "neither boot nor run",
            s("<test name=\"t\">\n</test>"),
            2,
            "test \"t\" needs <boot/> or <run>",
        ),
        (
            "env name digit",
            s(&format!("<env name=\"1A\" value=\"\"/>{run}")),
            2,
            "env name \"1A\" must be a shell identifier",
        ),
        (
            "env name dash",
            s(&format!("<env name=\"A-B\" value=\"\"/>{run}")),
            2,
            "must be a shell identifier",
        ),
        (
            "env name reserved",
            s(&format!(
                "<env name=\"TESTARENA_TASK_ID\" value=\"x\"/>{run}"
            )),
            2,
            "is reserved",
        ),
        (
            "env duplicate",
            s(&format!(
                "<env name=\"A\" value=\"1\"/>\n<env name=\"A\" value=\"2\"/>{run}"
            )),
            3,
            "duplicate env name \"A\"",
        ),
    ];
    for (what, xml, line, message) in cases {
        let e = err(xml.as_bytes());
        assert_eq!(e.file, "dir/s.xml", "{what}");
        assert!(
            e.message.contains(message),
            "{what}: message {:?} lacks {message:?}",
            e.message
        );
        assert_eq!(e.line, line, "{what}: {e}");
    }
}

#[test]
fn invalid_utf8_names_its_line() {
    let e = err(b"<scenario name=\"s\">\n\n<test name=\"\xff\"/>");
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "invalid UTF-8 at byte 33")
    );
}

#[test]
fn error_displays_file_and_line() {
    let e = err(b"<scenario name=\"s\">\n<nope/>\n</scenario>");
    assert_eq!(e.to_string(), "dir/s.xml:2: unknown element <nope>");
}

#[test]
fn long_values_are_cut_short_in_messages() {
    let name = "x".repeat(10_000);
    let e = err(format!("<scenario name=\"s\"><test name=\"{name}\"/></scenario>").as_bytes());
    assert!(e.message.len() < 200, "{}", e.message);
    let long = "y".repeat(10_000);
    for xml in [
        format!("<scenario name=\"s\"><{long}/></scenario>"),
        format!("<scenario name=\"s\" {long}=\"1\"/>"),
        format!("<scenario name=\"s\">&{long};</scenario>"),
        format!("<?{long}?>"),
        format!(
            "<scenario name=\"s\"><test name=\"t\"><boot/><expect regex=\"true\">{long}(</expect></test></scenario>"
        ),
    ] {
        let e = err(xml.as_bytes());
        assert!(e.message.len() < 200, "{}", e.message);
    }
    // A `>` missing from an end tag: quick-xml quotes the rest of the file
    // as the tag it found instead.
    let e = err(format!(
        "<scenario name=\"s\"><test name=\"t\"><run>x</run </test>{long}</scenario>"
    )
    .as_bytes());
    assert!(e.message.starts_with("malformed XML"), "{}", e.message);
    assert!(e.message.chars().count() < 300, "{}", e.message);
}
