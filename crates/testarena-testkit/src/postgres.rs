//! Throwaway PostgreSQL servers for the tests that run on PostgreSQL.
//!
//! A [`Cluster`] is Debian's PostgreSQL in a temporary directory: `initdb`
//! (C collation, so `ORDER BY` on text matches SQLite's byte order), then
//! `postgres` itself as a child in its own process group, listening on
//! 127.0.0.1 at a port from [`free_port`](crate::free_port), on a unix
//! socket in that directory and on any address [`Options::listen`] adds.
//! It has a role for the product, `testarena` (password random per
//! cluster, `CREATEDB`), and makes one empty [`Database`] per
//! [`Cluster::create_database`] call, dropped again with its handle.
//!
//! As root (CI), `initdb` and `postgres` refuse to run, so the directory is
//! given to `nobody:nogroup` and they run through `setpriv`; otherwise they
//! run as the current user. `psql` runs as the current user either way,
//! over the socket as the `postgres` superuser (trusted locally).
//!
//! The server never outlives the test process: its parent-death signal is
//! SIGINT (fast shutdown), set by `setpriv` after the change of user (the
//! kernel clears one set before). The kernel sends it when the *thread*
//! that spawned the server ends, and each test runs on its own thread, so
//! every server is spawned by one kit thread that lives as long as the
//! process. [`Cluster::shared`] (one per test process) is stopped and its
//! directory removed by an exit hook, as statics are never dropped; any
//! other cluster is stopped and removed when dropped.

use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Group, Pid, User, chown};

use crate::daemon::append;
use crate::error::{Error, IoContext as _, Result, or_panic};
use crate::procs::{alive, read_lossy};
use crate::wait::try_wait_for;

/// How long a server may take to accept connections.
const READY: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the group is killed.
const STOP: Duration = Duration::from_secs(30);
/// The product's role.
pub const ROLE: &str = "testarena";
/// Lines of the server log quoted when it fails.
const LOG_TAIL: usize = 30;
/// Environment that would point a libpq client elsewhere.
const PG_ENV: [&str; 9] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGOPTIONS",
];

/// What a [`Cluster`] listens on and allows.
#[derive(Debug, Clone)]
pub struct Options {
    /// Addresses besides 127.0.0.1 (a veth address in a network namespace).
    pub listen: Vec<IpAddr>,
    /// `max_connections`: tests open many pools.
    pub max_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            max_connections: 200,
        }
    }
}

impl Options {
    /// Listens on `addr` too (it must exist when the server starts).
    pub fn listen(mut self, addr: IpAddr) -> Self {
        self.listen.push(addr);
        self
    }

    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
}

/// The directory of PostgreSQL's programs: `pg_config --bindir` when it
/// holds `initdb` (Debian's `pg_config` does), else the highest
/// `/usr/lib/postgresql/<major>/bin` (Debian keeps `initdb` off `PATH`).
pub fn bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(find_bin_dir)
        .clone()
        .ok_or_else(|| Error::Missing {
            path: "/usr/lib/postgresql/<major>/bin/initdb".into(),
            hint: "install Debian's postgresql package (pg_config --bindir names no initdb either)"
                .into(),
        })
}

fn find_bin_dir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| has_initdb(d));
    from_pg_config.or_else(|| {
        std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let major: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                has_initdb(&bin).then_some((major, bin))
            })
            .max_by_key(|(major, _)| *major)
            .map(|(_, bin)| bin)
    })
}

