//! `testarena boards`: the farm's boards, their status, health and queue.

use std::io::Write as _;

use testarena_wire::boards::Board;

use super::{Ctx, Exit, Result};
use crate::output::{self, Table};

pub fn boards(ctx: &mut Ctx) -> Result<Exit> {
    let boards: Vec<Board> = ctx.client.get("/api/v1/boards")?;
    if ctx.out.json {
        ctx.out.json_value(&boards)?;
        return Ok(Exit::Success);
    }
    let mut t = Table::new(&[
        "BOARD",
        "STATUS",
        "HEALTH",
        "WORKER",
        "TARGET",
        "TAGS",
        "QUEUE",
        "LAST CHECK",
    ]);
    for b in &boards {
        t.row(vec![
            b.id.clone(),
            b.status.as_str().to_owned(),
            b.health.as_str().to_owned(),
            b.worker.clone(),
            b.target.clone(),
            b.tags.join(","),
            b.queue.clone().unwrap_or_default(),
            b.last_health_at.map(output::time).unwrap_or_default(),
        ]);
    }
    if t.is_empty() {
        writeln!(ctx.out, "no boards")?;
    } else {
        t.print(&mut ctx.out)?;
    }
    Ok(Exit::Success)
}
