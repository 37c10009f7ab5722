//! Snapshots of a declared set of small files, packed as a NAR (the Nix
//! archive format: deterministic, no timestamps or owners, only contents
//! and the executable bit), so equal sets give equal bytes and are named
//! by the same hash. A restore is `nix-store --restore <dir> < file.nar`
//! or this tool's own `restore --snapshot`.
//!
//! Inside the NAR, a file keeps its absolute path below the root:
//! `/etc/lnd/lnd.conf` becomes `etc/lnd/lnd.conf`.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

pub struct Built {
    pub nar: Vec<u8>,
    pub sha256_hex: String,
    pub nix32: String,
    /// Declared files that did not exist.
    pub missing: Vec<PathBuf>,
}

/// Copies the files into a staging tree under `scratch` and packs it.
pub fn build(files: &[PathBuf], scratch: &Path) -> Result<Built> {
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("failed to create {}", scratch.display()))?;
    let stage = tempfile::Builder::new()
        .prefix(".snapshot-")
        .tempdir_in(scratch)
        .with_context(|| {
            format!(
                "failed to create a staging directory in {}",
                scratch.display()
            )
        })?;
    let root = stage.path().join("root");
    std::fs::create_dir(&root).with_context(|| format!("failed to create {}", root.display()))?;
    let mut missing = Vec::new();
    for f in files {
        let rel: PathBuf = f
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let dst = root.join(&rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        match std::fs::read(f) {
            Ok(bytes) => {
                std::fs::write(&dst, bytes)
                    .with_context(|| format!("failed to write {}", dst.display()))?;
                // The NAR keeps one bit of the mode, "executable"; the
                // staged copy must carry it (a hook script stays runnable).
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(f)
                    .with_context(|| format!("failed to stat {}", f.display()))?
                    .permissions()
                    .mode();
                let staged = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(staged))
                    .with_context(|| format!("failed to set the mode of {}", dst.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(f.clone()),
            Err(e) => return Err(e).with_context(|| format!("failed to read {}", f.display())),
        }
    }
    let mut enc = nix_nar::Encoder::new(&root)
        .with_context(|| format!("failed to start a NAR of {}", root.display()))?;
    let mut nar = Vec::new();
    enc.read_to_end(&mut nar)
        .with_context(|| format!("failed to pack {} as a NAR", root.display()))?;
    let digest = Sha256::digest(&nar);
    Ok(Built {
        sha256_hex: hex::encode(digest),
        nix32: nix_base32::to_nix_base32(&digest),
        nar,
        missing,
    })
}

/// Unpacks a NAR into `dst` (which must not exist yet).
pub fn unpack(nar: &[u8], dst: &Path) -> Result<()> {
    let dec = nix_nar::Decoder::new(nar).context("failed to read the NAR header")?;
    dec.unpack(dst)
        .with_context(|| format!("failed to unpack the NAR into {}", dst.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_deterministic() {
        let src = tempfile::tempdir().unwrap();
        let a = src.path().join("etc/lnd/lnd.conf");
        std::fs::create_dir_all(a.parent().unwrap()).unwrap();
        std::fs::write(&a, "alias=node\n").unwrap();
        let b = src.path().join("xpubs.txt");
        std::fs::write(&b, "xpub6...\n").unwrap();
        let gone = src.path().join("missing.conf");
        let scratch = tempfile::tempdir().unwrap();
        let files = vec![a.clone(), b.clone(), gone.clone()];
        let one = build(&files, scratch.path()).unwrap();
        let two = build(&files, scratch.path()).unwrap();
        assert_eq!(one.nar, two.nar);
        assert_eq!(one.nix32, two.nix32);
        assert_eq!(one.missing, vec![gone]);
        let out = scratch.path().join("out");
        unpack(&one.nar, &out).unwrap();
        let rel = |p: &Path| out.join(p.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read_to_string(rel(&a)).unwrap(), "alias=node\n");
        assert_eq!(std::fs::read_to_string(rel(&b)).unwrap(), "xpub6...\n");
        std::fs::write(&b, "changed\n").unwrap();
        let three = build(&files, scratch.path()).unwrap();
        assert_ne!(three.nix32, one.nix32);
    }

    #[test]
    fn executable_bit_survives() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let hook = src.path().join("hook.sh");
        std::fs::write(&hook, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).unwrap();
        let conf = src.path().join("plain.conf");
        std::fs::write(&conf, "x=1\n").unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let built = build(&[hook.clone(), conf.clone()], scratch.path()).unwrap();
        let out = scratch.path().join("out");
        unpack(&built.nar, &out).unwrap();
        let mode = |p: &Path| {
            std::fs::metadata(out.join(p.strip_prefix("/").unwrap()))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_ne!(mode(&hook) & 0o100, 0, "the executable bit was lost");
        assert_eq!(mode(&conf) & 0o111, 0);
    }
}
