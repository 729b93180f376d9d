//! The tests list: one row per test seen in a time window, with its
//! counts, flakiness and typical duration, sorted and paged.

use std::collections::{BTreeMap, HashMap};

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::rules::{self, flips, is_flaky, median};
use crate::api::{LastFailure, TestSummary};
use crate::models::parse_status;
use crate::schema::{tasks, test_cases, test_series};
use crate::store::{StoreResult, now};

/// The most tests one page of [`list_tests`] returns.
pub const MAX_TESTS_PAGE: i64 = 200;

/// The order of the tests list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TestSort {
    /// Flaky first, then by flips, then by failures.
    #[default]
    Flaky,
    /// Most failed runs first, then the lowest pass rate.
    Failures,
    /// The longest median first.
    Slowest,
    /// By repository, scenario and name.
    Name,
}

impl std::str::FromStr for TestSort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flaky" => Ok(Self::Flaky),
            "failures" => Ok(Self::Failures),
            "slowest" => Ok(Self::Slowest),
            "name" => Ok(Self::Name),
            other => Err(format!(
                "unknown sort {other:?}: flaky, failures, slowest or name"
            )),
        }
    }
}

/// Filters, order and cursor of [`list_tests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestsFilter {
    pub repo: Option<String>,
    pub branch: Option<String>,
    /// Tests run at or after this time.
    pub since: NaiveDateTime,
    pub sort: TestSort,
    /// The rank to start at (the cursor: `next` of the page before).
    pub offset: usize,
    /// 1 to [`MAX_TESTS_PAGE`]; values outside are clamped.
    pub limit: i64,
}

/// A page of tests and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct TestsPage {
    pub items: Vec<TestSummary>,
    pub next: Option<usize>,
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::Text)]
    scenario: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    runs: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    passed: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    failed: i64,
}

type SeriesRow = (
    String,
    String,
    String,
    String,
    String,
    i32,
    String,
    Option<i32>,
    Option<NaiveDateTime>,
);

#[derive(Default)]
struct Acc {
    runs: i64,
    passed: i64,
    failed: i64,
    flips: i32,
    mixed_at: Option<NaiveDateTime>,
    durations: Vec<i64>,
    last: (i32, String),
    last_fail: Option<i32>,
}

/// The tests run in the window, one row each: counts from the window's
/// days (`test_days`), flakiness,
/// median and last verdicts from the tests' series (a few rows each).
pub fn list_tests(conn: &mut DbConnection, filter: &TestsFilter) -> StoreResult<TestsPage> {
    let limit = filter.limit.clamp(1, MAX_TESTS_PAGE) as usize;
    let mut query = test_series::table
        .filter(test_series::last_at.ge(filter.since))
        .select((
            test_series::repo,
            test_series::scenario,
            test_series::name,
            test_series::verdicts,
            test_series::durations,
            test_series::last_id,
            test_series::last_status,
            test_series::last_fail_id,
            test_series::mixed_at,
        ))
        .into_boxed();
    if let Some(repo) = &filter.repo {
        query = query.filter(test_series::repo.eq(repo));
    }
    if let Some(branch) = &filter.branch {
        query = query.filter(test_series::branch.eq(branch));
    }
    let series: Vec<SeriesRow> = query.load(conn)?;
    let mut tests: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for (repo, scenario, name, verdicts, durations, last_id, last_status, last_fail, mixed) in
        series
    {
        let acc = tests.entry((repo, scenario, name)).or_default();
        acc.flips = acc.flips.max(flips(&verdicts));
        acc.mixed_at = acc.mixed_at.max(mixed);
        acc.durations.extend(rules::durations(&durations));
        if last_id > acc.last.0 {
            acc.last = (last_id, last_status);
        }
        acc.last_fail = acc.last_fail.max(last_fail);
    }
    let mut repos: Vec<String> = tests.keys().map(|(r, _, _)| r.clone()).collect();
    repos.dedup();
    for repo in repos {
        for c in window_counts(conn, &repo, filter)? {
            if let Some(acc) = tests.get_mut(&(repo.clone(), c.scenario, c.name)) {
                (acc.runs, acc.passed, acc.failed) = (c.runs, c.passed, c.failed);
            }
        }
    }
    let at = now();
    let mut rows: Vec<(TestSummary, Option<i32>)> = tests
        .into_iter()
        .map(|((repo, scenario, name), acc)| {
            let summary = TestSummary {
                repo,
                scenario,
                name,
                runs: acc.runs,
                passed: acc.passed,
                failed: acc.failed,
                pass_rate: if acc.runs > 0 {
                    acc.passed as f64 / acc.runs as f64
                } else {
                    0.0
                },
                flaky: is_flaky(acc.mixed_at, acc.flips, at),
                flips: acc.flips,
                median_ms: median(acc.durations),
                last_status: parse_status(&acc.last.1),
                last_failure: None,
            };
            (summary, acc.last_fail)
        })
        .collect();
    sort(&mut rows, filter.sort);
    let total = rows.len();
    let mut page: Vec<(TestSummary, Option<i32>)> =
        rows.into_iter().skip(filter.offset).take(limit).collect();
    let next = (filter.offset + page.len() < total).then_some(filter.offset + page.len());
    let fail_ids: Vec<i32> = page.iter().filter_map(|(_, id)| *id).collect();
    let failures = last_failures(conn, &fail_ids)?;
    for (summary, id) in &mut page {
        summary.last_failure = id.and_then(|id| failures.get(&id).cloned());
    }
    Ok(TestsPage {
        items: page.into_iter().map(|(s, _)| s).collect(),
        next,
    })
}

