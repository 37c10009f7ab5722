//! Integration tests against RustyVault (`rvault`, a Vault-API server
//! written independently of OpenBao), started on 127.0.0.1 with its data in
//! a temp dir: init, unseal, AppRole, KV v1 secrets, then real `load`,
//! `store` and `check` runs of the binary.
//!
//! RustyVault 0.2.1 has no KV v2 and no `sys/internal/ui/mounts` (404, which
//! the loader reads as KV v1 exactly like the `bao` CLI does), no
//! `auth/token/revoke-self` (the loader logs a warning; the token expires by
//! its TTL), and answers errors as `{"error": "..."}`. KV v2 is covered by
//! the replay tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::rvault::Rvault;
use common::*;
use serde_json::{json, Value};

const RPC_PW: &str = "rv-rpc-password-Pq8Ws3Ed5Rf1";
const WALLET_PW: &str = "rv-wallet-password-Tg6Yh2Uj4Ik9";

fn services(o: &str, g: &str) -> Value {
    json!({
        "bitcoind": {"owner": o, "group": g, "secrets": {
            "rpc-lnd": {"path": "chainstead/bitcoind", "field": "rpc-lnd", "file": "rpcauth-lnd.conf",
                        "transform": {"rpcauth": {"user": "lnd"}}}
        }},
        "lnd": {"owner": o, "group": g, "secrets": {
            "rpc-password": {"path": "chainstead/bitcoind", "field": "rpc-lnd", "file": "bitcoind-rpc-password"},
            "wallet-password": {"path": "chainstead/lnd", "field": "wallet-password", "file": "wallet-password"}
        }}
    })
}

fn secret_id(env: &Env) -> String {
    std::fs::read_to_string(env.path("secret-id"))
        .unwrap()
        .trim()
        .to_owned()
}

/// AppRole login and KV v1 reads against a real server: files, contents,
/// modes and owners; no value, secret_id or token in the logs.
#[test]
#[ignore = "needs rvault: run via checks/offline"]
fn rvault_load_kv_v1_with_approle() {
    let env = Env::new();
    let rv = Rvault::start(&env);
    rv.write("chainstead/bitcoind", json!({"rpc-lnd": RPC_PW}));
    rv.write("chainstead/lnd", json!({"wallet-password": WALLET_PW}));
    let (o, g, ids) = owner();
    let m = env.manifest(Some(&rv.url()), json!({}), services(&o, &g));
    let r = load(&m);
    assert!(r.ok, "load failed");
    let rt = env.runtime();
    assert_eq!(names(&rt), ["bitcoind", "lnd"]);
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/wallet-password")).unwrap(),
        WALLET_PW
    );
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/bitcoind-rpc-password")).unwrap(),
        RPC_PW
    );
    let line = std::fs::read_to_string(rt.join("bitcoind/rpcauth-lnd.conf")).unwrap();
    assert!(
        line.starts_with("rpcauth=lnd:") && line.len() == "rpcauth=lnd:".len() + 32 + 1 + 64 + 1,
        "{line}"
    );
    for f in [
        "bitcoind/rpcauth-lnd.conf",
        "lnd/wallet-password",
        "lnd/bitcoind-rpc-password",
    ] {
        assert_eq!(mode_of(&rt.join(f)), 0o400);
        if let Some(ids) = ids {
            assert_eq!(ids_of(&rt.join(f)), ids);
        }
    }
    // RustyVault lacks revoke-self: a warning, not a failure.
    assert!(r.stderr.contains("failed to revoke the login token"));
    assert_no_leak(&r, &[RPC_PW, WALLET_PW, &secret_id(&env)]);
    // A change in the store reaches the files on the next load.
    rv.write(
        "chainstead/lnd",
        json!({"wallet-password": "rotated-wallet-pw-000"}),
    );
    assert!(load(&m).ok);
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/wallet-password")).unwrap(),
        "rotated-wallet-pw-000"
    );
}

/// A wrong secret_id (RustyVault: 400 `{"error":"invalid secret id"}`)
/// fails at once and names the AppRole files.
#[test]
#[ignore = "needs rvault: run via checks/offline"]
fn rvault_bad_secret_id() {
    let env = Env::new();
    let rv = Rvault::start(&env);
    rv.write("chainstead/lnd", json!({"wallet-password": WALLET_PW}));
    std::fs::write(
        env.path("secret-id"),
        "00000000-0000-0000-0000-000000000000\n",
    )
    .unwrap();
    let (o, g, _) = owner();
    let m = env.manifest(
        Some(&rv.url()),
        json!({"deadline_secs": 30}),
        services(&o, &g),
    );
    let r = load(&m);
    assert!(!r.ok);
    assert!(r.elapsed < Duration::from_secs(10));
    assert!(
        r.stderr.contains("refused the AppRole login (400"),
        "{}",
        r.stderr
    );
    assert!(names(&env.runtime()).is_empty());
}

/// A path missing in the store (RustyVault: 404 with an empty body) is
/// named, and nothing is installed for the service.
#[test]
#[ignore = "needs rvault: run via checks/offline"]
fn rvault_missing_path() {
    let env = Env::new();
    let rv = Rvault::start(&env);
    rv.write("chainstead/bitcoind", json!({"rpc-lnd": RPC_PW}));
    let (o, g, _) = owner();
    let m = env.manifest(Some(&rv.url()), json!({}), services(&o, &g));
    let r = load(&m);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("secret/chainstead/lnd does not exist"),
        "{}",
        r.stderr
    );
    assert_eq!(names(&env.runtime()), ["bitcoind"]);
}

