//! Carrying out a plan, step by step, each durable before the next: a
//! rename is followed by an fsync of both directories, a copied file is
//! written atomically. Stopped at any point, the disk holds a state the
//! planner recognises and finishes.

use std::fs::{self, DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use chainstead_common::fs::{sync_dir, write_atomic, write_atomic_owned, Owner};
use zeroize::Zeroizing;

use super::plan::{Account, Step, MARKER, PENDING, TOMBSTONE_HEADER};
use super::seed;

/// Carries out one step.
pub fn step(s: &Step) -> Result<()> {
    match s {
        Step::Remove { path, .. } => {
            fs::remove_file(path)
                .with_context(|| format!("failed to remove {}", path.display()))?;
            sync_parent(path)
        }
        Step::MakeDir {
            path,
            mode,
            uid,
            gid,
        } => {
            // Planned before the steps of other services ran, so one of them
            // may have made it already: then it is left as it is.
            if path.is_dir() {
                return Ok(());
            }
            DirBuilder::new()
                .mode(*mode & 0o777)
                .create(path)
                .with_context(|| format!("failed to create {}", path.display()))?;
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .with_context(|| format!("failed to set the owner of {}", path.display()))?;
            // The umask trims the mode DirBuilder asks for; setgid needs chmod.
            fs::set_permissions(path, Permissions::from_mode(*mode))
                .with_context(|| format!("failed to set the mode of {}", path.display()))?;
            sync_parent(path)
        }
        Step::Rename { from, to } => {
            fs::rename(from, to).map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc_exdev()) {
                    ": they are on different mounts (a bind mount, or a sandbox's \
                     ReadWritePaths=), though on one file system; nothing is copied"
                } else {
                    ""
                };
                anyhow::Error::new(e).context(format!(
                    "failed to rename {} to {}{hint}",
                    from.display(),
                    to.display()
                ))
            })?;
            sync_parent(to)?;
            sync_parent(from)
        }
        Step::Copy {
            from,
            to,
            mode,
            uid,
            gid,
        } => {
            let bytes = Zeroizing::new(
                fs::read(from).with_context(|| format!("failed to read {}", from.display()))?,
            );
            make_parents(to, 0o755)?;
            write_atomic_owned(
                to,
                &bytes,
                *mode,
                Owner {
                    uid: Some(*uid),
                    gid: Some(*gid),
                },
            )
        }
        Step::Seed { from, to } => {
            let text = Zeroizing::new(
                fs::read_to_string(from)
                    .with_context(|| format!("failed to read {}", from.display()))?,
            );
            let words = seed::normalise(&text)
                .with_context(|| format!("failed to read the seed in {}", from.display()))?;
            make_parents(to, 0o700)?;
            write_atomic(to, words.as_bytes(), 0o400)?;
            // Read back before the only other copy on disk goes.
            let back = Zeroizing::new(
                fs::read_to_string(to)
                    .with_context(|| format!("failed to read {}", to.display()))?,
            );
            anyhow::ensure!(
                *back == *words,
                "the seed read back from {} differs from what was written; {} is kept",
                to.display(),
                from.display()
            );
            fs::remove_file(from)
                .with_context(|| format!("failed to remove {}", from.display()))?;
            sync_parent(from)
        }
        Step::Chmod {
            path,
            mode,
            uid,
            gid,
        } => {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .with_context(|| format!("failed to set the owner of {}", path.display()))?;
            fs::set_permissions(path, Permissions::from_mode(*mode))
                .with_context(|| format!("failed to set the mode of {}", path.display()))
        }
        Step::Own { root, owner } => {
            let changed = own_tree(root, owner)?;
            tracing::debug!(
                "{changed} entries under {} given to {}",
                root.display(),
                owner.name
            );
            Ok(())
        }
        Step::Tombstone { path, moved_to } => write_atomic(
            path,
            format!(
                "{TOMBSTONE_HEADER} to {} on {}.\n\
                 This file stands where the directory was so that nix-bitcoin's LND cannot \
                 start here again: an LND on an old copy of the channel state can lose the \
                 channels' funds. Do not replace it with a directory. See chainstead's \
                 docs/migrate-from-nix-bitcoin.md.\n",
                moved_to.display(),
                now()
            )
            .as_bytes(),
            0o444,
        ),
        Step::Pending { dir } => write_atomic(
            &dir.join(PENDING),
            b"chainstead migrate-nix-bitcoin began here and has not finished: run it again\n",
            0o444,
        ),
        Step::Marker { dir, from } => {
            write_atomic(
                &dir.join(MARKER),
                format!(
                    "adopted from nix-bitcoin's {} on {} by chainstead migrate-nix-bitcoin\n",
                    from.display(),
                    now()
                )
                .as_bytes(),
                0o444,
            )?;
            match fs::remove_file(dir.join(PENDING)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)
                    .with_context(|| format!("failed to remove {}", dir.join(PENDING).display())),
                _ => sync_dir(dir),
            }
        }
        Step::RemoveHollow { path } => remove_hollow(path),
        Step::RemoveDir { path } => {
            fs::remove_dir(path).with_context(|| {
                format!(
                    "failed to remove {} (is something left in it?)",
                    path.display()
                )
            })?;
            sync_parent(path)
        }
    }
}

/// Creates the missing directories above `path`: the last with `mode`
/// (0700 for the seed's), those above it 0755.
fn make_parents(path: &Path, mode: u32) -> Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.exists()) else {
        return Ok(());
    };
    if let Some(up) = dir.parent() {
        DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(up)
            .with_context(|| format!("failed to create {}", up.display()))?;
    }
    DirBuilder::new()
        .mode(mode)
        .create(dir)
        .with_context(|| format!("failed to create {}", dir.display()))?;
    fs::set_permissions(dir, Permissions::from_mode(mode))
        .with_context(|| format!("failed to set the mode of {}", dir.display()))
}

/// Removes a tree of empty directories, deepest first; `remove_dir` fails
/// on anything else, so no file can be lost.
fn remove_hollow(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(path).with_context(|| format!("failed to list {}", path.display()))? {
        let entry = entry.with_context(|| format!("failed to list {}", path.display()))?;
        remove_hollow(&entry.path())?;
    }
    fs::remove_dir(path).with_context(|| {
        format!(
            "failed to remove {} (it is no longer empty: run this again to see why)",
            path.display()
        )
    })?;
    sync_parent(path)
}

fn libc_exdev() -> i32 {
    nix::errno::Errno::EXDEV as i32
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => Ok(()),
    }
}

/// Gives `root` and everything below it to `owner`, without following
/// symlinks or leaving `root`'s file system; returns how many entries changed.
pub fn own_tree(root: &Path, owner: &Account) -> Result<u64> {
    let dev = fs::symlink_metadata(root)
        .with_context(|| format!("failed to inspect {}", root.display()))?
        .dev();
    let mut changed = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("failed to inspect {}", path.display()))?;
        if meta.dev() != dev {
            continue;
        }
        if meta.uid() != owner.uid || meta.gid() != owner.gid {
            std::os::unix::fs::lchown(&path, Some(owner.uid), Some(owner.gid))
                .with_context(|| format!("failed to give {} to {}", path.display(), owner.name))?;
            changed += 1;
        }
        if meta.is_dir() {
            for entry in
                fs::read_dir(&path).with_context(|| format!("failed to list {}", path.display()))?
            {
                stack.push(
                    entry
                        .with_context(|| format!("failed to list {}", path.display()))?
                        .path(),
                );
            }
        }
    }
    Ok(changed)
}
