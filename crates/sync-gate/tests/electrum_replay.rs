//! The electrum backend against a replayed Electrum server and a replayed
//! bitcoind: Fulcrum cannot be installed here. The line server follows the
//! Electrum protocol as documented for ElectrumX and implemented by
//! cculianu/Fulcrum: JSON-RPC 2.0, one object per line; `server.version`
//! answers `[software, protocol]`; `blockchain.headers.subscribe` answers
//! `{"height": N, "hex": "<80-byte header>"}`; notifications carry a
//! `method` and no `id`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chainstead_sync_gate::Prober;
use serde_json::{json, Value};
use support::{chain_info, Btc, FakeBitcoind, Scene};

#[derive(Clone, Copy)]
enum Mode {
    Electrum,
    Garbage,
}

/// A tiny Electrum line server reporting `height`.
fn electrum_server(height: Arc<AtomicU64>, mode: Mode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let height = height.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let reader = BufReader::new(stream);
                for line in reader.lines() {
                    let Ok(line) = line else { return };
                    if let Mode::Garbage = mode {
                        let _ = out.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
                        return;
                    }
                    let req: Value = serde_json::from_str(&line).unwrap();
                    let id = req["id"].clone();
                    let reply = match req["method"].as_str().unwrap() {
                        "server.version" => {
                            json!({"jsonrpc": "2.0", "id": id, "result": ["Fulcrum 1.12.0.1", "1.4"]})
                        }
                        "blockchain.headers.subscribe" => {
                            let h = height.load(Ordering::SeqCst);
                            // A notification first: the client must skip it.
                            let note = json!({"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
                                              "params": [{"height": h, "hex": "00".repeat(80)}]});
                            let _ = writeln!(out, "{note}");
                            json!({"jsonrpc": "2.0", "id": id, "result": {"height": h, "hex": "00".repeat(80)}})
                        }
                        _ => {
                            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "unknown method"}})
                        }
                    };
                    if writeln!(out, "{reply}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn manifest(scene: &Scene, address: SocketAddr, btc_url: &str, tls: Option<&str>) -> Value {
    let cert = tls.map(|pem| {
        let p = scene.path("fulcrum.crt");
        std::fs::write(&p, pem).unwrap();
        p
    });
    json!({
        "version": 1, "name": "fulcrum", "flag_file": scene.path("sync/fulcrum"),
        "poll": {"timeout_secs": 3},
        "backend": {
            "kind": "electrum", "address": address.to_string(), "tls": tls.is_some(),
            "tls_cert_file": cert, "tolerance_blocks": 0,
            "reference": {"kind": "bitcoind", "rpc_url": btc_url, "chain": "regtest", "cookie_file": scene.cookie()},
        },
    })
}

/// Replay: the server behind bitcoind is not ready; level with it, ready.
#[tokio::test(flavor = "multi_thread")]
async fn height_against_reference_bitcoind() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("regtest", 120, 120, false, 1.0)));
    let height = Arc::new(AtomicU64::new(101));
    let addr = electrum_server(height.clone(), Mode::Electrum);
    let mut p = Prober::new(&support::parse(&manifest(&scene, addr, &btc.url(), None))).unwrap();
    let obs = p.probe().await.unwrap();
    assert!(!obs.ready);
    assert_eq!(
        obs.text,
        "Electrum server at block 101, bitcoind at 120 (19 behind)"
    );
    height.store(120, Ordering::SeqCst);
    let obs = p.probe().await.unwrap();
    assert!(obs.ready, "{obs:?}");
}

/// Replay over TLS with the server's self-signed certificate pinned; a
/// different certificate in the file is a named configuration error.
#[tokio::test(flavor = "multi_thread")]
async fn tls_pinned_and_mismatch() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("regtest", 7, 7, false, 1.0)));
    let plain = electrum_server(Arc::new(AtomicU64::new(7)), Mode::Electrum);
    let (pem, der, key) = support::lnd_like_cert();
    let tls_addr = support::tls_front(der, key, plain);
    let m = manifest(&scene, tls_addr, &btc.url(), Some(&pem));
    assert!(
        Prober::new(&support::parse(&m))
            .unwrap()
            .probe()
            .await
            .unwrap()
            .ready
    );

    let (other, _, _) = support::lnd_like_cert();
    let m = manifest(&scene, tls_addr, &btc.url(), Some(&other));
    let err = Prober::new(&support::parse(&m))
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig());
    assert!(err.to_string().contains("backend.tls_cert_file"), "{err}");
}

/// Fulcrum does not listen during its initial sync: not yet.
#[tokio::test(flavor = "multi_thread")]
async fn server_down_is_not_yet() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("regtest", 7, 7, false, 1.0)));
    let addr: SocketAddr = format!("127.0.0.1:{}", chainstead_testkit::free_port())
        .parse()
        .unwrap();
    let obs = Prober::new(&support::parse(&manifest(&scene, addr, &btc.url(), None)))
        .unwrap()
        .probe()
        .await
        .unwrap();
    assert!(!obs.ready);
    assert_eq!(obs.phase, "down");
}

/// Something else on the port (an SSH banner): unparseable, misconfiguration.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_server_is_a_misconfiguration() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Info(chain_info("regtest", 7, 7, false, 1.0)));
    let addr = electrum_server(Arc::new(AtomicU64::new(0)), Mode::Garbage);
    let err = Prober::new(&support::parse(&manifest(&scene, addr, &btc.url(), None)))
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig());
    assert!(err.to_string().contains("unparseable reply"), "{err}");
}
