//! End-to-end tests of `chainstead-backup` with directory targets, which need
//! no server: bursts of LND-style rewrites, refused files, a target that is
//! down and comes back, the pusher killed mid-push, a full disk, age,
//! verify/restore and config snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// The manifest; directory targets' folders are created (a target's folder
/// must exist: the pusher never creates it), where their parent allows.
fn base(dir: &Path, targets: serde_json::Value) -> serde_json::Value {
    for t in targets.as_array().into_iter().flatten() {
        if t["kind"] == "directory" {
            let _ = std::fs::create_dir_all(t["path"].as_str().unwrap());
        }
    }
    common::base(dir, targets)
}

fn age_identity(dir: &Path) -> (String, std::path::PathBuf) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let p = dir.join("age-identity.txt");
    std::fs::write(&p, format!("{}\n", id.to_string().expose_secret())).unwrap();
    (id.to_public().to_string(), p)
}

/// A manifest with one directory target `usb` and a snapshot of one file,
/// `<dir>/lnd.conf` (written); returns that file and the manifest's path.
fn snapshot_manifest(dir: &Path) -> (PathBuf, PathBuf) {
    let conf = dir.join("lnd.conf");
    std::fs::write(&conf, "alias=x\n").unwrap();
    let mut m = base(
        dir,
        json!([{"kind": "directory", "name": "usb", "path": dir.join("usb")}]),
    );
    m["snapshot"] = json!({"files": [conf]});
    (conf, write_manifest(dir, &m))
}

/// A manifest with `targets` and encryption to a fresh age identity;
/// returns the manifest's path and the identity file.
fn sealed_manifest(dir: &Path, targets: serde_json::Value) -> (PathBuf, PathBuf) {
    let (recipient, identity) = age_identity(dir);
    let mut m = base(dir, targets);
    m["encryption"] = json!({"recipients": [recipient], "identity_file": identity});
    (write_manifest(dir, &m), identity)
}

#[test]
fn burst_of_rewrites_ends_newest_everywhere_and_never_goes_back() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (manifest, identity) = sealed_manifest(
        t.path(),
        json!([
            {"kind": "directory", "name": "usb", "path": t.path().join("usb")},
            {"kind": "directory", "name": "nfs", "path": t.path().join("nfs"), "encrypt": true},
        ]),
    );
    lnd.write(&payload(0));
    let _pusher = spawn_watch(&manifest, t.path());
    assert!(wait_until(Duration::from_secs(20), || dir_latest(
        &t.path().join("usb")
    )
    .is_some()));
    let w1 = LatestWatcher::start(t.path().join("usb/latest"));
    let w2 = LatestWatcher::start(t.path().join("nfs/latest"));
    let n = 300;
    for i in 1..=n {
        lnd.write(&payload(i));
    }
    let last = payload(n);
    let ok = wait_until(Duration::from_secs(30), || {
        dir_latest(&t.path().join("usb")).map(|(_, d)| d) == Some(last.clone())
            && status_json(&manifest)["targets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["current"] == true)
    });
    let seen1 = w1.finish();
    let seen2 = w2.finish();
    assert!(
        ok,
        "targets did not reach the newest version:\n{}",
        log(t.path())
    );
    // The encrypted target holds the same version, sealed with age.
    let (name, sealed) = dir_latest(&t.path().join("nfs")).unwrap();
    assert!(name.ends_with(".age"), "{name}");
    assert_ne!(sealed, last);
    let plain = chainstead_backup::crypt::open(&identity, &sealed).unwrap();
    assert_eq!(plain, last);
    assert_all_complete(&t.path().join("usb"));
    println!(
        "{n} rewrites: usb saw {} distinct latest values, nfs {}",
        seen1.len(),
        seen2.len()
    );
    // The metrics file is written just after state.json, which `status` reads.
    let prom = t.path().join("chainstead-backup.prom");
    let up =
        "chainstead_backup_up_to_date{target=\"usb\",kind=\"directory\",artifact=\"channel\"} 1";
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read_to_string(&prom)
            .is_ok_and(|p| p.contains(up))),
        "{}",
        std::fs::read_to_string(&prom).unwrap_or_default()
    );
}

