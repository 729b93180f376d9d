//! Tests of the scenario parser: the DESIGN example, every error with its
//! line, hostile inputs, and properties over arbitrary input.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

mod errors;

const DESIGN_EXAMPLE: &str = r#"<scenario name="smoke" timeout="600">             <!-- timeout (s) optional -->
  <description>Boot, run the unit tests, check the image size</description>
  <env name="LOG_LEVEL" value="debug"/>           <!-- for <run> commands -->
  <test name="unit" timeout="120" quiet-timeout="20">
    <boot/>                                        <!-- boot the firmware in QEMU; the serial console is the test's log -->
    <expect>Press ENTER to see the list of tests.</expect>
    <send>*</send>                                 <!-- written to the serial console, then a newline -->
    <expect regex="true">\d+ Tests 0 Failures</expect>
    <fail-on>assert failed</fail-on>               <!-- added to the target's fail_on -->
    <unity/>                                       <!-- Unity result lines become test cases -->
  </test>
  <test name="size" timeout="30">
    <run>python3 tools/check_size.py build/app.bin</run>  <!-- sh -c in the checkout; passes on exit 0 -->
  </test>
</scenario>
"#;

fn ok(xml: &str) -> Scenario {
    match parse("s.xml", xml.as_bytes()) {
        Ok(scenario) => scenario,
        Err(e) => panic!("expected {xml:?} to parse, got {e}"),
    }
}

fn err(xml: &[u8]) -> ScenarioError {
    match parse("dir/s.xml", xml) {
        Ok(scenario) => panic!("expected an error, got {scenario:?}"),
        Err(e) => e,
    }
}

fn regex(source: &str) -> Pattern {
    Pattern::Regex(Regex::new(source).unwrap())
}

fn boot(test: &TestSpec) -> &BootSpec {
    match &test.kind {
        TestKind::Boot(boot) => boot,
        TestKind::Run(_) => panic!("{} is not a boot test", test.name),
    }
}

#[test]
fn design_example_parses() {
    let expected = Scenario {
        name: "smoke".into(),
        description: Some("Boot, run the unit tests, check the image size".into()),
        timeout_s: Some(600),
        env: vec![("LOG_LEVEL".into(), "debug".into())],
        tests: vec![
            TestSpec {
                name: "unit".into(),
                line: 4,
                timeout_s: Some(120),
                quiet_timeout_s: Some(20),
                kind: TestKind::Boot(BootSpec {
                    qemu_args: vec![],
                    steps: vec![
                        Step::Expect(Expect {
                            pattern: Pattern::Substring(
                                "Press ENTER to see the list of tests.".into(),
                            ),
                            line: 6,
                        }),
                        Step::Send("*".into()),
                        Step::Expect(Expect {
                            pattern: regex(r"\d+ Tests 0 Failures"),
                            line: 8,
                        }),
                    ],
                    fail_on: vec!["assert failed".into()],
                    unity: true,
                }),
            },
            TestSpec {
                name: "size".into(),
                line: 12,
                timeout_s: Some(30),
                quiet_timeout_s: None,
                kind: TestKind::Run(RunSpec {
                    command: "python3 tools/check_size.py build/app.bin".into(),
                    junit: None,
                }),
            },
        ],
    };
    assert_eq!(ok(DESIGN_EXAMPLE), expected);
}

#[test]
fn fixture_scenarios_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/firmware/scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.display().to_string();
            if let Err(e) = parse(&name, &bytes) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(seen > 0, "no scenarios in {}", dir.display());
}

#[test]
fn patterns_match_and_compare_by_source() {
    let scenario = ok(DESIGN_EXAMPLE);
    let steps = &boot(&scenario.tests[0]).steps;
    let Step::Expect(regex_expect) = &steps[2] else {
        panic!("step 2 is not an expect");
    };
    assert_eq!(regex_expect.text(), r"\d+ Tests 0 Failures");
    assert!(
        regex_expect
            .pattern
            .is_match("12 Tests 0 Failures 0 Ignored")
    );
    assert!(!regex_expect.pattern.is_match("12 Tests 1 Failures"));
    let substring = Pattern::Substring("a.c".into());
    assert!(substring.is_match("xa.cx"));
    assert!(!substring.is_match("abc"));
    assert_ne!(substring, regex("a.c"));
    assert_eq!(regex("a.c"), regex("a.c"));
}

