//! Passwords, API tokens and other secrets.
//!
//! Passwords are stored as argon2id PHC strings (OWASP parameters: 19 MiB,
//! two passes, one lane). API tokens are random `ta_…` strings with about 238
//! bits of entropy, so a plain SHA-256 of the token is enough to store and
//! look it up by; the secret itself is shown to the user once and never kept.
//!
//! Everything random here comes from the operating system's generator
//! ([`OsRng`]). Argon2 is slow on purpose: callers in async code run
//! [`hash_password`], [`verify_password`] and [`dummy_verify`] on a blocking
//! thread.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, Salt, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::distr::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, RngCore, TryRngCore};
use sha2::{Digest, Sha256};

/// What every API token starts with, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "ta_";
/// Random base62 characters after [`TOKEN_PREFIX`]: 40 × log2(62) ≈ 238 bits.
const TOKEN_RANDOM_CHARS: usize = 40;
/// Characters of the secret kept for display (`ta_` and seven more).
const TOKEN_DISPLAY_CHARS: usize = 10;
/// Length of a generated password (≈ 119 bits).
const GENERATED_PASSWORD_CHARS: usize = 20;

/// OWASP's argon2id recommendation: m = 19 MiB, t = 2, p = 1.
const ARGON2_M_COST_KIB: u32 = 19_456;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;

/// Upper bounds on the parameters a stored hash may ask [`verify_password`]
/// for, so a corrupted row cannot make a login allocate gigabytes or spin
/// for minutes. Far above anything [`hash_password`] writes.
const VERIFY_MAX_M_COST_KIB: u32 = 1 << 20; // 1 GiB
const VERIFY_MAX_T_COST: u32 = 16;
const VERIFY_MAX_P_COST: u32 = 16;

/// Why a secret could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random generator failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// Argon2 refused its input or parameters.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The argon2id hasher with our parameters.
fn hasher() -> Result<Argon2<'static>, SecretError> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| SecretError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id and a fresh random salt, returning the PHC
/// string (`$argon2id$v=19$m=19456,t=2,p=1$…`) to store.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| SecretError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| SecretError::Hash(e.to_string()))?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| SecretError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string `phc`.
///
/// The parameters are taken from `phc`, so hashes written with older
/// parameters keep working. A malformed hash, an unknown algorithm or
/// parameters beyond sane bounds are simply `false`; this never panics.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > VERIFY_MAX_M_COST_KIB
        || params.t_cost() > VERIFY_MAX_T_COST
        || params.p_cost() > VERIFY_MAX_P_COST
    {
        return false;
    }
    // Argon2's verifier re-hashes with the algorithm, version and parameters
    // named in `hash` and compares in constant time.
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// Spends as long as a real [`verify_password`] does, for a login with an
/// unknown username, so response times do not tell which usernames exist.
///
/// The hash it verifies against is computed once, on the first call.
pub fn dummy_verify(password: &str) {
    static DUMMY_HASH: OnceLock<Option<String>> = OnceLock::new();
    let hash = DUMMY_HASH.get_or_init(|| {
        let mut phrase = [0u8; 16];
        OsRng.unwrap_err().fill_bytes(&mut phrase);
        hash_password(&hex::encode(phrase)).ok()
    });
    if let Some(hash) = hash {
        std::hint::black_box(verify_password(hash, password));
    }
}

