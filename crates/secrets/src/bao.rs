//! A small OpenBao HTTP client: AppRole login, KV v1/v2 reads, KV v2
//! check-and-set writes, mount version detection, token revocation.
//!
//! Why not `vaultrs` (0.8.0), which the issue suggests: its settings builder
//! falls back to `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_CACERT` and
//! `VAULT_SKIP_VERIFY` from the process environment (vaultrs
//! src/client.rs, `default_address`/`default_token`/`default_verify`),
//! where we want the manifest to be the only input, and it (through
//! rustify) buffers whole response bodies without a limit, where a
//! boot-time oneshot must survive a misbehaving server or proxy. It also
//! lacks `sys/internal/ui/mounts`. Every call we need is one JSON request,
//! so this module talks to the documented HTTP API directly with reqwest,
//! caps bodies at 1 MiB and classifies failures so the caller can retry
//! only what may heal (sealed, standby, unreachable).
//!
//! Response shapes follow the OpenBao API docs (openbao.org/api-docs) and
//! source (openbao/openbao): errors are `{"errors": [...]}`
//! (sdk/logical/response_util.go); RustyVault answers `{"error": "..."}`,
//! which we also read for the message only.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use zeroize::Zeroizing;

use chainstead_common::retry::Backoff;
use chainstead_common::Secret;

use crate::manifest::{Auth, OpenBao};

/// No response we read is anywhere near this; a bigger one is refused.
pub const MAX_BODY: usize = 1 << 20;

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// May heal by itself: unreachable, sealed (503), standby (429). The
    /// text names the state for the final message.
    Transient(String),
    /// Will not heal by retrying: permission denied, missing, malformed.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Fatal(e)
    }
}

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

pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// The address as configured, for messages.
    address: String,
    token: Option<Secret>,
    /// True when we logged in ourselves; such a token is revoked at the end.
    owns_token: bool,
    deadline: Instant,
    deadline_secs: u64,
    request_timeout: Duration,
}

struct Reply {
    status: u16,
    body: Zeroizing<Vec<u8>>,
}

