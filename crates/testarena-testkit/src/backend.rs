//! Which database a suite runs on: SQLite by default, PostgreSQL when
//! `TESTARENA_TEST_BACKEND=postgres` (`scripts/test.sh` runs the store, API
//! and end-to-end suites once with each). A PostgreSQL database is a fresh
//! one of the process's shared throwaway cluster ([`crate::PgCluster`]).

use std::path::Path;

use crate::error::{Result, or_panic};
use crate::postgres::{Cluster, Database};

/// The variable that selects the backend.
pub const BACKEND_ENV: &str = "TESTARENA_TEST_BACKEND";

/// True when this run asks for PostgreSQL.
pub fn postgres_wanted() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|v| v == "postgres" || v == "postgresql")
}

/// A database for one test: what a config's `database` key gets.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    pg: Option<Database>,
}

impl TestDatabase {
    /// The backend this run asks for: a fresh PostgreSQL database, or the
    /// SQLite file `sqlite_path` (not made here: the first open makes it).
    pub fn for_this_run(sqlite_path: &Path) -> Self {
        or_panic(Self::try_for_this_run(sqlite_path))
    }

    pub fn try_for_this_run(sqlite_path: &Path) -> Result<Self> {
        if postgres_wanted() {
            Self::try_postgres()
        } else {
            Ok(Self::sqlite(sqlite_path))
        }
    }

    /// The SQLite file at `path`.
    pub fn sqlite(path: &Path) -> Self {
        Self {
            url: path.to_string_lossy().into_owned(),
            pg: None,
        }
    }

    /// A fresh database of the shared cluster.
    pub fn postgres() -> Self {
        or_panic(Self::try_postgres())
    }

    pub fn try_postgres() -> Result<Self> {
        let db = Cluster::try_shared()?.try_create_database()?;
        Ok(Self {
            url: db.url(),
            pg: Some(db),
        })
    }

    /// The value of the config's `database` key (a PostgreSQL URL holds
    /// the password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL database, if this is one.
    pub fn postgres_db(&self) -> Option<&Database> {
        self.pg.as_ref()
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}
