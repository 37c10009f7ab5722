//! Contract tests of `chainstead-secrets` against a **replay** of OpenBao's
//! HTTP API (no OpenBao can run here). Every answer follows OpenBao's
//! documented responses; the sources are cited in `common/mod.rs` and at
//! each failure script below. The real binary runs; its logs are captured
//! and searched for secret values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chainstead_testkit::{free_port, Reply, Response};
use common::*;
use serde_json::json;

const RPC_PW: &str = "rpc-password-Qw7Zk3Lm9Np2";
const WALLET_PW: &str = "wallet-password-Hs4Tv8Xc1Bd6";
const TH_PW: &str = "thunderhub-master-Jf5Rg2Yp0Wa3";

fn stack_services(owner: &str, group: &str) -> serde_json::Value {
    json!({
        "bitcoind": {"owner": owner, "group": group, "secrets": {
            "rpc-lnd": {"path": "chainstead/bitcoind", "field": "rpc-lnd", "file": "rpcauth-lnd.conf",
                        "transform": {"rpcauth": {"user": "lnd"}}}
        }},
        "lnd": {"owner": owner, "group": group, "secrets": {
            "rpc-password": {"path": "chainstead/bitcoind", "field": "rpc-lnd", "file": "bitcoind-rpc-password"},
            "wallet-password": {"path": "chainstead/lnd", "field": "wallet-password", "file": "wallet-password", "mode": "0440"}
        }},
        "thunderhub": {"owner": owner, "group": group, "secrets": {
            "master": {"path": "chainstead/thunderhub", "field": "master", "file": "master-password",
                       "transform": {"bcrypt": {"cost": 4, "prefix": "thunderhub-"}}}
        }}
    })
}

fn seeded(kv: Option<u8>) -> std::sync::Arc<FakeBao> {
    let bao = FakeBao::new(kv);
    bao.put(
        "chainstead/bitcoind",
        json!({"rpc-lnd": RPC_PW, "port": 8332}),
    );
    bao.put("chainstead/lnd", json!({"wallet-password": WALLET_PW}));
    bao.put("chainstead/thunderhub", json!({"master": TH_PW}));
    bao
}

fn assert_stack_installed(env: &Env, ids: Option<(u32, u32)>) {
    let rt = env.runtime();
    assert_eq!(names(&rt), ["bitcoind", "lnd", "thunderhub"]);
    // rpcauth: recompute the HMAC with the salt it chose.
    let line = std::fs::read_to_string(rt.join("bitcoind/rpcauth-lnd.conf")).unwrap();
    let rest = line.strip_prefix("rpcauth=lnd:").unwrap().trim_end();
    let (salt, mac) = rest.split_once('$').unwrap();
    use hmac::Mac;
    let mut h = hmac::Hmac::<sha2::Sha256>::new_from_slice(salt.as_bytes()).unwrap();
    h.update(RPC_PW.as_bytes());
    assert_eq!(mac, hex::encode(h.finalize().into_bytes()));
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/bitcoind-rpc-password")).unwrap(),
        RPC_PW
    );
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/wallet-password")).unwrap(),
        WALLET_PW
    );
    let th = std::fs::read_to_string(rt.join("thunderhub/master-password")).unwrap();
    let hash = th.strip_prefix("thunderhub-").unwrap();
    assert!(hash.starts_with("$2b$04$"), "{th}");
    assert!(bcrypt::verify(TH_PW, hash).unwrap());
    for (f, mode) in [
        ("bitcoind/rpcauth-lnd.conf", 0o400),
        ("lnd/bitcoind-rpc-password", 0o400),
        ("lnd/wallet-password", 0o440),
        ("thunderhub/master-password", 0o400),
    ] {
        assert_eq!(mode_of(&rt.join(f)), mode, "{f}");
        if let Some(ids) = ids {
            assert_eq!(ids_of(&rt.join(f)), ids, "{f}");
        }
    }
    assert_eq!(mode_of(&rt.join("lnd")), 0o711);
}

