//! `status`, `verify` and `restore`: they read the state file and the
//! targets, never the running service.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::manifest::{Manifest, TargetSpec, LOCAL_TARGET};
use crate::state::{self, State};
use crate::targets::directory::DirStore;
use crate::targets::Backend;
use crate::version::{self, Kind, AGE_SUFFIX};

#[derive(Serialize)]
struct TargetStatus {
    name: String,
    kind: String,
    current: bool,
    last_success: Option<f64>,
    age_seconds: Option<f64>,
    last_version: Option<String>,
    last_error: Option<String>,
    last_error_time: Option<f64>,
    failures_total: u64,
    consecutive_failures: u64,
    bytes_pushed_total: u64,
}

#[derive(Serialize)]
struct StatusReport<'a> {
    channel: Option<&'a state::Accepted>,
    snapshot: Option<&'a state::Accepted>,
    rejected: &'a state::Rejected,
    source: &'a state::Source,
    lnd_auth: &'a state::LndAuth,
    targets: Vec<TargetStatus>,
    snapshot_targets: Vec<TargetStatus>,
}

fn target_rows(m: &Manifest, st: &State, kind: Kind) -> Vec<TargetStatus> {
    let now = state::now();
    m.targets
        .iter()
        .map(|t| {
            let ts = st.targets.get(t.name()).cloned().unwrap_or_default();
            let lane = ts.lane(kind).clone();
            TargetStatus {
                name: t.name().into(),
                kind: t.kind().into(),
                current: st.is_current(t.name(), kind),
                age_seconds: lane.last_success.map(|s| (now - s).max(0.0)),
                last_success: lane.last_success,
                last_version: lane.last_name,
                last_error: lane.last_error,
                last_error_time: lane.last_error_time,
                failures_total: lane.failures_total,
                consecutive_failures: lane.consecutive_failures,
                bytes_pushed_total: lane.bytes_pushed_total,
            }
        })
        .collect()
}

fn ago(secs: Option<f64>) -> String {
    match secs {
        None => "never".into(),
        Some(s) if s < 120.0 => format!("{s:.0} s ago"),
        Some(s) if s < 7200.0 => format!("{:.0} min ago", s / 60.0),
        Some(s) if s < 172_800.0 => format!("{:.1} h ago", s / 3600.0),
        Some(s) => format!("{:.1} days ago", s / 86400.0),
    }
}

pub fn status(m: &Manifest, json: bool) -> Result<String> {
    let st = state::load(&m.state_dir)?;
    let report = StatusReport {
        channel: st.channel.as_ref(),
        snapshot: st.snapshot.as_ref(),
        rejected: &st.rejected,
        source: &st.source,
        lnd_auth: &st.lnd_auth,
        targets: target_rows(m, &st, Kind::Channel),
        snapshot_targets: if m.snapshot.is_some() {
            target_rows(m, &st, Kind::Snapshot)
        } else {
            Vec::new()
        },
    };
    if json {
        return serde_json::to_string_pretty(&report).context("failed to render status as JSON");
    }
    let now = state::now();
    let mut out = String::new();
    match &st.channel {
        Some(c) => out.push_str(&format!(
            "channel.backup: {} ({} bytes), first seen {}\n",
            c.name,
            c.size,
            ago(Some(now - c.since))
        )),
        None => out.push_str("channel.backup: never read\n"),
    }
    let src = &st.source;
    if src.failing {
        out.push_str(&format!(
            "CANNOT READ channel.backup since {}: {} (failed reads: {}; last good read {})\n",
            ago(src.last_error_time.map(|t| now - t)),
            src.last_error.as_deref().unwrap_or("?"),
            src.read_failures_total,
            ago(src.last_read.map(|t| now - t)),
        ));
    } else if src.last_read.is_some() {
        out.push_str(&format!(
            "channel.backup last read {} (failed reads: {})\n",
            ago(src.last_read.map(|t| now - t)),
            src.read_failures_total
        ));
    }
    if st.lnd_auth.failures_total > 0 {
        out.push_str(&format!(
            "LND refused the verify macaroon: {} times (last {}: {})\n",
            st.lnd_auth.failures_total,
            ago(st.lnd_auth.last_error_time.map(|t| now - t)),
            st.lnd_auth.last_error.as_deref().unwrap_or("?")
        ));
    }
    if st.rejected.total > 0 {
        out.push_str(&format!(
            "refused reads: {} (last {}: {})\n",
            st.rejected.total,
            ago(st.rejected.last_time.map(|t| now - t)),
            st.rejected.last_reason.as_deref().unwrap_or("?")
        ));
    }
    let mut table = |title: &str, rows: &[TargetStatus]| {
        out.push_str(&format!("\n{title}\n"));
        for r in rows {
            out.push_str(&format!(
                "  {:<12} {:<9} {:<8} last success {:<14} failures {:<5} {}\n",
                r.name,
                r.kind,
                if r.current { "current" } else { "BEHIND" },
                ago(r.age_seconds),
                r.failures_total,
                match (&r.last_error, r.current) {
                    (Some(e), false) => format!("last error: {e}"),
                    _ => String::new(),
                }
            ));
        }
    };
    table("targets (channel.backup):", &report.targets);
    if m.snapshot.is_some() {
        table("targets (snapshots):", &report.snapshot_targets);
    }
    Ok(out)
}

