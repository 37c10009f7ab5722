//! The exit-status policy of the command line (docs/exit-codes.md): a
//! missing or invalid manifest is a configuration error, exit 2, with every
//! problem named by its path; so is a refusal only a configuration change
//! lifts (a downgrade); a refusal the machine can lift exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

fn run(args: &[&str], manifest: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chainstead-upgrade-guard"))
        .args(args)
        .arg("--manifest")
        .arg(manifest)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd`, expects exit `code` and `needle` on stderr; returns stderr.
fn exits_saying(code: i32, cmd: &str, manifest: &Path, needle: &str) -> String {
    let o = run(&[cmd], manifest);
    assert_eq!(o.status.code(), Some(code), "{cmd}: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains(needle), "{cmd}: {needle} not in {}", text(&o));
    err
}

/// A valid manifest of a guarded bitcoind (no copy) under `dir`.
fn manifest(dir: &Path, version: &str) -> serde_json::Value {
    json!({
        "version": 1,
        "service": "bitcoind",
        "package_version": version,
        "data_dir": dir,
        "state_file": dir.join("guard.json"),
        "runbook": "docs/operations.md#upgrades",
        "pre_upgrade": { "kind": "none" },
    })
}

fn write(dir: &Path, v: &serde_json::Value) -> std::path::PathBuf {
    let m = dir.join("m.json");
    std::fs::write(&m, v.to_string()).unwrap();
    m
}

#[test]
fn a_missing_manifest_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.json");
    for cmd in ["validate", "check", "verify", "record", "status"] {
        exits_saying(2, cmd, &missing, "failed to open manifest");
    }
}

#[test]
fn an_unknown_field_is_named_by_its_path() {
    let t = tempfile::tempdir().unwrap();
    let mut v = manifest(t.path(), "29.0");
    v["pre_upgrade"]["keep"] = json!(1);
    let m = write(t.path(), &v);
    // Inside `pre_upgrade`, an object tagged by `kind`.
    exits_saying(2, "validate", &m, "pre_upgrade.keep: unknown field `keep`");
    let mut v = manifest(t.path(), "29.0");
    v["allowDowngrade"] = json!(true);
    let m = write(t.path(), &v);
    exits_saying(
        2,
        "validate",
        &m,
        "allowDowngrade: unknown field `allowDowngrade`",
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let t = tempfile::tempdir().unwrap();
    let mut v = manifest(t.path(), "unstable");
    v["data_dir"] = json!("lnd");
    v["pre_upgrade"] = json!({"kind": "zfs", "program": "zfs", "dataset": "tank/x@y", "keep": 0});
    let m = write(t.path(), &v);
    let err = exits_saying(2, "check", &m, "invalid manifest, 5 problems:");
    for field in [
        "package_version",
        "data_dir",
        "pre_upgrade.program",
        "pre_upgrade.dataset",
        "pre_upgrade.keep",
    ] {
        assert!(err.contains(&format!("  - {field}: ")), "{field}: {err}");
    }
    assert_eq!(err.matches("ERROR").count(), 1, "logged once: {err}");
}

#[test]
fn a_valid_manifest_and_a_guarded_start_exit_0() {
    let t = tempfile::tempdir().unwrap();
    let m = write(t.path(), &manifest(t.path(), "29.0"));
    let o = run(&["validate"], &m);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("is valid: bitcoind 29.0"),
        "{}",
        text(&o)
    );
    for cmd in ["check", "verify", "record"] {
        let o = run(&[cmd], &m);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", text(&o));
    }
    let o = run(&["status"], &m);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["data_version"], "29.0");
}

#[test]
fn a_downgrade_exits_2_and_an_unprepared_start_exits_1() {
    let t = tempfile::tempdir().unwrap();
    let newer = write(t.path(), &manifest(t.path(), "29.0"));
    for cmd in ["check", "verify", "record"] {
        assert_eq!(run(&[cmd], &newer).status.code(), Some(0), "{cmd}");
    }
    let older = write(t.path(), &manifest(t.path(), "28.1"));
    // Only switching the package lifts it: a configuration error.
    exits_saying(2, "check", &older, "refusing to start bitcoind 28.1");
    // `verify` without a prepared start: `check` has to run first (1).
    let upgrade = write(t.path(), &manifest(t.path(), "30.0"));
    exits_saying(1, "verify", &upgrade, "pre-upgrade step has not completed");
}
