//! The client against a replay of OpenBao's HTTP API. Shapes: AppRole login
//! → 200 `{"auth": {"client_token": ...}}`, bad credentials → 400
//! `{"errors": ["invalid role or secret ID"]}` (openbao.org/api-docs/auth/approle;
//! builtin/credential/approle/path_login.go); KV v2 read → `{"data": {"data":
//! {...}, "metadata": {"version": n}}}`, `?version=N` for an older one,
//! metadata → `{"data": {"current_version": n, "oldest_version": m}}`, never
//! written → 404 `{"errors": []}`, a lost check-and-set → 400
//! "check-and-set parameter did not match the current version"
//! (builtin/logical/kv/path_data.go, path_metadata.go); sealed → 503
//! `{"errors": ["Vault is sealed"]}`; revoke-self → 204.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chainstead_common::Secret;
use chainstead_openbao::{Auth, Client, Config, Field, Metadata, Read, Retry};
use chainstead_testkit::{ReplayServer, Reply, Request, Response};
use serde_json::{json, Value};

const TOKEN: &str = "s.replayed-token";

#[derive(Default)]
struct Fake {
    versions: Mutex<Vec<Value>>,
    sealed_for: Mutex<u32>,
}

impl Fake {
    fn answer(&self, req: &Request) -> Reply {
        {
            let mut s = self.sealed_for.lock().unwrap();
            if *s > 0 {
                *s -= 1;
                return Response::json(503, &json!({"errors": ["Vault is sealed"]})).into();
            }
        }
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        if path == "/v1/auth/approle/login" {
            let b = req.json();
            if b["role_id"] != "role-id-7f3a" || b["secret_id"] != "sid" {
                return Response::json(400, &json!({"errors": ["invalid role or secret ID"]}))
                    .into();
            }
            return Response::json(200, &json!({"auth": {"client_token": TOKEN}})).into();
        }
        if req.header("x-vault-token") != Some(TOKEN) {
            return Response::json(403, &json!({"errors": ["permission denied"]})).into();
        }
        let mut vs = self.versions.lock().unwrap();
        match (req.method.as_str(), path) {
            ("POST", "/v1/auth/token/revoke-self") => Response::new(204, "").into(),
            ("GET", "/v1/secret/data/p") => {
                let n = query
                    .strip_prefix("version=")
                    .map_or(vs.len(), |v| v.parse().unwrap());
                match n.checked_sub(1).and_then(|i| vs.get(i)) {
                    None => Response::json(404, &json!({"errors": []})).into(),
                    Some(d) => Response::json(
                        200,
                        &json!({"data": {"data": d, "metadata": {"version": n}}}),
                    )
                    .into(),
                }
            }
            ("POST", "/v1/secret/data/p") => {
                let b = req.json();
                if let Some(cas) = b.pointer("/options/cas").and_then(Value::as_u64) {
                    if cas != vs.len() as u64 {
                        return Response::json(
                            400,
                            &json!({"errors": ["check-and-set parameter did not match the current version"]}),
                        )
                        .into();
                    }
                }
                vs.push(b["data"].clone());
                Response::json(200, &json!({"data": {"version": vs.len()}})).into()
            }
            ("GET", "/v1/secret/metadata/p") if !vs.is_empty() => Response::json(
                200,
                &json!({"data": {"current_version": vs.len(), "oldest_version": 1}}),
            )
            .into(),
            ("GET", "/v1/sys/internal/ui/mounts/secret") => Response::json(
                200,
                &json!({"data": {"type": "kv", "options": {"version": "2"}}}),
            )
            .into(),
            _ => Response::json(404, &json!({"errors": []})).into(),
        }
    }
}

fn start() -> (Arc<Fake>, ReplayServer) {
    let fake = Arc::new(Fake::default());
    let f = fake.clone();
    (fake, ReplayServer::start(move |r| f.answer(r)))
}

fn config(url: &str, retry: Retry) -> Config {
    Config {
        address: url.to_owned(),
        ca_file: None,
        tls_server_name: None,
        request_timeout: Duration::from_secs(10),
        retry,
        user_agent: "test".into(),
    }
}

fn approle(dir: &Path, secret_id: &str) -> Auth {
    std::fs::write(dir.join("role"), "role-id-7f3a\n").unwrap();
    std::fs::write(dir.join("sid"), format!("{secret_id}\n")).unwrap();
    Auth::AppRole {
        mount: "approle".into(),
        role_id_file: dir.join("role"),
        secret_id_file: dir.join("sid"),
    }
}

