//! The backup section of `chainstead status` for an operator: the pusher's
//! state directory is its own (0700), so when `state.json` is not readable
//! the rows come from the pusher's metrics textfile. The state and the
//! metrics are written by the backup crate's own `Store`, as the pusher
//! writes them. A permission error is simulated through the state-reader
//! seam (as root, permission checks do not apply); a real mode-000 file is
//! tried too when not root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chainstead_backup::state::{Accepted, Lane, State, Store, TargetState};
use chainstead_cli::status::units::Fixed;
use chainstead_cli::status::{exit_of, report, report_with, Manifest, Report};
use chainstead_common::exit::Exit;
use serde_json::json;

/// `state.json` as an operator sees it: permission denied.
fn denied(dir: &Path) -> anyhow::Result<State> {
    let p = chainstead_backup::state::state_path(dir);
    Err(anyhow::Error::new(std::io::Error::from(
        std::io::ErrorKind::PermissionDenied,
    )))
    .map_err(|e| e.context(format!("failed to read {}", p.display())))
}

struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("backup")).unwrap();
        std::fs::create_dir_all(dir.path().join("metrics")).unwrap();
        Self { dir }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("backup")
    }

    fn metrics(&self) -> PathBuf {
        self.dir.path().join("metrics/chainstead-backup.prom")
    }

    /// The pusher's state: `usb` holds the newest channel.backup (pushed
    /// 10 min ago), `s3` an older one, last pushed `s3_age` seconds ago.
    /// Written through the pusher's `Store`: state.json and the metrics.
    fn write(&self, s3_age: f64) {
        let now = chainstead_backup::state::now();
        let newest = Accepted {
            name: "channel-20261201T230000Z-aaaa.backup".into(),
            sha256: "aa".repeat(32),
            size: 1234,
            since: now - 600.0,
        };
        let lane = |name: &str, age: f64| Lane {
            last_success: Some(now - age),
            last_name: Some(name.into()),
            ..Lane::default()
        };
        let mut targets = BTreeMap::new();
        targets.insert(
            "usb".to_string(),
            TargetState {
                kind: "directory".into(),
                channel: lane(&format!("{}.age", newest.name), 600.0),
                ..TargetState::default()
            },
        );
        targets.insert(
            "s3".to_string(),
            TargetState {
                kind: "s3".into(),
                channel: lane("channel-20261130T100000Z-bbbb.backup.age", s3_age),
                ..TargetState::default()
            },
        );
        let store = Store::open(&self.state_dir(), Some(self.metrics())).unwrap();
        store.update(|st| {
            st.channel = Some(newest);
            st.targets = targets;
        });
        assert!(self.metrics().exists(), "the pusher wrote no metrics");
    }

    fn manifest(&self, metrics_file: Option<PathBuf>) -> Manifest {
        let m = json!({
            "version": 1,
            "backup": {"unit": "chainstead-backup.service", "state_dir": self.state_dir(),
                       "metrics_file": metrics_file,
                       "targets": [{"name": "usb", "kind": "directory"}, {"name": "s3", "kind": "s3"}],
                       "max_age_secs": 3600}
        });
        Manifest::parse(&m.to_string()).unwrap()
    }
}

fn units() -> Fixed {
    let mut m = BTreeMap::new();
    m.insert(
        "chainstead-backup.service".to_string(),
        Fixed::text("active", "running", "success", 1_764_600_000),
    );
    Fixed(m)
}

fn components(r: &Report) -> Vec<String> {
    r.attention.iter().map(|f| f.component.clone()).collect()
}

#[test]
fn the_metrics_file_is_world_readable() {
    let scene = Scene::new();
    scene.write(600.0);
    let mode = std::fs::metadata(scene.metrics())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644, "node_exporter and operators read it");
    let state = chainstead_backup::state::state_path(&scene.state_dir());
    let mode = std::fs::metadata(state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "state.json stays the pusher's");
}

#[test]
fn readable_state_is_used_and_named() {
    let scene = Scene::new();
    scene.write(600.0);
    let r = report(&scene.manifest(Some(scene.metrics())), &units()).unwrap();
    let b = r.backup.as_ref().unwrap();
    assert_eq!(b.data_source.as_deref(), Some("state"));
    assert!(b.state_error.is_none());
    assert!(b.channel_version.is_some());
    assert!(r.ok, "{:?}", r.attention);
}

