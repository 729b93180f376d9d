//! Logs without a shared filesystem (DESIGN section 13): on PostgreSQL the
//! app lists, reads and follows a queue's files from `log_chunks` only, and
//! answers 503 `unavailable` while the database is down. These tests always
//! run on PostgreSQL (a fresh database of the shared cluster, or a cluster
//! of their own where they stop it), whatever `TESTARENA_TEST_BACKEND` says.

use std::io::BufRead as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use testarena_domain::status::Status;
use testarena_domain::store;
use testarena_domain::store::logs::{Chunk, Fence, MAX_CHUNK, append_chunks};
use testarena_testkit::{PgCluster, TestDatabase};

use crate::support::{Auth, Server, agent, call, send, wait_for};

/// An app on a fresh PostgreSQL database.
fn pg_server() -> Server {
    let home = tempfile::tempdir().unwrap();
    let db = TestDatabase::postgres();
    let url = db.url().to_owned();
    Server::start_on(home, &url, Some(db), |_| {})
}

/// A submitted queue, claimed by worker `w1`: its id and its fence.
fn running_queue(s: &Server) -> (String, Fence) {
    store::register_worker(&mut s.conn(), "w1", 2, "0.1.0", 1).unwrap();
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    let row = store::claim_next(&mut s.conn(), "w1").unwrap().unwrap();
    assert_eq!(row.id, id);
    let fence = Fence {
        queue_id: id.clone(),
        worker_id: "w1".into(),
        attempt: row.attempt,
    };
    (id, fence)
}

/// `data` of `path` from `start`, as chunks of at most `MAX_CHUNK`.
fn chunks(path: &str, start: u64, data: &[u8]) -> Vec<Chunk> {
    data.chunks(MAX_CHUNK)
        .scan(start, |at, part| {
            let c = Chunk {
                path: path.into(),
                start: *at as i64,
                data: part.to_vec(),
            };
            *at += part.len() as u64;
            Some(c)
        })
        .collect()
}

fn read(s: &Server, id: &str, rest: &str) -> crate::support::Resp {
    call(
        s,
        "GET",
        &format!("/api/v1/queues/{id}/logs/{rest}"),
        Auth::Bearer(&s.ann),
        None,
    )
}

#[test]
fn stored_logs_are_listed_and_read_in_ranges_without_the_disk() {
    let s = pg_server();
    assert!(s.logs_in_db());
    let (id, fence) = running_queue(&s);
    // 200 KiB of numbered lines in 64 KiB chunks, and a task's log.
    let text: String = (0..20_000).map(|n| format!("{n:09}\n")).collect();
    let big = text.as_bytes();
    append_chunks(&mut s.conn(), &fence, &chunks("build.log", 0, big)).unwrap();
    append_chunks(
        &mut s.conn(),
        &fence,
        &chunks(&format!("tasks/{id}.1/console.log"), 0, b"boot\n"),
    )
    .unwrap();
    // Nothing of it is on the disk: the app cannot be reading files.
    assert!(
        std::fs::read_dir(s.home().join("queues").join(&id))
            .unwrap()
            .next()
            .is_none()
    );

    let list = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}/logs"),
        Auth::Bearer(&s.ann),
        None,
    )
    .json();
    let files: Vec<(String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["modified_at"].is_string(), "{f}");
            (
                f["path"].as_str().unwrap().to_owned(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("build.log".to_owned(), big.len() as u64),
            (format!("tasks/{id}.1/console.log"), 5),
        ]
    );

    // The first bytes, a middle across a chunk boundary, the whole, past the end.
    let r = read(&s, &id, "build.log?limit=10");
    assert_eq!((r.status, r.body.as_str()), (200, "000000000\n"));
    assert_eq!(r.header("x-log-size"), Some("200000"));
    assert_eq!(r.header("x-log-complete"), Some("false"));
    let at = MAX_CHUNK - 5;
    let r = read(&s, &id, &format!("build.log?offset={at}&limit=20"));
    assert_eq!(r.body.as_bytes(), &big[at..at + 20]);
    let r = read(&s, &id, "build.log");
    assert_eq!(r.body.len(), big.len(), "a read of several pieces");
    assert!(r.body.as_bytes() == big);
    let head = send(
        &s,
        "HEAD",
        &format!("/api/v1/queues/{id}/logs/build.log"),
        Auth::Bearer(&s.ann),
        None,
        None,
    );
    assert_eq!(
        (head.status, head.body.as_str()),
        (200, ""),
        "HEAD of a long read"
    );
    assert_eq!(head.header("x-log-size"), Some("200000"));
    let r = read(&s, &id, "build.log?offset=150000&limit=100000");
    assert_eq!(r.body.as_bytes(), &big[150_000..]);
    let r = read(&s, &id, "build.log?offset=900000");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(r.header("x-log-size"), Some("200000"));

    // A gap (a chunk stored ahead of one not flushed yet) is not served.
    let end = big.len() as u64;
    append_chunks(
        &mut s.conn(),
        &fence,
        &chunks("build.log", end + 10, b"after the gap\n"),
    )
    .unwrap();
    let r = read(&s, &id, &format!("build.log?offset={}", end - 4));
    assert_eq!(r.body, "999\n", "stops at the gap");
    let r = read(&s, &id, &format!("build.log?offset={end}"));
    assert_eq!(r.body, "");
    append_chunks(
        &mut s.conn(),
        &fence,
        &chunks("build.log", end, b"0123456789"),
    )
    .unwrap();
    let r = read(&s, &id, &format!("build.log?offset={end}"));
    assert_eq!(r.body, "0123456789after the gap\n", "served once filled");

    // Paths: confined, and a file that is not stored is a 404.
    read(&s, &id, "missing.log").assert_error(404, "not_found");
    let r = read(&s, &id, "..%2f..%2fetc%2fpasswd");
    assert!(r.status == 404 || r.status == 400, "{}", r.status);
    read(&s, &id, "build.log?limit=0").assert_error(422, "validation_failed");
    let r = read(&s, &id, &format!("tasks/{id}.1/console.log"));
    assert_eq!(r.body, "boot\n");
}

