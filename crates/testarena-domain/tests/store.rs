//! The store against a real database: one freshly migrated SQLite file per
//! test, or with `TESTARENA_TEST_BACKEND=postgres` one fresh database of a
//! throwaway PostgreSQL cluster (`scripts/test.sh` runs both).

// Test helpers outside #[test] functions unwrap too: a failure should stop
// the test where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use std::process::Command;
use std::time::Duration;

use testarena_domain::db::{self, DbPool};
use testarena_domain::models::{NewQueue, NewTask, NewTestCase};
use testarena_domain::status::Status;
use testarena_domain::store::{self, AbortOutcome, QueueFilter, StoreError};
use testarena_testkit::TestDatabase;

#[path = "store/attempts.rs"]
mod attempts;
#[path = "store/snapshot.rs"]
mod snapshot;

/// An admin may change any queue.
const ADMIN: store::Actor<'static> = store::Actor {
    name: "admin",
    admin: true,
};

struct TestDb {
    pool: DbPool,
    /// The `database` value: a SQLite path or a PostgreSQL URL.
    url: String,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

fn test_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::for_this_run(&dir.path().join("testarena.db"));
    let location = db::Location::parse(database.url(), None).unwrap();
    let pool = db::open_migrated(&location, db::PoolOptions::sized(8)).unwrap();
    TestDb {
        pool,
        url: database.url().to_owned(),
        _db: database,
        _dir: dir,
    }
}

fn new_queue(id: &str) -> NewQueue {
    NewQueue {
        id: id.to_owned(),
        repo: "firmware".into(),
        branch: "main".into(),
        commit_sha: None,
        target: "lx106".into(),
        owner: "ann".into(),
        priority: 0,
        timeout_s: None,
        created_at: store::now(),
        no_cache: false,
    }
}

fn tasks(queue: &str, n: usize) -> Vec<NewTask> {
    (1..=n)
        .map(|i| NewTask {
            id: format!("{queue}.{i}"),
            scenario: format!("scenarios/s{i}.xml"),
            only: None,
        })
        .collect()
}

fn add(db: &TestDb, id: &str, n_tasks: usize) {
    let mut conn = db.pool.get().unwrap();
    store::create_queue(&mut conn, &new_queue(id), &tasks(id, n_tasks)).unwrap();
}

#[test]
fn a_queue_is_stored_with_its_tasks() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    let row = store::create_queue(&mut conn, &new_queue("q1"), &tasks("q1", 3)).unwrap();
    assert_eq!(row.status(), Status::Waiting);
    let detail = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    assert_eq!(detail.queue, row);
    let ids: Vec<_> = detail.tasks.iter().map(|(t, _)| t.id.as_str()).collect();
    assert_eq!(ids, ["q1.1", "q1.2", "q1.3"]);
    assert!(
        detail
            .tasks
            .iter()
            .all(|(t, c)| t.status() == Status::Waiting && c.is_empty())
    );
    assert!(store::queue_detail(&mut conn, "nope").unwrap().is_none());
    let (task, _) = store::get_task(&mut conn, "q1.2").unwrap().unwrap();
    assert_eq!(task.scenario, "scenarios/s2.xml");
}

#[test]
fn duplicate_ids_conflict_and_store_nothing() {
    let db = test_db();
    add(&db, "q1", 2);
    let mut conn = db.pool.get().unwrap();
    let err = store::create_queue(&mut conn, &new_queue("q1"), &tasks("x", 1)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("queue \"q1\"")),
        "{err}"
    );
    // A new queue whose second task id is taken: the whole creation is undone.
    let clash = vec![
        NewTask {
            id: "q2.1".into(),
            scenario: "a.xml".into(),
            only: None,
        },
        NewTask {
            id: "q1.1".into(),
            scenario: "b.xml".into(),
            only: None,
        },
    ];
    let err = store::create_queue(&mut conn, &new_queue("q2"), &clash).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("task \"q1.1\"")),
        "{err}"
    );
    assert!(store::get_queue(&mut conn, "q2").unwrap().is_none());
    assert!(store::get_task(&mut conn, "q2.1").unwrap().is_none());
    // What was stored before is intact.
    assert_eq!(
        store::queue_detail(&mut conn, "q1")
            .unwrap()
            .unwrap()
            .tasks
            .len(),
        2
    );
}

