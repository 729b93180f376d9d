//! The newest bytes of a followed queue's stored logs, read once by its
//! follower and shared by all its streams (PostgreSQL): a hundred clients
//! caught up on a log cost one read of the new chunk, not a hundred. A
//! stream whose position is older than the window reads the database
//! itself, as it does on a first catch-up.

use std::sync::Arc;

use super::source::LogSource;

/// How much of each log the window keeps at least (more when one look
/// brought more).
const KEEP: usize = 64 * 1024;
/// The most bytes one look adds to a file's window.
const GROW: u64 = 256 * 1024;

/// The window of one file: its bytes from `start`.
#[derive(Debug, Clone, PartialEq)]
struct Tail {
    path: String,
    start: u64,
    bytes: Arc<[u8]>,
}

impl Tail {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// The windows of a queue's `*.log` files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tails {
    tails: Vec<Tail>,
}

impl Tails {
    /// The windows after a look that found `files` (path, size): each log
    /// that grew gets its new bytes (up to a gap), a log seen for the
    /// first time starts empty at its size, a log that shrank (a new
    /// attempt) starts again from 0. Blocking: it reads the database.
    pub fn grown(&self, source: &LogSource, files: &[(String, u64)]) -> Self {
        let mut tails = Vec::new();
        for (path, size) in files.iter().filter(|(p, _)| p.ends_with(".log")) {
            let old = self.tails.iter().find(|t| &t.path == path);
            let (start, kept): (u64, &[u8]) = match old {
                Some(t) if t.end() <= *size => (t.start, &t.bytes),
                Some(_) => (0, &[]),
                None => {
                    tails.push(Tail {
                        path: path.clone(),
                        start: *size,
                        bytes: Arc::from(&[][..]),
                    });
                    continue;
                }
            };
            let end = start + kept.len() as u64;
            let new = if end < *size {
                source
                    .read(path, end, (*size - end).min(GROW))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            if new.is_empty() && old.is_some_and(|t| t.start == start) {
                tails.extend(old.cloned());
                continue;
            }
            let drop = (kept.len() + new.len()).saturating_sub(KEEP.max(new.len()));
            let drop = drop.min(kept.len());
            let mut bytes = Vec::with_capacity(kept.len() - drop + new.len());
            bytes.extend_from_slice(&kept[drop..]);
            bytes.extend_from_slice(&new);
            tails.push(Tail {
                path: path.clone(),
                start: start + drop as u64,
                bytes: Arc::from(bytes),
            });
        }
        Self { tails }
    }

    /// At most `limit` bytes of `path` from `offset` when the window holds
    /// them (`offset` inside it), else `None`.
    pub fn read(&self, path: &str, offset: u64, limit: u64) -> Option<Vec<u8>> {
        let t = self.tails.iter().find(|t| t.path == path)?;
        if offset < t.start || offset >= t.end() {
            return None;
        }
        let from = usize::try_from(offset - t.start).ok()?;
        let to = t
            .bytes
            .len()
            .min(from.saturating_add(usize::try_from(limit).ok()?));
        Some(t.bytes[from..to].to_vec())
    }

    /// True when the window of `path` holds everything from `offset` to
    /// `size`.
    pub fn covers(&self, path: &str, offset: u64, size: u64) -> bool {
        offset >= size
            || self
                .tails
                .iter()
                .any(|t| t.path == path && t.start <= offset && t.end() >= size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_grows_with_the_file_and_keeps_the_newest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let source = LogSource::Files(dir.path().to_owned());
        let log = dir.path().join("a.log");
        std::fs::write(&log, "old\n").unwrap();
        let tails = Tails::default().grown(&source, &[("a.log".into(), 4)]);
        assert_eq!(
            tails.read("a.log", 0, 10),
            None,
            "starts at the size seen first"
        );
        assert!(tails.covers("a.log", 4, 4));
        std::fs::write(&log, "old\nnew\n").unwrap();
        let tails = tails.grown(&source, &[("a.log".into(), 8)]);
        assert_eq!(tails.read("a.log", 4, 10).as_deref(), Some(&b"new\n"[..]));
        assert_eq!(tails.read("a.log", 6, 1).as_deref(), Some(&b"w"[..]));
        assert!(tails.covers("a.log", 4, 8) && !tails.covers("a.log", 3, 8));
        let big = "x".repeat(3 * KEEP);
        std::fs::write(&log, format!("old\nnew\n{big}")).unwrap();
        let size = 8 + big.len() as u64;
        let tails = tails.grown(&source, &[("a.log".into(), size)]);
        assert_eq!(tails.read("a.log", 4, 4), None, "older bytes are let go");
        assert_eq!(
            tails.read("a.log", 8, 1).as_deref(),
            Some(&b"x"[..]),
            "one look's bytes stay"
        );
        // A new attempt starts the file again.
        std::fs::write(&log, "again\n").unwrap();
        let tails = tails.grown(&source, &[("a.log".into(), 6)]);
        assert_eq!(
            tails.read("a.log", 0, 100).as_deref(),
            Some(&b"again\n"[..])
        );
    }
}
