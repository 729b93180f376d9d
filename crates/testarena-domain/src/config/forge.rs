//! The forge side of the config (DESIGN section 12): a repository's forge
//! keys (`forge`, `forge_api`, `forge_repo`, `webhook_secret_env`,
//! `status_token_env`), `[server] public_url` and the `[[notify]]` webhooks.
//!
//! Secrets never live in the config: each `*_env` key names the environment
//! variable that holds one, read when it is needed ([`secret_from_env`]) into
//! a [`Secret`], whose `Debug` is `***`. `check-config` shows whether each
//! named variable is set, as `***`, never its value ([`secrets_report`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// The forges whose webhooks and commit statuses TestArena speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    Gitea,
    Github,
    Gitlab,
}

impl Forge {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gitea => "gitea",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Forge {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gitea" => Ok(Self::Gitea),
            "github" => Ok(Self::Github),
            "gitlab" => Ok(Self::Gitlab),
            other => Err(format!("unknown forge {other:?}")),
        }
    }
}

/// What a `[[notify]]` webhook may be sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyEvent {
    /// A queue was claimed by a worker.
    #[serde(rename = "queue.started")]
    QueueStarted,
    /// A queue reached a final status.
    #[serde(rename = "queue.finished")]
    QueueFinished,
    /// A board's health check failed.
    #[serde(rename = "board.bad")]
    BoardBad,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 3] = [Self::QueueStarted, Self::QueueFinished, Self::BoardBad];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueStarted => "queue.started",
            Self::QueueFinished => "queue.finished",
            Self::BoardBad => "board.bad",
        }
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[notify]]`: a URL that gets `{"event", ...}` as JSON on these events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `http://` or `https://`.
    pub url: String,
    pub events: Vec<NotifyEvent>,
    /// The environment variable whose value signs the body
    /// (`X-TestArena-Signature`); unsigned when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

/// A secret read from the environment. `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's bytes, for a signature or a header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The secret in environment variable `name`; `None` when it is unset or
/// empty (an empty secret would sign nothing worth checking).
pub fn secret_from_env(name: &str) -> Option<Secret> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret)
}

/// `public_url` without a trailing `/`, for links (`{public_url}/#/queues/<id>`).
pub fn public_url(config: &Config) -> Option<&str> {
    config
        .server
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/'))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// A forge repository path: `owner/name` (GitLab: `group/sub/name`), each
/// part made of letters, digits, `.`, `_` and `-`.
fn is_forge_repo(s: &str, forge: Option<Forge>) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let count_ok = match forge {
        Some(Forge::Gitlab) => parts.len() >= 2,
        _ => parts.len() == 2,
    };
    count_ok
        && s.len() <= 255
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

/// Checks the forge keys of every repository, `public_url` and `[[notify]]`.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let invalid = |key: String, message: &str| ConfigError::invalid(key, message);
    if let Some(url) = &config.server.public_url
        && !is_http_url(url)
    {
        return Err(invalid(
            "server.public_url".to_owned(),
            "must be an http:// or https:// URL",
        ));
    }
    for (i, repo) in config.repos.iter().enumerate() {
        let key = |k: &str| format!("repos[{i}].{k}");
        for (k, value) in [
            ("webhook_secret_env", &repo.webhook_secret_env),
            ("status_token_env", &repo.status_token_env),
        ] {
            if let Some(name) = value
                && !is_env_name(name)
            {
                return Err(invalid(
                    key(k),
                    "must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
                ));
            }
        }
        if let Some(api) = &repo.forge_api
            && !is_http_url(api)
        {
            return Err(invalid(
                key("forge_api"),
                "must be an http:// or https:// URL",
            ));
        }
        if let Some(path) = &repo.forge_repo
            && !is_forge_repo(path, repo.forge)
        {
            return Err(invalid(
                key("forge_repo"),
                match repo.forge {
                    Some(Forge::Gitlab) => "must be the project's path, group/name",
                    _ => "must be owner/name",
                },
            ));
        }
        let any = repo.forge_api.is_some()
            || repo.forge_repo.is_some()
            || repo.webhook_secret_env.is_some()
            || repo.status_token_env.is_some();
        if any && repo.forge.is_none() {
            return Err(invalid(
                key("forge"),
                "must be gitea, github or gitlab when a forge key is set",
            ));
        }
        if repo.status_token_env.is_some() {
            if repo.forge_api.is_none() {
                return Err(invalid(
                    key("forge_api"),
                    "is needed with status_token_env (the forge's REST API base URL)",
                ));
            }
            if repo.forge_repo.is_none() {
                return Err(invalid(
                    key("forge_repo"),
                    "is needed with status_token_env (owner/name on the forge)",
                ));
            }
        }
    }
    for (i, notify) in config.notify.iter().enumerate() {
        let key = |k: &str| format!("notify[{i}].{k}");
        if !is_http_url(&notify.url) {
            return Err(invalid(key("url"), "must be an http:// or https:// URL"));
        }
        if notify.events.is_empty() {
            return Err(invalid(
                key("events"),
                "must name at least one of queue.started, queue.finished, board.bad",
            ));
        }
        if let Some(name) = &notify.secret_env
            && !is_env_name(name)
        {
            return Err(invalid(
                key("secret_env"),
                "must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
            ));
        }
    }
    Ok(())
}

