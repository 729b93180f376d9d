//! `testarena-app copy-database`: a SQLite farm made with the store's own
//! functions (and its log files) copied by the real binary into a real
//! PostgreSQL database, then both read back through the store and row by
//! row.

// Test helpers outside #[test] functions unwrap too: a failure should stop
// the test where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use testarena_domain::db::{self, DbConnection, DbPool, Location, PoolOptions};
use testarena_domain::models::{NewQueue, NewTask, NewTestCase};
use testarena_domain::paths::Home;
use testarena_domain::schema;
use testarena_domain::status::Status;
use testarena_domain::store::boards::BoardRegistration;
use testarena_domain::store::deliveries::{NewDelivery, NewHook};
use testarena_domain::store::{self, Actor, HistoryFilter, QueueEnd, QueueFilter};
use testarena_testkit::{PgCluster, PgDatabase};

type Dt = NaiveDateTime;
type ODt = Option<NaiveDateTime>;
type OS = Option<String>;
type OI = Option<i32>;

/// Every table read whole, in primary-key order, as plain rows: what
/// "the rows are equal" compares (written apart from `src/copy.rs`'s list
/// on purpose, from `schema.rs`).
macro_rules! dump {
    ($($table:ident { $($col:ident: $ty:ty),+ $(,)? })+) => {
        #[derive(Debug, PartialEq)]
        #[allow(non_camel_case_types, dead_code)]
        enum Rows { $($table(Vec<$table::Row>)),+ }
        $(mod $table {
            use super::*;
            #[derive(Debug, PartialEq, Queryable, Selectable)]
            #[diesel(table_name = schema::$table)]
            pub struct Row { $(pub $col: $ty),+ }
        })+
        fn dump(conn: &mut DbConnection) -> Vec<Rows> {
            use diesel::Table as _;
            vec![$(Rows::$table(
                schema::$table::table
                    .order(schema::$table::table.primary_key())
                    .select($table::Row::as_select())
                    .load(conn)
                    .unwrap(),
            )),+]
        }
    };
}

dump! {
    users { id: i32, username: String, password_hash: String, is_admin: bool, disabled: bool, created_at: Dt }
    api_tokens { id: i32, user_id: i32, name: String, token_hash: String, prefix: String, created_at: Dt, last_used_at: ODt }
    queues {
        seq: i32, id: String, status: String, status_reason: OS, repo: String, branch: String,
        commit_sha: OS, target: String, owner: String, priority: i32, timeout_s: OI, created_at: Dt,
        started_at: ODt, finished_at: ODt, worker_id: OS, abort_reason: OS, pgid: OI, board: OS,
        board_tags: OS, ran_on: OS, attempt: i32, no_cache: bool, triggered_by: OS,
    }
    tasks {
        id: String, queue_id: String, position: i32, scenario: String, status: String,
        status_reason: OS, passed: i32, failed: i32, skipped: i32, started_at: ODt,
        finished_at: ODt, only: OS,
    }
    test_cases {
        id: i32, task_id: String, name: String, status: String, duration_ms: OI, message: OS,
        repo: OS, scenario: OS, branch: OS, target: OS, commit_sha: OS, ran_on: OS, finished_at: ODt,
    }
    workers { id: String, slots: i32, version: String, pid: i32, started_at: Dt, last_seen: Dt }
    boards {
        id: String, worker_id: String, target: String, tags: String, serial: String, baud: i32,
        status: String, health: String, queue_id: OS, leased_at: ODt, heartbeat_at: Dt,
        last_health_at: ODt, last_health_queue: OS, health_queue: OS, health_repo: OS,
        health_branch: OS, health_scenario: OS, health_every_h: OI, note: String,
        maintenance: bool, flashes: i32, faults: i32, registered_at: Dt,
    }
    attempts {
        id: i32, queue_id: String, attempt: i32, worker: OS, ran_on: OS, started_at: ODt,
        finished_at: Dt, status: String, reason: OS, results: String,
    }
    hook_deliveries {
        id: i32, repo: String, delivery_id: String, forge: String, event: String, branch: OS,
        commit_sha: OS, pusher: OS, queues: String, outcome: String, reason: OS, received_at: Dt,
    }
    deliveries {
        id: i32, kind: String, event: String, queue_id: OS, hook_id: OI, forge: OS, auth_env: OS,
        context: OS, target_url: String, payload: String, state: String, attempts: i32,
        last_code: OI, last_answer: OS, last_error: OS, next_try_at: Dt, created_at: Dt,
        updated_at: Dt,
    }
    delivery_events { id: i32, event: String, subject: String, status: String, at: Dt }
    test_series {
        repo: String, scenario: String, name: String, branch: String, target: String,
        verdicts: String, durations: String, last_id: i32, last_at: Dt, last_status: String,
        last_fail_id: OI, mixed_at: ODt,
    }
    test_days {
        repo: String, day: String, scenario: String, name: String, branch: String, target: String,
        runs: i32, passed: i32, failed: i32,
    }
}

