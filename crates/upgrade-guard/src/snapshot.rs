//! Snapshots instead of a copy where the data sits on ZFS or btrfs. The
//! commands are built here as argument vectors (no shell), and retention
//! picks the guard's own snapshots of this service by their name prefix:
//! names carry a UTC timestamp first, so their order is their age.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A command to run: program and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Cmd {
    fn new(program: &Path, args: &[&std::ffi::OsStr]) -> Self {
        Self {
            program: program.to_path_buf(),
            args: args.iter().map(|a| a.to_os_string()).collect(),
        }
    }

    /// Runs the command; a non-zero exit is an error naming it and its stderr.
    pub fn run(&self) -> Result<String> {
        let out = Command::new(&self.program)
            .args(&self.args)
            .output()
            .with_context(|| format!("failed to run {}", self.display()))?;
        if !out.status.success() {
            bail!(
                "failed to run {}: {}: {}",
                self.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// The prefix of every snapshot the guard takes of `service`.
pub fn prefix(service: &str) -> String {
    format!("chainstead-pre-upgrade-{service}-")
}

/// A snapshot name: prefix, timestamp, then both versions, keeping only
/// characters both ZFS and btrfs accept.
pub fn snapshot_name(service: &str, stamp: &str, from: &str, to: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}{stamp}-{}-to-{}",
        prefix(service),
        clean(from),
        clean(to)
    )
}

pub fn zfs_snapshot(program: &Path, dataset: &str, name: &str) -> Cmd {
    let snap = format!("{dataset}@{name}");
    Cmd::new(program, &["snapshot".as_ref(), snap.as_ref()])
}

/// Lists the dataset's own snapshots (depth 1), names only, no header.
pub fn zfs_list(program: &Path, dataset: &str) -> Cmd {
    Cmd::new(
        program,
        &[
            "list".as_ref(),
            "-H".as_ref(),
            "-o".as_ref(),
            "name".as_ref(),
            "-t".as_ref(),
            "snapshot".as_ref(),
            "-d".as_ref(),
            "1".as_ref(),
            dataset.as_ref(),
        ],
    )
}

pub fn zfs_destroy(program: &Path, snapshot: &str) -> Cmd {
    Cmd::new(program, &["destroy".as_ref(), snapshot.as_ref()])
}

pub fn btrfs_snapshot(program: &Path, subvolume: &Path, dir: &Path, name: &str) -> Cmd {
    let target = dir.join(name);
    Cmd::new(
        program,
        &[
            "subvolume".as_ref(),
            "snapshot".as_ref(),
            "-r".as_ref(),
            subvolume.as_os_str(),
            target.as_os_str(),
        ],
    )
}

pub fn btrfs_delete(program: &Path, snapshot: &Path) -> Cmd {
    Cmd::new(
        program,
        &[
            "subvolume".as_ref(),
            "delete".as_ref(),
            snapshot.as_os_str(),
        ],
    )
}

/// Of `names` (ZFS `dataset@name` or plain btrfs names), the guard's
/// snapshots of `service` beyond the newest `keep`, oldest first. Snapshots
/// of other services and anyone else's are never selected.
pub fn to_delete(names: &[String], service: &str, keep: usize) -> Vec<String> {
    let pre = prefix(service);
    let mut ours: Vec<&String> = names
        .iter()
        .filter(|n| {
            let short = n.rsplit_once('@').map_or(n.as_str(), |(_, s)| s);
            short.starts_with(&pre)
        })
        .collect();
    ours.sort();
    let extra = ours.len().saturating_sub(keep);
    ours.into_iter().take(extra).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Cmd) -> Vec<String> {
        c.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn zfs_commands() {
        let zfs = Path::new("/run/current-system/sw/bin/zfs");
        let name = snapshot_name("lnd", "20261201T230000Z", "0.19.3-beta", "0.20.0-beta");
        assert_eq!(
            name,
            "chainstead-pre-upgrade-lnd-20261201T230000Z-0.19.3-beta-to-0.20.0-beta"
        );
        let c = zfs_snapshot(zfs, "tank/fast/lnd", &name);
        assert_eq!(c.program, zfs);
        assert_eq!(args(&c), ["snapshot", &format!("tank/fast/lnd@{name}")]);
        assert_eq!(
            args(&zfs_list(zfs, "tank/fast/lnd")),
            [
                "list",
                "-H",
                "-o",
                "name",
                "-t",
                "snapshot",
                "-d",
                "1",
                "tank/fast/lnd"
            ]
        );
        assert_eq!(
            args(&zfs_destroy(zfs, "tank/fast/lnd@x")),
            ["destroy", "tank/fast/lnd@x"]
        );
    }

    #[test]
    fn btrfs_commands() {
        let b = Path::new("/bin/btrfs");
        let c = btrfs_snapshot(
            b,
            Path::new("/srv/bulk/monerod"),
            Path::new("/srv/bulk/.snap"),
            "n",
        );
        assert_eq!(
            args(&c),
            [
                "subvolume",
                "snapshot",
                "-r",
                "/srv/bulk/monerod",
                "/srv/bulk/.snap/n"
            ]
        );
        assert_eq!(
            args(&btrfs_delete(b, Path::new("/srv/bulk/.snap/n"))),
            ["subvolume", "delete", "/srv/bulk/.snap/n"]
        );
    }

    #[test]
    fn names_never_carry_odd_characters() {
        let n = snapshot_name("fulcrum", "20260101T000000Z", "1.12.0.1+x", "v2/0");
        assert!(n.ends_with("1.12.0.1_x-to-v2_0"), "{n}");
    }

    #[test]
    fn retention_keeps_the_newest_of_ours_only() {
        let names: Vec<String> = [
            "tank/lnd@chainstead-pre-upgrade-lnd-20260301T000000Z-b-to-c",
            "tank/lnd@manual-before-migration",
            "tank/lnd@chainstead-pre-upgrade-lnd-20260101T000000Z-a-to-b",
            "tank/lnd@chainstead-pre-upgrade-fulcrum-20250101T000000Z-a-to-b",
            "tank/lnd@chainstead-pre-upgrade-lnd-20260401T000000Z-c-to-d",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            to_delete(&names, "lnd", 2),
            ["tank/lnd@chainstead-pre-upgrade-lnd-20260101T000000Z-a-to-b"]
        );
        assert_eq!(to_delete(&names, "lnd", 1).len(), 2);
        assert!(to_delete(&names, "lnd", 5).is_empty());
        // btrfs: plain directory names.
        let plain = vec![
            "chainstead-pre-upgrade-monerod-20260101T000000Z-a-to-b".to_string(),
            "chainstead-pre-upgrade-monerod-20260201T000000Z-b-to-c".to_string(),
            "unrelated".to_string(),
        ];
        assert_eq!(
            to_delete(&plain, "monerod", 1),
            ["chainstead-pre-upgrade-monerod-20260101T000000Z-a-to-b"]
        );
    }

    #[test]
    fn a_failing_command_names_itself() {
        let c = Cmd::new(
            Path::new("/bin/sh"),
            &["-c".as_ref(), "echo nope >&2; exit 3".as_ref()],
        );
        let e = format!("{:#}", c.run().unwrap_err());
        assert!(e.contains("/bin/sh -c") && e.contains("nope"), "{e}");
        let c = Cmd::new(Path::new("/nonexistent/zfs"), &[]);
        assert!(format!("{:#}", c.run().unwrap_err()).contains("/nonexistent/zfs"));
    }
}