#[test]
fn pages_have_no_gaps_or_repeats_while_rows_are_inserted() {
    let db = test_db();
    for i in 0..25 {
        add(&db, &format!("q{i:03}"), 0);
    }
    let mut conn = db.pool.get().unwrap();
    let mut seen = Vec::new();
    let mut filter = QueueFilter {
        limit: 10,
        ..Default::default()
    };
    let mut extra = 0;
    loop {
        let page = store::list_queues(&mut conn, &filter).unwrap();
        seen.extend(page.items.iter().map(|q| q.id.clone()));
        // New queues arrive between pages: they must not shift the pages.
        for _ in 0..3 {
            store::create_queue(&mut conn, &new_queue(&format!("new{extra}")), &[]).unwrap();
            extra += 1;
        }
        match page.next {
            Some(next) => filter.before = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("q{i:03}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn lists_filter_by_status_owner_and_branch() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    for (id, owner, branch) in [
        ("a", "ann", "main"),
        ("b", "bob", "main"),
        ("c", "ann", "dev"),
    ] {
        let q = NewQueue {
            owner: owner.into(),
            branch: branch.into(),
            commit_sha: None,
            ..new_queue(id)
        };
        store::create_queue(&mut conn, &q, &[]).unwrap();
    }
    store::request_abort(&mut conn, "b", "aborted by bob", ADMIN).unwrap();
    let ids = |f: QueueFilter| -> Vec<String> {
        let mut conn = db.pool.get().unwrap();
        let f = QueueFilter { limit: 50, ..f };
        store::list_queues(&mut conn, &f)
            .unwrap()
            .items
            .into_iter()
            .map(|q| q.id)
            .collect()
    };
    assert_eq!(ids(QueueFilter::default()), ["c", "b", "a"]);
    assert_eq!(
        ids(QueueFilter {
            owner: Some("ann".into()),
            ..Default::default()
        }),
        ["c", "a"]
    );
    assert_eq!(
        ids(QueueFilter {
            branch: Some("main".into()),
            ..Default::default()
        }),
        ["b", "a"]
    );
    assert_eq!(
        ids(QueueFilter {
            status: Some(Status::Aborted),
            ..Default::default()
        }),
        ["b"]
    );
    assert!(
        ids(QueueFilter {
            owner: Some("zed".into()),
            ..Default::default()
        })
        .is_empty()
    );
    // Limits are clamped to 1..=200.
    let page = store::list_queues(
        &mut conn,
        &QueueFilter {
            limit: 0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next.is_some());
}

#[test]
fn the_claim_takes_priority_then_age() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    for (id, priority) in [("old", 0), ("urgent", 5), ("young", 0), ("urgent2", 5)] {
        store::create_queue(
            &mut conn,
            &NewQueue {
                priority,
                ..new_queue(id)
            },
            &[],
        )
        .unwrap();
    }
    assert_eq!(store::queue_position(&mut conn, "young").unwrap(), Some(4));
    assert_eq!(store::queue_position(&mut conn, "urgent").unwrap(), Some(1));
    // The page's positions in one query agree with one at a time.
    let ids = ["young", "urgent", "old", "urgent2", "nope"];
    let places = store::queue_positions(&mut conn, &ids).unwrap();
    assert_eq!(places.len(), 4, "{places:?}");
    for id in &ids[..4] {
        assert_eq!(
            places.get(*id).copied(),
            store::queue_position(&mut conn, id).unwrap(),
            "{id}"
        );
    }
    store::claim_next(&mut conn, "w1").unwrap();
    let places = store::queue_positions(&mut conn, &ids).unwrap();
    assert_eq!(places.get("urgent"), None, "running: no place in line");
    assert_eq!(places.get("urgent2"), Some(&1));
    assert_eq!(places.get("young"), Some(&3));
    let mut order = vec!["urgent".to_owned()];
    while let Some(q) = store::claim_next(&mut conn, "w1").unwrap() {
        assert_eq!(q.status(), Status::Running);
        assert_eq!(q.worker_id.as_deref(), Some("w1"));
        assert!(q.started_at.is_some());
        order.push(q.id);
    }
    assert_eq!(order, ["urgent", "urgent2", "old", "young"]);
    assert_eq!(store::queue_position(&mut conn, "young").unwrap(), None);
}

fn claim_all(pool: &DbPool, worker: &str) -> Vec<String> {
    let mut conn = pool.get().unwrap();
    let mut claimed = Vec::new();
    while let Some(q) = store::claim_next(&mut conn, worker).unwrap() {
        claimed.push(q.id);
    }
    claimed
}

fn fill(db: &TestDb, n: usize) {
    let mut conn = db.pool.get().unwrap();
    for i in 0..n {
        store::create_queue(&mut conn, &new_queue(&format!("q{i}")), &[]).unwrap();
    }
}

fn assert_each_claimed_once(claims: Vec<String>, n: usize) {
    let unique: HashSet<_> = claims.iter().cloned().collect();
    assert_eq!(claims.len(), n, "every queue claimed exactly once");
    assert_eq!(unique.len(), n, "no queue claimed twice");
}

#[test]
fn four_threads_claim_each_queue_exactly_once() {
    let db = test_db();
    fill(&db, 300);
    let claims: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let pool = &db.pool;
                s.spawn(move || claim_all(pool, &format!("w{w}")))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_each_claimed_once(claims, 300);
}

const CLAIM_CHILD: &str = "TESTARENA_TEST_CLAIM_DB";

/// Not a test on its own: the body of the child processes of
/// `four_workers_of_two_slots_claim_each_queue_exactly_once`, a worker
/// whose two slots claim at once.
#[test]
fn claim_child() {
    let Ok(url) = std::env::var(CLAIM_CHILD) else {
        return;
    };
    let location = db::Location::parse(&url, None).unwrap();
    let pool = db::open_pool(&location, db::PoolOptions::sized(2)).unwrap();
    let worker = format!("p{}", std::process::id());
    let claimed: Vec<String> = std::thread::scope(|s| {
        let slots: Vec<_> = (0..2)
            .map(|_| s.spawn(|| claim_all(&pool, &worker)))
            .collect();
        slots.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    // On a line of its own: libtest prints its "test claim_child ..." around it.
    println!("\nCLAIMED {}", claimed.join(" "));
}

#[test]
fn four_workers_of_two_slots_claim_each_queue_exactly_once() {
    let db = test_db();
    fill(&db, 300);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "claim_child", "--nocapture", "--test-threads=1"])
                .env(CLAIM_CHILD, &db.url)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut claims = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}");
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CLAIMED "))
            .unwrap_or_default();
        claims.extend(line.split_whitespace().map(str::to_owned));
    }
    assert_each_claimed_once(claims, 300);
}

