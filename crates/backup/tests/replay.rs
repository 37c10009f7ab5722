//! Targets and services that cannot run here, against stand-ins:
//! Proxmox Backup Server (a recording stand-in for `proxmox-backup-client`),
//! OpenBao KV v2 and LND's REST verify endpoint (replay servers whose
//! answers follow the upstream API docs, cited at each handler).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chainstead_testkit::{ReplayServer, Response};
use common::bao::FakeKv2;
use common::*;
use serde_json::{json, Value};

fn base(dir: &Path, targets: Value) -> Value {
    json!({
        "version": 1,
        "channel_backup": dir.join("lnd/channel.backup"),
        "state_dir": dir.join("state"),
        "reconcile_interval_secs": 2,
        "targets": targets,
    })
}

/// Serves `kv` on loopback and writes a manifest with it as the one
/// OpenBao target (AppRole files written); returns the server (keep it
/// alive) and the manifest's path.
fn kv_manifest(dir: &Path, kv: &Arc<FakeKv2>) -> (ReplayServer, std::path::PathBuf) {
    let srv = {
        let kv = kv.clone();
        ReplayServer::start(move |r| kv.answer(r))
    };
    std::fs::write(dir.join("role-id"), "role-1\n").unwrap();
    std::fs::write(dir.join("secret-id"), "secret-1\n").unwrap();
    let manifest = write_manifest(
        dir,
        &base(
            dir,
            json!([{
                "kind": "openbao", "name": "bao", "address": srv.url(),
                "auth": {"approle": {"role_id_file": dir.join("role-id"), "secret_id_file": dir.join("secret-id")}},
                "mount": "secret", "path": "lnd/channel-backup",
            }]),
        ),
    );
    (srv, manifest)
}

