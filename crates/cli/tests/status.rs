//! `chainstead status` against the gate tests' replay servers (bitcoind,
//! LND behind a TLS front shaped like LND's) and, ignored by default, a
//! real regtest monerod. Unit states come from [`Fixed`], which returns the
//! text `systemctl show` prints; the backup state is written with the
//! backup crate's own types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../sync-gate/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chainstead_backup::state::{Accepted, Lane, State, TargetState};
use chainstead_cli::status::units::Fixed;
use chainstead_cli::status::{exit_of, report, Manifest, Report};
use chainstead_common::exit::Exit;
use chainstead_testkit::{free_port, ReplayServer, Reply, Response};
use serde_json::{json, Value};

const MACAROON: &[u8] = b"\x02\x01\x03lnd-readonly-macaroon-bytes";

/// A replayed bitcoind answering getblockchaininfo and getnetworkinfo
/// (bitcoin/bitcoin src/rpc/net.cpp: `connections`) with cookie auth.
fn bitcoind(blocks: u64, headers: u64) -> ReplayServer {
    let auth = support::basic(support::COOKIE);
    ReplayServer::start(move |req| {
        if req.header("authorization") != Some(auth.as_str()) {
            return support::unauthorized();
        }
        match req.json()["method"].as_str() {
            Some("getblockchaininfo") => support::rpc_ok(
                req,
                support::chain_info("main", blocks, headers, blocks < headers, 0.5),
            ),
            Some("getnetworkinfo") => support::rpc_ok(
                req,
                json!({"version": 280000, "connections": 8, "connections_in": 0, "connections_out": 8}),
            ),
            _ => support::rpc_err(req, -32601, "Method not found"),
        }
    })
}

struct FakeLnd {
    _server: ReplayServer,
    addr: std::net::SocketAddr,
    cert_pem: String,
}

/// LND's REST over TLS: /v1/state without a macaroon (stateservice), the
/// rest only with the hex macaroon in Grpc-Metadata-macaroon (field names
/// as crates/clients/src/lnd.rs cites them from lnrpc).
fn lnd(hang: bool) -> FakeLnd {
    let mac = hex::encode(MACAROON);
    let server = ReplayServer::start(move |req| {
        if hang {
            return Reply::Silence;
        }
        if req.path == "/v1/state" {
            return Response::json(200, &json!({"state": "SERVER_ACTIVE"})).into();
        }
        if req.header("grpc-metadata-macaroon") != Some(mac.as_str()) {
            return Response::json(500, &json!({"code": 2, "message": "verification failed: signature mismatch after caveat verification"})).into();
        }
        match req.path.as_str() {
            "/v1/getinfo" => Response::json(
                200,
                &json!({"identity_pubkey": "02abc", "num_active_channels": 3, "num_inactive_channels": 1,
                        "num_peers": 5, "block_height": 870000, "synced_to_chain": true}),
            )
            .into(),
            "/v1/channels" => {
                let chan = |active: bool, id: &str| {
                    json!({"active": active, "remote_pubkey": "03def", "chan_id": id, "capacity": "1000000",
                           "local_balance": "500000", "remote_balance": "83333", "pending_htlcs": []})
                };
                Response::json(
                    200,
                    &json!({"channels": [chan(true, "1"), chan(true, "2"), chan(true, "3"), chan(false, "4")]}),
                )
                .into()
            }
            "/v1/channels/pending" => Response::json(
                200,
                &json!({"total_limbo_balance": "0", "pending_open_channels": [{"channel": {"remote_node_pub": "02aa"}}],
                        "pending_force_closing_channels": [], "waiting_close_channels": []}),
            )
            .into(),
            "/v1/balance/blockchain" => Response::json(
                200,
                &json!({"total_balance": "300000", "confirmed_balance": "300000", "unconfirmed_balance": "0"}),
            )
            .into(),
            "/v1/balance/channels" => Response::json(
                200,
                &json!({"local_balance": {"sat": "1500000", "msat": "1500000000"},
                        "remote_balance": {"sat": "250000", "msat": "250000000"}}),
            )
            .into(),
            _ => Response::json(404, &json!({"code": 5, "message": "Not Found"})).into(),
        }
    });
    let (pem, der, key) = support::lnd_like_cert();
    let addr = support::tls_front(der, key, server.addr());
    FakeLnd {
        _server: server,
        addr,
        cert_pem: pem,
    }
}

