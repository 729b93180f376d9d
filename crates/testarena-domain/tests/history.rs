//! History in the store against real SQLite files: the identity the
//! triggers copy at record time, a test's runs and their paging, the
//! flaky, new-failure and baseline rules, the tests list and compare.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use testarena_domain::api::{Queue, TestRef};
use testarena_domain::db::DbConnection;
use testarena_domain::db::{self, DbPool};
use testarena_domain::models::{NewQueue, NewTask, NewTestCase};
use testarena_domain::status::Status;
use testarena_domain::store::{self, HistoryFilter, TestSort, TestsFilter};
use testarena_testkit::TestDatabase;

struct TestDb {
    pool: DbPool,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

/// A fresh database of this run's backend (SQLite, or PostgreSQL with
/// `TESTARENA_TEST_BACKEND=postgres`).
fn test_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::for_this_run(&dir.path().join("testarena.db"));
    let location = db::Location::parse(database.url(), None).unwrap();
    let pool = db::open_migrated(&location, db::PoolOptions::sized(4)).unwrap();
    TestDb {
        pool,
        _db: database,
        _dir: dir,
    }
}

/// One run of a queue: where, and each test's (name, status, ms).
struct Run<'a> {
    id: &'a str,
    branch: &'a str,
    commit: &'a str,
    tests: &'a [(&'a str, Status, u64)],
    only: Option<&'a [&'a str]>,
}

impl<'a> Run<'a> {
    fn new(id: &'a str, commit: &'a str, tests: &'a [(&'a str, Status, u64)]) -> Self {
        Run {
            id,
            branch: "main",
            commit,
            tests,
            only: None,
        }
    }
}

/// Stores, claims, records and ends one queue with one task of `s.xml`.
fn run(conn: &mut DbConnection, r: &Run<'_>) {
    let queue = NewQueue {
        id: r.id.to_owned(),
        repo: "firmware".into(),
        branch: r.branch.to_owned(),
        commit_sha: Some(r.commit.to_owned()),
        target: "lx106".into(),
        owner: "ann".into(),
        priority: 0,
        timeout_s: None,
        created_at: store::now(),
        no_cache: false,
    };
    let task = NewTask {
        id: format!("{}.1", r.id),
        scenario: "s.xml".into(),
        only: r.only.map(|o| o.iter().map(|s| (*s).to_owned()).collect()),
    };
    store::create_queue(conn, &queue, &[task]).unwrap();
    let claimed = store::claim_next(conn, "w1").unwrap().unwrap();
    assert_eq!(claimed.id, r.id);
    let task_id = format!("{}.1", r.id);
    for (name, status, ms) in r.tests {
        let case = NewTestCase {
            name: (*name).to_owned(),
            status: *status,
            duration_ms: Some(*ms),
            message: (*status != Status::Passed).then(|| format!("{name} broke")),
        };
        store::record_test_case(conn, &task_id, &case).unwrap();
    }
    let failed = r.tests.iter().any(|(_, s, _)| *s != Status::Passed);
    let to = if failed {
        Status::Failed
    } else {
        Status::Passed
    };
    store::finish_queue(conn, r.id, to, "").unwrap();
}

const P: Status = Status::Passed;
const F: Status = Status::Failed;

fn history(name: &str) -> HistoryFilter {
    HistoryFilter {
        repo: "firmware".into(),
        scenario: "s.xml".into(),
        name: name.into(),
        limit: 50,
        ..HistoryFilter::default()
    }
}

/// The queue's JSON as the API shows it, with the case facts filled in.
fn annotated(conn: &mut DbConnection, id: &str) -> Queue {
    let detail = store::queue_detail(conn, id).unwrap().unwrap();
    let facts = store::case_facts(conn, &detail).unwrap();
    let mut queue = Queue::from(&detail);
    store::annotate(&mut queue, &facts);
    queue
}

fn case<'q>(queue: &'q Queue, name: &str) -> &'q testarena_domain::api::TestResult {
    queue.tasks[0]
        .tests
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no test {name} in {}", queue.id))
}

fn tref(name: &str) -> TestRef {
    TestRef {
        scenario: "s.xml".into(),
        name: name.into(),
    }
}

