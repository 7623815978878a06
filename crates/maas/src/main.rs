//! The `maas` binary: parses the command line, runs `serve` or a client command on a tokio
//! runtime, and maps failures to `error: …` on stderr with a non-zero exit code.

mod cli;
mod commands;
mod data_dir;
mod operator_client;
mod serve;
mod settings;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command};

/// How long a finished process waits for stray blocking tasks before exiting anyway.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::anyhow!("cannot start the async runtime: {error}")),
    };
    let result = runtime.block_on(run(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, &args).await,
        command => commands::run(&cli.global, command).await,
    }
}

/// API errors read `error: <errcode>: <message>`; others show their cause chain.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}
