//! chainstead-exporter: see the library docs and docs/monitoring.md.

use std::path::PathBuf;
use std::process::ExitCode;

use chainstead_exporter::{server, Collector, Manifest};
use clap::{Parser, Subcommand};

/// Prometheus exporter for LND channels and HTLCs, monerod, Fulcrum and
/// bitcoind.
#[derive(Parser, Debug)]
#[command(name = "chainstead-exporter", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve /metrics until SIGTERM.
    Serve {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Validate the manifest offline. Exit 0 valid, 2 invalid.
    Validate {
        #[arg(long)]
        manifest: PathBuf,
    },
}

fn main() -> ExitCode {
    chainstead_common::logging::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { manifest } => {
            Manifest::load(&manifest)?;
            println!("{}: valid", manifest.display());
            Ok(())
        }
        Command::Serve { manifest } => {
            let m = Manifest::load(&manifest)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let listener = server::bind(m.listen_addr()?).await?;
                let collector = Collector::new(&m)?;
                tracing::info!(
                    "serving /metrics on {} (bitcoind: {}, monerod: {}, lnd: {}, fulcrum: {})",
                    m.listen,
                    m.bitcoind.is_some(),
                    m.monerod.is_some(),
                    m.lnd.is_some(),
                    m.fulcrum.is_some()
                );
                let mut shutdown = chainstead_common::shutdown::Shutdown::install()
                    .map_err(|e| anyhow::anyhow!("failed to install the signal handlers: {e}"))?;
                chainstead_common::notify::ready();
                server::serve(listener, collector, async move { shutdown.wait().await }).await
            })
        }
    }
}
