//! Secrets: with the daemons logging at `debug`, every way a password or a
//! token reaches the app (Basic, sign-in, user creation, password changes
//! over the API and the command line, tokens made, used and revoked) and a
//! target whose `env_script` exports a secret; afterwards no password, token,
//! exported secret or cookie key is in any log, answer, queue file or the
//! database, and the key and the database files are owner-only.

use std::time::Duration;

use serde_json::json;

use super::probe::check_secrets;
use super::{shared, small};
use testarena_testkit::{Auth, Farm, Setup};

const BOB_PASSWORD: &str = "bob-first-pw-Kp4Wq8Zr";
const BOB_API_PASSWORD: &str = "bob-api-set-pw-Tn6Yx3Hv";
const BOB_CLI_PASSWORD: &str = "bob-cli-set-pw-Jd2Rm9Fs";
const WRONG_PASSWORD: &str = "wrong-guess-pw-Vb7Lc5Qe";
const DEPLOY_KEY: &str = "faults-deploy-key-Xw3Nh8Gt";

#[test]
fn no_secret_reaches_a_log_or_an_answer() {
    let _quiet = shared();
    let env_dir = tempfile::tempdir().unwrap();
    let env_script = env_dir.path().join("env.sh");
    std::fs::write(
        &env_script,
        format!("export FAULTS_DEPLOY_KEY={DEPLOY_KEY}\n"),
    )
    .unwrap();
    let targets = format!(
        r#"
[targets.secretive]
env_script = "{}"
build = ["sh", "-c", "test -n \"$FAULTS_DEPLOY_KEY\""]
qemu = ["false"]
"#,
        env_script.display()
    );
    let farm = Farm::start(Setup {
        targets,
        default_target: "secretive".into(),
        rust_log: "debug".into(),
        ..small()
    });
    for secret in [
        BOB_PASSWORD,
        BOB_API_PASSWORD,
        BOB_CLI_PASSWORD,
        WRONG_PASSWORD,
        DEPLOY_KEY,
    ] {
        farm.add_secret(secret);
    }

    // A user made over the API; wrong and right passwords, Basic and sign-in.
    let r = farm.call(
        "POST",
        "/api/v1/users",
        Some(&json!({"username": "bob", "password": BOB_PASSWORD})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let bob_id = r.json()["id"].as_i64().unwrap();
    let me = |auth| farm.call_as(auth, "GET", "/api/v1/me", None).status;
    assert_eq!(me(Auth::Basic("bob", WRONG_PASSWORD)), 401);
    assert_eq!(me(Auth::Basic("bob", BOB_PASSWORD)), 200);
    let login = |password: &str| {
        farm.call_as(
            Auth::None,
            "POST",
            "/api/v1/session",
            Some(&json!({"username": "bob", "password": password})),
        )
    };
    assert_eq!(login(WRONG_PASSWORD).status, 401);
    let signed_in = login(BOB_PASSWORD);
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let set_cookie = signed_in
        .set_cookie
        .iter()
        .find(|l| l.starts_with("testarena_session="))
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |method: &str, path: &str, csrf: bool| {
        let mut headers = vec![("Cookie", cookie.as_str())];
        if csrf {
            headers.push(("X-Requested-With", "testarena"));
        }
        farm.send(
            Auth::None,
            method,
            path,
            &headers,
            Some(&json!({"name": "x"})),
        )
        .status
    };
    assert_eq!(with_cookie("GET", "/api/v1/me", false), 200);
    assert_eq!(with_cookie("POST", "/api/v1/tokens", false), 403);

    // Tokens: made, used, revoked.
    let bob_token = farm.new_token("bob", BOB_PASSWORD);
    assert_eq!(me(Auth::Bearer(&bob_token)), 200);
    let tokens = farm.call_as(Auth::Bearer(&bob_token), "GET", "/api/v1/tokens", None);
    assert_eq!(tokens.status, 200);
    assert!(!tokens.body.contains(&bob_token));
    let token_id = tokens.json()[0]["id"].as_i64().unwrap();
    let r = farm.call_as(
        Auth::Bearer(&bob_token),
        "DELETE",
        &format!("/api/v1/tokens/{token_id}"),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(me(Auth::Bearer(&bob_token)), 401);
    assert_eq!(me(Auth::Bearer("ta_not-a-real-token")), 401);

    // Password changes: by an admin over the API, then on the command line.
    let r = farm.call(
        "PATCH",
        &format!("/api/v1/users/{bob_id}"),
        Some(&json!({"password": BOB_API_PASSWORD})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(me(Auth::Basic("bob", BOB_PASSWORD)), 401);
    assert_eq!(me(Auth::Basic("bob", BOB_API_PASSWORD)), 200);
    assert_eq!(with_cookie("GET", "/api/v1/me", false), 401, "sessions end");
    farm.app_command(
        &["user", "passwd", "bob", "--password-stdin"],
        Some(BOB_CLI_PASSWORD),
    );
    assert_eq!(me(Auth::Basic("bob", BOB_CLI_PASSWORD)), 200);

    // A queue whose target's environment holds a secret.
    let id = farm.submit("main", &["scenarios/quick.xml"]);
    let q = farm.wait_final(&id, Duration::from_secs(60));
    assert_eq!(q["status"], "passed", "{q:#}");
    for path in ["logs", "logs/build.log", "logs/queue.log"] {
        farm.call("GET", &format!("/api/v1/queues/{id}/{path}"), None);
    }
    farm.call("GET", "/metrics", None);
    farm.call("GET", "/api/v1/users", None);
    farm.call("GET", "/api/v1/tokens?all=true", None);
    farm.app_command(&["check-config"], None);
    farm.app_command(&["user", "list"], None);

    check_secrets(&farm);
    farm.assert_no_leftovers();
}
