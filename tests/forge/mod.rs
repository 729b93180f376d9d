//! Forges end to end (DESIGN section 12): real pushes start runs, verdicts
//! go back. A real bare repository is the farm's remote; its `post-receive`
//! hook, a script this suite writes, sends the webhook exactly as Gitea,
//! GitHub or GitLab would after a `git push` (the body built from what git
//! hands the hook, signed with `openssl dgst -sha256 -hmac`, POSTed with
//! curl) to the real `testarena-app`; a real `testarena-worker` runs the
//! queues (QEMU for the lx106 firmware, `<run>` commands for the small
//! repository); the commit statuses and notifications go to the test kit's
//! forge STAND-IN ([`ForgeStandin`]: no forge runs here).
//!
//! - `push`: a push to `main` runs its scenarios at the pushed commit
//!   (QEMU) and the forge gets `pending` then `success`, `failure` for the
//!   failing branch; a branch no entry matches, a wrong signature, a
//!   redelivery, a bad `.testarena.toml`.
//! - `retries`: a status answered 500 twice lands on the third try; the app
//!   restarted while queues end and between tries still delivers; a forge
//!   that hangs holds up nothing.
//! - `shapes`: GitHub- and GitLab-shaped pushes and statuses; signed
//!   `[[notify]]` webhooks.

mod push;
mod retries;
mod shapes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testarena_testkit::repo::Content;
use testarena_testkit::{Farm, ForgeStandin, Repo, RepoKind, Setup, wait_for};

pub const HOOK_SECRET: &str = "forge-suite-hook-secret-5kQ2";
pub const TOKEN: &str = "forge-suite-status-token-8Jw4";
pub const NOTIFY_SECRET: &str = "forge-suite-notify-secret-3Hv7";
pub const PUBLIC_URL: &str = "https://testarena.example";
const HOOK_SECRET_ENV: &str = "FORGE_SUITE_HOOK_SECRET";
const TOKEN_ENV: &str = "FORGE_SUITE_STATUS_TOKEN";
const NOTIFY_ENV: &str = "FORGE_SUITE_NOTIFY_SECRET";
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The forge a farm's repository is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gitea,
    Github,
    Gitlab,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Gitea => "gitea",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }
}

/// A farm whose repository lives on a "forge": a bare repository with a
/// post-receive hook, a work clone to push from, and the stand-in.
pub struct Forged {
    pub farm: Farm,
    pub standin: ForgeStandin,
    pub kind: Kind,
    pub origin: PathBuf,
    pub work: Repo,
    /// Where the hook keeps what it sent: `<n>.json`, `<n>.send`, `<n>.code`, `<n>.answer`.
    pub sent: PathBuf,
    _dir: tempfile::TempDir,
}

/// What the hook sent after one push, and what the app answered.
#[derive(Debug)]
pub struct Sent {
    pub code: u16,
    pub answer: Value,
    /// The script that sends the same request again (a redelivery).
    pub resend: PathBuf,
}

fn git(dir: &Path, args: &[&str]) {
    Repo::at(dir).git(args);
}

/// The options of a forged farm.
#[derive(Debug, Clone)]
pub struct Options {
    pub kind: Kind,
    /// The lx106 firmware and QEMU, else the small repository (`<run>`).
    pub fixture: bool,
    pub notify: bool,
    pub start_worker: bool,
}

impl Options {
    pub fn small(kind: Kind) -> Self {
        Self {
            kind,
            fixture: false,
            notify: false,
            start_worker: true,
        }
    }
}

