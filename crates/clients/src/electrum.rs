//! An Electrum server (Fulcrum): its height against the reference bitcoind.
//! The sync gate's electrum backend and chainstead-exporter's Fulcrum
//! source both use this one probe.
//!
//! Upstream facts (the Electrum protocol as documented by ElectrumX,
//! "Protocol Basics" and "Protocol Methods", which Fulcrum implements;
//! cculianu/Fulcrum src/Servers.cpp):
//! - JSON-RPC 2.0 over TCP (or TLS), one JSON object per line ("\n").
//! - `server.version(client_name, protocol_version)` must be the first
//!   request; the reply is `[server_software, protocol_version]`.
//! - `blockchain.headers.subscribe()` replies `{"height": N, "hex": "..."}`
//!   (protocol 1.4) with the server's tip; later notifications for new tips
//!   come as requests with a `method` and no `id`.
//! - Fulcrum opens its client ports only after its initial synchronisation
//!   with bitcoind, so "connection refused" means "not yet".

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::bitcoind::probe::Bitcoind;
use crate::http::MAX_BODY;
use crate::probe::{Observation, ProbeError, ProbeResult, Wait};
use crate::settings::{host_port, ElectrumBackend};
use crate::tls::{read_certs, PinnedCache};

/// The protocol version we ask for: 1.4 is the first with the
/// `{"height", "hex"}` headers.subscribe reply, and Fulcrum supports it.
const PROTOCOL: &str = "1.4";

pub struct Electrum {
    address: String,
    host: String,
    port: u16,
    tls_cert_file: Option<PathBuf>,
    tolerance: u64,
    reference: Bitcoind,
    cache: PinnedCache<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Tip {
    height: u64,
}

impl Electrum {
    pub fn new(cfg: ElectrumBackend, timeout: Duration) -> anyhow::Result<Self> {
        let (host, port) = host_port("backend.address", &cfg.address)?;
        Ok(Self {
            address: cfg.address,
            host,
            port,
            tls_cert_file: if cfg.tls { cfg.tls_cert_file } else { None },
            tolerance: cfg.tolerance_blocks,
            reference: Bitcoind::new(cfg.reference, "backend.reference", timeout)?,
            cache: PinnedCache::new(),
            timeout,
        })
    }

    /// What a probe talks to, for messages (the server, then bitcoind).
    pub fn describe(&self) -> String {
        format!(
            "Electrum server at {} or its reference {}",
            self.address,
            self.reference.describe()
        )
    }

    pub async fn probe(&mut self) -> ProbeResult {
        // The server first: if bitcoind moves on in between, the next poll
        // sees it; the other order could release on a stale comparison.
        let height = match self.server_height().await {
            Ok(h) => h,
            Err(Wait::NotYet(o)) => return Ok(o),
            Err(Wait::Err(e)) => return Err(e),
        };
        let info = match self.reference.info().await {
            Ok(i) => i,
            Err(Wait::NotYet(o)) => {
                return Ok(Observation::waiting(
                    o.phase,
                    format!(
                        "Electrum server at block {height}; reference bitcoind: {}",
                        o.text
                    ),
                ))
            }
            Err(Wait::Err(e)) => return Err(e),
        };
        Ok(observe(height, info.blocks, self.tolerance))
    }

    async fn server_height(&mut self) -> Result<u64, Wait> {
        let what = format!("Electrum server at {}", self.address);
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(&what)).await {
            Ok(r) => r,
            Err(_) => Err(Wait::Err(ProbeError::transient(format!(
                "no complete reply from {what} within {:.1}s",
                timeout.as_secs_f64()
            )))),
        }
    }

    async fn exchange(&mut self, what: &str) -> Result<u64, Wait> {
        let tcp = match TcpStream::connect((self.host.as_str(), self.port)).await {
            Ok(s) => s,
            Err(e) => {
                return Err(Wait::NotYet(Observation::waiting(
                    "down",
                    format!("{what} is not answering ({e})"),
                )))
            }
        };
        let Some(cert_file) = self.tls_cert_file.clone() else {
            return talk(tcp, what).await;
        };
        let certs = match read_certs(&cert_file) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(Wait::NotYet(Observation::waiting(
                    "no-cert",
                    format!("waiting for the server certificate {}", cert_file.display()),
                )))
            }
            Err(e) => {
                return Err(Wait::Err(ProbeError::misconfig(format!(
                    "{e:#} (`backend.tls_cert_file`)"
                ))))
            }
        };
        let cfg = self
            .cache
            .get(certs, |c| Ok(Arc::new(c)))
            .map_err(|e| Wait::Err(ProbeError::misconfig(format!("{e:#}"))))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| {
            Wait::Err(ProbeError::misconfig(format!(
                "field `backend.address`: {:?} is not a valid TLS server name ({e})",
                self.host
            )))
        })?;
        self.cache.mismatch.store(false, Ordering::SeqCst);
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await;
        match tls {
            Ok(s) => talk(s, what).await,
            Err(_) if self.cache.mismatch.load(Ordering::SeqCst) => Err(Wait::Err(ProbeError::misconfig(format!(
                "the TLS certificate presented by {what} is not the one in {} (`backend.tls_cert_file`)",
                cert_file.display()
            )))),
            Err(e) => Err(Wait::Err(ProbeError::misconfig(format!(
                "failed to set up TLS with {what}: {e} (is `backend.tls` right for this port?)"
            )))),
        }
    }
}

