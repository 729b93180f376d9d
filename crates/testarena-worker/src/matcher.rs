//! The streaming matcher of `<boot/>` tests (DESIGN section 5): console
//! bytes in, events out (what to send, Unity cases, the verdict).
//!
//! It is pure and synchronous: the caller feeds it output as it arrives, in
//! pieces of any size, and acts on the events. It assembles lines itself in
//! bounded memory: a line longer than [`MAX_LINE`] is matched in chunks of
//! that size. Bytes that are not UTF-8 are matched lossily.
//!
//! Rules:
//! - Steps run in document order: a `<send>` is emitted once every
//!   `<expect>` before it matched. An expect is looked for after the point
//!   where the previous one matched, also in a line not yet ended (a prompt
//!   without a newline).
//! - A complete line containing a fail-on text (the target's or the test's)
//!   fails the test with `crash: <that line>`.
//! - With `<unity/>`, result lines become cases named `<test>/<NAME>` and the
//!   summary line ends the test: failures fail it, otherwise it passes if
//!   every expect matched. Without `<unity/>`, the test passes once the last
//!   step, an expect, matched; a test whose steps do not end with an expect
//!   runs until QEMU exits.
//! - When the output ends before a verdict, the first unmatched expect fails
//!   the test (`expected "<text>" not seen`), else a missing Unity summary
//!   (`qemu exited before the verdict`), else it passes.

use std::sync::LazyLock;

use regex::Regex;
use testarena_domain::scenario::{BootSpec, Pattern, Step};
use testarena_domain::status::Status;

use crate::logfile::incomplete_tail_len;

/// The longest line matched as one; longer lines are matched in chunks.
pub const MAX_LINE: usize = 64 * 1024;
/// A Unity result line: `FILE:LINE:NAME:PASS|FAIL|IGNORE[...]`.
static UNITY_RESULT: LazyLock<Regex> =
    LazyLock::new(|| unity_regex(r"^(.+?):(\d+):([^:]+):(PASS|FAIL|IGNORE)(.*)$"));
/// The Unity summary: `N Tests N Failures N Ignored`.
static UNITY_SUMMARY: LazyLock<Regex> =
    LazyLock::new(|| unity_regex(r"^(\d+) Tests (\d+) Failures (\d+) Ignored\b"));
/// The longest console line quoted in a crash message.
const MAX_QUOTE: usize = 512;

/// The message of a test stopped by its `timeout`.
pub fn timeout_message(seconds: u64) -> String {
    format!("timeout after {seconds} s")
}

/// The message of a test stopped by its `quiet-timeout`.
pub fn quiet_message(seconds: u64) -> String {
    format!("no output for {seconds} s")
}

/// The message of a `<run>` test whose command failed.
pub fn exit_code_message(code: i32) -> String {
    format!("exit code {code}")
}

/// The message when QEMU's output ends with no verdict and no expect pending.
pub const QEMU_EXITED: &str = "qemu exited before the verdict";

/// How a test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Failed, with its message (one of DESIGN section 5's classes).
    Failed(String),
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write this text and a newline to the console.
    Send(String),
    /// A Unity result: record it as a test case.
    Case {
        name: String,
        status: Status,
        message: Option<String>,
    },
    /// The test is decided; stop QEMU. Emitted once, and nothing follows it.
    Verdict(Verdict),
}

/// One `<boot/>` test being watched.
#[derive(Debug)]
pub struct Matcher {
    test: String,
    steps: Vec<Step>,
    /// Index of the next step to do.
    next: usize,
    fail_on: Vec<String>,
    unity: Option<Unity>,
    /// The current line, at most [`MAX_LINE`] bytes.
    line: Vec<u8>,
    /// Bytes of `line` already consumed by matched expects.
    consumed: usize,
    crash: Option<String>,
    verdict: Option<Verdict>,
}

/// Unity state: the line patterns and what was seen.
#[derive(Debug)]
struct Unity {
    result: Regex,
    summary: Regex,
    failed_cases: u64,
    /// Failures reported by the summary, once seen.
    summary_failures: Option<u64>,
}

