//! The guard against fake data directories: an LND-like tree with
//! channel.db, wallet.db and macaroons, driven through check / verify /
//! record / restore-lnd as the units run them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use chainstead_upgrade_guard::guard::{self, Env, Outcome, Plan};
use chainstead_upgrade_guard::state::State;
use chainstead_upgrade_guard::{GuardError, Manifest};
use serde_json::json;

struct Node {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    copies: PathBuf,
    state: PathBuf,
}

impl Node {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("lnd");
        let net = data.join("data/chain/bitcoin/mainnet");
        let graph = data.join("data/graph/mainnet");
        fs::create_dir_all(&net).unwrap();
        fs::create_dir_all(&graph).unwrap();
        fs::create_dir_all(data.join("macaroons")).unwrap();
        fs::write(graph.join("channel.db"), b"channel state 1").unwrap();
        fs::write(net.join("wallet.db"), b"wallet").unwrap();
        fs::write(data.join("macaroons/admin.macaroon"), b"mac").unwrap();
        fs::set_permissions(graph.join("channel.db"), fs::Permissions::from_mode(0o600)).unwrap();
        Self {
            copies: tmp.path().join("pre-upgrade/lnd"),
            state: data.join(".chainstead-upgrade-guard.json"),
            data,
            _tmp: tmp,
        }
    }

    fn channel_db(&self) -> PathBuf {
        self.data.join("data/graph/mainnet/channel.db")
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![
            self.channel_db(),
            self.data.join("data/chain/bitcoin/mainnet/wallet.db"),
            self.data.join("data/chain/bitcoin/mainnet/macaroons.db"),
            self.data.join("macaroons"),
        ]
    }

    fn manifest_with(&self, version: &str, extra: serde_json::Value) -> Manifest {
        let mut v = json!({
            "version": 1,
            "service": "lnd",
            "package_version": version,
            "data_dir": self.data,
            "state_file": self.state,
            "runbook": "docs/operations.md#upgrades",
            "pre_upgrade": {
                "kind": "copy",
                "dir": self.copies,
                "paths": self.paths(),
                "keep": 2,
            },
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        Manifest::parse(&v.to_string()).unwrap()
    }

    fn manifest(&self, version: &str) -> Manifest {
        self.manifest_with(version, json!({}))
    }

    fn state(&self) -> State {
        State::load(&self.state).unwrap().unwrap()
    }

    /// The copies in the copy directory (hidden partial ones included).
    fn copy_dirs(&self) -> Vec<String> {
        match fs::read_dir(&self.copies) {
            Ok(rd) => {
                let mut v: Vec<String> = rd
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    }

    /// check + record as a successful start of `version` does.
    fn start(&self, version: &str, env: &Env) -> Outcome {
        let m = self.manifest(version);
        let out = guard::check(&m, env).unwrap();
        guard::verify(&m).unwrap();
        guard::record(&m).unwrap();
        out
    }
}

fn plenty(_: &Path) -> Result<u64> {
    Ok(u64::MAX)
}

fn env_at(secs: u64) -> Env<'static> {
    Env {
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs),
        available: &plenty,
    }
}

fn guard_error(e: &anyhow::Error) -> &GuardError {
    e.downcast_ref::<GuardError>()
        .unwrap_or_else(|| panic!("not a GuardError: {e:#}"))
}

#[test]
fn first_start_records_after_the_start_only() {
    let n = Node::new();
    let m = n.manifest("0.19.3-beta");
    // The service's own pre-start refuses until check has run.
    assert!(matches!(
        guard_error(&guard::verify(&m).unwrap_err()),
        GuardError::NotPrepared { .. }
    ));
    assert_eq!(guard::check(&m, &env_at(0)).unwrap(), Outcome::FirstStart);
    let st = n.state();
    assert_eq!(st.data_version, None, "not recorded before the start");
    assert_eq!(st.pending.as_ref().unwrap().version, "0.19.3-beta");
    assert_eq!(guard::verify(&m).unwrap(), Plan::FirstStart);
    guard::record(&m).unwrap();
    let st = n.state();
    assert_eq!(st.data_version.as_deref(), Some("0.19.3-beta"));
    assert_eq!(st.starts, 1);
    assert_eq!(st.pending, None);
    assert!(n.copy_dirs().is_empty(), "no copy on a first start");
}

#[test]
fn same_version_changes_nothing() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let before = fs::read(&n.state).unwrap();
    // v-prefix and missing components are the same version.
    let m = n.manifest("v0.19.3-beta");
    assert_eq!(guard::check(&m, &env_at(1)).unwrap(), Outcome::Same);
    assert_eq!(fs::read(&n.state).unwrap(), before);
    assert!(n.copy_dirs().is_empty());
    assert_eq!(guard::verify(&m).unwrap(), Plan::Same);
}

