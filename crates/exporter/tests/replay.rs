//! The exporter against replayed LND (over TLS, with its macaroon check)
//! and bitcoind, whose answers follow the upstream documentation (see
//! common/mod.rs), and against backends that are down or answer garbage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{channel, htlc, sample, Exporter, FakeBitcoind, FakeLnd, Files};
use serde_json::json;

const CH1: &str = r#"{chan_id="811111111111111111",remote_pubkey="020000000000000000000000000000000000000000000000811111111111111111"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn channels_going_inactive_and_htlcs_appearing() {
    let lnd = FakeLnd::start(vec![
        channel("811111111111111111", true, 400_000, 596_530, vec![]),
        channel("822222222222222222", true, 250_000, 746_530, vec![]),
    ]);
    let btc = FakeBitcoind::start(850_000);
    let files = Files::new(&lnd.cert_pem);
    let exp = Exporter::start(json!({
        "lnd": files.lnd(lnd.addr),
        "bitcoind": files.bitcoind(&btc.url),
    }))
    .await;

    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="lnd"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="bitcoind"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&m, "chainstead_lnd_synced_to_chain"), Some(1.0));
    assert_eq!(sample(&m, "chainstead_lnd_peers"), Some(3.0));
    assert_eq!(
        sample(&m, r#"chainstead_lnd_channels{state="active"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&m, r#"chainstead_lnd_channels{state="inactive"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, &format!("chainstead_lnd_channel_active{CH1}")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("chainstead_lnd_channel_local_balance_satoshis{CH1}")
        ),
        Some(400_000.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("chainstead_lnd_channel_remote_balance_satoshis{CH1}")
        ),
        Some(596_530.0)
    );
    assert_eq!(
        sample(&m, "chainstead_lnd_local_balance_satoshis"),
        Some(650_000.0)
    );
    assert_eq!(
        sample(&m, "chainstead_lnd_remote_balance_satoshis"),
        Some(1_343_060.0)
    );
    assert_eq!(
        sample(
            &m,
            r#"chainstead_lnd_wallet_balance_satoshis{status="confirmed"}"#
        ),
        Some(1_400_000.0)
    );
    assert_eq!(sample(&m, "chainstead_lnd_pending_htlcs"), Some(0.0));
    assert_eq!(
        sample(&m, "chainstead_lnd_htlc_oldest_age_seconds"),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "chainstead_lnd_htlc_min_expiry_blocks"),
        None,
        "{m}"
    );
    assert_eq!(sample(&m, "chainstead_bitcoind_blocks"), Some(850_000.0));
    assert_eq!(
        sample(&m, r#"chainstead_bitcoind_peers{direction="inbound"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&m, r#"chainstead_bitcoind_peers{direction="outbound"}"#),
        Some(8.0)
    );

    // The first channel goes inactive with two HTLCs in flight.
    lnd.set(|s| {
        s.channels[0] = channel(
            "811111111111111111",
            false,
            380_000,
            596_530,
            vec![
                htlc(7, false, 15_000, 850_040),
                htlc(8, true, 5_000, 850_144),
            ],
        );
    });
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, &format!("chainstead_lnd_channel_active{CH1}")),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"chainstead_lnd_channels{state="inactive"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, &format!("chainstead_lnd_channel_pending_htlcs{CH1}")),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("chainstead_lnd_channel_pending_htlc_satoshis{CH1}")
        ),
        Some(20_000.0)
    );
    assert_eq!(sample(&m, "chainstead_lnd_pending_htlcs"), Some(2.0));
    assert_eq!(
        sample(&m, "chainstead_lnd_pending_htlc_satoshis"),
        Some(20_000.0)
    );
    assert_eq!(
        sample(&m, "chainstead_lnd_htlc_min_expiry_blocks"),
        Some(40.0)
    );
    assert_eq!(
        sample(&m, "chainstead_lnd_htlc_oldest_age_blocks"),
        Some(0.0)
    );

    // Three blocks later the same HTLCs are three blocks and some time old.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    lnd.set(|s| s.height = 850_003);
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, "chainstead_lnd_htlc_oldest_age_blocks"),
        Some(3.0),
        "{m}"
    );
    assert!(sample(&m, "chainstead_lnd_htlc_oldest_age_seconds").unwrap() >= 1.0);

    // Resolved: the age is gone.
    lnd.set(|s| s.channels[0]["pending_htlcs"] = json!([]));
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, "chainstead_lnd_htlc_oldest_age_seconds"),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "chainstead_lnd_htlc_oldest_age_blocks"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_macaroon_is_lnd_down_and_bitcoind_still_served() {
    let lnd = FakeLnd::start(vec![channel("1", true, 1, 1, vec![])]);
    let btc = FakeBitcoind::start(850_000);
    let files = Files::new(&lnd.cert_pem);
    std::fs::write(files.path("readonly.macaroon"), b"another node's macaroon").unwrap();
    let exp =
        Exporter::start(json!({"lnd": files.lnd(lnd.addr), "bitcoind": files.bitcoind(&btc.url)}))
            .await;
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="lnd"}"#),
        Some(0.0),
        "{m}"
    );
    assert!(!m.contains("chainstead_lnd_channel_active{"), "{m}");
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="bitcoind"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&m, "chainstead_bitcoind_blocks"), Some(850_000.0));
    assert_eq!(
        sample(
            &m,
            r#"chainstead_exporter_probe_errors_total{backend="lnd"}"#
        ),
        Some(1.0)
    );
    // The right one again: LND is back without a restart.
    std::fs::write(files.path("readonly.macaroon"), common::MACAROON).unwrap();
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="lnd"}"#),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_wrong_certificate_backends_are_up_0() {
    let lnd = FakeLnd::start(vec![]);
    let files = Files::new(&lnd.cert_pem);
    // A certificate that is not the one LND presents.
    let (other, _, _) = common::support::lnd_like_cert();
    std::fs::write(files.path("tls.cert"), other).unwrap();
    let closed = chainstead_testkit::free_port();
    let exp = Exporter::start(json!({
        "timeout_secs": 3,
        "lnd": files.lnd(lnd.addr),
        "monerod": {"rpc_url": format!("http://127.0.0.1:{closed}"), "nettype": "fakechain"},
        "bitcoind": files.bitcoind(&format!("http://127.0.0.1:{closed}")),
        "fulcrum": {"address": format!("127.0.0.1:{closed}"), "reference": files.bitcoind(&format!("http://127.0.0.1:{closed}"))},
    }))
    .await;
    let m = exp.scrape().await;
    for b in ["lnd", "monerod", "bitcoind", "fulcrum"] {
        assert_eq!(
            sample(&m, &format!("chainstead_exporter_up{{backend=\"{b}\"}}")),
            Some(0.0),
            "{b}: {m}"
        );
    }
    assert!(m.contains("chainstead_exporter_scrapes_total 1"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_up_0() {
    let lnd = FakeLnd::start(vec![]);
    lnd.set(|s| s.raw_channels = Some(r#"{"channels": [{"active": tru"#));
    let files = Files::new(&lnd.cert_pem);
    let exp = Exporter::start(json!({"lnd": files.lnd(lnd.addr)})).await;
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="lnd"}"#),
        Some(0.0),
        "{m}"
    );
    lnd.set(|s| s.raw_channels = Some(r#"{"channels": [{"local_balance": "a lot"}]}"#));
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="lnd"}"#),
        Some(0.0),
        "{m}"
    );
    lnd.set(|s| s.raw_channels = None);
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="lnd"}"#),
        Some(1.0),
        "{m}"
    );
}

