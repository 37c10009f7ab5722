//! The monerod backend against real monerod processes (Debian `monero`,
//! 0.18) on 127.0.0.1 with data in temp dirs. Ignored by default; run via
//! checks/offline (`--include-ignored`) where monerod is installed.
//!
//! The fixture test at the end runs everywhere: it checks the readiness
//! rule on /get_info bodies recorded from these same nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chainstead_sync_gate::backend::monerod::{observe, GetInfo};
use chainstead_sync_gate::{Observation, Prober};
use chainstead_testkit::{free_port, ChildGuard};
use serde_json::{json, Value};

/// A mainnet-format address (the Monero General Fund's published donation
/// address) for `generateblocks`, which wants one even on regtest.
const ADDRESS: &str =
    "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

/// Blocks the first node mines for the second to sync.
const BLOCKS: u64 = 200;

struct Node {
    child: ChildGuard,
    rpc: u16,
    p2p: u16,
}

/// Starts a regtest monerod on loopback; `extra` adds flags.
fn start_node(data_dir: &Path, p2p: u16, extra: &[&str]) -> Node {
    let rpc = free_port();
    let child = chainstead_testkit::monerod::regtest_command(data_dir, p2p, rpc)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut node = Node {
        child: ChildGuard::new(child),
        rpc,
        p2p,
    };
    node.child
        .wait_for_tcp(([127, 0, 0, 1], rpc).into(), Duration::from_secs(60));
    node
}

/// Stops a node with SIGTERM so LMDB is flushed, and waits for it.
fn stop_node(mut node: Node) {
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let start = Instant::now();
    while node.child.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "monerod did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn prober(rpc: u16, nettype: &str, dir: &Path) -> Prober {
    let m = json!({
        "version": 1, "name": "monerod", "flag_file": dir.join("flag"),
        "poll": {"timeout_secs": 10},
        "backend": {"kind": "monerod", "rpc_url": format!("http://127.0.0.1:{rpc}"), "nettype": nettype},
    });
    Prober::new(&support::parse(&m)).unwrap()
}

async fn get_info(rpc: u16) -> Value {
    reqwest_get(&format!("http://127.0.0.1:{rpc}/get_info")).await
}

