//! Durable atomic file writes: the new content is written to a temporary file
//! in the destination directory, fsynced, given its mode and owner, renamed
//! over the destination, and the directory is fsynced so the rename itself
//! survives a power cut. Readers see the old file or the new one, never a mix.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Owner to give a written file; `None` keeps the writing process's identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Writes `contents` to `path` atomically with the given mode.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    write_atomic_owned(path, contents, mode, Owner::default())
}

/// Writes `contents` to `path` atomically with the given mode and owner.
pub fn write_atomic_owned(path: &Path, contents: &[u8], mode: u32, owner: Owner) -> Result<()> {
    let dir = parent_dir(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temporary file in {}", dir.display()))?;
    // Mode and owner are set before any content is written, so a secret is
    // never readable by others even for an instant.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .with_context(|| {
            format!(
                "failed to set mode {mode:o} on a temporary file in {}",
                dir.display()
            )
        })?;
    if owner != Owner::default() {
        std::os::unix::fs::fchown(tmp.as_file(), owner.uid, owner.gid).with_context(|| {
            format!(
                "failed to set owner {:?} on a temporary file in {}",
                owner,
                dir.display()
            )
        })?;
    }
    tmp.write_all(contents)
        .with_context(|| format!("failed to write a temporary file in {}", dir.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("failed to fsync a temporary file in {}", dir.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("failed to rename a temporary file onto {}", path.display()))?;
    sync_dir(dir)
}

/// Fsyncs a directory so that renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("failed to fsync directory {}", dir.display()))
}

fn parent_dir(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => anyhow::bail!(
            "failed to write {}: it has no parent directory",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flag");
        write_atomic(&path, b"one", 0o644).unwrap();
        write_atomic(&path, b"two", 0o400).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("flag")]);
    }

    #[test]
    fn missing_directory_is_a_named_error() {
        let err = write_atomic(Path::new("/nonexistent-chainstead/x"), b"", 0o600).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent-chainstead"),
            "{err:#}"
        );
    }
}
