//! The gate itself: `check` (one look) and `wait` (the service loop that
//! writes the flag, then keeps watching lightly).
//!
//! Choice documented in docs/startup-ordering.md: after release the service
//! keeps running at `poll.monitor_secs`, reporting later loss of sync in
//! STATUS and the metrics. It never removes the flag, so a service that
//! already started is never stopped or re-gated by us.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chainstead_common::metrics::Textfile;
use chainstead_common::notify;
use chainstead_common::retry::Backoff;
use chainstead_common::shutdown::Shutdown;

use crate::backend::Prober;
use crate::first_sync::FirstSync;
use crate::manifest::Manifest;
use crate::probe::{Observation, ProbeError};
use crate::progress::{next_interval, status_line, Rate};

/// Without a change of phase, a progress line is logged this often.
const LOG_EVERY: Duration = Duration::from_secs(10 * 60);

/// A request without an answer after this long shows in STATUS, and then
/// every [`WAITING_EVERY`], until it is answered or times out.
const WAITING_AFTER: Duration = Duration::from_secs(2);
const WAITING_EVERY: Duration = Duration::from_secs(1);

/// Result of `check`.
#[derive(Debug)]
pub enum CheckOutcome {
    Ready(String),
    NotYet(String),
    Error(String),
}

/// One probe; the line is the same text `wait` puts in STATUS.
pub async fn check(m: &Manifest) -> Result<CheckOutcome> {
    let mut prober = Prober::new(m)?;
    Ok(match prober.probe().await {
        Ok(obs) => {
            let line = status_line(&m.name, &obs, &Rate::new());
            if obs.ready {
                CheckOutcome::Ready(line)
            } else {
                CheckOutcome::NotYet(line)
            }
        }
        // One look, no retry: no "(retrying)" here.
        Err(e) => CheckOutcome::Error(format!("{}: error: {e}", m.name)),
    })
}

fn error_line(name: &str, e: &ProbeError) -> String {
    match e {
        ProbeError::Misconfig(_) => format!("{name}: error: {e}"),
        ProbeError::Transient(_) => format!("{name}: error: {e} (retrying)"),
    }
}

