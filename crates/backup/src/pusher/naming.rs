//! Version names and their order. A name carries the time of the read;
//! per kind, a floor (the newest name given out or seen in state or on a
//! target's `latest`) keeps every new name strictly after every name seen,
//! even when the clock stepped back or another process named meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::{Engine, Ingest};
use crate::channel;
use crate::manifest::TargetSpec;
use crate::state;
use crate::targets::Backend;
use crate::version::{self, Kind};

/// Raises `floors[kind]` to the time in `name`.
pub(super) fn raise(floors: &mut HashMap<Kind, DateTime<Utc>>, kind: Kind, name: &str) {
    if let Some(t) = version::time_of(kind, name) {
        let f = floors.entry(kind).or_insert(t);
        if t > *f {
            *f = t;
        }
    }
}

impl Engine {
    pub(super) fn raise_floor(&self, kind: Kind, name: &str) {
        let mut g = match self.floors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        raise(&mut g, kind, name);
    }

    /// The time for a new name of `kind` read at `read_at`; raises the floor.
    pub(super) fn next_time(&self, kind: Kind, read_at: DateTime<Utc>) -> DateTime<Utc> {
        let mut g = match self.floors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let t = version::next_time(read_at, g.get(&kind).copied());
        g.insert(kind, t);
        t
    }

    /// False once a newer name was given out or seen on a target: the
    /// content `name` names must then get a new name to become `latest`.
    pub(super) fn name_current(&self, kind: Kind, name: &str) -> bool {
        let floor = match self.floors.lock() {
            Ok(g) => g.get(&kind).copied(),
            Err(p) => p.into_inner().get(&kind).copied(),
        };
        match (version::time_of(kind, name), floor) {
            (_, None) => true,
            (Some(t), Some(f)) => t >= f,
            (None, Some(_)) => false,
        }
    }