/// promtool's linter over the real output (HELP/TYPE, naming, units).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs promtool: run via checks/offline"]
async fn promtool_accepts_the_output() {
    use std::io::Write;
    let lnd = FakeLnd::start(vec![channel(
        "811111111111111111",
        false,
        1000,
        2000,
        vec![htlc(1, true, 500, 850_100)],
    )]);
    let btc = FakeBitcoind::start(850_000);
    let files = Files::new(&lnd.cert_pem);
    let exp =
        Exporter::start(json!({"lnd": files.lnd(lnd.addr), "bitcoind": files.bitcoind(&btc.url)}))
            .await;
    let m = exp.scrape().await;
    let mut child = std::process::Command::new(common::promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{m}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A line server speaking the Electrum protocol as ElectrumX documents it
/// and Fulcrum implements it: JSON-RPC 2.0, one object per line;
/// `server.version` answers `[software, protocol]`,
/// `blockchain.headers.subscribe` answers `{"height", "hex"}`.
fn electrum(height: std::sync::Arc<std::sync::atomic::AtomicU64>) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let height = height.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    let req: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let result = match req["method"].as_str().unwrap() {
                        "server.version" => json!(["Fulcrum 1.12.0", "1.4"]),
                        _ => {
                            json!({"height": height.load(std::sync::atomic::Ordering::SeqCst), "hex": "00".repeat(80)})
                        }
                    };
                    let reply = json!({"jsonrpc": "2.0", "id": req["id"], "result": result});
                    if writeln!(out, "{reply}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn fulcrum_against_its_bitcoind() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let height = std::sync::Arc::new(AtomicU64::new(849_995));
    let addr = electrum(height.clone());
    let btc = FakeBitcoind::start(850_000);
    let files = Files::new("");
    let exp = Exporter::start(json!({
        "fulcrum": {"address": addr.to_string(), "reference": files.bitcoind(&btc.url)},
    }))
    .await;
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="fulcrum"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(sample(&m, "chainstead_fulcrum_height"), Some(849_995.0));
    assert_eq!(
        sample(&m, "chainstead_fulcrum_bitcoind_height"),
        Some(850_000.0)
    );
    assert_eq!(sample(&m, "chainstead_fulcrum_behind_blocks"), Some(5.0));
    // Caught up.
    height.store(850_000, Ordering::SeqCst);
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, "chainstead_fulcrum_behind_blocks"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "chainstead_fulcrum_bitcoind_height"),
        Some(850_000.0)
    );
}
