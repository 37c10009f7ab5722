//! What `status` shows of LND beyond its wallet state, read with the shared
//! read-only LND client (crates/clients: getinfo, channels, pending
//! channels and both balances with the read-only macaroon; its module
//! comment cites lnd's REST API for every field).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use chainstead_clients::lnd::{Lnd, LndConfig, Snapshot};
use serde::{Deserialize, Serialize};

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

impl From<&Snapshot> for LndInfo {
    fn from(s: &Snapshot) -> Self {
        let active = s.channels.iter().filter(|c| c.active).count() as u64;
        Self {
            synced_to_chain: Some(s.info.synced_to_chain),
            block_height: Some(s.info.block_height),
            peers: Some(s.info.num_peers),
            channels_active: Some(active),
            channels_inactive: Some(s.channels.len() as u64 - active),
            channels_pending: Some(s.pending_open),
            local_balance_sat: Some(s.local_balance_sat),
            remote_balance_sat: Some(s.remote_balance_sat),
        }
    }
}

/// One look at LND's REST API.
pub async fn info(
    rest_url: &str,
    tls_cert_file: &Path,
    macaroon_file: &Path,
    timeout: Duration,
) -> Result<LndInfo> {
    let cfg = LndConfig {
        rest_url: rest_url.to_string(),
        tls_cert_file: tls_cert_file.to_path_buf(),
        macaroon_file: macaroon_file.to_path_buf(),
    };
    let snap = Lnd::new(&cfg, timeout).snapshot().await?;
    Ok(LndInfo::from(&snap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainstead_clients::lnd::{Channel, GetInfo};

    #[test]
    fn counts_channels_by_state() {
        let chan = |active| Channel {
            active,
            ..Channel::default()
        };
        let s = Snapshot {
            info: GetInfo {
                synced_to_chain: true,
                num_peers: 4,
                block_height: 870_000,
                ..GetInfo::default()
            },
            channels: vec![chan(true), chan(true), chan(false)],
            pending_open: 1,
            local_balance_sat: 150_000,
            remote_balance_sat: 50_000,
            ..Snapshot::default()
        };
        let i = LndInfo::from(&s);
        assert_eq!(i.channels_active, Some(2));
        assert_eq!(i.channels_inactive, Some(1));
        assert_eq!(i.channels_pending, Some(1));
        assert_eq!(i.peers, Some(4));
        assert_eq!(i.synced_to_chain, Some(true));
        assert_eq!(i.local_balance_sat, Some(150_000));
        assert_eq!(i.remote_balance_sat, Some(50_000));
    }
}
