//! Shared helpers for the integration tests: a replay of OpenBao's HTTP API,
//! manifests in temp dirs, and running the real binary with its logs
//! captured.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

pub mod rvault;

use chainstead_testkit::{ReplayServer, Reply, Request, Response};
use serde_json::{json, Value};

pub const ROLE_ID: &str = "2b1f3e0c-role-id-7a6d";
pub const SECRET_ID: &str = "9c8e7f6a-secret-id-b3c2";
pub const TOKEN: &str = "s.replayed-client-token-x1y2z3";

/// A failure script: an answer that replaces the normal one, or None.
pub type Hook = Box<dyn Fn(&Request, &FakeBao) -> Option<Reply> + Send>;

/// A scripted OpenBao. Shapes, each from the OpenBao docs or source:
/// - AppRole login `POST /v1/auth/approle/login` → 200
///   `{"auth": {"client_token": ..., "policies": [...], ...}}`
///   (openbao.org/api-docs/auth/approle "Login with AppRole"); bad
///   credentials → 400 `{"errors": ["invalid role or secret ID"]}`
///   (openbao/openbao builtin/credential/approle/path_login.go).
/// - `GET /v1/sys/internal/ui/mounts/<mount>` → 200 `{"data": {"type":
///   "kv", "path": "secret/", "options": {"version": "2"}}}`
///   (vault/logical_system.go `pathInternalUIMountRead`, `mountInfo`).
/// - KV v2 `GET /v1/secret/data/<p>` → 200 `{"data": {"data": {...},
///   "metadata": {"version": n, ...}}}`; never written → 404
///   `{"errors": []}`; `POST` with `options.cas` → 200 `{"data":
///   {"version": n+1}}` or 400 `{"errors": ["check-and-set parameter did
///   not match the current version"]}` (builtin/logical/kv/path_data.go,
///   openbao.org/api-docs/secret/kv/kv-v2).
/// - KV v1 `GET /v1/secret/<p>` → 200 `{"data": {...}}`, `POST` → 204
///   (openbao.org/api-docs/secret/kv/kv-v1).
/// - Without the token → 403 `{"errors": ["permission denied"]}`.
/// - `POST /v1/auth/token/revoke-self` → 204 (api-docs/auth/token).
pub struct FakeBao {
    pub kv_version: Mutex<Option<u8>>,
    /// path inside the mount → (version, fields)
    pub kv: Mutex<HashMap<String, (u64, Value)>>,
    pub revoked: Mutex<bool>,
    /// Answers that take precedence (failure scripts); None → normal.
    pub hook: Mutex<Option<Hook>>,
}

impl FakeBao {
    pub fn new(kv_version: Option<u8>) -> Arc<Self> {
        Arc::new(Self {
            kv_version: Mutex::new(kv_version),
            kv: Mutex::new(HashMap::new()),
            revoked: Mutex::new(false),
            hook: Mutex::new(None),
        })
    }

    pub fn put(&self, path: &str, fields: Value) {
        let mut kv = self.kv.lock().unwrap();
        let version = kv.get(path).map_or(0, |(v, _)| *v) + 1;
        kv.insert(path.to_owned(), (version, fields));
    }

    pub fn get(&self, path: &str) -> Option<(u64, Value)> {
        self.kv.lock().unwrap().get(path).cloned()
    }