#[test]
fn text_is_unescaped_trimmed_and_normalized() {
    let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
        <scenario name=\"a &amp; b\">\r\n\
        <description>  </description>\r\n\
        <env name=\"_X1\" value=\"&lt;&#65;&#x42;&quot;&apos;&gt;\"/>\r\n\
        <test name=\"t.1_x-2\"><boot>\r\n\
          <qemu-arg> -s </qemu-arg><qemu-arg>-S</qemu-arg></boot>\r\n\
          <expect regex=\"false\"> a &lt; b <![CDATA[<&>]]> c </expect>\r\n\
          <send>line1\r\nline2&#10;</send>\r\n\
        </test>\r\n\
        <test name=\"r\"><run><![CDATA[ echo \"$X\" && true ]]></run></test>\r\n\
        </scenario>\r\n";
    let scenario = ok(xml);
    assert_eq!(scenario.name, "a & b");
    assert_eq!(scenario.description, None);
    assert_eq!(scenario.timeout_s, None);
    assert_eq!(scenario.env, vec![("_X1".into(), "<AB\"'>".into())]);
    let first = boot(&scenario.tests[0]);
    assert_eq!(scenario.tests[0].line, 5);
    assert_eq!(first.qemu_args, vec!["-s".to_owned(), "-S".to_owned()]);
    assert_eq!(
        first.steps,
        vec![
            Step::Expect(Expect {
                pattern: Pattern::Substring("a < b <&> c".into()),
                line: 7,
            }),
            Step::Send("line1\nline2".into()),
        ]
    );
    assert!(!first.unity);
    assert!(first.fail_on.is_empty());
    assert_eq!(
        scenario.tests[1].kind,
        TestKind::Run(RunSpec {
            command: "echo \"$X\" && true".into(),
            junit: None,
        })
    );
}

#[test]
fn a_run_test_may_name_its_junit_file() {
    let xml = r#"<scenario name="s">
  <test name="py"><run junit=" build/report.xml ">pytest --junitxml=build/report.xml</run></test>
  <test name="plain"><run>true</run></test>
</scenario>"#;
    let scenario = ok(xml);
    assert_eq!(
        scenario.tests[0].kind,
        TestKind::Run(RunSpec {
            command: "pytest --junitxml=build/report.xml".into(),
            junit: Some("build/report.xml".into()),
        })
    );
    assert!(matches!(&scenario.tests[1].kind, TestKind::Run(r) if r.junit.is_none()));
}

#[test]
fn elements_of_a_boot_test_come_in_any_order() {
    let xml = r#"<scenario name="s"><test name="t">
        <unity/><expect>a</expect><fail-on>x</fail-on><boot/><send>b</send><expect>c</expect>
    </test></scenario>"#;
    let scenario = ok(xml);
    let spec = boot(&scenario.tests[0]);
    assert!(spec.unity);
    let texts: Vec<&str> = spec
        .steps
        .iter()
        .map(|step| match step {
            Step::Expect(expect) => expect.text(),
            Step::Send(text) => text,
        })
        .collect();
    assert_eq!(texts, ["a", "b", "c"]);
}

#[test]
fn billion_laughs_is_refused_at_once() {
    let mut xml =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    xml.push_str(" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        let prev = format!("&lol{};", i - 1).repeat(10);
        xml.push_str(&format!(" <!ENTITY lol{i} \"{prev}\">\n"));
    }
    xml.push_str(
        "]>\n<scenario name=\"&lol9;\"><test name=\"t\"><run>&lol9;</run></test></scenario>\n",
    );
    let started = Instant::now();
    let e = err(xml.as_bytes());
    let elapsed = started.elapsed();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("DOCTYPE"), "{}", e.message);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

/// A valid scenario padded with a comment to exactly `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let head = "<scenario name=\"s\"><test name=\"t\"><run>x</run></test></scenario>\n<!--";
    let tail = "-->\n";
    let mut xml = head.as_bytes().to_vec();
    xml.resize(len - tail.len(), b' ');
    xml.extend_from_slice(tail.as_bytes());
    xml
}

#[test]
fn size_limit_is_one_mebibyte() {
    let at_limit = padded(MAX_SCENARIO_BYTES);
    assert_eq!(at_limit.len(), MAX_SCENARIO_BYTES);
    assert!(parse("big.xml", &at_limit).is_ok());
    let e = err(&padded(MAX_SCENARIO_BYTES + 1));
    assert_eq!(e.line, 1);
    assert!(e.message.contains("1 MiB"), "{}", e.message);
    assert!(e.message.contains("1048577 bytes"), "{}", e.message);
}

#[test]
fn regex_expects_are_capped() {
    let expects = |n: usize| {
        let body = "<expect regex=\"true\">a+</expect>\n".repeat(n);
        format!("<scenario name=\"s\">\n<test name=\"t\"><boot/>\n{body}</test></scenario>")
    };
    assert_eq!(
        steps_of(&ok(&expects(MAX_REGEX_EXPECTS))),
        MAX_REGEX_EXPECTS
    );
    let e = err(expects(MAX_REGEX_EXPECTS + 1).as_bytes());
    assert_eq!(e.line, 3 + u32::try_from(MAX_REGEX_EXPECTS).unwrap());
    assert!(
        e.message.contains("too many regex <expect>s"),
        "{}",
        e.message
    );
}

