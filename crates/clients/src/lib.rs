//! The clients chainstead's tools share to talk to the daemons: HTTP with a
//! size limit and timeouts sorted into "not there yet" and real errors,
//! TLS pinned to a daemon's own certificate (LND, Fulcrum), and the error
//! type that tells a misconfiguration from a transient failure; and the
//! read-only clients chainstead-exporter (and a status command) look at the
//! daemons with: LND's REST API, bitcoind's RPC, monerod's get_info. The
//! sync gate's backends use the transport, the readiness probes of bitcoind
//! (`bitcoind::probe`) and an Electrum server (`electrum`), and the backend
//! settings (`settings`) that the exporter's manifest embeds as well.
//!
//! Tools depend on this crate, never on another tool.

pub mod bitcoind;
pub mod electrum;
pub mod error;
pub mod http;
pub mod int;
pub mod lnd;
pub mod monerod;
pub mod probe;
pub mod settings;
pub mod tls;

pub use error::ProbeError;
