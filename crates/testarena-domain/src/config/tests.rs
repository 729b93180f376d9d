use super::*;
use crate::db::Location;

fn parsed(text: &str) -> Result<Config, ConfigError> {
    let mut config = Config::parse(text, Path::new("test.toml"))?;
    config.finish()?;
    Ok(config)
}

#[test]
fn an_empty_file_means_all_defaults() {
    let c = parsed("").unwrap();
    assert_eq!(c.home, Path::new("/testarena"));
    assert_eq!(
        c.database_location().unwrap(),
        Location::Sqlite("/testarena/testarena.db".into())
    );
    assert_eq!(c.default_target, "esp32");
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.server.max_body_bytes, 1_048_576);
    assert_eq!(c.server.login_attempts_per_minute, 10);
    let w = &c.worker;
    assert_eq!(
        (
            w.slots,
            w.poll_interval_ms,
            w.queue_timeout_s,
            w.test_timeout_s
        ),
        (1, 200, 3600, 300)
    );
    assert_eq!((w.abort_grace_s, w.heartbeat_s, w.lost_after_s), (5, 5, 60));
    assert!(!w.keep_workspace);
    assert_eq!((w.retry_errors, w.build_cache_mib), (1, 2048));
    assert_eq!(w.log_buffer_mib, 256);
    assert_eq!(c.worker_id(), hostname());
    assert!(c.repos.is_empty());
    assert_eq!(c.target(None).map(|(n, _)| n), Some("esp32"));
}

#[test]
fn a_full_file_parses() {
    let c = parsed(
        r#"
        home = "/srv/ta"
        default_target = "lx106"
        [server]
        listen = "0.0.0.0:9000"
        [worker]
        id = "host-1"
        slots = 2
        keep_workspace = true
        [[repos]]
        name = "firmware"
        url = "ssh://git@gitea.internal/team/firmware.git"
        ssh_key = "/etc/testarena/id_ed25519"
        known_hosts = "/etc/testarena/known_hosts"
        [[repos]]
        name = "other"
        url = "https://gitea.internal/team/other.git"
        token_env = "GITEA_TOKEN"
        [targets.lx106]
        build = ["make", "-C", "{workspace}", "BUILD_DIR={build_dir}"]
        qemu = ["qemu-system-xtensa", "-M", "sim", "-kernel", "{build_dir}/firmware.elf"]
        fail_on = ["Guru Meditation Error"]
        "#,
    )
    .unwrap();
    assert_eq!(
        c.database_location().unwrap(),
        Location::Sqlite("/srv/ta/testarena.db".into())
    );
    assert_eq!(c.worker_id(), "host-1");
    assert_eq!(c.repo(None).map(|r| r.name.as_str()), Some("firmware"));
    assert_eq!(
        c.repo(Some("other")).and_then(|r| r.token_env.as_deref()),
        Some("GITEA_TOKEN")
    );
    assert!(c.repo(Some("nope")).is_none());
    assert_eq!(c.target(None).map(|(n, _)| n), Some("lx106"));
    // The built-in target is still there next to the configured one.
    assert_eq!(
        c.target(Some("esp32")).map(|(_, t)| t),
        Some(&TargetConfig::esp32())
    );
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    for (text, key) in [
        ("hmoe = \"/x\"", "hmoe"),
        ("[server]\nlisten_addr = \"x\"", "listen_addr"),
        ("[worker]\nslot = 2", "slot"),
        (
            "[[repos]]\nname = \"a\"\nurl = \"/r\"\ntoken = \"secret\"",
            "token",
        ),
        (
            "[targets.x]\nbuild = [\"make\"]\nqemu = [\"q\"]\nenv = \"x\"",
            "env",
        ),
    ] {
        let err = parsed(text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("unknown field `{key}`")),
            "{text}: {err}"
        );
    }
}

#[test]
fn invalid_values_name_their_key() {
    for (text, key) in [
        ("home = \"relative\"", "home"),
        ("default_target = \"nope\"", "default_target"),
        ("[server]\nlisten = \"localhost\"", "server.listen"),
        ("[worker]\nslots = 0", "worker.slots"),
        ("[worker]\nheartbeat_s = 30", "worker.lost_after_s"),
        ("[worker]\nretry_errors = 4", "worker.retry_errors"),
        ("[worker]\nlog_buffer_mib = 0", "worker.log_buffer_mib"),
        ("[worker]\nid = \"bad id\"", "worker.id"),
        ("[[repos]]\nname = \"../x\"\nurl = \"/r\"", "repos[0].name"),
        (
            "[[repos]]\nname = \"a\"\nurl = \"/r\"\n[[repos]]\nname = \"a\"\nurl = \"/s\"",
            "repos[1].name",
        ),
        (
            "[[repos]]\nname = \"a\"\nurl = \"--upload-pack=x\"",
            "repos[0].url",
        ),
        ("[targets.x]\nbuild = []\nqemu = [\"q\"]", "targets.x.build"),
        ("[targets.x]\nbuild = [\"b\"]\nqemu = []", "targets.x.qemu"),
        (
            "[targets.x]\nbuild = [\"b\"]\nqemu = [\"q\"]\nimage = []",
            "targets.x.image",
        ),
        (
            "[targets.x]\nbuild = [\"b\"]\nqemu = [\"q\"]\nfail_on = [\"\"]",
            "targets.x.fail_on",
        ),
    ] {
        let err = parsed(text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("invalid config: {key}: ")),
            "{text}: {err}"
        );
    }
    let err = parsed("[worker]\nslots = \"two\"").unwrap_err().to_string();
    assert!(err.contains("slots"), "{err}");
}

