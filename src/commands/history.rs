//! History (DESIGN section 11): `testarena tests` (the tests list) and
//! `testarena history` (one test's runs).

use std::io::Write as _;

use testarena_wire::api::{Page, TestRun, TestSummary};

use super::{Ctx, Exit, Result};
use crate::client::enc;

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", enc(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v} ms"))
}

/// The tests run in the last 30 days (or since `since`), one a line.
pub fn tests(
    ctx: &mut Ctx,
    repo: Option<&str>,
    branch: Option<&str>,
    sort: &str,
    limit: u32,
) -> Result<Exit> {
    let limit = limit.to_string();
    let q = query(&[
        ("repo", repo),
        ("branch", branch),
        ("sort", Some(sort)),
        ("limit", Some(&limit)),
    ]);
    let page: Page<TestSummary> = ctx.client.get(&format!("/api/v1/tests?{q}"))?;
    if ctx.out.json {
        ctx.out.json_value(&page)?;
        return Ok(Exit::Success);
    }
    for t in &page.items {
        writeln!(
            ctx.out,
            "{:<7} {:>5} runs {:>4.0}% passed {:>3} flips {:>9} median  {}  {} ({})",
            if t.flaky {
                "flaky"
            } else {
                t.last_status.as_str()
            },
            t.runs,
            t.pass_rate * 100.0,
            t.flips,
            ms(t.median_ms),
            t.name,
            t.scenario,
            t.repo,
        )?;
    }
    Ok(Exit::Success)
}

/// One test's runs, newest first.
pub fn history(
    ctx: &mut Ctx,
    repo: &str,
    scenario: &str,
    name: &str,
    branch: Option<&str>,
    limit: u32,
) -> Result<Exit> {
    let limit = limit.to_string();
    let q = query(&[
        ("repo", Some(repo)),
        ("scenario", Some(scenario)),
        ("name", Some(name)),
        ("branch", branch),
        ("limit", Some(&limit)),
    ]);
    let page: Page<TestRun> = ctx.client.get(&format!("/api/v1/tests/history?{q}"))?;
    if ctx.out.json {
        ctx.out.json_value(&page)?;
        return Ok(Exit::Success);
    }
    for r in &page.items {
        writeln!(
            ctx.out,
            "{:<7} {:>9}  {}  {} @ {} on {}  {}",
            r.status.as_str(),
            ms(r.duration_ms.map(i64::from)),
            r.queue_id,
            r.branch,
            r.commit.as_deref().map_or("-", |c| &c[..c.len().min(12)]),
            r.ran_on,
            r.message.as_deref().unwrap_or(""),
        )?;
    }
    Ok(Exit::Success)
}
