//! Delivery: one task per target and kind pushes the wanted version and
//! retries with backoff until the target acknowledges; `push` and
//! `snapshot` run those tasks once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chainstead_common::retry::Backoff;
use chainstead_common::shutdown::Shutdown;

use super::{Engine, Ingest};
use crate::manifest::TargetSpec;
use crate::state;
use crate::targets::{Backend, NewerOnTarget};
use crate::version::{self, Kind, Version};

type Wanted = tokio::sync::watch::Receiver<Option<Arc<Version>>>;

/// How often a target that failed is probed while its backoff runs, and
/// how long a probe may take: a target that comes back is caught up within
/// about this long plus one push.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// `push` and `snapshot`: one version to every target, waiting at most
/// `timeout`; an error names the targets that did not acknowledge.
pub async fn push_once(engine: Arc<Engine>, kind: Kind, timeout: Duration) -> Result<Ingest> {
    engine.seed_in_background();
    let ingest = match kind {
        Kind::Channel => engine.ingest_channel().await?,
        Kind::Snapshot => engine.ingest_snapshot().await?,
    };
    match &ingest {
        Ingest::Missing => {
            anyhow::bail!("failed to push: nothing to push (missing file or no snapshot set)")
        }
        Ingest::Rejected(r) => anyhow::bail!("failed to push: refused: {r}"),
        _ => {}
    }
    let (stop, sd) = Shutdown::manual();
    let handles = engine.spawn_targets(&[kind], &sd);
    let start = Instant::now();
    while !engine.all_current(kind) && start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    for h in handles {
        let _ = h.await;
    }
    if !engine.all_current(kind) {
        let st = engine.store.snapshot();
        let lagging: Vec<String> = engine
            .m
            .targets
            .iter()
            .filter(|t| !engine.all_current_for(t.name(), kind))
            .map(|t| {
                let err = st
                    .targets
                    .get(t.name())
                    .and_then(|s| s.lane(kind).last_error.clone())
                    .unwrap_or_else(|| "no answer".into());
                format!("{}: {err}", t.name())
            })
            .collect();
        anyhow::bail!(
            "failed to push to every target within {} s: {}",
            timeout.as_secs(),
            lagging.join("; ")
        );
    }
    Ok(ingest)
}

impl Engine {
    /// True if the target acknowledged `v` under its current name (the
    /// same content under an older name does not count: it is not what
    /// `latest` must name).
    pub(super) fn acked(&self, target: &str, kind: Kind, v: &Version) -> bool {
        self.store
            .snapshot()
            .targets
            .get(target)
            .and_then(|t| t.lane(kind).last_name.clone())
            .is_some_and(|n| n.strip_suffix(version::AGE_SUFFIX).unwrap_or(&n) == v.name)
    }

