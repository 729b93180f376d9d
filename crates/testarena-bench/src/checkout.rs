//! Scenario 4: a large repository's first queue (the mirror is cloned)
//! against its second (the mirror is only fetched).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
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
    // The worker removes the workspace after recording the end: the next
    // checkout must not compete with deleting this one.
    let workspace = farm.home.join("work").join(&id);
    crate::farm::wait_for(Duration::from_secs(60), "the workspace to go", || {
        Ok(!workspace.exists())
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
    };
    let mirror = Mirror::new(&farm.home.join("cache").join("git"), &repo);
    let (mut firsts, mut seconds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        // The worker is idle and the app fetches only at a submission:
        // nobody holds the mirror now.
        match std::fs::remove_dir_all(mirror.path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let first = one(farm)?;
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
        Some(Target::AtLeast(5.0)),
        n,
        "(submit + worker fetch + checkout) of the first queue / of the second, same repository",
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
        "second queue: checkout",
        m(&seconds, |g| g.checkout),
        "ms",
        None,
        n,
        "",
    );
    Ok(())
}
