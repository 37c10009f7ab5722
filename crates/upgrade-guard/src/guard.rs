//! What each subcommand does to the record and the data.
//!
//! The order that keeps a crash harmless: `check` takes the copy first and
//! writes the pending upgrade (with the copy's location) only once the copy
//! is complete; `record` marks the data as the new version only after the
//! service has started. A crash between the two leaves a pending upgrade
//! that the next `check` of the same version resumes (the copy is kept) and
//! the next `check` of an older version refuses.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::copy;
use crate::error::GuardError;
use crate::manifest::{Manifest, PreUpgrade, Service};
use crate::snapshot;
use crate::state::{self, CopyKind, CopyRecord, Pending, State};
use crate::version::Version;

/// What the machine provides: the clock and the free space of a directory.
/// Tests replace both.
pub struct Env<'a> {
    pub now: SystemTime,
    pub available: &'a dyn Fn(&Path) -> Result<u64>,
}

impl Env<'static> {
    pub fn real() -> Self {
        Self {
            now: SystemTime::now(),
            available: &copy::available_bytes,
        }
    }
}

impl Env<'_> {
    /// `20261201T230025Z`: sortable, and valid in file and snapshot names.
    fn stamp(&self) -> String {
        humantime::format_rfc3339_seconds(self.now)
            .to_string()
            .replace(['-', ':'], "")
    }
}

/// What the record says about the package about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No version recorded yet.
    FirstStart,
    Same,
    /// Older package on newer data, allowed by allowDowngrade.
    AllowedDowngrade {
        data: String,
    },
    /// Newer package: take the pre-upgrade copy.
    Upgrade {
        from: String,
    },
    /// This upgrade was prepared already and its start never recorded.
    Resume {
        from: String,
        copy: Option<String>,
    },
}

/// What `check` did, for the caller and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    FirstStart,
    Same,
    AllowedDowngrade,
    Upgraded { copy: Option<String> },
    Resumed { copy: Option<String> },
}

fn parse(v: &str) -> Result<Version> {
    Ok(Version::parse(v)?)
}

/// Decides without touching anything.
pub fn plan(m: &Manifest, state: Option<&State>) -> Result<Plan> {
    let service = m.service.name();
    let pkg = parse(&m.package_version)?;
    let Some(st) = state else {
        return Ok(Plan::FirstStart);
    };
    if let Some(p) = &st.pending {
        if parse(&p.version)? > pkg && !m.allow_downgrade {
            return Err(GuardError::Interrupted {
                service,
                package: m.package_version.clone(),
                attempted: p.version.clone(),
                data: st
                    .data_version
                    .clone()
                    .unwrap_or_else(|| "an unrecorded version".into()),
                runbook: m.runbook.clone(),
            }
            .into());
        }
    }
    let Some(data) = &st.data_version else {
        return Ok(Plan::FirstStart);
    };
    let dv = parse(data).with_context(|| "the guard record's data_version".to_string())?;
    Ok(match pkg.cmp(&dv) {
        std::cmp::Ordering::Equal => Plan::Same,
        std::cmp::Ordering::Less if m.allow_downgrade => {
            Plan::AllowedDowngrade { data: data.clone() }
        }
        std::cmp::Ordering::Less => {
            return Err(GuardError::Downgrade {
                service,
                data: data.clone(),
                package: m.package_version.clone(),
                runbook: m.runbook.clone(),
            }
            .into())
        }
        std::cmp::Ordering::Greater => match &st.pending {
            Some(p) if parse(&p.version)? == pkg && p.from.as_deref() == Some(data.as_str()) => {
                Plan::Resume {
                    from: data.clone(),
                    copy: p.copy.clone(),
                }
            }
            _ => Plan::Upgrade { from: data.clone() },
        },
    })
}