/// AppRole login, KV v2 detected through sys/internal/ui/mounts, reads of
/// `.data.data`, every transform, owners and modes, token revoked, and no
/// value (nor the secret_id or token) in any log line.
#[test]
fn loads_the_stack_from_kv_v2() {
    let env = Env::new();
    let bao = seeded(Some(2));
    let (srv, m, ids) = env.serve(&bao, json!({}), stack_services);
    let r = load(&m);
    assert!(r.ok, "load failed");
    assert_stack_installed(&env, ids);
    assert!(
        *bao.revoked.lock().unwrap(),
        "the login token was not revoked"
    );
    let reqs = srv.requests();
    assert!(reqs
        .iter()
        .any(|q| q.path == "/v1/secret/data/chainstead/lnd"));
    // The shared path is read once although two services use it.
    assert_eq!(
        reqs.iter()
            .filter(|q| q.path == "/v1/secret/data/chainstead/bitcoind")
            .count(),
        1
    );
    assert_eq!(
        reqs.iter()
            .filter(|q| q.path.starts_with("/v1/sys/internal/ui/mounts/"))
            .count(),
        1
    );
    assert_no_leak(&r, &[RPC_PW, WALLET_PW, TH_PW, SECRET_ID, ROLE_ID, TOKEN]);
}

/// KV v1: the mounts endpoint reports no version option → `<mount>/<path>`
/// and `.data`.
#[test]
fn loads_from_kv_v1() {
    let env = Env::new();
    let bao = seeded(Some(1));
    let (srv, m, ids) = env.serve(&bao, json!({}), stack_services);
    let r = load(&m);
    assert!(r.ok);
    assert_stack_installed(&env, ids);
    assert!(srv
        .requests()
        .iter()
        .any(|q| q.path == "/v1/secret/chainstead/lnd"));
    assert_no_leak(&r, &[RPC_PW, WALLET_PW, TH_PW, SECRET_ID, TOKEN]);
}

/// A server without sys/internal/ui/mounts (404) is KV v1, as the bao CLI
/// assumes (command/kv_helpers.go).
#[test]
fn mounts_404_means_kv_v1() {
    let env = Env::new();
    let bao = seeded(None);
    let (_srv, m, ids) = env.serve(&bao, json!({}), stack_services);
    assert!(load(&m).ok);
    assert_stack_installed(&env, ids);
}

/// 403 `{"errors":["permission denied"]}` on a read fails at once (no
/// retries until the deadline), names the API path and the policy, and
/// leaves no set for the service, not even the previous one.
#[test]
fn permission_denied_fails_at_once_and_removes_the_old_set() {
    let env = Env::new();
    let bao = seeded(Some(2));
    let (srv, m, _) = env.serve(&bao, json!({"deadline_secs": 30}), stack_services);
    assert!(load(&m).ok);
    bao.set_hook(|req, _| {
        (req.path == "/v1/secret/data/chainstead/lnd")
            .then(|| Response::json(403, &json!({"errors": ["permission denied"]})).into())
    });
    let r = load(&m);
    assert!(!r.ok);
    assert_eq!(r.code, Some(1));
    assert!(
        r.elapsed < Duration::from_secs(10),
        "403 must not be retried: {:?}",
        r.elapsed
    );
    assert!(
        r.stderr
            .contains("permission denied reading secret/data/chainstead/lnd"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("policy"));
    // lnd's set is gone; the others were loaded again.
    assert_eq!(names(&env.runtime()), ["bitcoind", "thunderhub"]);
    assert_eq!(
        srv.requests()
            .iter()
            .filter(|q| q.path == "/v1/secret/data/chainstead/lnd")
            .count(),
        2
    );
    assert_no_leak(&r, &[RPC_PW, WALLET_PW, TH_PW, SECRET_ID, TOKEN]);
}

/// A path that does not exist (404 `{"errors":[]}`) and a missing field are
/// named precisely.
#[test]
fn missing_path_and_field_are_named() {
    let env = Env::new();
    let bao = FakeBao::new(Some(2));
    bao.put("chainstead/lnd", json!({"other": "x"}));
    let (_srv, m, _) = env.serve(&bao, json!({}), |o, g| {
        json!({"lnd": {"owner": o, "group": g, "secrets": {
            "a": {"path": "chainstead/nothing", "field": "pw", "file": "a"},
            "b": {"path": "chainstead/lnd", "field": "wallet-password", "file": "b"}
        }}})
    });
    let r = load(&m);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("secret/data/chainstead/nothing does not exist"),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("secret/data/chainstead/lnd has no field \"wallet-password\" (it has: other)"));
    assert!(names(&env.runtime()).is_empty());
}