impl Client {
    /// Builds the HTTP client; no request is made yet.
    pub fn new(cfg: &OpenBao, started: Instant) -> Result<Self> {
        let mut base = Url::parse(&cfg.address)
            .with_context(|| format!("failed to parse OpenBao address {}", cfg.address))?;
        let mut builder = reqwest::Client::builder()
            // Only the manifest configures us: no proxy from the environment.
            .no_proxy()
            // A token must never follow a redirect to another host; OpenBao
            // standbys forward requests instead of redirecting by default.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(cfg.request_timeout_secs.min(5)))
            .user_agent(concat!("chainstead-secrets/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("failed to read OpenBao CA file {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("failed to parse OpenBao CA file {}", ca.display()))?;
            if certs.is_empty() {
                anyhow::bail!(
                    "failed to parse OpenBao CA file {}: it holds no PEM certificate",
                    ca.display()
                );
            }
            // Like BAO_CACERT: the given CA is the only trusted root.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(name) = &cfg.tls_server_name {
            // Connect to the configured IP but present and verify `name`:
            // the URL carries the name, the resolver override the address.
            let ip: IpAddr = base
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| {
                    anyhow!(
                        "failed to use tls_server_name {name}: openbao.address {} must then hold an IP address",
                        cfg.address
                    )
                })?;
            let port = base.port_or_known_default().unwrap_or(8200);
            builder = builder.resolve(name, SocketAddr::new(ip, port));
            base.set_host(Some(name))
                .with_context(|| format!("failed to use tls_server_name {name}"))?;
        }
        let http = builder
            .build()
            .context("failed to build the HTTP client for OpenBao")?;
        Ok(Self {
            http,
            base,
            address: cfg.address.clone(),
            token: None,
            owns_token: false,
            deadline: started + Duration::from_secs(cfg.deadline_secs),
            deadline_secs: cfg.deadline_secs,
            request_timeout: Duration::from_secs(cfg.request_timeout_secs),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Logs in as the manifest says. AppRole: `POST /v1/auth/<mount>/login`
    /// with `role_id` and `secret_id`, the token is `auth.client_token`
    /// (openbao.org/api-docs/auth/approle, "Login with AppRole").
    pub async fn login(&mut self, auth: &Auth) -> Result<()> {
        match auth {
            Auth::TokenFile(path) => {
                let token = Secret::from_file(path)?;
                if token.is_empty() {
                    anyhow::bail!(
                        "failed to read OpenBao token file {}: it is empty",
                        path.display()
                    );
                }
                self.token = Some(token);
                self.owns_token = false;
            }
            Auth::AppRole(a) => {
                let role_id = Secret::from_file(&a.role_id_file)?;
                let secret_id = Secret::from_file(&a.secret_id_file)?;
                let body = Zeroizing::new(serde_json::to_vec(&serde_json::json!({
                    "role_id": role_id.expose(),
                    "secret_id": secret_id.expose(),
                }))?);
                let path = format!("auth/{}/login", a.mount);
                let what = format!(
                    "log in to OpenBao at {} with AppRole ({path})",
                    self.address
                );
                let token = self
                    .retry(&what, || async {
                        let r = self.request(Method::POST, &path, Some(&body)).await?;
                        match r.status {
                            200 => parse_login(&r.body).map_err(Failure::Fatal),
                            // OpenBao's AppRole answers "invalid role or secret ID"
                            // (400, ErrInvalidCredentials), and in one branch
                            // `invalid secret_id "<the secret_id>"`
                            // (builtin/credential/approle/path_login.go): the
                            // text is shown with both credentials blanked out.
                            400 | 401 | 403 => Err(Failure::Fatal(anyhow!(
                                "OpenBao refused the AppRole login ({}: {}): the role_id in {} or the secret_id in {} is wrong, \
                                 or the secret_id expired, was used up (secret_id_num_uses) or is bound to other CIDRs; \
                                 issue a new one with `bao write -f auth/{}/role/<role>/secret-id`",
                                r.status,
                                redact(
                                    &error_text(redact(&String::from_utf8_lossy(&r.body), &[&role_id, &secret_id]).as_bytes()),
                                    &[&role_id, &secret_id]
                                ),
                                a.role_id_file.display(),
                                a.secret_id_file.display(),
                                a.mount
                            ))),
                            // Any other answer is classified like every other
                            // request, but its body may echo the credentials too.
                            s => {
                                let body = redact(&String::from_utf8_lossy(&r.body), &[&role_id, &secret_id]);
                                Err(self.classify(s, body.as_bytes(), &path))
                            }
                        }
                    })
                    .await?;
                self.token = Some(token);
                self.owns_token = true;
            }
        }
        Ok(())
    }

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
        let api = api_path(2, mount, path);
        let body = encode_write(fields, Some(cas))?;
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
        let body = encode_write(fields, None)?;
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

    /// Revokes the token we logged in with (`POST /v1/auth/token/revoke-self`,
    /// 204). A token from a token file belongs to the operator and is kept.
    /// Failing to revoke is logged, not fatal: the token expires by its TTL.
    pub async fn revoke(&mut self) {
        if !self.owns_token || self.token.is_none() {
            return;
        }
        // One attempt, bounded: revocation must not hold up the boot.
        match self
            .request(Method::POST, "auth/token/revoke-self", None)
            .await
        {
            Ok(r) if r.status == 204 || r.status == 200 => {
                tracing::debug!("revoked the login token");
            }
            Ok(r) => tracing::warn!(
                "failed to revoke the login token at {} ({}: {}); it expires by its TTL",
                self.address,
                r.status,
                error_text(&r.body)
            ),
            Err(Failure::Transient(s)) => tracing::warn!(
                "failed to revoke the login token: OpenBao at {} is {s}; it expires by its TTL",
                self.address
            ),
            Err(Failure::Fatal(e)) => tracing::warn!(
                "failed to revoke the login token at {}: {e:#}; it expires by its TTL",
                self.address
            ),
        }
        self.token = None;
    }

    /// Runs `op` until it succeeds, fails fatally, or the deadline passes
    /// while it keeps failing transiently.
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Failure>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e.context(format!("failed to {what}"))),
                Err(Failure::Transient(state)) => {
                    let now = Instant::now();
                    if now >= self.deadline {
                        anyhow::bail!(
                            "failed to {what}: OpenBao at {} is {state}; gave up after {} attempts when the \
                             {}s deadline (openbao.deadline_secs) passed",
                            self.address,
                            backoff.attempts() + 1,
                            self.deadline_secs
                        );
                    }
                    let delay = backoff.next_delay().min(self.deadline - now);
                    tracing::info!(
                        "OpenBao at {} is {state}; retrying in {:.1}s",
                        self.address,
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One request with the token, a timeout bounded by the deadline and a
    /// capped body.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Zeroizing<Vec<u8>>>,
    ) -> std::result::Result<Reply, Failure> {
        let url = self
            .base
            .join(&format!("v1/{path}"))
            .with_context(|| format!("failed to build the URL for {path}"))?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = self
            .request_timeout
            .min(remaining.max(Duration::from_millis(200)));
        let mut req = self.http.request(method, url).timeout(timeout);
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                anyhow!(
                    "failed to use the OpenBao token: it holds characters not allowed in a header"
                )
            })?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| self.transport_failure(&e, timeout))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            return Err(Failure::Fatal(anyhow!(
                "OpenBao at {} redirected {path} to {location} ({status}); point openbao.address at the active node or a load balancer",
                self.address
            )));
        }
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(Failure::Fatal(anyhow!(
                "OpenBao at {} answered {path} with a body of {} bytes, more than the {MAX_BODY} this tool accepts",
                self.address,
                resp.content_length().unwrap_or_default()
            )));
        }
        let mut buf = Zeroizing::new(Vec::new());
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > MAX_BODY {
                        return Err(Failure::Fatal(anyhow!(
                            "OpenBao at {} answered {path} with a body larger than the {MAX_BODY} bytes this tool accepts",
                            self.address
                        )));
                    }
                    // Grow by hand so no unzeroized copy is left behind by
                    // a reallocation.
                    if buf.capacity() < buf.len() + chunk.len() {
                        let mut bigger = Zeroizing::new(Vec::with_capacity(
                            (buf.len() + chunk.len())
                                .max(buf.capacity() * 2)
                                .min(MAX_BODY),
                        ));
                        bigger.extend_from_slice(&buf);
                        buf = bigger;
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_failure(&e, timeout)),
            }
        }
        Ok(Reply { status, body: buf })
    }

    fn transport_failure(&self, e: &reqwest::Error, timeout: Duration) -> Failure {
        let chain = error_chain(e);
        if chain.contains("certificate")
            || chain.contains("InvalidCertificate")
            || chain.contains("UnknownIssuer")
        {
            // A TLS trust problem does not heal by waiting.
            return Failure::Fatal(anyhow!(
                "failed to verify the TLS certificate of OpenBao at {} ({chain}); check openbao.ca_file and openbao.tls_server_name",
                self.address
            ));
        }
        if e.is_timeout() {
            Failure::Transient(format!(
                "not answering (no reply within {:.1}s)",
                timeout.as_secs_f64()
            ))
        } else if e.is_connect() {
            Failure::Transient(format!("unreachable ({chain})"))
        } else {
            Failure::Transient(format!("failing at the transport level ({chain})"))
        }
    }

    /// Status codes every endpoint shares (openbao.org/api-docs, "HTTP
    /// status codes"; sys/health documents 429 for a standby and 503 for a
    /// sealed server, and a sealed server answers 503 "Vault is sealed" to
    /// every request).
    fn classify(&self, status: u16, body: &[u8], path: &str) -> Failure {
        let text = error_text(body);
        match status {
            503 => Failure::Transient(if text.to_ascii_lowercase().contains("sealed") {
                "sealed (503)".to_owned()
            } else {
                format!("unavailable (503: {text})")
            }),
            429 => Failure::Transient("a standby node (429)".to_owned()),
            472 | 473 => Failure::Transient(format!("a standby node ({status})")),
            502 | 504 => Failure::Transient(format!("behind a gateway that answers {status}")),
            401 | 403 => Failure::Fatal(anyhow!(
                "permission denied on {path} ({status}: {text}): the token may have expired or lack a policy for this path"
            )),
            400 if text.contains("missing client token") => Failure::Fatal(anyhow!(
                "OpenBao at {} wants a token for {path} ({status}: {text})",
                self.address
            )),
            _ => Failure::Fatal(anyhow!("OpenBao at {} answered {path} with {status}: {text}", self.address)),
        }
    }
}

