//! What a backend client gives the exporter: one look per scrape.
//!
//! The clients here sit on the sync gate's transport (bounded HTTP with
//! timeouts, pinned TLS, the Electrum probe); a client swap touches only
//! the type that implements [`Source`].

use std::future::Future;

/// One backend, asked once per scrape.
pub trait Source {
    type Snapshot;
    /// The `backend` label of this source's `chainstead_exporter_up`.
    fn name(&self) -> &'static str;
    fn look(&mut self) -> impl Future<Output = anyhow::Result<Self::Snapshot>> + Send;
}

/// Reads a JSON integer that protobuf JSON may send as a string (int64 and
/// uint64 fields, lnrpc's REST mapping) or as a number (int32/uint32).
pub mod int {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u64),
        Neg(i64),
        Str(String),
    }

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(n),
            // A negative balance is not a thing; read it as 0.
            Raw::Neg(n) => Ok(n.max(0) as u64),
            Raw::Str(s) => s
                .parse::<u64>()
                .or_else(|_| s.parse::<i64>().map(|n| n.max(0) as u64))
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an integer"))),
        }
    }
}
