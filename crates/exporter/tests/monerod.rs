//! The exporter against a real monerod (Debian `monero`, regtest, offline).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, sample, Exporter, Monerod};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs monerod: run via checks/offline"]
async fn real_monerod_figures_and_its_stop() {
    let node = Monerod::start();
    let exp = Exporter::start(json!({"monerod": node.manifest()})).await;
    // The RPC port opens before the core answers get_info: wait for up 1.
    let m = eventually(90, "monerod answering get_info", async || {
        let m = exp.scrape().await;
        (sample(&m, r#"chainstead_exporter_up{backend="monerod"}"#) == Some(1.0)).then_some(m)
    })
    .await;
    // A fresh regtest chain holds the genesis block only; offline it counts
    // itself synchronized with no peers (as the sync gate's tests observed).
    assert_eq!(sample(&m, "chainstead_monerod_height"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "chainstead_monerod_target_height"), Some(1.0));
    assert_eq!(sample(&m, "chainstead_monerod_synchronized"), Some(1.0));
    assert_eq!(
        sample(&m, r#"chainstead_monerod_peers{direction="inbound"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, r#"chainstead_monerod_peers{direction="outbound"}"#),
        Some(0.0)
    );
    drop(node);
    let m = exp.scrape().await;
    assert_eq!(
        sample(&m, r#"chainstead_exporter_up{backend="monerod"}"#),
        Some(0.0),
        "{m}"
    );
    assert_eq!(sample(&m, "chainstead_monerod_height"), None);
}
