//! HTTP requests with a hard size limit and timeouts, sorted into "the
//! daemon is not there yet" and real errors.

use std::time::Duration;

use reqwest::StatusCode;

use crate::error::ProbeError;

/// Largest reply body accepted. getblockchaininfo and get_info are a few
/// hundred bytes; anything near this is not the daemon we expect.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a TCP connect may take before the daemon counts as not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an idle keep-alive connection is kept for the next poll.
const POOL_IDLE: Duration = Duration::from_secs(5);

/// A complete, bounded reply.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    /// The start of the body for error messages, printable and short.
    pub fn snippet(&self) -> String {
        snippet(&self.body)
    }
}

/// Why a request produced no reply.
#[derive(Debug)]
pub enum Failure {
    /// Nothing accepted the connection: the daemon is not running (yet).
    Down(String),
    Error(ProbeError),
}

/// Installs ring as rustls' process-wide crypto provider (once).
pub fn ensure_crypto_provider() {
    // Fails only when a provider is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client with our timeouts, no proxy (the backends are local or named
/// explicitly; an inherited HTTP_PROXY must not redirect them) and, for
/// TLS, the given rustls configuration.
pub fn client(
    timeout: Duration,
    tls: Option<rustls::ClientConfig>,
) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    ensure_crypto_provider();
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .pool_max_idle_per_host(1)
        // Reuse a connection only between fast polls: bitcoind closes idle
        // RPC connections after -rpcservertimeout (30 s by default), and a
        // POST on a connection closed under us would be a spurious error.
        .pool_idle_timeout(POOL_IDLE)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("chainstead/", env!("CARGO_PKG_VERSION")));
    if let Some(cfg) = tls {
        b = b.use_preconfigured_tls(cfg);
    }
    b.build().context("failed to build the HTTP client")
}

/// Sends the request and reads at most [`MAX_BODY`] bytes of the reply
/// within `timeout`. `what` names the peer in messages.
pub async fn send(
    req: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
) -> Result<Reply, Failure> {
    // reqwest's own timeout covers connect, headers and body; this outer
    // one is a second fence in case a layer below ignores it.
    match tokio::time::timeout(
        timeout + Duration::from_secs(1),
        send_inner(req, what, timeout),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(timed_out(what, timeout)),
    }
}

async fn send_inner(
    req: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
) -> Result<Reply, Failure> {
    let mut resp = req.send().await.map_err(|e| classify(e, what, timeout))?;
    let status = resp.status();
    if let Some(len) = resp.content_length() {
        if len > MAX_BODY as u64 {
            return Err(too_large(what));
        }
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_large(what));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(classify(e, what, timeout)),
        }
    }
    Ok(Reply { status, body })
}

fn too_large(what: &str) -> Failure {
    Failure::Error(ProbeError::misconfig(format!(
        "the reply from {what} is larger than {} KiB; this address does not answer like the expected daemon (check the URL)",
        MAX_BODY / 1024
    )))
}

fn timed_out(what: &str, timeout: Duration) -> Failure {
    Failure::Error(ProbeError::transient(format!(
        "no complete reply from {what} within {:.1}s (the daemon is overloaded, or something else listens there)",
        timeout.as_secs_f64()
    )))
}

fn classify(e: reqwest::Error, what: &str, timeout: Duration) -> Failure {
    if e.is_timeout() {
        return timed_out(what, timeout);
    }
    let cause = root_cause(&e);
    if not_http(&e) {
        return Failure::Error(ProbeError::misconfig(format!(
            "unparseable reply from {what}: it does not answer HTTP ({cause}); check the URL's port"
        )));
    }
    if let Some(tls) = tls_failure(&e) {
        return Failure::Error(ProbeError::misconfig(format!(
            "the TLS handshake with {what} failed ({tls}); check that the URL's port speaks TLS"
        )));
    }
    if e.is_connect() {
        return Failure::Down(format!("{what} is not answering ({cause})"));
    }
    Failure::Error(ProbeError::transient(format!(
        "failed to talk to {what}: {cause}"
    )))
}

/// The errors behind `e`, outermost first. Unlike `source()` alone this
/// also enters an `io::Error`'s inner error, whose `source()` skips it.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                return Some(inner as &(dyn std::error::Error + 'static));
            }
        }
        err.source()
    })
}

/// Whether the peer sent something that is not HTTP at all (an SSH banner,
/// a P2P port).
fn not_http(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|err| {
        err.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_parse() || h.is_parse_status())
    })
}

/// The message of a rustls error anywhere in the chain.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    chain(e).find_map(|err| err.downcast_ref::<rustls::Error>().map(ToString::to_string))
}

/// The innermost error message, which is the informative one
/// ("Connection refused (os error 111)", "invalid peer certificate ...").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e).last().map(ToString::to_string).unwrap_or_default()
}

/// Up to 120 printable characters of a body.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > 120 {
        format!("{:?}...", clean.trim())
    } else {
        format!("{:?}", clean.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_short_and_printable() {
        assert_eq!(snippet(b"garbage\n"), "\"garbage\"");
        let long = vec![b'x'; 500];
        assert!(snippet(&long).ends_with("..."));
        assert!(snippet(&long).len() < 130);
    }
}
