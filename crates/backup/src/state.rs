//! What the pusher knows about itself: `state.json` in the state directory,
//! replaced atomically after every attempt, and the metrics textfile derived
//! from it. `status` reads the same file, so it needs no running service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chainstead_common::fs::{write_atomic_owned, Owner};
use chainstead_common::metrics::Textfile;
use serde::{Deserialize, Serialize};

use crate::version::Kind;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// The newest accepted channel.backup.
    #[serde(default)]
    pub channel: Option<Accepted>,
    /// The newest snapshot.
    #[serde(default)]
    pub snapshot: Option<Accepted>,
    #[serde(default)]
    pub rejected: Rejected,
    /// Reads of channel.backup itself (permissions, I/O errors, missing).
    #[serde(default)]
    pub source: Source,
    /// LND refusing the verify call's macaroon.
    #[serde(default)]
    pub lnd_auth: LndAuth,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetState>,
    /// Per kind ("channel", "snapshot"): the newest name any process gave
    /// out, so the next one, from whichever process, is after it.
    #[serde(default)]
    pub named: BTreeMap<String, String>,
    /// Per kind: the plaintext sha256 of the content `named` was given to,
    /// so a process that reads the same content reuses that name instead
    /// of racing it with a newer one.
    #[serde(default)]
    pub named_sha256: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    /// When this content was first seen (unix seconds).
    pub since: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rejected {
    pub total: u64,
    pub last_time: Option<f64>,
    pub last_reason: Option<String>,
}

/// Whether channel.backup could be read. While it cannot, nothing new can
/// reach the targets, so no target counts as up to date.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Source {
    /// Last read that got the file's bytes (unix seconds).
    pub last_read: Option<f64>,
    pub read_failures_total: u64,
    /// Set while the newest read failed, with why and since when.
    pub failing: bool,
    pub last_error: Option<String>,
    pub last_error_time: Option<f64>,
}

/// Verify calls LND refused for the macaroon (401/403 and the like).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LndAuth {
    pub failures_total: u64,
    pub last_error: Option<String>,
    pub last_error_time: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetState {
    pub kind: String,
    #[serde(default)]
    pub channel: Lane,
    #[serde(default)]
    pub snapshot: Lane,
}

/// One target's record for one kind of artifact.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lane {
    pub last_success: Option<f64>,
    /// Name (as stored on the target) and plaintext sha256 of the newest
    /// version the target acknowledged.
    pub last_name: Option<String>,
    pub last_sha256: Option<String>,
    pub last_error: Option<String>,
    pub last_error_time: Option<f64>,
    pub failures_total: u64,
    pub consecutive_failures: u64,
    pub bytes_pushed_total: u64,
}

impl Lane {
    /// True if the target acknowledged `a` under its current name (with or
    /// without `.age`): the same content under an older name is not what
    /// `latest` must name.
    pub fn holds(&self, a: &Accepted) -> bool {
        self.last_name
            .as_deref()
            .is_some_and(|n| n.strip_suffix(crate::version::AGE_SUFFIX).unwrap_or(n) == a.name)
    }
}

impl State {
    /// Whether `target` holds the newest accepted version of `kind`. While
    /// channel.backup cannot be read nothing is known to be current.
    pub fn is_current(&self, target: &str, kind: Kind) -> bool {
        let newest = match kind {
            Kind::Channel => self.channel.as_ref(),
            Kind::Snapshot => self.snapshot.as_ref(),
        };
        let held = self
            .targets
            .get(target)
            .is_some_and(|t| newest.is_some_and(|n| t.lane(kind).holds(n)));
        held && !(kind == Kind::Channel && self.source.failing)
    }
}

