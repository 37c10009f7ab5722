//! The backends and one type to drive whichever the manifest names.

//!
//! bitcoind's and the Electrum server's probes are the shared clients'
//! (chainstead-exporter's Fulcrum source uses the same one).

pub use chainstead_clients::bitcoind::probe as bitcoind;
pub use chainstead_clients::electrum;
pub mod lnd;
pub mod monerod;

pub use chainstead_clients::probe::Wait;

use crate::manifest::{Backend, Manifest};
use crate::probe::ProbeResult;

/// One backend with its connection state (HTTP client, pinned TLS).
pub enum Prober {
    Bitcoind(bitcoind::Bitcoind),
    Monerod(monerod::Monerod),
    Lnd(lnd::Lnd),
    Electrum(electrum::Electrum),
}

impl Prober {
    pub fn new(m: &Manifest) -> anyhow::Result<Self> {
        let timeout = m.poll.timeout();
        Ok(match m.backend.clone() {
            Backend::Bitcoind(b) => Self::Bitcoind(bitcoind::Bitcoind::new(b, "backend", timeout)?),
            Backend::Monerod(b) => Self::Monerod(monerod::Monerod::new(b, timeout)?),
            Backend::Lnd(b) => Self::Lnd(lnd::Lnd::new(b, timeout)?),
            Backend::Electrum(b) => Self::Electrum(electrum::Electrum::new(b, timeout)?),
        })
    }

    /// What a probe talks to, for messages: `bitcoind at <url>`.
    pub fn describe(&self) -> String {
        match self {
            Self::Bitcoind(b) => b.describe(),
            Self::Monerod(b) => b.describe(),
            Self::Lnd(b) => b.describe(),
            Self::Electrum(b) => b.describe(),
        }
    }

    /// One look at the backend.
    pub async fn probe(&mut self) -> ProbeResult {
        match self {
            Self::Bitcoind(b) => b.probe().await,
            Self::Monerod(b) => b.probe().await,
            Self::Lnd(b) => b.probe().await,
            Self::Electrum(b) => b.probe().await,
        }
    }
}
