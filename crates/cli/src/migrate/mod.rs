//! `chainstead migrate-nix-bitcoin`: adopts a nix-bitcoin node's bitcoind
//! datadir, Fulcrum index and LND wallet and channels into chainstead's
//! layout, by renames on one file system (docs/migrate-from-nix-bitcoin.md).
//!
//! It plans first ([`plan`]), reading only; refuses with every problem named
//! and nothing changed when any is found, or when a daemon of the data runs
//! or LND's databases are open ([`guard`]); and otherwise carries the plan
//! out ([`apply`]) while holding LND's database locks, so no LND can open
//! channel.db until the move is complete. Run again, it finishes an
//! interrupted migration, or says there is nothing left to do.

pub mod apply;
pub mod guard;
pub mod plan;
pub mod seed;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chainstead_common::accounts;
use chainstead_common::exit::{Exit, Misconfigured};
use chainstead_common::manifest::{Invalid, Problems};

pub use plan::{Account, DataDirTarget, LndTarget, Plan, Request, Source, Step};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The network of nix-bitcoin's node, as LND names its directories
    /// (nix-bitcoin: `mainnet`, or `regtest` with `services.bitcoind.regtest`).
    #[arg(long, value_parser = ["mainnet", "testnet", "testnet4", "signet", "regtest"])]
    pub network: String,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// nix-bitcoin's `services.bitcoind.dataDir`.
    #[arg(long, default_value = "/var/lib/bitcoind")]
    pub nix_bitcoin_bitcoind: PathBuf,
    /// nix-bitcoin's `services.fulcrum.dataDir`.
    #[arg(long, default_value = "/var/lib/fulcrum")]
    pub nix_bitcoin_fulcrum: PathBuf,
    /// nix-bitcoin's `services.lnd.dataDir`.
    #[arg(long, default_value = "/var/lib/lnd")]
    pub nix_bitcoin_lnd: PathBuf,
    /// nix-bitcoin's `nix-bitcoin.secretsDir`.
    #[arg(long, default_value = "/etc/nix-bitcoin-secrets")]
    pub nix_bitcoin_secrets: PathBuf,

    /// chainstead's `bitcoind.dataDir` (with `blocksDir = null`); bitcoind's
    /// data is left alone without it.
    #[arg(long)]
    pub bitcoind_dir: Option<PathBuf>,
    /// chainstead's `fulcrum.dataDir` (with `dbDir` the same); Fulcrum's
    /// index is left alone without it.
    #[arg(long)]
    pub fulcrum_dir: Option<PathBuf>,
    /// chainstead's `lnd.dataDir` (LND's `--lnddir`); LND's data is left
    /// alone without it.
    #[arg(long, requires = "lnd_wallet_password_file")]
    pub lnd_dir: Option<PathBuf>,
    /// chainstead's `lnd.macaroonDir` [default: <lnd-dir>/macaroons].
    #[arg(long)]
    pub lnd_macaroon_dir: Option<PathBuf>,
    /// chainstead's `lnd.seedFile`.
    #[arg(long, default_value = "/var/lib/chainstead/lnd-seed/seed")]
    pub lnd_seed_file: PathBuf,
    /// Where nix-bitcoin's wallet password is copied; give chainstead's
    /// `lnd.walletPasswordFile` the same path.
    #[arg(long)]
    pub lnd_wallet_password_file: Option<PathBuf>,

    #[arg(long, default_value = "bitcoind")]
    pub bitcoind_user: String,
    #[arg(long, default_value = "fulcrum")]
    pub fulcrum_user: String,
    #[arg(long, default_value = "lnd")]
    pub lnd_user: String,
    /// chainstead's `lnd.group`: who may read the macaroons.
    #[arg(long, default_value = "lnd-macaroon")]
    pub macaroon_group: String,
}

/// Where the running processes are listed; a test gives its own.
#[derive(Debug, Clone)]
pub struct Env {
    pub proc_root: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            proc_root: PathBuf::from("/proc"),
        }
    }
}

fn user(name: &str) -> Result<Account> {
    let ids = accounts::user(name)?.ok_or_else(|| {
        Misconfigured(anyhow::anyhow!(
            "user {name} does not exist: deploy the chainstead configuration that declares it \
             first, or name the right user"
        ))
    })?;
    Ok(Account {
        name: name.to_owned(),
        uid: ids.uid,
        gid: ids.gid,
    })
}

