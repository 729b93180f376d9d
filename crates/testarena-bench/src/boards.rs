//! Issue 15's boards: on a simulated board (`tests/fixtures/board-sim`, a
//! stand-in for a USB board: a real pty bridged to real QEMU booting the
//! lx106 fixture), the time from a queue's claim to the first serial byte
//! after the reset (median), and a flood test (the fixture's `flood`
//! branch, 3.2 MB of console output) at 115200 and 921600 baud: the bytes
//! the board's log lacks against the same firmware's log on QEMU.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use testarena_testkit::board_sim::BoardToml;
use testarena_testkit::{Bins, BoardSim, Farm, Setup};

use crate::report::{Report, Target};
use crate::stats::{median, ms_between};

fn claimed_at(farm: &Farm, id: &str) -> anyhow::Result<DateTime<Utc>> {
    let text = std::fs::read_to_string(farm.home.join("queues").join(id).join("queue.log"))?;
    for line in text.lines() {
        let (at, rest) = line
            .split_once(' ')
            .context("a timeline line without a time")?;
        if rest.starts_with("claimed by worker") {
            return Ok(DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc));
        }
    }
    bail!("no claim in the timeline of {id}")
}

fn test_log(farm: &Farm, id: &str) -> PathBuf {
    farm.home
        .join("queues")
        .join(id)
        .join("tasks")
        .join(format!("{id}.1"))
        .join("unit.log")
}

fn passed(farm: &Farm, id: &str) -> anyhow::Result<Value> {
    let q = farm.wait_final(id, Duration::from_secs(300));
    if q["status"] != "passed" {
        bail!("queue {id} ended {}: {}", q["status"], q["status_reason"]);
    }
    Ok(q)
}

/// One queue on board `board`: claim → first byte of its test log, in ms
/// (the log is looked at every millisecond).
fn first_byte(farm: &Farm, board: &str) -> anyhow::Result<f64> {
    let id = farm.submit_with("main", &["scenarios/unit.xml"], json!({"board": board}));
    let log = test_log(farm, &id);
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
            break Utc::now();
        }
        if Instant::now() > deadline {
            bail!("no serial byte in {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    passed(farm, &id)?;
    Ok(ms_between(claimed_at(farm, &id)?, seen))
}

pub fn boards(bins: &Bins, dir: &Path, report: &mut Report, runs: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let (slow, fast) = (
        BoardSim::start("b115200", "none")?,
        BoardSim::start("b921600", "none")?,
    );
    let at = |baud| BoardToml {
        baud,
        ..BoardToml::default()
    };
    let boards =
        slow.board_toml("b115200", &at(115_200)) + &fast.board_toml("b921600", &at(921_600));
    let farm = Farm::try_start(Setup {
        workers: vec!["bench-boards".into()],
        slots: 1,
        poll_interval_ms: 50,
        targets: boards,
        dir: Some(dir.join("farm")),
        bins: Some(bins.clone()),
        ..Setup::lx106()
    })?;
    farm.wait_for_boards(&["b115200", "b921600"])?;

    let mut samples = Vec::new();
    for _ in 0..runs {
        samples.push(first_byte(&farm, "b115200")?);
    }
    report.add(
        "boards",
        "claim to first serial byte after reset (simulated board)",
        median(&samples),
        "ms",
        None,
        samples.len(),
        "median; checkout, make, flash (board-sim ctl), console open, reset, the boot's first byte in the test's log",
    );

    // The reference: the flood firmware's console on QEMU.
    let reference = farm.submit("flood", &["scenarios/unit.xml"]);
    passed(&farm, &reference)?;
    let want = std::fs::read(test_log(&farm, &reference))?;
    for (board, baud) in [("b115200", 115_200), ("b921600", 921_600)] {
        let id = farm.submit_with("flood", &["scenarios/unit.xml"], json!({"board": board}));
        let q = passed(&farm, &id)?;
        let got = std::fs::read(test_log(&farm, &id))?;
        let lost = want.len().saturating_sub(got.len());
        // Each queue builds the firmware again: its bootloader line
        // "compile time ..." differs; every other line must be the same.
        let lines = |b: &[u8]| -> Vec<Vec<u8>> {
            b.split(|c| *c == b'\n')
                .filter(|l| !l.windows(12).any(|w| w == b"compile time"))
                .map(<[u8]>::to_vec)
                .collect()
        };
        let same = lines(&got) == lines(&want);
        let took_ms = q["tasks"][0]["tests"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "unit"))
            .and_then(|t| t["duration_ms"].as_f64())
            .unwrap_or(f64::NAN);
        report.add(
            "boards",
            &format!("flood at {baud} baud: bytes lost"),
            lost as f64,
            "bytes",
            Some(Target::AtMost(0.0)),
            1,
            format!(
                "{} bytes on QEMU, {} on the board, {}; {:.1} MB/s over the test's {:.0} ms (a pty does not pace at the baud)",
                want.len(),
                got.len(),
                if same { "identical but the build time" } else { "DIFFERENT" },
                got.len() as f64 / took_ms / 1000.0,
                took_ms
            ),
        );
    }
    Ok(())
}

/// Waits until the worker registered these boards and they are idle.
trait WaitBoards {
    fn wait_for_boards(&self, ids: &[&str]) -> anyhow::Result<()>;
}

impl WaitBoards for Farm {
    fn wait_for_boards(&self, ids: &[&str]) -> anyhow::Result<()> {
        crate::farm::wait_for(Duration::from_secs(30), "the boards to be idle", || {
            let r = self.call("GET", "/api/v1/boards", None);
            let idle = (r.status == 200).then(|| r.json()).is_some_and(|b: Value| {
                ids.iter().all(|id| {
                    b.as_array()
                        .is_some_and(|l| l.iter().any(|x| x["id"] == *id && x["status"] == "idle"))
                })
            });
            Ok(idle)
        })
    }
}
