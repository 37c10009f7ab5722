//! chainstead: the operator's command. See [`chainstead_cli::cli`] and
//! docs/access.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_cli::cli::Cli::parse();
    chainstead_common::exit::finish(chainstead_cli::cli::run(cli))
}
