//! The pusher: reads and validates new versions, keeps a local versioned
//! copy, and hands the newest version to one task per target and kind.
//!
//! Each task watches a `watch` channel holding the newest wanted version, so
//! a burst of rewrites coalesces to the newest, a slow or failing target
//! never holds up the others, and a target that comes back catches up with
//! whatever is newest by then. Attempts are retried with exponential
//! backoff until the target acknowledges.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chainstead_common::notify;
use chainstead_common::retry::Backoff;
use chainstead_common::shutdown::Shutdown;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::{watch, Notify};

use crate::channel::{self, LndVerdict, ReadOutcome};
use crate::crypt::Sealer;
use crate::manifest::{Manifest, TargetSpec};
use crate::state::{self, Accepted, Store};
use crate::targets::directory::DirStore;
use crate::targets::{Backend, NewerOnTarget};
use crate::version::{self, Kind, Version};

type Wanted = watch::Sender<Option<Arc<Version>>>;

pub struct Engine {
    pub m: Arc<Manifest>,
    pub store: Arc<Store>,
    sealer: Option<Sealer>,
    local: DirStore,
    scratch: PathBuf,
    channel: Wanted,
    snapshot: Wanted,
    /// Per kind, the time of the newest name given out or seen (state,
    /// a target's `latest`): the next name is strictly after it.
    floors: Mutex<HashMap<Kind, DateTime<Utc>>>,
    /// Held while a version is named and published, so that naming the
    /// current content anew never replaces newer content.
    naming: tokio::sync::Mutex<()>,
    /// Set once the targets' `latest` names have been read at startup.
    seeded: tokio::sync::OnceCell<()>,
}

/// Raises `floors[kind]` to the time in `name`.
fn raise(floors: &mut HashMap<Kind, DateTime<Utc>>, kind: Kind, name: &str) {
    if let Some(t) = version::time_of(kind, name) {
        let f = floors.entry(kind).or_insert(t);
        if t > *f {
            *f = t;
        }
    }
}

/// What a read under the state lock found (before LND is asked).
enum Read {
    Failed(anyhow::Error),
    Missing,
    Rejected(String),
    Unchanged,
    Named {
        name: String,
        sha: String,
        data: Vec<u8>,
    },
}

/// What one read of channel.backup (or one snapshot) led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Ingest {
    New(String),
    Unchanged,
    Missing,
    Rejected(String),
}

impl Engine {
    pub fn new(m: Manifest) -> Result<Arc<Self>> {
        let m = Arc::new(m);
        for d in [
            m.state_dir.clone(),
            m.state_dir.join("versions"),
            m.state_dir.join("tmp"),
        ] {
            state::create_dir_owned(&d)?;
        }
        let store = Arc::new(Store::open(&m.state_dir, m.metrics_file())?);
        let sealer = match &m.encryption {
            Some(e) if m.targets.iter().any(|t| t.encrypt()) => Some(Sealer::new(&e.recipients)?),
            _ => None,
        };
        let local = DirStore::new(m.state_dir.join("versions"));
        // Left by a killed writer; a temp file this young may be another
        // process's write in progress (`push` next to the service).
        let stale = Duration::from_secs(10);
        local.clean_temp(Kind::Channel, stale);
        local.clean_temp(Kind::Snapshot, stale);
        for t in &m.targets {
            if let TargetSpec::Directory { path, .. } = t {
                let d = DirStore::new(path.clone());
                d.clean_temp(Kind::Channel, stale);
                d.clean_temp(Kind::Snapshot, stale);
            }
        }
        store.update(|s| {
            for t in &m.targets {
                s.targets.entry(t.name().to_string()).or_default().kind = t.kind().to_string();
            }
            s.targets
                .retain(|k, _| m.targets.iter().any(|t| t.name() == k));
        });
        // Seed the name floors from what state and the local copies name.
        let mut floors = HashMap::new();
        let st = store.snapshot();
        for k in [Kind::Channel, Kind::Snapshot] {
            let current = match k {
                Kind::Channel => st.channel.as_ref(),
                Kind::Snapshot => st.snapshot.as_ref(),
            };
            if let Some(c) = current {
                raise(&mut floors, k, &c.name);
            }
            for t in st.targets.values() {
                if let Some(n) = &t.lane(k).last_name {
                    raise(&mut floors, k, n);
                }
            }
            if let Ok(n) = std::fs::read_to_string(local.folder(k).join(crate::targets::LATEST)) {
                raise(&mut floors, k, n.trim());
            }
        }
        Ok(Arc::new(Self {
            floors: Mutex::new(floors),
            naming: tokio::sync::Mutex::new(()),
            seeded: tokio::sync::OnceCell::new(),
            scratch: m.state_dir.join("tmp"),
            local,
            sealer,
            store,
            channel: watch::channel(None).0,
            snapshot: watch::channel(None).0,
            m,
        }))
    }

