//! The auth matrix: anonymous, user, owner and admin; tokens, Basic,
//! cookies and the CSRF rule; rate limiting; user and token admin.

use serde_json::json;
use testarena_domain::store;

use crate::support::{Auth, Resp, Server, call};

fn session_cookie(r: &Resp) -> String {
    let set = r.header("set-cookie").expect("a session cookie");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag: {set}");
    set.split(';').next().unwrap().to_owned()
}

#[test]
fn anonymous_requests_are_refused_everywhere_but_health() {
    let s = Server::start();
    for (method, path) in [
        ("GET", "/api/v1/queues"),
        ("POST", "/api/v1/queues"),
        ("GET", "/api/v1/queues/x"),
        ("DELETE", "/api/v1/queues/x"),
        ("POST", "/api/v1/queues/x/abort"),
        ("POST", "/api/v1/queues/x/rerun"),
        ("GET", "/api/v1/queues/x/junit.xml"),
        ("GET", "/api/v1/queues/x/logs"),
        ("GET", "/api/v1/queues/x/logs/queue.log"),
        ("GET", "/api/v1/queues/x/events"),
        ("GET", "/api/v1/tasks/x"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/1"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/1"),
        ("DELETE", "/api/v1/users/1"),
        ("GET", "/metrics"),
        ("POST", "/api/queue"),
        ("GET", "/api/status/x"),
        ("POST", "/api/abort/x"),
        ("DELETE", "/api/delete/x"),
        ("POST", "/api/submit_job"),
        ("GET", "/api/job/x"),
    ] {
        call(&s, method, path, Auth::None, Some(json!({}))).assert_error(401, "unauthorized");
        call(&s, method, path, Auth::Bearer("ta_wrong"), Some(json!({})))
            .assert_error(401, "unauthorized");
    }
    assert_eq!(
        call(&s, "GET", "/api/v1/health", Auth::None, None).status,
        200
    );
}

#[test]
fn admin_routes_need_an_admin() {
    let s = Server::start();
    call(&s, "GET", "/api/v1/users", Auth::Bearer(&s.ann), None).assert_error(403, "forbidden");
    let body = json!({"username": "cat", "password": "long enough pw"});
    call(
        &s,
        "POST",
        "/api/v1/users",
        Auth::Bearer(&s.ann),
        Some(body.clone()),
    )
    .assert_error(403, "forbidden");
    let r = call(
        &s,
        "POST",
        "/api/v1/users",
        Auth::Bearer(&s.admin),
        Some(body.clone()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cat = r.json();
    assert!(cat.get("password_hash").is_none() && !r.body.contains("argon2"));
    call(
        &s,
        "POST",
        "/api/v1/users",
        Auth::Bearer(&s.admin),
        Some(body),
    )
    .assert_error(409, "conflict");
    let users = call(&s, "GET", "/api/v1/users", Auth::Bearer(&s.admin), None).json();
    assert_eq!(users.as_array().unwrap().len(), 4);
    let path = format!("/api/v1/users/{}", cat["id"]);
    let r = call(
        &s,
        "PATCH",
        &path,
        Auth::Bearer(&s.admin),
        Some(json!({"is_admin": true})),
    );
    assert_eq!(r.json()["is_admin"], true);
    // The new admin signs in with Basic and may list users.
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/v1/users",
            Auth::Basic("cat", "long enough pw"),
            None
        )
        .status,
        200
    );
    assert_eq!(
        call(&s, "DELETE", &path, Auth::Bearer(&s.admin), None).status,
        204
    );
    call(
        &s,
        "GET",
        "/api/v1/users",
        Auth::Basic("cat", "long enough pw"),
        None,
    )
    .assert_error(401, "unauthorized");
    // The last enabled admin cannot demote, disable or delete themselves away.
    let root = store::user_by_name(&mut s.conn(), "root").unwrap().unwrap();
    let root_path = format!("/api/v1/users/{}", root.id);
    call(
        &s,
        "PATCH",
        &root_path,
        Auth::Bearer(&s.admin),
        Some(json!({"disabled": true})),
    )
    .assert_error(409, "conflict");
    call(&s, "DELETE", &root_path, Auth::Bearer(&s.admin), None).assert_error(409, "conflict");
    call(
        &s,
        "PATCH",
        "/api/v1/users/9999",
        Auth::Bearer(&s.admin),
        Some(json!({"disabled": true})),
    )
    .assert_error(404, "not_found");
}

