//! The worker on a real PostgreSQL server (DESIGN section 13): every byte
//! of a queue's logs reaches `log_chunks` in order, a server restart in the
//! middle of a queue loses nothing, a run the farm ended meanwhile is
//! fenced (killed at once, nothing more written), and logs that cannot be
//! shipped are bounded. Each test has its own cluster, which it restarts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use testarena_domain::status::Status;
use testarena_domain::store::{self, logs};
use testarena_testkit::{PgCluster, PgDatabase};
use testarena_worker::db::Db;
use testarena_worker::process::{group_members, queue_processes};
use testarena_worker::workspace::{self, DbLogs};
use tokio::sync::watch;

use super::LONG;
use crate::support::*;

/// 4000 lines with bytes that are not UTF-8: about 180 KiB.
const NOISY: &str = "i=0; while [ $i -lt 4000 ]; do printf 'line %d \\377\\376 noise to fill the log up to a few chunks\\n' $i; i=$((i+1)); done";

/// Scenarios of these tests: `marker` is a file whose existence lets the
/// flood of `flood.xml` start.
fn scenarios(marker: &Path) -> Vec<(String, String)> {
    let marker = marker.display();
    let xml = |name: &str, tests: &str| {
        (
            format!("scenarios/{name}.xml"),
            format!(r#"<scenario name="{name}" timeout="600">{tests}</scenario>"#),
        )
    };
    vec![
        xml(
            "noisy",
            &format!(
                r#"<test name="noisy"><run>{}</run></test><test name="after"><run>echo after</run></test>"#,
                NOISY.replace('&', "&amp;").replace('<', "&lt;")
            ),
        ),
        xml(
            "ticks",
            r#"<test name="ticks"><run>i=0; while [ $i -lt 40 ]; do echo "tick $i"; i=$((i+1)); sleep 0.1; done</run></test><test name="after"><run>echo after</run></test>"#,
        ),
        xml(
            "forever",
            r#"<test name="forever"><run>i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.05; done</run></test><test name="after"><run>echo after</run></test>"#,
        ),
        xml(
            "flood",
            &format!(
                r#"<test name="flood"><run>while [ ! -f {marker} ]; do sleep 0.05; done; yes 0123456789abcdef | head -c 8000000; echo; sleep 600</run></test>"#
            ),
        ),
        xml(
            "boot",
            r#"<test name="boot"><boot/><expect>x</expect></test>"#,
        ),
        ("README".to_owned(), "the test repository\n".to_owned()),
    ]
}

/// A cluster of its own, a migrated database on it and a farm whose
/// worker uses it, building with `build`.
fn pg_farm(name: &str, build: &[&str]) -> (PgCluster, PgDatabase, Farm) {
    let cluster = PgCluster::new(Default::default());
    let database = cluster.create_database();
    let marker = std::env::temp_dir().join(format!("ta-{name}-{}.go", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let files = scenarios(&marker);
    let farm = Farm::create_on(
        name,
        target(build),
        |repo| {
            let files: Vec<(&str, &str)> = files
                .iter()
                .map(|(p, c)| (p.as_str(), c.as_str()))
                .collect();
            make_repo(repo, &files);
        },
        Some(database.url()),
    );
    (cluster, database, farm)
}

/// Every stored file of queue `id`, read back whole through the store.
fn stored(farm: &Farm, id: &str) -> BTreeMap<String, Vec<u8>> {
    let mut conn = farm.pool.get().unwrap();
    let mut out = BTreeMap::new();
    for file in logs::stored_files(&mut conn, id).unwrap() {
        let mut data = Vec::new();
        loop {
            let (part, _) =
                logs::read_stored(&mut conn, id, &file.path, data.len() as u64, 1 << 20).unwrap();
            if part.is_empty() {
                break;
            }
            data.extend_from_slice(&part);
        }
        assert_eq!(data.len() as i64, file.size, "{} has a hole", file.path);
        out.insert(file.path, data);
    }
    out
}

/// Stored size of one file (0 while none is stored).
fn stored_size(farm: &Farm, id: &str, path: &str) -> u64 {
    let mut conn = farm.pool.get().unwrap();
    logs::stored_files(&mut conn, id)
        .unwrap_or_default()
        .into_iter()
        .find(|f| f.path == path)
        .map_or(0, |f| f.size as u64)
}

/// The chunks as rows: each file's chunks follow each other exactly
/// (none overlaps, none is missing) and none is over 64 KiB. Returns how
/// many there are.
fn check_chunks(database: &PgDatabase, id: &str) -> usize {
    let rows = database.psql(&format!(
        "SELECT path, start, len FROM log_chunks WHERE queue_id = '{id}' ORDER BY path, start"
    ));
    let mut ends: BTreeMap<String, i64> = BTreeMap::new();
    let mut n = 0;
    for row in rows.lines().filter(|l| l.contains('|')) {
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        let (path, start, len): (&str, i64, i64) =
            (cols[0], cols[1].parse().unwrap(), cols[2].parse().unwrap());
        assert!(len as usize <= logs::MAX_CHUNK && len > 0, "{row}");
        let end = ends.entry(path.to_owned()).or_insert(0);
        assert_eq!(start, *end, "chunk of {path} at {start}, expected {end}");
        *end = start + len;
        n += 1;
    }
    n
}

/// Every file under `dir` as the app would list it.
fn local(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                visit(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(dir, dir, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_of_the_logs_reaches_the_database() {
    let (_cluster, database, mut farm) = pg_farm("pgbytes", &["sh", "-c", "seq 1 20000"]);
    farm.config.worker.keep_workspace = true;
    let id = farm.submit("main", &["scenarios/noisy.xml"], None);
    let started = Instant::now();
    let (status, reason) = farm.run_next().await;
    assert_eq!((status, reason.as_str()), (Status::Passed, ""));
    eprintln!("queue with ~300 KiB of logs ran in {:?}", started.elapsed());
    let on_disk = local(&farm.queue_dir(&id));
    let in_db = stored(&farm, &id);
    let noisy = format!("tasks/{id}.1/noisy.log");
    assert!(on_disk[&noisy].len() > 3 * logs::MAX_CHUNK, "a noisy test");
    assert!(std::str::from_utf8(&on_disk[&noisy]).is_err(), "not UTF-8");
    assert!(on_disk["build.log"].len() > logs::MAX_CHUNK);
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        in_db.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &on_disk {
        assert!(in_db[path] == *bytes, "{path} differs");
    }
    assert!(String::from_utf8_lossy(&in_db["queue.log"]).contains("finished passed"));
    assert!(String::from_utf8_lossy(&in_db["junit.xml"]).contains("<testcase"));
    let chunks = check_chunks(&database, &id);
    assert!(chunks >= 5, "{chunks} chunks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_queue_loses_nothing() {
    let (cluster, database, farm) = pg_farm("pgrestart", &["true"]);
    let id = farm.submit("main", &["scenarios/ticks.xml"], None);
    let (_tx, rx) = watch::channel(false);
    let run = farm.start_next(rx);
    let ticks = format!("tasks/{id}.1/ticks.log");
    let local_ticks = farm.queue_dir(&id).join(&ticks);
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    // The flush latency: how long a byte written locally takes to be stored.
    let mut lags = Vec::new();
    for _ in 0..10 {
        let written = wait_for("ticks on disk", LONG, || {
            let l = len(&local_ticks);
            (l > 0 && l > stored_size(&farm, &id, &ticks)).then_some(l)
        })
        .await;
        let at = Instant::now();
        wait_for("the ticks stored", LONG, || {
            (stored_size(&farm, &id, &ticks) >= written).then_some(())
        })
        .await;
        lags.push(at.elapsed());
    }
    lags.sort();
    eprintln!("flush latency: median {:?}, max {:?}", lags[5], lags[9]);
    assert!(lags[9] < Duration::from_millis(500), "{lags:?}");

    cluster.stop();
    let down = Instant::now();
    // Output goes on while the database is down, to the test's end (whose
    // result waits for the database).
    wait_for("the test's end while the database is down", LONG, || {
        std::fs::read_to_string(&local_ticks)
            .is_ok_and(|t| t.ends_with("tick 39\n"))
            .then_some(())
    })
    .await;
    assert!(
        !farm
            .queue_dir(&id)
            .join(format!("tasks/{id}.1/after.log"))
            .exists(),
        "the next test started before the result was stored"
    );
    cluster.start();
    eprintln!("database down for {:?}", down.elapsed());
    let (status, reason) = tokio::time::timeout(LONG, run).await.unwrap().unwrap();
    assert_eq!((status, reason.as_str()), (Status::Passed, ""));
    let expected: String = (0..40).map(|i| format!("tick {i}\n")).collect();
    let in_db = stored(&farm, &id);
    assert!(
        in_db[&ticks] == expected.as_bytes(),
        "{}",
        String::from_utf8_lossy(&in_db[&ticks])
    );
    assert_eq!(in_db[&format!("tasks/{id}.1/after.log")], b"after\n");
    let timeline = String::from_utf8_lossy(&in_db["queue.log"]);
    assert!(timeline.contains("finished passed"), "{timeline}");
    check_chunks(&database, &id);
    let (queue, _, tasks) = statuses(&farm.detail(&id));
    assert_eq!(queue, "passed");
    assert_eq!(tasks, vec![("passed".into(), None)]);
    let cases: Vec<String> = farm.detail(&id).tasks[0]
        .1
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(cases, vec!["ticks", "after"]);
    // The app reads the database: the worker's copies are gone.
    assert!(!farm.queue_dir(&id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_farm_ended_meanwhile_is_fenced() {
    let (_cluster, database, farm) = pg_farm("pgfence", &["true"]);
    let id = farm.submit("main", &["scenarios/forever.xml"], None);
    let (_tx, rx) = watch::channel(false);
    let run = farm.start_next(rx);
    let forever = format!("tasks/{id}.1/forever.log");
    wait_for("output stored", LONG, || {
        (stored_size(&farm, &id, &forever) > 0).then_some(())
    })
    .await;
    let pgid = farm.queue(&id).pgid.expect("the process group is recorded");
    assert!(!group_members(pgid).is_empty());
    // What another worker's recovery does to a worker it found lost.
    database.psql(&format!(
        "UPDATE queues SET status = 'error', status_reason = 'worker lost', \
         finished_at = now(), worker_id = NULL, pgid = NULL WHERE id = '{id}'"
    ));
    let fenced = Instant::now();
    wait_for("the fenced run's processes to go", LONG, || {
        (group_members(pgid).is_empty() && queue_processes(&id).is_empty()).then_some(())
    })
    .await;
    let took = fenced.elapsed();
    eprintln!("fenced run killed {took:?} after the farm ended it");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let (status, _) = tokio::time::timeout(LONG, run).await.unwrap().unwrap();
    assert_eq!(status, Status::Error);
    let chunks = check_chunks(&database, &id);
    let size = stored_size(&farm, &id, &forever);
    // Nothing more of it is written, however long one waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(check_chunks(&database, &id), chunks);
    assert_eq!(stored_size(&farm, &id, &forever), size);
    let detail = farm.detail(&id);
    assert_eq!(
        (
            detail.queue.status.as_str(),
            detail.queue.status_reason.as_deref()
        ),
        ("error", Some("worker lost"))
    );
    assert!(detail.tasks[0].1.is_empty(), "a result was written");
    assert_eq!(detail.tasks[0].0.status, "running", "the task was written");
    let in_db = stored(&farm, &id);
    assert!(!in_db.contains_key("junit.xml"));
    assert!(!String::from_utf8_lossy(&in_db["queue.log"]).contains("finished"));
    assert!(!farm.queue_dir(&id).exists(), "local files left");
    assert!(farm.slots.take().is_some(), "the slot is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_that_cannot_be_shipped_are_bounded() {
    let (cluster, database, mut farm) = pg_farm("pgbuffer", &["true"]);
    farm.config.worker.log_buffer_mib = 1;
    let id = farm.submit("main", &["scenarios/flood.xml"], None);
    let (_tx, rx) = watch::channel(false);
    let run = farm.start_next(rx);
    wait_for("the test's processes", LONG, || {
        (!queue_processes(&id).is_empty()).then_some(())
    })
    .await;
    wait_for("the process group recorded", LONG, || farm.queue(&id).pgid).await;
    cluster.stop();
    let marker = std::env::temp_dir().join(format!("ta-pgbuffer-{}.go", std::process::id()));
    std::fs::write(&marker, "go").unwrap();
    let flood = farm.queue_dir(&id).join(format!("tasks/{id}.1/flood.log"));
    wait_for("the flood on disk", LONG, || {
        (std::fs::metadata(&flood).map_or(0, |m| m.len()) >= 8_000_000).then_some(())
    })
    .await;
    // The queue stops itself while the database is still down.
    wait_for("the flood's processes to be stopped", LONG, || {
        queue_processes(&id).is_empty().then_some(())
    })
    .await;
    cluster.start();
    let (status, reason) = tokio::time::timeout(LONG, run).await.unwrap().unwrap();
    let _ = std::fs::remove_file(&marker);
    assert_eq!(status, Status::Error, "{reason}");
    assert!(
        reason.starts_with("log buffer full: ")
            && reason.ends_with(" MiB not sent while the database was unreachable"),
        "{reason}"
    );
    let detail = farm.detail(&id);
    assert_eq!(detail.queue.status_reason.as_deref(), Some(reason.as_str()));
    // What was on disk is stored all the same.
    let stored_flood = stored_size(&farm, &id, &format!("tasks/{id}.1/flood.log"));
    assert!(stored_flood >= 8_000_000, "{stored_flood}");
    check_chunks(&database, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_queue_keeps_each_attempt_s_logs_apart() {
    let (_cluster, database, mut farm) = pg_farm("pgretry", &["sh", "-c", "echo building"]);
    farm.config.worker.retry_errors = 1;
    if let Some(t) = farm.config.targets.get_mut("test") {
        t.qemu = strings(&["/nonexistent/qemu-system-xtensa"]);
    }
    let id = farm.submit("main", &["scenarios/boot.xml"], None);
    farm.run_next().await;
    let q = farm.queue(&id);
    assert_eq!((q.status(), q.attempt), (Status::Waiting, 2), "{q:?}");
    assert!(!farm.queue_dir(&id).exists(), "local files left");
    let (status, _) = farm.run_next().await;
    assert_eq!(status, Status::Error);
    let in_db = stored(&farm, &id);
    let build = b"$ sh -c echo building\nbuilding\n".as_slice();
    assert_eq!(in_db["build.log"], build);
    assert_eq!(in_db["attempts/1/build.log"], build);
    let timeline = String::from_utf8_lossy(&in_db["queue.log"]);
    for what in [
        "attempt 1 ended error: 1 of 1 tasks had errors; retrying after",
        "attempt 1's build.log moved to attempts/1/",
        ", attempt 2)",
        "finished error: 1 of 1 tasks had errors",
    ] {
        assert!(timeline.contains(what), "{what:?} not in {timeline}");
    }
    assert_eq!(
        timeline.matches("claimed by worker").count(),
        2,
        "{timeline}"
    );
    assert!(String::from_utf8_lossy(&in_db["junit.xml"]).contains("<testcase"));
    check_chunks(&database, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_stores_a_lost_queue_s_junit() {
    let (_cluster, _database, farm) = pg_farm("pglost", &["true"]);
    let id = farm.submit("main", &["scenarios/noisy.xml"], None);
    let mut conn = farm.pool.get().unwrap();
    // Claimed by a worker that is not registered: lost at once.
    store::claim_next(&mut conn, "w-gone").unwrap().unwrap();
    let me = farm.config.worker_id();
    let lost = store::mark_lost(&mut conn, &me, store::now(), Duration::from_secs(3), 0).unwrap();
    assert_eq!(lost.len(), 1);
    drop(conn);
    // What the daemon's recovery does on PostgreSQL.
    let db_logs = DbLogs {
        shipper: None,
        fence: None,
        keep_local: false,
        shutdown: watch::channel(false).1,
    };
    let db = Db::new(farm.pool.clone());
    workspace::end_queue(
        &farm.home(),
        &db,
        &id,
        None,
        None,
        async { true },
        Some(db_logs),
    )
    .await;
    let junit = String::from_utf8_lossy(&stored(&farm, &id)["junit.xml"]).into_owned();
    assert!(junit.contains("<testsuite"), "{junit}");
    assert!(!farm.queue_dir(&id).exists(), "local files left");
}
