//! Configuration (DESIGN section 2): one TOML file, environment overrides,
//! defaults, the built-in `esp32` target, argv placeholders and validation.
//!
//! The config is parsed once in each binary's `main` and passed down; there is
//! no global. Secrets (tokens) are never stored here: `token_env` names the
//! environment variable that holds one, so `Debug` output is safe to log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod boards;
pub use boards::{BoardConfig, HealthConfig};
mod forge;
pub use forge::{
    Forge, NotifyConfig, NotifyEvent, Secret, public_url, secret_from_env, secrets_report,
};

/// Where the config comes from when `--config` is not given.
pub const CONFIG_ENV: &str = "TESTARENA_CONFIG";
/// The config file used when neither `--config` nor `$TESTARENA_CONFIG` is set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/testarena/config.toml";
/// The name of the built-in target.
pub const ESP32: &str = "esp32";

/// Everything that can go wrong while loading or checking a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration, as read from TOML plus environment overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Logs, workspaces and the git cache live here.
    pub home: PathBuf,
    /// The database: a SQLite file (a path or `sqlite://` URL;
    /// `{home}/testarena.db` when unset) or a `postgres://` URL.
    pub database: Option<String>,
    /// `[database_pool]`: pool size, connect timeout, where the PostgreSQL
    /// password comes from.
    pub database_pool: DatabasePoolConfig,
    /// The target of a queue that names none.
    pub default_target: String,
    pub server: ServerConfig,
    pub worker: WorkerConfig,
    pub repos: Vec<RepoConfig>,
    /// Build and boot profiles by name; `esp32` is built in when absent.
    pub targets: BTreeMap<String, TargetConfig>,
    /// `[[boards]]`: the boards wired to this worker host (DESIGN section 10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub boards: Vec<BoardConfig>,
    /// `[[notify]]`: webhooks told of queues and boards (DESIGN section 12).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyConfig>,
}

/// `[server]`: the API server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub max_body_bytes: usize,
    /// Failed logins allowed per client address per minute, then 429.
    pub login_attempts_per_minute: u32,
    /// Serve the dashboard from this folder (the repository's `static/`)
    /// instead of the copy built into the binary: for working on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<PathBuf>,
    /// The dashboard's address as users reach it, for the links in commit
    /// statuses and notifications (DESIGN section 12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// `[worker]`: the worker daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// The worker's id in the `workers` table; the hostname when unset.
    pub id: Option<String>,
    pub slots: u32,
    pub poll_interval_ms: u64,
    pub queue_timeout_s: u64,
    pub test_timeout_s: u64,
    pub abort_grace_s: u64,
    pub heartbeat_s: u64,
    pub lost_after_s: u64,
    pub keep_workspace: bool,
    /// How many times a queue that a farm failure ended (DESIGN section
    /// 11, "Attempts") is tried again: 0 to 3.
    pub retry_errors: u32,
    /// The build cache's size cap in MiB (0: no cache).
    pub build_cache_mib: u64,
    /// On PostgreSQL: how many MiB of a queue's logs may wait on the
    /// worker's disk while the database is unreachable before the queue
    /// ends `error` (DESIGN section 13).
    pub log_buffer_mib: u64,
}

/// `[[repos]]`: a repository that may be built. Only these can be built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub name: String,
    /// Anything git understands: `ssh://`, `https://`, `file://` or a local path.
    pub url: String,
    /// Private key for SSH remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<PathBuf>,
    /// Known-hosts file for SSH remotes; host keys are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    /// Name of the environment variable holding an HTTPS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The forge that hosts it (DESIGN section 12): `gitea`, `github`, `gitlab`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<Forge>,
    /// The base URL of the forge's REST API (`https://gitea.internal/api/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_api: Option<String>,
    /// `owner/name` on the forge (GitLab: the project's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_repo: Option<String>,
    /// The environment variable holding the secret that signs its webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_env: Option<String>,
    /// The environment variable holding the token that posts commit statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_token_env: Option<String>,
}

