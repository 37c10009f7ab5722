//! The probes: every one runs at the same time, each under the manifest's
//! timeout, so a dead or hanging backend costs at most that long.

use std::collections::BTreeMap;
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

/// How the backup pusher's `state.json` is read: [`backup_state::load`];
/// tests pass another to simulate a permission error (as root, permission
/// checks do not apply).
pub type StateReader = fn(&Path) -> Result<backup_state::State>;

/// Probes everything in the manifest and assesses the result.
pub async fn collect(m: &Manifest, units: &dyn UnitSource) -> Report {
    collect_with(m, units, backup_state::load).await
}

/// [`collect`] with the given reader of the pusher's `state.json`.
pub async fn collect_with(m: &Manifest, units: &dyn UnitSource, read_state: StateReader) -> Report {
    let timeout = Duration::from_secs_f64(m.timeout_secs);
    let services = futures::future::join_all(m.services.iter().map(|s| service(s, units, timeout)));
    let backup = async {
        match &m.backup {
            Some(b) => Some(backup(b, units, timeout, read_state).await),
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

/// What `status` learns of the pusher, from either of its files.
enum BackupSource {
    State(Box<backup_state::State>),
    /// `state.json` was not readable (why), the metrics file was.
    Metrics(BackupMetrics, String),
}

/// True when `e` is, at its root, a permission error.
fn permission_denied(e: &anyhow::Error) -> bool {
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

async fn backup(
    b: &manifest::Backup,
    units: &dyn UnitSource,
    timeout: Duration,
    read_state: StateReader,
) -> BackupReport {
    let unit = unit_state(units, b.unit.as_deref(), timeout);
    let (dir, metrics) = (b.state_dir.clone(), b.metrics_file.clone());
    let st = blocking("backup state.json".into(), timeout, move || {
        let e = match read_state(&dir) {
            Ok(st) => return Ok(BackupSource::State(Box::new(st))),
            Err(e) if permission_denied(&e) => e,
            Err(e) => return Err(e),
        };
        // The state directory is the pusher's alone (0700); its metrics
        // textfile is world-readable for node_exporter.
        let Some(f) = metrics else {
            anyhow::bail!(
                "{e:#}, and the pusher writes no metrics file to fall back on; \
                 run `sudo chainstead status` to see the backup state"
            );
        };
        match std::fs::read_to_string(&f) {
            Ok(text) => Ok(BackupSource::Metrics(
                parse_backup_metrics(&text),
                format!("{e:#}"),
            )),
            Err(me) => anyhow::bail!(
                "{e:#}, and failed to read {} ({me}): the pusher may not have run yet; \
                 run `sudo chainstead status` to see the backup state",
                f.display()
            ),
        }
    });
    let ((unit, unit_error), st) = tokio::join!(unit, st);
    let mut r = BackupReport {
        unit,
        unit_error,
        ..BackupReport::default()
    };
    let st = match st {
        Ok(BackupSource::State(st)) => st,
        Ok(BackupSource::Metrics(m, why)) => {
            r.data_source = Some("metrics".into());
            r.state_error = Some(why);
            from_metrics(&mut r, b, &m);
            return r;
        }
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    r.data_source = Some("state".into());
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

/// The channel lane of the pusher's metrics (crates/backup/src/state.rs
/// `render_metrics`): what holds the newest channel.backup and since when.
#[derive(Debug, Default, PartialEq)]
pub struct BackupMetrics {
    /// `chainstead_backup_last_change_timestamp_seconds`; 0 before the
    /// first channel.backup was accepted.
    pub last_change: Option<f64>,
    /// `chainstead_backup_source_readable`.
    pub source_readable: Option<bool>,
    /// Per target: `chainstead_backup_up_to_date` (channel).
    pub up_to_date: BTreeMap<String, bool>,
    /// Per target: `chainstead_backup_last_success_timestamp_seconds`
    /// (channel); 0 if never.
    pub last_success: BTreeMap<String, f64>,
}

/// The value of label `key` in a sample's `{...}` text (values as
/// [`chainstead_common::metrics::Textfile`] escapes them).
fn label<'a>(labels: &'a str, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"")?;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        let raw = &after[..end];
        if k.trim_start_matches(',') == key {
            return Some(if raw.contains('\\') {
                raw.replace("\\\"", "\"")
                    .replace("\\n", "\n")
                    .replace("\\\\", "\\")
                    .into()
            } else {
                raw.into()
            });
        }
        rest = &after[end + 1..];
    }
    None
}

pub fn parse_backup_metrics(text: &str) -> BackupMetrics {
    let mut out = BackupMetrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let labels = labels.strip_suffix('}').unwrap_or(labels);
        match name {
            "chainstead_backup_last_change_timestamp_seconds" => out.last_change = Some(v),
            "chainstead_backup_source_readable" => out.source_readable = Some(v > 0.0),
            "chainstead_backup_up_to_date" | "chainstead_backup_last_success_timestamp_seconds"
                if label(labels, "artifact").as_deref() == Some(Kind::Channel.as_str()) =>
            {
                let Some(target) = label(labels, "target") else {
                    continue;
                };
                if name == "chainstead_backup_up_to_date" {
                    out.up_to_date.insert(target.into_owned(), v > 0.0);
                } else {
                    out.last_success.insert(target.into_owned(), v);
                }
            }
            _ => {}
        }
    }
    out
}

/// The backup rows from the metrics: current/behind/stale and the age per
/// target; what only state.json holds (the version name, the last error,
/// consecutive failures) stays unknown.
fn from_metrics(r: &mut BackupReport, b: &manifest::Backup, m: &BackupMetrics) {
    let now = now();
    let has_channel = m.last_change.is_some_and(|t| t > 0.0);
    r.source_failing = m.source_readable == Some(false);
    if r.source_failing {
        r.source_error = Some("the pusher's metrics say its last read failed".into());
    }
    for t in &b.targets {
        let current = m.up_to_date.get(&t.name).copied().unwrap_or(false);
        let last_success = m.last_success.get(&t.name).copied().filter(|s| *s > 0.0);
        let age = last_success.map(|s| (now - s).max(0.0));
        let stale = has_channel && !current && age.is_none_or(|a| a > b.max_age_secs);
        r.targets.push(BackupTargetReport {
            name: t.name.clone(),
            kind: t.kind.clone(),
            current,
            stale,
            last_success,
            age_secs: age,
            ..BackupTargetReport::default()
        });
    }
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

    #[test]
    fn reads_the_backup_metrics() {
        // As crates/backup/src/state.rs renders them.
        let text = "# HELP chainstead_backup_last_change_timestamp_seconds x\n\
            chainstead_backup_last_change_timestamp_seconds 1764621000\n\
            chainstead_backup_source_readable 1\n\
            chainstead_backup_last_success_timestamp_seconds{target=\"usb\",kind=\"directory\",artifact=\"channel\"} 1764621100.5\n\
            chainstead_backup_last_success_timestamp_seconds{target=\"usb\",kind=\"directory\",artifact=\"snapshot\"} 7\n\
            chainstead_backup_up_to_date{target=\"usb\",kind=\"directory\",artifact=\"channel\"} 1\n\
            chainstead_backup_up_to_date{target=\"s3\",kind=\"s3\",artifact=\"channel\"} 0\n\
            chainstead_backup_up_to_date{target=\"s3\",kind=\"s3\",artifact=\"snapshot\"} 1\n";
        let m = parse_backup_metrics(text);
        assert_eq!(m.last_change, Some(1_764_621_000.0));
        assert_eq!(m.source_readable, Some(true));
        assert_eq!(m.last_success.get("usb"), Some(&1_764_621_100.5));
        assert_eq!(m.up_to_date.get("usb"), Some(&true));
        assert_eq!(
            m.up_to_date.get("s3"),
            Some(&false),
            "the snapshot lane is not the channel's"
        );
        assert!(!m.last_success.contains_key("s3"));
        assert_eq!(label(r#"a="x\"y",b="z""#, "b").as_deref(), Some("z"));
        assert_eq!(label(r#"a="x\"y",b="z""#, "a").as_deref(), Some("x\"y"));
    }
}