/// Loads the whole stack from `bao` with a 30 s deadline and expects it to
/// fail long before that (an error waiting cannot heal), naming `needle`.
fn load_fails_at_once(
    env: &Env,
    bao: &std::sync::Arc<FakeBao>,
    needle: &str,
) -> (Run, chainstead_testkit::ReplayServer) {
    let (srv, m, _) = env.serve(bao, json!({"deadline_secs": 30}), stack_services);
    let r = load(&m);
    assert!(!r.ok);
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert!(r.stderr.contains(needle), "{}", r.stderr);
    (r, srv)
}

/// A wrong secret_id: OpenBao answers 400 "invalid role or secret ID";
/// one branch of its AppRole code echoes the secret_id
/// (`invalid secret_id "<id>"`, path_login.go), which must not reach our
/// log. Fails at once, naming the files and the AppRole cause.
#[test]
fn bad_secret_id_fails_at_once_without_echoing_it() {
    let env = Env::new();
    let bao = seeded(Some(2));
    bao.set_hook(|req, _| {
        (req.path == "/v1/auth/approle/login").then(|| {
            Response::json(
                400,
                &json!({"errors": [format!("invalid secret_id \"{SECRET_ID}\"")]}),
            )
            .into()
        })
    });
    let (r, srv) = load_fails_at_once(&env, &bao, "refused the AppRole login");
    assert!(r.stderr.contains("secret-id"));
    assert_eq!(srv.requests().len(), 1, "a refused login is not retried");
    assert_no_leak(&r, &[SECRET_ID, ROLE_ID]);
    assert!(names(&env.runtime()).is_empty());
}

/// Sealed (503 `{"errors":["Vault is sealed"]}`, what a sealed server
/// answers to every request) for the first three requests, then unsealed:
/// the loader waits with backoff and succeeds.
#[test]
fn waits_for_unseal() {
    let env = Env::new();
    let bao = seeded(Some(2));
    let answered = std::sync::atomic::AtomicUsize::new(0);
    bao.set_hook(move |_, _| {
        (answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3)
            .then(|| Response::json(503, &json!({"errors": ["Vault is sealed"]})).into())
    });
    let (_srv, m, ids) = env.serve(&bao, json!({"deadline_secs": 20}), stack_services);
    let r = load(&m);
    assert!(r.ok);
    assert!(r.stderr.contains("sealed (503)"));
    assert_stack_installed(&env, ids);
}

fn fails_after_deadline(reply: Reply, state: &str) {
    let env = Env::new();
    let bao = seeded(Some(2));
    bao.set_hook(move |_, _| Some(reply.clone()));
    let (srv, m, _) = env.serve(
        &bao,
        json!({"deadline_secs": 2, "request_timeout_secs": 1}),
        stack_services,
    );
    let r = load(&m);
    assert!(!r.ok);
    assert!(
        r.elapsed >= Duration::from_secs(2),
        "gave up before the deadline: {:?}",
        r.elapsed
    );
    assert!(
        r.elapsed < Duration::from_secs(15),
        "overran the deadline: {:?}",
        r.elapsed
    );
    assert!(
        r.stderr
            .contains(&format!("OpenBao at {} is {state}", srv.url())),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("deadline"));
    assert!(names(&env.runtime()).is_empty());
}

/// Sealed until the deadline: fails naming the address and the state.
#[test]
fn sealed_until_the_deadline() {
    fails_after_deadline(
        Response::json(503, &json!({"errors": ["Vault is sealed"]})).into(),
        "sealed (503)",
    );
}

