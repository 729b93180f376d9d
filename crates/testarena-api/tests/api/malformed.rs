//! At least 30 malformed requests: each a 4xx with the JSON error body, and
//! the server healthy and its data intact afterwards.

use serde_json::json;

use crate::support::{Auth, Server, call, send};

/// Method, path, body, content type, expected status and error code.
type Case<'a> = (
    &'a str,
    String,
    Option<String>,
    Option<&'a str>,
    u16,
    &'a str,
);

#[test]
fn malformed_requests_get_a_4xx_with_the_error_body() {
    let s = Server::start_with(|c| c.server.max_body_bytes = 4096);
    let existing = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    let q = |b: serde_json::Value| Some(b.to_string());
    let huge = format!(
        "{{\"branch\":\"main\",\"scenarios\":[\"{}\"]}}",
        "a".repeat(5000)
    );
    let cases: Vec<Case> = vec![
        // method, path, body, content type, status, code
        (
            "POST",
            "/api/v1/queues".into(),
            Some("{".into()),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            Some("[]".into()),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            Some("null".into()),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            Some("".into()),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            Some("branch=main".into()),
            Some("application/x-www-form-urlencoded"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": 5, "scenarios": ["scenarios/ok.xml"]})),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": "scenarios/ok.xml"})),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "extra": 1})),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "priority": "high"})),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(
                json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "priority": 99999999999u64}),
            ),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            Some(huge),
            Some("application/json"),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"scenarios": ["scenarios/ok.xml"]})),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main"})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": []})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(
                json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "tasks": {"a": "scenarios/ok.xml"}}),
            ),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "--upload-pack=touch /tmp/x", "scenarios": ["scenarios/ok.xml"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main; rm -rf /", "scenarios": ["scenarios/ok.xml"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "$(reboot)", "scenarios": ["scenarios/ok.xml"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "a..b", "scenarios": ["scenarios/ok.xml"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main\u{0}", "scenarios": ["scenarios/ok.xml"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["../../etc/passwd"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["/etc/passwd"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["scenarios/missing.xml"]})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "repo": "other"})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "target": "esp33"})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "id": "../x"})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "scenarios": ["scenarios/ok.xml"], "timeout_s": 0})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            q(json!({"branch": "main", "tasks": {"a b": "scenarios/ok.xml"}})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/queues".into(),
            Some(
                r#"{"branch":"main","tasks":{"a":"scenarios/ok.xml","a":"scenarios/ok.xml"}}"#
                    .into(),
            ),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/queues?limit=0".into(),
            None,
            None,
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/api/v1/queues?limit=201".into(),
            None,
            None,
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/api/v1/queues?limit=abc".into(),
            None,
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/queues?status=done".into(),
            None,
            None,
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/api/v1/queues?before=xyz".into(),
            None,
            None,
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/api/v1/queues?bogus=1".into(),
            None,
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/queues/..%2f..%2fetc".into(),
            None,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/queues/%00".into(),
            None,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            format!("/api/v1/queues/{existing}/logs/..%2fqueue.log"),
            None,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            format!("/api/v1/queues/{existing}/logs/queue.log?offset=-1"),
            None,
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            format!("/api/v1/queues/{existing}/logs/queue.log?limit=0"),
            None,
            None,
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/api/v1/tasks/..".into(),
            None,
            None,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/api/v1/tokens/abc".into(),
            None,
            None,
            404,
            "not_found",
        ),
        (
            "PATCH",
            "/api/v1/users/1".into(),
            q(json!({"is_admin": "yes"})),
            Some("application/json"),
            403,
            "forbidden",
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            q(json!({"name": ""})),
            Some("application/json"),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            q(json!({})),
            Some("application/json"),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/api/v1/queues".into(),
            None,
            None,
            405,
            "bad_request",
        ),
        ("GET", "/api/v2/queues".into(), None, None, 404, "not_found"),
        (
            "GET",
            format!("/api/v1/queues/{existing}/abort"),
            None,
            None,
            405,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/health".into(),
            None,
            None,
            405,
            "bad_request",
        ),
    ];
    assert!(cases.len() >= 30);
    for (method, path, body, ct, status, code) in &cases {
        let r = send(&s, method, path, Auth::Bearer(&s.ann), body.as_deref(), *ct);
        assert_eq!(r.status, *status, "{method} {path} {body:?}: {}", r.body);
        let json = r.json();
        assert_eq!(json["error"]["code"], *code, "{method} {path}: {}", r.body);
        assert!(json["error"]["message"].is_string(), "{method} {path}");
    }
    // Still healthy, and what was stored is intact.
    assert_eq!(
        call(&s, "GET", "/api/v1/health", Auth::None, None).status,
        200
    );
    let q = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{existing}"),
        Auth::Bearer(&s.ann),
        None,
    );
    assert_eq!(q.status, 200);
    let page = testarena_domain::store::list_queues(
        &mut s.conn(),
        &testarena_domain::store::QueueFilter {
            limit: 50,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.items.len(), 1, "no malformed request stored anything");
}
