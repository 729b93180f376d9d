//! Scenario 7: resident memory of the daemons, idle and while the app
//! serves a large log.

use std::io::Write as _;
use std::time::Duration;

use anyhow::bail;

use crate::farm::{Farm, RssPeak, rss_mib};
use crate::report::{Report, Target};

/// Idle RSS of the app and the worker, after `settle`.
pub fn idle(farm: &Farm, report: &mut Report, settle: Duration, when: &str) -> anyhow::Result<()> {
    std::thread::sleep(settle);
    let s = "7 memory";
    let fresh = when == "after start";
    if let Some(pid) = farm.app_pid() {
        let target = fresh.then_some(Target::AtMost(30.0));
        report.add(
            s,
            &format!("app idle RSS, {when}"),
            rss_mib(pid)?,
            "MiB",
            target,
            1,
            "",
        );
    }
    if let Some(pid) = farm.worker_pid() {
        let target = fresh.then_some(Target::AtMost(20.0));
        report.add(
            s,
            &format!("worker idle RSS, {when}"),
            rss_mib(pid)?,
            "MiB",
            target,
            1,
            "",
        );
    }
    Ok(())
}

/// Writes a log of `mib` MiB into a finished queue's folder, then reads it
/// whole through ranged reads and through one SSE stream; the figure is the
/// app's peak RSS over its RSS before.
pub fn large_log(
    farm: &Farm,
    report: &mut Report,
    queue_id: &str,
    mib: usize,
) -> anyhow::Result<()> {
    let rel = "tasks/large.log";
    let path = farm.home.join("queues").join(queue_id).join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let size = mib * 1024 * 1024;
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let line = format!(
            "{:<79}\n",
            "I (12345) app: a line of a large log, eighty bytes long with its newline"
        );
        let mut written = 0;
        while written < size {
            file.write_all(line.as_bytes())?;
            written += line.len();
        }
        file.flush()?;
    }
    let size = std::fs::metadata(&path)?.len();
    let Some(pid) = farm.app_pid() else {
        bail!("the app is not running");
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_mib(pid)?;
    let peak = RssPeak::start(pid);
    let mut offset = 0u64;
    while offset < size {
        let (status, body) = farm.admin.request(
            "GET",
            &format!("/api/v1/queues/{queue_id}/logs/{rel}?offset={offset}"),
            None,
        )?;
        if status != 200 || body.is_empty() {
            bail!("ranged read at {offset}: {status}");
        }
        offset += body.len() as u64;
    }
    let ranged = peak.finish();
    let peak = RssPeak::start(pid);
    let mut stream = farm
        .admin
        .stream(&format!("/api/v1/queues/{queue_id}/events?path={rel}"))?;
    let streamed = std::io::copy(&mut stream, &mut std::io::sink())?;
    let streaming = peak.finish();
    if streamed < size {
        bail!("the SSE stream sent {streamed} bytes of a {size}-byte log");
    }
    std::fs::remove_file(&path)?;
    let s = "7 memory";
    report.add(
        s,
        "  of which ranged reads (4 MiB each)",
        (ranged - before).max(0.0),
        "MiB",
        None,
        1,
        "",
    );
    report.add(
        s,
        "  of which one SSE stream of it",
        (streaming - before).max(0.0),
        "MiB",
        None,
        1,
        "",
    );
    report.add(
        s,
        &format!("app RSS rise serving a {mib} MiB log"),
        (ranged.max(streaming) - before).max(0.0),
        "MiB",
        Some(Target::AtMost(10.0)),
        1,
        format!("peak − before ({before:.1} MiB): ranged reads of the whole file, then one SSE stream of it"),
    );
    Ok(())
}
