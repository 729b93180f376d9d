//! `GET /metrics` in Prometheus text format: the in-process counters (HTTP
//! requests by route and status, queue submissions, open event streams)
//! and what the database holds at scrape time (queues by status, run
//! times, worker heartbeats), rendered by [`render`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::NaiveDateTime;
use testarena_domain::models::WorkerRow;
use testarena_domain::status::{Kind, Status};
use testarena_domain::store::DurationStat;

/// What the database holds at scrape time.
#[derive(Debug)]
pub struct Farm {
    pub counts: Vec<(Status, i64)>,
    pub workers: Vec<(WorkerRow, Vec<String>)>,
    pub durations: Vec<DurationStat>,
    /// The time the heartbeats' ages are measured from.
    pub now: NaiveDateTime,
}

/// The whole scrape: `farm`'s figures, then `counters`.
pub fn render(farm: &Farm, counters: &Metrics) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP testarena_queues Queues stored, by status.\n# TYPE testarena_queues gauge\n",
    );
    for status in Status::ALL {
        if status.applies_to(Kind::Queue) {
            let n = farm
                .counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "testarena_queues{{status=\"{status}\"}} {n}");
        }
    }
    for (kind, help) in [
        ("queue", "Run time of finished queues, by status."),
        ("test", "Run time of recorded tests, by status."),
    ] {
        let name = format!("testarena_{kind}_duration_seconds");
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for d in farm.durations.iter().filter(|d| d.kind == kind) {
            let status = &d.status;
            let _ = writeln!(out, "{name}_sum{{status=\"{status}\"}} {:.3}", d.sum_s);
            let _ = writeln!(out, "{name}_count{{status=\"{status}\"}} {}", d.count);
        }
    }
    out.push_str("# HELP testarena_worker_heartbeat_age_seconds Seconds since each worker's last heartbeat.\n");
    out.push_str("# TYPE testarena_worker_heartbeat_age_seconds gauge\n");
    for (w, running) in &farm.workers {
        let age = (farm.now - w.last_seen).num_milliseconds() as f64 / 1000.0;
        let _ = writeln!(
            out,
            "testarena_worker_heartbeat_age_seconds{{worker=\"{}\"}} {age:.3}",
            label(&w.id)
        );
        let _ = writeln!(
            out,
            "testarena_worker_running{{worker=\"{}\"}} {}",
            label(&w.id),
            running.len()
        );
    }
    counters.render(&mut out);
    out
}

/// In-process counters; the database holds the rest.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    submitted: AtomicU64,
    sse_open: AtomicI64,
}

impl Metrics {
    /// Counts one answered request. `route` is the matched pattern (never
    /// the raw path, so ids don't blow up the label set).
    pub fn request(&self, method: &str, route: &str, status: u16) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
        }
    }

    pub fn queue_submitted(&self) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sse_opened(&self) {
        self.sse_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sse_closed(&self) {
        self.sse_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Appends the in-process counters in Prometheus text format.
    fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP testarena_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE testarena_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), n) in requests.iter() {
                let _ = writeln!(
                    out,
                    "testarena_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    label(route)
                );
            }
        }
        out.push_str(
            "# HELP testarena_queues_submitted_total Queues created through this app process.\n",
        );
        out.push_str("# TYPE testarena_queues_submitted_total counter\n");
        let _ = writeln!(
            out,
            "testarena_queues_submitted_total {}",
            self.submitted.load(Ordering::Relaxed)
        );
        out.push_str("# HELP testarena_event_streams Open Server-Sent Events streams.\n");
        out.push_str("# TYPE testarena_event_streams gauge\n");
        let _ = writeln!(
            out,
            "testarena_event_streams {}",
            self.sse_open.load(Ordering::Relaxed)
        );
    }
}

/// Escapes a Prometheus label value.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