fn backend_for(m: &Manifest, target: &str) -> Result<(Backend, bool)> {
    if target == LOCAL_TARGET {
        return Ok((
            Backend::Directory(DirStore::new(m.state_dir.join("versions"))),
            false,
        ));
    }
    let spec: &TargetSpec =
        m.targets
            .iter()
            .find(|t| t.name() == target)
            .with_context(|| {
                format!(
                "failed to find target \"{target}\" in the manifest (known: {}, {LOCAL_TARGET})",
                m.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            )
            })?;
    Ok((
        Backend::from_spec(spec, &m.state_dir.join("tmp"))?,
        spec.encrypt(),
    ))
}

/// Fetches `name` (or the newest) and returns its plaintext and plain name,
/// checked against the hash in its name.
async fn fetch(
    m: &Manifest,
    backend: &Backend,
    encrypted: bool,
    kind: Kind,
    name: Option<&str>,
) -> Result<(String, Vec<u8>)> {
    let stored = match name {
        Some(n) if encrypted && !n.ends_with(AGE_SUFFIX) => format!("{n}{AGE_SUFFIX}"),
        Some(n) => n.to_string(),
        None => backend
            .latest(kind)
            .await?
            .context("failed to find a latest version: the target holds none")?,
    };
    version::check_name(kind, &stored)?;
    let data = backend.get(kind, &stored).await?;
    let plain = if stored.ends_with(AGE_SUFFIX) {
        let id = m
            .encryption
            .as_ref()
            .and_then(|e| e.identity_file.as_ref())
            .context("failed to decrypt: set encryption.identity_file to the age identity")?;
        crate::crypt::open(id, &data)?
    } else {
        data
    };
    if !version::matches_name(kind, &stored, &plain) {
        bail!("failed to verify {stored}: its content does not match the hash in its name");
    }
    let plain_name = stored
        .strip_suffix(AGE_SUFFIX)
        .unwrap_or(&stored)
        .to_string();
    Ok((plain_name, plain))
}

#[derive(Serialize)]
pub struct VerifyRow {
    pub target: String,
    pub kind: &'static str,
    pub result: String,
    pub ok: bool,
}

/// Fetches the newest copy from every target and checks it byte for byte
/// against the local copy of the same version, and that it is the newest.
pub async fn verify(m: &Manifest) -> Result<Vec<VerifyRow>> {
    let st = state::load(&m.state_dir)?;
    let local = DirStore::new(m.state_dir.join("versions"));
    let mut kinds = vec![(Kind::Channel, st.channel.clone())];
    if m.snapshot.is_some() {
        kinds.push((Kind::Snapshot, st.snapshot.clone()));
    }
    let mut rows = Vec::new();
    let names: Vec<String> = std::iter::once(LOCAL_TARGET.to_string())
        .chain(m.targets.iter().map(|t| t.name().to_string()))
        .collect();
    for (kind, newest) in kinds {
        let checks = names.iter().map(|t| {
            let local = local.clone();
            let newest = newest.clone();
            async move {
                let r = verify_one(m, t, kind, newest.as_ref(), &local).await;
                let (ok, result) = match r {
                    Ok(s) => (true, s),
                    Err(e) => (false, format!("FAILED: {e:#}")),
                };
                VerifyRow {
                    target: t.clone(),
                    kind: kind.as_str(),
                    ok: ok && !result.starts_with("STALE"),
                    result,
                }
            }
        });
        rows.extend(futures::future::join_all(checks).await);
    }
    Ok(rows)
}

