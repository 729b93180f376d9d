//! What only SQLite has: per-connection pragmas, WAL, the file's
//! permissions and `testarena-app backup`.
//!
//! Every pooled connection gets `busy_timeout`, `foreign_keys=ON` and
//! `synchronous=NORMAL` when it is acquired (Diesel enables none of them);
//! WAL is switched on once, when the pool is built, because it is a property
//! of the file.

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use diesel::connection::SimpleConnection as _;

use super::{DbConnection, DbError, SqliteConnection};

/// How long a statement waits for another writer before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pragmas every connection gets when the pool hands it out.
pub(super) static PRAGMAS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        BUSY_TIMEOUT.as_millis()
    )
});

/// Makes the file's parent directory when missing.
pub(super) fn prepare_file(path: &Path) -> Result<(), String> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

pub(super) fn enable_wal(conn: &mut DbConnection) -> Result<(), String> {
    conn.batch_execute("PRAGMA journal_mode = WAL;")
        .map_err(|e| e.to_string())
}

/// The database holds password hashes: keep it and its WAL files owner-only.
pub(super) fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut files = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files {
        // Missing WAL files are normal; a file we cannot chmod is not ours to fix.
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
}

/// What [`backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The size of the copy in bytes.
    pub bytes: u64,
}

#[derive(diesel::QueryableByName)]
struct IntegrityRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

/// Copies the database behind `conn` to the new file `dest` with
/// `VACUUM INTO`: a consistent snapshot, taken inside one read transaction,
/// so the app and workers keep writing meanwhile (WAL). `dest` must not
/// exist; it is created owner-only (0600) before SQLite writes to it, synced,
/// then opened again and checked with `PRAGMA integrity_check`. On any
/// failure the partial copy is removed.
pub fn backup(conn: &mut DbConnection, dest: &Path) -> Result<BackupInfo, DbError> {
    use std::os::unix::fs::OpenOptionsExt as _;

    let fail = |message: String| DbError::Backup {
        path: dest.display().to_string(),
        message,
    };
    let DbConnection::Sqlite(conn) = conn else {
        return Err(fail(
            "backup copies a SQLite file; back a PostgreSQL database up with pg_dump".into(),
        ));
    };
    // Absolute, so that SQLite never reads a name such as `file:x` as a URI.
    let dest = &std::path::absolute(dest).map_err(|e| fail(e.to_string()))?;
    let dest_str = dest
        .to_str()
        .ok_or_else(|| fail("the path is not UTF-8".into()))?;
    // create_new: refuses an existing file (or a symlink) atomically, and
    // the copy is never readable by others, not even for a moment.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| fail(e.to_string()))?;
    let copied = (|| {
        vacuum_into(conn, dest_str)?;
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
        check_integrity(dest_str)?;
        std::fs::metadata(dest)
            .map(|m| BackupInfo { bytes: m.len() })
            .map_err(|e| e.to_string())
    })();
    copied.map_err(|message| {
        // Best effort: the copy is incomplete or unreadable either way.
        let _ = std::fs::remove_file(dest);
        fail(message)
    })
}

