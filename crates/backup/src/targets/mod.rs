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

pub enum Backend {
    Directory(directory::DirStore),
    Object(object::ObjectTarget),
    Openbao(openbao::BaoTarget),
    Pbs(pbs::PbsTarget),
}

impl Backend {
    /// Builds the client; reads credential files (so a secret rotated by the
    /// loader is picked up the next time a target is rebuilt).
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

    /// Stores the artifact durably and moves `latest` to it unless the
    /// target already names a newer version. Returns once acknowledged.
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
    pub async fn prune(&self, kind: Kind, r: &Retention) -> Result<usize> {
        let (names, latest) = match self {
            Backend::Directory(_) | Backend::Object(_) => {
                (self.list(kind).await?, self.latest(kind).await?)
            }
            Backend::Openbao(_) | Backend::Pbs(_) => return Ok(0),
        };
        let doomed = to_delete(kind, names, latest.as_deref(), r, chrono::Utc::now());
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
/// The newest version and the one `latest` names are never deleted.
pub fn to_delete(
    kind: Kind,
    mut names: Vec<String>,
    latest: Option<&str>,
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
        let del = to_delete(Kind::Channel, names.clone(), Some(&names[9]), &r, now);
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
        let del = to_delete(Kind::Channel, with_junk, None, &r, now);
        assert_eq!(del.len(), 9);
        assert!(!del.contains(&names[0]));
    }
}