#[test]
fn environment_overrides_the_file() {
    let mut c = Config::parse(
        "home = \"/a\"\n[server]\nlisten = \"127.0.0.1:1\"",
        Path::new("t"),
    )
    .unwrap();
    c.apply(&EnvOverrides {
        home: Some("/b".into()),
        database: None,
        listen: Some("127.0.0.1:2".into()),
    });
    c.finish().unwrap();
    assert_eq!(c.home, Path::new("/b"));
    assert_eq!(
        c.database_location().unwrap(),
        Location::Sqlite("/b/testarena.db".into())
    );
    assert_eq!(c.server.listen, "127.0.0.1:2");
    let mut c = Config::default();
    c.apply(&EnvOverrides {
        database: Some("/data/x.db".into()),
        ..Default::default()
    });
    c.finish().unwrap();
    assert_eq!(
        c.database_location().unwrap(),
        Location::Sqlite("/data/x.db".into())
    );
}

#[test]
fn a_named_config_file_must_exist() {
    let err = Config::load(Some(Path::new("/nonexistent/testarena.toml"))).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/testarena.toml"));
}

#[test]
fn placeholders_expand_per_element() {
    let p = Placeholders {
        home: Path::new("/h"),
        workspace: Path::new("/h/work/q1"),
        build_dir: Path::new("/h/work/q1/build"),
        queue_id: "q1",
        task_id: "q1.1",
    };
    let argv = strings(&[
        "make",
        "-C",
        "{workspace}",
        "BUILD_DIR={build_dir}",
        "{home}/{queue_id}/{task_id}",
        "{unknown}",
        "{",
        "}{}",
        "{build_dir",
    ]);
    assert_eq!(
        p.expand(&argv),
        strings(&[
            "make",
            "-C",
            "/h/work/q1",
            "BUILD_DIR=/h/work/q1/build",
            "/h/q1/q1.1",
            "{unknown}",
            "{",
            "}{}",
            "{build_dir",
        ])
    );
}

/// The esp32 target is tested as data: ESP-IDF and Espressif's QEMU
/// cannot run here, so this is the argv the worker would run.
#[test]
fn the_esp32_argv() {
    let c = parsed("").unwrap();
    let (_, t) = c.target(Some("esp32")).unwrap();
    let p = Placeholders {
        home: Path::new("/testarena"),
        workspace: Path::new("/testarena/work/q"),
        build_dir: Path::new("/testarena/work/q/build"),
        queue_id: "q",
        task_id: "t",
    };
    assert_eq!(
        t.env_script.as_deref(),
        Some(Path::new("/opt/esp-idf/export.sh"))
    );
    assert_eq!(
        p.expand(&t.build).join(" "),
        "idf.py -B /testarena/work/q/build build"
    );
    assert_eq!(
        p.expand(t.image.as_deref().unwrap_or_default()).join(" "),
        "esptool.py --chip esp32 merge_bin --fill-flash-size 4MB \
         -o /testarena/work/q/build/flash_image.bin @flash_args"
    );
    assert_eq!(
        p.expand(&t.qemu).join(" "),
        "qemu-system-xtensa -nographic -monitor none -no-reboot -machine esp32 -m 4M \
         -drive file=/testarena/work/q/build/flash_image.bin,if=mtd,format=raw \
         -global driver=timer.esp32.timg,property=wdt_disable,value=true \
         -nic user,model=open_eth"
    );
    assert_eq!(t.fail_on.len(), 8);
    assert!(t.fail_on.iter().any(|f| f == "Guru Meditation Error"));
}

#[test]
fn the_effective_config_round_trips() {
    let c = parsed("[worker]\nid = \"w1\"").unwrap();
    let again = parsed(&c.to_toml()).unwrap();
    assert_eq!(c, again);
}

#[test]
fn a_postgres_url_selects_postgresql_and_its_password_is_never_printed() {
    let c = parsed(
        "database = \"postgres://ta:hunter2@db.lab:5432/farm\"\n\
         [database_pool]\nmax_size = 4\nconnect_timeout_s = 2\n",
    )
    .unwrap();
    let location = c.database_location().unwrap();
    assert!(location.is_postgres());
    assert_eq!(location.to_string(), "postgres://ta:***@db.lab:5432/farm");
    let options = c.pool_options(16);
    assert_eq!(options.max_size, 4);
    assert_eq!(options.connect_timeout, std::time::Duration::from_secs(2));
    let shown = c.to_toml();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://ta:***@db.lab:5432/farm"),
        "{shown}"
    );
}

#[test]
fn bad_database_settings_name_their_key() {
    let err = parsed("database = \"postgres://ta:pw@[::1/x\"").unwrap_err();
    assert!(err.to_string().contains("database"), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");
    let err = parsed("[database_pool]\nmax_size = 0").unwrap_err();
    assert!(err.to_string().contains("database_pool.max_size"), "{err}");
    let err = parsed("[database_pool]\nconnect_timeout_s = 0").unwrap_err();
    assert!(
        err.to_string().contains("database_pool.connect_timeout_s"),
        "{err}"
    );
    let err = parsed("[database_pool]\nsize = 3").unwrap_err();
    assert!(err.to_string().contains("size"), "{err}");
}
