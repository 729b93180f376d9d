//! `testarena-bench`: TestArena's benchmark suite (issue 9). Starts the
//! real `testarena-app` and `testarena-worker` binaries on a temp home,
//! runs each scenario over loopback, prints every figure with its target
//! and writes them to a JSON file. `--smoke` runs every scenario with tiny
//! sizes, so the program cannot rot; speed is never asserted.
//!
//! Scenarios (the numbers): 1 pickup latency, 2 orchestration
//! overhead, 3 throughput, 4 checkout, 5 API load, 6 live logs, 7 memory;
//! 8 the build cache (issue 16); 9 history over a million test cases (issue 16);
//! 10 boards (issue 15); 11 PostgreSQL and workers on other hosts (issue 14).
#![expect(clippy::print_stdout, reason = "the table is the program's output")]

mod boards;
mod buildcache;
mod checkout;
mod farm;
mod fixture;
mod history;
mod load;
mod memory;
mod queues;
mod rawhttp;
mod report;
mod scaleout;
mod sse;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use crate::farm::{Bins, Farm, Options, find_bins};
use crate::report::Report;

/// Benchmarks of TestArena with the real binaries over loopback.
#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(version)]
struct Args {
    /// Tiny sizes for every scenario: a check that the program works, in seconds.
    #[arg(long)]
    smoke: bool,
    /// Where the figures go.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Directory of testarena-app and testarena-worker (default: beside this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Keep the temp folder (homes, logs, repositories) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Run only these scenarios (comma-separated: pickup, overhead, checkout,
    /// sse, api, memory, throughput, list, cache, history, boards, scaleout).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The worker's poll_interval_ms (the fallback when no change is seen).
    #[arg(long, default_value_t = 200)]
    poll_interval_ms: u64,

    /// 1: queues submitted one at a time to measure the pickup.
    #[arg(long, default_value_t = 40)]
    pickup_samples: usize,
    /// 2: `true` tests in the overhead scenario.
    #[arg(long, default_value_t = 100)]
    overhead_tests: usize,
    /// 2: runs of that scenario.
    #[arg(long, default_value_t = 3)]
    overhead_runs: usize,
    /// 3: queues through the worker.
    #[arg(long, default_value_t = 1000)]
    throughput_queues: usize,
    /// 3: threads submitting them.
    #[arg(long, default_value_t = 4)]
    throughput_clients: usize,
    /// 4: files in the large repository.
    #[arg(long, default_value_t = 2000)]
    large_files: usize,
    /// 4: commits in it.
    #[arg(long, default_value_t = 500)]
    large_commits: usize,
    /// 4: first/second pairs, each on a new mirror.
    #[arg(long, default_value_t = 3)]
    checkout_runs: usize,
    /// 5: concurrent connections.
    #[arg(long, default_value_t = 32)]
    api_connections: usize,
    /// 5: seconds per load run.
    #[arg(long, default_value_t = 10.0)]
    api_seconds: f64,
    /// 5: load runs per credential kind.
    #[arg(long, default_value_t = 3)]
    api_runs: usize,
    /// 5: queues stored for the list benchmark.
    #[arg(long, default_value_t = 100_000)]
    list_queues: usize,
    /// 5: seconds per list run.
    #[arg(long, default_value_t = 5.0)]
    list_seconds: f64,
    /// 6: SSE clients.
    #[arg(long, default_value_t = 100)]
    sse_clients: usize,
    /// 6: lines appended.
    #[arg(long, default_value_t = 100)]
    sse_lines: usize,
    /// 6: mean pause between lines, ms.
    #[arg(long, default_value_t = 50)]
    sse_interval_ms: u64,
    /// 7: size of the large log, MiB.
    #[arg(long, default_value_t = 100)]
    log_mib: usize,
    /// 8: cold builds and cached reruns of the lx106 fixture, each.
    #[arg(long, default_value_t = 5)]
    cache_runs: usize,
    /// 10: queues on a simulated board for the claim → first serial byte median.
    #[arg(long, default_value_t = 10)]
    board_runs: usize,
    /// 9: queues of the seeded history (one task each).
    #[arg(long, default_value_t = 20_000)]
    history_queues: usize,
    /// 9: test cases per queue (queues × tests rows in all).
    #[arg(long, default_value_t = 50)]
    history_tests: usize,
    /// 9: days the seeded history spans, up to now.
    #[arg(long, default_value_t = 400)]
    history_days: u32,
    /// 9: seconds per history request measured.
    #[arg(long, default_value_t = 5.0)]
    history_seconds: f64,
    /// 11: pickup samples per backend (PostgreSQL with LISTEN, SQLite).
    #[arg(long, default_value_t = 200)]
    scaleout_pickup_samples: usize,
    /// 11: quick queues per backend for the throughput.
    #[arg(long, default_value_t = 1000)]
    scaleout_queues: usize,
    /// 11: worker processes (2 slots, a home each) on PostgreSQL for the throughput.
    #[arg(long, default_value_t = 4)]
    scaleout_workers: usize,
}

