//! 200 clients follow one running queue over Server-Sent Events while
//! `/api/v1/health` is timed: its p99 stays under 100 ms and the app's
//! memory stays bounded; every stream ends with `end` once the queue does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::probe::{check_secrets, percentile_ms, vm_kb, wait_for};
use super::{exclusive, small};
use testarena_testkit::{Auth, Farm};

const CLIENTS: usize = 200;
const HEALTH_REQUESTS: usize = 300;

/// What the streams saw, together.
#[derive(Default)]
struct Streams {
    opened: AtomicUsize,
    ended: AtomicUsize,
    bytes: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

/// Follows `/events` of queue `id` until `end` arrives or `stop` is set.
fn follow(addr: &str, token: &str, id: &str, streams: &Streams, stop: &AtomicBool) {
    let fail = |e: String| streams.errors.lock().unwrap().push(e);
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return fail(format!("connect: {e}")),
    };
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let request = format!(
        "GET /api/v1/queues/{id}/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    if let Err(e) = s.write_all(request.as_bytes()) {
        return fail(format!("send: {e}"));
    }
    let mut buf = vec![0u8; 16 * 1024];
    // The end of what came before, so a marker split between reads is seen.
    let mut tail: Vec<u8> = Vec::new();
    let mut opened = false;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return fail("closed before `end`".into()),
            Ok(n) => {
                streams.bytes.fetch_add(n, Ordering::Relaxed);
                tail.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&tail);
                if !opened && text.contains("event: status") {
                    opened = true;
                    streams.opened.fetch_add(1, Ordering::Relaxed);
                }
                if !opened && text.starts_with("HTTP/1.1 ") && !text.starts_with("HTTP/1.1 200") {
                    return fail(text.lines().next().unwrap_or("").to_owned());
                }
                if text.contains("event: end") {
                    streams.ended.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let keep = tail.len().saturating_sub(32);
                tail.drain(..keep);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return fail("no `end` before the deadline".into());
                }
            }
            Err(e) => return fail(format!("read: {e}")),
        }
    }
}

#[test]
fn two_hundred_event_streams_leave_health_fast_and_memory_bounded() {
    let _quiet = exclusive();
    let farm = Farm::start(small());
    let id = farm.submit("main", &["scenarios/chatty.xml"]);
    wait_for(Duration::from_secs(30), "the queue to talk", || {
        farm.queue_log(&id).contains("test ").then_some(())
    });
    let app = farm.app_pid();
    let rss_before = vm_kb(app, "VmRSS").unwrap();
    let addr = farm.base.trim_start_matches("http://").to_owned();
    let streams = Streams::default();
    let stop = AtomicBool::new(false);
    let (health, rss_peak, opened_in, ended_in) = std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            let (addr, token, id, streams, stop) = (&addr, &farm.token, &id, &streams, &stop);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(s, move || follow(addr, token, id, streams, stop))
                .unwrap();
        }
        let started = Instant::now();
        wait_for(Duration::from_secs(60), "every stream to open", || {
            let errors = streams.errors.lock().unwrap();
            assert!(errors.is_empty(), "{errors:?}");
            (streams.opened.load(Ordering::Relaxed) == CLIENTS).then_some(())
        });
        let opened_in = started.elapsed();
        let mut took = Vec::with_capacity(HEALTH_REQUESTS);
        let mut rss_peak = 0;
        for i in 0..HEALTH_REQUESTS {
            let r = farm.call_as(Auth::None, "GET", "/api/v1/health", None);
            assert_eq!(r.status, 200, "{}", r.body);
            took.push(r.took);
            if i % 10 == 0 {
                rss_peak = rss_peak.max(vm_kb(app, "VmRSS").unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        took.sort();
        // The queue ends: every stream gets `end`.
        let r = farm.call("POST", &format!("/api/v1/queues/{id}/abort"), None);
        assert_eq!(r.status, 202, "{}", r.body);
        let ending = Instant::now();
        let ended = Duration::from_secs(30);
        while streams.ended.load(Ordering::Relaxed) < CLIENTS && ending.elapsed() < ended {
            std::thread::sleep(Duration::from_millis(50));
        }
        let ended_in = ending.elapsed();
        stop.store(true, Ordering::Relaxed);
        (took, rss_peak, opened_in, ended_in)
    });
    let errors = streams.errors.into_inner().unwrap();
    let ended = streams.ended.load(Ordering::Relaxed);
    let hwm = vm_kb(app, "VmHWM").unwrap();
    let p50 = percentile_ms(&health, 50.0);
    let p99 = percentile_ms(&health, 99.0);
    let max = percentile_ms(&health, 100.0);
    println!(
        "{CLIENTS} SSE clients: all open in {:.1} s; /api/v1/health over {HEALTH_REQUESTS} requests: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms; app RSS {} MB before, {} MB peak while streaming, VmHWM {} MB; {} MB streamed; {ended} streams got `end` {:.1} s after the abort",
        opened_in.as_secs_f64(),
        rss_before / 1024,
        rss_peak / 1024,
        hwm / 1024,
        streams.bytes.load(Ordering::Relaxed) >> 20,
        ended_in.as_secs_f64(),
    );
    assert!(
        errors.is_empty(),
        "{} streams failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(ended, CLIENTS);
    assert!(p99 < 100.0, "health p99 {p99:.1} ms with {CLIENTS} streams");
    assert!(hwm < 256 * 1024, "the app's peak memory is {hwm} kB");
    check_secrets(&farm);
    farm.assert_no_leftovers();
}
