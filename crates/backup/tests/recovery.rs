//! How the pusher copes with targets that hang, fail and come back, with
//! what a killed writer leaves behind, and with channel.backup vanishing or
//! changing mode. The delays these tests measure are printed (run with
//! `--nocapture`); their bounds are several seconds wide of what the code
//! does, and several seconds short of what it did before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::json;

/// A server on loopback that accepts every connection and never answers
/// (a hung WebDAV server); connections stay open until the test ends.
fn hanging_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// The `N ms` (or `N.N s`) of the first "<target>: holds … after the
/// change" line in `log`, in milliseconds.
fn logged_delay_ms(log: &str, target: &str) -> Option<f64> {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{target}: holds ")) && l.contains("after the change"))?;
    let inner = line.rsplit_once('(')?.1;
    let (num, unit) = inner.split_once(' ')?;
    let v: f64 = num.parse().ok()?;
    Some(if unit.starts_with("ms") {
        v
    } else {
        v * 1000.0
    })
}

/// Issue 15, item 8: a target that accepts connections and never answers
/// delays neither the directory target nor `push --timeout`, at start-up
/// included, and the delay in the log counts from the change.
#[test]
fn a_hanging_target_delays_neither_the_others_nor_push() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let usb = t.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let port = hanging_server();
    std::fs::write(t.path().join("dav-password"), "dav-pass-123\n").unwrap();
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([
                {"kind": "directory", "name": "usb", "path": usb},
                {"kind": "webdav", "name": "stuck", "url": format!("http://127.0.0.1:{port}/lnd"),
                 "user": "lnd", "password_file": t.path().join("dav-password")},
            ]),
        ),
    );

    // `push --timeout 1`: the hung target never acknowledges, so it fails,
    // after about the timeout (it used to wait 5 s for the hung target's
    // `latest` first).
    let first = payload(1);
    lnd.write(&first);
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    let o = run(&["push", "--timeout", "1"], &manifest);
    let took = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let delay = logged_delay_ms(&stderr, "usb");
    println!("push --timeout 1 with a hung target returned after {took:.2} s");
    println!("push: the directory target's logged delay: {delay:?} ms (the change was 1.5 s before the push)");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(stderr.contains("stuck"), "{}", text(&o));
    assert_eq!(dir_latest(&usb).map(|x| x.1), Some(first));
    assert!(
        delay.is_some_and(|d| d >= 1400.0),
        "the delay is not counted from the change: {delay:?}\n{}",
        text(&o)
    );
    assert!(took < 4.5, "push took {took:.2} s with --timeout 1");

    // The service starting with a rewrite LND made as it starts: the
    // directory target gets it without waiting for the hung target.
    let second = payload(2);
    lnd.write(&second);
    let start = Instant::now();
    let _pusher = spawn_watch(&manifest, t.path());
    assert!(
        wait_until(Duration::from_secs(30), || dir_latest(&usb).map(|x| x.1)
            == Some(second.clone())),
        "{}",
        log(t.path())
    );
    let took = start.elapsed().as_secs_f64();
    println!("watch: the directory target held the start-up version {took:.2} s after the start");
    assert!(
        took < 4.0,
        "the directory target waited {took:.2} s for the hung one\n{}",
        log(t.path())
    );
}

/// Issue 15, item 9: `.tmp-*` files a killed writer left (in a directory
/// target and in the local copies) go at the next reconcile while the
/// service runs, not only at its next start; a file too young to be
/// stale (here: dated ahead) is never removed.
#[test]
fn temp_files_of_a_killed_writer_are_cleaned_while_running() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (usb, manifest) = usb_manifest(t.path());
    lnd.write(&payload(1));
    let _pusher = spawn_watch(&manifest, t.path());
    assert!(wait_until(Duration::from_secs(30), || dir_latest(&usb).is_some()));
    let versions = t.path().join("state/versions");
    let left = |dir: &Path, name: &str, mtime: SystemTime| {
        let p = dir.join(name);
        let f = std::fs::File::create(&p).unwrap();
        f.set_modified(mtime).unwrap();
        p
    };
    let old = SystemTime::now() - Duration::from_secs(600);
    let stale = [
        left(&usb, ".tmp-killed", old),
        left(&versions, ".tmp-killed", old),
    ];
    let ahead = SystemTime::now() + Duration::from_secs(3600);
    let young = [
        left(&usb, ".tmp-in-flight", ahead),
        left(&versions, ".tmp-in-flight", ahead),
    ];
    assert!(
        wait_until(Duration::from_secs(30), || stale
            .iter()
            .all(|p| !p.exists())),
        "left-over temp files stay while the service runs: {stale:?}"
    );
    for p in &young {
        assert!(p.exists(), "{} was removed while young", p.display());
    }
}

