//! OpenBao (or Vault) KV: version 2 keeps every write as a numbered version,
//! encrypted at rest (`<mount>/data/<path>`); version 1 is a plain key, for
//! servers without v2. The client is the shared `chainstead-openbao` crate
//! (the secret loader's too; why not vaultrs is written there); login is
//! AppRole (the secrets loader's role) or a token file, fresh for every push
//! so an expired token never blocks a backup. Requests are not retried here:
//! the pusher retries a failed target on its own backoff.
//!
//! The secret's data: `{"name": <version name>, "content": <base64>}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use chainstead_common::Secret;
use chainstead_openbao::{Auth, Client, Config, Field, Read, Retry};

use crate::manifest::{BaoAuth, TargetSpec};
use crate::version::{Artifact, Kind};

pub struct BaoTarget {
    /// Logged-in client, reused until an error drops the whole target
    /// (the pusher rebuilds targets after a failed attempt).
    cached: tokio::sync::Mutex<Option<Arc<Client>>>,
    config: Config,
    address: String,
    auth: Auth,
    mount: String,
    path: String,
    kv_version: u8,
}

struct Entry {
    name: String,
    content: String,
}

impl Entry {
    fn fields(&self) -> BTreeMap<String, Field> {
        BTreeMap::from([
            (
                "name".to_owned(),
                Field::Str(Secret::new(self.name.clone())),
            ),
            (
                "content".to_owned(),
                Field::Str(Secret::new(self.content.clone())),
            ),
        ])
    }
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
        let config = Config {
            address: address.clone(),
            ca_file: ca_file.clone(),
            tls_server_name: None,
            request_timeout: Duration::from_secs(30),
            retry: Retry::Never,
            user_agent: concat!("chainstead-backup/", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        // Checks the address and the CA file now, not at the first push.
        Client::new(&config)?;
        Ok(Self {
            cached: tokio::sync::Mutex::new(None),
            config,
            address: address.clone(),
            auth: match auth {
                BaoAuth::Token { token_file } => Auth::TokenFile(token_file.clone()),
                BaoAuth::Approle {
                    mount,
                    role_id_file,
                    secret_id_file,
                } => Auth::AppRole {
                    mount: mount.clone(),
                    role_id_file: role_id_file.clone(),
                    secret_id_file: secret_id_file.clone(),
                },
            },
            mount: mount.trim_matches('/').to_string(),
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

    async fn client(&self) -> Result<Arc<Client>> {
        let mut g = self.cached.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let mut c = Client::new(&self.config)?;
        c.login(&self.auth).await?;
        let c = Arc::new(c);
        *g = Some(c.clone());
        Ok(c)
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
        let entry = Entry {
            name: a.name.clone(),
            content: base64::engine::general_purpose::STANDARD.encode(a.data),
        };
        let what = format!("{}/{} on {}", self.mount, path, self.address);
        match self.kv_version {
            1 => client.kv1_write(&self.mount, &path, &entry.fields()).await,
            _ => client.kv2_write(&self.mount, &path, &entry.fields()).await,
        }
        .with_context(|| format!("failed to write {what}"))
    }

    async fn read_current(&self, client: &Client, kind: Kind) -> Result<Option<Entry>> {
        let path = self.path_for(kind);
        let read = client
            .kv_read(self.kv_version, &self.mount, &path)
            .await
            .with_context(|| {
                format!("failed to read {}/{} on {}", self.mount, path, self.address)
            })?;
        self.entry(read, &path)
    }

    /// The entry in a read, or None when there is none.
    fn entry(&self, read: Read, path: &str) -> Result<Option<Entry>> {
        let Read::Found(mut d) = read else {
            return Ok(None);
        };
        let mut take = |field: &str| {
            match d.fields.remove(field) {
            Some(Field::Str(s)) => Ok(s.expose().to_owned()),
            Some(Field::Other(_)) => bail!(
                "failed to read {}/{path} on {}: field {field} is not a string",
                self.mount,
                self.address
            ),
            None => bail!(
                "failed to read {}/{path} on {}: it has no field {field}; it was not written by chainstead-backup",
                self.mount,
                self.address
            ),
        }
        };
        Ok(Some(Entry {
            name: take("name")?,
            content: take("content")?,
        }))
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
            let meta = client
                .kv2_metadata(&self.mount, &path)
                .await
                .with_context(|| format!("failed to read the history of {}/{path}", self.mount))?;
            if let Some(meta) = meta {
                let oldest = meta.oldest_version.max(1);
                for v in (oldest..meta.current_version).rev() {
                    // A destroyed or unreadable version is skipped, not fatal.
                    if let Ok(read) = client.kv2_read_version(&self.mount, &path, v).await {
                        if let Ok(Some(e)) = self.entry(read, &path) {
                            if e.name == name {
                                return decode(e);
                            }
                        }
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
