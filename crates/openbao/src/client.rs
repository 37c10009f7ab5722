//! The HTTP side: configuration, one request with the token and a capped
//! body, failures classified as transient or fatal, and retry until a
//! deadline for callers that wait for OpenBao (the loader at boot) or none
//! for callers that retry on their own schedule (the backup pusher).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use zeroize::Zeroizing;

use chainstead_common::retry::Backoff;
use chainstead_common::Secret;

/// No response we read is anywhere near this; a bigger one is refused.
pub const MAX_BODY: usize = 1 << 20;

/// Where OpenBao is and how to talk to it.
#[derive(Clone, Debug)]
pub struct Config {
    /// `https://bao.example.org:8200`.
    pub address: String,
    /// PEM file with the CA that signed OpenBao's certificate; when set it is
    /// the only trusted root (like `BAO_CACERT`). Without it, the system's.
    pub ca_file: Option<PathBuf>,
    /// Name to verify the certificate against when `address` holds an IP
    /// (like `BAO_TLS_SERVER_NAME`).
    pub tls_server_name: Option<String>,
    /// Upper bound of one request.
    pub request_timeout: Duration,
    pub retry: Retry,
    /// `User-Agent`, e.g. `chainstead-secrets/0.1.0`.
    pub user_agent: String,
}

/// What to do when OpenBao is sealed, a standby or unreachable.
#[derive(Clone, Debug)]
pub enum Retry {
    /// Fail at once; the caller retries on its own schedule.
    Never,
    /// Retry with backoff until `deadline`; `setting` names the option that
    /// sets it (for the final message), `secs` its value.
    Until {
        deadline: Instant,
        secs: u64,
        setting: String,
    },
}

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

pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// The address as configured, for messages.
    pub(crate) address: String,
    pub(crate) token: Option<Secret>,
    /// True when we logged in ourselves; such a token is revoked at the end.
    pub(crate) owns_token: bool,
    retry: Retry,
    request_timeout: Duration,
}

/// An answer: status and the (capped, zeroizing) body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

