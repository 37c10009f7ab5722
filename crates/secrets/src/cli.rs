//! The command line: parse with [`Cli`], run with [`run`]; `main` turns the
//! result into the exit status (docs/exit-codes.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use chainstead_common::exit::Exit;
use clap::{Parser, Subcommand};

use crate::manifest::Manifest;
use crate::{check, load, store};

/// Loads the stack's secrets from OpenBao (or generates them locally) into
/// per-service directories under /run/chainstead/secrets.
#[derive(Parser, Debug)]
#[command(name = "chainstead-secrets", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fetch (or generate) every secret and install each service's set.
    Load {
        #[arg(long)]
        manifest: PathBuf,
        /// Load only this service's set.
        #[arg(long)]
        service: Option<String>,
    },
    /// Check the manifest offline (no network, no user lookups, no writes).
    Validate {
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Print a table of every secret and whether it is available.
    Check {
        #[arg(long)]
        manifest: PathBuf,
        /// Log in to OpenBao and check that every path and field exists.
        #[arg(long)]
        online: bool,
    },
    /// Store the content of a file in KV (v2 with check-and-set).
    Store {
        #[arg(long)]
        manifest: PathBuf,
        /// KV mount; the manifest's openbao.kv_mount when absent.
        #[arg(long)]
        mount: Option<String>,
        /// Path inside the mount (without data/).
        #[arg(long)]
        path: String,
        #[arg(long)]
        field: String,
        /// File holding the value; one trailing newline is dropped.
        #[arg(long)]
        from_file: PathBuf,
        /// Store the file base64-encoded (binary files such as channel.backup).
        #[arg(long)]
        base64: bool,
        /// Replace a different value already stored in that field.
        #[arg(long)]
        overwrite: bool,
    },
}

/// Runs a command; `check` ends with [`Exit::Failure`] when it found
/// something missing.
pub fn run(cli: Cli) -> Result<Exit> {
    if let Command::Validate { manifest } = &cli.command {
        let m = Manifest::load(manifest)?;
        let count: usize = m.services.values().map(|s| s.secrets.len()).sum();
        tracing::info!(
            "manifest {} is valid: {} service(s), {count} secret(s), {}",
            manifest.display(),
            m.services.len(),
            if m.openbao.is_some() {
                "OpenBao mode"
            } else {
                "local mode"
            }
        );
        return Ok(Exit::Success);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Load { manifest, service } => {
                let m = Manifest::load(&manifest)?;
                tracing::debug!("manifest: {m:?}");
                load::run(&m, service.as_deref()).await?;
                Ok(Exit::Success)
            }
            Command::Check { manifest, online } => {
                let m = Manifest::load(&manifest)?;
                Ok(if check::run(&m, online).await? {
                    Exit::Success
                } else {
                    Exit::Failure
                })
            }
            Command::Store {
                manifest,
                mount,
                path,
                field,
                from_file,
                base64,
                overwrite,
            } => {
                let m = Manifest::load(&manifest)?;
                let req = store::Request {
                    mount: mount.as_deref(),
                    path: &path,
                    field: &field,
                    from_file: &from_file,
                    base64,
                    overwrite,
                };
                store::run(&m, &req).await?;
                Ok(Exit::Success)
            }
            Command::Validate { .. } => Ok(Exit::Success),
        }
    })
}
