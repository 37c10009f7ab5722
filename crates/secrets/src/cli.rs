//! The command line: parse with [`Cli`], run with [`run`]; `main` turns the
//! result into the exit status (docs/exit-codes.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use chainstead_common::exit::Exit;
use clap::{Parser, Subcommand};

use crate::manifest::Manifest;
use crate::template::{self, Check, Encoding};
use crate::{check, lnd_wallet, load, store};

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
    /// Render a config file from a template and secret files (at a
    /// service's start): each placeholder replaced, written atomically.
    Render {
        /// The template (in the Nix store; no secret in it).
        #[arg(long)]
        template: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Octal mode of the file.
        #[arg(long, default_value = "0600")]
        mode: String,
        /// PLACEHOLDER=/path or PLACEHOLDER=credential:NAME, written as is
        /// (a value with a line break is refused).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// Same, written as the inside of a JSON string.
        #[arg(long = "json-secret")]
        json_secrets: Vec<String>,
        /// Same as --json-secret, checked to be ThunderHub's bcrypt form.
        #[arg(long = "thunderhub-hash")]
        thunderhub_hashes: Vec<String>,
    },
    /// Create LND's wallet when it has none (the seed into --seed-file
    /// first), or unlock it with --unlock; waits for LND, stops on SIGTERM.
    LndWallet {
        /// LND's REST address, e.g. https://127.0.0.1:8080.
        #[arg(long)]
        rest_url: String,
        /// LND's tls.cert; the server must present exactly it.
        #[arg(long)]
        tls_cert_file: PathBuf,
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long)]
        seed_file: PathBuf,
        /// Blocks to rescan when creating from a seed already in the file.
        #[arg(long, default_value_t = 2500)]
        recovery_window: u32,
        /// Unlock a locked wallet (when LND does not unlock itself).
        #[arg(long)]
        unlock: bool,
        /// How long to wait for LND.
        #[arg(long, default_value_t = 120)]
        deadline_secs: u64,
    },
}

/// `render`: a bad command line (placeholder spec, mode) is a
/// misconfiguration (exit 2); a secret file missing at start is a failure.
fn render(
    template: &std::path::Path,
    out: &std::path::Path,
    mode: &str,
    kinds: [(&Vec<String>, Encoding, Check); 3],
) -> Result<Exit> {
    use chainstead_common::exit::Misconfigured;
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let mut substitutions = Vec::new();
    for (specs, encoding, check) in kinds {
        for spec in specs {
            substitutions.push(
                template::parse_substitution(spec, encoding, check, creds.as_deref())
                    .map_err(Misconfigured)?,
            );
        }
    }
    let mode = crate::manifest::parse_mode(mode)
        .map_err(|e| Misconfigured(anyhow::anyhow!("failed to use --mode {mode}: {e}")))?;
    template::render(&template::Template {
        template: template.to_owned(),
        substitutions,
        out: out.to_owned(),
        mode,
        owner: Default::default(),
    })?;
    tracing::info!("rendered {} from {}", out.display(), template.display());
    Ok(Exit::Success)
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
    if let Command::Render {
        template,
        out,
        mode,
        secrets,
        json_secrets,
        thunderhub_hashes,
    } = &cli.command
    {
        return render(
            template,
            out,
            mode,
            [
                (secrets, Encoding::Line, Check::Any),
                (json_secrets, Encoding::JsonString, Check::Any),
                (
                    thunderhub_hashes,
                    Encoding::JsonString,
                    Check::ThunderHubBcrypt,
                ),
            ],
        );
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
            Command::LndWallet {
                rest_url,
                tls_cert_file,
                password_file,
                seed_file,
                recovery_window,
                unlock,
                deadline_secs,
            } => {
                let cfg = lnd_wallet::Config {
                    rest_url,
                    password_file,
                    seed_file,
                    recovery_window,
                    unlock,
                    deadline: std::time::Duration::from_secs(deadline_secs),
                    poll: std::time::Duration::from_secs(1),
                    request_timeout: std::time::Duration::from_secs(30),
                };
                let deadline = std::time::Instant::now() + cfg.deadline;
                let mut shutdown = chainstead_common::shutdown::Shutdown::install()
                    .context("failed to install the SIGTERM handler")?;
                let outcome = async {
                    let http =
                        lnd_wallet::pinned_client(&tls_cert_file, &cfg, deadline, &mut shutdown)
                            .await?;
                    lnd_wallet::run_until(&cfg, &http, &mut shutdown, deadline).await
                }
                .await;
                match outcome {
                    Ok(lnd_wallet::Outcome::Created { .. }) => {}
                    Ok(lnd_wallet::Outcome::Unlocked) => tracing::info!("wallet unlocked"),
                    Ok(lnd_wallet::Outcome::Exists(s)) => {
                        tracing::info!("the wallet exists (state {s:?}), nothing to do");
                    }
                    // The password file does not belong to this wallet:
                    // starting again cannot help (exit 2).
                    Err(e @ lnd_wallet::Error::WrongPassword(_)) => {
                        return Err(chainstead_common::exit::Misconfigured(e.into()).into())
                    }
                    Err(e) => return Err(e.into()),
                }
                Ok(Exit::Success)
            }
            Command::Validate { .. } | Command::Render { .. } => Ok(Exit::Success),
        }
    })
}
