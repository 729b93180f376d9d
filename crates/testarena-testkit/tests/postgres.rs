//! The kit's throwaway PostgreSQL on a real server: databases reachable
//! with the product's password over TCP, separate from each other,
//! restarts that keep data and port, and no server or directory left
//! behind by a dropped cluster, a finished or a killed test process.

#![expect(clippy::unwrap_used, reason = "a failed setup step fails the test")]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testarena_testkit::postgres::{Cluster, Options, bin_dir};
use testarena_testkit::procs::alive;
use testarena_testkit::wait_for;

/// Set (to `exit` or `hang`) in a copy of this binary that runs
/// [`child_process_role`] for the process-lifetime tests.
const CHILD_MODE: &str = "TESTKIT_PG_CHILD";
/// Where that child writes its shared cluster's pid and directory.
const CHILD_REPORT: &str = "TESTKIT_PG_REPORT";

/// `psql <url> -c <sql>` over TCP, as the product connects: no socket, no
/// password file, no `PG*` environment.
fn tcp_psql(url: &str, sql: &str) -> Output {
    let mut cmd = Command::new(bin_dir().unwrap().join("psql"));
    for (var, _) in std::env::vars().filter(|(v, _)| v.starts_with("PG")) {
        cmd.env_remove(var);
    }
    cmd.env("PGPASSFILE", "/dev/null")
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-w",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn rows(out: &Output) -> String {
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// The pids whose parent is `pid` (a postmaster's backends and workers).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

#[test]
fn a_database_is_reachable_with_its_password_and_refused_with_another() {
    let db = Cluster::shared().create_database();
    let url = db.url();
    assert!(url.starts_with("postgres://testarena:"), "{url}");
    assert!(
        url.contains(&format!(":{}@127.0.0.1:", db.password())),
        "{url}"
    );
    assert!(!db.url_without_password().contains(db.password()));

    let who = rows(&tcp_psql(&url, "SELECT current_user, current_database()"));
    assert_eq!(who, format!("testarena|{}", db.name()));
    // Owned by the product's role: it makes its schema itself.
    rows(&tcp_psql(&url, "CREATE TABLE t (x int)"));
    let owner = db.psql("SELECT tableowner FROM pg_tables WHERE tablename = 't'");
    assert_eq!(owner, "testarena");

    let wrong = url.replace(db.password(), "not-the-password");
    let refused = tcp_psql(&wrong, "SELECT 1");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("password authentication failed for user \"testarena\""),
        "{stderr}"
    );
    // Without a password at all (scram on TCP, trust only on the socket).
    let none = tcp_psql(&db.url_without_password(), "SELECT 1");
    assert!(!none.status.success());
}

#[test]
fn two_databases_are_separate_and_a_dropped_one_is_gone() {
    let cluster = Cluster::shared();
    let a = cluster.create_database();
    let b = cluster.create_database();
    assert_ne!(a.name(), b.name());
    rows(&tcp_psql(
        &a.url(),
        "CREATE TABLE t (x text); INSERT INTO t VALUES ('in a')",
    ));
    assert_eq!(a.psql("SELECT x FROM t"), "in a");
    assert_eq!(b.psql("SELECT to_regclass('t') IS NULL"), "t");
    // C collation: byte order, as SQLite sorts.
    assert_eq!(
        a.psql("SELECT string_agg(v, ',' ORDER BY v) FROM (VALUES ('b'), ('B'), ('a')) AS s(v)"),
        "B,a,b"
    );

    // Dropped even while a client holds a connection to it.
    let mut holder = Command::new(bin_dir().unwrap().join("psql"))
        .args(["-X", "-q", "-d", &b.url()])
        .env("PGPASSFILE", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let name = b.name().to_owned();
    let connected = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
    wait_for(Duration::from_secs(10), "a client connected to b", || {
        (cluster.psql("postgres", &connected) != "0").then_some(())
    });
    drop(b);
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(cluster.psql("postgres", &exists), "0");
    drop(holder.stdin.take());
    let _ = holder.wait();
    assert_eq!(a.psql("SELECT count(*) FROM t"), "1");
}

#[test]
fn a_restart_keeps_the_data_the_port_and_the_addresses() {
    let extra: IpAddr = "127.0.0.2".parse().unwrap();
    let options = Options::default().listen(extra).max_connections(50);
    // Started on a thread that ends at once: its parent-death signal must
    // not stop the server with it.
    let cluster = std::thread::spawn(move || Cluster::new(options))
        .join()
        .unwrap();
    let db = cluster.create_database();
    rows(&tcp_psql(
        &db.url(),
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)",
    ));
    assert_eq!(
        rows(&tcp_psql(&db.url_via(extra), "SHOW max_connections")),
        "50"
    );
    assert!(
        !cluster.log().contains("fast shutdown"),
        "{}",
        cluster.log()
    );
    let (port, pid) = (cluster.port(), cluster.pid().unwrap());

    cluster.stop();
    assert_eq!(cluster.pid(), None);
    assert!(!alive(pid), "postmaster {pid} still runs after stop");
    let down = tcp_psql(&db.url(), "SELECT 1");
    assert!(!down.status.success(), "a stopped server answered");

    cluster.start();
    let again = cluster.pid().unwrap();
    assert_ne!(again, pid);
    assert_eq!(cluster.port(), port);
    assert_eq!(rows(&tcp_psql(&db.url(), "SELECT sum(x) FROM t")), "3");

    cluster.restart();
    assert_ne!(cluster.pid(), Some(again));
    assert_eq!(
        rows(&tcp_psql(&db.url_via(extra), "SELECT count(*) FROM t")),
        "2"
    );

    // A crash (the whole group killed at once), then crash recovery.
    let crashed = cluster.pid().unwrap();
    cluster.crash();
    assert!(!alive(crashed));
    cluster.start();
    assert_eq!(rows(&tcp_psql(&db.url(), "SELECT sum(x) FROM t")), "3");
    let log = cluster.log();
    assert!(log.contains("database system was interrupted"), "{log}");
}

