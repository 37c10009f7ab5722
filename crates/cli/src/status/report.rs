//! The report `status` prints, and its JSON schema (docs/status.md; bump
//! [`SCHEMA_VERSION`] on any change that is not a new optional field).

use serde::{Deserialize, Serialize};

use super::lnd::LndInfo;
use super::units::UnitState;

pub const SCHEMA_VERSION: u32 = 1;

/// A tier this full needs attention.
pub const DISK_FULL_RATIO: f64 = 0.90;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// When the probes ran (unix seconds).
    pub generated_at: f64,
    /// True when nothing needs attention (exit status 0).
    pub ok: bool,
    /// Everything that needs attention, what it is and why.
    pub attention: Vec<Finding>,
    pub services: Vec<ServiceReport>,
    pub backup: Option<BackupReport>,
    pub secrets: Option<SecretsReport>,
    pub tiers: Vec<TierReport>,
    pub addresses: Vec<AddressReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// "lnd", "lnd.unit", "backup.usb", "secrets.lnd", "disk.nvme"...
    pub component: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceReport {
    pub name: String,
    pub unit: Option<UnitState>,
    /// Why the unit state could not be read.
    pub unit_error: Option<String>,
    pub sync: Option<SyncReport>,
    /// Why the backend could not be asked (down, timeout, refused...).
    pub sync_error: Option<String>,
    pub peers: Option<u64>,
    pub lnd: Option<LndInfo>,
    pub lnd_error: Option<String>,
    pub gate: Option<GateReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncReport {
    /// The sync gate's readiness rule holds.
    pub ready: bool,
    /// The gate's short word: ready, sync, ibd, warmup, down, state...
    pub phase: String,
    /// One human line, e.g. "IBD 61.3%, block 512345/872001".
    pub text: String,
    pub height: Option<u64>,
    /// Headers (bitcoind), target height (monerod), bitcoind's height
    /// (Fulcrum).
    pub target: Option<u64>,
    pub ratio: Option<f64>,
    /// Blocks per second since the gate's last poll, when measurable.
    pub rate_blocks_per_sec: Option<f64>,
    pub eta_secs: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GateReport {
    pub name: String,
    pub unit: Option<UnitState>,
    pub unit_error: Option<String>,
    /// The flag file exists: dependents may start.
    pub released: bool,
    /// Why it is holding (not released): what it waits for.
    pub holding: Option<String>,
    /// The gate's last probe error, from its metrics.
    pub last_error: Option<String>,
    /// Seconds since the gate last polled, from its metrics.
    pub last_poll_age_secs: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupReport {
    pub unit: Option<UnitState>,
    pub unit_error: Option<String>,
    /// Why neither state.json nor the metrics file could be read.
    pub error: Option<String>,
    /// Where the rows come from: "state" (state.json) or "metrics" (the
    /// pusher's textfile, when state.json is not readable); null when
    /// neither could be read.
    pub data_source: Option<String>,
    /// Why state.json could not be read, when the metrics were used.
    pub state_error: Option<String>,
    /// The newest channel.backup the pusher accepted.
    pub channel_version: Option<String>,
    pub source_failing: bool,
    pub source_error: Option<String>,
    pub targets: Vec<BackupTargetReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupTargetReport {
    pub name: String,
    pub kind: String,
    /// Holds the newest channel.backup.
    pub current: bool,
    /// Not current and its last success is older than the limit.
    pub stale: bool,
    pub last_success: Option<f64>,
    pub age_secs: Option<f64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretsReport {
    pub sets: Vec<SecretSetReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretSetReport {
    pub name: String,
    pub unit: Option<UnitState>,
    pub unit_error: Option<String>,
    /// File names present in the runtime directory (never contents).
    pub loaded: Vec<String>,
    pub missing: Vec<String>,
    /// Why presence could not be checked.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TierReport {
    pub name: String,
    pub path: String,
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    /// Available to unprivileged users.
    pub free_bytes: Option<u64>,
    pub used_ratio: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AddressReport {
    pub service: String,
    pub kind: String,
    pub address: Option<String>,
    pub error: Option<String>,
}

fn push(out: &mut Vec<Finding>, component: impl Into<String>, message: impl Into<String>) {
    out.push(Finding {
        component: component.into(),
        message: message.into(),
    });
}

fn unit_findings(out: &mut Vec<Finding>, at: &str, unit: &Option<UnitState>, err: &Option<String>) {
    if let Some(e) = err {
        push(
            out,
            format!("{at}.unit"),
            format!("could not read the unit state: {e}"),
        );
    }
    if let Some(u) = unit {
        if !u.healthy() {
            push(
                out,
                format!("{at}.unit"),
                format!(
                    "{} is {} ({}, result {})",
                    u.name, u.active_state, u.sub_state, u.result
                ),
            );
        }
    }
}

/// What needs attention. A backend still syncing or a gate still holding
/// is progress, not a problem; a backend that cannot be reached is one.
pub fn assess(r: &Report) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &r.services {
        unit_findings(&mut out, &s.name, &s.unit, &s.unit_error);
        if let Some(e) = &s.sync_error {
            push(&mut out, &s.name, format!("could not ask it: {e}"));
        }
        if let Some(sync) = &s.sync {
            if matches!(sync.phase.as_str(), "down" | "no-cookie" | "no-cert") {
                push(&mut out, &s.name, format!("not reachable: {}", sync.text));
            }
            if sync.phase == "state" && sync.text.contains("LOCKED") {
                push(&mut out, &s.name, sync.text.clone());
            }
        }
        if let Some(e) = &s.lnd_error {
            push(
                &mut out,
                format!("{}.lnd", s.name),
                format!("could not read getinfo/balances: {e}"),
            );
        }
        if let Some(g) = &s.gate {
            unit_findings(
                &mut out,
                &format!("{}.gate", s.name),
                &g.unit,
                &g.unit_error,
            );
        }
    }
    if let Some(b) = &r.backup {
        unit_findings(&mut out, "backup", &b.unit, &b.unit_error);
        if let Some(e) = &b.error {
            push(
                &mut out,
                "backup",
                format!("could not read the pusher's state: {e}"),
            );
        }
        if b.source_failing {
            push(
                &mut out,
                "backup",
                format!(
                    "cannot read channel.backup: {}",
                    b.source_error.as_deref().unwrap_or("?")
                ),
            );
        }
        for t in &b.targets {
            if t.stale {
                push(
                    &mut out,
                    format!("backup.{}", t.name),
                    format!(
                        "does not hold the current channel.backup (last success {}){}",
                        super::render::ago(t.age_secs),
                        t.last_error
                            .as_ref()
                            .map(|e| format!(", last error: {e}"))
                            .unwrap_or_default()
                    ),
                );
            }
        }
    }
    if let Some(s) = &r.secrets {
        for set in &s.sets {
            let at = format!("secrets.{}", set.name);
            unit_findings(&mut out, &at, &set.unit, &set.unit_error);
            if !set.missing.is_empty() {
                push(
                    &mut out,
                    &at,
                    format!("not loaded: {}", set.missing.join(", ")),
                );
            }
            if let Some(e) = &set.error {
                push(&mut out, &at, format!("could not check: {e}"));
            }
        }
    }
    for t in &r.tiers {
        let at = format!("disk.{}", t.name);
        if let Some(e) = &t.error {
            push(&mut out, &at, format!("could not read {}: {e}", t.path));
        }
        if let Some(ratio) = t.used_ratio {
            if ratio >= DISK_FULL_RATIO {
                push(
                    &mut out,
                    &at,
                    format!("{} is {:.1}% full", t.path, ratio * 100.0),
                );
            }
        }
    }
    out
}
