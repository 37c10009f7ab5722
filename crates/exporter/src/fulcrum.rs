//! Fulcrum (any Electrum server): its tip through the sync gate's Electrum
//! probe (`blockchain.headers.subscribe`), against its reference bitcoind.

use std::time::Duration;

use anyhow::{bail, Result};
use chainstead_sync_gate::backend::electrum::Electrum;
use chainstead_sync_gate::manifest::ElectrumBackend;

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
        // Ready means exactly level with bitcoind, so an observation's
        // target is bitcoind's height in every case.
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