    /// Starts [`Self::seed_from_targets`] without waiting for it: a target
    /// that is slow to answer (or never does) must not delay the first
    /// read and push to the others. A name given out before a target's
    /// `latest` was seen does no harm: that target's put reports the newer
    /// name ([`crate::targets::NewerOnTarget`]) and the content is named
    /// anew after it.
    pub(super) fn seed_in_background(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.seed_from_targets().await });
    }

    /// Reads every readable target's `latest` once (5 s each, all at
    /// once), so a name taken while the clock ran ahead, and kept only on
    /// a target, raises the floor as soon as the target answers. An
    /// unreachable target is skipped: its put reports the conflict later.
    pub async fn seed_from_targets(&self) {
        self.seeded
            .get_or_init(|| async {
                let mut kinds = vec![Kind::Channel];
                if self.m.snapshot.is_some() {
                    kinds.push(Kind::Snapshot);
                }
                let reads = self
                    .m
                    .targets
                    .iter()
                    .filter(|t| !matches!(t, TargetSpec::Pbs { .. }))
                    .flat_map(|t| kinds.iter().map(move |k| (t, *k)))
                    .map(|(spec, kind)| async move {
                        let b = Backend::from_spec(spec, &self.scratch).ok()?;
                        let r = tokio::time::timeout(Duration::from_secs(5), b.latest(kind));
                        match r.await {
                            Ok(Ok(Some(n))) => Some((kind, n)),
                            _ => None,
                        }
                    });
                for (kind, name) in futures::future::join_all(reads).await.into_iter().flatten() {
                    self.raise_floor(kind, &name);
                }
            })
            .await;
    }

    /// Under the state directory's lock (`held`): the name for content
    /// `sha` read at `read_at`. It is the name state already gives that
    /// content, unless a newer name was given out or seen since, else a new
    /// one (`fresh(time)`) after every name any process gave out; it is
    /// recorded in state before the lock is released. With `anew`, never
    /// the old name, and `None` if another process made different content
    /// current under a newer name (that one, not ours, is to become latest).
    pub(super) fn claim_name(
        &self,
        held: Option<&state::StateLock>,
        kind: Kind,
        sha: &str,
        read_at: DateTime<Utc>,
        anew: bool,
        fresh: impl FnOnce(DateTime<Utc>) -> String,
    ) -> Option<String> {
        let mut out = None;
        self.store.update_locked(held, |s| {
            let current = match kind {
                Kind::Channel => s.channel.clone(),
                Kind::Snapshot => s.snapshot.clone(),
            };
            let mut seen: Vec<String> = s.named.get(kind.as_str()).cloned().into_iter().collect();
            seen.extend(current.as_ref().map(|c| c.name.clone()));
            seen.extend(
                s.targets
                    .values()
                    .filter_map(|t| t.lane(kind).last_name.clone()),
            );
            for n in &seen {
                self.raise_floor(kind, n);
            }
            // A name another process claimed for this very content, not yet
            // published (it may be asking LND to verify it right now).
            let same_content = s.named_sha256.get(kind.as_str()).map(String::as_str) == Some(sha);
            let claimed = s.named.get(kind.as_str()).filter(|_| same_content).cloned();
            // Other content claimed under a newer name (maybe still being
            // verified): with `anew`, ours is stale and must not overtake it.
            let newer_claim = !same_content
                && s.named
                    .get(kind.as_str())
                    .is_some_and(|n| !self.wanted_is_newest(kind, n));
            if anew && newer_claim {
                return;
            }
            let name = match (current, claimed) {
                (Some(c), _)
                    if anew && c.sha256 != sha && !self.wanted_is_newest(kind, &c.name) =>
                {
                    return;
                }
                (Some(c), _) if !anew && c.sha256 == sha && self.name_current(kind, &c.name) => {
                    c.name
                }
                (_, Some(n)) if !anew && self.name_current(kind, &n) => n,
                _ => fresh(self.next_time(kind, read_at)),
            };
            s.named.insert(kind.as_str().to_string(), name.clone());
            s.named_sha256
                .insert(kind.as_str().to_string(), sha.to_string());
            out = Some(name);
        });
        out
    }

    /// True unless `other` is newer by name than the wanted version.
    pub(super) fn wanted_is_newest(&self, kind: Kind, other: &str) -> bool {
        self.wanted(kind)
            .borrow()
            .as_ref()
            .is_none_or(|v| !version::newer(other, &v.name))
    }

    /// A target's `latest` is newer by name than the wanted version (the
    /// floor is already raised past it). Either another process (a `push`
    /// next to the service) read newer content, or the clock stepped back.
    /// So the source is read again: newer content is named and published
    /// as usual (or takes the name the other process gave it), and the
    /// same content gets a name after every name seen. Only when the
    /// source cannot be read (or is refused) now is the wanted content
    /// itself named anew.
    pub(super) async fn refresh(self: &Arc<Self>, kind: Kind) -> Result<()> {
        let read = match kind {
            Kind::Channel => self.ingest_channel().await,
            Kind::Snapshot => self.ingest_snapshot().await,
        };
        match read {
            Ok(Ingest::New(_) | Ingest::Unchanged) => Ok(()),
            Ok(Ingest::Missing | Ingest::Rejected(_)) | Err(_) => self.renew(kind).await,
        }
    }

    /// Names the wanted content of `kind` anew when a target showed a newer
    /// name, and publishes it under that name.
    pub(super) async fn renew(&self, kind: Kind) -> Result<()> {
        let _naming = self.naming.lock().await;
        let Some(v) = self.wanted(kind).borrow().clone() else {
            return Ok(());
        };
        if self.name_current(kind, &v.name) {
            return Ok(());
        }
        let lock = self.store.lock();
        let old = v.name.clone();
        let name = self.claim_name(lock.as_ref(), kind, &v.sha256, Utc::now(), true, |t| {
            version::renamed(kind, &old, t).unwrap_or_else(|| old.clone())
        });
        drop(lock);
        let Some(name) = name else {
            tracing::info!(
                "not naming {} anew: another process made newer content current",
                v.name
            );
            self.adopt_current(kind).await;
            return Ok(());
        };
        tracing::warn!(
            "naming the current {} anew as {name} (was {}): a target holds a newer name",
            kind.as_str(),
            v.name
        );
        self.publish(kind, name, v.sha256.clone(), v.plain.to_vec(), v.seen)
            .await
    }

    /// Makes the version another process made current the wanted one, from
    /// the local copy it keeps in the shared state directory, so that a
    /// stale wanted version is not retried. Nothing changes if that copy
    /// cannot be read or does not match its recorded hash.
    pub(super) async fn adopt_current(&self, kind: Kind) {
        let st = self.store.snapshot();
        let Some(current) = (match kind {
            Kind::Channel => st.channel,
            Kind::Snapshot => st.snapshot,
        }) else {
            return;
        };
        if self.wanted_is_newest(kind, &current.name) {
            return;
        }
        let data = match self.local.get(kind, &current.name).await {
            Ok(d) if channel::sha256_hex(&d) == current.sha256 => d,
            Ok(_) => {
                tracing::warn!("the local copy {} does not match its hash", current.name);
                return;
            }
            Err(e) => {
                tracing::warn!("{e:#}");
                return;
            }
        };
        let v = match self.version(kind, current.name, current.sha256, data, Instant::now()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("{e:#}");
                return;
            }
        };
        self.raise_floor(kind, &v.name);
        tracing::info!("taking up {}, made current by another process", v.name);
        self.wanted(kind).send_replace(Some(v));
    }
}
