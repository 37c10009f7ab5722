//! The manifest the NixOS module renders for `chainstead status`
//! (/etc/chainstead/status.json): which services are enabled, their units,
//! how to reach them, where the tools keep their state. Paths, addresses
//! and credential file names only, never a secret value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chainstead_common::manifest::{self, Invalid, Problems, Validate};
use chainstead_sync_gate::manifest::Backend;
use serde::Deserialize;

/// The only manifest version this build understands.
pub const VERSION: u32 = 1;

/// Where the module installs the manifest.
pub const DEFAULT_PATH: &str = "/etc/chainstead/status.json";

/// The longest a probe may take: the whole command must end within 2 s.
pub const MAX_TIMEOUT_SECS: f64 = 1.8;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// Per-probe timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub backup: Option<Backup>,
    #[serde(default)]
    pub secrets: Option<Secrets>,
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Where clients connect (onion, LAN); may be empty.
    #[serde(default)]
    pub addresses: Vec<Address>,
}

fn default_timeout() -> f64 {
    1.5
}

/// One enabled service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Display name ("bitcoind", "lnd", ...).
    pub name: String,
    /// Its systemd unit, e.g. `bitcoind.service`.
    #[serde(default)]
    pub unit: Option<String>,
    /// How to reach it: the sync gate's backend object (same schema).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// LND only: a read-only macaroon for getinfo and the balances.
    #[serde(default)]
    pub macaroon_file: Option<PathBuf>,
    /// The sync gate that holds this service's dependents.
    #[serde(default)]
    pub gate: Option<Gate>,
}

/// What a sync gate persists (crates/sync-gate): its flag file once it
/// released, its metrics textfile every poll.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub name: String,
    #[serde(default)]
    pub unit: Option<String>,
    pub flag_file: PathBuf,
    #[serde(default)]
    pub metrics_file: Option<PathBuf>,
}

/// The backup pusher's state directory (its `state.json`) and its metrics
/// textfile, read when `state.json` is not readable (an operator: the state
/// directory is the pusher's alone).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    #[serde(default)]
    pub unit: Option<String>,
    pub state_dir: PathBuf,
    /// `<metricsDir>/chainstead-backup.prom`; null when the pusher writes
    /// no metrics.
    #[serde(default)]
    pub metrics_file: Option<PathBuf>,
    /// Target names as in the pusher's manifest.
    pub targets: Vec<BackupTarget>,
    /// A target that does not hold the newest channel.backup and last
    /// succeeded longer ago than this needs attention.
    #[serde(default = "default_max_age")]
    pub max_age_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupTarget {
    pub name: String,
    pub kind: String,
}

fn default_max_age() -> f64 {
    3600.0
}

/// The secret loader's runtime layout: `<runtime_dir>/<set>/<file>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub runtime_dir: PathBuf,
    /// Per set (the service it is for): its loader unit and file names.
    pub sets: BTreeMap<String, SecretSet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSet {
    #[serde(default)]
    pub unit: Option<String>,
    pub files: Vec<String>,
}

/// A storage tier and a path on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    pub path: PathBuf,
}

/// A client-facing address: given, or read from a file (Tor's hostname).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub service: String,
    /// "onion" or "lan".
    pub kind: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub hostname_file: Option<PathBuf>,
    #[serde(default)]
    pub port: Option<u16>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        manifest::load(path)
    }

    pub fn parse(text: &str) -> std::result::Result<Self, Invalid> {
        manifest::parse(text)
    }
}

