//! Looking at what the farm's processes did: `/proc` (their memory, the
//! processes of a queue), files (secrets in them), and latency numbers.
//! Waiting and reading `/proc` come from the test kit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testarena_testkit::Farm;
pub use testarena_testkit::procs::{processes, read_lossy};
pub use testarena_testkit::wait_for;

/// Looks for every secret `farm` knows (the passwords, every token it
/// made, the cookie key) in everything it wrote or was answered; see
/// [`check_secrets_in`].
pub fn check_secrets(farm: &Farm) {
    check_secrets_in(&farm.home, &farm.dir.join("logs"), &farm.secrets());
}

/// Looks for `secrets` and the cookie key (raw, hex and base64, whole and
/// by halves) in every file under `logs` (the daemons' output and every
/// answer the farm got), every file under `home/queues/` and the database;
/// and checks that the cookie key and the database files are owner-only.
/// Panics with what leaked where.
pub fn check_secrets_in(home: &Path, logs: &Path, secrets: &[String]) {
    use std::os::unix::fs::PermissionsExt;
    let mut needles: Vec<(String, Vec<u8>)> = secrets
        .iter()
        .map(|s| {
            (
                format!("secret {:?}…", &s[..s.len().min(6)]),
                s.as_bytes().to_vec(),
            )
        })
        .collect();
    let key_path = home.join("cookie.key");
    let key = std::fs::read(&key_path).unwrap();
    assert_eq!(key.len(), 64);
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    for half in [&key[..], &key[..32], &key[32..]] {
        needles.push(("the cookie key".into(), half.to_vec()));
        let hex: String = half.iter().map(|b| format!("{b:02x}")).collect();
        needles.push(("the cookie key (hex)".into(), hex.into_bytes()));
        for engine in engines {
            let b64 = base64::Engine::encode(engine, half);
            // The first 40 characters are enough to be sure.
            needles.push((
                "the cookie key (base64)".into(),
                b64.as_bytes()[..40].to_vec(),
            ));
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(logs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    walk(&home.join("queues"), &mut files);
    for name in ["testarena.db", "testarena.db-wal"] {
        files.push(home.join(name));
    }
    let needles = Needles::new(needles);
    let started = Instant::now();
    let mut leaks = Vec::new();
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        if let Some(what) = needles.find(&bytes) {
            leaks.push(format!("{what} in {}", file.display()));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    for name in [
        "cookie.key",
        "testarena.db",
        "testarena.db-wal",
        "testarena.db-shm",
    ] {
        let path = home.join(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
        }
    }
    println!(
        "secrets: {} needles, {} files in {:.1} s, no leak; cookie key and database owner-only",
        needles.len(),
        files.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Live processes carrying `TESTARENA_QUEUE_ID=<queue_id>`.
pub fn queue_processes(queue_id: &str) -> Vec<i32> {
    let wanted = format!("TESTARENA_QUEUE_ID={queue_id} ");
    processes()
        .filter(|p| format!("{} ", p.environ).contains(&wanted))
        .map(|p| p.pid)
        .collect()
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
pub fn vm_kb(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    Needles::new(vec![(String::new(), needle.to_vec())])
        .find(haystack)
        .is_some()
}

/// Many byte strings looked for in one pass: positions are filtered by
/// their first two bytes through a table, so a 10 MB log costs one quick
/// scan even in an unoptimized test build.
pub struct Needles {
    needles: Vec<(String, Vec<u8>)>,
    /// Indexes of the needles starting with each pair of bytes.
    by_prefix: Vec<Vec<usize>>,
}

impl Needles {
    /// `(what, bytes)` pairs; every needle has at least two bytes.
    pub fn new(needles: Vec<(String, Vec<u8>)>) -> Self {
        let mut by_prefix = vec![Vec::new(); 1 << 16];
        for (i, (_, n)) in needles.iter().enumerate() {
            assert!(n.len() >= 2, "needle too short");
            by_prefix[usize::from(n[0]) << 8 | usize::from(n[1])].push(i);
        }
        Self { needles, by_prefix }
    }

    pub fn len(&self) -> usize {
        self.needles.len()
    }

    /// What the first needle found in `haystack` is.
    pub fn find(&self, haystack: &[u8]) -> Option<&str> {
        for i in 0..haystack.len().saturating_sub(1) {
            let candidates =
                &self.by_prefix[usize::from(haystack[i]) << 8 | usize::from(haystack[i + 1])];
            for &n in candidates {
                let (what, needle) = &self.needles[n];
                if haystack[i..].starts_with(needle) {
                    return Some(what);
                }
            }
        }
        None
    }
}

/// Percentile `p` (0 to 100) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}