/// A freshly generated API token.
///
/// `secret` is shown to its owner once; only `hash` (and `prefix`, for
/// display) is stored. `Debug` never prints the secret.
pub struct NewToken {
    /// The full token, `ta_` followed by 40 base62 characters.
    pub secret: String,
    /// Hex SHA-256 of `secret`, as [`hash_token`] computes it.
    pub hash: String,
    /// The first 10 characters of `secret`, to tell tokens apart in a list.
    pub prefix: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("secret", &"<redacted>")
            .field("hash", &self.hash)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Generates a new API token: `ta_` plus 40 base62 characters from the
/// operating system's generator (about 238 bits of entropy).
///
/// # Panics
///
/// If the operating system cannot provide random bytes.
pub fn generate_token() -> NewToken {
    let secret = format!("{TOKEN_PREFIX}{}", random_base62(TOKEN_RANDOM_CHARS));
    let hash = hash_token(&secret);
    let prefix = secret.chars().take(TOKEN_DISPLAY_CHARS).collect();
    NewToken {
        secret,
        hash,
        prefix,
    }
}

/// Hex SHA-256 of a token, the form tokens are stored and looked up by.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `N` random bytes from the operating system's generator, e.g. for the
/// session cookie key.
///
/// # Panics
///
/// If the operating system cannot provide random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.unwrap_err().fill_bytes(&mut bytes);
    bytes
}

/// A random 20-character base62 password, e.g. for the demo admin.
///
/// # Panics
///
/// If the operating system cannot provide random bytes.
pub fn generate_password() -> String {
    random_base62(GENERATED_PASSWORD_CHARS)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `len` characters drawn uniformly from `[A-Za-z0-9]`.
fn random_base62(len: usize) -> String {
    OsRng
        .unwrap_err()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_base62(s: &str) -> bool {
        s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse battery staple"));
        assert!(!verify_password(&phc, "correct horse battery stapl"));
        assert!(!verify_password(&phc, ""));
    }

    #[test]
    fn same_password_hashes_differently() {
        let a = hash_password("password1").unwrap();
        let b = hash_password("password1").unwrap();
        assert_ne!(a, b, "salts must differ");
        assert!(verify_password(&a, "password1"));
        assert!(verify_password(&b, "password1"));
    }

    #[test]
    fn malformed_hashes_are_false() {
        let huge = "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                    aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$!!!",
            "$argon2id$v=19$m=0,t=0,p=0$c29tZXNhbHQ$aGFzaA",
            "$2b$12$abcdefghijklmnopqrstuuJ0r6HQ1O1Wvgx8iM6SYuNTRSJ1FqJyG",
            "$sha256$abc",
            huge,
        ] {
            assert!(!verify_password(phc, "password"), "{phc:?}");
        }
    }

    #[test]
    fn dummy_verify_runs_and_does_not_panic() {
        dummy_verify("whatever");
        dummy_verify("");
    }

    #[test]
    fn token_shape_and_hash() {
        let t = generate_token();
        assert_eq!(t.secret.len(), TOKEN_PREFIX.len() + 40);
        let random = t.secret.strip_prefix("ta_").unwrap();
        assert!(is_base62(random), "{random}");
        // 40 base62 characters carry 40 * log2(62) bits.
        assert!(40.0 * 62f64.log2() >= 230.0);
        assert_eq!(t.prefix, t.secret[..10]);
        assert!(t.prefix.starts_with("ta_"));
        assert_eq!(t.hash.len(), 64);
        assert!(
            t.hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(t.hash, hash_token(&t.secret));
        assert_ne!(generate_token().secret, t.secret);
    }

    #[test]
    fn token_hash_is_stable() {
        assert_eq!(hash_token("ta_test"), hash_token("ta_test"));
        assert_eq!(
            hash_token(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(hash_token("ta_a"), hash_token("ta_b"));
    }

    #[test]
    fn debug_of_new_token_hides_the_secret() {
        let t = generate_token();
        let debug = format!("{t:?}");
        let pretty = format!("{t:#?}");
        assert!(!debug.contains(&t.secret), "{debug}");
        assert!(!pretty.contains(&t.secret), "{pretty}");
        let random = &t.secret[TOKEN_PREFIX.len()..];
        assert!(!debug.contains(random));
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn random_bytes_and_passwords() {
        let a: [u8; 32] = random_bytes();
        let b: [u8; 32] = random_bytes();
        assert_ne!(a, b);
        let p = generate_password();
        assert_eq!(p.len(), 20);
        assert!(is_base62(&p));
        assert_ne!(p, generate_password());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
