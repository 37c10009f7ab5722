//! The guard's record in the service's data directory: the version that
//! last started successfully on the data, an upgrade in progress, and the
//! pre-upgrade copies taken. Written atomically (temp file, fsync, rename),
//! so a crash leaves the old record or the new one.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use chainstead_common::fs::{write_atomic_owned, Owner};
use serde::{Deserialize, Serialize};

/// The only record version this build reads and writes.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// The package version of the last successful start on this data.
    #[serde(default)]
    pub data_version: Option<String>,
    /// Successful starts recorded so far; a copy remembers the count at
    /// the time it was taken, so a later start is visible.
    #[serde(default)]
    pub starts: u64,
    /// A start prepared by `check` that has not been recorded yet.
    #[serde(default)]
    pub pending: Option<Pending>,
    /// Pre-upgrade copies and snapshots, oldest first.
    #[serde(default)]
    pub copies: Vec<CopyRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The package version about to start.
    pub version: String,
    /// The data's version before it (none on a first start).
    #[serde(default)]
    pub from: Option<String>,
    /// Where the pre-upgrade copy or snapshot is, when one was taken.
    #[serde(default)]
    pub copy: Option<String>,
    pub prepared_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRecord {
    /// A directory for a copy, `dataset@name` or a path for a snapshot.
    pub location: String,
    pub kind: CopyKind,
    pub from_version: String,
    pub to_version: String,
    /// `State::starts` when the copy was taken.
    pub starts_at_copy: u64,
    pub taken_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyKind {
    Copy,
    Zfs,
    Btrfs,
}

impl State {
    /// The record at `path`; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("failed to read the guard record {}", path.display()))
            }
        };
        let state: State = serde_json::from_str(&text).with_context(|| {
            format!(
                "failed to parse the guard record {} (fix or remove it; docs/operations.md#upgrades)",
                path.display()
            )
        })?;
        if state.version != STATE_VERSION {
            bail!(
                "failed to read the guard record {}: record version {} is not supported (this build reads {STATE_VERSION})",
                path.display(),
                state.version
            );
        }
        Ok(Some(state))
    }

    /// Writes the record atomically, owned like the directory it is in, so
    /// a root-run `check` and the service user's `record` can both replace it.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).context("failed to encode the guard record")?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let meta =
            std::fs::metadata(dir).with_context(|| format!("failed to stat {}", dir.display()))?;
        let owner = if nix::unistd::geteuid().is_root() {
            Owner {
                uid: Some(meta.uid()),
                gid: Some(meta.gid()),
            }
        } else {
            Owner::default()
        };
        write_atomic_owned(path, &text, 0o640, owner)
            .with_context(|| format!("failed to write the guard record {}", path.display()))
    }

    pub fn new() -> Self {
        Self {
            version: STATE_VERSION,
            ..Self::default()
        }
    }
}

/// The newest copy record of kind `Copy`, or the one at `location`.
pub fn find_copy<'a>(state: &'a State, location: Option<&Path>) -> Option<&'a CopyRecord> {
    state
        .copies
        .iter()
        .rev()
        .filter(|c| c.kind == CopyKind::Copy)
        .find(|c| location.is_none_or(|l| Path::new(&c.location) == l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(State::load(&path).unwrap(), None);
        let mut s = State::new();
        s.data_version = Some("29.0".into());
        s.starts = 3;
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), Some(s));
    }

    #[test]
    fn a_damaged_record_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"version\": 1, \"surprise\": true}").unwrap();
        let e = format!("{:#}", State::load(&path).unwrap_err());
        assert!(e.contains("state.json") && e.contains("surprise"), "{e}");
        std::fs::write(&path, "{\"version\": 7}").unwrap();
        let e = format!("{:#}", State::load(&path).unwrap_err());
        assert!(e.contains("record version 7"), "{e}");
    }
}
