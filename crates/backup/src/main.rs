//! chainstead-backup: the command line; all work is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_backup::Cli::parse();
    chainstead_common::exit::finish(chainstead_backup::run(cli))
}