/// A SQLite farm on disk: its database, home and config file.
struct Farm {
    _dir: tempfile::TempDir,
    db: PathBuf,
    home: PathBuf,
    config: PathBuf,
    pool: DbPool,
}

impl Farm {
    fn new() -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let db = dir.path().join("farm.db");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "home = {:?}\ndatabase = {:?}\n",
                home.to_str().unwrap(),
                db.to_str().unwrap()
            ),
        )
        .unwrap();
        let pool = db::open_sqlite(&db, 2).unwrap();
        Farm {
            _dir: dir,
            db,
            home,
            config,
            pool,
        }
    }

    fn conn(&self) -> db::DbConn {
        self.pool.get().unwrap()
    }

    /// Writes `data` as the log `rel` of queue `id`.
    fn log(&self, id: &str, rel: &str, data: &[u8]) {
        let file = Home::new(&self.home).queue_dir(id).join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, data).unwrap();
    }
}

fn new_queue(id: &str, owner: &str) -> NewQueue {
    NewQueue {
        id: id.into(),
        repo: "fw".into(),
        branch: "main".into(),
        commit_sha: Some("a".repeat(40)),
        target: "esp32".into(),
        owner: owner.into(),
        priority: 0,
        timeout_s: Some(600),
        created_at: store::now(),
        no_cache: false,
    }
}

fn task(id: &str, scenario: &str) -> NewTask {
    NewTask {
        id: id.into(),
        scenario: scenario.into(),
        only: None,
    }
}

fn case(name: &str, status: Status, ms: u64) -> NewTestCase {
    NewTestCase {
        name: name.into(),
        status,
        duration_ms: Some(ms),
        message: (status != Status::Passed).then(|| format!("{name} said no")),
    }
}

/// Claims `id` (the only waiting queue) and runs its tasks to the end.
fn run(conn: &mut DbConnection, id: &str, cases: &[NewTestCase]) {
    let claimed = store::claim_next(conn, "w1").unwrap().unwrap();
    assert_eq!(claimed.id, id);
    for t in store::tasks_of(conn, &[id]).unwrap() {
        store::set_task(conn, &t.id, Status::Running, None).unwrap();
        for c in cases {
            store::record_test_case(conn, &t.id, c).unwrap();
        }
        store::set_task(conn, &t.id, Status::Passed, None).unwrap();
    }
}