async fn verify_one(
    m: &Manifest,
    target: &str,
    kind: Kind,
    newest: Option<&state::Accepted>,
    local: &DirStore,
) -> Result<String> {
    let (backend, encrypted) = backend_for(m, target)?;
    if matches!(backend, Backend::Pbs(_)) {
        return Ok(format!("SKIPPED: {}", crate::targets::pbs::NO_READ));
    }
    let (name, plain) = fetch(m, &backend, encrypted, kind, None).await?;
    let reference = local.get(kind, &name).await.ok();
    if let Some(r) = &reference {
        if r != &plain {
            bail!("{name} differs from the local copy of the same version");
        }
    }
    let checked = if reference.is_some() {
        "matches the local copy byte for byte"
    } else {
        "matches its hash (no local copy to compare)"
    };
    match newest {
        Some(n) if n.name != name => Ok(format!(
            "STALE: holds {name}, newest is {}; {checked}",
            n.name
        )),
        _ => Ok(format!("OK: {name} {checked}")),
    }
}

/// Every readable target's `latest` (plain name), newest first: on a
/// rebuilt host there is no state.json, so this is how the newest copy is
/// found. Targets that cannot be read (PBS, down) are left out.
async fn newest_first(m: &Manifest, kind: Kind) -> Vec<(String, String)> {
    let names = std::iter::once(LOCAL_TARGET.to_string())
        .chain(m.targets.iter().map(|t| t.name().to_string()));
    let reads = names.map(|t| async move {
        let (backend, _) = backend_for(m, &t).ok()?;
        if matches!(backend, Backend::Pbs(_)) {
            return None;
        }
        let latest = tokio::time::timeout(std::time::Duration::from_secs(30), backend.latest(kind));
        match latest.await {
            Ok(Ok(Some(n))) => {
                let plain = n.strip_suffix(AGE_SUFFIX).unwrap_or(&n).to_string();
                Some((t, plain))
            }
            _ => None,
        }
    });
    let mut found: Vec<(String, String)> = futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .filter(|(_, n)| version::is_version(kind, n))
        .collect();
    found.sort_by(|a, b| b.1.cmp(&a.1));
    found
}

/// Writes a verified copy: a channel.backup for
/// `lncli restorechanbackup --multi_file <out>`, or a snapshot unpacked
/// into the directory `<out>`. Without `from`, from the target whose
/// `latest` is the newest (the next one if that copy fails its checks).
/// Returns the target used and the version's name.
pub async fn restore(
    m: &Manifest,
    from: Option<&str>,
    version_name: Option<&str>,
    out: &Path,
    snapshot: bool,
) -> Result<(String, String)> {
    let kind = if snapshot {
        Kind::Snapshot
    } else {
        Kind::Channel
    };
    let (from, name, plain) = match from {
        Some(from) => {
            let (backend, encrypted) = backend_for(m, from)?;
            let (name, plain) = fetch(m, &backend, encrypted, kind, version_name).await?;
            (from.to_string(), name, plain)
        }
        None => {
            let candidates = newest_first(m, kind).await;
            let mut errors = Vec::new();
            let mut got = None;
            for (target, latest) in candidates {
                let want = version_name.unwrap_or(&latest);
                let r = async {
                    let (backend, encrypted) = backend_for(m, &target)?;
                    fetch(m, &backend, encrypted, kind, Some(want)).await
                };
                match r.await {
                    Ok((name, plain)) => {
                        got = Some((target, name, plain));
                        break;
                    }
                    Err(e) => errors.push(format!("{target}: {e:#}")),
                }
            }
            match got {
                Some(g) => g,
                None if errors.is_empty() => bail!(
                    "failed to find a copy: no target could be read or none holds a version \
                     (name one with --from)"
                ),
                None => bail!("failed to restore from any target: {}", errors.join("; ")),
            }
        }
    };
    if snapshot {
        crate::snapshot::unpack(&plain, out)?;
    } else {
        if plain.len() < crate::channel::MIN_SIZE {
            bail!(
                "failed to restore {name}: {} bytes is too small for a channel backup",
                plain.len()
            );
        }
        chainstead_common::fs::write_atomic(out, &plain, 0o600)?;
    }
    Ok((from, name))
}
