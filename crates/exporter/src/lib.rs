//! chainstead-exporter: serves `/metrics` for the figures no packaged
//! exporter has: LND's channels, balances and pending HTLCs, monerod's
//! sync state and peers, Fulcrum's height against bitcoind, bitcoind's
//! height and peers. It looks at the backends only when scraped, in
//! parallel and with a timeout each. See docs/monitoring.md.

pub mod cli;
pub mod collect;
pub mod fulcrum;
pub mod manifest;
pub mod server;
pub mod source;

pub use collect::Collector;
pub use manifest::Manifest;
