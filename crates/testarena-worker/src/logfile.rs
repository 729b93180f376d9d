//! Log files under `queues/<queue_id>/` (DESIGN section 3), written off the
//! async executor.
//!
//! Each open log has a writer on tokio's blocking pool that owns the file.
//! The async side hands it pieces of output through a bounded channel (a
//! child that floods then waits on its pipe instead of filling the worker's
//! memory); the writer appends what has arrived with one write to an
//! unbuffered file, so a reader of the log sees each line moments after the
//! child printed it, and a flood costs one system call per batch rather
//! than per line. Bytes are written as they came: output that is not UTF-8
//! stays as it is on disk and is only shown lossily. [`LogFile::close`]
//! returns once every byte is on disk, or the error that stopped the writer
//! (a full disk ends the queue with it).
//!
//! The queue timeline is one line per event with an RFC 3339 UTC timestamp
//! taken when the event happens; its writer never stops the queue: a line
//! that cannot be written is dropped (the first failure is logged) and the
//! next one tried, and [`Timeline::flush`] waits for the lines sent before.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// Pieces of output queued for a log's writer.
const PIECES_QUEUED: usize = 64;
/// Most bytes gathered into one write.
const BATCH: usize = 256 * 1024;

/// Opens `path` for appending, creating it and its directories.
fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// A log file opened for appending, written by its own writer.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    writer: Option<JoinHandle<io::Result<()>>>,
    /// Why the writer stopped, once known (kind and message: io::Error is
    /// not Clone).
    failed: Option<(io::ErrorKind, String)>,
}

impl LogFile {
    /// Starts the writer of `path`, which opens it for appending (creating
    /// it and its directories) while the caller goes on: a file that cannot
    /// be opened is the error of the first write or of [`LogFile::close`].
    pub fn append(path: &Path) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(PIECES_QUEUED);
        let owned = path.to_owned();
        let span = tracing::Span::current();
        let writer = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut file = open_append(&owned)?;
            let mut batch = Vec::new();
            while let Some(piece) = rx.blocking_recv() {
                batch.clear();
                batch.extend_from_slice(&piece);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                file.write_all(&batch)?;
            }
            Ok(())
        });
        Self {
            path: path.to_owned(),
            tx: Some(tx),
            writer: Some(writer),
            failed: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands `bytes` to the writer. An error the writer met meanwhile (a
    /// full disk) is returned here, or by [`LogFile::close`].
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(bytes.to_vec()).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.stopped().await)
        }
    }

    /// Waits until every byte handed over is written; returns the writer's
    /// error if it stopped. Later writes fail.
    pub async fn close(&mut self) -> Result<()> {
        self.tx = None;
        if self.failed.is_some() {
            return Err(self.failure());
        }
        match self.writer.take() {
            Some(writer) => self.join(writer).await,
            None => Ok(()),
        }
    }

    /// The error that stopped the writer.
    async fn stopped(&mut self) -> Error {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            match self.join(writer).await {
                Err(e) => return e,
                Ok(()) => self.failed = Some((io::ErrorKind::Other, "the log is closed".into())),
            }
        }
        self.failure()
    }

    async fn join(&mut self, writer: JoinHandle<io::Result<()>>) -> Result<()> {
        match writer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.failed = Some((e.kind(), e.to_string()));
                Err(Error::io(&self.path, e))
            }
            Err(e) => Err(Error::Join(e.to_string())),
        }
    }

    fn failure(&self) -> Error {
        let (kind, message) = self
            .failed
            .clone()
            .unwrap_or((io::ErrorKind::Other, "the log writer stopped".into()));
        Error::io(&self.path, io::Error::new(kind, message))
    }
}

/// What the timeline's writer is asked to do.
#[derive(Debug)]
enum TimelineOp {
    Line(Vec<u8>),
    Flush(oneshot::Sender<()>),
}

/// `queue.log`: the worker's timeline of one queue.
#[derive(Debug)]
pub struct Timeline {
    tx: mpsc::UnboundedSender<TimelineOp>,
}