/// Before the service starts (privileged unit): decide, take the copy on
/// an upgrade, write the pending start.
pub fn check(m: &Manifest, env: &Env) -> Result<Outcome> {
    let service = m.service.name();
    let pkg = &m.package_version;
    let loaded = State::load(&m.state_file)?;
    let plan = plan(m, loaded.as_ref())?;
    let mut st = loaded.unwrap_or_else(State::new);
    let pending = |from: Option<String>, copy: Option<String>| Pending {
        version: pkg.clone(),
        from,
        copy,
        prepared_at: humantime::format_rfc3339_seconds(env.now).to_string(),
    };
    match plan {
        Plan::FirstStart => {
            tracing::info!(
                "{service} {pkg}: no data version recorded yet (first start under the guard); \
                 it is recorded once {service} has started"
            );
            st.pending = Some(pending(None, None));
            st.save(&m.state_file)?;
            Ok(Outcome::FirstStart)
        }
        Plan::Same => {
            // A pending start of an older version (an allowed downgrade
            // that never started) no longer applies.
            if st.pending.take().is_some() {
                st.save(&m.state_file)?;
            }
            tracing::info!("{service} {pkg}: the data's version, nothing to do");
            Ok(Outcome::Same)
        }
        Plan::AllowedDowngrade { data } => {
            tracing::warn!(
                "{service} {pkg} starts on data last used by {service} {data}: allowDowngrade is set"
            );
            st.pending = Some(pending(Some(data), None));
            st.save(&m.state_file)?;
            Ok(Outcome::AllowedDowngrade)
        }
        Plan::Resume { from, copy } if resumable(m, copy.as_deref()) => {
            tracing::info!(
                "resuming the upgrade of {service} from {from} to {pkg} after a start that never \
                 completed: {}",
                match &copy {
                    Some(c) => format!("the pre-upgrade copy at {c} is kept"),
                    None => "no pre-upgrade copy is configured".into(),
                }
            );
            Ok(Outcome::Resumed { copy })
        }
        Plan::Resume { from, .. } | Plan::Upgrade { from } => {
            let taken = take_pre_upgrade(m, env, &from)?;
            let location = taken.as_ref().map(|r| r.location.clone());
            if let Some(rec) = taken {
                st.copies.push(CopyRecord {
                    starts_at_copy: st.starts,
                    ..rec
                });
            }
            st.pending = Some(pending(Some(from.clone()), location.clone()));
            st.save(&m.state_file)?;
            tracing::info!(
                "upgrading {service} from {from} to {pkg}: {}",
                match &location {
                    Some(l) => format!("pre-upgrade copy at {l}"),
                    None => "no pre-upgrade copy (none configured for this service)".into(),
                }
            );
            prune(m, &mut st)?;
            Ok(Outcome::Upgraded { copy: location })
        }
    }
}

/// A prepared upgrade can go on when it has the copy the manifest asks
/// for and that copy is still there.
fn resumable(m: &Manifest, copy: Option<&str>) -> bool {
    match (&m.pre_upgrade, copy) {
        (PreUpgrade::None {}, _) => true,
        (_, None) => false,
        (_, Some(c)) => location_exists(m, c),
    }
}

fn location_exists(m: &Manifest, location: &str) -> bool {
    match &m.pre_upgrade {
        // A snapshot is not checked here: listing it needs the tool, and a
        // vanished one is reported by retention at the next upgrade.
        PreUpgrade::Zfs { .. } => true,
        _ => Path::new(location).exists(),
    }
}

/// Takes the copy or snapshot; `None` when none is configured.
fn take_pre_upgrade(m: &Manifest, env: &Env, from: &str) -> Result<Option<CopyRecord>> {
    let service = m.service.name();
    let name = snapshot::snapshot_name(service, &env.stamp(), from, &m.package_version);
    let record = |location: String, kind| CopyRecord {
        location,
        kind,
        from_version: from.to_string(),
        to_version: m.package_version.clone(),
        starts_at_copy: 0,
        taken_at: humantime::format_rfc3339_seconds(env.now).to_string(),
    };
    Ok(match &m.pre_upgrade {
        PreUpgrade::None {} => None,
        PreUpgrade::Copy {
            dir,
            paths,
            reserve_bytes,
            ..
        } => {
            let at = copy::take_copy(dir, &name, paths, *reserve_bytes, env.available)?;
            Some(record(at.display().to_string(), CopyKind::Copy))
        }
        PreUpgrade::Zfs {
            program, dataset, ..
        } => {
            snapshot::zfs_snapshot(program, dataset, &name).run()?;
            Some(record(format!("{dataset}@{name}"), CopyKind::Zfs))
        }
        PreUpgrade::Btrfs {
            program,
            subvolume,
            dir,
            ..
        } => {
            fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            snapshot::btrfs_snapshot(program, subvolume, dir, &name).run()?;
            Some(record(
                dir.join(&name).display().to_string(),
                CopyKind::Btrfs,
            ))
        }
    })
}

