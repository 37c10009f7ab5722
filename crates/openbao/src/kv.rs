//! KV: v1 (`<mount>/<path>`, plain) and v2 (`<mount>/data/<path>`,
//! versioned, check-and-set), and which of the two a mount is.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use reqwest::Method;
use zeroize::Zeroizing;

use chainstead_common::Secret;

use crate::client::{error_text, parse_json, Client, Failure};

/// A value read from KV: strings become [`Secret`]s; anything else is kept
/// as JSON so a write-back (generate, store) preserves it.
#[derive(Debug)]
pub enum Field {
    Str(Secret),
    Other(serde_json::Value),
}

/// A KV secret as read: its fields and, for KV v2, the current version
/// (needed for check-and-set).
#[derive(Debug, Default)]
pub struct KvData {
    pub fields: BTreeMap<String, Field>,
    pub version: Option<u64>,
}

/// The result of a read: the secret, or nothing at that path (with the
/// version of a deleted KV v2 secret, which a check-and-set write needs).
#[derive(Debug)]
pub enum Read {
    Found(KvData),
    Absent { version: Option<u64> },
}

/// The version range of a KV v2 secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub current_version: u64,
    /// 0 when every version is kept.
    pub oldest_version: u64,
}

impl Client {
    /// KV version of a mount, the way the `bao` CLI finds it
    /// (openbao/openbao command/kv_helpers.go, `kvPreflightVersionRequest`,
    /// commit 03792a4d5f5e): `GET /v1/sys/internal/ui/mounts/<path>`;
    /// `data.options.version == "2"` means v2, a missing option or any other
    /// value v1, and a 404 (servers without the endpoint) v1.
    pub async fn mount_version(&self, mount: &str) -> Result<u8> {
        let path = format!("sys/internal/ui/mounts/{mount}");
        let what = format!("detect the KV version of mount {mount} at {}", self.address);
        self.retry(&what, || async {
            let r = self.request(Method::GET, &path, None).await?;
            match r.status {
                200 => {
                    let v: serde_json::Value = parse_json(&r.body, &path)?;
                    let version = v.pointer("/data/options/version").and_then(|v| v.as_str());
                    Ok(if version == Some("2") { 2 } else { 1 })
                }
                404 => Ok(1),
                // OpenBao answers 403 both when the policy grants nothing
                // under the mount and when there is no such mount, so the
                // endpoint cannot be used to list mounts (vault/logical_system.go,
                // `pathInternalUIMountRead`).
                403 => Err(Failure::Fatal(anyhow!(
                    "permission denied on {path} ({}): mount {mount}/ does not exist, or the token's policy \
                     grants nothing under it (for KV v2 it needs read on \"{mount}/data/<path>\")",
                    error_text(&r.body)
                ))),
                s => Err(self.classify(s, &r.body, &path)),
            }
        })
        .await
    }

    /// Reads a KV secret. v2: `GET /v1/<mount>/data/<path>`, fields in
    /// `.data.data`, version in `.data.metadata.version`; a deleted or
    /// destroyed latest version answers 404 with the metadata, a path that
    /// never existed 404 `{"errors":[]}` (openbao/openbao
    /// builtin/logical/kv/path_data.go, `pathDataRead`). v1:
    /// `GET /v1/<mount>/<path>`, fields in `.data`.
    pub async fn kv_read(&self, kv: u8, mount: &str, path: &str) -> Result<Read> {
        let api = api_path(kv, mount, path);
        let what = format!("read {api} from OpenBao at {}", self.address);
        self.retry(&what, || async {
            let r = self.request(Method::GET, &api, None).await?;
            match r.status {
                200 => parse_kv(kv, &r.body, &api).map(Read::Found),
                404 => {
                    let version = serde_json::from_slice::<serde_json::Value>(&r.body)
                        .ok()
                        .and_then(|v| v.pointer("/data/metadata/version").and_then(|v| v.as_u64()));
                    Ok(Read::Absent { version })
                }
                403 => {
                    Err(Failure::Fatal(anyhow!(
                    "permission denied reading {api}: the policy of the AppRole/token must grant \
                     \"read\" on \"{api}\"{}",
                    if kv == 2 { " (KV v2 policies name the data/ path)" } else { "" }
                )))
                }
                s => Err(self.classify(s, &r.body, &api)),
            }
        })
        .await
    }

    /// Writes a KV v2 secret with check-and-set: `POST /v1/<mount>/data/<path>`
    /// with `{"options": {"cas": N}, "data": {...}}`; `cas: 0` only creates.
    /// Returns false when another writer won (400 "check-and-set parameter
    /// did not match the current version", path_data.go
    /// `validateCheckAndSetOption`).
    pub async fn kv2_write_cas(
        &self,
        mount: &str,
        path: &str,
        fields: &BTreeMap<String, Field>,
        cas: u64,
    ) -> Result<bool> {
        self.kv2_write_with(mount, path, fields, Some(cas)).await
    }