#[test]
fn truncated_or_empty_files_are_refused_and_good_copies_kept() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([{"kind": "directory", "name": "usb", "path": t.path().join("usb")}]),
        ),
    );
    let good = payload(3);
    lnd.write(&good);
    let _pusher = spawn_watch(&manifest, t.path());
    let usb = t.path().join("usb");
    assert!(wait_until(Duration::from_secs(20), || dir_latest(&usb)
        .map(|x| x.1)
        == Some(good.clone())));
    lnd.write(b"");
    assert!(wait_until(Duration::from_secs(10), || status_json(
        &manifest
    )["rejected"]["total"]
        .as_u64()
        .unwrap()
        >= 1));
    lnd.clobber(&good[..30]);
    assert!(wait_until(Duration::from_secs(10), || status_json(
        &manifest
    )["rejected"]["total"]
        .as_u64()
        .unwrap()
        >= 2));
    // A reconcile may have refused the empty file again first.
    assert!(
        wait_until(Duration::from_secs(30), || status_json(&manifest)
            ["rejected"]["last_reason"]
            .as_str()
            .is_some_and(|r| r.contains("30 bytes"))),
        "{}",
        status_json(&manifest)
    );
    assert_eq!(
        dir_latest(&usb).unwrap().1,
        good,
        "a bad file replaced the good copy"
    );
    assert!(log(t.path()).contains("ERROR refusing to push channel.backup"));
    let prom = std::fs::read_to_string(t.path().join("chainstead-backup.prom")).unwrap();
    assert!(
        !prom.contains("chainstead_backup_rejected_total 0\n"),
        "{prom}"
    );
    // Every stored version is a good one.
    assert_all_complete(&usb);
    let newer = payload(4);
    lnd.write(&newer);
    assert!(wait_until(Duration::from_secs(10), || dir_latest(&usb)
        .map(|x| x.1)
        == Some(newer.clone())));
}

#[test]
fn target_down_for_a_while_catches_up_and_others_are_not_delayed() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    // The target's path is a plain file, so every write fails (as with a
    // mount that went away), until the file is removed.
    let blocked = t.path().join("mnt");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([
                {"kind": "directory", "name": "down", "path": blocked.join("lnd")},
                {"kind": "directory", "name": "up", "path": t.path().join("up")},
            ]),
        ),
    );
    lnd.write(&payload(1));
    let _pusher = spawn_watch(&manifest, t.path());
    for i in 2..=6 {
        lnd.write(&payload(i));
        let want = payload(i);
        // The healthy target gets every version while the other one keeps
        // failing (no wall-clock bound: that would flake on a busy machine).
        assert!(
            wait_until(Duration::from_secs(30), || dir_latest(&t.path().join("up"))
                .map(|x| x.1)
                == Some(want.clone())),
            "the healthy target was held up:\n{}",
            log(t.path())
        );
    }
    let st = status_json(&manifest);
    let down = &st["targets"][0];
    assert_eq!(down["current"], false, "{st}");
    assert!(down["failures_total"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        down["last_error"]
            .as_str()
            .unwrap()
            .contains("the folder does not exist (disk not mounted?)"),
        "{st}"
    );
    let human = run(&["status"], &manifest);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("BEHIND"),
        "{}",
        text(&human)
    );
    // The disk is back ("mounted"): the folder exists again.
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir_all(blocked.join("lnd")).unwrap();
    let want = payload(6);
    assert!(
        wait_until(Duration::from_secs(90), || dir_latest(&blocked.join("lnd"))
            .map(|x| x.1)
            == Some(want.clone())),
        "the target did not catch up:\n{}",
        log(t.path())
    );
    // It caught up with the newest version directly, not the backlog.
    let files = std::fs::read_dir(blocked.join("lnd")).unwrap().count();
    assert!(files <= 3, "{files} files: the backlog was replayed");
}

