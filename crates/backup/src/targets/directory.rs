//! A directory target: a PBS datastore mount, NFS, a USB disk. Each version
//! is written to a temporary name, fsynced, renamed and the directory
//! fsynced (chainstead-common's `write_atomic`); `latest` is a small file
//! holding the newest name, replaced the same way.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chainstead_common::fs::write_atomic_owned;

use super::{should_move_latest, LATEST};
use crate::version::{self, Artifact, Kind};

#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn folder(&self, kind: Kind) -> PathBuf {
        match kind.folder() {
            "" => self.root.clone(),
            f => self.root.join(f),
        }
    }

    pub async fn put(&self, a: &Artifact<'_>) -> Result<()> {
        let root = self.root.clone();
        let dir = self.folder(a.kind);
        let name = a.name.clone();
        let data = a.data.to_vec();
        tokio::task::spawn_blocking(move || put_blocking(&root, &dir, &name, &data))
            .await
            .context("failed to join a directory write")?
    }

    pub async fn latest(&self, kind: Kind) -> Result<Option<String>> {
        let p = self.folder(kind).join(LATEST);
        match tokio::fs::read_to_string(&p).await {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("failed to read {}", p.display())),
        }
    }

    /// Ok if the target's folder exists (the disk is mounted) and its
    /// `latest` can be read.
    pub async fn probe(&self, kind: Kind) -> Result<()> {
        if !tokio::fs::metadata(&self.root)
            .await
            .is_ok_and(|m| m.is_dir())
        {
            anyhow::bail!("{} is not a folder", self.root.display());
        }
        self.latest(kind).await.map(drop)
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let p = self.folder(kind).join(name);
        tokio::fs::read(&p)
            .await
            .with_context(|| format!("failed to read {}", p.display()))
    }

    pub async fn list(&self, kind: Kind) -> Result<Vec<String>> {
        let dir = self.folder(kind);
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
        };
        while let Some(e) = rd
            .next_entry()
            .await
            .with_context(|| format!("failed to list {}", dir.display()))?
        {
            if let Some(n) = e.file_name().to_str() {
                if version::is_version(kind, n) {
                    out.push(n.to_string());
                }
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let p = self.folder(kind).join(name);
        tokio::fs::remove_file(&p)
            .await
            .with_context(|| format!("failed to delete {}", p.display()))
    }

    /// Removes temporary files a killed writer left behind (never a
    /// version). Only files older than `min_age`: another process (a `push`
    /// next to the service) may be writing one right now.
    pub fn clean_temp(&self, kind: Kind, min_age: std::time::Duration) {
        let dir = self.folder(kind);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let stale = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= min_age);
                if stale && e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

fn put_blocking(
    root: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    data: &[u8],
) -> Result<()> {
    // The target's folder must exist: it is never created, so a disk that
    // is not mounted fails this target instead of filling the root file
    // system below an empty mount point.
    if !root.is_dir() {
        anyhow::bail!(
            "failed to write to {}: the folder does not exist (disk not mounted?); \
             it is not created, so create it (or mount the disk) to use this target",
            root.display()
        );
    }
    if !dir.is_dir() {
        // A sub-folder inside the root (snapshots/) is created, one level.
        match std::fs::create_dir(dir) {
            Ok(()) => {
                let owner = crate::state::owner_for(root);
                if owner != chainstead_common::fs::Owner::default() {
                    std::os::unix::fs::chown(dir, owner.uid, owner.gid)
                        .with_context(|| format!("failed to set the owner of {}", dir.display()))?;
                }
                chainstead_common::fs::sync_dir(root)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("failed to create directory {}", dir.display()))
            }
        }
    }
    // Written by root (`push` by hand), files keep the folder's owner, so
    // the service user can read `latest` and the versions afterwards.
    let owner = crate::state::owner_for(dir);
    let path = dir.join(name);
    // A complete copy of the same name is already there after a restart.
    let already = std::fs::read(&path).map(|b| b == data).unwrap_or(false);
    if !already {
        write_atomic_owned(&path, data, 0o600, owner)?;
    }
    let latest = dir.join(LATEST);
    let current = match std::fs::read_to_string(&latest) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", latest.display())),
    };
    let current = Some(current.as_str()).filter(|c| !c.is_empty());
    if should_move_latest(current, name)? {
        write_atomic_owned(&latest, format!("{name}\n").as_bytes(), 0o600, owner)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing target folder (an unmounted disk) fails the push with its
    /// path and is not created; sub-folders inside an existing one are.
    #[tokio::test]
    async fn missing_root_is_an_error_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("usb");
        let d = DirStore::new(root.clone());
        let snap = Artifact {
            kind: Kind::Snapshot,
            name: "snapshot.20261121T070000.000000000Z.abc.nar".into(),
            data: b"nar",
        };
        let err = d.put(&snap).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(&root.display().to_string()), "{text}");
        assert!(text.contains("does not exist"), "{text}");
        assert!(!root.exists(), "the target folder was created");
        std::fs::create_dir(&root).unwrap();
        d.put(&snap).await.unwrap();
        assert!(root.join("snapshots").join(&snap.name).is_file());
    }

    #[tokio::test]
    async fn put_moves_latest_forward_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = DirStore::new(dir.path().join("t"));
        std::fs::create_dir(dir.path().join("t")).unwrap();
        let a = |name: &str, data: &'static [u8]| Artifact {
            kind: Kind::Channel,
            name: name.into(),
            data,
        };
        let old = "channel.backup.20261121T070000.000000000Z.aaaaaaaaaaaa";
        let new = "channel.backup.20261121T070001.000000000Z.bbbbbbbbbbbb";
        d.put(&a(new, b"new")).await.unwrap();
        // An older name is stored but never becomes latest, and the put
        // says so instead of reporting success.
        let err = d.put(&a(old, b"old")).await.unwrap_err();
        assert!(
            err.downcast_ref::<super::super::NewerOnTarget>().is_some(),
            "{err:#}"
        );
        d.put(&a(new, b"new")).await.unwrap();
        assert_eq!(d.latest(Kind::Channel).await.unwrap().as_deref(), Some(new));
        assert_eq!(d.get(Kind::Channel, new).await.unwrap(), b"new");
        let mut l = d.list(Kind::Channel).await.unwrap();
        l.sort();
        assert_eq!(l, vec![old.to_string(), new.to_string()]);
    }
}