/// 429 is what OpenBao's sys/health documents for an unsealed standby
/// (openbao.org/api-docs/system/health), and what health-checking load
/// balancers pass on; retried like sealed.
#[test]
fn standby_until_the_deadline() {
    fails_after_deadline(
        Response::json(429, &json!({"errors": []})).into(),
        "a standby node (429)",
    );
}

/// A server that accepts and never answers: each request is bounded by
/// request_timeout_secs, the whole by the deadline.
#[test]
fn slow_server_hits_the_deadline() {
    fails_after_deadline(
        Reply::Delayed(Duration::from_secs(30), Response::new(200, "{}")),
        "not answering",
    );
}

/// Nothing listens on the port.
#[test]
fn unreachable_until_the_deadline() {
    let env = Env::new();
    let (o, g, _) = owner();
    let addr = format!("http://127.0.0.1:{}", free_port());
    let m = env.manifest(
        Some(&addr),
        json!({"deadline_secs": 2}),
        stack_services(&o, &g),
    );
    let r = load(&m);
    assert!(!r.ok);
    assert!(r.elapsed >= Duration::from_secs(2));
    assert!(
        r.stderr
            .contains(&format!("OpenBao at {addr} is unreachable")),
        "{}",
        r.stderr
    );
}

/// An endless body on a read is cut at 1 MiB and fails at once.
#[test]
fn huge_body_is_refused() {
    let env = Env::new();
    let bao = seeded(Some(2));
    bao.set_hook(|req, _| {
        req.path
            .starts_with("/v1/secret/data/")
            .then_some(Reply::Endless)
    });
    load_fails_at_once(&env, &bao, "larger than the 1048576 bytes");
    assert!(names(&env.runtime()).is_empty());
}

/// A 200 with a body that is not JSON (a captive proxy, a cut reply)
/// fails at once.
#[test]
fn malformed_json_is_refused() {
    let env = Env::new();
    let bao = seeded(Some(2));
    bao.set_hook(|req, _| {
        (req.path == "/v1/secret/data/chainstead/lnd").then(|| {
            Response::new(200, "{\"data\": {\"data\": {\"wallet-password\": ")
                .header("Content-Type", "application/json")
                .into()
        })
    });
    load_fails_at_once(&env, &bao, "not the JSON OpenBao sends");
    assert_eq!(names(&env.runtime()), ["bitcoind", "thunderhub"]);
}

fn generating_services(owner: &str, group: &str) -> serde_json::Value {
    json!({
        "bitcoind": {"owner": owner, "group": group, "secrets": {
            "rpc-lnd": {"path": "chainstead/bitcoind", "field": "rpc-lnd", "file": "rpcauth-lnd.conf",
                        "transform": {"rpcauth": {"user": "lnd"}}, "generate": {"length": 40}}
        }},
        "lnd": {"owner": owner, "group": group, "secrets": {
            "rpc-password": {"path": "chainstead/bitcoind", "field": "rpc-lnd", "file": "rpc-password",
                             "generate": {"length": 40}},
            "wallet-password": {"path": "chainstead/bitcoind", "field": "lnd-wallet", "file": "wallet-password",
                                "generate": {"length": 24, "alphabet": "hex"}}
        }}
    })
}

