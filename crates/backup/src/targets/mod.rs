//! Backup targets. Every target stores immutable versions under their own
//! names and then moves a small `latest` pointer forward, never backward:
//! a copy that is being written is never what `latest` names, and an older
//! version can never replace a newer one as `latest`.

use std::path::Path;

use anyhow::{bail, Result};

use crate::manifest::{Retention, TargetSpec};
use crate::version::{self, Artifact, Kind};

pub mod directory;
pub mod object;
pub mod openbao;
pub mod pbs;

pub const LATEST: &str = "latest";

/// A target's `latest` names a version newer (by name) than the one being
/// pushed: a name taken while the clock ran ahead, or before it stepped
/// back. `latest` is not moved back and the push is not counted as done;
/// the pusher names the current content anew, after `latest`.
#[derive(Debug)]
pub struct NewerOnTarget {
    pub latest: String,
    pub pushed: String,
}

impl std::fmt::Display for NewerOnTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "failed to move latest to {}: the target's latest names {}, which is newer by name \
             (named while the clock was ahead, or before it stepped back); the current content \
             gets a newer name",
            self.pushed, self.latest
        )
    }
}

impl std::error::Error for NewerOnTarget {}

/// What a put does with a target's current `latest`: `Ok(true)` to move it
/// to `pushed`, `Ok(false)` when it already names `pushed`, and
/// [`NewerOnTarget`] when it names a newer version.
pub fn should_move_latest(current: Option<&str>, pushed: &str) -> Result<bool> {
    match current {
        None => Ok(true),
        Some(c) if c == pushed => Ok(false),
        Some(c) if version::newer(pushed, c) => Ok(true),
        Some(c) => Err(NewerOnTarget {
            latest: c.to_string(),
            pushed: pushed.to_string(),
        }
        .into()),
    }
}

pub enum Backend {
    Directory(directory::DirStore),
    Object(object::ObjectTarget),
    Openbao(openbao::BaoTarget),
    Pbs(pbs::PbsTarget),
}

impl Backend {
    /// Builds the client; reads the credential files (the unit's
    /// `LoadCredential=` copies, made when it starts).
    pub fn from_spec(spec: &TargetSpec, scratch: &Path) -> Result<Self> {
        Ok(match spec {
            TargetSpec::Directory { path, .. } => {
                Backend::Directory(directory::DirStore::new(path.clone()))
            }
            TargetSpec::S3 { .. } | TargetSpec::Webdav { .. } => {
                Backend::Object(object::ObjectTarget::from_spec(spec)?)
            }
            TargetSpec::Openbao { .. } => Backend::Openbao(openbao::BaoTarget::from_spec(spec)?),
            TargetSpec::Pbs { .. } => Backend::Pbs(pbs::PbsTarget::from_spec(spec, scratch)?),
        })
    }

    /// Stores the artifact durably and moves `latest` to it. Returns once
    /// acknowledged; a target whose `latest` names a newer version is an
    /// error ([`NewerOnTarget`]), never a silent success.
    pub async fn put(&self, a: &Artifact<'_>) -> Result<()> {
        match self {
            Backend::Directory(d) => d.put(a).await,
            Backend::Object(o) => o.put(a).await,
            Backend::Openbao(b) => b.put(a).await,
            Backend::Pbs(p) => p.put(a).await,
        }
    }

    /// The name `latest` points to, if any.
    pub async fn latest(&self, kind: Kind) -> Result<Option<String>> {
        match self {
            Backend::Directory(d) => d.latest(kind).await,
            Backend::Object(o) => o.latest(kind).await,
            Backend::Openbao(b) => b.latest(kind).await,
            Backend::Pbs(_) => bail!("{}", pbs::NO_READ),
        }
    }

    /// Whether the target answers: a read of `latest` (for a directory,
    /// also that its folder exists, since a missing `latest` there reads
    /// as "none"). `None` for PBS, which cannot be read.
    pub async fn probe(&self, kind: Kind) -> Option<Result<()>> {
        Some(match self {
            Backend::Directory(d) => d.probe(kind).await,
            Backend::Object(o) => o.latest(kind).await.map(drop),
            Backend::Openbao(b) => b.latest(kind).await.map(drop),
            Backend::Pbs(_) => return None,
        })
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        match self {
            Backend::Directory(d) => d.get(kind, name).await,
            Backend::Object(o) => o.get(kind, name).await,
            Backend::Openbao(b) => b.get(kind, name).await,
            Backend::Pbs(_) => bail!("{}", pbs::NO_READ),
        }
    }