fn sort(rows: &mut [(TestSummary, Option<i32>)], by: TestSort) {
    let name = |t: &TestSummary| (t.repo.clone(), t.scenario.clone(), t.name.clone());
    match by {
        TestSort::Flaky => rows.sort_by(|(a, _), (b, _)| {
            (b.flaky, b.flips, b.failed)
                .cmp(&(a.flaky, a.flips, a.failed))
                .then_with(|| name(a).cmp(&name(b)))
        }),
        TestSort::Failures => rows.sort_by(|(a, _), (b, _)| {
            b.failed
                .cmp(&a.failed)
                .then_with(|| a.pass_rate.total_cmp(&b.pass_rate))
                .then_with(|| name(a).cmp(&name(b)))
        }),
        TestSort::Slowest => rows.sort_by(|(a, _), (b, _)| {
            // `None` (never passed) last.
            b.median_ms
                .cmp(&a.median_ms)
                .then_with(|| name(a).cmp(&name(b)))
        }),
        TestSort::Name => rows.sort_by_key(|(t, _)| name(t)),
    }
}

/// Runs, passes and failures per test of `repo` in the window, from the
/// per-day counts (`test_days`): a few rows per test and day, one range of
/// its primary key. The window starts at the start of `since`'s day (UTC).
fn window_counts(
    conn: &mut DbConnection,
    repo: &str,
    filter: &TestsFilter,
) -> StoreResult<Vec<Counts>> {
    let day = filter.since.format("%Y-%m-%d").to_string();
    let mut query = diesel::sql_query(
        "SELECT scenario, name, sum(runs) AS runs, sum(passed) AS passed, sum(failed) AS failed \
           FROM test_days WHERE repo = $1 AND day >= $2",
    )
    .into_boxed()
    .bind::<diesel::sql_types::Text, _>(repo.to_owned())
    .bind::<diesel::sql_types::Text, _>(day);
    if let Some(branch) = &filter.branch {
        query = query
            .sql(" AND branch = $3")
            .bind::<diesel::sql_types::Text, _>(branch.clone());
    }
    Ok(query.sql(" GROUP BY scenario, name").load(conn)?)
}

/// The queue and message of these runs, by run id.
fn last_failures(conn: &mut DbConnection, ids: &[i32]) -> StoreResult<HashMap<i32, LastFailure>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i32, String, Option<String>)> = test_cases::table
        .inner_join(tasks::table)
        .filter(test_cases::id.eq_any(ids))
        .select((test_cases::id, tasks::queue_id, test_cases::message))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, queue_id, message)| (id, LastFailure { queue_id, message }))
        .collect())
}
