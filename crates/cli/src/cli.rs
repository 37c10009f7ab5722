//! The command line: parse with [`Cli`], run with [`run`]; `main` turns the
//! result into the exit status (docs/exit-codes.md, docs/status.md).

use std::path::PathBuf;

use chainstead_common::exit::Exit;
use clap::{Parser, Subcommand};

use crate::status;

/// The chainstead operator's command.
#[derive(Parser, Debug)]
#[command(name = "chainstead", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report on every enabled service. Exit 0 all fine, 1 something needs
    /// attention, 2 a usage or configuration error.
    Status(status::Args),
    /// Validate the status manifest offline. Exit 0 valid, 2 invalid.
    Validate {
        #[arg(long)]
        manifest: PathBuf,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Status(args) => status::run(args),
        Command::Validate { manifest } => status::validate(&manifest),
    }
}
