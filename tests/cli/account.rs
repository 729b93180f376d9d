//! Credentials and failures: login, logout, a wrong token, no server,
//! bad usage; tokens, users and health.

use std::os::unix::fs::PermissionsExt as _;

use super::support::{ADMIN, Cli, Farm, Output, PASSWORD};

/// A clear one-line error, never a panic or a backtrace.
fn assert_clean_error(out: &Output, says: &str) {
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(out.stderr.contains(says), "{says}: {out:?}");
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!out.stderr.contains(bad), "{bad}: {out:?}");
    }
}

#[test]
fn no_server_and_bad_usage_exit_4_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let cli = Cli::new(dir.path(), &url, Some("some-token"));
    for args in [
        &["status", "q1"][..],
        &["submit", "main", "-s", "scenarios/unit.xml", "--wait"],
        &["logs", "q1", "-f"],
        &["health", "--json"],
    ] {
        let out = cli.run(args);
        assert_clean_error(&out, &format!("cannot reach {url}"));
        assert!(out.stderr.contains("hint: "), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    assert_clean_error(&cli.run(&["submit", "main"]), "--scenario");
    assert_clean_error(&cli.run(&["list", "--status", "sleeping"]), "--status");
    assert_clean_error(&cli.run(&["--url", "ftp://x", "list"]), "http://");
    assert_eq!(cli.run(&["--help"]).code, Some(0));
    let version = cli.run(&["--version"]);
    assert!(
        version.ok() && version.stdout.starts_with("testarena "),
        "{version:?}"
    );
}

#[test]
fn login_saves_a_private_config_that_later_commands_use() {
    let farm = Farm::start();
    let anon = farm.anonymous();
    assert_clean_error(&anon.run(&["whoami"]), "unauthorized");

    let wrong = anon.run_input(&["login", "--user", ADMIN, "--password-stdin"], "not it\n");
    assert_clean_error(&wrong, "unauthorized");
    assert!(!anon.config_file().exists());

    let out = anon.run_input(
        &[
            "login",
            "--user",
            ADMIN,
            "--password-stdin",
            "--token-name",
            "laptop",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.ok(), "{out:?}");
    let mode = std::fs::metadata(anon.config_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the config file holds a secret");
    let saved = std::fs::read_to_string(anon.config_file()).unwrap();
    assert!(
        saved.contains(&format!("url = \"{}\"", farm.url)),
        "{saved}"
    );

    let me = anon.run(&["whoami"]);
    assert!(me.ok() && me.stdout.starts_with("admin (admin)"), "{me:?}");
    let tokens = anon.run(&["tokens", "list", "--json"]).json();
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "laptop"),
        "{tokens:#}"
    );
    // The flag and the environment beat the file.
    let wrong = Cli::new(&farm.dir, &farm.url, Some("wrong"));
    assert_clean_error(&wrong.run(&["whoami"]), "unauthorized");
    assert_clean_error(&anon.run(&["--token", "wrong", "whoami"]), "unauthorized");

    let out = anon.run(&["logout"]);
    assert!(out.ok(), "{out:?}");
    let saved = std::fs::read_to_string(anon.config_file()).unwrap();
    assert!(!saved.contains("token"), "{saved}");
    assert_clean_error(&anon.run(&["whoami"]), "unauthorized");
    let tokens = farm.cli().run(&["tokens", "list", "--json"]).json();
    assert!(
        !tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "laptop"),
        "logout revokes the token: {tokens:#}"
    );
}

#[test]
fn a_wrong_token_exits_4_and_tokens_users_health_work() {
    let farm = Farm::start();
    let wrong = Cli::new(&farm.dir, &farm.url, Some("ta_not_a_token"));
    let out = wrong.run(&["list"]);
    assert_clean_error(&out, "error: unauthorized: ");
    assert!(out.stderr.contains("testarena login"), "a hint: {out:?}");
    assert_clean_error(
        &wrong.run(&["submit", "main", "-s", "scenarios/unit.xml", "--wait"]),
        "unauthorized",
    );

    let cli = farm.cli();
    let health = cli.run(&["health", "--json"]).json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["workers"][0]["id"], "cli-worker");

    let out = cli.run_input(
        &["users", "add", "bob", "--password-stdin"],
        "bob password 1\n",
    );
    assert!(out.ok(), "{out:?}");
    let users = cli.run(&["users", "list", "--json"]).json();
    let names: Vec<_> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["username"])
        .collect();
    assert_eq!(names, ["admin", "bob"]);
    let bob = cli.run(&["users", "disable", "bob", "--json"]).json();
    assert_eq!(bob["disabled"], true);
    let bob = cli.run(&["users", "enable", "bob", "--json"]).json();
    assert_eq!(bob["disabled"], false);
    let bob = cli.run(&["users", "admin", "bob", "--json"]).json();
    assert_eq!(bob["is_admin"], true);
    let bob = cli
        .run(&["users", "admin", "bob", "--revoke", "--json"])
        .json();
    assert_eq!(bob["is_admin"], false);
    let out = cli.run_input(
        &["users", "passwd", "bob", "--password-stdin"],
        "bob password 2\n",
    );
    assert!(out.ok(), "{out:?}");
    // Bob logs in with the new password, in a config directory of his own.
    let bob_dir = tempfile::tempdir().unwrap();
    let as_bob = Cli::new(bob_dir.path(), &farm.url, None);
    let out = as_bob.run_input(
        &["login", "--user", "bob", "--password-stdin"],
        "bob password 2\n",
    );
    assert!(out.ok(), "{out:?}");
    assert_clean_error(&as_bob.run(&["users", "list"]), "forbidden");
    let out = cli.run(&["users", "delete", "bob"]);
    assert!(out.ok(), "{out:?}");
    assert_clean_error(&cli.run(&["users", "disable", "nobody"]), "no user");

    let out = cli.run(&["tokens", "create", "ci"]);
    assert!(out.ok(), "{out:?}");
    let secret = out.stdout.trim();
    let ci = Cli::new(&farm.dir, &farm.url, Some(secret));
    assert!(ci.run(&["whoami"]).ok());
    let tokens = cli.run(&["tokens", "list", "--json"]).json();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()["id"]
        .to_string();
    assert!(cli.run(&["tokens", "revoke", &id]).ok());
    assert_clean_error(&ci.run(&["whoami"]), "unauthorized");
}
