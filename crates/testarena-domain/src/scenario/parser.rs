//! The scenario format behind [`parse`](super::parse): a streaming state
//! machine over quick-xml events that knows the format's elements and
//! attributes, so anything unknown is refused at its start tag and nesting
//! never goes deeper than the format allows.
//!
//! Errors are [`Fail`]s carrying a byte offset; [`parse`](super::parse)
//! turns the offset into a line once. Lines that end up in the result
//! (tests, expects) come from [`Lines`], a running counter.

use std::collections::{HashMap, HashSet};

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use regex::RegexBuilder;

use super::xml::{
    Attr, Fail, Lines, attr, check_chars, echo, fail, is_xml_space, read_attributes,
    resolve_reference, short, short_bytes, trim_xml,
};

use super::{
    BootSpec, Expect, MAX_REGEX_EXPECTS, MAX_TIMEOUT_S, Pattern, RunSpec, Scenario, Step, TestKind,
    TestSpec,
};

/// Compiled-size and DFA-cache limit of an `<expect regex="true">`.
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;
/// Longest test name; it becomes a log file name.
const MAX_TEST_NAME_LEN: usize = 64;
/// Longest regex error kept whole in a message.
const MAX_REGEX_ERROR_CHARS: usize = 400;

/// Parses `src` (valid UTF-8, no byte-order mark).
pub(super) fn parse(src: &str) -> Result<Scenario, Fail> {
    check_chars(src)?;
    Parser::new(src).run()
}

/// The elements of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Scenario,
    Description,
    Env,
    Test,
    Boot,
    QemuArg,
    Expect,
    Send,
    FailOn,
    Unity,
    Run,
}

impl Elem {
    const ALL: [Elem; 11] = [
        Elem::Scenario,
        Elem::Description,
        Elem::Env,
        Elem::Test,
        Elem::Boot,
        Elem::QemuArg,
        Elem::Expect,
        Elem::Send,
        Elem::FailOn,
        Elem::Unity,
        Elem::Run,
    ];

    fn name(self) -> &'static str {
        match self {
            Elem::Scenario => "scenario",
            Elem::Description => "description",
            Elem::Env => "env",
            Elem::Test => "test",
            Elem::Boot => "boot",
            Elem::QemuArg => "qemu-arg",
            Elem::Expect => "expect",
            Elem::Send => "send",
            Elem::FailOn => "fail-on",
            Elem::Unity => "unity",
            Elem::Run => "run",
        }
    }

    fn from_name(name: &[u8]) -> Option<Elem> {
        Elem::ALL.into_iter().find(|e| e.name().as_bytes() == name)
    }

    fn children(self) -> &'static [Elem] {
        match self {
            Elem::Scenario => &[Elem::Description, Elem::Env, Elem::Test],
            Elem::Test => &[
                Elem::Boot,
                Elem::Run,
                Elem::Expect,
                Elem::Send,
                Elem::FailOn,
                Elem::Unity,
            ],
            Elem::Boot => &[Elem::QemuArg],
            _ => &[],
        }
    }

    /// Attributes as `(name, required)`.
    fn attributes(self) -> &'static [(&'static str, bool)] {
        match self {
            Elem::Scenario => &[("name", true), ("timeout", false)],
            Elem::Env => &[("name", true), ("value", true)],
            Elem::Test => &[("name", true), ("timeout", false), ("quiet-timeout", false)],
            Elem::Expect => &[("regex", false)],
            Elem::Run => &[("junit", false)],
            _ => &[],
        }
    }

    fn has_text(self) -> bool {
        matches!(
            self,
            Elem::Description
                | Elem::QemuArg
                | Elem::Expect
                | Elem::Send
                | Elem::FailOn
                | Elem::Run
        )
    }

    /// Elements that make sense only in a `<boot>` test.
    fn boot_only(self) -> bool {
        matches!(self, Elem::Expect | Elem::Send | Elem::FailOn | Elem::Unity)
    }
}

/// An open element.
struct Frame {
    elem: Elem,
    offset: usize,
    line: u32,
    text: String,
    regex: bool,
}

