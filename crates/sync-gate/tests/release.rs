//! The service loop's timing against a replayed bitcoind (see
//! tests/support/mod.rs for the upstream shapes): a sync that ends soon
//! after the gate's first height reading is released at the fast
//! interval, also when that first reading follows a warm-up or errors.
//!
//! The slow interval is 60 s and the fast one 0.2 s, so "released within
//! 20 s of readiness" holds on a loaded machine and fails on a gate that
//! waits one slow interval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chainstead_common::shutdown::Shutdown;
use chainstead_sync_gate::gate;
use chainstead_testkit::{Reply, Response};
use serde_json::json;
use support::{chain_info, rpc_err, rpc_ok, Scene};

/// What the replayed bitcoind answers before its blocks move.
#[derive(Clone, Copy)]
enum Before {
    Nothing,
    Warmup,
    Overloaded,
}

/// From its first request: `before` for 1.5 s, then an IBD 40 blocks
/// behind at 20 blocks/s (2 s). Returns the time from readiness to flag.
async fn release_delay(before: Before) -> Duration {
    let lead = match before {
        Before::Nothing => Duration::ZERO,
        Before::Warmup | Before::Overloaded => Duration::from_millis(1500),
    };
    let ibd = Duration::from_secs(2);
    let first: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let f = first.clone();
    let srv = chainstead_testkit::ReplayServer::start(move |req| {
        let t = f.get_or_init(Instant::now).elapsed();
        if t < lead {
            return match before {
                Before::Warmup => rpc_err(req, -28, "Loading block index…"),
                // bitcoind's answer when its work queue is full
                // (src/httpserver.cpp): a transient error for the gate.
                _ => Reply::Send(Response::new(503, "Work queue depth exceeded")),
            };
        }
        let behind = 40u64.saturating_sub(((t - lead).as_secs_f64() * 20.0) as u64);
        let info = chain_info("main", 1000 - behind, 1000, behind > 0, 0.9999);
        rpc_ok(req, info)
    });
    let scene = Scene::new();
    let mut m = scene.bitcoind_manifest(
        &srv.url(),
        "main",
        json!({"slow_secs": 60, "fast_secs": 0.2, "timeout_secs": 5}),
    );
    m["metrics_dir"] = serde_json::Value::Null;
    let manifest = support::parse(&m);
    let (stop, shutdown) = Shutdown::manual();
    let task = tokio::spawn(async move { gate::wait(&manifest, shutdown).await });
    let limit = Instant::now() + Duration::from_secs(90);
    while !scene.flag().exists() && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flag_at = Instant::now();
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(scene.flag().exists(), "no release within 90 s");
    let ready_at = *first.get().unwrap() + lead + ibd;
    flag_at.saturating_duration_since(ready_at)
}

fn assert_prompt(delay: Duration) {
    // One slow interval is 60 s; the fast one 0.2 s.
    assert!(
        delay < Duration::from_secs(20),
        "released {delay:?} after readiness: the first readings waited for the slow interval"
    );
}

#[tokio::test]
async fn short_sync_is_released_at_the_fast_interval() {
    assert_prompt(release_delay(Before::Nothing).await);
}

#[tokio::test]
async fn short_sync_after_warmup_is_released_at_the_fast_interval() {
    assert_prompt(release_delay(Before::Warmup).await);
}

#[tokio::test]
async fn short_sync_after_errors_is_released_at_the_fast_interval() {
    assert_prompt(release_delay(Before::Overloaded).await);
}