#[test]
fn a_dropped_cluster_leaves_no_process_and_no_directory() {
    let started = Instant::now();
    let cluster = Cluster::new(Options::default());
    let start = started.elapsed();

    let started = Instant::now();
    let dbs: Vec<_> = (0..20).map(|_| cluster.create_database()).collect();
    let create = started.elapsed() / 20;
    eprintln!(
        "postgres timings: start (initdb, server, role) {start:?}, create_database {create:?}"
    );

    let pid = cluster.pid().unwrap();
    let dir: PathBuf = cluster.dir().to_owned();
    assert!(dir.join("data/PG_VERSION").is_file());
    let _conn = rows(&tcp_psql(&dbs[0].url(), "SELECT 1"));
    let children = children_of(pid);
    assert!(!children.is_empty(), "a postmaster without children?");

    drop(dbs);
    drop(cluster);
    assert!(!alive(pid), "postmaster {pid} outlived its cluster");
    for child in children {
        assert!(!alive(child), "postgres child {child} outlived its cluster");
    }
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[test]
fn a_server_that_cannot_start_says_why() {
    let err = Cluster::try_new(Options::default().max_connections(0)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exited"), "{text}");
    // The server log's tail is quoted.
    assert!(text.contains("max_connections"), "{text}");

    // An address no interface has: PostgreSQL only warns, the kit fails.
    let nowhere: IpAddr = "192.0.2.1".parse().unwrap();
    let err = Cluster::try_new(Options::default().listen(nowhere)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("does not accept connections on 192.0.2.1"),
        "{text}"
    );
    assert!(text.contains("could not bind"), "{text}");
}

#[test]
fn shared_is_one_cluster_per_process() {
    let here = Cluster::shared();
    let there = std::thread::spawn(|| Cluster::shared() as *const Cluster as usize)
        .join()
        .unwrap();
    assert_eq!(here as *const Cluster as usize, there);
    assert!(std::ptr::eq(here, Cluster::shared()));
    assert_eq!(here.psql("postgres", "SELECT 1"), "1");
}

/// This binary again, running only [`child_process_role`] in `mode`.
fn child(mode: &str, report: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_REPORT, report)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The child's shared cluster: `(postmaster pid, directory)`.
fn child_report(report: &std::path::Path) -> (u32, PathBuf) {
    wait_for(Duration::from_secs(60), "the child's cluster", || {
        let text = std::fs::read_to_string(report).ok()?;
        let (pid, dir) = text.strip_suffix('\n')?.split_once(' ')?;
        Some((pid.parse().ok()?, PathBuf::from(dir)))
    })
}

#[test]
fn the_shared_cluster_is_stopped_and_removed_when_the_process_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let mut proc = child("exit", &report);
    let status = wait_for(Duration::from_secs(60), "the child to exit", || {
        proc.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
    let (pid, dir) = child_report(&report);
    assert!(!alive(pid), "postmaster {pid} outlived its test process");
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[test]
fn a_killed_test_process_takes_its_server_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let mut proc = child("hang", &report);
    let (pid, dir) = child_report(&report);
    assert!(alive(pid));
    let children = children_of(pid);

    proc.kill().unwrap();
    proc.wait().unwrap();
    wait_for(
        Duration::from_secs(30),
        "the orphaned postmaster to exit",
        || (!alive(pid)).then_some(()),
    );
    for child in children {
        wait_for(Duration::from_secs(10), "its children to exit", || {
            (!alive(child)).then_some(())
        });
    }
    // No exit hook runs on SIGKILL: the directory is this test's to remove.
    assert!(dir.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Not a test of its own: with [`CHILD_MODE`] set it starts the shared
/// cluster, reports it, then returns (`exit`) or waits to be killed
/// (`hang`); without, it does nothing.
#[test]
fn child_process_role() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let cluster = Cluster::shared();
    let report = std::env::var(CHILD_REPORT).unwrap();
    let line = format!("{} {}\n", cluster.pid().unwrap(), cluster.dir().display());
    // Written whole, then renamed: the parent never reads half of it.
    std::fs::write(format!("{report}.tmp"), line).unwrap();
    std::fs::rename(format!("{report}.tmp"), &report).unwrap();
    if mode == "hang" {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}
