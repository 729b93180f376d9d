//! The board simulator (`tests/fixtures/board-sim`, a stand-in for a USB
//! board: a real pty bridged to real `qemu-system-xtensa` booting the
//! lx106 fixture) as the tests and the benchmarks start it: the pty's
//! symlink and the control socket in a temporary folder of its own, the
//! simulator in a process group of its own, stopped by that group when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::wait::try_wait_for;

/// How `[[boards]]` tables made by [`BoardSim::board_toml`] differ.
#[derive(Debug, Clone)]
pub struct BoardToml<'a> {
    pub baud: u32,
    pub tags: &'a [&'a str],
    /// Adds a health check running `scenarios/unit.xml` on `main`.
    pub health: bool,
}

impl Default for BoardToml<'_> {
    fn default() -> Self {
        Self {
            baud: 115_200,
            tags: &[],
            health: false,
        }
    }
}

/// A running simulated board.
#[derive(Debug)]
pub struct BoardSim {
    dir: tempfile::TempDir,
    child: Child,
    link: PathBuf,
    socket: PathBuf,
}

impl BoardSim {
    /// The simulator's script.
    pub fn script() -> PathBuf {
        crate::workspace_root().join("tests/fixtures/board-sim/board-sim")
    }

    /// Starts a simulated board `name` in fault mode `fault` (`none`,
    /// `flash-fails`, `silent`, `reenumerate`, `dies`), booting what it
    /// is flashed with in the lx106 profile's QEMU; returns once its pty
    /// and socket exist.
    pub fn start(name: &str, fault: &str) -> Result<BoardSim> {
        let dir = tempfile::Builder::new()
            .prefix("board-sim-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "a folder for the board simulator".into(),
                source,
            })?;
        let link = dir.path().join(format!("usb-Simulated_{name}-if00"));
        let socket = dir.path().join("ctl.sock");
        let mut cmd = Command::new("python3");
        cmd.arg(Self::script())
            .args(["serve", "--link"])
            .arg(&link)
            .arg("--socket")
            .arg(&socket)
            .args(["--fault", fault, "--"])
            .args([
                "qemu-system-xtensa",
                "-M",
                "sim",
                "-cpu",
                "lx106",
                "-semihosting",
                "-nographic",
                "-serial",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
                "-kernel",
                "{image}",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|source| Error::Io {
            what: "starting the board simulator".into(),
            source,
        })?;
        let sim = BoardSim {
            dir,
            child,
            link,
            socket,
        };
        try_wait_for(Duration::from_secs(10), "the simulator's pty", || {
            Ok::<_, Error>((sim.link.exists() && sim.socket.exists()).then_some(()))
        })?;
        Ok(sim)
    }

    /// The stable symlink to the board's pty (what `/dev/serial/by-id/...` is).
    pub fn link(&self) -> &Path {
        &self.link
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The folder the simulator keeps its files in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(i32::MAX)
    }

    /// Sends a control command (`fault none`, `flash FILE`, `reset`).
    pub fn ctl(&self, args: &[&str]) -> Result<()> {
        let out = Command::new("python3")
            .arg(Self::script())
            .arg("ctl")
            .arg(&self.socket)
            .args(args)
            .output()
            .map_err(|source| Error::Io {
                what: "the board simulator's ctl".into(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Command {
                what: format!("board-sim ctl {}", args.join(" ")),
                status: out.status,
                output: format!("\n{}", String::from_utf8_lossy(&out.stdout)),
            })
        }
    }

    /// A `[[boards]]` table for this board: flash and reset through the
    /// simulator's control socket.
    pub fn board_toml(&self, id: &str, how: &BoardToml<'_>) -> String {
        let s = Self::script().display().to_string();
        let sock = self.socket.display().to_string();
        let tags: Vec<String> = how.tags.iter().map(|t| format!("{t:?}")).collect();
        let mut t = format!(
            "\n[[boards]]\nid = {id:?}\ntarget = \"lx106\"\nserial = {serial:?}\nbaud = {baud}\n\
             flash = [\"python3\", {s:?}, \"ctl\", {sock:?}, \"flash\", \"{{build_dir}}/firmware.elf\"]\n\
             reset = [\"python3\", {s:?}, \"ctl\", {sock:?}, \"reset\"]\n\
             tags = [{tags}]\nflash_timeout_s = 20\nreenumerate_s = 3\n",
            serial = self.link.display().to_string(),
            baud = how.baud,
            tags = tags.join(", "),
        );
        if how.health {
            t.push_str(
                "health = { repo = \"firmware\", branch = \"main\", scenario = \"scenarios/unit.xml\", every_h = 0 }\n",
            );
        }
        t
    }
}

impl Drop for BoardSim {
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.pid());
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // QEMU runs in a session of its own: the simulator kills it on
        // SIGTERM; SIGKILL the group in case it could not.
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