impl Args {
    fn shrink_for_smoke(&mut self) {
        self.pickup_samples = 3;
        self.overhead_tests = 5;
        self.overhead_runs = 1;
        self.throughput_queues = 6;
        self.throughput_clients = 2;
        self.large_files = 40;
        self.large_commits = 5;
        self.checkout_runs = 1;
        self.api_connections = 4;
        self.api_seconds = 0.5;
        self.api_runs = 1;
        self.list_queues = 300;
        self.list_seconds = 0.5;
        self.sse_clients = 3;
        self.sse_lines = 5;
        self.sse_interval_ms = 20;
        self.log_mib = 2;
        self.cache_runs = 1;
        self.board_runs = 1;
        self.history_queues = 40;
        self.history_tests = 5;
        self.history_seconds = 0.3;
        self.scaleout_pickup_samples = 5;
        self.scaleout_queues = 20;
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.shrink_for_smoke();
    }
    let started = Instant::now();
    let bins = find_bins(args.bin_dir.as_deref())?;
    let tmp = tempfile::Builder::new()
        .prefix("testarena-bench-")
        .tempdir()?;
    let dir = tmp.path().to_owned();
    if args.keep {
        eprintln!("keeping {}", dir.display());
    }
    let mut report = Report::default();
    let result = run(&args, &bins, &dir, &mut report);
    if args.keep {
        let _ = tmp.keep();
    }
    println!("\n{}", report.table());
    let missed = report.missed();
    if args.smoke {
        println!(
            "Smoke run: tiny sizes, to show that every scenario runs; these are not measurements."
        );
    } else if !missed.is_empty() {
        println!(
            "Missed: {}",
            missed
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    println!("Took {:.0} s.", started.elapsed().as_secs_f64());
    let mut settings = serde_json::to_value(&args)?;
    settings["bins"] = serde_json::json!(bins.app.parent());
    report.write_json(&args.out, &settings)?;
    println!("Figures written to {}.", args.out.display());
    result
}

fn run(args: &Args, bins: &Bins, dir: &std::path::Path, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("==> fixtures");
    let firmware = dir.join("firmware.git");
    fixture::firmware(&firmware, args.overhead_tests)?;
    let large = dir.join("large.git");
    if args.wants("checkout") {
        let t = Instant::now();
        fixture::large(&large, args.large_files, args.large_commits)?;
        eprintln!(
            "  large repository made in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let options = Options {
        slots: 2,
        poll_interval_ms: args.poll_interval_ms,
        repos: vec![
            ("firmware".to_owned(), firmware.clone()),
            (checkout::REPO.to_owned(), large.clone()),
        ],
        database: None,
    };
    let main_dir = dir.join("main");
    std::fs::create_dir_all(&main_dir)?;
    let mut farm = Farm::prepare(bins, &main_dir, &options)?;
    farm.start_app()?;
    farm.start_worker()?;
    memory::idle(&farm, report, Duration::from_secs(1), "after start")?;

    // A finished queue for the API and memory scenarios to read.
    let (done, _) = farm.submit("firmware", fixture::BENCH_BRANCH, &[fixture::QUICK])?;
    farm.wait_final(&done, Duration::from_secs(60))?;

    if args.wants("pickup") {
        eprintln!("==> 1 pickup latency (and 2: per-queue overhead)");
        queues::pickup(&farm, report, args.pickup_samples)?;
    }
    if args.wants("overhead") {
        eprintln!("==> 2 orchestration overhead of a <run> test");
        queues::test_overhead(&farm, report, args.overhead_runs)?;
    }
    if args.wants("sse") {
        eprintln!("==> 6 live logs");
        let interval = Duration::from_millis(args.sse_interval_ms);
        sse::sse(&farm, report, args.sse_clients, args.sse_lines, interval)?;
    }
    if args.wants("api") {
        eprintln!("==> 5 API load");
        let duration = Duration::from_secs_f64(args.api_seconds);
        load::api(
            &farm,
            report,
            &done,
            args.api_connections,
            duration,
            args.api_runs,
        )?;
    }
    if args.wants("memory") {
        eprintln!("==> 7 memory: a large log");
        memory::large_log(&farm, report, &done, args.log_mib)?;
    }
    // After the memory figures: cloning a large repository in the app's
    // submit path leaves its allocator holding memory.
    if args.wants("checkout") {
        eprintln!("==> 4 checkout");
        checkout::checkout(&farm, &large, report, args.checkout_runs)?;
    }
    if args.wants("throughput") {
        eprintln!("==> 3 throughput");
        queues::throughput(
            &farm,
            report,
            args.throughput_queues,
            args.throughput_clients,
        )?;
    }
    memory::idle(
        &farm,
        report,
        Duration::from_secs(2),
        "after the benchmarks",
    )?;
    farm.stop();

    if args.wants("boards") {
        eprintln!(
            "==> 10 boards: claim to first serial byte, flood at 115200 and 921600 baud (board simulator)"
        );
        boards::boards(bins, &dir.join("boards"), report, args.board_runs)?;
    }
    if args.wants("scaleout") {
        eprintln!("==> 11 scale-out: PostgreSQL with workers on other hosts, beside SQLite");
        let sizes = scaleout::Sizes {
            poll_interval_ms: args.poll_interval_ms,
            pickup_samples: args.scaleout_pickup_samples,
            abort_samples: args.scaleout_pickup_samples.clamp(2, 30),
            queues: args.scaleout_queues,
            submitters: args.throughput_clients,
            workers: args.scaleout_workers,
            sse_clients: args.sse_clients,
            sse_lines: args.sse_lines,
            sse_interval: Duration::from_millis(args.sse_interval_ms),
            api_connections: args.api_connections,
            api_seconds: Duration::from_secs_f64(args.api_seconds),
            api_runs: args.api_runs,
        };
        scaleout::scaleout(bins, &dir.join("scaleout"), &firmware, &sizes, report)?;
    }
    if args.wants("cache") {
        eprintln!("==> 8 build cache: claim to first test, cached vs cold (lx106 fixture)");
        buildcache::build_cache(bins, &dir.join("cache"), report, args.cache_runs)?;
    }
    if args.wants("history") {
        let rows = args.history_queues * args.history_tests;
        eprintln!("==> 9 history over {rows} stored test cases");
        let history_dir = dir.join("history");
        std::fs::create_dir_all(&history_dir)?;
        let mut farm = Farm::prepare(bins, &history_dir, &options)?;
        let t = Instant::now();
        let rows = history::seed(
            &farm,
            args.history_queues,
            args.history_tests,
            args.history_days,
        )
        .context("seeding the history")?;
        eprintln!(
            "  seeded {rows} test cases in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        farm.start_app()?;
        let duration = Duration::from_secs_f64(args.history_seconds);
        history::history(&farm, report, rows, args.history_queues, duration)?;
        farm.stop();
    }
    if args.wants("list") {
        eprintln!("==> 5 list over {} stored queues", args.list_queues);
        let list_dir = dir.join("list");
        std::fs::create_dir_all(&list_dir)?;
        let mut farm = Farm::prepare(bins, &list_dir, &options)?;
        let t = Instant::now();
        load::seed(&farm, args.list_queues).context("seeding the database")?;
        eprintln!("  seeded in {:.1} s", t.elapsed().as_secs_f64());
        farm.start_app()?;
        let duration = Duration::from_secs_f64(args.list_seconds);
        load::list(
            &farm,
            report,
            args.list_queues,
            args.api_connections,
            duration,
        )?;
        farm.stop();
    }
    Ok(())
}