/// Starts a forged farm.
pub fn forged(o: Options) -> Forged {
    let dir = tempfile::Builder::new()
        .prefix("testarena-forge-")
        .tempdir()
        .unwrap();
    let src = dir.path().join("src");
    if o.fixture {
        Repo::fixture(&src).unwrap();
    } else {
        Repo::small(&src).unwrap();
    }
    let origin = dir.path().join("origin.git");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &src.to_string_lossy(),
            &origin.to_string_lossy(),
        ],
    );
    let work_dir = dir.path().join("work");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            &origin.to_string_lossy(),
            &work_dir.to_string_lossy(),
        ],
    );
    let sent = dir.path().join("sent");
    std::fs::create_dir_all(&sent).unwrap();
    let standin = ForgeStandin::start(TOKEN).unwrap();
    let (targets, target) = if o.fixture {
        (testarena_testkit::profile::LX106.to_owned(), "lx106")
    } else {
        (testarena_testkit::profile::noop("noop"), "noop")
    };
    let farm = Farm::start(Setup {
        repo: RepoKind::Given(vec![("firmware".into(), origin.clone())]),
        targets,
        default_target: target.into(),
        workers: vec!["forge-worker".into()],
        slots: 1,
        start_app: false,
        start_workers: false,
        env: vec![
            (HOOK_SECRET_ENV.into(), HOOK_SECRET.into()),
            (TOKEN_ENV.into(), TOKEN.into()),
            (NOTIFY_ENV.into(), NOTIFY_SECRET.into()),
        ],
        ..if o.fixture {
            Setup::lx106()
        } else {
            Setup::small()
        }
    });
    let mut f = Forged {
        farm,
        standin,
        kind: o.kind,
        origin,
        work: Repo::at(&work_dir),
        sent,
        _dir: dir,
    };
    f.configure(o.notify);
    f.set_hook_secret(HOOK_SECRET);
    f.farm.start_app();
    if o.start_worker {
        f.farm.start_worker(0);
    }
    f
}

impl Forged {
    /// Adds the forge keys, `public_url` and `[[notify]]` to the app's config.
    fn configure(&self, notify: bool) {
        let path = self.farm.config_path(None);
        let text = std::fs::read_to_string(&path).unwrap();
        let url_line = format!("url = {:?}\n", self.origin.to_string_lossy());
        assert!(text.contains(&url_line), "{text}");
        let keys = format!(
            "{url_line}forge = \"{}\"\nforge_api = \"{}\"\nforge_repo = \"team/firmware\"\n\
             webhook_secret_env = \"{HOOK_SECRET_ENV}\"\nstatus_token_env = \"{TOKEN_ENV}\"\n",
            self.kind.name(),
            self.standin.api(self.kind.name())
        );
        let mut text = text.replacen(&url_line, &keys, 1).replacen(
            "[server]\n",
            &format!("[server]\npublic_url = \"{PUBLIC_URL}/\"\n"),
            1,
        );
        if notify {
            text.push_str(&format!(
                "\n[[notify]]\nurl = \"{}\"\nevents = [\"queue.started\", \"queue.finished\"]\n\
                 secret_env = \"{NOTIFY_ENV}\"\n\n[[notify]]\nurl = \"{}\"\nevents = [\"queue.finished\"]\n",
                self.standin.notify_url("chat"),
                self.standin.notify_url("plain"),
            ));
        }
        std::fs::write(&path, text).unwrap();
    }

    /// (Re)writes the bare repository's post-receive hook, signing with
    /// `secret`: the forge's webhook after a push, by hand.
    pub fn set_hook_secret(&self, secret: &str) {
        let url = format!("{}/api/v1/hooks/firmware", self.farm.base);
        let (body, headers) = match self.kind {
            Kind::Gitea => (
                r#"{"ref":"%s","before":"%s","after":"%s","pusher":{"login":"ann","username":"ann"},"repository":{"full_name":"team/firmware"}}"#,
                r#"-H 'X-Gitea-Event: push' -H "X-Gitea-Delivery: $id" -H "X-Gitea-Signature: $sig""#,
            ),
            Kind::Github => (
                r#"{"ref":"%s","before":"%s","after":"%s","pusher":{"name":"ann","email":"ann@example.invalid"},"sender":{"login":"ann"}}"#,
                r#"-H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $id" -H "X-Hub-Signature-256: sha256=$sig""#,
            ),
            Kind::Gitlab => (
                r#"{"object_kind":"push","ref":"%s","before":"%s","after":"%s","user_username":"ann","user_name":"Ann"}"#,
                r#"-H 'X-Gitlab-Event: Push Hook' -H "X-Gitlab-Event-UUID: $id" -H "X-Gitlab-Token: $secret""#,
            ),
        };
        let script = format!(
            r#"#!/bin/sh
# Written by the forge suite (tests/forge): what {forge} does after a push.
secret='{secret}'
dir='{sent}'
while read old new ref; do
    n=$(date +%s%N)
    printf '{body}' "$ref" "$old" "$new" > "$dir/$n.json"
    sig=$(openssl dgst -sha256 -hmac "$secret" < "$dir/$n.json" | sed 's/^.* //')
    id=$(cat /proc/sys/kernel/random/uuid)
    cat > "$dir/$n.send" <<EOF
curl -sS -o '$dir/$n.answer' -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' {headers} --data-binary '@$dir/$n.json' '{url}'
EOF
    sh "$dir/$n.send" > "$dir/$n.code"
done
"#,
            forge = self.kind.name(),
            sent = self.sent.display(),
        );
        let hook = self.origin.join("hooks/post-receive");
        std::fs::write(&hook, script).unwrap();
        let status = Command::new("chmod").arg("+x").arg(&hook).status().unwrap();
        assert!(status.success());
    }