#[test]
fn killed_mid_push_leaves_no_torn_copy_and_resumes() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([
                {"kind": "directory", "name": "a", "path": t.path().join("a")},
                {"kind": "directory", "name": "b", "path": t.path().join("b")},
            ]),
        ),
    );
    let mut i = 0;
    lnd.write(&payload(i));
    for round in 0..6u64 {
        let mut pusher = spawn_watch(&manifest, t.path());
        let until = Instant::now() + Duration::from_millis(150 + round * 70);
        while Instant::now() < until {
            i += 1;
            lnd.write(&payload(i));
        }
        pusher.0.kill().unwrap();
        let _ = pusher.0.wait();
    }
    let temps = |d: &str| -> Vec<String> {
        std::fs::read_dir(t.path().join(d))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect()
    };
    let mut pusher = spawn_watch(&manifest, t.path());
    let last = payload(i);
    for d in ["a", "b"] {
        let dir = t.path().join(d);
        assert!(
            wait_until(Duration::from_secs(20), || dir_latest(&dir).map(|x| x.1)
                == Some(last.clone())),
            "{d} did not resume:\n{}",
            log(t.path())
        );
        assert_all_complete(&dir);
        let (name, _) = dir_latest(&dir).unwrap();
        assert!(!name.starts_with(".tmp-"));
    }
    // A write cut by the kill leaves at most a temporary file, never a
    // version; a start removes those older than 10 s.
    let left: Vec<String> = ["a", "b"].iter().flat_map(|d| temps(d)).collect();
    if !left.is_empty() {
        println!("temporary files left by the kills: {left:?}");
        std::thread::sleep(Duration::from_secs(11));
        drop(pusher);
        pusher = spawn_watch(&manifest, t.path());
        assert!(wait_until(Duration::from_secs(10), || temps("a")
            .is_empty()
            && temps("b").is_empty()));
    }
    drop(pusher);
    let v = run(&["verify"], &manifest);
    assert!(v.status.success(), "{}", text(&v));
}