#[test]
fn unreadable_state_falls_back_to_the_metrics_healthy() {
    let scene = Scene::new();
    scene.write(600.0);
    let r = report_with(&scene.manifest(Some(scene.metrics())), &units(), denied).unwrap();
    let b = r.backup.as_ref().unwrap();
    assert_eq!(b.data_source.as_deref(), Some("metrics"));
    assert!(b.error.is_none(), "{:?}", b.error);
    assert!(
        b.state_error.as_deref().unwrap().contains("state.json"),
        "{:?}",
        b.state_error
    );
    assert!(!b.source_failing);
    let usb = &b.targets[0];
    assert_eq!(usb.name, "usb");
    assert!(usb.current && !usb.stale);
    let age = usb.age_secs.unwrap();
    assert!((590.0..700.0).contains(&age), "{age}");
    let s3 = &b.targets[1];
    assert!(!s3.current && !s3.stale, "behind within the limit");
    assert!(r.ok, "{:?}", r.attention);
    assert_eq!(exit_of(&r), Exit::Success);

    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["backup"]["data_source"], "metrics");
    assert_eq!(v["backup"]["targets"][0]["current"], true);
    let text = chainstead_cli::status::render::text(
        &r,
        chainstead_cli::status::render::Style { color: false },
    );
    assert!(text.contains("from the pusher's metrics"), "{text}");
}

#[test]
fn unreadable_state_falls_back_to_the_metrics_stale() {
    let scene = Scene::new();
    scene.write(3.0 * 3600.0);
    let r = report_with(&scene.manifest(Some(scene.metrics())), &units(), denied).unwrap();
    let b = r.backup.as_ref().unwrap();
    assert_eq!(b.data_source.as_deref(), Some("metrics"));
    let s3 = &b.targets[1];
    assert!(!s3.current && s3.stale);
    assert_eq!(components(&r), ["backup.s3"], "{:?}", r.attention);
    assert!(
        r.attention[0].message.contains("3.0 h"),
        "{:?}",
        r.attention
    );
    assert_eq!(exit_of(&r), Exit::Failure);
}

#[test]
fn neither_readable_names_the_paths_and_the_fix() {
    let scene = Scene::new();
    // No pusher run yet: no metrics file.
    let r = report_with(&scene.manifest(Some(scene.metrics())), &units(), denied).unwrap();
    let b = r.backup.as_ref().unwrap();
    assert!(b.data_source.is_none());
    assert!(b.targets.is_empty());
    assert_eq!(components(&r), ["backup"], "{:?}", r.attention);
    let msg = &r.attention[0].message;
    for needle in [
        "state.json",
        "chainstead-backup.prom",
        "ermission denied",
        "sudo chainstead status",
    ] {
        assert!(msg.contains(needle), "{needle} missing in {msg}");
    }
    assert_eq!(exit_of(&r), Exit::Failure);

    // No metrics file configured at all.
    let r = report_with(&scene.manifest(None), &units(), denied).unwrap();
    assert_eq!(components(&r), ["backup"], "{:?}", r.attention);
    let msg = &r.attention[0].message;
    for needle in ["state.json", "no metrics file", "sudo chainstead status"] {
        assert!(msg.contains(needle), "{needle} missing in {msg}");
    }
}

#[test]
fn other_state_errors_do_not_fall_back() {
    let scene = Scene::new();
    scene.write(600.0);
    std::fs::write(
        chainstead_backup::state::state_path(&scene.state_dir()),
        "{",
    )
    .unwrap();
    let r = report(&scene.manifest(Some(scene.metrics())), &units()).unwrap();
    let b = r.backup.as_ref().unwrap();
    assert!(b.data_source.is_none());
    assert!(
        b.error.as_deref().unwrap().contains("failed to parse"),
        "{:?}",
        b.error
    );
    assert_eq!(exit_of(&r), Exit::Failure);
}

/// A real mode-000 state.json (only meaningful when not root).
#[test]
fn a_mode_000_state_file_falls_back_when_not_root() {
    let scene = Scene::new();
    scene.write(600.0);
    let state = chainstead_backup::state::state_path(&scene.state_dir());
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&state).is_ok() {
        eprintln!("skipped: this user ignores file modes (root); the seam tests cover it");
        return;
    }
    let r = report(&scene.manifest(Some(scene.metrics())), &units()).unwrap();
    let b = r.backup.as_ref().unwrap();
    assert_eq!(b.data_source.as_deref(), Some("metrics"));
    assert!(r.ok, "{:?}", r.attention);
}
