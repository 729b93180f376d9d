//! The farm's API helpers: tokens and the secrets the checks look for,
//! requests as the admin or anyone, queues submitted and waited for, and
//! their logs as the app serves them.

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::Farm;
use crate::error::{Error, Result, or_panic};
use crate::http::{Auth, Client, Resp};
use crate::procs::read_lossy;
use crate::wait::{try_wait_for, wait_for};

impl Farm {
    /// A new API token of `user`; its secret is remembered as a secret.
    pub fn try_new_token(&self, user: &str, password: &str) -> Result<String> {
        let r = self.call_as(
            Auth::Basic(user, password),
            "POST",
            "/api/v1/tokens",
            Some(&json!({"name": "testkit"})),
        );
        let secret = r.json()["secret"].as_str().map(str::to_owned);
        match (r.status, secret) {
            (201, Some(secret)) => {
                self.add_secret(&secret);
                Ok(secret)
            }
            _ => Err(Error::Other(format!(
                "creating a token of {user}: {} {}",
                r.status, r.body
            ))),
        }
    }

    pub fn new_token(&self, user: &str, password: &str) -> String {
        or_panic(self.try_new_token(user, password))
    }

    pub fn add_secret(&self, secret: &str) {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(secret.to_owned());
    }

    /// Every password and token this farm made.
    pub fn secrets(&self) -> Vec<String> {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A client of the API signed in as the admin (by token).
    pub fn client(&self) -> Client {
        Client::new(&self.base, Auth::Bearer(&self.token))
    }

    /// A request with the admin's token.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.call_as(Auth::Bearer(&self.token), method, path, body)
    }

    pub fn call_as(&self, auth: Auth<'_>, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.send(auth, method, path, &[], body)
    }

    /// A request with extra headers. With `keep_answers`, the answer is
    /// kept, except a new token's (the one place its secret is shown).
    pub fn send(
        &self,
        auth: Auth<'_>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let resp = self.client.send(Some(auth), method, path, headers, body);
        let shows_a_secret = method == "POST" && path == "/api/v1/tokens" && resp.status == 201;
        if let (Some(answers), false) = (&self.answers, shows_a_secret) {
            let mut answers = answers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writeln!(answers, "{method} {path} {}\n{}", resp.status, resp.body);
            for cookie in &resp.set_cookie {
                let _ = writeln!(answers, "Set-Cookie: {cookie}");
            }
        }
        resp
    }

    /// GET as the admin: the status and the body.
    pub fn get_raw(&self, path: &str) -> (u16, String) {
        let r = self.call("GET", path, None);
        (r.status, r.body)
    }

    /// GET as the admin; panics unless 200 with JSON.
    pub fn get(&self, path: &str) -> Value {
        let r = self.call("GET", path, None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// Submits `scenarios` on `branch`; panics unless 201; the queue's id.
    pub fn submit(&self, branch: &str, scenarios: &[&str]) -> String {
        self.submit_with(branch, scenarios, json!({}))
    }

    /// [`Farm::submit`] with more fields in the body (`id`, `target`, …).
    pub fn submit_with(&self, branch: &str, scenarios: &[&str], extra: Value) -> String {
        let mut body = json!({"branch": branch, "scenarios": scenarios});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let r = self.call("POST", "/api/v1/queues", Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", r.body))
            .to_owned()
    }

    pub fn queue(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/queues/{id}"))
    }

    /// Waits until the queue is final and returns it.
    pub fn wait_final(&self, id: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("queue {id} to end"), || {
            let q = self.queue(id);
            let s = q["status"].as_str().unwrap_or("");
            (!matches!(s, "waiting" | "running")).then_some(q)
        })
    }

    /// Waits until the queue is in `status` and returns it.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("queue {id} to be {status}"), || {
            let q = self.queue(id);
            (q["status"] == status).then_some(q)
        })
    }

    /// The worker's timeline of a queue, read from disk.
    pub fn queue_log(&self, id: &str) -> String {
        if self.is_postgres() {
            return String::from_utf8_lossy(&self.stored_file(id, "queue.log")).into_owned();
        }
        read_lossy(&self.home.join("queues").join(id).join("queue.log"))
    }

    /// File `path` of queue `id` as the farm stores it: the file under
    /// `queues/<id>/` on SQLite; on PostgreSQL its chunks in the database
    /// (empty when none), read once a final queue's files are complete
    /// (its worker stores `junit.xml` after the last log bytes).
    pub fn stored_file(&self, id: &str, path: &str) -> Vec<u8> {
        let Some(db) = self._test_db.as_ref().and_then(|d| d.postgres_db()) else {
            return std::fs::read(self.home.join("queues").join(id).join(path)).unwrap_or_default();
        };
        let complete = || -> Result<Option<()>> {
            let q = self.queue(id);
            let final_ = !matches!(q["status"].as_str(), Some("waiting" | "running"));
            if !final_ || q["started_at"].is_null() {
                return Ok(Some(()));
            }
            let logs = self.get(&format!("/api/v1/queues/{id}/logs"));
            let junit = logs
                .as_array()
                .is_some_and(|l| l.iter().any(|f| f["path"] == "junit.xml"));
            Ok(junit.then_some(()))
        };
        // A queue that never gets a junit.xml is read as it is.
        let _ = try_wait_for(
            Duration::from_secs(15),
            "the queue's files to be complete",
            complete,
        );
        let sql = format!(
            "SELECT encode(string_agg(data, ''::bytea ORDER BY start), 'hex') FROM log_chunks \
             WHERE queue_id = '{}' AND path = '{}'",
            id.replace('\'', "''"),
            path.replace('\'', "''")
        );
        let hex = db.psql(&sql);
        let hex = hex.trim();
        (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect()
    }

    /// The log of one test, read through the API; panics unless 200.
    pub fn test_log(&self, id: &str, task: &str, test: &str) -> String {
        let r = self.call(
            "GET",
            &format!("/api/v1/queues/{id}/logs/tasks/{task}/{test}.log"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// The queue's Server-Sent Events, as a byte stream.
    pub fn events(&self, id: &str) -> impl std::io::Read + use<> {
        or_panic(self.client().stream(&format!("/api/v1/queues/{id}/events")))
    }
}