/// A 64 KiB tmpfs fills up; the pusher reports it, never leaves a partial
/// copy, keeps the other target current and catches up once space is freed.
/// Needs root for `mount`; without it, a read-only directory stands in.
#[test]
fn full_directory_target() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let mnt = t.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    struct Unmount(std::path::PathBuf, bool);
    impl Drop for Unmount {
        fn drop(&mut self) {
            if self.1 {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
    }
    let _guard = Unmount(mnt.clone(), mounted);
    if !mounted {
        println!("not root: simulating a full disk with a read-only directory");
        std::fs::create_dir(mnt.join("lnd")).unwrap();
        std::fs::set_permissions(
            mnt.join("lnd"),
            std::os::unix::fs::PermissionsExt::from_mode(0o555),
        )
        .unwrap();
    }
    let mut m = base(
        t.path(),
        json!([
            {"kind": "directory", "name": "small", "path": mnt.join("lnd")},
            {"kind": "directory", "name": "big", "path": t.path().join("big")},
        ]),
    );
    m["retention"] = json!({"keep_last": 1000});
    let manifest = write_manifest(t.path(), &m);
    let _pusher = spawn_watch(&manifest, t.path());
    // 4 KiB pages: a few dozen versions of ~500 bytes fill 64 KiB.
    let mut i = 100;
    let filled = wait_until(Duration::from_secs(60), || {
        i += 1;
        let p = payload(i * 5 + 4); // 645 bytes each
        lnd.write(&p);
        let _ = wait_until(Duration::from_secs(5), || {
            dir_latest(&t.path().join("big")).map(|x| x.1) == Some(p.clone())
        });
        status_json(&manifest)["targets"][0]["failures_total"]
            .as_u64()
            .unwrap()
            > 0
    });
    assert!(filled, "the small target never filled:\n{}", log(t.path()));
    let st = status_json(&manifest);
    let err = st["targets"][0]["last_error"].as_str().unwrap().to_string();
    println!("the small target failed after {} versions: {err}", i - 100);
    if mounted {
        assert!(err.contains("No space left"), "{err}");
    }
    assert!(
        wait_until(Duration::from_secs(5), || status_json(&manifest)["targets"]
            [1]["current"]
            == true),
        "the healthy target fell behind: {st}"
    );
    if mounted {
        assert_all_complete(&mnt.join("lnd"));
        let (name, data) = dir_latest(&mnt.join("lnd")).expect("a latest pointer on the full disk");
        assert!(name.starts_with("channel.backup."));
        assert!(data.len() >= 45);
        // Free space: delete the older half of the versions.
        let mut names: Vec<_> = std::fs::read_dir(mnt.join("lnd"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("channel.backup."))
            .collect();
        names.sort();
        for n in &names[..names.len() / 2] {
            std::fs::remove_file(mnt.join("lnd").join(n)).unwrap();
        }
    } else {
        std::fs::set_permissions(
            mnt.join("lnd"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let want = payload(i * 5 + 4);
    assert!(
        wait_until(Duration::from_secs(90), || dir_latest(&mnt.join("lnd"))
            .map(|x| x.1)
            == Some(want.clone())),
        "no catch-up after space was freed:\n{}",
        log(t.path())
    );
}

#[test]
fn verify_and_restore_round_trip_with_age() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (manifest, _) = sealed_manifest(
        t.path(),
        json!([
            {"kind": "directory", "name": "plain", "path": t.path().join("plain")},
            {"kind": "directory", "name": "sealed", "path": t.path().join("sealed"), "encrypt": true},
        ]),
    );
    let first = payload(11);
    lnd.write(&first);
    let o = run(&["push"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let first_name = status_json(&manifest)["channel"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(5));
    let second = payload(12);
    lnd.write(&second);
    let o = run(&["push"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["verify"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("OK: ").count(), 3, "{out}");
    assert!(out.contains("byte for byte"), "{out}");
    for from in ["plain", "sealed", "local"] {
        let dst = t.path().join(format!("restored-{from}.backup"));
        let o = restore_ok(&manifest, from, &[], &dst);
        assert!(String::from_utf8_lossy(&o.stdout).contains("lncli restorechanbackup --multi_file"));
        assert_eq!(std::fs::read(&dst).unwrap(), second, "restore from {from}");
    }
    let dst = t.path().join("older.backup");
    restore_ok(&manifest, "sealed", &["--version", &first_name], &dst);
    assert_eq!(std::fs::read(&dst).unwrap(), first);
    // Tamper with the plain target's newest copy: verify and restore refuse.
    let (name, _) = dir_latest(&t.path().join("plain")).unwrap();
    std::fs::write(t.path().join("plain").join(&name), payload(99)).unwrap();
    let o = run(&["verify"], &manifest);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("plain"),
        "{}",
        text(&o)
    );
    let o = run(
        &["restore", "--from", "plain", "--out", dst.to_str().unwrap()],
        &manifest,
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not match"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(&dst).unwrap(),
        first,
        "a failed restore replaced the output"
    );
}

/// Interop: the `age` CLI decrypts what the pusher encrypted.
#[test]
#[ignore = "needs age: run via checks/offline"]
fn age_cli_decrypts_pushed_copies() {
    let age_bin = chainstead_testkit::require_binary("age");
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (manifest, identity) = sealed_manifest(
        t.path(),
        json!([{"kind": "directory", "name": "s", "path": t.path().join("s"), "encrypt": true}]),
    );
    lnd.write(&payload(5));
    assert!(run(&["push"], &manifest).status.success());
    let (name, _) = dir_latest(&t.path().join("s")).unwrap();
    let o = std::process::Command::new(age_bin)
        .arg("-d")
        .arg("-i")
        .arg(&identity)
        .arg(t.path().join("s").join(name))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, payload(5));
}

#[test]
fn snapshot_round_trip_and_unchanged_sets_are_not_pushed_again() {
    let t = tempfile::tempdir().unwrap();
    let _lnd = Lnd::new(t.path().join("lnd"));
    let conf = t.path().join("etc/lnd/lnd.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "alias=chainstead\n").unwrap();
    let xpubs = t.path().join("wallet/xpubs.json");
    std::fs::create_dir_all(xpubs.parent().unwrap()).unwrap();
    std::fs::write(&xpubs, "{\"m/84'/0'/0'\": \"xpub...\"}\n").unwrap();
    let mut m = base(
        t.path(),
        json!([{"kind": "directory", "name": "usb", "path": t.path().join("usb")}]),
    );
    m["snapshot"] = json!({"files": [conf, xpubs], "interval_secs": 3600});
    let manifest = write_manifest(t.path(), &m);
    let snaps = t.path().join("usb/snapshots");
    let count = || {
        std::fs::read_dir(&snaps)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".nar"))
                    .count()
            })
            .unwrap_or(0)
    };
    let o = run(&["snapshot"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(count(), 1);
    let o = run(&["snapshot"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(count(), 1, "an unchanged set was pushed again");
    let out = t.path().join("restored");
    restore_ok(&manifest, "usb", &["--snapshot"], &out);
    let inside = |p: &Path| out.join(p.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(inside(&conf)).unwrap(),
        "alias=chainstead\n"
    );
    // The watch service snapshots on change.
    let _pusher = spawn_watch(&manifest, t.path());
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&conf, "alias=renamed\n").unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || count() == 2),
        "{}",
        log(t.path())
    );
    let (name, nar) = dir_latest(&snaps).unwrap();
    assert!(chainstead_backup::version::matches_name(
        chainstead_backup::version::Kind::Snapshot,
        &name,
        &nar
    ));
}

/// Interop: `nix-store --restore` unpacks our NAR.
#[test]
#[ignore = "needs nix-store: run via checks/offline"]
fn nix_store_restores_the_snapshot() {
    let nix_store = chainstead_testkit::require_binary("nix-store");
    let t = tempfile::tempdir().unwrap();
    let _lnd = Lnd::new(t.path().join("lnd"));
    let (conf, manifest) = snapshot_manifest(t.path());
    assert!(run(&["snapshot"], &manifest).status.success());
    let (_, nar) = dir_latest(&t.path().join("usb/snapshots")).unwrap();
    let out = t.path().join("out");
    let mut child = std::process::Command::new(nix_store)
        .arg("--restore")
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&nar).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(out.join(conf.strip_prefix("/").unwrap())).unwrap(),
        "alias=x\n"
    );
}

#[test]
fn validate_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let good = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([{"kind": "directory", "name": "usb", "path": "/mnt/usb"}]),
        ),
    );
    let o = run(&["validate"], &good);
    assert!(o.status.success(), "{}", text(&o));
    let mut bad = base(
        t.path(),
        json!([{"kind": "directory", "name": "usb", "path": "relative/dir"}]),
    );
    bad["version"] = json!(1);
    let badp = t.path().join("bad.json");
    std::fs::write(&badp, bad.to_string()).unwrap();
    let o = run(&["validate"], &badp);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("targets[0].path"),
        "{}",
        text(&o)
    );
    std::fs::write(&badp, "{\"version\": 1, \"surprise\": true}").unwrap();
    let o = run(&["validate"], &badp);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// The service contract: READY=1 over $NOTIFY_SOCKET once the manifest is
