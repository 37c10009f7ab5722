use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chainstead_common::shutdown::Shutdown;
use chrono::Utc;

use super::*;
use crate::channel;
use crate::version;

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

/// A second process reads LND's rewrite `seed` and pushes it; returns the
/// name it gave the content, and the content.
async fn another_process_pushes(dir: &Path, seed: u8) -> (String, Vec<u8>) {
    let newer = lnd_writes(dir, seed);
    let other = engine(dir);
    let Ingest::New(name) = push_once(other, Kind::Channel, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("the second process read nothing new");
    };
    (name, newer)
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
    let (other_name, newer) = another_process_pushes(t.path(), 2).await;
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
    let (other_name, newer) = another_process_pushes(t.path(), 2).await;
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
