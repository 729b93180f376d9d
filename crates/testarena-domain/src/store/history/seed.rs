//! A synthetic history for the benchmarks: many ended queues with many
//! test cases, written by a few set-based statements (the triggers still
//! keep every run's series, as they do for a run the worker records).

use crate::db::DbConnection;
use diesel::prelude::*;

use crate::store::StoreResult;

/// The shape of [`seed_history`]'s history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySeed {
    pub repo: String,
    pub scenario: String,
    pub target: String,
    pub owner: String,
    /// Queues (one task each), oldest first.
    pub queues: usize,
    /// Test cases per task, named `test_000` ...
    pub tests: usize,
    /// Queues are spread evenly over this many days up to now.
    pub days: u32,
    /// Branches `branch-0` ...; queue i runs on branch i % branches.
    pub branches: usize,
}

/// Stores `seed.queues` ended queues of one task with `seed.tests` test
/// cases each, in batches of 1000 queues per transaction. Pairs of queues
/// share a commit; `test_000` to `test_002` fail now and then (flaky),
/// `test_003` fails on every third commit, the rest pass. Returns the
/// test cases written.
pub fn seed_history(conn: &mut DbConnection, seed: &HistorySeed) -> StoreResult<usize> {
    use diesel::sql_types::{BigInt, Double, Text};
    const BATCH: usize = 1000;
    let step_days = f64::from(seed.days) / seed.queues.max(1) as f64;
    let mut written = 0;
    let mut from = 0;
    if conn.is_postgres() {
        return Err(crate::store::StoreError::Conflict(
            "the synthetic history of the benchmarks is written for SQLite only".into(),
        ));
    }
    while from < seed.queues {
        let to = seed.queues.min(from + BATCH);
        crate::db::write(conn, |conn| -> StoreResult<()> {
            // Queue i: id hist-i, ended at (now - days) + i × step.
            let at = "strftime('%Y-%m-%d %H:%M:%f', julianday('now') - ?3 + i * ?4)";
            diesel::sql_query(format!(
                "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2) \
                 INSERT INTO queues (id, status, repo, branch, commit_sha, target, owner, created_at, \
                                     started_at, finished_at, worker_id, ran_on) \
                 SELECT printf('hist-%07d', i), 'passed', ?5, 'branch-' || (i % ?8), \
                        printf('%040x', i / 2), ?6, ?7, {at}, {at}, {at}, 'bench-worker', 'qemu' FROM n"
            ))
            .bind::<BigInt, _>(from as i64)
            .bind::<BigInt, _>(to as i64)
            .bind::<Double, _>(f64::from(seed.days))
            .bind::<Double, _>(step_days)
            .bind::<Text, _>(&seed.repo)
            .bind::<Text, _>(&seed.target)
            .bind::<Text, _>(&seed.owner)
            .bind::<BigInt, _>(seed.branches.max(1) as i64)
            .execute(conn)?;
            diesel::sql_query(
                "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2) \
                 INSERT INTO tasks (id, queue_id, position, scenario, status, passed, failed, \
                                    skipped, started_at, finished_at) \
                 SELECT printf('hist-%07d.1', i), printf('hist-%07d', i), 0, ?3, 'passed', 0, 0, 0, \
                        q.finished_at, q.finished_at \
                   FROM n JOIN queues q ON q.id = printf('hist-%07d', i)",
            )
            .bind::<BigInt, _>(from as i64)
            .bind::<BigInt, _>(to as i64)
            .bind::<Text, _>(&seed.scenario)
            .execute(conn)?;
            let n = diesel::sql_query(
                "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2), \
                      t(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM t WHERE j + 1 < ?3) \
                 INSERT INTO test_cases (task_id, name, status, duration_ms, message, repo, scenario, \
                                         branch, target, commit_sha, ran_on, finished_at) \
                 SELECT q.id || '.1', printf('test_%03d', j), \
                        CASE WHEN j < 3 AND (i * 7 + j * 3) % 11 = 0 THEN 'failed' \
                             WHEN j = 3 AND (i / 2) % 3 = 0 THEN 'failed' ELSE 'passed' END, \
                        100 + j * 10 + (i * 13 + j) % 50, \
                        CASE WHEN j <= 3 THEN 'expected \"ok\" not seen' END, \
                        q.repo, ?4, q.branch, q.target, q.commit_sha, 'qemu', q.finished_at \
                   FROM n JOIN queues q ON q.id = printf('hist-%07d', i) CROSS JOIN t \
                  ORDER BY i, j",
            )
            .bind::<BigInt, _>(from as i64)
            .bind::<BigInt, _>(to as i64)
            .bind::<BigInt, _>(seed.tests.max(1) as i64)
            .bind::<Text, _>(&seed.scenario)
            .execute(conn)?;
            written += n;
            Ok(())
        })?;
        from = to;
    }
    Ok(written)
}
