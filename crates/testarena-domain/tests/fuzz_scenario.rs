//! Property tests of the scenario parser (DESIGN section 5) beyond the
//! unit tests' random bytes and fragments:
//!
//! - generated scenarios, written out as XML in every way the format
//!   allows (attribute quotes, entities, character references, CDATA,
//!   comments, CRLF, padding, any element order that keeps the meaning),
//!   parse back to exactly what was generated, lines included;
//! - the same documents, mutated (bytes dropped, repeated, swapped,
//!   markup spliced in, cut short), never make the parser panic; what it
//!   refuses has a line inside the file, and what it accepts keeps every
//!   rule of the format.
//!
//! `TESTARENA_FUZZ_CASES` sets the cases per property (default in
//! [`cases`]); see docs/SECURITY.md for longer runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use proptest::prelude::*;
use testarena_domain::scenario::{
    BootSpec, Expect, MAX_REGEX_EXPECTS, MAX_TIMEOUT_S, Pattern, RunSpec, Scenario, Step, TestKind,
    TestSpec, parse,
};

/// Cases per property: three properties, 45,000 cases by default (with
/// the worker's `fuzz_matcher`, over 100,000).
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

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Element text as the parser returns it: trimmed, not empty, no CR.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 &<>\"'é😀\\]\\[\\n\\t=;#x-]{1,24}".prop_filter_map("blank", |s| {
        let t = s.trim_matches(is_xml_space);
        (!t.is_empty()).then(|| t.to_owned())
    })
}

/// Attribute values are kept as they are (blank or padded too).
fn attribute_value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 &<>\"'é\\n\\t\\r=;]{0,16}"
}

const REGEXES: &[&str] = &[
    r"\d+ Tests",
    "a|b",
    "^ready$",
    "x{2,3}",
    "[A-Z]+ &lt;",
    r"\s*>",
];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => text().prop_map(|t| Step::Expect(Expect { pattern: Pattern::Substring(t), line: 0 })),
        1 => proptest::sample::select(REGEXES).prop_map(|r| Step::Expect(Expect {
            pattern: Pattern::Regex(regex::Regex::new(r).unwrap()),
            line: 0,
        })),
        2 => text().prop_map(Step::Send),
    ]
}

fn kind() -> impl Strategy<Value = TestKind> {
    prop_oneof![
        text().prop_map(|command| TestKind::Run(RunSpec {
            command,
            junit: None
        })),
        (
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(step(), 0..5),
            proptest::collection::vec(text(), 0..3),
            any::<bool>(),
        )
            .prop_map(
                |(qemu_args, steps, fail_on, unity)| TestKind::Boot(BootSpec {
                    qemu_args,
                    steps,
                    fail_on,
                    unity,
                })
            ),
    ]
}

fn timeout() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(prop_oneof![Just(1), Just(MAX_TIMEOUT_S), 1..=MAX_TIMEOUT_S])
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        attribute_value().prop_filter("blank name", |n| !n.trim_matches(is_xml_space).is_empty()),
        proptest::option::of(text()),
        timeout(),
        proptest::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,10}", attribute_value()), 0..4),
        proptest::collection::vec(
            (
                "[A-Za-z0-9][A-Za-z0-9._-]{0,20}",
                timeout(),
                timeout(),
                kind(),
            ),
            1..5,
        ),
    )
        .prop_map(|(name, description, timeout_s, env, tests)| {
            let mut names = HashSet::new();
            let env = env
                .into_iter()
                .filter(|(n, _)| !n.starts_with("TESTARENA_") && names.insert(n.clone()))
                .collect();
            let mut names = HashSet::new();
            let tests = tests
                .into_iter()
                .filter(|(n, ..)| names.insert(n.clone()))
                .map(|(name, timeout_s, quiet_timeout_s, kind)| TestSpec {
                    name,
                    line: 0,
                    timeout_s,
                    quiet_timeout_s,
                    kind,
                })
                .collect();
            Scenario {
                name,
                description,
                timeout_s,
                env,
                tests,
            }
        })
}

/// A small deterministic source of choices, from a proptest seed.
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, in_n: usize) -> bool {
        self.below(in_n) == 0
    }
}

