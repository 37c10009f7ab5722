//! One scrape: every configured backend looked at in parallel, each with
//! its own timeout, and the answers rendered in the Prometheus text format.
//! A backend that fails is `chainstead_exporter_up{backend} 0` and a log
//! line (when its error changes), never a failed scrape.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use chainstead_common::metrics::Textfile;

use chainstead_clients::bitcoind::{self, Bitcoind, BitcoindConfig};
use chainstead_clients::lnd::{self, Lnd};
use chainstead_clients::monerod::{self, Monerod};

use crate::fulcrum::{self, Fulcrum};
use crate::manifest::Manifest;
use crate::source::Source;

/// Per backend: its last error (to log changes only) and its counters.
#[derive(Default)]
struct Health {
    last_error: Option<String>,
    errors_total: u64,
}

/// When a pending HTLC was first seen: wall time and LND's block height.
#[derive(Clone, Copy)]
struct Seen {
    at: Instant,
    height: u64,
}

/// The HTLC ages the exporter has to remember itself: lnrpc's HTLC carries
/// no creation time, so the age is counted from the first scrape that saw
/// it (a restart of the exporter restarts the count).
#[derive(Default)]
pub struct HtlcAges {
    seen: HashMap<(String, bool, u64, String), Seen>,
}

impl HtlcAges {
    /// Forgets resolved HTLCs, remembers new ones; returns the oldest age
    /// in seconds and blocks (0 with no HTLC pending).
    pub fn update(&mut self, snap: &lnd::Snapshot, now: Instant) -> (f64, u64) {
        let height = snap.info.block_height;
        let mut current = HashMap::new();
        for c in &snap.channels {
            for h in &c.pending_htlcs {
                let key = (
                    c.chan_id.clone(),
                    h.incoming,
                    h.htlc_index,
                    h.hash_lock.clone(),
                );
                let seen = self
                    .seen
                    .get(&key)
                    .copied()
                    .unwrap_or(Seen { at: now, height });
                current.insert(key, seen);
            }
        }
        self.seen = current;
        self.seen.values().fold((0.0, 0), |(s, b), seen| {
            (
                s.max(now.saturating_duration_since(seen.at).as_secs_f64()),
                b.max(height.saturating_sub(seen.height)),
            )
        })
    }
}

pub struct Collector {
    timeout: Duration,
    bitcoind: Option<Bitcoind>,
    monerod: Option<Monerod>,
    lnd: Option<Lnd>,
    fulcrum: Option<Fulcrum>,
    health: HashMap<&'static str, Health>,
    htlcs: HtlcAges,
    scrapes_total: u64,
}

/// The outcome of one look, with how long it took.
struct Look<T> {
    name: &'static str,
    result: Result<T>,
    seconds: f64,
}

