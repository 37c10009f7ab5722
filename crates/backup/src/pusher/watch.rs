//! The service: inotify on the watched directories, a read on every
//! change, a reconcile every interval and snapshots on their timer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use chainstead_common::notify;
use chainstead_common::shutdown::Shutdown;
use futures::StreamExt;
use tokio::sync::Notify;

use super::{Engine, Ingest};
use crate::manifest::Manifest;
use crate::version::Kind;

/// Watches `dir` again after it was replaced: at once, or as soon as the
/// new directory appears (for up to 10 s; after that the reconcile timer
/// retries). Then a read is kicked, as a change may have been missed.
async fn rewatch(
    mut watches: inotify::Watches,
    dirs: Dirs,
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

/// One kick per kind: a read of that kind is due.
struct Kicks {
    channel: Arc<Notify>,
    snapshot: Arc<Notify>,
}

type Dirs = Arc<Mutex<HashMap<inotify::WatchDescriptor, PathBuf>>>;

/// The events that matter in a watched directory. Files are replaced by
/// rename, so a watch on the file itself would go stale after the first
/// rewrite. DELETE, MOVED_FROM and ATTRIB: a file was removed, renamed away
/// or had its mode or owner changed, which the next read must report at
/// once rather than at the next reconcile. DELETE_SELF/MOVE_SELF: the watched directory itself was
/// removed or renamed away (replaced); IGNORED follows when the kernel
/// drops a watch. Either way the path is watched anew at once.
fn mask() -> inotify::WatchMask {
    inotify::WatchMask::MOVED_TO
        | inotify::WatchMask::CLOSE_WRITE
        | inotify::WatchMask::DELETE
        | inotify::WatchMask::MOVED_FROM
        | inotify::WatchMask::ATTRIB
        | inotify::WatchMask::DELETE_SELF
        | inotify::WatchMask::MOVE_SELF
}

/// The directories holding channel.backup and the snapshot files.
fn watched_dirs(m: &Manifest) -> Vec<PathBuf> {
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
    watched
}

/// inotify on the watched directories; `add` (re)adds every watch.
struct Watcher {
    watches: inotify::Watches,
    dirs: Dirs,
    watched: Vec<PathBuf>,
}

impl Watcher {
    /// Sets up inotify, adds the watches and spawns the task that turns
    /// events into kicks.
    fn start(m: &Arc<Manifest>, kicks: &Kicks) -> Result<Self> {
        let ino = inotify::Inotify::init().context("failed to set up inotify")?;
        let mut w = Self {
            watches: ino.watches(),
            dirs: Arc::default(),
            watched: watched_dirs(m),
        };
        w.add();
        let events = ino
            .into_event_stream([0u8; 4096])
            .context("failed to read inotify events")?;
        tokio::spawn(on_events(
            events,
            w.watches.clone(),
            w.dirs.clone(),
            m.clone(),
            [kicks.channel.clone(), kicks.snapshot.clone()],
        ));
        Ok(w)
    }

    fn add(&mut self) {
        for d in &self.watched {
            match self.watches.add(d, mask()) {
                Ok(wd) => {
                    if let Ok(mut g) = self.dirs.lock() {
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
}

/// Turns inotify events into kicks: a change to channel.backup kicks the
/// channel read, one to a snapshot file the snapshot; a watched directory
/// that went away is watched again; an overflow kicks both.
async fn on_events(
    mut events: inotify::EventStream<[u8; 4096]>,
    watches: inotify::Watches,
    dirs: Dirs,
    m: Arc<Manifest>,
    kicks: [Arc<Notify>; 2],
) {
    let [ck, sk] = &kicks;
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
                    mask(),
                    kicks.clone(),
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
}

/// Each kick reads channel.backup once; kicks during a read coalesce into
/// one more read, which sees the newest file.
async fn channel_loop(engine: Arc<Engine>, kick: Arc<Notify>, mut sd: Shutdown) {
    engine.seed_in_background();
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
}

/// As [`channel_loop`] for the snapshot set, settling a second after a
/// kick (editors write several times in a row).
async fn snapshot_loop(engine: Arc<Engine>, kick: Arc<Notify>, mut sd: Shutdown) {
    engine.seed_in_background();
    loop {
        if let Err(e) = engine.ingest_snapshot().await {
            tracing::error!("{e:#}");
        }
        tokio::select! {
            _ = kick.notified() => {
                if !sd.sleep(Duration::from_secs(1)).await { return }
            },
            _ = sd.wait() => return,
        }
    }
}

/// `watch`: the service. READY once the manifest is loaded and the engine
/// is set up; then inotify, a startup push, a reconcile every interval and
/// snapshots on their timer and on change, until SIGTERM.
pub async fn watch(engine: Arc<Engine>, sd: Shutdown) -> Result<()> {
    let m = engine.m.clone();
    let kicks = Kicks {
        channel: Arc::new(Notify::new()),
        snapshot: Arc::new(Notify::new()),
    };
    let mut kinds = vec![Kind::Channel];
    if m.snapshot.is_some() {
        kinds.push(Kind::Snapshot);
    }
    let handles = engine.spawn_targets(&kinds, &sd);
    let mut watcher = Watcher::start(&m, &kicks)?;
    let channel = tokio::spawn(channel_loop(
        engine.clone(),
        kicks.channel.clone(),
        sd.clone(),
    ));
    let snapshot = m.snapshot.as_ref().map(|_| {
        tokio::spawn(snapshot_loop(
            engine.clone(),
            kicks.snapshot.clone(),
            sd.clone(),
        ))
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
                watcher.add();
                kicks.channel.notify_one();
                engine.reconciled.notify_waiters();
                // Off the runtime: a directory target may be a hung mount.
                let e = engine.clone();
                drop(tokio::task::spawn_blocking(move || e.clean_temp()));
            }
            _ = snap_timer.tick() => kicks.snapshot.notify_one(),
            _ = sd_main.wait() => break,
        }
    }
    notify::stopping();
    tracing::info!("stopping");
    let _ = channel.await;
    if let Some(s) = snapshot {
        let _ = s.await;
    }
    for h in handles {
        let _ = h.await;
    }
    Ok(())
}
