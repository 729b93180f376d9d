//! Boards end to end (DESIGN section 10): the real app and worker, the
//! lx106 firmware built for real, and the board simulator
//! (`tests/fixtures/board-sim`, a stand-in for a USB board) bridging a
//! real pty to real `qemu-system-xtensa`. The worker opens the pty with
//! termios as it would a USB-serial device.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use testarena_testkit::board_sim::BoardToml;
use testarena_testkit::{BoardSim as Sim, Farm, Setup, wait_for};

const DEADLINE: Duration = Duration::from_secs(90);

/// A board's `[[boards]]` table for a simulator; `health` adds a check
/// running `scenarios/unit.xml` on `main`.
fn board_toml(id: &str, sim: &Sim, tags: &[&str], health: bool) -> String {
    let how = BoardToml {
        tags,
        health,
        ..BoardToml::default()
    };
    sim.board_toml(id, &how)
}

/// Starts a simulated board (see `testarena_testkit::BoardSim`).
fn sim(name: &str, fault: &str) -> Sim {
    Sim::start(name, fault).unwrap()
}

fn setup(boards: String) -> Setup {
    Setup {
        workers: vec!["bw".into()],
        slots: 2,
        poll_interval_ms: 50,
        test_timeout_s: 60,
        abort_grace_s: 2,
        heartbeat_s: 1,
        lost_after_s: 3,
        // A board fault is retried once on another board.
        retry_errors: 1,
        targets: boards,
        ..Setup::lx106()
    }
}

fn board(farm: &Farm, id: &str) -> Value {
    farm.get(&format!("/api/v1/boards/{id}"))
}

fn wait_board(farm: &Farm, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(DEADLINE, what, || {
        // 404 until its worker registered it.
        let r = farm.call("GET", &format!("/api/v1/boards/{id}"), None);
        let b = (r.status == 200).then(|| r.json())?;
        f(&b).then_some(b)
    })
}

/// Commits `file` on a new branch of the farm's fixture repository.
fn add_branch(farm: &Farm, branch: &str, file: &str, text: &str) {
    let repo = &farm.repo.path;
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args([
                "-c",
                "user.name=Boards Test",
                "-c",
                "user.email=boards@testarena.invalid",
            ])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["checkout", "-q", "-b", branch, "main"]);
    std::fs::write(repo.join(file), text).unwrap();
    git(&["add", file]);
    git(&["commit", "-q", "-m", "a scenario for the boards suite"]);
    git(&["checkout", "-q", "main"]);
}

fn on_board(farm: &Farm, board: &str) -> String {
    farm.submit_with("main", &["scenarios/unit.xml"], json!({"board": board}))
}

#[test]
fn a_queue_passes_on_a_simulated_board_with_the_first_boot_line() {
    let sim = sim("b1", "none");
    let farm = Farm::start(setup(board_toml("b1", &sim, &["wifi"], false)));
    wait_board(&farm, "b1", "b1 idle", |b| b["status"] == "idle");
    let id = on_board(&farm, "any");
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}\n{}", farm.queue_log(&id));
    assert_eq!(q["ran_on"], "b1");
    assert_eq!(q["board"], "any");
    let task = q["tasks"][0]["id"].as_str().unwrap();
    let log = farm.test_log(&id, task, "unit");
    // The ROM bootloader's first line: the port was open before the reset.
    assert!(
        log.starts_with("ets Jan  8 2013,rst cause:1, boot mode:(3,6)"),
        "{log}"
    );
    assert!(log.contains("Tests 0 Failures"), "{log}");
    let flash =
        std::fs::read_to_string(farm.home.join("queues").join(&id).join("flash.log")).unwrap();
    assert!(flash.contains("ok flashed"), "{flash}");
    let b = wait_board(&farm, "b1", "b1 released", |b| b["status"] == "idle");
    assert_eq!(
        b["health"], "good",
        "no health check: good on its first flash: {b:#}"
    );
    assert_eq!(b["flashes"], 1);
    assert_eq!(b["queues"][0]["id"], id.as_str());
    // `<run>` tests get the board and its serial device.
    add_branch(
        &farm,
        "board-env",
        "scenarios/board-env.xml",
        "<scenario name=\"board-env\">\n  <test name=\"boot\" timeout=\"30\" quiet-timeout=\"5\">\n    <boot/>\n    \
         <expect>Press ENTER to see the list of tests.</expect>\n  </test>\n  <test name=\"env\" timeout=\"10\">\n    \
         <run>echo \"board=$TESTARENA_BOARD serial=$TESTARENA_SERIAL\"</run>\n  </test>\n</scenario>\n",
    );
    let env_q = farm.submit_with(
        "board-env",
        &["scenarios/board-env.xml"],
        json!({"board": "b1"}),
    );
    let q = farm.wait_final(&env_q, DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}");
    let task = q["tasks"][0]["id"].as_str().unwrap();
    let env = farm.test_log(&env_q, task, "env");
    assert_eq!(
        env.trim(),
        format!("board=b1 serial={}", sim.link().display())
    );
    // A QEMU queue still runs in QEMU.
    let qemu = farm.submit("main", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&qemu, DEADLINE);
    assert_eq!(
        (q["status"].as_str(), q["ran_on"].as_str()),
        (Some("passed"), Some("qemu"))
    );
    farm.assert_no_leftovers();
}

