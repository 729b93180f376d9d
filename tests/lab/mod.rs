//! The lab (DESIGN section 13.8): the app and two workers on three "hosts"
//! of this machine sharing nothing but one PostgreSQL database. Each worker
//! has its own home (no directory in common with the app or the other) and
//! runs in a network namespace the test makes, reaching PostgreSQL over its
//! own veth pair; the app and PostgreSQL stay in this namespace. Traffic
//! flows only over those links and loopback. A partition is a real
//! `ip link set down`. Needs root (CI runs as root); elsewhere each test
//! says why it did not run.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use testarena_testkit::netns::{self, NetNs};
use testarena_testkit::postgres::{Cluster, Database, Options};
use testarena_testkit::repo::Content;
use testarena_testkit::{Farm, Setup, procs, wait_for};

/// Lines the `counted` scenario prints, 10 ms apart.
const LINES: usize = 300;
/// Seconds without a heartbeat that make a worker lost.
const LOST_AFTER_S: u64 = 3;

/// `scenarios/counted.xml`: numbered lines, so that a log with a byte lost
/// or doubled shows it.
fn counted() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="counted" timeout="120">
  <test name="count" timeout="100">
    <run>i=0; while [ $i -lt {LINES} ]; do echo "counted line $i"; i=$((i+1)); sleep 0.01; done</run>
  </test>
</scenario>
"#
    )
}

/// What a lab is made of; dropped in field order: the farm's daemons
/// first, then the database, the server and the namespaces.
struct Lab {
    farm: Farm,
    db: Database,
    cluster: Cluster,
    nets: Vec<NetNs>,
}

fn lab() -> Option<Lab> {
    if !netns::available() {
        eprintln!("not run: the lab test makes network namespaces, which needs root and iproute2");
        return None;
    }
    let nets = vec![NetNs::make(), NetNs::make()];
    let cluster = Cluster::new(
        nets.iter()
            .fold(Options::default(), |o, n| o.listen(n.host_addr.into())),
    );
    let db = cluster.create_database();
    let setup = Setup {
        workers: vec!["w1".into(), "w2".into()],
        slots: 1,
        heartbeat_s: 1,
        lost_after_s: LOST_AFTER_S,
        worker_homes: true,
        worker_database: nets
            .iter()
            .map(|n| db.url_via(n.host_addr.into()))
            .collect(),
        worker_netns: nets.iter().map(NetNs::path).collect(),
        database: Some(db.url()),
        start_workers: false,
        ..Setup::small()
    };
    let mut farm = Farm::start(setup);
    farm.repo.commit(
        "main",
        &[("scenarios/counted.xml", Content::Text(counted()))],
    );
    farm.start_worker(0);
    farm.start_worker(1);
    Some(Lab {
        farm,
        db,
        cluster,
        nets,
    })
}

/// The console log of a queue's one test, as the app serves it once the
/// queue's files are complete: a worker stores `junit.xml` after its last
/// log bytes (what `X-Log-Complete` waits for too).
fn count_log(farm: &Farm, q: &Value) -> String {
    let id = q["id"].as_str().unwrap_or_default();
    let task = q["tasks"][0]["id"].as_str().unwrap_or_default();
    let logs = format!("/api/v1/queues/{id}/logs");
    wait_for(Duration::from_secs(15), "the queue's junit.xml", || {
        farm.get(&logs)
            .as_array()
            .is_some_and(|l| l.iter().any(|f| f["path"] == "junit.xml"))
            .then_some(())
    });
    farm.test_log(id, task, "count")
}

/// Every numbered line once, in order.
fn assert_counted(log: &str) {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("counted line "))
        .collect();
    let expected: Vec<String> = (0..LINES).map(|i| format!("counted line {i}")).collect();
    assert_eq!(lines, expected, "every line exactly once, in order");
}

/// The live processes of queue `id` (the worker marks them with it).
fn processes_of(id: &str) -> Vec<i32> {
    let mark = format!("TESTARENA_QUEUE_ID={id}");
    procs::processes()
        .filter(|p| p.environ.contains(&mark))
        .map(|p| p.pid)
        .collect()
}

#[test]
fn two_workers_on_their_own_hosts_serve_complete_logs_through_the_app() {
    let Some(lab) = lab() else { return };
    let farm = &lab.farm;
    // Four at once on two one-slot workers: both take some.
    let ids: Vec<String> = (0..4)
        .map(|_| farm.submit("main", &["scenarios/counted.xml"]))
        .collect();
    let mut workers = BTreeSet::new();
    for id in &ids {
        let q = farm.wait_final(id, Duration::from_secs(90));
        assert_eq!(q["status"], "passed", "{q:#}");
        workers.insert(q["worker"].as_str().unwrap_or_default().to_owned());
        // The app's home holds no log: what it serves came from the database.
        let app_copy = farm.home.join("queues").join(id);
        assert!(
            !app_copy.join("tasks").exists(),
            "{:?}",
            std::fs::read_dir(&app_copy).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        );
        assert_counted(&count_log(farm, &q));
    }
    assert_eq!(
        workers,
        BTreeSet::from(["w1".to_owned(), "w2".to_owned()]),
        "both workers ran queues"
    );
    // And the workers kept no copy once the queues ended.
    for i in 0..2 {
        let queues = farm.worker_home(i).join("queues");
        let left = std::fs::read_dir(&queues).map_or(0, |d| d.count());
        assert_eq!(left, 0, "worker {i} removed its copies");
    }
    farm.assert_no_leftovers();
}

