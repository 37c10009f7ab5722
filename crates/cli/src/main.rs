//! chainstead: the operator's command. All work is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_cli::cli::Cli::parse();
    chainstead_common::exit::finish(chainstead_cli::cli::run(cli))
}