    /// Writes a new KV v2 version without check-and-set (what `bao kv put`
    /// does on a mount that does not require it).
    pub async fn kv2_write(
        &self,
        mount: &str,
        path: &str,
        fields: &BTreeMap<String, Field>,
    ) -> Result<()> {
        if self.kv2_write_with(mount, path, fields, None).await? {
            Ok(())
        } else {
            anyhow::bail!(
                "failed to write {}: OpenBao refused it with a check-and-set error although none was sent; \
                 the mount or path requires check-and-set (cas_required)",
                api_path(2, mount, path)
            )
        }
    }

    async fn kv2_write_with(
        &self,
        mount: &str,
        path: &str,
        fields: &BTreeMap<String, Field>,
        cas: Option<u64>,
    ) -> Result<bool> {
        let api = api_path(2, mount, path);
        let body = encode_write(fields, V2 { cas })?;
        let what = format!("write {api} to OpenBao at {}", self.address);
        self.retry(&what, || async {
            let r = self.request(Method::POST, &api, Some(&body)).await?;
            match r.status {
                200 | 204 => Ok(true),
                400 if error_text(&r.body).contains("check-and-set") => Ok(false),
                403 => Err(Failure::Fatal(anyhow!(
                    "permission denied writing {api}: generating or storing needs \"create\" and \"update\" on \"{api}\""
                ))),
                s => Err(self.classify(s, &r.body, &api)),
            }
        })
        .await
    }

    /// Writes a KV v1 secret (the whole field set): `POST /v1/<mount>/<path>`.
    pub async fn kv1_write(
        &self,
        mount: &str,
        path: &str,
        fields: &BTreeMap<String, Field>,
    ) -> Result<()> {
        let api = api_path(1, mount, path);
        let body = encode_write(fields, V1)?;
        let what = format!("write {api} to OpenBao at {}", self.address);
        self.retry(&what, || async {
            let r = self.request(Method::POST, &api, Some(&body)).await?;
            match r.status {
                200 | 204 => Ok(()),
                403 => Err(Failure::Fatal(anyhow!(
                    "permission denied writing {api}: the policy needs \"create\" and \"update\" on \"{api}\""
                ))),
                s => Err(self.classify(s, &r.body, &api)),
            }
        })
        .await
    }

    /// Reads one version of a KV v2 secret: `GET /v1/<mount>/data/<path>?version=N`
    /// (openbao.org/api-docs/secret/kv/kv-v2, "Read secret version").
    pub async fn kv2_read_version(&self, mount: &str, path: &str, version: u64) -> Result<Read> {
        let api = api_path(2, mount, path);
        let query = format!("{api}?version={version}");
        let what = format!(
            "read version {version} of {api} from OpenBao at {}",
            self.address
        );
        self.retry(&what, || async {
            let r = self.request(Method::GET, &query, None).await?;
            match r.status {
                200 => parse_kv(2, &r.body, &api).map(Read::Found),
                404 => Ok(Read::Absent {
                    version: Some(version),
                }),
                403 => Err(Failure::Fatal(anyhow!(
                    "permission denied reading {api}: the policy must grant \"read\" on \"{api}\""
                ))),
                s => Err(self.classify(s, &r.body, &api)),
            }
        })
        .await
    }

    /// The version range of a KV v2 secret: `GET /v1/<mount>/metadata/<path>`,
    /// `.data.current_version` and `.data.oldest_version`
    /// (openbao.org/api-docs/secret/kv/kv-v2, "Read secret metadata").
    /// None when the path has no metadata (never written).
    pub async fn kv2_metadata(&self, mount: &str, path: &str) -> Result<Option<Metadata>> {
        let api = format!("{mount}/metadata/{path}");
        let what = format!(
            "read the metadata of {api} from OpenBao at {}",
            self.address
        );
        self.retry(&what, || async {
            let r = self.request(Method::GET, &api, None).await?;
            match r.status {
                200 => {
                    let v = parse_json(&r.body, &api)?;
                    let num = |k: &str| v.pointer(&format!("/data/{k}")).and_then(|n| n.as_u64());
                    match num("current_version") {
                        Some(current) => Ok(Some(Metadata {
                            current_version: current,
                            oldest_version: num("oldest_version").unwrap_or(0),
                        })),
                        None => Err(Failure::Fatal(anyhow!(
                            "failed to read {api}: the answer has no .data.current_version"
                        ))),
                    }
                }
                404 => Ok(None),
                403 => Err(Failure::Fatal(anyhow!(
                    "permission denied reading {api}: the policy must grant \"read\" on \"{api}\""
                ))),
                s => Err(self.classify(s, &r.body, &api)),
            }
        })
        .await
    }
}