/// What the metrics file shows; updated every poll.
#[derive(Debug, Default)]
struct Stats {
    polls: u64,
    errors: u64,
    last: Option<Observation>,
    last_error: Option<(&'static str, String)>,
    released: bool,
    last_poll_unix: f64,
}

impl Stats {
    fn render(&self, gate: &str) -> Textfile {
        let l = [("gate", gate)];
        let mut t = Textfile::new();
        let ready = self.last.as_ref().is_some_and(|o| o.ready);
        t.family(
            "chainstead_sync_gate_ready",
            "gauge",
            "1 when the last poll found the backend ready (synced), else 0.",
        )
        .sample("chainstead_sync_gate_ready", &l, f64::from(u8::from(ready)));
        t.family(
            "chainstead_sync_gate_released",
            "gauge",
            "1 once the flag file exists and dependent services may start.",
        )
        .sample(
            "chainstead_sync_gate_released",
            &l,
            f64::from(u8::from(self.released)),
        );
        let obs = self.last.as_ref();
        for (name, help, value) in [
            (
                "chainstead_sync_gate_progress_ratio",
                "Sync progress from 0 to 1 (bitcoind: verificationprogress).",
                obs.and_then(Observation::progress_ratio),
            ),
            (
                "chainstead_sync_gate_height",
                "Height the backend is at, in blocks.",
                obs.and_then(|o| o.height).map(|h| h as f64),
            ),
            (
                "chainstead_sync_gate_target_height",
                "Height the backend is syncing towards, in blocks, when known.",
                obs.and_then(|o| o.target).map(|h| h as f64),
            ),
        ] {
            t.family(name, "gauge", help);
            if let Some(v) = value {
                t.sample(name, &l, v);
            }
        }
        t.family(
            "chainstead_sync_gate_polls_total",
            "counter",
            "Polls of the backend since the gate started.",
        )
        .sample("chainstead_sync_gate_polls_total", &l, self.polls as f64);
        t.family(
            "chainstead_sync_gate_errors_total",
            "counter",
            "Polls that ended in an error (not counting \"not ready yet\").",
        )
        .sample("chainstead_sync_gate_errors_total", &l, self.errors as f64);
        t.family(
            "chainstead_sync_gate_last_error",
            "gauge",
            "1 with the error text while the last poll failed; no sample otherwise.",
        );
        if let Some((kind, msg)) = &self.last_error {
            t.sample(
                "chainstead_sync_gate_last_error",
                &[("gate", gate), ("kind", kind), ("message", msg)],
                1.0,
            );
        }
        t.family(
            "chainstead_sync_gate_last_poll_timestamp_seconds",
            "gauge",
            "Unix time of the last poll.",
        )
        .sample(
            "chainstead_sync_gate_last_poll_timestamp_seconds",
            &l,
            self.last_poll_unix,
        );
        t
    }
}

/// The service loop. Returns Ok on SIGTERM/SIGINT; Err on a
/// misconfiguration (so systemd restarts it with backoff).
pub async fn wait(m: &Manifest, mut shutdown: Shutdown) -> Result<()> {
    let mut prober = Prober::new(m)?;
    let first_sync = FirstSync::for_manifest(m);
    let metrics_file = m.metrics_file();
    notify::ready();
    let mut released = m
        .flag_file
        .try_exists()
        .with_context(|| format!("failed to look for flag file {}", m.flag_file.display()))?;
    if released {
        tracing::info!(
            flag = %m.flag_file.display(),
            "flag file exists already: not gating, only monitoring"
        );
    }
    let mut stats = Stats {
        released,
        ..Stats::default()
    };
    let mut rate = Rate::new();
    let mut backoff = Backoff::new(m.poll.fast(), m.poll.slow());
    let mut last_log: Option<(String, Instant)> = None;
    let mut metrics_warned = false;

    let what = prober.describe();
    loop {
        let Some(result) = probe_reporting(&mut prober, &mut shutdown, |waited| {
            notify::status(&waiting_line(&m.name, &what, waited, m.poll.timeout()));
        })
        .await
        else {
            break;
        };
        let now = Instant::now();
        stats.polls += 1;
        stats.last_poll_unix = unix_now();
        let interval = match result {
            Ok(obs) => {
                backoff.reset();
                stats.last_error = None;
                rate.update(now, &obs);
                let mut line = status_line(&m.name, &obs, &rate);
                // Before the flag: the first sync's dbcache switch (first_sync.rs).
                if let (Some(f), false) = (&first_sync, released) {
                    f.before_release(&obs)?;
                }
                if obs.ready && !released {
                    write_flag(m, &obs)?;
                    released = true;
                    stats.released = true;
                    tracing::info!(flag = %m.flag_file.display(), "{line}; released: wrote the flag file");
                    last_log = Some((format!("{}:{}", obs.phase, released), now));
                } else if released && !obs.ready {
                    line.push_str(" (released earlier; started services keep running)");
                }
                notify::status(&line);
                let key = format!("{}:{}", obs.phase, released);
                let due = match &last_log {
                    Some((k, at)) => *k != key || now.duration_since(*at) >= LOG_EVERY,
                    None => true,
                };
                if due {
                    tracing::info!("{line}");
                    last_log = Some((key, now));
                }
                let interval = if released {
                    m.poll.monitor()
                } else {
                    next_interval(&obs, &rate, &m.poll)
                };
                stats.last = Some(obs);
                interval
            }
            Err(e) => {
                // The next answer may come from a restarted daemon.
                rate.reset();
                stats.errors += 1;
                let line = error_line(&m.name, &e);
                notify::status(&line);
                let kind = if e.is_misconfig() {
                    "misconfig"
                } else {
                    "transient"
                };
                stats.last_error = Some((kind, e.to_string()));
                if e.is_misconfig() {
                    // Logged once, by the caller that ends the run.
                    write_metrics(&stats, m, metrics_file.as_deref(), &mut metrics_warned);
                    return Err(e.into());
                }
                let key = format!("error:{e}");
                let due = match &last_log {
                    Some((k, at)) => *k != key || now.duration_since(*at) >= LOG_EVERY,
                    None => true,
                };
                if due {
                    tracing::warn!("{line}");
                    last_log = Some((key, now));
                }
                if released {
                    m.poll.monitor()
                } else {
                    backoff.next_delay()
                }
            }
        };
        write_metrics(&stats, m, metrics_file.as_deref(), &mut metrics_warned);
        if !shutdown.sleep(interval).await {
            break;
        }
    }
    notify::stopping();
    tracing::info!("stopping on signal");
    Ok(())
}

/// One probe; while it has no answer after [`WAITING_AFTER`], `waiting` is
/// called with the time waited so far, every [`WAITING_EVERY`]. `None` when
/// shutdown was requested meanwhile.
async fn probe_reporting(
    prober: &mut Prober,
    shutdown: &mut Shutdown,
    mut waiting: impl FnMut(Duration),
) -> Option<crate::probe::ProbeResult> {
    let started = tokio::time::Instant::now();
    let probe = prober.probe();
    tokio::pin!(probe);
    let mut tick = tokio::time::interval_at(started + WAITING_AFTER, WAITING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut probe => return Some(r),
            _ = shutdown.wait() => return None,
            _ = tick.tick() => waiting(started.elapsed()),
        }
    }
}

