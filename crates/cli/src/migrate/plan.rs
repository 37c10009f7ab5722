//! From what is on disk to the list of steps that adopts it. Planning reads
//! and changes nothing; every problem it finds is collected, so one run names
//! all of them and a refused migration has not moved a single file.
//!
//! The state decides each step, never a journal: a step already done (its
//! source gone, or its result in place with the same bytes) is left out, so
//! a migration cut short by a crash or a power cut is finished by running
//! the command again, and a finished one plans nothing.

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use zeroize::Zeroizing;

use super::guard;
use super::seed;

/// A user and its primary group, resolved by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// nix-bitcoin's paths: its defaults are `/var/lib/{bitcoind,fulcrum,lnd}`
/// and `/etc/nix-bitcoin-secrets` (modules/*.nix, `dataDir`; secrets.nix).
#[derive(Debug, Clone)]
pub struct Source {
    pub bitcoind: PathBuf,
    pub fulcrum: PathBuf,
    pub lnd: PathBuf,
    pub secrets: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DataDirTarget {
    pub dir: PathBuf,
    pub owner: Account,
}

#[derive(Debug, Clone)]
pub struct LndTarget {
    /// chainstead's `lnd.dataDir`, LND's `--lnddir`.
    pub dir: PathBuf,
    pub macaroon_dir: PathBuf,
    pub seed_file: PathBuf,
    pub password_file: PathBuf,
    pub owner: Account,
    /// chainstead's `lnd.group`, who may read the macaroons.
    pub macaroon_gid: u32,
}

/// What to adopt, and where chainstead wants it.
#[derive(Debug, Clone)]
pub struct Request {
    /// LND's and bitcoind's network directory name (`mainnet`, `regtest`, …).
    pub network: String,
    pub source: Source,
    pub bitcoind: Option<DataDirTarget>,
    pub fulcrum: Option<DataDirTarget>,
    pub lnd: Option<LndTarget>,
}

/// The file that marks a destination as adopted; the ownership pass runs
/// until it exists.
pub const MARKER: &str = ".migrated-from-nix-bitcoin";
/// The marker of a migration begun and not finished.
pub const PENDING: &str = ".migrating-from-nix-bitcoin";
/// First line of the files left where nix-bitcoin's LND directories were.
pub const TOMBSTONE_HEADER: &str = "chainstead: nix-bitcoin's LND data moved away";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A file nix-bitcoin wrote at every start (with a credential in it).
    Remove {
        path: PathBuf,
        why: &'static str,
    },
    MakeDir {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    /// A small file copied by an atomic write (certificate, key, password).
    Copy {
        from: PathBuf,
        to: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// The seed written in chainstead's form, then the old file removed.
    Seed {
        from: PathBuf,
        to: PathBuf,
    },
    /// Owner and mode of one file (the macaroons).
    Chmod {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Everything below `root` given to `owner` (entries already right are
    /// left alone; no symlink is followed, no other file system entered).
    Own {
        root: PathBuf,
        owner: Account,
    },
    Tombstone {
        path: PathBuf,
        moved_to: PathBuf,
    },
    /// The pending marker, written before anything moves.
    Pending {
        dir: PathBuf,
    },
    /// The final marker; the pending one goes.
    Marker {
        dir: PathBuf,
        from: PathBuf,
    },
    /// The emptied source directory.
    RemoveDir {
        path: PathBuf,
    },
    /// A tree of empty directories, removed bottom-up (a file in it stops it).
    RemoveHollow {
        path: PathBuf,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Remove { path, why } => write!(f, "remove {} ({why})", path.display()),
            Step::MakeDir { path, mode, .. } => {
                write!(f, "create directory {} (mode {mode:04o})", path.display())
            }
            Step::Rename { from, to } => {
                write!(f, "rename {} -> {}", from.display(), to.display())
            }
            Step::Copy { from, to, mode, .. } => write!(
                f,
                "copy {} -> {} (mode {mode:04o})",
                from.display(),
                to.display()
            ),
            Step::Seed { from, to } => write!(
                f,
                "write the seed from {} to {} (root, 0400), then remove the old file",
                from.display(),
                to.display()
            ),
            Step::Chmod { path, mode, .. } => {
                write!(f, "set owner and mode {mode:04o} of {}", path.display())
            }
            Step::Own { root, owner } => write!(
                f,
                "give everything under {} to {}",
                root.display(),
                owner.name
            ),
            Step::Tombstone { path, .. } => write!(
                f,
                "leave a file at {} so nix-bitcoin's LND cannot start there again",
                path.display()
            ),
            Step::Pending { dir } => {
                write!(f, "mark {} as being adopted ({PENDING})", dir.display())
            }
            Step::Marker { dir, .. } => {
                write!(f, "mark {} as adopted ({MARKER})", dir.display())
            }
            Step::RemoveDir { path } => write!(f, "remove the empty {}", path.display()),
            Step::RemoveHollow { path } => write!(
                f,
                "remove {} (empty directories only) to rename over it",
                path.display()
            ),
        }
    }
}

/// One service's part of the plan.
#[derive(Debug, Default)]
pub struct Part {
    pub service: &'static str,
    pub steps: Vec<Step>,
    /// Facts worth saying that need no action (no seed file, a kept path).
    pub notes: Vec<String>,
    /// Why the migration cannot go ahead; any problem anywhere stops all.
    pub problems: Vec<String>,
    /// The process names that must not run while this part is applied.
    pub daemons: &'static [&'static str],
    /// bbolt files to lock for the whole run.
    pub databases: Vec<PathBuf>,
    /// channel.db as found, with its inode, to prove afterwards that it was
    /// renamed and exists once.
    pub channel_db: Option<(PathBuf, u64)>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub parts: Vec<Part>,
}

impl Plan {
    pub fn problems(&self) -> impl Iterator<Item = (&'static str, &String)> {
        self.parts
            .iter()
            .flat_map(|p| p.problems.iter().map(move |m| (p.service, m)))
    }
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.steps.is_empty())
    }
}

