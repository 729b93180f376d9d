//! Property tests of the `<boot/>` matcher (DESIGN section 5) over
//! generated specs and console output cut into arbitrary reads: it never
//! panics, emits at most one verdict and nothing after it, decides a
//! verdict once the output ends, gives the same events however the output
//! is split (when no fail-on text is printed; and when one is, as long as
//! each line's text arrives before its newline), and turns Unity lines into
//! exactly the cases and verdict they report.
//!
//! `TESTARENA_FUZZ_CASES` sets the cases per property (default in
//! [`cases`]); see docs/SECURITY.md for longer runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use testarena_domain::scenario::{BootSpec, Expect, Pattern, Step};
use testarena_domain::status::Status;
use testarena_worker::matcher::{Event, Matcher, Verdict};

/// Cases per property: four properties, 60,000 cases in all by default
/// (with `fuzz_scenario`'s 45,000 in the domain crate, over 100,000).
fn cases() -> ProptestConfig {
    let cases = std::env::var("TESTARENA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Texts the expects and sends are made of; the output is made of them too.
const WORDS: &[&str] = &["ready", "Press ENTER", "ok", "abc", "é", "x"];
/// What the target fails on; never printed unless a property says so.
const FAIL_ON: &[&str] = &["Guru Meditation Error", "CORRUPT HEAP"];

/// Console output: words, pieces of words, Unity lines, noise, line ends,
/// bytes that are not UTF-8 and long runs without a newline.
fn fragment(with_crash: bool) -> BoxedStrategy<Vec<u8>> {
    let mut texts: Vec<&'static str> = vec![
        "ready",
        "Press ENTER",
        "ok",
        "abc",
        "é",
        "x",
        "rea",
        "dy",
        "Pre",
        "ss ",
        "ENTER",
        "a",
        "bc",
        "\n",
        "\r\n",
        "\n",
        " ",
        "I (12) boot: noise\n",
        "test/t.c:12:test_a:PASS\n",
        "t.c:3:test_b:FAIL: boom\n",
        "t.c:4:test_c:IGNORE\n",
        "t.c:5:test_d:FAIL\n",
        "3 Tests 1 Failures 0 Ignored \n",
        "2 Tests 0 Failures 0 Ignored \n",
    ];
    if with_crash {
        texts.extend(["Guru Meditation Error", "Guru ", "CORRUPT HEAP\n"]);
    }
    prop_oneof![
        8 => proptest::sample::select(texts).prop_map(|t| t.as_bytes().to_vec()),
        1 => proptest::sample::select(vec![&b"\xff\xfe"[..], b"\xc3", b"\xa9", b"\xe2\x82"])
            .prop_map(<[u8]>::to_vec),
        1 => (1usize..400, proptest::sample::select(vec![b'x', b'r']))
            .prop_map(|(n, b)| vec![b; n]),
        1 => (1usize..8).prop_map(|n| vec![b'\n'; n]),
    ]
    .boxed()
}

fn output(with_crash: bool) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(fragment(with_crash), 0..28).prop_map(|parts| parts.concat())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => proptest::sample::select(WORDS).prop_map(|w| Step::Expect(Expect {
            pattern: Pattern::Substring(w.to_owned()),
            line: 1,
        })),
        1 => proptest::sample::select(WORDS).prop_map(|w| Step::Send(w.to_owned())),
    ]
}

fn spec() -> impl Strategy<Value = BootSpec> {
    (
        proptest::collection::vec(step(), 0..6),
        proptest::collection::vec(
            proptest::sample::select(vec!["ok", "boom", "CORRUPT HEAP"]),
            0..2,
        ),
        any::<bool>(),
    )
        .prop_map(|(steps, fail_on, unity)| BootSpec {
            qemu_args: Vec::new(),
            steps,
            fail_on: fail_on.into_iter().map(str::to_owned).collect(),
            unity,
        })
}

/// A spec whose own fail-on texts are never printed by [`output`].
fn quiet_spec() -> impl Strategy<Value = BootSpec> {
    spec().prop_map(|mut s| {
        s.fail_on.retain(|t| t == "CORRUPT HEAP");
        s
    })
}

/// Cut points (sorted, unique, inside `len`).
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Every event a matcher emits for `bytes` read in pieces ending at `cuts`,
/// then the end of the output; checks the rules every run must keep.
fn run(spec: &BootSpec, bytes: &[u8], cuts: &[usize], target_fail_on: &[String]) -> Vec<Event> {
    let mut m = Matcher::new("t", spec, target_fail_on);
    let mut events = m.start();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let piece = &bytes[from..to.max(from)];
        from = to.max(from);
        let decided = m.verdict().is_some();
        let new = m.feed(piece);
        if decided {
            assert!(new.is_empty(), "events after the verdict: {new:?}");
        }
        events.extend(new);
    }
    let decided = m.verdict().is_some();
    let tail = m.finish();
    if decided {
        assert!(tail.is_empty(), "events after the verdict: {tail:?}");
    }
    events.extend(tail);
    let verdicts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Verdict(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(verdicts.len(), 1, "exactly one verdict: {events:?}");
    assert_eq!(
        verdicts[0],
        events.len() - 1,
        "the verdict comes last: {events:?}"
    );
    let sends = events
        .iter()
        .filter(|e| matches!(e, Event::Send(_)))
        .count();
    let spec_sends = spec
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Send(_)))
        .count();
    assert!(sends <= spec_sends, "{sends} sends of {spec_sends}");
    events
}

