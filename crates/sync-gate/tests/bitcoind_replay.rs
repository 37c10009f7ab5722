//! The bitcoind backend against a replay server: bitcoind cannot be
//! installed here, so every answer is a replay of its documented responses
//! (see tests/support/mod.rs for the upstream sources of each shape).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use chainstead_sync_gate::{ProbeError, Prober};
use serde_json::json;
use support::{chain_info, parse, Btc, FakeBitcoind, Scene};

fn prober(scene: &Scene, url: &str, chain: &str) -> Prober {
    let m = parse(&scene.bitcoind_manifest(url, chain, json!({"timeout_secs": 2})));
    Prober::new(&m).unwrap()
}

/// Replay: getblockchaininfo during IBD (bitcoin/bitcoin
/// src/rpc/blockchain.cpp field set). Not ready, progress text as
/// documented, the request is a JSON-RPC 1.0 POST with the cookie.
#[tokio::test]
async fn ibd_in_progress_is_not_ready() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info(
        "main", 512_345, 872_001, true, 0.6134,
    )));
    let obs = prober(&scene, &btc.url(), "main").probe().await.unwrap();
    assert!(!obs.ready);
    assert_eq!(obs.text, "IBD 61.3%, block 512345/872001");
    assert_eq!(obs.height, Some(512_345));
    assert_eq!(obs.target, Some(872_001));
    let req = &btc.server.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.json()["method"], "getblockchaininfo");
    assert_eq!(
        req.header("authorization"),
        Some(support::basic(support::COOKIE).as_str())
    );
}

/// Replay: `{"code": -28, "message": "Loading block index…"}` with HTTP 500
/// (src/httprpc.cpp JSONErrorReply, src/rpc/protocol.h RPC_IN_WARMUP).
#[tokio::test]
async fn warming_up_is_not_yet() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Warmup);
    let obs = prober(&scene, &btc.url(), "main").probe().await.unwrap();
    assert!(!obs.ready);
    assert_eq!(obs.phase, "warmup");
    assert!(
        obs.text.contains("warming up (Loading block index"),
        "{}",
        obs.text
    );
}

/// Replay: a synced node (initialblockdownload false, blocks == headers).
#[tokio::test]
async fn synced_is_ready() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info(
        "main", 872_001, 872_001, false, 0.99999,
    )));
    let obs = prober(&scene, &btc.url(), "main").probe().await.unwrap();
    assert!(obs.ready, "{obs:?}");
    assert_eq!(obs.text, "synced at block 872001");
}

/// Replay: a fresh regtest chain: blocks == headers == 0 but still in IBD
/// (the tip is older than -maxtipage). Not ready.
#[tokio::test]
async fn equal_heights_in_ibd_are_not_ready() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("regtest", 0, 0, true, 1.0)));
    let obs = prober(&scene, &btc.url(), "regtest").probe().await.unwrap();
    assert!(!obs.ready);
    assert_eq!(obs.remaining(), Some(0));
}

/// Replay: HTTP 401 with an empty body (src/httprpc.cpp). A configuration
/// error naming the cookie field.
#[tokio::test]
async fn auth_failure_is_a_named_misconfiguration() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Unauthorized);
    let err = prober(&scene, &btc.url(), "main")
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("HTTP 401") && msg.contains("backend.cookie_file"),
        "{msg}"
    );
}

/// Replay: a testnet node behind a manifest that says main.
#[tokio::test]
async fn wrong_chain_names_field_and_value() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("test", 10, 10, false, 1.0)));
    let err = prober(&scene, &btc.url(), "main")
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig());
    let msg = err.to_string();
    assert!(
        msg.contains("chain \"test\"") && msg.contains("`backend.chain` is \"main\""),
        "{msg}"
    );
}

/// Something that is not bitcoind answers on the RPC port.
#[tokio::test]
async fn garbage_is_an_unparseable_reply() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Garbage);
    let err = prober(&scene, &btc.url(), "main")
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig());
    assert!(err.to_string().contains("unparseable reply"), "{err}");
    assert!(err.to_string().contains("<html>router"), "{err}");
}