    /// Version names held, any order.
    pub async fn list(&self, kind: Kind) -> Result<Vec<String>> {
        match self {
            Backend::Directory(d) => d.list(kind).await,
            Backend::Object(o) => o.list(kind).await,
            Backend::Openbao(b) => b.list(kind).await,
            Backend::Pbs(_) => bail!("{}", pbs::NO_READ),
        }
    }

    /// Applies retention where the tool owns it (directory, S3, WebDAV).
    /// OpenBao keeps `max_versions` of the mount; PBS has prune jobs.
    /// `keep`: plain names never deleted (the current version in state).
    pub async fn prune(&self, kind: Kind, r: &Retention, keep: &[&str]) -> Result<usize> {
        let (names, latest) = match self {
            Backend::Directory(_) | Backend::Object(_) => {
                (self.list(kind).await?, self.latest(kind).await?)
            }
            Backend::Openbao(_) | Backend::Pbs(_) => return Ok(0),
        };
        let doomed = to_delete(kind, names, latest.as_deref(), keep, r, chrono::Utc::now());
        for n in &doomed {
            match self {
                Backend::Directory(d) => d.delete(kind, n).await?,
                Backend::Object(o) => o.delete(kind, n).await?,
                _ => {}
            }
        }
        Ok(doomed.len())
    }
}

/// Retention: keep the newest `keep_last`; beyond those, delete what is
/// older than `max_age_days` (or everything beyond, without an age limit).
/// The newest version, the one `latest` names and those in `keep` (plain
/// names: the current version in state, whatever its name sorts as) are
/// never deleted.
pub fn to_delete(
    kind: Kind,
    mut names: Vec<String>,
    latest: Option<&str>,
    keep_names: &[&str],
    r: &Retention,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    names.retain(|n| version::is_version(kind, n));
    names.sort();
    names.reverse();
    let keep = r.keep_last.max(1);
    names
        .into_iter()
        .skip(keep)
        .filter(|n| Some(n.as_str()) != latest)
        .filter(|n| {
            let plain = n.strip_suffix(version::AGE_SUFFIX).unwrap_or(n);
            !keep_names.contains(&plain)
        })
        .filter(|n| match r.max_age_days {
            None => true,
            Some(days) => version::time_of(kind, n)
                .map(|t| now - t > chrono::Duration::days(days as i64))
                .unwrap_or(false),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_newest_and_latest() {
        let now = chrono::Utc::now();
        let h = "0123456789ab";
        let names: Vec<String> = (0..10)
            .map(|d| version::channel_name(now - chrono::Duration::days(d * 10), h))
            .collect();
        let r = Retention {
            keep_last: 3,
            max_age_days: Some(45),
        };
        let del = to_delete(Kind::Channel, names.clone(), Some(&names[9]), &[], &r, now);
        // Kept: 3 newest; among the rest, days 30 and 40 are young enough;
        // day 90 is what `latest` names, so it stays too.
        assert_eq!(del, names[5..9].to_vec());
        let r = Retention {
            keep_last: 1,
            max_age_days: None,
        };
        let mut with_junk = names.clone();
        with_junk.push("latest".into());
        with_junk.push(".tmp-x".into());
        let del = to_delete(Kind::Channel, with_junk, None, &[], &r, now);
        assert_eq!(del.len(), 9);
        assert!(!del.contains(&names[0]));
    }

    /// keep_last=1 after a clock step: the version state names as current
    /// sorts below one named while the clock was ahead; it must survive.
    #[test]
    fn retention_never_deletes_the_current_version() {
        let now = chrono::Utc::now();
        let current = version::channel_name(now, "0123456789ab");
        let ahead = version::channel_name(now + chrono::Duration::days(300), "ffffffffffff");
        let r = Retention {
            keep_last: 1,
            max_age_days: None,
        };
        let names = vec![format!("{current}.age"), format!("{ahead}.age")];
        let del = to_delete(Kind::Channel, names, None, &[current.as_str()], &r, now);
        assert!(del.is_empty(), "{del:?}");
    }

    #[test]
    fn latest_moves_forward_only_and_refuses_loudly() {
        let old = "channel.backup.20261121T070000.000000000Z.aaaaaaaaaaaa";
        let new = "channel.backup.20261121T070001.000000000Z.bbbbbbbbbbbb";
        assert!(should_move_latest(None, old).unwrap());
        assert!(should_move_latest(Some(old), new).unwrap());
        assert!(!should_move_latest(Some(new), new).unwrap());
        let err = should_move_latest(Some(new), old).unwrap_err();
        assert!(err.downcast_ref::<NewerOnTarget>().is_some(), "{err:#}");
    }
}
