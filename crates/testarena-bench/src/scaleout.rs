//! Scenario 11 (issue 14): the same binaries on PostgreSQL, each worker on
//! another "host" (a home of its own: no directory in common with the app's
//! or another worker's), beside a SQLite farm (app and worker on one home,
//! as before) measured in the same run, figure by figure in turn: pickup
//! with `LISTEN`, an abort reaching a running test (`LISTEN` against the
//! poll), `GET /api/v1/queues/{id}` at 32 connections, log line → SSE
//! client, and throughput with 4 workers × 2 slots on PostgreSQL
//! against 1 worker × 2 slots on SQLite.
//!
//! PostgreSQL is a throwaway cluster of the test kit ([`PgCluster`]) on
//! 127.0.0.1, stopped and removed when the scenario ends.
//!
//! The live-log figure cannot append to the log file as scenario 6 does:
//! on PostgreSQL the app reads logs from the database, and only what the
//! worker reads from a test's output gets there. So the followed test is
//! `cat` of a FIFO: this program writes each timestamped line into the
//! FIFO, `cat` passes it to the worker, and the clients receive it from the
//! app. Closing the FIFO ends the test.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::Value;
use testarena_testkit::{Bins, Daemon, PgCluster};

use crate::farm::{Client, Farm, Options, wait_for};
use crate::fixture::{BENCH_BRANCH, QUICK};
use crate::load::{Load, hammer};
use crate::report::{Report, Target};
use crate::stats::{Jitter, median, ms_between, percentile};

const S: &str = "11 scale-out";
const REPO: &str = "firmware";
/// The fixture's branch with the followed test (made here: it names the FIFO).
const BRANCH: &str = "scaleout";
const FOLLOW: &str = "scenarios/scaleout-follow.xml";
const FOLLOW_TEST: &str = "follow";
/// What a worker logs once it is registered (the test kit waits for it too).
const REGISTERED: &str = "worker registered";

/// The scenario's sizes.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub poll_interval_ms: u64,
    /// Pickup samples per backend.
    pub pickup_samples: usize,
    /// Abort samples per backend.
    pub abort_samples: usize,
    /// Queues of the throughput run, per backend.
    pub queues: usize,
    /// Threads submitting them.
    pub submitters: usize,
    /// Worker processes on PostgreSQL for the throughput run.
    pub workers: usize,
    pub sse_clients: usize,
    pub sse_lines: usize,
    pub sse_interval: Duration,
    pub api_connections: usize,
    pub api_seconds: Duration,
    pub api_runs: usize,
}

