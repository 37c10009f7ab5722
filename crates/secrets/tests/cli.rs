//! The exit-status policy of the command line (docs/exit-codes.md): a
//! missing or invalid manifest is a configuration error, exit 2, with every
//! problem named by its path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_missing_manifest_exits_2() {
    let env = Env::new();
    let missing = env.path("missing.json");
    for cmd in ["validate", "load", "check"] {
        let r = run(&[cmd, "--manifest", missing.to_str().unwrap()]);
        assert_eq!(r.code, Some(2), "{cmd}");
        assert!(r.stderr.contains("failed to open manifest"), "{}", r.stderr);
    }
}

#[test]
fn an_unknown_field_is_named_by_its_path() {
    let env = Env::new();
    let m = env.manifest(
        Some("https://127.0.0.1:1"),
        json!({}),
        json!({"lnd": {"owner": "lnd", "group": "lnd", "secrets": {
            "x": {"path": "p", "field": "f", "file": "x", "bogus": true}
        }}}),
    );
    // The module writes manifests on one line: a line and column alone say
    // nothing.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    std::fs::write(&m, v.to_string()).unwrap();
    for cmd in ["validate", "load"] {
        let r = run(&[cmd, "--manifest", m.to_str().unwrap()]);
        assert_eq!(r.code, Some(2), "{cmd}");
        assert!(
            r.stderr
                .contains("services.lnd.secrets.x.bogus: unknown field `bogus`"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let env = Env::new();
    let m = env.manifest(
        Some("http://bao.example.org:8200"),
        json!({"deadline_secs": 0}),
        json!({"lnd": {"owner": "lnd", "group": "lnd", "secrets": {
            "a": {"path": "/abs", "field": "f", "file": ".hidden", "mode": "0644"}
        }}}),
    );
    let r = run(&["validate", "--manifest", m.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("invalid manifest, 5 problems:"),
        "{}",
        r.stderr
    );
    for field in [
        "openbao.address",
        "openbao.deadline_secs",
        "services.lnd.secrets.a.path",
        "services.lnd.secrets.a.file",
        "services.lnd.secrets.a.mode",
    ] {
        assert!(
            r.stderr.contains(&format!("  - {field}: ")),
            "{field}: {}",
            r.stderr
        );
    }
}
