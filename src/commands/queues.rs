//! Queues: submit, status, list, abort, delete, rerun, JUnit XML.

use std::io::Write as _;
use std::path::Path;

use testarena_wire::api::{CreateQueue, Page, Queue, Rerun, RerunRequest, ScenarioEntry};
use testarena_wire::status::Status;

use super::{Ctx, Error, Exit, Result, follow, view};
use crate::args::{List, Submit};
use crate::client::{ClientError, enc};

fn queue_path(id: &str) -> String {
    format!("/api/v1/queues/{}", enc(id))
}

pub fn submit(ctx: &mut Ctx, args: Submit) -> Result<Exit> {
    let body = CreateQueue {
        branch: args.branch,
        commit: args.commit,
        scenarios: Some(
            args.scenarios
                .into_iter()
                .map(ScenarioEntry::Path)
                .collect(),
        ),
        repo: args.repo,
        target: args.target,
        id: args.id,
        priority: args.priority,
        timeout_s: args.timeout,
        board: args.board,
        board_tags: (!args.board_tags.is_empty()).then_some(args.board_tags),
        ..CreateQueue::default()
    };
    let queue: Queue = ctx.client.post("/api/v1/queues", Some(&body))?;
    started(ctx, queue, args.wait.wait)
}

/// Prints a queue just made; follows it with `wait`.
fn started(ctx: &mut Ctx, queue: Queue, wait: bool) -> Result<Exit> {
    if wait {
        if !ctx.out.json {
            writeln!(
                ctx.out,
                "queue {} submitted: {}{} on {} ({} task{})",
                ctx.out.bold(&queue.id),
                queue.branch,
                queue
                    .commit
                    .as_deref()
                    .map(|c| format!(" @ {}", view::short_sha(c)))
                    .unwrap_or_default(),
                queue.target,
                queue.tasks.len(),
                if queue.tasks.len() == 1 { "" } else { "s" }
            )?;
        }
        return follow::wait(ctx, queue);
    }
    if ctx.out.json {
        ctx.out.json_value(&queue)?;
    } else {
        writeln!(ctx.out, "{}", queue.id)?;
        let hint = format!(
            "queue {id} {}; follow it with: testarena status {id} --wait",
            view::queue_status(&queue),
            id = queue.id
        );
        eprintln!("{hint}");
    }
    Ok(Exit::Success)
}

pub fn status(ctx: &mut Ctx, id: &str, wait: bool) -> Result<Exit> {
    let queue: Queue = ctx.client.get(&queue_path(id))?;
    if wait {
        return follow::wait(ctx, queue);
    }
    if ctx.out.json {
        ctx.out.json_value(&queue)?;
    } else {
        view::queue_detail(&mut ctx.out, &queue)?;
    }
    Ok(Exit::Success)
}

pub fn list(ctx: &mut Ctx, args: &List) -> Result<Exit> {
    if let Some(s) = &args.status {
        let ok = s.parse::<Status>().is_ok_and(|s| s != Status::Skipped);
        if !ok {
            return Err(Error::Usage(format!(
                "--status {s:?}: use waiting, running, passed, failed, error or aborted"
            )));
        }
    }
    let mut before = args.before.clone();
    let mut items = Vec::new();
    let next = loop {
        let mut query = vec![format!("limit={}", args.limit)];
        for (key, value) in [
            ("status", &args.status),
            ("owner", &args.owner),
            ("branch", &args.branch),
            ("before", &before),
        ] {
            if let Some(v) = value {
                query.push(format!("{key}={}", enc(v)));
            }
        }
        let page: Page<Queue> = ctx
            .client
            .get(&format!("/api/v1/queues?{}", query.join("&")))?;
        items.extend(page.items);
        match page.next {
            Some(next) if args.all => before = Some(next),
            next => break next,
        }
    };
    if ctx.out.json {
        ctx.out.json_value(&Page { items, next })?;
        return Ok(Exit::Success);
    }
    view::queue_table(&mut ctx.out, &items)?;
    if let Some(next) = next {
        eprintln!("more: testarena list --before {next} (or --all)");
    }
    Ok(Exit::Success)
}