/// Reads the state of every requested service and plans its adoption.
pub fn plan(req: &Request) -> Result<Plan> {
    let mut parts = Vec::new();
    if let Some(t) = &req.bitcoind {
        parts.push(datadir_part(
            "bitcoind",
            &["bitcoind"],
            &req.source.bitcoind,
            t,
            // nix-bitcoin's bitcoind.nix preStart writes it into the datadir.
            "bitcoin.conf",
        ));
    }
    if let Some(t) = &req.fulcrum {
        parts.push(datadir_part(
            "fulcrum",
            &["Fulcrum"],
            &req.source.fulcrum,
            t,
            // fulcrum.nix preStart: the config with the RPC password appended.
            "fulcrum.conf",
        ));
    }
    if let Some(t) = &req.lnd {
        parts.push(lnd_part(req, t));
    }
    Ok(Plan { parts })
}

/// Whether `path` is a directory with nothing in it.
fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// Whether `path` is a directory holding only directories that are empty in
/// the same way (what a tier's setup or a watcher may have made ahead).
fn is_hollow(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .is_ok_and(|d| d.into_iter().all(|e| e.is_ok_and(|e| is_hollow(&e.path())))),
        _ => false,
    }
}

/// The steps that put `src` at `dst`: a hollow tree at `dst` is removed
/// first (rename(2) replaces only an empty directory).
fn rename_over(steps: &mut Vec<Step>, src: PathBuf, dst: PathBuf) {
    if exists(&dst) && !is_empty_dir(&dst) {
        steps.push(Step::RemoveHollow { path: dst.clone() });
    }
    steps.push(Step::Rename { from: src, to: dst });
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// `path` made absolute and free of symlinks, or as given when it does not
/// exist yet.
fn resolved(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// The source directory, checked: `Ok(None)` when absent.
fn source_dir(part: &mut Part, label: &str, path: &Path) -> Option<fs::Metadata> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let to = fs::read_link(path).unwrap_or_default();
            part.problems.push(format!(
                "{} is a symlink to {}: give the real directory ({label} {})",
                path.display(),
                to.display(),
                to.display()
            ));
            None
        }
        Ok(m) if !m.is_dir() => {
            part.problems.push(format!(
                "{} is not a directory: check {label}",
                path.display()
            ));
            None
        }
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            part.problems
                .push(format!("failed to inspect {}: {e}", path.display()));
            None
        }
    }
}

