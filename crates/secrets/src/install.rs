//! Installing one service's set of files as a unit.
//!
//! The set is written into a fresh directory next to the live one
//! (`<runtime_dir>/.<service>.new-<random>`), every file with its owner and
//! mode and fsynced, and then swapped with `<runtime_dir>/<service>` in one
//! `renameat2(RENAME_EXCHANGE)`; the old set, now under the temporary name,
//! is deleted. Why an exchange and not the alternatives:
//! - `rename(2)` of a directory onto an existing one only works when the
//!   target is empty, so the old set would have to go first and a reader
//!   could find no set at all;
//! - a symlink flip is atomic too, but leaves the real directories under
//!   changing names, which systemd's `BindReadOnlyPaths=`/`LoadCredential=`
//!   resolve once and pin, and a dangling link after a crash.
//!
//! With the exchange, `<runtime_dir>/<service>` is always a real directory
//! holding one complete set: a reader opening files by path never finds one
//! missing or cut. A reader that pins the directory (opens it once, then
//! `openat`s the files) never sees two generations mixed; when its set is
//! replaced, the old files are deleted and it gets ENOENT, which means
//! "start over". Exchange works on tmpfs and the usual local file systems
//! (Linux ≥ 3.15; renameat2(2)).

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use zeroize::Zeroizing;

use chainstead_common::fs::{sync_dir, write_atomic_owned, Owner};

/// Mode of `<runtime_dir>` and of each service directory: traversable by the
/// consuming users, listable by nobody but root. The files themselves are
/// protected by their owner and mode; their names are public (they are in
/// the Nix store anyway).
pub const DIR_MODE: u32 = 0o711;

/// One file of a set.
pub struct FileOut {
    pub name: String,
    pub content: Zeroizing<Vec<u8>>,
    pub mode: u32,
    pub owner: Owner,
}

/// Installs `files` as the complete set of `service`.
pub fn install_set(runtime_dir: &Path, service: &str, files: &[FileOut]) -> Result<()> {
    ensure_dir(runtime_dir)?;
    remove_leftovers(runtime_dir, service)?;
    let staging = runtime_dir.join(format!(
        ".{service}.new-{}",
        hex::encode(rand::random::<[u8; 6]>())
    ));
    DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("failed to create directory {}", staging.display()))?;
    let result = fill_and_swap(runtime_dir, service, &staging, files);
    if result.is_err() {
        // Whatever was written stays invisible to the service: remove it.
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn fill_and_swap(
    runtime_dir: &Path,
    service: &str,
    staging: &Path,
    files: &[FileOut],
) -> Result<()> {
    for f in files {
        write_atomic_owned(&staging.join(&f.name), &f.content, f.mode, f.owner)?;
    }
    std::fs::set_permissions(staging, std::fs::Permissions::from_mode(DIR_MODE))
        .with_context(|| format!("failed to set mode {DIR_MODE:o} on {}", staging.display()))?;
    sync_dir(staging)?;
    let live = runtime_dir.join(service);
    match renameat2(
        AT_FDCWD,
        staging,
        AT_FDCWD,
        &live,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            renameat2(
                AT_FDCWD,
                staging,
                AT_FDCWD,
                &live,
                RenameFlags::RENAME_EXCHANGE,
            )
            .with_context(|| {
                format!(
                    "failed to swap {} with {} (renameat2 RENAME_EXCHANGE)",
                    staging.display(),
                    live.display()
                )
            })?;
            // `staging` now names the previous set.
            std::fs::remove_dir_all(staging).with_context(|| {
                format!("failed to remove the previous set {}", staging.display())
            })?;
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "failed to rename {} to {}",
                    staging.display(),
                    live.display()
                )
            })
        }
    }
    sync_dir(runtime_dir)
}