/// loaded, STATUS= lines as it works, and a prompt, clean exit on SIGTERM
/// even while a target hangs (a WebDAV server that never answers).
#[test]
fn notify_ready_status_and_prompt_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let silent = chainstead_testkit::ReplayServer::start(|_| chainstead_testkit::Reply::Silence);
    std::fs::write(t.path().join("pw"), "x\n").unwrap();
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([
                {"kind": "directory", "name": "usb", "path": t.path().join("usb")},
                {"kind": "webdav", "name": "hang", "url": format!("{}/x", silent.url()), "user": "u", "password_file": t.path().join("pw")},
            ]),
        ),
    );
    lnd.write(&payload(7));
    let sock_path = t.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let child = std::process::Command::new(bin())
        .args(["watch", "--manifest"])
        .arg(&manifest)
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = chainstead_testkit::ChildGuard::new(child);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(got.iter().any(|m: &String| m.contains("READY=1"))
            && got
                .iter()
                .any(|m| m.contains("STATUS=1/2 targets hold channel.backup.")))
    {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    assert!(
        got.iter()
            .any(|m| m.contains("STATUS=1/2 targets hold channel.backup.")),
        "{got:?}"
    );
    // The hanging target is mid-push now; SIGTERM must still end it quickly.
    let start = Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &guard.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    println!("stopped {} ms after SIGTERM", start.elapsed().as_millis());
}

