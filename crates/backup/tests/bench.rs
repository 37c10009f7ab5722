//! Benchmark (prints figures, asserts only correctness): latency from LND's
//! rename to the version being readable on every target, over 200+
//! rewrites; idle CPU of the pusher over a minute; its peak RSS.
//!
//! Targets: a directory, WebDAV (`rclone serve webdav`), S3 (Garage, when
//! `garage` is on PATH) and the OpenBao KV v2 replay. Run with
//! `cargo test -p chainstead-backup --test bench -- --ignored --nocapture`.
//! CPU time and peak RSS come from /proc/<pid>/stat (utime+stime, the
//! counters getrusage reports) and /proc/<pid>/status (VmHWM).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chainstead_testkit::{free_port, ReplayServer, Response};
use common::servers as support;
use common::*;
use serde_json::{json, Value};

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" of the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[test]
#[ignore = "needs rclone: run via checks/offline (benchmark)"]
fn bench_latency_cpu_rss() {
    let rewrites: u64 = std::env::var("BENCH_REWRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let idle_secs: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let t = tempfile::tempdir().unwrap();
    let lnd = Lnd::new(t.path().join("lnd"));

    // WebDAV
    let served = t.path().join("dav");
    std::fs::create_dir(&served).unwrap();
    let port = free_port();
    let _dav = support::rclone(&served, port);
    std::fs::write(t.path().join("dav-password"), "dav-pass-123\n").unwrap();
    let dav = json!({"kind": "webdav", "name": "webdav", "url": format!("http://127.0.0.1:{port}/lnd"),
                     "user": "lnd", "password_file": t.path().join("dav-password")});
    // KV v2 replay (in-process, answers like OpenBao; see replay.rs for the shapes)
    let kv: Arc<Mutex<Vec<Value>>> = Arc::default();
    let srv = {
        let kv = kv.clone();
        ReplayServer::start(move |r| {
            let env = |data: Value| {
                json!({"request_id": "r", "lease_id": "", "renewable": false,
                "lease_duration": 0, "data": data, "wrap_info": null, "warnings": null, "auth": null})
            };
            let mut v = kv.lock().unwrap();
            match r.method.as_str() {
                "GET" => match v.last() {
                    None => Response::json(404, &json!({"errors": []})).into(),
                    Some(d) => Response::json(200, &env(json!({"data": d, "metadata": {"created_time": "", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": v.len()}}))).into(),
                },
                _ => {
                    v.push(r.json()["data"].clone());
                    Response::json(200, &env(json!({"created_time": "", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": v.len()}))).into()
                }
            }
        })
    };
    std::fs::write(t.path().join("token"), "s.bench\n").unwrap();
    let bao = json!({"kind": "openbao", "name": "openbao", "address": srv.url(),
                     "auth": {"token": {"token_file": t.path().join("token")}}, "mount": "secret", "path": "lnd/channel-backup"});
    std::fs::create_dir_all(t.path().join("dir")).unwrap();
    let mut targets = vec![
        json!({"kind": "directory", "name": "directory", "path": t.path().join("dir")}),
        dav,
        bao,
    ];
    // A real Vault-API server, when RustyVault is installed (KV v1 only).
    let rvault = which("rvault").map(|_| support::rvault());
    if let Some(v) = &rvault {
        std::fs::write(t.path().join("rvault-token"), format!("{}\n", v.root)).unwrap();
        targets.push(
            json!({"kind": "openbao", "name": "rvault-kv1", "address": format!("http://{}", v.addr),
            "auth": {"token": {"token_file": t.path().join("rvault-token")}}, "mount": "secret",
            "path": "lnd/channel-backup", "kv_version": 1}),
        );
    } else {
        println!("rvault not on PATH: RustyVault left out of this run");
    }
    // S3, when Garage is installed
    let garage = which("garage").map(|_| support::garage());
    if let Some(g) = &garage {
        let spec = g.spec(t.path(), "s3", &g.secret);
        g.wait_ready(&spec, t.path());
        targets.push(spec);
    } else {
        println!("garage not on PATH: S3 left out of this run");
    }
    let manifest = write_manifest(
        t.path(),
        &json!({"version": 1, "channel_backup": lnd.path(), "state_dir": t.path().join("state"), "targets": targets}),
    );
    lnd.write(&payload(0));
    let pusher = spawn_watch(&manifest, t.path());
    let pid = pusher.id();
    assert!(wait_until(Duration::from_secs(20), || dir_latest(
        &t.path().join("dir")
    )
    .is_some()));
    std::thread::sleep(Duration::from_millis(500));

    let names: Vec<String> = targets
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut all: Vec<f64> = Vec::new();
    let cpu0 = cpu_seconds(pid);
    let busy_start = Instant::now();
    for i in 1..=rewrites {
        let data = payload(1000 + i);
        lnd.write(&data);
        let t0 = Instant::now();
        let mut done = vec![None; names.len()];
        while done.iter().any(|d| d.is_none()) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "rewrite {i} not everywhere after 30 s: {done:?}\n{}",
                log(t.path())
            );
            for (k, spec) in targets.iter().enumerate() {
                if done[k].is_some() {
                    continue;
                }
                let arrived = match spec["kind"].as_str().unwrap() {
                    "directory" => {
                        dir_latest(&t.path().join("dir")).map(|x| x.1) == Some(data.clone())
                    }
                    "webdav" => dir_latest(&served.join("lnd")).map(|x| x.1) == Some(data.clone()),
                    "openbao" if spec["name"] == "rvault-kv1" => {
                        let v = rvault.as_ref().unwrap();
                        let (_, b) = support::http(
                            v.addr,
                            "GET",
                            "/v1/secret/lnd/channel-backup",
                            Some(&v.root),
                            None,
                        );
                        b["data"]["content"]
                            .as_str()
                            .map(|c| base64::engine::general_purpose::STANDARD.decode(c).unwrap())
                            == Some(data.clone())
                    }
                    "openbao" => {
                        kv.lock()
                            .unwrap()
                            .last()
                            .and_then(|d| d["content"].as_str().map(String::from))
                            .map(|c| base64::engine::general_purpose::STANDARD.decode(c).unwrap())
                            == Some(data.clone())
                    }
                    "s3" => {
                        support::remote_latest(spec, t.path()).map(|x| x.1) == Some(data.clone())
                    }
                    _ => unreachable!(),
                };
                if arrived {
                    done[k] = Some(t0.elapsed().as_secs_f64() * 1000.0);
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let mut worst: f64 = 0.0;
        for (k, d) in done.iter().enumerate() {
            let d = d.unwrap();
            lat[k].push(d);
            worst = worst.max(d);
        }
        all.push(worst);
    }
    let busy = busy_start.elapsed().as_secs_f64();
    let cpu_busy = cpu_seconds(pid) - cpu0;
    println!("\n== chainstead-backup benchmark: {rewrites} rewrites (rename -> readable on the target), ms ==");
    for (k, n) in names.iter().enumerate() {
        let mut v = lat[k].clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{n:<10} p50 {:>7.1}  p99 {:>7.1}  max {:>7.1}",
            pct(&v, 0.5),
            pct(&v, 0.99),
            v[v.len() - 1]
        );
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{:<10} p50 {:>7.1}  p99 {:>7.1}  max {:>7.1}",
        "all",
        pct(&all, 0.5),
        pct(&all, 0.99),
        all[all.len() - 1]
    );
    println!(
        "busy: {cpu_busy:.2} s CPU over {busy:.1} s wall ({:.2} ms CPU per rewrite)",
        cpu_busy * 1000.0 / rewrites as f64
    );
    let idle0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let idle = cpu_seconds(pid) - idle0;
    println!(
        "idle: {idle:.2} s CPU over {idle_secs} s ({:.3} %), includes one reconcile per minute",
        idle * 100.0 / idle_secs as f64
    );
    println!("peak RSS: {} KiB", peak_rss_kib(pid));
    let st = status_json(&manifest);
    assert!(
        st["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["current"] == true),
        "{st}"
    );
    drop(pusher);
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
