//! `testarena-worker`: the worker daemon. Parses the arguments, loads the
//! config once and hands over to [`testarena_worker::daemon`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use testarena_domain::config::Config;

/// TestArena's worker: claims queues, builds, boots firmware, runs scenarios.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The config file (else $TESTARENA_CONFIG, else /etc/testarena/config.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line that says what to fix; no backtrace for a known cause.
            eprintln!("testarena-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    testarena_domain::telemetry::init();
    let config = Config::load(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let shutdown = testarena_worker::daemon::shutdown_on_signals()?;
        testarena_worker::daemon::run(config, shutdown).await
    });
    // A git fetch still running on the blocking pool must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(300));
    Ok(result?)
}