/// generate: an absent path is generated and written back with
/// `options.cas = 0`; the files hold the stored values; a second load
/// reuses them.
#[test]
fn generates_absent_values_with_check_and_set_zero() {
    let env = Env::new();
    let bao = FakeBao::new(Some(2));
    let (srv, m, _) = env.serve(&bao, json!({}), generating_services);
    let r = load(&m);
    assert!(r.ok);
    let writes: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|q| q.method == "POST" && q.path == "/v1/secret/data/chainstead/bitcoind")
        .collect();
    assert_eq!(
        writes.len(),
        1,
        "both fields are written in one check-and-set write"
    );
    assert_eq!(writes[0].json()["options"]["cas"], 0);
    let (version, stored) = bao.get("chainstead/bitcoind").unwrap();
    assert_eq!(version, 1);
    let rpc = stored["rpc-lnd"].as_str().unwrap().to_owned();
    let wallet = stored["lnd-wallet"].as_str().unwrap().to_owned();
    assert_eq!(rpc.len(), 40);
    assert!(wallet.len() == 24 && wallet.chars().all(|c| c.is_ascii_hexdigit()));
    let rt = env.runtime();
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/rpc-password")).unwrap(),
        rpc
    );
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/wallet-password")).unwrap(),
        wallet
    );
    assert_no_leak(&r, &[&rpc, &wallet]);
    // Second run: nothing generated, same values.
    let r = load(&m);
    assert!(r.ok);
    assert_eq!(bao.get("chainstead/bitcoind").unwrap().0, 1);
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/rpc-password")).unwrap(),
        rpc
    );
    // A field added later is generated with check-and-set on the current
    // version, keeping the others.
    bao.put("chainstead/bitcoind", json!({"rpc-lnd": rpc}));
    assert!(load(&m).ok);
    let writes: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|q| q.method == "POST" && q.path == "/v1/secret/data/chainstead/bitcoind")
        .collect();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes.last().unwrap().json()["options"]["cas"], 2);
    let (_, stored) = bao.get("chainstead/bitcoind").unwrap();
    assert_eq!(stored["rpc-lnd"], rpc.as_str());
}

/// Two hosts race: between our read (404) and our write another host
/// stored its value, so our `cas = 0` write gets OpenBao's 400
/// "check-and-set parameter did not match the current version"; we read
/// again and use the winner's value.
#[test]
fn a_lost_check_and_set_race_uses_the_winners_value() {
    let env = Env::new();
    let bao = FakeBao::new(Some(2));
    bao.set_hook(|req, bao| {
        if req.method == "POST" && req.path == "/v1/secret/data/chainstead/bitcoind" && bao.get("chainstead/bitcoind").is_none() {
            bao.put("chainstead/bitcoind", json!({"rpc-lnd": "the-other-hosts-value-1234567890", "lnd-wallet": "abcdef0123456789abcdef01"}));
            return Some(
                Response::json(400, &json!({"errors": ["check-and-set parameter did not match the current version"]})).into(),
            );
        }
        None
    });
    let (_srv, m, _) = env.serve(&bao, json!({}), generating_services);
    let r = load(&m);
    assert!(r.ok);
    assert_eq!(
        std::fs::read_to_string(env.runtime().join("lnd/rpc-password")).unwrap(),
        "the-other-hosts-value-1234567890"
    );
    assert!(r
        .stderr
        .contains("another writer changed secret/chainstead/bitcoind first"));
    assert_eq!(
        bao.get("chainstead/bitcoind").unwrap().0,
        1,
        "our value never overwrote theirs"
    );
}

/// generate on KV v1 cannot be done safely (no check-and-set): refused
/// with the reason.
#[test]
fn generate_on_kv_v1_is_refused() {
    let env = Env::new();
    let bao = FakeBao::new(Some(1));
    let (srv, m, _) = env.serve(&bao, json!({}), generating_services);
    let r = load(&m);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("generate needs a KV v2 mount"),
        "{}",
        r.stderr
    );
    assert!(srv
        .requests()
        .iter()
        .all(|q| q.method != "POST" || q.path.starts_with("/v1/auth/")));
}

