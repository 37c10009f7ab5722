//! Local mode: without OpenBao, each value lives in
//! `<state_dir>/<mount>/<path>/<field>` (root-only: directories 0700, files
//! 0400), generated once and reused on every later boot. The layout mirrors
//! the KV reference, so two services naming the same value share it, and a
//! value the operator places there by hand is used as is.

use std::fs::DirBuilder;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use chainstead_common::fs::sync_dir;
use chainstead_common::Secret;

use crate::manifest::{Generate, KvRef};
use crate::transform;

pub fn value_path(state_dir: &Path, r: &KvRef) -> PathBuf {
    state_dir.join(&r.mount).join(&r.path).join(&r.field)
}

/// Creates the state directory root-only, tightening it if it is looser.
pub fn prepare_state_dir(state_dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .with_context(|| format!("failed to create state directory {}", state_dir.display()))?;
    let meta = std::fs::metadata(state_dir)
        .with_context(|| format!("failed to inspect state directory {}", state_dir.display()))?;
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(
            "state directory {} had mode {:o}; setting 0700",
            state_dir.display(),
            meta.mode() & 0o777
        );
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("failed to set mode 0700 on {}", state_dir.display()))?;
    }
    Ok(())
}

/// Whether the value exists locally (for `check`).
pub fn present(state_dir: &Path, r: &KvRef) -> bool {
    value_path(state_dir, r).is_file()
}

/// Reads the value, generating and storing it first when it is absent and
/// `generate` allows it.
pub fn get_or_generate(state_dir: &Path, r: &KvRef, generate: Option<&Generate>) -> Result<Secret> {
    let path = value_path(state_dir, r);
    if path.exists() {
        return Secret::from_file(&path);
    }
    let Some(spec) = generate else {
        anyhow::bail!(
            "failed to find {r} in local mode: {} does not exist and generate is off for it; \
             put the value there (root-only, mode 0400) with `chainstead-secrets store`, or configure OpenBao",
            path.display()
        );
    };
    let value = transform::generate(spec);
    match write_once(&path, value.expose().as_bytes()) {
        Ok(true) => {
            tracing::info!("generated {r} into {}", path.display());
            Ok(value)
        }
        // Another run (a parallel per-service loader) created it first: use
        // what it stored, so every consumer gets the same value.
        Ok(false) => Secret::from_file(&path),
        Err(e) => Err(e),
    }
}

/// Replaces (or creates) the value, for `store` in local mode.
pub fn put(state_dir: &Path, r: &KvRef, value: &[u8]) -> Result<()> {
    let path = value_path(state_dir, r);
    let dir = parent(&path)?;
    make_dirs(dir)?;
    chainstead_common::fs::write_atomic(&path, value, 0o400)
}

/// Creates `path` with `content` unless it exists, atomically: the content
/// is written and fsynced under a temporary name, then hard-linked into
/// place (`link(2)` refuses an existing target). Returns false when the
/// file already existed.
fn write_once(path: &Path, content: &[u8]) -> Result<bool> {
    let dir = parent(path)?;
    make_dirs(dir)?;
    let tmp = dir.join(format!(".tmp-{}", hex::encode(rand::random::<[u8; 6]>())));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&tmp)
            .with_context(|| format!("failed to create {}", tmp.display()))?;
        f.write_all(content)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("failed to link {} into place", path.display()))
            }
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    sync_dir(dir)?;
    result
}

fn make_dirs(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create directory {}", dir.display()))
}

fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .with_context(|| format!("failed to find the directory of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Alphabet;

    fn r(field: &str) -> KvRef {
        KvRef {
            mount: "secret".into(),
            path: "chainstead/bitcoind".into(),
            field: field.into(),
        }
    }

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        prepare_state_dir(&state).unwrap();
        let g = Generate {
            length: 24,
            alphabet: Alphabet::Hex,
        };
        let a = get_or_generate(&state, &r("pw"), Some(&g)).unwrap();
        let b = get_or_generate(&state, &r("pw"), Some(&g)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.expose().len(), 24);
        let p = value_path(&state, &r("pw"));
        assert_eq!(p, state.join("secret/chainstead/bitcoind/pw"));
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o400);
        assert_eq!(
            std::fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
        // No temporary file is left.
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn without_generate_a_missing_value_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = get_or_generate(dir.path(), &r("pw"), None).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("secret/chainstead/bitcoind/pw"), "{text}");
        put(dir.path(), &r("pw"), b"placed").unwrap();
        assert_eq!(
            get_or_generate(dir.path(), &r("pw"), None)
                .unwrap()
                .expose(),
            "placed"
        );
    }

    #[test]
    fn loose_state_dir_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_state_dir(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(dir.path()).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn racing_writers_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/v");
        assert!(write_once(&p, b"first").unwrap());
        assert!(!write_once(&p, b"second").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
    }
}
