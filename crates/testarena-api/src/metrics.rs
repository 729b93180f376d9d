//! Counters for `GET /metrics`: HTTP requests by route and status, queue
//! submissions and open event streams. Queue counts and worker heartbeats
//! are read from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
    pub fn render(&self, out: &mut String) {
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