/// server.version, then blockchain.headers.subscribe; returns the height.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(stream: S, what: &str) -> Result<u64, Wait> {
    let mut s = BufReader::new(stream);
    let version = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "server.version",
        "params": ["chainstead-sync-gate", PROTOCOL],
    });
    let subscribe = serde_json::json!({
        "jsonrpc": "2.0", "id": 2, "method": "blockchain.headers.subscribe", "params": [],
    });
    send_line(&mut s, &version, what).await?;
    let _server = reply_for(&mut s, 1, "server.version", what).await?;
    send_line(&mut s, &subscribe, what).await?;
    let tip = reply_for(&mut s, 2, "blockchain.headers.subscribe", what).await?;
    let tip: Tip = serde_json::from_value(tip).map_err(|e| {
        Wait::Err(ProbeError::misconfig(format!(
            "unparseable blockchain.headers.subscribe result from {what}: {e}"
        )))
    })?;
    Ok(tip.height)
}

async fn send_line<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    msg: &serde_json::Value,
    what: &str,
) -> Result<(), Wait> {
    let mut line = msg.to_string();
    line.push('\n');
    let io = async {
        s.get_mut().write_all(line.as_bytes()).await?;
        s.get_mut().flush().await
    };
    io.await.map_err(|e| {
        Wait::Err(ProbeError::transient(format!(
            "failed to send a request to {what}: {e}"
        )))
    })
}

/// Reads lines until the response with `id`, skipping notifications.
async fn reply_for<S: AsyncRead + Unpin>(
    s: &mut BufReader<S>,
    id: u64,
    method: &str,
    what: &str,
) -> Result<serde_json::Value, Wait> {
    loop {
        let line = match read_line_bounded(s, MAX_BODY).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                return Err(Wait::Err(ProbeError::transient(format!(
                    "{what} closed the connection before answering {method}"
                ))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Wait::Err(ProbeError::misconfig(format!(
                    "the reply from {what} to {method} is longer than {} KiB without a newline: \
                     this does not speak the Electrum protocol (check `backend.address` and `backend.tls`)",
                    MAX_BODY / 1024
                ))))
            }
            Err(e) => {
                return Err(Wait::Err(ProbeError::transient(format!(
                    "failed to read from {what}: {e}"
                ))))
            }
        };
        let resp: Response = serde_json::from_slice(&line).map_err(|_| {
            Wait::Err(ProbeError::misconfig(format!(
                "unparseable reply from {what} to {method}: {} (check `backend.address` and `backend.tls`)",
                crate::http::snippet(&line)
            )))
        })?;
        if resp.id.as_ref().and_then(|v| v.as_u64()) != Some(id) {
            // A notification (no id) or something stale: not ours.
            continue;
        }
        if let Some(err) = resp.error.filter(|e| !e.is_null()) {
            return Err(Wait::Err(ProbeError::misconfig(format!(
                "{what} answered {method} with error {err}"
            ))));
        }
        return resp.result.ok_or_else(|| {
            Wait::Err(ProbeError::misconfig(format!(
                "unparseable reply from {what} to {method}: no result"
            )))
        });
    }
}

/// One `\n`-terminated line of at most `max` bytes; `Ok(None)` at EOF
/// before any byte. A longer line is an `InvalidData` error.
pub async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a line",
                ))
            };
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max + 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}

/// Ready when the server is within `tolerance` blocks of bitcoind.
pub fn observe(server: u64, bitcoind: u64, tolerance: u64) -> Observation {
    if server.saturating_add(tolerance) >= bitcoind {
        return Observation::ready(
            format!("synced at block {server} (bitcoind at {bitcoind})"),
            Some(server),
        );
    }
    let mut o = Observation::waiting("sync", String::new());
    o.height = Some(server);
    o.target = Some(bitcoind);
    o.text = format!(
        "Electrum server at block {server}, bitcoind at {bitcoind} ({} behind)",
        bitcoind - server
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance() {
        assert!(observe(100, 100, 0).ready);
        assert!(!observe(99, 100, 0).ready);
        assert!(observe(99, 100, 1).ready);
        // The server ahead of our bitcoind (a block arrived in between).
        assert!(observe(101, 100, 0).ready);
        assert_eq!(
            observe(90, 100, 0).text,
            "Electrum server at block 90, bitcoind at 100 (10 behind)"
        );
    }

    #[tokio::test]
    async fn bounded_lines() {
        let data: &[u8] = b"{\"a\":1}\r\nxxxxxxxxxxxxxxxxxxxx\n";
        let mut r = BufReader::new(data);
        assert_eq!(
            read_line_bounded(&mut r, 10).await.unwrap().unwrap(),
            b"{\"a\":1}"
        );
        let err = read_line_bounded(&mut r, 10).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let mut empty = BufReader::new(&b""[..]);
        assert!(read_line_bounded(&mut empty, 10).await.unwrap().is_none());
    }
}
