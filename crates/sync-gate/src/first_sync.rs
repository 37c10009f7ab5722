//! The first sync's dbcache switch (docs/storage.md, "A faster first sync").
//!
//! bitcoind syncs with a large dbcache until the steady one takes over; the
//! NixOS side restarts it once, when the bitcoind gate's target starts, if
//! this gate asked for it. The gate asks only when it saw bitcoind in
//! initial block download before releasing, so a node that was already
//! synced when the gate started is never restarted:
//!
//! - `<flag>.ibd-seen`: written the first time a poll before release finds
//!   bitcoind in initial block download. It sits beside the flag, in
//!   `/run`, so it survives a restart of the gate (a switch that changed
//!   it) but not a reboot.
//! - `<flag>.steady-dbcache`: written at release, before the flag, when
//!   `ibd-seen` exists and no request was written yet; never rewritten.
//!   `chainstead-bitcoind-steady-dbcache.service` has it as its condition.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{Manifest, Observation};

/// The phases `backend::bitcoind::observe` gives while bitcoind reports
/// `initialblockdownload: true` ("ibd": blocks behind headers; "stale-tip":
/// all known blocks validated, the tip older than -maxtipage).
const IBD_PHASES: [&str; 2] = ["ibd", "stale-tip"];

/// What `on_release` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// IBD was seen: the restart request is written now.
    Requested,
    /// A request exists already (an earlier run of this gate wrote it).
    AlreadyRequested,
    /// bitcoind was not seen in IBD: it keeps running as it is.
    NotNeeded,
}

/// The two files of one bitcoind gate.
#[derive(Debug, Clone)]
pub struct FirstSync {
    ibd_seen: PathBuf,
    request: PathBuf,
}

