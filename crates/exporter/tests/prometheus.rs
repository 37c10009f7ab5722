//! A real Prometheus (Debian's `prometheus`) on 127.0.0.1 scraping the
//! exporter (replayed LND and bitcoind, a real regtest monerod) and a
//! textfile like the backup pusher's, with the shipped rules rendered with
//! short durations: silent while healthy; a channel going inactive, monerod
//! stopped and a stale backup each make their alert fire through
//! /api/v1/alerts. The dashboard's every expression is accepted by
//! /api/v1/query and names only metrics something produces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use chainstead_testkit::{free_port, require_binary, ChildGuard, ReplayServer, Response};
use common::{
    channel, eventually, monitoring, rendered_rules, Exporter, FakeBitcoind, FakeLnd, Files,
    Monerod,
};
use serde_json::{json, Value};

/// Prints Prometheus' log when the test fails, for the reason.
struct ShowOnPanic(std::path::PathBuf);

impl Drop for ShowOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "prometheus log:\n{}",
                std::fs::read_to_string(&self.0).unwrap_or_default()
            );
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The backup pusher's textfile (crates/backup/src/state.rs names) for a
/// change at `change` and a last success at `success`.
fn backup_textfile(change: f64, success: f64) -> String {
    format!(
        "# TYPE chainstead_backup_last_change_timestamp_seconds gauge\n\
         chainstead_backup_last_change_timestamp_seconds {change}\n\
         # TYPE chainstead_backup_last_success_timestamp_seconds gauge\n\
         chainstead_backup_last_success_timestamp_seconds{{target=\"nas\",kind=\"sftp\",artifact=\"channel\"}} {success}\n\
         # TYPE chainstead_backup_up_to_date gauge\n\
         chainstead_backup_up_to_date{{target=\"nas\",kind=\"sftp\",artifact=\"channel\"}} {}\n",
        u8::from(success >= change)
    )
}

async fn api(port: u16, path: &str, query: &[(&str, &str)]) -> Value {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap();
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let r = client.get(url).send().await.unwrap();
    r.json().await.unwrap()
}

/// Alerts as (name, state, labels).
async fn alerts(port: u16) -> Vec<(String, String, Value)> {
    let v = api(port, "/api/v1/alerts", &[]).await;
    v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
                a["labels"].clone(),
            )
        })
        .collect()
}

