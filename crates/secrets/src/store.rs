//! `store`: put the content of a file into KV (LND's seed mnemonic, an
//! encrypted channel backup, a credential from a provider). The value comes
//! from a file, never from the command line, and an existing different
//! value is only replaced with `--overwrite`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use base64::Engine;
use zeroize::Zeroizing;

use chainstead_common::Secret;

use crate::bao::{self, Field, Read};
use crate::local;
use crate::manifest::{is_kv_path, is_plain_name, KvRef, Manifest};

const CAS_ATTEMPTS: usize = 5;

pub struct Request<'a> {
    pub mount: Option<&'a str>,
    pub path: &'a str,
    pub field: &'a str,
    pub from_file: &'a Path,
    pub base64: bool,
    pub overwrite: bool,
}

pub async fn run(manifest: &Manifest, req: &Request<'_>) -> Result<()> {
    let started = Instant::now();
    let r = KvRef {
        mount: req.mount.unwrap_or(manifest.default_mount()).to_owned(),
        path: req.path.to_owned(),
        field: req.field.to_owned(),
    };
    if !is_kv_path(&r.mount) || !is_kv_path(&r.path) || !is_plain_name(&r.field) {
        anyhow::bail!(
            "failed to store {r}: mount and path must be relative KV paths and the field a plain name ([A-Za-z0-9._-])"
        );
    }
    let value = read_value(req.from_file, req.base64)?;
    match &manifest.openbao {
        None => store_local(manifest, &r, &value, req.overwrite),
        Some(cfg) => {
            let mut client = bao::connect(cfg, started)?;
            client.login(&bao::auth(&cfg.auth)).await?;
            let result = store_openbao(&client, &r, value, req.overwrite).await;
            client.revoke().await;
            result
        }
    }
}

fn read_value(path: &Path, base64: bool) -> Result<Secret> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?,
    );
    let value = if base64 {
        Secret::new(base64::engine::general_purpose::STANDARD.encode(&*bytes))
    } else {
        Secret::from_file(path).with_context(|| "pass --base64 to store a binary file")?
    };
    if value.is_empty() {
        anyhow::bail!("failed to store {}: the file is empty", path.display());
    }
    Ok(value)
}

fn store_local(manifest: &Manifest, r: &KvRef, value: &Secret, overwrite: bool) -> Result<()> {
    local::prepare_state_dir(&manifest.state_dir)?;
    let path = local::value_path(&manifest.state_dir, r);
    if path.exists() {
        let current = Secret::from_file(&path)?;
        if current == *value {
            tracing::info!(
                "{r} already holds this value in {}; unchanged",
                path.display()
            );
            return Ok(());
        }
        if !overwrite {
            anyhow::bail!(
                "failed to store {r}: {} already holds a different value; pass --overwrite to replace it",
                path.display()
            );
        }
    }
    local::put(&manifest.state_dir, r, value.expose().as_bytes())?;
    tracing::info!("stored {r} in {}", path.display());
    Ok(())
}

async fn store_openbao(
    client: &bao::Client,
    r: &KvRef,
    value: Secret,
    overwrite: bool,
) -> Result<()> {
    let kv = client.mount_version(&r.mount).await?;
    for _ in 0..CAS_ATTEMPTS {
        let (mut fields, cas) = match client.kv_read(kv, &r.mount, &r.path).await? {
            Read::Found(d) => (d.fields, d.version.unwrap_or(0)),
            Read::Absent { version } => (BTreeMap::new(), version.unwrap_or(0)),
        };
        match fields.get(&r.field) {
            Some(Field::Str(current)) if *current == value => {
                tracing::info!("{r} already holds this value; unchanged");
                return Ok(());
            }
            Some(_) if !overwrite => anyhow::bail!(
                "failed to store {r}: the field already holds a different value; pass --overwrite to replace it{}",
                if kv == 2 { " (KV v2 keeps the previous version)" } else { "" }
            ),
            _ => {}
        }
        fields.insert(r.field.clone(), Field::Str(value.clone()));
        if kv == 2 {
            if client
                .kv2_write_cas(&r.mount, &r.path, &fields, cas)
                .await?
            {
                tracing::info!(
                    "stored {r} in OpenBao at {} (KV v2, check-and-set {cas})",
                    client.address()
                );
                return Ok(());
            }
            tracing::info!(
                "another writer changed {}/{} first; reading it again",
                r.mount,
                r.path
            );
        } else {
            // KV v1 has no check-and-set: the read-merge-write keeps the
            // other fields but is not safe against a concurrent writer.
            client.kv1_write(&r.mount, &r.path, &fields).await?;
            tracing::info!("stored {r} in OpenBao at {} (KV v1)", client.address());
            return Ok(());
        }
    }
    anyhow::bail!("failed to store {r}: lost {CAS_ATTEMPTS} check-and-set races in a row")
}
