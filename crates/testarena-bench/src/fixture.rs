//! The git repositories the benchmarks build from: the firmware fixture
//! (`tests/fixtures/make-repo.sh`) with a `bench` branch of generated
//! scenarios, and a large generated repository for the checkout benchmark.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// The branch of the fixture that holds the benchmark scenarios.
pub const BENCH_BRANCH: &str = "bench";
/// One `<run>true</run>` test (the fixture's own file).
pub const QUICK: &str = "scenarios/quick.xml";
/// `tests` `<run>true</run>` tests.
pub const MANY: &str = "scenarios/bench-many.xml";
/// One test that sleeps until it is aborted: its log is what SSE clients follow.
pub const FOLLOW: &str = "scenarios/bench-follow.xml";
/// The test of [`FOLLOW`].
pub const FOLLOW_TEST: &str = "follow";

/// git without any configuration of this machine, with a fixed identity.
fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "TestArena Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@testarena.invalid")
        .env("GIT_COMMITTER_NAME", "TestArena Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@testarena.invalid")
        .env("GIT_AUTHOR_DATE", "2024-02-01T12:00:00+00:00")
        .env("GIT_COMMITTER_DATE", "2024-02-01T12:00:00+00:00")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    cmd
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(())
}

/// The firmware fixture at `dest`, plus a `bench` branch with the
/// benchmark scenarios: [`MANY`] with `tests` tests.
pub fn firmware(dest: &Path, tests: usize) -> anyhow::Result<()> {
    testarena_testkit::repo::make_fixture(dest)?;
    let mut checkout = git(dest);
    checkout.args(["checkout", "-q", "-b", BENCH_BRANCH, "main"]);
    run(checkout, "git checkout")?;
    std::fs::write(dest.join(MANY), many_xml(tests))?;
    std::fs::write(
        dest.join(FOLLOW),
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="follow" timeout="600">
  <description>A test that runs until aborted; the bench appends to its log</description>
  <test name="{FOLLOW_TEST}" timeout="600">
    <run>sleep 600</run>
  </test>
</scenario>
"#
        ),
    )?;
    let mut add = git(dest);
    add.args(["add", MANY, FOLLOW]);
    run(add, "git add")?;
    let mut commit = git(dest);
    commit.args([
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "--no-verify",
        "-m",
        "Benchmark scenarios",
    ]);
    run(commit, "git commit")?;
    let mut back = git(dest);
    back.args(["checkout", "-q", "main"]);
    run(back, "git checkout main")
}

fn many_xml(tests: usize) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scenario name=\"many\" timeout=\"600\">\n  <description>Commands that pass at once: the orchestration overhead</description>\n",
    );
    for i in 1..=tests {
        xml.push_str(&format!(
            "  <test name=\"t{i:03}\" timeout=\"30\"><run>true</run></test>\n"
        ));
    }
    xml.push_str("</scenario>\n");
    xml
}

/// A bare repository at `dest` with `files` source files (about 2 KiB
/// each) and `commits` commits on `main`, each after the first changing
/// four files; it also holds [`QUICK`]. Made with `git fast-import`.
pub fn large(dest: &Path, files: usize, commits: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut init = git(dest);
    init.args(["init", "-q", "--bare", "-b", "main"]);
    run(init, "git init")?;
    let mut import = git(dest);
    import
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = import.spawn().context("running git fast-import")?;
    let mut stdin = std::io::BufWriter::new(child.stdin.take().context("fast-import stdin")?);
    let quick = std::fs::read(
        testarena_testkit::workspace_root()
            .join("tests/fixtures/firmware")
            .join(QUICK),
    )?;
    for c in 0..commits.max(1) {
        let message = format!("commit {c}");
        writeln!(stdin, "commit refs/heads/main\nmark :{}", c + 1)?;
        writeln!(
            stdin,
            "committer TestArena Bench <bench@testarena.invalid> {} +0000",
            1_700_000_000 + c * 60
        )?;
        writeln!(stdin, "data {}\n{message}", message.len())?;
        if c == 0 {
            writeln!(stdin, "M 100644 inline {QUICK}\ndata {}", quick.len())?;
            stdin.write_all(&quick)?;
            writeln!(stdin)?;
            for f in 0..files {
                write_file(&mut stdin, f, 0)?;
            }
        } else {
            writeln!(stdin, "from :{c}")?;
            for k in 0..4 {
                write_file(&mut stdin, (c * 7 + k * 131) % files.max(1), c)?;
            }
        }
    }
    stdin.flush()?;
    drop(stdin);
    let status = child.wait()?;
    if !status.success() {
        bail!("git fast-import failed: {status}");
    }
    Ok(())
}

/// File `f` as of commit `version`: C-like lines, different in every file.
fn write_file(out: &mut impl std::io::Write, f: usize, version: usize) -> anyhow::Result<()> {
    let mut text = format!("/* file {f}, version {version} */\n#include \"common.h\"\n\n");
    let mut x = (f as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version as u64;
    while text.len() < 2048 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!(
            "int f{f}_{:x}(int a) {{ return a * {} + {}; }}\n",
            x & 0xffff,
            x % 977,
            (x >> 20) % 10_007
        ));
    }
    writeln!(
        out,
        "M 100644 inline src/d{:02}/f{f:04}.c\ndata {}",
        f % 40,
        text.len()
    )?;
    out.write_all(text.as_bytes())?;
    writeln!(out)?;
    Ok(())
}
