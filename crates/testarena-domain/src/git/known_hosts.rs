//! The subset of OpenSSH's known_hosts format we honour: plain
//! `host[,host...] keytype base64 [comment]` lines, with `*`/`?` wildcards,
//! `!` negation, `[host]:port` for other ports than 22, and `@revoked`.
//! Hashed hosts (`|1|...`) and `@cert-authority` lines are skipped.

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Known,
    Revoked,
    /// The host is listed, with other keys only.
    Mismatch,
    /// Not listed; `hashed`: the file had hashed entries we could not read.
    Unknown {
        hashed: bool,
    },
}

/// How known_hosts names `host` at `port`.
pub(crate) fn host_id(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Looks `host` up in the file's `text`; `key_matches` compares a listed
/// key (the decoded SSH wire blob) with the one the server presented.
pub(crate) fn verify(
    text: &str,
    host: &str,
    port: u16,
    key_matches: impl Fn(&[u8]) -> bool,
) -> Verdict {
    let id = host_id(host, port);
    let (mut known, mut mismatch, mut hashed) = (false, false, false);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut hosts) = fields.next() else {
            continue;
        };
        let revoked = match hosts.strip_prefix('@') {
            Some("revoked") => true,
            Some(_) => continue,
            None => false,
        };
        if revoked {
            let Some(next) = fields.next() else { continue };
            hosts = next;
        }
        let (Some(_key_type), Some(key)) = (fields.next(), fields.next()) else {
            continue;
        };
        if hosts.starts_with("|1|") {
            hashed = true;
            continue;
        }
        if !hosts_match(hosts, &id) {
            continue;
        }
        let Some(blob) = base64_decode(key) else {
            continue;
        };
        let same = key_matches(&blob);
        if revoked {
            if same {
                return Verdict::Revoked;
            }
        } else if same {
            known = true;
        } else {
            mismatch = true;
        }
    }
    match (known, mismatch) {
        (true, _) => Verdict::Known,
        (false, true) => Verdict::Mismatch,
        (false, false) => Verdict::Unknown { hashed },
    }
}

/// OpenSSH pattern lists: a negated match excludes, else any match includes.
fn hosts_match(patterns: &str, id: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if glob(pattern.to_ascii_lowercase().as_bytes(), id.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `*` and `?` wildcards, with backtracking to the last `*`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Standard base64, padding optional; `None` on any other character.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