#[test]
fn junit_and_completeness_come_from_the_database() {
    let s = pg_server();
    let (id, fence) = running_queue(&s);
    append_chunks(&mut s.conn(), &fence, &chunks("queue.log", 0, b"ran\n")).unwrap();
    store::finish_queue(&mut s.conn(), &id, Status::Passed, "").unwrap();
    // Final, but the worker's last flush may still come: not complete yet.
    let r = read(&s, &id, "queue.log");
    assert_eq!(r.header("x-log-complete"), Some("false"));
    let junit = |s: &Server| {
        call(
            s,
            "GET",
            &format!("/api/v1/queues/{id}/junit.xml"),
            Auth::Bearer(&s.ann),
            None,
        )
    };
    assert!(
        junit(&s).body.contains("<testsuites"),
        "built from the results"
    );
    let xml = "<testsuites name=\"from the worker\"/>";
    store::logs::put_ended_file(
        &mut s.conn(),
        &id,
        Some(&fence),
        "junit.xml",
        xml.as_bytes(),
    )
    .unwrap();
    assert_eq!(junit(&s).body, xml);
    let r = read(&s, &id, "queue.log");
    assert_eq!(
        (r.body.as_str(), r.header("x-log-complete")),
        ("ran\n", Some("true"))
    );
}

