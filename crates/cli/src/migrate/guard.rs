//! What keeps the moves safe: no daemon of the data may run, and LND's
//! databases stay locked against any LND for the whole migration.
//!
//! LND opens channel.db, wallet.db and macaroons.db with bbolt, which takes
//! `flock(LOCK_EX | LOCK_NB)` on the file and retries until its timeout
//! (bbolt bolt_unix.go, `flock`). So a lock we can take proves no LND has
//! the file open, and while we hold it an LND that starts cannot open the
//! database: one LND on one channel.db, whichever path it is reached by.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A process found running one of the daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub pid: u32,
    pub name: String,
}

/// Processes under `proc_root` (normally `/proc`) whose command name is one
/// of `names` (the kernel's `comm`, at most 15 bytes: "bitcoind", "lnd",
/// "Fulcrum").
pub fn running(proc_root: &Path, names: &[&str]) -> Result<Vec<Running>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(proc_root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", proc_root.display())),
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read.
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim_end_matches('\n');
        if names.contains(&comm) {
            found.push(Running {
                pid,
                name: comm.to_owned(),
            });
        }
    }
    found.sort_by_key(|r| r.pid);
    Ok(found)
}

/// The exclusive locks held on LND's databases until dropped.
#[derive(Debug, Default)]
pub struct DbLocks {
    held: Vec<(PathBuf, Flock<File>)>,
}

impl DbLocks {
    /// Takes bbolt's lock on `path`; an error names the file when another
    /// process (an LND) holds it.
    pub fn take(&mut self, path: &Path) -> Result<()> {
        let file = File::open(path)
            .with_context(|| format!("failed to open {} to lock it", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                self.held.push((path.to_owned(), lock));
                Ok(())
            }
            Err((_, Errno::EWOULDBLOCK)) => anyhow::bail!(
                "{} is locked by another process: an LND has it open. Stop it \
                 (`systemctl stop lnd`, and anything else that runs lnd) and run this again",
                path.display()
            ),
            Err((_, e)) => Err(e).with_context(|| format!("failed to lock {}", path.display())),
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.held.iter().map(|(p, _)| p.as_path())
    }
}

/// The file system `path` is on, from it or its nearest existing ancestor
/// (a destination may not exist yet).
pub fn device_of(path: &Path) -> Result<u64> {
    let mut p = path;
    loop {
        match std::fs::symlink_metadata(p) {
            Ok(m) => return Ok(m.dev()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                p = p.parent().with_context(|| {
                    format!("failed to find an existing parent of {}", path.display())
                })?;
            }
            Err(e) => return Err(e).with_context(|| format!("failed to stat {}", p.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("channel.db");
        std::fs::write(&db, b"bolt").unwrap();
        let mut first = DbLocks::default();
        first.take(&db).unwrap();
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts exactly as another LND would.
        let err = DbLocks::default().take(&db).unwrap_err().to_string();
        assert!(err.contains("channel.db is locked"), "{err}");
        drop(first);
        DbLocks::default().take(&db).unwrap();
    }

    #[test]
    fn processes_are_found_by_their_command_name() {
        let proc = tempfile::tempdir().unwrap();
        for (pid, comm) in [("12", "lnd\n"), ("40", "bitcoind\n"), ("7", "lndinit\n")] {
            std::fs::create_dir(proc.path().join(pid)).unwrap();
            std::fs::write(proc.path().join(pid).join("comm"), comm).unwrap();
        }
        std::fs::create_dir(proc.path().join("self")).unwrap();
        let found = running(proc.path(), &["lnd", "Fulcrum"]).unwrap();
        assert_eq!(
            found,
            vec![Running {
                pid: 12,
                name: "lnd".into()
            }]
        );
    }

    #[test]
    fn the_device_of_a_missing_path_is_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let dev = device_of(dir.path()).unwrap();
        assert_eq!(device_of(&dir.path().join("a/b/c")).unwrap(), dev);
    }
}