/// A `<test>` being read.
struct TestBuilder {
    name: String,
    offset: usize,
    line: u32,
    timeout_s: Option<u64>,
    quiet_timeout_s: Option<u64>,
    boot: bool,
    run_seen: bool,
    run: Option<String>,
    junit: Option<String>,
    unity: bool,
    /// The first boot-only element, for "needs <boot/>" errors.
    first_boot_only: Option<(Elem, usize)>,
    qemu_args: Vec<String>,
    steps: Vec<Step>,
    fail_on: Vec<String>,
}

impl TestBuilder {
    fn finish(self) -> Result<TestSpec, Fail> {
        let kind = match (self.boot, self.run, self.first_boot_only) {
            (true, _, _) => TestKind::Boot(BootSpec {
                qemu_args: self.qemu_args,
                steps: self.steps,
                fail_on: self.fail_on,
                unity: self.unity,
            }),
            (false, Some(_), Some((elem, offset))) => {
                return fail(
                    offset,
                    format!("<{}> is not allowed in a <run> test", elem.name()),
                );
            }
            (false, Some(command), None) => TestKind::Run(RunSpec {
                command,
                junit: self.junit,
            }),
            (false, None, Some((elem, offset))) => {
                return fail(
                    offset,
                    format!("<{}> needs <boot/> in the same test", elem.name()),
                );
            }
            (false, None, None) => {
                return fail(
                    self.offset,
                    format!("test {} needs <boot/> or <run>", echo(&self.name)),
                );
            }
        };
        Ok(TestSpec {
            name: self.name,
            line: self.line,
            timeout_s: self.timeout_s,
            quiet_timeout_s: self.quiet_timeout_s,
            kind,
        })
    }
}