/// The "(retrying in X s)" of the last failure line of `target` in `log`.
fn announced_backoff(log: &str, target: &str) -> Option<f64> {
    let line = log
        .lines()
        .rfind(|l| l.contains(&format!("{target}: failed to push")))?;
    let rest = line.rsplit_once("(retrying in ")?.1;
    rest.split_once(' ')?.0.parse().ok()
}

/// Issue 15, item 10: a target that was down long enough to back off for
/// 12 s or more catches up within a few seconds of coming back, without a
/// new version or a reconcile to prompt it (the reconcile is hours away).
#[test]
fn a_target_that_comes_back_catches_up_within_seconds() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    // The target's path is a plain file until the "disk" is back.
    let blocked = t.path().join("mnt");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let mut m = base(
        t.path(),
        json!([{"kind": "directory", "name": "down", "path": blocked.join("lnd")}]),
    );
    m["reconcile_interval_secs"] = json!(3600);
    let manifest = write_manifest(t.path(), &m);
    let data = payload(1);
    lnd.write(&data);
    let _pusher = spawn_watch(&manifest, t.path());
    let mut backoff = 0.0;
    assert!(
        wait_until(Duration::from_secs(90), || {
            backoff = announced_backoff(&log(t.path()), "down").unwrap_or(0.0);
            backoff >= 12.0
        }),
        "{}",
        log(t.path())
    );
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir_all(blocked.join("lnd")).unwrap();
    let back = Instant::now();
    assert!(
        wait_until(Duration::from_secs(90), || dir_latest(&blocked.join("lnd"))
            .map(|x| x.1)
            == Some(data.clone())),
        "{}",
        log(t.path())
    );
    let took = back.elapsed().as_secs_f64();
    println!("a target back after an outage caught up in {took:.2} s (backoff announced: {backoff:.1} s)");
    assert!(
        took < backoff / 2.0,
        "caught up {took:.2} s after it came back, waiting out a {backoff:.1} s backoff\n{}",
        log(t.path())
    );
}

/// Issue 15, item 11: a mode change and the deletion of channel.backup are
/// read at once (the reconcile is hours away): `status` shows the new read
/// and then that the file is gone.
#[test]
fn deletion_or_mode_change_of_channel_backup_is_noticed_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let (usb, mut m) = usb_base(t.path());
    m["reconcile_interval_secs"] = json!(3600);
    let manifest = write_manifest(t.path(), &m);
    lnd.write(&payload(1));
    let _pusher = spawn_watch(&manifest, t.path());
    assert!(wait_until(Duration::from_secs(30), || dir_latest(&usb).is_some()));
    let last_read = || status_json(&manifest)["source"]["last_read"].as_f64();
    let before = last_read();
    assert!(before.is_some());
    // Reads are stamped to the microsecond or so; make sure the next one differs.
    std::thread::sleep(Duration::from_millis(50));
    std::fs::set_permissions(lnd.path(), std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || last_read() > before),
        "a mode change was not read: {}\n{}",
        status_json(&manifest),
        log(t.path())
    );
    std::fs::remove_file(lnd.path()).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || status_json(&manifest)["source"]
            ["failing"]
            == true),
        "the deletion was not noticed: {}\n{}",
        status_json(&manifest),
        log(t.path())
    );
}
