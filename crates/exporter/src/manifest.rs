//! The exporter's manifest: one JSON file rendered by modules/monitoring.nix,
//! holding addresses and file paths, never a secret value.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use chainstead_clients::settings::{BitcoindBackend, ElectrumBackend, MonerodBackend};
use chainstead_common::manifest::{self, Invalid, PlainHttp, Problems, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// `host:port` the `/metrics` endpoint listens on.
    pub listen: String,
    /// Seconds each backend may take per scrape.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    #[serde(default)]
    pub bitcoind: Option<BitcoindBackend>,
    #[serde(default)]
    pub monerod: Option<MonerodBackend>,
    #[serde(default)]
    pub lnd: Option<LndSource>,
    /// Fulcrum (any Electrum server), compared with its reference bitcoind.
    #[serde(default)]
    pub fulcrum: Option<ElectrumBackend>,
}

/// LND's REST interface with a read-only macaroon (the shared client's
/// settings).
pub use chainstead_clients::lnd::LndConfig as LndSource;

fn default_timeout() -> f64 {
    5.0
}

/// The manifest format this exporter reads.
pub const VERSION: u32 = 1;

impl Manifest {
    /// Reads, parses and validates a manifest file (the shared manifest kit).
    pub fn load(path: &Path) -> Result<Self> {
        manifest::load(path)
    }

    pub fn parse(text: &str) -> std::result::Result<Self, Invalid> {
        manifest::parse(text)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|e| {
            anyhow::anyhow!("listen: {:?} is not an ip:port address ({e})", self.listen)
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }
}

impl Validate for Manifest {
    fn validate(&self, p: &mut Problems) {
        if self.version != VERSION {
            p.push(
                "version",
                format!(
                    "{} is not supported, this chainstead-exporter understands only {VERSION}; \
                     rebuild the manifest with the matching chainstead module",
                    self.version
                ),
            );
        }
        if let Err(e) = self.listen_addr() {
            p.push("listen", format!("{e:#}").trim_start_matches("listen: "));
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0 && self.timeout_secs <= 60.0)
        {
            p.push(
                "timeout_secs",
                format!(
                    "{}: use a number of seconds above 0, at most 60",
                    self.timeout_secs
                ),
            );
        }
        if let Some(b) = &self.bitcoind {
            b.validate(p, "bitcoind");
        }
        if let Some(m) = &self.monerod {
            p.http_url("monerod.rpc_url", &m.rpc_url, PlainHttp::Anywhere);
        }
        if let Some(f) = &self.fulcrum {
            f.validate(p, "fulcrum");
        }
        if let Some(l) = &self.lnd {
            // LND's REST listener always speaks TLS.
            p.http_url("lnd.rest_url", &l.rest_url, PlainHttp::Never);
            p.absolute_path("lnd.tls_cert_file", &l.tls_cert_file);
            if p.absolute_path("lnd.macaroon_file", &l.macaroon_file)
                && l.macaroon_file
                    .file_name()
                    .is_some_and(|n| n == "admin.macaroon")
            {
                p.push(
                    "lnd.macaroon_file",
                    format!(
                        "{} is LND's admin macaroon; the exporter only reads, give readonly.macaroon",
                        l.macaroon_file.display()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_full_manifest() {
        let m = Manifest::parse(
            r#"{"version": 1, "listen": "127.0.0.1:9777",
                "bitcoind": {"rpc_url": "http://127.0.0.1:8332", "chain": "main", "cookie_file": "/var/lib/bitcoind/.cookie"},
                "monerod": {"rpc_url": "http://127.0.0.1:18081", "nettype": "mainnet"},
                "lnd": {"rest_url": "https://127.0.0.1:8080", "tls_cert_file": "/var/lib/lnd/tls.cert", "macaroon_file": "/var/lib/lnd/readonly.macaroon"},
                "fulcrum": {"address": "127.0.0.1:50001", "reference": {"rpc_url": "http://127.0.0.1:8332", "chain": "main", "cookie_file": "/c"}}}"#,
        )
        .unwrap();
        assert_eq!(m.timeout(), Duration::from_secs(5));
        assert!(m.lnd.is_some() && m.fulcrum.is_some());
    }

    #[test]
    fn errors_name_the_field() {
        let err = |text: &str| format!("{:#}", Manifest::parse(text).unwrap_err());
        assert!(
            err(r#"{"version": 1, "listen": "x", "extra": 1}"#).contains("unknown field `extra`")
        );
        assert!(err(r#"{"version": 2, "listen": "127.0.0.1:1"}"#)
            .contains("version: 2 is not supported"));
        assert!(err(r#"{"version": 1, "listen": "localhost"}"#)
            .contains("listen: \"localhost\" is not an ip:port"));
        let admin = err(
            r#"{"version": 1, "listen": "127.0.0.1:1", "lnd": {"rest_url": "https://127.0.0.1:8080",
                "tls_cert_file": "/l/tls.cert", "macaroon_file": "/l/admin.macaroon"}}"#,
        );
        assert!(admin.contains("admin macaroon"), "{admin}");
        let plain = err(
            r#"{"version": 1, "listen": "127.0.0.1:1", "lnd": {"rest_url": "http://127.0.0.1:8080",
                "tls_cert_file": "/l/tls.cert", "macaroon_file": "/l/readonly.macaroon"}}"#,
        );
        assert!(plain.contains("lnd.rest_url"), "{plain}");
    }
}
