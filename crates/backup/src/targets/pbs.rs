//! Proxmox Backup Server through `proxmox-backup-client backup`.
//!
//! Facts from the PBS docs ("Backup Client Usage", "Command Syntax"):
//! the backup spec is `<archive-name>.<type>:<source-path>`, where the
//! archive name may hold only alphanumerics, hyphens and underscores and
//! `img` is the type for a single file image; `--repository`, `--ns`,
//! `--backup-id` and `--backup-type` select where it goes; the password may
//! come from `PBS_PASSWORD_FD` (a file descriptor to read it from) and the
//! server certificate fingerprint from `PBS_FINGERPRINT`.
//!
//! The password never appears in argv nor in the child's environment: the
//! child gets a cleared environment and reads the password from fd 0, a
//! pipe this process writes it into.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chainstead_common::Secret;
use tokio::io::AsyncWriteExt;

use crate::manifest::TargetSpec;
use crate::version::{Artifact, Kind};

pub const NO_READ: &str = "reading back from Proxmox Backup Server is not built in; \
     use `proxmox-backup-client restore` (see docs/backup.md)";

pub struct PbsTarget {
    repository: String,
    namespace: Option<String>,
    fingerprint: Option<String>,
    password_file: PathBuf,
    backup_id: String,
    client: PathBuf,
    scratch: PathBuf,
}

/// Environment variables passed through to the client (the rest is cleared).
const PASS_ENV: &[&str] = &["PATH", "HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "LANG"];

impl PbsTarget {
    pub fn from_spec(spec: &TargetSpec, scratch: &Path) -> Result<Self> {
        let TargetSpec::Pbs {
            repository,
            namespace,
            fingerprint,
            password_file,
            backup_id,
            client_binary,
            ..
        } = spec
        else {
            bail!("failed to build a PBS target from a {} spec", spec.kind());
        };
        Ok(Self {
            repository: repository.clone(),
            namespace: namespace.clone(),
            fingerprint: fingerprint.clone(),
            password_file: password_file.clone(),
            backup_id: backup_id.clone(),
            client: client_binary.clone(),
            scratch: scratch.to_path_buf(),
        })
    }

    pub fn archive(kind: Kind) -> &'static str {
        match kind {
            Kind::Channel => "channel_backup.img",
            Kind::Snapshot => "config_snapshot.img",
        }
    }

    /// The backup group's id: channel backups and config snapshots go to
    /// separate groups (`<backup_id>` and `<backup_id>-config`), so a PBS
    /// prune `keep-last` counts each on its own and "the newest snapshot"
    /// of the channel group is always a channel backup.
    pub fn backup_id(&self, kind: Kind) -> String {
        match kind {
            Kind::Channel => self.backup_id.clone(),
            Kind::Snapshot => format!("{}-config", self.backup_id),
        }
    }

    /// The argv (without the program) for one upload of `file`.
    pub fn args(&self, kind: Kind, file: &Path) -> Vec<String> {
        let mut a = vec![
            "backup".to_string(),
            format!("{}:{}", Self::archive(kind), file.display()),
            "--repository".into(),
            self.repository.clone(),
            "--backup-type".into(),
            "host".into(),
            "--backup-id".into(),
            self.backup_id(kind),
        ];
        if let Some(ns) = &self.namespace {
            a.push("--ns".into());
            a.push(ns.clone());
        }
        a
    }

    pub async fn put(&self, a: &Artifact<'_>) -> Result<()> {
        let password = Secret::from_file(&self.password_file)?;
        std::fs::create_dir_all(&self.scratch)
            .with_context(|| format!("failed to create {}", self.scratch.display()))?;
        // The client reads a file; it holds only LND's ciphertext (or age's).
        let tmp = tempfile::Builder::new()
            .prefix(".pbs-")
            .tempfile_in(&self.scratch)
            .with_context(|| format!("failed to create a file in {}", self.scratch.display()))?;
        std::fs::write(tmp.path(), a.data)
            .with_context(|| format!("failed to write {}", tmp.path().display()))?;
        let mut cmd = tokio::process::Command::new(&self.client);
        cmd.args(self.args(a.kind, tmp.path()))
            .env_clear()
            .env("PBS_PASSWORD_FD", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in PASS_ENV {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        if let Some(fp) = &self.fingerprint {
            cmd.env("PBS_FINGERPRINT", fp);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("failed to start {}", self.client.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A client that exits early closes the pipe; its exit status says why.
            let _ = stdin.write_all(password.expose().as_bytes()).await;
            drop(stdin);
        }
        let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
            .await
            .with_context(|| format!("failed to finish {} within 300 s", self.client.display()))?
            .with_context(|| format!("failed to run {}", self.client.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: String = err.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            bail!(
                "failed to back up to PBS {} ({}): {tail}",
                self.repository,
                out.status
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_backups_and_snapshots_use_separate_groups() {
        let spec: TargetSpec = serde_json::from_value(serde_json::json!({
            "kind": "pbs", "name": "pbs", "repository": "backup@pbs@pbs.lan:store1",
            "password_file": "/run/chainstead/secrets/backup/pbs", "backup_id": "node1-lnd",
            "client_binary": "/run/current-system/sw/bin/proxmox-backup-client",
        }))
        .unwrap();
        let t = PbsTarget::from_spec(&spec, Path::new("/tmp")).unwrap();
        let id = |k| {
            let a = t.args(k, Path::new("/tmp/x"));
            let i = a.iter().position(|x| x == "--backup-id").unwrap();
            a[i + 1].clone()
        };
        assert_eq!(id(Kind::Channel), "node1-lnd");
        assert_eq!(id(Kind::Snapshot), "node1-lnd-config");
    }
}
