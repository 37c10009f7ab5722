//! LND: REST `GET /v1/state` (the State service, no macaroon needed).
//!
//! Upstream facts (lightningnetwork/lnd lnrpc/stateservice.proto and its
//! REST mapping stateservice.yaml / stateservice.swagger.json):
//! - `GET /v1/state` returns `{"state": "<WalletState>"}` with WalletState
//!   one of NON_EXISTING (0), LOCKED (1), UNLOCKED (2), RPC_ACTIVE (3),
//!   SERVER_ACTIVE (4), WAITING_TO_START (255). The State service runs
//!   before the wallet is unlocked, so it is reachable without a macaroon.
//! - RPC_ACTIVE means the RPC server is up and callers can use it;
//!   SERVER_ACTIVE means the whole node started. Either releases the gate.
//! - LND's REST proxy marshals with `EmitUnpopulated: true` (lnrpc's
//!   `RESTJsonMarshalOpts`), so even NON_EXISTING (the zero value) is sent;
//!   a body without `state` is still read as NON_EXISTING, as protobuf JSON
//!   would have it.
//! - REST is served over TLS with LND's own certificate (tls.cert); see
//!   crate::tls for why it is pinned rather than used as a root.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;

use crate::http::{self, Failure};
use crate::manifest::LndBackend;
use crate::probe::{Observation, ProbeError, ProbeResult};
use crate::tls::{read_certs, PinnedCache};

#[derive(Deserialize)]
struct StateReply {
    #[serde(default)]
    state: Option<String>,
}

pub struct Lnd {
    url: String,
    rest_url: String,
    cert_file: PathBuf,
    cache: PinnedCache<reqwest::Client>,
    timeout: Duration,
}

impl Lnd {
    pub fn new(cfg: LndBackend, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            url: format!("{}/v1/state", cfg.rest_url.trim_end_matches('/')),
            rest_url: cfg.rest_url,
            cert_file: cfg.tls_cert_file,
            cache: PinnedCache::new(),
            timeout,
        })
    }

    /// What a request goes to, for messages.
    pub fn describe(&self) -> String {
        format!("LND at {}", self.rest_url)
    }

    pub async fn probe(&mut self) -> ProbeResult {
        let what = format!("LND at {}", self.rest_url);
        // Re-read every time: LND writes tls.cert on its first start and
        // replaces it when it expires or its names change.
        let certs = match read_certs(&self.cert_file) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Ok(Observation::waiting(
                    "no-cert",
                    format!(
                        "waiting for LND's TLS certificate {} (LND creates it on first start)",
                        self.cert_file.display()
                    ),
                ))
            }
            Err(e) => {
                return Err(ProbeError::misconfig(format!(
                    "{e:#} (`backend.tls_cert_file`)"
                )))
            }
        };
        let timeout = self.timeout;
        let client = self
            .cache
            .get(certs, |cfg| http::client(timeout, Some(cfg)))
            .map_err(|e| ProbeError::misconfig(format!("{e:#}")))?;
        self.cache.mismatch.store(false, Ordering::SeqCst);
        let result = http::send(client.get(&self.url), &what, self.timeout).await;
        if self.cache.mismatch.load(Ordering::SeqCst) {
            return Err(ProbeError::misconfig(format!(
                "the TLS certificate presented by {what} is not the one in {} (`backend.tls_cert_file`): \
                 point it at this LND's tls.cert (LND regenerates it when deleted)",
                self.cert_file.display()
            )));
        }
        let reply = match result {
            Ok(r) => r,
            Err(Failure::Down(text)) => return Ok(Observation::waiting("down", text)),
            Err(Failure::Error(e)) => return Err(e),
        };
        if reply.status.is_server_error() {
            return Err(ProbeError::transient(format!(
                "{what} answered /v1/state with HTTP {} ({})",
                reply.status.as_u16(),
                reply.snippet()
            )));
        }
        if !reply.status.is_success() {
            return Err(ProbeError::misconfig(format!(
                "{what} answered /v1/state with HTTP {} ({}): check `backend.rest_url` (LND 0.13 or newer serves /v1/state)",
                reply.status.as_u16(),
                reply.snippet()
            )));
        }
        let state: StateReply = serde_json::from_slice(&reply.body).map_err(|e| {
            ProbeError::misconfig(format!(
                "unparseable reply from {what} /v1/state ({e}; body {}): check `backend.rest_url`",
                reply.snippet()
            ))
        })?;
        Ok(observe(state.state.as_deref().unwrap_or("NON_EXISTING")))
    }
}

/// RPC_ACTIVE or SERVER_ACTIVE is ready; every other state is "not yet".
pub fn observe(state: &str) -> Observation {
    let waiting = |why: &str| Observation::waiting("state", format!("wallet state {state}: {why}"));
    match state {
        "RPC_ACTIVE" => Observation::ready("RPC active (RPC_ACTIVE)".into(), None),
        "SERVER_ACTIVE" => Observation::ready("server active (SERVER_ACTIVE)".into(), None),
        "NON_EXISTING" => waiting("no wallet yet, waiting for it to be created"),
        "LOCKED" => waiting("waiting for the wallet to be unlocked"),
        "UNLOCKED" => waiting("unlocked, RPC server starting"),
        "WAITING_TO_START" => waiting("waiting to start (another instance holds the leader lock?)"),
        _ => waiting("unknown state, waiting for RPC_ACTIVE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert!(observe("RPC_ACTIVE").ready);
        assert!(observe("SERVER_ACTIVE").ready);
        for s in [
            "NON_EXISTING",
            "LOCKED",
            "UNLOCKED",
            "WAITING_TO_START",
            "SOMETHING_NEW",
        ] {
            assert!(!observe(s).ready, "{s}");
        }
        assert_eq!(
            observe("LOCKED").text,
            "wallet state LOCKED: waiting for the wallet to be unlocked"
        );
    }
}
