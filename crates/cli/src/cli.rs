//! The command line: one variant of [`Command`] per subcommand, each
//! handled by its own module. `main` only parses and hands the result to
//! the shared exit policy (`chainstead_common::exit`, docs/exit-codes.md):
//! 0 done, 1 a failure at run time (a file not readable yet), 2 a bad
//! manifest or command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chainstead_common::exit::{Exit, Misconfigured};
use chainstead_common::fs::Owner;
use clap::{Args, Parser, Subcommand};

use crate::{cert, connect, fingerprint, migrate, status, Manifest};

/// The chainstead operator command.
#[derive(Parser, Debug)]
#[command(name = "chainstead", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct ManifestArg {
    /// The manifest the NixOS module renders.
    #[arg(long, default_value = crate::manifest::DEFAULT_PATH)]
    pub manifest: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print where each wallet reaches this node (LAN, onion) and what to
    /// paste where. `zeus` also prints an lndconnect URI: a credential.
    Connect {
        #[command(flatten)]
        manifest: ManifestArg,
        /// One wallet; all configured ones when left out (without URIs).
        #[arg(value_enum)]
        wallet: Option<connect::Wallet>,
    },
    /// Print the SHA-256 fingerprint of a PEM certificate (Fulcrum's, by
    /// default, from the manifest).
    Fingerprint {
        #[command(flatten)]
        manifest: ManifestArg,
        /// A certificate file instead of Fulcrum's.
        #[arg(long)]
        cert: Option<PathBuf>,
    },
    /// Make or refresh a self-signed TLS certificate whose SANs are the
    /// given names and addresses; nothing is written when they are unchanged.
    TlsCert(TlsCertArgs),
    /// Report on every enabled service (docs/status.md). Exit 0 all fine,
    /// 1 something needs attention, 2 a usage or configuration error.
    Status(status::Args),
    /// Adopt a nix-bitcoin node's bitcoind datadir, Fulcrum index and LND
    /// wallet and channels, by renames (docs/migrate-from-nix-bitcoin.md).
    /// Exit 0 done or nothing to do, 1 refused or failed, 2 usage.
    MigrateNixBitcoin(Box<migrate::Args>),
    /// Validate the manifest offline. Exit 0 valid, 2 invalid.
    Validate {
        #[arg(long)]
        manifest: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct TlsCertArgs {
    #[arg(long)]
    pub cert: PathBuf,
    /// The private key (PKCS#8 PEM, RSA or ECDSA); must exist.
    #[arg(long)]
    pub key: PathBuf,
    /// A host name or address; repeat for each.
    #[arg(long = "san", required = true)]
    pub sans: Vec<String>,
    #[arg(long, default_value = "chainstead")]
    pub common_name: String,
    #[arg(long, default_value_t = 3650)]
    pub days: u32,
    /// Owner uid of the written files (default: the caller).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Owner gid of the written files (default: the caller's group).
    #[arg(long)]
    pub gid: Option<u32>,
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Status(args) => return status::run(args),
        Command::MigrateNixBitcoin(args) => return migrate::run(&args),
        Command::Validate { manifest } => {
            Manifest::load(&manifest)?;
            println!("manifest {} is valid", manifest.display());
        }
        Command::Connect { manifest, wallet } => {
            let m = Manifest::load(&manifest.manifest)?;
            let report = connect::report(&m, wallet)?;
            print!("{}", report.stdout);
            for w in report.warnings {
                eprintln!("warning: {w}");
            }
        }
        Command::Fingerprint { manifest, cert } => {
            let path = match cert {
                Some(p) => p,
                None => {
                    Manifest::load(&manifest.manifest)?
                        .fulcrum
                        .ok_or_else(|| {
                            Misconfigured(anyhow::anyhow!(
                                "Fulcrum is not enabled in manifest {}; pass --cert FILE",
                                manifest.manifest.display()
                            ))
                        })?
                        .cert_file
                }
            };
            println!("{}", fingerprint::of_pem_file(&path)?);
        }
        Command::TlsCert(a) => {
            let req = cert::Request {
                cert_file: a.cert,
                key_file: a.key,
                sans: a.sans,
                common_name: a.common_name,
                days: a.days,
                owner: Owner {
                    uid: a.uid,
                    gid: a.gid,
                },
            };
            let outcome = cert::ensure(&req).context("failed to make the TLS certificate")?;
            tracing::info!(
                "certificate {}: {:?} (SANs: {})",
                req.cert_file.display(),
                outcome,
                req.sans.join(", ")
            );
        }
    }
    Ok(Exit::Success)
}
