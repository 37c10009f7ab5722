//! A minimal HTTP/1.1 server for `GET /metrics`: one request per
//! connection, bounded request size and time. Scrapes are serialized, so
//! two Prometheus servers never make the backends answer twice at once.
//! Between scrapes nothing runs: the exporter looks at the backends only
//! when asked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::collect::Collector;

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))
}

/// Serves until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    collector: Collector,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let collector = Arc::new(Mutex::new(collector));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and the like: wait a little, keep serving.
                        tracing::warn!("failed to accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let c = collector.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, c).await {
                        tracing::debug!("connection from {peer}: {e:#}");
                    }
                });
            }
        }
    }
}

async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .context("failed to read the request")?;
        if n == 0 {
            anyhow::bail!("the client closed the connection mid-request");
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            anyhow::bail!("request head larger than {MAX_HEAD} bytes");
        }
    }
}

async fn handle(mut stream: TcpStream, collector: Arc<Mutex<Collector>>) -> Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(h) => h?,
        Err(_) => anyhow::bail!("no complete request within {READ_TIMEOUT:?}"),
    };
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => {
            let text = collector.lock().await.scrape().await;
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
        }
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "chainstead-exporter: metrics at /metrics\n".to_string(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await.ok();
    Ok(())
}
