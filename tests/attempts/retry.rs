//! A worker SIGKILLed in the middle of a queue: with `retry_errors = 1`
//! the restarted worker runs attempt 2 to a pass, attempt 1's logs kept
//! under `attempts/1/`; with `retry_errors = 0` the queue ends `error`
//! "worker lost"; a test failure is never retried.

use std::time::Duration;

use nix::sys::signal::Signal;
use testarena_testkit::{Farm, Setup, wait_for};

use super::{DEADLINE, log, log_paths, setup};

/// lx106, except that the first build of a home hangs (after saying so),
/// so the worker can be killed in the middle of attempt 1; later builds
/// are the real make.
const HANG_ONCE: &str = r#"
[targets.hang-once]
build = ["sh", "-c", "if [ ! -e \"$1/hung-once\" ]; then touch \"$1/hung-once\"; printf 'attempt %s hangs\\n' one; sleep 600; fi; exec make -C \"$2\" BUILD_DIR=\"$3\"", "sh", "{home}", "{workspace}", "{build_dir}"]
qemu = ["qemu-system-xtensa", "-M", "sim", "-cpu", "lx106", "-semihosting",
        "-nographic", "-serial", "none", "-monitor", "none", "-no-reboot",
        "-kernel", "{build_dir}/firmware.elf"]
"#;

fn killed_mid_build(retry_errors: u32) -> (Farm, String) {
    let mut farm = Farm::start(Setup {
        retry_errors,
        default_target: "hang-once".into(),
        ..setup(HANG_ONCE)
    });
    let id = farm.submit("main", &["scenarios/smoke.xml"]);
    let build_log = farm.home.join("queues").join(&id).join("build.log");
    wait_for(Duration::from_secs(60), "attempt 1's build to hang", || {
        std::fs::read_to_string(&build_log)
            .ok()
            .filter(|l| l.contains("attempt one hangs"))
    });
    farm.stop_worker(0, Signal::SIGKILL);
    farm.start_worker(0);
    (farm, id)
}

#[test]
fn a_lost_worker_s_queue_is_retried_and_passes() {
    let (farm, id) = killed_mid_build(1);
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}\n{}", farm.queue_log(&id));
    assert_eq!(q["attempt"], 2, "{q:#}");
    let attempts = q["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{q:#}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["status"], "error");
    assert_eq!(attempts[0]["reason"], "worker lost");
    assert_eq!(attempts[0]["ran_on"], "qemu");
    assert_eq!(attempts[0]["worker"], "att-worker");
    assert!(
        q["tasks"][0]["tests"].as_array().unwrap().len() >= 4,
        "{q:#}"
    );

    let paths = log_paths(&farm, &id);
    assert!(
        paths.iter().any(|p| p == "attempts/1/build.log"),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p == "build.log"), "{paths:?}");
    assert!(log(&farm, &id, "attempts/1/build.log").contains("attempt one hangs"));
    let second = log(&farm, &id, "build.log");
    assert!(!second.contains("attempt one hangs"), "{second}");
    let timeline = farm.queue_log(&id);
    for line in [
        "attempt 1 ended error: worker lost",
        "retrying after: worker lost (attempt 2 of 2)",
        "attempt 1's build.log moved to attempts/1/",
        ", attempt 2)",
        "finished passed",
    ] {
        assert!(timeline.contains(line), "{line:?} not in:\n{timeline}");
    }
    assert_eq!(
        timeline.matches("claimed by worker").count(),
        2,
        "{timeline}"
    );
    // The document describes the attempts as the queue carries them.
    let doc = farm.get("/api/v1/openapi.json");
    let schemas = &doc["components"]["schemas"];
    let attempt = &schemas["Attempt"]["properties"];
    for field in [
        "attempt",
        "worker",
        "ran_on",
        "started_at",
        "finished_at",
        "status",
        "reason",
    ] {
        assert!(
            attempt.get(field).is_some(),
            "Attempt.{field}: {:#}",
            schemas["Attempt"]
        );
    }
    let queue = &schemas["Queue"]["properties"];
    assert!(
        queue["attempt"].is_object() && queue["no_cache"].is_object(),
        "{queue:#}"
    );
    assert!(
        queue["attempts"].to_string().contains("Attempt"),
        "{queue:#}"
    );
    farm.assert_no_leftovers();
    println!(
        "worker SIGKILL mid-build with retry_errors = 1: attempt 2 passed, attempt 1's build.log under attempts/1/"
    );
}

#[test]
fn without_retries_a_lost_worker_ends_the_queue() {
    let (farm, id) = killed_mid_build(0);
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "error", "{q:#}");
    assert_eq!(q["status_reason"], "worker lost", "{q:#}");
    assert_eq!(q["attempt"], 1, "{q:#}");
    assert_eq!(q["attempts"].as_array().map(Vec::len), Some(0), "{q:#}");
    assert!(
        !log_paths(&farm, &id)
            .iter()
            .any(|p| p.starts_with("attempts/"))
    );
    farm.assert_no_leftovers();
}

#[test]
fn a_test_failure_is_never_retried() {
    let farm = Farm::start(Setup {
        retry_errors: 3,
        ..setup("")
    });
    let id = farm.submit("fail", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "failed", "{q:#}");
    assert_eq!(q["attempt"], 1, "{q:#}");
    assert_eq!(q["attempts"].as_array().map(Vec::len), Some(0), "{q:#}");
    let timeline = farm.queue_log(&id);
    assert_eq!(
        timeline.matches("claimed by worker").count(),
        1,
        "{timeline}"
    );
}

#[test]
fn the_cli_s_wait_follows_the_queue_through_its_attempts() {
    let mut farm = Farm::start(Setup {
        retry_errors: 1,
        default_target: "hang-once".into(),
        ..setup(HANG_ONCE)
    });
    let cli = crate::cli::run::Cli::new(&farm.dir, &farm.base, Some(&farm.token));
    let waiting = cli.spawn(&[
        "submit",
        "main",
        "-s",
        "scenarios/smoke.xml",
        "--id",
        "att-cli",
        "--wait",
    ]);
    let build_log = farm.home.join("queues/att-cli/build.log");
    wait_for(Duration::from_secs(60), "attempt 1's build to hang", || {
        std::fs::read_to_string(&build_log)
            .ok()
            .filter(|l| l.contains("attempt one hangs"))
    });
    farm.stop_worker(0, Signal::SIGKILL);
    farm.start_worker(0);
    let out = waiting.finish(DEADLINE);
    assert_eq!(out.code, Some(0), "{out:?}");
    let retried = out
        .stdout
        .find("queue att-cli attempt 2: retrying after: worker lost (attempt 2 of 2)")
        .unwrap_or_else(|| panic!("no attempt line: {out:?}"));
    // The second attempt's verdicts come after the retry line.
    let boot = out.stdout.rfind("boot").unwrap_or(0);
    assert!(boot > retried, "{out:?}");
    assert!(out.stdout.contains("passed"), "{out:?}");
}
