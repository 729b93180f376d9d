//! `<run junit="...">`: the JUnit file a real command wrote becomes test
//! cases with messages and durations; a malformed or missing file fails
//! the test saying why.

use testarena_testkit::{Content, Farm};

use super::{DEADLINE, case, setup};

const SCENARIO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="junit" timeout="60">
  <test name="py" timeout="20">
    <run junit="reports/py.xml">sh tools/fake-pytest.sh reports/py.xml</run>
  </test>
  <test name="green" timeout="20">
    <run junit="reports/green.xml">mkdir -p reports &amp;&amp; printf '&lt;testsuite&gt;&lt;testcase classname="c" name="ok" time="0.5"/&gt;&lt;/testsuite&gt;' &gt; reports/green.xml</run>
  </test>
  <test name="broken" timeout="20">
    <run junit="reports/broken.xml">mkdir -p reports &amp;&amp; printf '&lt;testsuite&gt;&lt;testcase name="x"&gt;' &gt; reports/broken.xml</run>
  </test>
  <test name="missing" timeout="20">
    <run junit="reports/never.xml">true</run>
  </test>
</scenario>
"#;

/// Writes a pytest-like report: a pass, a failure with a message, a skip.
const FAKE_PYTEST: &str = r#"#!/bin/sh
mkdir -p "$(dirname "$1")"
cat > "$1" <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3" failures="1" skipped="1">
<testcase classname="tests.test_fib" name="test_small" time="0.012"/>
<testcase classname="tests.test_fib" name="test_big" time="1.25"><failure message="assert fib(20) == 42">E assert 6765 == 42</failure></testcase>
<testcase classname="tests.test_io" name="test_uart" time="0.001"><skipped message="no board attached"/></testcase>
</testsuite></testsuites>
XML
echo "3 tests, 1 failed"
"#;

#[test]
fn junit_files_become_cases_and_bad_ones_fail_the_test() {
    let farm = Farm::start(setup(""));
    farm.repo.commit(
        "main",
        &[
            ("scenarios/junit.xml", Content::Text(SCENARIO.into())),
            ("tools/fake-pytest.sh", Content::Text(FAKE_PYTEST.into())),
        ],
    );
    let id = farm.submit("main", &["scenarios/junit.xml"]);
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "failed", "{q:#}");

    let small = case(&q, "py/tests.test_fib.test_small");
    assert_eq!(
        (&small["status"], &small["duration_ms"]),
        (&"passed".into(), &12.into())
    );
    let big = case(&q, "py/tests.test_fib.test_big");
    assert_eq!(big["status"], "failed");
    assert_eq!(big["duration_ms"], 1250);
    assert_eq!(big["message"], "assert fib(20) == 42");
    let uart = case(&q, "py/tests.test_io.test_uart");
    assert_eq!(
        (&uart["status"], &uart["message"]),
        (&"skipped".into(), &"no board attached".into())
    );
    let py = case(&q, "py");
    assert_eq!(py["status"], "failed", "{py:#}");
    assert_eq!(
        py["message"],
        "1 of 3 JUnit cases failed: py/tests.test_fib.test_big: assert fib(20) == 42"
    );

    assert_eq!(case(&q, "green")["status"], "passed");
    assert_eq!(case(&q, "green/c.ok")["duration_ms"], 500);

    let broken = case(&q, "broken");
    assert_eq!(broken["status"], "failed");
    let message = broken["message"].as_str().unwrap();
    assert!(
        message.starts_with("JUnit file reports/broken.xml: line 1: not well-formed XML"),
        "{message}"
    );
    let missing = case(&q, "missing");
    assert_eq!(missing["status"], "failed");
    assert_eq!(
        missing["message"],
        "JUnit file reports/never.xml: not found (did the command write it?)"
    );
    // The task counts the imported cases too: 3 passed (small, green, its
    // case), 4 failed (py, big, broken, missing), 1 skipped.
    let task = &q["tasks"][0];
    assert_eq!(
        (&task["passed"], &task["failed"], &task["skipped"]),
        (&3.into(), &4.into(), &1.into()),
        "{task:#}"
    );
}
