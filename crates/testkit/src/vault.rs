//! RustyVault, a Vault-API server written independently of Vault/OpenBao,
//! started for integration tests on 127.0.0.1 with its data in a temp dir.
//! It stands in for OpenBao where it can: init/unseal, AppRole, KV v1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{free_port, require_binary, ChildGuard};

/// A running, not yet initialised server.
pub struct RustyVault {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    _child: ChildGuard,
}

/// Root token and unseal key of an initialised server.
pub struct Init {
    pub root_token: String,
    pub unseal_key: String,
}

impl RustyVault {
    /// Starts `rvault server` with a plain-HTTP listener, or a TLS listener
    /// serving `tls` = (certificate, key). Config keys from RustyVault's
    /// src/cli/config.rs: storage "file", listener "tcp" with tls_*,
    /// api_addr, work_dir, pid_file.
    pub fn spawn(tls: Option<(&Path, &Path)>) -> Self {
        let bin = require_binary("rvault");
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let listener_tls = match tls {
            None => "  tls_disable = \"true\"\n".to_owned(),
            Some((cert, key)) => format!(
                "  tls_disable = \"false\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  tls_disable_client_certs = \"true\"\n",
                cert.display(),
                key.display()
            ),
        };
        let config = format!(
            "storage \"file\" {{\n  path = \"{data}\"\n}}\nlistener \"tcp\" {{\n  address = \"{addr}\"\n{listener_tls}}}\napi_addr = \"http://{addr}\"\nlog_level = \"warn\"\nwork_dir = \"{work}\"\npid_file = \"{work}/rvault.pid\"\n",
            data = dir.path().join("data").display(),
            work = dir.path().display(),
        );
        let cfg = dir.path().join("rvault.hcl");
        std::fs::write(&cfg, config).unwrap();
        let mut child =
            ChildGuard::spawn_quiet(Command::new(bin).arg("server").arg("--config").arg(&cfg));
        child.wait_for_tcp(addr, Duration::from_secs(20));
        Self {
            addr,
            dir,
            _child: child,
        }
    }

    /// `PUT /v1/sys/init` (one key share) and `PUT /v1/sys/unseal`, as in
    /// Vault's API, over `call` (plain HTTP: [`http`]; TLS: the caller's).
    pub fn init_and_unseal(
        &self,
        call: impl Fn(&str, &str, Option<&str>, Option<Value>) -> (u16, Value),
    ) -> Init {
        let (st, init) = call(
            "PUT",
            "/v1/sys/init",
            None,
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(st, 200, "init: {init}");
        let init = Init {
            root_token: init["root_token"].as_str().unwrap().to_owned(),
            unseal_key: init["keys"][0].as_str().unwrap().to_owned(),
        };
        let (st, b) = call(
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(json!({"key": init.unseal_key})),
        );
        assert_eq!(st, 200, "unseal: {b}");
        assert_eq!(b["sealed"], false, "still sealed: {b}");
        init
    }
}

/// A minimal HTTP/1.1 client for setting a plain-HTTP Vault-API server up:
/// one request per connection, `X-Vault-Token` when given, JSON both ways
/// (a body that is not JSON reads as null).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