fn beside(flag: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = flag.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl FirstSync {
    /// For a bitcoind gate; `None` for the other backends.
    pub fn for_manifest(m: &Manifest) -> Option<Self> {
        (m.backend.kind() == "bitcoind").then(|| Self::beside_flag(&m.flag_file))
    }

    /// The files beside a flag file.
    pub fn beside_flag(flag: &Path) -> Self {
        Self {
            ibd_seen: beside(flag, ".ibd-seen"),
            request: beside(flag, ".steady-dbcache"),
        }
    }

    /// The restart request the NixOS unit waits for.
    pub fn request_file(&self) -> &Path {
        &self.request
    }

    /// Whether this gate (in this or an earlier run) saw bitcoind in IBD.
    pub fn ibd_seen(&self) -> Result<bool> {
        exists(&self.ibd_seen)
    }

    /// A poll before release: remember that bitcoind was in IBD.
    pub fn observe(&self, obs: &Observation) -> Result<()> {
        if obs.ready || !IBD_PHASES.contains(&obs.phase) || self.ibd_seen()? {
            return Ok(());
        }
        write(
            &self.ibd_seen,
            "bitcoind was seen in initial block download\n",
        )?;
        tracing::info!(
            file = %self.ibd_seen.display(),
            "bitcoind is in initial block download: it restarts once with the steady dbcache after release"
        );
        Ok(())
    }

    /// The release, before the flag is written: request the restart once.
    pub fn on_release(&self) -> Result<Decision> {
        if exists(&self.request)? {
            return Ok(Decision::AlreadyRequested);
        }
        if !self.ibd_seen()? {
            return Ok(Decision::NotNeeded);
        }
        write(
            &self.request,
            "restart bitcoind once with the steady-state dbcache\n",
        )?;
        Ok(Decision::Requested)
    }
}

impl FirstSync {
    /// The gate's hook, for every poll before release, ahead of the flag:
    /// remembers IBD, and on the poll that releases requests the restart.
    pub fn before_release(&self, obs: &Observation) -> Result<()> {
        self.observe(obs)?;
        if obs.ready {
            match self.on_release()? {
                Decision::Requested => tracing::info!(
                    file = %self.request.display(),
                    "bitcoind was in initial block download: requested one restart with the steady dbcache"
                ),
                Decision::AlreadyRequested => tracing::info!(
                    file = %self.request.display(),
                    "the restart with the steady dbcache was requested earlier"
                ),
                Decision::NotNeeded => tracing::info!(
                    "bitcoind was not seen in initial block download: no restart for the dbcache"
                ),
            }
        }
        Ok(())
    }
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists()
        .with_context(|| format!("failed to look for {}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create directory {}", dir.display()))?;
    }
    chainstead_common::fs::write_atomic(path, text.as_bytes(), 0o644)
        .with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::backend::bitcoind::{observe, ChainInfo};

    fn info(blocks: u64, headers: u64, ibd: bool) -> ChainInfo {
        serde_json::from_value(serde_json::json!({
            "chain": "main",
            "blocks": blocks,
            "headers": headers,
            "initialblockdownload": ibd,
            "verificationprogress": if ibd { 0.5 } else { 1.0 },
        }))
        .unwrap()
    }

    fn setup() -> (tempfile::TempDir, FirstSync) {
        let dir = tempfile::tempdir().unwrap();
        let fs = FirstSync::beside_flag(&dir.path().join("sync/bitcoind"));
        (dir, fs)
    }

    #[test]
    fn files_sit_beside_the_flag() {
        let fs = FirstSync::beside_flag(Path::new("/run/chainstead/sync/bitcoind"));
        assert_eq!(
            fs.request_file(),
            Path::new("/run/chainstead/sync/bitcoind.steady-dbcache")
        );
        assert_eq!(
            fs.ibd_seen,
            Path::new("/run/chainstead/sync/bitcoind.ibd-seen")
        );
    }

    #[test]
    fn ibd_then_release_requests_exactly_once() {
        let (_dir, fs) = setup();
        fs.observe(&observe(&info(100, 900, true))).unwrap();
        assert!(fs.ibd_seen().unwrap());
        assert!(!fs.request_file().exists(), "requested before release");
        assert_eq!(fs.on_release().unwrap(), Decision::Requested);
        assert!(fs.request_file().exists());
        assert_eq!(fs.on_release().unwrap(), Decision::AlreadyRequested);
    }

    #[test]
    fn the_hook_requests_on_the_releasing_poll_only() {
        let (_dir, fs) = setup();
        fs.before_release(&observe(&info(100, 900, true))).unwrap();
        fs.before_release(&observe(&info(899, 900, false))).unwrap();
        assert!(!fs.request_file().exists(), "requested before the release");
        fs.before_release(&observe(&info(900, 900, false))).unwrap();
        assert!(fs.request_file().exists());
    }

    #[test]
    fn a_stale_tip_counts_as_ibd() {
        let (_dir, fs) = setup();
        fs.observe(&observe(&info(900, 900, true))).unwrap();
        assert!(fs.ibd_seen().unwrap());
    }

    #[test]
    fn synced_or_catching_up_is_not_ibd() {
        let (_dir, fs) = setup();
        fs.observe(&observe(&info(900, 900, false))).unwrap();
        fs.observe(&observe(&info(890, 900, false))).unwrap();
        assert!(!fs.ibd_seen().unwrap());
        assert_eq!(fs.on_release().unwrap(), Decision::NotNeeded);
        assert!(!fs.request_file().exists());
    }

    #[test]
    fn warmup_and_down_are_not_ibd() {
        let (_dir, fs) = setup();
        fs.observe(&Observation::waiting("warmup", "warming up".into()))
            .unwrap();
        fs.observe(&Observation::waiting("down", "unreachable".into()))
            .unwrap();
        assert!(!fs.ibd_seen().unwrap());
    }

    #[test]
    fn a_new_gate_process_remembers_ibd() {
        let (dir, fs) = setup();
        fs.observe(&observe(&info(100, 900, true))).unwrap();
        drop(fs);
        let again = FirstSync::beside_flag(&dir.path().join("sync/bitcoind"));
        assert_eq!(again.on_release().unwrap(), Decision::Requested);
    }

    #[test]
    fn an_unwritable_directory_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let fs = FirstSync::beside_flag(&file.join("bitcoind"));
        let err = fs.observe(&observe(&info(1, 9, true))).unwrap_err();
        assert!(
            format!("{err:#}").contains("failed to"),
            "unexpected error: {err:#}"
        );
    }
}
