//! XML plumbing under the scenario format: byte offsets and lines,
//! characters, attributes and references. Nothing here knows which elements
//! a scenario has; [`parser`](super::parser) does.

use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesRef, BytesStart};

/// Longest value, name or regex error echoed back in an error message.
const MAX_ECHO_CHARS: usize = 64;

/// An error before its line is known: where in the source, and what.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) offset: usize,
    pub(super) message: String,
}

pub(super) fn fail<T>(offset: usize, message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        offset,
        message: message.into(),
    })
}

fn count_newlines(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX)
}

/// The 1-based line of byte `offset` (clamped to the end). Used once, for
/// the error; successful parses use [`Lines`].
pub(super) fn line_of(bytes: &[u8], offset: usize) -> u32 {
    count_newlines(&bytes[..offset.min(bytes.len())]).saturating_add(1)
}

/// Running line counter over offsets that only grow (element starts).
pub(super) struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u32,
}

impl<'a> Lines<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Lines {
            bytes,
            pos: 0,
            line: 1,
        }
    }

    /// The 1-based line of byte `offset`.
    pub(super) fn line_at(&mut self, offset: usize) -> u32 {
        let offset = offset.min(self.bytes.len());
        if offset > self.pos {
            self.line = self
                .line
                .saturating_add(count_newlines(&self.bytes[self.pos..offset]));
            self.pos = offset;
        } else if offset < self.pos {
            return line_of(self.bytes, offset);
        }
        self.line
    }
}

/// Characters XML 1.0 forbids: C0 controls other than tab, LF and CR.
fn is_forbidden_char(c: char) -> bool {
    c < ' ' && !matches!(c, '\t' | '\n' | '\r')
}

/// Rejects raw control characters, so no value (an argv element, an env
/// value) can carry a NUL or an escape sequence.
pub(super) fn check_chars(src: &str) -> Result<(), Fail> {
    match src.char_indices().find(|&(_, c)| is_forbidden_char(c)) {
        Some((at, c)) => fail(
            at,
            format!("control character U+{:04X} is not allowed", u32::from(c)),
        ),
        None => Ok(()),
    }
}

pub(super) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

pub(super) fn trim_xml(s: &str) -> &str {
    s.trim_matches(is_xml_space)
}

/// A name from the file for an error message, cut short: a hostile file
/// must not turn into a megabyte of error.
pub(super) fn short(value: &str) -> String {
    if value.chars().count() > MAX_ECHO_CHARS {
        let cut: String = value.chars().take(MAX_ECHO_CHARS).collect();
        format!("{cut}…")
    } else {
        value.to_owned()
    }
}

/// [`short`] of raw bytes from the file (always UTF-8 in practice).
pub(super) fn short_bytes(value: &[u8]) -> String {
    short(&String::from_utf8_lossy(value))
}

/// A value for an error message: quoted, escaped, and cut short.
pub(super) fn echo(value: &str) -> String {
    if value.chars().count() > MAX_ECHO_CHARS {
        let cut: String = value.chars().take(MAX_ECHO_CHARS).collect();
        format!("{cut:?}…")
    } else {
        format!("{value:?}")
    }
}

/// An attribute value, unescaped, with the offset of its name.
pub(super) struct Attr {
    pub(super) name: &'static str,
    pub(super) value: String,
    pub(super) offset: usize,
}

pub(super) fn attr<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name == name)
}

/// Reads the attributes of `<elem>` (`allowed` as `(name, required)`):
/// known names only, no duplicates, values
/// unescaped, required ones present.
pub(super) fn read_attributes(
    at: usize,
    start: &BytesStart<'_>,
    elem: &str,
    allowed: &[(&'static str, bool)],
) -> Result<Vec<Attr>, Fail> {
    let tag: &[u8] = start;
    // Positions inside the tag count from the byte after `<`.
    let base = at + 1;
    let mut attrs = Vec::new();
    for attribute in start.attributes() {
        let attribute = match attribute {
            Ok(attribute) => attribute,
            Err(AttrError::Duplicated(pos, _)) => {
                let name = attribute_name_at(tag, pos);
                return fail(
                    base + pos,
                    format!("duplicate attribute {name} on <{elem}>"),
                );
            }
            Err(
                e @ (AttrError::ExpectedEq(pos)
                | AttrError::ExpectedValue(pos)
                | AttrError::UnquotedValue(pos)
                | AttrError::ExpectedQuote(pos, _)),
            ) => {
                return fail(base + pos, format!("malformed attribute: {e}"));
            }
        };
        let key = attribute.key.as_ref();
        let offset = base + key.as_ptr().addr().saturating_sub(tag.as_ptr().addr());
        let Some(&(name, _)) = allowed.iter().find(|(n, _)| n.as_bytes() == key) else {
            let key = short_bytes(key);
            return fail(offset, format!("unknown attribute {key:?} on <{elem}>"));
        };
        let value = match attribute.unescape_value() {
            Ok(value) => value.into_owned(),
            Err(quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                _,
                entity,
            ))) => {
                let entity = short(&entity);
                return fail(offset, format!("unknown entity &{entity}; in {name}"));
            }
            Err(e) => return fail(offset, format!("bad value of {name}: {e}")),
        };
        if let Some(c) = value.chars().find(|&c| is_forbidden_char(c)) {
            return fail(
                offset,
                format!("{name} holds control character U+{:04X}", u32::from(c)),
            );
        }
        attrs.push(Attr {
            name,
            value,
            offset,
        });
    }
    for &(name, required) in allowed {
        if required && attr(&attrs, name).is_none() {
            return fail(at, format!("<{}> needs a {name:?} attribute", elem));
        }
    }
    Ok(attrs)
}

/// The attribute name starting at `pos` in a tag's content, quoted.
fn attribute_name_at(tag: &[u8], pos: usize) -> String {
    let rest = tag.get(pos..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&b| b == b'=' || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    format!("{:?}", short_bytes(&rest[..end]))
}

/// Resolves `&name;` in text: the five predefined entities and character
/// references, nothing else.
pub(super) fn resolve_reference(at: usize, reference: &BytesRef<'_>) -> Result<String, Fail> {
    let name = short_bytes(reference);
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) if !is_forbidden_char(c) => Ok(c.to_string()),
            _ => fail(at, format!("invalid character reference &{name};")),
        };
    }
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(value) => Ok(value.to_owned()),
        None => fail(at, format!("unknown entity &{name};")),
    }
}
