//! The manifest the NixOS module renders for one guarded service: the
//! package version about to run, where the service's data and the guard's
//! record live, and how to keep a pre-upgrade copy.
//!
//! It holds paths and versions only, never a secret, so it lives in the Nix
//! store. [`Manifest::load`] reads it with the shared manifest kit
//! ([`chainstead_common::manifest`]: size cap, the path to a failing field,
//! every problem at once) without touching the data, which is what
//! `validate` runs at build time.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chainstead_common::manifest::{self, Problems, Validate};
use serde::Deserialize;

use crate::version::Version;

/// The only manifest version this build understands.
pub const VERSION: u32 = 1;

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
    /// the blocks, and a copy costs as much disk as the chain). An empty
    /// struct rather than a unit variant: serde lets a unit variant of an
    /// internally tagged enum ignore unknown fields.
    None {},
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
    /// Reads, parses and validates a manifest file; the error names every
    /// problem (see [`chainstead_common::manifest::load`]).
    pub fn load(path: &Path) -> Result<Self> {
        manifest::load(path)
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(manifest::parse(text)?)
    }
}

/// Everything that can be checked without the data.
impl Validate for Manifest {
    fn validate(&self, p: &mut Problems) {
        if self.version != VERSION {
            p.push(
                "version",
                format!(
                    "manifest version {} is not supported (this build reads version {VERSION})",
                    self.version
                ),
            );
        }
        if let Err(e) = Version::parse(&self.package_version) {
            p.push("package_version", e);
        }
        p.absolute_path("data_dir", &self.data_dir);
        p.absolute_path("state_file", &self.state_file);
        if self.runbook.trim().is_empty() {
            p.push(
                "runbook",
                "the runbook is empty: name the document an operator reads on a refusal",
            );
        }
        match &self.pre_upgrade {
            PreUpgrade::None {} => {}
            PreUpgrade::Copy {
                dir, paths, keep, ..
            } => {
                let dir_ok = p.absolute_path("pre_upgrade.dir", dir);
                if paths.is_empty() {
                    p.push(
                        "pre_upgrade.paths",
                        "is empty: name what to copy, or use kind \"none\"",
                    );
                }
                for (i, path) in paths.iter().enumerate() {
                    let at = format!("pre_upgrade.paths[{i}]");
                    if p.absolute_path(&at, path) && dir_ok && path.starts_with(dir) {
                        p.push(
                            &at,
                            format!(
                                "{} lies inside the copy directory {}",
                                path.display(),
                                dir.display()
                            ),
                        );
                    }
                }
                keep_at_least_one(p, *keep);
            }
            PreUpgrade::Zfs {
                program,
                dataset,
                keep,
            } => {
                p.absolute_path("pre_upgrade.program", program);
                if dataset.is_empty() || dataset.contains('@') || dataset.starts_with('/') {
                    p.push(
                        "pre_upgrade.dataset",
                        format!("{dataset:?} is not a ZFS dataset name (pool/name)"),
                    );
                }
                keep_at_least_one(p, *keep);
            }
            PreUpgrade::Btrfs {
                program,
                subvolume,
                dir,
                keep,
            } => {
                p.absolute_path("pre_upgrade.program", program);
                p.absolute_path("pre_upgrade.subvolume", subvolume);
                p.absolute_path("pre_upgrade.dir", dir);
                keep_at_least_one(p, *keep);
            }
        }
        if let Some(push) = &self.backup_push {
            if self.service != Service::Lnd {
                p.push(
                    "backup_push",
                    "backup_push is for LND only (it pushes LND's channel.backup)",
                );
            }
            p.absolute_path("backup_push.program", &push.program);
            p.absolute_path("backup_push.manifest", &push.manifest);
        }
    }
}

fn keep_at_least_one(p: &mut Problems, keep: usize) {
    if keep == 0 {
        p.push(
            "pre_upgrade.keep",
            "keep is 0: keep at least the copy just taken",
        );
    }
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

        let mut v = base();
        v["pre_upgrade"] = serde_json::json!({"kind": "none", "keep": 1});
        let e = format!("{:#}", parse(&v).unwrap_err());
        assert!(e.contains("pre_upgrade.keep: unknown field `keep`"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&str, serde_json::Value, &str)] = &[
            ("package_version", "unstable".into(), "package_version"),
            (
                "data_dir",
                "relative/lnd".into(),
                "data_dir: \"relative/lnd\" must be an absolute path",
            ),
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
    fn every_problem_is_reported_at_once() {
        let mut v = base();
        v["version"] = 2.into();
        v["state_file"] = "state.json".into();
        v["runbook"] = "".into();
        v["pre_upgrade"]["paths"] = serde_json::json!([
            "/srv/fast/lnd/ok",
            "/srv/fast/chainstead-pre-upgrade/lnd/x",
            "/srv/../etc"
        ]);
        v["pre_upgrade"]["keep"] = 0.into();
        let e = format!("{:#}", parse(&v).unwrap_err());
        assert!(e.starts_with("invalid manifest, 6 problems:"), "{e}");
        for field in [
            "version",
            "state_file",
            "runbook",
            "pre_upgrade.paths[1]",
            "pre_upgrade.paths[2]",
            "pre_upgrade.keep",
        ] {
            assert!(e.contains(&format!("\n  - {field}: ")), "{field}: {e}");
        }
        assert!(!e.contains("paths[0]"), "{e}");
    }

    #[test]
    fn an_unknown_field_is_named_by_its_path() {
        let mut v = base();
        v["pre_upgrade"]["kepe"] = 1.into();
        let e = format!("{:#}", parse(&v).unwrap_err());
        assert!(e.contains("pre_upgrade.kepe: unknown field `kepe`"), "{e}");
        let mut v = base();
        v["backup_push"] =
            serde_json::json!({"program": "/bin/b", "manifest": "/etc/b.json", "timeout": 5});
        let e = format!("{:#}", parse(&v).unwrap_err());
        assert!(
            e.contains("backup_push.timeout: unknown field `timeout`"),
            "{e}"
        );
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
