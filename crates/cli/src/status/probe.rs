//! The probes: every one runs at the same time, each under the manifest's
//! timeout, so a dead or hanging backend costs at most that long.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use chainstead_backup::state as backup_state;
use chainstead_backup::version::Kind;
use chainstead_sync_gate::backend::{
    bitcoind::Bitcoind, electrum::Electrum, lnd::Lnd, monerod, Wait,
};
use chainstead_sync_gate::manifest::Backend;
use chainstead_sync_gate::Observation;

use super::lnd as lnd_api;
use super::manifest::{self, Manifest};
use super::report::*;
use super::units::{self, UnitSource, UnitState};

/// Runs `f` with `timeout`; a timeout becomes an error naming `what`.
async fn bounded<T>(
    what: &str,
    timeout: Duration,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!(
            "{what} did not answer within {:.1} s",
            timeout.as_secs_f64()
        ),
    }
}

/// Blocking file-system work (a hung mount must not hang us) on a thread.
async fn blocking<T: Send + 'static>(
    what: String,
    timeout: Duration,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    bounded(&what, timeout, async {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
    })
    .await
}

async fn unit_state(
    units: &dyn UnitSource,
    unit: Option<&str>,
    timeout: Duration,
) -> (Option<UnitState>, Option<String>) {
    let Some(unit) = unit else {
        return (None, None);
    };
    let r = bounded(&format!("systemctl show {unit}"), timeout, async {
        let text = units.show(unit, timeout).await?;
        units::parse(unit, &text)
    })
    .await;
    match r {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    }
}

pub fn now() -> f64 {
    backup_state::now()
}

/// Probes everything in the manifest and assesses the result.
pub async fn collect(m: &Manifest, units: &dyn UnitSource) -> Report {
    let timeout = Duration::from_secs_f64(m.timeout_secs);
    let services = futures::future::join_all(m.services.iter().map(|s| service(s, units, timeout)));
    let backup = async {
        match &m.backup {
            Some(b) => Some(backup(b, units, timeout).await),
            None => None,
        }
    };
    let secrets = async {
        match &m.secrets {
            Some(s) => Some(secrets(s, units, timeout).await),
            None => None,
        }
    };
    let tiers = futures::future::join_all(m.tiers.iter().map(|t| tier(t, timeout)));
    let addresses = futures::future::join_all(m.addresses.iter().map(|a| address(a, timeout)));
    let (services, backup, secrets, tiers, addresses) =
        tokio::join!(services, backup, secrets, tiers, addresses);
    let mut r = Report {
        schema_version: SCHEMA_VERSION,
        generated_at: now(),
        ok: true,
        attention: Vec::new(),
        services,
        backup,
        secrets,
        tiers,
        addresses,
    };
    r.attention = assess(&r);
    r.ok = r.attention.is_empty();
    r
}

/// What a backend probe yields: the observation and the peer count.
async fn probe_backend(b: &Backend, timeout: Duration) -> Result<(Observation, Option<u64>)> {
    let wait = |w: Wait| match w {
        Wait::NotYet(o) => Ok(o),
        Wait::Err(e) => Err(e.into_inner()),
    };
    match b.clone() {
        Backend::Bitcoind(cfg) => {
            let mut c = Bitcoind::new(cfg, "backend", timeout)?;
            let obs = c.probe().await.map_err(|e| e.into_inner())?;
            // getnetworkinfo's `connections` (bitcoin/bitcoin
            // src/rpc/net.cpp); only asked when the node answers at all.
            let peers = if obs.phase == "down" {
                None
            } else {
                c.call("getnetworkinfo")
                    .await
                    .ok()
                    .and_then(|v| v.get("connections").and_then(|n| n.as_u64()))
            };
            Ok((obs, peers))
        }
        Backend::Monerod(cfg) => {
            let mut c = monerod::Monerod::new(cfg, timeout)?;
            match c.info().await {
                Ok(info) => Ok((
                    monerod::observe(&info),
                    Some(info.outgoing_connections_count + info.incoming_connections_count),
                )),
                Err(w) => Ok((wait(w)?, None)),
            }
        }
        Backend::Electrum(cfg) => {
            let mut c = Electrum::new(cfg, timeout)?;
            Ok((c.probe().await.map_err(|e| e.into_inner())?, None))
        }
        Backend::Lnd(cfg) => {
            let mut c = Lnd::new(cfg, timeout)?;
            Ok((c.probe().await.map_err(|e| e.into_inner())?, None))
        }
    }
}