    pub fn set_hook(&self, f: impl Fn(&Request, &FakeBao) -> Option<Reply> + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(f));
    }

    pub fn start(self: &Arc<Self>) -> ReplayServer {
        let me = self.clone();
        ReplayServer::start(move |req| me.answer(req))
    }

    fn answer(&self, req: &Request) -> Reply {
        if let Some(hook) = self.hook.lock().unwrap().as_ref() {
            if let Some(r) = hook(req, self) {
                return r;
            }
        }
        let path = req.path.split('?').next().unwrap_or("");
        if req.method == "POST" && path == "/v1/auth/approle/login" {
            let body = req.json();
            if body["role_id"] == ROLE_ID && body["secret_id"] == SECRET_ID {
                return Response::json(200, &login_reply()).into();
            }
            return Response::json(400, &json!({"errors": ["invalid role or secret ID"]})).into();
        }
        if req.header("x-vault-token") != Some(TOKEN) {
            return Response::json(403, &json!({"errors": ["permission denied"]})).into();
        }
        if req.method == "POST" && path == "/v1/auth/token/revoke-self" {
            *self.revoked.lock().unwrap() = true;
            return Response::new(204, "").into();
        }
        let version = *self.kv_version.lock().unwrap();
        if let Some(mount) = path.strip_prefix("/v1/sys/internal/ui/mounts/") {
            if mount != "secret" {
                return Response::json(403, &json!({"errors": [format!("preflight capability check returned 403, please ensure client's policies grant access to path \"{mount}/\"")]})).into();
            }
            return match version {
                None => Response::json(404, &json!({"errors": []})).into(),
                Some(v) => Response::json(200, &mounts_reply(v)).into(),
            };
        }
        match version {
            Some(2) => self.kv2(req, path),
            _ => self.kv1(req, path),
        }
    }

    fn kv2(&self, req: &Request, path: &str) -> Reply {
        let Some(p) = path.strip_prefix("/v1/secret/data/") else {
            return Response::json(404, &json!({"errors": []})).into();
        };
        match req.method.as_str() {
            "GET" => match self.get(p) {
                Some((v, data)) => Response::json(200, &kv2_read_reply(v, &data)).into(),
                None => Response::json(404, &json!({"errors": []})).into(),
            },
            "POST" => {
                let body = req.json();
                let current = self.get(p).map_or(0, |(v, _)| v);
                if let Some(cas) = body["options"]["cas"].as_u64() {
                    if cas != current {
                        return Response::json(
                            400,
                            &json!({"errors": ["check-and-set parameter did not match the current version"]}),
                        )
                        .into();
                    }
                }
                self.put(p, body["data"].clone());
                Response::json(200, &json!({"data": {"created_time": "2026-11-21T07:00:00Z", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": current + 1}})).into()
            }
            _ => Response::json(405, &json!({"errors": []})).into(),
        }
    }

    fn kv1(&self, req: &Request, path: &str) -> Reply {
        let Some(p) = path.strip_prefix("/v1/secret/") else {
            return Response::json(404, &json!({"errors": []})).into();
        };
        match req.method.as_str() {
            "GET" => match self.get(p) {
                Some((_, data)) => Response::json(
                    200,
                    &json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 2_764_800, "data": data, "wrap_info": null, "warnings": null, "auth": null}),
                )
                .into(),
                None => Response::json(404, &json!({"errors": []})).into(),
            },
            "POST" | "PUT" => {
                self.put(p, req.json());
                Response::new(204, "").into()
            }
            _ => Response::json(405, &json!({"errors": []})).into(),
        }
    }
}

pub fn login_reply() -> Value {
    json!({
        "request_id": "b6a3c1b0-0000-0000-0000-000000000001",
        "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": null, "wrap_info": null, "warnings": null,
        "auth": {
            "client_token": TOKEN,
            "accessor": "accessor-1",
            "policies": ["chainstead", "default"],
            "token_policies": ["chainstead", "default"],
            "metadata": {"role_name": "chainstead"},
            "lease_duration": 1200, "renewable": true,
            "entity_id": "", "token_type": "service", "orphan": true
        }
    })
}

pub fn mounts_reply(v: u8) -> Value {
    json!({
        "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": {
            "accessor": "kv_1234", "config": {"default_lease_ttl": 0, "max_lease_ttl": 0},
            "description": "key/value secret storage", "external_entropy_access": false,
            "local": false, "options": if v == 2 { json!({"version": "2"}) } else { Value::Null },
            "path": "secret/", "seal_wrap": false, "type": "kv", "uuid": "u"
        },
        "wrap_info": null, "warnings": null, "auth": null
    })
}

pub fn kv2_read_reply(version: u64, data: &Value) -> Value {
    json!({
        "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": {
            "data": data,
            "metadata": {"created_time": "2026-11-21T07:00:00Z", "custom_metadata": null,
                         "deletion_time": "", "destroyed": false, "version": version}
        },
        "wrap_info": null, "warnings": null, "auth": null
    })
}

/// A temp dir with the AppRole files and room for runtime and state dirs.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("role-id"), format!("{ROLE_ID}\n")).unwrap();
        std::fs::write(dir.path().join("secret-id"), format!("{SECRET_ID}\n")).unwrap();
        Self { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn runtime(&self) -> PathBuf {
        self.path("run")
    }

    /// Writes a manifest; `openbao` is merged over AppRole defaults
    /// (`Value::Null` for local mode).
    pub fn manifest(&self, address: Option<&str>, openbao: Value, services: Value) -> PathBuf {
        let bao = match address {
            None => Value::Null,
            Some(a) => {
                let mut b = json!({
                    "address": a,
                    "auth": {"approle": {
                        "role_id_file": self.path("role-id"),
                        "secret_id_file": self.path("secret-id")
                    }},
                    // Generous: a loaded CI machine must not turn a slow
                    // answer into a retry (requests are counted) or a failure.
                    "deadline_secs": 30,
                    "request_timeout_secs": 10
                });
                if let Value::Object(extra) = openbao {
                    for (k, v) in extra {
                        b[k] = v;
                    }
                }
                b
            }
        };
        let m = json!({
            "version": 1,
            "openbao": bao,
            "state_dir": self.path("state"),
            "runtime_dir": self.runtime(),
            "services": services,
        });
        let p = self.path("manifest.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        p
    }
}

impl Env {
    /// Starts `bao` and writes a manifest pointing at it whose services
    /// `services` lays out for the [`owner`] and group; returns the server
    /// (keep it alive), the manifest and the ids to check files against.
    pub fn serve(
        &self,
        bao: &Arc<FakeBao>,
        openbao: Value,
        services: impl FnOnce(&str, &str) -> Value,
    ) -> (ReplayServer, PathBuf, Option<(u32, u32)>) {
        let srv = bao.start();
        let (o, g, ids) = owner();
        let m = self.manifest(Some(&srv.url()), openbao, services(&o, &g));
        (srv, m, ids)
    }
}

/// Owner and group for the files: nobody/65534 when root (CI), else our own
/// ids (owner checks are then skipped).
pub fn owner() -> (String, String, Option<(u32, u32)>) {
    if nix::unistd::geteuid().is_root() {
        ("nobody".into(), "65534".into(), Some((65534, 65534)))
    } else {
        eprintln!("not root: file owner checks are skipped, modes are still checked");
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        (uid.to_string(), gid.to_string(), None)
    }
}

pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: std::time::Duration,
}

pub fn run(args: &[&str]) -> Run {
    let started = std::time::Instant::now();
    let out: Output = Command::new(env!("CARGO_BIN_EXE_chainstead-secrets"))
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .output()
        .unwrap();
    let r = Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    eprintln!(
        "--- {args:?} → {:?} in {:?}\n{}{}",
        r.code, r.elapsed, r.stdout, r.stderr
    );
    r
}

pub fn load(manifest: &Path) -> Run {
    run(&["load", "--manifest", manifest.to_str().unwrap()])
}

/// Fails the test if any of `values` appears in the output.
pub fn assert_no_leak(r: &Run, values: &[&str]) {
    for v in values {
        assert!(
            !r.stdout.contains(v) && !r.stderr.contains(v),
            "a secret value appeared in the output: {v}"
        );
    }
}

pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

pub fn ids_of(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}
