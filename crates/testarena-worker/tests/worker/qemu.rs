//! Real firmware on real QEMU: the fixture of `tests/fixtures/firmware`
//! built with Debian's lx106 GCC and booted by `qemu-system-xtensa -M sim`
//! with the `lx106` target profile of `docs/LX106.md`. Skipped (with a
//! note) on a machine without those tools.

use std::path::PathBuf;
use std::process::Command;

use testarena_domain::config::TargetConfig;
use testarena_domain::status::Status;
use testarena_worker::process::queue_processes;

use crate::support::*;

fn fixture_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/make-repo.sh")
}

/// The lx106 target of `docs/LX106.md`.
fn lx106() -> TargetConfig {
    TargetConfig {
        env_script: None,
        build: strings(&["make", "-C", "{workspace}", "BUILD_DIR={build_dir}"]),
        image: None,
        qemu: strings(&[
            "qemu-system-xtensa",
            "-M",
            "sim",
            "-cpu",
            "lx106",
            "-semihosting",
            "-nographic",
            "-serial",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-kernel",
            "{build_dir}/firmware.elf",
        ]),
        fail_on: strings(&[
            "Guru Meditation Error",
            "abort() was called",
            "assert failed:",
            "Rebooting...",
        ]),
    }
}

/// A farm over the fixture repository, or `None` when the tools are missing.
fn fixture_farm(name: &str) -> Option<Farm> {
    let tools = ["qemu-system-xtensa", "xtensa-lx106-elf-gcc", "make"];
    if let Some(missing) = tools.iter().find(|t| !have(t)) {
        eprintln!("skipped: {missing} is not installed");
        return None;
    }
    if !fixture_script().exists() {
        eprintln!("skipped: no firmware fixture");
        return None;
    }
    Some(Farm::create(name, lx106(), |repo| {
        let out = Command::new(fixture_script()).arg(repo).output().unwrap();
        assert!(out.status.success(), "make-repo.sh: {out:?}");
    }))
}

/// Runs `scenarios/unit.xml` on `branch`; returns the queue's id.
async fn run_unit(farm: &Farm, branch: &str) -> (String, Status, String) {
    let id = farm.submit(branch, &["scenarios/unit.xml"], None);
    let (status, reason) = farm.run_next().await;
    assert!(queue_processes(&id).is_empty(), "QEMU survived its queue");
    (id, status, reason)
}

fn cases(farm: &Farm, id: &str) -> Vec<(String, String, Option<String>)> {
    farm.detail(id).tasks[0]
        .1
        .iter()
        .map(|c| (c.name.clone(), c.status.clone(), c.message.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_a_passing_firmware_gives_its_unity_cases() {
    let Some(farm) = fixture_farm("qemu-pass") else {
        return;
    };
    let (id, status, reason) = run_unit(&farm, "main").await;
    assert_eq!((status, reason.as_str()), (Status::Passed, ""));
    let cases = cases(&farm, &id);
    let count = |s: &str| cases.iter().filter(|c| c.1 == s).count();
    // Four Unity passes and the `unit` test itself; one ignored case.
    assert_eq!(
        (count("passed"), count("skipped"), count("failed")),
        (5, 1, 0),
        "{cases:?}"
    );
    assert!(
        cases
            .iter()
            .all(|c| c.0 == "unit" || c.0.starts_with("unit/"))
    );
    let task = &farm.detail(&id).tasks[0].0;
    assert_eq!((task.passed, task.failed, task.skipped), (5, 0, 1));
    let console = farm.read(farm.queue_dir(&id).join(format!("tasks/{id}.1/unit.log")));
    assert!(
        console.contains("5 Tests 0 Failures 1 Ignored"),
        "{console}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_a_failing_unity_case_fails_the_test_with_its_message() {
    let Some(farm) = fixture_farm("qemu-fail") else {
        return;
    };
    let (id, status, _) = run_unit(&farm, "fail").await;
    assert_eq!(status, Status::Failed);
    let cases = cases(&farm, &id);
    assert!(
        cases.contains(&(
            "unit/test_the_answer".into(),
            "failed".into(),
            Some("Expected 42 Was 41".into())
        )),
        "{cases:?}"
    );
    assert!(cases.contains(&(
        "unit".into(),
        "failed".into(),
        Some("1 unity failures".into())
    )));
    let task = &farm.detail(&id).tasks[0].0;
    assert_eq!(task.status_reason.as_deref(), Some("1 unity failures"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_a_crash_is_reported_with_its_line() {
    let Some(farm) = fixture_farm("qemu-crash") else {
        return;
    };
    let (id, status, _) = run_unit(&farm, "crash").await;
    assert_eq!(status, Status::Failed);
    let unit = cases(&farm, &id)
        .into_iter()
        .find(|c| c.0 == "unit")
        .unwrap();
    let message = unit.2.unwrap_or_default();
    assert!(
        message.starts_with("crash: Guru Meditation Error: Core  0 panic'ed (LoadProhibited)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_a_hang_hits_the_quiet_timeout() {
    let Some(farm) = fixture_farm("qemu-hang") else {
        return;
    };
    let (id, status, _) = run_unit(&farm, "hang").await;
    assert_eq!(status, Status::Failed);
    let unit = cases(&farm, &id)
        .into_iter()
        .find(|c| c.0 == "unit")
        .unwrap();
    assert_eq!(unit.2.as_deref(), Some("no output for 5 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_a_build_error_fails_the_build() {
    let Some(farm) = fixture_farm("qemu-build") else {
        return;
    };
    let (id, status, reason) = run_unit(&farm, "build-error").await;
    assert_eq!(
        (status, reason.as_str()),
        (Status::Failed, "build failed (exit 2)")
    );
    let log = farm.read(farm.queue_dir(&id).join("build.log"));
    assert!(log.contains("error: expected ';'"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_a_flood_of_output_is_logged_byte_for_byte() {
    let Some(farm) = fixture_farm("qemu-flood") else {
        return;
    };
    let (id, status, reason) = run_unit(&farm, "flood").await;
    assert_eq!((status, reason.as_str()), (Status::Passed, ""));
    let log = std::fs::read(farm.queue_dir(&id).join(format!("tasks/{id}.1/unit.log"))).unwrap();
    assert!(log.len() > 3_000_000, "{} bytes", log.len());
    // Bytes that are not UTF-8 are kept as they came.
    assert!(log.windows(2).any(|w| w == b"\xff\xfe"));
}
