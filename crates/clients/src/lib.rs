//! The clients chainstead's tools share to talk to the daemons: HTTP with a
//! size limit and timeouts sorted into "not there yet" and real errors,
//! TLS pinned to a daemon's own certificate (LND, Fulcrum), and the error
//! type that tells a misconfiguration from a transient failure. Used by the
//! sync gate's backends and by chainstead-exporter.

pub mod error;
pub mod http;
pub mod tls;

pub use error::ProbeError;