/// The metrics textfile passes `promtool check metrics` (exposition format,
/// HELP/TYPE, counter naming).
#[test]
#[ignore = "needs promtool: run via checks/offline"]
fn metrics_pass_promtool() {
    let promtool = chainstead_testkit::require_binary("promtool");
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (_, manifest) = snapshot_manifest(t.path());
    lnd.write(&payload(3));
    assert!(run(&["push"], &manifest).status.success());
    assert!(run(&["snapshot"], &manifest).status.success());
    let prom = std::fs::read(t.path().join("chainstead-backup.prom")).unwrap();
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&prom).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&prom),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&prom);
    assert!(text.contains("artifact=\"snapshot\""), "{text}");
}

/// A version named while the clock ran ahead (or before it stepped back)
/// sits on the target as `latest`. The next push must still end with the
/// current content as `latest`, under a name after it, and be reported as
/// done only then; a newer name appearing on a target while the service
/// runs makes it name the current content anew. Retention (keep_last=1)
/// keeps the current version.
#[test]
fn clock_ahead_names_do_not_block_latest() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let usb = t.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let ahead = |year: u32, data: &[u8]| {
        let n = format!(
            "channel.backup.{year}0101T000000.000000000Z.{}",
            &sha_hex(data)[..12]
        );
        std::fs::write(usb.join(&n), data).unwrap();
        std::fs::write(usb.join("latest"), format!("{n}\n")).unwrap();
        n
    };
    let old = payload(1);
    let first_ahead = ahead(2031, &old);
    let mut m = base(
        t.path(),
        json!([{"kind": "directory", "name": "usb", "path": usb}]),
    );
    m["retention"] = json!({"keep_last": 1});
    let manifest = write_manifest(t.path(), &m);
    let cur = payload(2);
    lnd.write(&cur);
    let o = run(&["push"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let (name, data) = dir_latest(&usb).unwrap();
    assert_eq!(
        data, cur,
        "latest still names the version from the clock-ahead run"
    );
    assert!(name > first_ahead, "{name} is not after {first_ahead}");
    let st = status_json(&manifest);
    assert_eq!(st["channel"]["name"], name.as_str());
    assert_eq!(st["targets"][0]["current"], true, "{st}");

    // While the service runs, a newer name shows up on the target.
    let _pusher = spawn_watch(&manifest, t.path());
    let second_ahead = ahead(2033, &payload(3));
    let newest = payload(4);
    lnd.write(&newest);
    let ok = wait_until(Duration::from_secs(20), || {
        dir_latest(&usb).is_some_and(|(n, d)| d == newest && n > second_ahead)
    });
    assert!(
        ok,
        "latest did not move past {second_ahead}:\n{}",
        log(t.path())
    );
    let ok = wait_until(Duration::from_secs(10), || {
        let st = status_json(&manifest);
        st["targets"][0]["current"] == true
            && st["channel"]["name"]
                .as_str()
                .is_some_and(|n| n > second_ahead.as_str())
    });
    assert!(ok, "{}", status_json(&manifest));
    let held = dir_latest(&usb).unwrap().0;
    assert!(usb.join(&held).exists());
}

/// channel.backup becomes unreadable (here a symlink loop, ELOOP, which
/// fails for root too; EACCES and EIO take the same path): status, its
/// JSON and the metrics say so and no target counts as up to date, until
/// the file can be read again.
#[test]
fn unreadable_channel_backup_is_reported_not_only_logged() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (_, manifest) = usb_manifest(t.path());
    let good = payload(7);
    lnd.write(&good);
    let _pusher = spawn_watch(&manifest, t.path());
    let prom = t.path().join("chainstead-backup.prom");
    let up = "chainstead_backup_up_to_date{target=\"usb\",kind=\"directory\",artifact=\"channel\"}";
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read_to_string(&prom)
            .is_ok_and(|p| p.contains(&format!("{up} 1")))),
        "{}",
        log(t.path())
    );
    // Replaced by rename, as LND does, with something that cannot be read.
    let tmp = lnd.dir.join("temp-dont-use.backup");
    std::os::unix::fs::symlink("channel.backup", &tmp).unwrap();
    std::fs::rename(&tmp, lnd.path()).unwrap();
    let failing = || {
        let st = status_json(&manifest);
        st["source"]["failing"] == true && st["targets"][0]["current"] == false
    };
    assert!(
        wait_until(Duration::from_secs(20), failing),
        "{}\n{}",
        status_json(&manifest),
        log(t.path())
    );
    let st = status_json(&manifest);
    assert!(st["source"]["read_failures_total"].as_u64().unwrap() >= 1);
    assert!(st["source"]["last_error"]
        .as_str()
        .unwrap()
        .contains("channel.backup"));
    // The metrics file is written just after state.json, which `status` reads.
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read_to_string(&prom)
            .is_ok_and(|p| p.contains(&format!("{up} 0"))
                && p.contains("chainstead_backup_source_readable 0"))),
        "{}",
        std::fs::read_to_string(&prom).unwrap_or_default()
    );
    let p = std::fs::read_to_string(&prom).unwrap();
    assert!(
        !p.contains("chainstead_backup_source_read_failures_total 0\n"),
        "{p}"
    );
    let o = run(&["status"], &manifest);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("CANNOT READ channel.backup"),
        "{}",
        text(&o)
    );
    // Readable again: back to normal.
    lnd.write(&good);
    assert!(
        wait_until(Duration::from_secs(20), || status_json(&manifest)["source"]
            ["failing"]
            == false),
        "{}",
        log(t.path())
    );
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&prom)
            .is_ok_and(|p| p.contains(&format!("{up} 1"))
                && p.contains(
                    "chainstead_backup_source_last_read_timestamp_seconds "
                )
                && !p.contains(
                    "chainstead_backup_source_last_read_timestamp_seconds 0\n"
                ))),
        "{}",
        std::fs::read_to_string(&prom).unwrap()
    );
}