#[test]
fn aborting_a_waiting_queue_is_immediate() {
    let db = test_db();
    add(&db, "q1", 2);
    let mut conn = db.pool.get().unwrap();
    let AbortOutcome::Aborted(aborted) =
        store::request_abort(&mut conn, "q1", "aborted by ann", ADMIN).unwrap()
    else {
        panic!("expected an immediate abort");
    };
    let row = &aborted.queue;
    assert_eq!(row.status(), Status::Aborted);
    assert_eq!(row.status_reason.as_deref(), Some("aborted by ann"));
    assert!(row.finished_at.is_some());
    let detail = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    assert_eq!(detail, aborted, "the answer is the queue as stored");
    for (task, _) in &detail.tasks {
        assert_eq!(task.status(), Status::Skipped);
        assert_eq!(task.status_reason.as_deref(), Some("not reached"));
    }
    // Final now: a second abort is refused, and nothing leaves aborted.
    assert!(matches!(
        store::request_abort(&mut conn, "q1", "again", ADMIN).unwrap(),
        AbortOutcome::AlreadyFinal(_)
    ));
    assert!(store::claim_next(&mut conn, "w").unwrap().is_none());
    let err = store::finish_queue(&mut conn, "q1", Status::Passed, "").unwrap_err();
    assert!(matches!(err, StoreError::Illegal(_)), "{err}");
}

