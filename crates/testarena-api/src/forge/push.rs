//! What a forge's webhook says: the event and delivery id from its headers,
//! and the parts of a push body TestArena uses (`ref`, `after`, the pusher),
//! for Gitea, GitHub and GitLab as each documents them.

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use testarena_domain::config::Forge;

/// The headers naming a forge's event and its delivery id.
pub fn headers(forge: Forge) -> (&'static str, &'static str) {
    match forge {
        Forge::Gitea => ("X-Gitea-Event", "X-Gitea-Delivery"),
        Forge::Github => ("X-GitHub-Event", "X-GitHub-Delivery"),
        Forge::Gitlab => ("X-Gitlab-Event", "X-Gitlab-Event-UUID"),
    }
}

/// The longest delivery id kept; a longer one is refused (400).
pub const MAX_DELIVERY_ID: usize = 200;

/// The delivery id: the forge's header, else `sha256:<hex of the body>` (an
/// older GitLab sends none; the same body then counts as a redelivery).
pub fn delivery_id(header: Option<&str>, body: &[u8]) -> Result<String, String> {
    match header.map(str::trim).filter(|h| !h.is_empty()) {
        Some(id) if id.len() <= MAX_DELIVERY_ID && id.chars().all(|c| c.is_ascii_graphic()) => {
            Ok(id.to_owned())
        }
        Some(_) => Err(format!(
            "the delivery id must be at most {MAX_DELIVERY_ID} printable ASCII characters"
        )),
        None => Ok(format!("sha256:{}", hex::encode(Sha256::digest(body)))),
    }
}

/// What kind of event a hook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A push of branches or tags.
    Push,
    /// GitLab's `Tag Push Hook`.
    TagPush,
    /// GitHub's `ping` (a hook was set up).
    Ping,
    /// Anything else: answered 202 and ignored.
    Other,
}

/// The kind of the event the forge's event header names.
pub fn event_kind(forge: Forge, event: &str) -> EventKind {
    match (forge, event) {
        (Forge::Gitea | Forge::Github, "push") | (Forge::Gitlab, "Push Hook") => EventKind::Push,
        (Forge::Gitlab, "Tag Push Hook") => EventKind::TagPush,
        (Forge::Github, "ping") => EventKind::Ping,
        _ => EventKind::Other,
    }
}

/// A push, as far as TestArena cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `refs/heads/<branch>` or `refs/tags/<tag>`.
    pub git_ref: String,
    /// The commit the ref points to now (40 hex digits, lower case); all
    /// zeros when the ref was deleted.
    pub after: String,
    /// The forge user who pushed, when the body names one.
    pub pusher: Option<String>,
}

const ZERO: &str = "0000000000000000000000000000000000000000";

impl Push {
    /// The branch pushed, `None` for a tag or another ref.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    pub fn is_tag(&self) -> bool {
        self.git_ref.starts_with("refs/tags/")
    }

    /// A deleted ref: `after` is all zeros.
    pub fn is_deletion(&self) -> bool {
        self.after == ZERO
    }
}

/// The longest pusher name kept (a forge's user names are shorter).
const MAX_PUSHER: usize = 100;

fn text<'a>(body: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = body;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().filter(|s| !s.is_empty())
}

/// Reads a push body (JSON already parsed): `ref` and `after` must be there,
/// `after` 40 hex digits; the pusher is Gitea's `pusher.login` (or
/// `pusher.username`), GitHub's `pusher.name`, GitLab's `user_username`.
pub fn parse(forge: Forge, body: &Value) -> Result<Push, String> {
    let git_ref = text(body, &["ref"]).ok_or("the push has no \"ref\"")?;
    let after = text(body, &["after"]).ok_or("the push has no \"after\"")?;
    if after.len() != 40 || !after.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("\"after\" must be a commit id of 40 hex digits".into());
    }
    let pusher = match forge {
        Forge::Gitea => {
            text(body, &["pusher", "login"]).or_else(|| text(body, &["pusher", "username"]))
        }
        Forge::Github => {
            text(body, &["pusher", "name"]).or_else(|| text(body, &["sender", "login"]))
        }
        Forge::Gitlab => text(body, &["user_username"]).or_else(|| text(body, &["user_name"])),
    };
    let pusher = pusher.map(|p| {
        p.chars()
            .filter(|c| !c.is_control())
            .take(MAX_PUSHER)
            .collect::<String>()
    });
    Ok(Push {
        git_ref: git_ref.to_owned(),
        after: after.to_ascii_lowercase(),
        pusher: pusher.filter(|p| !p.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn each_forges_push_body_is_read() {
        let gitea = json!({"ref": "refs/heads/main", "before": ZERO, "after": SHA,
            "pusher": {"login": "ann", "username": "ann2"}});
        let p = parse(Forge::Gitea, &gitea).unwrap();
        assert_eq!(
            (p.branch(), p.pusher.as_deref()),
            (Some("main"), Some("ann"))
        );
        let github = json!({"ref": "refs/heads/release/1.2", "after": SHA.to_uppercase(),
            "deleted": false, "pusher": {"name": "bob"}});
        let p = parse(Forge::Github, &github).unwrap();
        assert_eq!(
            (p.branch(), p.pusher.as_deref()),
            (Some("release/1.2"), Some("bob"))
        );
        assert_eq!(p.after, SHA, "lower case");
        let gitlab = json!({"object_kind": "push", "ref": "refs/tags/v1", "after": SHA,
            "user_username": "cy"});
        let p = parse(Forge::Gitlab, &gitlab).unwrap();
        assert!(p.is_tag() && p.branch().is_none());
        assert_eq!(p.pusher.as_deref(), Some("cy"));
        let deleted = json!({"ref": "refs/heads/x", "after": ZERO});
        assert!(parse(Forge::Gitea, &deleted).unwrap().is_deletion());
    }

    #[test]
    fn a_push_without_ref_or_commit_is_refused() {
        assert!(parse(Forge::Gitea, &json!({"after": SHA})).is_err());
        assert!(parse(Forge::Gitea, &json!({"ref": "refs/heads/main"})).is_err());
        assert!(
            parse(
                Forge::Gitea,
                &json!({"ref": "refs/heads/main", "after": "abc"})
            )
            .is_err()
        );
        assert!(parse(Forge::Gitea, &json!([1, 2])).is_err());
    }

    #[test]
    fn events_and_delivery_ids() {
        assert_eq!(event_kind(Forge::Gitea, "push"), EventKind::Push);
        assert_eq!(event_kind(Forge::Github, "ping"), EventKind::Ping);
        assert_eq!(event_kind(Forge::Gitlab, "Push Hook"), EventKind::Push);
        assert_eq!(
            event_kind(Forge::Gitlab, "Tag Push Hook"),
            EventKind::TagPush
        );
        assert_eq!(event_kind(Forge::Gitlab, "push"), EventKind::Other);
        assert_eq!(event_kind(Forge::Github, "issues"), EventKind::Other);
        assert_eq!(delivery_id(Some(" abc "), b"x").unwrap(), "abc");
        let by_body = delivery_id(None, b"x").unwrap();
        assert!(by_body.starts_with("sha256:") && by_body.len() == 71);
        assert!(delivery_id(Some("a b"), b"x").is_err());
    }
}