/// For `check-config`: each environment variable the forge keys name, and
/// whether this process sees it set (`***`) or not. Never a value.
pub fn secrets_report(config: &Config) -> String {
    let mut names: Vec<(String, &str)> = Vec::new();
    for (i, repo) in config.repos.iter().enumerate() {
        if let Some(n) = &repo.webhook_secret_env {
            names.push((format!("repos[{i}].webhook_secret_env"), n));
        }
        if let Some(n) = &repo.status_token_env {
            names.push((format!("repos[{i}].status_token_env"), n));
        }
    }
    for (i, notify) in config.notify.iter().enumerate() {
        if let Some(n) = &notify.secret_env {
            names.push((format!("notify[{i}].secret_env"), n));
        }
    }
    let mut out = String::new();
    if names.is_empty() {
        return out;
    }
    out.push_str("\n# secrets (from the environment of this process)\n");
    for (key, name) in names {
        let shown = if secret_from_env(name).is_some() {
            "***".to_owned()
        } else {
            "(not set)".to_owned()
        };
        out.push_str(&format!("# {key}: {name} = {shown}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parsed(text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::parse(text, Path::new("test.toml"))?;
        config.finish()?;
        Ok(config)
    }

    const REPO: &str = "[[repos]]\nname = \"firmware\"\nurl = \"/srv/firmware\"\n";

    #[test]
    fn the_forge_keys_parse() {
        let c = parsed(&format!(
            "[server]\npublic_url = \"https://testarena.example/\"\n{REPO}\
             forge = \"gitea\"\nforge_api = \"https://gitea.internal/api/v1\"\n\
             forge_repo = \"team/firmware\"\nwebhook_secret_env = \"FIRMWARE_HOOK_SECRET\"\n\
             status_token_env = \"FIRMWARE_STATUS_TOKEN\"\n\
             [[notify]]\nurl = \"https://chat.internal/hooks/testarena\"\n\
             events = [\"queue.finished\", \"board.bad\"]\nsecret_env = \"NOTIFY_SECRET\"\n"
        ))
        .unwrap();
        let r = &c.repos[0];
        assert_eq!(r.forge, Some(Forge::Gitea));
        assert_eq!(r.forge_repo.as_deref(), Some("team/firmware"));
        assert_eq!(public_url(&c), Some("https://testarena.example"));
        assert_eq!(
            c.notify[0].events,
            vec![NotifyEvent::QueueFinished, NotifyEvent::BoardBad]
        );
        // The effective config names the variables, never a value.
        let toml = c.to_toml();
        assert!(
            toml.contains("webhook_secret_env = \"FIRMWARE_HOOK_SECRET\""),
            "{toml}"
        );
        assert!(toml.contains("[[notify]]"), "{toml}");
    }

    #[test]
    fn bad_forge_keys_name_the_key() {
        for (text, key) in [
            ("forge = \"bitbucket\"\n", "bitbucket"),
            ("status_token_env = \"T\"\n", "repos[0].forge"),
            (
                "forge = \"github\"\nstatus_token_env = \"T\"\nforge_repo = \"a/b\"\n",
                "repos[0].forge_api",
            ),
            (
                "forge = \"github\"\nstatus_token_env = \"T\"\nforge_api = \"https://x\"\n",
                "repos[0].forge_repo",
            ),
            (
                "forge = \"github\"\nforge_api = \"ftp://x\"\n",
                "repos[0].forge_api",
            ),
            (
                "forge = \"github\"\nforge_repo = \"a/b/c\"\n",
                "repos[0].forge_repo",
            ),
            (
                "forge = \"github\"\nforge_repo = \"../b\"\n",
                "repos[0].forge_repo",
            ),
            (
                "forge = \"gitea\"\nwebhook_secret_env = \"NOT-A-NAME\"\n",
                "repos[0].webhook_secret_env",
            ),
        ] {
            let e = parsed(&format!("{REPO}{text}")).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(
            parsed(&format!(
                "{REPO}forge = \"gitlab\"\nforge_repo = \"g/sub/p\"\n"
            ))
            .is_ok()
        );
        let e = parsed("[[notify]]\nurl = \"https://x\"\nevents = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notify[0].events"), "{e}");
        let e = parsed("[[notify]]\nurl = \"https://x\"\nevents = [\"queue.lost\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("queue.lost"), "{e}");
        let e = parsed("[server]\npublic_url = \"testarena.example\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.public_url"), "{e}");
    }

    #[test]
    fn a_secret_shows_stars() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn the_report_names_variables_and_never_values() {
        // PATH is set in every test environment; this name is not.
        let c = parsed(&format!(
            "{REPO}forge = \"gitea\"\nwebhook_secret_env = \"PATH\"\n\
             status_token_env = \"TESTARENA_SURELY_UNSET_TOKEN\"\n\
             forge_api = \"http://127.0.0.1:1\"\nforge_repo = \"a/b\"\n"
        ))
        .unwrap();
        let report = secrets_report(&c);
        assert!(
            report.contains("repos[0].webhook_secret_env: PATH = ***"),
            "{report}"
        );
        assert!(
            report.contains("TESTARENA_SURELY_UNSET_TOKEN = (not set)"),
            "{report}"
        );
        let path = std::env::var("PATH").unwrap_or_default();
        assert!(!path.is_empty() && !report.contains(&path), "{report}");
    }
}