fn target_fail_on() -> Vec<String> {
    FAIL_ON.iter().map(|s| (*s).to_owned()).collect()
}

/// Cuts that keep every line whole except that its newline may come in a
/// read of its own.
fn line_cuts(bytes: &[u8], split_newline: &[bool]) -> Vec<usize> {
    let mut cuts = Vec::new();
    for (n, (i, _)) in bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .enumerate()
    {
        if split_newline
            .get(n % split_newline.len().max(1))
            .copied()
            .unwrap_or(false)
        {
            // Before `\r\n` or `\n`.
            let at = if i > 0 && bytes[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            cuts.push(at);
        }
        cuts.push(i + 1);
    }
    cuts.retain(|&c| c < bytes.len());
    cuts.dedup();
    cuts
}

proptest! {
    #![proptest_config(cases())]

    /// No panic, one verdict, nothing after it, on any output and any split.
    #[test]
    fn any_output_in_any_pieces_gives_one_verdict(
        spec in spec(),
        bytes in output(true),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        run(&spec, &bytes, &cuts(bytes.len(), &raw_cuts), &target_fail_on());
    }

    /// Without a crash in the output, how the output is cut into reads
    /// does not change a single event.
    #[test]
    fn the_split_of_the_output_does_not_matter(
        spec in quiet_spec(),
        bytes in output(false),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = run(&spec, &bytes, &[], &target_fail_on());
        let split = run(&spec, &bytes, &cuts(bytes.len(), &raw_cuts), &target_fail_on());
        prop_assert_eq!(whole, split);
    }

    /// With crashes in the output, a line whose newline comes in a later
    /// read than its text gives the events of the whole line: a crash text
    /// already on screen is not passed over by an expect on the same line.
    #[test]
    fn a_late_newline_does_not_hide_a_crash(
        spec in spec(),
        bytes in output(true),
        split_newline in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let whole_lines = line_cuts(&bytes, &[false]);
        let whole = run(&spec, &bytes, &whole_lines, &target_fail_on());
        let late = run(&spec, &bytes, &line_cuts(&bytes, &split_newline), &target_fail_on());
        prop_assert_eq!(whole, late);
    }

    /// Unity result lines become exactly their cases, and the summary
    /// decides: failed with max(reported, seen) failures, else passed.
    #[test]
    fn unity_lines_become_their_cases(
        results in proptest::collection::vec(
            (
                "[a-z][a-z0-9_]{0,12}",
                proptest::sample::select(vec!["PASS", "FAIL", "IGNORE"]),
                proptest::option::of("[A-Za-z0-9 =]{1,20}"),
            ),
            0..12,
        ),
        reported_failures in 0u64..4,
        piece in 3usize..64,
    ) {
        let spec = BootSpec { qemu_args: Vec::new(), steps: Vec::new(), fail_on: Vec::new(), unity: true };
        let mut text = String::new();
        let mut expected = Vec::new();
        for (i, (name, result, message)) in results.iter().enumerate() {
            let message = message.as_deref().map(str::trim).filter(|m| !m.is_empty());
            // PASS carries no message.
            let message = if *result == "PASS" { None } else { message };
            match message {
                Some(m) => text.push_str(&format!("test/t.c:{i}:{name}:{result}: {m}\r\n")),
                None => text.push_str(&format!("test/t.c:{i}:{name}:{result}\r\n")),
            }
            let status = match *result {
                "PASS" => Status::Passed,
                "FAIL" => Status::Failed,
                _ => Status::Skipped,
            };
            expected.push(Event::Case {
                name: format!("t/{name}"),
                status,
                message: message.map(str::to_owned),
            });
        }
        let failed = results.iter().filter(|(_, r, _)| *r == "FAIL").count() as u64;
        text.push_str(&format!(
            "{} Tests {reported_failures} Failures 0 Ignored \r\nOK\r\n",
            results.len()
        ));
        let bytes = text.as_bytes();
        let cuts: Vec<usize> = (piece..bytes.len()).step_by(piece).collect();
        let events = run(&spec, bytes, &cuts, &[]);
        let failures = reported_failures.max(failed);
        expected.push(Event::Verdict(if failures > 0 {
            Verdict::Failed(format!("{failures} unity failures"))
        } else {
            Verdict::Passed
        }));
        prop_assert_eq!(events, expected);
    }
}
