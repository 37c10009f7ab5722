//! The manifest the NixOS module renders for one guarded service: the
//! package version about to run, where the service's data and the guard's
//! record live, and how to keep a pre-upgrade copy.
//!
//! It holds paths and versions only, never a secret, so it lives in the Nix
//! store. [`Manifest::load`] parses and validates it without touching the
//! data, which is what `validate` runs at build time.
//!
//! Shaped like crates/sync-gate/src/manifest.rs, so it moves to the shared
//! manifest kit in crates/common by replacing `load`/`parse`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::version::Version;

/// The only manifest version this build understands.
pub const VERSION: u32 = 1;

/// Largest manifest accepted; a real one is well under a kilobyte.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// The services the guard knows; each has its own upgrade story
/// (docs/operations.md, "Upgrades").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Lnd,
    Fulcrum,
    Bitcoind,
    Monerod,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Lnd => "lnd",
            Service::Fulcrum => "fulcrum",
            Service::Bitcoind => "bitcoind",
            Service::Monerod => "monerod",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub service: Service,
    /// The version of the package the unit is about to start, taken from
    /// the package by the module.
    pub package_version: String,
    /// The service's data directory (the guard's record lives in it).
    pub data_dir: PathBuf,
    /// The guard's record: data version, pending upgrade, copies.
    pub state_file: PathBuf,
    /// Let an older package start on newer data (only where upstream says
    /// its data format is unchanged).
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Where an operator reads what to do; named in every refusal.
    pub runbook: String,
    /// What to keep before an upgrade.
    pub pre_upgrade: PreUpgrade,
    /// LND only: push a fresh channel backup after the copy.
    #[serde(default)]
    pub backup_push: Option<BackupPush>,
}

/// What the guard keeps before a new version first opens the data.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PreUpgrade {
    /// Nothing (bitcoind's chainstate is never copied: it is rebuilt from
    /// the blocks, and a copy costs as much disk as the chain).
    None,
    /// Copy `paths` (files or directories) into a new directory under `dir`.
    Copy {
        dir: PathBuf,
        paths: Vec<PathBuf>,
        /// Copies kept; older ones are deleted after a new one is complete.
        keep: usize,
        /// Free space that must remain on `dir`'s filesystem after the copy.
        #[serde(default)]
        reserve_bytes: u64,
    },
    /// `zfs snapshot <dataset>@<name>`, keeping the newest `keep`.
    Zfs {
        program: PathBuf,
        dataset: String,
        keep: usize,
    },
    /// `btrfs subvolume snapshot -r <subvolume> <dir>/<name>`, keeping the
    /// newest `keep`.
    Btrfs {
        program: PathBuf,
        subvolume: PathBuf,
        dir: PathBuf,
        keep: usize,
    },
}

/// `chainstead-backup push` with the operator's manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPush {
    pub program: PathBuf,
    pub manifest: PathBuf,
    #[serde(default = "default_push_timeout")]
    pub timeout_secs: u64,
}

fn default_push_timeout() -> u64 {
    60
}

impl Manifest {
    /// Reads, parses and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        use std::io::Read;
        let file = std::fs::File::open(path)
            .with_context(|| format!("failed to open manifest {}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("failed to read manifest {}", path.display()))?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            bail!(
                "failed to read manifest {}: larger than {} bytes",
                path.display(),
                MAX_MANIFEST_BYTES
            );
        }
        Self::parse(&text).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let m: Manifest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                anyhow::anyhow!("failed to parse the manifest JSON: {}", e.inner())
            } else {
                anyhow::anyhow!(
                    "failed to parse the manifest JSON at `{path}`: {}",
                    e.inner()
                )
            }
        })?;
        de.end()
            .context("failed to parse the manifest JSON: trailing characters")?;
        m.validate()?;
        Ok(m)
    }

    /// Checks everything that can be checked without the data.
    pub fn validate(&self) -> Result<()> {
        if self.version != VERSION {
            bail!(
                "manifest version {} is not supported (this build reads version {VERSION})",
                self.version
            );
        }
        Version::parse(&self.package_version).context("package_version")?;
        absolute("data_dir", &self.data_dir)?;
        absolute("state_file", &self.state_file)?;
        if self.runbook.trim().is_empty() {
            bail!("runbook is empty: name the document an operator reads on a refusal");
        }
        match &self.pre_upgrade {
            PreUpgrade::None => {}
            PreUpgrade::Copy {
                dir, paths, keep, ..
            } => {
                absolute("pre_upgrade.dir", dir)?;
                if paths.is_empty() {
                    bail!("pre_upgrade.paths is empty: name what to copy, or use kind \"none\"");
                }
                for p in paths {
                    absolute("pre_upgrade.paths", p)?;
                    if p.starts_with(dir) {
                        bail!(
                            "pre_upgrade.paths: {} lies inside the copy directory {}",
                            p.display(),
                            dir.display()
                        );
                    }
                }
                keep_at_least_one(*keep)?;
            }
            PreUpgrade::Zfs {
                program,
                dataset,
                keep,
            } => {
                absolute("pre_upgrade.program", program)?;
                if dataset.is_empty() || dataset.contains('@') || dataset.starts_with('/') {
                    bail!("pre_upgrade.dataset {dataset:?} is not a ZFS dataset name (pool/name)");
                }
                keep_at_least_one(*keep)?;
            }
            PreUpgrade::Btrfs {
                program,
                subvolume,
                dir,
                keep,
            } => {
                absolute("pre_upgrade.program", program)?;
                absolute("pre_upgrade.subvolume", subvolume)?;
                absolute("pre_upgrade.dir", dir)?;
                keep_at_least_one(*keep)?;
            }
        }
        if let Some(push) = &self.backup_push {
            if self.service != Service::Lnd {
                bail!("backup_push is for LND only (it pushes LND's channel.backup)");
            }
            absolute("backup_push.program", &push.program)?;
            absolute("backup_push.manifest", &push.manifest)?;
        }
        Ok(())
    }
}