    /// True once every target holds the newest version of `kind`.
    pub fn all_current(&self, kind: Kind) -> bool {
        match self.wanted(kind).borrow().as_ref() {
            None => true,
            Some(v) => self.m.targets.iter().all(|t| self.acked(t.name(), kind, v)),
        }
    }
    /// One task per target and kind; returns when shutdown is requested.
    async fn target_loop(self: Arc<Self>, idx: usize, kind: Kind, mut sd: Shutdown) {
        let spec = self.m.targets[idx].clone();
        let name = spec.name().to_string();
        let mut rx = self.wanted(kind).subscribe();
        let mut backend: Option<Backend> = None;
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(60));
        let mut last_prune: Option<Instant> = None;
        // The last wait was cut short, and whether a retry after a cut
        // failed again: then the target answers but refuses the put, and
        // the following waits run in full until a push succeeds.
        let (mut cut, mut cut_failed) = (false, false);
        loop {
            let v = loop {
                if let Some(v) = rx.borrow_and_update().clone() {
                    if !self.acked(&name, kind, &v) {
                        break v;
                    }
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = sd.wait() => return,
                }
            };
            let Some(artifact) = v.artifact(spec.encrypt()) else {
                return;
            };
            let attempt = async {
                if backend.is_none() {
                    backend = Some(Backend::from_spec(&spec, &self.scratch)?);
                }
                let put = async {
                    let _held = self.put_lock(&name, kind).await?;
                    match backend.as_ref() {
                        Some(b) => b.put(&artifact).await,
                        None => Ok(()),
                    }
                };
                tokio::time::timeout(Duration::from_secs(120), put)
                    .await
                    .context("failed to finish the push within 120 s")?
            };
            let result = tokio::select! {
                r = attempt => r,
                _ = sd.wait() => return,
            };
            match result {
                Ok(()) => {
                    backoff.reset();
                    (cut, cut_failed) = (false, false);
                    let after = v.seen.elapsed();
                    tracing::info!(
                        "{name}: holds {} ({} after the change)",
                        artifact.name,
                        if after < Duration::from_secs(10) {
                            format!("{} ms", after.as_millis())
                        } else {
                            format!("{:.1} s", after.as_secs_f64())
                        }
                    );
                    let len = artifact.data.len() as u64;
                    self.store.update(|s| {
                        let lane = s.targets.entry(name.clone()).or_default().lane_mut(kind);
                        lane.last_success = Some(state::now());
                        lane.last_name = Some(artifact.name.clone());
                        lane.last_sha256 = Some(v.sha256.clone());
                        lane.bytes_pushed_total += len;
                        lane.consecutive_failures = 0;
                    });
                    self.status_line();
                    let due = last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(600));
                    if due {
                        last_prune = Some(Instant::now());
                        // Never the current version, whatever its name sorts as.
                        let mut keep = vec![v.name.clone()];
                        let st = self.store.snapshot();
                        let current = match kind {
                            Kind::Channel => st.channel,
                            Kind::Snapshot => st.snapshot,
                        };
                        keep.extend(current.map(|c| c.name));
                        let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
                        if let Some(b) = backend.as_ref() {
                            match b.prune(kind, &self.m.retention, &keep).await {
                                Ok(0) => {}
                                Ok(n) => {
                                    tracing::info!("{name}: retention deleted {n} old versions")
                                }
                                Err(e) => tracing::warn!("{name}: retention failed: {e:#}"),
                            }
                        }
                    }
                }
                Err(e) => {
                    if let Some(n) = e.downcast_ref::<NewerOnTarget>() {
                        // The next attempt pushes what `refresh` names.
                        self.raise_floor(kind, &n.latest);
                        if let Err(re) = self.refresh(kind).await {
                            tracing::error!("{re:#}");
                        }
                    }
                    let msg = format!("{e:#}");
                    let delay = backoff.next_delay();
                    tracing::error!(
                        "{name}: failed to push {}: {msg} (retrying in {:.1} s)",
                        artifact.name,
                        delay.as_secs_f64()
                    );
                    self.store.update(|s| {
                        let lane = s.targets.entry(name.clone()).or_default().lane_mut(kind);
                        lane.failures_total += 1;
                        lane.consecutive_failures += 1;
                        lane.last_error = Some(msg.clone());
                        lane.last_error_time = Some(state::now());
                    });
                    // Rebuild the client next time (a fresh login, new connections).
                    backend = None;
                    cut_failed |= cut;
                    match self
                        .wait_out(delay, &spec, kind, &mut rx, &mut sd, !cut_failed)
                        .await
                    {
                        Some(c) => cut = c,
                        None => return,
                    }
                }
            }
        }
    }

    /// Waits out the backoff `delay` after a failed attempt; `None` on
    /// shutdown, else whether the wait was cut short. With `may_cut`, the
    /// wait ends early once the target answers: it is probed (a read of
    /// `latest`, [`Backend::probe`]) every [`PROBE_EVERY`], and at once
    /// when a new version is wanted or a reconcile runs; PBS, which cannot
    /// be read, is retried at once on a new version or a reconcile. A retry
    /// after a cut that fails again shows a target that answers but refuses
    /// the put (a full disk, a refused write): the caller then waits in
    /// full, so such a target is not hammered.
    async fn wait_out(
        &self,
        delay: Duration,
        spec: &TargetSpec,
        kind: Kind,
        rx: &mut Wanted,
        sd: &mut Shutdown,
        may_cut: bool,
    ) -> Option<bool> {
        if !may_cut {
            return sd.sleep(delay).await.then_some(false);
        }
        let deadline = tokio::time::Instant::now() + delay;
        let client = Backend::from_spec(spec, &self.scratch).ok();
        loop {
            let next = (tokio::time::Instant::now() + PROBE_EVERY).min(deadline);
            let event = tokio::select! {
                _ = tokio::time::sleep_until(next) => false,
                r = rx.changed() => {
                    r.ok()?;
                    true
                }
                _ = self.reconciled.notified() => true,
                _ = sd.wait() => return None,
            };
            if tokio::time::Instant::now() >= deadline {
                return Some(false);
            }
            let answered = match &client {
                None => Some(false),
                Some(b) => match tokio::time::timeout(PROBE_EVERY, b.probe(kind)).await {
                    Ok(Some(r)) => Some(r.is_ok()),
                    Ok(None) => None,
                    Err(_) => Some(false),
                },
            };
            match answered {
                Some(true) => {
                    tracing::info!("{}: answers; retrying now", spec.name());
                    return Some(true);
                }
                None if event => return Some(true),
                Some(false) | None => {}
            }
        }
    }

    pub(super) fn spawn_targets(
        self: &Arc<Self>,
        kinds: &[Kind],
        sd: &Shutdown,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for idx in 0..self.m.targets.len() {
            for &k in kinds {
                handles.push(tokio::spawn(self.clone().target_loop(idx, k, sd.clone())));
            }
        }
        handles
    }
    pub(super) fn all_current_for(&self, target: &str, kind: Kind) -> bool {
        match self.wanted(kind).borrow().as_ref() {
            None => true,
            Some(v) => self.acked(target, kind, v),
        }
    }
}
