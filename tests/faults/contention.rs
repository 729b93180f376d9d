//! Write contention: eight clients create, list, read, abort and delete
//! queues as fast as they can while a worker (two slots) claims and runs
//! them. No answer and no log line may say `database is locked`; the worst
//! answer allowed is 503 with `Retry-After`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::probe::{check_secrets, percentile_ms, wait_for};
use super::{shared, small};
use testarena_testkit::{Farm, Resp, Setup};

const WRITERS: usize = 8;
const RUN_FOR: Duration = Duration::from_secs(20);

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// (operation, status) → count.
    statuses: BTreeMap<(&'static str, u16), usize>,
    took: Vec<Duration>,
    problems: Vec<String>,
    created: Vec<String>,
}

impl Seen {
    fn note(&mut self, op: &'static str, r: &Resp, allowed: &[u16]) {
        *self.statuses.entry((op, r.status)).or_default() += 1;
        self.took.push(r.took);
        if r.body.contains("database is locked") {
            self.problems.push(format!("{op}: {} {}", r.status, r.body));
        }
        let retry = r.status == 503 && r.retry_after.is_some();
        if !allowed.contains(&r.status) && !retry {
            self.problems.push(format!(
                "{op}: {} (Retry-After {:?}) {}",
                r.status, r.retry_after, r.body
            ));
        }
    }
}

fn client(farm: &Farm, n: usize) -> Seen {
    let mut seen = Seen::default();
    let until = Instant::now() + RUN_FOR;
    let mut round = 0usize;
    while Instant::now() < until {
        round += 1;
        // Create: some quick, some that talk for a while (to be aborted).
        let scenario = if round.is_multiple_of(3) {
            "scenarios/chatty.xml"
        } else {
            "scenarios/quick.xml"
        };
        let body = json!({
            "branch": "main",
            "scenarios": [scenario],
            "priority": (round % 5) as i32 - 2,
        });
        let r = farm.call("POST", "/api/v1/queues", Some(&body));
        seen.note("create", &r, &[201]);
        if r.status == 201 {
            seen.created
                .push(r.json()["id"].as_str().unwrap().to_owned());
        }
        let r = farm.call("GET", "/api/v1/queues?limit=50", None);
        seen.note("list", &r, &[200]);
        let Some(last) = seen.created.last().cloned() else {
            continue;
        };
        let r = farm.call("GET", &format!("/api/v1/queues/{last}"), None);
        seen.note("get", &r, &[200]);
        // Abort every other queue of ours: waiting, running or already over.
        let victim = seen.created[(round * 7 + n) % seen.created.len()].clone();
        if round.is_multiple_of(2) {
            let r = farm.call("POST", &format!("/api/v1/queues/{victim}/abort"), None);
            seen.note("abort", &r, &[202, 409]);
        }
        // Delete now and then: 204 when over or waiting, 409 while running.
        if round.is_multiple_of(5) {
            let r = farm.call("DELETE", &format!("/api/v1/queues/{victim}"), None);
            seen.note("delete", &r, &[204, 404, 409]);
            if r.status == 204 {
                seen.created.retain(|id| *id != victim);
            }
        }
    }
    seen
}

#[test]
fn eight_writers_and_a_worker_never_see_a_locked_database() {
    let _quiet = shared();
    let farm = Farm::start(Setup {
        slots: 2,
        poll_interval_ms: 20,
        ..small()
    });
    let seen: Vec<Seen> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|n| {
                let farm = &farm;
                s.spawn(move || client(farm, n))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut statuses = BTreeMap::<(&str, u16), usize>::new();
    let mut took = Vec::new();
    let mut problems = Vec::new();
    let mut created = Vec::new();
    for s in seen {
        for (k, v) in s.statuses {
            *statuses.entry(k).or_default() += v;
        }
        took.extend(s.took);
        problems.extend(s.problems);
        created.extend(s.created);
    }
    took.sort();
    assert!(
        problems.is_empty(),
        "{} bad answers: {problems:#?}",
        problems.len()
    );

    // Whatever is left ends: abort the talkers, let the rest run.
    for id in &created {
        let r = farm.call("POST", &format!("/api/v1/queues/{id}/abort"), None);
        assert!([202, 409].contains(&r.status), "{}", r.body);
    }
    for id in &created {
        let q = farm.wait_final(id, Duration::from_secs(120));
        let log = farm.queue_log(id);
        assert!(log.matches("claimed by worker").count() <= 1, "{log}");
        assert!(
            ["passed", "aborted"].contains(&q["status"].as_str().unwrap()),
            "{q:#}"
        );
    }
    wait_for(Duration::from_secs(10), "the worker to be idle", || {
        let h = farm.call("GET", "/api/v1/health", None).json();
        h["workers"][0]["running"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
    let logs = farm.daemon_logs();
    let locked: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("database is locked"))
        .take(10)
        .collect();
    assert!(locked.is_empty(), "the daemons logged: {locked:#?}");
    assert_eq!(farm.db_integrity(), "ok");
    let requests = took.len();
    println!(
        "contention: {WRITERS} writers, {requests} requests in {:.0} s ({:.0}/s) with the worker running; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; answers {statuses:?}; no `database is locked` anywhere",
        RUN_FOR.as_secs_f64(),
        requests as f64 / RUN_FOR.as_secs_f64(),
        percentile_ms(&took, 50.0),
        percentile_ms(&took, 99.0),
        percentile_ms(&took, 100.0),
    );
    check_secrets(&farm);
    farm.assert_no_leftovers();
}