fn absolute(what: &str, p: &Path) -> Result<()> {
    if !p.is_absolute() {
        bail!("{what}: {} is not an absolute path", p.display());
    }
    Ok(())
}

fn keep_at_least_one(keep: usize) -> Result<()> {
    if keep == 0 {
        bail!("pre_upgrade.keep is 0: keep at least the copy just taken");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "version": 1,
            "service": "lnd",
            "package_version": "0.19.3-beta",
            "data_dir": "/srv/fast/lnd",
            "state_file": "/srv/fast/lnd/.chainstead-upgrade-guard.json",
            "runbook": "docs/operations.md#upgrades",
            "pre_upgrade": {
                "kind": "copy",
                "dir": "/srv/fast/chainstead-pre-upgrade/lnd",
                "paths": ["/srv/fast/lnd/data/graph/mainnet/channel.db"],
                "keep": 2
            }
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Manifest> {
        Manifest::parse(&v.to_string())
    }

    #[test]
    fn a_good_manifest_parses() {
        let m = parse(&base()).unwrap();
        assert_eq!(m.service, Service::Lnd);
        assert!(!m.allow_downgrade);
        assert!(matches!(m.pre_upgrade, PreUpgrade::Copy { keep: 2, .. }));
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let mut v = base();
        v["allowDowngrade"] = true.into();
        let e = format!("{:#}", parse(&v).unwrap_err());
        assert!(e.contains("allowDowngrade"), "{e}");

        let mut v = base();
        v["version"] = 2.into();
        let e = format!("{:#}", parse(&v).unwrap_err());
        assert!(e.contains("version 2 is not supported"), "{e}");

        let mut v = base();
        v["pre_upgrade"]["reserve"] = 1.into();
        assert!(parse(&v).is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&str, serde_json::Value, &str)] = &[
            ("package_version", "unstable".into(), "package_version"),
            ("data_dir", "relative/lnd".into(), "not an absolute path"),
            ("runbook", " ".into(), "runbook is empty"),
        ];
        for (key, value, want) in cases {
            let mut v = base();
            v[*key] = value.clone();
            let e = format!("{:#}", parse(&v).unwrap_err());
            assert!(e.contains(want), "{key}: {e}");
        }
        let mut v = base();
        v["pre_upgrade"]["keep"] = 0.into();
        assert!(format!("{:#}", parse(&v).unwrap_err()).contains("keep is 0"));
        let mut v = base();
        v["pre_upgrade"]["paths"] = serde_json::json!(["/srv/fast/chainstead-pre-upgrade/lnd/x"]);
        assert!(format!("{:#}", parse(&v).unwrap_err()).contains("inside the copy directory"));
        let mut v = base();
        v["pre_upgrade"] = serde_json::json!({"kind": "zfs", "program": "/bin/zfs", "dataset": "tank/lnd@x", "keep": 1});
        assert!(format!("{:#}", parse(&v).unwrap_err()).contains("not a ZFS dataset"));
        let mut v = base();
        v["service"] = "fulcrum".into();
        v["backup_push"] = serde_json::json!({"program": "/bin/b", "manifest": "/etc/b.json"});
        assert!(format!("{:#}", parse(&v).unwrap_err()).contains("LND only"));
    }

    #[test]
    fn load_names_the_file() {
        let e = format!(
            "{:#}",
            Manifest::load(Path::new("/nonexistent/guard.json")).unwrap_err()
        );
        assert!(e.contains("/nonexistent/guard.json"), "{e}");
    }
}
