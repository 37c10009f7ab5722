//! Benchmark of the gate's polling against a replayed bitcoind (bitcoind
//! cannot run here; answers follow src/rpc/blockchain.cpp, see
//! tests/support/mod.rs). Prints figures; asserts nothing about time.
//!
//!     cargo run --release -p chainstead-sync-gate --example bench
//!
//! 1. Far from the tip (IBD, hours left), default poll settings: requests
//!    per minute bitcoind receives.
//! 2. The end of an IBD simulated in real time (blocks arriving at a steady
//!    rate until level with the headers), default settings: how long after
//!    the moment of readiness the flag appears.
//! 3. Repeated "one block behind, then synced" at a random moment: release
//!    latency distribution with the default fast interval.
//! 4. Short syncs, default settings: a 10 s IBD that starts at the gate's
//!    first reading; the same after a 10 s warm-up (RPC error -28); the same
//!    behind a server that refuses connections for 5 s and then appears.
//!    How long after the moment of readiness the flag appears.
//!
//! A real monerod pair gives the same figure for a short sync:
//! `cargo test -p chainstead-sync-gate --test monerod -- --ignored --nocapture bench_` (short and longer syncs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chainstead_common::shutdown::Shutdown;
use chainstead_sync_gate::gate;
use chainstead_testkit::{free_port, ReplayServer};
use serde_json::{json, Value};
use support::{chain_info, rpc_err, rpc_ok, Scene};

/// A replayed bitcoind whose getblockchaininfo is computed from a closure
/// of the time since start.
fn server(f: impl Fn(Duration) -> Value + Send + Sync + 'static) -> ReplayServer {
    let t0 = Instant::now();
    ReplayServer::start(move |req| rpc_ok(req, f(t0.elapsed())))
}

fn run_gate(
    scene: &Scene,
    url: &str,
    poll: Value,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let mut m = scene.bitcoind_manifest(url, "main", poll);
    // The replay does not check credentials here; keep the cookie anyway.
    m["metrics_dir"] = Value::Null;
    let manifest = support::parse(&m);
    let (tx, shutdown) = Shutdown::manual();
    let task = tokio::spawn(async move {
        gate::wait(&manifest, shutdown).await.unwrap();
    });
    (tx, task)
}