/// Renames stay on one file system; a copy of a 760 GB datadir or of
/// channel.db is never made behind the operator's back.
fn same_file_system(part: &mut Part, from: &Path, to: &Path) -> bool {
    match (guard::device_of(from), guard::device_of(to)) {
        (Ok(a), Ok(b)) if a == b => true,
        (Ok(_), Ok(_)) => {
            part.problems.push(format!(
                "{} and {} are on different file systems, so the data would have to be copied. \
                 Put the destination on the same file system, or copy by hand with the services \
                 stopped (docs/migrate-from-nix-bitcoin.md, \"Moving to a new host\")",
                from.display(),
                to.display()
            ));
            false
        }
        (Err(e), _) | (_, Err(e)) => {
            part.problems.push(format!("{e:#}"));
            false
        }
    }
}

/// Renames every entry of `from` into `into` (both directories), after
/// checking that no entry exists on both sides with content.
fn merge_entries(part: &mut Part, from: &Path, into: &Path, skip: &[&str]) {
    let entries = match fs::read_dir(from) {
        Ok(e) => e,
        Err(e) => {
            part.problems
                .push(format!("failed to list {}: {e}", from.display()));
            return;
        }
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (from.join(&name), into.join(&name));
        if !exists(&dst) || is_hollow(&dst) {
            rename_over(&mut part.steps, src, dst);
        } else {
            part.problems.push(format!(
                "{} and {} both exist: the destination already holds data (did chainstead's {} \
                 start before the migration?). Move one of them aside by hand, then run this again",
                src.display(),
                dst.display(),
                part.service
            ));
        }
    }
}