#[test]
fn aborting_a_running_queue_is_a_request_the_worker_polls() {
    let db = test_db();
    add(&db, "q1", 2);
    let mut conn = db.pool.get().unwrap();
    store::claim_next(&mut conn, "w1").unwrap().unwrap();
    assert_eq!(store::abort_reason(&mut conn, "q1").unwrap(), None);
    let AbortOutcome::Requested(detail) =
        store::request_abort(&mut conn, "q1", "aborted by ann", ADMIN).unwrap()
    else {
        panic!("expected a request");
    };
    assert_eq!(detail.queue.status(), Status::Running);
    assert_eq!(detail.tasks.len(), 2);
    store::request_abort(&mut conn, "q1", "aborted by admin", ADMIN).unwrap();
    assert_eq!(
        store::abort_reason(&mut conn, "q1").unwrap().as_deref(),
        Some("aborted by ann")
    );
    // The worker stops the first task and ends the queue.
    store::set_task(&mut conn, "q1.1", Status::Running, None).unwrap();
    let row = store::finish_queue(&mut conn, "q1", Status::Aborted, "aborted by ann").unwrap();
    assert_eq!(row.status(), Status::Aborted);
    let detail = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    let statuses: Vec<_> = detail
        .tasks
        .iter()
        .map(|(t, _)| (t.status(), t.status_reason.clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (Status::Aborted, Some("aborted by ann".to_owned())),
            (Status::Skipped, Some("not reached".to_owned())),
        ]
    );
}

#[test]
fn a_run_records_commit_results_and_counters() {
    let db = test_db();
    add(&db, "q1", 1);
    let mut conn = db.pool.get().unwrap();
    store::claim_next(&mut conn, "w1").unwrap().unwrap();
    store::set_commit(&mut conn, "q1", &"a".repeat(40)).unwrap();
    store::set_pgid(&mut conn, "q1", Some(4242)).unwrap();
    // A task cannot end before it runs.
    let err = store::set_task(&mut conn, "q1.1", Status::Passed, None).unwrap_err();
    assert!(matches!(err, StoreError::Illegal(_)), "{err}");
    store::set_task(&mut conn, "q1.1", Status::Running, None).unwrap();
    let case = |name: &str, status, message: Option<&str>| NewTestCase {
        name: name.into(),
        status,
        duration_ms: Some(12),
        message: message.map(str::to_owned),
    };
    for c in [
        case("unit/a", Status::Passed, None),
        case("unit/b", Status::Failed, Some("Expected 42 Was 41")),
        case("unit/c", Status::Skipped, None),
        case("unit", Status::Failed, Some("1 unity failures")),
    ] {
        store::record_test_case(&mut conn, "q1.1", &c).unwrap();
    }
    // The same name again replaces the result.
    store::record_test_case(&mut conn, "q1.1", &case("unit/b", Status::Passed, None)).unwrap();
    let err =
        store::record_test_case(&mut conn, "nope", &case("x", Status::Passed, None)).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err =
        store::record_test_case(&mut conn, "q1.1", &case("x", Status::Running, None)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    store::set_task(&mut conn, "q1.1", Status::Failed, Some("1 unity failures")).unwrap();
    let row = store::finish_queue(&mut conn, "q1", Status::Failed, "1 unity failures").unwrap();
    assert_eq!(row.commit_sha.as_deref(), Some("a".repeat(40).as_str()));
    assert_eq!(row.pgid, None, "finishing clears the process group");
    let detail = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    let (task, cases) = &detail.tasks[0];
    assert_eq!((task.passed, task.failed, task.skipped), (2, 1, 1));
    assert!(task.started_at.is_some() && task.finished_at.is_some());
    let names: Vec<_> = cases
        .iter()
        .map(|c| (c.name.as_str(), c.status()))
        .collect();
    assert_eq!(
        names,
        [
            ("unit/a", Status::Passed),
            ("unit/b", Status::Passed),
            ("unit/c", Status::Skipped),
            ("unit", Status::Failed),
        ]
    );
    let counts = store::count_by_status(&mut conn).unwrap();
    assert_eq!(counts, [(Status::Failed, 1)]);
}

#[test]
fn delete_refuses_running_queues_and_cascades() {
    let db = test_db();
    add(&db, "q1", 2);
    let mut conn = db.pool.get().unwrap();
    store::claim_next(&mut conn, "w1").unwrap();
    store::set_task(&mut conn, "q1.1", Status::Running, None).unwrap();
    let case = NewTestCase {
        name: "t".into(),
        status: Status::Passed,
        duration_ms: None,
        message: None,
    };
    store::record_test_case(&mut conn, "q1.1", &case).unwrap();
    let err = store::delete_queue(&mut conn, "q1", ADMIN).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("abort it first")),
        "{err}"
    );
    store::finish_queue(&mut conn, "q1", Status::Passed, "").unwrap();
    let deleted = store::delete_queue(&mut conn, "q1", ADMIN).unwrap();
    assert_eq!(deleted.id, "q1");
    assert!(store::get_task(&mut conn, "q1.1").unwrap().is_none());
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let n: N = diesel::sql_query(
        "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM test_cases) AS n",
    )
    .get_result(&mut *conn)
    .unwrap();
    assert_eq!(n.n, 0, "tasks and test cases went with the queue");
    let err = store::delete_queue(&mut conn, "q1", ADMIN).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[test]
