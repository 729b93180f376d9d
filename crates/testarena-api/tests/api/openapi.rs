//! The OpenAPI document (`GET /api/v1/openapi.json`) against the real app:
//! it documents exactly the routes the router has, it is consistent with
//! itself and DESIGN sections 6 and 7, and real answers of every operation
//! (statuses, content types, headers, JSON bodies) match it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use actix_web::dev::Service as _;
use serde_json::{Value, json};
use testarena_domain::models::NewTestCase;
use testarena_domain::status::Status;
use testarena_domain::store;

use crate::support::{Auth, Resp, Server, call, send};

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The fetched document, and what the checks saw of it.
struct Contract {
    doc: Value,
    validators: RefCell<HashMap<String, Rc<jsonschema::Validator>>>,
    /// (method, path template, status) of every checked answer.
    seen: RefCell<BTreeSet<(String, String, u16)>>,
}

impl Contract {
    fn fetch(s: &Server) -> Self {
        let r = call(s, "GET", "/api/v1/openapi.json", Auth::None, None);
        assert_eq!(r.status, 200, "{}", r.body);
        let contract = Contract {
            doc: r.json(),
            validators: RefCell::default(),
            seen: RefCell::default(),
        };
        contract.check("GET", "/api/v1/openapi.json", &r);
        contract
    }

    /// Every documented (method, path template).
    fn operations(&self) -> BTreeMap<(String, String), &Value> {
        let mut ops = BTreeMap::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if METHODS.contains(&method.to_uppercase().as_str()) {
                    ops.insert((method.to_uppercase(), path.clone()), op);
                }
            }
        }
        ops
    }

    /// The template that `path` (without its query) is an instance of:
    /// the one with the most literal segments; a last `{param}` may span
    /// several segments (`logs/{path}`).
    fn template(&self, method: &str, path: &str) -> String {
        let path = path.split('?').next().unwrap();
        let segments: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, String)> = None;
        for (m, template) in self.operations().keys() {
            if m != method {
                continue;
            }
            let parts: Vec<&str> = template.split('/').collect();
            let greedy =
                parts.last().is_some_and(|p| p.starts_with('{')) && segments.len() > parts.len();
            if parts.len() != segments.len() && !greedy {
                continue;
            }
            let matches = parts.iter().enumerate().all(|(i, part)| {
                part.starts_with('{') && !segments[i].is_empty() || *part == segments[i]
            });
            let literals = parts.iter().filter(|p| !p.starts_with('{')).count();
            if matches && best.as_ref().is_none_or(|(n, _)| literals > *n) {
                best = Some((literals, template.clone()));
            }
        }
        best.unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .1
    }

    /// Follows a `$ref` inside the document.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(r) = value.get("$ref").and_then(Value::as_str) {
            value = self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved {r}"));
        }
        value
    }

    fn validator(&self, schema: &Value) -> Rc<jsonschema::Validator> {
        let key = schema.to_string();
        if let Some(v) = self.validators.borrow().get(&key) {
            return v.clone();
        }
        // The schema with the document's components beside it, so that
        // `#/components/schemas/...` resolves.
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let v = Rc::new(
            jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("schema {key} does not compile: {e}")),
        );
        self.validators.borrow_mut().insert(key, v.clone());
        v
    }

    /// Whether `instance` matches `schema`, with the reasons when not.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let v = self.validator(schema);
        let errors: Vec<String> = v
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The JSON schema of a component by name.
    fn schema(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// Checks one real answer against the document: its status is
    /// documented for the operation, its content type is one documented for
    /// that status, its documented headers are there and well-typed, and a
    /// JSON body matches the schema. Returns the JSON body, if any.
    fn check(&self, method: &str, path: &str, r: &Resp) -> Option<Value> {
        let template = self.template(method, path);
        let op = &self.doc["paths"][&template][method.to_lowercase()];
        let what = format!("{method} {path} -> {}", r.status);
        let response = self.resolve(
            op["responses"]
                .get(r.status.to_string())
                .unwrap_or_else(|| panic!("{what}: status not documented: {}", r.body)),
        );
        self.seen
            .borrow_mut()
            .insert((method.to_owned(), template, r.status));
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let value = r
                .header(name)
                .unwrap_or_else(|| panic!("{what}: documented header {name} missing"));
            let header = self.resolve(header);
            let typed = match header["schema"]["type"].as_str() {
                Some("integer") => json!(value.parse::<i64>().unwrap_or_else(|_| panic!(
                    "{what}: header {name}: {value:?} is not an integer"
                ))),
                Some("boolean") => json!(value.parse::<bool>().unwrap_or_else(|_| panic!(
                    "{what}: header {name}: {value:?} is not a boolean"
                ))),
                _ => json!(value),
            };
            if let Err(e) = self.validate(&header["schema"], &typed) {
                panic!("{what}: header {name}: {e}");
            }
        }
        let Some(content) = response["content"].as_object() else {
            assert!(r.body.is_empty(), "{what}: undocumented body {}", r.body);
            return None;
        };
        let media = r
            .header("content-type")
            .unwrap_or_else(|| panic!("{what}: no Content-Type"))
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_ascii_lowercase();
        let Some(entry) = content.get(&media) else {
            panic!(
                "{what}: Content-Type {media} not documented ({:?})",
                content.keys()
            )
        };
        if media != "application/json" {
            return None;
        }
        let body = r.json();
        if let Err(e) = self.validate(&entry["schema"], &body) {
            panic!("{what}: the body does not match its schema: {e}\n{body:#}");
        }
        Some(body)
    }
}

