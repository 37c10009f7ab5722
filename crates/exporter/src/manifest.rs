//! The exporter's manifest: one JSON file rendered by modules/monitoring.nix,
//! holding addresses and file paths, never a secret value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chainstead_sync_gate::manifest::{BitcoindBackend, ElectrumBackend, MonerodBackend};
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

/// LND's REST interface with a read-only macaroon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LndSource {
    pub rest_url: String,
    pub tls_cert_file: PathBuf,
    /// readonly.macaroon (never admin.macaroon: the exporter only reads).
    pub macaroon_file: PathBuf,
}

fn default_timeout() -> f64 {
    5.0
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid manifest {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let m: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            anyhow::anyhow!("field `{at}`: {}", e.inner())
        })?;
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<()> {
        if self.version != 1 {
            bail!(
                "field `version`: {} is not supported; this exporter reads version 1",
                self.version
            );
        }
        self.listen_addr()?;
        if !(self.timeout_secs > 0.0 && self.timeout_secs <= 60.0) {
            bail!(
                "field `timeout_secs`: {} is out of range; give 0 < seconds <= 60",
                self.timeout_secs
            );
        }
        if let Some(b) = &self.bitcoind {
            b.validate("bitcoind")?;
        }
        if let Some(m) = &self.monerod {
            url("monerod.rpc_url", &m.rpc_url, &["http", "https"])?;
        }
        if let Some(f) = &self.fulcrum {
            f.reference.validate("fulcrum.reference")?;
            chainstead_sync_gate::manifest::host_port("fulcrum.address", &f.address)?;
            if f.tls && f.tls_cert_file.is_none() {
                bail!("field `fulcrum.tls_cert_file`: required with `tls: true`");
            }
        }
        if let Some(l) = &self.lnd {
            url("lnd.rest_url", &l.rest_url, &["https"])?;
            absolute("lnd.tls_cert_file", &l.tls_cert_file)?;
            absolute("lnd.macaroon_file", &l.macaroon_file)?;
            let name = l
                .macaroon_file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name == "admin.macaroon" {
                bail!(
                    "field `lnd.macaroon_file`: {} is LND's admin macaroon; the exporter only reads, give readonly.macaroon",
                    l.macaroon_file.display()
                );
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|e| {
            anyhow::anyhow!(
                "field `listen`: {:?} is not an ip:port address ({e})",
                self.listen
            )
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }
}

fn absolute(field: &str, p: &Path) -> Result<()> {
    if !p.is_absolute() {
        bail!("field `{field}`: {} is not an absolute path", p.display());
    }
    Ok(())
}

fn url(field: &str, s: &str, schemes: &[&str]) -> Result<()> {
    let u = reqwest::Url::parse(s)
        .map_err(|e| anyhow::anyhow!("field `{field}`: {s:?} is not a URL ({e})"))?;
    if !schemes.contains(&u.scheme()) {
        bail!(
            "field `{field}`: scheme {:?} is not one of {}",
            u.scheme(),
            schemes.join(", ")
        );
    }
    if u.host_str().is_none() {
        bail!("field `{field}`: {s:?} names no host");
    }
    Ok(())
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
        assert!(err(r#"{"version": 2, "listen": "127.0.0.1:1"}"#).contains("field `version`"));
        assert!(err(r#"{"version": 1, "listen": "localhost"}"#).contains("field `listen`"));
        let admin = err(
            r#"{"version": 1, "listen": "127.0.0.1:1", "lnd": {"rest_url": "https://127.0.0.1:8080",
                "tls_cert_file": "/l/tls.cert", "macaroon_file": "/l/admin.macaroon"}}"#,
        );
        assert!(admin.contains("admin macaroon"), "{admin}");
        let plain = err(
            r#"{"version": 1, "listen": "127.0.0.1:1", "lnd": {"rest_url": "http://127.0.0.1:8080",
                "tls_cert_file": "/l/tls.cert", "macaroon_file": "/l/readonly.macaroon"}}"#,
        );
        assert!(plain.contains("field `lnd.rest_url`"), "{plain}");
    }
}
