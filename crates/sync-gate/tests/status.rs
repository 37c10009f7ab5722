//! What `wait` tells the operator: the `STATUS=` lines it sends to the
//! notification socket (read here from a datagram socket the test binds,
//! as systemd's `NOTIFY_SOCKET` is) and its journal lines (stderr). The
//! bitcoind behind it is a replay (see tests/support/mod.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chainstead_testkit::{ChildGuard, ReplayServer};
use serde_json::json;
use support::{chain_info, rpc_ok, Btc, FakeBitcoind, Scene};

const BIN: &str = env!("CARGO_BIN_EXE_chainstead-sync-gate");

/// The receiving end of `NOTIFY_SOCKET`.
struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self { sock, path }
    }

    /// STATUS= values received until `done` holds for the list or
    /// `timeout` passes.
    fn statuses_until(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let start = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while start.elapsed() < timeout && !done(&seen) {
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                if let Some(s) = line.strip_prefix("STATUS=") {
                    seen.push(s.to_string());
                }
            }
        }
        seen
    }
}

/// `wait` on `manifest`, sending to `notify`, its stderr into `log`.
fn spawn_wait(manifest: &Path, notify: &Notify, log: &Path) -> ChildGuard {
    ChildGuard::new(
        Command::new(BIN)
            .args(["wait", "--manifest"])
            .arg(manifest)
            .env("NOTIFY_SOCKET", &notify.path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A request that hangs shows in STATUS as waiting for an answer, with how
/// long, before the timeout ends it; not as the previous state.
#[test]
fn hanging_request_shows_in_status() {
    let scene = Scene::new();
    let btc = FakeBitcoind::start(Btc::Silence);
    let m = scene.write_manifest(&scene.bitcoind_manifest(
        &btc.url(),
        "main",
        json!({"timeout_secs": 8, "fast_secs": 0.2}),
    ));
    let notify = Notify::bind(scene.dir.path());
    let _child = spawn_wait(&m, &notify, &scene.path("log"));
    let timed_out = |s: &String| s.contains("no complete reply");
    let seen = notify.statuses_until(Duration::from_secs(60), |seen| seen.iter().any(timed_out));
    let first_timeout = seen
        .iter()
        .position(timed_out)
        .unwrap_or_else(|| panic!("the request never timed out: {seen:?}"));
    let waiting = format!(
        "bitcoind: waiting for an answer from bitcoind at {} for ",
        btc.url()
    );
    let before: Vec<&String> = seen[..first_timeout]
        .iter()
        .filter(|s| s.starts_with(&waiting))
        .collect();
    assert!(
        before.len() >= 2,
        "no \"waiting for an answer\" status during the hanging request: {seen:?}"
    );
    assert!(
        before.iter().all(|s| s.ends_with("(gives up after 8s)")),
        "{before:?}"
    );
    // It counts up: the last one says longer than the first.
    let secs = |s: &str| -> u64 {
        s[waiting.len()..]
            .split('s')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        secs(before[before.len() - 1]) > secs(before[0]),
        "{before:?}"
    );
}

/// "waiting for the cookie" and then "connection refused" are two phases,
/// both in the journal.
#[test]
fn refused_after_waiting_for_cookie_is_logged() {
    let scene = Scene::new();
    std::fs::remove_file(scene.cookie()).unwrap();
    let port = chainstead_testkit::free_port();
    let m = scene.write_manifest(&scene.bitcoind_manifest(
        &format!("http://127.0.0.1:{port}"),
        "main",
        json!({"fast_secs": 0.2}),
    ));
    let notify = Notify::bind(scene.dir.path());
    let log = scene.path("log");
    let _child = spawn_wait(&m, &notify, &log);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the cookie line", Duration::from_secs(30), || {
        read().contains("waiting for bitcoind's cookie file")
    });
    std::fs::write(scene.cookie(), support::COOKIE).unwrap();
    // The STATUS shows it at the next poll; the journal must too.
    notify.statuses_until(Duration::from_secs(30), |seen| {
        seen.iter().any(|s| s.contains("is not answering"))
    });
    wait_until(
        "the refused line in the journal",
        Duration::from_secs(10),
        || read().contains("is not answering"),
    );
    let text = read();
    assert!(
        text.contains("Connection refused") || text.contains("connection refused"),
        "{text}"
    );
}

/// Back in IBD after the release, STATUS shows no estimate from the
/// readings before (it said `~1s left` while the blocks stood still).
#[test]
fn back_in_ibd_has_no_stale_estimate() {
    let scene = Scene::new();
    let regressed = Arc::new(AtomicBool::new(false));
    let first: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let (r, f) = (regressed.clone(), first.clone());
    // 40 blocks at 20 blocks/s from the first request, then synced; once
    // `regressed`, back in IBD with the blocks standing still.
    let srv = ReplayServer::start(move |req| {
        if r.load(Ordering::SeqCst) {
            return rpc_ok(req, chain_info("main", 1000, 1100, true, 0.99));
        }
        let t = f.get_or_init(Instant::now).elapsed();
        let behind = 40u64.saturating_sub((t.as_secs_f64() * 20.0) as u64);
        rpc_ok(
            req,
            chain_info("main", 1000 - behind, 1000, behind > 0, 0.9999),
        )
    });
    let m = scene.write_manifest(&scene.bitcoind_manifest(
        &srv.url(),
        "main",
        json!({"fast_secs": 0.2, "monitor_secs": 0.3}),
    ));
    let notify = Notify::bind(scene.dir.path());
    let _child = spawn_wait(&m, &notify, &scene.path("log"));
    wait_until("the flag", Duration::from_secs(60), || {
        scene.flag().exists()
    });
    regressed.store(true, Ordering::SeqCst);
    let behind = |s: &String| s.contains("block 1000/1100");
    let seen = notify.statuses_until(Duration::from_secs(30), |seen| {
        seen.iter().filter(|s| behind(s)).count() >= 4
    });
    let after: Vec<&String> = seen.iter().filter(|s| behind(s)).collect();
    assert!(after.len() >= 4, "{seen:?}");
    assert!(
        after.iter().all(|s| !s.contains(" left")),
        "an estimate from before the regression: {after:?}"
    );
    assert!(
        after.iter().all(|s| s.contains("released earlier")),
        "{after:?}"
    );
}
