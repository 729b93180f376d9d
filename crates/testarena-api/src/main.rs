//! `testarena-app`: the API server, and the operator's sub-commands.
#![expect(
    clippy::print_stdout,
    reason = "operator sub-commands print their results"
)]

mod copy;

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use testarena_api::serve;
use testarena_api::submit::{self, ChildFetch};
use testarena_domain::config::Config;
use testarena_domain::{db, secret, store, telemetry, validate};

#[derive(Debug, Parser)]
#[command(
    name = "testarena-app",
    version,
    about = "TestArena's API server and dashboard"
)]
struct Cli {
    /// The config file (else $TESTARENA_CONFIG, else /etc/testarena/config.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and the dashboard (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the config and print the effective config.
    CheckConfig,
    /// Copy the database to FILE (a new file, 0600) while the app and the
    /// workers run, and check the copy (see docs/OPERATIONS.md for restore).
    Backup { file: PathBuf },
    /// Copy a SQLite farm (every table, ids kept, and the logs under
    /// `{home}/queues/`) into an empty PostgreSQL database, then compare the
    /// row counts and log bytes (see docs/OPERATIONS.md section 12).
    CopyDatabase {
        /// The SQLite database: a path or `sqlite://` URL (default: the
        /// config's `database`).
        #[arg(long)]
        from: Option<String>,
        /// The PostgreSQL database, `postgres://user@host/db`; the password
        /// from the URL, `--password-env`, `$PGPASSWORD` or `~/.pgpass`.
        #[arg(long)]
        to: String,
        /// The environment variable holding the target's password.
        #[arg(long)]
        password_env: Option<String>,
        /// The source farm's home, whose `queues/` holds the logs (default:
        /// the config's `home`).
        #[arg(long)]
        home: Option<PathBuf>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Clone or fetch the mirror of a configured repository (the server runs
    /// this for a mirror's first clone, to keep the clone's memory out of
    /// its own process).
    #[command(hide = true)]
    FetchMirror { repo: String },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required: never from argv).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Set a user's password, read from standard input.
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user: their tokens, sessions and Basic auth stop working at once.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    testarena_domain::git::init_socket_timeouts(std::time::Duration::from_secs(60))?;
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listen = config.server.listen.clone();
            let state = serve::prepare(config)?;
            state.fetcher.clone_in_child(ChildFetch {
                exe: std::env::current_exe().context("cannot find the testarena-app binary")?,
                config: cli.config.clone(),
            });
            let listener = std::net::TcpListener::bind(&listen)
                .with_context(|| format!("cannot listen on {listen}"))?;
            actix_web::rt::System::new().block_on(serve::run(state, listener))
        }
        Command::Migrate => {
            let location = config.database_location()?;
            let pool = db::open_pool(&location, config.pool_options(1))?;
            let mut conn = pool.get()?;
            let applied = db::run_migrations(&mut conn)?;
            db::ensure_schema(&mut conn)?;
            println!(
                "{applied} migration(s) applied to {location}; schema version {}",
                db::binary_schema_version()
            );
            Ok(())
        }
        Command::CheckConfig => {
            print!("{}", config.to_toml());
            print!("{}", testarena_domain::config::secrets_report(&config));
            eprintln!("config OK");
            Ok(())
        }
        Command::Backup { file } => {
            let location = config.database_location()?;
            let db::Location::Sqlite(path) = &location else {
                bail!("backup copies a SQLite file; back {location} up with pg_dump");
            };
            if !path.is_file() {
                bail!("no database at {}", path.display());
            }
            let pool = db::open_pool(&location, config.pool_options(1))?;
            let info = db::backup(&mut *pool.get()?, &file)?;
            println!(
                "backup of {} written to {} ({} bytes, integrity ok)",
                path.display(),
                file.display(),
                info.bytes
            );
            Ok(())
        }
        Command::CopyDatabase {
            from,
            to,
            password_env,
            home,
        } => {
            let from = match from {
                Some(from) => db::Location::parse(&from, None)?,
                None => config.database_location()?,
            };
            let args = copy::Args {
                from,
                to: db::Location::parse(&to, password_env.as_deref())?,
                home: home.unwrap_or_else(|| config.home.clone()),
            };
            print!("{}", copy::run(&args)?);
            Ok(())
        }
        Command::User(cmd) => user(&config, cmd),
        Command::FetchMirror { repo } => Ok(submit::fetch_mirror(&config, &repo)?),
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    let password = input.lines().next().unwrap_or("").to_owned();
    validate::password("password", &password)?;
    Ok(password)
}

fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let location = config.database_location()?;
    let pool = db::open_pool(&location, config.pool_options(1))?;
    if !location.is_postgres() {
        db::run_migrations(&mut *pool.get()?)?;
    }
    db::ensure_schema(&mut *pool.get()?)?;
    let mut conn = pool.get()?;
    let find = |conn: &mut db::DbConnection, name: &str| -> anyhow::Result<_> {
        store::user_by_name(conn, name)?.with_context(|| format!("no user {name:?}"))
    };
    match cmd {
        UserCommand::Add { name, admin, .. } => {
            validate::username("username", &name)?;
            let hash = secret::hash_password(&read_password()?)?;
            let user = store::create_user(&mut conn, &name, &hash, admin)?;
            println!(
                "created user {} (id {}){}",
                user.username,
                user.id,
                if admin { ", admin" } else { "" }
            );
        }
        UserCommand::Passwd { name, .. } => {
            let user = find(&mut conn, &name)?;
            let hash = secret::hash_password(&read_password()?)?;
            let changes = store::UserChanges {
                password_hash: Some(hash),
                ..Default::default()
            };
            store::update_user(&mut conn, user.id, &changes)?;
            println!("password of {name} changed");
        }
        UserCommand::List => {
            println!(
                "{:<6} {:<24} {:<6} {:<9} created",
                "id", "username", "admin", "disabled"
            );
            for u in store::list_users(&mut conn)? {
                println!(
                    "{:<6} {:<24} {:<6} {:<9} {}",
                    u.id,
                    u.username,
                    u.is_admin,
                    u.disabled,
                    u.created_at.and_utc().to_rfc3339()
                );
            }
        }
        UserCommand::Disable { name } | UserCommand::Enable { name } if name.is_empty() => {
            bail!("no user name")
        }
        UserCommand::Disable { name } => {
            let user = find(&mut conn, &name)?;
            let changes = store::UserChanges {
                disabled: Some(true),
                ..Default::default()
            };
            store::update_user(&mut conn, user.id, &changes)?;
            println!("{name} disabled");
        }
        UserCommand::Enable { name } => {
            let user = find(&mut conn, &name)?;
            let changes = store::UserChanges {
                disabled: Some(false),
                ..Default::default()
            };
            store::update_user(&mut conn, user.id, &changes)?;
            println!("{name} enabled");
        }
    }
    Ok(())
}
