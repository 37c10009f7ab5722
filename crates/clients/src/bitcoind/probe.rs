//! bitcoind's readiness as the sync gate sees it (and the Electrum probe's
//! reference): JSON-RPC `getblockchaininfo`, with warm-up and a missing
//! cookie as "not yet" and the chain checked against the settings. The
//! exporter's numbers come from [`super::Bitcoind`] instead.
//!
//! Upstream facts this relies on (bitcoin/bitcoin):
//! - The RPC server speaks JSON-RPC 1.0 over HTTP POST; a reply is the
//!   envelope `{"result": ..., "error": ..., "id": ...}` where exactly one of
//!   result/error is non-null. For a 1.0 request an error comes with HTTP
//!   500 (404 for an unknown method, 400 for an invalid request) and the
//!   same JSON body (src/httprpc.cpp, JSONErrorReply).
//! - A wrong user/password gets HTTP 401 with an empty body and
//!   `WWW-Authenticate: Basic realm="jsonrpc"` (src/httprpc.cpp).
//! - While the node loads its block index every call fails with
//!   `{"code": -28, "message": "Loading block index..."}`; -28 is
//!   RPC_IN_WARMUP (src/rpc/protocol.h). The message changes as start-up
//!   proceeds ("Verifying blocks...", "Loading wallet...").
//! - When the work queue is full it answers HTTP 503 with a text body
//!   ("Work queue depth exceeded", src/httpserver.cpp).
//! - Cookie authentication: bitcoind writes `<datadir>/.cookie` (per chain
//!   subdirectory) containing `__cookie__:<64 hex chars>` on every start
//!   and deletes it on shutdown (src/rpc/request.cpp, GenerateAuthCookie),
//!   so it is re-read on every attempt here.
//! - getblockchaininfo returns, among others, `chain` ("main", "test",
//!   "testnet4", "signet", "regtest"), `blocks` (validated height),
//!   `headers` (best known header height), `verificationprogress` (0..1
//!   estimate) and `initialblockdownload` (src/rpc/blockchain.cpp).

use std::time::Duration;

use chainstead_common::Secret;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::http::{self, Failure};
use crate::probe::{percent, Observation, ProbeError, ProbeResult, Wait};
use crate::settings::BitcoindBackend;

/// The fields of getblockchaininfo the gate uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ChainInfo {
    pub chain: String,
    pub blocks: u64,
    pub headers: u64,
    pub initialblockdownload: bool,
    pub verificationprogress: f64,
}

/// RPC_IN_WARMUP, src/rpc/protocol.h.
const RPC_IN_WARMUP: i64 = -28;

pub struct Bitcoind {
    cfg: BitcoindBackend,
    /// Where this object sits in the manifest ("backend" or
    /// "backend.reference"), for messages that name the field to fix.
    at: String,
    client: reqwest::Client,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    #[serde(default)]
    message: String,
}

