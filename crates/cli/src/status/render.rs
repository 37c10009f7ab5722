//! The human output: a compact table with colours on a terminal, the same
//! lines without escape codes when piped or with NO_COLOR set.

use std::fmt::Write as _;

use super::report::*;
use super::units::UnitState;

#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

#[derive(Clone, Copy)]
enum Tone {
    Good,
    Busy,
    Bad,
}

impl Style {
    /// Colours only on a terminal and without NO_COLOR (no-color.org: any
    /// non-empty value disables colour).
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: std::io::stdout().is_terminal() && !no_color,
        }
    }

    fn paint(&self, tone: Tone, s: &str) -> String {
        if !self.color {
            return s.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Busy => "33",
            Tone::Bad => "1;31",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
}

pub fn ago(secs: Option<f64>) -> String {
    match secs {
        None => "never".into(),
        Some(s) if s < 120.0 => format!("{s:.0} s ago"),
        Some(s) if s < 7200.0 => format!("{:.0} min ago", s / 60.0),
        Some(s) if s < 172_800.0 => format!("{:.1} h ago", s / 3600.0),
        Some(s) => format!("{:.1} days ago", s / 86400.0),
    }
}

pub fn duration(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86400.0),
    }
}

fn bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

fn unit_cell(st: &Style, now: f64, u: &Option<UnitState>, err: &Option<String>) -> String {
    match (u, err) {
        (Some(u), _) => {
            let tone = match u.active_state.as_str() {
                "active" | "reloading" => Tone::Good,
                "activating" | "deactivating" => Tone::Busy,
                _ => Tone::Bad,
            };
            let since = u
                .since
                .map(|t| format!(" since {}", ago(Some(now - t as f64))))
                .unwrap_or_default();
            let result = if u.result != "success" && !u.result.is_empty() {
                format!(", {}", u.result)
            } else {
                String::new()
            };
            st.paint(
                tone,
                &format!("{} ({}{result}){since}", u.active_state, u.sub_state),
            )
        }
        (None, Some(_)) => st.paint(Tone::Bad, "unit state unknown"),
        (None, None) => "-".into(),
    }
}

const W: usize = 10;

