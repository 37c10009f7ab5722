//! The `chainstead` binary's exit statuses (docs/exit-codes.md): 2 for a
//! bad manifest, 1 for a failure at run time, 0 when done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn chainstead(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_manifest_exits_2_and_names_it() {
    let (code, stderr) = chainstead(&["connect", "--manifest", "/nonexistent/cli.json"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/cli.json"), "{stderr}");
}

#[test]
fn validate_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cli.json");
    std::fs::write(
        &file,
        r#"{"version": 1, "bitcoind": {"mode": "onion"}, "fulcrum": {"cert_file": "cert.pem"}}"#,
    )
    .unwrap();
    let (code, stderr) = chainstead(&["validate", "--manifest", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bitcoind.mode"), "{stderr}");
    assert!(stderr.contains("fulcrum.cert_file"), "{stderr}");
}

#[test]
fn an_unreadable_certificate_is_a_runtime_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = chainstead(&[
        "fingerprint",
        "--cert",
        dir.path().join("missing.pem").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");
}

#[test]
fn a_valid_manifest_validates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cli.json");
    std::fs::write(&file, r#"{"version": 1}"#).unwrap();
    let (code, stderr) = chainstead(&["validate", "--manifest", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
}
