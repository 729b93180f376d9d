//! The real `testarena-worker` binary: killed with SIGKILL and restarted,
//! stopped with SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testarena_worker::process::queue_processes;

use crate::LONG;
use crate::support::*;

/// The worker binary on `farm`'s config, its log in the farm's directory.
fn start_worker(farm: &Farm, run: u32) -> Child {
    let log = std::fs::File::create(farm.dir.path().join(format!("worker-{run}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_testarena-worker"))
        .arg("--config")
        .arg(farm.config_file())
        .env("RUST_LOG", "info")
        .env_remove("TESTARENA_HOME")
        .env_remove("TESTARENA_DATABASE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Waits for `child` to exit, up to `limit`.
async fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    wait_for("the worker to exit", limit, || child.try_wait().unwrap()).await
}

async fn wait_running(farm: &Farm, id: &str, processes: usize) {
    wait_for("the queue's processes", LONG, || {
        (farm.queue(id).status == "running" && queue_processes(id).len() >= processes).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_restarted_marks_its_queue_lost_and_kills_the_leftovers() {
    let farm = Farm::new("sigkill", target(&["true"]));
    let id = farm.submit("main", &["scenarios/sleep.xml"], None);
    let mut worker = start_worker(&farm, 1);
    // `sh` and its two background sleepers.
    wait_running(&farm, &id, 3).await;
    signal(&worker, Signal::SIGKILL);
    worker.wait().unwrap();
    // `sh` dies with the worker (parent-death signal); its children, which
    // do not inherit that, are left for the next worker to find.
    let orphans = wait_for("sh to die with the worker", LONG, || {
        let left = queue_processes(&id);
        (left.len() == 2).then_some(left)
    })
    .await;
    assert_eq!(farm.queue(&id).status, "running");
    // What its build would have left: the restarted worker removes it.
    let leftover = farm.workspace().join("build/leftover.o");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, "object").unwrap();

    let mut worker = start_worker(&farm, 2);
    wait_for("the queue to be marked lost", LONG, || {
        (farm.queue(&id).status != "running").then_some(())
    })
    .await;
    let (queue, reason, tasks) = statuses(&farm.detail(&id));
    assert_eq!(
        (queue.as_str(), reason.as_deref()),
        ("error", Some("worker lost"))
    );
    assert_eq!(tasks, vec![("error".into(), Some("worker lost".into()))]);
    wait_for(
        "the leftovers to be killed",
        Duration::from_secs(GRACE_S + 5),
        || queue_processes(&id).is_empty().then_some(()),
    )
    .await;
    for pid in orphans {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid));
    }
    // The recovery's end of the queue's files: junit.xml, as a queue's own
    // end, after the timeline's last line.
    let junit = farm.queue_dir(&id).join("junit.xml");
    wait_for("the lost queue's junit.xml", LONG, || {
        std::fs::read_to_string(&junit)
            .ok()
            .filter(|xml| xml.contains("worker lost"))
    })
    .await;
    assert!(
        farm.read(farm.queue_dir(&id).join("queue.log"))
            .contains("worker lost")
    );
    assert!(!farm.workspace().join("build").exists());
    assert!(
        farm.workspace().join("README").is_file(),
        "the tree is kept"
    );
    signal(&worker, Signal::SIGTERM);
    assert!(wait_exit(&mut worker, LONG).await.success());
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_aborts_the_running_queue_and_exits_in_time() {
    let farm = Farm::new("sigterm", target(&["true"]));
    let id = farm.submit("main", &["scenarios/sleep.xml"], None);
    let mut worker = start_worker(&farm, 1);
    wait_running(&farm, &id, 3).await;
    let pgid = farm.queue(&id).pgid.expect("a recorded process group");
    signal(&worker, Signal::SIGTERM);
    let asked = Instant::now();
    let status = wait_exit(&mut worker, Duration::from_secs(GRACE_S + 5)).await;
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(GRACE_S + 2), "took {took:?}");
    let (queue, reason, tasks) = statuses(&farm.detail(&id));
    assert_eq!(
        (queue.as_str(), reason.as_deref()),
        ("aborted", Some("worker stopped"))
    );
    assert_eq!(
        tasks,
        vec![("aborted".into(), Some("worker stopped".into()))]
    );
    assert!(queue_processes(&id).is_empty());
    assert!(testarena_worker::process::group_members(pgid).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_queues_run_at_once_and_all_stop_on_sigterm() {
    let mut farm = Farm::new("slots", target(&["true"]));
    farm.config.worker.slots = 2;
    let ids: Vec<String> = ["-a", "-b", "-c"]
        .iter()
        .map(|s| farm.submit_as(s, "main", &["scenarios/sleep.xml"], None))
        .collect();
    let mut worker = start_worker(&farm, 1);
    wait_running(&farm, &ids[0], 3).await;
    wait_running(&farm, &ids[1], 3).await;
    // Two slots: the third waits.
    assert_eq!(farm.queue(&ids[2]).status, "waiting");
    signal(&worker, Signal::SIGTERM);
    let status = wait_exit(&mut worker, Duration::from_secs(GRACE_S + 5)).await;
    assert!(status.success());
    for id in &ids[..2] {
        let q = farm.queue(id);
        assert_eq!(
            (q.status.as_str(), q.status_reason.as_deref()),
            ("aborted", Some("worker stopped"))
        );
        assert!(queue_processes(id).is_empty());
    }
    assert_eq!(farm.queue(&ids[2]).status, "waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_queues_it_claims() {
    let farm = Farm::new("daemon", target(&["true"]));
    let id = farm.submit("main", &["scenarios/pass.xml"], None);
    let mut worker = start_worker(&farm, 1);
    wait_for("the queue to pass", LONG, || {
        let q = farm.queue(&id);
        (q.status != "running" && q.status != "waiting").then_some(())
    })
    .await;
    assert_eq!(farm.queue(&id).status, "passed");
    assert_eq!(farm.queue(&id).worker_id.as_deref(), Some("w-daemon"));
    signal(&worker, Signal::SIGTERM);
    assert!(wait_exit(&mut worker, LONG).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_refuses_an_unmigrated_database() {
    let farm = Farm::new("unmigrated", target(&["true"]));
    let mut config = farm.config.clone();
    config.database = Some(
        farm.dir
            .path()
            .join("empty.db")
            .to_string_lossy()
            .into_owned(),
    );
    let path = farm.dir.path().join("unmigrated.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_testarena-worker"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no TestArena schema") && err.contains("testarena-app migrate"),
        "{err}"
    );
}
