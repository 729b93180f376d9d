//! The build cache: a rerun of the same commit skips build and image (the
//! build step's marker file is not written again) and still passes with
//! the restored build directory; `no_cache` builds anyway; a changed build
//! argv misses the cache.

use nix::sys::signal::Signal;
use serde_json::json;
use testarena_testkit::{Farm, Setup};

use super::{DEADLINE, log, setup};

/// lx106 whose build and image steps append a line to `{home}/builds.log`
/// (the marker: a cached queue adds none).
fn cached_target(extra_arg: &str) -> String {
    format!(
        r#"
[targets.cached]
build = ["sh", "-c", "echo \"build $4\" >> \"$1/builds.log\" && make -C \"$2\" BUILD_DIR=\"$3\"", "sh", "{{home}}", "{{workspace}}", "{{build_dir}}", "{extra_arg}"]
image = ["sh", "-c", "echo image >> \"$1/builds.log\" && cp firmware.elf image.bin", "sh", "{{home}}"]
qemu = ["qemu-system-xtensa", "-M", "sim", "-cpu", "lx106", "-semihosting",
        "-nographic", "-serial", "none", "-monitor", "none", "-no-reboot",
        "-kernel", "{{build_dir}}/firmware.elf"]
"#
    )
}

fn builds(farm: &Farm) -> Vec<String> {
    std::fs::read_to_string(farm.home.join("builds.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn passed(farm: &Farm, extra: serde_json::Value) -> String {
    let id = farm.submit_with("main", &["scenarios/smoke.xml"], extra);
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}\n{}", farm.queue_log(&id));
    id
}

#[test]
fn a_cached_rerun_skips_the_build_and_a_changed_argv_misses() {
    let mut farm = Farm::start(Setup {
        build_cache_mib: 64,
        default_target: "cached".into(),
        ..setup(&cached_target("v1"))
    });
    let marker = farm.home.join("builds.log");
    let first = passed(&farm, json!({}));
    assert_eq!(builds(&farm), ["build v1", "image"]);
    let written = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let timeline = farm.queue_log(&first);
    assert!(
        timeline.contains("build stored in the cache ("),
        "{timeline}"
    );
    assert!(!timeline.contains("build cached"), "{timeline}");

    // The same commit again: restored, not built; smoke.xml's <run> tests
    // see build/firmware.elf and QEMU boots it.
    let second = passed(&farm, json!({}));
    assert_eq!(builds(&farm), ["build v1", "image"], "the build ran again");
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        written
    );
    let timeline = farm.queue_log(&second);
    let key = timeline
        .split("build cached (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no cache line in:\n{timeline}"));
    assert_eq!(key.len(), 16, "{timeline}");
    assert!(!timeline.contains("build started"), "{timeline}");
    assert!(!timeline.contains("image started"), "{timeline}");
    let build_log = log(&farm, &second, "build.log");
    assert!(
        build_log.contains(&format!("build cached ({key})")),
        "{build_log}"
    );
    assert!(build_log.contains("build and image skipped"), "{build_log}");
    assert_eq!(farm.queue(&second)["no_cache"], false);

    // `no_cache` builds anyway.
    let third = passed(&farm, json!({"no_cache": true}));
    assert_eq!(builds(&farm).len(), 4, "{:?}", builds(&farm));
    assert_eq!(farm.queue(&third)["no_cache"], true);
    assert!(log(&farm, &third, "build.log").contains("build cache bypassed (no_cache"));

    // A changed build argv (the worker's config edited) misses the cache.
    let config = farm.config_path(Some(0));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"v1\""), "{text}");
    std::fs::write(&config, text.replace("\"v1\"", "\"v2\"")).unwrap();
    farm.stop_worker(0, Signal::SIGTERM);
    farm.start_worker(0);
    let fourth = passed(&farm, json!({}));
    assert_eq!(builds(&farm).last().map(String::as_str), Some("image"));
    assert!(
        builds(&farm).contains(&"build v2".to_owned()),
        "{:?}",
        builds(&farm)
    );
    let timeline = farm.queue_log(&fourth);
    assert!(!timeline.contains("build cached"), "{timeline}");
    let entries = std::fs::read_dir(farm.home.join("cache/build"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(entries, 2, "one entry per key");
    farm.assert_no_leftovers();
}
