//! `logs`: a queue's log files, read in ranges or followed live over the
//! event stream until the queue ends.

use std::io::Write as _;
use std::time::Duration;

use testarena_wire::api::{LogChunk, LogFile, Queue};

use super::{Ctx, Error, Exit, Result};
use crate::args::Logs;
use crate::client::{enc, enc_path};
use crate::output::{self, Table};
use crate::sse::{Event, Follower};

pub fn logs(ctx: &mut Ctx, args: &Logs) -> Result<Exit> {
    let base = format!("/api/v1/queues/{}", enc(&args.id));
    if args.list {
        let files: Vec<LogFile> = ctx.client.get(&format!("{base}/logs"))?;
        return list(ctx, &files);
    }
    let path = match &args.test {
        Some(test) => {
            let queue: Queue = ctx.client.get(&base)?;
            let files: Vec<LogFile> = ctx.client.get(&format!("{base}/logs"))?;
            Some(resolve(&queue, &files, test)?)
        }
        None => None,
    };
    if args.follow {
        return follow(ctx, &args.id, path.as_deref());
    }
    let paths = match path {
        Some(p) => vec![p],
        None => {
            let files: Vec<LogFile> = ctx.client.get(&format!("{base}/logs"))?;
            let mut paths: Vec<String> = files
                .into_iter()
                .map(|f| f.path)
                .filter(|p| p.ends_with(".log"))
                .collect();
            // The timeline first, then the build, then the tests.
            paths.sort_by_key(|p| (p != "queue.log", p != "build.log", p.clone()));
            paths
        }
    };
    let headers = paths.len() > 1;
    for (i, path) in paths.iter().enumerate() {
        if headers && !ctx.out.json {
            let gap = if i == 0 { "" } else { "\n" };
            let header = ctx.out.bold(&format!("==> {path} <=="));
            writeln!(ctx.out, "{gap}{header}")?;
        }
        read(ctx, &base, path)?;
    }
    Ok(Exit::Success)
}

/// Prints one file through ranged reads, to its current end.
fn read(ctx: &mut Ctx, base: &str, path: &str) -> Result<()> {
    let mut offset = 0u64;
    loop {
        let url = format!("{base}/logs/{}?offset={offset}", enc_path(path));
        let mut res = ctx.client.get_raw(&url)?;
        let size: Option<u64> = res
            .headers()
            .get("X-Log-Size")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = ctx.client.bytes(&url, &mut res, 8 << 20)?;
        if bytes.is_empty() {
            return Ok(());
        }
        if ctx.out.json {
            ctx.out.json_line(&LogChunk {
                path: path.to_owned(),
                offset,
                next_offset: offset + bytes.len() as u64,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })?;
        } else {
            ctx.out.write_all(&bytes)?;
        }
        offset += bytes.len() as u64;
        if size.is_none_or(|size| offset >= size) {
            return Ok(());
        }
    }
}

/// Prints lines as they are written until the queue ends.
fn follow(ctx: &mut Ctx, id: &str, path: Option<&str>) -> Result<Exit> {
    let follower = Follower::start(&ctx.client, id, path);
    // Several files interleave: each line says which file it is from.
    let prefix = path.is_none();
    loop {
        match follower.recv(Duration::from_secs(3600))? {
            None | Some(Event::Status(_)) => {}
            Some(Event::Log(chunk)) => {
                if ctx.out.json {
                    ctx.out.json_line(&chunk)?;
                    continue;
                }
                if prefix {
                    let tag = ctx.out.dim(&format!("{} |", chunk.path));
                    for line in chunk.text.split_inclusive('\n') {
                        write!(ctx.out, "{tag} {line}")?;
                    }
                } else {
                    write!(ctx.out, "{}", chunk.text)?;
                }
                ctx.out.flush()?;
            }
            Some(Event::End(queue)) => {
                match queue {
                    Some(q) => eprintln!("queue {} {}", q.id, q.status),
                    None => eprintln!("queue {id} was deleted"),
                }
                return Ok(Exit::Success);
            }
        }
    }
}

