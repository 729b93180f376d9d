//! Tests of the streaming matcher: scenarios go through the real parser, so
//! the specs are exactly what the worker gets.

use testarena_domain::scenario::{TestKind, parse};

use super::*;

const TARGET_FAIL_ON: &[&str] = &["Guru Meditation Error", "Rebooting..."];

/// A matcher for the single `<test>` in `body` (the inside of `<test>`).
fn matcher(body: &str) -> Matcher {
    let xml = format!("<scenario name=\"s\"><test name=\"t\">{body}</test></scenario>");
    let scenario = parse("s.xml", xml.as_bytes()).unwrap();
    let TestKind::Boot(spec) = &scenario.tests[0].kind else {
        panic!("not a boot test");
    };
    let fail_on: Vec<String> = TARGET_FAIL_ON.iter().map(|s| (*s).to_owned()).collect();
    Matcher::new("t", spec, &fail_on)
}

fn passed() -> Event {
    Event::Verdict(Verdict::Passed)
}

fn failed(message: &str) -> Event {
    Event::Verdict(Verdict::Failed(message.to_owned()))
}

fn send(text: &str) -> Event {
    Event::Send(text.to_owned())
}

fn case(name: &str, status: Status, message: Option<&str>) -> Event {
    Event::Case {
        name: name.to_owned(),
        status,
        message: message.map(str::to_owned),
    }
}

/// Every event of a whole transcript fed in pieces of `size` bytes.
fn feed_in_pieces(m: &mut Matcher, bytes: &[u8], size: usize) -> Vec<Event> {
    let mut events = m.start();
    for piece in bytes.chunks(size) {
        events.extend(m.feed(piece));
    }
    events.extend(m.finish());
    events
}

#[test]
fn expects_match_in_order() {
    let mut m = matcher("<boot/><expect>first</expect><expect>second</expect>");
    assert_eq!(m.start(), vec![]);
    // `second` before `first` does not count.
    assert_eq!(m.feed(b"second\nfirst\n"), vec![]);
    assert_eq!(m.verdict(), None);
    assert_eq!(m.feed(b"second\n"), vec![passed()]);
    // Nothing follows a verdict.
    assert_eq!(m.feed(b"Guru Meditation Error\n"), vec![]);
    assert_eq!(m.finish(), vec![]);
}

#[test]
fn expects_on_one_line_match_left_to_right() {
    let mut m = matcher("<boot/><expect>A</expect><expect>B</expect>");
    assert_eq!(m.feed(b"B A\n"), vec![]);
    let mut m2 = matcher("<boot/><expect>A</expect><expect>B</expect>");
    assert_eq!(m2.feed(b"A B\n"), vec![passed()]);
    assert_eq!(m.feed(b"xx B\n"), vec![passed()]);
}

