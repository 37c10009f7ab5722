//! LND's REST calls that need a macaroon: `/v1/getinfo` and
//! `/v1/balance/channels`, behind [`LndApi`] so the shared LND client the
//! monitoring work adds can replace this one.
//!
//! Upstream facts (lightningnetwork/lnd lnrpc/lightning.swagger.json): the
//! macaroon goes hex-encoded in the `Grpc-Metadata-macaroon` header;
//! `lnrpcGetInfoResponse` has `synced_to_chain` (bool), `block_height`,
//! `num_peers`, `num_active_channels`, `num_inactive_channels`,
//! `num_pending_channels` (uint32, JSON numbers);
//! `lnrpcChannelBalanceResponse` has `local_balance` and `remote_balance`
//! as `lnrpcAmount` objects whose `sat` is a uint64, which grpc-gateway
//! writes as a JSON string.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chainstead_common::Secret;
use chainstead_sync_gate::http::{self, Failure};
use chainstead_sync_gate::tls::{read_certs, PinnedCache};
use serde::{Deserialize, Serialize};

use super::units::BoxFuture;

/// GET a JSON document from LND's REST API.
pub trait LndApi: Send + Sync {
    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<serde_json::Value>>;
}

/// The REST client: LND's pinned tls.cert and a read-only macaroon.
pub struct LndRest {
    rest_url: String,
    cert_file: PathBuf,
    macaroon_file: PathBuf,
    timeout: Duration,
}

impl LndRest {
    pub fn new(
        rest_url: &str,
        cert_file: PathBuf,
        macaroon_file: PathBuf,
        timeout: Duration,
    ) -> Self {
        Self {
            rest_url: rest_url.trim_end_matches('/').to_string(),
            cert_file,
            macaroon_file,
            timeout,
        }
    }

    async fn get_inner(&self, path: &str) -> Result<serde_json::Value> {
        let what = format!("LND at {}", self.rest_url);
        let certs = read_certs(&self.cert_file)?.with_context(|| {
            format!(
                "failed to read LND's TLS certificate {}: it does not exist",
                self.cert_file.display()
            )
        })?;
        let bytes = std::fs::read(&self.macaroon_file).with_context(|| {
            format!(
                "failed to read macaroon {} (the operator group must be able to read it)",
                self.macaroon_file.display()
            )
        })?;
        let macaroon = Secret::new(hex::encode(bytes));
        let mut cache: PinnedCache<reqwest::Client> = PinnedCache::new();
        let timeout = self.timeout;
        let client = cache.get(certs, |cfg| http::client(timeout, Some(cfg)))?;
        let req = client
            .get(format!("{}{path}", self.rest_url))
            .header("Grpc-Metadata-macaroon", macaroon.expose());
        let reply = http::send(req, &what, timeout).await;
        if cache.mismatch.load(Ordering::SeqCst) {
            bail!(
                "the TLS certificate presented by {what} is not the one in {}",
                self.cert_file.display()
            );
        }
        let reply = match reply {
            Ok(r) => r,
            Err(Failure::Down(text)) => return Err(anyhow!("{text}")),
            Err(Failure::Error(e)) => return Err(e.into_inner()),
        };
        if !reply.status.is_success() {
            bail!(
                "{what} answered {path} with HTTP {} ({})",
                reply.status.as_u16(),
                reply.snippet()
            );
        }
        serde_json::from_slice(&reply.body).with_context(|| {
            format!(
                "failed to parse {what}'s answer to {path}: {}",
                reply.snippet()
            )
        })
    }
}

impl LndApi for LndRest {
    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<serde_json::Value>> {
        Box::pin(self.get_inner(path))
    }
}

/// What `status` shows of LND beyond its wallet state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LndInfo {
    pub synced_to_chain: Option<bool>,
    pub block_height: Option<u64>,
    pub peers: Option<u64>,
    pub channels_active: Option<u64>,
    pub channels_inactive: Option<u64>,
    pub channels_pending: Option<u64>,
    pub local_balance_sat: Option<u64>,
    pub remote_balance_sat: Option<u64>,
}

/// A count or amount: a JSON number, or a string for 64-bit values.
fn num(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Reads getinfo and the channel balance (both at once).
pub async fn info(api: &dyn LndApi) -> Result<LndInfo> {
    let (gi, bal) = tokio::join!(api.get("/v1/getinfo"), api.get("/v1/balance/channels"));
    let gi = gi?;
    let mut out = LndInfo {
        synced_to_chain: gi.get("synced_to_chain").and_then(|v| v.as_bool()),
        block_height: gi.get("block_height").and_then(num),
        peers: gi.get("num_peers").and_then(num),
        // proto3 JSON leaves zero counts out.
        channels_active: Some(gi.get("num_active_channels").and_then(num).unwrap_or(0)),
        channels_inactive: Some(gi.get("num_inactive_channels").and_then(num).unwrap_or(0)),
        channels_pending: Some(gi.get("num_pending_channels").and_then(num).unwrap_or(0)),
        ..LndInfo::default()
    };
    if out.synced_to_chain.is_none() {
        out.synced_to_chain = Some(false);
    }
    let bal = bal?;
    let sat = |k: &str| {
        bal.get(k)
            .map(|a| a.get("sat").and_then(num).unwrap_or(0))
            .or(Some(0))
    };
    out.local_balance_sat = sat("local_balance");
    out.remote_balance_sat = sat("remote_balance");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Canned(serde_json::Value, serde_json::Value);
    impl LndApi for Canned {
        fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<serde_json::Value>> {
            Box::pin(async move {
                match path {
                    "/v1/getinfo" => Ok(self.0.clone()),
                    "/v1/balance/channels" => Ok(self.1.clone()),
                    _ => bail!("unexpected {path}"),
                }
            })
        }
    }

    #[tokio::test]
    async fn reads_counts_and_string_amounts() {
        let api = Canned(
            json!({"synced_to_chain": true, "block_height": 870000, "num_peers": 4,
                   "num_active_channels": 2, "num_inactive_channels": 1}),
            json!({"local_balance": {"sat": "150000", "msat": "150000000"},
                   "remote_balance": {"sat": "50000", "msat": "50000000"}}),
        );
        let i = info(&api).await.unwrap();
        assert_eq!(i.synced_to_chain, Some(true));
        assert_eq!(i.peers, Some(4));
        assert_eq!(i.channels_active, Some(2));
        assert_eq!(i.channels_inactive, Some(1));
        // Left out by proto3 JSON: zero.
        assert_eq!(i.channels_pending, Some(0));
        assert_eq!(i.local_balance_sat, Some(150_000));
        assert_eq!(i.remote_balance_sat, Some(50_000));
    }
}