fn group(name: &str) -> Result<u32> {
    Ok(accounts::group(name)?.ok_or_else(|| {
        Misconfigured(anyhow::anyhow!(
            "group {name} does not exist: deploy the chainstead configuration that declares it \
             first, or name the right group"
        ))
    })?)
}

impl Args {
    /// Every path absolute and without `..`: a relative one would be taken
    /// from the working directory, `/` in a unit. All problems at once.
    fn check_paths(&self) -> Result<()> {
        let mut problems = Problems::new();
        let given = [
            ("--nix-bitcoin-bitcoind", Some(&self.nix_bitcoin_bitcoind)),
            ("--nix-bitcoin-fulcrum", Some(&self.nix_bitcoin_fulcrum)),
            ("--nix-bitcoin-lnd", Some(&self.nix_bitcoin_lnd)),
            ("--nix-bitcoin-secrets", Some(&self.nix_bitcoin_secrets)),
            ("--bitcoind-dir", self.bitcoind_dir.as_ref()),
            ("--fulcrum-dir", self.fulcrum_dir.as_ref()),
            ("--lnd-dir", self.lnd_dir.as_ref()),
            ("--lnd-macaroon-dir", self.lnd_macaroon_dir.as_ref()),
            ("--lnd-seed-file", Some(&self.lnd_seed_file)),
            (
                "--lnd-wallet-password-file",
                self.lnd_wallet_password_file.as_ref(),
            ),
        ];
        for (flag, path) in given {
            if let Some(p) = path {
                problems.absolute_path(flag, p);
            }
        }
        match problems.into_result() {
            Ok(()) => Ok(()),
            Err(Invalid(list)) => Err(Misconfigured(anyhow::anyhow!(
                "bad command line:\n  - {}",
                list.join("\n  - ")
            ))
            .into()),
        }
    }

    /// The request, with every account resolved.
    pub fn request(&self) -> Result<Request> {
        self.check_paths()?;
        let lnd = match &self.lnd_dir {
            Some(dir) => Some(LndTarget {
                dir: dir.clone(),
                macaroon_dir: self
                    .lnd_macaroon_dir
                    .clone()
                    .unwrap_or_else(|| dir.join("macaroons")),
                seed_file: self.lnd_seed_file.clone(),
                password_file: self
                    .lnd_wallet_password_file
                    .clone()
                    .context("--lnd-dir needs --lnd-wallet-password-file")?,
                owner: user(&self.lnd_user)?,
                macaroon_gid: group(&self.macaroon_group)?,
            }),
            None => None,
        };
        let target = |dir: &Option<PathBuf>, name: &str| -> Result<Option<DataDirTarget>> {
            dir.as_ref()
                .map(|d| {
                    Ok(DataDirTarget {
                        dir: d.clone(),
                        owner: user(name)?,
                    })
                })
                .transpose()
        };
        let req = Request {
            network: self.network.clone(),
            source: Source {
                bitcoind: self.nix_bitcoin_bitcoind.clone(),
                fulcrum: self.nix_bitcoin_fulcrum.clone(),
                lnd: self.nix_bitcoin_lnd.clone(),
                secrets: self.nix_bitcoin_secrets.clone(),
            },
            bitcoind: target(&self.bitcoind_dir, &self.bitcoind_user)?,
            fulcrum: target(&self.fulcrum_dir, &self.fulcrum_user)?,
            lnd,
        };
        if req.bitcoind.is_none() && req.fulcrum.is_none() && req.lnd.is_none() {
            return Err(Misconfigured(anyhow::anyhow!(
                "nothing to adopt: give at least one of --bitcoind-dir, --fulcrum-dir, --lnd-dir"
            ))
            .into());
        }
        Ok(req)
    }
}

/// What a run did, as printed.
#[derive(Debug)]
pub struct Outcome {
    pub report: String,
    pub applied: usize,
}

fn write_notes(out: &mut String, part: &plan::Part) {
    for n in &part.notes {
        let _ = writeln!(out, "{}: {n}", part.service);
    }
}

/// The printed plan: each service's notes and steps.
pub fn describe(plan: &Plan, verb: &str) -> String {
    let mut out = String::new();
    for part in &plan.parts {
        write_notes(&mut out, part);
        for s in &part.steps {
            let _ = writeln!(out, "{}: {verb}{s}", part.service);
        }
    }
    out
}