fn api_path(kv: u8, mount: &str, path: &str) -> String {
    if kv == 2 {
        format!("{mount}/data/{path}")
    } else {
        format!("{mount}/{path}")
    }
}

/// The shape of a write body.
#[derive(Clone, Copy)]
enum Shape {
    /// KV v1: the fields at the top level.
    V1,
    /// KV v2: `{"data": {...}}`, with `options.cas` when given.
    V2 { cas: Option<u64> },
}
use Shape::{V1, V2};

fn encode_write(fields: &BTreeMap<String, Field>, shape: Shape) -> Result<Zeroizing<Vec<u8>>> {
    // Serialize borrowed strings straight into a zeroizing buffer; no owned
    // JSON copy of the values is made.
    use serde::ser::{SerializeMap, Serializer};
    struct Fields<'a>(&'a BTreeMap<String, Field>);
    impl serde::Serialize for Fields<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
                match v {
                    Field::Str(secret) => m.serialize_entry(k, secret.expose())?,
                    Field::Other(value) => m.serialize_entry(k, value)?,
                }
            }
            m.end()
        }
    }
    let mut out = Zeroizing::new(Vec::with_capacity(256));
    let mut ser = serde_json::Serializer::new(&mut *out);
    let mut top = ser.serialize_map(None)?;
    if let V2 { cas } = shape {
        if let Some(cas) = cas {
            top.serialize_entry("options", &serde_json::json!({ "cas": cas }))?;
        }
        top.serialize_entry("data", &Fields(fields))?;
    } else {
        // KV v1 takes the fields at the top level.
        for (k, v) in fields {
            match v {
                Field::Str(secret) => top.serialize_entry(k, secret.expose())?,
                Field::Other(value) => top.serialize_entry(k, value)?,
            }
        }
    }
    top.end()?;
    Ok(out)
}

fn parse_kv(kv: u8, body: &[u8], path: &str) -> std::result::Result<KvData, Failure> {
    let mut v = parse_json(body, path)?;
    let (data, version) = if kv == 2 {
        let version = v.pointer("/data/metadata/version").and_then(|v| v.as_u64());
        (
            v.pointer_mut("/data/data").map(serde_json::Value::take),
            version,
        )
    } else {
        (v.get_mut("data").map(serde_json::Value::take), None)
    };
    let map = match data {
        Some(serde_json::Value::Object(m)) => m,
        Some(serde_json::Value::Null) | None => {
            return Err(Failure::Fatal(anyhow!(
                "failed to read {path}: the answer has no {} object",
                if kv == 2 { ".data.data" } else { ".data" }
            )))
        }
        Some(_) => {
            return Err(Failure::Fatal(anyhow!(
                "failed to read {path}: {} is not an object",
                if kv == 2 { ".data.data" } else { ".data" }
            )))
        }
    };
    let fields = map
        .into_iter()
        .map(|(k, val)| {
            let f = match val {
                // Moves the string into a Secret: no copy is left behind.
                serde_json::Value::String(s) => Field::Str(Secret::new(s)),
                other => Field::Other(other),
            };
            (k, f)
        })
        .collect();
    Ok(KvData { fields, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_shaped_like_the_api_wants() {
        let mut fields = BTreeMap::new();
        fields.insert(
            "password".to_owned(),
            Field::Str(Secret::new("p\"w".into())),
        );
        fields.insert("port".to_owned(), Field::Other(8332.into()));
        let v2: serde_json::Value =
            serde_json::from_slice(&encode_write(&fields, V2 { cas: Some(0) }).unwrap()).unwrap();
        assert_eq!(
            v2,
            serde_json::json!({"options": {"cas": 0}, "data": {"password": "p\"w", "port": 8332}})
        );
        let v1: serde_json::Value =
            serde_json::from_slice(&encode_write(&fields, V1).unwrap()).unwrap();
        assert_eq!(v1, serde_json::json!({"password": "p\"w", "port": 8332}));
        let plain: serde_json::Value =
            serde_json::from_slice(&encode_write(&fields, V2 { cas: None }).unwrap()).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({"data": {"password": "p\"w", "port": 8332}})
        );
    }

    #[test]
    fn kv_answers_parse() {
        let body = br#"{"data":{"data":{"a":"x","n":1},"metadata":{"version":3}}}"#;
        let d = parse_kv(2, body, "p").unwrap();
        assert_eq!(d.version, Some(3));
        assert!(matches!(&d.fields["a"], Field::Str(s) if s.expose() == "x"));
        assert!(matches!(&d.fields["n"], Field::Other(_)));
        let d = parse_kv(1, br#"{"data":{"a":"y"}}"#, "p").unwrap();
        assert!(matches!(&d.fields["a"], Field::Str(s) if s.expose() == "y"));
        assert!(parse_kv(2, br#"{"data":{"data":null}}"#, "p").is_err());
        assert!(parse_kv(1, b"{", "p").is_err());
    }
}
