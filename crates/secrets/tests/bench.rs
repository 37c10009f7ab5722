//! Benchmark (prints figures, asserts only correctness): the time for one
//! `chainstead-secrets load` of 50 secrets, login included, measured as
//! the wall time of the whole process run (start, AppRole login, mount
//! detection, 50 reads, 5 sets installed, token revocation).
//!
//! Against the OpenBao **replay** (KV v2) and, when `rvault` is installed,
//! against RustyVault (KV v1). Run with
//! `cargo test -p chainstead-secrets --release --test bench -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const RUNS: usize = 7;

/// 5 services × 10 secrets, each its own KV path (no sharing helps).
fn fifty(o: &str, g: &str) -> Value {
    let mut services = serde_json::Map::new();
    for s in 0..5 {
        let mut secrets = serde_json::Map::new();
        for i in 0..10 {
            secrets.insert(
                format!("s{i}"),
                json!({"path": format!("bench/svc{s}/s{i}"), "field": "value", "file": format!("s{i}")}),
            );
        }
        services.insert(
            format!("svc{s}"),
            json!({"owner": o, "group": g, "secrets": secrets}),
        );
    }
    Value::Object(services)
}

fn measure(env: &Env, m: &std::path::Path) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let r = load(m);
            assert!(r.ok, "load failed");
            r.elapsed
        })
        .collect();
    for s in 0..5 {
        assert_eq!(names(&env.runtime().join(format!("svc{s}"))).len(), 10);
    }
    times.sort();
    times
}

fn report(what: &str, t: &[Duration]) {
    println!(
        "BENCH {what}: 50 secrets incl. login, {RUNS} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        t[0].as_secs_f64() * 1e3,
        t[t.len() / 2].as_secs_f64() * 1e3,
        t[t.len() - 1].as_secs_f64() * 1e3
    );
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_load_50_secrets_replay() {
    let env = Env::new();
    let bao = FakeBao::new(Some(2));
    for s in 0..5 {
        for i in 0..10 {
            bao.put(
                &format!("bench/svc{s}/s{i}"),
                json!({"value": format!("value-{s}-{i}-xxxxxxxxxxxxxxxx")}),
            );
        }
    }
    let srv = bao.start();
    let (o, g, _) = owner();
    let m = env.manifest(Some(&srv.url()), json!({}), fifty(&o, &g));
    let t = measure(&env, &m);
    report("replay OpenBao (KV v2)", &t);
    // One login, one mount detection, 50 reads, one revocation per run.
    assert_eq!(srv.requests().len(), RUNS * 53);
}

#[test]
#[ignore = "needs rvault: run via checks/offline"]
fn bench_load_50_secrets_rvault() {
    let env = Env::new();
    let rv = common::rvault::Rvault::start(&env);
    for s in 0..5 {
        for i in 0..10 {
            rv.write(
                &format!("bench/svc{s}/s{i}"),
                json!({"value": format!("value-{s}-{i}")}),
            );
        }
    }
    let (o, g, _) = owner();
    let m = env.manifest(Some(&rv.url()), json!({}), fifty(&o, &g));
    let t = measure(&env, &m);
    report("RustyVault 0.2.1 (KV v1)", &t);
}