impl Validate for Manifest {
    fn validate(&self, p: &mut Problems) {
        if self.version != VERSION {
            p.push(
                "version",
                format!(
                    "{} is not supported, this chainstead understands only {VERSION}; \
                     rebuild the manifest with the matching chainstead module",
                    self.version
                ),
            );
        }
        if !(self.timeout_secs.is_finite()
            && (0.05..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs))
        {
            p.push(
                "timeout_secs",
                format!(
                    "{}: use 0.05 to {MAX_TIMEOUT_SECS} seconds (the command must finish within 2 s)",
                    self.timeout_secs
                ),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            p.plain_name(&format!("{at}.name"), &s.name);
            if !names.insert(s.name.as_str()) {
                p.push(
                    &format!("{at}.name"),
                    format!("{:?} is listed twice", s.name),
                );
            }
            if let Some(b) = &s.backend {
                // The sync gate's own checks; they name fields `backend.*`.
                let mut inner = Problems::new();
                b.validate(&mut inner);
                if let Err(Invalid(list)) = inner.into_result() {
                    for msg in list {
                        p.push(&at, msg);
                    }
                }
            }
            match (&s.macaroon_file, &s.backend) {
                (Some(m), Some(Backend::Lnd(_))) => {
                    p.secret_file(&format!("{at}.macaroon_file"), m);
                }
                (Some(_), _) => p.push(
                    &format!("{at}.macaroon_file"),
                    "only an LND service (backend.kind \"lnd\") takes a macaroon",
                ),
                _ => {}
            }
            if let Some(g) = &s.gate {
                p.file_name(&format!("{at}.gate.name"), &g.name);
                p.absolute_path(&format!("{at}.gate.flag_file"), &g.flag_file);
                if let Some(f) = &g.metrics_file {
                    p.absolute_path(&format!("{at}.gate.metrics_file"), f);
                }
            }
        }
        if let Some(b) = &self.backup {
            p.absolute_path("backup.state_dir", &b.state_dir);
            if let Some(f) = &b.metrics_file {
                p.absolute_path("backup.metrics_file", f);
            }
            for (i, t) in b.targets.iter().enumerate() {
                p.plain_name(&format!("backup.targets[{i}].name"), &t.name);
            }
            if !(b.max_age_secs.is_finite() && b.max_age_secs > 0.0) {
                p.push(
                    "backup.max_age_secs",
                    "must be a positive number of seconds",
                );
            }
        }
        if let Some(s) = &self.secrets {
            p.absolute_path("secrets.runtime_dir", &s.runtime_dir);
            for (set, v) in &s.sets {
                p.file_name(&format!("secrets.sets.{set}"), set);
                for (i, f) in v.files.iter().enumerate() {
                    p.file_name(&format!("secrets.sets.{set}.files[{i}]"), f);
                }
            }
        }
        for (i, t) in self.tiers.iter().enumerate() {
            p.plain_name(&format!("tiers[{i}].name"), &t.name);
            p.absolute_path(&format!("tiers[{i}].path"), &t.path);
        }
        for (i, a) in self.addresses.iter().enumerate() {
            let at = format!("addresses[{i}]");
            if !matches!(a.kind.as_str(), "onion" | "lan") {
                p.push(
                    &format!("{at}.kind"),
                    format!("{:?}: use \"onion\" or \"lan\"", a.kind),
                );
            }
            if let Some(f) = &a.hostname_file {
                p.absolute_path(&format!("{at}.hostname_file"), f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_manifests_parse() {
        let m = Manifest::parse(r#"{"version": 1}"#).unwrap();
        assert!(m.services.is_empty());
        assert_eq!(m.timeout_secs, 1.5);
        let m = Manifest::parse(
            r#"{"version": 1, "services": [{"name": "monerod", "unit": "monerod.service",
                "backend": {"kind": "monerod", "rpc_url": "http://127.0.0.1:18081", "nettype": "mainnet"}}],
                "addresses": [{"service": "lnd", "kind": "onion", "hostname_file": "/var/lib/tor/lnd/hostname"}]}"#,
        )
        .unwrap();
        assert_eq!(m.services[0].name, "monerod");
    }

    #[test]
    fn problems_are_named() {
        let e = Manifest::parse(
            r#"{"version": 2, "timeout_secs": 5, "services": [{"name": "a b",
                "backend": {"kind": "monerod", "rpc_url": "ftp://x", "nettype": "mainnet"},
                "macaroon_file": "/nix/store/x"}], "tiers": [{"name": "nvme", "path": "rel"}]}"#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "version",
            "timeout_secs",
            "services[0].name",
            "backend.rpc_url",
            "services[0].macaroon_file",
            "tiers[0].path",
        ] {
            assert!(e.contains(needle), "{needle} missing in {e}");
        }
    }

    #[test]
    fn the_modules_rendering_is_valid() {
        // checks/fixtures/status/manifest.json: what modules/status.nix
        // renders for the full stack (bitcoind, monerod, Fulcrum, LND,
        // backup, secrets, both tiers, an onion address).
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../checks/fixtures/status/manifest.json");
        let m = Manifest::load(&path).unwrap();
        let names: Vec<_> = m.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bitcoind", "monerod", "fulcrum", "lnd"]);
        assert!(m.services[3].macaroon_file.is_some());
        assert_eq!(m.tiers.len(), 2);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Manifest::parse(r#"{"version": 1, "password": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
    }
}
