//! chainstead-secrets: Loads the stack's secrets from OpenBao (or generates them locally) into per-service tmpfs directories.

use std::process::ExitCode;

use clap::Parser;

/// Loads the stack's secrets from OpenBao (or generates them locally) into per-service tmpfs directories.
///
/// Not implemented yet: this build only parses its command line.
#[derive(Parser, Debug)]
#[command(name = "chainstead-secrets", version)]
struct Cli {}

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let _cli = Cli::parse();
    tracing::error!("chainstead-secrets is not implemented yet");
    ExitCode::from(2)
}
