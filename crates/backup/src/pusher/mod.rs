//! The pusher: reads and validates new versions, keeps a local versioned
//! copy, and hands the newest version to one task per target and kind.
//!
//! Each task watches a `watch` channel holding the newest wanted version, so
//! a burst of rewrites coalesces to the newest, a slow or failing target
//! never holds up the others, and a target that comes back catches up with
//! whatever is newest by then. Attempts are retried with exponential
//! backoff until the target acknowledges.
//!
//! One concern per file:
//! - [`naming`]: version names and their order (the floors, claiming a
//!   name under the state lock, naming current content anew);
//! - [`ingest`]: reading channel.backup or packing a snapshot, refusing
//!   what must not be pushed;
//! - [`publish`]: making a version current (the rule that current never
//!   moves back) and keeping the local copy;
//! - [`deliver`]: the task per target and kind, its retries, and `push`;
//! - [`watch`]: the service (inotify, the timers, the ingest loops).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use chainstead_common::notify;
use chrono::{DateTime, Utc};

use crate::crypt::Sealer;
use crate::manifest::{Manifest, TargetSpec};
use crate::state::{self, Store};
use crate::targets::directory::DirStore;
use crate::version::{Kind, Version};

mod deliver;
mod ingest;
mod naming;
mod publish;
mod watch;

#[cfg(test)]
mod tests;

pub use deliver::push_once;
pub use watch::watch;

use naming::raise;

type Wanted = tokio::sync::watch::Sender<Option<Arc<Version>>>;

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
    /// Woken at every reconcile: a target task waiting out its backoff
    /// checks whether its target answers again.
    reconciled: tokio::sync::Notify,
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
        let engine = Arc::new(Self {
            reconciled: tokio::sync::Notify::new(),
            floors: Mutex::new(floors),
            naming: tokio::sync::Mutex::new(()),
            seeded: tokio::sync::OnceCell::new(),
            scratch: m.state_dir.join("tmp"),
            local,
            sealer,
            store,
            channel: tokio::sync::watch::channel(None).0,
            snapshot: tokio::sync::watch::channel(None).0,
            m,
        });
        engine.clean_temp();
        Ok(engine)
    }

    /// Removes the temporary files a killed writer (kill -9 mid-write) left
    /// in the local copies and in directory targets: at start and at every
    /// reconcile. Only files at least 10 s old: a younger one may be a write
    /// in progress, by this process or another (`push` next to the service).
    pub(super) fn clean_temp(&self) {
        let stale = Duration::from_secs(10);
        let dirs = std::iter::once(self.local.clone()).chain(self.m.targets.iter().filter_map(
            |t| match t {
                TargetSpec::Directory { path, .. } => Some(DirStore::new(path.clone())),
                _ => None,
            },
        ));
        for d in dirs {
            d.clean_temp(Kind::Channel, stale);
            d.clean_temp(Kind::Snapshot, stale);
        }
    }

    pub(super) fn wanted(&self, kind: Kind) -> &Wanted {
        match kind {
            Kind::Channel => &self.channel,
            Kind::Snapshot => &self.snapshot,
        }
    }

    /// A version of `data`, sealed for the targets that encrypt.
    pub(super) fn version(
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

    pub(super) fn status_line(&self) {
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
}
