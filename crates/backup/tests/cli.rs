//! The exit-status policy of the command line (docs/exit-codes.md): a
//! missing or invalid manifest is a configuration error, exit 2, with every
//! problem named by its path; a failure at run time exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

fn manifest(dir: &std::path::Path, targets: serde_json::Value) -> serde_json::Value {
    json!({
        "version": 1,
        "channel_backup": dir.join("channel.backup"),
        "state_dir": dir.join("state"),
        "targets": targets,
    })
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cmd`, expects exit 2 and `needle` on stderr; returns stderr.
fn exits_2_saying(cmd: &str, manifest: &std::path::Path, needle: &str) -> String {
    let o = run(&[cmd], manifest);
    assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
    let err = stderr(&o);
    assert!(err.contains(needle), "{cmd}: {needle} not in {}", text(&o));
    err
}

#[test]
fn a_missing_manifest_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.json");
    for cmd in ["validate", "status", "push", "watch"] {
        exits_2_saying(cmd, &missing, "failed to open manifest");
    }
}

#[test]
fn an_unknown_field_is_named_by_its_path() {
    let t = tempfile::tempdir().unwrap();
    let mut v = manifest(
        t.path(),
        json!([{"kind": "directory", "name": "usb", "path": "/mnt/usb"}]),
    );
    v["retention"] = json!({"keep_last": 3, "keep_lats": 4});
    let m = t.path().join("m.json");
    std::fs::write(&m, v.to_string()).unwrap();
    exits_2_saying(
        "validate",
        &m,
        "retention.keep_lats: unknown field `keep_lats`",
    );
    // Inside a target (an object tagged by `kind`) too.
    v["targets"][0]["pathh"] = json!("/x");
    v.as_object_mut().unwrap().remove("retention");
    std::fs::write(&m, v.to_string()).unwrap();
    exits_2_saying("validate", &m, "targets[0].pathh: unknown field `pathh`");
}

#[test]
fn every_problem_is_listed_at_once() {
    let t = tempfile::tempdir().unwrap();
    let mut v = manifest(
        t.path(),
        json!([
            {"kind": "directory", "name": "usb", "path": "relative"},
            {"kind": "webdav", "name": "usb", "url": "http://dav.example/x", "user": "",
             "password_file": "/nix/store/abc-pw"}
        ]),
    );
    v["retention"] = json!({"keep_last": 0});
    let m = write_manifest(t.path(), &v);
    let err = exits_2_saying("validate", &m, "invalid manifest, 6 problems:");
    for field in [
        "retention.keep_last",
        "targets[0].path",
        "targets[1].name",
        "targets[1].url",
        "targets[1].user",
        "targets[1].password_file",
    ] {
        assert!(err.contains(&format!("  - {field}: ")), "{field}: {err}");
    }
}

#[test]
fn a_failure_at_run_time_exits_1() {
    let t = tempfile::tempdir().unwrap();
    // Valid, but channel.backup does not exist yet: nothing to push.
    let m = write_manifest(
        t.path(),
        &manifest(
            t.path(),
            json!([{"kind": "directory", "name": "usb", "path": t.path().join("usb")}]),
        ),
    );
    let o = run(&["push", "--timeout", "5"], &m);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