/// bitcoind's and Fulcrum's directories: nix-bitcoin keeps the data
/// directly in `dataDir`, as chainstead does with `blocksDir = null` and
/// `dbDir = dataDir`.
///
/// A pending marker goes first, into the directory that becomes the
/// destination, so a run cut short after the source is renamed (and looks
/// absent) or after the generated config is removed (and the directory
/// looks like chainstead's own) is still recognised and finished.
fn datadir_part(
    service: &'static str,
    daemons: &'static [&'static str],
    from: &Path,
    target: &DataDirTarget,
    generated_conf: &'static str,
) -> Part {
    let mut part = Part {
        service,
        daemons,
        ..Part::default()
    };
    let to = &target.dir;
    let marker = to.join(MARKER);
    let pending = to.join(PENDING);
    let conf = from.join(generated_conf);
    let source = source_dir(&mut part, "--nix-bitcoin-*", from);
    if !part.problems.is_empty() {
        return part;
    }
    if exists(&marker) {
        if source.is_some() && resolved(from) != resolved(to) && !is_empty_dir(from) {
            part.problems.push(format!(
                "{} holds data again, though it was adopted into {} before: did a nix-bitcoin \
                 generation run after the migration? Compare the two by hand",
                from.display(),
                to.display()
            ));
        } else {
            part.notes
                .push(format!("already adopted into {}", to.display()));
        }
        return part;
    }
    let interrupted = exists(&pending);
    if source.is_none() {
        if !interrupted {
            part.notes.push(format!(
                "no nix-bitcoin data at {}: nothing to adopt",
                from.display()
            ));
            return part;
        }
    } else if resolved(from) == resolved(to) {
        if !interrupted && !exists(&conf) {
            // chainstead's own directory at nix-bitcoin's path: nothing of
            // nix-bitcoin's left to recognise it by.
            part.notes.push(format!(
                "{} has no {generated_conf}: taken as chainstead's own, nothing to adopt",
                from.display()
            ));
            return part;
        }
        if !interrupted {
            part.steps.push(Step::Pending { dir: to.clone() });
        }
        if exists(&conf) {
            part.steps.push(remove_conf(conf));
        }
    } else {
        if !same_file_system(&mut part, from, to) {
            return part;
        }
        let whole = !exists(to);
        if !interrupted && !exists(&from.join(PENDING)) {
            part.steps.push(Step::Pending {
                dir: if whole { from.to_owned() } else { to.clone() },
            });
        }
        if exists(&conf) {
            part.steps.push(remove_conf(conf));
        }
        if whole {
            if let Some(parent) = to.parent().filter(|p| !exists(p)) {
                part.steps.push(Step::MakeDir {
                    path: parent.to_owned(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                });
            }
            part.steps.push(Step::Rename {
                from: from.to_owned(),
                to: to.clone(),
            });
        } else {
            merge_entries(&mut part, from, to, &[generated_conf, PENDING]);
        }
    }
    part.steps.push(Step::Own {
        root: to.clone(),
        owner: target.owner.clone(),
    });
    part.steps.push(Step::Marker {
        dir: to.clone(),
        from: from.to_owned(),
    });
    if source.is_some() && resolved(from) != resolved(to) && exists(to) {
        part.steps.push(Step::RemoveDir {
            path: from.to_owned(),
        });
    }
    part
}

fn remove_conf(path: PathBuf) -> Step {
    Step::Remove {
        path,
        why: "nix-bitcoin wrote it at every start; chainstead's is in the Nix store",
    }
}

/// Where a file of LND's now is: still in nix-bitcoin's tree, or already
/// moved by an earlier, interrupted run.
fn either(a: PathBuf, b: PathBuf) -> Option<PathBuf> {
    [a, b].into_iter().find(|p| exists(p))
}

/// Small files copied to where chainstead reads them: nothing when the
/// destination has the same bytes, a problem when it differs.
fn copy_unless_same(part: &mut Part, from: &Path, to: &Path, mode: u32, owner: &Account) {
    // Wrapped so the bytes of a key or password are wiped when dropped.
    let read = |p: &Path| fs::read(p).map(Zeroizing::new);
    match (read(from), read(to)) {
        (Ok(a), Ok(b)) if a == b => {}
        (Ok(_), Ok(_)) => part.problems.push(format!(
            "{} already exists and differs from {}: chainstead's LND may have made its own. \
             Compare them by hand; move the wrong one aside",
            to.display(),
            from.display()
        )),
        (Ok(_), Err(_)) => part.steps.push(Step::Copy {
            from: from.to_owned(),
            to: to.to_owned(),
            mode,
            uid: owner.uid,
            gid: owner.gid,
        }),
        (Err(e), _) if e.kind() == ErrorKind::NotFound => {}
        (Err(e), _) => part
            .problems
            .push(format!("failed to read {}: {e}", from.display())),
    }
}

fn lnd_part(req: &Request, t: &LndTarget) -> Part {
    let mut part = Part {
        service: "lnd",
        daemons: &["lnd"],
        ..Part::default()
    };
    let net = &req.network;
    let from = &req.source.lnd;
    let secrets = &req.source.secrets;
    let data = t.dir.join("data");
    let marker = data.join(MARKER);
    let chain_rel = Path::new("chain/bitcoin").join(net);
    let graph_rel = Path::new("graph").join(net);

    if source_dir(&mut part, "--nix-bitcoin-lnd", from).is_none() {
        if part.problems.is_empty() {
            part.notes.push(if exists(&marker) {
                format!("already adopted into {}", t.dir.display())
            } else {
                format!(
                    "no nix-bitcoin data at {}: nothing to adopt",
                    from.display()
                )
            });
        }
        return part;
    }

    // nix-bitcoin ran LND with datadir=<dataDir> (lnd.nix, lnd.conf), so
    // chain/ and graph/ lie directly in it; chainstead's LND, with
    // --lnddir=<dir>, keeps them in <dir>/data (lnd config.go, ValidateConfig).
    // The watchtower's directory is not below that datadir: nix-bitcoin sets
    // no lnddir, so it is LND's default, $HOME/.lnd (the lnd user's home is
    // the dataDir), and LND moves the tower directory only for a non-default
    // lnddir (lnd config.go, ValidateConfig). `watchtower/` in the datadir is
    // a towerdir set by hand.
    let is_dir = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let (by_hand, default_tower) = (from.join("watchtower"), from.join(".lnd/data/watchtower"));
    if is_dir(&by_hand) && is_dir(&default_tower) {
        part.problems.push(format!(
            "both {} and {} hold watchtower data: keep the one your towerdir named, move the \
             other aside, and run this again",
            by_hand.display(),
            default_tower.display()
        ));
        return part;
    }
    let tower = if is_dir(&by_hand) {
        by_hand
    } else {
        default_tower
    };
    let movable: Vec<(&str, PathBuf)> = [
        ("chain", from.join("chain")),
        ("graph", from.join("graph")),
        ("watchtower", tower),
    ]
    .into_iter()
    .filter(|(_, p)| is_dir(p))
    .collect();

    // Once adopted, chainstead's files are its own: a password rotated, a
    // new certificate or nix-bitcoin's leftover secrets differing from them
    // is no reason to hold the daemons at the next boot.
    if exists(&marker) {
        if movable.is_empty() {
            part.notes
                .push(format!("already adopted into {}", t.dir.display()));
        } else {
            part.problems.push(format!(
                "{} holds LND data again ({}), though it was adopted into {} before: did a \
                 nix-bitcoin generation run after the migration? Keep both LNDs stopped and \
                 compare by hand",
                from.display(),
                movable
                    .iter()
                    .map(|(d, _)| *d)
                    .collect::<Vec<_>>()
                    .join(", "),
                t.dir.display()
            ));
        }
        if exists(&from.join("lnd-seed-mnemonic")) {
            part.notes.push(format!(
                "{} appeared after the migration (a nix-bitcoin generation booted?): it is not \
                 the seed of the adopted wallet; remove it",
                from.join("lnd-seed-mnemonic").display()
            ));
        }
        return part;
    }

    // The wallet must be where this network's LND looks for it.
    let wallet = either(
        from.join(&chain_rel).join("wallet.db"),
        data.join(&chain_rel).join("wallet.db"),
    );
    if wallet.is_none() && !movable.is_empty() {
        let found: Vec<String> = fs::read_dir(from.join("chain/bitcoin"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        part.problems.push(format!(
            "no wallet.db in {} for network {net} (networks found: {}): check --network",
            from.join("chain/bitcoin").display(),
            if found.is_empty() {
                "none".to_owned()
            } else {
                found.join(", ")
            }
        ));
        return part;
    }

    if !movable.is_empty() {
        if !same_file_system(&mut part, from, &t.dir) {
            return part;
        }
        for (dir, mode) in [(&t.dir, 0o711), (&data, 0o700)] {
            if !exists(dir) {
                part.steps.push(Step::MakeDir {
                    path: dir.clone(),
                    mode,
                    uid: t.owner.uid,
                    gid: t.owner.gid,
                });
            }
        }
        for (d, src) in &movable {
            let (src, dst) = (src.clone(), data.join(d));
            if exists(&dst) && !is_hollow(&dst) {
                part.problems.push(format!(
                    "{} and {} both exist: chainstead's LND has data of its own (a wallet made \
                     before the migration?). If it holds no funds, stop lnd, move {} aside, and \
                     run this again",
                    src.display(),
                    dst.display(),
                    data.display()
                ));
                continue;
            }
            rename_over(&mut part.steps, src.clone(), dst.clone());
            if *d != "watchtower" {
                part.steps.push(Step::Tombstone {
                    path: src,
                    moved_to: dst,
                });
            }
        }
    }

    // A run cut short between a rename and its tombstone leaves the
    // nix-bitcoin path empty: the tombstone is still due.
    for d in ["chain", "graph"] {
        let (src, dst) = (from.join(d), data.join(d));
        if !exists(&src) && exists(&dst) {
            part.steps.push(Step::Tombstone {
                path: src,
                moved_to: dst,
            });
        }
    }

    // The databases to hold locked: wherever they are now.
    for rel in [
        graph_rel.join("channel.db"),
        chain_rel.join("wallet.db"),
        chain_rel.join("macaroons.db"),
    ] {
        if let Some(p) = either(from.join(&rel), data.join(&rel)) {
            if rel.ends_with("channel.db") {
                match fs::metadata(&p) {
                    Ok(m) => part.channel_db = Some((p.clone(), m.ino())),
                    Err(e) => part
                        .problems
                        .push(format!("failed to inspect {}: {e}", p.display())),
                }
            }
            part.databases.push(p);
        }
    }

    // The three default macaroons, beside the wallet in nix-bitcoin's
    // layout, go to chainstead's macaroon directory (lnd.nix: *macaroonpath).
    let mut macaroons = Vec::new();
    for (name, mode) in [
        ("admin.macaroon", 0o640),
        ("readonly.macaroon", 0o644),
        ("invoice.macaroon", 0o644),
    ] {
        let to = t.macaroon_dir.join(name);
        let Some(now) = either(
            from.join(&chain_rel).join(name),
            data.join(&chain_rel).join(name),
        ) else {
            // Moved by an earlier run, perhaps cut short before its mode was set.
            let wrong = fs::symlink_metadata(&to).is_ok_and(|m| {
                m.mode() & 0o7777 != mode || m.uid() != t.owner.uid || m.gid() != t.macaroon_gid
            });
            if wrong && !exists(&marker) {
                part.steps.push(Step::Chmod {
                    path: to,
                    mode,
                    uid: t.owner.uid,
                    gid: t.macaroon_gid,
                });
            }
            continue;
        };
        // After the renames above, it is below data/.
        let after = data.join(&chain_rel).join(name);
        match (fs::read(&now), fs::read(&to)) {
            (Ok(a), Ok(b)) if a == b => part.steps.push(Step::Remove {
                path: after,
                why: "the same macaroon is already in the macaroon directory",
            }),
            (Ok(_), Ok(_)) => part.problems.push(format!(
                "{} differs from {}: chainstead's LND made its own macaroons. Move {} aside and \
                 run this again",
                to.display(),
                now.display(),
                to.display()
            )),
            _ => macaroons.push((after, to, mode)),
        }
    }
    if !macaroons.is_empty() && !exists(&t.macaroon_dir) {
        part.steps.push(Step::MakeDir {
            path: t.macaroon_dir.clone(),
            // Without the setgid bit, which a sandbox with RestrictSUIDSGID=
            // refuses and root outside the group cannot keep: the storage
            // setup's tmpfiles rule (2750) sets it before LND starts, and
            // the moved macaroons get the group themselves (Chmod below).
            mode: 0o750,
            uid: t.owner.uid,
            gid: t.macaroon_gid,
        });
    }
    for (after, to, mode) in macaroons {
        part.steps.push(Step::Rename {
            from: after,
            to: to.clone(),
        });
        part.steps.push(Step::Chmod {
            path: to,
            mode,
            uid: t.owner.uid,
            gid: t.macaroon_gid,
        });
    }

    // The TLS pair: clients that pinned LND's certificate keep working.
    copy_unless_same(
        &mut part,
        &secrets.join("lnd-cert"),
        &t.dir.join("tls.cert"),
        0o644,
        &t.owner,
    );
    copy_unless_same(
        &mut part,
        &secrets.join("lnd-key"),
        &t.dir.join("tls.key"),
        0o600,
        &t.owner,
    );

    // The wallet password, byte for byte: LND unlocks the adopted wallet with
    // it (`wallet-unlock-password-file`).
    let password = secrets.join("lnd-wallet-password");
    if exists(&password) {
        copy_unless_same(&mut part, &password, &t.password_file, 0o400, &t.owner);
    } else if !exists(&t.password_file) && wallet.is_some() {
        part.problems.push(format!(
            "{} is missing and {} does not exist: without the password the adopted wallet \
             cannot be unlocked. Put the password there (owner lnd, mode 0400) and run this again",
            password.display(),
            t.password_file.display()
        ));
    }

    let old_seed = from.join("lnd-seed-mnemonic");
    match fs::read_to_string(&old_seed).map(Zeroizing::new) {
        Ok(text) => match seed::normalise(&text) {
            Ok(words) => match fs::read_to_string(&t.seed_file).map(Zeroizing::new) {
                Ok(have) if have.trim() == words.trim() => part.steps.push(Step::Remove {
                    path: old_seed,
                    why: "the same seed is already in chainstead's seed file",
                }),
                Ok(_) => part.problems.push(format!(
                    "{} holds a different seed than {}: chainstead made a wallet of its own? \
                     Keep both papers, move {} aside only if that wallet holds nothing",
                    t.seed_file.display(),
                    old_seed.display(),
                    t.seed_file.display()
                )),
                Err(_) => part.steps.push(Step::Seed {
                    from: old_seed,
                    to: t.seed_file.clone(),
                }),
            },
            Err(e) => part.problems.push(format!("{}: {e:#}", old_seed.display())),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if !exists(&t.seed_file) {
                part.notes.push(format!(
                    "no seed file at {}: the seed exists only where you wrote it down",
                    old_seed.display()
                ));
            }
        }
        Err(e) => part
            .problems
            .push(format!("failed to read {}: {e}", old_seed.display())),
    }

    let conf = from.join("lnd.conf");
    if exists(&conf) {
        part.steps.push(Step::Remove {
            path: conf,
            why: "nix-bitcoin wrote it at every start, with bitcoind's RPC password; chainstead's is in the Nix store",
        });
    }

    let adopted = exists(&marker);
    if wallet.is_some() && !adopted {
        part.steps.push(Step::Own {
            root: data.clone(),
            owner: t.owner.clone(),
        });
        part.steps.push(Step::Marker {
            dir: data,
            from: from.to_owned(),
        });
    } else if part.steps.is_empty() {
        part.notes.push(if adopted {
            format!("already adopted into {}", t.dir.display())
        } else {
            format!(
                "no nix-bitcoin wallet at {}: nothing to adopt",
                from.display()
            )
        });
    }
    part
}