pub fn text(r: &Report, st: Style) -> String {
    let now = r.generated_at;
    let mut o = String::new();
    for s in &r.services {
        let _ = writeln!(
            o,
            "{:<W$} {}",
            s.name,
            unit_cell(&st, now, &s.unit, &s.unit_error)
        );
        if let Some(y) = &s.sync {
            let tone = if y.ready {
                Tone::Good
            } else if matches!(y.phase.as_str(), "down" | "no-cookie" | "no-cert") {
                Tone::Bad
            } else {
                Tone::Busy
            };
            let mut line = st.paint(tone, &y.text);
            if let Some(eta) = y.eta_secs {
                let _ = write!(
                    line,
                    ", ETA {} at {:.1} blocks/s",
                    duration(eta),
                    y.rate_blocks_per_sec.unwrap_or(0.0)
                );
            }
            let _ = writeln!(o, "  {:<W$} {line}", "sync");
        }
        if let Some(e) = &s.sync_error {
            let _ = writeln!(
                o,
                "  {:<W$} {}",
                "sync",
                st.paint(Tone::Bad, &format!("unreachable: {e}"))
            );
        }
        if let Some(p) = s.peers {
            let _ = writeln!(o, "  {:<W$} {p}", "peers");
        }
        if let Some(l) = &s.lnd {
            let synced = match l.synced_to_chain {
                Some(true) => st.paint(Tone::Good, "synced to chain"),
                _ => st.paint(Tone::Busy, "not synced to chain"),
            };
            let _ = writeln!(
                o,
                "  {:<W$} {} active, {} inactive, {} pending; {synced}",
                "channels",
                l.channels_active.unwrap_or(0),
                l.channels_inactive.unwrap_or(0),
                l.channels_pending.unwrap_or(0)
            );
            let _ = writeln!(
                o,
                "  {:<W$} local {} sat, remote {} sat",
                "balance",
                l.local_balance_sat.unwrap_or(0),
                l.remote_balance_sat.unwrap_or(0)
            );
        }
        if let Some(e) = &s.lnd_error {
            let _ = writeln!(
                o,
                "  {:<W$} {}",
                "channels",
                st.paint(Tone::Bad, &format!("unreachable: {e}"))
            );
        }
        if let Some(g) = &s.gate {
            let state = if g.released {
                st.paint(Tone::Good, "released")
            } else {
                st.paint(
                    Tone::Busy,
                    &format!("holding: {}", g.holding.as_deref().unwrap_or("?")),
                )
            };
            let err = g
                .last_error
                .as_ref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            let _ = writeln!(o, "  {:<W$} {} {state}{err}", "gate", g.name);
        }
    }
    if let Some(b) = &r.backup {
        let _ = writeln!(
            o,
            "{:<W$} {}",
            "backup",
            unit_cell(&st, now, &b.unit, &b.unit_error)
        );
        if let Some(e) = &b.error {
            let _ = writeln!(o, "  {}", st.paint(Tone::Bad, e));
        }
        if b.data_source.as_deref() == Some("metrics") {
            let _ = writeln!(
                o,
                "  (from the pusher's metrics: state.json is not readable for this user; sudo shows last errors)"
            );
        }
        for t in &b.targets {
            let state = if t.current {
                st.paint(Tone::Good, "current")
            } else if t.stale {
                st.paint(Tone::Bad, "STALE")
            } else {
                st.paint(Tone::Busy, "behind")
            };
            let err = match (&t.last_error, t.current) {
                (Some(e), false) => format!(", last error: {e}"),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "  {:<W$} {:<8} {state} last success {}{err}",
                t.name,
                t.kind,
                ago(t.age_secs)
            );
        }
    }
    if let Some(s) = &r.secrets {
        for set in &s.sets {
            let mut parts = Vec::new();
            if !set.loaded.is_empty() {
                parts.push(st.paint(Tone::Good, &format!("loaded {}", set.loaded.join(", "))));
            }
            if !set.missing.is_empty() {
                parts.push(st.paint(Tone::Bad, &format!("MISSING {}", set.missing.join(", "))));
            }
            if let Some(e) = &set.error {
                parts.push(st.paint(Tone::Bad, e));
            }
            let unit = if set.unit.is_some() || set.unit_error.is_some() {
                format!(" [{}]", unit_cell(&st, now, &set.unit, &set.unit_error))
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "{:<W$} {}: {}{unit}",
                "secrets",
                set.name,
                parts.join("; ")
            );
        }
    }
    for t in &r.tiers {
        let line = match (t.used_ratio, t.free_bytes, &t.error) {
            (Some(ratio), Some(free), _) => {
                let tone = if ratio >= DISK_FULL_RATIO {
                    Tone::Bad
                } else {
                    Tone::Good
                };
                st.paint(
                    tone,
                    &format!("{:.1}% used, {} free", ratio * 100.0, bytes(free)),
                )
            }
            (_, _, Some(e)) => st.paint(Tone::Bad, e),
            _ => "?".into(),
        };
        let _ = writeln!(o, "{:<W$} {:<8} {:<28} {line}", "disk", t.name, t.path);
    }
    for a in &r.addresses {
        let addr = match (&a.address, &a.error) {
            (Some(x), _) => x.clone(),
            (None, Some(e)) => e.clone(),
            _ => "-".into(),
        };
        let _ = writeln!(o, "{:<W$} {} {}: {addr}", "address", a.service, a.kind);
    }
    if r.attention.is_empty() {
        let _ = writeln!(o, "\n{}", st.paint(Tone::Good, "all fine"));
    } else {
        let _ = writeln!(o, "\n{}", st.paint(Tone::Bad, "needs attention:"));
        for f in &r.attention {
            let _ = writeln!(o, "  {}: {}", f.component, f.message);
        }
    }
    o
}