/// Plans, checks and (unless `dry_run`) migrates.
pub fn migrate(req: &Request, env: &Env, dry_run: bool) -> Result<Outcome> {
    let plan = plan::plan(req)?;
    let problems: Vec<String> = plan
        .problems()
        .map(|(service, p)| format!("{service}: {p}"))
        .collect();
    if !problems.is_empty() {
        bail!(
            "refusing to migrate; nothing was changed:\n  {}",
            problems.join("\n  ")
        );
    }
    if plan.is_empty() {
        return Ok(Outcome {
            report: format!("{}nothing to migrate\n", describe(&plan, "")),
            applied: 0,
        });
    }

    // Nothing may run on the data while it moves.
    let daemons: Vec<&str> = plan
        .parts
        .iter()
        .filter(|p| !p.steps.is_empty())
        .flat_map(|p| p.daemons.iter().copied())
        .collect();
    let refuse_running = || -> Result<()> {
        let running = guard::running(&env.proc_root, &daemons)?;
        if let Some(r) = running.first() {
            bail!(
                "refusing to migrate; nothing was changed: {} is running (pid {}). Stop \
                 nix-bitcoin's services first (disable them and deploy, or `systemctl stop`), \
                 then run this again",
                r.name,
                r.pid
            );
        }
        Ok(())
    };
    refuse_running()?;
    let mut locks = guard::DbLocks::default();
    for part in &plan.parts {
        for db in &part.databases {
            locks
                .take(db)
                .context("refusing to migrate; nothing was changed")?;
        }
    }
    // One that started between the scan and the locks is seen now.
    refuse_running()?;

    if dry_run {
        return Ok(Outcome {
            report: describe(&plan, "would "),
            applied: 0,
        });
    }
    let mut report = String::new();
    let mut applied = 0;
    for part in &plan.parts {
        write_notes(&mut report, part);
        for s in &part.steps {
            apply::step(s).with_context(|| {
                format!(
                    "{}: failed to {s}; {applied} steps were done before it. Fix the cause and \
                     run this again: it carries on from here",
                    part.service
                )
            })?;
            applied += 1;
            let _ = writeln!(report, "{}: done: {s}", part.service);
        }
        if let (Some((before, ino)), Some(lnd)) = (&part.channel_db, &req.lnd) {
            let _ = writeln!(report, "{}", verify_channel_db(req, lnd, before, *ino)?);
        }
    }
    drop(locks);
    Ok(Outcome { report, applied })
}

/// channel.db exists exactly once, where chainstead's LND opens it, as the
/// same file (inode) that was found: renamed, never copied.
fn verify_channel_db(
    req: &Request,
    lnd: &LndTarget,
    found: &std::path::Path,
    ino: u64,
) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let rel = std::path::Path::new("graph")
        .join(&req.network)
        .join("channel.db");
    let expected = lnd.dir.join("data").join(&rel);
    let old = req.source.lnd.join(&rel);
    let meta = std::fs::metadata(&expected).with_context(|| {
        format!(
            "channel.db is not at {} after the migration (it was at {})",
            expected.display(),
            found.display()
        )
    })?;
    anyhow::ensure!(
        meta.ino() == ino,
        "{} is not the file that was at {} (inode {} vs {ino})",
        expected.display(),
        found.display(),
        meta.ino()
    );
    anyhow::ensure!(
        old == expected || !old.exists(),
        "channel.db exists at both {} and {}: stop, and keep LND stopped until you know which is current",
        old.display(),
        expected.display()
    );
    Ok(format!(
        "lnd: channel.db is at {} (inode {ino}, renamed, never copied), and nowhere else",
        expected.display()
    ))
}

/// The subcommand: 0 migrated or nothing to do, 1 refused (a problem, a
/// running daemon, a locked database) or failed midway, 2 usage.
pub fn run(args: &Args) -> Result<Exit> {
    let req = args.request()?;
    let out = migrate(&req, &Env::default(), args.dry_run)?;
    print!("{}", out.report);
    if args.dry_run {
        println!("(dry run: nothing was changed)");
    } else if out.applied > 0 {
        println!(
            "migrated in {} steps. Next: deploy chainstead and check `chainstead status` \
             (docs/migrate-from-nix-bitcoin.md)",
            out.applied
        );
    }
    Ok(Exit::Success)
}