/// The whole scenario under `dir`, on the fixture repository `firmware`.
pub fn scaleout(
    bins: &Bins,
    dir: &Path,
    firmware: &Path,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let fifo = dir.join("follow.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU)
        .with_context(|| format!("mkfifo {}", fifo.display()))?;
    add_follow_branch(firmware, &fifo)?;
    let options = |database: Option<String>| Options {
        slots: 2,
        poll_interval_ms: sizes.poll_interval_ms,
        repos: vec![(REPO.to_owned(), firmware.to_owned())],
        database,
    };

    let sqlite_dir = dir.join("sqlite");
    std::fs::create_dir_all(&sqlite_dir)?;
    let mut sqlite = Farm::prepare(bins, &sqlite_dir, &options(None))?;
    sqlite.start_app()?;
    sqlite.start_worker()?;

    let cluster = PgCluster::try_new(testarena_testkit::postgres::Options::default())?;
    let database = cluster.try_create_database()?;
    eprintln!(
        "  PostgreSQL at {} ({})",
        database.url_without_password(),
        cluster.dir().display()
    );
    let pg_dir = dir.join("postgres");
    std::fs::create_dir_all(&pg_dir)?;
    let mut pg = Farm::prepare(bins, &pg_dir, &options(Some(database.url())))?;
    pg.start_app()?;
    let mut hosts = vec![Host::start(&pg, dir, 1)?];

    let result = measure(&sqlite, &pg, &mut hosts, dir, &fifo, sizes, report);
    // Workers first, then the app, then the database they use.
    drop(hosts);
    pg.stop();
    sqlite.stop();
    drop(database);
    let stopped = cluster.try_stop();
    result?;
    Ok(stopped?)
}

/// The backends in the order of every comparison.
type Both<'a> = [(&'static str, &'a Farm); 2];

fn measure(
    sqlite: &Farm,
    pg: &Farm,
    hosts: &mut Vec<Host>,
    dir: &Path,
    fifo: &Path,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let both: Both<'_> = [("SQLite", sqlite), ("PostgreSQL", pg)];
    eprintln!("  pickup, {} samples each", sizes.pickup_samples);
    measure_pickup(both, sizes, report)?;
    eprintln!(
        "  abort → queue ended, {} samples each",
        sizes.abort_samples
    );
    measure_abort(both, sizes, report)?;
    eprintln!(
        "  GET /api/v1/queues/{{id}} at {} connections",
        sizes.api_connections
    );
    measure_api(both, sizes, report)?;
    eprintln!(
        "  log line → SSE client, {} clients (PostgreSQL: the worker on another host)",
        sizes.sse_clients
    );
    measure_sse(both, fifo, sizes, report)?;
    eprintln!(
        "  throughput, {} queues each: SQLite 1 worker × 2 slots, PostgreSQL {} workers × 2 slots",
        sizes.queues, sizes.workers
    );
    for n in hosts.len() + 1..=sizes.workers {
        hosts.push(Host::start(pg, dir, n)?);
    }
    measure_throughput(both, hosts.len(), sizes, report)
}

/// Pickup, one sample of each backend in turn.
fn measure_pickup(both: Both<'_>, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let mut jitter = Jitter::new();
    let mut samples = [Pickup::default(), Pickup::default()];
    for _ in 0..sizes.pickup_samples {
        for ((_, farm), into) in both.iter().zip(&mut samples) {
            pickup_once(farm, &mut jitter, into)?;
        }
    }
    let n = sizes.pickup_samples;
    for ((name, _), (p, p50)) in both.iter().zip(samples.iter().zip([50.0, 5.0])) {
        let how = match *name {
            "SQLite" => "WAL check",
            _ => "LISTEN",
        };
        let note = "submit answered → started_at (the claim), one queue at a time";
        let label = format!("pickup p50, {name} ({how})");
        let target = Some(Target::AtMost(p50));
        report.add(S, &label, median(&p.answered), "ms", target, n, note);
        let label = format!("pickup p99, {name} ({how})");
        let target = Some(Target::AtMost(200.0));
        report.add(
            S,
            &label,
            percentile(&p.answered, 99.0),
            "ms",
            target,
            n,
            note,
        );
        let note = "submit sent → started_at: holds the API's insert and answer";
        let label = format!("pickup from the request sent, {name}");
        let (p50, p99) = (median(&p.sent), percentile(&p.sent, 99.0));
        report.add(S, &format!("{label}: p50"), p50, "ms", None, n, note);
        report.add(S, &format!("{label}: p99"), p99, "ms", None, n, "");
    }
    Ok(())
}

/// An abort of a running test, one sample of each backend in turn: from
/// the abort's answer to the queue's `finished_at`, which holds the worker
/// seeing the request, stopping the test's group (`sleep`, gone at
/// SIGTERM) and recording the end.
fn measure_abort(both: Both<'_>, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let mut jitter = Jitter::new();
    let mut samples: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..sizes.abort_samples {
        for ((_, farm), into) in both.iter().zip(&mut samples) {
            into.push(abort_once(farm, &mut jitter)?);
        }
    }
    let n = sizes.abort_samples;
    for ((name, _), s) in both.iter().zip(&samples) {
        let how = match *name {
            "SQLite" => "the 300 ms poll",
            _ => "LISTEN, the poll as fallback",
        };
        let note = "abort answered → finished_at: seen, test stopped, end recorded";
        let label = format!("abort → ended p50, {name} ({how})");
        report.add(S, &label, median(s), "ms", None, n, note);
        let label = format!("abort → ended p99, {name} ({how})");
        report.add(S, &label, percentile(s, 99.0), "ms", None, n, "");
    }
    Ok(())
}

/// One abort, a random pause after the test started (anywhere in a poll
/// cycle); its latency in ms.
fn abort_once(farm: &Farm, jitter: &mut Jitter) -> anyhow::Result<f64> {
    let (id, _) = farm.submit(REPO, BENCH_BRANCH, &[crate::fixture::FOLLOW])?;
    wait_for(
        Duration::from_secs(60),
        &format!("queue {id}'s test"),
        || Ok(farm.queue(&id)?["tasks"][0]["status"] == "running"),
    )?;
    std::thread::sleep(Duration::from_millis(20) + jitter.below(Duration::from_millis(300)));
    farm.admin
        .post_json(&format!("/api/v1/queues/{id}/abort"), &Value::Null)?;
    let asked = chrono::Utc::now();
    let queue = farm.wait_final(&id, Duration::from_secs(60))?;
    if queue["status"] != "aborted" {
        bail!(
            "queue {id} ended {}, not aborted: {queue:#}",
            queue["status"]
        );
    }
    Ok(ms_between(asked, crate::queues::time(&queue, "finished_at")?).max(0.0))
}

/// `GET /api/v1/queues/{id}` of a finished queue, Bearer, the runs of the
/// two backends alternating.
fn measure_api(both: Both<'_>, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for (_, farm) in both {
        let (id, _) = farm.submit(REPO, BENCH_BRANCH, &[QUICK])?;
        expect_passed(&farm.wait_final(&id, Duration::from_secs(60))?)?;
        let bearer = Client::new(&farm.base, &format!("Bearer {}", farm.token()?));
        targets.push((bearer, format!("/api/v1/queues/{id}")));
    }
    let mut loads: [Vec<Load>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..sizes.api_runs {
        for ((client, path), into) in targets.iter().zip(&mut loads) {
            let c = sizes.api_connections;
            into.push(hammer(client, path, c, sizes.api_seconds)?);
        }
    }
    let c = sizes.api_connections;
    let note = format!(
        "Bearer, {c} connections × {} s, median of {} runs",
        sizes.api_seconds.as_secs_f64(),
        sizes.api_runs
    );
    let mut rps = Vec::new();
    for ((name, _), l) in both.iter().zip(&loads) {
        let n = l.iter().map(|l| l.requests).sum();
        let of = |f: fn(&Load) -> f64| median(&l.iter().map(f).collect::<Vec<_>>());
        rps.push(of(|l| l.rps));
        let label = format!("GET queue at {c} connections, {name}: requests/s");
        let target = Some(Target::AtLeast(5000.0));
        report.add(S, &label, of(|l| l.rps), "req/s", target, n, note.clone());
        let label = format!("GET queue at {c} connections, {name}: p50");
        report.add(S, &label, of(|l| l.p50), "ms", None, n, "");
        let label = format!("GET queue at {c} connections, {name}: p99");
        let target = Some(Target::AtMost(20.0));
        report.add(S, &label, of(|l| l.p99), "ms", target, n, "");
    }
    let label = "GET queue: PostgreSQL requests/s as a share of SQLite";
    let share = 100.0 * rps[1] / rps[0];
    report.add(
        S,
        label,
        share,
        "%",
        None,
        sizes.api_runs,
        "same run, alternating",
    );
    Ok(())
}

/// Log line → SSE client on each backend.
fn measure_sse(
    both: Both<'_>,
    fifo: &Path,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let note = format!(
        "{} clients following a test's output; a line every ~{} ms",
        sizes.sse_clients,
        sizes.sse_interval.as_millis()
    );
    for ((name, farm), target) in both.iter().zip([250.0, 100.0]) {
        let host = match *name {
            "SQLite" => "same home",
            _ => "worker on another host",
        };
        let p99 = format!("log line → SSE client p99, {name} ({host})");
        let target = Some(Target::AtMost(target));
        let all = sse(farm, fifo, sizes)?;
        let n = all.len();
        let p50 = format!("log line → SSE client p50, {name} ({host})");
        report.add(S, &p50, median(&all), "ms", None, n, note.clone());
        report.add(
            S,
            &p99,
            percentile(&all, 99.0),
            "ms",
            target,
            n,
            note.clone(),
        );
    }
    Ok(())
}

/// The throughput of each backend, one after the other.
fn measure_throughput(
    both: Both<'_>,
    pg_workers: usize,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut rates = Vec::new();
    for (name, farm) in both {
        let workers = match name {
            "SQLite" => 1,
            _ => pg_workers,
        };
        let (end_to_end, run) = throughput(farm, sizes.queues, sizes.submitters)?;
        rates.push(end_to_end);
        let n = sizes.queues;
        let label = format!("throughput, {name}, {workers} worker(s) × 2 slots");
        let note = format!(
            "{n} quick queues, {} submitting clients: first submit → last end",
            sizes.submitters
        );
        let target = Some(Target::AtLeast(10.0));
        report.add(S, &label, end_to_end, "q/s", target, n, note);
        let label = format!("throughput, {name}: total time");
        report.add(S, &label, n as f64 / end_to_end, "s", None, n, "");
        let label = format!("throughput, {name}: first claim → last end");
        report.add(S, &label, run, "q/s", None, n, "");
    }
    let label = "throughput: PostgreSQL as a share of SQLite";
    let share = 100.0 * rates[1] / rates[0];
    report.add(
        S,
        label,
        share,
        "%",
        None,
        sizes.queues,
        "same run, one after the other",
    );
    Ok(())
}

/// A worker on a "host" of its own: its home and config under
/// `<dir>/host<n>/`, the farm's worker config with another `home` and `id`.
#[derive(Debug)]
struct Host {
    _worker: Daemon,
}

impl Host {
    fn start(farm: &Farm, dir: &Path, n: usize) -> anyhow::Result<Self> {
        let kit = farm.kit();
        let host = dir.join(format!("host{n}"));
        let home = host.join("home");
        std::fs::create_dir_all(&home)?;
        let id = format!("host{n}-worker");
        let config = std::fs::read_to_string(kit.config_path(Some(0)))?;
        let mut text = String::new();
        for line in config.lines() {
            let line = if line.starts_with("home = ") {
                format!("home = {:?}", home.to_string_lossy())
            } else if line.starts_with("id = ") {
                format!("id = {id:?}")
            } else {
                line.to_owned()
            };
            text.push_str(&line);
            text.push('\n');
        }
        let path = host.join("worker.toml");
        std::fs::write(&path, text)?;
        let log = host.join("worker.log");
        let cmd =
            testarena_testkit::daemon::command(&kit.bins.worker, &path, &[], &kit.setup.rust_log);
        let mut worker = Daemon::spawn(&id, cmd, &log)?;
        wait_for(
            Duration::from_secs(30),
            &format!("{id} to register"),
            || {
                if !worker.running() {
                    bail!("{id} exited:\n{}", worker.output());
                }
                Ok(worker.output().contains(REGISTERED))
            },
        )?;
        Ok(Self { _worker: worker })
    }
}

/// A `scaleout` branch off `bench` with [`FOLLOW`], whose test is `cat`
/// of `fifo`.
fn add_follow_branch(repo: &Path, fifo: &Path) -> anyhow::Result<()> {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="scaleout-follow" timeout="600">
  <description>Passes on what the bench writes into a FIFO, until it closes it</description>
  <test name="{FOLLOW_TEST}" timeout="600">
    <run>cat '{}'</run>
  </test>
</scenario>
"#,
        fifo.display()
    );
    git(repo, &["checkout", "-q", "-b", BRANCH, BENCH_BRANCH])?;
    std::fs::write(repo.join(FOLLOW), xml)?;
    git(repo, &["add", FOLLOW])?;
    git(
        repo,
        &[
            "-c",
            "user.name=TestArena Bench",
            "-c",
            "user.email=bench@testarena.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            "Scale-out benchmark: the followed test",
        ],
    )?;
    git(repo, &["checkout", "-q", "main"])
}

