//! The pre-upgrade copy: a complete copy or none. The size is summed and
//! checked against the free space first; the files go into a hidden
//! `.partial-*` directory next to the final one, each fsynced, and only a
//! finished copy is renamed into place. A failure removes the partial
//! directory; one left by a power cut is removed by the next copy.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use chainstead_common::fs::{sync_dir, write_atomic};
use serde::{Deserialize, Serialize};

use crate::error::GuardError;

/// Name of the directory inside a copy holding the files by absolute path.
pub const FILES: &str = "files";
/// The owner and mode of every copied path, by its original path. A copy
/// taken as the service's user cannot keep a group that user is not in
/// (LND's macaroon group, inherited through a setgid directory), so a
/// restore run as root puts owners and modes back from this list.
pub const ATTRIBUTES: &str = "attributes.json";
const PARTIAL_PREFIX: &str = ".partial-";

/// Free bytes on the filesystem holding `dir`, for an unprivileged writer.
pub fn available_bytes(dir: &Path) -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir)
        .with_context(|| format!("failed to read the free space of {}", dir.display()))?;
    #[allow(clippy::useless_conversion)] // the field types differ by platform
    let (avail, frsize) = (
        u64::from(st.blocks_available()),
        u64::from(st.fragment_size()),
    );
    Ok(avail.saturating_mul(frsize))
}

/// Bytes `paths` occupy (files and directory trees; missing paths count 0).
pub fn size_of(paths: &[PathBuf]) -> Result<u64> {
    let mut total = 0u64;
    for p in paths {
        total = total.saturating_add(tree_size(p)?);
    }
    Ok(total)
}

/// Owner and mode of one original path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attr {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The attributes recorded in the copy at `copy` (none for a copy without
/// the list).
pub fn load_attributes(copy: &Path) -> Result<Vec<Attr>> {
    let p = copy.join(ATTRIBUTES);
    match fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("failed to parse {}", p.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", p.display())),
    }
}

/// Gives the paths under `staged` (a restored copy of `original`) the
/// owners and modes `attrs` recorded for `original` and what is below it.
/// Owners only as root; the mode after the owner, as chown(2) clears a
/// file's setgid bit.
pub fn apply_attributes(attrs: &[Attr], original: &Path, staged: &Path) -> Result<()> {
    let root = nix::unistd::geteuid().is_root();
    for a in attrs {
        let Ok(rel) = a.path.strip_prefix(original) else {
            continue;
        };
        let p = if rel.as_os_str().is_empty() {
            staged.to_path_buf()
        } else {
            staged.join(rel)
        };
        if fs::symlink_metadata(&p).is_err() {
            continue;
        }
        if root {
            std::os::unix::fs::lchown(&p, Some(a.uid), Some(a.gid))
                .with_context(|| format!("failed to set the owner of {}", p.display()))?;
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(a.mode & 0o7777))
            .with_context(|| format!("failed to set the mode of {}", p.display()))?;
    }
    if !root && !attrs.is_empty() {
        tracing::warn!(
            "not root: {} keeps the restoring user as its owner; run restore-lnd as root",
            staged.display()
        );
    }
    Ok(())
}

fn tree_size(p: &Path) -> Result<u64> {
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("failed to stat {}", p.display())),
    };
    if meta.is_dir() {
        let mut total = 0u64;
        for entry in fs::read_dir(p).with_context(|| format!("failed to list {}", p.display()))? {
            let entry = entry.with_context(|| format!("failed to list {}", p.display()))?;
            total = total.saturating_add(tree_size(&entry.path())?);
        }
        Ok(total)
    } else {
        Ok(meta.len())
    }
}

/// Where `original` (absolute) lives inside the copy at `copy`.
pub fn inside(copy: &Path, original: &Path) -> PathBuf {
    let rel: PathBuf = original
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    copy.join(FILES).join(rel)
}