#[test]
fn runs_carry_their_identity_and_page_newest_first() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    for i in 0..5 {
        let id = format!("q{i}");
        let commit = format!("{i:040}");
        let status = if i == 3 { F } else { P };
        run(
            &mut conn,
            &Run::new(&id, &commit, &[("unit", status, 100 + i)]),
        );
    }
    run(
        &mut conn,
        &Run {
            branch: "dev",
            ..Run::new(
                "qd",
                "d000000000000000000000000000000000000000",
                &[("unit", P, 7)],
            )
        },
    );
    let mut filter = history("unit");
    filter.limit = 4;
    let page = store::test_history(&mut conn, &filter).unwrap();
    let ids: Vec<&str> = page.items.iter().map(|r| r.queue_id.as_str()).collect();
    assert_eq!(ids, ["qd", "q4", "q3", "q2"]);
    let q3 = &page.items[2];
    assert_eq!(q3.status, F);
    assert_eq!(q3.commit.as_deref(), Some(format!("{:040}", 3).as_str()));
    assert_eq!((q3.branch.as_str(), q3.target.as_str()), ("main", "lx106"));
    assert_eq!(q3.ran_on, "qemu");
    assert_eq!(q3.message.as_deref(), Some("unit broke"));
    assert_eq!(q3.duration_ms, Some(103));
    filter.before = page.next;
    let rest = store::test_history(&mut conn, &filter).unwrap();
    let ids: Vec<&str> = rest.items.iter().map(|r| r.queue_id.as_str()).collect();
    assert_eq!(
        ids,
        ["q1", "q0"],
        "the second page goes on where the first ended"
    );
    assert_eq!(rest.next, None);

    filter.before = None;
    filter.branch = Some("dev".into());
    let dev = store::test_history(&mut conn, &filter).unwrap();
    assert_eq!(dev.items.len(), 1);
    assert_eq!(dev.items[0].queue_id, "qd");
    filter.branch = None;
    filter.name = "nope".into();
    assert!(
        store::test_history(&mut conn, &filter)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn a_pass_and_a_fail_at_one_commit_make_a_test_known_flaky() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    let same = "a".repeat(40);
    run(
        &mut conn,
        &Run::new("q1", &same, &[("unit", P, 100), ("size", P, 10)]),
    );
    run(
        &mut conn,
        &Run::new("q2", &same, &[("unit", F, 100), ("size", P, 10)]),
    );
    let q2 = annotated(&mut conn, "q2");
    assert!(case(&q2, "unit").known_flaky);
    assert!(case(&q2, "unit").new_failure, "it passed the run before");
    assert!(!case(&q2, "size").known_flaky);

    // A failure at a new commit, after passes at other commits, is not flaky.
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    run(
        &mut conn,
        &Run::new("r1", &"1".repeat(40), &[("unit", P, 100)]),
    );
    run(
        &mut conn,
        &Run::new("r2", &"2".repeat(40), &[("unit", F, 100)]),
    );
    let r2 = annotated(&mut conn, "r2");
    assert!(!case(&r2, "unit").known_flaky);
    assert!(case(&r2, "unit").new_failure);
}

#[test]
fn three_flips_in_the_last_runs_make_a_test_flaky() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    // Every run at its own commit: only the flips can make it flaky.
    let verdicts = [P, F, P, F];
    for (i, v) in verdicts.iter().enumerate() {
        let (id, commit) = (format!("q{i}"), format!("{i:040}"));
        run(&mut conn, &Run::new(&id, &commit, &[("unit", *v, 100)]));
        let flips = i as i32;
        let q = annotated(&mut conn, &id);
        assert_eq!(
            case(&q, "unit").known_flaky,
            flips >= store::FLAKY_FLIPS,
            "after {} runs ({flips} flips)",
            i + 1
        );
    }
}

#[test]
fn new_failure_needs_a_pass_just_before_on_the_same_branch() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    run(
        &mut conn,
        &Run::new("q1", &"1".repeat(40), &[("unit", P, 1)]),
    );
    run(
        &mut conn,
        &Run {
            branch: "dev",
            ..Run::new("d1", &"2".repeat(40), &[("unit", F, 1)])
        },
    );
    let d1 = annotated(&mut conn, "d1");
    assert!(
        !case(&d1, "unit").new_failure,
        "its first run on dev: no previous run there"
    );
    run(
        &mut conn,
        &Run::new("q2", &"3".repeat(40), &[("unit", F, 1)]),
    );
    run(
        &mut conn,
        &Run::new("q3", &"4".repeat(40), &[("unit", F, 1)]),
    );
    assert!(case(&annotated(&mut conn, "q2"), "unit").new_failure);
    assert!(
        !case(&annotated(&mut conn, "q3"), "unit").new_failure,
        "failing again is not new"
    );
}