fn git(repo: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running git {args:?}"))?;
    if !status.success() {
        bail!("git {args:?} failed: {status}");
    }
    Ok(())
}

fn expect_passed(queue: &Value) -> anyhow::Result<()> {
    if queue["status"] != "passed" {
        bail!(
            "queue {} ended {}: {}",
            queue["id"],
            queue["status"],
            queue["status_reason"]
        );
    }
    Ok(())
}

/// Pickup latencies, in ms.
#[derive(Debug, Default)]
struct Pickup {
    /// Submit answered → `started_at` (scenario 1's figure; 0 when the claim
    /// came first).
    answered: Vec<f64>,
    /// Submit sent → `started_at`: an upper bound that holds the API's
    /// insert and its answer.
    sent: Vec<f64>,
}

/// Scenario 1's method, one sample: a quick queue submitted after a
/// random pause (anywhere in a poll cycle), waited for to its end.
fn pickup_once(farm: &Farm, jitter: &mut Jitter, into: &mut Pickup) -> anyhow::Result<()> {
    std::thread::sleep(Duration::from_millis(20) + jitter.below(Duration::from_millis(250)));
    let sent = chrono::Utc::now();
    let (id, answered) = farm.submit(REPO, BENCH_BRANCH, &[QUICK])?;
    let queue = farm.wait_final(&id, Duration::from_secs(60))?;
    expect_passed(&queue)?;
    let started = crate::queues::time(&queue, "started_at")?;
    // Claimed before the answer reached the client counts as 0.
    into.answered.push(ms_between(answered, started).max(0.0));
    into.sent.push(ms_between(sent, started));
    Ok(())
}

