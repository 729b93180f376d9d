//! `testarena`: the command-line client of TestArena's REST API.
//!
//! `main` parses the command line, runs the command and turns the outcome
//! into an exit code (see [`commands::Exit`]); errors are one line on
//! standard error, never a backtrace.

mod args;
mod client;
mod commands;
mod config;
mod output;
mod sse;

use std::process::ExitCode;

use clap::Parser as _;

use crate::commands::{Error, Exit};

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() {
                Exit::Trouble
            } else {
                Exit::Success
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let exit = match commands::run(cli) {
        Ok(exit) => exit,
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Success,
        Err(e) => {
            report(&e);
            Exit::Trouble
        }
    };
    ExitCode::from(exit as u8)
}

fn report(e: &Error) {
    eprintln!("error: {e}");
    if let Error::Client(e) = e
        && let Some(hint) = e.hint()
    {
        eprintln!("hint: {hint}");
    }
}
