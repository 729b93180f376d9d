//! Scenario 4: a large repository's first queue (the mirror is cloned, the
//! worker's slot writes its whole tree) against its second, on the next
//! commit (the mirror is only fetched, the slot's tree is moved: only the
//! files that commit changed are written).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use testarena_domain::config::RepoConfig;
use testarena_domain::git::Mirror;

use crate::farm::Farm;
use crate::fixture::QUICK;
use crate::queues::breakdown;
use crate::report::{Report, Target};
use crate::stats::{median, ms_between};

pub const REPO: &str = "large";

/// Git time of one queue, in ms: the submission (which fetches, or first
/// clones, the mirror to check the branch and the scenario) plus the
/// worker's fetch and checkout.
#[derive(Debug, Clone, Copy)]
struct GitTime {
    submit: f64,
    fetch: f64,
    checkout: f64,
}

impl GitTime {
    fn total(&self) -> f64 {
        self.submit + self.fetch + self.checkout
    }
}

fn one(farm: &Farm) -> anyhow::Result<GitTime> {
    let asked = chrono::Utc::now();
    let (id, answered) = farm.submit(REPO, "main", &[QUICK])?;
    let queue = farm.wait_final(&id, Duration::from_secs(300))?;
    if queue["status"] != "passed" {
        bail!(
            "queue {id} ended {}: {}",
            queue["status"],
            queue["status_reason"]
        );
    }
    let b = breakdown(farm, &queue)?;
    // junit.xml is the last file of a queue's end: the worker is idle again.
    let junit = farm.home.join("queues").join(&id).join("junit.xml");
    crate::farm::wait_for(Duration::from_secs(60), "the queue's junit.xml", || {
        Ok(junit.exists())
    })?;
    Ok(GitTime {
        submit: ms_between(asked, answered),
        fetch: b.fetch,
        checkout: b.checkout,
    })
}

pub fn checkout(farm: &Farm, url: &Path, report: &mut Report, runs: usize) -> anyhow::Result<()> {
    let repo = RepoConfig {
        name: REPO.to_owned(),
        url: url.display().to_string(),
        ssh_key: None,
        known_hosts: None,
        token_env: None,
        ..Default::default()
    };
    let mirror = Mirror::new(&farm.home.join("cache").join("git"), &repo);
    let (mut firsts, mut seconds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        // The worker is idle and the app fetches only at a submission:
        // nobody holds the mirror or the slots' checkouts now. Without
        // them, the first queue is a new worker's on a new repository.
        for dir in [mirror.path().to_owned(), farm.home.join("work")] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        let first = one(farm)?;
        next_commit(url, run)?;
        let second = one(farm)?;
        ratios.push(first.total() / second.total());
        firsts.push(first);
        seconds.push(second);
    }
    let s = "4 checkout";
    let n = runs;
    let m = |v: &[GitTime], f: fn(&GitTime) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    report.add(
        s,
        "second queue faster than the first",
        median(&ratios),
        "x",
        Some(Target::AtLeast(10.0)),
        n,
        "(submit + worker fetch + checkout) of the first queue / of the second, on the next commit",
    );
    let mirror_ratio = m(&firsts, |g| g.submit + g.fetch) / m(&seconds, |g| g.submit + g.fetch);
    report.add(
        s,
        "mirror only: clone vs fetch",
        mirror_ratio,
        "x",
        None,
        n,
        "(submit + worker fetch) of the first queue / of the second: the checkout left out",
    );
    report.add(
        s,
        "first queue: submit (clones the mirror)",
        m(&firsts, |g| g.submit),
        "ms",
        None,
        n,
        "",
    );
    report.add(
        s,
        "first queue: worker fetch + checkout",
        m(&firsts, |g| g.fetch + g.checkout),
        "ms",
        None,
        n,
        "",
    );
    report.add(
        s,
        "second queue: submit (fetches)",
        m(&seconds, |g| g.submit),
        "ms",
        None,
        n,
        "",
    );
    report.add(
        s,
        "second queue: worker fetch",
        m(&seconds, |g| g.fetch),
        "ms",
        None,
        n,
        "",
    );
    report.add(
        s,
        "second queue: checkout (the slot's tree moved)",
        m(&seconds, |g| g.checkout),
        "ms",
        None,
        n,
        "",
    );
    Ok(())
}

/// Adds a commit to `main` of the bare repository at `url` that changes
/// four files, as each commit of the generated history does.
fn next_commit(url: &Path, run: usize) -> anyhow::Result<()> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(url)
        .args(["fast-import", "--quiet"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running git fast-import")?;
    let mut stream = String::new();
    let message = format!("bench run {run}");
    stream.push_str(&format!(
        "commit refs/heads/main\ncommitter TestArena Bench <bench@testarena.invalid> {} +0000\ndata {}\n{message}\nfrom refs/heads/main^0\n",
        1_800_000_000 + run * 60,
        message.len()
    ));
    for k in 0..4 {
        let content = format!("/* changed by bench run {run}, file {k} */\n");
        stream.push_str(&format!(
            "M 100644 inline src/d{k:02}/f{k:04}.c\ndata {}\n{content}\n",
            content.len()
        ));
    }
    let mut stdin = child.stdin.take().context("fast-import stdin")?;
    stdin.write_all(stream.as_bytes())?;
    drop(stdin);
    let status = child.wait()?;
    if !status.success() {
        bail!("git fast-import failed: {status}");
    }
    Ok(())
}