/// Sets are replaced while two readers loop: one opens files by path
/// (what services do) and must always find every file complete, never
/// missing or cut; the other pins the directory (open once, then openat)
/// and must never see files of two generations; when the set it pinned is
/// replaced and deleted it gets ENOENT and starts over. After a failed load
/// the set is absent, never mixed.
#[test]
fn readers_never_see_a_partial_or_mixed_set() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let env = Env::new();
    let bao = FakeBao::new(Some(2));
    let gen = |n: usize| json!({"a": format!("gen-{n:04}-a"), "b": format!("gen-{n:04}-b"), "c": format!("gen-{n:04}-c")});
    bao.put("chainstead/set", gen(0));
    let (_srv, m, _) = env.serve(&bao, json!({}), |o, g| {
        json!({"svc": {"owner": o, "group": g, "secrets": {
            "a": {"path": "chainstead/set", "field": "a", "file": "a"},
            "b": {"path": "chainstead/set", "field": "b", "file": "b"},
            "c": {"path": "chainstead/set", "field": "c", "file": "c"}
        }}})
    });
    assert!(load(&m).ok);
    let dir = env.runtime().join("svc");
    let stop = Arc::new(AtomicBool::new(false));
    let by_path = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0usize;
            while !stop.load(Ordering::SeqCst) {
                for f in ["a", "b", "c"] {
                    let v = std::fs::read_to_string(dir.join(f))
                        .expect("a file of the set was missing");
                    assert!(
                        v.len() == 10 && v.starts_with("gen-") && v.ends_with(f),
                        "cut file: {v:?}"
                    );
                    reads += 1;
                }
            }
            reads
        })
    };
    let pinned = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            use nix::fcntl::{open, openat, OFlag};
            use nix::sys::stat::Mode;
            let (mut whole, mut restarted) = (0usize, 0usize);
            while !stop.load(Ordering::SeqCst) {
                let d = open(&dir, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty())
                    .expect("the set directory was missing");
                let mut values = Vec::new();
                for f in ["a", "b", "c"] {
                    match openat(&d, f, OFlag::O_RDONLY, Mode::empty()) {
                        Ok(fd) => {
                            let mut s = String::new();
                            std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s)
                                .unwrap();
                            values.push(s);
                        }
                        Err(nix::errno::Errno::ENOENT) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                let gens: Vec<&str> = values.iter().map(|v| &v[..8]).collect();
                assert!(gens.iter().all(|g| *g == gens[0]), "mixed set: {values:?}");
                if values.len() == 3 {
                    whole += 1;
                } else {
                    restarted += 1;
                }
            }
            (whole, restarted)
        })
    };
    for n in 1..=15 {
        bao.put("chainstead/set", gen(n));
        assert!(load(&m).ok);
    }
    stop.store(true, Ordering::SeqCst);
    let reads = by_path
        .join()
        .expect("a by-path reader saw a missing or cut file");
    let (whole, restarted) = pinned.join().expect("a pinned reader saw a mixed set");
    eprintln!("by-path reads: {reads}; pinned: {whole} whole sets, {restarted} restarts");
    assert!(reads > 0 && whole > 0);
    assert_eq!(
        std::fs::read_to_string(dir.join("a")).unwrap(),
        "gen-0015-a"
    );
    assert_eq!(
        names(&env.runtime()),
        ["svc"],
        "no staging directory is left"
    );
    // A failing load removes the set as a whole.
    bao.set_hook(|req, _| {
        req.path
            .starts_with("/v1/secret/")
            .then(|| Response::json(403, &json!({"errors": ["permission denied"]})).into())
    });
    assert!(!load(&m).ok);
    assert!(names(&env.runtime()).is_empty());
}

/// `load --service` touches only that service.
#[test]
fn load_one_service() {
    let env = Env::new();
    let bao = seeded(Some(2));
    let (srv, m, _) = env.serve(&bao, json!({}), stack_services);
    let r = run(&[
        "load",
        "--manifest",
        m.to_str().unwrap(),
        "--service",
        "lnd",
    ]);
    assert!(r.ok);
    assert_eq!(names(&env.runtime()), ["lnd"]);
    assert!(!srv.requests().iter().any(|q| q.path.contains("thunderhub")));
    let r = run(&[
        "load",
        "--manifest",
        m.to_str().unwrap(),
        "--service",
        "nope",
    ]);
    assert!(!r.ok);
    assert!(r.stderr.contains("failed to find service nope"));
}

