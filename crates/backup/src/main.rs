//! chainstead-backup: Pushes LND's channel.backup and small config snapshots to every configured backup target.

use std::process::ExitCode;

use clap::Parser;

/// Pushes LND's channel.backup and small config snapshots to every configured backup target.
///
/// Not implemented yet: this build only parses its command line.
#[derive(Parser, Debug)]
#[command(name = "chainstead-backup", version)]
struct Cli {}

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let _cli = Cli::parse();
    tracing::error!("chainstead-backup is not implemented yet");
    ExitCode::from(2)
}