fn fields(v: &str) -> BTreeMap<String, Field> {
    BTreeMap::from([("name".to_owned(), Field::Str(Secret::new(v.to_owned())))])
}

fn name_of(r: Read) -> Option<String> {
    match r {
        Read::Found(d) => match &d.fields["name"] {
            Field::Str(s) => Some(s.expose().to_owned()),
            Field::Other(v) => panic!("not a string: {v}"),
        },
        Read::Absent { .. } => None,
    }
}

#[tokio::test]
async fn login_write_read_history_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, srv) = start();
    let mut c = Client::new(&config(&srv.url(), Retry::Never)).unwrap();
    c.login(&approle(dir.path(), "sid")).await.unwrap();
    assert_eq!(c.mount_version("secret").await.unwrap(), 2);
    assert!(matches!(
        c.kv_read(2, "secret", "p").await.unwrap(),
        Read::Absent { .. }
    ));
    assert_eq!(c.kv2_metadata("secret", "p").await.unwrap(), None);
    c.kv2_write("secret", "p", &fields("one")).await.unwrap();
    assert!(c
        .kv2_write_cas("secret", "p", &fields("two"), 1)
        .await
        .unwrap());
    // A stale check-and-set loses and is reported as such, not as an error.
    assert!(!c
        .kv2_write_cas("secret", "p", &fields("x"), 1)
        .await
        .unwrap());
    assert_eq!(fake.versions.lock().unwrap().len(), 2);
    assert_eq!(
        name_of(c.kv_read(2, "secret", "p").await.unwrap()).as_deref(),
        Some("two")
    );
    assert_eq!(
        name_of(c.kv2_read_version("secret", "p", 1).await.unwrap()).as_deref(),
        Some("one")
    );
    assert_eq!(
        name_of(c.kv2_read_version("secret", "p", 9).await.unwrap()),
        None
    );
    assert_eq!(
        c.kv2_metadata("secret", "p").await.unwrap(),
        Some(Metadata {
            current_version: 2,
            oldest_version: 1
        })
    );
    c.revoke().await;
    let reqs = srv.requests();
    assert!(reqs.iter().any(|r| r.path == "/v1/auth/token/revoke-self"));
    // The token travels only in its header, never in a URL.
    assert!(reqs.iter().all(|r| !r.path.contains(TOKEN)));
}

#[tokio::test]
async fn a_refused_login_names_the_files_and_hides_the_secret_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_fake, srv) = start();
    let mut c = Client::new(&config(&srv.url(), Retry::Never)).unwrap();
    let e = format!(
        "{:#}",
        c.login(&approle(dir.path(), "wrong-sid-value"))
            .await
            .unwrap_err()
    );
    assert!(e.contains("failed to log in to OpenBao"), "{e}");
    assert!(e.contains("invalid role or secret ID"), "{e}");
    assert!(
        e.contains(&dir.path().join("sid").display().to_string()),
        "{e}"
    );
    assert!(!e.contains("wrong-sid-value"), "{e}");
}

#[tokio::test]
async fn sealed_is_waited_out_only_with_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, srv) = start();
    *fake.sealed_for.lock().unwrap() = 2;
    let mut c = Client::new(&config(&srv.url(), Retry::Never)).unwrap();
    let e = c
        .login(&approle(dir.path(), "sid"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("is sealed (503)"), "{e}");
    let retry = Retry::Until {
        deadline: Instant::now() + Duration::from_secs(60),
        secs: 60,
        setting: "openbao.deadline_secs".into(),
    };
    let mut c = Client::new(&config(&srv.url(), retry)).unwrap();
    c.login(&approle(dir.path(), "sid")).await.unwrap();
    assert_eq!(*fake.sealed_for.lock().unwrap(), 0);
}

#[tokio::test]
async fn without_a_token_reads_are_denied_with_the_policy_named() {
    let (_fake, srv) = start();
    let c = Client::new(&config(&srv.url(), Retry::Never)).unwrap();
    let e = format!("{:#}", c.kv_read(2, "secret", "p").await.unwrap_err());
    assert!(e.contains("permission denied reading secret/data/p"), "{e}");
}

#[tokio::test]
async fn a_huge_body_is_refused() {
    let srv = ReplayServer::start(|_| Reply::Endless);
    let c = Client::new(&config(&srv.url(), Retry::Never)).unwrap();
    let e = format!("{:#}", c.kv_read(1, "secret", "p").await.unwrap_err());
    assert!(e.contains("larger than the 1048576 bytes"), "{e}");
}