/// `push` run as root next to a service that runs as its own user: every
/// file it leaves in the state directory (state.json, the metrics, the
/// local copies) and in a directory target belongs to that directory's
/// owner, not root, so the service can go on reading and replacing them.
/// Needs root to change owners; as another user it checks nothing and says so.
#[test]
fn push_as_root_leaves_files_to_the_directory_owner() {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: cannot test owner changes");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (uid, gid) = (65534, 65534);
    let state = t.path().join("state");
    let usb = t.path().join("usb");
    let metrics = t.path().join("metrics");
    for d in [&state, &usb, &metrics] {
        std::fs::create_dir_all(d).unwrap();
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
    }
    let mut m = base(
        t.path(),
        json!([{"kind": "directory", "name": "usb", "path": usb}]),
    );
    m["metrics_dir"] = json!(metrics);
    let manifest = write_manifest(t.path(), &m);
    lnd.write(&payload(9));
    let o = run(&["push"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let mut checked = 0;
    let mut check = |dir: &Path| {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            assert_eq!(
                md.uid(),
                uid,
                "{} belongs to {}",
                e.path().display(),
                md.uid()
            );
            checked += 1;
        }
    };
    check(&state);
    check(&state.join("versions"));
    check(&usb);
    check(&metrics);
    assert!(checked >= 7, "only {checked} files");
}

/// `push` by hand, several at once, next to the running service while LND
/// keeps rewriting: every push succeeds, state.json stays whole, and the
/// end state everywhere is the newest content under the newest name.
#[test]
fn pushes_next_to_the_service_serialise() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (usb, manifest) = usb_manifest(t.path());
    lnd.write(&payload(100));
    let _pusher = spawn_watch(&manifest, t.path());
    let last = 112;
    std::thread::scope(|sc| {
        let mut pushes = Vec::new();
        for i in 101..=last {
            lnd.write(&payload(i));
            let manifest = manifest.clone();
            pushes.push(sc.spawn(move || run(&["push", "--timeout", "120"], &manifest)));
        }
        for p in pushes {
            let o = p.join().unwrap();
            assert!(o.status.success(), "{}", text(&o));
        }
    });
    let newest = payload(last);
    let ok = wait_until(Duration::from_secs(20), || {
        let st = status_json(&manifest);
        dir_latest(&usb).is_some_and(|(n, d)| {
            d == newest
                && st["channel"]["name"] == n.as_str()
                && st["targets"][0]["current"] == true
        })
    });
    assert!(ok, "{}\n{}", status_json(&manifest), log(t.path()));
    assert_all_complete(&usb);
}

