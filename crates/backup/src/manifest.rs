//! The manifest the NixOS module renders: one JSON file holding paths,
//! addresses and the names of credential files, never secret values.
//! `validate` checks it offline (no network, no writes, no reads of the
//! files it names, as they may not exist when the system is built).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chainstead_common::manifest::{self, PlainHttp, Problems, Validate};
use serde::{Deserialize, Serialize};

/// A manifest that cannot be used; `main` exits 2 for it.
pub use chainstead_common::manifest::Invalid;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// LND's `<lnd dir>/data/chain/bitcoin/<network>/channel.backup`.
    pub channel_backup: PathBuf,
    /// Local versioned copies (`versions/`), `state.json`, snapshot staging.
    pub state_dir: PathBuf,
    #[serde(default)]
    pub metrics_dir: Option<PathBuf>,
    /// Instance name for the metrics file: `chainstead-backup[-<instance>].prom`.
    #[serde(default)]
    pub instance: Option<String>,
    /// Seconds between full re-reads that catch anything inotify missed.
    #[serde(default = "default_reconcile")]
    pub reconcile_interval_secs: u64,
    #[serde(default)]
    pub lnd: Option<LndVerify>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub snapshot: Option<SnapshotSpec>,
    pub targets: Vec<TargetSpec>,
}

fn default_reconcile() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LndVerify {
    /// LND's REST listener, e.g. `https://127.0.0.1:8080`.
    pub rest_url: String,
    /// LND's self-signed `tls.cert` (PEM), trusted as the only root.
    /// Leave it out only for LND's `no-rest-tls` on loopback (`http://127.0.0.1:...`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// A read-only macaroon (`readonly.macaroon`) is enough for verify.
    pub macaroon_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// age X25519 recipients (`age1...`), public keys only.
    pub recipients: Vec<String>,
    /// The matching identity, needed only by `verify` and `restore`.
    #[serde(default)]
    pub identity_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Versions kept per target at least (the newest is never deleted).
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Versions older than this are deleted once more than `keep_last` exist.
    #[serde(default)]
    pub max_age_days: Option<u64>,
}

fn default_keep_last() -> usize {
    100
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_last: default_keep_last(),
            max_age_days: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// Small files (configs, xpubs, derivation paths), absolute paths.
    pub files: Vec<PathBuf>,
    /// Seconds between snapshots; a change to a file also triggers one.
    #[serde(default = "default_snapshot_interval")]
    pub interval_secs: u64,
}

fn default_snapshot_interval() -> u64 {
    3600
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TargetSpec {
    Directory {
        name: String,
        #[serde(default)]
        encrypt: bool,
        path: PathBuf,
    },
    S3 {
        name: String,
        #[serde(default)]
        encrypt: bool,
        endpoint: String,
        bucket: String,
        region: String,
        #[serde(default)]
        prefix: String,
        access_key_id_file: PathBuf,
        secret_access_key_file: PathBuf,
        #[serde(default)]
        allow_http: bool,
    },
    Webdav {
        name: String,
        #[serde(default)]
        encrypt: bool,
        /// Base collection URL, e.g. Nextcloud's
        /// `https://cloud.example/remote.php/dav/files/<user>/lnd-backup`.
        url: String,
        user: String,
        password_file: PathBuf,
    },
    Openbao {
        name: String,
        #[serde(default)]
        encrypt: bool,
        address: String,
        #[serde(default)]
        ca_file: Option<PathBuf>,
        auth: BaoAuth,
        /// The KV mount, e.g. `secret`.
        mount: String,
        /// Secret path inside the mount; snapshots go to `<path>-snapshot`.
        path: String,
        /// 2 (versioned, the default) or 1 (unversioned KV).
        #[serde(default = "default_kv_version")]
        kv_version: u8,
    },
    Pbs {
        name: String,
        #[serde(default)]
        encrypt: bool,
        /// `[[user@realm[!token]@]server[:port]:]datastore`.
        repository: String,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        fingerprint: Option<String>,
        password_file: PathBuf,
        backup_id: String,
        client_binary: PathBuf,
    },
}

fn default_kv_version() -> u8 {
    2
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum BaoAuth {
    Approle {
        #[serde(default = "default_approle_mount")]
        mount: String,
        role_id_file: PathBuf,
        secret_id_file: PathBuf,
    },
    Token {
        token_file: PathBuf,
    },
}

fn default_approle_mount() -> String {
    "approle".into()
}

impl TargetSpec {
    pub fn name(&self) -> &str {
        match self {
            TargetSpec::Directory { name, .. }
            | TargetSpec::S3 { name, .. }
            | TargetSpec::Webdav { name, .. }
            | TargetSpec::Openbao { name, .. }
            | TargetSpec::Pbs { name, .. } => name,
        }
    }

    pub fn encrypt(&self) -> bool {
        match self {
            TargetSpec::Directory { encrypt, .. }
            | TargetSpec::S3 { encrypt, .. }
            | TargetSpec::Webdav { encrypt, .. }
            | TargetSpec::Openbao { encrypt, .. }
            | TargetSpec::Pbs { encrypt, .. } => *encrypt,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Directory { .. } => "directory",
            TargetSpec::S3 { .. } => "s3",
            TargetSpec::Webdav { .. } => "webdav",
            TargetSpec::Openbao { .. } => "openbao",
            TargetSpec::Pbs { .. } => "pbs",
        }
    }
}

/// The name `restore --from` uses for the local versioned copies.
pub const LOCAL_TARGET: &str = "local";

impl Manifest {
    /// Reads, parses and validates; the error names every problem (see
    /// [`chainstead_common::manifest::load`]).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        manifest::load(path)
    }

    pub fn metrics_file(&self) -> Option<PathBuf> {
        let name = match &self.instance {
            Some(i) => format!("chainstead-backup-{i}.prom"),
            None => "chainstead-backup.prom".into(),
        };
        self.metrics_dir.as_ref().map(|d| d.join(name))
    }

    /// Offline checks; every message names the field and what to do.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.check()
    }
}