/// `proxmox-backup-client` cannot run here (no PBS server). This stand-in
/// records its argv, its environment and the password it reads from the
/// descriptor named by `PBS_PASSWORD_FD`, and copies the archive source.
fn pbs_stand_in(dir: &Path) -> std::path::PathBuf {
    let rec = dir.join("pbs-record");
    std::fs::create_dir_all(&rec).unwrap();
    let script = format!(
        r#"#!/bin/sh
rec={rec}
for a in "$@"; do printf '%s\n' "$a"; done > "$rec/argv"
env > "$rec/env"
if [ -n "$PBS_PASSWORD_FD" ]; then eval "cat <&$PBS_PASSWORD_FD" > "$rec/password"; fi
src="${{2#*:}}"
cp "$src" "$rec/data"
if [ -e "$rec/fail" ]; then echo "Error: permission check failed" >&2; exit 255; fi
exit 0
"#,
        rec = rec.display()
    );
    let p = dir.join("proxmox-backup-client");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn pbs_gets_the_password_by_descriptor_never_argv_or_env() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let client = pbs_stand_in(t.path());
    let pw = "pbs-Very-Secret-pw-4711";
    let pwf = t.path().join("pbs-password");
    std::fs::write(&pwf, format!("{pw}\n")).unwrap();
    let manifest = write_manifest(
        t.path(),
        &base(
            t.path(),
            json!([{
                "kind": "pbs", "name": "pbs", "repository": "backup@pbs!lnd@pbs.lan:store1",
                "namespace": "nodes/node1", "fingerprint": "aa:bb:cc", "password_file": pwf,
                "backup_id": "node1-lnd", "client_binary": client,
            }]),
        ),
    );
    let data = payload(21);
    lnd.write(&data);
    let o = std::process::Command::new(bin())
        .args(["push", "--manifest"])
        .arg(&manifest)
        .env("PBS_PASSWORD", "inherited-canary")
        .env("AWS_SECRET_ACCESS_KEY", "other-canary")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rec = t.path().join("pbs-record");
    let argv = std::fs::read_to_string(rec.join("argv")).unwrap();
    let args: Vec<&str> = argv.lines().collect();
    assert_eq!(args[0], "backup");
    assert!(args[1].starts_with("channel_backup.img:"), "{argv}");
    for pair in [
        ["--repository", "backup@pbs!lnd@pbs.lan:store1"],
        ["--backup-id", "node1-lnd"],
        ["--backup-type", "host"],
        ["--ns", "nodes/node1"],
    ] {
        assert!(
            args.windows(2).any(|w| w == pair),
            "{pair:?} missing in {argv}"
        );
    }
    assert!(!argv.contains(pw), "password in argv");
    let env = std::fs::read_to_string(rec.join("env")).unwrap();
    assert!(!env.contains(pw), "password in the environment");
    assert!(env.lines().any(|l| l == "PBS_PASSWORD_FD=0"), "{env}");
    assert!(
        env.lines().any(|l| l == "PBS_FINGERPRINT=aa:bb:cc"),
        "{env}"
    );
    assert!(
        !env.contains("canary"),
        "the environment was inherited: {env}"
    );
    assert_eq!(std::fs::read_to_string(rec.join("password")).unwrap(), pw);
    assert_eq!(std::fs::read(rec.join("data")).unwrap(), data);
    // The temporary archive source is gone afterwards.
    let left: Vec<_> = std::fs::read_dir(t.path().join("state/tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Config snapshots go to their own backup group, so PBS prune
    // keep-last never drops channel backups for them.
    let conf = t.path().join("lnd.conf");
    std::fs::write(&conf, "alias=node1\n").unwrap();
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["snapshot"] = json!({"files": [conf]});
    let manifest = write_manifest(t.path(), &m);
    let o = run(&["snapshot"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let argv = std::fs::read_to_string(rec.join("argv")).unwrap();
    let args: Vec<&str> = argv.lines().collect();
    assert!(args[1].starts_with("config_snapshot.img:"), "{argv}");
    assert!(
        args.windows(2)
            .any(|w| w == ["--backup-id", "node1-lnd-config"]),
        "{argv}"
    );
    // A failing client is a clear, retried error.
    std::fs::write(rec.join("fail"), b"").unwrap();
    lnd.write(&payload(22));
    let o = std::process::Command::new(bin())
        .args(["push", "--timeout", "6", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("failed to back up to PBS backup@pbs!lnd@pbs.lan:store1"),
        "{err}"
    );
    assert!(err.contains("permission check failed"), "{err}");
    assert!(!err.contains(pw));
}

#[test]
fn openbao_kv2_replay_push_history_and_restore() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let kv = Arc::new(FakeKv2::default());
    let (srv, manifest) = kv_manifest(t.path(), &kv);
    let first = payload(31);
    lnd.write(&first);
    let o = run(&["push"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let first_name = status_json(&manifest)["channel"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let second = payload(32);
    lnd.write(&second);
    let o = run(&["push"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    {
        let vs = kv.versions.lock().unwrap();
        assert_eq!(vs.len(), 2);
        let content = base64::engine::general_purpose::STANDARD
            .decode(vs[1]["content"].as_str().unwrap())
            .unwrap();
        assert_eq!(content, second);
        assert!(vs[1]["name"]
            .as_str()
            .unwrap()
            .starts_with("channel.backup."));
    }
    let logins = srv
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/auth/approle/login")
        .count();
    assert!(logins >= 2);
    let dst = t.path().join("restored");
    restore_ok(&manifest, "bao", &[], &dst);
    assert_eq!(std::fs::read(&dst).unwrap(), second);
    restore_ok(&manifest, "bao", &["--version", &first_name], &dst);
    assert_eq!(std::fs::read(&dst).unwrap(), first);
    let o = run(&["verify"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    // A wrong secret_id: a clear error naming the server.
    std::fs::write(t.path().join("secret-id"), "nope\n").unwrap();
    lnd.write(&payload(33));
    let o = run(&["push", "--timeout", "6"], &manifest);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed to log in to OpenBao"),
        "{}",
        text(&o)
    );
}

/// LND's REST verify endpoint, replayed. Request shape from lnd's
/// `lnrpc/lightning.swagger.json` (`POST /v1/channels/backup/verify`, body
/// `lnrpcChanBackupSnapshot`, bytes as base64); the macaroon travels hex
/// encoded in `Grpc-Metadata-macaroon`; errors are an `rpcStatus`
/// (`code`, `message`, `details`) with a non-2xx status. The server is
/// plain http, as LND serves with `no-rest-tls`.
#[test]
fn lnd_verify_refuses_what_lnd_refuses() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let bad = payload(666);
    let macaroon = b"\x02\x01\x03lnd-readonly-macaroon".to_vec();
    let mac_hex = hex::encode(&macaroon);
    let srv = {
        let bad = bad.clone();
        ReplayServer::start(move |r| {
            if r.path != "/v1/channels/backup/verify" || r.method != "POST" {
                return Response::json(
                    404,
                    &json!({"code": 5, "message": "Not Found", "details": []}),
                )
                .into();
            }
            if r.header("grpc-metadata-macaroon") != Some(mac_hex.as_str()) {
                return Response::json(500, &json!({"code": 2, "message": "verification failed: signature mismatch", "details": []})).into();
            }
            let b64 = r.json()["multi_chan_backup"]["multi_chan_backup"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let got = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            if got == bad {
                Response::json(500, &json!({"code": 2, "message": "unable to unpack multi backup: chacha20poly1305: message authentication failed", "details": []})).into()
            } else {
                Response::json(200, &json!({})).into()
            }
        })
    };
    std::fs::write(t.path().join("readonly.macaroon"), &macaroon).unwrap();
    let mut m = base(
        t.path(),
        json!([{"kind": "directory", "name": "usb", "path": t.path().join("usb")}]),
    );
    std::fs::create_dir_all(t.path().join("usb")).unwrap();
    m["lnd"] = json!({"rest_url": srv.url(), "macaroon_file": t.path().join("readonly.macaroon")});
    let manifest = write_manifest(t.path(), &m);
    let good = payload(41);
    lnd.write(&good);
    let _pusher = spawn_watch(&manifest, t.path());
    let usb = t.path().join("usb");
    assert!(
        wait_until(Duration::from_secs(20), || dir_latest(&usb).map(|x| x.1)
            == Some(good.clone())),
        "{}",
        log(t.path())
    );
    lnd.write(&bad);
    // >= 1: each reconcile reads the refused file again and counts it again.
    assert!(
        wait_until(Duration::from_secs(30), || status_json(&manifest)
            ["rejected"]["total"]
            .as_u64()
            .unwrap_or(0)
            >= 1),
        "{}",
        log(t.path())
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(dir_latest(&usb).unwrap().1, good);
    let reason = status_json(&manifest)["rejected"]["last_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("LND refused the backup"), "{reason}");
    let verifies = srv
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/channels/backup/verify")
        .count();
    assert!(verifies >= 2);
    // LND down: the newest file is pushed anyway (with a warning).
    drop(srv);
    let newer = payload(42);
    lnd.write(&newer);
    assert!(
        wait_until(Duration::from_secs(20), || dir_latest(&usb).map(|x| x.1)
            == Some(newer.clone())),
        "{}",
        log(t.path())
    );
    assert!(log(t.path()).contains("could not ask LND to verify"));
}

/// OpenBao KV v2 (replay, see `FakeKv2`) whose current version was named
/// while the clock ran ahead: the push must write the current content
/// under a newer name, not skip the write and report success.
#[test]
fn openbao_clock_ahead_version_is_superseded_not_skipped() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let kv = Arc::new(FakeKv2::default());
    let old = payload(51);
    let ahead = format!(
        "channel.backup.20310101T000000.000000000Z.{}",
        &sha_hex(&old)[..12]
    );
    kv.versions.lock().unwrap().push(json!({
        "name": ahead,
        "content": base64::engine::general_purpose::STANDARD.encode(&old),
    }));
    let (_srv, manifest) = kv_manifest(t.path(), &kv);
    let cur = payload(52);
    lnd.write(&cur);
    let o = run(&["push", "--timeout", "20"], &manifest);
    assert!(o.status.success(), "{}", text(&o));
    let vs = kv.versions.lock().unwrap();
    let last = vs.last().unwrap();
    let content = base64::engine::general_purpose::STANDARD
        .decode(last["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(content, cur, "the write was skipped");
    assert!(last["name"].as_str().unwrap() > ahead.as_str(), "{last}");
}

/// LND (replayed, shapes as in `lnd_verify_refuses_what_lnd_refuses`)
/// refusing the macaroon: first HTTP 401, then what LND sends for a
/// macaroon signed by another root key (an `rpcStatus` with "verification
/// failed: signature mismatch"). The file is still pushed, and the refusals
/// are counted in state, `status` and the metrics, not only logged.
#[test]
fn lnd_refusing_the_macaroon_is_counted() {
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let srv = {
        let calls = calls.clone();
        ReplayServer::start(move |_r| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Response::json(
                    401,
                    &json!({"code": 16, "message": "unauthenticated", "details": []}),
                )
                .into()
            } else {
                Response::json(500, &json!({"code": 2, "message": "verification failed: signature mismatch", "details": []})).into()
            }
        })
    };
    std::fs::write(t.path().join("readonly.macaroon"), b"\x02\x01wrong").unwrap();
    let (usb, mut m) = usb_base(t.path());
    m["lnd"] = json!({"rest_url": srv.url(), "macaroon_file": t.path().join("readonly.macaroon")});
    m["metrics_dir"] = json!(t.path());
    let manifest = write_manifest(t.path(), &m);
    for i in [71, 72] {
        lnd.write(&payload(i));
        let o = run(&["push"], &manifest);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(dir_latest(&usb).unwrap().1, payload(i));
    }
    let st = status_json(&manifest);
    assert_eq!(st["lnd_auth"]["failures_total"], 2, "{st}");
    assert_eq!(st["rejected"]["total"], 0, "{st}");
    assert!(st["lnd_auth"]["last_error"]
        .as_str()
        .unwrap()
        .contains("signature mismatch"));
    let prom = std::fs::read_to_string(t.path().join("chainstead-backup.prom")).unwrap();
    assert!(
        prom.contains("chainstead_backup_lnd_auth_failures_total 2"),
        "{prom}"
    );
    let o = run(&["status"], &manifest);
    assert!(String::from_utf8_lossy(&o.stdout).contains("LND refused the verify macaroon: 2 times"));
}
