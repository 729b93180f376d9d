//! Validation of user input that ends up in file paths, git refs or argv.
//!
//! Every queue id, task id, repository, target and worker name, branch,
//! scenario path, username and password that arrives from the REST API, the
//! CLI or the config file is checked here before it is stored or used. The
//! rules are deliberately narrow: an id is always a safe single path
//! component, a branch can never be mistaken for a git option, and a scenario
//! path can never leave the repository.
//!
//! Functions return a [`ValidationError`] naming the field (as the caller
//! spells it, e.g. `scenarios[0]`) and a short human message; the API maps it
//! to `validation_failed`. Messages never echo the rejected value, so a
//! password (or a control character) cannot leak into a response or a log.

/// A rejected input: which field, and why, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field as the caller names it, e.g. `branch` or `scenarios[0]`.
    pub field: String,
    /// A short, human explanation, e.g. `must not start with "-"`.
    pub message: String,
}

impl ValidationError {
    /// An error for `field` saying `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Longest id or name, in characters (all of them ASCII).
const MAX_ID_LEN: usize = 64;
/// Longest branch name or scenario path, in bytes.
const MAX_PATH_LEN: usize = 255;
const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 1024;

/// Whether `s` is a valid queue, task or test id:
/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, so always a safe path component.
pub fn is_valid_id(s: &str) -> bool {
    check_id_like(s).is_ok()
}

/// Whether `s` is a valid repository, target or worker name (the same rule as
/// [`is_valid_id`]).
pub fn is_valid_name(s: &str) -> bool {
    check_id_like(s).is_ok()
}

/// Checks a queue, task or test id (see [`is_valid_id`]).
pub fn id(field: &str, s: &str) -> Result<(), ValidationError> {
    check_id_like(s).map_err(|m| ValidationError::new(field, m))
}

/// The farm's own name as the owner of the queues it makes itself (health
/// checks, queues started by a forge's push). No account has this name, so
/// nobody signs in as it and nobody but an admin may change its queues.
pub const SYSTEM_USER: &str = "testarena";

/// Checks a username: 1 to 64 characters of `[A-Za-z0-9._-]`, starting with a
/// letter or digit, and not the system user's name.
pub fn username(field: &str, s: &str) -> Result<(), ValidationError> {
    check_id_like(s).map_err(|m| ValidationError::new(field, m))?;
    if s == SYSTEM_USER {
        return Err(ValidationError::new(
            field,
            format!("{SYSTEM_USER:?} is reserved for the farm's own queues"),
        ));
    }
    Ok(())
}

/// Checks a password: 8 to 1024 bytes, no NUL. Anything else is allowed.
pub fn password(field: &str, s: &str) -> Result<(), ValidationError> {
    let message = if s.len() < MIN_PASSWORD_LEN {
        "must be at least 8 bytes long"
    } else if s.len() > MAX_PASSWORD_LEN {
        "must be at most 1024 bytes long"
    } else if s.contains('\0') {
        "must not contain NUL characters"
    } else {
        return Ok(());
    };
    Err(ValidationError::new(field, message))
}

/// Checks a branch name, as it would appear in `refs/heads/<s>`.
///
/// The rules are git's `check-ref-format` plus our own: at most 255 bytes and
/// no leading `-`, so a branch can never be read as an option by git or any
/// other program (`--upload-pack=x`). Non-ASCII UTF-8 is allowed.
pub fn branch(field: &str, s: &str) -> Result<(), ValidationError> {
    check_branch(s).map_err(|m| ValidationError::new(field, m))
}

/// Checks a scenario path: relative to the repository root, `/`-separated and
/// normalized (no empty, `.` or `..` components, no leading or trailing `/`,
/// no `\`), no control characters, at most 255 bytes, not starting with `-`.
/// No extension is required.
pub fn scenario_path(field: &str, s: &str) -> Result<(), ValidationError> {
    check_scenario_path(s).map_err(|m| ValidationError::new(field, m))
}

/// The id/name/username rule, with the reason it fails.
fn check_id_like(s: &str) -> Result<(), &'static str> {
    let Some(first) = s.bytes().next() else {
        return Err("must not be empty");
    };
    if s.len() > MAX_ID_LEN {
        return Err("must be at most 64 characters long");
    }
    if !first.is_ascii_alphanumeric() {
        return Err("must start with a letter or a digit");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(r#"may contain only letters, digits, ".", "_" and "-""#);
    }
    Ok(())
}

fn check_branch(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_PATH_LEN {
        return Err("must be at most 255 bytes long".into());
    }
    if s.starts_with('-') {
        return Err(r#"must not start with "-""#.into());
    }
    for c in s.chars() {
        if c.is_ascii_control() {
            return Err("must not contain control characters".into());
        }
        if c == ' ' {
            return Err("must not contain spaces".into());
        }
        if matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\') {
            return Err(format!(r#"must not contain "{c}""#));
        }
    }
    if s.starts_with('/') {
        return Err(r#"must not start with "/""#.into());
    }
    if s.ends_with('/') {
        return Err(r#"must not end with "/""#.into());
    }
    if s.ends_with('.') {
        return Err(r#"must not end with ".""#.into());
    }
    for bad in ["//", "..", "@{"] {
        if s.contains(bad) {
            return Err(format!(r#"must not contain "{bad}""#));
        }
    }
    if s == "@" {
        return Err(r#"must not be "@""#.into());
    }
    for part in s.split('/') {
        if part.starts_with('.') {
            return Err(r#"no part may start with ".""#.into());
        }
        if part.ends_with(".lock") {
            return Err(r#"no part may end with ".lock""#.into());
        }
    }
    Ok(())
}

fn check_scenario_path(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > MAX_PATH_LEN {
        return Err("must be at most 255 bytes long");
    }
    if s.chars().any(|c| c.is_ascii_control()) {
        return Err("must not contain control characters");
    }
    if s.contains('\\') {
        return Err(r#"must use "/" as the separator, not "\""#);
    }
    if s.starts_with('/') {
        return Err(r#"must be a relative path, not start with "/""#);
    }
    if s.split('/').any(|part| part == "..") {
        return Err(r#"must be a relative path without "..""#);
    }
    if s.ends_with('/') {
        return Err(r#"must name a file, not end with "/""#);
    }
    if s.contains("//") {
        return Err(r#"must not contain "//""#);
    }
    if s.split('/').any(|part| part == ".") {
        return Err(r#"must not contain "." components"#);
    }
    // The path is never passed as an argument today, but a leading "-" is the
    // one shape that would turn it into an option if it ever were.
    if s.starts_with('-') {
        return Err(r#"must not start with "-""#);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Id,
        Branch,
        Path,
    }

    fn check(kind: Kind, s: &str) -> Result<(), ValidationError> {
        match kind {
            Kind::Id => id("id", s),
            Kind::Branch => branch("branch", s),
            Kind::Path => scenario_path("scenario", s),
        }
    }

    #[test]
    fn table_of_good_and_bad_inputs() {
        use Kind::*;
        let long_300 = "a".repeat(300);
        let long_64 = "a".repeat(64);
        let long_65 = "a".repeat(65);
        let long_255 = "b".repeat(255);
        let long_256 = "b".repeat(256);
        let long_path = format!("{}/x.xml", "d".repeat(249));

        // (kind, input, expected: None = valid, Some(substring of the message))
        let cases: Vec<(Kind, &str, Option<&str>)> = vec![
            // ids and names
            (Id, "q1", None),
            (Id, "A", None),
            (Id, "9", None),
            (Id, "queue-2024.01_a", None),
            (Id, &long_64, None),
            (Id, "", Some("must not be empty")),
            (Id, &long_65, Some("at most 64")),
            (Id, &long_300, Some("at most 64")),
            (Id, ".hidden", Some("must start with a letter or a digit")),
            (Id, "-x", Some("must start with a letter or a digit")),
            (Id, "_x", Some("must start with a letter or a digit")),
            (Id, "a b", Some("may contain only")),
            (Id, "a/b", Some("may contain only")),
            (Id, "a\0b", Some("may contain only")),
            (Id, "ü", Some("must start with a letter or a digit")),
            (Id, "aü", Some("may contain only")),
            (Id, "..", Some("must start with a letter or a digit")),
            // branches
            (Branch, "main", None),
            (Branch, "feature/v1.2-dots", None),
            (Branch, "ü-branch", None),
            (Branch, "release/2024-01", None),
            (Branch, "a@b", None),
            (Branch, "user/x.lockfile", None),
            (Branch, "HEAD-ish", None),
            (Branch, &long_255, None),
            (Branch, "", Some("must not be empty")),
            (Branch, &long_256, Some("at most 255 bytes")),
            (Branch, &long_300, Some("at most 255 bytes")),
            (
                Branch,
                "--upload-pack=x",
                Some(r#"must not start with "-""#),
            ),
            (Branch, "-b", Some(r#"must not start with "-""#)),
            (Branch, "a..b", Some(r#"must not contain "..""#)),
            (Branch, "refs/heads/../x", Some(r#"must not contain "..""#)),
            (Branch, "x.lock", Some(r#"end with ".lock""#)),
            (Branch, "a.lock/b", Some(r#"end with ".lock""#)),
            (Branch, "/etc/passwd", Some(r#"must not start with "/""#)),
            (Branch, "a/", Some(r#"must not end with "/""#)),
            (Branch, "a.", Some(r#"must not end with ".""#)),
            (Branch, "a//b", Some(r#"must not contain "//""#)),
            (Branch, ".hidden", Some(r#"no part may start with ".""#)),
            (Branch, "a/.b", Some(r#"no part may start with ".""#)),
            (Branch, "foo@{1}", Some(r#"must not contain "@{""#)),
            (Branch, "@", Some(r#"must not be "@""#)),
            (Branch, "a b", Some("must not contain spaces")),
            (Branch, "a\0b", Some("control characters")),
            (Branch, "a\x7fb", Some("control characters")),
            (Branch, "a\tb", Some("control characters")),
            (Branch, "a\nb", Some("control characters")),
            (Branch, "a~1", Some(r#"must not contain "~""#)),
            (Branch, "a^", Some(r#"must not contain "^""#)),
            (Branch, "a:b", Some(r#"must not contain ":""#)),
            (Branch, "a?", Some(r#"must not contain "?""#)),
            (Branch, "a*", Some(r#"must not contain "*""#)),
            (Branch, "a[b", Some(r#"must not contain "[""#)),
            (Branch, "a\\b", Some(r#"must not contain "\""#)),
            // scenario paths
            (Path, "smoke.xml", None),
            (Path, "tests/scenarios/smoke.xml", None),
            (Path, "tests/Smoke Test.xml", None),
            (Path, "scenarios/no-extension", None),
            (Path, "a/..b/c..xml", None),
            (Path, "ü/é.xml", None),
            (Path, &long_path, None),
            (Path, "", Some("must not be empty")),
            (Path, &long_300, Some("at most 255 bytes")),
            (Path, "/etc/passwd", Some("must be a relative path")),
            (Path, "../../x", Some(r#"without "..""#)),
            (Path, "a/../../x", Some(r#"without "..""#)),
            (Path, "a/..", Some(r#"without "..""#)),
            (Path, "a/./b", Some(r#""." components"#)),
            (Path, "./a", Some(r#""." components"#)),
            (Path, "a//b", Some(r#"must not contain "//""#)),
            (Path, "a/", Some(r#"not end with "/""#)),
            (Path, "a\\b.xml", Some(r#"not "\""#)),
            (Path, "a\0.xml", Some("control characters")),
            (Path, "a\x7f.xml", Some("control characters")),
            (Path, "a\n.xml", Some("control characters")),
            (Path, "-rf.xml", Some(r#"must not start with "-""#)),
        ];
        assert!(cases.len() >= 40);

        let mut failures = Vec::new();
        for (kind, input, expected) in &cases {
            let got = check(*kind, input);
            let ok = match (expected, &got) {
                (None, Ok(())) => true,
                (Some(want), Err(e)) => e.message.contains(want),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{kind:?} {input:?}: expected {expected:?}, got {got:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn is_valid_helpers_follow_the_id_rule() {
        for good in ["q1", "firmware", "esp32", "host-1.lab_a"] {
            assert!(is_valid_id(good), "{good}");
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "-q", ".q", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad}");
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn username_rule() {
        assert!(username("username", "alice").is_ok());
        assert!(username("username", "a.b-c_9").is_ok());
        assert!(username("username", &"u".repeat(64)).is_ok());
        assert!(username("username", "").is_err());
        assert!(username("username", &"u".repeat(65)).is_err());
        assert!(username("username", "_alice").is_err());
        assert!(username("username", "al ice").is_err());
        assert!(username("username", "alice@example.com").is_err());
        assert!(username("username", SYSTEM_USER).is_err());
    }

    #[test]
    fn password_rule_and_message_never_echoes_it() {
        assert!(password("password", "12345678").is_ok());
        assert!(password("password", "ünïcödé").is_ok(), "7 chars, 11 bytes");
        assert!(password("password", &"p".repeat(1024)).is_ok());
        let short = password("password", "hunter2").unwrap_err();
        assert_eq!(short.to_string(), "password: must be at least 8 bytes long");
        assert!(password("password", &"p".repeat(1025)).is_err());
        let nul = password("password", "secret\0secret").unwrap_err();
        assert!(!nul.to_string().contains("secret\0"));
    }

    #[test]
    fn error_display_names_the_field() {
        let e = branch("branch", "--upload-pack=x").unwrap_err();
        assert_eq!(e.to_string(), r#"branch: must not start with "-""#);
        let e = scenario_path("scenarios[0]", "../../x").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"scenarios[0]: must be a relative path without "..""#
        );
        assert_eq!(e.field, "scenarios[0]");
    }
}
