//! LND over REST with a read-only macaroon.
//!
//! Upstream facts (lightningnetwork/lnd lnrpc/lightning.proto and its REST
//! mapping lnrpc/lightning.yaml / lightning.swagger.json; docs "REST API"):
//! - `GET /v1/getinfo` (GetInfoResponse): `synced_to_chain`,
//!   `synced_to_graph` (bool), `block_height` (uint32), `num_peers`,
//!   `num_active_channels`, `num_inactive_channels`,
//!   `num_pending_channels` (uint32).
//! - `GET /v1/channels` (ListChannelsResponse.channels, Channel): `active`,
//!   `remote_pubkey`, `chan_id` (uint64), `capacity`, `local_balance`,
//!   `remote_balance` (int64), `pending_htlcs` (HTLC: `incoming`, `amount`
//!   (int64), `hash_lock`, `expiration_height` (uint32), `htlc_index`
//!   (uint64)).
//! - `GET /v1/channels/pending` (PendingChannelsResponse):
//!   `pending_open_channels` (list).
//! - `GET /v1/balance/blockchain` (WalletBalanceResponse):
//!   `confirmed_balance`, `unconfirmed_balance` (int64).
//! - `GET /v1/balance/channels` (ChannelBalanceResponse): `local_balance`,
//!   `remote_balance` (Amount: `sat`, `msat`, uint64).
//! - 64-bit integers arrive as JSON strings, 32-bit ones as numbers
//!   (protobuf JSON mapping); unset fields are sent anyway (lnrpc's
//!   RESTJsonMarshalOpts, EmitUnpopulated).
//! - The macaroon goes hex-encoded in the `Grpc-Metadata-macaroon` header;
//!   readonly.macaroon allows all of the above (read permissions only).
//! - Errors come as grpc-gateway status JSON `{"code", "message",
//!   "details"}`; a refused macaroon is HTTP 500 with a "verification
//!   failed" message.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::http::{self, Failure};
use crate::tls::{read_certs, PinnedCache};
use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::int;

