//! Hosts of a lab test on one machine: network namespaces made with
//! iproute2, each joined to this one by a veth pair, so a worker in one
//! reaches PostgreSQL only over its link, and `ip link set down` is a real
//! partition. Needs root. Dropping a [`NetNs`] deletes it (and its veth).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, IoContext as _, Result, or_panic};

/// One namespace and its link: `host_addr` (this side, where PostgreSQL
/// listens) and `ns_addr` (inside) on a /30 of their own.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
    /// The veth end in this namespace: what a partition takes down.
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    pub ns_addr: Ipv4Addr,
}

/// True when this process may make namespaces (root with `ip` on PATH).
pub fn available() -> bool {
    nix::unistd::geteuid().is_root()
        && Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .what(|| format!("running ip {args:?}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            what: format!("ip {args:?}"),
            status: out.status,
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl NetNs {
    /// The next namespace of this process: named after the pid and a
    /// counter, so that tests running at once never share a name, on
    /// `10.<pid-derived>.<counter>.0/30`.
    pub fn make() -> NetNs {
        or_panic(Self::try_make())
    }

    pub fn try_make() -> Result<NetNs> {
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let index = NEXT.fetch_add(1, Ordering::Relaxed);
        if index == 0 || index > 250 {
            return Err(Error::Other(
                "more than 250 namespaces in one process".into(),
            ));
        }
        let pid = std::process::id();
        let name = format!("ta{pid}n{index}");
        let host_if = format!("ta{}h{index}", pid % 100_000);
        let net = u8::try_from(100 + pid % 100).unwrap_or(100);
        let ns = NetNs {
            host_addr: Ipv4Addr::new(10, net, index, 1),
            ns_addr: Ipv4Addr::new(10, net, index, 2),
            name,
            host_if,
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on, Drop removes what was made.
        let peer = format!("{}p", ns.host_if);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &ns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_addr),
            "dev",
            &ns.host_if,
        ])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", ns.name.as_str()];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{}/30", ns.ns_addr), "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The file a process joins with setns (`Setup::worker_netns`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Takes the link down (a partition) or brings it back up.
    pub fn set_link(&self, up: bool) {
        or_panic(ip(&[
            "link",
            "set",
            &self.host_if,
            if up { "up" } else { "down" },
        ]));
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth end inside it, and with
        // it the pair; the host end goes too, explicitly in case a process
        // still holds the namespace open.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// `cmd` on a "host" of its own: in the network namespace `netns` (a
/// `/run/netns/<name>` file), and in a PID namespace with its own `/proc`
/// (and so a mount namespace), where no other host's daemon sees or kills
/// its processes. `tini` is that namespace's init: it reaps what the
/// daemon's children leave and forwards signals to it. The command is
/// `unshare --pid --fork --mount-proc --kill-child -- tini -- cmd`;
/// `unshare` ignores SIGTERM, so such a daemon is stopped through its
/// process group (as `Farm::stop` does), and SIGKILL to `unshare` ends the
/// whole namespace.
pub fn own_host(cmd: &Command, netns: &Path) -> Result<Command> {
    let file = File::open(netns).what(|| format!("opening {}", netns.display()))?;
    let mut host = Command::new("unshare");
    host.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
        .args(["tini", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => host.env(key, value),
            None => host.env_remove(key),
        };
    }
    join_netns(&mut host, file);
    Ok(host)
}

/// Makes `cmd`'s child enter the network namespace `netns` before it execs.
#[expect(unsafe_code, reason = "pre_exec: setns between fork and exec")]
fn join_netns(cmd: &mut Command, netns: File) {
    // SAFETY: setns is one system call, async-signal-safe; the closure
    // allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
}
