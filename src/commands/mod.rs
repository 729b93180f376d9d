//! The sub-commands: each takes the parsed arguments and a [`Ctx`], talks
//! to the API and prints, and says how the process should exit.

mod account;
mod boards;
mod follow;
mod history;
mod logs;
mod queues;
mod view;

use std::io::{self, BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use testarena_wire::status::Status;

use crate::args::{Cli, Command};
use crate::client::{Auth, Client, ClientError};
use crate::config::{self, Config, ConfigError};
use crate::output::Out;

/// How the process ends, the contract for CI jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done, or the queue passed.
    Success = 0,
    /// The queue failed: the code under test failed.
    Failed = 1,
    /// The queue ended in error: the farm failed.
    Error = 2,
    /// The queue was aborted (or deleted before it ended).
    Aborted = 3,
    /// Bad usage, no server, refused credentials, or any API error.
    Trouble = 4,
}

impl Exit {
    /// The exit of a queue that ended in `status`.
    pub fn of(status: Status) -> Self {
        match status {
            Status::Passed => Exit::Success,
            Status::Failed => Exit::Failed,
            Status::Aborted | Status::Skipped => Exit::Aborted,
            Status::Error | Status::Waiting | Status::Running => Exit::Error,
        }
    }
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Writing the answer failed (a closed pipe is not worth a message).
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// What every command works with.
#[derive(Debug)]
pub struct Ctx {
    pub client: Client,
    pub out: Out,
    /// The config file's path and what it held.
    pub config_path: Option<PathBuf>,
    pub config: Config,
    /// The URL in force (flag, environment, file or default).
    pub url: String,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Runs the command line.
pub fn run(cli: Cli) -> Result<Exit> {
    let config_path = config::path().ok();
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let (url, token) = config::resolve(cli.url.as_deref(), cli.token.as_deref(), &config);
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::Usage(format!(
            "the URL {url:?} must start with http:// or https://"
        )));
    }
    let auth = token.map_or(Auth::None, Auth::Bearer);
    let mut ctx = Ctx {
        client: Client::new(&url, auth),
        out: Out::stdout(cli.json),
        config_path,
        config,
        url,
    };
    match cli.command {
        Command::Submit(args) => queues::submit(&mut ctx, args),
        Command::Status { id, wait } => queues::status(&mut ctx, &id, wait),
        Command::List(args) => queues::list(&mut ctx, &args),
        Command::Logs(args) => logs::logs(&mut ctx, &args),
        Command::Abort { ids } => queues::abort(&mut ctx, &ids),
        Command::Delete { ids } => queues::delete(&mut ctx, &ids),
        Command::Tests {
            repo,
            branch,
            sort,
            limit,
        } => history::tests(&mut ctx, repo.as_deref(), branch.as_deref(), &sort, limit),
        Command::History {
            name,
            scenario,
            repo,
            branch,
            limit,
        } => history::history(&mut ctx, &repo, &scenario, &name, branch.as_deref(), limit),
        Command::Rerun {
            id,
            failed_only,
            count,
            tip,
            wait,
        } => {
            let opts = testarena_wire::api::RerunRequest {
                failed_only,
                same_commit: !tip,
                count,
            };
            queues::rerun(&mut ctx, &id, opts, wait.wait)
        }
        Command::Junit { id, output } => queues::junit(&mut ctx, &id, output.as_deref()),
        Command::Tokens(cmd) => account::tokens(&mut ctx, cmd),
        Command::Users(cmd) => account::users(&mut ctx, cmd),
        Command::Health => account::health(&mut ctx),
        Command::Boards => boards::boards(&mut ctx),
        Command::Whoami => account::whoami(&mut ctx),
        Command::Login(args) => account::login(&mut ctx, &args),
        Command::Logout => account::logout(&mut ctx),
    }
}

/// A password: one line of standard input, or asked on the terminal
/// without echo (twice when `confirm`).
fn read_password(from_stdin: bool, prompt: &str, confirm: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Error::io("reading the password from standard input"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        if !io::stdin().is_terminal() {
            return Err(Error::Usage(
                "no terminal to ask for the password: use --password-stdin".into(),
            ));
        }
        let first =
            rpassword::prompt_password(prompt).map_err(Error::io("reading the password"))?;
        if confirm {
            let again =
                rpassword::prompt_password("Again: ").map_err(Error::io("reading the password"))?;
            if again != first {
                return Err(Error::Usage("the passwords differ".into()));
            }
        }
        first
    };
    if password.is_empty() {
        return Err(Error::Usage("the password is empty".into()));
    }
    Ok(password)
}