impl Matcher {
    /// A matcher for test `test`, with the target's fail-on texts.
    pub fn new(test: &str, spec: &BootSpec, target_fail_on: &[String]) -> Self {
        let unity = spec.unity.then(|| Unity {
            // Compiled once per process: a Regex clone shares the program.
            result: UNITY_RESULT.clone(),
            summary: UNITY_SUMMARY.clone(),
            failed_cases: 0,
            summary_failures: None,
        });
        let fail_on = target_fail_on
            .iter()
            .chain(&spec.fail_on)
            .filter(|t| !t.is_empty())
            .cloned()
            .collect();
        Self {
            test: test.to_owned(),
            steps: spec.steps.clone(),
            next: 0,
            fail_on,
            unity,
            line: Vec::new(),
            consumed: 0,
            crash: None,
            verdict: None,
        }
    }

    /// The events due before any output: sends that no expect precedes.
    pub fn start(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        self.advance("", &mut events);
        events
    }

    /// The verdict, once decided.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// Feeds console output; returns what to do about it.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        while !bytes.is_empty() && self.verdict.is_none() {
            let room = MAX_LINE - self.line.len();
            let (take, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) if i < room => (i + 1, true),
                _ if bytes.len() >= room => (room, true),
                _ => (bytes.len(), false),
            };
            self.line.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if ended {
                self.end_line(&mut events);
            }
        }
        if self.verdict.is_none() && self.line.len() > self.consumed {
            self.match_partial(&mut events);
        }
        events
    }

    /// The output ended (QEMU exited or closed its console): decides the
    /// verdict if it is not known yet.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.verdict.is_some() {
            return events;
        }
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        if self.verdict.is_none() {
            let verdict = if let Some(text) = self.pending_expect() {
                Verdict::Failed(format!("expected \"{text}\" not seen"))
            } else if self
                .unity
                .as_ref()
                .is_some_and(|u| u.summary_failures.is_none())
            {
                Verdict::Failed(QEMU_EXITED.to_owned())
            } else {
                Verdict::Passed
            };
            self.decide(verdict, &mut events);
        }
        events
    }

    /// Processes the complete line in `self.line` and clears it.
    fn end_line(&mut self, events: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        let consumed = std::mem::replace(&mut self.consumed, 0);
        let whole = String::from_utf8_lossy(&line);
        let whole = whole.trim_end_matches(['\n', '\r']);
        let rest = String::from_utf8_lossy(&line[consumed..]);
        self.advance(rest.trim_end_matches(['\n', '\r']), events);
        if self.crash.is_none() && self.fail_on.iter().any(|t| whole.contains(t.as_str())) {
            self.crash = Some(format!("crash: {}", quote(whole.trim())));
        }
        self.unity_line(whole.trim(), events);
        self.check(events);
        // Keep the allocation for the next line.
        self.line = line;
        self.line.clear();
    }

    /// Looks for the pending expects in the unfinished line, up to the last
    /// complete character.
    fn match_partial(&mut self, events: &mut Vec<Event>) {
        let end = self.line.len() - incomplete_tail_len(&self.line);
        if end <= self.consumed {
            return;
        }
        let bytes = self.line[self.consumed..end].to_vec();
        let text = String::from_utf8_lossy(&bytes);
        let used = self.advance(&text, events);
        self.consumed += byte_offset(&bytes, used);
        if self.passes_on_the_last_expect() && self.crash.is_none() {
            // The test would pass before its line ends: a crash text
            // already in that line still wins, as it does when the line
            // arrives whole.
            // The whole line so far, an unfinished character included, so
            // the message reads as it would had the line arrived whole.
            let seen = String::from_utf8_lossy(&self.line).into_owned();
            if self.fail_on.iter().any(|t| seen.contains(t.as_str())) {
                self.crash = Some(format!("crash: {}", quote(seen.trim())));
            }
        }
        self.check(events);
    }

    /// Whether the test passes now that its last step, an expect, matched
    /// (tests without `<unity/>`).
    fn passes_on_the_last_expect(&self) -> bool {
        self.unity.is_none()
            && matches!(self.steps.last(), Some(Step::Expect(_)))
            && self.next == self.steps.len()
    }

    /// Does the steps that `text` allows, in order: sends are emitted, each
    /// expect is looked for after the previous match. Returns how much of
    /// `text` the matches used.
    fn advance(&mut self, text: &str, events: &mut Vec<Event>) -> usize {
        let mut pos = 0;
        while let Some(step) = self.steps.get(self.next) {
            match step {
                Step::Send(s) => events.push(Event::Send(s.clone())),
                Step::Expect(e) => match find(&e.pattern, text, pos) {
                    Some(end) => pos = end,
                    None => break,
                },
            }
            self.next += 1;
        }
        pos
    }

    fn unity_line(&mut self, line: &str, events: &mut Vec<Event>) {
        let Some(unity) = &mut self.unity else { return };
        if unity.summary_failures.is_some() {
            return;
        }
        if let Some(c) = unity.summary.captures(line) {
            unity.summary_failures = Some(c[2].parse().unwrap_or(u64::MAX));
            return;
        }
        let Some(c) = unity.result.captures(line) else {
            return;
        };
        let rest = &c[5];
        // `PASS` stands alone; `FAIL` and `IGNORE` may carry a message after
        // a colon (or, for FAIL, a space). Anything else is not a result.
        let (status, message) = match &c[4] {
            "PASS" if rest.trim().is_empty() => (Status::Passed, None),
            "FAIL" if rest.is_empty() || rest.starts_with([':', ' ', '\t']) => {
                (Status::Failed, message_of(rest))
            }
            "IGNORE" if rest.is_empty() || rest.starts_with(':') => {
                (Status::Skipped, message_of(rest))
            }
            _ => return,
        };
        if status == Status::Failed {
            unity.failed_cases += 1;
        }
        events.push(Event::Case {
            name: format!("{}/{}", self.test, c[3].trim()),
            status,
            message,
        });
    }

    /// Decides the verdict if the output so far allows it.
    fn check(&mut self, events: &mut Vec<Event>) {
        if self.verdict.is_some() {
            return;
        }
        if let Some(crash) = self.crash.clone() {
            return self.decide(Verdict::Failed(crash), events);
        }
        match &self.unity {
            Some(unity) => {
                let Some(reported) = unity.summary_failures else {
                    return;
                };
                let failures = reported.max(unity.failed_cases);
                let verdict = if failures > 0 {
                    Verdict::Failed(format!("{failures} unity failures"))
                } else if let Some(text) = self.pending_expect() {
                    Verdict::Failed(format!("expected \"{text}\" not seen"))
                } else {
                    Verdict::Passed
                };
                self.decide(verdict, events);
            }
            None => {
                if self.passes_on_the_last_expect() {
                    self.decide(Verdict::Passed, events);
                }
            }
        }
    }

    fn decide(&mut self, verdict: Verdict, events: &mut Vec<Event>) {
        self.verdict = Some(verdict.clone());
        events.push(Event::Verdict(verdict));
        self.line.clear();
    }

    /// The text of the first expect not matched yet.
    fn pending_expect(&self) -> Option<&str> {
        self.steps[self.next.min(self.steps.len())..]
            .iter()
            .find_map(|s| match s {
                Step::Expect(e) => Some(e.text()),
                Step::Send(_) => None,
            })
    }
}