/// Runs `f` on each id; with several, a refusal is reported and the
/// others still run.
fn each(
    ctx: &mut Ctx,
    ids: &[String],
    mut f: impl FnMut(&mut Ctx, &str) -> Result<()>,
) -> Result<Exit> {
    if let [id] = ids {
        f(ctx, id)?;
        return Ok(Exit::Success);
    }
    let mut exit = Exit::Success;
    for id in ids {
        match f(ctx, id) {
            Ok(()) => {}
            Err(Error::Client(e)) => {
                eprintln!("error: {id}: {e}");
                exit = Exit::Trouble;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(exit)
}

pub fn abort(ctx: &mut Ctx, ids: &[String]) -> Result<Exit> {
    each(ctx, ids, |ctx, id| {
        let queue: Queue = ctx
            .client
            .post::<(), _>(&format!("{}/abort", queue_path(id)), None)?;
        if ctx.out.json {
            ctx.out.json_value(&queue)?;
        } else if queue.is_final() {
            writeln!(ctx.out, "{} {}", queue.id, ctx.out.status(queue.status))?;
        } else {
            writeln!(
                ctx.out,
                "{} abort requested; its worker stops it within seconds",
                queue.id
            )?;
        }
        Ok(())
    })
}

pub fn delete(ctx: &mut Ctx, ids: &[String]) -> Result<Exit> {
    each(ctx, ids, |ctx, id| {
        match ctx.client.delete(&queue_path(id)) {
            Err(e @ ClientError::Api { status: 409, .. }) => {
                eprintln!("hint: abort a running queue first: testarena abort {id}");
                return Err(e.into());
            }
            other => other?,
        }
        if ctx.out.json {
            ctx.out
                .json_line(&serde_json::json!({"id": id, "deleted": true}))?;
        } else {
            writeln!(ctx.out, "{id} deleted")?;
        }
        Ok(())
    })
}

/// Reruns with options: without any, the API's answer is one queue;
/// with `count` it is a list, each printed (and with `wait` followed in
/// turn: the exit is the first that is not a success).
pub fn rerun(ctx: &mut Ctx, id: &str, opts: RerunRequest, wait: bool) -> Result<Exit> {
    let path = format!("{}/rerun", queue_path(id));
    if opts == RerunRequest::default() {
        let queue: Queue = ctx.client.post::<(), _>(&path, None)?;
        return started(ctx, queue, wait);
    }
    match ctx.client.post::<_, Rerun>(&path, Some(&opts))? {
        Rerun::One(queue) => started(ctx, *queue, wait),
        Rerun::Many(queues) => {
            let mut exit = Exit::Success;
            for queue in queues {
                let this = started(ctx, queue, wait)?;
                if exit == Exit::Success {
                    exit = this;
                }
            }
            Ok(exit)
        }
    }
}

pub fn junit(ctx: &mut Ctx, id: &str, output: Option<&Path>) -> Result<Exit> {
    let path = format!("{}/junit.xml", queue_path(id));
    let mut res = ctx.client.get_raw(&path)?;
    let xml = ctx.client.bytes(&path, &mut res, 256 << 20)?;
    match output.filter(|p| *p != Path::new("-")) {
        Some(file) => {
            std::fs::write(file, &xml).map_err(Error::io(file.display().to_string()))?;
            if ctx.out.json {
                ctx.out.json_value(&serde_json::json!({
                    "id": id, "file": file, "bytes": xml.len()
                }))?;
            } else {
                eprintln!("wrote {} ({} bytes)", file.display(), xml.len());
            }
        }
        None => ctx.out.write_all(&xml)?,
    }
    Ok(Exit::Success)
}