async fn reqwest_get(url: &str) -> Value {
    let client = chainstead_sync_gate::http::client(Duration::from_secs(10), None).unwrap();
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls until the backend answers at all (RPC up), returning that answer.
async fn first_answer(p: &mut Prober) -> Observation {
    let start = Instant::now();
    loop {
        let obs = p.probe().await.unwrap();
        if obs.phase != "down" {
            return obs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "monerod RPC never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An offline regtest node is synchronized at once (observed: synchronized
/// true, target_height 0): ready. The wrong nettype is a misconfiguration
/// naming the field and the value monerod reported.
#[tokio::test]
#[ignore = "needs monerod: run via checks/offline"]
async fn offline_regtest_node_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("a"), free_port(), &["--offline"]);
    let obs = first_answer(&mut prober(node.rpc, "fakechain", dir.path())).await;
    assert!(obs.ready, "{obs:?}");
    assert_eq!(obs.height, Some(1));

    let err = prober(node.rpc, "mainnet", dir.path())
        .probe()
        .await
        .unwrap_err();
    assert!(err.is_misconfig());
    let msg = err.to_string();
    assert!(
        msg.contains("nettype \"fakechain\"") && msg.contains("backend.nettype"),
        "{msg}"
    );
    drop(node);
}

/// A node serving BLOCKS mined blocks (mined offline first, as
/// generateblocks refuses to run otherwise), with the height it serves.
async fn mined_server(dir: &Path) -> (Node, u64) {
    let a_dir = dir.join("a");
    let a_p2p = free_port();

    // Mine offline (generateblocks refuses to run otherwise).
    let miner = start_node(&a_dir, a_p2p, &["--offline"]);
    let started = Instant::now();
    let client = chainstead_sync_gate::http::client(Duration::from_secs(900), None).unwrap();
    let reply: Value = client
        .post(format!("http://127.0.0.1:{}/json_rpc", miner.rpc))
        .json(
            &json!({"jsonrpc": "2.0", "id": "0", "method": "generateblocks",
                      "params": {"amount_of_blocks": BLOCKS, "wallet_address": ADDRESS}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reply.get("error").is_none(), "{reply}");
    eprintln!(
        "mined {BLOCKS} blocks in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    stop_node(miner);

    // Serve them: the same chain, now listening for peers.
    let server = start_node(&a_dir, a_p2p, &["--keep-fakechain"]);
    let top = get_info(server.rpc).await["height"].as_u64().unwrap();
    assert_eq!(top, BLOCKS + 1);
    (server, top)
}

/// A node syncing from a second local node that mined BLOCKS blocks: not
/// ready while it has no peers or is behind, ready once level, never
/// ready while below the miner's height.
#[tokio::test]
#[ignore = "needs monerod: run via checks/offline"]
async fn syncing_node_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (server, top) = mined_server(dir.path()).await;

    // The syncing node knows only the server.
    let peer = format!("127.0.0.1:{}", server.p2p);
    let syncing = start_node(
        &dir.path().join("b"),
        free_port(),
        &["--add-exclusive-node", &peer, "--block-sync-size", "10"],
    );
    let mut p = prober(syncing.rpc, "fakechain", dir.path());
    let first = first_answer(&mut p).await;
    assert!(!first.ready, "a fresh node cannot be synced yet: {first:?}");

    // The service itself, on the same node: no flag until synced.
    let flag = dir.path().join("sync/monerod");
    let manifest = dir.path().join("manifest.json");
    let m = json!({
        "version": 1, "name": "monerod", "flag_file": flag,
        "poll": {"fast_secs": 0.5, "slow_secs": 2},
        "backend": {"kind": "monerod", "rpc_url": format!("http://127.0.0.1:{}", syncing.rpc), "nettype": "fakechain"},
    });
    std::fs::write(&manifest, m.to_string()).unwrap();
    let mut gate = ChildGuard::spawn_quiet(
        Command::new(env!("CARGO_BIN_EXE_chainstead-sync-gate"))
            .args(["wait", "--manifest"])
            .arg(&manifest),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !flag.exists(),
        "flag written for a node that has not synced"
    );

    let start = Instant::now();
    let mut seen: Vec<String> = vec![first.text.clone()];
    let last = loop {
        let obs = p.probe().await.unwrap();
        if seen.last() != Some(&obs.text) {
            seen.push(obs.text.clone());
        }
        if obs.ready {
            break obs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "never synced: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("observations: {seen:#?}");
    let start = Instant::now();
    while !flag.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the gate did not release"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let written: Value = serde_json::from_slice(&std::fs::read(&flag).unwrap()).unwrap();
    assert_eq!(written["height"], top);
    assert!(
        gate.0.try_wait().unwrap().is_none(),
        "the gate keeps running after release"
    );
    drop(gate);
    assert_eq!(last.height, Some(top));
    assert!(
        seen.iter()
            .any(|t| t.contains("not synchronized yet") || t.starts_with("syncing")),
        "{seen:?}"
    );
    drop(syncing);
    drop(server);
}

/// Benchmark (prints, asserts nothing about time): nodes syncing BLOCKS
/// blocks from a local peer, in batches of 100 (a short sync) and of 10 (a
/// longer one), each watched by `wait` with the default poll settings from
/// the moment its RPC is up. Prints how long after the node became ready
/// (seen by polling it every 50 ms) the flag appeared, and how long the
/// sync took.
///
///     cargo test -p chainstead-sync-gate --test monerod -- --ignored --nocapture bench_
#[tokio::test]
#[ignore = "needs monerod: a benchmark, run with --nocapture"]
async fn bench_release_delay() {
    let dir = tempfile::tempdir().unwrap();
    let (server, top) = mined_server(dir.path()).await;
    for (i, batch) in ["100", "10"].into_iter().enumerate() {
        let (took, delay) =
            release_delay(dir.path(), &format!("b{i}"), server.p2p, batch, top).await;
        println!(
            "monerod sync ({BLOCKS} blocks from a local peer in batches of {batch}, {:.1}s), default poll: flag {:.2}s after readiness",
            took.as_secs_f64(),
            delay.as_secs_f64()
        );
    }
    drop(server);
}

/// One node in `dir/name` syncing from the peer at `p2p` in batches of
/// `batch`, with `wait` watching it: (sync duration, release delay).
async fn release_delay(
    dir: &Path,
    name: &str,
    p2p: u16,
    batch: &str,
    top: u64,
) -> (Duration, Duration) {
    let peer = format!("127.0.0.1:{p2p}");
    let syncing = start_node(
        &dir.join(name),
        free_port(),
        &["--add-exclusive-node", &peer, "--block-sync-size", batch],
    );
    let flag = dir.join(name).join("flag");
    let manifest = dir.join(format!("{name}.json"));
    let m = json!({
        "version": 1, "name": "monerod", "flag_file": flag,
        "backend": {"kind": "monerod", "rpc_url": format!("http://127.0.0.1:{}", syncing.rpc), "nettype": "fakechain"},
    });
    std::fs::write(&manifest, m.to_string()).unwrap();
    let started = Instant::now();
    let gate = ChildGuard::spawn_quiet(
        Command::new(env!("CARGO_BIN_EXE_chainstead-sync-gate"))
            .args(["wait", "--manifest"])
            .arg(&manifest),
    );
    let mut p = prober(syncing.rpc, "fakechain", dir);
    let ready_at = loop {
        if p.probe().await.is_ok_and(|o| o.ready) {
            break Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the node never synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while !flag.exists() {
        assert!(
            ready_at.elapsed() < Duration::from_secs(120),
            "the gate did not release"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delay = ready_at.elapsed();
    let written: Value = serde_json::from_slice(&std::fs::read(&flag).unwrap()).unwrap();
    assert_eq!(written["height"], top);
    drop(gate);
    drop(syncing);
    (ready_at.duration_since(started), delay)
}

/// The readiness rule on /get_info bodies recorded from monerod 0.18 above
/// (checks/fixtures/sync-gate/monerod-get_info-*.json).
#[test]
fn recorded_get_info_bodies() {
    let read = |name: &str| -> GetInfo {
        serde_json::from_slice(&std::fs::read(support::fixtures().join(name)).unwrap()).unwrap()
    };
    assert!(observe(&read("monerod-get_info-synced.json")).ready);
    let o = observe(&read("monerod-get_info-no-peers.json"));
    assert!(!o.ready && o.remaining().is_none());
    let o = observe(&read("monerod-get_info-syncing.json"));
    assert!(!o.ready);
    assert_eq!(o.text, "syncing 26.9%, block 81/301");
}
