//! chainstead-upgrade-guard: the command line; all work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use chainstead_upgrade_guard::guard::{self, Env};
use chainstead_upgrade_guard::state::State;
use chainstead_upgrade_guard::Manifest;
use clap::{Parser, Subcommand};

/// Guards a service's data across package upgrades and rollbacks.
#[derive(Parser, Debug)]
#[command(name = "chainstead-upgrade-guard", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Validate the manifest without touching the data (run at build time).
    Validate {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Before the service starts: compare versions; on an upgrade take the
    /// pre-upgrade copy or snapshot; refuse a downgrade.
    Check {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// The service's own pre-start step: refuse to start unless `check`
    /// prepared this version. Changes nothing.
    Verify {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// LND only, between `check` and the start: when an upgrade is
    /// prepared, push a fresh channel backup through chainstead-backup.
    PushBackup {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// After a successful start: record the package's version on the data.
    Record {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Print the guard's record of the service's data as JSON.
    Status {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Put LND's pre-upgrade copy back (LND stopped). Never run
    /// automatically; refused once LND has started since the copy. The safe
    /// recovery of channels is the static channel backup (docs/operations.md).
    RestoreLnd {
        #[arg(long)]
        manifest: PathBuf,
        /// The copy to restore (a directory the guard logged); the newest
        /// recorded one by default.
        #[arg(long)]
        copy: Option<PathBuf>,
        /// Restore although LND has started since the copy was taken. This
        /// can lose funds: the copy holds channel states LND has since
        /// revoked, and if LND broadcasts one its peer takes the whole
        /// channel balance as a penalty. Only for a node whose channels are
        /// all closed, or together with closing them from the static
        /// channel backup.
        #[arg(long)]
        allow_after_newer_run: bool,
    },
}

fn main() -> ExitCode {
    chainstead_common::logging::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Validate { manifest } => {
            let m = Manifest::load(&manifest)?;
            println!(
                "manifest {} is valid: {} {}",
                manifest.display(),
                m.service.name(),
                m.package_version
            );
        }
        Cmd::Check { manifest } => {
            guard::check(&Manifest::load(&manifest)?, &Env::real())?;
        }
        Cmd::Verify { manifest } => {
            guard::verify(&Manifest::load(&manifest)?)?;
        }
        Cmd::PushBackup { manifest } => {
            guard::push_backup(&Manifest::load(&manifest)?)?;
        }
        Cmd::Record { manifest } => {
            guard::record(&Manifest::load(&manifest)?)?;
        }
        Cmd::Status { manifest } => {
            let m = Manifest::load(&manifest)?;
            let st = State::load(&m.state_file)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        Cmd::RestoreLnd {
            manifest,
            copy,
            allow_after_newer_run,
        } => {
            guard::restore_lnd(
                &Manifest::load(&manifest)?,
                &Env::real(),
                copy.as_deref(),
                allow_after_newer_run,
            )?;
        }
    }
    Ok(())
}
