//! `testarena`: the command-line client of TestArena's REST API.
//!
//! So far it answers `health`; the full client (submit, status, logs,
//! abort, ...) is the CLI issue's work.
#![expect(
    clippy::print_stdout,
    reason = "a command-line client prints its answers"
)]

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use testarena_domain::api::Health;

#[derive(Debug, Parser)]
#[command(name = "testarena", version, about = "TestArena's command-line client")]
struct Cli {
    /// The server's base URL.
    #[arg(long, env = "TESTARENA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Is the server up? Prints the database state and the workers.
    Health,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Health => {
            let url = format!("{}/api/v1/health", cli.url.trim_end_matches('/'));
            let health: Health = ureq::get(&url)
                .call()
                .with_context(|| format!("cannot reach {url}"))?
                .body_mut()
                .read_json()
                .context("the server's answer is not TestArena's health JSON")?;
            println!(
                "status {} (database {}), version {}",
                health.status, health.database, health.version
            );
            for w in health.workers {
                println!(
                    "worker {} slots {} last seen {} running {}",
                    w.id,
                    w.slots,
                    w.last_seen,
                    w.running.join(",")
                );
            }
            Ok(())
        }
    }
}