#[test]
fn tokens_are_shown_once_and_revoked_at_once() {
    let s = Server::start();
    let r = call(
        &s,
        "POST",
        "/api/v1/tokens",
        Auth::Bearer(&s.ann),
        Some(json!({"name": "ci"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(
        call(&s, "GET", "/api/v1/me", Auth::Bearer(&secret), None).json()["username"],
        "ann"
    );
    let list = call(&s, "GET", "/api/v1/tokens", Auth::Bearer(&s.ann), None);
    assert!(!list.body.contains(&secret), "the secret is never listed");
    assert_eq!(list.json().as_array().unwrap().len(), 2);
    // Bob can neither list nor revoke Ann's tokens.
    call(
        &s,
        "GET",
        "/api/v1/tokens?all=true",
        Auth::Bearer(&s.bob),
        None,
    )
    .assert_error(403, "forbidden");
    let path = format!("/api/v1/tokens/{}", created["id"]);
    call(&s, "DELETE", &path, Auth::Bearer(&s.bob), None).assert_error(404, "not_found");
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/v1/tokens?all=true",
            Auth::Bearer(&s.admin),
            None
        )
        .json()
        .as_array()
        .unwrap()
        .len(),
        4
    );
    assert_eq!(
        call(&s, "DELETE", &path, Auth::Bearer(&s.ann), None).status,
        204
    );
    call(&s, "GET", "/api/v1/me", Auth::Bearer(&secret), None).assert_error(401, "unauthorized");
}

#[test]
fn a_disabled_user_is_refused_at_once() {
    let s = Server::start();
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/v1/me",
            Auth::Basic("bob", s.password),
            None
        )
        .status,
        200
    );
    let bob = store::user_by_name(&mut s.conn(), "bob").unwrap().unwrap();
    let r = call(
        &s,
        "PATCH",
        &format!("/api/v1/users/{}", bob.id),
        Auth::Bearer(&s.admin),
        Some(json!({"disabled": true})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    call(&s, "GET", "/api/v1/me", Auth::Bearer(&s.bob), None).assert_error(401, "unauthorized");
    // Even though Basic verifications are cached.
    call(
        &s,
        "GET",
        "/api/v1/me",
        Auth::Basic("bob", s.password),
        None,
    )
    .assert_error(401, "unauthorized");
}

#[test]
fn basic_auth_and_a_password_change() {
    let s = Server::start();
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/v1/queues",
            Auth::Basic("ann", s.password),
            None
        )
        .status,
        200
    );
    call(
        &s,
        "GET",
        "/api/v1/queues",
        Auth::Basic("ann", "wrong password"),
        None,
    )
    .assert_error(401, "unauthorized");
    call(&s, "GET", "/api/v1/queues", Auth::Raw("Basic !!!"), None)
        .assert_error(401, "unauthorized");
    call(&s, "GET", "/api/v1/queues", Auth::Raw("Digest x"), None)
        .assert_error(401, "unauthorized");
    let ann = store::user_by_name(&mut s.conn(), "ann").unwrap().unwrap();
    let r = call(
        &s,
        "PATCH",
        &format!("/api/v1/users/{}", ann.id),
        Auth::Bearer(&s.admin),
        Some(json!({"password": "a new password"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    call(
        &s,
        "GET",
        "/api/v1/queues",
        Auth::Basic("ann", s.password),
        None,
    )
    .assert_error(401, "unauthorized");
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/v1/queues",
            Auth::Basic("ann", "a new password"),
            None
        )
        .status,
        200
    );
}

#[test]
fn cookie_sessions_and_the_csrf_rule() {
    let s = Server::start();
    let r = call(
        &s,
        "POST",
        "/api/v1/session",
        Auth::None,
        Some(json!({"username": "ann", "password": s.password})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["username"], "ann");
    let cookie = session_cookie(&r);
    assert_eq!(
        call(&s, "GET", "/api/v1/me", Auth::Cookie(&cookie, false), None).json()["username"],
        "ann"
    );
    let body = json!({"branch": "main", "scenarios": ["scenarios/ok.xml"]});
    call(
        &s,
        "POST",
        "/api/v1/queues",
        Auth::Cookie(&cookie, false),
        Some(body.clone()),
    )
    .assert_error(403, "forbidden");
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/v1/queues",
            Auth::Cookie(&cookie, true),
            Some(body)
        )
        .status,
        201
    );
    // A forged or tampered cookie is refused.
    let forged = format!("{}x", cookie);
    call(&s, "GET", "/api/v1/me", Auth::Cookie(&forged, false), None)
        .assert_error(401, "unauthorized");
    call(
        &s,
        "GET",
        "/api/v1/me",
        Auth::Cookie("testarena_session=1:9999999999:abc", false),
        None,
    )
    .assert_error(401, "unauthorized");
    let out = call(
        &s,
        "DELETE",
        "/api/v1/session",
        Auth::Cookie(&cookie, true),
        None,
    );
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    call(
        &s,
        "POST",
        "/api/v1/session",
        Auth::None,
        Some(json!({"username": "ann", "password": "nope nope"})),
    )
    .assert_error(401, "unauthorized");
    call(
        &s,
        "POST",
        "/api/v1/session",
        Auth::None,
        Some(json!({"username": "ghost", "password": "nope nope"})),
    )
    .assert_error(401, "unauthorized");
}

#[test]
fn failed_sign_ins_are_rate_limited_per_address() {
    let s = Server::start_with(|c| c.server.login_attempts_per_minute = 3);
    let login = |password: &str| {
        call(
            &s,
            "POST",
            "/api/v1/session",
            Auth::None,
            Some(json!({"username": "ann", "password": password})),
        )
    };
    for _ in 0..3 {
        login("wrong password").assert_error(401, "unauthorized");
    }
    let r = login("wrong password");
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Even the right password waits now; Basic counts against the same limit.
    login(s.password).assert_error(429, "rate_limited");
    call(
        &s,
        "GET",
        "/api/v1/me",
        Auth::Basic("ann", s.password),
        None,
    )
    .assert_error(429, "rate_limited");
    // Tokens are not affected.
    assert_eq!(
        call(&s, "GET", "/api/v1/me", Auth::Bearer(&s.ann), None).status,
        200
    );
}

#[test]
fn behind_tls_the_cookie_is_secure_and_the_key_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    let url = s.url("/api/v1/session");
    let res = crate::support::agent()
        .post(&url)
        .header("X-Forwarded-Proto", "https")
        .header("Content-Type", "application/json")
        .send(json!({"username": "ann", "password": s.password}).to_string())
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let key = s.home().join("cookie.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert_eq!(std::fs::read(&key).unwrap().len(), 64);
}

/// The same app in-process, through `create_app` and actix's test service.
#[test]
fn create_app_serves_in_process() {
    use actix_web::test;
    let s = Server::start();
    let state = s.state.clone();
    let token = s.ann.clone();
    actix_web::rt::System::new().block_on(async move {
        let app = test::init_service(testarena_api::create_app(state)).await;
        let res = test::call_service(
            &app,
            test::TestRequest::get().uri("/api/v1/health").to_request(),
        )
        .await;
        assert_eq!(res.status(), 200);
        let res = test::call_service(
            &app,
            test::TestRequest::get().uri("/api/v1/queues").to_request(),
        )
        .await;
        assert_eq!(res.status(), 401);
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "unauthorized");
        let req = test::TestRequest::get()
            .uri("/api/v1/me")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request();
        let me: serde_json::Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(me["username"], "ann");
    });
}
