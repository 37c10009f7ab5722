//! chainstead-secrets: the command line; the work is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_secrets::cli::Cli::parse();
    chainstead_common::exit::finish(chainstead_secrets::cli::run(cli))
}
