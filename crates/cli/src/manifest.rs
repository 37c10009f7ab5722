//! The manifest the NixOS module renders for the `chainstead` command
//! (`/etc/chainstead/cli.json`): where each service can be reached (LAN
//! host names and addresses, ports), where Tor writes each onion service's
//! `hostname` file, where the certificates and the macaroon to hand out
//! live. Paths and addresses only, never a secret, so it can live in the
//! Nix store. [`Manifest::load`] validates it offline, which is what
//! `chainstead validate` runs when the system is built.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The only manifest version this build understands.
pub const VERSION: u32 = 1;

/// Where the module installs the manifest.
pub const DEFAULT_PATH: &str = "/etc/chainstead/cli.json";

/// Largest manifest accepted; a real one is a few kilobytes.
const MAX_MANIFEST_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    #[serde(default)]
    pub bitcoind: Option<Bitcoind>,
    #[serde(default)]
    pub fulcrum: Option<Fulcrum>,
    #[serde(default)]
    pub monerod: Option<Monerod>,
    #[serde(default)]
    pub lnd: Option<Lnd>,
    #[serde(default)]
    pub thunderhub: Option<Thunderhub>,
}

/// Reachable on the LAN: the names and addresses clients may use (the
/// certificate's SANs where there is one) and the port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    pub hosts: Vec<String>,
    pub port: u16,
}

