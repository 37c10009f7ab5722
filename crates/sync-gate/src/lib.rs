//! chainstead-sync-gate: holds services until their backend (bitcoind,
//! monerod, LND, an Electrum server) is synced.
//!
//! The service (`wait`) polls the backend, reports progress through
//! `sd_notify STATUS=` and a Prometheus textfile, and writes a flag file
//! once the backend is ready; a systemd `.path` unit on that flag starts
//! the target the dependent services hang off. See docs/startup-ordering.md.

pub mod backend;
// The transport the backends share with chainstead-exporter.
pub use chainstead_clients::{http, tls};
pub mod cli;
pub mod first_sync;
pub mod gate;
pub mod manifest;
pub mod probe;
pub mod progress;

pub use backend::Prober;
pub use manifest::Manifest;
pub use probe::{Observation, ProbeError, ProbeResult};
