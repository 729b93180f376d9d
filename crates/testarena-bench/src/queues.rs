//! Scenarios 1 to 3: how fast a queue is picked up, what the farm adds to
//! a test and to a queue, and how many queues one worker gets through.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::farm::{Client, Farm, RssPeak, submit};
use crate::fixture::{BENCH_BRANCH, MANY, QUICK};
use crate::report::{Report, Target};
use crate::stats::{Jitter, median, ms, ms_between, percentile};

const REPO: &str = "firmware";

pub fn time(v: &Value, field: &str) -> anyhow::Result<DateTime<Utc>> {
    let text = v[field]
        .as_str()
        .with_context(|| format!("no {field} in {v}"))?;
    Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
}

/// The queue's timeline (`queue.log`) as `(time, text)` lines.
fn timeline(farm: &Farm, id: &str) -> anyhow::Result<Vec<(DateTime<Utc>, String)>> {
    let text = std::fs::read_to_string(farm.home.join("queues").join(id).join("queue.log"))?;
    text.lines()
        .map(|l| {
            let (at, rest) = l
                .split_once(' ')
                .context("a timeline line without a time")?;
            Ok((
                DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc),
                rest.to_owned(),
            ))
        })
        .collect()
}

/// Where a queue's time went, in ms, from its timeline and its JSON.
#[derive(Debug, Clone, Copy)]
pub struct Breakdown {
    /// Claim to the recorded end.
    pub wall: f64,
    /// The mirror fetch, as the worker timed it.
    pub fetch: f64,
    /// Resolving the branch and writing the working tree.
    pub checkout: f64,
    pub build: f64,
    /// The tests' recorded durations, summed.
    pub tests: f64,
}

impl Breakdown {
    /// What is left once git, the build and the tests are taken out.
    pub fn overhead(&self) -> f64 {
        self.wall - self.fetch - self.checkout - self.build - self.tests
    }
}

pub fn breakdown(farm: &Farm, queue: &Value) -> anyhow::Result<Breakdown> {
    let id = queue["id"].as_str().context("queue id")?;
    let lines = timeline(farm, id)?;
    let at = |prefix: &str| {
        lines
            .iter()
            .find(|(_, t)| t.starts_with(prefix))
            .map(|(at, _)| *at)
            .with_context(|| format!("no \"{prefix}\" line in the timeline of {id}"))
    };
    let fetch = lines
        .iter()
        .find_map(|(_, t)| {
            let rest = t.strip_prefix("fetched ")?;
            let (_, after) = rest.split_once(" in ")?;
            after.split_whitespace().next()?.parse::<f64>().ok()
        })
        .with_context(|| format!("no fetch time in the timeline of {id}"))?;
    let tests: f64 = queue["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["tests"].as_array().into_iter().flatten())
        .filter_map(|t| t["duration_ms"].as_f64())
        .sum();
    Ok(Breakdown {
        wall: ms_between(time(queue, "started_at")?, time(queue, "finished_at")?),
        fetch,
        checkout: ms_between(at("commit ")?, at("checked out")?),
        build: ms_between(at("build started")?, at("build passed")?),
        tests,
    })
}

/// Scenario 1 (and the per-queue part of 2): `samples` queues of one
/// `true` test, one at a time, each submitted at a random moment.
pub fn pickup(farm: &Farm, report: &mut Report, samples: usize) -> anyhow::Result<()> {
    let mut jitter = Jitter::new();
    let (mut latency, mut parts) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        // Anywhere in the worker's poll cycle, not in step with it.
        std::thread::sleep(Duration::from_millis(20) + jitter.below(Duration::from_millis(250)));
        let (id, answered) = farm.submit(REPO, BENCH_BRANCH, &[QUICK])?;
        let queue = farm.wait_final(&id, Duration::from_secs(60))?;
        if queue["status"] != "passed" {
            bail!(
                "queue {id} ended {}: {}",
                queue["status"],
                queue["status_reason"]
            );
        }
        // Claimed before the answer reached the client counts as 0.
        latency.push(ms_between(answered, time(&queue, "started_at")?).max(0.0));
        parts.push(breakdown(farm, &queue)?);
    }
    let s = "1 pickup";
    let n = latency.len();
    let note = "submit answered → started_at (the worker's claim), one queue at a time";
    report.add(
        s,
        "pickup latency p50",
        median(&latency),
        "ms",
        Some(Target::AtMost(50.0)),
        n,
        note,
    );
    report.add(
        s,
        "pickup latency p99",
        percentile(&latency, 99.0),
        "ms",
        Some(Target::AtMost(200.0)),
        n,
        note,
    );
    let s = "2 overhead";
    let pick = |f: fn(&Breakdown) -> f64| parts.iter().map(f).collect::<Vec<_>>();
    report.add(
        s,
        "per-queue overhead outside git/build/tests, median",
        median(&pick(Breakdown::overhead)),
        "ms",
        Some(Target::AtMost(50.0)),
        n,
        "claim → recorded end, less fetch, checkout, build step and test durations (quick.xml)",
    );
    report.add(
        s,
        "queue wall time (claim → end), median",
        median(&pick(|b| b.wall)),
        "ms",
        None,
        n,
        "quick.xml: fetch + checkout + build `true` + one `true` test",
    );
    report.add(
        s,
        "mirror fetch (no change), median",
        median(&pick(|b| b.fetch)),
        "ms",
        None,
        n,
        "the fixture repository, local path",
    );
    report.add(
        s,
        "checkout (fixture), median",
        median(&pick(|b| b.checkout)),
        "ms",
        None,
        n,
        "",
    );
    Ok(())
}

