//! Log files under `queues/<queue_id>/` (DESIGN section 3).
//!
//! Output is appended as it arrives, piece by piece (each piece ends at a
//! newline or holds the rest of one read), through an unbuffered file, so a
//! reader of the log sees every line as soon as the child printed it. Bytes
//! are written as they came: output that is not UTF-8 stays as it is on disk
//! and is only shown lossily (the HTML rendering). The queue timeline is one
//! line per event with an RFC 3339 UTC timestamp.
//!
//! Writes go straight to a local file from async code: an append of a few
//! bytes to the page cache does not block in any way that matters, and a
//! thread hop per line would make a 50,000-line flood crawl.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};

use crate::{Error, Result};

/// Bytes read at once when rendering a log as HTML.
const HTML_CHUNK: usize = 64 * 1024;

/// A log file opened for appending.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    path: PathBuf,
}

impl LogFile {
    /// Opens `path` for appending, creating it and its directories.
    pub fn append(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` as they are; they reach the file before this returns.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// `queue.log`: the worker's timeline of one queue.
#[derive(Debug)]
pub struct Timeline {
    path: PathBuf,
    log: Option<LogFile>,
    /// A write failed and was logged; later failures are not.
    failing: bool,
}

impl Timeline {
    /// Opens the timeline. A timeline that cannot be written must not stop
    /// the queue: the first failure is logged, and each later line tries
    /// again (a full disk may have been freed meanwhile).
    pub fn open(path: &Path) -> Self {
        let mut timeline = Self {
            path: path.to_owned(),
            log: None,
            failing: false,
        };
        timeline.log = timeline.reopen();
        timeline
    }

    fn reopen(&mut self) -> Option<LogFile> {
        LogFile::append(&self.path)
            .inspect_err(|e| self.failed(e, "cannot open the queue timeline"))
            .ok()
    }

    fn failed(&mut self, e: &Error, what: &str) {
        if !self.failing {
            tracing::error!(error = %e, "{what}");
            self.failing = true;
        }
    }

    /// Appends `<RFC 3339 time> <text>`.
    pub fn line(&mut self, text: &str) {
        if self.log.is_none() {
            self.log = self.reopen();
        }
        let Some(log) = &mut self.log else { return };
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        match log.write(format!("{at} {text}\n").as_bytes()) {
            Ok(()) => self.failing = false,
            Err(e) => self.failed(&e, "cannot write the queue timeline"),
        }
    }
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 sequence
/// that the next bytes may complete (0 to 3).
pub(crate) fn incomplete_tail_len(bytes: &[u8]) -> usize {
    for i in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - i];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match b {
            0xF8.. => 1, // never valid UTF-8: nothing can complete it
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if needed > i { i } else { 0 };
    }
    0
}

/// The test log at `log` rendered as a standalone HTML page with its
/// verdict, written to `html`. Reads and writes in chunks, so a log of any
/// size is rendered in bounded memory.
pub fn write_html(
    log: &Path,
    html: &Path,
    title: &str,
    verdict: &str,
    message: Option<&str>,
) -> Result<()> {
    let out = File::create(html).map_err(|e| Error::io(html, e))?;
    let mut out = BufWriter::new(out);
    let io = |e| Error::io(html, e);
    let class = match verdict {
        "passed" => "passed",
        "skipped" => "skipped",
        _ => "failed",
    };
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} – {verdict}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1em; }}\n\
         .verdict {{ padding: .4em .8em; border-radius: 4px; display: inline-block; }}\n\
         .passed {{ background: #d4f7d4; }} .failed {{ background: #fbd4d4; }} \
         .skipped {{ background: #eee; }}\n\
         pre {{ background: #111; color: #ddd; padding: 1em; white-space: pre-wrap; \
         word-break: break-all; }}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
         <p class=\"verdict {class}\">{verdict}",
        title = escape(title),
        verdict = escape(verdict),
    )
    .map_err(io)?;
    if let Some(message) = message {
        write!(out, ": {}", escape(message)).map_err(io)?;
    }
    out.write_all(b"</p>\n<pre>").map_err(io)?;
    if let Ok(mut input) = File::open(log) {
        let mut buf = vec![0u8; HTML_CHUNK];
        let mut carry = 0;
        loop {
            let n = input
                .read(&mut buf[carry..])
                .map_err(|e| Error::io(log, e))?;
            let end = carry + n;
            // Keep a UTF-8 sequence cut by the chunk for the next round, so
            // it is not shown as a replacement character.
            let keep = if n == 0 {
                0
            } else {
                incomplete_tail_len(&buf[..end])
            };
            let text = String::from_utf8_lossy(&buf[..end - keep]);
            out.write_all(escape(&text).as_bytes()).map_err(io)?;
            if n == 0 {
                break;
            }
            buf.copy_within(end - keep..end, 0);
            carry = keep;
        }
    }
    out.write_all(b"</pre>\n</body>\n</html>\n").map_err(io)?;
    out.flush().map_err(io)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_bytes_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/test.log");
        let mut log = LogFile::append(&path).unwrap();
        log.write(b"one\n").unwrap();
        // Visible at once, before any flush or close.
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        log.write(b"\xff\xfe not utf-8\n").unwrap();
        drop(log);
        let mut log = LogFile::append(&path).unwrap();
        log.write(b"three").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"one\n\xff\xfe not utf-8\nthree"
        );
    }

    #[test]
    fn timeline_lines_have_rfc3339_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.log");
        let mut t = Timeline::open(&path);
        t.line("claimed");
        t.line("build passed");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for (line, what) in lines.iter().zip(["claimed", "build passed"]) {
            let (at, rest) = line.split_once(' ').unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
            assert!(at.ends_with('Z'));
            assert_eq!(rest, what);
        }
    }

    #[test]
    fn incomplete_utf8_tails() {
        assert_eq!(incomplete_tail_len(b"abc"), 0);
        assert_eq!(incomplete_tail_len("é".as_bytes()), 0);
        assert_eq!(incomplete_tail_len(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_tail_len(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_tail_len(&"😀".as_bytes()[..3]), 3);
        assert_eq!(incomplete_tail_len("😀".as_bytes()), 0);
        assert_eq!(incomplete_tail_len(b"\xff"), 0);
        assert_eq!(incomplete_tail_len(b""), 0);
    }

    #[test]
    fn html_escapes_everything_and_shows_bad_bytes_lossily() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let html = dir.path().join("t.html");
        let mut content = b"<script>alert('x')</script> & \"q\"\n\xff\xfe\n".to_vec();
        // A multi-byte character across the renderer's chunk boundary.
        content.resize(HTML_CHUNK - 1, b'a');
        content.extend("é end\n".as_bytes());
        std::fs::write(&log, &content).unwrap();
        write_html(&log, &html, "unit <1>", "failed", Some("crash: <Guru>")).unwrap();
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
        );
        assert!(!page.contains("<script>"));
        assert!(page.contains("\u{fffd}\u{fffd}"));
        assert!(page.contains("aé end"));
        assert!(page.contains("<title>unit &lt;1&gt; – failed</title>"));
        assert!(page.contains("class=\"verdict failed\">failed: crash: &lt;Guru&gt;</p>"));
    }

    #[test]
    fn html_of_a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let html = dir.path().join("t.html");
        write_html(&dir.path().join("none.log"), &html, "t", "passed", None).unwrap();
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(page.contains("<pre></pre>"));
        assert!(page.contains("verdict passed\">passed</p>"));
    }
}
