//! The scenario XML parser: bytes in, a typed [`Scenario`] or a
//! [`ScenarioError`] with file and line out (DESIGN.md section 5).
//!
//! The API server parses every scenario at submit time (so a typo is a 422)
//! and the worker parses it again from the checkout before running it. The
//! parser is pure and strict: the file comes from a repository anyone with
//! push access controls, so it refuses what it does not understand instead of
//! guessing. A DOCTYPE is refused as soon as it is seen and entities are never
//! expanded (no billion laughs); only the five predefined entities and
//! numeric character references are resolved; every element and attribute
//! must be known; regexes are compiled with a size limit, at most
//! [`MAX_REGEX_EXPECTS`] of them per file.
//!
//! Every error carries the 1-based line where the offending element,
//! attribute or text starts. Lines are computed from quick-xml's byte
//! offsets with a running counter, so a 1 MiB file is scanned once.

use regex::Regex;

mod parser;
mod xml;

/// Largest scenario file accepted, in bytes.
pub const MAX_SCENARIO_BYTES: usize = 1024 * 1024;
/// Largest `timeout` / `quiet-timeout`, in seconds (one day).
pub const MAX_TIMEOUT_S: u64 = 86_400;
/// Most `<expect regex="true">` in one file. Each regex may compile to
/// 1 MiB, which takes milliseconds; the cap bounds what one file can cost
/// the API server at submit time.
pub const MAX_REGEX_EXPECTS: usize = 256;

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The root's `name` attribute (never blank).
    pub name: String,
    /// `<description>`, trimmed; `None` when absent or blank.
    pub description: Option<String>,
    /// The root's `timeout` attribute, seconds.
    pub timeout_s: Option<u64>,
    /// `<env name value/>` in document order, for `<run>` commands. Names
    /// are unique shell identifiers that do not start with `TESTARENA_`.
    pub env: Vec<(String, String)>,
    /// The tests in document order; at least one, names unique.
    pub tests: Vec<TestSpec>,
}

/// One `<test>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    /// Matches `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`: safe as a file name.
    pub name: String,
    /// Line of the `<test>` start tag.
    pub line: u32,
    /// `timeout`, seconds; `None` means the worker's `test_timeout_s`.
    pub timeout_s: Option<u64>,
    /// `quiet-timeout`, seconds: fail when no output arrives for this long.
    pub quiet_timeout_s: Option<u64>,
    /// What the test does.
    pub kind: TestKind,
}

/// A test either boots the firmware or runs a command, never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestKind {
    /// `<boot/>`: boot the firmware in QEMU and watch the serial console.
    Boot(BootSpec),
    /// `<run>command</run>`: `sh -c command` in the checkout.
    Run(RunSpec),
}

/// A `<boot>` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSpec {
    /// `<qemu-arg>` texts, appended to the target's QEMU argv.
    pub qemu_args: Vec<String>,
    /// `<expect>` and `<send>` in document order.
    pub steps: Vec<Step>,
    /// `<fail-on>` texts, added to the target's `fail_on`.
    pub fail_on: Vec<String>,
    /// `<unity/>`: Unity result lines become test cases.
    pub unity: bool,
}

/// A `<run>` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The command, trimmed and never empty, for `sh -c`.
    pub command: String,
    /// `junit="path"`: the JUnit XML file the command writes, relative to
    /// the checkout (no `..`, not absolute); its `<testcase>`s become the
    /// test's cases (DESIGN section 11, "Results from other tools").
    pub junit: Option<String>,
}

/// One step of a boot test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Wait until the console shows this.
    Expect(Expect),
    /// Write this, then a newline, to the serial console (never empty).
    Send(String),
}

/// An `<expect>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// What to look for.
    pub pattern: Pattern,
    /// Line of the `<expect>` start tag.
    pub line: u32,
}

impl Expect {
    /// The text as written in the file (trimmed): the substring, or the
    /// regex source. This is the `<text>` of `expected "<text>" not seen`.
    pub fn text(&self) -> &str {
        self.pattern.as_str()
    }
}

/// What an `<expect>` matches: a plain substring (the default) or, with
/// `regex="true"`, a regex compiled with a size limit. Two patterns are equal
/// when they are of the same kind and have the same source text.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Matches when the text occurs anywhere in the haystack.
    Substring(String),
    /// Matches when the regex finds a match anywhere in the haystack.
    Regex(Regex),
}

impl Pattern {
    /// The source text: the substring or the regex pattern.
    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Substring(s) => s,
            Pattern::Regex(re) => re.as_str(),
        }
    }

    /// Whether `haystack` (e.g. console output so far, or one line of it)
    /// contains a match.
    pub fn is_match(&self, haystack: &str) -> bool {
        match self {
            Pattern::Substring(s) => haystack.contains(s.as_str()),
            Pattern::Regex(re) => re.is_match(haystack),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Pattern::Substring(a), Pattern::Substring(b)) => a == b,
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for Pattern {}

/// A scenario that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScenarioError {
    /// The file as the caller named it (a path relative to the repository).
    pub file: String,
    /// 1-based line of the offending element, attribute or text.
    pub line: u32,
    /// What is wrong, in words.
    pub message: String,
}

/// Parses a scenario file. `file` only labels errors.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Scenario, ScenarioError> {
    let error = |line: u32, message: String| ScenarioError {
        file: file.to_owned(),
        line,
        message,
    };
    if bytes.len() > MAX_SCENARIO_BYTES {
        return Err(error(
            1,
            format!(
                "file is {} bytes; scenario files are limited to 1 MiB ({MAX_SCENARIO_BYTES} bytes)",
                bytes.len()
            ),
        ));
    }
    let src = match std::str::from_utf8(bytes) {
        Ok(src) => src,
        Err(e) => {
            let at = e.valid_up_to();
            return Err(error(
                xml::line_of(bytes, at),
                format!("invalid UTF-8 at byte {at}"),
            ));
        }
    };
    // A byte-order mark has no newline, so offsets past it give the same line.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    parser::parse(src)
        .map_err(|fail| error(xml::line_of(src.as_bytes(), fail.offset), fail.message))
}

#[cfg(test)]
mod tests;
