//! Fulcrum (any Electrum server): its tip through the shared Electrum
//! probe (the sync gate's too) (`blockchain.headers.subscribe`), against its reference bitcoind.

use std::time::Duration;

use anyhow::{bail, Result};
use chainstead_clients::electrum::Electrum;
use chainstead_clients::settings::ElectrumBackend;

use crate::source::Source;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub height: u64,
    pub bitcoind_height: u64,
}

pub struct Fulcrum {
    inner: Electrum,
}

impl Fulcrum {
    pub fn new(mut cfg: ElectrumBackend, timeout: Duration) -> Result<Self> {
        // With no tolerance, "not ready" carries bitcoind's height as the
        // target; "ready" means Fulcrum is at or above it and carries
        // Fulcrum's height only, which then stands in for bitcoind's
        // (behind = 0).
        cfg.tolerance_blocks = 0;
        Ok(Self {
            inner: Electrum::new(cfg, timeout)?,
        })
    }
}

impl Source for Fulcrum {
    type Snapshot = Snapshot;

    fn name(&self) -> &'static str {
        "fulcrum"
    }

    async fn look(&mut self) -> Result<Snapshot> {
        let obs = match self.inner.probe().await {
            Ok(o) => o,
            Err(e) => bail!("{e}"),
        };
        match (obs.height, obs.target) {
            (Some(height), Some(target)) => Ok(Snapshot {
                height,
                bitcoind_height: target.max(height),
            }),
            _ => bail!("{}", obs.text),
        }
    }
}