/// Something that does not speak HTTP at all on the RPC port (an SSH
/// banner): unparseable, a misconfiguration, not a network hiccup.
#[tokio::test]
async fn non_http_answer_is_a_misconfiguration() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::NotHttp);
    let err = prober(&scene, &btc.url(), "main")
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig(), "{err}");
    assert!(err.to_string().contains("does not answer HTTP"), "{err}");
}

/// A reply that never ends is cut at the size limit, quickly.
#[tokio::test]
async fn endless_reply_is_bounded() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Endless);
    let start = Instant::now();
    let err = prober(&scene, &btc.url(), "main")
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig());
    assert!(err.to_string().contains("larger than 1024 KiB"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// A server that accepts and never answers: a (transient) timeout error
/// after timeout_secs, not a hang.
#[tokio::test]
async fn silence_times_out() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Silence);
    let start = Instant::now();
    let err = prober(&scene, &btc.url(), "main")
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::Transient(_)), "{err}");
    assert!(err.to_string().contains("within 2.0s"), "{err}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

/// Nothing listening: "not yet", not an error.
#[tokio::test]
async fn connection_refused_is_not_yet() {
    let scene = Scene::new();
    let port = chainstead_testkit::free_port();
    let obs = prober(&scene, &format!("http://127.0.0.1:{port}"), "main")
        .probe()
        .await
        .unwrap();
    assert!(!obs.ready);
    assert_eq!(obs.phase, "down");
    assert!(obs.text.contains("not answering"), "{}", obs.text);
}

/// The cookie is read on every attempt: missing means bitcoind is not up
/// (not yet); a rewritten cookie (bitcoind restarted) is picked up.
#[tokio::test]
async fn cookie_is_reread_every_attempt() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("main", 5, 5, false, 1.0)));
    let mut p = prober(&scene, &btc.url(), "main");
    std::fs::remove_file(scene.cookie()).unwrap();
    let obs = p.probe().await.unwrap();
    assert!(!obs.ready);
    assert!(
        obs.text.contains("waiting for bitcoind's cookie file"),
        "{}",
        obs.text
    );
    assert!(
        btc.server.requests().is_empty(),
        "no request without credentials"
    );

    let new_cookie = "__cookie__:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    *btc.expected_auth.lock().unwrap() = support::basic(new_cookie);
    std::fs::write(scene.cookie(), new_cookie).unwrap();
    assert!(p.probe().await.unwrap().ready);
}

/// User and password file instead of the cookie.
#[tokio::test]
async fn user_and_password_file() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("main", 5, 5, false, 1.0)));
    *btc.expected_auth.lock().unwrap() = support::basic("gate:s3cret pass");
    std::fs::write(scene.path("pw"), "s3cret pass\n").unwrap();
    let mut m = scene.bitcoind_manifest(&btc.url(), "main", json!({}));
    let b = m["backend"].as_object_mut().unwrap();
    b.remove("cookie_file");
    b.insert("rpc_user".into(), json!("gate"));
    b.insert("rpc_password_file".into(), json!(scene.path("pw")));
    let obs = Prober::new(&parse(&m)).unwrap().probe().await.unwrap();
    assert!(obs.ready);
}

/// The fixture files in checks/fixtures/sync-gate parse as manifests and
/// replies, so they stay in step with the code.
#[test]
fn fixtures_are_valid() {
    let dir = support::fixtures();
    let mut manifests = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("manifest-") {
            chainstead_sync_gate::Manifest::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            manifests += 1;
        }
        if name.starts_with("bitcoind-getblockchaininfo-") {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert!(
                v.get("result").is_some() && v.get("error").is_some(),
                "{name}"
            );
        }
    }
    assert!(
        manifests >= 4,
        "expected the four backend manifests in {}",
        dir.display()
    );
}