async fn service(
    s: &manifest::Service,
    units: &dyn UnitSource,
    timeout: Duration,
) -> ServiceReport {
    let unit = unit_state(units, s.unit.as_deref(), timeout);
    // Read before probing: the gate's earlier sample gives the rate.
    let earlier = s
        .gate
        .as_ref()
        .and_then(|g| g.metrics_file.as_deref())
        .and_then(|f| {
            gate_metrics(
                f,
                &s.gate.as_ref().map(|g| g.name.clone()).unwrap_or_default(),
            )
        });
    let backend = async {
        match &s.backend {
            Some(b) => Some(
                bounded(
                    &format!("{} ({})", s.name, b.kind()),
                    timeout,
                    probe_backend(b, timeout),
                )
                .await,
            ),
            None => None,
        }
    };
    let lnd = async {
        match (&s.backend, &s.macaroon_file) {
            (Some(Backend::Lnd(cfg)), Some(mac)) => Some(
                bounded(
                    &format!("LND at {}", cfg.rest_url),
                    timeout,
                    lnd_api::info(&cfg.rest_url, &cfg.tls_cert_file, mac, timeout),
                )
                .await,
            ),
            _ => None,
        }
    };
    let gate = async {
        match &s.gate {
            Some(g) => Some(gate(g, units, timeout).await),
            None => None,
        }
    };
    let ((unit, unit_error), backend, lnd, gate) = tokio::join!(unit, backend, lnd, gate);
    let mut r = ServiceReport {
        name: s.name.clone(),
        unit,
        unit_error,
        gate,
        ..ServiceReport::default()
    };
    match backend {
        Some(Ok((obs, peers))) => {
            let mut sync = SyncReport {
                ready: obs.ready,
                phase: obs.phase.to_string(),
                text: obs.text.clone(),
                height: obs.height,
                target: obs.target,
                ratio: obs.progress_ratio(),
                ..SyncReport::default()
            };
            if let (Some(e), Some(h), false) = (earlier, obs.height, obs.ready) {
                let dt = now() - e.at;
                if dt >= 1.0 && h > e.height {
                    let rate = (h - e.height) as f64 / dt;
                    sync.rate_blocks_per_sec = Some(rate);
                    sync.eta_secs = obs.remaining().map(|left| left as f64 / rate);
                }
            }
            if let Some(g) = r.gate.as_mut() {
                if !g.released {
                    g.holding = Some(obs.text.clone());
                }
            }
            r.sync = Some(sync);
            r.peers = peers;
        }
        Some(Err(e)) => r.sync_error = Some(format!("{e:#}")),
        None => {}
    }
    match lnd {
        Some(Ok(info)) => {
            if r.peers.is_none() {
                r.peers = info.peers;
            }
            r.lnd = Some(info);
        }
        Some(Err(e)) => r.lnd_error = Some(format!("{e:#}")),
        None => {}
    }
    r
}

/// The gate's last sample, from its metrics textfile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub height: u64,
    pub at: f64,
}

/// Reads `chainstead_sync_gate_height` and
/// `..._last_poll_timestamp_seconds` for `gate` (crates/sync-gate/src/gate.rs).
pub fn gate_metrics(file: &Path, gate: &str) -> Option<Sample> {
    let text = std::fs::read_to_string(file).ok()?;
    let m = parse_metrics(&text, gate);
    Some(Sample {
        height: m.height? as u64,
        at: m.last_poll?,
    })
}

#[derive(Debug, Default, PartialEq)]
pub struct GateMetrics {
    pub height: Option<f64>,
    pub last_poll: Option<f64>,
    pub last_error: Option<String>,
}