/// Deletes the guard's copies or snapshots beyond the newest `keep`, and
/// drops the records of copies that are gone.
fn prune(m: &Manifest, st: &mut State) -> Result<()> {
    let service = m.service.name();
    let result = (|| -> Result<()> {
        match &m.pre_upgrade {
            PreUpgrade::None {} => {}
            PreUpgrade::Copy { dir, keep, .. } => {
                for name in snapshot::to_delete(&dir_names(dir)?, service, *keep) {
                    let p = dir.join(&name);
                    fs::remove_dir_all(&p).with_context(|| {
                        format!("failed to remove the old copy {}", p.display())
                    })?;
                    tracing::info!("removed the old pre-upgrade copy {}", p.display());
                }
            }
            PreUpgrade::Btrfs {
                program, dir, keep, ..
            } => {
                for name in snapshot::to_delete(&dir_names(dir)?, service, *keep) {
                    snapshot::btrfs_delete(program, &dir.join(&name)).run()?;
                }
            }
            PreUpgrade::Zfs {
                program,
                dataset,
                keep,
            } => {
                let out = snapshot::zfs_list(program, dataset).run()?;
                let names: Vec<String> = out.lines().map(|l| l.trim().to_string()).collect();
                for snap in snapshot::to_delete(&names, service, *keep) {
                    snapshot::zfs_destroy(program, &snap).run()?;
                    st.copies.retain(|c| c.location != snap);
                }
            }
        }
        Ok(())
    })();
    // Retention never fails an upgrade whose copy is taken.
    if let Err(e) = result {
        tracing::warn!("failed to remove old pre-upgrade copies of {service}: {e:#}");
    }
    let before = st.copies.len();
    st.copies
        .retain(|c| c.kind == CopyKind::Zfs || Path::new(&c.location).exists());
    if st.copies.len() != before {
        st.save(&m.state_file)?;
    }
    Ok(())
}

fn dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// Between `check` and LND's start (a unit of its own, root, for the
/// backup pusher's credentials): when `check` prepared an upgrade, pushes
/// LND's current channel.backup once through `chainstead-backup push`.
/// Returns whether it pushed.
pub fn push_backup(m: &Manifest) -> Result<bool> {
    let Some(push) = &m.backup_push else {
        bail!("failed to push a channel backup: the manifest has no backup_push section");
    };
    let st = State::load(&m.state_file)?;
    let upgrading = st
        .as_ref()
        .and_then(|s| s.pending.as_ref())
        .filter(|p| p.version == m.package_version && p.from.is_some())
        .filter(|_| matches!(plan(m, st.as_ref()), Ok(Plan::Resume { .. })));
    let Some(p) = upgrading else {
        tracing::info!(
            "lnd {}: no upgrade pending, no extra channel backup push",
            m.package_version
        );
        return Ok(false);
    };
    let status = Command::new(&push.program)
        .arg("push")
        .arg("--manifest")
        .arg(&push.manifest)
        .arg("--timeout")
        .arg(push.timeout_secs.to_string())
        .status()
        .with_context(|| format!("failed to run {} push", push.program.display()))?;
    if !status.success() {
        bail!(
            "failed to push a fresh channel backup before the upgrade of lnd from {} to {} \
             ({} push: {status}); the last one the backup pusher sent still covers every channel",
            p.from.as_deref().unwrap_or("?"),
            p.version,
            push.program.display()
        );
    }
    tracing::info!(
        "pushed a fresh channel backup before the upgrade of lnd from {} to {}",
        p.from.as_deref().unwrap_or("?"),
        p.version
    );
    Ok(true)
}

/// The service's own ExecStartPre: refuses to start what `check` did not
/// prepare. Changes nothing.
pub fn verify(m: &Manifest) -> Result<Plan> {
    let service = m.service.name();
    let st = State::load(&m.state_file)?;
    let plan = plan(m, st.as_ref())?;
    let prepared = st
        .as_ref()
        .and_then(|s| s.pending.as_ref())
        .is_some_and(|p| p.version == m.package_version);
    let ok = match &plan {
        Plan::FirstStart => prepared,
        Plan::Same | Plan::AllowedDowngrade { .. } => true,
        Plan::Resume { copy, .. } => resumable(m, copy.as_deref()),
        Plan::Upgrade { .. } => false,
    };
    if !ok {
        return Err(GuardError::NotPrepared {
            service,
            package: m.package_version.clone(),
            data: st
                .and_then(|s| s.data_version)
                .unwrap_or_else(|| "an unrecorded version".into()),
            runbook: m.runbook.clone(),
        }
        .into());
    }
    tracing::info!(
        "{service} {}: the data-version guard lets it start",
        m.package_version
    );
    Ok(plan)
}

/// After a successful start: the data is now the package's version.
pub fn record(m: &Manifest) -> Result<State> {
    let service = m.service.name();
    let mut st = State::load(&m.state_file)?.unwrap_or_else(State::new);
    if let Some(data) = &st.data_version {
        if parse(data)? > parse(&m.package_version)? && !m.allow_downgrade {
            return Err(GuardError::Downgrade {
                service,
                data: data.clone(),
                package: m.package_version.clone(),
                runbook: m.runbook.clone(),
            }
            .into());
        }
    }
    st.data_version = Some(m.package_version.clone());
    st.starts += 1;
    st.pending = None;
    st.save(&m.state_file)?;
    tracing::info!(
        "recorded: {service} {} started on its data (start {})",
        m.package_version,
        st.starts
    );
    Ok(st)
}