#[test]
fn the_baseline_is_the_median_of_the_last_20_passes_before() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    // 25 passes: 1000 ms five times (the oldest), then 100..=2000 in steps.
    let mut durations: Vec<u64> = vec![1000; 5];
    durations.extend((1..=20).map(|i| i * 100));
    for (i, ms) in durations.iter().enumerate() {
        let (id, commit) = (format!("q{i:02}"), format!("{i:040}"));
        run(&mut conn, &Run::new(&id, &commit, &[("unit", P, *ms)]));
    }
    // A failure in between does not count.
    run(
        &mut conn,
        &Run::new("qf", &"f".repeat(40), &[("unit", F, 1)]),
    );
    run(
        &mut conn,
        &Run::new("qz", &"e".repeat(40), &[("unit", P, 9000)]),
    );
    let qz = annotated(&mut conn, "qz");
    // The last 20 passes before qz are 100..=2000: median (1000 + 1100) / 2.
    assert_eq!(case(&qz, "unit").baseline_ms, Some(1050));
    assert_eq!(
        case(&annotated(&mut conn, "q00"), "unit").baseline_ms,
        None,
        "the first run has no baseline"
    );
    let detail = store::queue_detail(&mut conn, "qz").unwrap().unwrap();
    let facts = store::case_facts(&mut conn, &detail).unwrap();
    let cmp = store::compare_queues(&detail, &facts, None);
    assert_eq!(
        cmp.slower.len(),
        1,
        "9000 ms is above 2 × 1050 and 1050 + 1000"
    );
    assert_eq!((cmp.slower[0].base_ms, cmp.slower[0].now_ms), (1050, 9000));
}

#[test]
fn compare_sorts_the_changes_against_the_previous_queue() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    let base = [("a", P, 1), ("b", F, 1), ("c", F, 1), ("gone", P, 1)];
    run(&mut conn, &Run::new("q1", &"1".repeat(40), &base));
    // Another branch in between is not a base.
    run(
        &mut conn,
        &Run {
            branch: "dev",
            ..Run::new("d1", &"2".repeat(40), &[("a", P, 1)])
        },
    );
    let now = [("a", F, 1), ("b", P, 1), ("c", F, 1), ("new", P, 1)];
    run(&mut conn, &Run::new("q2", &"3".repeat(40), &now));
    let row = store::get_queue(&mut conn, "q2").unwrap().unwrap();
    assert_eq!(
        store::compare_base(&mut conn, &row).unwrap().as_deref(),
        Some("q1")
    );
    let first = store::get_queue(&mut conn, "q1").unwrap().unwrap();
    assert_eq!(store::compare_base(&mut conn, &first).unwrap(), None);

    let detail = store::queue_detail(&mut conn, "q2").unwrap().unwrap();
    let facts = store::case_facts(&mut conn, &detail).unwrap();
    let base = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    let cmp = store::compare_queues(&detail, &facts, Some(&base));
    assert_eq!(cmp.base.as_deref(), Some("q1"));
    assert_eq!(cmp.new_failures, [tref("a")]);
    assert_eq!(cmp.fixed, [tref("b")]);
    assert_eq!(cmp.still_failing, [tref("c")]);
    assert_eq!(cmp.added, [tref("new")]);
    assert_eq!(cmp.removed, [tref("gone")]);
    assert!(cmp.flaky.is_empty());
}

#[test]
fn a_subset_removes_nothing_it_did_not_run() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    run(
        &mut conn,
        &Run::new("q1", &"1".repeat(40), &[("a", F, 1), ("b", P, 1)]),
    );
    run(
        &mut conn,
        &Run {
            only: Some(&["a"]),
            ..Run::new("q2", &"1".repeat(40), &[("a", P, 1)])
        },
    );
    let detail = store::queue_detail(&mut conn, "q2").unwrap().unwrap();
    assert_eq!(detail.tasks[0].0.only(), Some(vec!["a".to_owned()]));
    assert!(detail.tasks[0].0.runs("a") && !detail.tasks[0].0.runs("b"));
    let facts = store::case_facts(&mut conn, &detail).unwrap();
    let base = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    let cmp = store::compare_queues(&detail, &facts, Some(&base));
    assert_eq!(cmp.fixed, [tref("a")]);
    assert!(cmp.removed.is_empty(), "{:?}", cmp.removed);
    assert_eq!(
        Queue::from(&detail).tasks[0].only,
        Some(vec!["a".to_owned()])
    );
}

fn tests_filter(sort: TestSort) -> TestsFilter {
    TestsFilter {
        repo: Some("firmware".into()),
        branch: None,
        since: store::now() - chrono::Duration::days(30),
        sort,
        offset: 0,
        limit: 50,
    }
}