/// An onion service: the `hostname` file Tor writes in its directory, and
/// the virtual port clients use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Onion {
    pub hostname_file: PathBuf,
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bitcoind {
    /// Tor mode of the P2P side, for the operator's information.
    pub mode: String,
    /// The RPC onion service, only when the operator asked for one.
    #[serde(default)]
    pub rpc_onion: Option<Onion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fulcrum {
    /// The certificate Fulcrum serves on its TLS port (PEM).
    pub cert_file: PathBuf,
    #[serde(default)]
    pub lan: Option<Lan>,
    /// Onion service to the TLS port.
    #[serde(default)]
    pub onion_ssl: Option<Onion>,
    /// Onion service to the plain TCP port (Tor encrypts end to end).
    #[serde(default)]
    pub onion_tcp: Option<Onion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monerod {
    /// The restricted RPC on the LAN.
    #[serde(default)]
    pub lan: Option<Lan>,
    /// Onion service to the restricted RPC.
    #[serde(default)]
    pub onion: Option<Onion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lnd {
    pub tls_cert_file: PathBuf,
    /// The macaroon `connect zeus` hands out (readonly or invoice; never
    /// admin unless the operator set it so).
    pub macaroon_file: PathBuf,
    /// Its kind, printed beside the URI.
    pub macaroon_kind: String,
    /// REST on the LAN (Zeus speaks REST or gRPC; lndconnect names one port).
    #[serde(default)]
    pub lan_rest: Option<Lan>,
    #[serde(default)]
    pub lan_grpc: Option<Lan>,
    #[serde(default)]
    pub onion_rest: Option<Onion>,
    #[serde(default)]
    pub onion_grpc: Option<Onion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thunderhub {
    #[serde(default)]
    pub lan: Option<Lan>,
    #[serde(default)]
    pub onion: Option<Onion>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("failed to read manifest {}", path.display()))?;
        if meta.len() > MAX_MANIFEST_BYTES {
            bail!(
                "failed to read manifest {}: {} bytes is more than the {MAX_MANIFEST_BYTES} a manifest may have",
                path.display(),
                meta.len()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("failed to load manifest {}", path.display()))
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let m: Manifest =
            serde_path_to_error::deserialize(de).context("failed to parse the manifest")?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        if self.version != VERSION {
            bail!(
                "manifest version {} is not supported (this build reads version {VERSION}); rebuild the system with a matching chainstead",
                self.version
            );
        }
        let mut onions: Vec<(&str, &Onion)> = Vec::new();
        let mut lans: Vec<(&str, &Lan)> = Vec::new();
        let mut files: Vec<(&str, &Path)> = Vec::new();
        if let Some(b) = &self.bitcoind {
            if !["clearnet", "tor", "hybrid"].contains(&b.mode.as_str()) {
                bail!(
                    "bitcoind.mode {:?} is not one of clearnet, tor, hybrid",
                    b.mode
                );
            }
            onions.extend(b.rpc_onion.iter().map(|o| ("bitcoind.rpc_onion", o)));
        }
        if let Some(f) = &self.fulcrum {
            files.push(("fulcrum.cert_file", &f.cert_file));
            lans.extend(f.lan.iter().map(|l| ("fulcrum.lan", l)));
            onions.extend(f.onion_ssl.iter().map(|o| ("fulcrum.onion_ssl", o)));
            onions.extend(f.onion_tcp.iter().map(|o| ("fulcrum.onion_tcp", o)));
        }
        if let Some(m) = &self.monerod {
            lans.extend(m.lan.iter().map(|l| ("monerod.lan", l)));
            onions.extend(m.onion.iter().map(|o| ("monerod.onion", o)));
        }
        if let Some(l) = &self.lnd {
            files.push(("lnd.tls_cert_file", &l.tls_cert_file));
            files.push(("lnd.macaroon_file", &l.macaroon_file));
            if !["readonly", "invoice", "admin"].contains(&l.macaroon_kind.as_str()) {
                bail!(
                    "lnd.macaroon_kind {:?} is not one of readonly, invoice, admin",
                    l.macaroon_kind
                );
            }
            lans.extend(l.lan_rest.iter().map(|x| ("lnd.lan_rest", x)));
            lans.extend(l.lan_grpc.iter().map(|x| ("lnd.lan_grpc", x)));
            onions.extend(l.onion_rest.iter().map(|o| ("lnd.onion_rest", o)));
            onions.extend(l.onion_grpc.iter().map(|o| ("lnd.onion_grpc", o)));
        }
        if let Some(t) = &self.thunderhub {
            lans.extend(t.lan.iter().map(|l| ("thunderhub.lan", l)));
            onions.extend(t.onion.iter().map(|o| ("thunderhub.onion", o)));
        }
        for (what, o) in onions {
            files.push((what, &o.hostname_file));
            if o.port == 0 {
                bail!("{what}.port is 0; give the onion service's virtual port");
            }
        }
        for (what, path) in files {
            if !path.is_absolute() {
                bail!("{what} {} is not an absolute path", path.display());
            }
        }
        for (what, l) in lans {
            if l.hosts.is_empty() {
                bail!("{what}.hosts is empty; list the names or addresses LAN clients use");
            }
            if l.port == 0 {
                bail!("{what}.port is 0");
            }
            for h in &l.hosts {
                if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c == '/') {
                    bail!("{what}.hosts has {h:?}, which is not a host name or an address");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const FULL: &str = r#"{
      "version": 1,
      "bitcoind": { "mode": "hybrid" },
      "fulcrum": {
        "cert_file": "/srv/fast/fulcrum/ssl/cert.pem",
        "lan": { "hosts": ["node.home.arpa", "192.168.1.10"], "port": 50002 },
        "onion_ssl": { "hostname_file": "/var/lib/tor/onion/fulcrum/hostname", "port": 50002 }
      },
      "monerod": {
        "lan": { "hosts": ["192.168.1.10"], "port": 18089 },
        "onion": { "hostname_file": "/var/lib/tor/onion/monerod-rpc/hostname", "port": 18089 }
      },
      "lnd": {
        "tls_cert_file": "/srv/fast/lnd/tls.cert",
        "macaroon_file": "/srv/fast/lnd/macaroons/readonly.macaroon",
        "macaroon_kind": "readonly",
        "lan_rest": { "hosts": ["192.168.1.10"], "port": 8080 }
      },
      "thunderhub": {}
    }"#;

    #[test]
    fn a_full_manifest_parses() {
        let m = Manifest::parse(FULL).unwrap();
        assert_eq!(m.fulcrum.unwrap().lan.unwrap().hosts.len(), 2);
        assert_eq!(m.lnd.unwrap().macaroon_kind, "readonly");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let text = FULL.replace("\"macaroon_kind\"", "\"macaroon_knd\"");
        let err = format!("{:#}", Manifest::parse(&text).unwrap_err());
        assert!(err.contains("lnd"), "{err}");
        assert!(err.contains("macaroon_knd"), "{err}");
    }

    #[test]
    fn a_wrong_version_is_refused() {
        let text = FULL.replace("\"version\": 1", "\"version\": 2");
        let err = format!("{:#}", Manifest::parse(&text).unwrap_err());
        assert!(err.contains("version 2 is not supported"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        for (from, to, expect) in [
            ("\"hybrid\"", "\"onion\"", "bitcoind.mode"),
            ("\"readonly\"", "\"root\"", "lnd.macaroon_kind"),
            (
                "\"/var/lib/tor/onion/fulcrum/hostname\"",
                "\"hostname\"",
                "fulcrum.onion_ssl",
            ),
            (
                "[\"192.168.1.10\"], \"port\": 18089",
                "[], \"port\": 18089",
                "monerod.lan.hosts is empty",
            ),
            ("\"node.home.arpa\"", "\"node home\"", "fulcrum.lan.hosts"),
        ] {
            let text = FULL.replace(from, to);
            assert_ne!(text, FULL, "the replacement of {from} did not apply");
            let err = format!("{:#}", Manifest::parse(&text).unwrap_err());
            assert!(err.contains(expect), "{expect}: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = format!(
            "{:#}",
            Manifest::load(Path::new("/nonexistent/cli.json")).unwrap_err()
        );
        assert!(err.contains("/nonexistent/cli.json"), "{err}");
    }
}
