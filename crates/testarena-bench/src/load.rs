//! Scenario 5: the API under 32 keep-alive connections (Bearer, then
//! Basic), and the queue list over a large database.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::bail;
use testarena_domain::models::{NewQueue, NewTask};
use testarena_domain::status::Status;
use testarena_domain::store::{self, EndedQueue};

use crate::farm::{Client, Farm, RssPeak, cpu_seconds};
use crate::rawhttp::Conn;
use crate::report::{Report, Target};
use crate::stats::{median, ms, percentile};

/// One load run: requests per second and latencies in ms.
#[derive(Debug, Clone)]
pub struct Load {
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub requests: usize,
}

/// `connections` threads, each with its own keep-alive connection, GET
/// `path` in a loop for `duration`. Any answer but 200 is an error.
pub fn hammer(
    client: &Client,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let barrier = Barrier::new(connections);
    let per_thread: anyhow::Result<Vec<Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    // Connected (and any credential cache warm) before the clock starts.
                    let warm = Conn::connect(client.base(), path, client.authorization())
                        .and_then(|mut c| c.get().map(|status| (c, status)));
                    barrier.wait();
                    let (mut conn, status) = warm?;
                    if status != 200 {
                        bail!("GET {path}: {status}");
                    }
                    let deadline = Instant::now() + duration;
                    let mut latencies = Vec::with_capacity(1 << 16);
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        let status = conn.get()?;
                        latencies.push(ms(started.elapsed()));
                        if status != 200 {
                            bail!("GET {path}: {status}");
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a load thread panicked"))?
            })
            .collect()
    });
    let all: Vec<f64> = per_thread?.into_iter().flatten().collect();
    Ok(Load {
        rps: all.len() as f64 / duration.as_secs_f64(),
        p50: median(&all),
        p99: percentile(&all, 99.0),
        requests: all.len(),
    })
}

/// Bearer and Basic, alternating, `runs` times each; the app's RSS peak.
pub fn api(
    farm: &Farm,
    report: &mut Report,
    queue_id: &str,
    connections: usize,
    duration: Duration,
    runs: usize,
) -> anyhow::Result<()> {
    let bearer = Client::new(&farm.base, &format!("Bearer {}", farm.token()?));
    let basic = farm.admin.clone();
    let path = format!("/api/v1/queues/{queue_id}");
    let rss = farm.app_pid().map(RssPeak::start);
    let cpu = |pid: Option<u32>| pid.map_or(Ok(0.0), cpu_seconds);
    let (app0, bench0, t0) = (
        cpu(farm.app_pid())?,
        cpu(Some(std::process::id()))?,
        Instant::now(),
    );
    let (mut b, mut p) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        b.push(hammer(&bearer, &path, connections, duration)?);
        p.push(hammer(&basic, &path, connections, duration)?);
    }
    let wall = t0.elapsed().as_secs_f64();
    let app_cores = (cpu(farm.app_pid())? - app0) / wall;
    let bench_cores = (cpu(Some(std::process::id()))? - bench0) / wall;
    let peak = rss.map(RssPeak::finish);
    let s = "5 API";
    let note = format!(
        "{connections} connections × {} s, median of {runs} runs",
        duration.as_secs_f64()
    );
    for (name, loads) in [("Bearer", &b), ("Basic", &p)] {
        let n = loads.iter().map(|l| l.requests).sum();
        let rps = median(&loads.iter().map(|l| l.rps).collect::<Vec<_>>());
        let p50 = median(&loads.iter().map(|l| l.p50).collect::<Vec<_>>());
        let p99 = median(&loads.iter().map(|l| l.p99).collect::<Vec<_>>());
        report.add(
            s,
            &format!("GET queue, {name}: requests/s"),
            rps,
            "req/s",
            Some(Target::AtLeast(5000.0)),
            n,
            note.clone(),
        );
        report.add(
            s,
            &format!("GET queue, {name}: p50"),
            p50,
            "ms",
            None,
            n,
            "",
        );
        report.add(
            s,
            &format!("GET queue, {name}: p99"),
            p99,
            "ms",
            Some(Target::AtMost(20.0)),
            n,
            "",
        );
    }
    let ratio = median(&p.iter().map(|l| l.rps).collect::<Vec<_>>())
        / median(&b.iter().map(|l| l.rps).collect::<Vec<_>>());
    report.add(
        s,
        "Basic requests/s as a share of Bearer",
        ratio * 100.0,
        "%",
        None,
        runs,
        "the Basic cache at work; same run",
    );
    let note = "of 2 cores; the rest goes to the load generator and the kernel";
    report.add(
        s,
        "app CPU during the load",
        app_cores,
        "cores",
        None,
        runs * 2,
        note,
    );
    let note = "this program's client threads, on the same 2 cores";
    report.add(
        s,
        "load generator CPU during the load",
        bench_cores,
        "cores",
        None,
        runs * 2,
        note,
    );
    if let Some(peak) = peak {
        report.add(
            "7 memory",
            "app peak RSS under the API load",
            peak,
            "MiB",
            Some(Target::AtMost(100.0)),
            runs * 2,
            "scenario 5's load",
        );
    }
    Ok(())
}

