//! The board simulator as the tests start it: its own temporary folder
//! (the pty's symlink, the control socket, its "flash"), its own process
//! group, stopped by that group when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use testarena_testkit::wait_for;

#[derive(Debug)]
pub struct Sim {
    dir: tempfile::TempDir,
    child: Child,
}

impl Sim {
    pub fn script() -> String {
        testarena_testkit::workspace_root()
            .join("tests/fixtures/board-sim/board-sim")
            .to_string_lossy()
            .into_owned()
    }

    /// Starts a simulated board `name` in fault `mode`, booting what it is
    /// flashed with in the lx106 profile's QEMU.
    pub fn start(name: &str, mode: &str) -> Sim {
        let dir = tempfile::Builder::new()
            .prefix("board-sim-")
            .tempdir()
            .unwrap();
        let link = dir.path().join(format!("usb-Simulated_{name}-if00"));
        let sock = dir.path().join("ctl.sock");
        let mut cmd = Command::new("python3");
        cmd.arg(Self::script())
            .args(["serve", "--link"])
            .arg(&link)
            .arg("--socket")
            .arg(&sock)
            .args(["--fault", mode, "--"])
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
        let child = cmd.spawn().unwrap();
        wait_for(Duration::from_secs(10), "the simulator's pty", || {
            (link.exists() && sock.exists()).then_some(())
        });
        Sim { dir, child }
    }

    pub fn link(&self) -> String {
        self.dir
            .path()
            .join(
                std::fs::read_dir(self.dir.path())
                    .unwrap()
                    .filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .find(|n| n.to_string_lossy().starts_with("usb-"))
                    .unwrap(),
            )
            .to_string_lossy()
            .into_owned()
    }

    pub fn socket(&self) -> String {
        self.dir
            .path()
            .join("ctl.sock")
            .to_string_lossy()
            .into_owned()
    }

    /// Sends a control command (`fault none`, ...); panics unless `ok`.
    pub fn ctl(&self, args: &[&str]) {
        let out = Command::new("python3")
            .arg(Self::script())
            .arg("ctl")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.pid());
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
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