    fn wanted(&self, kind: Kind) -> &Wanted {
        match kind {
            Kind::Channel => &self.channel,
            Kind::Snapshot => &self.snapshot,
        }
    }

    fn raise_floor(&self, kind: Kind, name: &str) {
        let mut g = match self.floors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        raise(&mut g, kind, name);
    }

    /// The time for a new name of `kind` read at `read_at`; raises the floor.
    fn next_time(&self, kind: Kind, read_at: DateTime<Utc>) -> DateTime<Utc> {
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
    fn name_current(&self, kind: Kind, name: &str) -> bool {
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

    /// Reads every readable target's `latest` once (5 s each, all at
    /// once), so a name taken while the clock ran ahead, and kept only on
    /// a target, raises the floor before the first name is given out. An
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
    fn claim_name(
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
    fn wanted_is_newest(&self, kind: Kind, other: &str) -> bool {
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
    async fn refresh(self: &Arc<Self>, kind: Kind) -> Result<()> {
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
    async fn renew(&self, kind: Kind) -> Result<()> {
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
    async fn adopt_current(&self, kind: Kind) {
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

    /// A version of `data`, sealed for the targets that encrypt.
    fn version(
        &self,
        kind: Kind,
        name: String,
        sha256: String,
        data: Vec<u8>,
        seen: Instant,
    ) -> Result<Arc<Version>> {
        let sealed = match &self.sealer {
            Some(s) => Some(Arc::new(s.seal(&data)?)),
            None => None,
        };
        Ok(Arc::new(Version {
            kind,
            name,
            sha256,
            plain: Arc::new(data),
            sealed,
            seen,
        }))
    }

    /// Records a read of channel.backup: `None` when its bytes were read,
    /// else why not. Reaches state, `status` and the metrics, not only the log.
    fn source_read(&self, error: Option<String>) {
        let now = state::now();
        let failing = error.is_some();
        self.store.update(|s| match error {
            None => {
                s.source.last_read = Some(now);
                s.source.failing = false;
            }
            Some(e) => {
                s.source.read_failures_total += 1;
                s.source.failing = true;
                s.source.last_error = Some(e);
                s.source.last_error_time = Some(now);
            }
        });
        if failing {
            notify::status("CANNOT READ channel.backup (see `chainstead-backup status`)");
        }
    }

    fn reject(&self, reason: &str) {
        tracing::error!(
            "refusing to push channel.backup: {reason}; the copies on every target are kept"
        );
        notify::status(&format!("REFUSED channel.backup: {reason}"));
        self.store.update(|s| {
            s.rejected.total += 1;
            s.rejected.last_time = Some(state::now());
            s.rejected.last_reason = Some(reason.to_string());
        });
    }

    /// Reads channel.backup; publishes it if it is new and valid.
    pub async fn ingest_channel(self: &Arc<Self>) -> Result<Ingest> {
        let _naming = self.naming.lock().await;
        let seen = Instant::now();
        let me = self.clone();
        // Read and name under the state directory's lock, so that of two
        // processes (a `push` next to the service) the one that reads later
        // names later. The name's time is the read's, not the time after
        // LND answered. All of it runs on a blocking thread: the lock is
        // never held by a task that waits for a runtime worker, which other
        // tasks may be blocking while they wait for the lock.
        let read = tokio::task::spawn_blocking(move || {
            let lock = me.store.lock();
            let read_at = Utc::now();
            let data = match channel::read_stable(&me.m.channel_backup) {
                Err(e) => return Read::Failed(e),
                Ok(ReadOutcome::Missing) => return Read::Missing,
                Ok(ReadOutcome::Rejected(r)) => return Read::Rejected(r),
                Ok(ReadOutcome::Good(d)) => d,
            };
            let sha = channel::sha256_hex(&data);
            let unchanged =
                me.channel.borrow().as_ref().is_some_and(|cur| {
                    cur.sha256 == sha && me.name_current(Kind::Channel, &cur.name)
                });
            if unchanged {
                return Read::Unchanged;
            }
            // The same content as before a restart keeps its name, so
            // targets that already hold it are not written again (unless a
            // newer name was seen since: then it is named anew).
            let name = me.claim_name(lock.as_ref(), Kind::Channel, &sha, read_at, false, |t| {
                version::channel_name(t, &sha)
            });
            match name {
                Some(name) => Read::Named { name, sha, data },
                None => Read::Failed(anyhow::anyhow!("failed to name the channel backup")),
            }
        })
        .await
        .context("failed to join the channel.backup reader")?;
        let (name, sha, data) = match read {
            Read::Failed(e) => {
                self.source_read(Some(format!("{e:#}")));
                return Err(e);
            }
            Read::Missing => {
                self.source_read(Some(format!(
                    "{} does not exist",
                    self.m.channel_backup.display()
                )));
                return Ok(Ingest::Missing);
            }
            Read::Rejected(r) => {
                self.source_read(None);
                self.reject(&r);
                return Ok(Ingest::Rejected(r));
            }
            Read::Unchanged => {
                self.source_read(None);
                return Ok(Ingest::Unchanged);
            }
            Read::Named { name, sha, data } => (name, sha, data),
        };
        self.source_read(None);
        if let Some(lnd) = &self.m.lnd {
            match channel::lnd_verify(lnd, &data).await {
                LndVerdict::Accepted => {}
                LndVerdict::Rejected(r) => {
                    self.reject(&r);
                    return Ok(Ingest::Rejected(r));
                }
                LndVerdict::Unverifiable(r) => {
                    tracing::warn!(
                        "could not ask LND to verify channel.backup, pushing it anyway: {r}"
                    )
                }
                LndVerdict::Unauthorized(r) => {
                    tracing::error!("{r}; pushing channel.backup unverified");
                    let now = state::now();
                    self.store.update(|s| {
                        s.lnd_auth.failures_total += 1;
                        s.lnd_auth.last_error = Some(r);
                        s.lnd_auth.last_error_time = Some(now);
                    });
                }
            }
        }
        self.publish(Kind::Channel, name.clone(), sha, data, seen)
            .await?;
        Ok(Ingest::New(name))
    }

    /// Packs the snapshot set; publishes it if its content changed.
    pub async fn ingest_snapshot(self: &Arc<Self>) -> Result<Ingest> {
        if self.m.snapshot.is_none() {
            return Ok(Ingest::Missing);
        }
        let _naming = self.naming.lock().await;
        let seen = Instant::now();
        let me = self.clone();
        // Packed and named under the state directory's lock, on a blocking
        // thread, as above.
        let read = tokio::task::spawn_blocking(move || {
            let lock = me.store.lock();
            let read_at = Utc::now();
            let Some(spec) = me.m.snapshot.as_ref() else {
                return Read::Missing;
            };
            let built = match crate::snapshot::build(&spec.files, &me.scratch) {
                Ok(b) => b,
                Err(e) => return Read::Failed(e),
            };
            for f in &built.missing {
                tracing::warn!("snapshot: {} does not exist, left out", f.display());
            }
            let unchanged = me.snapshot.borrow().as_ref().is_some_and(|cur| {
                cur.sha256 == built.sha256_hex && me.name_current(Kind::Snapshot, &cur.name)
            });
            if unchanged {
                return Read::Unchanged;
            }
            let name = me.claim_name(
                lock.as_ref(),
                Kind::Snapshot,
                &built.sha256_hex,
                read_at,
                false,
                |t| version::snapshot_name(t, &built.nix32),
            );
            match name {
                Some(name) => Read::Named {
                    name,
                    sha: built.sha256_hex,
                    data: built.nar,
                },
                None => Read::Failed(anyhow::anyhow!("failed to name the snapshot")),
            }
        })
        .await
        .context("failed to join the snapshot builder")?;
        match read {
            Read::Failed(e) => Err(e),
            Read::Missing => Ok(Ingest::Missing),
            Read::Rejected(r) => Ok(Ingest::Rejected(r)),
            Read::Unchanged => Ok(Ingest::Unchanged),
            Read::Named { name, sha, data } => {
                self.publish(Kind::Snapshot, name.clone(), sha, data, seen)
                    .await?;
                Ok(Ingest::New(name))
            }
        }
    }

    async fn publish(
        &self,
        kind: Kind,
        name: String,
        sha: String,
        data: Vec<u8>,
        seen: Instant,
    ) -> Result<()> {
        let v = self.version(kind, name.clone(), sha.clone(), data, seen)?;
        let size = v.plain.len() as u64;
        self.store.update(|s| {
            let slot = match kind {
                Kind::Channel => &mut s.channel,
                Kind::Snapshot => &mut s.snapshot,
            };
            // Never back to an older name: another process may have
            // published newer content since this version was named.
            let replace = slot
                .as_ref()
                .is_none_or(|p| p.name != name && !version::newer(&p.name, &name));
            if replace {
                // Content named anew keeps the time it was first seen.
                let since = match slot.as_ref() {
                    Some(p) if p.sha256 == sha => p.since,
                    _ => state::now(),
                };
                *slot = Some(Accepted {
                    name: name.clone(),
                    sha256: sha.clone(),
                    size,
                    since,
                });
            }
        });
        // Current in state before any target holds it: a process that then
        // finds this name on a target sees that newer content is current
        // instead of taking the name for a clock step. The targets get it
        // before the local copy, which must not delay them.
        self.wanted(kind).send_replace(Some(v.clone()));
        tracing::info!("new {} version {name}", kind.as_str());
        if let Some(a) = v.artifact(false) {
            let put = async {
                let _held = self.put_lock("local", kind).await?;
                self.local.put(&a).await
            };
            if let Err(e) = put.await {
                tracing::warn!("failed to keep the local copy {name}: {e:#}");
            } else if let Err(e) = Backend::Directory(self.local.clone())
                .prune(kind, &self.m.retention, &[name.as_str()])
                .await
            {
                tracing::warn!("failed to apply retention to local copies: {e:#}");
            }
        }
        Ok(())
    }

    /// Held while a version is put to `target`: the put reads `latest`,
    /// compares and moves it, and another process on this host (a `push`
    /// next to the service) must not interleave, or an older version's
    /// move could land after a newer one's. Per target and kind, so a slow
    /// target never waits for another.
    async fn put_lock(&self, target: &str, kind: Kind) -> Result<state::StateLock> {
        let dir = self.m.state_dir.clone();
        let file = format!("lock.put-{target}-{}", kind.as_str());
        tokio::task::spawn_blocking(move || state::lock_named(&dir, &file))
            .await
            .context("failed to join a lock wait")?
    }

    /// True if the target acknowledged `v` under its current name (the
    /// same content under an older name does not count: it is not what
    /// `latest` must name).
    fn acked(&self, target: &str, kind: Kind, v: &Version) -> bool {
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

    fn status_line(&self) {
        let st = self.store.snapshot();
        let Some(cur) = st.channel.as_ref() else {
            notify::status("waiting for channel.backup");
            return;
        };
        let current = st.targets.values().filter(|t| t.channel.holds(cur)).count();
        notify::status(&format!(
            "{current}/{} targets hold {}",
            self.m.targets.len(),
            cur.name
        ));
    }

    /// One task per target and kind; returns when shutdown is requested.
    async fn target_loop(self: Arc<Self>, idx: usize, kind: Kind, mut sd: Shutdown) {
        let spec = self.m.targets[idx].clone();
        let name = spec.name().to_string();
        let mut rx = self.wanted(kind).subscribe();
        let mut backend: Option<Backend> = None;
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(60));
        let mut last_prune: Option<Instant> = None;
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
                    let ms = v.seen.elapsed().as_millis();
                    tracing::info!("{name}: holds {} ({ms} ms after the change)", artifact.name);
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
                    if !sd.sleep(delay).await {
                        return;
                    }
                }
            }
        }
    }

    fn spawn_targets(
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
}

/// `push` and `snapshot`: one version to every target, waiting at most
/// `timeout`; an error names the targets that did not acknowledge.
pub async fn push_once(engine: Arc<Engine>, kind: Kind, timeout: Duration) -> Result<Ingest> {
    engine.seed_from_targets().await;
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
    fn all_current_for(&self, target: &str, kind: Kind) -> bool {
        match self.wanted(kind).borrow().as_ref() {
            None => true,
            Some(v) => self.acked(target, kind, v),
        }
    }
}

/// Watches `dir` again after it was replaced: at once, or as soon as the
/// new directory appears (for up to 10 s; after that the reconcile timer
/// retries). Then a read is kicked, as a change may have been missed.
async fn rewatch(
    mut watches: inotify::Watches,
    dirs: Arc<Mutex<HashMap<inotify::WatchDescriptor, PathBuf>>>,
    dir: PathBuf,
    mask: inotify::WatchMask,
    kicks: [Arc<Notify>; 2],
) {
    for _ in 0..200 {
        if let Ok(wd) = watches.add(&dir, mask) {
            if let Ok(mut g) = dirs.lock() {
                g.insert(wd, dir.clone());
            }
            tracing::info!("watching {} again (it was replaced)", dir.display());
            for k in &kicks {
                k.notify_one();
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(
        "failed to watch {} again after it was replaced (retrying at the next reconcile)",
        dir.display()
    );
}

/// `watch`: the service. READY once the manifest is loaded and the engine
/// is set up; then inotify, a startup push, a reconcile every interval and
/// snapshots on their timer and on change, until SIGTERM.
pub async fn watch(engine: Arc<Engine>, sd: Shutdown) -> Result<()> {
    let m = engine.m.clone();
    let channel_kick = Arc::new(Notify::new());
    let snapshot_kick = Arc::new(Notify::new());
    let mut kinds = vec![Kind::Channel];
    if m.snapshot.is_some() {
        kinds.push(Kind::Snapshot);
    }
    let handles = engine.spawn_targets(&kinds, &sd);

    // inotify on the directories (files are replaced by rename, so a watch
    // on the file itself would go stale after the first rewrite).
    let ino = inotify::Inotify::init().context("failed to set up inotify")?;
    let mut watches = ino.watches();
    let dirs: Arc<Mutex<HashMap<inotify::WatchDescriptor, PathBuf>>> = Arc::default();
    let mut watched: Vec<PathBuf> = Vec::new();
    if let Some(d) = m.channel_backup.parent() {
        watched.push(d.to_path_buf());
    }
    if let Some(s) = &m.snapshot {
        for f in &s.files {
            if let Some(d) = f.parent() {
                if !watched.iter().any(|w| w == d) {
                    watched.push(d.to_path_buf());
                }
            }
        }
    }
    // DELETE_SELF/MOVE_SELF: the watched directory itself was removed or
    // renamed away (replaced); IGNORED follows when the kernel drops a
    // watch. Either way the path is watched anew at once.
    let mask = inotify::WatchMask::MOVED_TO
        | inotify::WatchMask::CLOSE_WRITE
        | inotify::WatchMask::DELETE_SELF
        | inotify::WatchMask::MOVE_SELF;
    let add_watches = {
        let dirs = dirs.clone();
        let watched = watched.clone();
        move |w: &mut inotify::Watches| {
            for d in &watched {
                match w.add(d, mask) {
                    Ok(wd) => {
                        if let Ok(mut g) = dirs.lock() {
                            g.insert(wd, d.clone());
                        }
                    }
                    Err(e) => tracing::warn!(
                        "failed to watch {}: {e} (retrying at the next reconcile)",
                        d.display()
                    ),
                }
            }
        }
    };
    add_watches(&mut watches);
    let mut events = ino
        .into_event_stream([0u8; 4096])
        .context("failed to read inotify events")?;
    {
        let (ck, sk, dirs, m) = (
            channel_kick.clone(),
            snapshot_kick.clone(),
            dirs.clone(),
            m.clone(),
        );
        let watches = watches.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                let Ok(ev) = ev else { continue };
                if ev.mask.contains(inotify::EventMask::Q_OVERFLOW) {
                    ck.notify_one();
                    sk.notify_one();
                    continue;
                }
                let gone = inotify::EventMask::IGNORED
                    | inotify::EventMask::DELETE_SELF
                    | inotify::EventMask::MOVE_SELF;
                if ev.mask.intersects(gone) {
                    // A stale descriptor is dropped; a moved directory's
                    // watch (still alive, on the old inode) is removed.
                    let path = dirs.lock().ok().and_then(|mut g| g.remove(&ev.wd));
                    if ev.mask.contains(inotify::EventMask::MOVE_SELF) {
                        let _ = watches.clone().remove(ev.wd.clone());
                    }
                    if let Some(dir) = path {
                        tokio::spawn(rewatch(
                            watches.clone(),
                            dirs.clone(),
                            dir,
                            mask,
                            [ck.clone(), sk.clone()],
                        ));
                    }
                    continue;
                }
                let (Some(name), Some(dir)) = (
                    ev.name.as_ref(),
                    dirs.lock().ok().and_then(|g| g.get(&ev.wd).cloned()),
                ) else {
                    continue;
                };
                let full = dir.join(name);
                if full == m.channel_backup {
                    ck.notify_one();
                }
                if m.snapshot.as_ref().is_some_and(|s| s.files.contains(&full)) {
                    sk.notify_one();
                }
            }
        });
    }

    // Ingest loops: each kick reads the file once; kicks during a read
    // coalesce into one more read, which sees the newest file.
    let channel_loop = {
        let (engine, kick, mut sd) = (engine.clone(), channel_kick.clone(), sd.clone());
        tokio::spawn(async move {
            engine.seed_from_targets().await;
            loop {
                match engine.ingest_channel().await {
                    Ok(Ingest::Missing) => tracing::warn!(
                        "{} does not exist yet; waiting for LND to write it",
                        engine.m.channel_backup.display()
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!("{e:#}"),
                }
                tokio::select! {
                    _ = kick.notified() => {},
                    _ = sd.wait() => return,
                }
            }
        })
    };
    let snapshot_loop = m.snapshot.as_ref().map(|_| {
        let (engine, kick, mut sd) = (engine.clone(), snapshot_kick.clone(), sd.clone());
        tokio::spawn(async move {
            engine.seed_from_targets().await;
            loop {
                if let Err(e) = engine.ingest_snapshot().await {
                    tracing::error!("{e:#}");
                }
                tokio::select! {
                    _ = kick.notified() => {
                        // Editors write several times in a row: settle first.
                        if !sd.sleep(Duration::from_secs(1)).await { return }
                    },
                    _ = sd.wait() => return,
                }
            }
        })
    });

    notify::ready();
    engine.status_line();
    let mut reconcile = tokio::time::interval(Duration::from_secs(m.reconcile_interval_secs));
    reconcile.tick().await;
    let snapshot_every = m
        .snapshot
        .as_ref()
        .map(|s| s.interval_secs)
        .unwrap_or(u64::MAX / 4);
    let mut snap_timer = tokio::time::interval(Duration::from_secs(snapshot_every));
    snap_timer.tick().await;
    let mut sd_main = sd.clone();
    loop {
        tokio::select! {
            _ = reconcile.tick() => {
                add_watches(&mut watches);
                channel_kick.notify_one();
            }
            _ = snap_timer.tick() => snapshot_kick.notify_one(),
            _ = sd_main.wait() => break,
        }
    }
    notify::stopping();
    tracing::info!("stopping");
    let _ = channel_loop.await;
    if let Some(s) = snapshot_loop {
        let _ = s.await;
    }
    for h in handles {
        let _ = h.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn engine(dir: &Path) -> Arc<Engine> {
        let usb = dir.join("usb");
        std::fs::create_dir_all(&usb).unwrap();
        let m: Manifest = serde_json::from_value(serde_json::json!({
            "version": 1,
            "channel_backup": dir.join("lnd/channel.backup"),
            "state_dir": dir.join("state"),
            "targets": [{"kind": "directory", "name": "usb", "path": usb}],
        }))
        .unwrap();
        Engine::new(m).unwrap()
    }

    /// A channel.backup of plausible size whose bytes differ by `seed`,
    /// replaced by rename as LND does.
    fn lnd_writes(dir: &Path, seed: u8) -> Vec<u8> {
        let lnd = dir.join("lnd");
        std::fs::create_dir_all(&lnd).unwrap();
        let data: Vec<u8> = (0..195u8).map(|i| i.wrapping_mul(31) ^ seed).collect();
        std::fs::write(lnd.join("channel.backup.tmp"), &data).unwrap();
        std::fs::rename(lnd.join("channel.backup.tmp"), lnd.join("channel.backup")).unwrap();
        data
    }

    /// Runs the engine's channel target tasks until every target holds its
    /// wanted version (30 s at most), then stops them.
    async fn run_targets_until_current(e: &Arc<Engine>) {
        let (stop, sd) = Shutdown::manual();
        let handles = e.spawn_targets(&[Kind::Channel], &sd);
        let start = Instant::now();
        while !e.all_current(Kind::Channel) && start.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(true);
        for h in handles {
            h.await.unwrap();
        }
    }

    fn usb_latest(dir: &Path) -> (String, Vec<u8>) {
        let folder = dir.join("usb");
        let name = std::fs::read_to_string(folder.join(crate::targets::LATEST)).unwrap();
        let name = name.trim().to_string();
        let data = std::fs::read(folder.join(&name)).unwrap();
        (name, data)
    }

    /// A `push` that read channel.backup just before LND rewrote it, while
    /// another process pushed the rewrite: the target's `latest` is newer
    /// by name. The stale process must take up the newer content (under the
    /// name the other process gave it), not retry its old bytes forever
    /// and not name them anew ahead of newer content.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_read_takes_up_what_another_process_pushed() {
        let t = tempfile::tempdir().unwrap();
        lnd_writes(t.path(), 1);
        let stale = engine(t.path());
        assert!(matches!(
            stale.ingest_channel().await.unwrap(),
            Ingest::New(_)
        ));
        let newer = lnd_writes(t.path(), 2);
        let other = engine(t.path());
        let Ingest::New(other_name) = push_once(other, Kind::Channel, Duration::from_secs(30))
            .await
            .unwrap()
        else {
            panic!("the second process read nothing new");
        };
        assert_eq!(usb_latest(t.path()), (other_name.clone(), newer.clone()));

        // Only now does the stale process push what it read first.
        run_targets_until_current(&stale).await;
        assert!(
            stale.all_current(Kind::Channel),
            "the stale process never caught up: {:?}",
            stale.store.snapshot().targets
        );
        let wanted = stale.channel.borrow().clone().unwrap();
        assert_eq!(wanted.name, other_name, "the newer content was named anew");
        assert_eq!(*wanted.plain, newer);
        assert_eq!(usb_latest(t.path()), (other_name, newer));
    }

    /// As above, but channel.backup is gone when the stale process finds
    /// the newer `latest`: it cannot read the source again, so it takes up
    /// the other process's version from the shared local copies instead of
    /// retrying its old bytes (or naming them ahead of the newer ones).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_process_takes_up_the_local_copy_when_the_file_is_gone() {
        let t = tempfile::tempdir().unwrap();
        lnd_writes(t.path(), 1);
        let stale = engine(t.path());
        stale.ingest_channel().await.unwrap();
        let newer = lnd_writes(t.path(), 2);
        let other = engine(t.path());
        let Ingest::New(other_name) = push_once(other, Kind::Channel, Duration::from_secs(30))
            .await
            .unwrap()
        else {
            panic!("the second process read nothing new");
        };
        std::fs::remove_file(t.path().join("lnd/channel.backup")).unwrap();

        run_targets_until_current(&stale).await;
        let wanted = stale.channel.borrow().clone().unwrap();
        assert_eq!(wanted.name, other_name);
        assert_eq!(*wanted.plain, newer);
        assert_eq!(usb_latest(t.path()), (other_name.clone(), newer));
        assert_eq!(
            stale.store.snapshot().channel.unwrap().name,
            other_name,
            "state moved back"
        );
    }

    /// A version named before another process named and published newer
    /// content, and published only after it, never moves state's current
    /// version back (`status` would report every target behind forever).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_publish_never_moves_current_back() {
        let t = tempfile::tempdir().unwrap();
        let old = lnd_writes(t.path(), 1);
        let slow = engine(t.path());
        let old_sha = channel::sha256_hex(&old);
        let old_name = {
            let lock = slow.store.lock();
            slow.claim_name(
                lock.as_ref(),
                Kind::Channel,
                &old_sha,
                Utc::now(),
                false,
                |t| version::channel_name(t, &old_sha),
            )
            .unwrap()
        };
        lnd_writes(t.path(), 2);
        let fast = engine(t.path());
        let Ingest::New(new_name) = fast.ingest_channel().await.unwrap() else {
            panic!("nothing new read");
        };
        assert!(version::newer(&new_name, &old_name));
        slow.publish(Kind::Channel, old_name, old_sha, old, Instant::now())
            .await
            .unwrap();
        assert_eq!(slow.store.snapshot().channel.unwrap().name, new_name);
    }

    /// A name claimed for some content and not yet published (LND may be
    /// verifying it) is reused by a process that reads the same content;
    /// different content gets a newer name.
    #[test]
    fn a_claimed_name_is_shared_by_the_same_content_only() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (engine(t.path()), engine(t.path()));
        let claim = |e: &Engine, sha: &str| {
            let lock = e.store.lock();
            e.claim_name(lock.as_ref(), Kind::Channel, sha, Utc::now(), false, |t| {
                version::channel_name(t, sha)
            })
            .unwrap()
        };
        let sha1 = "11".repeat(32);
        let sha2 = "22".repeat(32);
        let first = claim(&a, &sha1);
        assert_eq!(claim(&b, &sha1), first);
        let other = claim(&b, &sha2);
        assert!(version::newer(&other, &first), "{other} vs {first}");
        // Once different content was claimed later, the first content
        // read again is named after it.
        let again = claim(&a, &sha1);
        assert!(version::newer(&again, &other), "{again} vs {other}");
    }
}