    /// Commits `files` on `branch` (from the remote's branch when it has one,
    /// else from `main`), pushes it, and returns the commit and what the hook
    /// sent and got.
    pub fn push(&self, branch: &str, files: &[(&str, Content)]) -> (String, Sent) {
        let before = self.deliveries();
        let remote = format!("refs/remotes/origin/{branch}");
        let has_remote = self
            .work
            .try_git(&["rev-parse", "--verify", "--quiet", &remote])
            .is_ok();
        let has_local = self
            .work
            .try_git(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .is_ok();
        if has_remote && !has_local {
            self.work
                .git(&["branch", "-q", branch, &format!("origin/{branch}")]);
        }
        let sha = self.work.commit(branch, files);
        self.work.git(&["push", "-q", "origin", branch]);
        let new: Vec<String> = self
            .deliveries()
            .into_iter()
            .filter(|d| !before.contains(d))
            .collect();
        assert_eq!(new.len(), 1, "one webhook per push: {new:?}");
        (sha, self.sent(&new[0]))
    }

    fn deliveries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.sent)
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".send").map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    fn sent(&self, n: &str) -> Sent {
        let read = |ext: &str| {
            std::fs::read_to_string(self.sent.join(format!("{n}.{ext}"))).unwrap_or_default()
        };
        Sent {
            code: read("code").trim().parse().unwrap_or(0),
            answer: serde_json::from_str(&read("answer")).unwrap_or(Value::Null),
            resend: self.sent.join(format!("{n}.send")),
        }
    }

    /// Runs a delivery's script again: the forge's "redeliver" button.
    pub fn resend(&self, sent: &Sent) -> (u16, Value) {
        let out = Command::new("sh").arg(&sent.resend).output().unwrap();
        let code = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let answer_file = sent.resend.with_extension("answer");
        let answer = serde_json::from_str(&std::fs::read_to_string(answer_file).unwrap())
            .unwrap_or(Value::Null);
        (code, answer)
    }

    /// The queue ids a delivery made.
    pub fn queues_of(sent: &Sent) -> Vec<String> {
        sent.answer["queues"]
            .as_array()
            .unwrap_or_else(|| panic!("no queues in {}", sent.answer))
            .iter()
            .map(|q| q.as_str().unwrap().to_owned())
            .collect()
    }

    /// How many queues the farm holds.
    pub fn queue_count(&self) -> usize {
        self.farm.get("/api/v1/queues")["items"]
            .as_array()
            .unwrap()
            .len()
    }

    /// Waits until the stand-in has taken (201) `state` on `context` for `sha`.
    pub fn wait_status(&self, sha: &str, state: &str, context: &str) {
        wait_for(DEADLINE, &format!("{state} on {context} for {sha}"), || {
            self.standin
                .accepted(sha)
                .iter()
                .any(|(s, c)| s == state && c == context)
                .then_some(())
        });
    }

    /// The states the stand-in took on `context` for `sha`, in order.
    pub fn states(&self, sha: &str, context: &str) -> Vec<String> {
        self.standin
            .accepted(sha)
            .into_iter()
            .filter(|(_, c)| c == context)
            .map(|(s, _)| s)
            .collect()
    }

    /// A queue's deliveries, through the API.
    pub fn deliveries_of(&self, queue: &str) -> Vec<Value> {
        self.farm
            .get(&format!("/api/v1/queues/{queue}/deliveries"))
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until the delivery of `kind`/`event` on `context` matches `done`.
    pub fn wait_delivery(
        &self,
        queue: &str,
        event: &str,
        context: Option<&str>,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(
            DEADLINE,
            &format!("the {event} delivery of {queue}"),
            || {
                self.deliveries_of(queue)
                    .into_iter()
                    .find(|d| d["event"] == event && d["context"].as_str() == context && done(d))
            },
        )
    }
}

/// `.testarena.toml` as a commit's file.
pub fn toml(text: &str) -> (&'static str, Content) {
    (".testarena.toml", Content::Text(text.to_owned()))
}
