//! A forge STAND-IN for the tests: no Gitea, GitHub or GitLab runs here, so
//! this local HTTP server (on loopback, `tiny_http`) implements the one part
//! of their REST APIs TestArena calls, the commit-status endpoints, as each
//! forge documents them, and a catch-all for `[[notify]]` webhooks. It
//! records every request in order and can be told to answer an error or to
//! hang, to exercise the app's retries.
//!
//! | forge | endpoint (under [`ForgeStandin::api`]) | token header | states |
//! |---|---|---|---|
//! | Gitea | `POST /repos/{owner}/{repo}/statuses/{sha}` | `Authorization: token T` | pending, success, error, failure, warning |
//! | GitHub | `POST /repos/{owner}/{repo}/statuses/{sha}` | `Authorization: Bearer T` (or `token T`) | error, failure, pending, success |
//! | GitLab | `POST /projects/{url-encoded path}/statuses/{sha}` | `PRIVATE-TOKEN: T` | pending, running, success, failed, canceled |
//!
//! Each answers `201` with the created status as JSON, `401` without the
//! right token, `404` for another path, `422` for a state the forge does
//! not know or a missing `context` (GitLab: `name`). Anything under
//! `/notify/` answers `200`.

use std::collections::VecDeque;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, Result};

/// What the stand-in does with a request that a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Answer this HTTP status (with a small JSON error body).
    Status(u16),
    /// Answer this status with `Retry-After: <seconds>`.
    Later(u16, u64),
    /// Wait this long, then answer 504 (a forge that hangs; a client that
    /// gave up meanwhile must not count on it having taken the request).
    Hang(Duration),
}

/// One request as received, with what the stand-in answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path, without the stand-in's base.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// The status answered.
    pub answered: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A status's state and context (GitLab: `name`).
    pub fn state_and_context(&self) -> (String, String) {
        let s = |k: &str| self.json[k].as_str().unwrap_or("").to_owned();
        let context = if self.json.get("name").is_some() {
            s("name")
        } else {
            s("context")
        };
        (s("state"), context)
    }
}

/// A rule: the next `count` requests whose body has this `state` and
/// context (any when `None`) get `answer`.
#[derive(Debug, Clone)]
struct Rule {
    state: Option<String>,
    context: Option<String>,
    count: usize,
    answer: Answer,
}

#[derive(Debug, Default)]
struct Inner {
    token: String,
    rules: VecDeque<Rule>,
    recorded: Vec<Recorded>,
    ids: u64,
}

/// A running stand-in; dropping it stops the server.
pub struct ForgeStandin {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ForgeStandin {
    /// Starts a stand-in on a free loopback port that accepts `token`.
    pub fn start(token: &str) -> Result<ForgeStandin> {
        let server = tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| Error::Other(format!("forge stand-in: cannot listen: {e}")))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| Error::Other("forge stand-in: no port".into()))?;
        let server = Arc::new(server);
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_owned(),
            ..Inner::default()
        }));
        let thread = {
            let (server, inner) = (server.clone(), inner.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let inner = inner.clone();
                    // One thread per request: a hanging answer holds no other.
                    std::thread::spawn(move || handle(&inner, request));
                }
            })
        };
        Ok(ForgeStandin {
            base: format!("http://127.0.0.1:{port}"),
            inner,
            server,
            thread: Some(thread),
        })
    }

    /// The `forge_api` to configure for `forge` (`gitea`, `github`, `gitlab`).
    pub fn api(&self, forge: &str) -> String {
        match forge {
            "gitea" => format!("{}/api/v1", self.base),
            "gitlab" => format!("{}/api/v4", self.base),
            _ => self.base.clone(),
        }
    }

    /// A URL for a `[[notify]]` webhook.
    pub fn notify_url(&self, name: &str) -> String {
        format!("{}/notify/{name}", self.base)
    }

    /// The next `count` requests whose body's `state` is `state` and whose
    /// context (GitLab: `name`) is `context` (`None`: any) get `answer`;
    /// rules apply in the order given.
    pub fn answer_next(
        &self,
        state: Option<&str>,
        context: Option<&str>,
        count: usize,
        answer: Answer,
    ) {
        lock(&self.inner).rules.push_back(Rule {
            state: state.map(str::to_owned),
            context: context.map(str::to_owned),
            count,
            answer,
        });
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner).recorded.clone()
    }

    /// The status requests for commit `sha`, in order.
    pub fn statuses(&self, sha: &str) -> Vec<Recorded> {
        let tail = format!("/statuses/{sha}");
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(&tail))
            .collect()
    }

    /// The `(state, context)` of each status for `sha` the stand-in took (201).
    pub fn accepted(&self, sha: &str) -> Vec<(String, String)> {
        self.statuses(sha)
            .iter()
            .filter(|r| r.answered == 201)
            .map(Recorded::state_and_context)
            .collect()
    }

    /// The notifications received at [`ForgeStandin::notify_url`]`(name)`.
    pub fn notifications(&self, name: &str) -> Vec<Recorded> {
        let path = format!("/notify/{name}");
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl std::fmt::Debug for ForgeStandin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeStandin")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Drop for ForgeStandin {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The forge whose status endpoint `path` is, and the commit.
fn route(path: &str) -> Option<(&'static str, &str)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (forge, ok) = match parts.as_slice() {
        ["api", "v1", "repos", _, _, "statuses", _] => ("gitea", true),
        ["repos", _, _, "statuses", _] => ("github", true),
        // The project path is one URL-encoded segment.
        ["api", "v4", "projects", project, "statuses", _] => ("gitlab", project.contains("%2F")),
        _ => ("", false),
    };
    let (_, sha) = path.rsplit_once("/statuses/")?;
    ok.then_some((forge, sha))
}