/// Writes a scenario as XML, choosing among equivalent spellings, and
/// records the line of every `<test>` and `<expect>` in the model.
struct Writer {
    out: String,
    line: u32,
    c: Choices,
}

impl Writer {
    fn push(&mut self, s: &str) {
        self.line += u32::try_from(s.matches('\n').count()).unwrap();
        self.out.push_str(s);
    }

    /// Whitespace, comments or nothing, between elements.
    fn gap(&mut self) {
        match self.c.below(6) {
            0 => self.push("\n  "),
            1 => self.push("\r\n\t"),
            2 => self.push(" <!-- a comment -->\n"),
            3 => self.push("\n"),
            _ => {}
        }
    }

    fn attr(&mut self, name: &str, value: &str) {
        let quote = if self.c.chance(2) { '"' } else { '\'' };
        let space = [" ", "  ", "\n  ", "\t"][self.c.below(4)];
        let mut v = String::new();
        for ch in value.chars() {
            match ch {
                '&' => v.push_str("&amp;"),
                '<' => v.push_str("&lt;"),
                '"' if quote == '"' => v.push_str("&quot;"),
                '\'' if quote == '\'' => v.push_str("&apos;"),
                '\n' => v.push_str("&#10;"),
                '\t' => v.push_str("&#9;"),
                '\r' => v.push_str("&#xD;"),
                '>' if self.c.chance(2) => v.push_str("&gt;"),
                c if c.is_ascii_alphanumeric() && self.c.chance(10) => {
                    v.push_str(&format!("&#{};", u32::from(c)));
                }
                c => v.push(c),
            }
        }
        let eq = if self.c.chance(5) { " = " } else { "=" };
        self.push(&format!("{space}{name}{eq}{quote}{v}{quote}"));
    }

    /// Element text: padded, cut into escaped text, character references,
    /// CDATA and comments.
    fn text(&mut self, text: &str) {
        if self.c.chance(3) {
            let pad = [" ", "\n    ", "\r\n", "\t "][self.c.below(4)];
            self.push(pad);
        }
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let n = 1 + self.c.below(chars.len() - i);
            let piece: String = chars[i..i + n].iter().collect();
            i += n;
            if self.c.chance(4) && !piece.contains("]]>") && !piece.ends_with(']') {
                let piece = if self.c.chance(2) {
                    piece.replace('\n', "\r\n")
                } else {
                    piece
                };
                self.push(&format!("<![CDATA[{piece}]]>"));
            } else {
                let mut v = String::new();
                for ch in piece.chars() {
                    match ch {
                        '&' => v.push_str("&amp;"),
                        '<' => v.push_str("&lt;"),
                        // Raw unless it would close a `]]>`.
                        '>' if self.c.chance(2) && !format!("{}{v}", self.out).ends_with(']') => {
                            v.push('>');
                        }
                        '>' => v.push_str("&gt;"),
                        '\n' => v.push_str(["\n", "\r\n", "&#10;", "&#xA;"][self.c.below(4)]),
                        '"' if self.c.chance(3) => v.push_str("&quot;"),
                        '\'' if self.c.chance(3) => v.push_str("&apos;"),
                        c if !c.is_ascii() && self.c.chance(3) => {
                            v.push_str(&format!("&#x{:X};", u32::from(c)));
                        }
                        c => v.push(c),
                    }
                }
                self.push(&v);
            }
            if i < chars.len() && self.c.chance(6) {
                self.push("<!-- between -->");
            }
        }
        if self.c.chance(3) {
            let pad = [" ", "\n  ", "\r\n", "\t"][self.c.below(4)];
            self.push(pad);
        }
    }

    fn element(&mut self, name: &str, text: &str) {
        self.push(&format!("<{name}>"));
        self.text(text);
        self.push(&format!("</{name}>"));
    }

    fn empty(&mut self, name: &str) {
        if self.c.chance(2) {
            self.push(&format!("<{name}/>"));
        } else {
            self.push(&format!("<{name}></{name}>"));
        }
    }
}

