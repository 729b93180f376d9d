//! What the app remembers between requests about credentials: recent
//! Basic verifications (so polling clients do not pay argon2 each time) and
//! failed sign-ins per client address. A leaf below `auth` and `state`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use testarena_domain::models::UserRow;
use testarena_domain::secret;

use crate::error::ApiError;

/// How long a successful Basic verification is remembered.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 10_000;

/// Recent successful Basic verifications, so a client polling with Basic
/// auth does not pay argon2 on every request. An entry holds the password
/// hash it was verified against: a changed password misses.
#[derive(Debug, Default)]
pub struct BasicCache {
    entries: Mutex<HashMap<String, (i32, String, Instant)>>,
}

impl BasicCache {
    pub(crate) fn key(username: &str, password: &str) -> String {
        secret::hash_token(&format!("{username}\0{password}"))
    }

    pub(crate) fn hit(&self, key: &str, user: &UserRow) -> bool {
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries.get(key).is_some_and(|(id, hash, at)| {
            *id == user.id && *hash == user.password_hash && at.elapsed() < BASIC_CACHE_TTL
        })
    }

    pub(crate) fn insert(&self, key: String, user: &UserRow) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= BASIC_CACHE_MAX {
                entries.retain(|_, (_, _, at)| at.elapsed() < BASIC_CACHE_TTL);
                if entries.len() >= BASIC_CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(key, (user.id, user.password_hash.clone(), Instant::now()));
        }
    }
}

/// Failed sign-ins per client address in the last minute; past the limit
/// every attempt answers 429 until the oldest failure is a minute old.
#[derive(Debug)]
pub struct LoginLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// 429 when `ip` failed too often in the last minute.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        let Some(times) = failures.get_mut(&ip) else {
            return Ok(());
        };
        while times.front().is_some_and(|t| t.elapsed() >= WINDOW) {
            times.pop_front();
        }
        if times.is_empty() {
            failures.remove(&ip);
            return Ok(());
        }
        if times.len() >= self.per_minute as usize {
            return Err(ApiError::RateLimited(
                "too many failed sign-ins from this address; wait a minute".into(),
            ));
        }
        Ok(())
    }

    pub fn failed(&self, ip: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() > 100_000 {
                failures.retain(|_, t| t.back().is_some_and(|t| t.elapsed() < WINDOW));
            }
            let times = failures.entry(ip).or_default();
            times.push_back(Instant::now());
            while times.len() > self.per_minute as usize {
                times.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_counts_failures_per_address() {
        let limiter = LoginLimiter::new(3);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        for _ in 0..3 {
            limiter.check(a).unwrap();
            limiter.failed(a);
        }
        assert!(matches!(limiter.check(a), Err(ApiError::RateLimited(_))));
        limiter.check(b).unwrap();
    }
}
