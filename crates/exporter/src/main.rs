//! chainstead-exporter: see the library docs and docs/monitoring.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_exporter::cli::Cli::parse();
    chainstead_common::exit::finish(chainstead_exporter::cli::run(cli))
}
