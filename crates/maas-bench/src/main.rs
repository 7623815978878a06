//! `maas-bench`: a load tool that drives any Matrix homeserver (maas, Synapse, …) through the
//! public Client-Server API only, so the same figures can be compared across servers.

mod cli;
mod client;
mod compare;
mod report;
mod runner;
mod scenarios;
mod stats;

use std::process::ExitCode;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{Cli, Scenario, loopback_url};
use crate::client::Homeserver;
use crate::runner::Runner;
use crate::scenarios::Ctx;

/// Idle connections kept per host: enough for the largest concurrency anyone runs here.
const POOL_SIZE: usize = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dropping `run` on a signal drops any spawned server, which kills it: no orphans.
    tokio::select! {
        code = run(cli) => match code {
            Ok(code) => code,
            Err(e) => {
                eprintln!("maas-bench: {e:#}");
                ExitCode::from(2)
            }
        },
        signal = interrupted() => {
            eprintln!("maas-bench: {signal}, stopping");
            ExitCode::from(130)
        }
    }
}

async fn interrupted() -> &'static str {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action still ends us; just never win the select.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Scenario::Compare(args) = &cli.scenario {
        let comparison = compare::run(&args.a, &args.b)?;
        println!("{}", serde_json::to_string_pretty(&comparison)?);
        if let Some(path) = &cli.global.json {
            report::append_json_line(path, &comparison)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let url = loopback_url(&cli.global.url)?;
    let mut runner = Runner::new(cli.global.clone());
    if let Scenario::Tenants(args) = &cli.scenario {
        runner.tenants(args).await;
    } else {
        let hs = Homeserver::new(url, cli.global.host.as_deref(), POOL_SIZE)?;
        let ctx = Ctx::new(
            hs,
            cli.global.registration_token.clone(),
            runner.max_seconds(runner::DEFAULT_MAX_SECONDS),
        );
        runner.run(&ctx, &cli.scenario).await;
    }
    runner.print_summary();
    if runner.failures().is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} scenario(s) failed", runner.failures().len());
        Ok(ExitCode::FAILURE)
    }
}