/// What `psql` needs to reach a cluster as superuser, and the product's
/// password: shared by the cluster and its databases (which drop
/// themselves through it).
struct Access {
    bin: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    password: String,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No password: secrets never appear in Debug output.
        f.debug_struct("Access")
            .field("socket_dir", &self.socket_dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Runs `sql` (statements one by one, stopping at the first error)
    /// in database `db` and returns its rows, `-At` style: one line per
    /// row, columns separated by `|`, no trailing newline.
    fn psql(&self, db: &str, sql: &str) -> Result<String> {
        // The role's password stays out of error messages.
        let shown = first_line(sql).replace(&self.password, "<password>");
        let what = format!("psql -d {db} ({shown})");
        let mut cmd = client(&self.bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().what(|| format!("starting {what}"))?;
        let input = child.stdin.take();
        // Written from a thread: a large answer must not block the writer.
        let sql = sql.to_owned();
        let writer = std::thread::spawn(move || input.map(|mut i| i.write_all(sql.as_bytes())));
        let out = child
            .wait_with_output()
            .what(|| format!("waiting for {what}"))?;
        if let Ok(Some(Err(e))) = writer.join() {
            return Err(Error::Io {
                what: format!("writing to {what}"),
                source: e,
            });
        }
        if !out.status.success() {
            return Err(Error::Command {
                what,
                status: out.status,
                output: format!("\n{}", String::from_utf8_lossy(&out.stderr).trim_end()),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    fn url(&self, host: IpAddr, db: &str, password: bool) -> String {
        let host = match host {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let secret = if password {
            format!(":{}", self.password)
        } else {
            String::new()
        };
        format!("postgres://{ROLE}{secret}@{host}:{}/{db}", self.port)
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or("")
}

/// A libpq client command that ignores this environment's `PG*` settings.
fn client(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    cmd.env("PGCONNECT_TIMEOUT", "10");
    cmd
}

/// A running (or stopped) throwaway PostgreSQL server. See the module
/// documentation.
pub struct Cluster {
    access: Arc<Access>,
    dir: PathBuf,
    /// Removes `dir` when a non-shared cluster is dropped.
    temp: Option<tempfile::TempDir>,
    /// `(uid, gid)` of `nobody:nogroup` when running as root.
    run_as: Option<(u32, u32)>,
    options: Options,
    /// The postmaster, while it runs.
    server: Mutex<Option<Child>>,
    next_db: AtomicU64,
    shared: bool,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("port", &self.access.port)
            .field("pid", &self.pid())
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A new cluster, started; panics if it cannot be.
    pub fn new(options: Options) -> Cluster {
        or_panic(Self::try_new(options))
    }

    /// `initdb` in a new temporary directory, the server started and
    /// accepting connections, the `testarena` role created.
    pub fn try_new(options: Options) -> Result<Cluster> {
        let bin = bin_dir()?;
        let temp = tempfile::Builder::new()
            .prefix("testarena-pg-")
            .tempdir()
            .what(|| "creating a directory for PostgreSQL".into())?;
        let dir = temp.path().to_owned();
        let run_as = server_user()?;
        if let Some((uid, gid)) = run_as {
            chown(&dir, Some(uid.into()), Some(gid.into()))
                .map_err(|e| Error::Other(format!("chown nobody {}: {e}", dir.display())))?;
        }
        let cluster = Cluster {
            access: Arc::new(Access {
                bin,
                socket_dir: dir.clone(),
                port: crate::free_port()?,
                password: random_hex(16)?,
            }),
            dir,
            temp: Some(temp),
            run_as,
            options,
            server: Mutex::new(None),
            next_db: AtomicU64::new(1),
            shared: false,
        };
        cluster.initdb()?;
        cluster.try_start()?;
        cluster.try_psql(
            "postgres",
            &format!(
                "CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{}'",
                cluster.access.password
            ),
        )?;
        Ok(cluster)
    }

    /// The cluster of this test process, started on first use with the
    /// default [`Options`]; stopped and removed when the process exits.
    /// Tests that stop or restart a server start their own.
    pub fn shared() -> &'static Cluster {
        or_panic(Self::try_shared())
    }

    pub fn try_shared() -> Result<&'static Cluster> {
        let shared = SHARED.get_or_init(|| {
            let mut cluster = Self::try_new(Options::default()).map_err(|e| e.to_string())?;
            cluster.shared = true;
            at_exit(remove_shared);
            Ok(cluster)
        });
        shared
            .as_ref()
            .map_err(|e| Error::Other(format!("the shared PostgreSQL cluster: {e}")))
    }

    /// A new empty database owned by `testarena`, with a name used once.
    pub fn create_database(&self) -> Database {
        or_panic(self.try_create_database())
    }

    pub fn try_create_database(&self) -> Result<Database> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        self.try_psql(
            "postgres",
            // FILE_COPY: a copy of template1's files and a checkpoint,
            // cheap with fsync off; PostgreSQL 15's default (WAL_LOG)
            // writes the template through the WAL, ~5x slower here.
            &format!("CREATE DATABASE \"{name}\" OWNER {ROLE} STRATEGY FILE_COPY"),
        )?;
        Ok(Database {
            name,
            access: Arc::clone(&self.access),
        })
    }

    /// Runs `sql` as superuser in database `db` over the socket and returns
    /// its rows (`psql -At`: a line per row, columns joined by `|`).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        or_panic(self.try_psql(db, sql))
    }

    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String> {
        self.access.psql(db, sql)
    }

    pub fn port(&self) -> u16 {
        self.access.port
    }

    /// The cluster's directory: `data/`, `server.log`, the unix socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the unix socket is (libpq's `host` for a socket).
    pub fn socket_dir(&self) -> &Path {
        &self.access.socket_dir
    }

    /// The `testarena` role's password.
    pub fn password(&self) -> &str {
        &self.access.password
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.server).as_ref().map(Child::id)
    }

    /// Everything the server logged so far (across restarts).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program`, as `nobody` when running as root.
    fn as_server_user(&self, program: &str, pdeathsig: bool) -> Command {
        let program = self.access.bin.join(program);
        let mut cmd = if self.run_as.is_none() && !pdeathsig {
            Command::new(program)
        } else {
            let mut cmd = Command::new("setpriv");
            if let Some((uid, gid)) = self.run_as {
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups");
            }
            if pdeathsig {
                cmd.args(["--pdeathsig", "INT"]);
            }
            cmd.arg(program);
            cmd
        };
        // The caller's directory may be closed to `nobody`.
        cmd.current_dir(&self.dir);
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        cmd
    }

    fn initdb(&self) -> Result<()> {
        let mut cmd = self.as_server_user("initdb", false);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["--locale=C", "--encoding=UTF8", "--no-sync"]);
        let out = cmd.output().what(|| format!("starting {cmd:?}"))?;
        if !out.status.success() {
            return Err(Error::Command {
                what: format!("{cmd:?}"),
                status: out.status,
                output: format!(
                    "\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        if !self.options.listen.is_empty() {
            // Clients on the subnets of the extra addresses (the lab's
            // namespaces, over their veth), with the password like loopback.
            let hba = self.data_dir().join("pg_hba.conf");
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&hba)
                .what(|| format!("opening {}", hba.display()))?;
            std::io::Write::write_all(&mut file, b"host all all samenet scram-sha-256\n")
                .what(|| format!("writing {}", hba.display()))?;
        }
        Ok(())
    }

    /// Starts the server again (same directory, port and addresses) after
    /// [`Cluster::stop`]; nothing to do if it runs.
    pub fn start(&self) {
        or_panic(self.try_start());
    }

    pub fn try_start(&self) -> Result<()> {
        let mut server = lock(&self.server);
        if server.is_some() {
            return Ok(());
        }
        let mut listen = vec!["127.0.0.1".to_owned()];
        listen.extend(self.options.listen.iter().map(IpAddr::to_string));
        let mut cmd = self.as_server_user("postgres", true);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port().to_string()])
            .arg("-k")
            .arg(self.socket_dir())
            .arg("-c")
            .arg(format!("listen_addresses={}", listen.join(",")))
            .arg("-c")
            .arg(format!("max_connections={}", self.options.max_connections))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(append(&self.log_path())?)
            .stderr(append(&self.log_path())?)
            .process_group(0);
        let what = format!("postgres on 127.0.0.1:{}", self.port());
        let mut child = spawn_kept(cmd).what(|| format!("starting {what}"))?;
        match self.wait_ready(&mut child, &what) {
            Ok(()) => {
                *server = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = shut_down(child);
                Err(Error::Other(format!(
                    "{e}\n{} ends:\n{}",
                    self.log_path().display(),
                    self.log_tail()
                )))
            }
        }
    }

    /// Polls `pg_isready` on 127.0.0.1 until the server accepts
    /// connections, failing at once if it exits; then asks each extra
    /// address once (all are bound before the first accepts, and a failed
    /// bind is only a warning to PostgreSQL).
    fn wait_ready(&self, child: &mut Child, what: &str) -> Result<()> {
        let localhost = IpAddr::from([127, 0, 0, 1]);
        try_wait_for(READY, &format!("{what} to accept connections"), || {
            if let Some(status) = child.try_wait().what(|| format!("waiting for {what}"))? {
                return Ok::<_, Error>(Some(Err(Error::Other(format!(
                    "{what} exited ({status})"
                )))));
            }
            Ok(self.is_ready(localhost)?.then_some(Ok(())))
        })??;
        for &addr in &self.options.listen {
            if !self.is_ready(addr)? {
                return Err(Error::Other(format!(
                    "{what} does not accept connections on {addr}"
                )));
            }
        }
        Ok(())
    }

    /// Whether `pg_isready` finds the server accepting connections at
    /// `addr`.
    fn is_ready(&self, addr: IpAddr) -> Result<bool> {
        let isready = self.access.bin.join("pg_isready");
        let status = client(&isready)
            .arg("-q")
            .args(["-h", &addr.to_string(), "-p", &self.port().to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-t", "5"])
            .status()
            .what(|| format!("running {}", isready.display()))?;
        Ok(status.success())
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }

    /// Fast shutdown (SIGINT: open connections are cut, sessions rolled
    /// back) and waits for the postmaster to exit; the directory stays.
    pub fn stop(&self) {
        or_panic(self.try_stop());
    }

    pub fn try_stop(&self) -> Result<()> {
        match lock(&self.server).take() {
            Some(child) => shut_down(child),
            None => Ok(()),
        }
    }

    /// [`Cluster::stop`], then [`Cluster::start`]: same port, same data.
    pub fn restart(&self) {
        or_panic(self.try_restart());
    }

    pub fn try_restart(&self) -> Result<()> {
        self.try_stop()?;
        self.try_start()
    }

    /// A crash: SIGKILL to the postmaster's whole group at once (open
    /// connections break, nothing is written); [`Cluster::start`] then
    /// recovers from the WAL. With `synchronous_commit=off` the last
    /// commits before a crash (a fraction of a second) may be lost.
    pub fn crash(&self) {
        if let Some(mut child) = lock(&self.server).take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            let members = group_members(child.id());
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.wait();
            // Its backends are killed with it but may not be gone yet: a
            // new postmaster refuses shared memory they still hold.
            let _ = try_wait_for(STOP, "the crashed server's processes to go", || {
                Ok::<_, Error>((!members.iter().any(|&m| alive(m))).then_some(()))
            });
        }
    }

    /// The shared cluster's end: no panic, no waiting on a lock another
    /// thread may hold while the process exits.
    fn remove_at_exit(&self) {
        if let Ok(mut server) = self.server.try_lock()
            && let Some(child) = server.take()
        {
            let _ = shut_down(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.try_stop();
        // The temporary directory goes with `temp`.
        drop(self.temp.take());
    }
}

/// [`Cluster::shared`]'s cluster, once started.
static SHARED: OnceLock<std::result::Result<Cluster, String>> = OnceLock::new();

/// Stops the shared cluster and removes its directory when the process
/// exits (from `exit`, so after `main` or `process::exit`, not on a kill).
extern "C" fn remove_shared() {
    if let Some(Ok(cluster)) = SHARED.get() {
        // A panic must not unwind into C.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cluster.remove_at_exit()));
    }
}

/// Registers `hook` to run at process exit: C's `atexit`, as neither std
/// nor nix offers one (std links the C library, so it is there).
#[expect(unsafe_code, reason = "declaring and calling C's atexit")]
fn at_exit(hook: extern "C" fn()) {
    unsafe extern "C" {
        fn atexit(hook: extern "C" fn()) -> std::ffi::c_int;
    }
    // SAFETY: `hook` takes nothing, returns nothing and catches panics.
    unsafe {
        atexit(hook);
    }
}

/// SIGINT to the postmaster, its exit awaited; SIGKILL to its group if it
/// is still there after [`STOP`].
fn shut_down(mut child: Child) -> Result<()> {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let what = format!("postgres (pid {pid}) to exit after SIGINT");
    let _ = kill(pid, Signal::SIGINT);
    let exited = try_wait_for(STOP, &what, || child.try_wait().map(|s| s.map(|_| ())));
    if exited.is_err() {
        // Not yet reaped, so the group's id is still this one.
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = child.wait();
    }
    exited
}

/// One empty database of a [`Cluster`], dropped (`WITH (FORCE)`, best
/// effort) when this handle is.
pub struct Database {
    name: String,
    access: Arc<Access>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("url", &self.url_without_password())
            .finish()
    }
}

impl Database {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://testarena:<password>@127.0.0.1:<port>/<name>`.
    pub fn url(&self) -> String {
        self.url_via(IpAddr::from([127, 0, 0, 1]))
    }

    /// [`Database::url`] without the password (for logs, or with
    /// `PGPASSWORD`).
    pub fn url_without_password(&self) -> String {
        self.access
            .url(IpAddr::from([127, 0, 0, 1]), &self.name, false)
    }

    /// [`Database::url`] with `host` (an address of [`Options::listen`]).
    pub fn url_via(&self, host: IpAddr) -> String {
        self.access.url(host, &self.name, true)
    }

    /// The `testarena` role's password.
    pub fn password(&self) -> &str {
        &self.access.password
    }

    /// [`Cluster::psql`] in this database.
    pub fn psql(&self, sql: &str) -> String {
        or_panic(self.try_psql(sql))
    }

    pub fn try_psql(&self, sql: &str) -> Result<String> {
        self.access.psql(&self.name, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let _ = self.access.psql("postgres", &sql);
    }
}

/// `nobody:nogroup` when running as root (initdb and postgres refuse
/// root), else `None`.
fn server_user() -> Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name("nobody")
        .map_err(|e| Error::Other(format!("looking up user nobody: {e}")))?
        .ok_or_else(|| Error::Other("no user nobody to run PostgreSQL as".into()))?;
    let group = Group::from_name("nogroup")
        .map_err(|e| Error::Other(format!("looking up group nogroup: {e}")))?
        .ok_or_else(|| Error::Other("no group nogroup to run PostgreSQL as".into()))?;
    Ok(Some((user.uid.as_raw(), group.gid.as_raw())))
}

/// `bytes` random bytes from the kernel, in hex (safe in a URL and in SQL).
fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .what(|| "reading /dev/urandom".into())?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The processes of process group `pgid` (`/proc/<pid>/stat`'s 5th field).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // After the command's ")": state, ppid, pgrp.
            let pgrp: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()?;
            (pgrp == pgid).then_some(pid)
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from the kit's keeper thread, which lives as long as the
/// process: a parent-death signal fires when the spawning *thread* ends,
/// and a test's thread ends with the test.
fn spawn_kept(cmd: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<std::result::Result<mpsc::Sender<SpawnRequest>, String>> =
        OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-postgres-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(tx)
    });
    let gone = || std::io::Error::other("the keeper thread is gone");
    let keeper = keeper
        .as_ref()
        .map_err(|e| std::io::Error::other(format!("starting the keeper thread: {e}")))?;
    let (reply, answer) = mpsc::channel();
    keeper.send((cmd, reply)).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}
