//! The command line: parse with [`Cli`], run with [`run`]; `main` turns the
//! result into the exit status (docs/exit-codes.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use chainstead_common::exit::Exit;
use clap::{Parser, Subcommand};

use crate::{commands, manifest, pusher, version};

/// Pushes LND's channel.backup and small config snapshots to every
/// configured backup target.
#[derive(Parser, Debug)]
#[command(name = "chainstead-backup", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The service: watch channel.backup and push every change (Type=notify).
    Watch {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Push the current channel.backup to every target once.
    Push {
        #[arg(long)]
        manifest: PathBuf,
        /// Seconds to wait for every target to acknowledge.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Pack the snapshot file set and push it if it changed.
    Snapshot {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Per target: last successful push, its age, the last error.
    Status {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Fetch the newest copy from every target and check it byte for byte.
    Verify {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a verified copy for `lncli restorechanbackup --multi_file`.
    Restore {
        #[arg(long)]
        manifest: PathBuf,
        /// A target name, or `local` for the copies in state_dir (default:
        /// the target whose `latest` is the newest).
        #[arg(long)]
        from: Option<String>,
        /// A version name (default: the newest).
        #[arg(long)]
        version: Option<String>,
        /// Output file (a directory to unpack into with --snapshot).
        #[arg(long)]
        out: PathBuf,
        /// Restore a config snapshot instead of channel.backup.
        #[arg(long)]
        snapshot: bool,
    },
    /// Check the manifest offline (no network, no writes). Exit 2 if invalid.
    Validate {
        #[arg(long)]
        manifest: PathBuf,
    },
}

/// `verify` found a bad or stale copy: exit 1 like any failure at run
/// time, with the targets named.
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// Runs a command; an error ends it (`main` maps it to the exit status).
pub fn run(cli: Cli) -> Result<Exit> {
    run_command(cli.command).map(|()| Exit::Success)
}

fn run_command(command: Command) -> Result<()> {
    match command {
        Command::Validate { manifest } => {
            manifest::Manifest::load(&manifest)?;
            println!("{}: valid", manifest.display());
            Ok(())
        }
        Command::Status { manifest, json } => {
            let m = manifest::Manifest::load(&manifest)?;
            print!("{}", commands::status(&m, json)?);
            if json {
                println!();
            }
            Ok(())
        }
        Command::Watch { manifest } => {
            let m = manifest::Manifest::load(&manifest)?;
            tracing::info!("configuration: {}", redacted(&m));
            let rt = runtime()?;
            let res = rt.block_on(async {
                let sd = chainstead_common::shutdown::Shutdown::install()
                    .context("failed to install signal handlers")?;
                let engine = pusher::Engine::new(m)?;
                pusher::watch(engine, sd).await
            });
            rt.shutdown_timeout(Duration::from_secs(5));
            res
        }
        Command::Push { manifest, timeout } => push(&manifest, timeout, version::Kind::Channel),
        Command::Snapshot { manifest, timeout } => {
            push(&manifest, timeout, version::Kind::Snapshot)
        }
        Command::Verify { manifest, json } => {
            let m = manifest::Manifest::load(&manifest)?;
            let rt = runtime()?;
            let rows = rt.block_on(commands::verify(&m))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).context("failed to render JSON")?
                );
            } else {
                for r in &rows {
                    println!("{:<12} {:<8} {}", r.target, r.kind, r.result);
                }
            }
            let bad: Vec<&str> = rows
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.target.as_str())
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(CheckFailed(format!("verify failed for: {}", bad.join(", "))).into())
            }
        }
        Command::Restore {
            manifest,
            from,
            version,
            out,
            snapshot,
        } => {
            let m = manifest::Manifest::load(&manifest)?;
            let rt = runtime()?;
            let (from, name) = rt.block_on(commands::restore(
                &m,
                from.as_deref(),
                version.as_deref(),
                &out,
                snapshot,
            ))?;
            if snapshot {
                println!("restored {name} from {from} into {}", out.display());
            } else {
                println!(
                    "restored {name} from {from} to {}; next: lncli restorechanbackup --multi_file {}",
                    out.display(),
                    out.display()
                );
            }
            Ok(())
        }
    }
}

fn push(manifest: &std::path::Path, timeout: u64, kind: version::Kind) -> Result<()> {
    let m = manifest::Manifest::load(manifest)?;
    if kind == version::Kind::Snapshot && m.snapshot.is_none() {
        anyhow::bail!("failed to snapshot: the manifest has no snapshot section");
    }
    let rt = runtime()?;
    let res = rt.block_on(async {
        let engine = pusher::Engine::new(m)?;
        pusher::push_once(engine, kind, Duration::from_secs(timeout)).await
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    match res? {
        pusher::Ingest::New(n) => println!("every target holds {n}"),
        other => println!("{other:?}"),
    }
    Ok(())
}

fn redacted(m: &manifest::Manifest) -> String {
    // The manifest holds file names only, never secret values.
    serde_json::to_string(m).unwrap_or_else(|_| "?".into())
}
