//! Helpers shared by the exporter's integration tests: where the shipped
//! monitoring files are, rendering the rules with test thresholds, an
//! exporter running in-process, replayed LND and bitcoind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use chainstead_exporter::{server, Collector, Manifest};
use chainstead_testkit::{require_binary, ReplayServer, Reply, Request, Response};
use serde_json::{json, Value};

#[path = "../../../sync-gate/tests/support/mod.rs"]
pub mod support;

pub fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monitoring")
}

pub fn promtool() -> PathBuf {
    require_binary("promtool")
}

/// monitoring/rules.nix rendered with `thresholds` (a Nix attrset).
pub fn rendered_rules(thresholds: &str) -> Value {
    let out = Command::new(require_binary("nix-instantiate"))
        .args(["--eval", "--strict", "--json", "-E"])
        .arg(format!(
            "import {}/rules.nix {{ thresholds = {thresholds}; }}",
            monitoring().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix-instantiate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

// ---------------------------------------------------------------- LND

/// What the replayed LND answers; tests change it between scrapes.
#[derive(Clone)]
pub struct LndState {
    pub channels: Vec<Value>,
    pub synced: bool,
    pub height: u64,
    /// Replace /v1/channels with this raw body (malformed JSON).
    pub raw_channels: Option<&'static str>,
}

pub fn channel(id: &str, active: bool, local: u64, remote: u64, htlcs: Vec<Value>) -> Value {
    // Field names and encodings from lnrpc/lightning.swagger.json
    // (lnrpcChannel, lnrpcHTLC): int64/uint64 as strings, uint32 numbers.
    json!({
        "active": active,
        "remote_pubkey": format!("02{id:0>64}"),
        "channel_point": format!("{id:0>64}:0"),
        "chan_id": id,
        "capacity": (local + remote + 3470).to_string(),
        "local_balance": local.to_string(),
        "remote_balance": remote.to_string(),
        "commit_fee": "2810",
        "total_satoshis_sent": "0",
        "total_satoshis_received": "0",
        "num_updates": "12",
        "pending_htlcs": htlcs,
        "csv_delay": 144,
        "private": false,
        "initiator": true,
        "lifetime": "3600",
        "uptime": "3600",
    })
}

pub fn htlc(index: u64, incoming: bool, amount: u64, expiry: u64) -> Value {
    json!({
        "incoming": incoming,
        "amount": amount.to_string(),
        "hash_lock": format!("aGFzaC1sb2Nr{index}"),
        "expiration_height": expiry,
        "htlc_index": index.to_string(),
        "forwarding_channel": "0",
        "forwarding_htlc_index": "0",
        "locked_in": true,
    })
}

pub const MACAROON: &[u8] = b"\x02\x01\x03lnd\x02\xf8\x01readonly-test-macaroon";

pub struct FakeLnd {
    _server: ReplayServer,
    pub state: Arc<Mutex<LndState>>,
    pub addr: SocketAddr,
    pub cert_pem: String,
}

impl FakeLnd {
    pub fn start(channels: Vec<Value>) -> Self {
        let state = Arc::new(Mutex::new(LndState {
            channels,
            synced: true,
            height: 850_000,
            raw_channels: None,
        }));
        let s = state.clone();
        let want: String = MACAROON.iter().map(|b| format!("{b:02x}")).collect();
        let server = ReplayServer::start(move |req| lnd_reply(req, &s.lock().unwrap(), &want));
        let (pem, der, key) = support::lnd_like_cert();
        let addr = support::tls_front(der, key, server.addr());
        Self {
            _server: server,
            state,
            addr,
            cert_pem: pem,
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut LndState)) {
        f(&mut self.state.lock().unwrap());
    }
}

fn lnd_reply(req: &Request, st: &LndState, macaroon: &str) -> Reply {
    if req.header("Grpc-Metadata-macaroon") != Some(macaroon) {
        // LND's answer to a macaroon it did not issue: grpc-gateway status
        // JSON with gRPC code 2 (Unknown), HTTP 500.
        return Response::json(
            500,
            &json!({"code": 2, "message": "verification failed: signature mismatch after caveat verification", "details": []}),
        )
        .into();
    }
    let active = st.channels.iter().filter(|c| c["active"] == true).count();
    let local: u64 = st
        .channels
        .iter()
        .map(|c| c["local_balance"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    let remote: u64 = st
        .channels
        .iter()
        .map(|c| {
            c["remote_balance"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let body = match req.path.as_str() {
        "/v1/getinfo" => json!({
            "version": "0.18.4-beta commit=v0.18.4-beta",
            "identity_pubkey": "03aa",
            "alias": "chainstead-test",
            "num_pending_channels": 0,
            "num_active_channels": active,
            "num_inactive_channels": st.channels.len() - active,
            "num_peers": 3,
            "block_height": st.height,
            "block_hash": "0000000000000000000000000000000000000000000000000000000000000000",
            "best_header_timestamp": "1731000000",
            "synced_to_chain": st.synced,
            "synced_to_graph": true,
            "testnet": false,
            "chains": [{"chain": "bitcoin", "network": "mainnet"}],
            "uris": [],
            "features": {},
        }),
        "/v1/channels" => {
            if let Some(raw) = st.raw_channels {
                return Response::new(200, raw)
                    .header("Content-Type", "application/json")
                    .into();
            }
            json!({"channels": st.channels})
        }
        "/v1/channels/pending" => json!({
            "total_limbo_balance": "0",
            "pending_open_channels": [],
            "pending_closing_channels": [],
            "pending_force_closing_channels": [],
            "waiting_close_channels": [],
        }),
        "/v1/balance/blockchain" => json!({
            "total_balance": "1500000",
            "confirmed_balance": "1400000",
            "unconfirmed_balance": "100000",
            "locked_balance": "0",
            "reserved_balance_anchor_chan": "10000",
            "account_balance": {},
        }),
        "/v1/balance/channels" => json!({
            "balance": local.to_string(),
            "pending_open_balance": "0",
            "local_balance": {"sat": local.to_string(), "msat": (local * 1000).to_string()},
            "remote_balance": {"sat": remote.to_string(), "msat": (remote * 1000).to_string()},
            "unsettled_local_balance": {"sat": "0", "msat": "0"},
            "unsettled_remote_balance": {"sat": "0", "msat": "0"},
            "pending_open_local_balance": {"sat": "0", "msat": "0"},
            "pending_open_remote_balance": {"sat": "0", "msat": "0"},
        }),
        _ => {
            return Response::json(
                404,
                &json!({"code": 5, "message": "Not Found", "details": []}),
            )
            .into()
        }
    };
    Response::json(200, &body).into()
}

// ------------------------------------------------------------ bitcoind

/// A replayed bitcoind answering getblockchaininfo and getnetworkinfo
/// (bitcoin/bitcoin src/rpc/blockchain.cpp, src/rpc/net.cpp) for the
/// cookie in support::COOKIE.
pub struct FakeBitcoind {
    _server: ReplayServer,
    pub blocks: Arc<Mutex<u64>>,
    pub url: String,
}

impl FakeBitcoind {
    pub fn start(blocks: u64) -> Self {
        let b = Arc::new(Mutex::new(blocks));
        let bb = b.clone();
        let auth = support::basic(support::COOKIE);
        let server = ReplayServer::start(move |req| {
            if req.header("Authorization") != Some(auth.as_str()) {
                return support::unauthorized();
            }
            let blocks = *bb.lock().unwrap();
            match req.json()["method"].as_str() {
                Some("getblockchaininfo") => support::rpc_ok(
                    req,
                    support::chain_info("main", blocks, blocks, false, 0.99999),
                ),
                Some("getnetworkinfo") => support::rpc_ok(
                    req,
                    json!({
                        "version": 280000, "subversion": "/Satoshi:28.0.0/", "protocolversion": 70016,
                        "localservices": "0000000000000c09", "localrelay": true, "timeoffset": 0,
                        "networkactive": true, "connections": 10, "connections_in": 2,
                        "connections_out": 8, "networks": [], "relayfee": 0.00001,
                        "incrementalfee": 0.00001, "localaddresses": [], "warnings": []
                    }),
                ),
                _ => support::rpc_err(req, -32601, "Method not found"),
            }
        });
        let url = format!("http://{}", server.addr());
        Self {
            _server: server,
            blocks: b,
            url,
        }
    }
}

// ------------------------------------------------------------ exporter

/// A temp dir with the cookie, LND's cert and a readonly macaroon.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new(lnd_cert: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".cookie"), support::COOKIE).unwrap();
        std::fs::write(dir.path().join("tls.cert"), lnd_cert).unwrap();
        std::fs::write(dir.path().join("readonly.macaroon"), MACAROON).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn bitcoind(&self, url: &str) -> Value {
        json!({"rpc_url": url, "chain": "main", "cookie_file": self.path(".cookie")})
    }

    pub fn lnd(&self, addr: SocketAddr) -> Value {
        json!({
            "rest_url": format!("https://127.0.0.1:{}", addr.port()),
            "tls_cert_file": self.path("tls.cert"),
            "macaroon_file": self.path("readonly.macaroon"),
        })
    }
}

/// The exporter serving in this process; stops when dropped.
pub struct Exporter {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Exporter {
    pub async fn start(mut manifest: Value) -> Self {
        manifest["version"] = json!(1);
        manifest["listen"] = json!("127.0.0.1:0");
        let m = Manifest::parse(&manifest.to_string()).unwrap();
        let listener = server::bind(m.listen_addr().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::new(&m).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server::serve(listener, collector, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
        }
    }

    pub async fn scrape(&self) -> String {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The value of the sample `name{labels}` exactly as written, if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
}

// ------------------------------------------------------------- monerod

/// A regtest monerod on loopback, offline (no peers), as the sync gate's
/// tests start it; killed when dropped.
pub struct Monerod {
    pub child: chainstead_testkit::ChildGuard,
    pub rpc: u16,
    _dir: tempfile::TempDir,
}

impl Monerod {
    pub fn start() -> Self {
        use std::process::Stdio;
        let dir = tempfile::tempdir().unwrap();
        let rpc = chainstead_testkit::free_port();
        let p2p = chainstead_testkit::free_port();
        let child = chainstead_testkit::monerod::regtest_command(dir.path(), p2p, rpc)
            .arg("--offline")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = chainstead_testkit::ChildGuard::new(child);
        child.wait_for_tcp(
            ([127, 0, 0, 1], rpc).into(),
            std::time::Duration::from_secs(90),
        );
        Self {
            child,
            rpc,
            _dir: dir,
        }
    }

    pub fn manifest(&self) -> Value {
        json!({"rpc_url": format!("http://127.0.0.1:{}", self.rpc), "nettype": "fakechain"})
    }
}

/// Polls `f` every 250 ms until it returns Some, for at most `secs`.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(secs),
            "{what} did not happen within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