/// The samples of one gate in Prometheus text format.
pub fn parse_metrics(text: &str, gate: &str) -> GateMetrics {
    let mut out = GateMetrics::default();
    let label = format!("gate=\"{gate}\"");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        if !labels.contains(&label) {
            continue;
        }
        match name {
            "chainstead_sync_gate_height" => out.height = Some(v),
            "chainstead_sync_gate_last_poll_timestamp_seconds" => out.last_poll = Some(v),
            "chainstead_sync_gate_last_error" if v > 0.0 => {
                out.last_error = labels
                    .split_once("message=\"")
                    .map(|(_, m)| {
                        let m = m.strip_suffix('}').unwrap_or(m);
                        m.strip_suffix('"').unwrap_or(m)
                    })
                    .map(|m| {
                        m.replace("\\\"", "\"")
                            .replace("\\n", " ")
                            .replace("\\\\", "\\")
                    });
            }
            _ => {}
        }
    }
    out
}

async fn gate(g: &manifest::Gate, units: &dyn UnitSource, timeout: Duration) -> GateReport {
    let unit = unit_state(units, g.unit.as_deref(), timeout);
    let files = {
        let (flag, metrics, name) = (g.flag_file.clone(), g.metrics_file.clone(), g.name.clone());
        blocking(format!("gate {} files", g.name), timeout, move || {
            let released = flag.exists();
            let m = metrics
                .and_then(|f| std::fs::read_to_string(f).ok())
                .map(|t| parse_metrics(&t, &name))
                .unwrap_or_default();
            Ok((released, m))
        })
    };
    let ((unit, unit_error), files) = tokio::join!(unit, files);
    let mut r = GateReport {
        name: g.name.clone(),
        unit,
        unit_error,
        ..GateReport::default()
    };
    if let Ok((released, m)) = files {
        r.released = released;
        r.last_error = m.last_error;
        r.last_poll_age_secs = m.last_poll.map(|t| (now() - t).max(0.0));
    }
    if !r.released {
        r.holding = Some("backend not ready yet".into());
    }
    r
}

