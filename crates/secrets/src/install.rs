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
//!
//! Two loaders may run at once (a whole-stack `load` by hand while a unit
//! loads one service). Every change to the runtime directory (clean-up,
//! staging, swap, removal) happens under an exclusive `flock(2)` on the
//! runtime directory itself, held for the milliseconds of the install and
//! never across network I/O. So the installs of one service are serialised,
//! and a staging or doomed directory found while holding the lock is
//! provably stale: the run that made it no longer holds the lock, so it has
//! finished or died. Locking the directory, not a lock file beside the sets,
//! adds no name to the runtime directory and needs no file created there.

use std::fs::{DirBuilder, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags, AT_FDCWD};
use zeroize::Zeroizing;

use chainstead_common::fs::{sync_dir, write_atomic_owned, Owner};

/// Mode of `<runtime_dir>` and of each service directory: traversable by the
/// consuming users, listable by nobody but root. The files themselves are
/// protected by their owner and mode; their names are public (they are in
/// the Nix store anyway).
pub const DIR_MODE: u32 = 0o711;

/// How long an install waits for another loader's install to finish. An
/// install takes milliseconds; a lock held this long means a stuck process.
const LOCK_WAIT: Duration = Duration::from_secs(60);
const LOCK_POLL: Duration = Duration::from_millis(10);

/// An exclusive lock on the runtime directory, released on drop.
pub struct RuntimeLock {
    _lock: Flock<File>,
}

/// Takes the exclusive lock on `runtime_dir` (which must exist), waiting up
/// to [`LOCK_WAIT`] for another loader to finish its install.
pub fn lock_runtime_dir(runtime_dir: &Path) -> Result<RuntimeLock> {
    lock_runtime_dir_within(runtime_dir, LOCK_WAIT)
}

fn lock_runtime_dir_within(runtime_dir: &Path, wait: Duration) -> Result<RuntimeLock> {
    let deadline = Instant::now() + wait;
    let mut file = File::open(runtime_dir)
        .with_context(|| format!("failed to open {} to lock it", runtime_dir.display()))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(RuntimeLock { _lock: lock }),
            Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(LOCK_POLL);
            }
            Err((_, Errno::EWOULDBLOCK)) => anyhow::bail!(
                "failed to lock {}: another chainstead-secrets has held it for {}s; \
                 find it with `fuser -v {}` and stop it",
                runtime_dir.display(),
                wait.as_secs(),
                runtime_dir.display()
            ),
            Err((_, e)) => {
                return Err(e).with_context(|| format!("failed to lock {}", runtime_dir.display()))
            }
        }
    }
}

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
    let _lock = lock_runtime_dir(runtime_dir)?;
    remove_stale(runtime_dir, service)?;
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
    let _lock = lock_runtime_dir(runtime_dir)?;
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

/// Staging and doomed directories a killed run left behind. Called with the
/// runtime directory locked: no live run owns any of them.
fn remove_stale(runtime_dir: &Path, service: &str) -> Result<()> {
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

/// Creates `dir` and every missing parent with [`DIR_MODE`], whatever the
/// umask (the unit runs with UMask=0077, which would leave them 0700 and keep
/// the consuming users out although the load succeeded). Existing
/// directories are left as they are.
fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.is_absolute() || dir.components().any(|c| c == Component::ParentDir) {
        anyhow::bail!(
            "failed to use {} as the runtime directory: runtime_dir must be an absolute path without `..`",
            dir.display()
        );
    }
    if dir.is_dir() {
        return Ok(());
    }
    let mut path = PathBuf::new();
    for c in dir.components() {
        path.push(c);
        if path.is_dir() {
            continue;
        }
        match DirBuilder::new().mode(DIR_MODE).create(&path) {
            Ok(()) => {}
            // Another loader made it first; its mode is set below all the same.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("failed to create directory {}", path.display()))
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(DIR_MODE))
            .with_context(|| format!("failed to set mode {DIR_MODE:o} on {}", path.display()))?;
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

    /// Issue 15 item 6: every directory the loader creates on the way to
    /// the runtime directory is traversable, not just the last one.
    #[test]
    fn created_parents_of_the_runtime_dir_are_traversable_despite_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("a/b/secrets");
        let before = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let result = install_set(&rt, "svc", &[file("a", "1")]);
        nix::sys::stat::umask(old);
        result.unwrap();
        for d in [dir.path().join("a"), dir.path().join("a/b"), rt.clone()] {
            assert_eq!(
                std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                DIR_MODE,
                "{}",
                d.display()
            );
        }
        // An existing parent keeps its mode.
        assert_eq!(
            std::fs::metadata(dir.path()).unwrap().permissions().mode(),
            before
        );
    }

    #[test]
    fn a_relative_runtime_dir_is_refused() {
        let err = install_set(Path::new("relative/secrets"), "svc", &[file("a", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be an absolute path"), "{err}");
    }

    fn set_of(round: usize, run: usize) -> Vec<FileOut> {
        ["a", "b", "c"]
            .iter()
            .map(|n| file(n, &format!("{round}-{run}")))
            .collect()
    }

    /// Issue 15 item 4: two installs of the same service at once both
    /// succeed and leave one complete set, from one of them, and nothing
    /// else. Before the lock, one run's clean-up removed the other's staging
    /// directory while in use, and a failing run then removed the live set.
    #[test]
    fn concurrent_installs_of_one_service_both_end_with_every_file_live() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("secrets");
        install_set(&rt, "svc", &set_of(0, 0)).unwrap();
        for round in 1..=50 {
            let barrier = std::sync::Barrier::new(2);
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|run| {
                        let (rt, barrier) = (&rt, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            install_set(rt, "svc", &set_of(round, run))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for r in &results {
                assert!(r.is_ok(), "round {round}: {:#}", r.as_ref().unwrap_err());
            }
            assert_eq!(names(&rt), ["svc"], "round {round}");
            assert_eq!(names(&rt.join("svc")), ["a", "b", "c"], "round {round}");
            let contents: Vec<_> = ["a", "b", "c"]
                .iter()
                .map(|n| std::fs::read_to_string(rt.join("svc").join(n)).unwrap())
                .collect();
            assert!(
                contents.iter().all(|c| *c == contents[0])
                    && (contents[0] == format!("{round}-0") || contents[0] == format!("{round}-1")),
                "round {round}: a mixed or old set {contents:?}"
            );
        }
    }

    /// A staging directory is only removed while the lock is held, i.e.
    /// when its creator has finished: an install waits for a holder.
    #[test]
    fn an_install_waits_for_the_lock_and_then_cleans_stale_staging() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().to_path_buf();
        let held = lock_runtime_dir(&rt).unwrap();
        // As if the holder were filling it.
        std::fs::create_dir(rt.join(".svc.new-inuse")).unwrap();
        std::fs::write(rt.join(".svc.new-inuse/x"), "x").unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let r = install_set(&rt, "svc", &[file("a", "1")]);
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                r
            });
            std::thread::sleep(Duration::from_millis(200));
            assert!(!done.load(std::sync::atomic::Ordering::SeqCst));
            assert!(rt.join(".svc.new-inuse/x").exists(), "removed while in use");
            drop(held);
            h.join().unwrap().unwrap();
        });
        assert_eq!(names(&rt), ["svc"]);
    }

    #[test]
    fn a_lock_held_too_long_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_runtime_dir(dir.path()).unwrap();
        let err = lock_runtime_dir_within(dir.path(), Duration::from_millis(50))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another chainstead-secrets"), "{err}");
    }
}