/// Interleaves `b` into `a` at random places, keeping each one's order.
fn interleave<T>(c: &mut Choices, a: Vec<T>, b: Vec<T>) -> Vec<T> {
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    let mut out = Vec::new();
    loop {
        match (a.peek().is_some(), b.peek().is_some()) {
            (true, true) if c.chance(2) => out.push(a.next().unwrap()),
            (_, true) => out.push(b.next().unwrap()),
            (true, false) => out.push(a.next().unwrap()),
            (false, false) => return out,
        }
    }
}

enum Part<'a> {
    Description(&'a str),
    BlankDescription,
    Env(&'a str, &'a str),
    Test(usize),
}

enum TestPart<'a> {
    Boot(&'a [String]),
    Unity,
    Step(usize),
    FailOn(&'a str),
}

/// The XML of `model`, and the model with the lines the XML puts it at.
fn write(model: &Scenario, seed: u64) -> (String, Scenario) {
    let mut w = Writer {
        out: String::new(),
        line: 1,
        c: Choices(seed | 1),
    };
    let mut model = model.clone();
    if w.c.chance(4) {
        w.push("\u{feff}");
    }
    match w.c.below(4) {
        0 => w.push("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        1 => w.push("<?xml version='1.0' encoding='utf-8'?>"),
        2 => w.push("<?xml version=\"1.0\"?>"),
        _ => {}
    }
    w.gap();
    w.push("<scenario");
    let mut attrs: Vec<(&str, String)> = vec![("name", model.name.clone())];
    if let Some(t) = model.timeout_s {
        attrs.push(("timeout", t.to_string()));
    }
    if w.c.chance(2) {
        attrs.reverse();
    }
    for (name, value) in &attrs {
        w.attr(name, value);
    }
    let close = if w.c.chance(3) { " >" } else { ">" };
    w.push(close);
    let mut head: Vec<Part<'_>> = model.env.iter().map(|(n, v)| Part::Env(n, v)).collect();
    let description = model.description.clone();
    match &description {
        Some(d) => head.insert(w.c.below(head.len() + 1), Part::Description(d)),
        None if w.c.chance(3) => head.insert(w.c.below(head.len() + 1), Part::BlankDescription),
        None => {}
    }
    let tests: Vec<Part<'_>> = (0..model.tests.len()).map(Part::Test).collect();
    let mut c = Choices(w.c.next() | 1);
    let parts = interleave(&mut c, head, tests);
    let mut lines = Vec::new();
    for part in parts {
        w.gap();
        match part {
            Part::Description(d) => w.element("description", d),
            Part::BlankDescription => w.push("<description> \n </description>"),
            Part::Env(name, value) => {
                w.push("<env");
                let mut attrs = [("name", name), ("value", value)];
                if w.c.chance(2) {
                    attrs.reverse();
                }
                for (n, v) in attrs {
                    w.attr(n, v);
                }
                let close = if w.c.chance(2) { "/>" } else { "></env>" };
                w.push(close);
            }
            Part::Test(i) => {
                let test = &model.tests[i];
                let test_line = w.line;
                w.push("<test");
                let mut attrs: Vec<(&str, String)> = vec![("name", test.name.clone())];
                if let Some(t) = test.timeout_s {
                    attrs.push(("timeout", t.to_string()));
                }
                if let Some(t) = test.quiet_timeout_s {
                    attrs.push(("quiet-timeout", t.to_string()));
                }
                let turn = w.c.below(attrs.len());
                attrs.rotate_left(turn);
                for (name, value) in &attrs {
                    w.attr(name, value);
                }
                w.push(">");
                let mut expect_lines = Vec::new();
                match &test.kind {
                    TestKind::Run(run) => {
                        w.gap();
                        w.element("run", &run.command);
                    }
                    TestKind::Boot(boot) => {
                        let steps: Vec<TestPart<'_>> =
                            (0..boot.steps.len()).map(TestPart::Step).collect();
                        let fails: Vec<TestPart<'_>> =
                            boot.fail_on.iter().map(|f| TestPart::FailOn(f)).collect();
                        let mut c = Choices(w.c.next() | 1);
                        let mut parts = interleave(&mut c, steps, fails);
                        parts.insert(w.c.below(parts.len() + 1), TestPart::Boot(&boot.qemu_args));
                        if boot.unity {
                            parts.insert(w.c.below(parts.len() + 1), TestPart::Unity);
                        }
                        for part in parts {
                            w.gap();
                            match part {
                                TestPart::Boot([]) => w.empty("boot"),
                                TestPart::Boot(args) => {
                                    w.push("<boot>");
                                    for arg in args {
                                        w.gap();
                                        w.element("qemu-arg", arg);
                                    }
                                    w.gap();
                                    w.push("</boot>");
                                }
                                TestPart::Unity => w.empty("unity"),
                                TestPart::FailOn(f) => w.element("fail-on", f),
                                TestPart::Step(s) => match &boot.steps[s] {
                                    Step::Send(t) => w.element("send", t),
                                    Step::Expect(e) => {
                                        expect_lines.push((s, w.line));
                                        match &e.pattern {
                                            Pattern::Substring(t) => {
                                                let open = match w.c.below(3) {
                                                    0 => "<expect regex=\"false\">",
                                                    _ => "<expect>",
                                                };
                                                w.push(open);
                                                w.text(t);
                                            }
                                            Pattern::Regex(re) => {
                                                w.push("<expect regex='true'>");
                                                w.text(re.as_str());
                                            }
                                        }
                                        w.push("</expect>");
                                    }
                                },
                            }
                        }
                    }
                }
                w.gap();
                w.push("</test>");
                lines.push((i, test_line, expect_lines));
            }
        }
    }
    w.gap();
    w.push("</scenario>");
    w.gap();
    for (i, test_line, expect_lines) in lines {
        let test = &mut model.tests[i];
        test.line = test_line;
        if let TestKind::Boot(boot) = &mut test.kind {
            for (s, line) in expect_lines {
                if let Step::Expect(e) = &mut boot.steps[s] {
                    e.line = line;
                }
            }
        }
    }
    (w.out, model)
}

/// The rules every accepted scenario keeps.
fn check_rules(s: &Scenario) -> Result<(), String> {
    let ok_text = |t: &str| {
        !t.is_empty()
            && t == t.trim_matches(is_xml_space)
            && !t
                .chars()
                .any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
    };
    if s.name.trim_matches(is_xml_space).is_empty() {
        return Err("blank name".into());
    }
    if s.tests.is_empty() {
        return Err("no test".into());
    }
    let mut names = HashSet::new();
    for (name, value) in &s.env {
        let mut chars = name.chars();
        let first = chars.next().ok_or("empty env name")?;
        if !(first.is_ascii_alphabetic() || first == '_')
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with("TESTARENA_")
            || !names.insert(name.clone())
            || value.contains('\0')
        {
            return Err(format!("env {name:?}"));
        }
    }
    let mut names = HashSet::new();
    let mut regexes = 0;
    for t in &s.tests {
        let valid = t.name.len() <= 64
            && t.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && t.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if !valid || !names.insert(t.name.clone()) {
            return Err(format!("test name {:?}", t.name));
        }
        for timeout in [t.timeout_s, t.quiet_timeout_s, s.timeout_s]
            .into_iter()
            .flatten()
        {
            if !(1..=MAX_TIMEOUT_S).contains(&timeout) {
                return Err(format!("timeout {timeout}"));
            }
        }
        match &t.kind {
            TestKind::Run(run) if !ok_text(&run.command) => return Err("run".into()),
            TestKind::Run(_) => {}
            TestKind::Boot(boot) => {
                for text in boot.qemu_args.iter().chain(&boot.fail_on) {
                    if !ok_text(text) {
                        return Err(format!("text {text:?}"));
                    }
                }
                for step in &boot.steps {
                    let text = match step {
                        Step::Send(t) => t.as_str(),
                        Step::Expect(e) => {
                            regexes += usize::from(matches!(e.pattern, Pattern::Regex(_)));
                            e.text()
                        }
                    };
                    if !ok_text(text) {
                        return Err(format!("step {text:?}"));
                    }
                }
            }
        }
    }
    if regexes > MAX_REGEX_EXPECTS {
        return Err("too many regexes".into());
    }
    Ok(())
}

/// Bits of markup spliced into documents.
const SPLICES: &[&str] = &[
    "<",
    ">",
    "/>",
    "</test>",
    "<test name=\"x\">",
    "<boot/>",
    "<run>r</run>",
    "&",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&lt",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<!DOCTYPE s>",
    "<?pi?>",
    "\"",
    "'",
    "=",
    " timeout=\"0\"",
    " name=\"\"",
    "\u{0}",
    "\u{1b}",
    "\r",
    "\n",
    "é",
    "<expect regex=\"true\">(</expect>",
    "<scenario name=\"n\">",
    "</scenario>",
];

/// One change to a document's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Drop { at: usize, len: usize },
    Repeat { at: usize, len: usize },
    Swap { a: usize, b: usize },
    Splice { at: usize, what: usize },
    Byte { at: usize, value: u8 },
    Cut { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Drop { at, len }),
        (any::<usize>(), 1usize..60).prop_map(|(at, len)| Mutation::Repeat { at, len }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
        (any::<usize>(), 0..SPLICES.len()).prop_map(|(at, what)| Mutation::Splice { at, what }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match *m {
        Mutation::Drop { at, len: n } => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::Repeat { at, len: n } => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            let copy = bytes[at.min(end)..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Mutation::Swap { a, b } if !bytes.is_empty() => {
            let n = bytes.len();
            bytes.swap(a % n, b % n);
        }
        Mutation::Swap { .. } => {}
        Mutation::Splice { at, what } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, SPLICES[what].bytes());
        }
        Mutation::Byte { at, value } if !bytes.is_empty() => {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        Mutation::Byte { .. } => {}
        Mutation::Cut { at } => bytes.truncate(at % len),
    }
}

proptest! {
    #![proptest_config(cases())]

    /// Whatever way a scenario is written, it parses back to itself.
    #[test]
    fn written_scenarios_parse_back_to_themselves(model in scenario(), seed in any::<u64>()) {
        let (xml, expected) = write(&model, seed);
        match parse("s.xml", xml.as_bytes()) {
            Ok(parsed) => prop_assert_eq!(parsed, expected, "\n{}", xml),
            Err(e) => prop_assert!(false, "{e}\n{xml}"),
        }
    }

    /// Mutated documents: no panic; a refusal names a line of the file;
    /// an acceptance keeps the format's rules.
    #[test]
    fn mutated_scenarios_are_refused_cleanly_or_keep_the_rules(
        model in scenario(),
        seed in any::<u64>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let (xml, _) = write(&model, seed);
        let mut bytes = xml.into_bytes();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        match parse("s.xml", &bytes) {
            Ok(s) => prop_assert!(check_rules(&s).is_ok(), "{:?}: {}", check_rules(&s), String::from_utf8_lossy(&bytes)),
            Err(e) => {
                let lines = u32::try_from(bytes.split(|b| *b == b'\n').count()).unwrap();
                prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {}: {}", e.line, lines, e);
                prop_assert!(e.message.chars().count() < 600, "long message: {}", e.message);
            }
        }
    }

    /// Any document cut short at any byte is refused (unless only trailing
    /// whitespace or comments were cut), with a line inside what is left.
    #[test]
    fn truncated_scenarios_are_refused(model in scenario(), seed in any::<u64>(), at in any::<usize>()) {
        let (xml, expected) = write(&model, seed);
        let bytes = xml.as_bytes();
        let cut = &bytes[..at % (bytes.len() + 1)];
        match parse("s.xml", cut) {
            Ok(parsed) => {
                let end = xml.rfind("</scenario>").unwrap() + "</scenario>".len();
                prop_assert!(cut.len() >= end, "accepted a cut at {} of {}", cut.len(), bytes.len());
                prop_assert_eq!(parsed, expected);
            }
            Err(e) => {
                let lines = u32::try_from(cut.split(|b| *b == b'\n').count()).unwrap();
                prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {}: {}", e.line, lines, e);
            }
        }
    }
}
