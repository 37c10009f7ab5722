//! The shared fixtures in checks/fixtures/secrets/: both manifests are valid
//! (`validate`, exit 0), and the local-mode one loads into a temp dir with
//! the paths and owners rewritten for the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../checks/fixtures/secrets")
        .join(name)
}

#[test]
fn fixtures_validate() {
    for name in ["manifest-openbao.json", "manifest-local.json"] {
        let r = run(&["validate", "--manifest", fixture(name).to_str().unwrap()]);
        assert!(r.ok, "{name}");
    }
}

/// The full-stack manifest in local mode: every service gets its set except
/// the backup credential, which has no `generate` and must be placed first.
#[test]
fn local_fixture_loads() {
    let env = Env::new();
    let (o, g, ids) = owner();
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(fixture("manifest-local.json")).unwrap()).unwrap();
    m["runtime_dir"] = env.runtime().to_str().unwrap().into();
    m["state_dir"] = env.path("state").to_str().unwrap().into();
    for svc in m["services"].as_object_mut().unwrap().values_mut() {
        svc["owner"] = o.clone().into();
        svc["group"] = g.clone().into();
        for s in svc["secrets"].as_object_mut().unwrap().values_mut() {
            // bcrypt cost 12 takes seconds in a debug build; the shape is
            // the same.
            if let Some(b) = s["transform"].get_mut("bcrypt") {
                b["cost"] = 4.into();
            }
        }
    }
    let path = env.path("local.json");
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = load(&path);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("secret/chainstead/backup/s3/secret_access_key"),
        "{}",
        r.stderr
    );
    assert_eq!(
        names(&env.runtime()),
        ["bitcoind", "fulcrum", "lnd", "thunderhub"]
    );
    std::fs::write(env.path("s3"), "S3-SECRET-fixture\n").unwrap();
    let ps = path.to_str().unwrap();
    let r = run(&[
        "store",
        "--manifest",
        ps,
        "--path",
        "chainstead/backup/s3",
        "--field",
        "secret_access_key",
        "--from-file",
        env.path("s3").to_str().unwrap(),
    ]);
    assert!(r.ok);
    let r = load(&path);
    assert!(r.ok);
    let rt = env.runtime();
    assert_eq!(
        names(&rt),
        [
            "bitcoind",
            "chainstead-backup",
            "fulcrum",
            "lnd",
            "thunderhub"
        ]
    );
    // LND's copy of its RPC password matches bitcoind's rpcauth line.
    let pw = std::fs::read_to_string(rt.join("lnd/bitcoind-rpc-password")).unwrap();
    let line = std::fs::read_to_string(rt.join("bitcoind/rpcauth-lnd.conf")).unwrap();
    let (salt, mac) = line
        .trim_end()
        .strip_prefix("rpcauth=lnd:")
        .unwrap()
        .split_once('$')
        .unwrap();
    use hmac::Mac;
    let mut h = hmac::Hmac::<sha2::Sha256>::new_from_slice(salt.as_bytes()).unwrap();
    h.update(pw.as_bytes());
    assert_eq!(mac, hex::encode(h.finalize().into_bytes()));
    assert_ne!(
        pw,
        std::fs::read_to_string(rt.join("fulcrum/bitcoind-rpc-password")).unwrap()
    );
    let th = std::fs::read_to_string(rt.join("thunderhub/master-password.bcrypt")).unwrap();
    assert!(th.starts_with("thunderhub-$2b$04$"));
    for f in [
        "lnd/wallet-password",
        "chainstead-backup/s3-secret-key",
        "thunderhub/master-password.bcrypt",
    ] {
        assert_eq!(mode_of(&rt.join(f)), 0o400);
        if let Some(ids) = ids {
            assert_eq!(ids_of(&rt.join(f)), ids);
        }
    }
    assert_no_leak(&r, &[&pw, "S3-SECRET-fixture"]);
}