#[test]
fn upgrade_copies_first_and_records_only_after_the_start() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let m = n.manifest("0.20.0-beta");
    // Without check, the service itself refuses the upgrade.
    let e = guard::verify(&m).unwrap_err();
    assert!(matches!(guard_error(&e), GuardError::NotPrepared { .. }));
    assert!(
        format!("{e:#}").contains("chainstead-upgrade-guard-lnd"),
        "{e:#}"
    );

    let Outcome::Upgraded { copy: Some(copy) } = guard::check(&m, &env_at(10)).unwrap() else {
        panic!("expected an upgrade with a copy");
    };
    let copy = PathBuf::from(copy);
    assert!(copy.starts_with(&n.copies));
    let name = copy.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains("0.19.3-beta-to-0.20.0-beta"), "{name}");
    // The copy holds every file, with its mode; a missing path is skipped.
    let inside = |p: &Path| chainstead_upgrade_guard::copy::inside(&copy, p);
    assert_eq!(
        fs::read(inside(&n.channel_db())).unwrap(),
        b"channel state 1"
    );
    assert_eq!(
        fs::metadata(inside(&n.channel_db()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fs::read(inside(&n.data.join("macaroons/admin.macaroon"))).unwrap(),
        b"mac"
    );
    assert!(!inside(&n.data.join("data/chain/bitcoin/mainnet/macaroons.db")).exists());

    let st = n.state();
    assert_eq!(
        st.data_version.as_deref(),
        Some("0.19.3-beta"),
        "not yet recorded"
    );
    assert_eq!(st.copies.len(), 1);
    assert_eq!(st.copies[0].starts_at_copy, 1);
    assert!(matches!(guard::verify(&m).unwrap(), Plan::Resume { .. }));

    let st = guard::record(&m).unwrap();
    assert_eq!(st.data_version.as_deref(), Some("0.20.0-beta"));
    assert_eq!(st.starts, 2);
    assert_eq!(st.pending, None);
    assert_eq!(n.state(), st);
}

#[test]
fn downgrade_is_refused_with_both_versions_and_the_runbook() {
    let n = Node::new();
    n.start("0.20.0-beta", &env_at(0));
    let before = fs::read(&n.state).unwrap();
    let m = n.manifest("0.19.3-beta");
    for e in [
        guard::check(&m, &env_at(1)).unwrap_err(),
        guard::verify(&m).unwrap_err(),
        guard::record(&m).unwrap_err(),
    ] {
        assert!(matches!(guard_error(&e), GuardError::Downgrade { .. }));
        let msg = format!("{e:#}");
        for want in [
            "lnd 0.19.3-beta",
            "lnd 0.20.0-beta",
            "docs/operations.md#upgrades",
        ] {
            assert!(msg.contains(want), "{want} missing in: {msg}");
        }
    }
    assert_eq!(
        fs::read(&n.state).unwrap(),
        before,
        "a refusal changes nothing"
    );
    assert!(n.copy_dirs().is_empty());
}

#[test]
fn allow_downgrade_lets_the_older_package_start() {
    let n = Node::new();
    n.start("30.1", &env_at(0));
    let m = n.manifest_with("29.0", json!({ "allow_downgrade": true }));
    assert_eq!(
        guard::check(&m, &env_at(1)).unwrap(),
        Outcome::AllowedDowngrade
    );
    assert!(n.copy_dirs().is_empty(), "no copy on a downgrade");
    assert!(matches!(
        guard::verify(&m).unwrap(),
        Plan::AllowedDowngrade { .. }
    ));
    assert_eq!(
        guard::record(&m).unwrap().data_version.as_deref(),
        Some("29.0")
    );
}

#[test]
fn a_full_disk_refuses_the_copy_and_leaves_none() {
    let n = Node::new();
    n.start("1.12.0.1", &env_at(0));
    let before = fs::read(&n.state).unwrap();
    let tiny = |_: &Path| -> Result<u64> { Ok(10) };
    let env = Env {
        now: env_at(1).now,
        available: &tiny,
    };
    let m = n.manifest("1.12.1");
    let e = guard::check(&m, &env).unwrap_err();
    let GuardError::NoSpace {
        dir,
        needed,
        available,
    } = guard_error(&e)
    else {
        panic!("{e:#}");
    };
    assert_eq!(dir, &n.copies);
    assert_eq!(*available, 10);
    assert!(*needed > 10);
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&n.copies.display().to_string()) && msg.contains("Nothing was copied"),
        "{msg}"
    );
    assert!(
        n.copy_dirs().is_empty(),
        "no partial copy: {:?}",
        n.copy_dirs()
    );
    assert_eq!(fs::read(&n.state).unwrap(), before);
    // And the service refuses to start the new version.
    assert!(matches!(
        guard_error(&guard::verify(&m).unwrap_err()),
        GuardError::NotPrepared { .. }
    ));
}

