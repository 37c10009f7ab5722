//! chainstead-backup: the command line; all work is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chainstead_common::logging::init();
    let cli = chainstead_backup::Cli::parse();
    match chainstead_backup::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<chainstead_backup::Invalid>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