/// Puts LND's pre-upgrade copy back, with LND stopped, unless LND has
/// started since the copy was taken (then only with `allow_after_newer_run`).
/// The files it replaces are kept beside them as `*.replaced-<time>`.
pub fn restore_lnd(
    m: &Manifest,
    env: &Env,
    copy_at: Option<&Path>,
    allow_after_newer_run: bool,
) -> Result<CopyRecord> {
    if m.service != Service::Lnd {
        bail!(
            "restore-lnd restores LND's data only; this manifest is for {}",
            m.service.name()
        );
    }
    let PreUpgrade::Copy { paths, .. } = &m.pre_upgrade else {
        bail!(
            "restore-lnd restores a pre-upgrade copy, and this manifest takes none \
             (snapshots are rolled back by hand; see {})",
            m.runbook
        );
    };
    let st = State::load(&m.state_file)?.with_context(|| {
        format!(
            "failed to restore: there is no guard record at {}",
            m.state_file.display()
        )
    })?;
    let rec = state::find_copy(&st, copy_at)
        .with_context(|| match copy_at {
            Some(c) => format!(
                "failed to restore: no pre-upgrade copy at {} is recorded",
                c.display()
            ),
            None => "failed to restore: no pre-upgrade copy is recorded".into(),
        })?
        .clone();
    let since = st.starts.saturating_sub(rec.starts_at_copy);
    if since > 0 {
        if !allow_after_newer_run {
            return Err(GuardError::RestoreAfterNewerRun {
                copy: rec.location.clone(),
                from: rec.from_version.clone(),
                to: rec.to_version.clone(),
                since,
                runbook: m.runbook.clone(),
            }
            .into());
        }
        tracing::warn!(
            "restoring {} although LND started {since} time(s) since it was taken \
             (--allow-after-newer-run): never start LND on it while its peers may hold newer \
             channel states",
            rec.location
        );
    }
    for p in paths {
        refuse_if_locked(p)?;
    }
    let stamp = env.stamp();
    let location = PathBuf::from(&rec.location);
    let attrs = copy::load_attributes(&location)?;
    for p in paths {
        restore_one(&location, p, &stamp, &attrs)?;
    }
    let mut st = st;
    st.data_version = Some(rec.from_version.clone());
    st.pending = None;
    st.save(&m.state_file)?;
    tracing::info!(
        "restored the pre-upgrade copy {} (LND {}); the files it replaced are kept as \
         *.replaced-{stamp}. Start LND {} or newer on it",
        rec.location,
        rec.from_version,
        rec.from_version
    );
    Ok(rec)
}

/// LND holds an exclusive lock on its bolt databases while it runs.
fn refuse_if_locked(p: &Path) -> Result<()> {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(meta) = fs::metadata(p) else {
        return Ok(());
    };
    if !meta.is_file() {
        return Ok(());
    }
    let file = fs::File::open(p).with_context(|| format!("failed to open {}", p.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(_unlocked_on_drop) => Ok(()),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(GuardError::LndRunning {
            path: p.to_path_buf(),
        }
        .into()),
        Err((_, e)) => Err(e).with_context(|| format!("failed to lock {}", p.display())),
    }
}

fn restore_one(copy_root: &Path, target: &Path, stamp: &str, attrs: &[copy::Attr]) -> Result<()> {
    let src = copy::inside(copy_root, target);
    if fs::symlink_metadata(&src).is_err() {
        tracing::info!("{} was not in the copy; left as it is", target.display());
        return Ok(());
    }
    let parent = target.parent().with_context(|| {
        format!(
            "failed to restore {}: no parent directory",
            target.display()
        )
    })?;
    let file_name = target
        .file_name()
        .with_context(|| format!("failed to restore {}: no file name", target.display()))?
        .to_string_lossy()
        .into_owned();
    fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    let staging = parent.join(format!(".restoring-{file_name}-{stamp}"));
    let staged = copy::copy_tree(&src, &staging, &mut Vec::new())
        .and_then(|()| copy::apply_attributes(attrs, target, &staging));
    if let Err(e) = staged {
        let _ = fs::remove_dir_all(&staging).or_else(|_| fs::remove_file(&staging));
        return Err(e);
    }
    if fs::symlink_metadata(target).is_ok() {
        let aside = parent.join(format!("{file_name}.replaced-{stamp}"));
        fs::rename(target, &aside).with_context(|| {
            format!(
                "failed to move {} aside to {}",
                target.display(),
                aside.display()
            )
        })?;
    }
    fs::rename(&staging, target)
        .with_context(|| format!("failed to move {} into place", target.display()))?;
    chainstead_common::fs::sync_dir(parent)
}
