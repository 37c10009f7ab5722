//! A RustyVault server for the tests: started on 127.0.0.1 with its data in
//! a temp dir, initialised, unsealed, with AppRole enabled.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use chainstead_testkit::{free_port, require_binary, wait_for_tcp, ChildGuard};
use serde_json::{json, Value};

use super::Env;

pub struct Rvault {
    addr: SocketAddr,
    root: String,
    unseal_key: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

/// Minimal HTTP/1.1 client for setting the server up.
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
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    req.push_str("Content-Type: application/json\r\n\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

impl Rvault {
    /// Starts, initialises and unseals a server, enables AppRole with a
    /// role `chainstead`, and writes its role_id and secret_id into `env`.
    pub fn start(env: &Env) -> Self {
        let bin = require_binary("rvault");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Config keys from RustyVault's src/cli/config.rs (storage, listener
        // with tls_disable, api_addr, work_dir, pid_file).
        let config = format!(
            "storage \"file\" {{\n  path = \"{data}\"\n}}\nlistener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = \"true\"\n}}\napi_addr = \"http://{addr}\"\nlog_level = \"warn\"\nwork_dir = \"{work}\"\npid_file = \"{work}/rvault.pid\"\n",
            data = dir.path().join("data").display(),
            work = dir.path().display(),
        );
        let cfg = dir.path().join("rvault.hcl");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new(bin)
            .arg("server")
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let child = ChildGuard::new(child);
        wait_for_tcp(addr, Duration::from_secs(20));
        let (st, init) = http(
            addr,
            "PUT",
            "/v1/sys/init",
            None,
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(st, 200, "init: {init}");
        let root = init["root_token"].as_str().unwrap().to_owned();
        let unseal_key = init["keys"][0].as_str().unwrap().to_owned();
        let me = Self {
            addr,
            root,
            unseal_key,
            _child: child,
            _dir: dir,
        };
        me.unseal();
        let (st, b) = me.call(
            "POST",
            "/v1/sys/auth/approle",
            Some(json!({"type": "approle"})),
        );
        assert!(st == 204 || st == 200, "enable approle: {st} {b}");
        let (st, b) = me.call(
            "POST",
            "/v1/auth/approle/role/chainstead",
            Some(json!({"token_ttl": "10m", "secret_id_ttl": "10m"})),
        );
        assert!(st == 204 || st == 200, "role: {st} {b}");
        let (_, b) = me.call("GET", "/v1/auth/approle/role/chainstead/role-id", None);
        std::fs::write(env.path("role-id"), b["data"]["role_id"].as_str().unwrap()).unwrap();
        let (_, b) = me.call("POST", "/v1/auth/approle/role/chainstead/secret-id", None);
        std::fs::write(
            env.path("secret-id"),
            format!("{}\n", b["data"]["secret_id"].as_str().unwrap()),
        )
        .unwrap();
        me
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        http(self.addr, method, path, Some(&self.root), body)
    }

    pub fn unseal(&self) {
        let (st, b) = http(
            self.addr,
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(json!({"key": self.unseal_key})),
        );
        assert_eq!(st, 200);
        assert_eq!(b["sealed"], false);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn write(&self, path: &str, fields: Value) {
        let (st, b) = self.call("POST", &format!("/v1/secret/{path}"), Some(fields));
        assert!(st == 204 || st == 200, "write {path}: {st} {b}");
    }
}