impl Bitcoind {
    pub fn new(cfg: BitcoindBackend, at: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            cfg,
            at: at.to_string(),
            client: http::client(timeout, None)?,
            timeout,
        })
    }

    /// What a request goes to, for messages: `bitcoind at <url>`.
    pub fn describe(&self) -> String {
        format!("bitcoind at {}", self.cfg.rpc_url)
    }

    pub async fn probe(&mut self) -> ProbeResult {
        match self.info().await {
            Ok(info) => Ok(observe(&info)),
            Err(Wait::NotYet(o)) => Ok(o),
            Err(Wait::Err(e)) => Err(e),
        }
    }

    /// Reads the credentials (fresh every time) and asks getblockchaininfo.
    pub async fn info(&mut self) -> Result<ChainInfo, Wait> {
        let what = self.describe();
        let result = self.call("getblockchaininfo").await?;
        let info: ChainInfo = serde_json::from_value(result).map_err(|e| {
            Wait::Err(ProbeError::misconfig(format!(
                "unparseable getblockchaininfo result from {what}: {e}"
            )))
        })?;
        if info.chain != self.cfg.chain {
            return Err(Wait::Err(ProbeError::misconfig(format!(
                "{what} is on chain {:?}, but `{}.chain` is {:?}: point `{}.rpc_url` at the right bitcoind or fix `{}.chain`",
                info.chain, self.at, self.cfg.chain, self.at, self.at
            ))));
        }
        Ok(info)
    }

    /// Calls a parameterless RPC `method` (fresh credentials every time)
    /// and returns its `result`; `chainstead status` uses it for
    /// getnetworkinfo.
    pub async fn call(&mut self, method: &str) -> Result<serde_json::Value, Wait> {
        let (user, password) = self.credentials()?;
        let url = &self.cfg.rpc_url;
        let what = format!("bitcoind at {url}");
        let body = serde_json::json!({
            "jsonrpc": "1.0",
            "id": "chainstead-sync-gate",
            "method": method,
            "params": [],
        });
        let req = self
            .client
            .post(url)
            .basic_auth(user, Some(password.expose()))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let reply = match http::send(req, &what, self.timeout).await {
            Ok(r) => r,
            Err(Failure::Down(text)) => {
                return Err(Wait::NotYet(Observation::waiting("down", text)))
            }
            Err(Failure::Error(e)) => return Err(Wait::Err(e)),
        };
        match reply.status {
            StatusCode::UNAUTHORIZED => {
                return Err(Wait::Err(ProbeError::misconfig(format!(
                    "{what} rejected the credentials (HTTP 401): {}",
                    self.auth_hint()
                ))))
            }
            StatusCode::FORBIDDEN => {
                return Err(Wait::Err(ProbeError::misconfig(format!(
                    "{what} refused this client (HTTP 403): allow its address with bitcoind's rpcallowip, or fix `{}.rpc_url`",
                    self.at
                ))))
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                return Err(Wait::Err(ProbeError::transient(format!(
                    "{what} is overloaded (HTTP 503: {}); will retry",
                    reply.snippet()
                ))))
            }
            _ => {}
        }
        let env: Envelope = serde_json::from_slice(&reply.body).map_err(|_| {
            Wait::Err(ProbeError::misconfig(format!(
                "unparseable reply from {what} (HTTP {}, body {}): this is not a bitcoind JSON-RPC answer; check `{}.rpc_url`",
                reply.status.as_u16(),
                reply.snippet(),
                self.at
            )))
        })?;
        if let Some(err) = env.error {
            if err.code == RPC_IN_WARMUP {
                return Err(Wait::NotYet(Observation::waiting(
                    "warmup",
                    format!("warming up ({})", err.message.trim_end_matches('.')),
                )));
            }
            return Err(Wait::Err(ProbeError::misconfig(format!(
                "{what} answered {method} with error {}: {}",
                err.code, err.message
            ))));
        }
        env.result.ok_or_else(|| {
            Wait::Err(ProbeError::misconfig(format!(
                "unparseable reply from {what}: neither result nor error in {}",
                reply.snippet()
            )))
        })
    }

    fn credentials(&self) -> Result<(String, Secret), Wait> {
        if let Some(path) = &self.cfg.cookie_file {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => Secret::new(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Wait::NotYet(Observation::waiting(
                        "no-cookie",
                        format!(
                            "waiting for bitcoind's cookie file {} (bitcoind writes it when it starts)",
                            path.display()
                        ),
                    )))
                }
                Err(e) => {
                    return Err(Wait::Err(ProbeError::misconfig(format!(
                        "failed to read cookie file {} (`{}.cookie_file`): {e}; the gate's user must be able to read it",
                        path.display(),
                        self.at
                    ))))
                }
            };
            let line = text.expose().trim_end();
            return match line.split_once(':') {
                Some((user, pw)) if !user.is_empty() && !pw.is_empty() => {
                    Ok((user.to_string(), Secret::new(pw.to_string())))
                }
                // bitcoind may be writing it right now; an empty file is
                // "not yet", anything else is the wrong file.
                _ if line.is_empty() => Err(Wait::NotYet(Observation::waiting(
                    "no-cookie",
                    format!("cookie file {} is empty (bitcoind starting?)", path.display()),
                ))),
                _ => Err(Wait::Err(ProbeError::misconfig(format!(
                    "cookie file {} (`{}.cookie_file`) is not a bitcoind cookie (expected __cookie__:<hex>)",
                    path.display(),
                    self.at
                )))),
            };
        }
        match (&self.cfg.rpc_user, &self.cfg.rpc_password_file) {
            (Some(user), Some(path)) => {
                let pw = Secret::from_file(path).map_err(|e| {
                    Wait::Err(ProbeError::misconfig(format!(
                        "{e:#} (`{}.rpc_password_file`)",
                        self.at
                    )))
                })?;
                Ok((user.clone(), pw))
            }
            _ => Err(Wait::Err(ProbeError::misconfig(format!(
                "no credentials: set `{}.cookie_file` or `{}.rpc_user` and `{}.rpc_password_file`",
                self.at, self.at, self.at
            )))),
        }
    }

    fn auth_hint(&self) -> String {
        match &self.cfg.cookie_file {
            Some(p) => format!(
                "the cookie in {} (`{}.cookie_file`) is not this bitcoind's; point it at the .cookie of the bitcoind behind `{}.rpc_url`",
                p.display(),
                self.at,
                self.at
            ),
            None => format!(
                "`{}.rpc_user` and the password in `{}.rpc_password_file` do not match bitcoind's rpcauth",
                self.at, self.at
            ),
        }
    }
}