/// The backup state: `usb` holds the newest channel.backup, `s3` an older
/// one and last succeeded `s3_age` seconds ago.
fn write_backup_state(dir: &Path, s3_age: f64) {
    let now = chainstead_backup::state::now();
    let newest = Accepted {
        name: "channel-20261201T230000Z-aaaa.backup".into(),
        sha256: "aa".repeat(32),
        size: 1234,
        since: now - 600.0,
    };
    let lane = |name: &str, age: f64, err: Option<&str>| Lane {
        last_success: Some(now - age),
        last_name: Some(name.into()),
        last_sha256: None,
        last_error: err.map(str::to_string),
        last_error_time: err.map(|_| now - 60.0),
        failures_total: u64::from(err.is_some()),
        consecutive_failures: u64::from(err.is_some()),
        bytes_pushed_total: 1234,
    };
    let mut targets = BTreeMap::new();
    targets.insert(
        "usb".to_string(),
        TargetState {
            kind: "directory".into(),
            channel: lane(&newest.name, 600.0, None),
            ..TargetState::default()
        },
    );
    targets.insert(
        "s3".to_string(),
        TargetState {
            kind: "s3".into(),
            channel: lane(
                "channel-20261130T100000Z-bbbb.backup.age",
                s3_age,
                Some("failed to reach https://s3.example: connection refused"),
            ),
            ..TargetState::default()
        },
    );
    let st = State {
        version: 1,
        channel: Some(newest),
        targets,
        ..State::default()
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        chainstead_backup::state::state_path(dir),
        serde_json::to_vec_pretty(&st).unwrap(),
    )
    .unwrap();
}

struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".cookie"), support::COOKIE).unwrap();
        std::fs::write(dir.path().join("readonly.macaroon"), MACAROON).unwrap();
        let secrets = dir.path().join("secrets/lnd");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("wallet-password"), "not read by status").unwrap();
        std::fs::create_dir_all(dir.path().join("sync")).unwrap();
        std::fs::create_dir_all(dir.path().join("metrics")).unwrap();
        Self { dir }
    }

    fn p(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A manifest as the module renders it, for these servers.
    fn manifest(&self, btc_url: &str, lnd: &FakeLnd, monerod_url: &str, timeout: f64) -> Value {
        std::fs::write(self.p("tls.cert"), &lnd.cert_pem).unwrap();
        json!({
            "version": 1,
            "timeout_secs": timeout,
            "services": [
                {"name": "bitcoind", "unit": "bitcoind.service",
                 "backend": {"kind": "bitcoind", "rpc_url": btc_url, "chain": "main", "cookie_file": self.p(".cookie")},
                 "gate": {"name": "bitcoind", "unit": "chainstead-sync-gate-bitcoind.service",
                          "flag_file": self.p("sync/bitcoind"), "metrics_file": self.p("metrics/chainstead-sync-gate-bitcoind.prom")}},
                {"name": "lnd", "unit": "lnd.service",
                 "backend": {"kind": "lnd", "rest_url": format!("https://localhost:{}", lnd.addr.port()), "tls_cert_file": self.p("tls.cert")},
                 "macaroon_file": self.p("readonly.macaroon")},
                {"name": "monerod", "unit": "monerod.service",
                 "backend": {"kind": "monerod", "rpc_url": monerod_url, "nettype": "fakechain"}}
            ],
            "backup": {"unit": "chainstead-backup.service", "state_dir": self.p("backup"),
                       "targets": [{"name": "usb", "kind": "directory"}, {"name": "s3", "kind": "s3"}],
                       "max_age_secs": 3600},
            "secrets": {"runtime_dir": self.p("secrets"),
                        "sets": {"lnd": {"unit": "chainstead-secrets-lnd.service", "files": ["wallet-password"]}}},
            "tiers": [{"name": "nvme", "path": self.dir.path()}],
            "addresses": [{"service": "lnd", "kind": "lan", "address": "192.168.1.20", "port": 9735},
                          {"service": "lnd", "kind": "onion", "hostname_file": self.p("onion/hostname")}]
        })
    }
}

