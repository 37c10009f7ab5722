//! chainstead-sync-gate: holds services until their backend (bitcoind,
//! monerod, LND, an Electrum server) is synced. See the library docs and
//! docs/startup-ordering.md.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chainstead_sync_gate::gate::{self, CheckOutcome};
use chainstead_sync_gate::Manifest;
use clap::{Parser, Subcommand};

/// Holds services until their backend (bitcoind, monerod, LND, an Electrum
/// server) is synced.
#[derive(Parser, Debug)]
#[command(name = "chainstead-sync-gate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run as the service: report progress, write the flag once ready, keep
    /// monitoring. Exits 0 on SIGTERM, non-zero on a misconfiguration.
    Wait {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Probe once and print one line. Exit 0 ready, 1 not yet, 2 error.
    Check {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Validate the manifest offline (no network). Exit 0 valid, 2 invalid.
    Validate {
        #[arg(long)]
        manifest: PathBuf,
    },
}

/// How a successful run ends.
enum Exit {
    Ok,
    NotReady,
    Failed,
}

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::NotReady) => ExitCode::from(1),
        Ok(Exit::Failed) => ExitCode::from(2),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match cli.command {
        Command::Validate { manifest } => {
            let m = Manifest::load(&manifest)?;
            println!(
                "manifest {} is valid: gate {:?}, backend {}",
                manifest.display(),
                m.name,
                m.backend.kind()
            );
            Ok(Exit::Ok)
        }
        Command::Check { manifest } => {
            let m = Manifest::load(&manifest)?;
            let outcome = rt.block_on(gate::check(&m))?;
            Ok(match outcome {
                CheckOutcome::Ready(line) => {
                    println!("{line}");
                    Exit::Ok
                }
                CheckOutcome::NotYet(line) => {
                    println!("{line}");
                    Exit::NotReady
                }
                CheckOutcome::Error(line) => {
                    println!("{line}");
                    Exit::Failed
                }
            })
        }
        Command::Wait { manifest } => {
            let m = Manifest::load(&manifest)?;
            tracing::info!(
                "starting gate {:?} for {} (flag {}): {:?}",
                m.name,
                m.backend.kind(),
                m.flag_file.display(),
                m
            );
            rt.block_on(async {
                let shutdown = chainstead_common::shutdown::Shutdown::install()
                    .context("failed to install signal handlers")?;
                gate::wait(&m, shutdown).await
            })?;
            Ok(Exit::Ok)
        }
    }
}