/// One `sh -c true`, spawned with its output piped and waited for, as the
/// worker runs a `<run>` command: its time in ms.
fn sh_true() -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", "true"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .status()?;
    if !status.success() {
        bail!("sh -c true failed");
    }
    Ok(ms(started.elapsed()))
}

/// Runs `f` while timing `sh -c true` every 10 ms in another thread: the
/// command's own run time, on the machine as busy as it is meanwhile.
fn with_own_run_time<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Vec<f64>)> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) || samples.len() < 10 {
                samples.push(sh_true()?);
                std::thread::sleep(Duration::from_millis(10));
            }
            anyhow::Ok(samples)
        });
        let result = f();
        done.store(true, Ordering::Relaxed);
        let samples = sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the sampler panicked"))??;
        Ok((result?, samples))
    })
}

/// Scenario 2: a scenario of many `true` tests, `runs` times.
pub fn test_overhead(farm: &Farm, report: &mut Report, runs: usize) -> anyhow::Result<()> {
    let (mut per_run, mut all, mut amortized, mut own, mut durations) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (queue, samples) = with_own_run_time(|| {
            let (id, _) = farm.submit(REPO, BENCH_BRANCH, &[MANY])?;
            farm.wait_final(&id, Duration::from_secs(600))
        })?;
        let id = queue["id"].as_str().unwrap_or_default();
        let cmd = median(&samples);
        own.extend(samples);
        if queue["status"] != "passed" {
            bail!(
                "queue {id} ended {}: {}",
                queue["status"],
                queue["status_reason"]
            );
        }
        let task = &queue["tasks"][0];
        let tests = task["tests"].as_array().context("tests")?;
        let overheads: Vec<f64> = tests
            .iter()
            .filter_map(|t| t["duration_ms"].as_f64())
            .map(|d| d - cmd)
            .collect();
        per_run.push(median(&overheads));
        all.extend(overheads);
        durations.extend(tests.iter().filter_map(|t| t["duration_ms"].as_f64()));
        let span = ms_between(time(task, "started_at")?, time(task, "finished_at")?);
        amortized.push(span / tests.len().max(1) as f64 - cmd);
    }
    let s = "2 overhead";
    let n = all.len();
    report.add(
        s,
        "<run> test overhead, median",
        median(&per_run),
        "ms",
        Some(Target::AtMost(5.0)),
        n,
        "recorded duration − `sh -c true` timed alone meanwhile; median of the runs' medians",
    );
    report.add(
        s,
        "<run> test overhead p99",
        percentile(&all, 99.0),
        "ms",
        None,
        n,
        "",
    );
    report.add(
        s,
        "<run> test, wall per test less command, median",
        median(&amortized),
        "ms",
        None,
        runs,
        "task span / tests − command: adds recording, HTML page, timeline, abort check",
    );
    report.add(
        s,
        "<run> `true` test recorded duration, median",
        median(&durations),
        "ms",
        None,
        durations.len(),
        "",
    );
    report.add(
        s,
        "`sh -c true` run alone, median",
        median(&own),
        "ms",
        None,
        own.len(),
        "timed by this program every 10 ms while the queue ran",
    );
    Ok(())
}