/// One client's events as they arrive: (when, event, data).
fn open_events(s: &Server, id: &str) -> mpsc::Receiver<(Instant, String, Value)> {
    let res = agent()
        .get(&s.url(&format!("/api/v1/queues/{id}/events")))
        .header("Authorization", format!("Bearer {}", s.ann))
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(res.into_body().into_reader());
        let (mut event, mut line) = (String::new(), String::new());
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let l = line.trim_end().to_owned();
            line.clear();
            if let Some(e) = l.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = l.strip_prefix("data: ") {
                let data = serde_json::from_str(d).unwrap();
                if tx.send((Instant::now(), event.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The next event named `want` of `rx`, within 10 s.
fn next_event(rx: &mpsc::Receiver<(Instant, String, Value)>, want: &str) -> (Instant, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, event, data) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {want} event within 10 s"));
        if event == want {
            return (at, data);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// 100 clients follow one queue; each line appended after they connected
/// reaches every one of them, woken by the notification of its commit.
/// The latency (append committed → event read by the client) is printed,
/// not asserted: the machine is shared.
#[test]
fn chunks_appended_after_the_clients_connected_arrive_live() {
    const CLIENTS: usize = 100;
    const LINES: usize = 20;
    let s = pg_server();
    let (id, fence) = running_queue(&s);
    let clients: Vec<_> = (0..CLIENTS).map(|_| open_events(&s, &id)).collect();
    for rx in &clients {
        assert_eq!(next_event(rx, "status").1["status"], "running");
    }
    let mut latencies = Vec::new();
    let mut offset = 0u64;
    for n in 0..LINES {
        let line = format!("line {n}\n");
        append_chunks(
            &mut s.conn(),
            &fence,
            &chunks("queue.log", offset, line.as_bytes()),
        )
        .unwrap();
        let committed = Instant::now();
        for rx in &clients {
            let (at, chunk) = next_event(rx, "log");
            assert_eq!(
                (chunk["offset"].as_u64(), chunk["text"].as_str()),
                (Some(offset), Some(line.as_str()))
            );
            latencies.push(at.saturating_duration_since(committed));
        }
        offset += line.len() as u64;
    }
    latencies.sort();
    println!(
        "SSE latency, {CLIENTS} clients x {LINES} lines: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    // The end: final, then junit.xml stored by the worker.
    store::finish_queue(&mut s.conn(), &id, Status::Passed, "").unwrap();
    store::logs::put_ended_file(
        &mut s.conn(),
        &id,
        Some(&fence),
        "junit.xml",
        b"<testsuites/>",
    )
    .unwrap();
    for rx in &clients {
        assert_eq!(next_event(rx, "end").1["status"], "passed");
    }
}

/// The worker's last flush commits after the final status: the stream
/// sends it before `end`, which waits for `junit.xml`.
#[test]
fn the_last_flush_after_the_end_is_sent_before_end() {
    let s = pg_server();
    let (id, fence) = running_queue(&s);
    let rx = open_events(&s, &id);
    next_event(&rx, "status");
    store::finish_queue(&mut s.conn(), &id, Status::Passed, "").unwrap();
    assert_eq!(next_event(&rx, "status").1["status"], "passed");
    store::logs::append_ended_chunks(&mut s.conn(), &fence, &chunks("queue.log", 0, b"finished"))
        .unwrap();
    store::logs::put_ended_file(
        &mut s.conn(),
        &id,
        Some(&fence),
        "junit.xml",
        b"<testsuites/>",
    )
    .unwrap();
    let (_, chunk) = next_event(&rx, "log");
    assert_eq!(chunk["text"], "finished", "the partial last line too");
    assert_eq!(next_event(&rx, "end").1["status"], "passed");
}

/// While the cluster is stopped every route answers 503 `unavailable` with
/// `Retry-After` within the pool's wait; once it is back the same app
/// answers 200 again by itself.
#[test]
fn an_unreachable_database_is_503_until_it_is_back() {
    let cluster = PgCluster::new(Default::default());
    let db = cluster.create_database();
    let home = tempfile::tempdir().unwrap();
    let s = Server::start_on(home, &db.url(), None, |c| {
        c.database_pool.connect_timeout_s = 1;
    });
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    let queue = format!("/api/v1/queues/{id}");
    let logs = format!("/api/v1/queues/{id}/logs");
    let read = format!("/api/v1/queues/{id}/logs/queue.log");
    let events = format!("/api/v1/queues/{id}/events");
    let junit = format!("/api/v1/queues/{id}/junit.xml");
    let get_paths = [
        "/api/v1/queues",
        queue.as_str(),
        logs.as_str(),
        read.as_str(),
        events.as_str(),
        junit.as_str(),
        "/api/v1/me",
        "/api/v1/config",
        "/api/v1/tokens",
        "/metrics",
    ];
    assert_eq!(
        call(&s, "GET", "/api/v1/health", Auth::None, None).status,
        200
    );

    cluster.stop();
    let submit = serde_json::json!({"branch": "main", "scenarios": ["scenarios/ok.xml"]});
    let mut slowest = Duration::ZERO;
    let mut check = |method: &str, path: &str, auth: Auth, body: Option<Value>| {
        let started = Instant::now();
        let r = call(&s, method, path, auth, body);
        let took = started.elapsed();
        slowest = slowest.max(took);
        r.assert_error(503, "unavailable");
        assert_eq!(r.header("retry-after"), Some("1"), "{method} {path}");
        // Told apart from a busy pool: the cause was a refused connection.
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("unreachable"),
            "{method} {path}: {message}"
        );
        // The pool waits twice the connect timeout (2 s) for a connection.
        assert!(
            took < Duration::from_secs(8),
            "{method} {path} took {took:?}"
        );
    };
    for path in get_paths {
        check("GET", path, Auth::Bearer(&s.ann), None);
    }
    check("POST", "/api/v1/queues", Auth::Bearer(&s.ann), Some(submit));
    check(
        "POST",
        &format!("{queue}/abort"),
        Auth::Bearer(&s.ann),
        None,
    );
    check(
        "GET",
        "/api/v1/queues",
        Auth::Basic("ann", s.password),
        None,
    );
    let health = call(&s, "GET", "/api/v1/health", Auth::None, None);
    assert_eq!(health.status, 503);
    let body = health.json();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_ne!(body["database"], "ok", "{body}");
    println!("slowest 503 while the database was down: {slowest:?}");

    cluster.start();
    let back = Instant::now();
    wait_for(Duration::from_secs(30), "the app to recover", || {
        let r = call(&s, "GET", "/api/v1/queues", Auth::Bearer(&s.ann), None);
        (r.status == 200).then_some(())
    });
    println!("answering again {:?} after the restart", back.elapsed());
    for path in get_paths.iter().filter(|p| !p.ends_with("/events")) {
        let r = call(&s, "GET", path, Auth::Bearer(&s.ann), None);
        let want = if path.ends_with("queue.log") {
            404
        } else {
            200
        };
        assert_eq!(r.status, want, "GET {path}: {}", r.body);
    }
    assert_eq!(
        call(&s, "GET", "/api/v1/health", Auth::None, None).status,
        200
    );
    // Live events wake on notifications again (the listener reconnected).
    let (rx, fence) = {
        store::register_worker(&mut s.conn(), "w1", 2, "0.1.0", 1).unwrap();
        let row = store::claim_next(&mut s.conn(), "w1").unwrap().unwrap();
        let fence = Fence {
            queue_id: id.clone(),
            worker_id: "w1".into(),
            attempt: row.attempt,
        };
        (open_events(&s, &id), fence)
    };
    next_event(&rx, "status");
    append_chunks(&mut s.conn(), &fence, &chunks("queue.log", 0, b"back\n")).unwrap();
    assert_eq!(next_event(&rx, "log").1["text"], "back\n");
    drop(s);
    drop(db);
}