/// The path patterns the router knows, as OpenAPI templates. actix-web has
/// no public listing of its routes; the resource map's `Debug` output holds
/// every resource's pattern, so the test reads them from there.
fn router_patterns(s: &Server) -> BTreeSet<String> {
    let state = s.state.clone();
    let debug = Rc::new(RefCell::new(String::new()));
    let out = debug.clone();
    actix_web::rt::System::new().block_on(async move {
        let app = actix_web::test::init_service(testarena_api::create_app(state).wrap_fn(
            move |req, srv| {
                *out.borrow_mut() = format!("{:?}", req.request().resource_map());
                srv.call(req)
            },
        ))
        .await;
        let req = actix_web::test::TestRequest::get()
            .uri("/api/v1/health")
            .to_request();
        actix_web::test::call_service(&app, req).await;
    });
    let debug = debug.borrow();
    let mut patterns = BTreeSet::new();
    for piece in debug.split("patterns: Single(\"").skip(1) {
        let pattern = piece.split("\")").next().unwrap();
        if pattern.len() > 1 && pattern.starts_with('/') {
            // `{path:.*}` is `{path}` in OpenAPI.
            let template: Vec<String> = pattern
                .split('/')
                .map(|seg| match seg.strip_prefix('{') {
                    Some(param) => format!("{{{}}}", param.split([':', '}']).next().unwrap()),
                    None => seg.to_owned(),
                })
                .collect();
            patterns.insert(template.join("/"));
        }
    }
    assert!(
        patterns.len() > 10 && patterns.contains("/api/v1/queues/{id}"),
        "cannot read the routes from the resource map (did actix-web change its Debug output?): {patterns:?}\n{debug}"
    );
    patterns
}