/// Where LND's REST interface is and what to read it with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LndConfig {
    pub rest_url: String,
    pub tls_cert_file: PathBuf,
    /// readonly.macaroon (a read-only client never needs admin.macaroon).
    pub macaroon_file: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GetInfo {
    #[serde(default)]
    pub synced_to_chain: bool,
    #[serde(default)]
    pub synced_to_graph: bool,
    #[serde(default, deserialize_with = "int::de")]
    pub block_height: u64,
    #[serde(default, deserialize_with = "int::de")]
    pub num_peers: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Htlc {
    #[serde(default)]
    pub incoming: bool,
    #[serde(default, deserialize_with = "int::de")]
    pub amount: u64,
    #[serde(default, deserialize_with = "int::de")]
    pub expiration_height: u64,
    #[serde(default, deserialize_with = "int::de")]
    pub htlc_index: u64,
    #[serde(default)]
    pub hash_lock: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Channel {
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub remote_pubkey: String,
    #[serde(default)]
    pub chan_id: String,
    #[serde(default, deserialize_with = "int::de")]
    pub capacity: u64,
    #[serde(default, deserialize_with = "int::de")]
    pub local_balance: u64,
    #[serde(default, deserialize_with = "int::de")]
    pub remote_balance: u64,
    #[serde(default)]
    pub pending_htlcs: Vec<Htlc>,
}

#[derive(Deserialize)]
struct Channels {
    #[serde(default)]
    channels: Vec<Channel>,
}

#[derive(Deserialize)]
struct Pending {
    #[serde(default)]
    pending_open_channels: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct WalletBalance {
    #[serde(default, deserialize_with = "int::de")]
    confirmed_balance: u64,
    #[serde(default, deserialize_with = "int::de")]
    unconfirmed_balance: u64,
}

#[derive(Deserialize, Default)]
struct Amount {
    #[serde(default, deserialize_with = "int::de")]
    sat: u64,
}

#[derive(Deserialize)]
struct ChannelBalance {
    #[serde(default)]
    local_balance: Amount,
    #[serde(default)]
    remote_balance: Amount,
}

/// One look at LND.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub info: GetInfo,
    pub channels: Vec<Channel>,
    pub pending_open: u64,
    pub wallet_confirmed_sat: u64,
    pub wallet_unconfirmed_sat: u64,
    pub local_balance_sat: u64,
    pub remote_balance_sat: u64,
}

pub struct Lnd {
    base: String,
    cert_file: PathBuf,
    macaroon_file: PathBuf,
    cache: PinnedCache<reqwest::Client>,
    timeout: Duration,
}

impl Lnd {
    pub fn new(cfg: &LndConfig, timeout: Duration) -> Self {
        Self {
            base: cfg.rest_url.trim_end_matches('/').to_string(),
            cert_file: cfg.tls_cert_file.clone(),
            macaroon_file: cfg.macaroon_file.clone(),
            cache: PinnedCache::new(),
            timeout,
        }
    }

    fn macaroon_hex(&self) -> Result<String> {
        let bytes = std::fs::read(&self.macaroon_file).with_context(|| {
            format!(
                "failed to read LND's macaroon {} (`lnd.macaroon_file`)",
                self.macaroon_file.display()
            )
        })?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    async fn get<T: DeserializeOwned>(
        &self,
        client: &reqwest::Client,
        mac: &str,
        path: &str,
    ) -> Result<T> {
        let what = format!("LND at {}", self.base);
        let req = client
            .get(format!("{}{path}", self.base))
            .header("Grpc-Metadata-macaroon", mac);
        self.cache.mismatch.store(false, Ordering::SeqCst);
        let reply = match http::send(req, &what, self.timeout).await {
            Ok(r) => r,
            Err(Failure::Down(text)) => bail!("{text}"),
            Err(Failure::Error(e)) => {
                if self.cache.mismatch.load(Ordering::SeqCst) {
                    bail!(
                        "the TLS certificate presented by {what} is not the one in {} (`lnd.tls_cert_file`)",
                        self.cert_file.display()
                    );
                }
                bail!("{e}")
            }
        };
        if !reply.status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| reply.snippet());
            let hint = if msg.contains("verification failed") || msg.contains("macaroon") {
                " (the macaroon was refused: point `lnd.macaroon_file` at this LND's readonly.macaroon)"
            } else {
                ""
            };
            bail!(
                "{what} answered {path} with HTTP {}: {msg}{hint}",
                reply.status.as_u16()
            );
        }
        serde_json::from_slice(&reply.body).map_err(|e| {
            anyhow!(
                "unparseable reply from {what} {path} ({e}; body {})",
                reply.snippet()
            )
        })
    }
}

impl Lnd {
    /// One look: getinfo, channels, pending channels and both balances, in
    /// parallel.
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        let certs = read_certs(&self.cert_file)
            .with_context(|| "failed to read `lnd.tls_cert_file`".to_string())?
            .ok_or_else(|| {
                anyhow!(
                    "LND's TLS certificate {} does not exist yet (LND writes it on first start)",
                    self.cert_file.display()
                )
            })?;
        let timeout = self.timeout;
        let client = self
            .cache
            .get(certs, |cfg| http::client(timeout, Some(cfg)))?;
        let mac = self.macaroon_hex()?;
        let this = &*self;
        let (info, chans, pending, wallet, bal) = tokio::join!(
            this.get::<GetInfo>(&client, &mac, "/v1/getinfo"),
            this.get::<Channels>(&client, &mac, "/v1/channels"),
            this.get::<Pending>(&client, &mac, "/v1/channels/pending"),
            this.get::<WalletBalance>(&client, &mac, "/v1/balance/blockchain"),
            this.get::<ChannelBalance>(&client, &mac, "/v1/balance/channels"),
        );
        let (wallet, bal) = (wallet?, bal?);
        Ok(Snapshot {
            info: info?,
            channels: chans?.channels,
            pending_open: pending?.pending_open_channels.len() as u64,
            wallet_confirmed_sat: wallet.confirmed_balance,
            wallet_unconfirmed_sat: wallet.unconfirmed_balance,
            local_balance_sat: bal.local_balance.sat,
            remote_balance_sat: bal.remote_balance.sat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_int64_strings_and_uint32_numbers() {
        let c: Channel = serde_json::from_str(
            r#"{"active": false, "remote_pubkey": "02ab", "chan_id": "123456789", "capacity": "1000000",
                "local_balance": "400000", "remote_balance": "596530",
                "pending_htlcs": [{"incoming": true, "amount": "5000", "hash_lock": "q83v", "expiration_height": 850144, "htlc_index": "7"}]}"#,
        )
        .unwrap();
        assert_eq!(c.local_balance, 400_000);
        assert_eq!(c.pending_htlcs[0].amount, 5000);
        assert_eq!(c.pending_htlcs[0].expiration_height, 850_144);
        assert_eq!(c.pending_htlcs[0].htlc_index, 7);
        let bad = serde_json::from_str::<Channel>(r#"{"local_balance": "lots"}"#).unwrap_err();
        assert!(bad.to_string().contains("not an integer"), "{bad}");
    }
}
