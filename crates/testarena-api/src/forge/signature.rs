//! Webhook signatures, checked in constant time: Gitea's
//! `X-Gitea-Signature` (hex HMAC-SHA256 of the raw body), GitHub's
//! `X-Hub-Signature-256: sha256=<hex>`, GitLab's `X-Gitlab-Token` (the
//! secret itself). TestArena's own notifications are signed the GitHub way,
//! as `X-TestArena-Signature: sha256=<hex>` ([`sign`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use testarena_domain::config::Forge;

type HmacSha256 = Hmac<Sha256>;

/// The header that authenticates a forge's webhook.
pub fn header(forge: Forge) -> &'static str {
    match forge {
        Forge::Gitea => "X-Gitea-Signature",
        Forge::Github => "X-Hub-Signature-256",
        Forge::Gitlab => "X-Gitlab-Token",
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// `sha256=<hex HMAC>`: the value of `X-TestArena-Signature`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret, body))
}

/// Whether `value` (the forge's header, `None` when absent) authenticates
/// `body` under `secret`. Every comparison takes the same time whatever
/// the bytes (the HMAC's `verify_slice`, `subtle` for GitLab's token).
pub fn verify(forge: Forge, value: Option<&str>, secret: &[u8], body: &[u8]) -> Result<(), String> {
    let name = header(forge);
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("no {name} header"))?;
    let wrong = || format!("the {name} header does not match this repository's secret");
    match forge {
        Forge::Gitlab => {
            if bool::from(value.as_bytes().ct_eq(secret)) {
                Ok(())
            } else {
                Err(wrong())
            }
        }
        Forge::Gitea | Forge::Github => {
            let hex_part = match forge {
                Forge::Github => value.strip_prefix("sha256=").ok_or_else(wrong)?,
                _ => value,
            };
            let given = hex::decode(hex_part).map_err(|_| wrong())?;
            let mut m = mac(secret);
            m.update(body);
            m.verify_slice(&given).map_err(|_| wrong())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231, test case 2.
    const KEY: &[u8] = b"Jefe";
    const DATA: &[u8] = b"what do ya want for nothing?";
    const MAC: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn the_hmac_is_rfc_4231s() {
        assert_eq!(hmac_hex(KEY, DATA), MAC);
        assert_eq!(sign(KEY, DATA), format!("sha256={MAC}"));
    }

    #[test]
    fn each_forge_checks_its_own_shape() {
        assert!(verify(Forge::Gitea, Some(MAC), KEY, DATA).is_ok());
        assert!(verify(Forge::Gitea, Some(&MAC.to_uppercase()), KEY, DATA).is_ok());
        assert!(verify(Forge::Github, Some(&format!("sha256={MAC}")), KEY, DATA).is_ok());
        assert!(verify(Forge::Gitlab, Some("Jefe"), KEY, DATA).is_ok());
        // Another forge's shape, a wrong body, a wrong key, a missing header.
        assert!(verify(Forge::Github, Some(MAC), KEY, DATA).is_err());
        assert!(verify(Forge::Gitea, Some(&format!("sha256={MAC}")), KEY, DATA).is_err());
        assert!(
            verify(
                Forge::Gitea,
                Some(MAC),
                KEY,
                b"what do ya want for nothing!"
            )
            .is_err()
        );
        assert!(verify(Forge::Gitea, Some(MAC), b"jefe", DATA).is_err());
        assert!(verify(Forge::Gitlab, Some("Jef"), KEY, DATA).is_err());
        assert!(verify(Forge::Gitlab, Some("Jefe2"), KEY, DATA).is_err());
        let e = verify(Forge::Github, None, KEY, DATA).unwrap_err();
        assert_eq!(e, "no X-Hub-Signature-256 header");
        assert!(verify(Forge::Gitea, Some("not hex"), KEY, DATA).is_err());
        assert!(verify(Forge::Gitea, Some(&MAC[..62]), KEY, DATA).is_err());
    }
}
