//! Where the binaries under test are: `target/debug` or `target/release`
//! of this checkout (or `$CARGO_TARGET_DIR`), or a directory the caller
//! names; built with cargo when the caller asks.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext as _, Result};

/// A cargo build profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    /// The profile this code was built with: tests run the debug
    /// binaries, a release benchmark the release ones.
    pub fn current() -> Self {
        if cfg!(debug_assertions) {
            Self::Debug
        } else {
            Self::Release
        }
    }

    /// The directory under `target/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }
}

/// The daemons' executables.
#[derive(Debug, Clone)]
pub struct Bins {
    pub app: PathBuf,
    pub worker: PathBuf,
}

const HINT: &str = "build the workspace's binaries first (cargo build --workspace --bins)";

impl Bins {
    /// `testarena-app` and `testarena-worker` in `dir`; both must exist.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        let bins = Self {
            app: dir.join("testarena-app"),
            worker: dir.join("testarena-worker"),
        };
        for path in [&bins.app, &bins.worker] {
            if !path.is_file() {
                return Err(Error::Missing {
                    path: path.clone(),
                    hint: HINT.into(),
                });
            }
        }
        Ok(bins)
    }

    /// The binaries of `profile` in the target directory of this build.
    pub fn locate(profile: Profile) -> Result<Self> {
        Self::in_dir(&target_dir().join(profile.dir_name()))
    }

    /// The binaries of the profile this code was built with.
    pub fn of_this_build() -> Result<Self> {
        Self::locate(Profile::current())
    }

    /// Builds both daemons with cargo (`--release` for [`Profile::Release`]),
    /// then locates them. Cargo waits for the build directory's lock, so
    /// this is safe beside another build.
    pub fn build(profile: Profile) -> Result<Self> {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(crate::workspace_root()).args([
            "build",
            "-p",
            "testarena-api",
            "--bin",
            "testarena-app",
            "-p",
            "testarena-worker",
            "--bin",
            "testarena-worker",
        ]);
        if profile == Profile::Release {
            cmd.arg("--release");
        }
        let status = cmd.status().what(|| "running cargo build".into())?;
        if !status.success() {
            return Err(Error::Command {
                what: "cargo build of the daemons".into(),
                status,
                output: String::new(),
            });
        }
        Self::locate(profile)
    }
}

/// The target directory: the one this executable was built into (a test
/// runs from `target/<profile>/deps/`, a program from `target/<profile>/`),
/// else `$CARGO_TARGET_DIR`, else `target/` of this checkout.
pub fn target_dir() -> PathBuf {
    let is_profile = |d: &Path| {
        d.file_name()
            .is_some_and(|n| n == "debug" || n == "release")
    };
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent();
        if dir.is_some_and(|d| d.file_name().is_some_and(|n| n == "deps")) {
            dir = dir.and_then(Path::parent);
        }
        if let Some(profile_dir) = dir.filter(|d| is_profile(d))
            && let Some(target) = profile_dir.parent()
        {
            return target.to_owned();
        }
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => crate::workspace_root().join(dir),
        None => crate::workspace_root().join("target"),
    }
}