fn vacuum_into(conn: &mut SqliteConnection, dest: &str) -> Result<(), String> {
    use diesel::RunQueryDsl as _;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(dest)
        .execute(conn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Opens the file at `path` on its own connection and runs
/// `PRAGMA integrity_check`, which answers one row `ok` for a sound file.
fn check_integrity(path: &str) -> Result<(), String> {
    use diesel::{Connection as _, RunQueryDsl as _};
    let mut copy = SqliteConnection::establish(path).map_err(|e| e.to_string())?;
    let rows = diesel::sql_query("PRAGMA integrity_check")
        .load::<IntegrityRow>(&mut copy)
        .map_err(|e| e.to_string())?;
    match rows.as_slice() {
        [row] if row.integrity_check == "ok" => Ok(()),
        rows => Err(format!(
            "integrity check of the copy failed: {}",
            rows.iter()
                .map(|r| r.integrity_check.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{
        Location, PoolOptions, ensure_schema, open_migrated as open_migrated_at,
        open_pool as open_pool_at, run_migrations,
    };

    fn open_migrated(path: &Path, n: u32) -> Result<crate::db::DbPool, DbError> {
        open_migrated_at(&Location::Sqlite(path.to_owned()), PoolOptions::sized(n))
    }

    fn open_pool(path: &Path, n: u32) -> Result<crate::db::DbPool, DbError> {
        open_pool_at(&Location::Sqlite(path.to_owned()), PoolOptions::sized(n))
    }
    use diesel::RunQueryDsl;
    use diesel::sql_types::{BigInt, Text};

    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }

    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }

    /// Reads an integer pragma; `column` is the name SQLite gives its value.
    fn pragma(conn: &mut DbConnection, name: &str, column: &str) -> i64 {
        diesel::sql_query(format!("SELECT {column} AS value FROM pragma_{name}"))
            .get_result::<Value>(conn)
            .unwrap()
            .value
    }

    #[test]
    fn every_connection_has_the_pragmas_and_the_file_is_wal() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_migrated(&dir.path().join("sub/t.db"), 3).unwrap();
        // Hold several connections at once so that each is a separate one.
        let mut conns: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
        for conn in &mut conns {
            assert_eq!(pragma(conn, "foreign_keys", "foreign_keys"), 1);
            assert_eq!(pragma(conn, "busy_timeout", "timeout"), 5000);
            assert_eq!(pragma(conn, "synchronous", "synchronous"), 1, "NORMAL");
            let mode = diesel::sql_query("PRAGMA journal_mode")
                .get_result::<Mode>(&mut **conn)
                .unwrap();
            assert_eq!(mode.journal_mode, "wal");
        }
    }

    #[test]
    fn pending_migrations_are_reported_until_run() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(&dir.path().join("t.db"), 1).unwrap();
        let mut conn = pool.get().unwrap();
        let err = ensure_schema(&mut conn).unwrap_err();
        assert!(matches!(err, DbError::NoSchema { .. }), "{err}");
        assert!(err.to_string().contains("testarena-app migrate"));
        assert!(run_migrations(&mut conn).unwrap() >= 1);
        ensure_schema(&mut conn).unwrap();
        assert_eq!(run_migrations(&mut conn).unwrap(), 0);
    }

    #[test]
    fn the_database_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let _pool = open_migrated(&path, 1).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }

    #[test]
    fn a_backup_is_a_consistent_owner_only_copy_taken_while_others_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pool = open_migrated(&dir.path().join("t.db"), 3).unwrap();
        let mut conn = pool.get().unwrap();
        crate::store::create_user(&mut conn, "alice", "hash", true).unwrap();
        // Another connection is in the middle of a write transaction.
        let mut writer = pool.get().unwrap();
        writer.batch_execute("BEGIN IMMEDIATE").unwrap();
        crate::store::create_user(&mut writer, "bob", "hash", false).unwrap();

        let dest = dir.path().join("backup.db");
        let info = backup(&mut conn, &dest).unwrap();
        writer.batch_execute("COMMIT").unwrap();

        let meta = std::fs::metadata(&dest).unwrap();
        assert_eq!(info.bytes, meta.len());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let copy = open_pool(&dest, 1).unwrap();
        let mut copy = copy.get().unwrap();
        ensure_schema(&mut copy).unwrap();
        let names: Vec<_> = crate::store::list_users(&mut copy)
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["alice"], "the uncommitted user is not in the copy");
    }

    #[test]
    fn a_backup_never_overwrites_and_leaves_nothing_behind_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_migrated(&dir.path().join("t.db"), 1).unwrap();
        let mut conn = pool.get().unwrap();
        let dest = dir.path().join("backup.db");
        std::fs::write(&dest, b"precious").unwrap();
        let err = backup(&mut conn, &dest).unwrap_err();
        assert!(matches!(err, DbError::Backup { .. }), "{err}");
        assert!(err.to_string().contains("exists"), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"precious");

        let missing = dir.path().join("no/such/dir/backup.db");
        assert!(backup(&mut conn, &missing).is_err());
        assert!(!missing.exists());
    }
}