/// A small farm with something in every table, and logs.
fn populate(farm: &Farm) {
    let c = &mut *farm.conn();
    let ann = store::create_user(c, "ann", "$argon2id$ann", true).unwrap();
    let bob = store::create_user(c, "bob", "$argon2id$bob", false).unwrap();
    let gone = store::create_user(c, "gone", "$argon2id$gone", false).unwrap();
    store::delete_user(c, gone.id).unwrap();
    let changes = store::UserChanges {
        disabled: Some(true),
        ..Default::default()
    };
    store::update_user(c, bob.id, &changes).unwrap();
    let token = store::create_token(c, ann.id, "ci", "hash-of-ci", "ta_ci").unwrap();
    store::touch_token(c, token.id, store::now()).unwrap();
    store::register_worker(c, "w1", 2, "1.0.0", 4242).unwrap();
    let board = BoardRegistration {
        id: "b1".into(),
        target: "esp32".into(),
        tags: vec!["wifi".into()],
        serial: "/dev/ttyUSB0".into(),
        baud: 115_200,
        present: true,
        health: Some(("fw".into(), "main".into(), "smoke.xml".into(), 24)),
    };
    store::boards::register_boards(c, "w1", &[board], store::now()).unwrap();

    // Two runs of the same tests, so that the history has a series with a flip.
    store::create_queue(
        c,
        &new_queue("q1", "ann"),
        &[task("q1-t1", "unit.xml"), task("q1-t2", "net.xml")],
    )
    .unwrap();
    let first = [
        case("boots", Status::Passed, 120),
        case("wifi", Status::Failed, 900),
        case("ota", Status::Skipped, 0),
        case("crash", Status::Error, 5),
    ];
    run(c, "q1", &first);
    store::finish_queue(c, "q1", Status::Failed, "2 tests failed").unwrap();

    store::create_queue(c, &new_queue("q2", "bob"), &[task("q2-t1", "unit.xml")]).unwrap();
    run(
        c,
        "q2",
        &[
            case("boots", Status::Passed, 130),
            case("wifi", Status::Passed, 880),
        ],
    );
    store::finish_queue(c, "q2", Status::Passed, "").unwrap();

    // A retried queue: its first attempt an error of the farm, then passed.
    store::create_queue(c, &new_queue("q3", "ann"), &[task("q3-t1", "unit.xml")]).unwrap();
    store::claim_next(c, "w1").unwrap().unwrap();
    let farm_error = QueueEnd {
        status: Status::Error,
        reason: "qemu died",
        farm_failure: true,
    };
    assert!(matches!(
        store::end_queue(c, "q3", farm_error, 2).unwrap(),
        store::EndOutcome::Retried(_)
    ));
    run(c, "q3", &[case("boots", Status::Failed, 140)]);
    let passed = QueueEnd {
        status: Status::Passed,
        reason: "",
        farm_failure: false,
    };
    store::end_queue(c, "q3", passed, 2).unwrap();
    assert!(!store::attempts_of(c, "q3").unwrap().is_empty());

    // A hook that made a queue, a delivery of it, and one more notification.
    let hook = NewHook {
        repo: "fw".into(),
        delivery_id: "d-1".into(),
        forge: "gitea".into(),
        event: "push".into(),
        branch: Some("main".into()),
        commit_sha: Some("b".repeat(40)),
        pusher: Some("ann".into()),
        outcome: "started".into(),
        reason: None,
        received_at: store::now(),
    };
    let status = NewDelivery {
        kind: "status".into(),
        event: "queue.status".into(),
        queue_id: Some("q4".into()),
        forge: Some("gitea".into()),
        auth_env: Some("GITEA_TOKEN".into()),
        context: Some("testarena".into()),
        target_url: "http://127.0.0.1:9/status".into(),
        payload: "{}".into(),
    };
    let made = [(new_queue("q4", "ann"), vec![task("q4-t1", "unit.xml")])];
    store::deliveries::record_hook(c, &hook, &made, Some("ann"), &[status]).unwrap();
    let notify = NewDelivery {
        kind: "notify".into(),
        event: "queue.status".into(),
        queue_id: Some("q1".into()),
        target_url: "http://127.0.0.1:9/hook".into(),
        payload: r#"{"queue":"q1"}"#.into(),
        ..Default::default()
    };
    store::deliveries::insert_deliveries(c, &[notify]).unwrap();
    // The newest queue deleted: SQLite never hands its seq out again.
    store::create_queue(c, &new_queue("q5", "ann"), &[]).unwrap();
    store::delete_queue(
        c,
        "q5",
        Actor {
            name: "ann",
            admin: true,
        },
    )
    .unwrap();

    farm.log("q1", "queue.log", b"claimed by w1\nbuild ok\n");
    // Over one chunk and not a multiple of it; a multiple exactly; empty.
    farm.log(
        "q1",
        "build.log",
        &(0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    );
    farm.log("q1", "tasks/q1-t1/boots.log", &[b'x'; 128 * 1024]);
    farm.log("q1", "tasks/q1-t1/ota.log", b"");
    // Not UTF-8.
    farm.log(
        "q2",
        "tasks/q2-t1/wifi.log",
        b"rssi \xff\xfe -70 \xc3\x28\n",
    );
    farm.log("q3", "junit.xml", b"<testsuites/>");
    // A folder of no queue: left out.
    farm.log("q-deleted", "queue.log", b"gone");
}

fn copy(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testarena-app"));
    cmd.arg("--config")
        .arg(config)
        .arg("copy-database")
        .args(args);
    for var in [
        "PGPASSWORD",
        "PGUSER",
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGPASSFILE",
        "TESTARENA_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn open_pg(target: &PgDatabase) -> DbPool {
    db::open_pool(
        &Location::parse(&target.url(), None).unwrap(),
        PoolOptions::sized(2),
    )
    .unwrap()
}

/// The bytes of every log of a queue as the target stores them.
fn stored_logs(conn: &mut DbConnection, id: &str) -> Vec<(String, Vec<u8>)> {
    store::logs::stored_files(conn, id)
        .unwrap()
        .into_iter()
        .map(|f| {
            let (data, size) = store::logs::read_stored(conn, id, &f.path, 0, 1 << 20).unwrap();
            assert_eq!(size, data.len() as u64, "{id}/{}", f.path);
            (f.path, data)
        })
        .collect()
}

/// The logs of a queue as its folder holds them.
fn disk_logs(farm: &Farm, id: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Home::new(&farm.home).queue_dir(id);
    let mut out = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(&dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn seq_count(conn: &mut DbConnection, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<N>(conn)
        .unwrap()
        .n
}

#[test]
fn a_sqlite_farm_is_copied_whole() {
    let farm = Farm::new();
    populate(&farm);
    let target = PgCluster::shared().create_database();
    let out = copy(&farm.config, &["--to", &target.url()]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test_cases"), "{}", text(&out));
    assert!(stdout.contains("log bytes"), "{}", text(&out));
    assert!(!text(&out).contains(target.password()), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 folder(s) under"), "{}", text(&out));

    let src = &mut *farm.conn();
    let pg = open_pg(&target);
    let dst = &mut *pg.get().unwrap();
    let (a, b) = (dump(src), dump(dst));
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a, b);
    }

    // Through the store, as the app reads them.
    let all = QueueFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        store::list_queues(src, &all).unwrap(),
        store::list_queues(dst, &all).unwrap()
    );
    for id in ["q1", "q2", "q3", "q4"] {
        let detail = store::queue_detail(dst, id).unwrap();
        assert!(detail.is_some(), "{id}");
        assert_eq!(store::queue_detail(src, id).unwrap(), detail, "{id}");
        assert_eq!(
            store::attempts_of(src, id).unwrap(),
            store::attempts_of(dst, id).unwrap()
        );
        assert_eq!(disk_logs(&farm, id), stored_logs(dst, id), "{id}");
    }
    for name in ["boots", "wifi", "ota", "crash"] {
        let filter = HistoryFilter {
            repo: "fw".into(),
            scenario: "unit.xml".into(),
            name: name.into(),
            limit: 50,
            ..Default::default()
        };
        let page = store::test_history(dst, &filter).unwrap();
        assert!(!page.items.is_empty(), "{name}");
        assert_eq!(store::test_history(src, &filter).unwrap(), page, "{name}");
    }
    let users = |c: &mut DbConnection| -> Vec<_> {
        store::list_users(c)
            .unwrap()
            .into_iter()
            .map(|u| {
                (
                    u.id,
                    u.username,
                    u.password_hash,
                    u.is_admin,
                    u.disabled,
                    u.created_at,
                )
            })
            .collect()
    };
    assert_eq!(users(src), users(dst));
    // queue.log 1, build.log 4, boots.log 2, ota.log 1 (empty), wifi.log 1, junit.xml 1.
    assert_eq!(seq_count(dst, "log_chunks"), 10);

    // The triggers work again: a new run of a test goes into its history.
    assert_eq!(
        target.psql("SELECT count(*) FROM pg_trigger WHERE tgenabled = 'D'"),
        "0"
    );

    // The identities go on past every id the source used, deleted ones too.
    let fresh = store::create_queue(dst, &new_queue("q6", "ann"), &[]).unwrap();
    assert_eq!(
        fresh.seq, 6,
        "q5 (seq 5) was deleted; its seq is not handed out again"
    );
    let carol = store::create_user(dst, "carol", "$argon2id$carol", false).unwrap();
    assert_eq!(carol.id, 4, "user 3 was deleted");
    let token = store::create_token(dst, carol.id, "t", "h2", "ta_t2").unwrap();
    assert_eq!(token.id, 2);
}

#[test]
fn a_target_with_rows_is_refused_and_left_alone() {
    let farm = Farm::new();
    populate(&farm);
    let target = PgCluster::shared().create_database();
    {
        let pg = db::open_migrated(
            &Location::parse(&target.url(), None).unwrap(),
            PoolOptions::sized(1),
        )
        .unwrap();
        store::register_worker(&mut pg.get().unwrap(), "other", 1, "0.9", 1).unwrap();
    }
    let before = target.psql("SELECT count(*) FROM workers; SELECT count(*) FROM users");
    let out = copy(&farm.config, &["--to", &target.url()]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table workers holds rows"), "{}", text(&out));
    assert!(!err.contains(target.password()), "{}", text(&out));
    assert_eq!(
        target.psql("SELECT count(*) FROM workers; SELECT count(*) FROM users"),
        before
    );

    // A second copy into a target the first one filled: refused too.
    let fresh = PgCluster::shared().create_database();
    assert!(copy(&farm.config, &["--to", &fresh.url()]).status.success());
    let queues = fresh.psql("SELECT count(*) FROM queues");
    let again = copy(&farm.config, &["--to", &fresh.url()]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("table users holds rows"),
        "{}",
        text(&again)
    );
    assert_eq!(fresh.psql("SELECT count(*) FROM queues"), queues);
}

#[test]
fn a_failed_copy_leaves_the_target_empty() {
    let farm = Farm::new();
    populate(&farm);
    // A result whose task is gone (foreign keys off, as an old SQLite
    // file may have had them): PostgreSQL refuses it, late in the copy.
    let mut raw = diesel::SqliteConnection::establish(farm.db.to_str().unwrap()).unwrap();
    diesel::sql_query("PRAGMA foreign_keys = OFF")
        .execute(&mut raw)
        .unwrap();
    diesel::sql_query(
        "INSERT INTO test_cases (task_id, name, status) VALUES ('no-such-task', 'orphan', 'passed')",
    )
    .execute(&mut raw)
    .unwrap();
    let target = PgCluster::shared().create_database();
    let out = copy(&farm.config, &["--to", &target.url()]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rolled back") && err.contains("copying test_cases"),
        "{}",
        text(&out)
    );
    assert!(err.contains("foreign key"), "{}", text(&out));
    let rows = target.psql(
        "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM queues) \
         + (SELECT count(*) FROM tasks) + (SELECT count(*) FROM test_cases)",
    );
    assert_eq!(rows, "0");
    assert_eq!(
        target.psql("SELECT count(*) FROM pg_trigger WHERE tgenabled = 'D'"),
        "0"
    );
    // Mended, the same target takes the copy.
    diesel::sql_query("DELETE FROM test_cases WHERE task_id = 'no-such-task'")
        .execute(&mut raw)
        .unwrap();
    let out = copy(&farm.config, &["--to", &target.url()]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_wrong_password_is_never_printed() {
    let farm = Farm::new();
    populate(&farm);
    let target = PgCluster::shared().create_database();
    let wrong = "n0t-th3-p4ssw0rd";
    let url = target.url().replace(target.password(), wrong);
    assert!(url.contains(wrong));
    let out = copy(&farm.config, &["--to", &url]);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains(wrong), "{all}");
    assert!(all.contains("password authentication failed"), "{all}");
    assert!(all.contains("testarena:***@"), "{all}");
    // Nothing was made in the target.
    assert_eq!(
        target.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}

#[test]
fn a_source_at_another_schema_is_refused() {
    let farm = Farm::new();
    diesel::sql_query(
        "DELETE FROM __diesel_schema_migrations WHERE version = (SELECT max(version) FROM __diesel_schema_migrations)",
    )
    .execute(&mut *farm.conn())
    .unwrap();
    let target = PgCluster::shared().create_database();
    let out = copy(
        &farm.config,
        &["--from", farm.db.to_str().unwrap(), "--to", &target.url()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("older than this binary"),
        "{}",
        text(&out)
    );
    assert_eq!(
        target.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}

/// The rate of a bigger copy: `TESTARENA_COPY_CASES` test cases (100 000
/// by default), in queues of 50 tasks of 20 cases.
#[test]
#[ignore = "a measurement: cargo test -p testarena-api --test copy -- --ignored --nocapture"]
fn a_bigger_copy_reports_its_rate() {
    let cases: usize = std::env::var("TESTARENA_COPY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let farm = Farm::new();
    let c = &mut *farm.conn();
    let queues = cases.div_ceil(1000);
    let started = Instant::now();
    let ended: Vec<store::EndedQueue> = (0..queues)
        .map(|q| store::EndedQueue {
            queue: new_queue(&format!("big-{q}"), "ann"),
            tasks: (0..50)
                .map(|t| task(&format!("big-{q}-{t}"), &format!("s{t}.xml")))
                .collect(),
            status: Status::Passed,
            worker_id: "w1".into(),
            started_at: store::now(),
            finished_at: store::now(),
        })
        .collect();
    store::insert_ended_queues(c, &ended).unwrap();
    db::write(c, |c| -> QueryResult<()> {
        let DbConnection::Sqlite(c) = c else {
            unreachable!("a SQLite farm")
        };
        for q in 0..queues {
            let rows: Vec<_> = (0..50)
                .flat_map(|t| (0..20).map(move |n| (t, n)))
                .map(|(t, n)| {
                    (
                        schema::test_cases::task_id.eq(format!("big-{q}-{t}")),
                        schema::test_cases::name.eq(format!("case{n}")),
                        schema::test_cases::status.eq(if n % 7 == 0 { "failed" } else { "passed" }),
                        schema::test_cases::duration_ms.eq(Some(n * 10)),
                    )
                })
                .collect();
            for part in rows.chunks(1000) {
                diesel::insert_into(schema::test_cases::table)
                    .values(part)
                    .execute(c)?;
            }
        }
        Ok(())
    })
    .unwrap();
    for q in 0..queues.min(100) {
        farm.log(&format!("big-{q}"), "build.log", &vec![b'b'; 300_000]);
    }
    eprintln!(
        "made {} test cases in {:.1} s",
        seq_count(c, "test_cases"),
        started.elapsed().as_secs_f64()
    );

    let target = PgCluster::shared().create_database();
    let started = Instant::now();
    let out = copy(&farm.config, &["--to", &target.url()]);
    let secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("{}", text(&out));
    let rows: i64 = [
        "queues",
        "tasks",
        "test_cases",
        "test_series",
        "test_days",
        "delivery_events",
    ]
    .iter()
    .map(|t| seq_count(c, t))
    .sum();
    eprintln!(
        "copied {rows} rows in {secs:.1} s: {:.0} rows/s",
        rows as f64 / secs
    );
}