fn states(forge: &str) -> &'static [&'static str] {
    match forge {
        "gitea" => &["pending", "success", "error", "failure", "warning"],
        "github" => &["error", "failure", "pending", "success"],
        _ => &["pending", "running", "success", "failed", "canceled"],
    }
}

fn authorized(forge: &str, token: &str, header: impl Fn(&str) -> Option<String>) -> bool {
    match forge {
        "gitea" => header("authorization").as_deref() == Some(&format!("token {token}")),
        "github" => {
            let h = header("authorization");
            h.as_deref() == Some(&format!("Bearer {token}"))
                || h.as_deref() == Some(&format!("token {token}"))
        }
        _ => header("private-token").as_deref() == Some(token),
    }
}

fn handle(inner: &Mutex<Inner>, mut request: tiny_http::Request) {
    let method = request.method().to_string().to_ascii_uppercase();
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let mut body = String::new();
    let _ = request.as_reader().take(1 << 20).read_to_string(&mut body);
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let state = json["state"].as_str().map(str::to_owned);
    let context = json["context"]
        .as_str()
        .or_else(|| json["name"].as_str())
        .map(str::to_owned);
    // The first rule that matches, used up one request at a time.
    let ruled = {
        let mut inner = lock(inner);
        let found = inner.rules.iter().position(|r| {
            (r.state.is_none() || r.state == state) && (r.context.is_none() || r.context == context)
        });
        found.map(|i| {
            let answer = inner.rules[i].answer;
            inner.rules[i].count -= 1;
            if inner.rules[i].count == 0 {
                inner.rules.remove(i);
            }
            answer
        })
    };
    if let Some(Answer::Hang(d)) = ruled {
        std::thread::sleep(d);
    }
    let (code, answer) = match (ruled, method.as_str(), route(&path)) {
        (Some(Answer::Hang(_)), _, _) => (504, json!({"message": "the stand-in hung"})),
        (Some(Answer::Status(code) | Answer::Later(code, _)), _, _) => {
            (code, json!({"message": "the stand-in was told to fail"}))
        }
        (_, "POST", _) if path.starts_with("/notify/") => (200, json!({"ok": true})),
        (_, "POST", Some((forge, sha))) => {
            let token = lock(inner).token.clone();
            let context_key = if forge == "gitlab" { "name" } else { "context" };
            let context = json[context_key].as_str().unwrap_or("");
            if !authorized(forge, &token, header) {
                (401, json!({"message": "Unauthorized"}))
            } else if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                (422, json!({"message": "invalid sha"}))
            } else if !state.as_deref().is_some_and(|s| states(forge).contains(&s))
                || context.is_empty()
            {
                (422, json!({"message": "Validation Failed"}))
            } else {
                let id = {
                    let mut inner = lock(inner);
                    inner.ids += 1;
                    inner.ids
                };
                let mut created = json!({
                    "id": id, "state": state, "description": json["description"],
                    "target_url": json["target_url"], "sha": sha,
                    "created_at": "2026-01-01T00:00:00Z",
                });
                if let Some(map) = created.as_object_mut() {
                    map.insert(context_key.into(), Value::String(context.to_owned()));
                }
                (201, created)
            }
        }
        _ => (404, json!({"message": "Not Found"})),
    };
    lock(inner).recorded.push(Recorded {
        method,
        path,
        headers,
        body,
        json,
        answered: code,
    });
    let content_type =
        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]);
    let mut response = tiny_http::Response::from_string(answer.to_string()).with_status_code(code);
    if let Ok(h) = content_type {
        response = response.with_header(h);
    }
    if let Some(Answer::Later(_, secs)) = ruled
        && let Ok(h) =
            tiny_http::Header::from_bytes(&b"Retry-After"[..], secs.to_string().as_bytes())
    {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_forges() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            route(&format!("/api/v1/repos/o/r/statuses/{sha}")),
            Some(("gitea", sha))
        );
        assert_eq!(
            route(&format!("/repos/o/r/statuses/{sha}")),
            Some(("github", sha))
        );
        assert_eq!(
            route(&format!("/api/v4/projects/g%2Fp/statuses/{sha}")),
            Some(("gitlab", sha))
        );
        assert_eq!(route(&format!("/api/v4/projects/g/p/statuses/{sha}")), None);
        assert_eq!(route("/repos/o/r/commits"), None);
    }
}
