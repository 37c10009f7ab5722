//! chainstead-sync-gate: holds services until their backend (bitcoind,
//! monerod, LND, an Electrum server) is synced. See the library docs and
//! docs/startup-ordering.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_sync_gate::cli::Cli::parse();
    chainstead_common::exit::finish(chainstead_sync_gate::cli::run(cli))
}