async fn look<S: Source>(src: Option<&mut S>, timeout: Duration) -> Option<Look<S::Snapshot>> {
    let src = src?;
    let name = src.name();
    let start = Instant::now();
    let result = match tokio::time::timeout(timeout, src.look()).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "{name} gave no complete answer within {:.1}s",
            timeout.as_secs_f64()
        )),
    };
    Some(Look {
        name,
        result,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl Collector {
    pub fn new(m: &Manifest) -> Result<Self> {
        let t = m.timeout();
        Ok(Self {
            timeout: t,
            bitcoind: m
                .bitcoind
                .as_ref()
                .map(|b| {
                    let cfg = BitcoindConfig {
                        at: "bitcoind".into(),
                        rpc_url: b.rpc_url.clone(),
                        cookie_file: b.cookie_file.clone(),
                        rpc_user: b.rpc_user.clone(),
                        rpc_password_file: b.rpc_password_file.clone(),
                    };
                    Bitcoind::new(cfg, t)
                })
                .transpose()?,
            monerod: m
                .monerod
                .as_ref()
                .map(|b| Monerod::new(&b.rpc_url, t))
                .transpose()?,
            lnd: m.lnd.as_ref().map(|b| Lnd::new(b, t)),
            fulcrum: m.fulcrum.clone().map(|b| Fulcrum::new(b, t)).transpose()?,
            health: HashMap::new(),
            htlcs: HtlcAges::default(),
            scrapes_total: 0,
        })
    }

    /// Looks at every backend and renders the whole exposition.
    pub async fn scrape(&mut self) -> String {
        // The outer fence: a look may take its timeout plus the HTTP
        // layer's second; never more.
        let t = self.timeout;
        let (b, m, l, f) = tokio::join!(
            look(self.bitcoind.as_mut(), t),
            look(self.monerod.as_mut(), t),
            look(self.lnd.as_mut(), t),
            look(self.fulcrum.as_mut(), t),
        );
        self.scrapes_total += 1;
        let mut out = Textfile::new();
        out.family(
            "chainstead_exporter_up",
            "gauge",
            "1 if the backend answered this scrape, else 0 (the log says why).",
        );
        let mut durations = Vec::new();
        let b = self.settle(&mut out, b, &mut durations);
        let m = self.settle(&mut out, m, &mut durations);
        let l = self.settle(&mut out, l, &mut durations);
        let f = self.settle(&mut out, f, &mut durations);
        out.family(
            "chainstead_exporter_probe_duration_seconds",
            "gauge",
            "How long the backend took to answer this scrape, in seconds.",
        );
        for (name, s) in &durations {
            out.sample(
                "chainstead_exporter_probe_duration_seconds",
                &[("backend", name)],
                *s,
            );
        }
        out.family(
            "chainstead_exporter_probe_errors_total",
            "counter",
            "Scrapes in which the backend failed to answer.",
        );
        for (name, _) in &durations {
            let n = self.health.get(name).map_or(0, |h| h.errors_total);
            out.sample(
                "chainstead_exporter_probe_errors_total",
                &[("backend", name)],
                n as f64,
            );
        }
        out.family(
            "chainstead_exporter_scrapes_total",
            "counter",
            "Scrapes served since the exporter started.",
        )
        .sample(
            "chainstead_exporter_scrapes_total",
            &[],
            self.scrapes_total as f64,
        );
        if let Some(s) = b {
            render_bitcoind(&mut out, &s);
        }
        if let Some(s) = m {
            render_monerod(&mut out, &s);
        }
        if let Some(s) = l {
            let ages = self.htlcs.update(&s, Instant::now());
            render_lnd(&mut out, &s, ages);
        }
        if let Some(s) = f {
            render_fulcrum(&mut out, &s);
        }
        out.render().to_string()
    }

    /// Writes `up`, logs a changed error, returns the snapshot if any.
    fn settle<T>(
        &mut self,
        out: &mut Textfile,
        look: Option<Look<T>>,
        durations: &mut Vec<(&'static str, f64)>,
    ) -> Option<T> {
        let look = look?;
        durations.push((look.name, look.seconds));
        let health = self.health.entry(look.name).or_default();
        match look.result {
            Ok(s) => {
                if health.last_error.take().is_some() {
                    tracing::info!("{} answers again", look.name);
                }
                out.sample("chainstead_exporter_up", &[("backend", look.name)], 1.0);
                Some(s)
            }
            Err(e) => {
                let text = format!("{e:#}");
                if health.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("failed to read {}: {text}", look.name);
                }
                health.last_error = Some(text);
                health.errors_total += 1;
                out.sample("chainstead_exporter_up", &[("backend", look.name)], 0.0);
                None
            }
        }
    }
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

pub fn render_bitcoind(t: &mut Textfile, s: &bitcoind::Snapshot) {
    t.gauge(
        "chainstead_bitcoind_blocks",
        "Height of bitcoind's validated chain, in blocks.",
        s.chain.blocks as f64,
    );
    t.gauge(
        "chainstead_bitcoind_headers",
        "Height of the best header chain bitcoind knows, in blocks.",
        s.chain.headers as f64,
    );
    t.gauge(
        "chainstead_bitcoind_initial_block_download",
        "1 while bitcoind is in initial block download.",
        flag(s.chain.initialblockdownload),
    );
    t.gauge(
        "chainstead_bitcoind_verification_progress_ratio",
        "bitcoind's estimate of how much of the chain it has verified, 0 to 1.",
        s.chain.verificationprogress,
    );
    t.family(
        "chainstead_bitcoind_peers",
        "gauge",
        "bitcoind's peer connections by direction.",
    )
    .sample(
        "chainstead_bitcoind_peers",
        &[("direction", "inbound")],
        s.net.connections_in as f64,
    )
    .sample(
        "chainstead_bitcoind_peers",
        &[("direction", "outbound")],
        s.net.connections_out as f64,
    );
}

pub fn render_monerod(t: &mut Textfile, s: &monerod::Snapshot) {
    t.gauge(
        "chainstead_monerod_height",
        "monerod's chain height, in blocks (top height + 1).",
        s.height as f64,
    );
    // monerod reports 0 both before a peer announced a height and once
    // synchronized; the larger of the two is the height it aims at.
    t.gauge(
        "chainstead_monerod_target_height",
        "Height monerod is syncing towards, in blocks (its own height once synchronized).",
        s.target_height.max(s.height) as f64,
    );
    t.gauge(
        "chainstead_monerod_synchronized",
        "1 once monerod considers itself synchronized.",
        flag(s.synchronized),
    );
    t.family(
        "chainstead_monerod_peers",
        "gauge",
        "monerod's peer connections by direction.",
    )
    .sample(
        "chainstead_monerod_peers",
        &[("direction", "inbound")],
        s.incoming_connections_count as f64,
    )
    .sample(
        "chainstead_monerod_peers",
        &[("direction", "outbound")],
        s.outgoing_connections_count as f64,
    );
}

pub fn render_fulcrum(t: &mut Textfile, s: &fulcrum::Snapshot) {
    t.gauge(
        "chainstead_fulcrum_height",
        "Fulcrum's chain tip, in blocks.",
        s.height as f64,
    );
    t.gauge(
        "chainstead_fulcrum_bitcoind_height",
        "Height of Fulcrum's bitcoind at the same scrape, in blocks (Fulcrum's own when it is not behind).",
        s.bitcoind_height as f64,
    );
    t.gauge(
        "chainstead_fulcrum_behind_blocks",
        "Blocks Fulcrum is behind its bitcoind.",
        s.bitcoind_height.saturating_sub(s.height) as f64,
    );
}

pub fn render_lnd(t: &mut Textfile, s: &lnd::Snapshot, (age_s, age_b): (f64, u64)) {
    t.gauge(
        "chainstead_lnd_synced_to_chain",
        "1 when LND is synced to the chain (getinfo synced_to_chain).",
        flag(s.info.synced_to_chain),
    );
    t.gauge(
        "chainstead_lnd_synced_to_graph",
        "1 when LND is synced to the channel graph (getinfo synced_to_graph).",
        flag(s.info.synced_to_graph),
    );
    t.gauge(
        "chainstead_lnd_block_height",
        "The block height LND is at.",
        s.info.block_height as f64,
    );
    t.gauge(
        "chainstead_lnd_peers",
        "Peers LND is connected to.",
        s.info.num_peers as f64,
    );
    let active = s.channels.iter().filter(|c| c.active).count();
    t.family(
        "chainstead_lnd_channels",
        "gauge",
        "LND's channels by state.",
    )
    .sample(
        "chainstead_lnd_channels",
        &[("state", "active")],
        active as f64,
    )
    .sample(
        "chainstead_lnd_channels",
        &[("state", "inactive")],
        (s.channels.len() - active) as f64,
    )
    .sample(
        "chainstead_lnd_channels",
        &[("state", "pending_open")],
        s.pending_open as f64,
    );
    type Per = (&'static str, &'static str, fn(&lnd::Channel) -> f64);
    let per: [Per; 6] = [
        (
            "chainstead_lnd_channel_active",
            "1 while the channel is active (its peer online and the channel usable).",
            |c| flag(c.active),
        ),
        (
            "chainstead_lnd_channel_capacity_satoshis",
            "Capacity of the channel, in satoshis.",
            |c| c.capacity as f64,
        ),
        (
            "chainstead_lnd_channel_local_balance_satoshis",
            "This node's balance in the channel, in satoshis.",
            |c| c.local_balance as f64,
        ),
        (
            "chainstead_lnd_channel_remote_balance_satoshis",
            "The peer's balance in the channel, in satoshis.",
            |c| c.remote_balance as f64,
        ),
        (
            "chainstead_lnd_channel_pending_htlcs",
            "HTLCs pending on the channel.",
            |c| c.pending_htlcs.len() as f64,
        ),
        (
            "chainstead_lnd_channel_pending_htlc_satoshis",
            "Sum of the channel's pending HTLC amounts, in satoshis.",
            |c| c.pending_htlcs.iter().map(|h| h.amount as f64).sum(),
        ),
    ];
    for (name, help, get) in per {
        t.family(name, "gauge", help);
        for c in &s.channels {
            t.sample(
                name,
                &[("chan_id", &c.chan_id), ("remote_pubkey", &c.remote_pubkey)],
                get(c),
            );
        }
    }
    let htlcs: Vec<_> = s.channels.iter().flat_map(|c| &c.pending_htlcs).collect();
    t.gauge(
        "chainstead_lnd_pending_htlcs",
        "HTLCs pending over all channels.",
        htlcs.len() as f64,
    );
    t.gauge(
        "chainstead_lnd_pending_htlc_satoshis",
        "Sum of all pending HTLC amounts, in satoshis.",
        htlcs.iter().map(|h| h.amount as f64).sum(),
    );
    t.gauge(
        "chainstead_lnd_htlc_oldest_age_seconds",
        "Age of the oldest pending HTLC since the exporter first saw it, in seconds (0 with none).",
        age_s,
    );
    t.gauge(
        "chainstead_lnd_htlc_oldest_age_blocks",
        "Blocks mined since the exporter first saw the oldest pending HTLC (0 with none).",
        age_b as f64,
    );
    let expiry = htlcs
        .iter()
        .map(|h| h.expiration_height.saturating_sub(s.info.block_height))
        .min();
    t.family(
        "chainstead_lnd_htlc_min_expiry_blocks",
        "gauge",
        "Blocks until the soonest pending HTLC expires; no sample with none.",
    );
    if let Some(e) = expiry {
        t.sample("chainstead_lnd_htlc_min_expiry_blocks", &[], e as f64);
    }
    t.gauge(
        "chainstead_lnd_local_balance_satoshis",
        "This node's balance over all open channels, in satoshis (channelbalance local_balance).",
        s.local_balance_sat as f64,
    );
    t.gauge(
        "chainstead_lnd_remote_balance_satoshis",
        "The peers' balance over all open channels, in satoshis (channelbalance remote_balance).",
        s.remote_balance_sat as f64,
    );
    t.family(
        "chainstead_lnd_wallet_balance_satoshis",
        "gauge",
        "LND's on-chain wallet balance, in satoshis.",
    )
    .sample(
        "chainstead_lnd_wallet_balance_satoshis",
        &[("status", "confirmed")],
        s.wallet_confirmed_sat as f64,
    )
    .sample(
        "chainstead_lnd_wallet_balance_satoshis",
        &[("status", "unconfirmed")],
        s.wallet_unconfirmed_sat as f64,
    );
}