/// Metric names in a PromQL expression: the identifiers of the families we
/// know prefixes of (labels and functions are never `chainstead_`/`node_`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in expr.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' {
            cur.push(ch);
        } else {
            if cur.starts_with("chainstead_") || cur.starts_with("node_") {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    out
}

/// Every metric family chainstead's tools write, read from their sources.
fn tool_metric_names() -> BTreeSet<String> {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names = BTreeSet::new();
    for krate in ["backup", "sync-gate", "secrets", "common", "exporter"] {
        let dir = crates.join(krate).join("src");
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for part in text.split('"').skip(1).step_by(2) {
                        if part.starts_with("chainstead_")
                            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            names.insert(part.to_string());
                        }
                    }
                }
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs prometheus, monerod and nix-instantiate: run via checks/offline"]
async fn alerts_fire_on_faults_and_stay_silent_when_healthy() {
    // --- the node
    let lnd = FakeLnd::start(vec![
        channel("811111111111111111", true, 400_000, 596_530, vec![]),
        channel("822222222222222222", true, 250_000, 746_530, vec![]),
    ]);
    let btc = FakeBitcoind::start(850_000);
    let files = Files::new(&lnd.cert_pem);
    let mut monerod = Some(Monerod::start());
    let exp = Exporter::start(json!({
        "timeout_secs": 2,
        "lnd": files.lnd(lnd.addr),
        "bitcoind": files.bitcoind(&btc.url),
        "monerod": monerod.as_ref().unwrap().manifest(),
    }))
    .await;
    let t0 = now();
    let textfile = Arc::new(Mutex::new(backup_textfile(t0 - 100.0, t0 - 50.0)));
    let tf = textfile.clone();
    let node = ReplayServer::start(move |_| {
        Response::new(200, tf.lock().unwrap().clone())
            .header("Content-Type", "text/plain; version=0.0.4")
            .into()
    });

    // --- Prometheus with the shipped rules, durations shortened
    let dir = tempfile::tempdir().unwrap();
    let rules = rendered_rules(
        "{ channelInactiveMinutes = 0; backendDownMinutes = 0; syncGraceMinutes = 0; \
           lndUnsyncedMinutes = 0; peersLowMinutes = 0; monerodMinPeers = 0; }",
    );
    std::fs::write(dir.path().join("rules.yml"), rules.to_string()).unwrap();
    let port = free_port();
    // JSON is YAML.
    let config = json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {"job_name": "chainstead", "static_configs": [{"targets": [exp.addr.to_string()]}]},
            {"job_name": "node", "static_configs": [{"targets": [node.addr().to_string()]}]},
        ],
    })
    .to_string();
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let child = Command::new(require_binary("prometheus"))
        .current_dir(dir.path())
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let log = dir.path().join("prometheus.log");
    let _show_log = ShowOnPanic(log);
    let mut prom = ChildGuard::new(child);
    prom.wait_for_tcp(
        ([127, 0, 0, 1], port).into(),
        std::time::Duration::from_secs(60),
    );

    // --- every target up, the rules loaded
    eventually(120, "both targets up", async || {
        let v = api(port, "/api/v1/targets", &[]).await;
        let t = v["data"]["activeTargets"].as_array()?;
        (t.len() == 2 && t.iter().all(|t| t["health"] == "up")).then_some(())
    })
    .await;
    let loaded = api(port, "/api/v1/rules", &[]).await;
    let groups = loaded["data"]["groups"].as_array().unwrap();
    let n: usize = groups
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 17, "{loaded}");

    // --- healthy: after a few evaluations on real data, nothing at all
    eventually(120, "all three backends scraped as up", async || {
        let v = api(
            port,
            "/api/v1/query",
            &[("query", "sum(chainstead_exporter_up)")],
        )
        .await;
        (v["data"]["result"][0]["value"][1] == "3").then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let quiet = alerts(port).await;
    assert!(quiet.is_empty(), "alerts on the healthy node: {quiet:?}");

    // --- the dashboard: every expression accepted, every metric produced
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("grafana/chainstead.json")).unwrap(),
    )
    .unwrap();
    let exposed = exp.scrape().await;
    let mut known = tool_metric_names();
    for line in exposed.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            known.insert(rest.split(' ').next().unwrap().to_string());
        }
    }
    // node_exporter's (filesystem and systemd collectors).
    for n in [
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_systemd_unit_state",
    ] {
        known.insert(n.to_string());
    }
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().replace("$mountpoint", ".+"));
        }
    }
    assert!(exprs.len() > 20);
    for e in &exprs {
        let v = api(port, "/api/v1/query", &[("query", e)]).await;
        assert_eq!(v["status"], "success", "{e}: {v}");
        for name in metric_names(e) {
            assert!(
                known.contains(&name),
                "the dashboard's {e} uses {name}, which nothing produces"
            );
        }
    }
    // The rules, likewise.
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            for name in metric_names(r["expr"].as_str().unwrap()) {
                assert!(
                    known.contains(&name),
                    "rule {} uses {name}, which nothing produces",
                    r["alert"]
                );
            }
        }
    }

    // --- faults: a channel goes inactive, monerod stops, the backup is stale
    lnd.set(|s| s.channels[0]["active"] = json!(false));
    drop(monerod.take());
    let t1 = now();
    *textfile.lock().unwrap() = backup_textfile(t1, t1 - 5000.0);
    let firing = eventually(180, "the three alerts firing", async || {
        let a = alerts(port).await;
        let fires = |name: &str, label: (&str, &str)| {
            a.iter()
                .any(|(n, s, l)| n == name && s == "firing" && l[label.0] == label.1)
        };
        (fires("LndChannelInactive", ("chan_id", "811111111111111111"))
            && fires("ExporterBackendDown", ("backend", "monerod"))
            && fires("BackupBehindChannelChange", ("target", "nas")))
        .then_some(a)
    })
    .await;
    // Only the faults: the healthy channel and backends stay silent.
    for (name, _, labels) in &firing {
        assert!(
            [
                "LndChannelInactive",
                "ExporterBackendDown",
                "BackupBehindChannelChange",
                "BackupTargetStale"
            ]
            .contains(&name.as_str()),
            "unexpected alert {name} {labels}"
        );
        assert_ne!(labels["chan_id"], "822222222222222222", "{labels}");
        assert_ne!(labels["backend"], "lnd", "{labels}");
    }
}
