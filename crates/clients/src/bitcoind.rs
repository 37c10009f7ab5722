//! bitcoind: JSON-RPC `getblockchaininfo` and `getnetworkinfo`.
//!
//! Upstream facts (bitcoin/bitcoin): the JSON-RPC 1.0 envelope and HTTP
//! statuses as described in [`probe`];
//! getblockchaininfo's `blocks`, `headers`, `initialblockdownload`,
//! `verificationprogress` (src/rpc/blockchain.cpp); getnetworkinfo's
//! `connections_in` / `connections_out` (src/rpc/net.cpp, since 0.21).
//! The cookie `<datadir>/.cookie` is `__cookie__:<hex>`, rewritten on every
//! start, so it is read again for every scrape.

pub mod probe;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::http::{self, Failure};

/// Where bitcoind's RPC is and how to log in: the cookie, or a user with a
/// password file. `at` names the settings in messages (`bitcoind`).
#[derive(Debug, Clone)]
pub struct BitcoindConfig {
    pub at: String,
    pub rpc_url: String,
    pub cookie_file: Option<PathBuf>,
    pub rpc_user: Option<String>,
    pub rpc_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChainInfo {
    pub blocks: u64,
    pub headers: u64,
    #[serde(default)]
    pub initialblockdownload: bool,
    #[serde(default)]
    pub verificationprogress: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetworkInfo {
    #[serde(default)]
    pub connections_in: u64,
    #[serde(default)]
    pub connections_out: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub chain: ChainInfo,
    pub net: NetworkInfo,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

pub struct Bitcoind {
    cfg: BitcoindConfig,
    client: reqwest::Client,
    timeout: Duration,
}

impl Bitcoind {
    pub fn new(cfg: BitcoindConfig, timeout: Duration) -> Result<Self> {
        Ok(Self {
            cfg,
            client: http::client(timeout, None)?,
            timeout,
        })
    }

    fn credentials(&self) -> Result<(String, String)> {
        if let Some(cookie) = &self.cfg.cookie_file {
            let text = std::fs::read_to_string(cookie).with_context(|| {
                format!(
                    "failed to read bitcoind's cookie {} (`{}.cookie_file`; bitcoind writes it on start)",
                    cookie.display(),
                    self.cfg.at
                )
            })?;
            let (u, p) = text.trim().split_once(':').ok_or_else(|| {
                anyhow!(
                    "failed to parse bitcoind's cookie {}: no `user:password`",
                    cookie.display()
                )
            })?;
            return Ok((u.to_string(), p.to_string()));
        }
        let user = self.cfg.rpc_user.clone().unwrap_or_default();
        let file = self.cfg.rpc_password_file.as_ref().ok_or_else(|| {
            anyhow!("field `bitcoind`: give cookie_file or rpc_user and rpc_password_file")
        })?;
        let pass = std::fs::read_to_string(file).with_context(|| {
            format!(
                "failed to read `bitcoind.rpc_password_file` {}",
                file.display()
            )
        })?;
        Ok((user, pass.trim_end_matches(['\r', '\n']).to_string()))
    }

    async fn call<T: DeserializeOwned>(&self, user: &str, pass: &str, method: &str) -> Result<T> {
        let what = format!("bitcoind at {}", self.cfg.rpc_url);
        let body = serde_json::json!({"jsonrpc": "1.0", "id": "chainstead-exporter", "method": method, "params": []});
        let req = self
            .client
            .post(&self.cfg.rpc_url)
            .basic_auth(user, Some(pass))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let reply = match http::send(req, &what, self.timeout).await {
            Ok(r) => r,
            Err(Failure::Down(text)) => bail!("{text}"),
            Err(Failure::Error(e)) => bail!("{e}"),
        };
        if reply.status.as_u16() == 401 {
            bail!(
                "{what} rejected the credentials (HTTP 401): check `{}.cookie_file` or the RPC user",
                self.cfg.at
            );
        }
        let env: Envelope = serde_json::from_slice(&reply.body).map_err(|e| {
            anyhow!(
                "unparseable reply from {what} to {method} (HTTP {}, {e}; body {})",
                reply.status.as_u16(),
                reply.snippet()
            )
        })?;
        if let Some(err) = env.error.filter(|e| !e.is_null()) {
            bail!("{what} answered {method} with an error: {err}");
        }
        let result = env
            .result
            .ok_or_else(|| anyhow!("{what} answered {method} without a result"))?;
        serde_json::from_value(result)
            .map_err(|e| anyhow!("unexpected {method} result from {what}: {e}"))
    }
}

impl Bitcoind {
    /// One look: getblockchaininfo and getnetworkinfo, in parallel.
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        let (user, pass) = self.credentials()?;
        let (chain, net) = tokio::join!(
            self.call::<ChainInfo>(&user, &pass, "getblockchaininfo"),
            self.call::<NetworkInfo>(&user, &pass, "getnetworkinfo"),
        );
        Ok(Snapshot {
            chain: chain?,
            net: net?,
        })
    }
}
