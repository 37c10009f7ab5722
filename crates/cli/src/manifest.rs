//! The manifest the NixOS module renders for the `chainstead` command
//! (`/etc/chainstead/cli.json`): where each service can be reached (LAN
//! host names and addresses, ports), where Tor writes each onion service's
//! `hostname` file, where the certificates and the macaroon to hand out
//! live. Paths and addresses only, never a secret, so it can live in the
//! Nix store. [`Manifest::load`] validates it offline, which is what
//! `chainstead validate` runs when the system is built.

use std::path::{Path, PathBuf};

use chainstead_common::manifest::{Invalid, Problems, Validate};
use serde::Deserialize;

/// The only manifest version this build understands.
pub const VERSION: u32 = 1;

/// Where the module installs the manifest.
pub const DEFAULT_PATH: &str = "/etc/chainstead/cli.json";

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
    /// Reads and validates the manifest at `path` (the kit's [`load`]:
    /// size cap, field paths in errors, every problem at once; exit 2).
    ///
    /// [`load`]: chainstead_common::manifest::load
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        chainstead_common::manifest::load(path)
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        chainstead_common::manifest::parse(text)
    }
}

fn one_of(p: &mut Problems, at: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        p.push(
            at,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        );
    }
}

fn check_onion(p: &mut Problems, at: &str, o: &Option<Onion>) {
    if let Some(o) = o {
        p.absolute_path(&format!("{at}.hostname_file"), &o.hostname_file);
        if o.port == 0 {
            p.push(
                &format!("{at}.port"),
                "is 0; give the onion service's virtual port",
            );
        }
    }
}

fn check_lan(p: &mut Problems, at: &str, l: &Option<Lan>) {
    if let Some(l) = l {
        if l.hosts.is_empty() {
            p.push(
                &format!("{at}.hosts"),
                "empty; list the names or addresses LAN clients use",
            );
        }
        for (i, h) in l.hosts.iter().enumerate() {
            if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c == '/') {
                p.push(
                    &format!("{at}.hosts[{i}]"),
                    format!("{h:?} is not a host name or an address"),
                );
            }
        }
        if l.port == 0 {
            p.push(&format!("{at}.port"), "is 0");
        }
    }
}

impl Validate for Manifest {
    fn validate(&self, p: &mut Problems) {
        if self.version != VERSION {
            p.push(
                "version",
                format!(
                    "version {} is not supported (this build reads version {VERSION}); rebuild the system with a matching chainstead",
                    self.version
                ),
            );
        }
        if let Some(b) = &self.bitcoind {
            one_of(p, "bitcoind.mode", &b.mode, &["clearnet", "tor", "hybrid"]);
            check_onion(p, "bitcoind.rpc_onion", &b.rpc_onion);
        }
        if let Some(f) = &self.fulcrum {
            p.absolute_path("fulcrum.cert_file", &f.cert_file);
            check_lan(p, "fulcrum.lan", &f.lan);
            check_onion(p, "fulcrum.onion_ssl", &f.onion_ssl);
            check_onion(p, "fulcrum.onion_tcp", &f.onion_tcp);
        }
        if let Some(m) = &self.monerod {
            check_lan(p, "monerod.lan", &m.lan);
            check_onion(p, "monerod.onion", &m.onion);
        }
        if let Some(l) = &self.lnd {
            p.absolute_path("lnd.tls_cert_file", &l.tls_cert_file);
            p.absolute_path("lnd.macaroon_file", &l.macaroon_file);
            one_of(
                p,
                "lnd.macaroon_kind",
                &l.macaroon_kind,
                &["readonly", "invoice", "admin"],
            );
            check_lan(p, "lnd.lan_rest", &l.lan_rest);
            check_lan(p, "lnd.lan_grpc", &l.lan_grpc);
            check_onion(p, "lnd.onion_rest", &l.onion_rest);
            check_onion(p, "lnd.onion_grpc", &l.onion_grpc);
        }
        if let Some(t) = &self.thunderhub {
            check_lan(p, "thunderhub.lan", &t.lan);
            check_onion(p, "thunderhub.onion", &t.onion);
        }
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
                "monerod.lan.hosts: empty",
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
    fn every_problem_is_reported_at_once() {
        let text = FULL
            .replace("\"hybrid\"", "\"onion\"")
            .replace("\"readonly\"", "\"root\"");
        let err = Manifest::parse(&text).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn a_missing_file_is_a_configuration_error() {
        let err = Manifest::load(Path::new("/nonexistent/cli.json")).unwrap_err();
        assert_eq!(
            chainstead_common::exit::Exit::of(&err),
            chainstead_common::exit::Exit::Invalid
        );
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
