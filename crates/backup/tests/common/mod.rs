//! Helpers shared by the integration tests: LND's write emulated exactly,
//! the pusher as a child process, manifests in temp dirs, target readers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod bao;
pub mod servers;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chainstead_testkit::ChildGuard;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chainstead-backup"))
}

/// LND's `chanbackup.MultiFile.UpdateAndSwap` (lnd `chanbackup/backupfile.go`):
/// write `temp-dont-use.backup` in the same directory, fsync, rename over
/// `channel.backup`.
pub struct Lnd {
    pub dir: PathBuf,
}

impl Lnd {
    pub fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("channel.backup")
    }

    pub fn write(&self, data: &[u8]) {
        let tmp = self.dir.join("temp-dont-use.backup");
        let _ = std::fs::remove_file(&tmp);
        let mut f = File::create(&tmp).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
        drop(f);
        std::fs::rename(&tmp, self.path()).unwrap();
    }

    /// Not LND's way: overwrite in place (a broken writer or a bad restore).
    pub fn clobber(&self, data: &[u8]) {
        std::fs::write(self.path(), data).unwrap();
    }
}

/// A plausible multi backup: 24-byte "nonce", then ciphertext-like bytes
/// (45 bytes for no channels, about 150 more per channel).
pub fn payload(i: u64) -> Vec<u8> {
    let channels = (i % 5) as usize;
    let len = 45 + channels * 150;
    let mut out = Vec::with_capacity(len);
    let mut block = Sha256::digest(i.to_le_bytes()).to_vec();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(&block).to_vec();
    }
    out.truncate(len);
    out
}

pub fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A manifest: LND's file under `<dir>/lnd`, state in `<dir>/state`,
/// metrics in `dir`, a reconcile every 2 s, and `targets`.
pub fn base(dir: &Path, targets: Value) -> Value {
    json!({
        "version": 1,
        "channel_backup": dir.join("lnd/channel.backup"),
        "state_dir": dir.join("state"),
        "metrics_dir": dir,
        "reconcile_interval_secs": 2,
        "targets": targets,
    })
}

/// [`base`] with one directory target `usb` at `<dir>/usb`, its folder
/// created; returns the folder and the manifest.
pub fn usb_base(dir: &Path) -> (PathBuf, Value) {
    let usb = dir.join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let m = base(
        dir,
        json!([{"kind": "directory", "name": "usb", "path": usb}]),
    );
    (usb, m)
}

/// [`usb_base`] written; returns the folder and the manifest's path.
pub fn usb_manifest(dir: &Path) -> (PathBuf, PathBuf) {
    let (usb, m) = usb_base(dir);
    (usb, write_manifest(dir, &m))
}

pub fn write_manifest(dir: &Path, v: &Value) -> PathBuf {
    let p = dir.join("manifest.json");
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

/// Starts `watch`; its log goes to `<dir>/pusher.log` (appended).
pub fn spawn_watch(manifest: &Path, log_dir: &Path) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("pusher.log"))
        .unwrap();
    let child = Command::new(bin())
        .args(["watch", "--manifest"])
        .arg(manifest)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    ChildGuard::new(child)
}

pub fn run(args: &[&str], manifest: &Path) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(&args[..1])
        .arg("--manifest")
        .arg(manifest)
        .args(&args[1..]);
    cmd.output().unwrap()
}

/// `restore --from <from> <extra...> --out <out>`, which must succeed.
pub fn restore_ok(manifest: &Path, from: &str, extra: &[&str], out: &Path) -> Output {
    let out = out.to_str().unwrap();
    let o = run(
        &[&["restore", "--from", from], extra, &["--out", out]].concat(),
        manifest,
    );
    assert!(o.status.success(), "{}", text(&o));
    o
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn status_json(manifest: &Path) -> Value {
    let o = run(&["status", "--json"], manifest);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// `latest` of a directory-like target (a directory target, or the folder
/// rclone serves) and the content it names.
pub fn dir_latest(dir: &Path) -> Option<(String, Vec<u8>)> {
    let name = std::fs::read_to_string(dir.join("latest")).ok()?;
    let name = name.trim().to_string();
    let data = std::fs::read(dir.join(&name)).ok()?;
    Some((name, data))
}

/// Every version file in `dir` matches the hash in its name (no torn copy).
pub fn assert_all_complete(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with("channel.backup.") || n.ends_with(".age") {
            continue;
        }
        // Retention may delete an old version between listing and reading.
        let Ok(data) = std::fs::read(e.path()) else {
            continue;
        };
        let h = n.rsplit('.').next().unwrap();
        assert!(
            sha_hex(&data).starts_with(h),
            "{} does not match its name ({} bytes)",
            e.path().display(),
            data.len()
        );
    }
}

pub fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("pusher.log")).unwrap_or_default()
}

/// Watches a `latest` pointer from a thread and records every value seen,
/// to prove it only ever moves forward.
pub struct LatestWatcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl LatestWatcher {
    pub fn start(latest: PathBuf) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen: Vec<String> = Vec::new();
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(v) = std::fs::read_to_string(&latest) {
                    let v = v.trim().to_string();
                    if !v.is_empty() && seen.last() != Some(&v) {
                        seen.push(v);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and asserts the pointer never went backwards.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = self.handle.take().unwrap().join().unwrap();
        for w in seen.windows(2) {
            assert!(w[1] > w[0], "latest went backwards: {} -> {}", w[0], w[1]);
        }
        seen
    }
}
