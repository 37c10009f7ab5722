//! Against real servers started here on 127.0.0.1 with data in temp dirs:
//! `rclone serve webdav` (WebDAV), Garage (S3) and RustyVault (a Vault-API
//! server with KV v1 only; KV v2 is covered by the replay in replay.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chainstead_testkit::free_port;
use common::servers::*;
use common::*;
use serde_json::json;

#[test]
#[ignore = "needs rclone: run via checks/offline"]
fn webdav_burst_outage_and_catch_up() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let served = t.path().join("dav");
    std::fs::create_dir(&served).unwrap();
    let port = free_port();
    let mut server = Some(rclone(&served, port));
    std::fs::write(t.path().join("dav-password"), "dav-pass-123\n").unwrap();
    let dav = json!({"kind": "webdav", "name": "dav", "url": format!("http://127.0.0.1:{port}/node1/lnd"),
                     "user": "lnd", "password_file": t.path().join("dav-password")});
    // OpenBao KV v2 (a replay: see common/bao.rs) in the same burst.
    let kv = std::sync::Arc::new(common::bao::FakeKv2::default());
    let bao_srv = {
        let kv = kv.clone();
        chainstead_testkit::ReplayServer::start(move |r| kv.answer(r))
    };
    std::fs::write(t.path().join("role-id"), "role-1\n").unwrap();
    std::fs::write(t.path().join("secret-id"), "secret-1\n").unwrap();
    let bao = json!({"kind": "openbao", "name": "bao", "address": bao_srv.url(),
        "auth": {"approle": {"role_id_file": t.path().join("role-id"), "secret_id_file": t.path().join("secret-id")}},
        "mount": "secret", "path": "lnd/channel-backup"});
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([dav, bao, {"kind": "directory", "name": "usb", "path": t.path().join("usb")}]),
        ),
    );
    std::fs::create_dir_all(t.path().join("usb")).unwrap();
    lnd.write(&payload(0));
    let _pusher = spawn_watch(&manifest, t.path());
    let dav_dir = served.join("node1/lnd");
    assert!(
        wait_until(Duration::from_secs(20), || dir_latest(&dav_dir).is_some()),
        "{}",
        log(t.path())
    );
    let watcher = LatestWatcher::start(dav_dir.join("latest"));
    let n = 250;
    for i in 1..=n {
        lnd.write(&payload(i));
    }
    let last = payload(n);
    assert!(
        wait_until(Duration::from_secs(30), || dir_latest(&dav_dir)
            .map(|x| x.1)
            == Some(last.clone())),
        "{}",
        log(t.path())
    );
    let seen = watcher.finish();
    println!(
        "webdav: {n} rewrites, {} distinct latest values",
        seen.len()
    );
    assert_all_complete(&dav_dir);
    assert_eq!(remote_latest(&dav, t.path()).unwrap().1, last);
    // KV v2: the newest is the current version, and every new version's
    // name is newer than the one before (nothing older was written over it).
    assert!(wait_until(Duration::from_secs(20), || {
        let vs = kv.versions.lock().unwrap();
        vs.last()
            .and_then(|v| v["content"].as_str())
            .map(String::from)
            == Some(base64::engine::general_purpose::STANDARD.encode(&last))
    }));
    {
        let vs = kv.versions.lock().unwrap();
        let names: Vec<&str> = vs.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert!(names.windows(2).all(|w| w[1] > w[0]), "{names:?}");
        println!("openbao: {} KV versions for {n} rewrites", names.len());
    }

    // Outage: the server goes away, three rewrites happen, it comes back.
    server.take();
    for i in n + 1..=n + 3 {
        lnd.write(&payload(i));
    }
    let newest = payload(n + 3);
    assert!(wait_until(Duration::from_secs(10), || dir_latest(
        &t.path().join("usb")
    )
    .map(|x| x.1)
        == Some(newest.clone())));
    assert!(wait_until(Duration::from_secs(10), || {
        let st = status_json(&manifest);
        st["targets"][0]["current"] == false
            && st["targets"][0]["failures_total"].as_u64().unwrap() > 0
    }));
    let st = status_json(&manifest);
    println!("while down: {}", st["targets"][0]["last_error"]);
    let _server = rclone(&served, port);
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(90), || dir_latest(&dav_dir)
            .map(|x| x.1)
            == Some(newest.clone())),
        "webdav did not catch up:\n{}",
        log(t.path())
    );
    println!(
        "webdav caught up {:.1} s after it came back",
        start.elapsed().as_secs_f64()
    );
    let o = run(&["verify"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
#[ignore = "needs garage: run via checks/offline"]
fn garage_burst_wrong_secret_verify_restore() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let g = garage();
    let good = g.spec(t.path(), "garage", &g.secret);
    g.wait_ready(&good, t.path());
    let wrong = g.spec(
        t.path(),
        "garage-wrong",
        "00000000000000000000000000000000000000000000000000000000deadbeef",
    );
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([good, wrong, {"kind": "directory", "name": "usb", "path": t.path().join("usb")}]),
        ),
    );
    std::fs::create_dir_all(t.path().join("usb")).unwrap();
    lnd.write(&payload(0));
    let _pusher = spawn_watch(&manifest, t.path());
    let n = 250;
    let mut pointer_seen: Vec<String> = Vec::new();
    for i in 1..=n {
        lnd.write(&payload(i));
        if i % 25 == 0 {
            if let Some((name, _)) = remote_latest(&good, t.path()) {
                if let Some(prev) = pointer_seen.last() {
                    assert!(&name >= prev, "S3 latest went backwards: {prev} -> {name}");
                }
                pointer_seen.push(name);
            }
        }
    }
    let last = payload(n);
    assert!(
        wait_until(Duration::from_secs(30), || remote_latest(&good, t.path())
            .map(|x| x.1)
            == Some(last.clone())),
        "{}",
        log(t.path())
    );
    assert!(wait_until(Duration::from_secs(10), || dir_latest(
        &t.path().join("usb")
    )
    .map(|x| x.1)
        == Some(last.clone())));
    // The wrong secret: a clear error for that target only. (The others'
    // acknowledgements reach state.json just after their writes.)
    assert!(
        wait_until(Duration::from_secs(30), || {
            let st = status_json(&manifest);
            st["targets"][0]["current"] == true && st["targets"][2]["current"] == true
        }),
        "{}",
        status_json(&manifest)
    );
    let st = status_json(&manifest);
    let bad = &st["targets"][1];
    assert_eq!(bad["current"], false, "{st}");
    let err = bad["last_error"].as_str().unwrap();
    assert!(err.contains("failed to upload"), "{err}");
    assert!(
        err.contains("403")
            || err.to_lowercase().contains("forbidden")
            || err.contains("SignatureDoesNotMatch")
            || err.contains("InvalidAccessKeyId")
            || err.contains("AccessDenied"),
        "unclear error: {err}"
    );
    println!("wrong secret reported as: {err}");
    assert_eq!(st["targets"][0]["current"], true, "{st}");
    assert_eq!(st["targets"][2]["current"], true, "{st}");
    let dst = t.path().join("restored.backup");
    restore_ok(&manifest, "garage", &[], &dst);
    assert_eq!(std::fs::read(&dst).unwrap(), last);
    let o = run(&["verify"], &manifest);
    assert_eq!(
        o.status.code(),
        Some(1),
        "verify must flag the wrong-secret target: {}",
        text(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("garage ") && l.contains("OK: ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("garage-wrong") && l.contains("FAILED")),
        "{out}"
    );
}

#[test]
#[ignore = "needs rvault: run via checks/offline"]
fn rustyvault_kv1_push_and_restore() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let v = rvault();
    let token: PathBuf = t.path().join("token");
    std::fs::write(&token, format!("{}\n", v.root)).unwrap();
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([{"kind": "openbao", "name": "bao", "address": format!("http://{}", v.addr),
                    "auth": {"token": {"token_file": token}}, "mount": "secret",
                    "path": "lnd/channel-backup", "kv_version": 1}]),
        ),
    );
    let data = payload(51);
    lnd.write(&data);
    let o = run(&["push", "--timeout", "20"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let (st, stored) = http(
        v.addr,
        "GET",
        "/v1/secret/lnd/channel-backup",
        Some(&v.root),
        None,
    );
    assert_eq!(st, 200, "{stored}");
    assert!(
        stored["data"]["name"]
            .as_str()
            .unwrap()
            .starts_with("channel.backup."),
        "{stored}"
    );
    let dst = t.path().join("restored");
    restore_ok(&manifest, "bao", &[], &dst);
    assert_eq!(std::fs::read(&dst).unwrap(), data);
}
