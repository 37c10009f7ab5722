//! The command line: parse with [`Cli`], run with [`run`]; `main` turns the
//! result into the exit status (docs/exit-codes.md).

use std::path::PathBuf;

use anyhow::Context;
use chainstead_common::exit::Exit;
use clap::{Parser, Subcommand};

use crate::{server, Collector, Manifest};

/// Prometheus exporter for LND channels and HTLCs, monerod, Fulcrum and
/// bitcoind.
#[derive(Parser, Debug)]
#[command(name = "chainstead-exporter", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve /metrics until SIGTERM. Exit 0 on SIGTERM, 2 on a
    /// misconfiguration, 1 on another failure (the port is taken).
    Serve {
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
    match cli.command {
        Command::Validate { manifest } => {
            Manifest::load(&manifest)?;
            println!("manifest {} is valid", manifest.display());
            Ok(Exit::Success)
        }
        Command::Serve { manifest } => {
            let m = Manifest::load(&manifest)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the async runtime")?;
            rt.block_on(serve(m))?;
            Ok(Exit::Success)
        }
    }
}

async fn serve(m: Manifest) -> anyhow::Result<()> {
    let listener = server::bind(m.listen_addr()?).await?;
    let collector = Collector::new(&m)?;
    // The manifest holds addresses and paths only, never a secret value.
    tracing::info!("serving /metrics on {}: {m:?}", m.listen);
    let mut shutdown = chainstead_common::shutdown::Shutdown::install()
        .context("failed to install the signal handlers")?;
    chainstead_common::notify::ready();
    server::serve(listener, collector, async move { shutdown.wait().await }).await
}
