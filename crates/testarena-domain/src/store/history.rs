//! History (DESIGN section 11): a test's runs, what a queue's test cases
//! are against their history (`known_flaky`, `new_failure`,
//! `baseline_ms`), the tests list and the comparison of two queues.
//!
//! Every test case row carries its identity (repo, scenario, name) and
//! where it ran, copied at record time by the database's triggers (the
//! history migration), and `test_series` keeps each test's last 20
//! verdicts and passing durations per branch and target. So a test's
//! history is one index range, and the tests list reads a few series rows
//! per test, never its whole history.

mod compare;
mod list;
mod rules;
mod seed;

pub use compare::compare_queues;
pub use list::{MAX_TESTS_PAGE, TestSort, TestsFilter, TestsPage, list_tests};
pub use rules::{FLAKY_FLIPS, FLAKY_WINDOW_DAYS, flips, is_flaky, is_slower, median};
pub use seed::{HistorySeed, seed_history};

use std::collections::HashMap;

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{StoreResult, now};
use crate::api::{Queue, TestRun};
use crate::models::{QueueDetail, QueueRow, parse_status};
use crate::schema::{queues, tasks, test_cases, test_series};
use crate::status::Status;

/// The most runs one page of [`test_history`] returns.
pub const MAX_HISTORY_PAGE: i64 = 200;

/// Which test's runs [`test_history`] reads, and the page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub repo: String,
    pub scenario: String,
    pub name: String,
    pub branch: Option<String>,
    pub target: Option<String>,
    /// Only runs recorded before the one with this id (the cursor).
    pub before: Option<i32>,
    /// 1 to [`MAX_HISTORY_PAGE`]; values outside are clamped.
    pub limit: i64,
}

/// A page of a test's runs, newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub items: Vec<TestRun>,
    pub next: Option<i32>,
}

type RunRow = (
    i32,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<i32>,
    Option<String>,
    Option<NaiveDateTime>,
);

/// A test's runs, newest first (in the order they were recorded: the
/// cursor is the run's id, so runs recorded while a client pages are
/// neither skipped nor repeated).
pub fn test_history(conn: &mut DbConnection, filter: &HistoryFilter) -> StoreResult<HistoryPage> {
    let limit = filter.limit.clamp(1, MAX_HISTORY_PAGE);
    let mut query = test_cases::table
        .inner_join(tasks::table)
        .filter(test_cases::repo.eq(&filter.repo))
        .filter(test_cases::scenario.eq(&filter.scenario))
        .filter(test_cases::name.eq(&filter.name))
        .select((
            test_cases::id,
            tasks::queue_id,
            test_cases::task_id,
            test_cases::commit_sha,
            test_cases::branch,
            test_cases::target,
            test_cases::ran_on,
            test_cases::status,
            test_cases::duration_ms,
            test_cases::message,
            test_cases::finished_at,
        ))
        .into_boxed();
    if let Some(branch) = &filter.branch {
        query = query.filter(test_cases::branch.eq(branch));
    }
    if let Some(target) = &filter.target {
        query = query.filter(test_cases::target.eq(target));
    }
    if let Some(before) = filter.before {
        query = query.filter(test_cases::id.lt(before));
    }
    let mut rows: Vec<RunRow> = query
        .order(test_cases::id.desc())
        .limit(limit + 1)
        .load(conn)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.0)
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(
            |(
                _,
                queue_id,
                task_id,
                commit,
                branch,
                target,
                ran_on,
                status,
                duration_ms,
                message,
                at,
            )| {
                TestRun {
                    queue_id,
                    task_id,
                    commit,
                    branch: branch.unwrap_or_default(),
                    target: target.unwrap_or_default(),
                    ran_on: ran_on.unwrap_or_else(|| "qemu".into()),
                    status: parse_status(&status),
                    duration_ms,
                    message,
                    finished_at: at.unwrap_or_default().and_utc(),
                }
            },
        )
        .collect();
    Ok(HistoryPage { items, next })
}

/// What one test case of a queue is against its history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaseFacts {
    pub known_flaky: bool,
    pub new_failure: bool,
    pub baseline_ms: Option<i64>,
}