fn steps_of(scenario: &Scenario) -> usize {
    boot(&scenario.tests[0]).steps.len()
}

#[test]
fn lines_are_right_deep_in_a_large_file() {
    let mut xml = String::from("<scenario name=\"s\">\n");
    for i in 0..15_000 {
        xml.push_str(&format!(
            "<test name=\"t{i}\"><boot/>\n<expect>x</expect></test>\n"
        ));
    }
    xml.push_str("<oops/></scenario>\n");
    let e = err(xml.as_bytes());
    assert_eq!(
        (e.line, e.message.as_str()),
        (30_002, "unknown element <oops>")
    );
    let scenario = ok(&xml.replace("<oops/>", ""));
    let last = &scenario.tests[14_999];
    assert_eq!(last.line, 30_000);
    let Step::Expect(expect) = &boot(last).steps[0] else {
        panic!("not an expect");
    };
    assert_eq!(expect.line, 30_001);
}

/// 2,000 cases unless `PROPTEST_CASES` says otherwise.
fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig::with_cases(cases)
}

/// Whole elements, mostly valid: sequences of these get deep into the parser.
const ELEMENTS: &[&str] = &[
    "<boot/>",
    "<boot><qemu-arg>-s</qemu-arg></boot>",
    "<expect>ready</expect>",
    "<expect regex=\"true\">\\d+ Tests</expect>",
    "<expect regex=\"true\">(</expect>",
    "<send>x</send>",
    "<fail-on>panic</fail-on>",
    "<unity/>",
    "<run>echo hi</run>",
    "<env name=\"A\" value=\"b\"/>",
    "<description>d</description>",
    "<test name=\"t\"><boot/><expect>a</expect></test>",
    "<test name=\"r\"><run>x</run></test>",
    "<expect>a &amp; &lt;b&gt;</expect>",
    "<expect><![CDATA[<x>]]></expect>",
    "<!-- c -->",
    "\n  ",
];

/// Pieces of markup and text, valid and not, to break things in between.
const FRAGMENTS: &[&str] = &[
    "<scenario name=\"s\">",
    "<scenario name=\"s\" timeout=\"5\">",
    "</scenario>",
    "<test name=\"t\">",
    "<test name=\"u\" timeout=\"9\" quiet-timeout=\"2\">",
    "</test>",
    "<boot>",
    "</boot>",
    "<expect>",
    "</expect>",
    "<run>",
    "</run>",
    "<description>",
    "</description>",
    "echo hi",
    "&amp;",
    "&foo;",
    "&#10;",
    "&#0;",
    "&#x;",
    "&",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "<?pi x?>",
    "<!DOCTYPE x>",
    "<!DOCTYPE x [",
    "]>",
    "\r\n",
    "<",
    ">",
    "/>",
    "</",
    "\"",
    "'",
    "=",
    "\u{e9}",
    "\u{feff}",
    "<x>",
    "</x>",
    " name=\"t\"",
    "timeout=\"0\"",
];

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse("p.xml", &bytes);
    }

    #[test]
    fn never_panics_on_xml_fragments(
        parts in proptest::collection::vec(
            prop_oneof![
                6 => proptest::sample::select(ELEMENTS).prop_map(str::to_owned),
                3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
                1 => "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}]{0,4}",
            ],
            0..24,
        ),
        wrap in 0..3u8,
    ) {
        // Most inputs sit inside a valid root (and test), to get past the
        // first element more often.
        let body = parts.concat();
        let xml = match wrap {
            0 => body,
            1 => format!("<scenario name=\"s\">{body}</scenario>"),
            _ => format!("<scenario name=\"s\"><test name=\"w\"><boot/>{body}</test></scenario>"),
        };
        if let Err(e) = parse("p.xml", xml.as_bytes()) {
            let lines = u32::try_from(xml.split('\n').count()).unwrap();
            prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {}: {}", e.line, lines, e);
        }
    }

    #[test]
    fn commands_survive_escaping(command in "[^\u{0}-\u{1f}]{1,40}") {
        let trimmed = command.trim_matches(' ');
        prop_assume!(!trimmed.is_empty());
        let xml = format!(
            "<scenario name=\"s\"><test name=\"t\"><run>{}</run></test></scenario>",
            quick_xml::escape::escape(command.as_str()),
        );
        let scenario = parse("p.xml", xml.as_bytes()).unwrap();
        prop_assert_eq!(
            &scenario.tests[0].kind,
            &TestKind::Run(RunSpec {
                command: trimmed.to_owned(),
                junit: None
            })
        );
    }
}
