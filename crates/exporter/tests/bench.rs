//! Benchmark (run by `checks/offline --bench`): the exporter binary's
//! resident memory and CPU per scrape against replayed LND (20 channels,
//! a few HTLCs) and bitcoind, and its CPU while nobody scrapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{channel, htlc, sample, FakeBitcoind, FakeLnd, Files};
use serde_json::json;

/// (utime + stime in clock ticks, VmRSS kB, VmHWM kB) of `pid`.
fn proc_figures(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name in parentheses; utime/stime are 14, 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
            .unwrap()
    };
    (ticks, kb("VmRSS:"), kb("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: checks/offline --bench"]
async fn bench_exporter_rss_and_cpu_per_scrape() {
    let channels = (0..20)
        .map(|i| {
            let htlcs = if i % 5 == 0 {
                vec![htlc(i, i % 2 == 0, 1000 * i, 850_100)]
            } else {
                vec![]
            };
            channel(
                &format!("8{i:017}"),
                i % 7 != 0,
                100_000 + i,
                200_000,
                htlcs,
            )
        })
        .collect();
    chainstead_clients::http::ensure_crypto_provider();
    let lnd = FakeLnd::start(channels);
    let btc = FakeBitcoind::start(850_000);
    let files = Files::new(&lnd.cert_pem);
    let port = chainstead_testkit::free_port();
    let manifest = json!({
        "version": 1, "listen": format!("127.0.0.1:{port}"),
        "lnd": files.lnd(lnd.addr), "bitcoind": files.bitcoind(&btc.url),
    });
    let mpath = files.path("exporter.json");
    std::fs::write(&mpath, manifest.to_string()).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chainstead-exporter"))
        .args(["serve", "--manifest"])
        .arg(&mpath)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut guard = chainstead_testkit::ChildGuard::new(child);
    guard.wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(30));
    let pid = guard.id();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let first = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(&first, r#"chainstead_exporter_up{backend="lnd"}"#),
        Some(1.0),
        "{first}"
    );

    let (t0, rss0, _) = proc_figures(pid);
    let n = 200u32;
    let start = Instant::now();
    for _ in 0..n {
        let m = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(m.contains("chainstead_exporter_up{backend=\"bitcoind\"} 1"));
    }
    let wall = start.elapsed();
    let (t1, rss1, hwm) = proc_figures(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (t2, _, _) = proc_figures(pid);
    let tick = 1000.0 / 100.0; // ms per clock tick (USER_HZ is 100 on Linux)
    println!(
        "chainstead-exporter: {n} scrapes of {} bytes in {:.2} s ({:.1} ms each), CPU {:.2} ms per scrape; \
         RSS {rss0} kB before, {rss1} kB after, peak {hwm} kB; idle CPU over 5 s: {:.0} ms",
        first.len(),
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1000.0 / f64::from(n),
        (t1 - t0) as f64 * tick / f64::from(n),
        (t2 - t1) as f64 * tick,
    );
}