/// Scenario 3: `count` queues of one `true` test through one worker,
/// submitted by `clients` threads as fast as the API takes them.
pub fn throughput(
    farm: &Farm,
    report: &mut Report,
    count: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let clients = clients.clamp(1, count.max(1));
    let worker_rss = farm.worker_pid().map(RssPeak::start);
    let t0 = Utc::now();
    let started = Instant::now();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let client = farm.admin.fresh();
                let n = count / clients + usize::from(c < count % clients);
                scope.spawn(move || submit_many(&client, n))
            })
            .collect();
        let mut ids = Vec::new();
        for h in handles {
            ids.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a submitter panicked"))??,
            );
        }
        anyhow::Ok(ids)
    })?;
    let submitted = started.elapsed();
    let timeout = Duration::from_secs(60 + count as u64);
    crate::farm::wait_for(timeout, "every queue to end", || {
        let busy = ["waiting", "running"].iter().try_fold(0, |n, status| {
            let page = farm
                .admin
                .get_json(&format!("/api/v1/queues?status={status}&limit=1"))?;
            anyhow::Ok(n + page["items"].as_array().map_or(0, Vec::len))
        })?;
        std::thread::sleep(Duration::from_millis(50));
        Ok(busy == 0)
    })?;
    let peak = worker_rss.map(RssPeak::finish);
    let queues = fetch_queues(&farm.admin, &ids)?;
    let failed = queues.iter().filter(|q| q["status"] != "passed").count();
    if failed > 0 {
        bail!("{failed} of {count} queues did not pass");
    }
    let finished = queues
        .iter()
        .map(|q| time(q, "finished_at"))
        .collect::<Result<Vec<_>, _>>()?;
    let first_start = queues
        .iter()
        .map(|q| time(q, "started_at"))
        .collect::<Result<Vec<_>, _>>()?;
    let last = finished.iter().max().copied().unwrap_or(t0);
    let first = first_start.iter().min().copied().unwrap_or(t0);
    let end_to_end = ms_between(t0, last) / 1000.0;
    let s = "3 throughput";
    report.add(
        s,
        "queues/s end to end (slots = 2)",
        count as f64 / end_to_end,
        "q/s",
        Some(Target::AtLeast(10.0)),
        count,
        format!(
            "{count} queues, {clients} submitting clients: first submit → last queue recorded final"
        ),
    );
    report.add(
        s,
        "queues/s run (first claim → last end)",
        count as f64 / (ms_between(first, last) / 1000.0),
        "q/s",
        None,
        count,
        "",
    );
    report.add(
        s,
        "submissions/s accepted by the API",
        count as f64 / submitted.as_secs_f64(),
        "q/s",
        None,
        count,
        "while the worker runs them",
    );
    if let Some(peak) = peak {
        report.add(
            s,
            "worker peak RSS during the run",
            peak,
            "MiB",
            None,
            count,
            "",
        );
    }
    Ok(())
}

fn submit_many(client: &Client, n: usize) -> anyhow::Result<Vec<String>> {
    (0..n)
        .map(|_| submit(client, REPO, BENCH_BRANCH, &[QUICK]).map(|(id, _)| id))
        .collect()
}

/// The queues with these ids, read through the list API, newest first.
fn fetch_queues(client: &Client, ids: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let mut before = String::new();
    while !wanted.is_empty() {
        let page = client.get_json(&format!("/api/v1/queues?limit=200&before={before}"))?;
        for q in page["items"].as_array().into_iter().flatten() {
            if q["id"].as_str().is_some_and(|id| wanted.remove(id)) {
                out.push(q.clone());
            }
        }
        match page["next"].as_str() {
            Some(next) => before = next.to_owned(),
            None => break,
        }
    }
    if !wanted.is_empty() {
        bail!("{} queues are missing from the list", wanted.len());
    }
    Ok(out)
}