fn api_path(kv: u8, mount: &str, path: &str) -> String {
    if kv == 2 {
        format!("{mount}/data/{path}")
    } else {
        format!("{mount}/{path}")
    }
}

fn encode_write(fields: &BTreeMap<String, Field>, cas: Option<u64>) -> Result<Zeroizing<Vec<u8>>> {
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
    if let Some(cas) = cas {
        top.serialize_entry("options", &serde_json::json!({ "cas": cas }))?;
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

fn parse_json(body: &[u8], path: &str) -> std::result::Result<serde_json::Value, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        Failure::Fatal(anyhow!(
            "failed to parse the answer to {path}: not the JSON OpenBao sends ({e})"
        ))
    })
}

fn parse_login(body: &[u8]) -> Result<Secret> {
    #[derive(serde::Deserialize)]
    struct Login {
        auth: Option<LoginAuth>,
    }
    #[derive(serde::Deserialize)]
    struct LoginAuth {
        client_token: Secret,
    }
    let login: Login = serde_json::from_slice(body)
        .context("failed to parse the AppRole login answer: not the JSON OpenBao sends")?;
    match login.auth {
        Some(a) if !a.client_token.is_empty() => Ok(a.client_token),
        _ => anyhow::bail!("failed to read auth.client_token from the AppRole login answer"),
    }
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

/// The server's error text, from `{"errors": [...]}` (OpenBao) or
/// `{"error": "..."}` (RustyVault), shortened; never a whole odd body.
pub fn error_text(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            if let Some(list) = v.get("errors").and_then(|e| e.as_array()) {
                let joined: Vec<&str> = list.iter().filter_map(|e| e.as_str()).collect();
                if joined.is_empty() {
                    "no error text".to_owned()
                } else {
                    joined.join("; ")
                }
            } else if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                e.to_owned()
            } else {
                "no error text".to_owned()
            }
        }
        Err(_) if body.is_empty() => "empty body".to_owned(),
        Err(_) => format!("a non-JSON body of {} bytes", body.len()),
    };
    let mut short: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if text.chars().count() > 300 {
        short.push('…');
    }
    short
}

