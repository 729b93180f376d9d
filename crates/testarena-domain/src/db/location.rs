//! Where the database is: a SQLite file or a PostgreSQL URL, read from the
//! `database` key, and shown everywhere with its password hidden.

use std::fmt;
use std::path::PathBuf;

/// The database a config names.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (a path, or a `sqlite://` URL).
    Sqlite(PathBuf),
    /// A PostgreSQL server (a `postgres://` or `postgresql://` URL).
    Postgres(PgUrl),
}

/// A PostgreSQL URL whose password is kept apart from what is shown.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// The URL without its password: what logs and errors show (with `***`
    /// where a password is set).
    url: url::Url,
    /// Never printed: Display and Debug show `***` in its place.
    password: Option<String>,
}

/// Why a `database` value is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct LocationError(String);

impl Location {
    /// Reads a `database` value: `postgres://` and `postgresql://` URLs
    /// select PostgreSQL, `sqlite://<path>` and anything else is a SQLite
    /// file. `password_env` names the environment variable holding the
    /// password of a URL that carries none (libpq reads `$PGPASSWORD`
    /// itself).
    pub fn parse(value: &str, password_env: Option<&str>) -> Result<Self, LocationError> {
        let lower = value.get(..13).unwrap_or(value).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return PgUrl::parse(value, password_env).map(Self::Postgres);
        }
        let path = value.strip_prefix("sqlite://").unwrap_or(value);
        if path.is_empty() {
            return Err(LocationError("the SQLite path is empty".into()));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// True for PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => url.fmt(f),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

impl PgUrl {
    fn parse(value: &str, password_env: Option<&str>) -> Result<Self, LocationError> {
        // The error of a URL that does not parse never quotes the value: it
        // may hold a password.
        let mut url = url::Url::parse(value)
            .map_err(|e| LocationError(format!("the PostgreSQL URL does not parse: {e}")))?;
        if url.host_str().is_none_or(str::is_empty) && !value.contains("host=") {
            return Err(LocationError(format!(
                "the PostgreSQL URL {} names no host",
                redact_url(&url)
            )));
        }
        let in_url = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        url.set_password(None)
            .map_err(|()| LocationError("the PostgreSQL URL cannot hold a password".into()))?;
        let password = match (in_url, password_env) {
            (Some(password), _) => Some(password),
            (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                LocationError(format!(
                    "database_pool.password_env names {var}, which is not set"
                ))
            })?),
            (None, None) => None,
        };
        Ok(Self { url, password })
    }

    /// What libpq connects with: the URL with its password, never shown.
    pub fn connect_string(&self) -> String {
        let mut url = self.url.clone();
        if let Some(password) = &self.password {
            // set_password percent-encodes; it fails only for URLs that
            // cannot have a user, which parse() already refused.
            let _ = url.set_password(Some(password));
        }
        url.into()
    }

    /// Hides the password in `text` (an error from libpq that quoted it).
    pub fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => text.to_owned(),
        }
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = self.url.clone();
        if self.password.is_some() {
            let _ = url.set_password(Some("***"));
        }
        // The query string may carry `password=`: hide its value too.
        f.write_str(&redact_url(&url))
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

/// `url` with the value of any `password` query parameter replaced by `***`.
fn redact_url(url: &url::Url) -> String {
    if !url.query_pairs().any(|(k, _)| k == "password") {
        return url.to_string();
    }
    let mut url = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "password" { "***".into() } else { v };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string().replace("%2A%2A%2A", "***")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_or_sqlite_url_is_sqlite() {
        assert_eq!(
            Location::parse("/var/lib/testarena/t.db", None).unwrap(),
            Location::Sqlite("/var/lib/testarena/t.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:///srv/t.db", None).unwrap(),
            Location::Sqlite("/srv/t.db".into())
        );
        assert!(Location::parse("sqlite://", None).is_err());
    }

    #[test]
    fn a_password_is_never_shown() {
        let loc = Location::parse("postgres://ta:s3cr%40t@db.lab:5432/farm", None).unwrap();
        assert!(loc.is_postgres());
        assert_eq!(loc.to_string(), "postgres://ta:***@db.lab:5432/farm");
        assert!(!format!("{loc:?}").contains("s3cr"));
        let Location::Postgres(url) = &loc else {
            unreachable!()
        };
        assert_eq!(
            url.connect_string(),
            "postgres://ta:s3cr%40t@db.lab:5432/farm"
        );
        assert_eq!(url.scrub("auth failed for s3cr@t"), "auth failed for ***");

        let q = Location::parse("postgresql://db.lab/farm?user=ta&password=hunter2", None).unwrap();
        assert!(!q.to_string().contains("hunter2"), "{q}");
        assert!(q.to_string().contains("password=***"), "{q}");
    }

    #[test]
    fn the_password_can_come_from_a_named_variable() {
        // A variable every test process has (the crate forbids unsafe, so
        // no test sets one).
        let var = "CARGO_PKG_NAME";
        let loc = Location::parse("postgres://ta@db.lab/farm", Some(var)).unwrap();
        assert_eq!(loc.to_string(), "postgres://ta:***@db.lab/farm");
        let Location::Postgres(url) = &loc else {
            unreachable!()
        };
        let expected = std::env::var(var).unwrap();
        assert_eq!(
            url.connect_string(),
            format!("postgres://ta:{expected}@db.lab/farm")
        );

        let err = Location::parse("postgres://ta@db.lab/farm", Some("TESTARENA_NO_SUCH_VAR"))
            .unwrap_err();
        assert!(err.to_string().contains("TESTARENA_NO_SUCH_VAR"), "{err}");
    }

    #[test]
    fn a_bad_url_is_refused_without_quoting_it() {
        let err = Location::parse("postgres://ta:hunter2@[::1/farm", None).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = Location::parse("postgres:///farm", None).unwrap_err();
        assert!(err.to_string().contains("no host"), "{err}");
    }
}