/// Turns getblockchaininfo into an observation.
pub fn observe(info: &ChainInfo) -> Observation {
    if !info.initialblockdownload && info.blocks == info.headers {
        return Observation::ready(
            format!("synced at block {}", info.blocks),
            Some(info.blocks),
        );
    }
    let mut o = Observation::waiting("ibd", String::new());
    o.height = Some(info.blocks);
    o.target = Some(info.headers.max(info.blocks));
    if info.blocks < info.headers {
        if info.initialblockdownload {
            o.ratio = Some(info.verificationprogress.clamp(0.0, 1.0));
            o.text = format!(
                "IBD {}, block {}/{}",
                percent(info.verificationprogress),
                info.blocks,
                info.headers
            );
        } else {
            o.phase = "behind";
            // Out of IBD means the tip is less than -maxtipage (24 h) old:
            // at most a few hours of blocks, validated in seconds.
            o.near = true;
            o.text = format!("catching up, block {}/{}", info.blocks, info.headers);
        }
    } else {
        // All known blocks validated but still in IBD: the tip is older
        // than -maxtipage (a fresh regtest chain, or headers not in yet).
        o.phase = "stale-tip";
        o.text = if info.headers == 0 {
            "in initial block download at block 0, waiting for headers (or, on regtest, a first block)".to_string()
        } else {
            format!(
                "in initial block download at block {}/{}: the tip is old, waiting for a newer block",
                info.blocks, info.headers
            )
        };
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(blocks: u64, headers: u64, ibd: bool, vp: f64) -> ChainInfo {
        ChainInfo {
            chain: "main".into(),
            blocks,
            headers,
            initialblockdownload: ibd,
            verificationprogress: vp,
        }
    }

    #[test]
    fn readiness_rule() {
        assert!(observe(&info(872_001, 872_001, false, 0.99999)).ready);
        let o = observe(&info(512_345, 872_001, true, 0.6134));
        assert!(!o.ready);
        assert_eq!(o.text, "IBD 61.3%, block 512345/872001");
        assert_eq!(o.remaining(), Some(359_656));
        // Equal heights are not enough while IBD is on (fresh regtest).
        let o = observe(&info(0, 0, true, 1.0));
        assert!(!o.ready);
        assert_eq!(o.remaining(), Some(0));
        // Out of IBD but a block behind (a new block is being validated).
        let o = observe(&info(100, 101, false, 1.0));
        assert!(!o.ready && o.near);
        assert!(!observe(&info(512_345, 872_001, true, 0.6)).near);
    }
}
