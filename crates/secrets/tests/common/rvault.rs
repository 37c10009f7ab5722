//! A RustyVault server for the tests: started on 127.0.0.1 with its data in
//! a temp dir, initialised, unsealed, with AppRole enabled; plain HTTP, or
//! TLS with a certificate from a test CA (made with the `openssl` CLI).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chainstead_testkit::require_binary;
use chainstead_testkit::vault::RustyVault;
use serde_json::{json, Value};

use super::Env;

/// The DNS name in the test server certificate.
pub const TLS_NAME: &str = "bao.test";

pub struct Rvault {
    addr: SocketAddr,
    root: String,
    unseal_key: String,
    /// CA certificate (PEM) when the listener speaks TLS.
    tls_ca: Option<PathBuf>,
    // Last: the server must outlive nothing else here.
    _certs: Option<tempfile::TempDir>,
    _server: RustyVault,
}

pub use chainstead_testkit::vault::http;

/// The same over TLS, trusting only `ca` and reaching `TLS_NAME` at `addr`.
fn https(
    addr: SocketAddr,
    ca: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .resolve(TLS_NAME, addr)
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("https://{TLS_NAME}:{}{path}", addr.port());
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

/// Makes a CA and a server certificate for `TLS_NAME` (signed by it) in
/// `dir`: ca.pem, server.pem, server.key. Returns the CA path.
pub fn make_certs(dir: &Path, prefix: &str) -> PathBuf {
    let openssl = require_binary("openssl");
    let run = |args: &[&str]| {
        let st = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl {args:?}");
    };
    let ca_key = format!("{prefix}ca.key");
    let ca = format!("{prefix}ca.pem");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        "/CN=chainstead test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let key = format!("{prefix}server.key");
    let csr = format!("{prefix}server.csr");
    let cert = format!("{prefix}server.pem");
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        &format!("/CN={TLS_NAME}"),
    ]);
    let ext = format!("{prefix}server.ext");
    std::fs::write(
        dir.join(&ext),
        format!("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:{TLS_NAME}\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    dir.join(ca)
}

impl Rvault {
    /// Starts, initialises and unseals a plain-HTTP server, enables AppRole
    /// with a role `chainstead`, and writes its role_id and secret_id into
    /// `env`.
    pub fn start(env: &Env) -> Self {
        Self::start_with(env, false)
    }

    /// The same with a TLS listener; the CA is `self.tls_ca()`.
    pub fn start_tls(env: &Env) -> Self {
        Self::start_with(env, true)
    }

    fn start_with(env: &Env, tls: bool) -> Self {
        let (certs, tls_ca) = if tls {
            let certs = tempfile::tempdir().unwrap();
            let ca = make_certs(certs.path(), "");
            (Some(certs), Some(ca))
        } else {
            (None, None)
        };
        let cert_and_key = certs
            .as_ref()
            .map(|d| (d.path().join("server.pem"), d.path().join("server.key")));
        let server = RustyVault::spawn(
            cert_and_key
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
        );
        let mut me = Self {
            addr: server.addr,
            root: String::new(),
            unseal_key: String::new(),
            tls_ca,
            _certs: certs,
            _server: server,
        };
        let init = me
            ._server
            .init_and_unseal(|method, path, token, body| me.raw(method, path, token, body));
        me.root = init.root_token;
        me.unseal_key = init.unseal_key;
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

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        match &self.tls_ca {
            None => http(self.addr, method, path, token, body),
            Some(ca) => https(self.addr, ca, method, path, token, body),
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, Some(&self.root), body)
    }

    pub fn unseal(&self) {
        let (st, b) = self.raw(
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(json!({"key": self.unseal_key})),
        );
        assert_eq!(st, 200);
        assert_eq!(b["sealed"], false);
    }

    pub fn url(&self) -> String {
        if self.tls_ca.is_some() {
            format!("https://{}", self.addr)
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn tls_ca(&self) -> &Path {
        self.tls_ca.as_deref().unwrap()
    }

    pub fn write(&self, path: &str, fields: Value) {
        let (st, b) = self.call("POST", &format!("/v1/secret/{path}"), Some(fields));
        assert!(st == 204 || st == 200, "write {path}: {st} {b}");
    }
}
