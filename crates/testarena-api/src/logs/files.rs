//! The file side of a queue's logs: every path a client names is confined
//! to `queues/<id>/` (its components are checked before it touches the
//! disk, and the resolved file must still lie inside the queue's folder: no
//! `..`, no symlink escape), the listing, and ranged reads that go out in
//! pieces of [`READ_PIECE`], so serving a log of any size takes little
//! memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::web::Bytes;
use testarena_domain::api::LogFile;
use testarena_domain::paths::confined_file;

use crate::error::ApiError;
use crate::state::blocking;

/// The most bytes one ranged read returns.
pub const MAX_READ: u64 = 4 * 1024 * 1024;
/// The bytes of a ranged read held in memory at once.
const READ_PIECE: u64 = 64 * 1024;

/// Checks a relative log path: `/`-separated plain names, no `.`/`..`.
pub fn checked_path(path: &str) -> Result<&str, ApiError> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        });
    if ok {
        Ok(path)
    } else {
        Err(ApiError::NotFound(format!("no log {path:?}")))
    }
}

/// Resolves `path` inside `dir`, refusing anything that leaves it.
fn confined(dir: &Path, path: &str) -> Result<PathBuf, ApiError> {
    let (file, _) = confined_file(dir, checked_path(path)?)
        .map_err(|_| ApiError::NotFound(format!("no log {path:?}")))?;
    Ok(file)
}

/// The queue folder's files, sorted by path.
pub async fn list(dir: PathBuf) -> Result<Vec<LogFile>, ApiError> {
    blocking(move || {
        Ok(testarena_domain::paths::queue_files(&dir)
            .into_iter()
            .map(|(path, meta)| LogFile {
                path,
                size: meta.len(),
                modified_at: meta
                    .modified()
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .unwrap_or_default(),
            })
            .collect())
    })
    .await
}

/// A file of the queue folder `dir`, opened, and its size now.
pub async fn open(dir: PathBuf, rel: String) -> Result<(File, u64), ApiError> {
    blocking(move || {
        let path = confined(&dir, &rel)?;
        let io = |e: std::io::Error| ApiError::internal(format!("{}: {e}", path.display()));
        let file = File::open(&path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok((file, size))
    })
    .await
}

/// `len` bytes of `file` from `offset`, read [`READ_PIECE`] at a time on
/// the blocking pool as the client takes them.
pub fn pieces(
    file: File,
    offset: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let state = (Arc::new(file), offset, offset + len);
    futures_util::stream::try_unfold(state, |(file, at, end)| async move {
        if at >= end {
            return Ok(None);
        }
        let want = (end - at).min(READ_PIECE) as usize;
        let f = Arc::clone(&file);
        let piece = blocking(move || {
            let mut buf = vec![0; want];
            let mut got = 0;
            while got < want {
                match f.read_at(&mut buf[got..], at + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ApiError::internal(e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        })
        .await?;
        if piece.is_empty() {
            // Logs only grow: a file that shrank under us cannot fill the
            // announced length, so the connection is cut.
            return Err(ApiError::internal("the file shrank while it was read").into());
        }
        let next = at + piece.len() as u64;
        Ok(Some((Bytes::from(piece), (file, next, end))))
    })
}

/// Reads at most `limit` bytes from `offset`; returns them and the file size.
pub(crate) fn read_range(file: &Path, offset: u64, limit: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(file)?;
    let size = f.metadata()?.len();
    if offset >= size {
        return Ok((Vec::new(), size));
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(limit.min(size - offset) as usize);
    f.take(limit).read_to_end(&mut buf)?;
    Ok((buf, size))
}

/// The queue folder's files and their sizes, by path.
pub(crate) fn file_sizes(dir: &Path) -> Vec<(String, u64)> {
    testarena_domain::paths::queue_files(dir)
        .into_iter()
        .map(|(path, meta)| (path, meta.len()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined() {
        for bad in [
            "",
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "a b",
            "tasks/%2e%2e",
        ] {
            assert!(checked_path(bad).is_err(), "{bad:?}");
        }
        for good in ["queue.log", "tasks/q.1/unit.log", "build.log"] {
            assert!(checked_path(good).is_ok(), "{good:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        std::fs::create_dir_all(&q).unwrap();
        std::fs::write(q.join("queue.log"), "x\n").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), q.join("escape.log")).unwrap();
        assert!(confined(&q, "queue.log").is_ok());
        assert!(
            confined(&q, "escape.log").is_err(),
            "a symlink out of the folder is refused"
        );
        assert!(confined(&q, "missing.log").is_err());
    }
}