impl TargetState {
    pub fn lane(&self, kind: Kind) -> &Lane {
        match kind {
            Kind::Channel => &self.channel,
            Kind::Snapshot => &self.snapshot,
        }
    }
    pub fn lane_mut(&mut self, kind: Kind) -> &mut Lane {
        match kind {
            Kind::Channel => &mut self.channel,
            Kind::Snapshot => &mut self.snapshot,
        }
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The owner to give files written into `dir`: when this process runs as
/// root (`push` or `snapshot` by hand), the directory's owner, so the
/// service user can still read and replace them; otherwise nobody is
/// changed (an unprivileged process keeps its own identity).
pub fn owner_for(dir: &Path) -> Owner {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Owner::default();
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.uid() != 0 => Owner {
            uid: Some(m.uid()),
            gid: Some(m.gid()),
        },
        _ => Owner::default(),
    }
}

/// `create_dir_all`, giving each directory it creates the owner of the
/// nearest existing ancestor (see [`owner_for`]).
pub fn create_dir_owned(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.exists() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    let owner = cur.map(owner_for).unwrap_or_default();
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create directory {}", dir.display()))?;
    if owner != Owner::default() {
        for d in missing {
            std::os::unix::fs::chown(d, owner.uid, owner.gid)
                .with_context(|| format!("failed to set the owner of {}", d.display()))?;
        }
    }
    Ok(())
}

pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

/// Reads `state.json`; a missing file is an empty state.
pub fn load(state_dir: &Path) -> Result<State> {
    let p = state_path(state_dir);
    match std::fs::read(&p) {
        Ok(b) => {
            serde_json::from_slice(&b).with_context(|| format!("failed to parse {}", p.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            version: 1,
            ..State::default()
        }),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", p.display())),
    }
}

/// An exclusive `flock` on `<state_dir>/lock`, released on drop.
pub type StateLock = nix::fcntl::Flock<std::fs::File>;

/// Blocks until this process holds the state directory's lock.
pub fn lock_dir(dir: &Path) -> Result<StateLock> {
    lock_named(dir, "lock")
}

/// Blocks until this process holds the lock file `name` in the state
/// directory (created with the directory's owner when run as root).
pub fn lock_named(dir: &Path, name: &str) -> Result<StateLock> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(name);
    let existed = p.exists();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&p)
        // Left by another user (an older root `push`): reading is enough.
        .or_else(|_| std::fs::File::open(&p))
        .with_context(|| format!("failed to open the lock file {}", p.display()))?;
    let owner = owner_for(dir);
    if !existed && owner != Owner::default() {
        std::os::unix::fs::fchown(&file, owner.uid, owner.gid)
            .with_context(|| format!("failed to set the owner of {}", p.display()))?;
    }
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("failed to lock {}", p.display()))
}

/// The shared state of a running pusher; every change is written through.
pub struct Store {
    state: Mutex<State>,
    dir: PathBuf,
    metrics: Option<PathBuf>,
}

impl Store {
    pub fn open(state_dir: &Path, metrics: Option<PathBuf>) -> Result<Self> {
        let mut st = load(state_dir)?;
        st.version = 1;
        Ok(Self {
            state: Mutex::new(st),
            dir: state_dir.to_path_buf(),
            metrics,
        })
    }

    pub fn snapshot(&self) -> State {
        match self.state.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Takes the state directory's lock (`flock` on `<state_dir>/lock`),
    /// waiting for another process (a `push` next to the service) to
    /// finish its read-name-record step. `None` (logged) if the lock file
    /// cannot be opened: bookkeeping then goes on unserialised.
    pub fn lock(&self) -> Option<StateLock> {
        match lock_dir(&self.dir) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("{e:#}");
                None
            }
        }
    }

    /// Applies `f` and writes the state file and metrics, under the state
    /// directory's lock. A failed write is logged, not fatal: pushing
    /// matters more than bookkeeping.
    pub fn update(&self, f: impl FnOnce(&mut State)) {
        let lock = self.lock();
        self.update_locked(lock.as_ref(), f);
    }

    /// [`Store::update`] for a caller that holds the lock already (taking
    /// it again from the same process would wait forever). The state is
    /// read from disk first: another process may have changed it.
    pub fn update_locked(&self, _held: Option<&StateLock>, f: impl FnOnce(&mut State)) {
        let mut g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match load(&self.dir) {
            Ok(mut disk) => {
                disk.version = 1;
                *g = disk;
            }
            Err(e) => tracing::warn!("{e:#} (keeping the state in memory)"),
        }
        f(&mut g);
        if let Err(e) = self.write(&g) {
            tracing::warn!("{e:#}");
        }
    }

    fn write(&self, st: &State) -> Result<()> {
        let json = serde_json::to_vec_pretty(st).context("failed to serialize state")?;
        // Run as root, the files still belong to the state directory's
        // owner: a root-owned 0600 state.json would lock the service out.
        let owner = owner_for(&self.dir);
        write_atomic_owned(&state_path(&self.dir), &json, 0o600, owner)?;
        if let Some(m) = &self.metrics {
            // World-readable, as node_exporter runs as its own user.
            write_atomic_owned(m, render_metrics(st).render().as_bytes(), 0o644, owner)?;
        }
        Ok(())
    }
}

