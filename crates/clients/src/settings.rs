//! The settings of the daemons more than one tool talks to (bitcoind,
//! monerod, an Electrum server), as the tools' manifests carry them, with
//! the offline checks each manifest runs on them. `at` in the checks is
//! where the object sits in the manifest (`backend`, `fulcrum`), so that
//! every message names the field to fix.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chainstead_common::manifest::{PlainHttp, Problems};
use serde::Deserialize;

/// Marker so that an electrum `reference` object may carry
/// `"kind": "bitcoind"` like a top-level backend (and nothing else).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum BitcoindKind {
    #[serde(rename = "bitcoind")]
    Bitcoind,
}

/// Chains as bitcoind's `getblockchaininfo` names them in its `chain` field
/// (bitcoin/bitcoin src/util/chaintype.cpp: "main", "test", "testnet4",
/// "signet", "regtest").
pub const BITCOIN_CHAINS: &[&str] = &["main", "test", "testnet4", "signet", "regtest"];

/// Network types as monerod's `/get_info` reports them in `nettype`
/// (monero-project/monero src/rpc/core_rpc_server.cpp, on_get_info:
/// "mainnet", "testnet", "stagenet", or "fakechain" for --regtest).
pub const MONERO_NETTYPES: &[&str] = &["mainnet", "stagenet", "testnet", "fakechain"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitcoindBackend {
    /// Only meaningful inside an electrum `reference`; the tag of a
    /// top-level backend is consumed by the enum.
    #[serde(default)]
    pub kind: Option<BitcoindKind>,
    pub rpc_url: String,
    pub chain: String,
    #[serde(default)]
    pub cookie_file: Option<PathBuf>,
    #[serde(default)]
    pub rpc_user: Option<String>,
    #[serde(default)]
    pub rpc_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonerodBackend {
    pub rpc_url: String,
    pub nettype: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectrumBackend {
    /// `host:port` of the Electrum server's TCP or SSL port.
    pub address: String,
    #[serde(default)]
    pub tls: bool,
    /// The server's certificate (or the CA that issued it); required with
    /// `tls: true`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tolerance_blocks: u64,
    pub reference: BitcoindBackend,
}

impl BitcoindBackend {
    /// `at` is the path of this object in the manifest, for messages.
    pub fn validate(&self, p: &mut Problems, at: &str) {
        // bitcoind's RPC has no TLS: plain http to another host is its
        // normal way (a reverse proxy may add https).
        p.http_url(&format!("{at}.rpc_url"), &self.rpc_url, PlainHttp::Anywhere);
        if !BITCOIN_CHAINS.contains(&self.chain.as_str()) {
            p.push(
                &format!("{at}.chain"),
                format!(
                    "{:?}: use one of {} (the `chain` value of getblockchaininfo)",
                    self.chain,
                    BITCOIN_CHAINS.join(", ")
                ),
            );
        }
        match (&self.cookie_file, &self.rpc_user, &self.rpc_password_file) {
            (Some(cookie), None, None) => {
                p.secret_file(&format!("{at}.cookie_file"), cookie);
            }
            (None, Some(user), Some(pw)) => {
                if user.is_empty() || user.contains(':') {
                    p.push(
                        &format!("{at}.rpc_user"),
                        "must be non-empty and contain no colon",
                    );
                }
                p.secret_file(&format!("{at}.rpc_password_file"), pw);
            }
            (None, None, None) => p.push(
                &format!("{at}.cookie_file"),
                format!(
                    "missing: set it to bitcoind's .cookie file, \
                     or set `{at}.rpc_user` and `{at}.rpc_password_file`"
                ),
            ),
            (Some(_), _, _) => p.push(
                &format!("{at}.cookie_file"),
                format!(
                    "set together with `{at}.rpc_user`/`{at}.rpc_password_file`: use one way to authenticate"
                ),
            ),
            (None, Some(_), None) => p.push(
                &format!("{at}.rpc_password_file"),
                format!("missing: it is required with `{at}.rpc_user`"),
            ),
            (None, None, Some(_)) => p.push(
                &format!("{at}.rpc_user"),
                format!("missing: it is required with `{at}.rpc_password_file`"),
            ),
        }
    }
}

impl MonerodBackend {
    /// `at` is the path of this object in the manifest, for messages.
    pub fn validate(&self, p: &mut Problems, at: &str) {
        p.http_url(&format!("{at}.rpc_url"), &self.rpc_url, PlainHttp::Anywhere);
        if !MONERO_NETTYPES.contains(&self.nettype.as_str()) {
            p.push(
                &format!("{at}.nettype"),
                format!(
                    "{:?}: use one of {} (the `nettype` value of get_info; --regtest reports fakechain)",
                    self.nettype,
                    MONERO_NETTYPES.join(", ")
                ),
            );
        }
    }
}

impl ElectrumBackend {
    /// `at` is the path of this object in the manifest, for messages.
    pub fn validate(&self, p: &mut Problems, at: &str) {
        let address = format!("{at}.address");
        if let Err(e) = host_port(&address, &self.address) {
            p.push(&address, format!("{e:#}"));
        }
        match (&self.tls, &self.tls_cert_file) {
            (true, None) => p.push(
                &format!("{at}.tls_cert_file"),
                format!("missing: with `{at}.tls` true it must name the server's certificate (or its CA)"),
            ),
            (_, Some(c)) => {
                p.absolute_path(&format!("{at}.tls_cert_file"), c);
            }
            (false, None) => {}
        }
        self.reference.validate(p, &format!("{at}.reference"));
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6).
pub fn host_port(field: &str, s: &str) -> Result<(String, u16)> {
    let (host, port) = s.rsplit_once(':').with_context(|| {
        format!("field `{field}` is {s:?}: use host:port, e.g. 127.0.0.1:50001")
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("field `{field}` is {s:?}: the port must be 1 to 65535"))?;
    if host.is_empty() {
        bail!("field `{field}` is {s:?}: the host is empty");
    }
    Ok((host.to_string(), port))
}
