//! Scenario 6: lines appended to a running test's log, and how long they
//! take to reach each of many Server-Sent Events clients.

use std::io::{BufRead as _, BufReader, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use serde_json::Value;

use crate::farm::{Farm, RssPeak, wait_for};
use crate::fixture::{BENCH_BRANCH, FOLLOW, FOLLOW_TEST};
use crate::report::{Report, Target};
use crate::stats::{Jitter, median, percentile};

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// What one client saw: the latency of each bench line, in ms.
pub(crate) fn client(
    farm: &Farm,
    path: &str,
    connected: &AtomicUsize,
    received: &AtomicUsize,
) -> anyhow::Result<Vec<f64>> {
    let stream = farm.admin.fresh().stream(path)?;
    let mut latencies = Vec::new();
    let mut event = String::new();
    let mut seen_status = false;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_owned();
            continue;
        }
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        match event.as_str() {
            "status" if !seen_status => {
                seen_status = true;
                connected.fetch_add(1, Ordering::SeqCst);
            }
            "log" => {
                let at = now_us();
                let chunk: Value = serde_json::from_str(data)?;
                for l in chunk["text"].as_str().unwrap_or("").lines() {
                    let mut parts = l.split_whitespace();
                    if parts.next() != Some("bench") {
                        continue;
                    }
                    let written: u128 = parts.nth(1).and_then(|w| w.parse().ok()).unwrap_or(at);
                    latencies.push(at.saturating_sub(written) as f64 / 1000.0);
                    received.fetch_add(1, Ordering::SeqCst);
                }
            }
            "end" => break,
            _ => {}
        }
    }
    Ok(latencies)
}

pub fn sse(
    farm: &Farm,
    report: &mut Report,
    clients: usize,
    lines: usize,
    interval: Duration,
) -> anyhow::Result<()> {
    let (id, _) = farm.submit("firmware", BENCH_BRANCH, &[FOLLOW])?;
    let task = format!("{id}.1");
    let rel = format!("tasks/{task}/{FOLLOW_TEST}.log");
    let log = farm.home.join("queues").join(&id).join(&rel);
    wait_for(
        Duration::from_secs(30),
        "the followed test to start",
        || Ok(log.exists()),
    )?;
    let offset = std::fs::metadata(&log)?.len();
    let path = format!("/api/v1/queues/{id}/events?path={rel}&offset={offset}");
    let (connected, received) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let rss = farm.app_pid().map(RssPeak::start);
    let results: anyhow::Result<Vec<Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| scope.spawn(|| client(farm, &path, &connected, &received)))
            .collect();
        let writer = (|| {
            wait_for(
                Duration::from_secs(60),
                "every SSE client to connect",
                || Ok(connected.load(Ordering::SeqCst) >= clients),
            )?;
            let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
            let mut jitter = Jitter::new();
            for seq in 0..lines {
                std::thread::sleep(interval / 2 + jitter.below(interval));
                // One write per line, as the worker appends.
                file.write_all(format!("bench {seq} {}\n", now_us()).as_bytes())?;
            }
            let expected = clients * lines;
            let _ = wait_for(Duration::from_secs(10), "every line to arrive", || {
                Ok(received.load(Ordering::SeqCst) >= expected)
            });
            anyhow::Ok(())
        })();
        // Ending the queue ends every stream, whatever the writer did.
        let abort = farm
            .admin
            .post_json(&format!("/api/v1/queues/{id}/abort"), &Value::Null);
        let mut all = Vec::new();
        for h in handles {
            all.push(
                h.join()
                    .map_err(|_| anyhow::anyhow!("an SSE client panicked"))??,
            );
        }
        writer?;
        let (status, body) = abort?;
        if status != 202 {
            bail!("abort of {id}: {status} {body}");
        }
        Ok(all)
    });
    let peak = rss.map(RssPeak::finish);
    let results = results?;
    farm.wait_final(&id, Duration::from_secs(30))?;
    let all: Vec<f64> = results.iter().flatten().copied().collect();
    let expected = clients * lines;
    if all.len() < expected {
        bail!("SSE clients received {} of {expected} lines", all.len());
    }
    let s = "6 live logs";
    let note = format!(
        "{clients} clients following one test log; a line every ~{} ms",
        interval.as_millis()
    );
    report.add(
        s,
        "log line → SSE client p50",
        median(&all),
        "ms",
        None,
        all.len(),
        note.clone(),
    );
    report.add(
        s,
        "log line → SSE client p99",
        percentile(&all, 99.0),
        "ms",
        Some(Target::AtMost(250.0)),
        all.len(),
        note,
    );
    if let Some(peak) = peak {
        report.add(
            s,
            "app peak RSS with the SSE clients",
            peak,
            "MiB",
            None,
            clients,
            "",
        );
    }
    Ok(())
}