/// The facts of every test case of a queue, by (task id, test name): two
/// queries however many cases it has (each case's previous run and
/// baseline through the series index; the flaky state of its tests from
/// their series).
pub fn case_facts(
    conn: &mut DbConnection,
    detail: &QueueDetail,
) -> StoreResult<HashMap<(String, String), CaseFacts>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        task_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        scenario: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        prev: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        base: Option<String>,
    }
    if detail.tasks.iter().all(|(_, cases)| cases.is_empty()) {
        return Ok(HashMap::new());
    }
    // The one difference between the backends: how a list is joined.
    let join = if conn.is_postgres() {
        "string_agg(d::text, ',')"
    } else {
        "group_concat(d, ',')"
    };
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT c.task_id, c.name, coalesce(c.scenario, '') AS scenario, c.status, \
           (SELECT p.status FROM test_cases p \
             WHERE p.repo = c.repo AND p.scenario = c.scenario AND p.name = c.name \
               AND p.branch = c.branch AND p.target = c.target AND p.id < c.id \
               AND p.status != 'skipped' ORDER BY p.id DESC LIMIT 1) AS prev, \
           (SELECT {join} FROM (SELECT p.duration_ms AS d FROM test_cases p \
             WHERE p.repo = c.repo AND p.scenario = c.scenario AND p.name = c.name \
               AND p.branch = c.branch AND p.target = c.target AND p.id < c.id \
               AND p.status = 'passed' AND p.duration_ms IS NOT NULL \
             ORDER BY p.id DESC LIMIT 20) AS recent) AS base \
         FROM test_cases c JOIN tasks t ON t.id = c.task_id WHERE t.queue_id = $1",
    ))
    .bind::<diesel::sql_types::Text, _>(&detail.queue.id)
    .load(conn)?;
    let scenarios: Vec<&str> = detail
        .tasks
        .iter()
        .map(|(t, _)| t.scenario.as_str())
        .collect();
    let flaky = flaky_tests(conn, &detail.queue.repo, &scenarios)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let failed = matches!(parse_status(&r.status), Status::Failed | Status::Error);
            let facts = CaseFacts {
                known_flaky: flaky
                    .get(&(r.scenario, r.name.clone()))
                    .copied()
                    .unwrap_or(false),
                new_failure: failed && r.prev.as_deref() == Some(Status::Passed.as_str()),
                baseline_ms: r
                    .base
                    .as_deref()
                    .and_then(|b| median(rules::durations(b).collect())),
            };
            ((r.task_id, r.name), facts)
        })
        .collect())
}

/// Whether each test of these scenarios of `repo` is flaky now, by
/// (scenario, name), from its series (every branch and target).
fn flaky_tests(
    conn: &mut DbConnection,
    repo: &str,
    scenarios: &[&str],
) -> StoreResult<HashMap<(String, String), bool>> {
    let rows: Vec<(String, String, String, Option<NaiveDateTime>)> = test_series::table
        .filter(test_series::repo.eq(repo))
        .filter(test_series::scenario.eq_any(scenarios))
        .select((
            test_series::scenario,
            test_series::name,
            test_series::verdicts,
            test_series::mixed_at,
        ))
        .load(conn)?;
    let at = now();
    let mut flaky: HashMap<(String, String), bool> = HashMap::new();
    for (scenario, name, verdicts, mixed_at) in rows {
        let is = is_flaky(mixed_at, flips(&verdicts), at);
        *flaky.entry((scenario, name)).or_default() |= is;
    }
    Ok(flaky)
}

/// Fills `known_flaky`, `new_failure` and `baseline_ms` of a queue's JSON.
pub fn annotate(queue: &mut Queue, facts: &HashMap<(String, String), CaseFacts>) {
    for task in &mut queue.tasks {
        for test in &mut task.tests {
            if let Some(f) = facts.get(&(task.id.clone(), test.name.clone())) {
                test.known_flaky = f.known_flaky;
                test.new_failure = f.new_failure;
                test.baseline_ms = f.baseline_ms;
            }
        }
    }
}

/// The queue a comparison takes by default: the newest earlier queue of the
/// same repository, branch and target that ran to a verdict (passed,
/// failed or error; an aborted one is not a base).
pub fn compare_base(conn: &mut DbConnection, queue: &QueueRow) -> StoreResult<Option<String>> {
    let ended = [
        Status::Passed.as_str(),
        Status::Failed.as_str(),
        Status::Error.as_str(),
    ];
    Ok(queues::table
        .filter(queues::repo.eq(&queue.repo))
        .filter(queues::branch.eq(&queue.branch))
        .filter(queues::target.eq(&queue.target))
        .filter(queues::seq.lt(queue.seq))
        .filter(queues::status.eq_any(ended))
        .order(queues::seq.desc())
        .select(queues::id)
        .limit(1)
        .load::<String>(conn)?
        .pop())
}