#[test]
fn the_reserve_counts_against_the_free_space() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let budget = |_: &Path| -> Result<u64> { Ok(1024 * 1024) };
    let env = Env {
        now: env_at(1).now,
        available: &budget,
    };
    let m = n.manifest_with(
        "0.20.0-beta",
        json!({ "pre_upgrade": {
            "kind": "copy", "dir": n.copies, "paths": n.paths(), "keep": 1,
            "reserve_bytes": 1024 * 1024
        }}),
    );
    assert!(matches!(
        guard_error(&guard::check(&m, &env).unwrap_err()),
        GuardError::NoSpace { .. }
    ));
}

#[test]
fn a_crash_between_copy_and_start_is_resumed_or_refused() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let m = n.manifest("0.20.0-beta");
    let Outcome::Upgraded { copy } = guard::check(&m, &env_at(10)).unwrap() else {
        panic!()
    };
    // Power cut: LND never started, nothing recorded. A copy interrupted
    // mid-way on another attempt left a partial directory too.
    fs::create_dir_all(n.copies.join(".partial-chainstead-pre-upgrade-lnd-x/files")).unwrap();

    // A rollback now is refused: 0.20.0 may have started migrating.
    let old = n.manifest("0.19.3-beta");
    let e = guard::check(&old, &env_at(20)).unwrap_err();
    assert!(
        matches!(guard_error(&e), GuardError::Interrupted { .. }),
        "{e:#}"
    );
    assert!(format!("{e:#}").contains("0.20.0-beta"));
    assert!(matches!(
        guard_error(&guard::verify(&old).unwrap_err()),
        GuardError::Interrupted { .. }
    ));

    // The same upgrade again keeps the first copy and takes no second one.
    assert_eq!(
        guard::check(&m, &env_at(30)).unwrap(),
        Outcome::Resumed { copy: copy.clone() }
    );
    assert_eq!(n.state().copies.len(), 1);
    guard::verify(&m).unwrap();
    guard::record(&m).unwrap();
    assert_eq!(n.state().data_version.as_deref(), Some("0.20.0-beta"));

    // The next copy clears the partial one.
    n.start("0.21.0-beta", &env_at(40));
    let dirs = n.copy_dirs();
    assert!(dirs.iter().all(|d| !d.starts_with(".partial")), "{dirs:?}");
    assert_eq!(dirs.len(), 2, "{dirs:?}");
}

