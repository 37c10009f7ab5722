//! The loader on a runtime file system it cannot write (issue 15 item 5):
//! the real binary, in local mode, against a tmpfs remounted read-only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

/// A tmpfs mounted at a path, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0711", "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "failed to mount a tmpfs at {}", at.display());
        Self(at.to_owned())
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "failed to remount {} read-only", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A load that cannot write its runtime directory fails, and says the
/// previous files are still there (they are), not that they were removed.
#[test]
fn a_read_only_runtime_dir_keeps_and_reports_the_previous_files() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: cannot mount a tmpfs; this test needs root (CI runs as root)");
        return;
    }
    let env = Env::new();
    let rt = Tmpfs::mount(&env.runtime());
    let (o, g, _) = owner();
    let m = env.manifest(
        None,
        serde_json::Value::Null,
        json!({"lnd": {"owner": o, "group": g, "secrets": {
            "wallet-password": {"path": "chainstead/lnd", "field": "wallet", "file": "wallet-password",
                                "generate": {"length": 24}}
        }}}),
    );
    assert!(load(&m).ok);
    let file = env.runtime().join("lnd/wallet-password");
    let before = std::fs::read_to_string(&file).unwrap();
    rt.remount_read_only();
    let r = load(&m);
    assert!(!r.ok);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains(
            "failed to load the secrets of lnd; the previous files of lnd are still in place and readable"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    assert!(!r.stderr.contains("were removed"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    assert_no_leak(&r, &[&before]);
}

/// Issue 15 item 4, as it was seen: two whole `load` runs of the same
/// service at once (a manual load while a unit loads), many times; both
/// exit 0 and every file is live after each pair.
#[test]
fn concurrent_loads_of_one_service_both_end_with_every_file_live() {
    let env = Env::new();
    let (o, g, _) = owner();
    let m = env.manifest(
        None,
        serde_json::Value::Null,
        json!({"lnd": {"owner": o, "group": g, "secrets": {
            "a": {"path": "chainstead/lnd", "field": "a", "file": "a", "generate": {"length": 24}},
            "b": {"path": "chainstead/lnd", "field": "b", "file": "b", "generate": {"length": 24}},
            "c": {"path": "chainstead/lnd", "field": "c", "file": "c", "generate": {"length": 24}}
        }}}),
    );
    assert!(load(&m).ok);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_chainstead-secrets"))
            .args(["load", "--manifest", m.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    for pair in 0..25 {
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "pair {pair}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(names(&env.runtime()), ["lnd"], "pair {pair}");
        assert_eq!(
            names(&env.runtime().join("lnd")),
            ["a", "b", "c"],
            "pair {pair}"
        );
    }
}