/// `[targets.NAME]`: how to build, package and boot firmware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A shell script sourced once; its exported environment is used for every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_script: Option<PathBuf>,
    /// The build command, run in the checkout.
    pub build: Vec<String>,
    /// An optional packaging command, run in `{build_dir}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Vec<String>>,
    /// The emulator command of `<boot/>` tests.
    pub qemu: Vec<String>,
    /// Console texts that mean a crash.
    #[serde(default)]
    pub fail_on: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            home: PathBuf::from("/testarena"),
            database: None,
            database_pool: DatabasePoolConfig::default(),
            default_target: ESP32.to_owned(),
            server: ServerConfig::default(),
            worker: WorkerConfig::default(),
            repos: Vec::new(),
            targets: BTreeMap::new(),
            boards: Vec::new(),
            notify: Vec::new(),
        }
    }
}

/// `[database_pool]` (DESIGN section 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabasePoolConfig {
    /// Connections this process keeps at most; unset: 16 for the app,
    /// slots + 2 for a worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    /// How long a new connection may take before the attempt fails.
    pub connect_timeout_s: u64,
    /// The environment variable holding the PostgreSQL password, for a URL
    /// that carries none (libpq also reads `$PGPASSWORD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

impl Default for DatabasePoolConfig {
    fn default() -> Self {
        Self {
            max_size: None,
            connect_timeout_s: 5,
            password_env: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            max_body_bytes: 1024 * 1024,
            login_attempts_per_minute: 10,
            static_dir: None,
            public_url: None,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: None,
            slots: 1,
            poll_interval_ms: 200,
            queue_timeout_s: 3600,
            test_timeout_s: 300,
            abort_grace_s: 5,
            heartbeat_s: 5,
            lost_after_s: 60,
            keep_workspace: false,
            retry_errors: 1,
            build_cache_mib: 2048,
            log_buffer_mib: 256,
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl TargetConfig {
    /// The built-in `esp32` target: ESP-IDF's build, esptool's merge and
    /// Espressif's QEMU (see `docs/ESP32.md`).
    pub fn esp32() -> Self {
        Self {
            env_script: Some(PathBuf::from("/opt/esp-idf/export.sh")),
            build: strings(&["idf.py", "-B", "{build_dir}", "build"]),
            image: Some(strings(&[
                "esptool.py",
                "--chip",
                "esp32",
                "merge_bin",
                "--fill-flash-size",
                "4MB",
                "-o",
                "{build_dir}/flash_image.bin",
                "@flash_args",
            ])),
            qemu: strings(&[
                "qemu-system-xtensa",
                "-nographic",
                "-monitor",
                "none",
                "-no-reboot",
                "-machine",
                "esp32",
                "-m",
                "4M",
                "-drive",
                "file={build_dir}/flash_image.bin,if=mtd,format=raw",
                "-global",
                "driver=timer.esp32.timg,property=wdt_disable,value=true",
                "-nic",
                "user,model=open_eth",
            ]),
            fail_on: strings(&[
                "Guru Meditation Error",
                "abort() was called",
                "assert failed:",
                "***ERROR*** A stack overflow",
                "Task watchdog got triggered",
                "Interrupt wdt timeout",
                "CORRUPT HEAP",
                "Rebooting...",
            ]),
        }
    }
}

/// The values an argv template's placeholders expand to.
#[derive(Debug, Clone, Copy)]
pub struct Placeholders<'a> {
    pub home: &'a Path,
    pub workspace: &'a Path,
    pub build_dir: &'a Path,
    pub queue_id: &'a str,
    pub task_id: &'a str,
}

impl Placeholders<'_> {
    /// Expands `{home}`, `{workspace}`, `{build_dir}`, `{queue_id}` and
    /// `{task_id}` in each element. Other braces are kept as they are, so an
    /// argument such as `{}` passes through unchanged.
    pub fn expand(&self, argv: &[String]) -> Vec<String> {
        argv.iter().map(|arg| self.expand_one(arg)).collect()
    }

    fn expand_one(&self, arg: &str) -> String {
        let mut out = String::with_capacity(arg.len());
        let mut rest = arg;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start..];
            let value = after.find('}').and_then(|end| {
                let value = match &after[1..end] {
                    "home" => self.home.to_string_lossy(),
                    "workspace" => self.workspace.to_string_lossy(),
                    "build_dir" => self.build_dir.to_string_lossy(),
                    "queue_id" => self.queue_id.into(),
                    "task_id" => self.task_id.into(),
                    _ => return None,
                };
                Some((value, end))
            });
            match value {
                Some((value, end)) => {
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push('{');
                    rest = &after[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Environment variables that override the file.
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    pub home: Option<String>,
    pub database: Option<String>,
    pub listen: Option<String>,
}

impl EnvOverrides {
    /// Reads `TESTARENA_HOME`, `TESTARENA_DATABASE` and `TESTARENA_LISTEN`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            home: var("TESTARENA_HOME"),
            database: var("TESTARENA_DATABASE"),
            listen: var("TESTARENA_LISTEN"),
        }
    }
}

impl Config {
    /// The config file to read: `--config`, else `$TESTARENA_CONFIG`, else
    /// `/etc/testarena/config.toml`. Only an explicitly named file must exist.
    pub fn locate(cli: Option<&Path>) -> (PathBuf, bool) {
        if let Some(path) = cli {
            return (path.to_owned(), true);
        }
        match std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }

    /// Loads the config the way both daemons do: locate the file, parse it
    /// (a missing default file means all defaults), apply the environment,
    /// fill in defaults and validate.
    pub fn load(cli: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = Self::locate(cli);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut config = Self::parse(&text, &path)?;
        config.apply(&EnvOverrides::from_env());
        config.finish()?;
        Ok(config)
    }

    /// Parses TOML text. Unknown keys are an error naming the key.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Applies environment overrides.
    pub fn apply(&mut self, env: &EnvOverrides) {
        if let Some(home) = &env.home {
            self.home = PathBuf::from(home);
        }
        if let Some(database) = &env.database {
            self.database = Some(database.clone());
        }
        if let Some(listen) = &env.listen {
            self.server.listen.clone_from(listen);
        }
    }

    /// Fills in what defaults to other values (the database path, the worker
    /// id, the built-in target) and validates the result.
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        if self.database.is_none() {
            self.database = Some(
                self.home
                    .join("testarena.db")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        if self.worker.id.is_none() {
            self.worker.id = Some(hostname());
        }
        if !self.targets.contains_key(ESP32) {
            self.targets.insert(ESP32.to_owned(), TargetConfig::esp32());
        }
        self.validate()
    }

    /// The database `database` names (validated by [`Config::validate`]).
    pub fn database_location(&self) -> Result<crate::db::Location, ConfigError> {
        let default = || {
            self.home
                .join("testarena.db")
                .to_string_lossy()
                .into_owned()
        };
        let value = self.database.clone().unwrap_or_else(default);
        crate::db::Location::parse(&value, self.database_pool.password_env.as_deref())
            .map_err(|e| ConfigError::invalid("database", e.to_string()))
    }

    /// The pool options of a process that needs `default_size` connections
    /// unless `database_pool.max_size` says otherwise.
    pub fn pool_options(&self, default_size: u32) -> crate::db::PoolOptions {
        crate::db::PoolOptions {
            max_size: self.database_pool.max_size.unwrap_or(default_size),
            connect_timeout: std::time::Duration::from_secs(self.database_pool.connect_timeout_s),
        }
    }

    /// This worker's id.
    pub fn worker_id(&self) -> String {
        self.worker.id.clone().unwrap_or_else(hostname)
    }

    /// The repository of that name, or the first one when `name` is `None`.
    pub fn repo(&self, name: Option<&str>) -> Option<&RepoConfig> {
        match name {
            Some(name) => self.repos.iter().find(|r| r.name == name),
            None => self.repos.first(),
        }
    }

    /// The target of that name, or the default target when `name` is `None`.
    pub fn target(&self, name: Option<&str>) -> Option<(&str, &TargetConfig)> {
        let name = name.unwrap_or(&self.default_target);
        self.targets
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::validate::{is_valid_id, is_valid_name};

        if self.home.as_os_str().is_empty() || !self.home.is_absolute() {
            return Err(ConfigError::invalid("home", "must be an absolute path"));
        }
        if self.database.as_deref() == Some("") {
            return Err(ConfigError::invalid("database", "must not be empty"));
        }
        self.database_location()?;
        if self.database_pool.max_size == Some(0) {
            return Err(ConfigError::invalid(
                "database_pool.max_size",
                "must be at least 1",
            ));
        }
        if !(1..=300).contains(&self.database_pool.connect_timeout_s) {
            return Err(ConfigError::invalid(
                "database_pool.connect_timeout_s",
                "must be between 1 and 300",
            ));
        }
        if !self.targets.contains_key(&self.default_target) {
            return Err(ConfigError::invalid(
                "default_target",
                format!("no target named {:?}", self.default_target),
            ));
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "server.listen",
                format!("{:?} is not an address:port", self.server.listen),
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.server.login_attempts_per_minute == 0 {
            return Err(ConfigError::invalid(
                "server.login_attempts_per_minute",
                "must be at least 1",
            ));
        }
        let w = &self.worker;
        if let Some(id) = &w.id
            && !is_valid_id(id)
        {
            return Err(ConfigError::invalid(
                "worker.id",
                format!("{id:?} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"),
            ));
        }
        for (key, value, min) in [
            ("worker.slots", u64::from(w.slots), 1),
            ("worker.poll_interval_ms", w.poll_interval_ms, 1),
            ("worker.queue_timeout_s", w.queue_timeout_s, 1),
            ("worker.test_timeout_s", w.test_timeout_s, 1),
            ("worker.heartbeat_s", w.heartbeat_s, 1),
            ("worker.log_buffer_mib", w.log_buffer_mib, 1),
        ] {
            if value < min {
                return Err(ConfigError::invalid(key, format!("must be at least {min}")));
            }
        }
        if w.retry_errors > crate::store::MAX_RETRY_ERRORS {
            return Err(ConfigError::invalid(
                "worker.retry_errors",
                format!("must be 0 to {}", crate::store::MAX_RETRY_ERRORS),
            ));
        }
        if w.lost_after_s <= w.heartbeat_s * 2 {
            return Err(ConfigError::invalid(
                "worker.lost_after_s",
                "must be more than twice worker.heartbeat_s",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, repo) in self.repos.iter().enumerate() {
            let key = format!("repos[{i}]");
            if !is_valid_name(&repo.name) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}",
                        repo.name
                    ),
                ));
            }
            if !names.insert(repo.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("{:?} is used twice", repo.name),
                ));
            }
            if repo.url.trim().is_empty() || repo.url.starts_with('-') {
                return Err(ConfigError::invalid(
                    format!("{key}.url"),
                    "must be a URL or path",
                ));
            }
        }
        for (name, target) in &self.targets {
            let key = format!("targets.{name}");
            if !is_valid_name(name) {
                return Err(ConfigError::invalid(
                    key,
                    "the target name must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                ));
            }
            if target.build.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.build"),
                    "must name a command",
                ));
            }
            if target.qemu.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.qemu"),
                    "must name a command",
                ));
            }
            if target.image.as_ref().is_some_and(Vec::is_empty) {
                return Err(ConfigError::invalid(
                    format!("{key}.image"),
                    "must name a command or be left out",
                ));
            }
            if target.fail_on.iter().any(|t| t.is_empty()) {
                return Err(ConfigError::invalid(
                    format!("{key}.fail_on"),
                    "must not contain an empty text",
                ));
            }
        }
        boards::validate(self)?;
        forge::validate(self)?;
        Ok(())
    }

    /// The effective config as TOML, for `check-config`.
    pub fn to_toml(&self) -> String {
        // The database URL as every log shows it: a password as `***`.
        let mut shown = self.clone();
        if let Ok(location) = self.database_location() {
            shown.database = Some(location.to_string());
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The machine's hostname, or `worker` when it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| {
            h.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .take(64)
                .collect::<String>()
        })
        .filter(|h| crate::validate::is_valid_id(h))
        .unwrap_or_else(|| "worker".to_owned())
}

#[cfg(test)]
mod tests;
