//! The LND backend against a replay over TLS: LND cannot be installed here.
//! The replay answers `GET /v1/state` with `{"state": "<WalletState>"}` as
//! lightningnetwork/lnd lnrpc/stateservice.proto and its REST mapping
//! (stateservice.yaml: `get: "/v1/state"`) define, behind a TLS front whose
//! certificate is shaped like LND's self-signed one (cert/selfsigned.go).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use chainstead_sync_gate::Prober;
use chainstead_testkit::{ReplayServer, Reply, Response};
use serde_json::json;

struct FakeLnd {
    _server: ReplayServer,
    state: Arc<Mutex<Option<&'static str>>>,
    addr: std::net::SocketAddr,
    cert_pem: String,
}

fn start_lnd(state: Option<&'static str>) -> FakeLnd {
    let state = Arc::new(Mutex::new(state));
    let s = state.clone();
    let server = ReplayServer::start(move |req| {
        if req.method != "GET" || req.path != "/v1/state" {
            // grpc-gateway's answer for an unknown path.
            return Response::json(
                404,
                &json!({"code": 5, "message": "Not Found", "details": []}),
            )
            .into();
        }
        match *s.lock().unwrap() {
            Some(st) => Response::json(200, &json!({ "state": st })).into(),
            // The zero value as protobuf JSON without EmitUnpopulated would
            // send it (LND itself sends "NON_EXISTING" explicitly).
            None => Reply::Send(Response::json(200, &json!({}))),
        }
    });
    let (pem, der, key) = support::lnd_like_cert();
    let addr = support::tls_front(der, key, server.addr());
    FakeLnd {
        _server: server,
        state,
        addr,
        cert_pem: pem,
    }
}

fn prober(dir: &std::path::Path, rest_url: &str, cert_pem: Option<&str>) -> Prober {
    let cert = dir.join("tls.cert");
    if let Some(pem) = cert_pem {
        std::fs::write(&cert, pem).unwrap();
    }
    let m = json!({
        "version": 1, "name": "lnd", "flag_file": dir.join("flag"),
        "poll": {"timeout_secs": 3},
        "backend": {"kind": "lnd", "rest_url": rest_url, "tls_cert_file": cert},
    });
    Prober::new(&support::parse(&m)).unwrap()
}

/// Replay over TLS: LOCKED is not yet, RPC_ACTIVE and SERVER_ACTIVE are
/// ready; the certificate (a CA-flagged self-signed one, like LND's) is
/// accepted because it is exactly the pinned one.
#[tokio::test(flavor = "multi_thread")]
async fn states_over_pinned_tls() {
    let lnd = start_lnd(Some("LOCKED"));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://127.0.0.1:{}", lnd.addr.port());
    let mut p = prober(dir.path(), &url, Some(&lnd.cert_pem));
    let obs = p.probe().await.unwrap();
    assert!(!obs.ready);
    assert_eq!(
        obs.text,
        "wallet state LOCKED: waiting for the wallet to be unlocked"
    );

    *lnd.state.lock().unwrap() = None;
    let obs = p.probe().await.unwrap();
    assert!(obs.text.contains("NON_EXISTING"), "{}", obs.text);

    for ready in ["RPC_ACTIVE", "SERVER_ACTIVE"] {
        *lnd.state.lock().unwrap() = Some(ready);
        let obs = p.probe().await.unwrap();
        assert!(obs.ready, "{ready}: {obs:?}");
    }

    // Also by name: LND's certificate has localhost in its SANs.
    let url = format!("https://localhost:{}", lnd.addr.port());
    let obs = prober(dir.path(), &url, Some(&lnd.cert_pem))
        .probe()
        .await
        .unwrap();
    assert!(obs.ready);
}

/// The configured tls.cert is another certificate (say, of an LND that
/// was reinstalled): a clear configuration error naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn certificate_mismatch_is_a_named_misconfiguration() {
    let lnd = start_lnd(Some("RPC_ACTIVE"));
    let dir = tempfile::tempdir().unwrap();
    let (other_pem, _, _) = support::lnd_like_cert();
    let url = format!("https://127.0.0.1:{}", lnd.addr.port());
    let err = prober(dir.path(), &url, Some(&other_pem))
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("is not the one in") && msg.contains("backend.tls_cert_file"),
        "{msg}"
    );
}

/// Before LND's first start there is no tls.cert: not yet, no request.
#[tokio::test(flavor = "multi_thread")]
async fn missing_certificate_is_not_yet() {
    let lnd = start_lnd(Some("RPC_ACTIVE"));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://127.0.0.1:{}", lnd.addr.port());
    let mut p = prober(dir.path(), &url, None);
    let obs = p.probe().await.unwrap();
    assert!(!obs.ready);
    assert!(
        obs.text.contains("waiting for LND's TLS certificate"),
        "{}",
        obs.text
    );
    // Once LND wrote it, the same prober picks it up.
    std::fs::write(dir.path().join("tls.cert"), &lnd.cert_pem).unwrap();
    assert!(p.probe().await.unwrap().ready);
}

/// A file that holds no certificate is a configuration error.
#[tokio::test(flavor = "multi_thread")]
async fn unparseable_certificate_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = chainstead_testkit::free_port();
    let err = prober(
        dir.path(),
        &format!("https://127.0.0.1:{port}"),
        Some("not a cert\n"),
    )
    .probe()
    .await
    .unwrap_err();
    assert!(err.is_misconfig());
    assert!(err.to_string().contains("backend.tls_cert_file"), "{err}");
}

/// `rest_url` points at a port without TLS: a named misconfiguration,
/// not "LND down".
#[tokio::test(flavor = "multi_thread")]
async fn plain_http_port_is_a_misconfiguration() {
    // A plain HTTP server answers the TLS ClientHello with a 400, as Go's
    // net/http and most others do, then closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 512];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (pem, _, _) = support::lnd_like_cert();
    let url = format!("https://127.0.0.1:{port}");
    let err = prober(dir.path(), &url, Some(&pem))
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig(), "{err}");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
}

/// LND not running: connection refused is "not yet".
#[tokio::test(flavor = "multi_thread")]
async fn lnd_down_is_not_yet() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, _, _) = support::lnd_like_cert();
    let port = chainstead_testkit::free_port();
    let obs = prober(dir.path(), &format!("https://127.0.0.1:{port}"), Some(&pem))
        .probe()
        .await
        .unwrap();
    assert!(!obs.ready);
    assert_eq!(obs.phase, "down");
}