/// Seeds `count` ended queues (one task each) straight into the database
/// of a farm whose app is not running yet.
pub fn seed(farm: &Farm, count: usize) -> anyhow::Result<()> {
    let pool = testarena_domain::db::open_pool(
        &testarena_domain::db::Location::Sqlite(farm.database()),
        testarena_domain::db::PoolOptions::sized(1),
    )?;
    let mut conn = pool.get()?;
    let base = chrono::Utc::now().naive_utc() - chrono::Duration::days(30);
    let mut n = 0;
    while n < count {
        let batch: Vec<EndedQueue> = (n..count.min(n + 10_000))
            .map(|i| {
                let id = format!("seed-{i:06}");
                let at = base + chrono::Duration::seconds(i as i64 * 20);
                EndedQueue {
                    tasks: vec![NewTask {
                        id: format!("{id}.1"),
                        scenario: "scenarios/quick.xml".into(),
                        only: None,
                    }],
                    queue: NewQueue {
                        id,
                        repo: "firmware".into(),
                        branch: format!("feature/{}", i % 50),
                        commit_sha: None,
                        target: "bench".into(),
                        owner: crate::farm::ADMIN.into(),
                        priority: 0,
                        timeout_s: None,
                        created_at: at,
                        no_cache: false,
                    },
                    status: if i % 10 == 0 {
                        Status::Failed
                    } else {
                        Status::Passed
                    },
                    worker_id: "bench-worker".into(),
                    started_at: at + chrono::Duration::seconds(1),
                    finished_at: at + chrono::Duration::seconds(15),
                }
            })
            .collect();
        n += store::insert_ended_queues(&mut conn, &batch)?;
    }
    Ok(())
}

/// The first page of the list over a farm seeded with `count` queues:
/// one client in a loop, then `connections` at once.
pub fn list(
    farm: &Farm,
    report: &mut Report,
    count: usize,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let path = "/api/v1/queues?limit=50";
    let single = hammer(&farm.admin, path, 1, duration)?;
    let many = hammer(&farm.admin, path, connections, duration)?;
    let s = "5 API";
    let note = format!(
        "{count} queues stored; one client, {} s",
        duration.as_secs_f64()
    );
    report.add(
        s,
        "list 50 queues: p50",
        single.p50,
        "ms",
        None,
        single.requests,
        note.clone(),
    );
    report.add(
        s,
        "list 50 queues: p99",
        single.p99,
        "ms",
        Some(Target::AtMost(30.0)),
        single.requests,
        note,
    );
    report.add(
        s,
        &format!("list 50 queues at {connections} connections: requests/s"),
        many.rps,
        "req/s",
        None,
        many.requests,
        "",
    );
    report.add(
        s,
        &format!("list 50 queues at {connections} connections: p99"),
        many.p99,
        "ms",
        None,
        many.requests,
        "",
    );
    Ok(())
}
