//! The first sync's dbcache switch as `wait` drives it, against a replayed
//! bitcoind (tests/support/mod.rs): the restart request is written exactly
//! once, only at release, is remembered across a restart of the gate, and
//! never for a node that was synced when the gate started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chainstead_testkit::ChildGuard;
use serde_json::json;
use support::{chain_info, Btc, FakeBitcoind, Scene};

const BIN: &str = env!("CARGO_BIN_EXE_chainstead-sync-gate");
// Generous: the machine running the tests may be busy.
const LONG: Duration = Duration::from_secs(60);

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn beside(scene: &Scene, suffix: &str) -> PathBuf {
    let mut p = scene.flag().into_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

fn gate(manifest: &Path) -> ChildGuard {
    ChildGuard::spawn_quiet(Command::new(BIN).args(["wait", "--manifest"]).arg(manifest))
}

fn stop(mut child: ChildGuard) {
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let start = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < LONG, "the gate did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn manifest(scene: &Scene, btc: &FakeBitcoind) -> PathBuf {
    scene.write_manifest(&scene.bitcoind_manifest(
        &btc.url(),
        "main",
        json!({"slow_secs": 0.2, "fast_secs": 0.2, "monitor_secs": 0.2, "timeout_secs": 5}),
    ))
}

fn ibd() -> Btc {
    Btc::Info(chain_info("main", 512_345, 872_001, true, 0.61))
}

fn synced() -> Btc {
    Btc::Info(chain_info("main", 872_001, 872_001, false, 1.0))
}

/// Waits for `n` more polls than `before`.
fn polls(btc: &FakeBitcoind, n: usize) {
    let before = btc.server.requests().len();
    wait_until("more polls", || btc.server.requests().len() >= before + n);
}

#[test]
fn ibd_then_synced_requests_the_restart_once_at_release() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(ibd());
    let m = manifest(&scene, &btc);
    let seen = beside(&scene, ".ibd-seen");
    let request = beside(&scene, ".steady-dbcache");
    let child = gate(&m);

    wait_until("IBD noticed", || seen.exists());
    polls(&btc, 3);
    assert!(!request.exists(), "requested before release");
    assert!(!scene.flag().exists());

    btc.set(synced());
    wait_until("the flag", || scene.flag().exists());
    // Written before the flag: whoever sees the flag sees the request.
    assert!(request.exists(), "released without the restart request");
    let first = std::fs::metadata(&request).unwrap().modified().unwrap();

    // After release, IBD again (a stale tip) changes nothing.
    btc.set(ibd());
    polls(&btc, 5);
    assert_eq!(
        std::fs::metadata(&request).unwrap().modified().unwrap(),
        first,
        "the request was rewritten"
    );
    stop(child);

    // A new gate process after release only monitors: still one request.
    let child = gate(&m);
    polls(&btc, 5);
    assert_eq!(
        std::fs::metadata(&request).unwrap().modified().unwrap(),
        first
    );
    stop(child);
}

#[test]
fn a_gate_restarted_during_ibd_still_requests_at_release() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(ibd());
    let m = manifest(&scene, &btc);
    let request = beside(&scene, ".steady-dbcache");

    let child = gate(&m);
    wait_until("IBD noticed", || beside(&scene, ".ibd-seen").exists());
    stop(child);

    // bitcoind finishes while the gate is down (a switch restarting it):
    // the new process sees it synced at once, and still asks.
    btc.set(synced());
    let child = gate(&m);
    wait_until("the flag", || scene.flag().exists());
    assert!(request.exists(), "the IBD seen before the restart was lost");
    stop(child);
}

#[test]
fn a_node_synced_when_the_gate_starts_is_never_restarted() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(synced());
    let m = manifest(&scene, &btc);
    let child = gate(&m);
    wait_until("the flag", || scene.flag().exists());
    btc.set(ibd());
    polls(&btc, 5);
    assert!(!beside(&scene, ".steady-dbcache").exists());
    assert!(!beside(&scene, ".ibd-seen").exists());
    stop(child);
}

#[test]
fn warming_up_then_synced_is_not_ibd() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Warmup);
    let m = manifest(&scene, &btc);
    let child = gate(&m);
    polls(&btc, 3);
    btc.set(synced());
    wait_until("the flag", || scene.flag().exists());
    assert!(!beside(&scene, ".steady-dbcache").exists());
    stop(child);
}
