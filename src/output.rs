//! Human output: aligned tables, statuses in colour when standard output is
//! a terminal (and `NO_COLOR` is unset), short times and durations.

use std::io::{self, IsTerminal as _, Write};

use chrono::{DateTime, Local, Utc};
use testarena_wire::status::Status;

/// Where answers go, and how they look.
pub struct Out {
    w: Box<dyn Write>,
    /// Paint statuses with ANSI colours.
    pub color: bool,
    /// Standard output is a terminal: progress lines may be redrawn.
    pub tty: bool,
    /// Print the API's JSON instead of tables.
    pub json: bool,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out")
            .field("color", &self.color)
            .field("tty", &self.tty)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Out {
    pub fn stdout(json: bool) -> Self {
        let tty = io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Self {
            w: Box::new(io::stdout()),
            color: tty && !no_color && !dumb,
            tty,
            json,
        }
    }

    /// Pretty JSON of any API answer, one value.
    pub fn json_value<T: serde::Serialize>(&mut self, value: &T) -> io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
        writeln!(self.w, "{text}")
    }

    /// One line of JSON (for streams of values).
    pub fn json_line<T: serde::Serialize>(&mut self, value: &T) -> io::Result<()> {
        let text = serde_json::to_string(value).map_err(io::Error::other)?;
        writeln!(self.w, "{text}")?;
        self.w.flush()
    }

    /// Wraps `text` in an SGR colour code when colour is on.
    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color && !code.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn status(&self, status: Status) -> String {
        self.paint(status_color(status), status.as_str())
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.w.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

pub fn status_color(status: Status) -> &'static str {
    match status {
        Status::Passed => "32",
        Status::Failed => "31",
        Status::Error => "1;31",
        Status::Aborted => "33",
        Status::Running => "36",
        Status::Waiting => "34",
        Status::Skipped => "2",
    }
}

/// A table: a header and rows of cells, each cell's colour apart from its
/// text so that widths count only what shows.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<(String, &'static str)>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// A row of plain cells.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| (c, "")).collect());
    }

    /// A row with a colour per cell ("" for none).
    pub fn styled_row(&mut self, cells: Vec<(String, &'static str)>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn print(&self, out: &mut Out) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, (cell, _)) in row.iter().enumerate() {
                let w = cell.chars().count();
                match widths.get_mut(i) {
                    Some(max) => *max = (*max).max(w),
                    None => widths.push(w),
                }
            }
        }
        let header: Vec<(String, &str)> =
            self.header.iter().map(|h| ((*h).to_owned(), "1")).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, color)) in row.iter().enumerate() {
                let last = i + 1 == row.len();
                line.push_str(&out.paint(color, cell));
                if !last {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.push_str(&" ".repeat(pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// A time in the local zone, `2024-01-31 13:05:09`.
pub fn time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

/// `1h02m`, `3m04s`, `12s`, `350ms`.
pub fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        return format!("{}ms", ms.max(0));
    }
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// How long from `start` to `end` (or now).
pub fn span(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match start {
        Some(start) => duration_ms((end.unwrap_or_else(Utc::now) - start).num_milliseconds()),
        None => "-".into(),
    }
}

/// Cuts `text` to `width` characters, with an ellipsis when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> (Out, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        #[derive(Debug)]
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = std::sync::Arc::default();
        let out = Out {
            w: Box::new(Shared(std::sync::Arc::clone(&buf))),
            color: false,
            tty: false,
            json: false,
        };
        (out, buf)
    }

    #[test]
    fn tables_align_on_visible_width() {
        let (mut out, buf) = plain();
        let mut t = Table::new(&["ID", "STATUS", "NOTE"]);
        t.styled_row(vec![
            ("q1".into(), ""),
            ("passed".into(), "32"),
            ("".into(), ""),
        ]);
        t.row(vec!["queue-two".into(), "failed".into(), "é!".into()]);
        t.print(&mut out).unwrap();
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "ID         STATUS  NOTE\nq1         passed\nqueue-two  failed  é!\n"
        );
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration_ms(350), "350ms");
        assert_eq!(duration_ms(12_400), "12s");
        assert_eq!(duration_ms(184_000), "3m04s");
        assert_eq!(duration_ms(3_720_000), "1h02m");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