fn list(ctx: &mut Ctx, files: &[LogFile]) -> Result<Exit> {
    if ctx.out.json {
        ctx.out.json_value(&files)?;
        return Ok(Exit::Success);
    }
    let mut t = Table::new(&["PATH", "SIZE", "MODIFIED"]);
    for f in files {
        t.row(vec![
            f.path.clone(),
            f.size.to_string(),
            output::time(f.modified_at),
        ]);
    }
    t.print(&mut ctx.out)?;
    Ok(Exit::Success)
}

/// The file `--test` names: a path of the queue's folder (`build.log`),
/// `TASK/TEST` (a Unity case `TASK/TEST/CASE` is in `TEST`'s log), or
/// `TEST` alone when one task has it.
fn resolve(queue: &Queue, files: &[LogFile], test: &str) -> Result<String> {
    let test = test.trim_matches('/');
    if files.iter().any(|f| f.path == test) || test.ends_with(".log") {
        return Ok(test.to_owned());
    }
    let mut parts = test.splitn(3, '/');
    let first = parts.next().unwrap_or_default();
    if let Some(task) = queue.tasks.iter().find(|t| t.id == first) {
        let name = parts.next().ok_or_else(|| {
            Error::Usage(format!(
                "--test {test:?}: name a test of task {}, TASK/TEST",
                task.id
            ))
        })?;
        return Ok(format!("tasks/{}/{name}.log", task.id));
    }
    // A bare test name (or TEST/CASE): look for it in every task.
    if let [only] = queue.tasks.as_slice() {
        return Ok(format!("tasks/{}/{first}.log", only.id));
    }
    let found: Vec<&str> = queue
        .tasks
        .iter()
        .map(|t| format!("tasks/{}/{first}.log", t.id))
        .filter_map(|p| files.iter().find(|f| f.path == p).map(|f| f.path.as_str()))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(Error::Usage(format!(
            "--test {test:?}: no such log; see `testarena logs {} --list`",
            queue.id
        ))),
        several => Err(Error::Usage(format!(
            "--test {test:?} is in several tasks, say which (TASK/TEST): {}",
            several.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(tasks: &[&str]) -> Queue {
        let task = |id: &str| {
            serde_json::json!({
                "id": id, "queue_id": "q", "scenario": "s.xml", "status": "passed",
                "status_reason": null, "passed": 0, "failed": 0, "skipped": 0,
                "started_at": null, "finished_at": null, "tests": []
            })
        };
        serde_json::from_value(serde_json::json!({
            "id": "q", "status": "running", "status_reason": null, "repo": "r",
            "branch": "main", "commit": null, "target": "t", "owner": "o",
            "priority": 0, "timeout_s": null, "created_at": "2024-01-01T00:00:00Z",
            "started_at": null, "finished_at": null,
            "tasks": tasks.iter().map(|t| task(t)).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    fn file(path: &str) -> LogFile {
        LogFile {
            path: path.into(),
            size: 1,
            modified_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn test_names_become_log_paths() {
        let one = queue(&["q.1"]);
        assert_eq!(resolve(&one, &[], "build.log").unwrap(), "build.log");
        assert_eq!(
            resolve(&one, &[], "q.1/unit").unwrap(),
            "tasks/q.1/unit.log"
        );
        assert_eq!(
            resolve(&one, &[], "q.1/unit/test_the_answer").unwrap(),
            "tasks/q.1/unit.log"
        );
        assert_eq!(resolve(&one, &[], "unit").unwrap(), "tasks/q.1/unit.log");
        let two = queue(&["q.1", "q.2"]);
        let files = [
            file("tasks/q.1/unit.log"),
            file("tasks/q.2/boot.log"),
            file("tasks/q.2/unit.log"),
        ];
        assert_eq!(resolve(&two, &files, "boot").unwrap(), "tasks/q.2/boot.log");
        assert!(
            resolve(&two, &files, "unit")
                .unwrap_err()
                .to_string()
                .contains("several")
        );
        assert!(resolve(&two, &files, "nope").is_err());
    }
}