fn units(overrides: &[(&str, &str)]) -> Fixed {
    let mut m = BTreeMap::new();
    for u in [
        "bitcoind.service",
        "chainstead-sync-gate-bitcoind.service",
        "lnd.service",
        "monerod.service",
        "chainstead-backup.service",
        "chainstead-secrets-lnd.service",
    ] {
        m.insert(
            u.to_string(),
            Fixed::text("active", "running", "success", 1_764_600_000),
        );
    }
    for (u, text) in overrides {
        m.insert(u.to_string(), text.to_string());
    }
    Fixed(m)
}

fn parse(m: &Value) -> Manifest {
    Manifest::parse(&m.to_string()).unwrap()
}

fn components(r: &Report) -> Vec<String> {
    r.attention.iter().map(|f| f.component.clone()).collect()
}

/// A monerod stand-in for the replay tests (the real one is below):
/// /get_info as monerod 0.18 answers it on regtest, synced.
fn monerod_replay() -> ReplayServer {
    ReplayServer::start(|req| {
        if req.path != "/get_info" {
            return Response::new(404, Vec::new()).into();
        }
        Response::json(
            200,
            &json!({"status": "OK", "height": 201, "target_height": 0, "synchronized": true,
                    "busy_syncing": false, "nettype": "fakechain", "offline": false,
                    "outgoing_connections_count": 2, "incoming_connections_count": 1}),
        )
        .into()
    })
}

#[test]
fn healthy() {
    let scene = Scene::new();
    let btc = bitcoind(870_000, 870_000);
    let fake_lnd = lnd(false);
    let xmr = monerod_replay();
    write_backup_state(&scene.p("backup"), 600.0);
    // The gate released.
    std::fs::write(scene.p("sync/bitcoind"), "{}").unwrap();
    let m = parse(&scene.manifest(&btc.url(), &fake_lnd, &xmr.url(), 1.5));
    let r = report(&m, &units(&[])).unwrap();
    assert!(r.ok, "unexpected attention: {:?}", r.attention);
    assert_eq!(exit_of(&r), Exit::Success);

    let btc_r = &r.services[0];
    let sync = btc_r.sync.as_ref().unwrap();
    assert!(sync.ready);
    assert_eq!(sync.height, Some(870_000));
    assert_eq!(btc_r.peers, Some(8));
    assert_eq!(btc_r.unit.as_ref().unwrap().active_state, "active");
    assert!(btc_r.gate.as_ref().unwrap().released);

    let lnd_r = &r.services[1];
    let info = lnd_r.lnd.as_ref().unwrap();
    assert_eq!(info.synced_to_chain, Some(true));
    assert_eq!(info.channels_active, Some(3));
    assert_eq!(info.channels_inactive, Some(1));
    assert_eq!(info.channels_pending, Some(1));
    assert_eq!(info.local_balance_sat, Some(1_500_000));
    assert_eq!(info.remote_balance_sat, Some(250_000));
    assert_eq!(lnd_r.peers, Some(5));
    assert!(lnd_r.sync.as_ref().unwrap().text.contains("SERVER_ACTIVE"));

    assert_eq!(r.services[2].peers, Some(3));
    let backup = r.backup.as_ref().unwrap();
    assert!(backup.targets[0].current && !backup.targets[0].stale);
    // s3 is behind, but within max_age_secs: not stale yet.
    assert!(!backup.targets[1].current && !backup.targets[1].stale);
    let set = &r.secrets.as_ref().unwrap().sets[0];
    assert_eq!(set.loaded, vec!["wallet-password".to_string()]);
    let tier = &r.tiers[0];
    assert!(tier.total_bytes.unwrap() > 0 && tier.used_ratio.is_some());
    assert_eq!(r.addresses[0].address.as_deref(), Some("192.168.1.20:9735"));
    assert_eq!(
        r.addresses[1]
            .error
            .as_deref()
            .map(|e| e.contains("failed to read")),
        Some(true)
    );

    // The JSON parses back into the documented schema.
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        !text.contains("not read by status"),
        "a secret value leaked"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["ok"], true);
    assert_eq!(v["services"][0]["sync"]["height"], 870_000);
    assert_eq!(v["services"][0]["unit"]["active_state"], "active");
    assert_eq!(v["services"][1]["lnd"]["local_balance_sat"], 1_500_000);
    assert_eq!(v["backup"]["targets"][1]["current"], false);
    assert_eq!(v["secrets"]["sets"][0]["loaded"][0], "wallet-password");
    assert!(v["tiers"][0]["free_bytes"].is_u64());
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back.services.len(), 3);
}

