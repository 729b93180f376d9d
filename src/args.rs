//! The command line: global options and every sub-command (clap derive).

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "testarena",
    version,
    about = "TestArena's command-line client",
    after_help = "Exit codes: 0 passed (or done), 1 failed, 2 error, 3 aborted, \
                  4 usage, connection, auth or API problem."
)]
pub struct Cli {
    /// The server's base URL [default: the config file's, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "TESTARENA_URL", value_name = "URL")]
    pub url: Option<String>,
    /// An API token [default: the config file's].
    #[arg(
        long,
        global = true,
        env = "TESTARENA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit a queue: a branch and the scenarios to run on it.
    Submit(Submit),
    /// Show a queue with its tasks and test results.
    Status {
        id: String,
        /// Follow the queue until it ends; exit with its verdict.
        #[arg(long)]
        wait: bool,
    },
    /// List queues, newest first.
    List(List),
    /// Print a queue's logs, or follow them live.
    Logs(Logs),
    /// Abort queues (immediate while waiting; the worker stops a running one).
    Abort {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete queues and their files (waiting or ended ones).
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run a queue again: same branch, commit, target and scenarios.
    Rerun {
        id: String,
        /// Only the tasks, and in them the tests, that did not pass.
        #[arg(long)]
        failed_only: bool,
        /// Make this many queues (1 to 20), e.g. to settle whether a failure is flaky.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
        count: Option<u32>,
        /// Run the branch's tip instead of the commit the queue ran.
        #[arg(long)]
        tip: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The tests run in the last 30 days: flaky, failing, slow ones.
    Tests {
        /// Only this repository's tests.
        #[arg(long)]
        repo: Option<String>,
        /// Count only runs on this branch.
        #[arg(long)]
        branch: Option<String>,
        /// flaky, failures, slowest or name.
        #[arg(long, default_value = "flaky")]
        sort: String,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
    },
    /// One test's runs, newest first.
    History {
        /// The test case's name (`unit`, `unit/test_fib_20`).
        name: String,
        /// The scenario's path.
        #[arg(long, short)]
        scenario: String,
        /// The repository (its name in the farm's config).
        #[arg(long)]
        repo: String,
        /// Only runs on this branch.
        #[arg(long)]
        branch: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
    },
    /// Download a queue's results as JUnit XML.
    Junit {
        id: String,
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Personal API tokens.
    #[command(subcommand)]
    Tokens(Tokens),
    /// User accounts (admins only).
    #[command(subcommand)]
    Users(Users),
    /// Is the server up? The database and the workers.
    Health,
    /// The farm's boards: status, health, worker, tags, current queue.
    Boards,
    /// Who the token belongs to.
    Whoami,
    /// Create a token with your password and save it in the config file.
    Login(Login),
    /// Revoke the saved token and remove it from the config file.
    Logout,
}

#[derive(Debug, Args)]
pub struct Submit {
    /// The branch to build and test.
    pub branch: String,
    /// Run this commit of the branch's history (a full sha or at least 7 of
    /// its hex digits) [default: the branch's tip when submitted].
    #[arg(long, value_name = "SHA", value_parser = parse_commit)]
    pub commit: Option<String>,
    /// A scenario file of the repository, e.g. scenarios/unit.xml (repeat for more).
    #[arg(short, long = "scenario", value_name = "PATH", required = true)]
    pub scenarios: Vec<String>,
    /// The repository's name in the server's config [default: the first].
    #[arg(long)]
    pub repo: Option<String>,
    /// The target to build for [default: the server's].
    #[arg(long)]
    pub target: Option<String>,
    /// Higher runs first, -1000 to 1000 [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Time limit from start: seconds, or a number with s, m, h or d.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<i32>,
    /// The queue's id [default: made up by the server].
    #[arg(long)]
    pub id: Option<String>,
    /// Run on a board instead of QEMU: `any` or a board id.
    #[arg(long, value_name = "ID")]
    pub board: Option<String>,
    /// A tag the board must have (repeat for more; implies --board any).
    #[arg(long = "board-tag", value_name = "TAG")]
    pub board_tags: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Follow the queue until it ends, printing each test's verdict;
    /// exit 0 passed, 1 failed, 2 error, 3 aborted.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct List {
    /// Only queues in this status (waiting, running, passed, failed, error, aborted).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this user's queues.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only queues of this branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// Queues per page, 1 to 200.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Start after this cursor (the `next` of a previous page).
    #[arg(long, conflicts_with = "all")]
    pub before: Option<String>,
    /// Page through every queue.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct Logs {
    pub id: String,
    /// One test's log: TASK/TEST, a test name alone when only one task has
    /// it, or a file path such as build.log [default: every log].
    #[arg(long, short = 't', value_name = "TEST")]
    pub test: Option<String>,
    /// Follow live until the queue ends.
    #[arg(short, long)]
    pub follow: bool,
    /// List the queue's files instead.
    #[arg(long, conflicts_with_all = ["test", "follow"])]
    pub list: bool,
}

#[derive(Debug, Subcommand)]
pub enum Tokens {
    /// Your tokens (`--all`: everyone's, for admins).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Create a token; its secret is shown only now.
    Create { name: String },
    /// Revoke a token by its id.
    Revoke { id: u32 },
}

#[derive(Debug, Subcommand)]
pub enum Users {
    /// Every user.
    List,
    /// Add a user; asks for the password.
    Add {
        username: String,
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set a user's password.
    Passwd {
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Stop a user from signing in (their tokens stop working too).
    Disable { username: String },
    /// Let a disabled user sign in again.
    Enable { username: String },
    /// Make a user an admin (`--revoke`: no longer one).
    Admin {
        username: String,
        #[arg(long)]
        revoke: bool,
    },
    /// Delete a user.
    Delete { username: String },
}

#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from standard input (one line) instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct Login {
    /// Your username [default: asked, or $USER].
    #[arg(short, long)]
    pub user: Option<String>,
    /// The new token's name [default: testarena-cli@HOST].
    #[arg(long)]
    pub token_name: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Seconds, or a number with a unit: `90`, `90s`, `30m`, `2h`, `1d`.
/// A commit as the API takes it: 7 to 40 hex digits.
pub fn parse_commit(s: &str) -> Result<String, String> {
    let s = s.trim();
    if (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_owned())
    } else {
        Err("a commit is 7 to 40 hex digits (a full sha or its start)".into())
    }
}

pub fn parse_duration(s: &str) -> Result<i32, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 600, 90s, 30m, 2h)"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("unknown unit {unit:?} (use s, m, h or d)")),
    };
    i32::try_from(n.saturating_mul(scale)).map_err(|_| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86400));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999").is_err());
    }

    #[test]
    fn submit_takes_repeated_scenarios() {
        let cli = Cli::try_parse_from([
            "testarena",
            "submit",
            "main",
            "-s",
            "a.xml",
            "--scenario",
            "b.xml",
            "--wait",
            "--priority",
            "-5",
        ])
        .unwrap();
        let Command::Submit(s) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(s.scenarios, ["a.xml", "b.xml"]);
        assert_eq!(s.priority, Some(-5));
        assert!(s.wait.wait);
        assert_eq!(s.commit, None);
    }

    #[test]
    fn commits_are_7_to_40_hex_digits() {
        let cli = Cli::try_parse_from([
            "testarena",
            "submit",
            "main",
            "-s",
            "a.xml",
            "--commit",
            "AbC1234",
        ])
        .unwrap();
        let Command::Submit(s) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(s.commit.as_deref(), Some("AbC1234"));
        let full = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(parse_commit(full).as_deref(), Ok(full));
        for bad in [
            "abc123",
            "main",
            "HEAD~1",
            "0123456789abcdef0123456789abcdef012345678",
            "g123456",
        ] {
            assert!(parse_commit(bad).is_err(), "{bad:?}");
        }
    }
}