#[test]
fn a_partitioned_worker_loses_its_queue_and_fences_itself_when_the_link_comes_back() {
    let Some(lab) = lab() else { return };
    let farm = &lab.farm;
    let id = farm.submit("main", &["scenarios/chatty.xml"]);
    let q = farm.wait_status(&id, "running", Duration::from_secs(60));
    let worker = q["worker"].as_str().unwrap_or_default().to_owned();
    let i = usize::from(worker == "w2");
    // Cut in the middle of the test itself, not of the build before it:
    // a worker cut off between steps waits for the database to record the
    // next step before starting it.
    let task = q["tasks"][0]["id"].as_str().unwrap_or_default().to_owned();
    let chatter = format!("/api/v1/queues/{id}/logs/tasks/{task}/chatter.log");
    wait_for(Duration::from_secs(30), "the chatty test to talk", || {
        let r = farm.call("GET", &chatter, None);
        (r.status == 200 && r.body.contains("chatty line 5") && !processes_of(&id).is_empty())
            .then_some(())
    });

    lab.nets[i].set_link(false);
    let cut = Instant::now();
    // The other worker's recovery ends it once the heartbeat is older
    // than lost_after_s, on the database's clock.
    let lost = farm.wait_final(&id, Duration::from_secs(60));
    assert_eq!(lost["status"], "error", "{lost:#}");
    assert_eq!(lost["status_reason"], "worker lost", "{lost:#}");
    eprintln!("lost after {:.1} s cut off", cut.elapsed().as_secs_f64());
    assert!(
        !processes_of(&id).is_empty(),
        "cut off, the worker cannot know yet: its processes still run\n{}",
        farm.worker_log(i)
    );
    // The recovering worker records the loss, junit.xml included.
    let logs = format!("/api/v1/queues/{id}/logs");
    let stored = wait_for(
        Duration::from_secs(10),
        "the lost queue's junit.xml",
        || {
            let list = farm.get(&logs);
            list.as_array()
                .is_some_and(|l| l.iter().any(|f| f["path"] == "junit.xml"))
                .then_some(list)
        },
    );

    lab.nets[i].set_link(true);
    let back = Instant::now();
    wait_for(
        Duration::from_secs(30),
        "the fenced queue's processes to be gone",
        || processes_of(&id).is_empty().then_some(()),
    );
    eprintln!(
        "processes gone {:.2} s after the link came back",
        back.elapsed().as_secs_f64()
    );
    wait_for(
        Duration::from_secs(10),
        "the worker to say it fenced the queue",
        || farm.worker_log(i).contains("fenced").then_some(()),
    );
    // It wrote nothing of the queue after the farm ended it.
    let after = farm.queue(&id);
    assert_eq!(after["status"], "error");
    assert_eq!(after["status_reason"], "worker lost");
    assert_eq!(
        farm.get(&logs),
        stored,
        "no log byte written after the queue was lost"
    );
    assert_eq!(after["tasks"][0]["tests"], lost["tasks"][0]["tests"]);
    // The farm goes on: the fenced worker takes new work.
    let next = farm.submit("main", &["scenarios/quick.xml"]);
    assert_eq!(
        farm.wait_final(&next, Duration::from_secs(60))["status"],
        "passed"
    );
    farm.assert_no_leftovers();
    // The cut-off worker logged its failed connections: never the password.
    let logs = farm.daemon_logs();
    assert!(
        logs.contains("database"),
        "the connection errors were logged"
    );
    assert!(
        !logs.contains(lab.db.password()),
        "the password is in a log line"
    );
}

#[test]
fn a_postgresql_restart_in_the_middle_of_a_queue_loses_no_byte_and_no_result() {
    let Some(lab) = lab() else { return };
    let farm = &lab.farm;
    let id = farm.submit("main", &["scenarios/counted.xml"]);
    farm.wait_status(&id, "running", Duration::from_secs(60));
    wait_for(
        Duration::from_secs(30),
        "the first lines to be stored",
        || {
            farm.get(&format!("/api/v1/queues/{id}"))["tasks"][0]["status"]
                .as_str()
                .is_some_and(|s| s == "running")
                .then_some(())
        },
    );
    lab.cluster.restart();
    let q = farm.wait_final(&id, Duration::from_secs(120));
    assert_eq!(q["status"], "passed", "{q:#}");
    assert_eq!(q["tasks"][0]["passed"], 1, "{q:#}");
    assert_counted(&count_log(farm, &q));
    farm.assert_no_leftovers();
}