#[test]
fn degraded() {
    let scene = Scene::new();
    let btc = bitcoind(800_000, 870_000);
    let fake_lnd = lnd(false);
    let xmr = monerod_replay();
    // s3 last succeeded 3 h ago and holds an older version.
    write_backup_state(&scene.p("backup"), 3.0 * 3600.0);
    // The loader failed: no file, unit failed.
    std::fs::remove_file(scene.p("secrets/lnd/wallet-password")).unwrap();
    // The gate holds; its metrics say it saw block 799000 10 s ago.
    let now = chainstead_backup::state::now();
    std::fs::write(
        scene.p("metrics/chainstead-sync-gate-bitcoind.prom"),
        format!(
            "chainstead_sync_gate_height{{gate=\"bitcoind\"}} 799000\n\
             chainstead_sync_gate_last_poll_timestamp_seconds{{gate=\"bitcoind\"}} {}\n",
            now - 10.0
        ),
    )
    .unwrap();
    let m = parse(&scene.manifest(&btc.url(), &fake_lnd, &xmr.url(), 1.5));
    let failed = Fixed::text("failed", "failed", "exit-code", 1_764_600_000);
    let r = report(
        &m,
        &units(&[
            ("lnd.service", failed.as_str()),
            ("chainstead-secrets-lnd.service", failed.as_str()),
        ]),
    )
    .unwrap();
    assert!(!r.ok);
    assert_eq!(exit_of(&r), Exit::Failure);
    let c = components(&r);
    for want in ["lnd.unit", "backup.s3", "secrets.lnd.unit", "secrets.lnd"] {
        assert!(c.contains(&want.to_string()), "{want} missing in {c:?}");
    }
    // Syncing and holding is progress, not a problem.
    assert!(!c.iter().any(|x| x.starts_with("bitcoind")), "{c:?}");
    assert!(!c.contains(&"backup.usb".to_string()), "{c:?}");
    let btc_r = &r.services[0];
    let sync = btc_r.sync.as_ref().unwrap();
    assert!(!sync.ready);
    assert_eq!(sync.target, Some(870_000));
    // ~1000 blocks in ~10 s: an ETA for the 70000 left.
    let rate = sync.rate_blocks_per_sec.unwrap();
    assert!(rate > 0.0 && rate <= 100.0, "{rate}");
    assert!(sync.eta_secs.unwrap() >= 70_000.0 / 100.0);
    let gate = btc_r.gate.as_ref().unwrap();
    assert!(!gate.released);
    assert!(
        gate.holding.as_deref().unwrap().contains("800000"),
        "{gate:?}"
    );
    let s3 = &r.backup.as_ref().unwrap().targets[1];
    assert!(
        s3.stale
            && s3
                .last_error
                .as_deref()
                .unwrap()
                .contains("connection refused")
    );
    assert_eq!(
        r.secrets.as_ref().unwrap().sets[0].missing,
        vec!["wallet-password".to_string()]
    );
    // The text output names them too, without colour codes when piped.
    let text = chainstead_cli::status::render::text(
        &r,
        chainstead_cli::status::render::Style { color: false },
    );
    assert!(
        text.contains("STALE") && text.contains("MISSING wallet-password"),
        "{text}"
    );
    assert!(
        text.contains("needs attention:") && !text.contains('\x1b'),
        "{text}"
    );
}