#[test]
fn retention_keeps_the_newest_copies() {
    let n = Node::new();
    n.start("0.18.0-beta", &env_at(0));
    n.start("0.19.0-beta", &env_at(10));
    n.start("0.19.3-beta", &env_at(20));
    n.start("0.20.0-beta", &env_at(30));
    let dirs = n.copy_dirs();
    assert_eq!(dirs.len(), 2, "keep = 2: {dirs:?}");
    assert!(dirs[0].ends_with("0.19.0-beta-to-0.19.3-beta"), "{dirs:?}");
    assert!(dirs[1].ends_with("0.19.3-beta-to-0.20.0-beta"), "{dirs:?}");
    let st = n.state();
    assert_eq!(st.copies.len(), 2, "records of removed copies go too");
    assert!(st.copies.iter().all(|c| Path::new(&c.location).exists()));
}

#[test]
fn restore_is_refused_once_lnd_ran_on_newer_state() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    n.start("0.20.0-beta", &env_at(10)); // copy, then LND ran and was recorded
    fs::write(n.channel_db(), b"channel state 2").unwrap();
    let m = n.manifest("0.19.3-beta");

    let e = guard::restore_lnd(&m, &env_at(20), None, false).unwrap_err();
    let GuardError::RestoreAfterNewerRun { since, .. } = guard_error(&e) else {
        panic!("{e:#}")
    };
    assert_eq!(*since, 1);
    let msg = format!("{e:#}");
    assert!(
        msg.contains("static channel backup") && msg.contains("funds"),
        "{msg}"
    );
    assert_eq!(
        fs::read(n.channel_db()).unwrap(),
        b"channel state 2",
        "untouched"
    );

    // The explicit flag restores, keeping the replaced files.
    let rec = guard::restore_lnd(&m, &env_at(20), None, true).unwrap();
    assert_eq!(rec.from_version, "0.19.3-beta");
    assert_eq!(fs::read(n.channel_db()).unwrap(), b"channel state 1");
    let graph = n.channel_db().parent().unwrap().to_path_buf();
    let aside: Vec<_> = fs::read_dir(&graph)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("channel.db.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(fs::read(graph.join(&aside[0])).unwrap(), b"channel state 2");
    assert_eq!(n.state().data_version.as_deref(), Some("0.19.3-beta"));
}

#[test]
fn a_failed_upgrade_can_be_restored_and_rolled_back() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let new = n.manifest("0.20.0-beta");
    guard::check(&new, &env_at(10)).unwrap();
    // 0.20.0 migrated channel.db, then failed before it was ready.
    fs::write(n.channel_db(), b"migrated").unwrap();
    let old = n.manifest("0.19.3-beta");
    assert!(
        guard::check(&old, &env_at(20)).is_err(),
        "rollback refused first"
    );

    guard::restore_lnd(&old, &env_at(30), None, false).unwrap();
    assert_eq!(fs::read(n.channel_db()).unwrap(), b"channel state 1");
    assert_eq!(guard::check(&old, &env_at(40)).unwrap(), Outcome::Same);
    guard::verify(&old).unwrap();
}

