//! Shared pieces of the integration tests: replayed bitcoind answers, a
//! TLS front for the replay servers, manifests in temp dirs.
//!
//! The bitcoind answers are replays: bitcoind cannot be installed here.
//! Their shapes follow bitcoin/bitcoin src/rpc/blockchain.cpp
//! (getblockchaininfo), src/httprpc.cpp (401 with an empty body and
//! `WWW-Authenticate: Basic realm="jsonrpc"`; JSON-RPC 1.0 errors with HTTP
//! 500 and the `{"result", "error", "id"}` envelope) and src/rpc/protocol.h
//! (RPC_IN_WARMUP = -28). The same bodies live in
//! checks/fixtures/sync-gate/ for anyone who wants to reuse them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chainstead_testkit::{Reply, Request, Response};
use serde_json::{json, Value};

pub const COOKIE: &str =
    "__cookie__:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Where the shared fixture files are.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checks/fixtures/sync-gate")
}

/// A getblockchaininfo result as Bitcoin Core 28 returns it (fields from
/// src/rpc/blockchain.cpp; values invented).
pub fn chain_info(chain: &str, blocks: u64, headers: u64, ibd: bool, progress: f64) -> Value {
    json!({
        "chain": chain,
        "blocks": blocks,
        "headers": headers,
        "bestblockhash": "00000000000000000001c7f2a4e3d1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a",
        "bits": "17034219",
        "target": "0000000000000000000342190000000000000000000000000000000000000000",
        "difficulty": 102289407543323.8,
        "time": 1_731_000_000,
        "mediantime": 1_730_998_000,
        "verificationprogress": progress,
        "initialblockdownload": ibd,
        "chainwork": "00000000000000000000000000000000000000009b9a5b7b6a3c2d1e0f000000",
        "size_on_disk": 687_000_000_000u64,
        "pruned": false,
        "warnings": []
    })
}

/// The JSON-RPC 1.0 envelope with a result (HTTP 200).
pub fn rpc_ok(req: &Request, result: Value) -> Reply {
    Response::json(
        200,
        &json!({"result": result, "error": null, "id": req.json()["id"]}),
    )
    .into()
}

/// The envelope with an error; bitcoind sends HTTP 500 for these.
pub fn rpc_err(req: &Request, code: i64, message: &str) -> Reply {
    Response::json(
        500,
        &json!({"result": null, "error": {"code": code, "message": message}, "id": req.json()["id"]}),
    )
    .into()
}

/// bitcoind's answer to a bad Authorization header: 401, empty body.
pub fn unauthorized() -> Reply {
    Response::new(401, Vec::new())
        .header("WWW-Authenticate", "Basic realm=\"jsonrpc\"")
        .into()
}

/// What the replayed bitcoind currently says.
#[derive(Clone, Debug)]
pub enum Btc {
    Info(Value),
    Warmup,
    Unauthorized,
    Garbage,
    NotHttp,
    Endless,
    Silence,
}

/// A replayed bitcoind whose answer the test can change; checks the
/// cookie credentials like bitcoind does.
pub struct FakeBitcoind {
    pub server: chainstead_testkit::ReplayServer,
    pub state: Arc<Mutex<Btc>>,
    pub expected_auth: Arc<Mutex<String>>,
}

impl FakeBitcoind {
    pub fn start(initial: Btc) -> Self {
        let state = Arc::new(Mutex::new(initial));
        let expected_auth = Arc::new(Mutex::new(basic(COOKIE)));
        let (s, a) = (state.clone(), expected_auth.clone());
        let server = chainstead_testkit::ReplayServer::start(move |req| {
            if req.method != "POST" || req.json()["method"] != "getblockchaininfo" {
                return rpc_err(req, -32601, "Method not found");
            }
            let current = s.lock().unwrap().clone();
            if matches!(current, Btc::Unauthorized)
                || req.header("authorization") != Some(a.lock().unwrap().as_str())
            {
                return unauthorized();
            }
            match current {
                Btc::Info(v) => rpc_ok(req, v),
                Btc::Warmup => rpc_err(req, -28, "Loading block index…"),
                Btc::Garbage => Reply::Raw(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n<html>router</html>\n\n"
                        .to_vec(),
                ),
                Btc::NotHttp => Reply::Raw(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec()),
                Btc::Endless => Reply::Endless,
                Btc::Silence => Reply::Silence,
                Btc::Unauthorized => unauthorized(),
            }
        });
        Self {
            server,
            state,
            expected_auth,
        }
    }

    pub fn set(&self, b: Btc) {
        *self.state.lock().unwrap() = b;
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user_colon_password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_colon_password)
    )
}

/// A temp dir with a cookie file and room for flags and metrics.
pub struct Scene {
    pub dir: tempfile::TempDir,
}

impl Scene {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".cookie"), COOKIE).unwrap();
        std::fs::create_dir(dir.path().join("metrics")).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cookie(&self) -> PathBuf {
        self.path(".cookie")
    }

    pub fn flag(&self) -> PathBuf {
        self.path("sync/bitcoind")
    }

    /// A bitcoind manifest for `url`, with `poll` overrides.
    pub fn bitcoind_manifest(&self, url: &str, chain: &str, poll: Value) -> Value {
        json!({
            "version": 1,
            "name": "bitcoind",
            "flag_file": self.flag(),
            "metrics_dir": self.path("metrics"),
            "poll": poll,
            "backend": {"kind": "bitcoind", "rpc_url": url, "chain": chain, "cookie_file": self.cookie()}
        })
    }

    /// Writes a manifest and returns its path.
    pub fn write_manifest(&self, m: &Value) -> PathBuf {
        let p = self.path("manifest.json");
        std::fs::write(&p, serde_json::to_vec_pretty(m).unwrap()).unwrap();
        p
    }
}

pub fn parse(m: &Value) -> chainstead_sync_gate::Manifest {
    chainstead_sync_gate::Manifest::parse(&m.to_string()).unwrap()
}

// LND-shaped certificates and the TLS front live in the test kit, shared
// with the secret loader's and the exporter's tests.
#[allow(unused_imports)] // not every test binary that includes this file uses them
pub use chainstead_testkit::tls::{lnd_like_cert, tls_front};
