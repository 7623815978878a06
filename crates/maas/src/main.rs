//! The `maas` binary: parses the command line, runs `serve` or a client command on a tokio
//! runtime, and maps failures to `error: …` on stderr with a non-zero exit code.

mod allocator;
mod cli;
mod commands;
mod data_dir;
mod operator_client;
mod serve;
mod settings;
mod storage;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command};

/// How long a finished process waits for stray blocking tasks before exiting anyway.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_files_limit();
    allocator::tune();
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

/// Lifts the soft limit on open files to the hard limit, before any thread exists so every
/// thread shares it. Each loaded SQLite tenant holds a few descriptors (database, WAL, shared
/// memory, per connection), and the usual soft limit of 1024 would stop the server at a few
/// hundred active tenants. The platform logs the resulting limit when it starts; failing to
/// raise it is not fatal.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
        }
    }
}

/// API errors read `error: <errcode>: <message>`; others show their cause chain.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}
