//! Issue 16's build cache: the time from a queue's claim to its first
//! test on a cached rerun of the lx106 fixture firmware (the checkout plus
//! a copy of the cached build directory) against a cold build (`no_cache`:
//! the fixture's real `make` with the cross-compiler), at the same commit,
//! alternating, on the test kit's lx106 farm (real make and QEMU).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use testarena_testkit::{Bins, Farm, Setup};

use crate::report::{Report, Target};
use crate::stats::{median, ms_between};

/// Claim → first test of one queue, in ms, from its timeline; and whether
/// its build came from the cache.
fn claim_to_first_test(farm: &Farm, id: &str) -> anyhow::Result<(f64, bool)> {
    let text = std::fs::read_to_string(farm.home.join("queues").join(id).join("queue.log"))?;
    let mut claimed: Option<DateTime<Utc>> = None;
    let mut cached = false;
    for line in text.lines() {
        let (at, rest) = line
            .split_once(' ')
            .context("a timeline line without a time")?;
        let at = DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc);
        if rest.starts_with("claimed by worker") {
            claimed = Some(at);
        }
        cached |= rest.starts_with("build cached (");
        if rest.starts_with("test ") && rest.ends_with(" started") {
            let claimed = claimed.with_context(|| format!("no claim in the timeline of {id}"))?;
            return Ok((ms_between(claimed, at), cached));
        }
    }
    bail!("no test started in the timeline of {id}")
}

fn one(farm: &Farm, no_cache: bool) -> anyhow::Result<(f64, bool)> {
    let id = farm.submit_with(
        "main",
        &["scenarios/smoke.xml"],
        json!({"no_cache": no_cache}),
    );
    let q: Value = farm.wait_final(&id, Duration::from_secs(300));
    if q["status"] != "passed" {
        bail!("queue {id} ended {}: {}", q["status"], q["status_reason"]);
    }
    claim_to_first_test(farm, &id)
}

/// `runs` cold builds and `runs` cached reruns, alternating.
pub fn build_cache(
    bins: &Bins,
    dir: &Path,
    report: &mut Report,
    runs: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let farm = Farm::try_start(Setup {
        workers: vec!["cache-worker".into()],
        slots: 1,
        poll_interval_ms: 50,
        build_cache_mib: 256,
        dir: Some(dir.to_owned()),
        bins: Some(bins.clone()),
        ..Setup::lx106()
    })?;
    // The first queue stores the build.
    let (_, cached) = one(&farm, false)?;
    if cached {
        bail!("the first queue of a new home found its build cached");
    }
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (ms, cached) = one(&farm, true)?;
        if cached {
            bail!("a no_cache queue used the cache");
        }
        cold.push(ms);
        let (ms, cached) = one(&farm, false)?;
        if !cached {
            bail!("a rerun at the same commit missed the cache");
        }
        warm.push(ms);
    }
    let s = "8 build cache";
    let (c, w) = (median(&cold), median(&warm));
    report.add(
        s,
        "claim to first test: cold build",
        c,
        "ms",
        None,
        runs,
        "no_cache: the fixture's make, from a clean build dir",
    );
    report.add(
        s,
        "claim to first test: cached rerun",
        w,
        "ms",
        None,
        runs,
        "checkout + copy of the cached build dir",
    );
    report.add(
        s,
        "cached rerun faster than a cold build",
        c / w,
        "x",
        Some(Target::AtLeast(2.0)),
        runs,
        "median cold / median cached, same commit, alternating",
    );
    Ok(())
}
