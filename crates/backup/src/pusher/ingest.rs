//! Reading channel.backup (checked, then verified by LND when configured)
//! and packing the snapshot set; what is new is named and published, what
//! must not be pushed is refused and recorded.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use chainstead_common::notify;
use chrono::Utc;

use super::{Engine, Ingest};
use crate::channel::{self, LndVerdict, ReadOutcome};
use crate::state;
use crate::version::{self, Kind};

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
        /// When the content changed, for the delays in the log.
        changed: Instant,
    },
}

/// When `path` last changed, by its modification time, as an instant no
/// later than `read`: a rewrite LND makes while the pusher is starting, or
/// while it is busy, is timed from the rewrite, not from when it was read.
/// `read` itself if the time is unknown or in the future (a clock step).
fn changed_at(path: &Path, read: Instant) -> Instant {
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    match age.and_then(|a| Instant::now().checked_sub(a)) {
        Some(t) => t.min(read),
        None => read,
    }
}

impl Engine {
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
            let changed = changed_at(&me.m.channel_backup, seen);
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
                Some(name) => Read::Named {
                    name,
                    sha,
                    data,
                    changed,
                },
                None => Read::Failed(anyhow::anyhow!("failed to name the channel backup")),
            }
        })
        .await
        .context("failed to join the channel.backup reader")?;
        let (name, sha, data, changed) = match read {
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
            Read::Named {
                name,
                sha,
                data,
                changed,
            } => (name, sha, data, changed),
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
        self.publish(Kind::Channel, name.clone(), sha, data, changed)
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
                    changed: seen,
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
            Read::Named {
                name,
                sha,
                data,
                changed,
            } => {
                self.publish(Kind::Snapshot, name.clone(), sha, data, changed)
                    .await?;
                Ok(Ingest::New(name))
            }
        }
    }
}
