//! chainstead-upgrade-guard: guards a service's data across package
//! upgrades and rollbacks. See the library docs and docs/operations.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_upgrade_guard::cli::Cli::parse();
    chainstead_common::exit::finish(chainstead_upgrade_guard::cli::run(cli))
}
