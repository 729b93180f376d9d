//! The processes of this machine as `/proc` shows them: how the kit finds
//! what a farm's queues left running (their argv or environment carries
//! the farm's directory).

use std::path::Path;

/// A live process (zombies are left out).
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    /// Arguments joined by spaces.
    pub cmdline: String,
    /// `NAME=value` pairs joined by spaces.
    pub environ: String,
}

/// Every live process this user may read.
pub fn processes() -> impl Iterator<Item = Proc> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let state = stat.rsplit(')').next()?.trim_start().chars().next()?;
            if state == 'Z' || state == 'X' {
                return None;
            }
            let read = |name: &str| {
                let bytes = std::fs::read(entry.path().join(name)).unwrap_or_default();
                String::from_utf8_lossy(&bytes).replace('\0', " ")
            };
            Some(Proc {
                pid,
                cmdline: read("cmdline"),
                environ: read("environ"),
            })
        })
}

/// Whether `pid` is alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// A file's text, lossily; empty when it cannot be read.
pub fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