#[test]
fn regex_expects() {
    let mut m = matcher(r#"<boot/><expect regex="true">\d+ Tests 0 Failures</expect>"#);
    assert_eq!(m.feed(b"5 Tests 1 Failures 0 Ignored\n"), vec![]);
    assert_eq!(m.feed(b"12 Tests 0 Failures 1 Ignored\n"), vec![passed()]);
    // A substring expect takes regex characters literally.
    let mut m = matcher(r"<boot/><expect>a.c (x)</expect>");
    assert_eq!(m.feed(b"abc x\n"), vec![]);
    assert_eq!(m.feed(b"a.c (x)\n"), vec![passed()]);
}

#[test]
fn a_send_is_written_once_every_expect_before_it_matched() {
    let mut m = matcher(
        "<boot/><send>early</send><expect>prompt</expect><send>*</send>\
         <send>again</send><expect>done</expect>",
    );
    assert_eq!(m.start(), vec![send("early")]);
    assert_eq!(m.feed(b"booting\n"), vec![]);
    assert_eq!(m.feed(b"prompt\n"), vec![send("*"), send("again")]);
    // Never twice.
    assert_eq!(m.feed(b"prompt\n"), vec![]);
    assert_eq!(m.feed(b"done\n"), vec![passed()]);
}

#[test]
fn a_prompt_without_a_newline_is_matched() {
    let mut m = matcher("<boot/><expect>login:</expect><send>root</send><expect>#</expect>");
    assert_eq!(m.feed(b"login: "), vec![send("root")]);
    // The match used the line up to the prompt: `#` is looked for after it.
    assert_eq!(m.feed(b"\n"), vec![]);
    assert_eq!(m.feed(b"# "), vec![passed()]);
}

#[test]
fn a_partial_match_is_not_repeated_when_the_line_ends() {
    let mut m = matcher("<boot/><expect>x</expect><send>go</send><expect>x</expect>");
    assert_eq!(m.feed(b"x"), vec![send("go")]);
    // The same `x` must not count twice once the line is complete.
    assert_eq!(m.feed(b"\n"), vec![]);
    assert_eq!(m.feed(b"x\n"), vec![passed()]);
}

#[test]
fn target_fail_on_texts_are_crashes() {
    let mut m = matcher("<boot/><expect>never</expect>");
    assert_eq!(m.feed(b"I (10) boot: ok\r\n"), vec![]);
    assert_eq!(
        m.feed(b"Guru Meditation Error: Core  0 panic'ed (LoadProhibited). \r\nBacktrace\r\n"),
        vec![failed(
            "crash: Guru Meditation Error: Core  0 panic'ed (LoadProhibited)."
        )]
    );
}

#[test]
fn test_fail_on_texts_add_to_the_targets() {
    let mut m = matcher("<boot/><expect>never</expect><fail-on>assert failed</fail-on>");
    assert_eq!(
        m.feed(b"  assert failed: foo.c:12\n"),
        vec![failed("crash: assert failed: foo.c:12")]
    );
    let mut m = matcher("<boot/><expect>never</expect><fail-on>assert failed</fail-on>");
    assert_eq!(
        m.feed(b"Rebooting...\n"),
        vec![failed("crash: Rebooting...")]
    );
}

#[test]
fn a_crash_on_the_last_expects_line_is_still_a_crash() {
    let mut m = matcher("<boot/><expect>Rebooting</expect>");
    assert_eq!(
        m.feed(b"Rebooting...\n"),
        vec![failed("crash: Rebooting...")]
    );
}

#[test]
fn a_fail_on_text_in_an_unfinished_line_counts_when_the_output_ends() {
    let mut m = matcher("<boot/><expect>never</expect>");
    assert_eq!(m.feed(b"Guru Meditation Error"), vec![]);
    assert_eq!(m.finish(), vec![failed("crash: Guru Meditation Error")]);
}

#[test]
fn unity_lines_become_cases() {
    let mut m = matcher("<boot/><unity/>");
    let out = "Running tests...\r\n\
        test/test_basic.c:10:test_one:PASS\r\n\
        test/test_basic.c:20:test_two:FAIL: Expected 42 Was 41\r\n\
        test/test_basic.c:30:test three with spaces:FAIL Expected 1 Was 2\r\n\
        test/test_basic.c:35:test_bare_fail:FAIL\r\n\
        test/test_basic.c:40:test_four:IGNORE\r\n\
        test/test_basic.c:50:test_five:IGNORE: not on this target\r\n\
        test/test_basic.c:60:test_six:PASSED maybe\r\n\
        some text: with:colons:PASS\r\n";
    let events = m.feed(out.as_bytes());
    assert_eq!(
        events,
        vec![
            case("t/test_one", Status::Passed, None),
            case("t/test_two", Status::Failed, Some("Expected 42 Was 41")),
            case(
                "t/test three with spaces",
                Status::Failed,
                Some("Expected 1 Was 2")
            ),
            case("t/test_bare_fail", Status::Failed, None),
            case("t/test_four", Status::Skipped, None),
            case("t/test_five", Status::Skipped, Some("not on this target")),
        ]
    );
    assert_eq!(m.verdict(), None);
    assert_eq!(
        m.feed(b"-----------------------\r\n7 Tests 3 Failures 2 Ignored \r\nFAIL\r\n"),
        vec![failed("3 unity failures")]
    );
}

#[test]
fn the_unity_summary_ends_the_test() {
    let mut m = matcher(
        r#"<boot/><expect>Press ENTER to see the list of tests.</expect><send>*</send>
           <expect regex="true">\d+ Tests \d+ Failures</expect><unity/>"#,
    );
    let out = b"I (0) boot\r\nPress ENTER to see the list of tests.\r\n\
        a.c:1:x:PASS\r\nb.c:2:y:IGNORE\r\n\r\n2 Tests 0 Failures 1 Ignored \r\nOK\r\n";
    assert_eq!(
        feed_in_pieces(&mut m, out, out.len()),
        vec![
            send("*"),
            case("t/x", Status::Passed, None),
            case("t/y", Status::Skipped, None),
            passed(),
        ]
    );
}

#[test]
fn a_summary_with_zero_failures_but_fail_lines_fails() {
    let mut m = matcher("<boot/><unity/>");
    m.feed(b"a.c:1:x:FAIL:boom\n");
    assert_eq!(
        m.feed(b"1 Tests 0 Failures 0 Ignored\n"),
        vec![failed("1 unity failures")]
    );
}

#[test]
fn a_summary_before_the_expects_fails_with_the_missing_expect() {
    let mut m = matcher("<boot/><expect>banner</expect><unity/>");
    assert_eq!(
        m.feed(b"0 Tests 0 Failures 0 Ignored\n"),
        vec![failed("expected \"banner\" not seen")]
    );
}

#[test]
fn lines_split_across_reads_give_the_same_events() {
    let body = r#"<boot/><expect>Press ENTER to see the list of tests.</expect><send>*</send>
        <expect regex="true">\d+ Tests \d+ Failures</expect><unity/>"#;
    let out = "I (27) boot: ESP-IDF v5.1.2 2nd stage bootloader\r\n\
        Press ENTER to see the list of tests.\r\n\
        Running test_the_answer...\r\n\
        test/test_basic.c:50:test_the_answer:FAIL: Expected 42 Was 41\r\n\
        test/test_basic.c:60:test_ok:PASS\r\n\
        test/test_basic.c:70:test_skip:IGNORE\r\n\
        3 Tests 1 Failures 1 Ignored \r\nFAIL\r\n"
        .as_bytes();
    let whole = feed_in_pieces(&mut matcher(body), out, out.len());
    assert_eq!(
        whole,
        vec![
            send("*"),
            case(
                "t/test_the_answer",
                Status::Failed,
                Some("Expected 42 Was 41")
            ),
            case("t/test_ok", Status::Passed, None),
            case("t/test_skip", Status::Skipped, None),
            failed("1 unity failures"),
        ]
    );
    for size in [1, 2, 3, 7, 64] {
        assert_eq!(
            feed_in_pieces(&mut matcher(body), out, size),
            whole,
            "pieces of {size}"
        );
    }
}

#[test]
fn invalid_utf8_is_matched_lossily() {
    let mut m = matcher("<boot/><expect>ready</expect><send>go</send><expect>é done</expect>");
    assert_eq!(m.feed(b"\xff\xfe garbage \xc3\x28 ready"), vec![send("go")]);
    // A multi-byte character cut by the read is completed by the next one.
    let done = "é done\n".as_bytes();
    assert_eq!(m.feed(&done[..1]), vec![]);
    assert_eq!(m.feed(&done[1..]), vec![passed()]);
}

#[test]
fn a_crash_line_with_invalid_utf8_is_quoted_lossily() {
    let mut m = matcher("<boot/><expect>never</expect>");
    assert_eq!(
        m.feed(b"\xffGuru Meditation Error\n"),
        vec![failed("crash: \u{fffd}Guru Meditation Error")]
    );
}

#[test]
fn a_very_long_line_is_matched_in_bounded_chunks() {
    let mut m = matcher("<boot/><expect>needle</expect>");
    let filler = vec![b'x'; 5 * MAX_LINE + 17];
    for piece in filler.chunks(10_000) {
        assert_eq!(m.feed(piece), vec![]);
        assert!(m.line.len() <= MAX_LINE);
    }
    assert_eq!(m.feed(b"needle"), vec![passed()]);
}

#[test]
fn a_long_crash_line_is_quoted_shortly() {
    let mut m = matcher("<boot/><expect>never</expect>");
    let mut line = b"Guru Meditation Error ".to_vec();
    line.extend(vec![b'y'; 2000]);
    line.push(b'\n');
    let events = m.feed(&line);
    let [Event::Verdict(Verdict::Failed(message))] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert!(message.starts_with("crash: Guru Meditation Error yyy"));
    assert!(message.ends_with('…'));
    assert!(message.chars().count() < MAX_QUOTE + 10);
}

#[test]
fn when_the_output_ends_first() {
    // An expect not seen.
    let mut m = matcher("<boot/><expect>one</expect><expect>two</expect>");
    m.feed(b"one\n");
    assert_eq!(m.finish(), vec![failed("expected \"two\" not seen")]);
    // Every expect seen, no Unity summary.
    let mut m = matcher("<boot/><expect>one</expect><unity/>");
    m.feed(b"one\na.c:1:x:PASS\n");
    assert_eq!(m.finish(), vec![failed(QEMU_EXITED)]);
    // No steps: the test runs until QEMU exits and passes without a crash.
    let mut m = matcher("<boot/>");
    assert_eq!(m.feed(b"hello\n"), vec![]);
    assert_eq!(m.finish(), vec![passed()]);
    // Steps ending with a send also wait for the exit.
    let mut m = matcher("<boot/><expect>p</expect><send>q</send>");
    assert_eq!(m.feed(b"p\n"), vec![send("q")]);
    assert_eq!(m.verdict(), None);
    assert_eq!(m.finish(), vec![passed()]);
}

#[test]
fn failure_messages_are_the_designs() {
    assert_eq!(timeout_message(60), "timeout after 60 s");
    assert_eq!(quiet_message(5), "no output for 5 s");
    assert_eq!(exit_code_message(2), "exit code 2");
    assert_eq!(QEMU_EXITED, "qemu exited before the verdict");
}

#[test]
fn byte_offsets_of_lossy_positions() {
    let bytes = b"a\xffb\xc3\xa9c";
    let text = String::from_utf8_lossy(bytes);
    assert_eq!(text, "a\u{fffd}béc");
    for (pos, expected) in [(0, 0), (1, 1), (4, 2), (5, 3), (7, 5), (8, 6)] {
        assert_eq!(byte_offset(bytes, pos), expected, "pos {pos}");
    }
}