impl Validate for Manifest {
    fn validate(&self, p: &mut Problems) {
        if self.version != 1 {
            p.push(
                "version",
                format!(
                    "{} is not supported; this tool reads version 1",
                    self.version
                ),
            );
        }
        if p.absolute_path("channel_backup", &self.channel_backup)
            && self.channel_backup.file_name().is_none()
        {
            p.push(
                "channel_backup",
                "name LND's channel.backup file, not a directory",
            );
        }
        p.absolute_path("state_dir", &self.state_dir);
        if let Some(d) = &self.metrics_dir {
            p.absolute_path("metrics_dir", d);
        }
        if let Some(i) = &self.instance {
            p.plain_name("instance", i);
        }
        if self.reconcile_interval_secs == 0 {
            p.push("reconcile_interval_secs", "must be at least 1");
        }
        if let Some(l) = &self.lnd {
            validate_lnd(p, l);
        }
        if let Some(e) = &self.encryption {
            if e.recipients.is_empty() {
                p.push(
                    "encryption.recipients",
                    "give at least one age1... public key",
                );
            }
            for (i, r) in e.recipients.iter().enumerate() {
                if let Err(err) = r.parse::<age::x25519::Recipient>() {
                    p.push(
                        &format!("encryption.recipients[{i}]"),
                        format!("not an age X25519 recipient ({err})"),
                    );
                }
            }
            if let Some(id) = &e.identity_file {
                p.secret_file("encryption.identity_file", id);
            }
        }
        if self.retention.keep_last == 0 {
            p.push("retention.keep_last", "must be at least 1");
        }
        if let Some(s) = &self.snapshot {
            if s.interval_secs == 0 {
                p.push("snapshot.interval_secs", "must be at least 1");
            }
            for (i, f) in s.files.iter().enumerate() {
                let at = format!("snapshot.files[{i}]");
                if p.absolute_path(&at, f) && f.file_name().is_none() {
                    p.push(&at, "name a file");
                }
            }
        }
        if self.targets.is_empty() {
            p.push("targets", "configure at least one backup target");
        }
        let mut names = HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let field = format!("targets[{i}]");
            let at = format!("{field}.name");
            if p.plain_name(&at, t.name()) {
                if t.name() == LOCAL_TARGET {
                    p.push(
                        &at,
                        format!("\"{LOCAL_TARGET}\" is reserved for the local copies in state_dir"),
                    );
                } else if !names.insert(t.name().to_string()) {
                    p.push(&at, format!("\"{}\" is used twice", t.name()));
                }
            }
            if t.encrypt() && self.encryption.is_none() {
                p.push(
                    &format!("{field}.encrypt"),
                    "set encryption.recipients to encrypt this target",
                );
            }
            validate_target(p, &field, t);
        }
    }
}

fn validate_lnd(p: &mut Problems, l: &LndVerify) {
    // Plain http only to loopback, for LND's `no-rest-tls`.
    let Some(url) = p.http_url("lnd.rest_url", &l.rest_url, PlainHttp::Loopback) else {
        return;
    };
    match (url.scheme(), &l.tls_cert_file) {
        ("https", Some(cert)) => {
            p.secret_file("lnd.tls_cert_file", cert);
        }
        ("https", None) => p.push(
            "lnd.tls_cert_file",
            "give LND's tls.cert to trust its REST API",
        ),
        (_, None) => {}
        (_, Some(_)) => p.push(
            "lnd.rest_url",
            "use https with tls_cert_file (plain http only on loopback with LND's no-rest-tls)",
        ),
    }
    p.secret_file("lnd.macaroon_file", &l.macaroon_file);
}