/// LND's directory replaced while the service runs (moved away and a new
/// one put in its place, as a restore or a re-created data dir does): the
/// new directory is watched at once, so a change in it is pushed without
/// waiting for the (here one-hour) reconcile.
#[test]
fn replaced_lnd_directory_is_watched_again_at_once() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (usb, mut m) = usb_base(t.path());
    m["reconcile_interval_secs"] = json!(3600);
    let manifest = write_manifest(t.path(), &m);
    lnd.write(&payload(60));
    let _pusher = spawn_watch(&manifest, t.path());
    assert!(
        wait_until(Duration::from_secs(20), || dir_latest(&usb)
            .is_some_and(|(_, d)| d == payload(60))),
        "{}",
        log(t.path())
    );
    std::fs::rename(&lnd.dir, t.path().join("lnd.old")).unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    lnd.write(&payload(61));
    // A later change in the new directory is seen by inotify, too.
    std::thread::sleep(Duration::from_millis(600));
    lnd.write(&payload(62));
    assert!(
        wait_until(Duration::from_secs(20), || dir_latest(&usb)
            .is_some_and(|(_, d)| d == payload(62))),
        "the new directory was not watched:\n{}",
        log(t.path())
    );
    // The moved-away directory is no longer watched: a write there is not
    // taken for LND's file.
    std::fs::write(t.path().join("lnd.old/channel.backup"), payload(63)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dir_latest(&usb).unwrap().1, payload(62));
}

/// A rebuilt host has no state.json: `restore` without `--from` compares
/// the targets' `latest` names and restores the newest copy.
#[test]
fn restore_without_from_takes_the_newest_latest() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let usb = t.path().join("usb");
    let nfs = t.path().join("nfs");
    let both = json!([
        {"kind": "directory", "name": "usb", "path": usb},
        {"kind": "directory", "name": "nfs", "path": nfs},
    ]);
    let manifest = write_manifest(t.path(), &base(t.path(), both));
    lnd.write(&payload(81));
    let o = run(&["push"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    // Only nfs gets the newer version (usb was unplugged then).
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut m = base(
        &other,
        json!([{"kind": "directory", "name": "nfs", "path": nfs}]),
    );
    m["channel_backup"] = json!(lnd.path());
    let only_nfs = write_manifest(&other, &m);
    lnd.write(&payload(82));
    let o = run(&["push"], &only_nfs);
    assert!(o.status.success(), "{}", text(&o));
    // The host is rebuilt: no state, no local copies.
    std::fs::remove_dir_all(t.path().join("state")).unwrap();
    let out = t.path().join("restored.backup");
    let o = run(&["restore", "--out", out.to_str().unwrap()], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), payload(82));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("from nfs"),
        "{}",
        text(&o)
    );
}