#[expect(
    clippy::expect_used,
    reason = "constant patterns, compiled by every test: they cannot fail"
)]
fn unity_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid Unity pattern")
}

fn message_of(rest: &str) -> Option<String> {
    let m = rest.strip_prefix(':').unwrap_or(rest).trim();
    (!m.is_empty()).then(|| m.to_owned())
}

/// Where the first match of `pattern` in `text` at or after `from` ends.
fn find(pattern: &Pattern, text: &str, from: usize) -> Option<usize> {
    match pattern {
        Pattern::Substring(s) => text[from..].find(s.as_str()).map(|i| from + i + s.len()),
        Pattern::Regex(re) => re.find_at(text, from).map(|m| m.end()),
    }
}

/// The byte offset in `bytes` of position `pos` in its lossy conversion
/// (each invalid sequence became one 3-byte U+FFFD).
fn byte_offset(bytes: &[u8], mut pos: usize) -> usize {
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid().len();
        if pos <= valid {
            return offset + pos;
        }
        pos -= valid;
        offset += valid;
        if !chunk.invalid().is_empty() {
            if pos < 3 {
                return offset;
            }
            pos -= 3;
            offset += chunk.invalid().len();
        }
    }
    offset
}

/// A console line short enough for a message.
fn quote(line: &str) -> String {
    match line.char_indices().nth(MAX_QUOTE) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
#[path = "matcher_tests.rs"]
mod tests;
