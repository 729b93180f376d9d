//! The user's config file, `<config dir>/testarena/config.toml`
//! (`~/.config/testarena/config.toml` on Linux): the server's URL and the
//! token `testarena login` made. It holds a secret, so it is written 0600.
//!
//! Precedence: `--url` > `TESTARENA_URL` > the file > the default URL, and
//! `--token` > `TESTARENA_TOKEN` > the file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The saved token's id, so that `logout` can revoke it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<i32>,
    /// Whose token it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("token_id", &self.token_id)
            .field("username", &self.username)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config directory: set HOME or XDG_CONFIG_HOME")]
    NoDir,
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

/// Where the file is, or would be.
pub fn path() -> Result<PathBuf, ConfigError> {
    dirs::config_dir()
        .map(|d| d.join("testarena").join("config.toml"))
        .ok_or(ConfigError::NoDir)
}

impl Config {
    /// The file's settings; all unset when there is no file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the file owner-only (0600, its folder 0700), atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = path.parent().ok_or(ConfigError::NoDir)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let text = toml::to_string(self).unwrap_or_default();
        let tmp = path.with_extension("toml.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// The URL and token in force, from the flags (which clap fills from the
/// environment too) and the file.
pub fn resolve(url: Option<&str>, token: Option<&str>, file: &Config) -> (String, Option<String>) {
    let set = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let url = set(url)
        .or_else(|| set(file.url.as_deref()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let token = set(token).or_else(|| set(file.token.as_deref()));
    (url.trim_end_matches('/').to_owned(), token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn flags_beat_the_file_which_beats_the_default() {
        let file = Config {
            url: Some("https://farm.example/".into()),
            token: Some("from-file".into()),
            ..Config::default()
        };
        assert_eq!(
            resolve(Some("http://x:1"), Some("flag"), &file),
            ("http://x:1".into(), Some("flag".into()))
        );
        assert_eq!(
            resolve(None, None, &file),
            ("https://farm.example".into(), Some("from-file".into()))
        );
        assert_eq!(
            resolve(Some(""), None, &Config::default()),
            (DEFAULT_URL.into(), None)
        );
    }

    #[test]
    fn saved_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("testarena").join("config.toml");
        let config = Config {
            url: Some("http://127.0.0.1:1".into()),
            token: Some("secret".into()),
            token_id: Some(3),
            username: Some("ann".into()),
        };
        config.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Config::load(&path).unwrap(), config);
        assert!(!format!("{config:?}").contains("secret"));
        assert_eq!(
            Config::load(&dir.path().join("none")).unwrap(),
            Config::default()
        );
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(
            Config::load(&path)
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
    }
}