/// `text` with every occurrence of the given secrets replaced.
fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.expose(), "<redacted>");
        }
    }
    out
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_reads_both_shapes() {
        assert_eq!(
            error_text(br#"{"errors":["permission denied"]}"#),
            "permission denied"
        );
        assert_eq!(error_text(br#"{"errors":[]}"#), "no error text");
        assert_eq!(
            error_text(br#"{"error":"missing client token"}"#),
            "missing client token"
        );
        assert_eq!(error_text(b"<html>"), "a non-JSON body of 6 bytes");
        assert_eq!(error_text(b""), "empty body");
    }

    #[test]
    fn writes_are_shaped_like_the_api_wants() {
        let mut fields = BTreeMap::new();
        fields.insert(
            "password".to_owned(),
            Field::Str(Secret::new("p\"w".into())),
        );
        fields.insert("port".to_owned(), Field::Other(8332.into()));
        let v2: serde_json::Value =
            serde_json::from_slice(&encode_write(&fields, Some(0)).unwrap()).unwrap();
        assert_eq!(
            v2,
            serde_json::json!({"options": {"cas": 0}, "data": {"password": "p\"w", "port": 8332}})
        );
        let v1: serde_json::Value =
            serde_json::from_slice(&encode_write(&fields, None).unwrap()).unwrap();
        assert_eq!(v1, serde_json::json!({"password": "p\"w", "port": 8332}));
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