/// Sealed (RustyVault: 503 `{"error":"RustyVault is sealed."}`) at the
/// start; unsealed 1.5 s later; the loader waits and succeeds.
#[test]
#[ignore = "needs rvault: run via checks/offline"]
fn rvault_waits_for_unseal() {
    let env = Env::new();
    let rv = Rvault::start(&env);
    rv.write("chainstead/bitcoind", json!({"rpc-lnd": RPC_PW}));
    rv.write("chainstead/lnd", json!({"wallet-password": WALLET_PW}));
    let (st, _) = rv.call("PUT", "/v1/sys/seal", None);
    assert!(st == 204 || st == 200);
    let (o, g, _) = owner();
    let m = env.manifest(
        Some(&rv.url()),
        json!({"deadline_secs": 30}),
        services(&o, &g),
    );
    let loader = std::thread::spawn(move || load(&m));
    // Long enough for the loader to start and meet the seal on a loaded
    // machine; well inside its 30 s deadline.
    std::thread::sleep(Duration::from_secs(5));
    rv.unseal();
    let r = loader.join().unwrap();
    assert!(r.ok);
    assert!(r.stderr.contains("sealed (503)"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(env.runtime().join("lnd/wallet-password")).unwrap(),
        WALLET_PW
    );
}

/// `store` into a KV v1 mount keeps the other fields; `check --online`
/// then reports everything present.
#[test]
#[ignore = "needs rvault: run via checks/offline"]
fn rvault_store_and_check() {
    let env = Env::new();
    let rv = Rvault::start(&env);
    rv.write("chainstead/bitcoind", json!({"rpc-lnd": RPC_PW}));
    rv.write("chainstead/lnd", json!({"other": "kept"}));
    let (o, g, _) = owner();
    let m = env.manifest(Some(&rv.url()), json!({}), services(&o, &g));
    let ms = m.to_str().unwrap();
    let r = run(&["check", "--manifest", ms, "--online"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stdout.contains("MISSING"), "{}", r.stdout);
    std::fs::write(env.path("wallet"), format!("{WALLET_PW}\n")).unwrap();
    let wallet = env.path("wallet");
    let r = run(&[
        "store",
        "--manifest",
        ms,
        "--path",
        "chainstead/lnd",
        "--field",
        "wallet-password",
        "--from-file",
        wallet.to_str().unwrap(),
    ]);
    assert!(r.ok);
    assert_no_leak(&r, &[WALLET_PW]);
    let (_, b) = rv.call("GET", "/v1/secret/chainstead/lnd", None);
    assert_eq!(
        b["data"],
        json!({"other": "kept", "wallet-password": WALLET_PW})
    );
    let r = run(&["check", "--manifest", ms, "--online"]);
    assert!(r.ok, "{}", r.stdout);
    assert_eq!(r.stdout.matches("present").count(), 3);
    assert_no_leak(&r, &[WALLET_PW, RPC_PW]);
    assert!(
        !Path::new(&env.runtime()).exists(),
        "check installs nothing"
    );
}

/// TLS with the operator's CA: `ca_file` is the only trusted root and
/// `tls_server_name` names the certificate while the address holds the IP.
/// Without the name, or with another CA, verification fails at once (not
/// retried until the deadline) with a message naming both options.
#[test]
#[ignore = "needs rvault and openssl: run via checks/offline"]
fn rvault_over_tls_with_ca_file_and_server_name() {
    let env = Env::new();
    let rv = Rvault::start_tls(&env);
    rv.write("chainstead/bitcoind", json!({"rpc-lnd": RPC_PW}));
    rv.write("chainstead/lnd", json!({"wallet-password": WALLET_PW}));
    let (o, g, _) = owner();
    let ca = rv.tls_ca().to_str().unwrap().to_owned();
    let m = env.manifest(
        Some(&rv.url()),
        json!({"ca_file": ca, "tls_server_name": common::rvault::TLS_NAME, "deadline_secs": 30}),
        services(&o, &g),
    );
    let r = load(&m);
    assert!(r.ok, "load over TLS failed");
    assert_eq!(
        std::fs::read_to_string(env.runtime().join("lnd/wallet-password")).unwrap(),
        WALLET_PW
    );

    // The certificate names bao.test, not 127.0.0.1.
    let m = env.manifest(
        Some(&rv.url()),
        json!({"ca_file": ca, "deadline_secs": 30}),
        services(&o, &g),
    );
    let r = load(&m);
    assert!(!r.ok);
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert!(
        r.stderr.contains("failed to verify the TLS certificate"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("openbao.tls_server_name"));
    assert!(
        names(&env.runtime()).is_empty(),
        "the failed load removed the sets"
    );

    // A CA that did not sign the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let other_ca = common::rvault::make_certs(other.path(), "other-");
    let m = env.manifest(
        Some(&rv.url()),
        json!({"ca_file": other_ca, "tls_server_name": common::rvault::TLS_NAME, "deadline_secs": 30}),
        services(&o, &g),
    );
    let r = load(&m);
    assert!(!r.ok);
    assert!(r.elapsed < Duration::from_secs(10));
    assert!(
        r.stderr.contains("failed to verify the TLS certificate"),
        "{}",
        r.stderr
    );
}