/// STATUS while a request hangs: `<name>: waiting for an answer from
/// bitcoind at <url> for 4s (gives up after 10s)`.
fn waiting_line(name: &str, what: &str, waited: Duration, timeout: Duration) -> String {
    format!(
        "{name}: waiting for an answer from {what} for {}s (gives up after {}s)",
        waited.as_secs(),
        timeout.as_secs_f64()
    )
}

fn write_metrics(stats: &Stats, m: &Manifest, file: Option<&Path>, warned: &mut bool) {
    let Some(file) = file else { return };
    match stats.render(&m.name).write(file) {
        Ok(()) => *warned = false,
        Err(e) if !*warned => {
            // Metrics are an aid; the gate keeps working without them.
            tracing::warn!("failed to write metrics file {}: {e:#}", file.display());
            *warned = true;
        }
        Err(_) => {}
    }
}

/// Writes the flag atomically (0644: units and operators may read it).
fn write_flag(m: &Manifest, obs: &Observation) -> Result<()> {
    if let Some(dir) = m.flag_file.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create flag directory {}", dir.display()))?;
    }
    let now = unix_now();
    let body = serde_json::json!({
        "gate": m.name,
        "backend": m.backend.kind(),
        "ready_at": rfc3339(now as i64),
        "ready_at_unix": now as i64,
        "height": obs.height,
        "status": obs.text,
    });
    let mut text = serde_json::to_string_pretty(&body).context("failed to render the flag file")?;
    text.push('\n');
    chainstead_common::fs::write_atomic(&m.flag_file, text.as_bytes(), 0o644).with_context(|| {
        format!(
            "failed to write flag file {} (`flag_file`)",
            m.flag_file.display()
        )
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (proleptic Gregorian, UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (the era-based method: 400-year
    // eras of 146097 days, years starting in March).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_244_243), "2026-11-21T06:57:23Z");
    }

    #[test]
    fn waiting_line_says_how_long() {
        assert_eq!(
            waiting_line(
                "bitcoind",
                "bitcoind at http://127.0.0.1:8332",
                Duration::from_millis(4_300),
                Duration::from_secs(10)
            ),
            "bitcoind: waiting for an answer from bitcoind at http://127.0.0.1:8332 for 4s (gives up after 10s)"
        );
    }

    #[test]
    fn metrics_render() {
        let mut o = Observation::waiting("ibd", "IBD".into());
        o.height = Some(10);
        o.target = Some(40);
        let s = Stats {
            polls: 3,
            errors: 1,
            last: Some(o),
            last_error: Some(("transient", "timed \"out\"".into())),
            released: false,
            last_poll_unix: 1.0,
        };
        let text = s.render("bitcoind").render().to_string();
        assert!(
            text.contains("chainstead_sync_gate_ready{gate=\"bitcoind\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("chainstead_sync_gate_progress_ratio{gate=\"bitcoind\"} 0.25\n"),
            "{text}"
        );
        assert!(
            text.contains("chainstead_sync_gate_target_height{gate=\"bitcoind\"} 40\n"),
            "{text}"
        );
        assert!(
            text.contains("chainstead_sync_gate_polls_total{gate=\"bitcoind\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("chainstead_sync_gate_last_error{gate=\"bitcoind\",kind=\"transient\",message=\"timed \\\"out\\\"\"} 1\n"),
            "{text}"
        );
    }
}