impl Client {
    /// Builds the HTTP client; no request is made yet. Nothing is taken
    /// from the environment: no proxy, no `VAULT_*`/`BAO_*` variables.
    pub fn new(cfg: &Config) -> Result<Self> {
        let mut base = Url::parse(&cfg.address)
            .with_context(|| format!("failed to parse OpenBao address {}", cfg.address))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            anyhow::bail!(
                "failed to use OpenBao address {}: it must be an http:// or https:// URL with a host",
                cfg.address
            );
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            // A token must never follow a redirect to another host; OpenBao
            // standbys forward requests instead of redirecting by default.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(5)))
            .user_agent(cfg.user_agent.clone());
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
        if !base.path().ends_with('/') {
            // `join` below replaces the last segment otherwise.
            let p = format!("{}/", base.path());
            base.set_path(&p);
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
            retry: cfg.retry.clone(),
            request_timeout: cfg.request_timeout,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs `op` until it succeeds, fails fatally, or (with
    /// [`Retry::Until`]) the deadline passes while it keeps failing
    /// transiently. `what` completes "failed to ...".
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
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
                    let Retry::Until {
                        deadline,
                        secs,
                        setting,
                    } = &self.retry
                    else {
                        anyhow::bail!("failed to {what}: OpenBao at {} is {state}", self.address);
                    };
                    let now = Instant::now();
                    if now >= *deadline {
                        anyhow::bail!(
                            "failed to {what}: OpenBao at {} is {state}; gave up after {} attempts when the \
                             {secs}s deadline ({setting}) passed",
                            self.address,
                            backoff.attempts() + 1,
                        );
                    }
                    let delay = backoff.next_delay().min(*deadline - now);
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
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Zeroizing<Vec<u8>>>,
    ) -> std::result::Result<Reply, Failure> {
        let url = self
            .base
            .join(&format!("v1/{path}"))
            .with_context(|| format!("failed to build the URL for {path}"))?;
        let timeout = match &self.retry {
            Retry::Never => self.request_timeout,
            Retry::Until { deadline, .. } => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                self.request_timeout
                    .min(remaining.max(Duration::from_millis(200)))
            }
        };
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
    pub(crate) fn classify(&self, status: u16, body: &[u8], path: &str) -> Failure {
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

pub(crate) fn parse_json(
    body: &[u8],
    path: &str,
) -> std::result::Result<serde_json::Value, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        Failure::Fatal(anyhow!(
            "failed to parse the answer to {path}: not the JSON OpenBao sends ({e})"
        ))
    })
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
pub(crate) fn redact(text: &str, secrets: &[&Secret]) -> String {
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn config(address: &str) -> Config {
        Config {
            address: address.to_owned(),
            ca_file: None,
            tls_server_name: None,
            request_timeout: Duration::from_secs(10),
            retry: Retry::Never,
            user_agent: "chainstead-openbao-test".into(),
        }
    }

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
    fn bad_addresses_and_ca_files_are_named_errors_not_panics() {
        for a in ["not a url", "ftp://bao:8200", "unix:/run/bao.sock"] {
            let e = Client::new(&config(a)).err().unwrap().to_string();
            assert!(e.contains(a), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut cfg = config("https://127.0.0.1:8200");
        cfg.ca_file = Some(ca.clone());
        let e = format!("{:#}", Client::new(&cfg).err().unwrap());
        assert!(e.contains("holds no PEM certificate"), "{e}");
        cfg.ca_file = Some(dir.path().join("absent.pem"));
        let e = format!("{:#}", Client::new(&cfg).err().unwrap());
        assert!(e.contains("failed to read OpenBao CA file"), "{e}");
        let mut cfg = config("https://bao.example.org:8200");
        cfg.tls_server_name = Some("bao".into());
        let e = format!("{:#}", Client::new(&cfg).err().unwrap());
        assert!(e.contains("must then hold an IP address"), "{e}");
    }

    #[test]
    fn statuses_are_classified_transient_or_fatal() {
        let c = Client::new(&config("http://127.0.0.1:1")).unwrap();
        let transient = |s: u16, body: &[u8]| match c.classify(s, body, "p") {
            Failure::Transient(t) => t,
            Failure::Fatal(e) => panic!("{s} was fatal: {e:#}"),
        };
        assert_eq!(
            transient(503, br#"{"errors":["Vault is sealed"]}"#),
            "sealed (503)"
        );
        assert_eq!(transient(429, b""), "a standby node (429)");
        assert!(transient(502, b"").contains("gateway"));
        for s in [400, 401, 403, 404, 500] {
            assert!(
                matches!(c.classify(s, b"{}", "p"), Failure::Fatal(_)),
                "{s}"
            );
        }
    }

    /// `retry` on an operation that always finds OpenBao sealed: how often
    /// it ran, and the final error.
    async fn always_sealed(c: &Client) -> (usize, String) {
        let mut calls = 0;
        let e = c
            .retry::<(), _, _>("read x", || {
                calls += 1;
                async { Err(Failure::Transient("sealed (503)".into())) }
            })
            .await
            .unwrap_err()
            .to_string();
        (calls, e)
    }

    #[tokio::test]
    async fn retry_never_fails_at_once_and_until_waits_for_the_deadline() {
        let c = Client::new(&config("http://127.0.0.1:1")).unwrap();
        let (calls, e) = always_sealed(&c).await;
        assert_eq!(calls, 1);
        assert_eq!(
            e,
            "failed to read x: OpenBao at http://127.0.0.1:1 is sealed (503)"
        );
        let mut cfg = config("http://127.0.0.1:1");
        cfg.retry = Retry::Until {
            deadline: Instant::now() + Duration::from_millis(300),
            secs: 0,
            setting: "openbao.deadline_secs".into(),
        };
        let c = Client::new(&cfg).unwrap();
        let (calls, e) = always_sealed(&c).await;
        assert!(calls >= 2, "{calls}");
        assert!(e.contains("deadline (openbao.deadline_secs) passed"), "{e}");
    }
}
