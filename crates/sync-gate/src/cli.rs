//! The command line: parse with [`Cli`], run with [`run`]; `main` turns the
//! result into the exit status (docs/exit-codes.md).

use std::path::PathBuf;

use anyhow::Context;
use chainstead_common::exit::{Exit, Misconfigured};
use clap::{Parser, Subcommand};

use crate::gate::{self, CheckOutcome};
use crate::probe::ProbeError;
use crate::Manifest;

/// Holds services until their backend (bitcoind, monerod, LND, an Electrum
/// server) is synced.
#[derive(Parser, Debug)]
#[command(name = "chainstead-sync-gate", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run as the service: report progress, write the flag once ready, keep
    /// monitoring. Exits 0 on SIGTERM, 2 on a misconfiguration, 1 on
    /// another failure.
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

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
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
            Ok(Exit::Success)
        }
        Command::Check { manifest } => {
            let m = Manifest::load(&manifest)?;
            let outcome = rt.block_on(gate::check(&m))?;
            let (line, exit) = match outcome {
                CheckOutcome::Ready(line) => (line, Exit::Success),
                CheckOutcome::NotYet(line) => (line, Exit::Failure),
                // The documented scripting contract: a loop retries on 1 and
                // stops on 2, for every kind of error.
                CheckOutcome::Error(line) => (line, Exit::Invalid),
            };
            println!("{line}");
            Ok(exit)
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
                gate::wait(&m, shutdown).await.map_err(misconfigured)
            })
            .with_context(|| format!("gate {:?} stopped", m.name))?;
            Ok(Exit::Success)
        }
    }
}

/// A misconfiguration the probe found exits 2 (systemd then restarts the
/// gate with backoff and shows it failed); other failures exit 1.
fn misconfigured(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<ProbeError>() {
        Ok(ProbeError::Misconfig(inner)) => Misconfigured(inner).into(),
        Ok(other) => other.into(),
        Err(e) => e,
    }
}