#[test]
fn unreachable() {
    let scene = Scene::new();
    // Nothing listens on the bitcoind port; LND and monerod hang.
    let btc_url = format!("http://127.0.0.1:{}", free_port());
    let fake_lnd = lnd(true);
    let hang = ReplayServer::start(|_| Reply::Silence);
    let m = parse(&scene.manifest(&btc_url, &fake_lnd, &hang.url(), 0.5));
    let started = Instant::now();
    let r = report(&m, &units(&[])).unwrap();
    let took = started.elapsed();
    // Bounded by the timeout (0.5 s) plus generous slack for a loaded
    // machine: what matters is that nothing waits on the dead backends.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(!r.ok);
    let c = components(&r);
    for want in ["bitcoind", "lnd", "lnd.lnd", "monerod"] {
        assert!(c.contains(&want.to_string()), "{want} missing in {c:?}");
    }
    let why = |name: &str| -> String {
        r.attention
            .iter()
            .filter(|f| f.component == name)
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(why("bitcoind").contains("127.0.0.1"), "{}", why("bitcoind"));
    assert!(
        why("monerod").contains("0.5 s") || why("monerod").contains("timed out"),
        "{}",
        why("monerod")
    );
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chainstead"))
}

#[test]
fn cli_exit_codes_and_json() {
    let scene = Scene::new();
    // Usage and configuration errors: 2.
    let out = bin()
        .args(["status", "--manifest"])
        .arg(scene.p("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let bad = scene.p("bad.json");
    std::fs::write(&bad, r#"{"version": 1, "timeout_secs": 30}"#).unwrap();
    let out = bin()
        .args(["status", "--validate", "--manifest"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timeout_secs"),
        "{out:?}"
    );
    let out = bin().args(["status", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // All fine: 0, and the JSON parses.
    let xmr = monerod_replay();
    let good = scene.p("good.json");
    let write = |url: &str| {
        std::fs::write(
            &good,
            json!({"version": 1, "services": [{"name": "monerod",
                   "backend": {"kind": "monerod", "rpc_url": url, "nettype": "fakechain"}}],
                   "tiers": [{"name": "nvme", "path": scene.dir.path()}]})
            .to_string(),
        )
        .unwrap()
    };
    write(&xmr.url());
    let out = bin()
        .args(["status", "--validate", "--manifest"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = bin()
        .args(["status", "--json", "--manifest"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["services"][0]["peers"], 3);
    // Piped: no colour codes.
    let out = bin()
        .args(["status", "--manifest"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("all fine") && !text.contains('\x1b'),
        "{text}"
    );

    // Something needs attention: 1.
    write(&format!("http://127.0.0.1:{}", free_port()));
    let out = bin()
        .args(["status", "--json", "--manifest"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["attention"][0]["component"], "monerod");
}

/// Starts an offline regtest monerod on loopback (flags as in
/// crates/sync-gate/tests/monerod.rs).
fn start_monerod(dir: &Path) -> (chainstead_testkit::ChildGuard, u16) {
    let rpc = free_port();
    let child = chainstead_testkit::monerod::regtest_command(dir, free_port(), rpc)
        .arg("--offline")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = chainstead_testkit::ChildGuard::new(child);
    guard.wait_for_tcp(([127, 0, 0, 1], rpc).into(), Duration::from_secs(60));
    (guard, rpc)
}

#[test]
#[ignore = "needs monerod; run with --ignored"]
fn real_monerod() {
    let scene = Scene::new();
    let (_node, rpc) = start_monerod(&scene.p("monerod"));
    let m = parse(
        &json!({"version": 1, "services": [{"name": "monerod", "unit": "monerod.service",
        "backend": {"kind": "monerod", "rpc_url": format!("http://127.0.0.1:{rpc}"), "nettype": "fakechain"}}]}),
    );
    // monerod answers its RPC port a moment after it opens it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let r = loop {
        let r = report(&m, &units(&[])).unwrap();
        if r.ok || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(r.ok, "{:?}", r.attention);
    let s = &r.services[0];
    let sync = s.sync.as_ref().unwrap();
    assert!(sync.ready, "{sync:?}");
    assert_eq!(sync.height, Some(1));
    assert_eq!(s.peers, Some(0));
    assert_eq!(exit_of(&r), Exit::Success);
}

#[test]
#[ignore = "benchmark: prints the wall time with hanging backends"]
fn bench_hanging_backends() {
    let scene = Scene::new();
    let fake_lnd = lnd(true);
    let hang = ReplayServer::start(|_| Reply::Silence);
    for timeout in [0.5, 1.5] {
        let m = parse(&scene.manifest(&hang.url(), &fake_lnd, &hang.url(), timeout));
        let started = Instant::now();
        let r = report(&m, &units(&[])).unwrap();
        let took = started.elapsed();
        assert!(!r.ok);
        println!(
            "bench_hanging_backends: timeout_secs {timeout}: {:.3} s wall time with bitcoind, LND and monerod hanging ({} findings)",
            took.as_secs_f64(),
            r.attention.len()
        );
    }
}