/// Scenario 3's run (`queues::throughput`, its figures kept aside):
/// queues/s from the first submission to the last end, and from the first
/// claim to the last end.
fn throughput(farm: &Farm, count: usize, submitters: usize) -> anyhow::Result<(f64, f64)> {
    let mut aside = Report::default();
    crate::queues::throughput(farm, &mut aside, count, submitters)?;
    let figure = |prefix: &str| {
        aside
            .figures
            .iter()
            .find(|f| f.name.starts_with(prefix))
            .map(|f| f.value)
            .with_context(|| format!("no \"{prefix}\" figure"))
    };
    Ok((figure("queues/s end to end")?, figure("queues/s run")?))
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Scenario 6's method on a test's real output: the latency of each line,
/// in ms, at each of the clients.
fn sse(farm: &Farm, fifo: &Path, sizes: &Sizes) -> anyhow::Result<Vec<f64>> {
    let (id, _) = farm.submit(REPO, BRANCH, &[FOLLOW])?;
    let abort = || {
        farm.admin
            .post_json(&format!("/api/v1/queues/{id}/abort"), &Value::Null)
    };
    let followed = follow(farm, &id, fifo, sizes);
    if followed.is_err() {
        // Whatever failed, the test must not wait for the FIFO for ever.
        let _ = abort();
    }
    let all = followed?;
    let expected = sizes.sse_clients * sizes.sse_lines;
    if all.len() < expected {
        bail!("SSE clients received {} of {expected} lines", all.len());
    }
    Ok(all)
}

fn follow(farm: &Farm, id: &str, fifo: &Path, sizes: &Sizes) -> anyhow::Result<Vec<f64>> {
    // Until `cat` has the FIFO open for reading, opening it for writing
    // without blocking fails (ENXIO).
    let mut opened = None;
    wait_for(
        Duration::from_secs(60),
        "the followed test to open the FIFO",
        || {
            opened = open_writer(fifo)?;
            Ok(opened.is_some())
        },
    )?;
    let mut writer = opened.context("the FIFO")?;
    writer.write_all(b"ready\n")?;
    // The clients start after what the log holds now, as scenario 6's do.
    let rel = format!("tasks/{id}.1/{FOLLOW_TEST}.log");
    let mut offset = 0;
    wait_for(
        Duration::from_secs(30),
        "the app to serve the first line",
        || {
            let resp = farm
                .admin
                .call("GET", &format!("/api/v1/queues/{id}/logs/{rel}"), None);
            offset = resp.body.len();
            Ok(resp.status == 200 && resp.body.ends_with("ready\n"))
        },
    )?;
    let path = format!("/api/v1/queues/{id}/events?path={rel}&offset={offset}");
    let (connected, received) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let clients = sizes.sse_clients;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| scope.spawn(|| crate::sse::client(farm, &path, &connected, &received)))
            .collect();
        let wrote = (|| {
            wait_for(
                Duration::from_secs(60),
                "every SSE client to connect",
                || Ok(connected.load(Ordering::SeqCst) >= clients),
            )?;
            let mut jitter = Jitter::new();
            for seq in 0..sizes.sse_lines {
                std::thread::sleep(sizes.sse_interval / 2 + jitter.below(sizes.sse_interval));
                writer.write_all(format!("bench {seq} {}\n", now_us()).as_bytes())?;
            }
            let expected = clients * sizes.sse_lines;
            let _ = wait_for(Duration::from_secs(10), "every line to arrive", || {
                Ok(received.load(Ordering::SeqCst) >= expected)
            });
            anyhow::Ok(())
        })();
        // `cat` reaches the end of its input: the test passes, the queue
        // ends, and so does every stream.
        drop(writer);
        let ended = farm.wait_final(id, Duration::from_secs(30));
        if ended.is_err() {
            let _ = farm
                .admin
                .post_json(&format!("/api/v1/queues/{id}/abort"), &Value::Null);
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("an SSE client panicked"))??,
            );
        }
        wrote?;
        expect_passed(&ended?)?;
        Ok(all)
    })
}

/// The FIFO opened for writing without blocking; `None` while no reader
/// has it open.
fn open_writer(fifo: &Path) -> anyhow::Result<Option<std::fs::File>> {
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(fifo)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening {}", fifo.display())),
    }
}