/// Copies `paths` into `dir/name`, all or nothing. `available` reports the
/// free space of `dir` (the real statvfs in production, a budget in tests).
pub fn take_copy(
    dir: &Path,
    name: &str,
    paths: &[PathBuf],
    reserve_bytes: u64,
    available: &dyn Fn(&Path) -> Result<u64>,
) -> Result<PathBuf> {
    fs::create_dir_all(dir)
        .with_context(|| format!("failed to create the copy directory {}", dir.display()))?;
    remove_partials(dir)?;
    let needed = size_of(paths)?.saturating_add(reserve_bytes);
    let free = available(dir)?;
    if needed > free {
        return Err(GuardError::NoSpace {
            dir: dir.to_path_buf(),
            needed,
            available: free,
        }
        .into());
    }
    let partial = dir.join(format!("{PARTIAL_PREFIX}{name}"));
    let fin = dir.join(name);
    if fin.exists() {
        anyhow::bail!(
            "failed to take the pre-upgrade copy: {} already exists",
            fin.display()
        );
    }
    fs::create_dir(&partial).with_context(|| format!("failed to create {}", partial.display()))?;
    let result = (|| -> Result<()> {
        let mut attrs = Vec::new();
        for p in paths {
            if fs::symlink_metadata(p).is_err() {
                tracing::info!("{} does not exist; nothing to copy there", p.display());
                continue;
            }
            copy_tree(p, &inside(&partial, p), &mut attrs)?;
        }
        let list = serde_json::to_vec_pretty(&attrs).context("failed to encode the attributes")?;
        write_atomic(&partial.join(ATTRIBUTES), &list, 0o600)?;
        sync_dir(&partial)?;
        fs::rename(&partial, &fin).with_context(|| {
            format!(
                "failed to rename {} to {}",
                partial.display(),
                fin.display()
            )
        })?;
        sync_dir(dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&partial);
        return Err(e);
    }
    Ok(fin)
}

/// Removes `.partial-*` directories a crash left in `dir`.
pub fn remove_partials(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(PARTIAL_PREFIX)
        {
            let p = entry.path();
            tracing::warn!("removing the unfinished copy {}", p.display());
            fs::remove_dir_all(&p).with_context(|| format!("failed to remove {}", p.display()))?;
        }
    }
    Ok(())
}

/// Copies a file or a directory tree to `to`, creating parents, keeping
/// modes (and owners when run as root), fsyncing every file and directory;
/// each copied path's original owner and mode is added to `attrs`.
pub fn copy_tree(from: &Path, to: &Path, attrs: &mut Vec<Attr>) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    let meta =
        fs::symlink_metadata(from).with_context(|| format!("failed to stat {}", from.display()))?;
    if meta.is_dir() {
        fs::create_dir(to).with_context(|| format!("failed to create {}", to.display()))?;
        for entry in
            fs::read_dir(from).with_context(|| format!("failed to list {}", from.display()))?
        {
            let entry = entry.with_context(|| format!("failed to list {}", from.display()))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), attrs)?;
        }
        keep_attributes(&meta, to)?;
        sync_dir(to)?;
    } else if meta.is_file() {
        let mut src =
            File::open(from).with_context(|| format!("failed to open {}", from.display()))?;
        let mut dst =
            File::create_new(to).with_context(|| format!("failed to create {}", to.display()))?;
        std::io::copy(&mut src, &mut dst)
            .with_context(|| format!("failed to copy {} to {}", from.display(), to.display()))?;
        dst.sync_all()
            .with_context(|| format!("failed to fsync {}", to.display()))?;
        keep_attributes(&meta, to)?;
    } else {
        tracing::info!("skipping {}: not a file or directory", from.display());
        return Ok(());
    }
    attrs.push(Attr {
        path: from.to_path_buf(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    });
    Ok(())
}

fn keep_attributes(meta: &fs::Metadata, to: &Path) -> Result<()> {
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .with_context(|| format!("failed to set the mode of {}", to.display()))?;
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("failed to set the owner of {}", to.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_mirrors_absolute_paths() {
        assert_eq!(
            inside(Path::new("/c/x"), Path::new("/srv/lnd/data/channel.db")),
            PathBuf::from("/c/x/files/srv/lnd/data/channel.db")
        );
    }
}