fn validate_target(p: &mut Problems, field: &str, t: &TargetSpec) {
    let at = |f: &str| format!("{field}.{f}");
    match t {
        TargetSpec::Directory { path, .. } => {
            p.absolute_path(&at("path"), path);
        }
        TargetSpec::S3 {
            endpoint,
            bucket,
            region,
            access_key_id_file,
            secret_access_key_file,
            allow_http,
            ..
        } => {
            let http = if *allow_http {
                PlainHttp::Anywhere
            } else {
                PlainHttp::Loopback
            };
            p.http_url(&at("endpoint"), endpoint, http);
            if bucket.is_empty() {
                p.push(&at("bucket"), "name the bucket");
            }
            if region.is_empty() {
                p.push(
                    &at("region"),
                    "give the region the server signs for (Garage: \"garage\")",
                );
            }
            p.secret_file(&at("access_key_id_file"), access_key_id_file);
            p.secret_file(&at("secret_access_key_file"), secret_access_key_file);
        }
        TargetSpec::Webdav {
            url,
            user,
            password_file,
            ..
        } => {
            p.http_url(&at("url"), url, PlainHttp::Loopback);
            if user.is_empty() {
                p.push(&at("user"), "give the WebDAV user");
            }
            p.secret_file(&at("password_file"), password_file);
        }
        TargetSpec::Openbao {
            address,
            ca_file,
            auth,
            mount,
            path,
            kv_version,
            ..
        } => {
            // The token and the backup would cross the network in the clear.
            p.http_url(&at("address"), address, PlainHttp::Loopback);
            if let Some(ca) = ca_file {
                p.absolute_path(&at("ca_file"), ca);
            }
            match auth {
                BaoAuth::Approle {
                    role_id_file,
                    secret_id_file,
                    ..
                } => {
                    p.secret_file(&at("auth.approle.role_id_file"), role_id_file);
                    p.secret_file(&at("auth.approle.secret_id_file"), secret_id_file);
                }
                BaoAuth::Token { token_file } => {
                    p.secret_file(&at("auth.token.token_file"), token_file);
                }
            }
            if mount.is_empty() || path.is_empty() {
                p.push(&at("mount/path"), "name the KV mount and the secret path");
            }
            if *kv_version != 1 && *kv_version != 2 {
                p.push(&at("kv_version"), "must be 1 or 2");
            }
        }
        TargetSpec::Pbs {
            repository,
            password_file,
            backup_id,
            client_binary,
            ..
        } => {
            if repository.is_empty() {
                p.push(
                    &at("repository"),
                    "give [[user@realm@]server[:port]:]datastore",
                );
            }
            p.plain_name(&at("backup_id"), backup_id);
            p.secret_file(&at("password_file"), password_file);
            p.absolute_path(&at("client_binary"), client_binary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example() -> serde_json::Value {
        serde_json::json!({
            "version": 1,
            "channel_backup": "/var/lib/lnd/data/chain/bitcoin/mainnet/channel.backup",
            "state_dir": "/var/lib/chainstead/backup",
            "metrics_dir": "/var/lib/prometheus-node-exporter",
            "retention": {"keep_last": 50, "max_age_days": 90},
            "targets": [
                {"kind": "directory", "name": "usb", "path": "/mnt/usb/lnd"},
                {"kind": "s3", "name": "garage", "endpoint": "https://s3.example", "bucket": "b",
                 "region": "garage", "prefix": "node1",
                 "access_key_id_file": "/run/chainstead/secrets/backup/s3-key-id",
                 "secret_access_key_file": "/run/chainstead/secrets/backup/s3-secret"},
                {"kind": "pbs", "name": "pbs", "repository": "backup@pbs@pbs.lan:store",
                 "password_file": "/run/chainstead/secrets/backup/pbs-password",
                 "backup_id": "node1-lnd", "client_binary": "/run/current-system/sw/bin/proxmox-backup-client"}
            ]
        })
    }

    fn parse(v: serde_json::Value) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        m.validate().map_err(|e| e.to_string())?;
        Ok(m)
    }

    /// The fixture shared with the module and VM tests, and the example in
    /// docs/backup.md, are the same valid manifest. (Skipped when the crate
    /// is built outside the repository, as in a Nix package build.)
    #[test]
    fn shared_fixture_and_docs_example_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let fixture = root.join("checks/fixtures/backup/manifest.json");
        if !fixture.exists() {
            println!("{} not present: skipped", fixture.display());
            return;
        }
        let m = Manifest::load(&fixture).unwrap();
        assert_eq!(m.targets.len(), 5);
        // docs/ is not part of the package source; compare where it exists.
        let Ok(docs) = std::fs::read_to_string(root.join("docs/backup.md")) else {
            return;
        };
        let block = docs
            .split("```json\n")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let from_docs: serde_json::Value = serde_json::from_str(block).unwrap();
        let from_fixture: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
        assert_eq!(from_docs, from_fixture);
    }

    #[test]
    fn example_is_valid() {
        let m = parse(example()).unwrap();
        assert_eq!(m.targets.len(), 3);
        assert_eq!(m.targets[1].kind(), "s3");
        assert_eq!(m.reconcile_interval_secs, 60);
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let mut v = example();
        v["colour"] = "blue".into();
        assert!(parse(v).unwrap_err().contains("colour"));
        let mut v = example();
        v["targets"][0]["pathh"] = "/x".into();
        assert!(parse(v).unwrap_err().contains("pathh"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut v = example();
        v["version"] = 2.into();
        v["targets"][0]["path"] = "relative".into();
        v["targets"][1]["endpoint"] = "http://s3.example".into();
        v["targets"][1]["secret_access_key_file"] = "/nix/store/abc-secret".into();
        v["targets"][2]["name"] = "usb".into();
        v["encryption"] = serde_json::json!({"recipients": []});
        let e = parse(v).unwrap_err();
        for field in [
            "version",
            "encryption.recipients",
            "targets[0].path",
            "targets[1].endpoint",
            "targets[1].secret_access_key_file",
            "targets[2].name",
        ] {
            assert!(e.contains(&format!("  - {field}: ")), "{field}: {e}");
        }
        assert!(e.starts_with("invalid manifest, 6 problems:"), "{e}");
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        for (endpoint, allow, ok) in [
            ("http://127.0.0.1:3900", false, true),
            ("http://[::1]:3900", false, true),
            ("http://s3.lan:3900", false, false),
            ("http://s3.lan:3900", true, true),
        ] {
            let mut v = example();
            v["targets"][1]["endpoint"] = endpoint.into();
            v["targets"][1]["allow_http"] = allow.into();
            assert_eq!(parse(v).is_ok(), ok, "{endpoint} allow_http={allow}");
        }
        let mut v = example();
        v["lnd"] = serde_json::json!({"rest_url": "http://10.0.0.2:8080",
            "macaroon_file": "/run/chainstead/secrets/backup/readonly.macaroon"});
        assert!(parse(v).unwrap_err().contains("lnd.rest_url"));
        let mut v = example();
        v["lnd"] = serde_json::json!({"rest_url": "http://localhost:8080",
            "macaroon_file": "/run/chainstead/secrets/backup/readonly.macaroon"});
        parse(v).unwrap();
    }

    #[test]
    fn mistakes_name_the_field() {
        let mut v = example();
        v["targets"][1]["secret_access_key_file"] = "/nix/store/abc-secret".into();
        let e = parse(v).unwrap_err();
        assert!(e.contains("targets[1].secret_access_key_file"), "{e}");
        let mut v = example();
        v["targets"][0]["encrypt"] = true.into();
        assert!(parse(v).unwrap_err().contains("targets[0].encrypt"));
        let mut v = example();
        v["targets"][2]["name"] = "usb".into();
        assert!(parse(v).unwrap_err().contains("used twice"));
        let mut v = example();
        v["targets"][1]["endpoint"] = "http://s3.example".into();
        assert!(parse(v).unwrap_err().contains("targets[1].endpoint"));
        let mut v = example();
        v["targets"][1]["endpoint"] = "https://key:s3cr3t@s3.example".into();
        let err = parse(v).unwrap_err();
        assert!(
            err.contains("targets[1].endpoint: remove the user:password@"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        let mut v = example();
        let targets = v["targets"].as_array_mut().unwrap();
        targets.push(serde_json::json!({"kind": "webdav", "name": "dav",
            "url": "https://lnd:pw@dav.example/lnd", "user": "lnd",
            "password_file": "/run/credentials/chainstead-backup.service/dav"}));
        let dav = targets.len() - 1;
        assert!(parse(v)
            .unwrap_err()
            .contains(&format!("targets[{dav}].url: remove the user:password@")));
        let mut v = example();
        v["version"] = 2.into();
        assert!(parse(v).unwrap_err().contains("version"));
        let mut v = example();
        v["encryption"] = serde_json::json!({"recipients": ["age1nope"]});
        assert!(parse(v).unwrap_err().contains("encryption.recipients[0]"));
    }
}