#[test]
fn the_document_describes_exactly_the_routes_of_the_router() {
    let s = Server::start();
    let c = Contract::fetch(&s);
    assert!(c.doc["openapi"].as_str().unwrap().starts_with("3.1."));
    // Which methods each pattern answers: anonymous requests get 401 from
    // every route that needs a user and something else but 404 or 405 from
    // the public ones; a method without a route is 404 (the fallback) or
    // 405 (a resource with other methods).
    let mut routed = BTreeSet::new();
    for template in router_patterns(&s) {
        let path = template
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let r = send(&s, method, &path, Auth::None, None, None);
            if r.status != 404 && r.status != 405 {
                routed.insert((method.to_owned(), template.clone()));
            }
        }
    }
    // Every GET answers HEAD, and nothing else does (DESIGN section 9,
    // "HEAD"); the document describes the GETs.
    let with = |method: &str| -> BTreeSet<String> {
        routed
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, t)| t.clone())
            .collect()
    };
    assert_eq!(with("HEAD"), with("GET"), "HEAD routes are the GET routes");
    routed.retain(|(m, _)| m != "HEAD");
    let documented: BTreeSet<_> = c.operations().into_keys().collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without docs: {undocumented:?}; docs without routes: {unrouted:?}"
    );
    // The brief's list, so that the probe above cannot silently shrink.
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/queue"),
        ("POST", "/api/submit_job"),
        ("GET", "/api/status/{id}"),
        ("GET", "/api/job/{id}"),
        ("POST", "/api/abort/{id}"),
        ("DELETE", "/api/delete/{id}"),
        ("GET", "/api/v1/queues/{id}/logs/{path}"),
        ("PATCH", "/api/v1/users/{id}"),
    ] {
        assert!(
            routed.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path}"
        );
    }
    // The forges' 3 (DESIGN section 12) come last.
    assert_eq!(documented.len(), 31 + 3 + 3 + 4, "{documented:?}");
}

#[test]
fn the_document_is_consistent_with_the_contract() {
    let s = Server::start();
    let c = Contract::fetch(&s);
    let schemes = &c.doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(
        (
            schemes["session"]["in"].as_str(),
            schemes["session"]["name"].as_str()
        ),
        (Some("cookie"), Some("testarena_session"))
    );
    assert_eq!(schemes["csrf"]["name"], "X-Requested-With");
    let public: BTreeSet<(&str, &str)> = [
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/session"),
        ("DELETE", "/api/v1/session"),
        // Authenticated by the forge's signature, not a user (DESIGN section 12).
        ("POST", "/api/v1/hooks/{repo}"),
    ]
    .into();
    let mut ids = BTreeSet::new();
    for ((method, path), op) in c.operations() {
        let what = format!("{method} {path}");
        assert!(
            ids.insert(op["operationId"].as_str().unwrap().to_owned()),
            "{what}: operationId repeated"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{what}: no success answer"
        );
        // Every `{param}` of the path is a declared path parameter.
        for param in path.split('/').filter(|s| s.starts_with('{')) {
            let name = param.trim_matches(['{', '}']);
            assert!(
                op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| { p["name"] == name && p["in"] == "path" && p["required"] == true }),
                "{what}: path parameter {name} not declared"
            );
        }
        let security = op["security"].as_array().unwrap();
        if public.contains(&(method.as_str(), path.as_str())) {
            assert_eq!(security, &[json!({})], "{what}: public");
        } else {
            let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD");
            let session = if unsafe_method {
                json!({"session": [], "csrf": []})
            } else {
                json!({"session": []})
            };
            assert_eq!(
                security,
                &[json!({"bearer": []}), json!({"basic": []}), session],
                "{what}"
            );
            for status in ["401", "429", "500", "503"] {
                assert!(responses.contains_key(status), "{what}: no {status}");
            }
            if unsafe_method {
                assert!(responses.contains_key("403"), "{what}: no 403 (CSRF)");
            }
        }
        // Error answers carry the error body with the code of their status.
        for (status, response) in responses {
            let code: u16 = status.parse().unwrap();
            if code < 400 || path == "/api/v1/health" {
                continue;
            }
            let expected = match code {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                409 => "conflict",
                413 => "payload_too_large",
                422 => "validation_failed",
                429 => "rate_limited",
                500 => "internal",
                503 => "unavailable",
                other => panic!("{what}: unexpected status {other}"),
            };
            let schema = &c.resolve(response)["content"]["application/json"]["schema"];
            let body = json!({"error": {"code": expected, "message": "m", "field": "f"}});
            c.validate(schema, &body)
                .unwrap_or_else(|e| panic!("{what} {status}: {e}"));
            let wrong = json!({"error": {"code": if code == 404 { "conflict" } else { "not_found" }, "message": "m"}});
            assert!(
                c.validate(schema, &wrong).is_err(),
                "{what} {status}: any code"
            );
            if matches!(code, 429 | 503) {
                assert!(
                    c.resolve(response)["headers"].get("Retry-After").is_some(),
                    "{what} {status}: Retry-After"
                );
            }
        }
    }
    // The schemas are not vacuous: a queue as the contract has it passes,
    // and breaking nullability, required fields, formats or enums fails.
    let queue = json!({
        "id": "q1", "status": "waiting", "status_reason": null, "repo": "firmware",
        "branch": "main", "commit": null, "target": "esp32", "owner": "ann", "priority": 0,
        "timeout_s": null, "created_at": "2024-01-02T03:04:05Z", "started_at": null,
        "finished_at": null, "position": 1, "triggered_by": null,
        "board": null, "board_tags": [], "ran_on": null,
        "tasks": [{"id": "q1.1", "queue_id": "q1", "scenario": "s.xml", "status": "skipped",
            "status_reason": "not reached", "passed": 0, "failed": 0, "skipped": 0,
            "started_at": null, "finished_at": null,
            "tests": [{"name": "t", "status": "passed", "duration_ms": null, "message": null}]}]
    });
    let schema = c.schema("Queue");
    c.validate(&schema, &queue).unwrap();
    let broken: [(&str, Value); 7] = [
        ("/status", json!("bogus")),
        ("/started_at", json!("yesterday")),
        ("/created_at", Value::Null),
        ("/position", Value::Null),
        ("/worker", Value::Null),
        ("/tasks/0/tests/0/status", json!("ok")),
        ("/tasks/0/passed", json!("1")),
    ];
    for (pointer, value) in broken {
        let mut q = queue.clone();
        match q.pointer_mut(pointer) {
            Some(slot) => *slot = value.clone(),
            None => q[&pointer[1..]] = value.clone(),
        }
        assert!(c.validate(&schema, &q).is_err(), "{pointer} = {value}");
    }
    for key in ["status_reason", "commit", "started_at", "tasks"] {
        let mut q = queue.clone();
        q.as_object_mut().unwrap().remove(key);
        assert!(c.validate(&schema, &q).is_err(), "{key} is required");
    }
}

