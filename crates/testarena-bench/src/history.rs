//! Scenario 9 (issue 16): the history endpoints over a big history. One
//! million test case rows (20,000 queues of 50 tests over 400 days by
//! default) are written straight into the database of a farm whose app is
//! not running yet, then one client asks, in a loop, for a test's runs and
//! for the tests list, and p99 is reported against the 50 ms target.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use testarena_domain::store::{self, HistorySeed};

use crate::farm::Farm;
use crate::load::hammer;
use crate::report::{Report, Target};

/// The scenario of the seeded history.
const SCENARIO: &str = "scenarios/history.xml";

/// Seeds `queues × tests` test cases over `days` days on 5 branches.
pub fn seed(farm: &Farm, queues: usize, tests: usize, days: u32) -> anyhow::Result<usize> {
    let pool = testarena_domain::db::open_pool(
        &testarena_domain::db::Location::Sqlite(farm.database()),
        testarena_domain::db::PoolOptions::sized(1),
    )?;
    let mut conn = pool.get()?;
    let seed = HistorySeed {
        repo: "firmware".into(),
        scenario: SCENARIO.into(),
        target: "bench".into(),
        owner: crate::farm::ADMIN.into(),
        queues,
        tests,
        days,
        branches: 5,
    };
    Ok(store::seed_history(&mut conn, &seed)?)
}

/// p50 and p99 of each history request, one client, `duration` each.
pub fn history(
    farm: &Farm,
    report: &mut Report,
    rows: usize,
    queues: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let s = "9 history";
    let note = format!(
        "{rows} test cases stored; one client, {} s",
        duration.as_secs_f64()
    );
    let runs = format!("/api/v1/tests/history?repo=firmware&scenario={SCENARIO}");
    let cases = [
        (
            "a test's runs: 50 newest",
            format!("{runs}&name=test_001&limit=50"),
        ),
        (
            "a test's runs on a branch and target",
            format!("{runs}&name=test_003&branch=branch-2&target=bench&limit=50"),
        ),
        (
            "a test's runs: a page deep in",
            format!("{runs}&name=test_002&limit=50&before=500000"),
        ),
        (
            "tests list (30 days, sort flaky)",
            "/api/v1/tests?repo=firmware".into(),
        ),
        (
            "tests list on a branch, sort slowest",
            "/api/v1/tests?repo=firmware&branch=branch-1&sort=slowest".into(),
        ),
        (
            "a queue with its test cases and their facts",
            format!("/api/v1/queues/hist-{:07}", queues.saturating_sub(1)),
        ),
    ];
    for (name, path) in cases {
        let t = Instant::now();
        let load = hammer(&farm.admin, &path, 1, duration).with_context(|| path.clone())?;
        eprintln!(
            "  {name}: {} requests in {:.1} s",
            load.requests,
            t.elapsed().as_secs_f64()
        );
        report.add(
            s,
            &format!("{name}: p50"),
            load.p50,
            "ms",
            None,
            load.requests,
            note.clone(),
        );
        report.add(
            s,
            &format!("{name}: p99"),
            load.p99,
            "ms",
            Some(Target::AtMost(50.0)),
            load.requests,
            note.clone(),
        );
    }
    Ok(())
}
