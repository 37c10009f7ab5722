//! Reading LND's `channel.backup` and deciding whether it may be pushed.
//!
//! LND replaces the file by rename: `chanbackup/backupfile.go`
//! (`MultiFile.UpdateAndSwap`) writes `temp-dont-use.backup` in the same
//! directory, fsyncs it and renames it over `channel.backup`. A reader that
//! opened the old inode keeps reading the old, complete file; so a read is
//! stable when the opened inode is still the one at the path afterwards and
//! its size did not change meanwhile.
//!
//! The smallest valid file is an empty multi backup: `chanbackup/multi.go`
//! `NilMultiSizePacked = 24 + 16 + 1 + 4` (the XChaCha20 nonce of
//! `chanbackup/crypto.go`, the Poly1305 tag, a version byte, a zero count).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::manifest::LndVerify;

/// `NilMultiSizePacked` in LND's `chanbackup/multi.go`.
pub const MIN_SIZE: usize = 45;
/// Far above any real multi backup (a few hundred bytes per channel).
pub const MAX_SIZE: usize = 64 * 1024 * 1024;

/// Why a read did not produce a pushable file.
#[derive(Debug)]
pub enum ReadOutcome {
    Good(Vec<u8>),
    /// The file is there but must not be pushed.
    Rejected(String),
    /// No file yet (LND not started once).
    Missing,
}

/// Reads the file until a stable read succeeds (a rename during the read
/// makes it start over, up to a few times) and checks its size.
pub fn read_stable(path: &Path) -> Result<ReadOutcome> {
    for _ in 0..20 {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ReadOutcome::Missing),
            Err(e) => return Err(e).with_context(|| format!("failed to open {}", path.display())),
        };
        let before = f
            .metadata()
            .with_context(|| format!("failed to stat {}", path.display()))?;
        if !before.is_file() {
            return Ok(ReadOutcome::Rejected(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let mut buf = Vec::with_capacity(before.len() as usize);
        f.by_ref()
            .take(MAX_SIZE as u64 + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let after = f
            .metadata()
            .with_context(|| format!("failed to stat {}", path.display()))?;
        let at_path = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("failed to stat {}", path.display())),
        };
        let stable = before.len() == after.len()
            && before.mtime_nsec() == after.mtime_nsec()
            && before.mtime() == after.mtime()
            && buf.len() as u64 == after.len()
            && at_path.ino() == after.ino()
            && at_path.dev() == after.dev();
        if !stable {
            // Replaced or still being written in place: read again.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        return Ok(check_size(buf));
    }
    Ok(ReadOutcome::Rejected(format!(
        "{} kept changing while being read",
        path.display()
    )))
}

fn check_size(buf: Vec<u8>) -> ReadOutcome {
    if buf.len() < MIN_SIZE {
        ReadOutcome::Rejected(format!(
            "channel.backup is {} bytes; even an empty LND multi backup is {MIN_SIZE} bytes \
             (truncated or not written by LND)",
            buf.len()
        ))
    } else if buf.len() > MAX_SIZE {
        ReadOutcome::Rejected(format!(
            "channel.backup is larger than {MAX_SIZE} bytes, which no LND writes"
        ))
    } else {
        ReadOutcome::Good(buf)
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The outcome of asking LND.
#[derive(Debug, PartialEq, Eq)]
pub enum LndVerdict {
    Accepted,
    Rejected(String),
    /// LND could not answer (down, starting, locked): push anyway, as the
    /// newest file is more valuable off the host than held back.
    Unverifiable(String),
    /// LND refused the macaroon (a wrong or rotated file): pushed anyway,
    /// like `Unverifiable`, but counted, as it will not fix itself.
    Unauthorized(String),
}

/// `POST /v1/channels/backup/verify` with a `lnrpcChanBackupSnapshot` body:
/// `{"multi_chan_backup": {"multi_chan_backup": <base64 bytes>}}`
/// (lnd `lnrpc/lightning.swagger.json`, `Lightning_VerifyChanBackup`;
/// bytes fields are base64 in the REST gateway). The macaroon goes in the
/// `Grpc-Metadata-macaroon` header, hex encoded, as LND's REST docs show.
pub async fn lnd_verify(cfg: &LndVerify, data: &[u8]) -> LndVerdict {
    match lnd_verify_inner(cfg, data).await {
        Ok(v) => v,
        Err(e) => LndVerdict::Unverifiable(format!("{e:#}")),
    }
}

async fn lnd_verify_inner(cfg: &LndVerify, data: &[u8]) -> Result<LndVerdict> {
    let macaroon = std::fs::read(&cfg.macaroon_file)
        .with_context(|| format!("failed to read {}", cfg.macaroon_file.display()))?;
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(path) = &cfg.tls_cert_file {
        let pem =
            std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("failed to parse {}", path.display()))?;
        // LND's self-signed certificate is the only root trusted here.
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert);
    }
    let client = builder
        .build()
        .context("failed to build the LND REST client")?;
    let url = format!(
        "{}/v1/channels/backup/verify",
        cfg.rest_url.trim_end_matches('/')
    );
    let body = serde_json::json!({
        "multi_chan_backup": {
            "multi_chan_backup": base64::engine::general_purpose::STANDARD.encode(data)
        }
    });
    let resp = client
        .post(&url)
        .header("Grpc-Metadata-macaroon", hex::encode(macaroon))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("failed to reach LND at {url}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(LndVerdict::Accepted);
    }
    // Errors are an `rpcStatus`: {"code": n, "message": "...", "details": []}.
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or(text);
    let lower = message.to_lowercase();
    // A macaroon LND does not accept: HTTP 401/403, or gRPC errors about
    // the macaroon, which the REST gateway may send with another status
    // (a macaroon signed by another root key fails with "verification
    // failed: signature mismatch").
    let auth = ["macaroon", "permission denied", "signature mismatch"];
    if status == reqwest::StatusCode::UNAUTHORIZED
        || status == reqwest::StatusCode::FORBIDDEN
        || auth.iter().any(|n| lower.contains(n))
    {
        return Ok(LndVerdict::Unauthorized(format!(
            "LND refused the macaroon {} ({status}): {message}",
            cfg.macaroon_file.display()
        )));
    }
    let not_ready = [
        "waiting to start",
        "not yet ready",
        "wallet locked",
        "unlock",
    ];
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        || not_ready.iter().any(|n| lower.contains(n))
    {
        return Ok(LndVerdict::Unverifiable(format!(
            "LND answered {status}: {message}"
        )));
    }
    Ok(LndVerdict::Rejected(format!(
        "LND refused the backup ({status}): {message}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("channel.backup");
        assert!(matches!(read_stable(&p).unwrap(), ReadOutcome::Missing));
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(read_stable(&p).unwrap(), ReadOutcome::Rejected(_)));
        std::fs::write(&p, [7u8; 44]).unwrap();
        match read_stable(&p).unwrap() {
            ReadOutcome::Rejected(r) => assert!(r.contains("44 bytes"), "{r}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, [7u8; 45]).unwrap();
        assert!(matches!(read_stable(&p).unwrap(), ReadOutcome::Good(b) if b.len() == 45));
    }
}