/// A test's server and the document, for a walk through the API.
struct Walk<'a> {
    s: &'a Server,
    c: Contract,
}

impl Walk<'_> {
    /// Calls the app, checks the answer against the document and asserts
    /// its status.
    fn go(&self, status: u16, method: &str, path: &str, auth: Auth, body: Option<Value>) -> Resp {
        let r = call(self.s, method, path, auth, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        self.c.check(method, path, &r);
        r
    }

    /// The same with a raw JSON body.
    fn raw(&self, status: u16, path: &str, body: &str) -> Resp {
        let auth = Auth::Bearer(&self.s.ann);
        let r = send(
            self.s,
            "POST",
            path,
            auth,
            Some(body),
            Some("application/json"),
        );
        assert_eq!(r.status, status, "POST {path}: {}", r.body);
        self.c.check("POST", path, &r);
        r
    }
}

#[test]
fn real_answers_of_every_operation_match_the_document() {
    let s = Server::start_with(|c| {
        c.server.login_attempts_per_minute = 2;
        crate::hooks::enable(c, testarena_domain::config::Forge::Gitea);
    });
    let w = Walk {
        s: &s,
        c: Contract::fetch(&s),
    };
    store::register_worker(&mut s.conn(), "w1", 2, "0.1.0", 1).unwrap();
    let (ann, bob, root) = (
        Auth::Bearer(&s.ann),
        Auth::Bearer(&s.bob),
        Auth::Bearer(&s.admin),
    );
    let none = Auth::None;

    // Operations.
    w.go(200, "GET", "/api/v1/health", none, None);
    w.go(200, "GET", "/metrics", ann, None);
    w.go(401, "GET", "/metrics", none, None);

    // Sign-in, the cookie and its CSRF rule, tokens.
    let login = json!({"username": "ann", "password": s.password});
    let r = w.go(200, "POST", "/api/v1/session", none, Some(login));
    let set = r.header("set-cookie").expect("a session cookie");
    let cookie = set.split(';').next().unwrap().to_owned();
    let (cookie_only, cookie_csrf) = (Auth::Cookie(&cookie, false), Auth::Cookie(&cookie, true));
    assert_eq!(
        w.go(200, "GET", "/api/v1/me", cookie_only, None).json()["username"],
        "ann"
    );
    let token = Some(json!({"name": "ci"}));
    w.go(403, "POST", "/api/v1/tokens", cookie_only, token.clone());
    let token_id = w
        .go(201, "POST", "/api/v1/tokens", cookie_csrf, token)
        .json()["id"]
        .clone();
    w.go(
        422,
        "POST",
        "/api/v1/tokens",
        ann,
        Some(json!({"name": " "})),
    );
    w.go(200, "GET", "/api/v1/tokens", ann, None);
    w.go(403, "GET", "/api/v1/tokens?all=true", ann, None);
    w.go(200, "GET", "/api/v1/tokens?all=true", root, None);
    w.go(400, "GET", "/api/v1/tokens?bogus=1", ann, None);
    let path = format!("/api/v1/tokens/{token_id}");
    w.go(204, "DELETE", &path, ann, None);
    w.go(404, "DELETE", &path, ann, None);
    w.go(204, "DELETE", "/api/v1/session", cookie_csrf, None);

    // Users.
    w.go(403, "GET", "/api/v1/users", ann, None);
    let users = w.go(200, "GET", "/api/v1/users", root, None).json();
    let root_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "root")
        .unwrap()["id"]
        .clone();
    let carol = json!({"username": "carol", "password": "long enough"});
    let carol_id = w
        .go(201, "POST", "/api/v1/users", root, Some(carol.clone()))
        .json()["id"]
        .clone();
    w.go(409, "POST", "/api/v1/users", root, Some(carol));
    let bad = json!({"username": "-x", "password": "long enough"});
    w.go(422, "POST", "/api/v1/users", root, Some(bad));
    let disable = Some(json!({"disabled": true}));
    w.go(
        409,
        "PATCH",
        &format!("/api/v1/users/{root_id}"),
        root,
        disable,
    );
    let carol_path = format!("/api/v1/users/{carol_id}");
    w.go(
        200,
        "PATCH",
        &carol_path,
        root,
        Some(json!({"is_admin": true})),
    );
    w.go(404, "PATCH", "/api/v1/users/9999", root, Some(json!({})));
    w.go(204, "DELETE", &carol_path, root, None);

    // A queue: submitted, waiting; refused submissions.
    let submit = json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "id": "q-a"});
    w.go(201, "POST", "/api/v1/queues", ann, Some(submit.clone()));
    w.go(409, "POST", "/api/v1/queues", ann, Some(submit));
    let typo = json!({"branch": "nope", "scenarios": ["scenarios/ok.xml"]});
    w.go(422, "POST", "/api/v1/queues", ann, Some(typo));
    w.raw(400, "/api/v1/queues", "{");
    w.raw(
        413,
        "/api/v1/queues",
        &format!(r#"{{"branch": "{}"}}"#, "x".repeat(2 << 20)),
    );
    let q = w.go(200, "GET", "/api/v1/queues/q-a", bob, None).json();
    assert_eq!(
        (q["status"].as_str(), q["position"].as_i64()),
        (Some("waiting"), Some(1))
    );
    w.go(
        200,
        "GET",
        "/api/v1/queues?status=waiting&owner=ann&limit=1",
        ann,
        None,
    );
    w.go(422, "GET", "/api/v1/queues?status=bogus", ann, None);
    w.go(400, "GET", "/api/v1/queues?limit=x", ann, None);
    w.go(200, "GET", "/api/v1/tasks/q-a.1", ann, None);
    w.go(404, "GET", "/api/v1/tasks/nope", ann, None);
    w.go(401, "GET", "/api/v1/queues/q-a", none, None);
    w.go(403, "POST", "/api/v1/queues/q-a/abort", bob, None);

    // Running: a worker claimed it, checked the pinned commit out, writes logs.
    store::claim_next(&mut s.conn(), "w1").unwrap().unwrap();
    let q = w.go(200, "GET", "/api/v1/queues/q-a", ann, None).json();
    assert_eq!(
        (q["status"].as_str(), q["worker"].as_str()),
        (Some("running"), Some("w1"))
    );
    assert!(q.get("position").is_none(), "only waiting queues have one");
    w.go(200, "GET", "/api/v1/health", none, None);
    w.go(409, "DELETE", "/api/v1/queues/q-a", ann, None);
    s.append_log("q-a", "queue.log", b"claimed\nbuilt\n");
    s.append_log("q-a", "tasks/q-a.1/t1.log", b"ok\n");
    w.go(200, "GET", "/api/v1/queues/q-a/logs", ann, None);
    let r = w.go(
        200,
        "GET",
        "/api/v1/queues/q-a/logs/queue.log?offset=8&limit=3",
        ann,
        None,
    );
    assert_eq!(
        (r.body.as_str(), r.header("x-log-complete")),
        ("bui", Some("false"))
    );
    w.go(
        200,
        "GET",
        "/api/v1/queues/q-a/logs/tasks/q-a.1/t1.log",
        ann,
        None,
    );
    w.go(
        422,
        "GET",
        "/api/v1/queues/q-a/logs/queue.log?limit=0",
        ann,
        None,
    );
    w.go(404, "GET", "/api/v1/queues/q-a/logs/missing.log", ann, None);

    // Ended, with results.
    {
        let mut conn = s.conn();
        store::set_task(&mut conn, "q-a.1", Status::Running, None).unwrap();
        let case = NewTestCase {
            name: "t1".into(),
            status: Status::Failed,
            duration_ms: Some(5),
            message: Some("exit code 1".into()),
        };
        store::record_test_case(&mut conn, "q-a.1", &case).unwrap();
        store::set_task(&mut conn, "q-a.1", Status::Failed, Some("exit code 1")).unwrap();
        store::finish_queue(&mut conn, "q-a", Status::Failed, "1 of 1 tasks failed").unwrap();
    }
    if s.logs_in_db() {
        // The worker stores junit.xml after its last flush of the logs:
        // stored logs are complete from then on.
        s.append_log("q-a", "junit.xml", b"<testsuites/>");
    }
    let q = w.go(200, "GET", "/api/v1/queues/q-a", ann, None).json();
    assert!(
        q["started_at"].is_string() && q["finished_at"].is_string(),
        "{q}"
    );
    assert_eq!(q["tasks"][0]["tests"][0]["duration_ms"], 5);
    let r = w.go(200, "GET", "/api/v1/queues/q-a/logs/queue.log", ann, None);
    assert_eq!(r.header("x-log-complete"), Some("true"));
    w.go(200, "GET", "/api/v1/queues/q-a/junit.xml", ann, None);
    // History: compare, the tests list, a test's runs.
    w.go(200, "GET", "/api/v1/queues/q-a/compare", ann, None);
    w.go(404, "GET", "/api/v1/queues/nope/compare", ann, None);
    w.go(
        422,
        "GET",
        "/api/v1/queues/q-a/compare?with=nope",
        ann,
        None,
    );
    w.go(400, "GET", "/api/v1/queues/q-a/compare?bogus=1", ann, None);
    w.go(
        200,
        "GET",
        "/api/v1/tests?repo=firmware&sort=slowest",
        ann,
        None,
    );
    w.go(422, "GET", "/api/v1/tests?sort=bogus", ann, None);
    w.go(400, "GET", "/api/v1/tests?bogus=1", ann, None);
    let runs = "/api/v1/tests/history?repo=firmware&scenario=scenarios/ok.xml&name=t1";
    w.go(200, "GET", runs, ann, None);
    w.go(422, "GET", "/api/v1/tests/history?repo=firmware", ann, None);
    w.go(400, "GET", &format!("{runs}&bogus=1"), ann, None);
    w.go(409, "POST", "/api/v1/queues/q-a/abort", ann, None);

    // The event stream of an ended queue: status, its log lines, end.
    let r = w.go(200, "GET", "/api/v1/queues/q-a/events", ann, None);
    let mut events = Vec::new();
    for block in r.body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let field = |name: &str| {
            let line = block.lines().find_map(|l| l.strip_prefix(name));
            line.unwrap_or_else(|| panic!("no {name} in {block:?}"))
        };
        let (event, data) = (field("event: "), field("data: "));
        let data: Value = serde_json::from_str(data).unwrap();
        let schema =
            w.c.schema(if event == "log" { "LogChunk" } else { "Queue" });
        let valid = w.c.validate(&schema, &data);
        valid.unwrap_or_else(|e| panic!("event {event}: {e}\n{data}"));
        events.push(event.to_owned());
    }
    assert_eq!(
        (events.first(), events.last()),
        (Some(&"status".into()), Some(&"end".into()))
    );
    assert!(
        events.iter().filter(|e| *e == "log").count() >= 2,
        "{events:?}"
    );
    w.go(400, "GET", "/api/v1/queues/q-a/events?bogus=1", ann, None);

    // Rerun, delete.
    w.go(201, "POST", "/api/v1/queues/q-a/rerun", root, None);
    w.go(
        201,
        "POST",
        "/api/v1/queues/q-a/rerun",
        root,
        Some(json!({"count": 2})),
    );
    w.go(
        422,
        "POST",
        "/api/v1/queues/q-a/rerun",
        root,
        Some(json!({"count": 0})),
    );
    w.go(
        400,
        "POST",
        "/api/v1/queues/q-a/rerun",
        root,
        Some(json!({"bogus": 1})),
    );
    w.go(403, "DELETE", "/api/v1/queues/q-a", bob, None);
    w.go(204, "DELETE", "/api/v1/queues/q-a", ann, None);
    w.go(404, "GET", "/api/v1/queues/q-a", ann, None);

    // The older systems' paths.
    let submit = json!({"branch": "main", "tasks": {"c-1": "scenarios/ok.xml"}, "id": "q-c"});
    w.go(201, "POST", "/api/queue", ann, Some(submit));
    let submit = json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "id": "q-d"});
    w.go(201, "POST", "/api/submit_job", ann, Some(submit));
    let status = w.go(200, "GET", "/api/status/q-c", ann, None).json();
    assert_eq!(status["branch"], "main", "a queue");
    let status = w.go(200, "GET", "/api/status/c-1", ann, None).json();
    assert_eq!(status["queue_id"], "q-c", "a task");
    w.go(404, "GET", "/api/status/nope", ann, None);
    w.go(200, "GET", "/api/job/q-c", ann, None);
    w.go(202, "POST", "/api/abort/q-c", ann, None);
    w.go(204, "DELETE", "/api/delete/q-c", ann, None);
    let q = w
        .go(202, "POST", "/api/v1/queues/q-d/abort", ann, None)
        .json();
    assert_eq!(
        (q["status"].as_str(), q["tasks"][0]["status"].as_str()),
        (Some("aborted"), Some("skipped"))
    );

    w.go(200, "GET", "/api/v1/config", ann, None);

    // Forges (DESIGN section 12): a push of a commit without
    // .testarena.toml, an event that is not handled, refusals; the hooks
    // received and a queue's deliveries.
    let tip = store::queue_detail(&mut s.conn(), "q-d")
        .unwrap()
        .unwrap()
        .queue
        .commit_sha
        .unwrap();
    let push =
        json!({"ref": "refs/heads/main", "after": tip, "pusher": {"login": "ann"}}).to_string();
    let hook = |status: u16, event: &str, body: &str| {
        let r = crate::hooks::gitea_hook(&s, event, "d-1", body);
        assert_eq!(r.status, status, "{event}: {}", r.body);
        w.c.check("POST", "/api/v1/hooks/firmware", &r);
    };
    hook(200, "push", &push);
    hook(400, "push", "{");
    let r = send(
        &s,
        "POST",
        "/api/v1/hooks/firmware",
        none,
        Some(&push),
        Some("application/json"),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    w.c.check("POST", "/api/v1/hooks/firmware", &r);
    let r = crate::hooks::gitea_hook(&s, "issues", "d-2", "{}");
    assert_eq!(r.status, 202, "{}", r.body);
    w.c.check("POST", "/api/v1/hooks/firmware", &r);
    let hooks = w.go(
        200,
        "GET",
        "/api/v1/hooks/firmware/deliveries?limit=5",
        ann,
        None,
    );
    assert_eq!(hooks.json().as_array().map(Vec::len), Some(2));
    w.go(404, "GET", "/api/v1/hooks/nope/deliveries", ann, None);
    w.go(
        422,
        "GET",
        "/api/v1/hooks/firmware/deliveries?limit=0",
        ann,
        None,
    );
    w.go(200, "GET", "/api/v1/queues/q-d/deliveries", ann, None);
    w.go(404, "GET", "/api/v1/queues/nope/deliveries", ann, None);

    // Boards (DESIGN section 10): one registered by its worker.
    {
        let mut conn = s.conn();
        store::register_worker(&mut conn, "w1", 1, "0.1.0", 1).unwrap();
        let reg = store::boards::BoardRegistration {
            id: "b1".into(),
            target: "lx106".into(),
            tags: vec!["wifi".into()],
            serial: "/dev/serial/by-id/usb-b1".into(),
            baud: 115_200,
            present: true,
            health: Some((
                "firmware".into(),
                "main".into(),
                "scenarios/ok.xml".into(),
                24,
            )),
        };
        let live = store::now() - chrono::Duration::seconds(60);
        store::boards::register_boards(&mut conn, "w1", &[reg], live).unwrap();
    }
    w.go(200, "GET", "/api/v1/boards", ann, None);
    w.go(200, "GET", "/api/v1/boards/b1", ann, None);
    w.go(404, "GET", "/api/v1/boards/nope", ann, None);
    w.go(
        200,
        "PATCH",
        "/api/v1/boards/b1",
        root,
        Some(json!({"note": "on the shelf"})),
    );
    w.go(
        403,
        "PATCH",
        "/api/v1/boards/b1",
        ann,
        Some(json!({"maintenance": true})),
    );
    w.go(
        400,
        "PATCH",
        "/api/v1/boards/b1",
        root,
        Some(json!({"bogus": 1})),
    );
    w.go(
        422,
        "PATCH",
        "/api/v1/boards/b1",
        root,
        Some(json!({"note": "x".repeat(1001)})),
    );
    w.go(404, "PATCH", "/api/v1/boards/nope", root, Some(json!({})));
    w.go(202, "POST", "/api/v1/boards/b1/health", root, None);
    w.go(403, "POST", "/api/v1/boards/b1/health", ann, None);
    w.go(404, "POST", "/api/v1/boards/nope/health", root, None);
    let on_board =
        json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "board_tags": ["psram"]});
    w.go(422, "POST", "/api/v1/queues", ann, Some(on_board));

    // Basic failures are rate-limited like sign-ins: 429 with Retry-After.
    let wrong = Auth::Basic("ann", "wrong password");
    w.go(401, "GET", "/api/v1/me", wrong, None);
    w.go(401, "GET", "/api/v1/me", wrong, None);
    w.go(429, "GET", "/api/v1/me", wrong, None);
    let login = json!({"username": "ann", "password": s.password});
    w.go(429, "POST", "/api/v1/session", none, Some(login));

    // Every documented operation answered successfully at least once.
    let seen = w.c.seen.borrow();
    let answered = |(m, p): &(String, String)| {
        seen.iter()
            .any(|(sm, sp, status)| sm == m && sp == p && (200..300).contains(status))
    };
    let missing: Vec<_> =
        w.c.operations()
            .into_keys()
            .filter(|op| !answered(op))
            .collect();
    assert!(
        missing.is_empty(),
        "operations never answered 2xx: {missing:?}"
    );
}
