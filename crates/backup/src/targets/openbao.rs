//! OpenBao (or Vault) KV: version 2 keeps every write as a numbered version,
//! encrypted at rest (`<mount>/data/<path>`); version 1 is a plain key, for
//! servers without v2. The client is `vaultrs`; login is AppRole (the
//! secrets loader's role) or a token file, fresh for every push so an
//! expired token never blocks a backup.
//!
//! The secret's data: `{"name": <version name>, "content": <base64>}`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use chainstead_common::Secret;
use serde::{Deserialize, Serialize};
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};

use crate::manifest::{BaoAuth, TargetSpec};
use crate::version::{Artifact, Kind};

pub struct BaoTarget {
    /// Logged-in client, reused until an error drops the whole target
    /// (the pusher rebuilds targets after a failed attempt).
    cached: tokio::sync::Mutex<Option<Arc<VaultClient>>>,
    http: reqwest::Client,
    address: String,
    ca_file: Option<PathBuf>,
    auth: BaoAuth,
    mount: String,
    path: String,
    kv_version: u8,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    content: String,
}

impl BaoTarget {
    pub fn from_spec(spec: &TargetSpec) -> Result<Self> {
        let TargetSpec::Openbao {
            address,
            ca_file,
            auth,
            mount,
            path,
            kv_version,
            ..
        } = spec
        else {
            bail!(
                "failed to build an OpenBao target from a {} spec",
                spec.kind()
            );
        };
        // vaultrs' address setter panics on a bad URL: check it first.
        reqwest::Url::parse(address)
            .with_context(|| format!("failed to parse OpenBao address {address}"))?;
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = ca_file {
            let pem =
                std::fs::read(ca).with_context(|| format!("failed to read {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("failed to parse {}", ca.display()))?;
            http = http.add_root_certificate(cert);
        }
        Ok(Self {
            cached: tokio::sync::Mutex::new(None),
            http: http
                .build()
                .context("failed to build the OpenBao HTTP client")?,
            address: address.clone(),
            ca_file: ca_file.clone(),
            auth: auth.clone(),
            mount: mount.clone(),
            path: path.trim_matches('/').to_string(),
            kv_version: *kv_version,
        })
    }

    fn path_for(&self, kind: Kind) -> String {
        match kind {
            Kind::Channel => self.path.clone(),
            Kind::Snapshot => format!("{}-snapshot", self.path),
        }
    }

    async fn client(&self) -> Result<Arc<VaultClient>> {
        let mut g = self.cached.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.login().await?);
        *g = Some(c.clone());
        Ok(c)
    }

    async fn login(&self) -> Result<VaultClient> {
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(&self.address)
            .timeout(Some(Duration::from_secs(30)))
            .verify(true)
            .token("");
        settings.ca_certs(
            self.ca_file
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        );
        let mut client = VaultClient::new(
            settings
                .build()
                .map_err(|e| anyhow!("failed to configure the OpenBao client: {e}"))?,
        )
        .with_context(|| format!("failed to set up the OpenBao client for {}", self.address))?;
        let token = match &self.auth {
            BaoAuth::Token { token_file } => Secret::from_file(token_file)?,
            BaoAuth::Approle {
                mount,
                role_id_file,
                secret_id_file,
            } => {
                let role = Secret::from_file(role_id_file)?;
                let sid = Secret::from_file(secret_id_file)?;
                let auth =
                    vaultrs::auth::approle::login(&client, mount, role.expose(), sid.expose())
                        .await
                        .with_context(|| {
                            format!(
                                "failed to log in to OpenBao at {} with AppRole",
                                self.address
                            )
                        })?;
                Secret::new(auth.client_token)
            }
        };
        client.set_token(token.expose());
        Ok(client)
    }

    pub async fn put(&self, a: &Artifact<'_>) -> Result<()> {
        let client = self.client().await?;
        let path = self.path_for(a.kind);
        // Never let an older version become the current one, and never
        // report a write that did not happen as done.
        let cur = self.read_current(&client, a.kind).await?;
        if !super::should_move_latest(cur.as_ref().map(|c| c.name.as_str()), &a.name)? {
            return Ok(()); // the current version is this one already
        }
        let content = base64::engine::general_purpose::STANDARD.encode(a.data);
        let what = format!("{}/{} on {}", self.mount, path, self.address);
        match self.kv_version {
            1 => {
                let entry = Entry {
                    name: a.name.clone(),
                    content,
                };
                self.kv1_write(&client, &path, &entry)
                    .await
                    .with_context(|| format!("failed to write {what}"))?;
            }
            _ => {
                let entry = Entry {
                    name: a.name.clone(),
                    content,
                };
                vaultrs::kv2::set(client.as_ref(), &self.mount, &path, &entry)
                    .await
                    .with_context(|| format!("failed to write {what}"))?;
            }
        }
        Ok(())
    }

    async fn read_current(&self, client: &VaultClient, kind: Kind) -> Result<Option<Entry>> {
        let path = self.path_for(kind);
        if self.kv_version == 1 {
            return self.kv1_read(client, &path).await;
        }
        let res: Result<Entry, _> = vaultrs::kv2::read(client, &self.mount, &path).await;
        match res {
            Ok(e) => Ok(Some(e)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| {
                format!("failed to read {}/{} on {}", self.mount, path, self.address)
            }),
        }
    }

    /// KV v1 is a plain `GET`/`POST /v1/<mount>/<path>` (Vault/OpenBao
    /// "KV secrets engine - version 1 (API)"). It is done here with the
    /// HTTP client directly, reading only `data`, so servers whose envelope
    /// lacks fields vaultrs requires (RustyVault omits `request_id`) work.
    fn kv1_url(&self, path: &str) -> String {
        format!(
            "{}/v1/{}/{}",
            self.address.trim_end_matches('/'),
            self.mount.trim_matches('/'),
            path
        )
    }

    async fn kv1_write(&self, client: &VaultClient, path: &str, e: &Entry) -> Result<()> {
        let resp = self
            .http
            .post(self.kv1_url(path))
            .header("X-Vault-Token", client.settings.token.as_str())
            .json(e)
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("{status}: {}", resp.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn kv1_read(&self, client: &VaultClient, path: &str) -> Result<Option<Entry>> {
        let what = || format!("failed to read {}/{path} on {}", self.mount, self.address);
        let resp = self
            .http
            .get(self.kv1_url(path))
            .header("X-Vault-Token", client.settings.token.as_str())
            .send()
            .await
            .with_context(what)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            bail!(
                "{}: {status}: {}",
                what(),
                resp.text().await.unwrap_or_default()
            );
        }
        #[derive(Deserialize)]
        struct Envelope {
            data: Entry,
        }
        let env: Envelope = resp.json().await.with_context(what)?;
        Ok(Some(env.data))
    }

    pub async fn latest(&self, kind: Kind) -> Result<Option<String>> {
        let client = self.client().await?;
        Ok(self.read_current(&client, kind).await?.map(|e| e.name))
    }

    pub async fn list(&self, kind: Kind) -> Result<Vec<String>> {
        Ok(self.latest(kind).await?.into_iter().collect())
    }

    /// The current version, or (KV v2) an older one found by walking back
    /// through the secret's version history.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let client = self.client().await?;
        let path = self.path_for(kind);
        let decode = |e: Entry| {
            base64::engine::general_purpose::STANDARD
                .decode(e.content)
                .with_context(|| {
                    format!(
                        "failed to decode {}/{path}: content is not base64",
                        self.mount
                    )
                })
        };
        if let Some(cur) = self.read_current(&client, kind).await? {
            if cur.name == name {
                return decode(cur);
            }
        }
        if self.kv_version == 2 {
            let meta = vaultrs::kv2::read_metadata(client.as_ref(), &self.mount, &path)
                .await
                .with_context(|| format!("failed to read the history of {}/{path}", self.mount))?;
            let oldest = meta.oldest_version.max(1);
            for v in (oldest..meta.current_version).rev() {
                if let Ok(e) =
                    vaultrs::kv2::read_version::<Entry>(client.as_ref(), &self.mount, &path, v)
                        .await
                {
                    if e.name == name {
                        return decode(e);
                    }
                }
            }
        }
        bail!(
            "failed to find {name} in {}/{path} on {}",
            self.mount,
            self.address
        )
    }
}

/// OpenBao answers a missing secret with 404 and `{"errors":[]}`; vaultrs
/// reports that as `APIError`, or as a bare response error when the body
/// is empty (some Vault-API servers send none).
fn is_not_found(e: &vaultrs::error::ClientError) -> bool {
    matches!(e, vaultrs::error::ClientError::APIError { code: 404, .. })
        || format!("{e:?}").contains("ServerResponseError { code: 404")
}