impl Timeline {
    /// Starts the timeline's writer. A timeline that cannot be written must
    /// not stop the queue: the first failure is logged, and each later line
    /// tries again (a full disk may have been freed meanwhile).
    pub fn open(path: &Path) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let path = path.to_owned();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut file: Option<File> = None;
            let mut failing = false;
            while let Some(op) = rx.blocking_recv() {
                let line = match op {
                    TimelineOp::Line(line) => line,
                    TimelineOp::Flush(done) => {
                        let _ = done.send(());
                        continue;
                    }
                };
                let written = match &mut file {
                    Some(f) => f.write_all(&line),
                    None => open_append(&path).and_then(|mut f| {
                        let written = f.write_all(&line);
                        file = Some(f);
                        written
                    }),
                };
                match written {
                    Ok(()) => failing = false,
                    Err(e) => {
                        if !failing {
                            tracing::error!(error = %e, path = %path.display(), "cannot write the queue timeline");
                            failing = true;
                        }
                        // Opened again for the next line.
                        file = None;
                    }
                }
            }
        });
        Self { tx }
    }

    /// Appends `<RFC 3339 time> <text>`, the time being now; never waits.
    pub fn line(&self, text: &str) {
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let _ = self
            .tx
            .send(TimelineOp::Line(format!("{at} {text}\n").into_bytes()));
    }

    /// Waits until every line given before is written (or dropped).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(TimelineOp::Flush(done)).is_ok() {
            let _ = wait.await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_bytes_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/test.log");
        let mut log = LogFile::append(&path);
        log.write(b"one\n").await.unwrap();
        log.write(b"\xff\xfe not utf-8\n").await.unwrap();
        log.close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n\xff\xfe not utf-8\n");
        assert!(log.write(b"late").await.is_err(), "a closed log refuses");
        let mut log = LogFile::append(&path);
        log.write(b"three").await.unwrap();
        log.close().await.unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"one\n\xff\xfe not utf-8\nthree"
        );
    }

    #[tokio::test]
    async fn a_flood_arrives_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flood.log");
        let mut log = LogFile::append(&path);
        let mut expected = Vec::new();
        for i in 0..20_000 {
            let line = format!("line {i}\n");
            expected.extend_from_slice(line.as_bytes());
            log.write(line.as_bytes()).await.unwrap();
        }
        log.close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_opened_fails_its_writes_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("q"), "a file, not a folder").unwrap();
        let path = dir.path().join("q/test.log");
        let mut log = LogFile::append(&path);
        let error = match log.write(b"x").await {
            Err(e) => e,
            // The writer may not have tried to open it yet.
            Ok(()) => log.close().await.unwrap_err(),
        };
        assert!(
            matches!(&error, Error::Io { path: p, .. } if *p == path),
            "{error:?}"
        );
        assert!(log.write(b"y").await.is_err());
    }

    #[tokio::test]
    async fn a_full_disk_is_reported_with_the_path() {
        // /dev/full refuses every write with ENOSPC.
        let mut log = LogFile::append(Path::new("/dev/full"));
        let mut error = None;
        for _ in 0..100 {
            if let Err(e) = log.write(b"x\n").await {
                error = Some(e);
                break;
            }
        }
        let error = match error {
            Some(e) => e,
            None => log.close().await.unwrap_err(),
        };
        match error {
            Error::Io { path, source } => {
                assert_eq!(path, Path::new("/dev/full"));
                assert_eq!(source.kind(), io::ErrorKind::StorageFull);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn timeline_lines_have_rfc3339_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.log");
        let t = Timeline::open(&path);
        t.line("claimed");
        t.line("build passed");
        t.flush().await;
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

    #[tokio::test]
    async fn a_timeline_line_that_cannot_be_written_is_dropped_and_the_next_tried() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the queue's folder should be: nothing can be written.
        let blocker = dir.path().join("q");
        std::fs::write(&blocker, "in the way").unwrap();
        let t = Timeline::open(&blocker.join("queue.log"));
        t.line("dropped");
        t.flush().await;
        std::fs::remove_file(&blocker).unwrap();
        t.line("written");
        t.flush().await;
        let text = std::fs::read_to_string(blocker.join("queue.log")).unwrap();
        assert!(
            text.ends_with(" written\n") && !text.contains("dropped"),
            "{text}"
        );
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
}
