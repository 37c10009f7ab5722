//! The command line: parse with [`Cli`], run with [`run`]; `main` turns the
//! result into the exit status (docs/exit-codes.md).

use std::path::PathBuf;

use chainstead_common::exit::{Exit, Misconfigured};
use clap::{Parser, Subcommand};

use crate::guard::{self, Env};
use crate::state::State;
use crate::{GuardError, Manifest};

/// Guards a service's data across package upgrades and rollbacks.
#[derive(Parser, Debug)]
#[command(name = "chainstead-upgrade-guard", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
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

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    command(cli).map(|()| Exit::Success).map_err(misconfigured)
}

fn command(cli: Cli) -> anyhow::Result<()> {
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

/// A refusal that only a change of the configuration can lift (switch the
/// package back or forward) exits 2 like an invalid manifest; the other
/// refusals and failures exit 1. The log line is the same either way.
fn misconfigured(e: anyhow::Error) -> anyhow::Error {
    let configuration = e
        .chain()
        .filter_map(|c| c.downcast_ref::<GuardError>())
        .any(GuardError::is_configuration);
    if configuration {
        Misconfigured(e).into()
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn exit_of(g: GuardError) -> Exit {
        let e: anyhow::Result<()> = Err(g).context("lnd");
        Exit::of(&misconfigured(e.unwrap_err()))
    }

    #[test]
    fn only_configuration_refusals_exit_2() {
        let runbook = || "docs/operations.md#upgrades".to_string();
        assert_eq!(
            exit_of(GuardError::Interrupted {
                service: "lnd",
                package: "0.19.3-beta".into(),
                attempted: "0.20.0-beta".into(),
                data: "0.19.3-beta".into(),
                runbook: runbook(),
            }),
            Exit::Invalid
        );
        assert_eq!(
            exit_of(GuardError::Downgrade {
                service: "lnd",
                data: "0.20.0-beta".into(),
                package: "0.19.3-beta".into(),
                runbook: runbook(),
            }),
            Exit::Invalid
        );
        assert_eq!(
            exit_of(GuardError::NotPrepared {
                service: "lnd",
                package: "0.20.0-beta".into(),
                data: "0.19.3-beta".into(),
                runbook: runbook(),
            }),
            Exit::Failure
        );
        assert_eq!(
            exit_of(GuardError::LndRunning {
                path: "/srv/lnd/channel.db".into()
            }),
            Exit::Failure
        );
        // The log line is the refusal itself, unchanged by the wrapping.
        let e: anyhow::Result<()> = Err(GuardError::Downgrade {
            service: "lnd",
            data: "0.20.0-beta".into(),
            package: "0.19.3-beta".into(),
            runbook: runbook(),
        })
        .context("lnd");
        let e = e.unwrap_err();
        let before = format!("{e:#}");
        assert_eq!(format!("{:#}", misconfigured(e)), before);
    }
}