#[test]
fn a_requirement_no_board_could_meet_is_422_and_a_busy_one_waits_in_words() {
    let sim = sim("t1", "none");
    let farm = Farm::start(setup(board_toml("t1", &sim, &["wifi"], false)));
    wait_board(&farm, "t1", "t1 registered", |b| b["status"] == "idle");
    for (body, why) in [
        (json!({"board_tags": ["psram"]}), "psram"),
        (json!({"board": "nope"}), "nope"),
        (json!({"board": "any", "target": "esp32"}), "esp32"),
    ] {
        let mut req = json!({"branch": "main", "scenarios": ["scenarios/unit.xml"]});
        req.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let r = farm.call("POST", "/api/v1/queues", Some(&req));
        assert_eq!(r.status, 422, "{}", r.body);
        let e = r.json();
        assert_eq!(e["error"]["field"], "board", "{e:#}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(why),
            "{e:#}"
        );
    }
    // In maintenance: accepted, and the queue says what it waits for.
    let r = farm.call(
        "PATCH",
        "/api/v1/boards/t1",
        Some(&json!({"maintenance": true, "note": "rewiring"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "maintenance");
    let id = farm.submit_with(
        "main",
        &["scenarios/unit.xml"],
        json!({"board_tags": ["wifi"]}),
    );
    let q = farm.queue(&id);
    assert_eq!(q["status"], "waiting");
    assert_eq!(
        q["waiting_for"], "a board with tags wifi: 1 maintenance",
        "{q:#}"
    );
    // The CLI shows the board and submits with --board-tag.
    let cli = crate::cli::run::Cli::new(&farm.dir, &farm.base, Some(&farm.token));
    let out = cli.run(&["boards"]);
    assert!(out.ok(), "{out:?}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("t1 "))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(row.contains("maintenance") && row.contains("wifi"), "{row}");
    let out = cli.run(&[
        "submit",
        "main",
        "-s",
        "scenarios/unit.xml",
        "--board-tag",
        "psram",
    ]);
    assert!(!out.ok() && format!("{out:?}").contains("psram"), "{out:?}");
    let out = cli.run(&[
        "submit",
        "main",
        "-s",
        "scenarios/unit.xml",
        "--board",
        "t1",
        "--json",
    ]);
    assert!(out.ok(), "{out:?}");
    let second = out.json()["id"].as_str().unwrap().to_owned();
    let r = farm.call(
        "PATCH",
        "/api/v1/boards/t1",
        Some(&json!({"maintenance": false})),
    );
    assert_eq!(r.status, 200);
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}");
    assert_eq!(board(&farm, "t1")["note"], "rewiring");
    assert_eq!(farm.wait_final(&second, DEADLINE)["ran_on"], "t1");
}

#[test]
fn two_boards_run_three_queues_each_once_never_two_at_a_time() {
    let (a, b) = (sim("pa", "none"), sim("pb", "none"));
    let boards = board_toml("pa", &a, &[], false) + &board_toml("pb", &b, &[], false);
    let farm = Farm::start(Setup {
        slots: 3,
        ..setup(boards)
    });
    for id in ["pa", "pb"] {
        wait_board(&farm, id, "boards idle", |b| b["status"] == "idle");
    }
    let ids: Vec<String> = (0..3).map(|_| on_board(&farm, "any")).collect();
    let done: Vec<Value> = ids.iter().map(|id| farm.wait_final(id, DEADLINE)).collect();
    let mut spans: Vec<(String, String, String)> = Vec::new();
    for q in &done {
        assert_eq!(q["status"], "passed", "{q:#}");
        let on = q["ran_on"].as_str().unwrap().to_owned();
        assert!(on == "pa" || on == "pb", "{q:#}");
        spans.push((
            on,
            q["started_at"].as_str().unwrap().to_owned(),
            q["finished_at"].as_str().unwrap().to_owned(),
        ));
    }
    for (i, x) in spans.iter().enumerate() {
        for y in &spans[i + 1..] {
            if x.0 == y.0 {
                assert!(
                    x.2 <= y.1 || y.2 <= x.1,
                    "board {} used twice at once: {spans:?}",
                    x.0
                );
            }
        }
    }
    let flashes = board(&farm, "pa")["flashes"].as_i64().unwrap()
        + board(&farm, "pb")["flashes"].as_i64().unwrap();
    assert_eq!(flashes, 3, "each queue flashed once");
}

#[test]
fn a_flash_failure_is_a_board_error_retried_on_the_other_board() {
    // Boards are offered in id order: the flaky one is tried first.
    let (flaky, good) = (sim("a-flaky", "flash-fails"), sim("b-good", "none"));
    let boards =
        board_toml("a-flaky", &flaky, &[], true) + &board_toml("b-good", &good, &[], false);
    let farm = Farm::start(setup(boards));
    // The flaky board's first health check fails at its flash: bad.
    let b = wait_board(&farm, "a-flaky", "a-flaky bad", |b| b["health"] == "bad");
    assert_eq!(b["status"], "bad", "{b:#}");
    let hq = farm.queue(b["last_health_queue"].as_str().unwrap());
    assert_eq!(hq["owner"], "testarena");
    assert_eq!(hq["status"], "error", "{hq:#}");
    assert!(
        hq["status_reason"]
            .as_str()
            .unwrap()
            .starts_with("board a-flaky: flash failed"),
        "{hq:#}"
    );
    // A bad board takes no queue: the next one runs on the good board.
    let id = on_board(&farm, "any");
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(
        (q["status"].as_str(), q["ran_on"].as_str()),
        (Some("passed"), Some("b-good")),
        "{q:#}"
    );

    // A board fault on a user queue: an admin brings the flaky board back
    // (maintenance off, the simulator fixed for one health check), then it
    // fails again on the user's queue, which is retried on b-good.
    let r = farm.call("POST", "/api/v1/boards/a-flaky/health", None);
    assert_eq!(r.status, 202, "{}", r.body);
    flaky.ctl(&["fault", "none"]).unwrap();
    let hq = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(farm.wait_final(&hq, DEADLINE)["status"], "passed");
    wait_board(&farm, "a-flaky", "a-flaky good", |b| {
        b["health"] == "good" && b["status"] == "idle"
    });
    flaky.ctl(&["fault", "flash-fails"]).unwrap();
    let id = farm.submit_with(
        "main",
        &["scenarios/unit.xml"],
        json!({"board": "any", "priority": 5}),
    );
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}\n{}", farm.queue_log(&id));
    assert_eq!(q["ran_on"], "b-good", "{q:#}");
    let first = &q["attempts"][0];
    assert_eq!(first["ran_on"], "a-flaky", "{q:#}");
    assert_eq!(first["status"], "error");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .starts_with("board a-flaky: flash failed"),
        "{q:#}"
    );
    farm.assert_no_leftovers();
}

#[test]
fn a_board_whose_health_check_fails_goes_bad_and_takes_no_queue() {
    let sim = sim("h1", "silent");
    let farm = Farm::start(setup(board_toml("h1", &sim, &[], true)));
    // Health unknown at first: the check runs, the silent board fails it.
    let b = wait_board(&farm, "h1", "h1 bad", |b| b["health"] == "bad");
    assert_eq!(b["status"], "bad");
    let id = on_board(&farm, "h1");
    let q = farm.queue(&id);
    assert_eq!(q["waiting_for"], "board h1: bad", "{q:#}");
    // The worker goes on claiming: a QEMU queue submitted after it runs
    // to its end while the board queue still waits.
    let qemu = farm.submit("main", &["scenarios/unit.xml"]);
    assert_eq!(farm.wait_final(&qemu, DEADLINE)["status"], "passed");
    assert_eq!(farm.queue(&id)["status"], "waiting");
    let r = farm.call("DELETE", &format!("/api/v1/queues/{id}"), None);
    assert_eq!(r.status, 204);
}

#[test]
fn the_worker_killed_mid_test_releases_the_board_for_a_health_check() {
    let sim = sim("k1", "none");
    let mut farm = Farm::start(setup(board_toml("k1", &sim, &[], true)));
    let b = wait_board(&farm, "k1", "first health check passed", |b| {
        b["health"] == "good"
    });
    assert_eq!(b["status"], "idle");
    let first_check = b["last_health_queue"].clone();
    // The hang branch never ends its tests: the worker dies in the middle.
    let id = farm.submit_with("hang", &["scenarios/unit.xml"], json!({"board": "k1"}));
    wait_for(DEADLINE, "the test to run", || {
        let q = farm.queue(&id);
        (q["status"] == "running" && q["tasks"][0]["status"] == "running").then_some(())
    });
    farm.stop_worker(0, Signal::SIGKILL);
    farm.start_worker(0);
    // Recovered: the lease is gone, health `unknown`, and a health check
    // runs before anything else (it passes: the board is fine).
    let b = wait_board(&farm, "k1", "k1 released and checked again", |b| {
        b["queue"].as_str() != Some(id.as_str())
            && b["last_health_queue"] != first_check
            && b["health"] == "good"
    });
    assert_ne!(b["queue"], id.as_str(), "the lease is released: {b:#}");
    let q = farm.queue(&id);
    assert!(
        q["attempts"][0]["reason"] == "worker lost" || q["status_reason"] == "worker lost",
        "{q:#}"
    );
    farm.call("POST", &format!("/api/v1/queues/{id}/abort"), None);
    farm.wait_final(&id, DEADLINE);
    farm.assert_no_leftovers();
}

#[test]
fn re_enumeration_keeps_the_test_going_with_nothing_lost() {
    let sim = sim("r1", "reenumerate");
    let farm = Farm::start(setup(board_toml("r1", &sim, &[], false)));
    wait_board(&farm, "r1", "r1 idle", |b| b["status"] == "idle");
    let id = on_board(&farm, "r1");
    let q = farm.wait_final(&id, DEADLINE);
    let task = q["tasks"][0]["id"].as_str().unwrap();
    let log = farm.test_log(&id, task, "unit");
    assert_eq!(q["status"], "passed", "{}\n{log}", farm.queue_log(&id));
    let line = log
        .lines()
        .find(|l| l.starts_with("[testarena] serial device reconnected after "))
        .unwrap_or_else(|| panic!("no reconnect line: {log}"));
    assert!(line.ends_with(" ms"), "{line}");
    // Everything the board said after it came back is there, in order.
    let after = log.split_once(line).unwrap().1;
    assert!(after.contains("ets Jan  8 2013,rst cause:1"), "{log}");
    assert!(after.contains("5 Tests 0 Failures 1 Ignored"), "{log}");
}

#[test]
fn a_board_that_dies_mid_test_is_a_board_fault_not_a_failure() {
    let sim = sim("d1", "dies");
    let farm = Farm::start(setup(board_toml("d1", &sim, &[], false)));
    wait_board(&farm, "d1", "d1 idle", |b| b["status"] == "idle");
    // The hang branch stays in its tests (quiet-timeout 5 s) while the
    // board dies 0.5 s after its reset.
    let id = farm.submit_with("hang", &["scenarios/unit.xml"], json!({"board": "d1"}));
    let q = farm.wait_final(&id, DEADLINE);
    // Gone past reenumerate_s (3 s): `error` with the board's name, the
    // running task with it; no other board, so no retry.
    assert_eq!(q["status"], "error", "{q:#}");
    let reason = q["status_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("board d1: serial device ")
            && reason.ends_with("gone for more than 3 s"),
        "{reason}"
    );
    assert_eq!(q["tasks"][0]["status"], "error");
    assert_eq!(q["tasks"][0]["status_reason"], reason);
    assert_eq!(q["attempts"].as_array().map(Vec::len), Some(0), "{q:#}");
    let b = wait_board(&farm, "d1", "d1 released", |b| b["queue"].is_null());
    assert_eq!(
        (b["faults"].as_i64(), b["health"].as_str()),
        (Some(1), Some("unknown")),
        "{b:#}"
    );
    farm.assert_no_leftovers();
}