/// Removes the set of `service` as a whole (first renamed away, so a reader
/// sees the complete set or none). Used when loading fails: a stale set
/// must not outlive a failed load.
pub fn remove_set(runtime_dir: &Path, service: &str) -> Result<bool> {
    let live = runtime_dir.join(service);
    if !live.exists() {
        return Ok(false);
    }
    let doomed = runtime_dir.join(format!(
        ".{service}.old-{}",
        hex::encode(rand::random::<[u8; 6]>())
    ));
    std::fs::rename(&live, &doomed)
        .with_context(|| format!("failed to move {} aside", live.display()))?;
    std::fs::remove_dir_all(&doomed)
        .with_context(|| format!("failed to remove {}", doomed.display()))?;
    sync_dir(runtime_dir)?;
    Ok(true)
}

/// Staging and doomed directories a killed run may have left behind.
fn remove_leftovers(runtime_dir: &Path, service: &str) -> Result<()> {
    let prefixes = [format!(".{service}.new-"), format!(".{service}.old-")];
    let entries = std::fs::read_dir(runtime_dir)
        .with_context(|| format!("failed to list {}", runtime_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", runtime_dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            let p: PathBuf = entry.path();
            tracing::info!("removing {} left by an interrupted run", p.display());
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("failed to remove {}", p.display()))?;
        }
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .with_context(|| format!("failed to create directory {}", dir.display()))?;
        // The unit runs with UMask=0077, which would leave it 0700 and
        // keep the consuming users out.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .with_context(|| format!("failed to set mode {DIR_MODE:o} on {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &str) -> FileOut {
        FileOut {
            name: name.into(),
            content: Zeroizing::new(content.as_bytes().to_vec()),
            mode: 0o400,
            owner: Owner::default(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_created_runtime_dir_is_traversable_despite_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("a/secrets");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let result = install_set(&rt, "svc", &[file("a", "1")]);
        nix::sys::stat::umask(old);
        result.unwrap();
        assert_eq!(
            std::fs::metadata(&rt).unwrap().permissions().mode() & 0o777,
            DIR_MODE
        );
        assert_eq!(
            std::fs::metadata(rt.join("svc"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            DIR_MODE
        );
    }

    #[test]
    fn first_install_then_replace_leaves_only_the_new_set() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("secrets");
        install_set(&rt, "svc", &[file("a", "1"), file("b", "2")]).unwrap();
        assert_eq!(names(&rt.join("svc")), ["a", "b"]);
        install_set(&rt, "svc", &[file("c", "3")]).unwrap();
        assert_eq!(names(&rt.join("svc")), ["c"]);
        assert_eq!(std::fs::read(rt.join("svc/c")).unwrap(), b"3");
        assert_eq!(names(&rt), ["svc"], "no staging directory is left");
        let mode = std::fs::metadata(rt.join("svc"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, DIR_MODE);
        let mode = std::fs::metadata(rt.join("svc/c"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o400);
    }

    #[test]
    fn a_failed_write_keeps_the_old_set_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().to_path_buf();
        install_set(&rt, "svc", &[file("a", "old")]).unwrap();
        // A file name that cannot be created fails the write midway.
        let bad = [file("b", "new"), file("missing-dir/x", "new")];
        assert!(install_set(&rt, "svc", &bad).is_err());
        assert_eq!(names(&rt), ["svc"]);
        assert_eq!(names(&rt.join("svc")), ["a"]);
        assert_eq!(std::fs::read(rt.join("svc/a")).unwrap(), b"old");
    }

    #[test]
    fn leftovers_are_cleaned_and_sets_removed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().to_path_buf();
        std::fs::create_dir(rt.join(".svc.new-dead")).unwrap();
        std::fs::write(rt.join(".svc.new-dead/x"), "x").unwrap();
        std::fs::create_dir(rt.join(".other.new-keep")).unwrap();
        install_set(&rt, "svc", &[file("a", "1")]).unwrap();
        assert_eq!(names(&rt), [".other.new-keep", "svc"]);
        assert!(remove_set(&rt, "svc").unwrap());
        assert!(!remove_set(&rt, "svc").unwrap());
        assert_eq!(names(&rt), [".other.new-keep"]);
    }
}
