//! chainstead-sync-gate: Holds services until their backend (bitcoind, monerod, LND, an Electrum server) is synced.

use std::process::ExitCode;

use clap::Parser;

/// Holds services until their backend (bitcoind, monerod, LND, an Electrum server) is synced.
///
/// Not implemented yet: this build only parses its command line.
#[derive(Parser, Debug)]
#[command(name = "chainstead-sync-gate", version)]
struct Cli {}

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let _cli = Cli::parse();
    tracing::error!("chainstead-sync-gate is not implemented yet");
    ExitCode::from(2)
}