async fn wait_for_flag(scene: &Scene, limit: Duration) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if scene.flag().exists() {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let defaults = json!({});

    // 1. Far from the tip: 600 blocks/minute with 359,656 to go.
    let window = Duration::from_secs(60);
    let scene = Scene::new();
    let srv = server(|t| {
        let blocks = 512_345 + (t.as_secs_f64() * 10.0) as u64;
        chain_info("main", blocks, 872_001, true, 0.6134)
    });
    let (stop, task) = run_gate(&scene, &srv.url(), defaults.clone());
    tokio::time::sleep(window).await;
    let n = srv.requests().len();
    stop.send(true).unwrap();
    task.await.unwrap();
    println!(
        "far from the tip (IBD, ~10h left), default poll: {n} requests in {}s = {:.1} requests/minute",
        window.as_secs(),
        n as f64 * 60.0 / window.as_secs_f64()
    );

    // 2. The end of an IBD: 300 blocks behind, 5 blocks/s, level after 60 s.
    let scene = Scene::new();
    let ready_after = Duration::from_secs(60);
    let srv = server(move |t| {
        let behind = 300u64.saturating_sub((t.as_secs_f64() * 5.0) as u64);
        let headers = 872_001;
        chain_info(
            "main",
            headers - behind,
            headers,
            behind > 0,
            1.0 - behind as f64 * 1e-6,
        )
    });
    let t0 = Instant::now();
    let (stop, task) = run_gate(&scene, &srv.url(), defaults.clone());
    let flag_at = wait_for_flag(&scene, Duration::from_secs(120)).await;
    let reqs = srv.requests();
    stop.send(true).unwrap();
    task.await.unwrap();
    match flag_at {
        Some(at) => {
            let latency = at.duration_since(t0).saturating_sub(ready_after);
            let fast_from = reqs
                .windows(2)
                .find(|w| w[1].at.duration_since(w[0].at) < Duration::from_secs(2))
                .map(|w| w[0].at.duration_since(t0).as_secs_f64());
            println!(
                "end of IBD (300 blocks at 5/s), default poll: flag {:.2}s after readiness; \
                 {} requests in total; fast polling from t={:.1}s (ready at t={}s)",
                latency.as_secs_f64(),
                reqs.len(),
                fast_from.unwrap_or(f64::NAN),
                ready_after.as_secs()
            );
        }
        None => println!("end of IBD: no flag within 120 s"),
    }

    // 3. Near the tip, then synced at a random moment: latency distribution.
    let mut latencies = Vec::new();
    for i in 0..10u32 {
        let scene = Scene::new();
        let synced = Arc::new(Mutex::new(false));
        let s = synced.clone();
        let srv = server(move |_| {
            if *s.lock().unwrap() {
                chain_info("main", 872_001, 872_001, false, 1.0)
            } else {
                chain_info("main", 872_000, 872_001, false, 0.99999)
            }
        });
        let (stop, task) = run_gate(&scene, &srv.url(), defaults.clone());
        // Spread the moment of readiness over the poll phase.
        tokio::time::sleep(Duration::from_millis(1500 + u64::from(i) * 97)).await;
        let t_ready = Instant::now();
        *synced.lock().unwrap() = true;
        if let Some(at) = wait_for_flag(&scene, Duration::from_secs(30)).await {
            latencies.push(at.duration_since(t_ready).as_secs_f64());
        }
        stop.send(true).unwrap();
        task.await.unwrap();
    }
    latencies.sort_by(f64::total_cmp);
    if latencies.is_empty() {
        println!("near the tip: no release observed");
    } else {
        let median = latencies[latencies.len() / 2];
        println!(
            "near the tip (1 block behind, then synced), default poll, {} runs: release latency min {:.2}s, median {:.2}s, max {:.2}s",
            latencies.len(),
            latencies[0],
            median,
            latencies[latencies.len() - 1]
        );
    }

    // 4. Short syncs.
    for (label, warmup, refused) in [
        (
            "10 s IBD from the first reading",
            Duration::ZERO,
            Duration::ZERO,
        ),
        (
            "10 s warm-up, then a 10 s IBD",
            Duration::from_secs(10),
            Duration::ZERO,
        ),
        (
            "refused for 5 s, then a 10 s IBD",
            Duration::ZERO,
            Duration::from_secs(5),
        ),
    ] {
        let mut delays = Vec::new();
        for _ in 0..3 {
            if let Some(d) = short_sync(warmup, refused).await {
                delays.push(format!("{:.2}s", d.as_secs_f64()));
            } else {
                delays.push("no flag within 60 s".to_string());
            }
        }
        println!(
            "short sync ({label}), default poll: flag after readiness in 3 runs: {}",
            delays.join(", ")
        );
    }
}

/// One short sync: `refused` without a listener, then (from the first
/// request) `warmup` of RPC error -28, then 300 blocks at 30 blocks/s.
/// Returns how long after readiness the flag appeared.
async fn short_sync(warmup: Duration, refused: Duration) -> Option<Duration> {
    const IBD: Duration = Duration::from_secs(10);
    let scene = Scene::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let first: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let (stop, task) = run_gate(&scene, &url, json!({}));
    tokio::time::sleep(refused).await;
    let f = first.clone();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let _srv = ReplayServer::start_on(listener, move |req| {
        let t = f.get_or_init(Instant::now).elapsed();
        if t < warmup {
            return rpc_err(req, -28, "Loading block index…");
        }
        let t = t - warmup;
        let headers = 872_001;
        let behind = 300u64.saturating_sub((t.as_secs_f64() * 30.0) as u64);
        let info = chain_info(
            "main",
            headers - behind,
            headers,
            behind > 0,
            1.0 - behind as f64 * 1e-6,
        );
        rpc_ok(req, info)
    });
    let flag_at = wait_for_flag(&scene, Duration::from_secs(60)).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let ready_at = *first.get()? + warmup + IBD;
    flag_at.map(|at| at.saturating_duration_since(ready_at))
}