#[test]
fn a_restore_puts_back_the_recorded_modes() {
    use chainstead_upgrade_guard::copy;
    let n = Node::new();
    let macaroons = n.data.join("macaroons");
    fs::set_permissions(&macaroons, fs::Permissions::from_mode(0o2750)).unwrap();
    n.start("0.19.3-beta", &env_at(0));
    let m = n.manifest("0.20.0-beta");
    let Outcome::Upgraded { copy: Some(at) } = guard::check(&m, &env_at(10)).unwrap() else {
        panic!()
    };
    let at = PathBuf::from(at);
    let attrs = copy::load_attributes(&at).unwrap();
    let of = |p: &Path| attrs.iter().find(|a| a.path == p).unwrap().clone();
    assert_eq!(of(&macaroons).mode, 0o2750);
    assert_eq!(of(&n.channel_db()).mode, 0o600);
    assert_eq!(
        of(&macaroons.join("admin.macaroon")).path,
        macaroons.join("admin.macaroon")
    );
    // A copy that could not keep the mode (as a user outside the group).
    fs::set_permissions(
        copy::inside(&at, &macaroons),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    guard::restore_lnd(&m, &env_at(20), None, false).unwrap();
    assert_eq!(
        fs::metadata(&macaroons).unwrap().permissions().mode() & 0o7777,
        0o2750
    );
    assert_eq!(fs::read(macaroons.join("admin.macaroon")).unwrap(), b"mac");
}

/// The root-only tests run under `-- --ignored`, which checks/offline also
/// runs as a user: there they say they were skipped and pass.
fn as_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: this test needs root (mount, chown)");
    }
    root
}

/// Owners come back only as root (run with `-- --ignored` as root).
#[test]
#[ignore]
fn a_restore_as_root_puts_back_the_recorded_group() {
    use chainstead_upgrade_guard::copy;
    use std::os::unix::fs::MetadataExt;
    if !as_root() {
        return;
    }
    let n = Node::new();
    let mac = n.data.join("macaroons/admin.macaroon");
    std::os::unix::fs::lchown(&mac, None, Some(4242)).unwrap();
    fs::set_permissions(&mac, fs::Permissions::from_mode(0o640)).unwrap();
    n.start("0.19.3-beta", &env_at(0));
    let m = n.manifest("0.20.0-beta");
    let Outcome::Upgraded { copy: Some(at) } = guard::check(&m, &env_at(10)).unwrap() else {
        panic!()
    };
    // As if taken by LND's user, which is not in the macaroon group.
    std::os::unix::fs::lchown(copy::inside(Path::new(&at), &mac), None, Some(0)).unwrap();
    guard::restore_lnd(&m, &env_at(20), None, false).unwrap();
    let meta = fs::metadata(&mac).unwrap();
    assert_eq!(meta.gid(), 4242);
    assert_eq!(meta.mode() & 0o7777, 0o640);
}

#[test]
fn a_prepared_upgrade_whose_copy_vanished_is_not_started() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let m = n.manifest("0.20.0-beta");
    let Outcome::Upgraded { copy: Some(first) } = guard::check(&m, &env_at(10)).unwrap() else {
        panic!()
    };
    fs::remove_dir_all(&first).unwrap();
    assert!(matches!(
        guard_error(&guard::verify(&m).unwrap_err()),
        GuardError::NotPrepared { .. }
    ));
    // The next check takes a new copy, and then the start may go on.
    let Outcome::Upgraded { copy: Some(second) } = guard::check(&m, &env_at(20)).unwrap() else {
        panic!()
    };
    assert_ne!(first, second);
    assert!(Path::new(&second).exists());
    guard::verify(&m).unwrap();
}

#[test]
fn restore_refuses_while_lnd_holds_its_database() {
    use nix::fcntl::{Flock, FlockArg};
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let m = n.manifest("0.20.0-beta");
    guard::check(&m, &env_at(10)).unwrap();
    let held = Flock::lock(
        fs::File::open(n.channel_db()).unwrap(),
        FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    let e = guard::restore_lnd(&m, &env_at(20), None, false).unwrap_err();
    assert!(
        matches!(guard_error(&e), GuardError::LndRunning { .. }),
        "{e:#}"
    );
    drop(held);
    guard::restore_lnd(&m, &env_at(20), None, false).unwrap();
}

#[test]
fn restore_needs_a_recorded_copy() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let e = guard::restore_lnd(&n.manifest("0.19.3-beta"), &env_at(1), None, false).unwrap_err();
    assert!(
        format!("{e:#}").contains("no pre-upgrade copy is recorded"),
        "{e:#}"
    );
}

