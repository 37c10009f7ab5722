//! Publishing a named version: state's current version (which never
//! moves back), the wanted version every target task pushes, and the local
//! copy in the state directory.

use std::time::Instant;

use anyhow::{Context, Result};

use super::Engine;
use crate::state::{self, Accepted};
use crate::targets::Backend;
use crate::version::{self, Kind};

/// The rule "current never moves back": `name` becomes state's current
/// version (`slot`) only if it differs from the current name and the
/// current one is not newer by name. Another process (a `push` next to the
/// service) may have published newer content since `name` was given out;
/// replacing it would make `status` report every target behind forever.
/// Content named anew keeps the time it was first seen.
fn current_never_moves_back(slot: &mut Option<Accepted>, name: &str, sha: &str, size: u64) {
    let replace = slot
        .as_ref()
        .is_none_or(|p| p.name != name && !version::newer(&p.name, name));
    if replace {
        let since = match slot.as_ref() {
            Some(p) if p.sha256 == sha => p.since,
            _ => state::now(),
        };
        *slot = Some(Accepted {
            name: name.to_string(),
            sha256: sha.to_string(),
            size,
            since,
        });
    }
}

impl Engine {
    /// Makes `name` (content `sha`, `data`) the current version of `kind`
    /// in state, unless that would move current back, and the wanted
    /// version of every target task; then keeps the local copy.
    pub(super) async fn publish(
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
            current_never_moves_back(slot, &name, &sha, size);
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
    pub(super) async fn put_lock(&self, target: &str, kind: Kind) -> Result<state::StateLock> {
        let dir = self.m.state_dir.clone();
        let file = format!("lock.put-{target}-{}", kind.as_str());
        tokio::task::spawn_blocking(move || state::lock_named(&dir, &file))
            .await
            .context("failed to join a lock wait")?
    }
}