/// Where the reader is relative to the root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prolog,
    Root,
    Epilog,
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    lines: Lines<'a>,
    phase: Phase,
    stack: Vec<Frame>,
    name: String,
    description: Option<String>,
    description_seen: bool,
    timeout_s: Option<u64>,
    env: Vec<(String, String)>,
    env_names: HashSet<String>,
    tests: Vec<TestSpec>,
    regex_expects: usize,
    /// Test name → line of its `<test>`.
    test_lines: HashMap<String, u32>,
    test: Option<TestBuilder>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        let mut reader = Reader::from_str(src);
        let config = reader.config_mut();
        config.enable_all_checks(true);
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Parser {
            reader,
            lines: Lines::new(src.as_bytes()),
            phase: Phase::Prolog,
            stack: Vec::new(),
            name: String::new(),
            description: None,
            description_seen: false,
            timeout_s: None,
            env: Vec::new(),
            env_names: HashSet::new(),
            tests: Vec::new(),
            regex_expects: 0,
            test_lines: HashMap::new(),
            test: None,
        }
    }

    fn position(&self) -> usize {
        usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX)
    }

    fn run(mut self) -> Result<Scenario, Fail> {
        loop {
            let at = self.position();
            let event = match self.reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = usize::try_from(self.reader.error_position()).unwrap_or(at);
                    let detail = match e {
                        quick_xml::Error::Syntax(e) => e.to_string(),
                        quick_xml::Error::IllFormed(e) => e.to_string(),
                        e => e.to_string(),
                    };
                    // quick-xml quotes what it found (a whole "end tag" when
                    // a `>` is missing): keep the message short.
                    return fail(at, format!("malformed XML: {}", cut(&detail)));
                }
            };
            match event {
                Event::Start(start) => self.open(at, &start, false)?,
                Event::Empty(start) => self.open(at, &start, true)?,
                Event::End(_) => self.close()?,
                // The reader reads a `&str`, so decoding cannot fail.
                Event::Text(text) => {
                    let first = text
                        .iter()
                        .position(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                        .unwrap_or(0);
                    let content = text.xml10_content().unwrap_or_default();
                    self.text(at + first, &content)?;
                }
                Event::CData(cdata) => {
                    let content = cdata.xml10_content().unwrap_or_default();
                    self.text(at, &content)?;
                }
                Event::GeneralRef(reference) => {
                    let resolved = resolve_reference(at, &reference)?;
                    self.text(at, &resolved)?;
                }
                Event::Comment(_) => {}
                Event::Decl(decl) => {
                    if at != 0 {
                        return fail(at, "the XML declaration must come first in the file");
                    }
                    if let Some(encoding) = decl.encoding() {
                        let encoding = encoding.unwrap_or_default();
                        if !encoding.eq_ignore_ascii_case(b"utf-8") {
                            return fail(at, "the encoding must be UTF-8");
                        }
                    }
                }
                Event::PI(pi) => {
                    let target = short_bytes(pi.target());
                    return fail(
                        at,
                        format!("processing instruction <?{target}?> is not allowed"),
                    );
                }
                Event::DocType(_) => {
                    return fail(at, "DOCTYPE is not allowed in a scenario");
                }
                Event::Eof => return self.finish(),
            }
        }
    }

    fn finish(self) -> Result<Scenario, Fail> {
        if let Some(frame) = self.stack.last() {
            return fail(
                frame.offset,
                format!("<{}> is not closed", frame.elem.name()),
            );
        }
        if self.phase == Phase::Prolog {
            return fail(0, "no <scenario> element");
        }
        Ok(Scenario {
            name: self.name,
            description: self.description,
            timeout_s: self.timeout_s,
            env: self.env,
            tests: self.tests,
        })
    }

    fn open(&mut self, at: usize, start: &BytesStart<'_>, empty: bool) -> Result<(), Fail> {
        let tag = start.name();
        let tag = tag.as_ref();
        let Some(elem) = Elem::from_name(tag) else {
            let tag = short_bytes(tag);
            return fail(at, format!("unknown element <{tag}>"));
        };
        match (self.stack.last(), self.phase) {
            (Some(parent), _) if !parent.elem.children().contains(&elem) => {
                return fail(
                    at,
                    format!(
                        "<{}> is not allowed inside <{}>",
                        elem.name(),
                        parent.elem.name()
                    ),
                );
            }
            (Some(_), _) => {}
            (None, Phase::Epilog) => {
                return fail(
                    at,
                    format!(
                        "second root element <{}>: a file holds one <scenario>",
                        elem.name()
                    ),
                );
            }
            (None, _) if elem != Elem::Scenario => {
                return fail(
                    at,
                    format!("the root element must be <scenario>, not <{}>", elem.name()),
                );
            }
            (None, _) => self.phase = Phase::Root,
        }
        let attrs = read_attributes(at, start, elem.name(), elem.attributes())?;
        let line = self.lines.line_at(at);
        let mut regex = false;
        match elem {
            Elem::Scenario => {
                if let Some(name) = attr(&attrs, "name") {
                    if trim_xml(&name.value).is_empty() {
                        return fail(name.offset, "the scenario name must not be blank");
                    }
                    self.name.clone_from(&name.value);
                }
                self.timeout_s = timeout(&attrs, "timeout")?;
            }
            Elem::Description => {
                if self.description_seen {
                    return fail(at, "duplicate <description>");
                }
                self.description_seen = true;
            }
            Elem::Env => self.env(&attrs)?,
            Elem::Test => self.open_test(at, line, &attrs)?,
            Elem::Expect => {
                if let Some(value) = attr(&attrs, "regex") {
                    regex = match value.value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return fail(
                                value.offset,
                                format!("regex={} must be \"true\" or \"false\"", echo(other)),
                            );
                        }
                    };
                }
                if regex {
                    self.regex_expects += 1;
                    if self.regex_expects > MAX_REGEX_EXPECTS {
                        return fail(
                            at,
                            format!(
                                "too many regex <expect>s: at most {MAX_REGEX_EXPECTS} per file"
                            ),
                        );
                    }
                }
            }
            Elem::QemuArg | Elem::Send | Elem::FailOn => {}
            Elem::Boot | Elem::Run | Elem::Unity => self.kind_element(at, elem)?,
        }
        if elem == Elem::Run
            && let Some(path) = attr(&attrs, "junit")
        {
            let path = junit_path(path.offset, &path.value)?;
            if let Some(test) = self.test.as_mut() {
                test.junit = Some(path);
            }
        }
        if elem.boot_only()
            && let Some(test) = self.test.as_mut()
            && test.first_boot_only.is_none()
        {
            test.first_boot_only = Some((elem, at));
        }
        self.stack.push(Frame {
            elem,
            offset: at,
            line,
            text: String::new(),
            regex,
        });
        if empty { self.close() } else { Ok(()) }
    }

    fn env(&mut self, attrs: &[Attr]) -> Result<(), Fail> {
        let (Some(name), Some(value)) = (attr(attrs, "name"), attr(attrs, "value")) else {
            return Ok(()); // read_attributes checked that both are present
        };
        if !is_shell_identifier(&name.value) {
            return fail(
                name.offset,
                format!(
                    "env name {} must be a shell identifier ([A-Za-z_][A-Za-z0-9_]*)",
                    echo(&name.value)
                ),
            );
        }
        if name.value.starts_with("TESTARENA_") {
            return fail(
                name.offset,
                format!(
                    "env name {} is reserved: TESTARENA_ variables are set by the worker",
                    echo(&name.value)
                ),
            );
        }
        if !self.env_names.insert(name.value.clone()) {
            return fail(
                name.offset,
                format!("duplicate env name {}", echo(&name.value)),
            );
        }
        self.env.push((name.value.clone(), value.value.clone()));
        Ok(())
    }

    fn open_test(&mut self, at: usize, line: u32, attrs: &[Attr]) -> Result<(), Fail> {
        let Some(name) = attr(attrs, "name") else {
            return Ok(()); // read_attributes checked that it is present
        };
        if !is_test_name(&name.value) {
            return fail(
                name.offset,
                format!(
                    "test name {} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}",
                    echo(&name.value)
                ),
            );
        }
        if let Some(first) = self.test_lines.get(&name.value) {
            return fail(
                name.offset,
                format!(
                    "duplicate test name {} (first at line {first})",
                    echo(&name.value)
                ),
            );
        }
        self.test_lines.insert(name.value.clone(), line);
        self.test = Some(TestBuilder {
            name: name.value.clone(),
            offset: at,
            line,
            timeout_s: timeout(attrs, "timeout")?,
            quiet_timeout_s: timeout(attrs, "quiet-timeout")?,
            boot: false,
            run_seen: false,
            run: None,
            junit: None,
            unity: false,
            first_boot_only: None,
            qemu_args: Vec::new(),
            steps: Vec::new(),
            fail_on: Vec::new(),
        });
        Ok(())
    }

    /// `<boot>`, `<run>` and `<unity/>`: each at most once per test, and
    /// never `<boot>` with `<run>`.
    fn kind_element(&mut self, at: usize, elem: Elem) -> Result<(), Fail> {
        let Some(test) = self.test.as_mut() else {
            return Ok(()); // the stack check put us inside a <test>
        };
        let (seen, other) = match elem {
            Elem::Boot => (test.boot, test.run_seen),
            Elem::Run => (test.run_seen, test.boot),
            _ => (test.unity, false),
        };
        if seen {
            let name = elem.name();
            return fail(at, format!("duplicate <{name}>: a test has at most one"));
        }
        if other {
            return fail(at, "a test has either <boot> or <run>, not both");
        }
        match elem {
            Elem::Boot => test.boot = true,
            Elem::Run => test.run_seen = true,
            _ => test.unity = true,
        }
        Ok(())
    }

    fn text(&mut self, at: usize, content: &str) -> Result<(), Fail> {
        match self.stack.last_mut() {
            Some(frame) if frame.elem.has_text() => {
                frame.text.push_str(content);
                Ok(())
            }
            _ if content.chars().all(is_xml_space) => Ok(()),
            Some(frame) => fail(
                at,
                format!("text is not allowed inside <{}>", frame.elem.name()),
            ),
            None => fail(at, "text is not allowed outside <scenario>"),
        }
    }

    fn close(&mut self) -> Result<(), Fail> {
        let Some(frame) = self.stack.pop() else {
            return Ok(()); // quick-xml refuses unmatched end tags
        };
        let elem = frame.elem;
        let text = trim_xml(&frame.text);
        if elem.has_text() && elem != Elem::Description && text.is_empty() {
            return fail(frame.offset, format!("empty <{}>", elem.name()));
        }
        match elem {
            Elem::Scenario => {
                if self.tests.is_empty() {
                    return fail(frame.offset, "a scenario needs at least one <test>");
                }
                self.phase = Phase::Epilog;
            }
            Elem::Description => {
                self.description = (!text.is_empty()).then(|| text.to_owned());
            }
            Elem::Test => {
                if let Some(test) = self.test.take() {
                    self.tests.push(test.finish()?);
                }
            }
            Elem::Env | Elem::Boot | Elem::Unity => {}
            _ => {
                let Some(test) = self.test.as_mut() else {
                    return Ok(()); // the stack check put us inside a <test>
                };
                match elem {
                    Elem::QemuArg => test.qemu_args.push(text.to_owned()),
                    Elem::Send => test.steps.push(Step::Send(text.to_owned())),
                    Elem::FailOn => test.fail_on.push(text.to_owned()),
                    Elem::Run => test.run = Some(text.to_owned()),
                    _ => {
                        let pattern = pattern(frame.offset, text, frame.regex)?;
                        let line = frame.line;
                        test.steps.push(Step::Expect(Expect { pattern, line }));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Longest quick-xml message kept whole in a malformed-XML error.
const MAX_XML_ERROR_CHARS: usize = 200;

/// `detail` cut to [`MAX_XML_ERROR_CHARS`] characters.
fn cut(detail: &str) -> String {
    match detail.char_indices().nth(MAX_XML_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &detail[..i]),
        None => detail.to_owned(),
    }
}

fn pattern(at: usize, text: &str, regex: bool) -> Result<Pattern, Fail> {
    if !regex {
        return Ok(Pattern::Substring(text.to_owned()));
    }
    match RegexBuilder::new(text)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(re) => Ok(Pattern::Regex(re)),
        Err(e) => {
            // A syntax error quotes the whole pattern; keep only its verdict
            // when the pattern is long.
            let mut detail = e.to_string();
            if detail.chars().count() > MAX_REGEX_ERROR_CHARS {
                detail = short(detail.lines().last().unwrap_or_default());
            }
            fail(at, format!("invalid regex in <expect>: {detail}"))
        }
    }
}

/// The most bytes of a `junit=` path.
const MAX_JUNIT_PATH: usize = 512;

/// A `<run junit="...">` path: relative to the checkout, inside it.
fn junit_path(at: usize, value: &str) -> Result<String, Fail> {
    let path = trim_xml(value);
    let problem = if path.is_empty() {
        Some("must name a file")
    } else if path.len() > MAX_JUNIT_PATH {
        Some("is longer than 512 bytes")
    } else if path.starts_with('/') {
        Some("must be relative to the checkout")
    } else if path.split('/').any(|c| c == "..") {
        Some("must stay inside the checkout (no \"..\")")
    } else if path.contains('\0') {
        Some("must not contain NUL")
    } else {
        None
    };
    match problem {
        Some(problem) => fail(at, format!("junit={} {problem}", echo(path))),
        None => Ok(path.to_owned()),
    }
}

/// An optional timeout attribute: 1 to [`MAX_TIMEOUT_S`] seconds.
fn timeout(attrs: &[Attr], name: &str) -> Result<Option<u64>, Fail> {
    let Some(value) = attr(attrs, name) else {
        return Ok(None);
    };
    let text = value.value.as_str();
    let seconds = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok()
    } else {
        None
    };
    match seconds {
        Some(s @ 1..=MAX_TIMEOUT_S) => Ok(Some(s)),
        _ => fail(
            value.offset,
            format!(
                "{name}={} must be a whole number of seconds from 1 to {MAX_TIMEOUT_S}",
                echo(text)
            ),
        ),
    }
}

fn is_test_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphanumeric()
                && rest.len() < MAX_TEST_NAME_LEN
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => false,
    }
}

fn is_shell_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
        }
        None => false,
    }
}
