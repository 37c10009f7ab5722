//! What a backend client gives the exporter: one look per scrape.
//!
//! The clients live in crates/clients (LND, bitcoind, monerod) and the sync
//! gate (the Electrum probe, in crate::fulcrum); a client swap touches only
//! the impl of [`Source`].

use std::future::Future;

/// One backend, asked once per scrape.
pub trait Source {
    type Snapshot;
    /// The `backend` label of this source's `chainstead_exporter_up`.
    fn name(&self) -> &'static str;
    fn look(&mut self) -> impl Future<Output = anyhow::Result<Self::Snapshot>> + Send;
}

impl Source for chainstead_clients::lnd::Lnd {
    type Snapshot = chainstead_clients::lnd::Snapshot;

    fn name(&self) -> &'static str {
        "lnd"
    }

    fn look(&mut self) -> impl Future<Output = anyhow::Result<Self::Snapshot>> + Send {
        self.snapshot()
    }
}

impl Source for chainstead_clients::bitcoind::Bitcoind {
    type Snapshot = chainstead_clients::bitcoind::Snapshot;

    fn name(&self) -> &'static str {
        "bitcoind"
    }

    fn look(&mut self) -> impl Future<Output = anyhow::Result<Self::Snapshot>> + Send {
        self.snapshot()
    }
}

impl Source for chainstead_clients::monerod::Monerod {
    type Snapshot = chainstead_clients::monerod::Snapshot;

    fn name(&self) -> &'static str {
        "monerod"
    }

    fn look(&mut self) -> impl Future<Output = anyhow::Result<Self::Snapshot>> + Send {
        self.snapshot()
    }
}