/// A program that fails with a message (only /bin/sh exists in the Nix
/// build sandbox, so no /bin/false).
fn failing(dir: &Path, name: &str) -> PathBuf {
    let prog = dir.join(name);
    fs::write(&prog, "#!/bin/sh\necho 'no such pool' >&2\nexit 1\n").unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    prog
}

/// A fake `zfs`: logs its arguments, lists the snapshots it was given.
fn fake_zfs(dir: &Path, listing: &str) -> PathBuf {
    let log = dir.join("zfs.log");
    let prog = dir.join("zfs");
    fs::write(
        &prog,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = list ]; then printf '%s\\n' {listing}; fi\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    prog
}

#[test]
fn zfs_snapshot_instead_of_a_copy() {
    let n = Node::new();
    n.start("0.18.4.3", &env_at(0));
    let bin = tempfile::tempdir().unwrap();
    let zfs = fake_zfs(
        bin.path(),
        "tank/monerod@chainstead-pre-upgrade-monerod-20250101T000000Z-a-to-b \
         tank/monerod@chainstead-pre-upgrade-monerod-20260101T000000Z-b-to-c \
         tank/monerod@mine",
    );
    let m = n.manifest_with(
        "0.18.4.4",
        json!({
            "service": "monerod",
            "pre_upgrade": { "kind": "zfs", "program": zfs, "dataset": "tank/monerod", "keep": 1 },
        }),
    );
    let Outcome::Upgraded { copy: Some(snap) } = guard::check(&m, &env_at(5)).unwrap() else {
        panic!()
    };
    assert!(
        snap.starts_with("tank/monerod@chainstead-pre-upgrade-monerod-"),
        "{snap}"
    );
    assert!(snap.ends_with("-0.18.4.3-to-0.18.4.4"), "{snap}");
    let log = fs::read_to_string(bin.path().join("zfs.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], format!("snapshot {snap}"));
    assert_eq!(lines[1], "list -H -o name -t snapshot -d 1 tank/monerod");
    // The fake's listing lacks the new one; of the guard's, the older goes.
    assert_eq!(
        lines[2],
        "destroy tank/monerod@chainstead-pre-upgrade-monerod-20250101T000000Z-a-to-b"
    );
    assert_eq!(lines.len(), 3, "{log}");
    assert!(n.copy_dirs().is_empty());
}

#[test]
fn a_failing_snapshot_stops_the_upgrade() {
    let n = Node::new();
    n.start("29.0", &env_at(0));
    let bin = tempfile::tempdir().unwrap();
    let btrfs = failing(bin.path(), "btrfs");
    let m = n.manifest_with(
        "30.1",
        json!({
            "service": "bitcoind",
            "pre_upgrade": { "kind": "btrfs", "program": btrfs,
                             "subvolume": n.data, "dir": n.copies, "keep": 1 },
        }),
    );
    let e = format!("{:#}", guard::check(&m, &env_at(5)).unwrap_err());
    assert!(
        e.contains(&format!("{} subvolume snapshot -r", btrfs.display()))
            && e.contains("no such pool"),
        "{e}"
    );
    assert!(n.state().pending.is_none(), "no upgrade prepared");
}

#[test]
fn no_copy_configured_still_guards_the_version() {
    let n = Node::new();
    n.start("29.0", &env_at(0));
    let m = n.manifest_with(
        "30.1",
        json!({ "service": "bitcoind", "pre_upgrade": { "kind": "none" } }),
    );
    assert_eq!(
        guard::check(&m, &env_at(5)).unwrap(),
        Outcome::Upgraded { copy: None }
    );
    guard::verify(&m).unwrap();
    guard::record(&m).unwrap();
    let back = n.manifest_with(
        "29.0",
        json!({ "service": "bitcoind", "pre_upgrade": { "kind": "none" } }),
    );
    let e = guard::check(&back, &env_at(6)).unwrap_err();
    assert!(format!("{e:#}").contains("bitcoind 30.1"), "{e:#}");
}

#[test]
fn a_fresh_channel_backup_is_pushed_on_an_upgrade_only() {
    let n = Node::new();
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("push.log");
    let prog = bin.path().join("chainstead-backup");
    // The fake pusher logs the complete copies it finds and its arguments.
    fs::write(
        &prog,
        format!(
            "#!/bin/sh\nls '{}' 2>/dev/null | grep -v '^\\.partial' >> '{}'\necho \"$*\" >> '{}'\n",
            n.copies.display(),
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let push = |v: &str| {
        n.manifest_with(
            v,
            json!({ "backup_push": { "program": prog, "manifest": "/etc/chainstead/backup.json" } }),
        )
    };
    // First start and same version: nothing to push.
    let m = push("0.19.3-beta");
    guard::check(&m, &env_at(0)).unwrap();
    assert!(!guard::push_backup(&m).unwrap());
    guard::record(&m).unwrap();
    guard::check(&m, &env_at(1)).unwrap();
    assert!(!guard::push_backup(&m).unwrap());
    assert!(!log.exists());

    let m = push("0.20.0-beta");
    guard::check(&m, &env_at(5)).unwrap();
    assert!(guard::push_backup(&m).unwrap());
    let out = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with("0.19.3-beta-to-0.20.0-beta"),
        "copy before push: {out}"
    );
    assert_eq!(
        lines[1],
        "push --manifest /etc/chainstead/backup.json --timeout 60"
    );
    // Once recorded, the next start pushes nothing more.
    guard::record(&m).unwrap();
    assert!(!guard::push_backup(&m).unwrap());
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 2);
}

#[test]
fn a_failed_push_is_an_error_naming_both_versions() {
    let n = Node::new();
    n.start("0.19.3-beta", &env_at(0));
    let bin = tempfile::tempdir().unwrap();
    let pusher = failing(bin.path(), "chainstead-backup");
    let m = n.manifest_with(
        "0.20.0-beta",
        json!({ "backup_push": { "program": pusher, "manifest": "/etc/chainstead/backup.json" } }),
    );
    guard::check(&m, &env_at(5)).unwrap();
    let e = format!("{:#}", guard::push_backup(&m).unwrap_err());
    assert!(e.contains("from 0.19.3-beta to 0.20.0-beta"), "{e}");
}

/// A real full disk: a 1 MiB tmpfs (needs root to mount; run with
/// `cargo test -p chainstead-upgrade-guard -- --ignored` as root).
#[test]
#[ignore]
fn a_real_full_tmpfs_leaves_no_partial_copy() {
    struct Mount(PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    if !as_root() {
        return;
    }
    let n = Node::new();
    // 3 MiB of channel.db: larger than the tmpfs.
    fs::write(n.channel_db(), vec![7u8; 3 * 1024 * 1024]).unwrap();
    n.start("0.19.3-beta", &env_at(0));
    fs::create_dir_all(&n.copies).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&n.copies)
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "failed to mount a tmpfs on {}",
        n.copies.display()
    );
    let _mount = Mount(n.copies.clone());

    // The real free-space check refuses before copying anything.
    let m = n.manifest("0.20.0-beta");
    let e = guard::check(&m, &Env::real()).unwrap_err();
    assert!(
        matches!(guard_error(&e), GuardError::NoSpace { .. }),
        "{e:#}"
    );
    assert!(n.copy_dirs().is_empty());

    // A filesystem that fills up during the copy (the check was told
    // otherwise): the write fails and the partial copy is removed.
    let e = guard::check(&m, &env_at(1)).unwrap_err();
    assert!(format!("{e:#}").contains("failed to copy"), "{e:#}");
    assert!(n.copy_dirs().is_empty(), "{:?}", n.copy_dirs());
    assert!(n.state().pending.is_none());
}
