//! monerod: `GET /get_info` (not JSON-RPC).
//!
//! Upstream facts (monero-project/monero src/rpc/core_rpc_server_commands_defs.h,
//! COMMAND_RPC_GET_INFO; the "get_info" entry of the daemon RPC docs):
//! `status` ("OK"), `height` (blocks, top height + 1), `target_height`
//! (the best height peers announced; 0 before any peer and again once
//! synchronized), `synchronized`, `incoming_connections_count`,
//! `outgoing_connections_count`. See also
//! the sync gate's backend/monerod.rs for what its tests observed.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use crate::http::{self, Failure};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Snapshot {
    pub status: String,
    #[serde(default)]
    pub height: u64,
    #[serde(default)]
    pub target_height: u64,
    #[serde(default)]
    pub synchronized: bool,
    #[serde(default)]
    pub incoming_connections_count: u64,
    #[serde(default)]
    pub outgoing_connections_count: u64,
}

pub struct Monerod {
    rpc_url: String,
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl Monerod {
    pub fn new(rpc_url: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            rpc_url: rpc_url.to_string(),
            url: format!("{}/get_info", rpc_url.trim_end_matches('/')),
            client: http::client(timeout, None)?,
            timeout,
        })
    }
}

impl Monerod {
    /// One look at `/get_info`.
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        let what = format!("monerod at {}", self.rpc_url);
        let reply = match http::send(self.client.get(&self.url), &what, self.timeout).await {
            Ok(r) => r,
            Err(Failure::Down(text)) => bail!("{text}"),
            Err(Failure::Error(e)) => bail!("{e}"),
        };
        if !reply.status.is_success() {
            bail!(
                "{what} answered /get_info with HTTP {} ({})",
                reply.status.as_u16(),
                reply.snippet()
            );
        }
        let info: Snapshot = serde_json::from_slice(&reply.body).map_err(|e| {
            anyhow!(
                "unparseable reply from {what} /get_info ({e}; body {})",
                reply.snippet()
            )
        })?;
        if info.status != "OK" {
            bail!("{what} reports status {:?}", info.status);
        }
        Ok(info)
    }
}