async fn backup(b: &manifest::Backup, units: &dyn UnitSource, timeout: Duration) -> BackupReport {
    let unit = unit_state(units, b.unit.as_deref(), timeout);
    let dir = b.state_dir.clone();
    let st = blocking("backup state.json".into(), timeout, move || {
        backup_state::load(&dir)
    });
    let ((unit, unit_error), st) = tokio::join!(unit, st);
    let mut r = BackupReport {
        unit,
        unit_error,
        ..BackupReport::default()
    };
    let st = match st {
        Ok(st) => st,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    let now = now();
    r.channel_version = st.channel.as_ref().map(|c| c.name.clone());
    r.source_failing = st.source.failing;
    r.source_error = st.source.last_error.clone();
    for t in &b.targets {
        let lane = st
            .targets
            .get(&t.name)
            .map(|ts| ts.lane(Kind::Channel).clone())
            .unwrap_or_default();
        let current = st.is_current(&t.name, Kind::Channel);
        let age = lane.last_success.map(|s| (now - s).max(0.0));
        // Nothing to hold before LND wrote its first channel.backup.
        let stale = st.channel.is_some() && !current && age.is_none_or(|a| a > b.max_age_secs);
        r.targets.push(BackupTargetReport {
            name: t.name.clone(),
            kind: t.kind.clone(),
            current,
            stale,
            last_success: lane.last_success,
            age_secs: age,
            last_error: lane.last_error.clone(),
            consecutive_failures: lane.consecutive_failures,
        });
    }
    r
}

async fn secrets(
    s: &manifest::Secrets,
    units: &dyn UnitSource,
    timeout: Duration,
) -> SecretsReport {
    let sets = s.sets.iter().map(|(name, set)| async move {
        let unit = unit_state(units, set.unit.as_deref(), timeout);
        let dir = s.runtime_dir.join(name);
        let files = set.files.clone();
        // Presence only: the files are the services', never opened here.
        let check = blocking(format!("secrets of {name}"), timeout, move || {
            let (mut loaded, mut missing) = (Vec::new(), Vec::new());
            for f in files {
                match std::fs::symlink_metadata(dir.join(&f)) {
                    Ok(_) => loaded.push(f),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(f),
                    Err(e) => anyhow::bail!("failed to look at {}: {e}", dir.join(&f).display()),
                }
            }
            Ok((loaded, missing))
        });
        let ((unit, unit_error), check) = tokio::join!(unit, check);
        let mut r = SecretSetReport {
            name: name.clone(),
            unit,
            unit_error,
            ..SecretSetReport::default()
        };
        match check {
            Ok((loaded, missing)) => {
                r.loaded = loaded;
                r.missing = missing;
            }
            Err(e) => r.error = Some(format!("{e:#}")),
        }
        r
    });
    SecretsReport {
        sets: futures::future::join_all(sets).await,
    }
}

async fn tier(t: &manifest::Tier, timeout: Duration) -> TierReport {
    let path = t.path.clone();
    let mut r = TierReport {
        name: t.name.clone(),
        path: t.path.display().to_string(),
        ..TierReport::default()
    };
    let st = blocking(
        format!("statvfs {}", t.path.display()),
        timeout,
        move || {
            let s = nix::sys::statvfs::statvfs(&path)
                .map_err(|e| anyhow::anyhow!("failed to statvfs {}: {e}", path.display()))?;
            let frag = s.fragment_size() as u64;
            let total = s.blocks() as u64 * frag;
            let free_all = s.blocks_free() as u64 * frag;
            let avail = s.blocks_available() as u64 * frag;
            Ok((total, total.saturating_sub(free_all), avail))
        },
    )
    .await;
    match st {
        Ok((total, used, avail)) => {
            r.total_bytes = Some(total);
            r.used_bytes = Some(used);
            r.free_bytes = Some(avail);
            // As df counts it: used / (used + available).
            let denom = used + avail;
            r.used_ratio = (denom > 0).then(|| used as f64 / denom as f64);
        }
        Err(e) => r.error = Some(format!("{e:#}")),
    }
    r
}

async fn address(a: &manifest::Address, timeout: Duration) -> AddressReport {
    let mut r = AddressReport {
        service: a.service.clone(),
        kind: a.kind.clone(),
        ..AddressReport::default()
    };
    let host = match (&a.address, &a.hostname_file) {
        (Some(addr), _) => Ok(Some(addr.clone())),
        (None, Some(f)) => {
            let f = f.clone();
            blocking("onion hostname".into(), timeout, move || {
                let t = std::fs::read_to_string(&f)
                    .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", f.display()))?;
                Ok(t.lines()
                    .next()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()))
            })
            .await
        }
        (None, None) => Ok(None),
    };
    match host {
        Ok(Some(h)) => {
            r.address = Some(match a.port {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        }
        Ok(None) => r.error = Some("not configured yet".into()),
        Err(e) => r.error = Some(format!("{e:#}")),
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gate_metrics() {
        // As crates/sync-gate/src/gate.rs renders them.
        let text = "# HELP chainstead_sync_gate_height x\n# TYPE chainstead_sync_gate_height gauge\n\
            chainstead_sync_gate_height{gate=\"bitcoind\"} 500\n\
            chainstead_sync_gate_height{gate=\"other\"} 7\n\
            chainstead_sync_gate_last_error{gate=\"bitcoind\",kind=\"transient\",message=\"timed \\\"out\\\"\"} 1\n\
            chainstead_sync_gate_last_poll_timestamp_seconds{gate=\"bitcoind\"} 1764621000.5\n";
        let m = parse_metrics(text, "bitcoind");
        assert_eq!(m.height, Some(500.0));
        assert_eq!(m.last_poll, Some(1_764_621_000.5));
        assert_eq!(m.last_error.as_deref(), Some("timed \"out\""));
        assert_eq!(parse_metrics(text, "other").height, Some(7.0));
    }
}