#[test]
fn the_tests_list_counts_sorts_and_pages() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    let same = "a".repeat(40);
    // flaky: passes and fails at one commit; broken: always fails; slow: slow.
    run(
        &mut conn,
        &Run::new(
            "q1",
            &same,
            &[("flaky", P, 10), ("broken", F, 5), ("slow", P, 5000)],
        ),
    );
    run(
        &mut conn,
        &Run::new(
            "q2",
            &same,
            &[("flaky", F, 10), ("broken", F, 5), ("slow", P, 7000)],
        ),
    );
    run(
        &mut conn,
        &Run::new(
            "q3",
            &same,
            &[("flaky", P, 30), ("broken", F, 5), ("slow", P, 6000)],
        ),
    );
    let page = store::list_tests(&mut conn, &tests_filter(TestSort::Flaky)).unwrap();
    let names: Vec<&str> = page.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[0], "flaky");
    let flaky = &page.items[0];
    assert!(flaky.flaky);
    assert_eq!((flaky.runs, flaky.passed, flaky.failed), (3, 2, 1));
    assert!((flaky.pass_rate - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(flaky.flips, 2);
    assert_eq!(flaky.median_ms, Some(20), "median of 10 and 30");
    assert_eq!(flaky.last_status, P);
    let broken = page.items.iter().find(|t| t.name == "broken").unwrap();
    assert!(!broken.flaky);
    let last = broken.last_failure.as_ref().unwrap();
    assert_eq!(last.queue_id, "q3");
    assert_eq!(last.message.as_deref(), Some("broken broke"));
    assert_eq!(broken.median_ms, None, "never passed");

    let by_failures = store::list_tests(&mut conn, &tests_filter(TestSort::Failures)).unwrap();
    assert_eq!(by_failures.items[0].name, "broken");
    let slowest = store::list_tests(&mut conn, &tests_filter(TestSort::Slowest)).unwrap();
    assert_eq!(slowest.items[0].name, "slow");
    assert_eq!(slowest.items[0].median_ms, Some(6000));
    assert_eq!(slowest.items[2].name, "broken", "no median: last");

    // Pages of one by name: broken, flaky, slow.
    let mut filter = tests_filter(TestSort::Name);
    filter.limit = 1;
    let mut seen = Vec::new();
    loop {
        let page = store::list_tests(&mut conn, &filter).unwrap();
        seen.extend(page.items.into_iter().map(|t| t.name));
        match page.next {
            Some(n) => filter.offset = n,
            None => break,
        }
    }
    assert_eq!(seen, ["broken", "flaky", "slow"]);

    // A window after the runs has none of them; another branch neither.
    let mut later = tests_filter(TestSort::Name);
    later.since = store::now() + chrono::Duration::seconds(5);
    assert!(
        store::list_tests(&mut conn, &later)
            .unwrap()
            .items
            .is_empty()
    );
    let mut other = tests_filter(TestSort::Name);
    other.branch = Some("dev".into());
    assert!(
        store::list_tests(&mut conn, &other)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn a_deleted_queue_leaves_the_history() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    run(
        &mut conn,
        &Run::new("q1", &"1".repeat(40), &[("unit", P, 100)]),
    );
    run(
        &mut conn,
        &Run::new("q2", &"2".repeat(40), &[("unit", F, 100)]),
    );
    let admin = store::Actor {
        name: "admin",
        admin: true,
    };
    store::delete_queue(&mut conn, "q2", admin).unwrap();
    let page = store::list_tests(&mut conn, &tests_filter(TestSort::Name)).unwrap();
    let unit = &page.items[0];
    assert_eq!((unit.runs, unit.failed), (1, 0));
    assert_eq!(unit.last_status, P);
    assert!(unit.last_failure.is_none(), "{:?}", unit.last_failure);
    store::delete_queue(&mut conn, "q1", admin).unwrap();
    assert!(
        store::list_tests(&mut conn, &tests_filter(TestSort::Name))
            .unwrap()
            .items
            .is_empty()
    );
    let h = history("unit");
    assert!(store::test_history(&mut conn, &h).unwrap().items.is_empty());
}

#[test]
fn a_result_recorded_again_replaces_its_verdict_in_the_series() {
    let db = test_db();
    let mut conn = db.pool.get().unwrap();
    run(
        &mut conn,
        &Run::new("q1", &"1".repeat(40), &[("unit", P, 100)]),
    );
    run(
        &mut conn,
        &Run::new("q2", &"2".repeat(40), &[("unit", F, 100), ("unit", P, 300)]),
    );
    let page = store::list_tests(&mut conn, &tests_filter(TestSort::Name)).unwrap();
    let unit = &page.items[0];
    assert_eq!((unit.runs, unit.passed, unit.flips), (2, 2, 0));
    assert_eq!(unit.median_ms, Some(200));
}
