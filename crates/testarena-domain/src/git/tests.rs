//! Unit tests of the mirror's helpers and the known_hosts parser.

use super::known_hosts::{Verdict, base64_decode, verify};
use super::*;

const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAID/YqHE/IirH9W5HXXX7pIc3rlS5nMSEYvVKtqgZAQBz";
const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIIVPLJSzd3+GY66QBtvu/mGy/HLolJY4/oTgCFxnXKEW";

fn check(text: &str, host: &str, port: u16, presented: &str) -> Verdict {
    let presented = base64_decode(presented).unwrap();
    verify(text, host, port, |blob| blob == presented.as_slice())
}

#[test]
fn base64_decodes_an_ssh_key_blob() {
    let blob = base64_decode(KEY_A).unwrap();
    assert_eq!(blob.len(), 4 + 11 + 4 + 32);
    assert_eq!(&blob[4..15], b"ssh-ed25519");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("aGk").unwrap(), b"hi");
    assert!(base64_decode("a*b").is_none());
}

#[test]
fn known_hosts_accepts_a_listed_key() {
    let text = format!(
        "# comment\n\nother.example ssh-ed25519 {KEY_B}\ngit.example,10.0.0.1 ssh-ed25519 {KEY_A} me@x\n"
    );
    assert_eq!(check(&text, "git.example", 22, KEY_A), Verdict::Known);
    assert_eq!(check(&text, "GIT.example", 22, KEY_A), Verdict::Known);
    assert_eq!(check(&text, "10.0.0.1", 22, KEY_A), Verdict::Known);
}

#[test]
fn known_hosts_refuses_a_changed_key_and_an_unknown_host() {
    let text = format!("git.example ssh-ed25519 {KEY_A}\n");
    assert_eq!(check(&text, "git.example", 22, KEY_B), Verdict::Mismatch);
    assert_eq!(
        check(&text, "evil.example", 22, KEY_A),
        Verdict::Unknown { hashed: false }
    );
    // Another key type listed too: the matching one wins.
    let both = format!("git.example ssh-rsa {KEY_B}\n{text}");
    assert_eq!(check(&both, "git.example", 22, KEY_A), Verdict::Known);
}

#[test]
fn known_hosts_ports_wildcards_negation_revocation_hashes() {
    let text = format!("[git.example]:2222 ssh-ed25519 {KEY_A}\n");
    assert_eq!(check(&text, "git.example", 2222, KEY_A), Verdict::Known);
    assert_eq!(
        check(&text, "git.example", 22, KEY_A),
        Verdict::Unknown { hashed: false }
    );
    let text = format!("*.example,!bad.example ssh-ed25519 {KEY_A}\n");
    assert_eq!(check(&text, "git.example", 22, KEY_A), Verdict::Known);
    assert_eq!(
        check(&text, "bad.example", 22, KEY_A),
        Verdict::Unknown { hashed: false }
    );
    assert_eq!(
        check(&text, "git.exampl", 22, KEY_A),
        Verdict::Unknown { hashed: false }
    );
    let text = format!("git.example ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_A}\n");
    assert_eq!(check(&text, "git.example", 22, KEY_A), Verdict::Revoked);
    let text = format!(
        "|1|c2FsdA==|aGFzaA== ssh-ed25519 {KEY_A}\n@cert-authority * ssh-ed25519 {KEY_A}\n"
    );
    assert_eq!(
        check(&text, "git.example", 22, KEY_A),
        Verdict::Unknown { hashed: true }
    );
}

#[test]
fn ssh_ports() {
    assert_eq!(ssh_port("ssh://git@gitea.internal/team/fw.git"), 22);
    assert_eq!(ssh_port("ssh://git@gitea.internal:2222/team/fw.git"), 2222);
    assert_eq!(ssh_port("ssh://[::1]:2200/fw.git"), 2200);
    assert_eq!(ssh_port("git@github.com:team/fw.git"), 22);
    assert_eq!(ssh_port("https://host:8443/fw.git"), 22);
}

#[test]
fn urls_are_redacted() {
    assert_eq!(
        redact_url("https://me:s3cret@host/x.git"),
        "https://me:***@host/x.git"
    );
    assert_eq!(redact_url("https://me@host/x.git"), "https://me@host/x.git");
    assert_eq!(redact_url("/srv/x.git"), "/srv/x.git");
    assert_eq!(redact_url("ssh://git@host:22/x"), "ssh://git@host:22/x");
}

#[test]
fn mirror_paths_hash_the_url() {
    let repo = RepoConfig {
        name: "fw".into(),
        url: "https://me:s3cret@host/x.git".into(),
        ssh_key: None,
        known_hosts: None,
        token_env: Some("TOKEN".into()),
        ..Default::default()
    };
    let mirror = Mirror::new(Path::new("/h/cache/git"), &repo);
    let hash = mirror_hash(&repo.url);
    assert_eq!(hash.len(), 16);
    assert_eq!(
        mirror.path(),
        Path::new(&format!("/h/cache/git/{hash}.git"))
    );
    assert_eq!(
        mirror.lock_path(),
        Path::new(&format!("/h/cache/git/{hash}.git.lock"))
    );
    assert!(!format!("{mirror:?}").contains("s3cret"));
}

#[test]
fn credentials_give_up_and_never_guess() {
    let auth = Auth {
        ssh_key: None,
        known_hosts: None,
        token_env: Some("TESTARENA_GIT_TEST_UNSET_VAR".into()),
    };
    let https = CredentialType::USER_PASS_PLAINTEXT;
    let err = auth.credentials(1, None, https).err().unwrap();
    assert!(
        err.contains("TESTARENA_GIT_TEST_UNSET_VAR is not set"),
        "{err}"
    );
    let err = auth
        .credentials(MAX_AUTH_ATTEMPTS + 1, None, https)
        .err()
        .unwrap();
    assert!(err.contains("attempts"), "{err}");
    assert!(auth.credentials(1, None, CredentialType::USERNAME).is_ok());
    let none = Auth {
        ssh_key: None,
        known_hosts: None,
        token_env: None,
    };
    assert!(
        none.credentials(1, Some("me"), https)
            .err()
            .unwrap()
            .contains("no token_env")
    );
}
