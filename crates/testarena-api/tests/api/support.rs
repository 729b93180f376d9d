//! A real `testarena-app` on loopback for each test: a temp home, a migrated
//! database (SQLite, or a fresh PostgreSQL database with
//! `TESTARENA_TEST_BACKEND=postgres`), a real git repository with scenario
//! files, three users.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use actix_web::web;
use serde_json::Value;
use testarena_api::AppState;
use testarena_domain::config::{Config, RepoConfig, TargetConfig};
use testarena_domain::status::Status;
use testarena_domain::store::logs::{self as stored, Chunk, Fence, MAX_CHUNK};
use testarena_domain::{db, secret, store};
use testarena_testkit::TestDatabase;

pub const OK_XML: &str = r#"<scenario name="ok">
  <test name="t1"><run>true</run></test>
</scenario>
"#;

/// Invalid on line 3.
pub const BAD_XML: &str =
    "<scenario name=\"bad\">\n  <test name=\"t1\">\n    <bogus/>\n  </test>\n</scenario>\n";

pub struct Server {
    pub base: String,
    pub state: web::Data<AppState>,
    pub repo: PathBuf,
    pub admin: String,
    pub ann: String,
    pub bob: String,
    pub password: &'static str,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    /// Dropped after the state (its pool) is: a PostgreSQL database is
    /// dropped with it.
    _db: Option<TestDatabase>,
}

pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A repository with `scenarios/ok.xml`, `scenarios/bad.xml` on `main` and
/// a branch `feature/v1.2-dots`.
pub fn make_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("firmware");
    std::fs::create_dir_all(repo.join("scenarios")).unwrap();
    std::fs::write(repo.join("scenarios/ok.xml"), OK_XML).unwrap();
    std::fs::write(repo.join("scenarios/bad.xml"), BAD_XML).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.join("scenarios/passwd.xml")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "scenarios"]);
    git(&repo, &["branch", "feature/v1.2-dots"]);
    repo
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(change: impl FnOnce(&mut Config)) -> Self {
        let home = tempfile::tempdir().unwrap();
        let test_db = TestDatabase::for_this_run(&home.path().join("testarena.db"));
        let url = test_db.url().to_owned();
        Self::start_on(home, &url, Some(test_db), change)
    }

    /// An app on the database at `url` (a path or a PostgreSQL URL),
    /// migrated here first; `keep` lives as long as the server.
    pub fn start_on(
        home: tempfile::TempDir,
        url: &str,
        keep: Option<TestDatabase>,
        change: impl FnOnce(&mut Config),
    ) -> Self {
        let src = tempfile::tempdir().unwrap();
        let repo = make_repo(src.path());
        let mut config = Config {
            home: home.path().to_owned(),
            database: Some(url.to_owned()),
            default_target: "lx106".into(),
            ..Config::default()
        };
        config.repos.push(RepoConfig {
            name: "firmware".into(),
            url: repo.to_string_lossy().into_owned(),
            ssh_key: None,
            known_hosts: None,
            token_env: None,
            ..Default::default()
        });
        config.targets.insert(
            "lx106".into(),
            TargetConfig {
                env_script: None,
                build: vec!["true".into()],
                image: None,
                qemu: vec!["true".into()],
                fail_on: vec!["Guru Meditation Error".into()],
            },
        );
        change(&mut config);
        config.finish().unwrap();
        let location = config.database_location().unwrap();
        if location.is_postgres() {
            // The app does not migrate PostgreSQL; `testarena-app migrate` does.
            drop(db::open_migrated(&location, config.pool_options(1)).unwrap());
        }
        let state = testarena_api::serve::prepare(config).unwrap();
        let password = "correct horse battery";
        let hash = secret::hash_password(password).unwrap();
        let mut tokens = Vec::new();
        {
            let mut conn = state.pool.get().unwrap();
            for (name, admin) in [("root", true), ("ann", false), ("bob", false)] {
                let user = store::create_user(&mut conn, name, &hash, admin).unwrap();
                let t = secret::generate_token();
                store::create_token(&mut conn, user.id, "test", &t.hash, &t.prefix).unwrap();
                tokens.push(t.secret);
            }
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server =
                    actix_web::HttpServer::new(move || testarena_api::create_app(st.clone()))
                        .workers(2)
                        .disable_signals()
                        .shutdown_timeout(1)
                        .listen(listener)
                        .unwrap()
                        .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            });
        });
        let handle = rx.recv().unwrap();
        let [admin, ann, bob]: [String; 3] = tokens.try_into().unwrap();
        Server {
            base,
            state,
            repo,
            admin,
            ann,
            bob,
            password,
            handle,
            thread: Some(thread),
            _dirs: (home, src),
            _db: keep,
        }
    }

    pub fn home(&self) -> &Path {
        &self.state.config.home
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Submits a queue of `scenarios/ok.xml` as `token`; returns its JSON.
    pub fn submit(&self, token: &str) -> Value {
        let r = call(
            self,
            "POST",
            "/api/v1/queues",
            Auth::Bearer(token),
            Some(serde_json::json!({
                "branch": "main", "scenarios": ["scenarios/ok.xml"]
            })),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
    }

    pub fn conn(&self) -> testarena_domain::db::DbConn {
        self.state.pool.get().unwrap()
    }

    /// Ends queue `id` with `status` as its worker would: on PostgreSQL
    /// the worker then stores `junit.xml`, which tells the app that the
    /// queue's stored logs are complete.
    pub fn end_queue(&self, id: &str, status: Status) {
        store::finish_queue(&mut self.conn(), id, status, "").unwrap();
        if self.logs_in_db() {
            self.append_log(id, "junit.xml", b"<testsuites/>");
        }
    }

    /// True when the app reads logs from the database (PostgreSQL).
    pub fn logs_in_db(&self) -> bool {
        self.state.hub.is_listening()
    }

    /// Appends `bytes` to the file `rel` of queue `id`, where this app
    /// reads it: the queue's folder, or the database (through the fence of
    /// the running queue, as its worker would; whole, as the worker stores
    /// `junit.xml` and a recovered queue's files, when it is not running).
    pub fn append_log(&self, id: &str, rel: &str, bytes: &[u8]) {
        if !self.logs_in_db() {
            use std::io::Write as _;
            let path = self.home().join("queues").join(id).join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(bytes).unwrap();
            return;
        }
        let mut conn = self.conn();
        let row = store::get_queue(&mut conn, id).unwrap().unwrap();
        let (had, size) = stored::read_stored(&mut conn, id, rel, 0, usize::MAX).unwrap();
        assert_eq!(had.len() as u64, size, "no gap in {rel}");
        if row.status() == Status::Running {
            let fence = Fence {
                queue_id: id.to_owned(),
                worker_id: row.worker_id.clone().unwrap(),
                attempt: row.attempt,
            };
            let chunks: Vec<Chunk> = bytes
                .chunks(MAX_CHUNK)
                .scan(size, |at, part| {
                    let chunk = Chunk {
                        path: rel.to_owned(),
                        start: *at as i64,
                        data: part.to_vec(),
                    };
                    *at += part.len() as u64;
                    Some(chunk)
                })
                .collect();
            stored::append_chunks(&mut conn, &fence, &chunks).unwrap();
        } else {
            let whole = [had.as_slice(), bytes].concat();
            stored::put_ended_file(&mut conn, id, None, rel, &whole).unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::System::new().block_on(handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    /// A session cookie, with or without the CSRF header.
    Cookie(&'a str, bool),
    Raw(&'a str),
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the DESIGN's error body with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{}", self.body);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// One request; `body` as JSON.
pub fn call(s: &Server, method: &str, path: &str, auth: Auth, body: Option<Value>) -> Resp {
    let raw = body.map(|b| b.to_string());
    send(
        s,
        method,
        path,
        auth,
        raw.as_deref(),
        Some("application/json"),
    )
}

/// One request with a raw body and content type.
pub fn send(
    s: &Server,
    method: &str,
    path: &str,
    auth: Auth,
    body: Option<&str>,
    content_type: Option<&str>,
) -> Resp {
    let url = s.url(path);
    let mut req = ureq::http::Request::builder().method(method).uri(&url);
    match auth {
        Auth::None => {}
        Auth::Bearer(t) => req = req.header("Authorization", format!("Bearer {t}")),
        Auth::Basic(u, p) => {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header("Authorization", format!("Basic {b}"));
        }
        Auth::Cookie(c, csrf) => {
            req = req.header("Cookie", c);
            if csrf {
                req = req.header("X-Requested-With", "testarena");
            }
        }
        Auth::Raw(v) => req = req.header("Authorization", v),
    }
    if let (Some(_), Some(ct)) = (body, content_type) {
        req = req.header("Content-Type", ct);
    }
    let req = req.body(body.unwrap_or("").as_bytes().to_vec()).unwrap();
    let mut res = agent().run(req).unwrap();
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let bytes = res
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    Resp {
        status,
        headers,
        body,
    }
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An open event stream: its events as they arrive, read by a thread.
pub struct Events {
    rx: std::sync::mpsc::Receiver<(String, Value)>,
}

/// Opens `path` (an `events` URL) as `token`; checks the answer is a stream.
pub fn events(s: &Server, path: &str, token: &str) -> Events {
    use std::io::BufRead as _;
    let res = agent()
        .get(&s.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let (tx, rx) = std::sync::mpsc::channel::<(String, Value)>();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(res.into_body().into_reader());
        let mut event = String::new();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let l = line.trim_end().to_owned();
            line.clear();
            if let Some(e) = l.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = l.strip_prefix("data: ") {
                let _ = tx.send((event.clone(), serde_json::from_str(d).unwrap()));
            }
        }
    });
    Events { rx }
}

impl Events {
    /// The next event named `want` (others are skipped), within 10 s.
    pub fn next(&self, want: &str) -> Value {
        wait_for(Duration::from_secs(10), want, || {
            let (e, v) = self.rx.recv_timeout(Duration::from_secs(10)).ok()?;
            (e == want).then_some(v)
        })
    }
}