fn lost_queues_end_in_error() {
    let db = test_db();
    for id in ["mine-old", "stale", "alive"] {
        add(&db, id, 1);
    }
    let mut conn = db.pool.get().unwrap();
    store::register_worker(&mut conn, "me", 1, "0.1.0", 1).unwrap();
    store::register_worker(&mut conn, "ghost", 1, "0.1.0", 2).unwrap();
    store::register_worker(&mut conn, "other", 1, "0.1.0", 3).unwrap();
    store::claim_next(&mut conn, "me").unwrap();
    store::claim_next(&mut conn, "ghost").unwrap();
    store::claim_next(&mut conn, "other").unwrap();
    store::set_pgid(&mut conn, "mine-old", Some(99999)).unwrap();
    store::set_task(&mut conn, "stale.1", Status::Running, None).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    // "me" restarted just now; "other" heartbeats; "ghost" went silent.
    let me_started = store::now();
    std::thread::sleep(Duration::from_millis(30));
    store::heartbeat(&mut conn, "other").unwrap();
    store::heartbeat(&mut conn, "me").unwrap();
    let lost = store::mark_lost(&mut conn, "me", me_started, Duration::from_millis(40), 0).unwrap();
    let lost: Vec<_> = lost.into_iter().map(|l| l.queue).collect();
    let mut ids: Vec<_> = lost.iter().map(|q| q.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["mine-old", "stale"]);
    assert_eq!(
        lost.iter()
            .find(|q| q.id == "mine-old")
            .and_then(|q| q.pgid),
        Some(99999)
    );
    for id in ["mine-old", "stale"] {
        let d = store::queue_detail(&mut conn, id).unwrap().unwrap();
        assert_eq!(d.queue.status(), Status::Error);
        assert_eq!(d.queue.status_reason.as_deref(), Some("worker lost"));
    }
    let (task, _) = store::get_task(&mut conn, "stale.1").unwrap().unwrap();
    assert_eq!(
        (task.status(), task.status_reason.as_deref()),
        (Status::Error, Some("worker lost"))
    );
    let alive = store::get_queue(&mut conn, "alive").unwrap().unwrap();
    assert_eq!(alive.status(), Status::Running);
    // Nothing is lost twice.
    assert!(
        store::mark_lost(&mut conn, "me", me_started, Duration::from_millis(40), 1)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn workers_register_heartbeat_and_list_what_they_run() {
    let db = test_db();
    add(&db, "q1", 0);
    let mut conn = db.pool.get().unwrap();
    let first = store::register_worker(&mut conn, "w1", 2, "0.1.0", 10).unwrap();
    let again = store::register_worker(&mut conn, "w1", 3, "0.1.1", 11).unwrap();
    assert_eq!(
        (again.slots, again.version.as_str(), again.pid),
        (3, "0.1.1", 11)
    );
    assert!(again.started_at >= first.started_at);
    store::claim_next(&mut conn, "w1").unwrap();
    let seen = store::heartbeat(&mut conn, "w1").unwrap().unwrap();
    assert_eq!(store::heartbeat(&mut conn, "nobody").unwrap(), None);
    let workers = store::list_workers(&mut conn).unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].0.last_seen, seen);
    assert_eq!(workers[0].1, ["q1"]);
    assert_eq!(store::running_count(&mut conn, "w1").unwrap(), 1);
    assert_eq!(store::running_queues(&mut conn, "w1").unwrap()[0].id, "q1");
}

