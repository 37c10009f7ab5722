//! S3-compatible storage (Garage, MinIO, B2, Wasabi) and WebDAV (Nextcloud)
//! through the `object_store` crate: its S3 client signs requests (path
//! style, any region), its HTTP client speaks WebDAV (PUT, PROPFIND listing,
//! MKCOL for missing parent collections on 404/409, object_store 0.12
//! `http/client.rs`). A single PUT is atomic on both: readers see the old
//! object or the new one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use chainstead_common::Secret;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};

use super::LATEST;
use crate::manifest::TargetSpec;
use crate::version::{self, Artifact, Kind};

pub struct ObjectTarget {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    what: String,
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_timeout(Duration::from_secs(30))
        .with_connect_timeout(Duration::from_secs(5))
}

/// The pusher retries with its own backoff; the crate's retries stay short
/// so an error is reported within seconds.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

impl ObjectTarget {
    pub fn from_spec(spec: &TargetSpec) -> Result<Self> {
        match spec {
            TargetSpec::S3 {
                endpoint,
                bucket,
                region,
                prefix,
                access_key_id_file,
                secret_access_key_file,
                allow_http,
                ..
            } => {
                let id = Secret::from_file(access_key_id_file)?;
                let secret = Secret::from_file(secret_access_key_file)?;
                let store = object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(id.expose())
                    .with_secret_access_key(secret.expose())
                    .with_virtual_hosted_style_request(false)
                    .with_retry(retry())
                    // allow_http lives in the client options, which replace
                    // whatever the builder's own setter put there.
                    .with_client_options(
                        client_options()
                            .with_allow_http(*allow_http || endpoint.starts_with("http://")),
                    )
                    .build()
                    .with_context(|| format!("failed to set up the S3 client for {endpoint}"))?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix: prefix.trim_matches('/').to_string(),
                    what: format!("s3 {endpoint} bucket {bucket}"),
                })
            }
            TargetSpec::Webdav {
                url,
                user,
                password_file,
                ..
            } => {
                let pw = Secret::from_file(password_file)?;
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", pw.expose()));
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {token}"))
                    .context("failed to build the WebDAV authorization header")?;
                value.set_sensitive(true);
                let mut headers = reqwest::header::HeaderMap::new();
                headers.insert(reqwest::header::AUTHORIZATION, value);
                // The store is rooted at the server's origin and the URL's path
                // becomes the prefix: object_store creates missing collections
                // (MKCOL) only below its base URL, and a fresh target folder
                // (`.../lnd-backup`) usually does not exist yet.
                let parsed = reqwest::Url::parse(url)
                    .with_context(|| format!("failed to parse WebDAV url {url}"))?;
                let origin = parsed.origin().ascii_serialization();
                let prefix = parsed.path().trim_matches('/').to_string();
                let store = object_store::http::HttpBuilder::new()
                    .with_url(origin)
                    .with_retry(retry())
                    .with_client_options(
                        client_options()
                            .with_default_headers(headers)
                            .with_allow_http(url.starts_with("http://")),
                    )
                    .build()
                    .with_context(|| format!("failed to set up the WebDAV client for {url}"))?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix,
                    what: format!("webdav {url}"),
                })
            }
            _ => anyhow::bail!(
                "failed to build an object target from a {} spec",
                spec.kind()
            ),
        }
    }

    fn key(&self, kind: Kind, name: &str) -> ObjPath {
        let parts: Vec<&str> = [self.prefix.as_str(), kind.folder(), name]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        ObjPath::from(parts.join("/"))
    }

    fn folder(&self, kind: Kind) -> Option<ObjPath> {
        let parts: Vec<&str> = [self.prefix.as_str(), kind.folder()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        (!parts.is_empty()).then(|| ObjPath::from(parts.join("/")))
    }

    pub async fn put(&self, a: &Artifact<'_>) -> Result<()> {
        let key = self.key(a.kind, &a.name);
        self.store
            .put(&key, PutPayload::from(a.data.to_vec()))
            .await
            .map_err(|e| flat(e, format!("failed to upload {key} to {}", self.what)))?;
        let current = self.latest(a.kind).await?;
        if super::should_move_latest(current.as_deref(), &a.name)? {
            let lk = self.key(a.kind, LATEST);
            self.store
                .put(&lk, PutPayload::from(format!("{}\n", a.name).into_bytes()))
                .await
                .map_err(|e| flat(e, format!("failed to upload {lk} to {}", self.what)))?;
        }
        Ok(())
    }

    pub async fn latest(&self, kind: Kind) -> Result<Option<String>> {
        let lk = self.key(kind, LATEST);
        match self.store.get(&lk).await {
            Ok(r) => {
                let b = r
                    .bytes()
                    .await
                    .map_err(|e| flat(e, format!("failed to read {lk} from {}", self.what)))?;
                Ok(Some(String::from_utf8_lossy(&b).trim().to_string()).filter(|s| !s.is_empty()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(flat(e, format!("failed to read {lk} from {}", self.what))),
        }
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let key = self.key(kind, name);
        let r = self
            .store
            .get(&key)
            .await
            .map_err(|e| flat(e, format!("failed to download {key} from {}", self.what)))?;
        Ok(r.bytes()
            .await
            .map_err(|e| flat(e, format!("failed to download {key} from {}", self.what)))?
            .to_vec())
    }

    pub async fn list(&self, kind: Kind) -> Result<Vec<String>> {
        let folder = self.folder(kind);
        let metas: Vec<object_store::ObjectMeta> =
            match self.store.list_with_delimiter(folder.as_ref()).await {
                Ok(l) => l.objects,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => {
                    return Err(flat(e, format!("failed to list {}", self.what)));
                }
            };
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(String::from))
            .filter(|n| version::is_version(kind, n))
            .collect())
    }

    pub async fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let key = self.key(kind, name);
        self.store
            .delete(&key)
            .await
            .map_err(|e| flat(e, format!("failed to delete {key} on {}", self.what)))
    }
}

/// One error line: object_store's message already carries most of its
/// causes, so the chain is not printed again (each would appear twice);
/// only the root cause is added when the message lacks it ("connection
/// refused" sits at the bottom of a send error).
fn flat(e: object_store::Error, what: String) -> anyhow::Error {
    // object_store's messages repeat their sources' text, so printing the
    // chain would say the same thing three times: keep what each level
    // adds to the one below it.
    let mut levels = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = cur {
        levels.push(err.to_string());
        cur = err.source();
    }
    let mut parts: Vec<String> = Vec::new();
    for (i, text) in levels.iter().enumerate() {
        let own = match levels.get(i + 1) {
            Some(below) => text.replace(below.as_str(), ""),
            None => text.clone(),
        };
        let own = own.trim().trim_end_matches(':').trim().to_owned();
        if !own.is_empty() && !parts.iter().any(|p| p.contains(&own)) {
            parts.push(own);
        }
    }
    anyhow::anyhow!("{what}: {}", parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(io),
        };
        let text = flat(e, "failed to upload to garage".into()).to_string();
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");
        assert!(text.starts_with("failed to upload to garage: "), "{text}");
        assert!(text.contains("S3"), "{text}");
    }
}
