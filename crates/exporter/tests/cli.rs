//! The binary's exit statuses (docs/exit-codes.md): a valid manifest 0, an
//! invalid one 2 with every problem named, a taken port 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn exporter(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead-exporter"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[test]
fn exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write(
        "good.json",
        r#"{"version": 1, "listen": "127.0.0.1:9777",
            "monerod": {"rpc_url": "http://127.0.0.1:18081", "nettype": "mainnet"}}"#,
    );
    let (code, text) = exporter(&["validate", "--manifest", &good]);
    assert_eq!(code, 0, "{text}");

    let bad = write(
        "bad.json",
        r#"{"version": 1, "listen": "everywhere", "timeout_secs": 0,
            "lnd": {"rest_url": "https://127.0.0.1:8080", "tls_cert_file": "tls.cert",
                    "macaroon_file": "/var/lib/lnd/admin.macaroon"}}"#,
    );
    let (code, text) = exporter(&["validate", "--manifest", &bad]);
    assert_eq!(code, 2, "{text}");
    for problem in [
        "listen",
        "timeout_secs",
        "lnd.tls_cert_file",
        "admin macaroon",
    ] {
        assert!(text.contains(problem), "{problem} missing from: {text}");
    }
    let (code, text) = exporter(&["validate", "--manifest", "/nonexistent/exporter.json"]);
    assert_eq!(code, 2, "{text}");

    // A port someone else holds: a run-time failure, 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = write(
        "busy.json",
        &format!(
            r#"{{"version": 1, "listen": "{}"}}"#,
            taken.local_addr().unwrap()
        ),
    );
    let (code, text) = exporter(&["serve", "--manifest", &busy]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("failed to listen on"), "{text}");
}