#[test]
fn users_and_tokens() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    let ann = store::create_user(&mut conn, "ann", "$argon2id$fake", true).unwrap();
    let err = store::create_user(&mut conn, "ann", "x", false).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let bob = store::create_user(&mut conn, "bob", "h", false).unwrap();
    assert_eq!(store::count_active_admins(&mut conn).unwrap(), 1);
    let names: Vec<_> = store::list_users(&mut conn)
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["ann", "bob"]);

    let changes = store::UserChanges {
        disabled: Some(true),
        ..Default::default()
    };
    let bob = store::update_user(&mut conn, bob.id, &changes).unwrap();
    assert!(bob.disabled);
    assert_eq!(store::user_by_name(&mut conn, "bob").unwrap().unwrap(), bob);
    let err = store::update_user(&mut conn, 999, &changes).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    let t = store::create_token(&mut conn, ann.id, "ci", "hash-1", "ta_abc").unwrap();
    store::create_token(&mut conn, bob.id, "laptop", "hash-2", "ta_def").unwrap();
    let err = store::create_token(&mut conn, 999, "x", "hash-3", "p").unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let (found, user) = store::token_user(&mut conn, "hash-1").unwrap().unwrap();
    assert_eq!((found.id, user.username.as_str()), (t.id, "ann"));
    store::touch_token(&mut conn, t.id, store::now()).unwrap();
    assert!(
        store::get_token(&mut conn, t.id)
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );
    assert_eq!(
        store::list_tokens(&mut conn, Some(ann.id)).unwrap().len(),
        1
    );
    assert_eq!(store::list_tokens(&mut conn, None).unwrap().len(), 2);

    // Revocation works at once.
    store::delete_token(&mut conn, t.id).unwrap();
    assert!(store::token_user(&mut conn, "hash-1").unwrap().is_none());
    // Deleting a user takes their tokens along.
    store::delete_user(&mut conn, bob.id).unwrap();
    assert!(store::token_user(&mut conn, "hash-2").unwrap().is_none());
    assert!(store::user_by_id(&mut conn, bob.id).unwrap().is_none());
}

#[test]
fn only_the_owner_or_an_admin_changes_a_queue() {
    let db = test_db();
    add(&db, "q1", 1);
    let mut conn = db.pool.get().unwrap();
    let bob = store::Actor {
        name: "bob",
        admin: false,
    };
    let err = store::request_abort(&mut conn, "q1", "aborted by bob", bob).unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
    let err = store::delete_queue(&mut conn, "q1", bob).unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
    let stored = store::get_queue(&mut conn, "q1").unwrap().unwrap();
    assert_eq!(stored.status(), Status::Waiting, "nothing was written");
    let owner = store::Actor {
        name: &stored.owner,
        admin: false,
    };
    assert!(matches!(
        store::request_abort(&mut conn, "q1", "aborted by its owner", owner).unwrap(),
        AbortOutcome::Aborted(_)
    ));
    store::delete_queue(&mut conn, "q1", owner).unwrap();
}

/// Two admins demote each other at the same moment: the check and the
/// write are one transaction, so one of them stays an admin.
#[test]
fn concurrent_demotions_keep_one_admin() {
    for round in 0..20 {
        let db = test_db();
        let mut conn = db.pool.get().unwrap();
        let a = store::create_user(&mut conn, &format!("a{round}"), "h", true).unwrap();
        let b = store::create_user(&mut conn, &format!("b{round}"), "h", true).unwrap();
        drop(conn);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let results: Vec<_> = [(a.id, true), (b.id, false)]
            .into_iter()
            .map(|(id, delete)| {
                let (pool, barrier) = (db.pool.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut conn = pool.get().unwrap();
                    barrier.wait();
                    if delete {
                        store::delete_user(&mut conn, id).map(drop)
                    } else {
                        let demote = store::UserChanges {
                            is_admin: Some(false),
                            ..Default::default()
                        };
                        store::update_user(&mut conn, id, &demote).map(drop)
                    }
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let refused = results
            .iter()
            .filter(
                |r| matches!(r, Err(StoreError::Conflict(m)) if m.contains("last enabled admin")),
            )
            .count();
        assert_eq!(refused, 1, "round {round}: {results:?}");
        let mut conn = db.pool.get().unwrap();
        assert_eq!(store::count_active_admins(&mut conn).unwrap(), 1);
        // The one left can be neither disabled nor deleted.
        for user in store::list_users(&mut conn).unwrap() {
            if user.is_admin {
                let off = store::UserChanges {
                    disabled: Some(true),
                    ..Default::default()
                };
                let err = store::update_user(&mut conn, user.id, &off).unwrap_err();
                assert!(matches!(err, StoreError::Conflict(_)), "{err}");
                store::delete_user(&mut conn, user.id).unwrap_err();
            }
        }
    }
}
