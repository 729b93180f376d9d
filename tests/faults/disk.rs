//! A full disk: `home` on a small tmpfs, filled up while the flood
//! firmware prints its 3 MB. The queue ends `error` with a reason that says
//! the disk is full, the database stays intact, the app and the worker keep
//! answering, and queues run again once space is freed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::probe::{check_secrets, wait_for};
use super::{ADMIN, PASSWORD, fixture, shared};
use testarena_testkit::{Auth, Farm, Setup};

/// A tmpfs mounted for one test; unmounted (lazily) when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs {
                path: path.to_owned(),
            })
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Bytes free for unprivileged use on the filesystem of `path`.
fn available(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// Takes all but `leave` bytes of the free space with a file at `path`.
fn fill(path: &Path, leave: u64) -> u64 {
    let dir = path.parent().unwrap();
    let size = available(dir).saturating_sub(leave).max(4096);
    let status = Command::new("fallocate")
        .args(["-l", &size.to_string()])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "fallocate {size}");
    size
}

/// The lx106 profile as target `gated`, with an image step that waits for
/// the file `go`.
fn gated(go: &Path) -> String {
    let wait = r#"until [ -e "$0" ]; do sleep 0.02; done"#;
    testarena_testkit::profile::lx106_as(
        "gated",
        &format!(
            "image = [\"sh\", \"-c\", {wait:?}, {:?}]",
            go.to_string_lossy()
        ),
    )
}

#[test]
fn a_full_disk_ends_the_queue_with_a_clear_reason_and_nothing_else() {
    let _quiet = shared();
    let mount_dir = tempfile::Builder::new()
        .prefix("faults-tmpfs-")
        .tempdir()
        .unwrap();
    let home = mount_dir.path().join("home");
    let tmpfs = match Tmpfs::mount(&home, "64m") {
        Ok(t) => t,
        Err(reason) => {
            println!("SKIPPED disk full: cannot mount a tmpfs here ({reason})");
            return;
        }
    };
    // The firmware's target, with an image step that waits for a file:
    // the disk is filled between the build and the test, whatever the speed
    // of this machine.
    let go = mount_dir.path().join("go");
    let farm = Farm::start(Setup {
        home: Some(tmpfs.path.clone()),
        targets: gated(&go),
        default_target: "gated".into(),
        ..fixture()
    });
    // A token not used yet: its first use on the full disk wants to note it.
    let fresh = farm.new_token(ADMIN, PASSWORD);
    let id = farm.submit("flood", &["scenarios/unit.xml"]);
    // Once the firmware is built, only its test (3 MB of console) is left:
    // leave it 256 KiB.
    wait_for(
        Duration::from_secs(180),
        "the flood firmware to build",
        || farm.queue_log(&id).contains("image started").then_some(()),
    );
    let ballast = home.join("ballast");
    let filled = fill(&ballast, 256 * 1024);
    std::fs::write(&go, "").unwrap();
    let full_at = Instant::now();
    let q = farm.wait_final(&id, Duration::from_secs(60));
    let took = full_at.elapsed();
    let reason = q["status_reason"].as_str().unwrap_or("").to_owned();
    assert_eq!(q["status"], "error", "{q:#}");
    assert!(reason.starts_with("disk full: "), "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    assert_eq!(q["tasks"][0]["status"], "error", "{q:#}");
    assert!(
        !home.join("work").join(&id).exists(),
        "the workspace is gone"
    );
    assert!(
        farm.queue_log(&id).contains("finished error: disk full"),
        "{}",
        farm.queue_log(&id)
    );
    assert_eq!(farm.db_integrity(), "ok");
    assert!(farm.worker_running(0), "{}", farm.worker_log(0));

    // Now really full: the app answers reads, and writes with a 503.
    let ballast2 = home.join("ballast2");
    fill(&ballast2, 0);
    let health = farm.call_as(Auth::None, "GET", "/api/v1/health", None);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(farm.call("GET", "/api/v1/queues?limit=5", None).status, 200);
    let r = farm.call_as(Auth::Bearer(&fresh), "GET", "/api/v1/me", None);
    assert_eq!(
        r.status, 200,
        "a token's first use on a full disk: {}",
        r.body
    );
    assert_eq!(farm.queue(&id)["status"], "error");
    let r = farm.call(
        "POST",
        "/api/v1/queues",
        Some(&json!({"branch": "main", "scenarios": ["scenarios/quick.xml"]})),
    );
    let while_full = r.status;
    let stored_while_full = match r.status {
        201 => Some(r.json()["id"].as_str().unwrap().to_owned()),
        503 => {
            assert!(r.retry_after.is_some(), "503 without Retry-After");
            assert_eq!(r.json()["error"]["code"], "unavailable", "{}", r.body);
            None
        }
        other => panic!("a submission on a full disk: {other} {}", r.body),
    };
    assert!(farm.worker_running(0), "{}", farm.worker_log(0));

    // Space is freed: everything works again.
    std::fs::remove_file(&ballast2).unwrap();
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(
        farm.call("DELETE", &format!("/api/v1/queues/{id}"), None)
            .status,
        204
    );
    if let Some(earlier) = stored_while_full {
        farm.wait_final(&earlier, Duration::from_secs(120));
    }
    let next = farm.submit("main", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&next, Duration::from_secs(180));
    assert_eq!(q["status"], "passed", "{q:#}");
    assert_eq!(farm.db_integrity(), "ok");
    let skipped_note = farm.daemon_logs().contains("token use not recorded");
    println!(
        "disk full: 64 MiB tmpfs, {} MiB ballast; the flood queue ended error {:.1} s later: {reason:?}; database intact; on a completely full disk GET answered 200 (a token's first use {}), a submission {while_full}; after freeing space the next queue passed",
        filled >> 20,
        took.as_secs_f64(),
        if skipped_note {
            "could not be noted and was let through"
        } else {
            "was noted"
        },
    );
    check_secrets(&farm);
    farm.assert_no_leftovers();
    // The farm's daemons go before the mount.
    drop(farm);
    drop(tmpfs);
}
