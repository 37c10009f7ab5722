//! Real servers for the tests: `rclone serve webdav` and Garage, plus a
//! reader that goes through the pusher's own target clients.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chainstead_backup::manifest::TargetSpec;
use chainstead_backup::targets::Backend;
use chainstead_backup::version::Kind;
pub use chainstead_testkit::vault::http;
use chainstead_testkit::vault::RustyVault;
use chainstead_testkit::{free_port, require_binary, ChildGuard};
use serde_json::{json, Value};

use super::wait_until;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads `latest` and its content through the pusher's own client.
pub fn remote_latest(spec: &Value, scratch: &Path) -> Option<(String, Vec<u8>)> {
    let spec: TargetSpec = serde_json::from_value(spec.clone()).unwrap();
    rt().block_on(async {
        let b = Backend::from_spec(&spec, scratch).ok()?;
        let name = b.latest(Kind::Channel).await.ok()??;
        let data = b.get(Kind::Channel, &name).await.ok()?;
        Some((name, data))
    })
}

pub struct Rclone {
    _child: ChildGuard,
}

/// `rclone serve webdav DIR --addr 127.0.0.1:PORT --user U --pass P`
/// (Debian's rclone 1.60; `--config /dev/null` keeps it from any config).
pub fn rclone(root: &Path, port: u16) -> Rclone {
    let bin = require_binary("rclone");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child =
        ChildGuard::spawn_quiet(Command::new(bin).args(["serve", "webdav"]).arg(root).args([
            "--addr",
            &addr.to_string(),
            "--user",
            "lnd",
            "--pass",
            "dav-pass-123",
            "--config",
            "/dev/null",
        ]));
    child.wait_for_tcp(addr, Duration::from_secs(20));
    Rclone { _child: child }
}

pub struct Garage {
    _child: ChildGuard,
    _dir: tempfile::TempDir,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
}

/// Garage (>= 2.3) as a single node with a default key and bucket:
/// `garage server --single-node --default-bucket` with
/// `GARAGE_DEFAULT_ACCESS_KEY/SECRET_KEY/BUCKET` (Garage quick start). The
/// configuration keys are the quick start's (metadata_dir, data_dir,
/// db_engine, replication_factor, rpc_bind_addr, rpc_public_addr,
/// rpc_secret as 32 bytes of hex, [s3_api] s3_region, api_bind_addr,
/// root_domain).
pub fn garage() -> Garage {
    let bin = require_binary("garage");
    let dir = tempfile::tempdir().unwrap();
    let (rpc, s3) = (free_port(), free_port());
    let config = format!(
        "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
         rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
         [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
        meta = dir.path().join("meta").display(),
        data = dir.path().join("data").display(),
        secret = "7e1c5b2a9d3f4e6a8b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708",
    );
    let cfg = dir.path().join("garage.toml");
    std::fs::write(&cfg, config).unwrap();
    let key_id = "GK0123456789abcdef01234567".to_string();
    let secret = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90".to_string();
    let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&cfg)
        .args(["server", "--single-node", "--default-bucket"])
        .env("GARAGE_DEFAULT_ACCESS_KEY", &key_id)
        .env("GARAGE_DEFAULT_SECRET_KEY", &secret)
        .env("GARAGE_DEFAULT_BUCKET", "lnd-backups")
        .env("RUST_LOG", "garage=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = ChildGuard::new(child);
    let addr: SocketAddr = format!("127.0.0.1:{s3}").parse().unwrap();
    child.wait_for_tcp(addr, Duration::from_secs(30));
    Garage {
        _child: child,
        _dir: dir,
        endpoint: format!("http://127.0.0.1:{s3}"),
        key_id,
        secret,
        bucket: "lnd-backups".into(),
    }
}

impl Garage {
    pub fn spec(&self, dir: &Path, name: &str, secret: &str) -> Value {
        let id = dir.join(format!("{name}-key-id"));
        let sk = dir.join(format!("{name}-secret"));
        std::fs::write(&id, format!("{}\n", self.key_id)).unwrap();
        std::fs::write(&sk, format!("{secret}\n")).unwrap();
        json!({"kind": "s3", "name": name, "endpoint": self.endpoint, "bucket": self.bucket,
               "region": "garage", "prefix": "node1/lnd", "access_key_id_file": id,
               "secret_access_key_file": sk, "allow_http": true})
    }

    /// The default bucket appears a moment after the port opens.
    pub fn wait_ready(&self, spec: &Value, scratch: &Path) {
        let spec: TargetSpec = serde_json::from_value(spec.clone()).unwrap();
        let ok = wait_until(Duration::from_secs(30), || {
            rt().block_on(async {
                match Backend::from_spec(&spec, scratch) {
                    Ok(b) => b.latest(Kind::Channel).await.is_ok(),
                    Err(_) => false,
                }
            })
        });
        let log = std::fs::read_to_string(self._dir.path().join("garage.log")).unwrap_or_default();
        assert!(ok, "garage never served the bucket:\n{log}");
    }
}

/// RustyVault stands in for OpenBao where it can: KV v1 (it has no KV v2).
pub struct Rvault {
    _server: RustyVault,
    pub addr: SocketAddr,
    pub root: String,
}

/// A RustyVault server, initialised and unsealed (chainstead_testkit::vault).
pub fn rvault() -> Rvault {
    let server = RustyVault::spawn(None);
    let addr = server.addr;
    let init =
        server.init_and_unseal(|method, path, token, body| http(addr, method, path, token, body));
    Rvault {
        _server: server,
        addr,
        root: init.root_token,
    }
}