/// Name, type, help and how to read the value from a lane.
type Family = (&'static str, &'static str, &'static str, fn(&Lane) -> f64);

pub fn render_metrics(st: &State) -> Textfile {
    let mut t = Textfile::new();
    t.gauge(
        "chainstead_backup_last_change_timestamp_seconds",
        "When the newest accepted channel.backup content was first seen.",
        st.channel.as_ref().map(|c| c.since).unwrap_or(0.0),
    );
    t.family(
        "chainstead_backup_rejected_total",
        "counter",
        "Reads of channel.backup that were refused (too small, unstable, refused by LND).",
    )
    .sample(
        "chainstead_backup_rejected_total",
        &[],
        st.rejected.total as f64,
    );
    t.family(
        "chainstead_backup_source_read_failures_total",
        "counter",
        "Failed reads of channel.backup (permissions, I/O errors, missing file).",
    )
    .sample(
        "chainstead_backup_source_read_failures_total",
        &[],
        st.source.read_failures_total as f64,
    );
    t.family(
        "chainstead_backup_lnd_auth_failures_total",
        "counter",
        "Verify calls LND refused for the macaroon (the file is pushed unverified).",
    )
    .sample(
        "chainstead_backup_lnd_auth_failures_total",
        &[],
        st.lnd_auth.failures_total as f64,
    );
    t.gauge(
        "chainstead_backup_source_last_read_timestamp_seconds",
        "Last time channel.backup was read (0 if never).",
        st.source.last_read.unwrap_or(0.0),
    );
    t.gauge(
        "chainstead_backup_source_readable",
        "0 while the newest read of channel.backup failed.",
        f64::from(u8::from(!st.source.failing)),
    );
    let fams: [Family; 4] = [
        (
            "chainstead_backup_last_success_timestamp_seconds",
            "gauge",
            "Last time the target acknowledged a push (0 if never).",
            |l| l.last_success.unwrap_or(0.0),
        ),
        (
            "chainstead_backup_failures_total",
            "counter",
            "Failed push attempts to the target.",
            |l| l.failures_total as f64,
        ),
        (
            "chainstead_backup_bytes_pushed_total",
            "counter",
            "Bytes acknowledged by the target.",
            |l| l.bytes_pushed_total as f64,
        ),
        (
            "chainstead_backup_up_to_date",
            "gauge",
            "1 if the target holds the newest accepted version (channel: 0 while channel.backup cannot be read).",
            |_| 0.0,
        ),
    ];
    for (name, kind, help, get) in fams {
        t.family(name, kind, help);
        for (target, ts) in &st.targets {
            for k in [Kind::Channel, Kind::Snapshot] {
                if k == Kind::Snapshot && st.snapshot.is_none() {
                    continue;
                }
                let lane = ts.lane(k);
                let value = if name == "chainstead_backup_up_to_date" {
                    let newest = match k {
                        Kind::Channel => st.channel.as_ref(),
                        Kind::Snapshot => st.snapshot.as_ref(),
                    };
                    match newest {
                        Some(n) => f64::from(u8::from(
                            lane.holds(n) && !(k == Kind::Channel && st.source.failing),
                        )),
                        None => continue,
                    }
                } else {
                    get(lane)
                };
                t.sample(
                    name,
                    &[
                        ("target", target),
                        ("kind", &ts.kind),
                        ("artifact", k.as_str()),
                    ],
                    value,
                );
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several processes (here: stores on one directory, in threads) that
    /// update state.json at once lose no update: each reads the file under
    /// the directory's lock before changing it.
    #[test]
    fn concurrent_writers_serialise() {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<Store> = (0..4)
            .map(|_| Store::open(dir.path(), None).unwrap())
            .collect();
        std::thread::scope(|sc| {
            for st in &stores {
                sc.spawn(move || {
                    for _ in 0..50 {
                        st.update(|s| s.rejected.total += 1);
                    }
                });
            }
        });
        assert_eq!(load(dir.path()).unwrap().rejected.total, 200);
        // A lock held elsewhere makes an update wait for it.
        let held = lock_dir(dir.path()).unwrap();
        let t = std::thread::spawn({
            let dir = dir.path().to_path_buf();
            move || {
                Store::open(&dir, None)
                    .unwrap()
                    .update(|s| s.rejected.total = 1000)
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(load(dir.path()).unwrap().rejected.total, 200);
        drop(held);
        t.join().unwrap();
        assert_eq!(load(dir.path()).unwrap().rejected.total, 1000);
    }
}