/// `check --online`: a table with present / absent / missing per secret,
/// never a value; exit 1 when something is missing; the token is revoked.
#[test]
fn check_online_prints_a_table_without_values() {
    let env = Env::new();
    let bao = FakeBao::new(Some(2));
    bao.put("chainstead/bitcoind", json!({"rpc-lnd": RPC_PW}));
    let (srv, m, _) = env.serve(&bao, json!({}), |o, g| json!({"lnd": {"owner": o, "group": g, "secrets": {
            "rpc": {"path": "chainstead/bitcoind", "field": "rpc-lnd", "file": "rpc"},
            "wallet": {"path": "chainstead/lnd", "field": "wallet", "file": "wallet", "generate": {}},
            "tls": {"path": "chainstead/lnd", "field": "tls", "file": "tls"}
        }}}));
    let r = run(&["check", "--manifest", m.to_str().unwrap(), "--online"]);
    assert_eq!(r.code, Some(1));
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("lnd      {name} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("rpc").ends_with("present"), "{}", r.stdout);
    assert!(
        line("wallet").ends_with("absent: load generates it"),
        "{}",
        r.stdout
    );
    assert!(line("tls").contains("MISSING"), "{}", r.stdout);
    assert!(r.stdout.contains("secret/chainstead/bitcoind#rpc-lnd"));
    assert!(*bao.revoked.lock().unwrap());
    assert!(
        srv.requests()
            .iter()
            .all(|q| q.method != "POST" || q.path.starts_with("/v1/auth/")),
        "check writes nothing"
    );
    assert!(names(&env.runtime()).is_empty(), "check installs nothing");
    assert_no_leak(&r, &[RPC_PW, SECRET_ID, TOKEN]);
    // Offline it only shows the plan.
    let r = run(&["check", "--manifest", m.to_str().unwrap()]);
    assert!(r.ok);
    assert!(r.stdout.contains("not checked (use --online)"));
    assert_eq!(
        srv.requests()
            .iter()
            .filter(|q| q.path == "/v1/auth/approle/login")
            .count(),
        1
    );
}

/// `store`: a file's content goes to KV v2 with check-and-set, next to the
/// fields already there; a different existing value needs --overwrite; a
/// binary file needs --base64.
#[test]
fn store_writes_a_file_to_kv_v2() {
    let env = Env::new();
    let bao = FakeBao::new(Some(2));
    bao.put("chainstead/lnd", json!({"wallet-password": WALLET_PW}));
    let srv = bao.start();
    let m = env.manifest(Some(&srv.url()), json!({}), stack_services("1", "1"));
    let seed =
        "abandon ability able about above absent absorb abstract absurd abuse access accident";
    std::fs::write(env.path("seed.txt"), format!("{seed}\n")).unwrap();
    let ms = m.to_str().unwrap().to_owned();
    let seed_file = env.path("seed.txt").to_str().unwrap().to_owned();
    let store = |extra: &[&str]| {
        let mut args = vec![
            "store",
            "--manifest",
            &ms,
            "--path",
            "chainstead/lnd",
            "--field",
            "seed",
            "--from-file",
            &seed_file,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = store(&[]);
    assert!(r.ok);
    let (version, stored) = bao.get("chainstead/lnd").unwrap();
    assert_eq!(version, 2);
    assert_eq!(stored, json!({"wallet-password": WALLET_PW, "seed": seed}));
    let post = srv
        .requests()
        .into_iter()
        .rfind(|q| q.method == "POST" && q.path == "/v1/secret/data/chainstead/lnd")
        .unwrap();
    assert_eq!(post.json()["options"]["cas"], 1);
    assert_no_leak(&r, &[seed, WALLET_PW, SECRET_ID, TOKEN]);
    // Same value again: unchanged, no write.
    assert!(store(&[]).ok);
    assert_eq!(bao.get("chainstead/lnd").unwrap().0, 2);
    // A different value is refused without --overwrite.
    std::fs::write(env.path("seed.txt"), "other words\n").unwrap();
    let r = store(&[]);
    assert!(!r.ok);
    assert!(r.stderr.contains("--overwrite"));
    assert!(store(&["--overwrite"]).ok);
    assert_eq!(bao.get("chainstead/lnd").unwrap().1["seed"], "other words");
    // Binary: refused as text, stored as base64.
    std::fs::write(env.path("seed.txt"), [0xff, 0x00, 0x10]).unwrap();
    assert!(!store(&["--overwrite"]).ok);
    assert!(store(&["--overwrite", "--base64"]).ok);
    assert_eq!(bao.get("chainstead/lnd").unwrap().1["seed"], "/wAQ");
}

/// `validate` exits 0 for a good manifest and 2 naming the field for a bad
/// one, without touching the network.
#[test]
fn validate_exit_codes() {
    let env = Env::new();
    let m = env.manifest(
        Some("https://127.0.0.1:1"),
        json!({}),
        stack_services("bitcoind", "bitcoind"),
    );
    let r = run(&["validate", "--manifest", m.to_str().unwrap()]);
    assert!(r.ok, "users need not exist at build time");
    let m = env.manifest(
        Some("https://127.0.0.1:1"),
        json!({}),
        json!({"lnd": {"owner": "lnd", "group": "lnd", "secrets": {
            "a": {"path": "p", "field": "f", "file": "x", "mode": "0644"},
            "b": {"path": "p", "field": "g", "file": "x"}
        }}}),
    );
    let r = run(&["validate", "--manifest", m.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("services.lnd.secrets.a.mode"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("services.lnd.secrets.b.file"),
        "{}",
        r.stderr
    );
    std::fs::write(&m, "{\"version\": 1, \"services\": {}, \"extra\": 1}").unwrap();
    let r = run(&["validate", "--manifest", m.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("unknown field `extra`"), "{}", r.stderr);
    // load refuses an invalid manifest the same way.
    assert_eq!(load(&m).code, Some(2));
}

/// Local mode: values generated once into the state dir (0700/0400) and
/// reused; the same runtime files as with OpenBao; a value without generate
/// must be placed by the operator (store works locally too).
#[test]
fn local_mode_generates_once() {
    let env = Env::new();
    let (o, g, ids) = owner();
    let m = env.manifest(None, serde_json::Value::Null, generating_services(&o, &g));
    let r = load(&m);
    assert!(r.ok);
    let rt = env.runtime();
    let first = std::fs::read_to_string(rt.join("lnd/rpc-password")).unwrap();
    assert_eq!(first.len(), 40);
    assert_no_leak(&r, &[&first]);
    let state = env.path("state");
    assert_eq!(mode_of(&state), 0o700);
    let stored = state.join("secret/chainstead/bitcoind/rpc-lnd");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), first);
    assert_eq!(mode_of(&stored), 0o400);
    if let Some(ids) = ids {
        assert_eq!(ids_of(&rt.join("lnd/rpc-password")), ids);
        assert_eq!(ids_of(&stored), (0, 0));
    }
    assert!(load(&m).ok);
    assert_eq!(
        std::fs::read_to_string(rt.join("lnd/rpc-password")).unwrap(),
        first
    );
    // Without generate the value must exist.
    let m = env.manifest(
        None,
        serde_json::Value::Null,
        json!({"backup": {"owner": o, "group": g, "secrets": {
            "s3": {"path": "chainstead/backup/s3", "field": "secret-key", "file": "s3-secret-key"}
        }}}),
    );
    let r = load(&m);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("secret/chainstead/backup/s3/secret-key"),
        "{}",
        r.stderr
    );
    std::fs::write(env.path("key"), "S3KEY-abc\n").unwrap();
    let r = run(&[
        "store",
        "--manifest",
        m.to_str().unwrap(),
        "--path",
        "chainstead/backup/s3",
        "--field",
        "secret-key",
        "--from-file",
        env.path("key").to_str().unwrap(),
    ]);
    assert!(r.ok);
    assert!(load(&m).ok);
    assert_eq!(
        std::fs::read_to_string(rt.join("backup/s3-secret-key")).unwrap(),
        "S3KEY-abc"
    );
}

/// An unknown user is a named configuration error before any request, and
/// the previous sets are removed.
#[test]
fn unknown_owner_fails_before_fetching() {
    let env = Env::new();
    let bao = seeded(Some(2));
    let (srv, m, _) = env.serve(&bao, json!({}), stack_services);
    assert!(load(&m).ok);
    let before = srv.requests().len();
    let m = env.manifest(
        Some(&srv.url()),
        json!({}),
        stack_services("no-such-user-chainstead", "0"),
    );
    let r = load(&m);
    assert!(!r.ok);
    assert!(r.stderr.contains("no-such-user-chainstead"), "{}", r.stderr);
    assert_eq!(srv.requests().len(), before, "nothing was fetched");
    assert!(names(&env.runtime()).is_empty(), "no stale set is left");
}
