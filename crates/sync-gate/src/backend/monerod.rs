//! monerod: the `/get_info` JSON endpoint.
//!
//! Upstream facts (monero-project/monero src/rpc/core_rpc_server.cpp,
//! on_get_info; src/rpc/core_rpc_server_commands_defs.h; the monerod RPC
//! documentation "get_info (not JSON-RPC)"):
//! - fields used: `status` ("OK" on success, "BUSY" while the core is busy),
//!   `height` (number of blocks, i.e. top height + 1), `target_height`,
//!   `synchronized` (the p2p layer's "core is synchronized" state),
//!   `busy_syncing`, `nettype` ("mainnet", "testnet", "stagenet",
//!   "fakechain" under --regtest), `offline`.
//! - `target_height` is the best height peers announced; it reads 0 both
//!   before any peer is known and again once the node is synchronized, so
//!   0 must not be read as "behind" (and not as "synced" either).
//! - `busy_syncing` is false between sync batches, so it alone does not
//!   mean "synced".
//!
//! Observed on monerod 0.18.0 (Debian) by the tests in tests/monerod.rs:
//! an `--offline` regtest node reports synchronized=true, target_height=0;
//! a node with no peers reports synchronized=false, target_height=0; a node
//! syncing reports target_height>height and flips to synchronized=true,
//! target_height=0 when done.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::backend::Wait;
use crate::http::{self, Failure};
use crate::manifest::MonerodBackend;
use crate::probe::{percent, Observation, ProbeError, ProbeResult};

#[derive(Debug, Clone, Deserialize)]
pub struct GetInfo {
    pub status: String,
    #[serde(default)]
    pub height: u64,
    #[serde(default)]
    pub target_height: u64,
    #[serde(default)]
    pub synchronized: bool,
    #[serde(default)]
    pub busy_syncing: bool,
    #[serde(default)]
    pub nettype: Option<String>,
    #[serde(default)]
    pub offline: bool,
    /// Peer counts (core_rpc_server_commands_defs.h, COMMAND_RPC_GET_INFO:
    /// `outgoing_connections_count`, `incoming_connections_count`).
    #[serde(default)]
    pub outgoing_connections_count: u64,
    #[serde(default)]
    pub incoming_connections_count: u64,
}

pub struct Monerod {
    cfg: MonerodBackend,
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl Monerod {
    pub fn new(cfg: MonerodBackend, timeout: Duration) -> anyhow::Result<Self> {
        let url = format!("{}/get_info", cfg.rpc_url.trim_end_matches('/'));
        Ok(Self {
            cfg,
            url,
            client: http::client(timeout, None)?,
            timeout,
        })
    }

    /// What a request goes to, for messages.
    pub fn describe(&self) -> String {
        format!("monerod at {}", self.cfg.rpc_url)
    }

    pub async fn probe(&mut self) -> ProbeResult {
        match self.info().await {
            Ok(info) => Ok(observe(&info)),
            Err(Wait::NotYet(o)) => Ok(o),
            Err(Wait::Err(e)) => Err(e),
        }
    }

    /// One `/get_info`, checked against `backend.nettype`.
    pub async fn info(&mut self) -> Result<GetInfo, Wait> {
        let what = format!("monerod at {}", self.cfg.rpc_url);
        let reply = match http::send(self.client.get(&self.url), &what, self.timeout).await {
            Ok(r) => r,
            Err(Failure::Down(text)) => {
                return Err(Wait::NotYet(Observation::waiting("down", text)))
            }
            Err(Failure::Error(e)) => return Err(Wait::Err(e)),
        };
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(Wait::Err(ProbeError::misconfig(format!(
                "{what} asks for a login (HTTP 401, --rpc-login): the gate supports only an RPC port without login; \
                 point `backend.rpc_url` at one"
            ))));
        }
        if !reply.status.is_success() {
            return Err(Wait::Err(ProbeError::misconfig(format!(
                "{what} answered /get_info with HTTP {} ({}): check `backend.rpc_url`",
                reply.status.as_u16(),
                reply.snippet()
            ))));
        }
        let info: GetInfo = serde_json::from_slice(&reply.body).map_err(|e| {
            Wait::Err(ProbeError::misconfig(format!(
                "unparseable reply from {what} /get_info ({e}; body {}): check `backend.rpc_url`",
                reply.snippet()
            )))
        })?;
        if let Some(nettype) = &info.nettype {
            if *nettype != self.cfg.nettype {
                return Err(Wait::Err(ProbeError::misconfig(format!(
                    "{what} runs nettype {nettype:?}, but `backend.nettype` is {:?}: point `backend.rpc_url` at the right monerod or fix `backend.nettype`",
                    self.cfg.nettype
                ))));
            }
        }
        Ok(info)
    }
}

/// Ready when `synchronized` and `height >= target_height`.
pub fn observe(info: &GetInfo) -> Observation {
    if info.status != "OK" {
        return Observation::waiting("busy", format!("status {:?}, waiting", info.status));
    }
    let (h, t) = (info.height, info.target_height);
    if info.synchronized && h >= t {
        return Observation::ready(format!("synced at block {h}"), Some(h));
    }
    let mut o = Observation::waiting("sync", String::new());
    o.height = Some(h);
    if t == 0 {
        // Before any peer announced a height: distance unknown.
        o.phase = "no-peers";
        o.text =
            format!("not synchronized yet, block {h}, no target height yet (waiting for peers)");
    } else if t > h {
        o.target = Some(t);
        o.text = format!("syncing {}, block {h}/{t}", percent(h as f64 / t as f64));
    } else {
        o.target = Some(t);
        o.phase = "settling";
        o.text = format!("at block {h}/{t}, waiting for the synchronized flag");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(h: u64, t: u64, sync: bool, busy: bool) -> GetInfo {
        GetInfo {
            status: "OK".into(),
            height: h,
            target_height: t,
            synchronized: sync,
            busy_syncing: busy,
            nettype: Some("mainnet".into()),
            offline: false,
            outgoing_connections_count: 0,
            incoming_connections_count: 0,
        }
    }

    #[test]
    fn readiness_rule() {
        // Synced: target_height is 0 again.
        assert!(observe(&info(3_100_000, 0, true, false)).ready);
        // No peers yet: target 0 but not synchronized.
        let o = observe(&info(1, 0, false, false));
        assert!(!o.ready);
        assert_eq!(o.remaining(), None);
        // Between batches busy_syncing is false; still not ready.
        let o = observe(&info(81, 301, false, false));
        assert!(!o.ready);
        assert_eq!(o.text, "syncing 26.9%, block 81/301");
        // synchronized but below target: not ready.
        assert!(!observe(&info(299, 301, true, false)).ready);
        let mut busy = info(5, 0, true, false);
        busy.status = "BUSY".into();
        assert!(!observe(&busy).ready);
    }
}
