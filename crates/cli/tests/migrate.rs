//! `chainstead migrate-nix-bitcoin` on a nix-bitcoin-shaped tree (see
//! support/mod.rs): the data is adopted by renames (same inodes), nothing
//! changes when it refuses, and a run cut short anywhere is finished by the
//! next one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use chainstead_cli::migrate::{self, apply, plan, Env};
use support::{seed_words, Node, NETWORK, PASSWORD};

/// No process list: the tests' own machine may run anything.
fn quiet() -> (tempfile::TempDir, Env) {
    let proc = tempfile::tempdir().unwrap();
    let env = Env {
        proc_root: proc.path().to_owned(),
    };
    (proc, env)
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn everything_is_adopted_by_renames() {
    let node = Node::new();
    let (_p, env) = quiet();
    let blk = node.inode("var/lib/bitcoind/regtest/blocks/blk00000.dat");
    let headers = node.inode("var/lib/fulcrum/headers");
    let channel_db = node.inode(&format!("var/lib/lnd/graph/{NETWORK}/channel.db"));
    let wallet = node.inode(&format!("var/lib/lnd/chain/bitcoin/{NETWORK}/wallet.db"));

    let out = migrate::migrate(&node.request(), &env, false).unwrap();
    assert!(out.applied > 0);

    let fast = node.fast();
    // bitcoind: the same block file, in the datadir (blocksDir = null).
    assert_eq!(
        node.inode("var/lib/chainstead/bitcoind/regtest/blocks/blk00000.dat"),
        blk
    );
    assert!(fast.join("bitcoind/regtest/chainstate/000005.ldb").exists());
    assert!(
        !fast.join("bitcoind/bitcoin.conf").exists(),
        "nix-bitcoin's conf is dropped"
    );
    assert!(!node.nb_bitcoind().exists());
    assert!(fast.join("bitcoind").join(plan::MARKER).exists());
    // Fulcrum: the index directly in its dataDir (dbDir = dataDir), no conf.
    assert_eq!(node.inode("var/lib/chainstead/fulcrum/headers"), headers);
    assert!(fast.join("fulcrum/meta/CURRENT").exists());
    assert!(
        !fast.join("fulcrum/fulcrum.conf").exists(),
        "it held the RPC password"
    );
    assert!(!node.nb_fulcrum().exists());

    // LND: chain/ and graph/ below data/, the same files.
    let data = fast.join("lnd/data");
    assert_eq!(
        node.inode(&format!(
            "var/lib/chainstead/lnd/data/graph/{NETWORK}/channel.db"
        )),
        channel_db
    );
    assert_eq!(
        node.inode(&format!(
            "var/lib/chainstead/lnd/data/chain/bitcoin/{NETWORK}/wallet.db"
        )),
        wallet
    );
    assert!(data
        .join(format!("chain/bitcoin/{NETWORK}/channel.backup"))
        .exists());
    assert!(data.join(plan::MARKER).exists());
    assert_eq!(mode(&fast.join("lnd")), 0o711);
    assert_eq!(mode(&data), 0o700);
    // Macaroons in chainstead's directory, with LND's own modes.
    for (name, m) in [("admin", 0o640), ("readonly", 0o644), ("invoice", 0o644)] {
        let p = fast.join(format!("lnd/macaroons/{name}.macaroon"));
        assert_eq!(fs::read(&p).unwrap(), name.as_bytes());
        assert_eq!(mode(&p), m, "{name}");
        assert!(!data
            .join(format!("chain/bitcoin/{NETWORK}/{name}.macaroon"))
            .exists());
    }
    // The storage setup adds the setgid bit (its tmpfiles rule is 2750).
    assert_eq!(mode(&fast.join("lnd/macaroons")), 0o750);
    // The TLS pair and the password copied; the seed in chainstead's form.
    assert_eq!(
        fs::read(fast.join("lnd/tls.cert")).unwrap(),
        b"-----BEGIN CERTIFICATE-----\n"
    );
    assert_eq!(mode(&fast.join("lnd/tls.cert")), 0o644);
    assert_eq!(mode(&fast.join("lnd/tls.key")), 0o600);
    assert_eq!(
        fs::read(fast.join("lnd-wallet-password")).unwrap(),
        PASSWORD
    );
    assert_eq!(mode(&fast.join("lnd-wallet-password")), 0o400);
    let seed = fast.join("lnd-seed/seed");
    assert_eq!(
        fs::read_to_string(&seed).unwrap(),
        format!("{}\n", seed_words().join(" "))
    );
    assert_eq!(mode(&seed), 0o400);
    assert_eq!(mode(&fast.join("lnd-seed")), 0o700);
    // What nix-bitcoin leaves: tombstones where its LND would look, no
    // credential-bearing config, no second seed copy.
    for d in ["chain", "graph"] {
        let t = node.nb_lnd().join(d);
        assert!(t.is_file(), "{d} must be a file now");
        assert!(fs::read_to_string(&t)
            .unwrap()
            .starts_with(plan::TOMBSTONE_HEADER));
    }
    assert!(!node.nb_lnd().join("lnd.conf").exists());
    assert!(!node.nb_lnd().join("lnd-seed-mnemonic").exists());
    // The secrets directory is left for the operator to shred.
    assert!(node.nb_secrets().join("lnd-wallet-password").exists());
    // Exactly one channel.db in the whole tree.
    let copies: Vec<_> = node
        .snapshot()
        .into_keys()
        .filter(|k| k.ends_with("channel.db"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(
        out.report.contains("renamed, never copied"),
        "{}",
        out.report
    );
}

#[test]
fn a_second_run_has_nothing_to_do() {
    let node = Node::new();
    let (_p, env) = quiet();
    migrate::migrate(&node.request(), &env, false).unwrap();
    let before = node.snapshot();
    let again = migrate::migrate(&node.request(), &env, false).unwrap();
    assert_eq!(again.applied, 0);
    assert!(
        again.report.contains("nothing to migrate"),
        "{}",
        again.report
    );
    assert!(again.report.contains("already adopted"), "{}", again.report);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn a_dry_run_lists_the_steps_and_changes_nothing() {
    let node = Node::new();
    let (_p, env) = quiet();
    let before = node.snapshot();
    let out = migrate::migrate(&node.request(), &env, true).unwrap();
    assert_eq!(out.applied, 0);
    assert!(out.report.contains("would rename"), "{}", out.report);
    assert!(
        out.report.contains("channel.db") || out.report.contains("graph"),
        "{}",
        out.report
    );
    assert_eq!(node.snapshot(), before);
}

#[test]
fn an_open_channel_db_stops_everything() {
    let node = Node::new();
    let (_p, env) = quiet();
    // What a running LND holds: bbolt's exclusive flock on the file.
    let db = fs::File::open(node.nb_lnd().join(format!("graph/{NETWORK}/channel.db"))).unwrap();
    let lock = nix::fcntl::Flock::lock(db, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let before = node.snapshot();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("channel.db is locked"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        node.snapshot(),
        before,
        "bitcoind's and Fulcrum's data must not move either"
    );
    drop(lock);
    migrate::migrate(&node.request(), &env, false).unwrap();
}

#[test]
fn a_running_daemon_stops_everything() {
    let node = Node::new();
    let proc = tempfile::tempdir().unwrap();
    fs::create_dir(proc.path().join("4242")).unwrap();
    fs::write(proc.path().join("4242/comm"), "lnd\n").unwrap();
    let env = Env {
        proc_root: proc.path().to_owned(),
    };
    let before = node.snapshot();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("lnd is running (pid 4242)"), "{err}");
    assert_eq!(node.snapshot(), before);
    // A dry run says the same: it checks what the real run would.
    assert!(migrate::migrate(&node.request(), &env, true).is_err());
}

#[test]
fn data_on_both_sides_is_refused_with_every_conflict_named() {
    let node = Node::new();
    let (_p, env) = quiet();
    // chainstead's bitcoind and LND started fresh before the migration.
    let fast = node.fast();
    fs::create_dir_all(fast.join("bitcoind/regtest/blocks")).unwrap();
    fs::write(fast.join("bitcoind/regtest/blocks/blk00000.dat"), b"fresh").unwrap();
    fs::create_dir_all(fast.join(format!("lnd/data/graph/{NETWORK}"))).unwrap();
    fs::write(
        fast.join(format!("lnd/data/graph/{NETWORK}/channel.db")),
        b"new",
    )
    .unwrap();
    let before = node.snapshot();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(
        err.contains("bitcoind:") && err.contains("regtest both exist"),
        "{err}"
    );
    assert!(
        err.contains("lnd:") && err.contains("a wallet made before the migration"),
        "{err}"
    );
    assert_eq!(node.snapshot(), before);
}

#[test]
fn empty_destination_directories_made_by_the_storage_setup_are_filled() {
    let node = Node::new();
    let (_p, env) = quiet();
    let fast = node.fast();
    for d in ["bitcoind", "fulcrum", "lnd/macaroons"] {
        fs::create_dir_all(fast.join(d)).unwrap();
    }
    // The backup pusher makes the directory of channel.backup to watch it;
    // a tier's setup may make a datadir's subdirectory.
    fs::create_dir_all(fast.join(format!("lnd/data/chain/bitcoin/{NETWORK}"))).unwrap();
    fs::create_dir_all(fast.join("bitcoind/regtest/blocks")).unwrap();
    let channel_db = node.inode(&format!("var/lib/lnd/graph/{NETWORK}/channel.db"));
    migrate::migrate(&node.request(), &env, false).unwrap();
    assert!(fast.join("bitcoind/regtest/blocks/blk00000.dat").exists());
    assert!(fast.join("fulcrum/headers").exists());
    assert!(fast.join("lnd/macaroons/admin.macaroon").exists());
    assert!(!node.nb_bitcoind().exists() && !node.nb_fulcrum().exists());
    assert_eq!(
        node.inode(&format!(
            "var/lib/chainstead/lnd/data/graph/{NETWORK}/channel.db"
        )),
        channel_db
    );
    assert!(fast
        .join(format!("lnd/data/chain/bitcoin/{NETWORK}/wallet.db"))
        .exists());
}

#[test]
fn a_file_in_a_destination_made_ahead_is_a_conflict() {
    let node = Node::new();
    let (_p, env) = quiet();
    let chain = node
        .fast()
        .join(format!("lnd/data/chain/bitcoin/{NETWORK}"));
    fs::create_dir_all(&chain).unwrap();
    fs::write(chain.join("channel.backup"), b"a fresh node's").unwrap();
    let before = node.snapshot();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("both exist"), "{err}");
    assert_eq!(node.snapshot(), before);
}

#[test]
fn chainsteads_own_changes_after_adoption_never_hold_the_daemons() {
    let node = Node::new();
    let (_p, env) = quiet();
    migrate::migrate(&node.request(), &env, false).unwrap();
    let fast = node.fast();
    // The password rotated, LND made a new certificate, and a nix-bitcoin
    // generation booted once: its preStart wrote a new seed, then stopped
    // at the tombstone.
    fs::set_permissions(
        fast.join("lnd-wallet-password"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::write(fast.join("lnd-wallet-password"), b"rotated").unwrap();
    fs::write(fast.join("lnd/tls.cert"), b"a new certificate").unwrap();
    fs::write(
        node.nb_lnd().join("lnd-seed-mnemonic"),
        seed_words()[1..].join(" ") + " zoo",
    )
    .unwrap();
    let out = migrate::migrate(&node.request(), &env, false).unwrap();
    assert_eq!(out.applied, 0, "{}", out.report);
    assert!(
        out.report.contains("appeared after the migration"),
        "{}",
        out.report
    );
    assert_eq!(
        fs::read(fast.join("lnd-wallet-password")).unwrap(),
        b"rotated"
    );
}

#[test]
fn lnd_data_back_at_the_old_path_after_adoption_is_refused() {
    let node = Node::new();
    let (_p, env) = quiet();
    migrate::migrate(&node.request(), &env, false).unwrap();
    // Someone replaced a tombstone by a directory and an LND ran there.
    let graph = node.nb_lnd().join("graph");
    fs::set_permissions(&graph, fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(&graph).unwrap();
    fs::create_dir_all(graph.join(NETWORK)).unwrap();
    fs::write(graph.join(NETWORK).join("channel.db"), b"another").unwrap();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("holds LND data again (graph)"), "{err}");
}

#[test]
fn the_watchtower_comes_from_lnds_default_directory() {
    // nix-bitcoin sets datadir but no lnddir, so a tower's data is below
    // LND's default lnddir, the lnd user's home: /var/lib/lnd/.lnd.
    let node = Node::new();
    let (_p, env) = quiet();
    let tower = node
        .nb_lnd()
        .join(format!(".lnd/data/watchtower/bitcoin/{NETWORK}"));
    fs::create_dir_all(&tower).unwrap();
    fs::write(tower.join("watchtower.db"), b"tower").unwrap();
    let ino = node.inode(&format!(
        "var/lib/lnd/.lnd/data/watchtower/bitcoin/{NETWORK}/watchtower.db"
    ));
    migrate::migrate(&node.request(), &env, false).unwrap();
    let moved = format!("var/lib/chainstead/lnd/data/watchtower/bitcoin/{NETWORK}/watchtower.db");
    assert_eq!(node.inode(&moved), ino);
    assert!(!tower.exists());

    // A towerdir set by hand in the datadir as well: which one is current
    // is for the operator to say.
    let node = Node::new();
    for dir in [".lnd/data/watchtower", "watchtower"] {
        fs::create_dir_all(node.nb_lnd().join(dir)).unwrap();
    }
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("hold watchtower data"), "{err}");
}

/// A crash after any number of steps leaves a state the next run finishes,
/// to the same end state as an uninterrupted run.
#[test]
fn a_run_cut_short_after_any_step_is_finished_by_the_next() {
    let reference = Node::new();
    let (_p, env) = quiet();
    let steps = plan::plan(&reference.request()).unwrap();
    let count: usize = steps.parts.iter().map(|p| p.steps.len()).sum();
    migrate::migrate(&reference.request(), &env, false).unwrap();
    let want = reference.shape();
    assert!(count > 10, "the plan has {count} steps");

    for cut in 0..count {
        let node = Node::new();
        let plan = plan::plan(&node.request()).unwrap();
        for s in plan.parts.iter().flat_map(|p| &p.steps).take(cut) {
            apply::step(s).unwrap();
        }
        migrate::migrate(&node.request(), &env, false)
            .unwrap_or_else(|e| panic!("after {cut} steps: {e:#}"));
        // Paths differ by the temp root; compare relative shapes.
        let got = node.shape();
        let diff: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, v)| format!("want {k}: {v:?}, got {:?}", got.get(k)))
            .chain(
                got.keys()
                    .filter(|k| !want.contains_key(*k))
                    .map(|k| format!("extra {k}")),
            )
            .collect();
        assert!(
            diff.is_empty(),
            "after a cut at step {cut}:\n{}",
            diff.join("\n")
        );
        let again = migrate::migrate(&node.request(), &env, false).unwrap();
        assert_eq!(
            again.applied, 0,
            "after a cut at step {cut}: {}",
            again.report
        );
    }
}

#[test]
fn the_older_json_seed_is_stored_in_chainsteads_form() {
    let node = Node::new();
    let (_p, env) = quiet();
    let seed = node.nb_lnd().join("lnd-seed-mnemonic");
    fs::set_permissions(&seed, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        &seed,
        format!("{}\n", serde_json::to_string(&seed_words()).unwrap()),
    )
    .unwrap();
    migrate::migrate(&node.request(), &env, false).unwrap();
    assert_eq!(
        fs::read_to_string(node.fast().join("lnd-seed/seed")).unwrap(),
        format!("{}\n", seed_words().join(" "))
    );
}

#[test]
fn a_damaged_seed_is_refused_and_kept() {
    let node = Node::new();
    let (_p, env) = quiet();
    let seed = node.nb_lnd().join("lnd-seed-mnemonic");
    fs::set_permissions(&seed, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&seed, seed_words()[..23].join(" ")).unwrap();
    let before = node.snapshot();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("23 words"), "{err}");
    assert!(
        !err.contains("abandon"),
        "the error must not show the seed: {err}"
    );
    assert_eq!(node.snapshot(), before);
}

#[test]
fn the_wrong_network_is_named_with_the_ones_found() {
    let node = Node::new();
    let (_p, env) = quiet();
    let mut req = node.request();
    req.network = "mainnet".into();
    req.bitcoind = None;
    req.fulcrum = None;
    let err = format!("{:#}", migrate::migrate(&req, &env, false).unwrap_err());
    assert!(err.contains("networks found: regtest"), "{err}");
}

#[test]
fn nix_bitcoins_own_paths_can_stay() {
    // The fast tier at /var/lib: chainstead's defaults are nix-bitcoin's
    // directories, so bitcoind and Fulcrum stay; LND's data goes one level
    // down, into data/.
    let node = Node::new();
    let (_p, env) = quiet();
    let blk = node.inode("var/lib/bitcoind/regtest/blocks/blk00000.dat");
    let channel_db = node.inode(&format!("var/lib/lnd/graph/{NETWORK}/channel.db"));
    let req = node.request_into(&node.path("var/lib"));
    migrate::migrate(&req, &env, false).unwrap();
    assert_eq!(
        node.inode("var/lib/bitcoind/regtest/blocks/blk00000.dat"),
        blk
    );
    assert!(!node.nb_bitcoind().join("bitcoin.conf").exists());
    assert!(!node.nb_fulcrum().join("fulcrum.conf").exists());
    assert!(node.nb_fulcrum().join("headers").exists());
    assert_eq!(
        node.inode(&format!("var/lib/lnd/data/graph/{NETWORK}/channel.db")),
        channel_db
    );
    assert!(
        node.nb_lnd().join("chain").is_file(),
        "the tombstone sits beside data/"
    );
    let again = migrate::migrate(&req, &env, false).unwrap();
    assert_eq!(again.applied, 0, "{}", again.report);
}

#[test]
fn a_fresh_chainstead_node_has_nothing_to_adopt() {
    let node = Node::new();
    let (_p, env) = quiet();
    for d in [
        "var/lib/bitcoind",
        "var/lib/fulcrum",
        "var/lib/lnd",
        "etc/nix-bitcoin-secrets",
    ] {
        fs::remove_dir_all(node.path(d)).unwrap();
    }
    let out = migrate::migrate(&node.request(), &env, false).unwrap();
    assert_eq!(out.applied, 0);
    assert!(out.report.contains("nothing to adopt"), "{}", out.report);
    assert!(!node.fast().exists(), "nothing may be created");
}

#[test]
fn a_symlinked_datadir_is_refused_with_its_target() {
    let node = Node::new();
    let (_p, env) = quiet();
    let hdd = node.path("mnt/hdd/bitcoind");
    fs::create_dir_all(hdd.parent().unwrap()).unwrap();
    fs::rename(node.nb_bitcoind(), &hdd).unwrap();
    std::os::unix::fs::symlink(&hdd, node.nb_bitcoind()).unwrap();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(
        err.contains("is a symlink to") && err.contains("mnt/hdd/bitcoind"),
        "{err}"
    );
}

#[test]
fn a_missing_wallet_password_is_refused() {
    let node = Node::new();
    let (_p, env) = quiet();
    fs::remove_file(node.nb_secrets().join("lnd-wallet-password")).unwrap();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("cannot be unlocked"), "{err}");
}

#[test]
fn data_back_at_the_old_path_after_the_migration_is_refused() {
    let node = Node::new();
    let (_p, env) = quiet();
    migrate::migrate(&node.request(), &env, false).unwrap();
    // A nix-bitcoin generation booted again and its bitcoind started over.
    fs::create_dir_all(node.nb_bitcoind().join("regtest/blocks")).unwrap();
    fs::write(
        node.nb_bitcoind().join("regtest/blocks/blk00000.dat"),
        b"again",
    )
    .unwrap();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request(), &env, false).unwrap_err()
    );
    assert!(err.contains("holds data again"), "{err}");
}

#[test]
fn a_move_across_file_systems_is_refused() {
    // /dev/shm is a tmpfs on most Linux machines: another file system than
    // the temporary directory's, unless that is a tmpfs mount too.
    let node = Node::new();
    let (_p, env) = quiet();
    let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
        println!("SKIPPED: no /dev/shm to put a destination on another file system");
        return;
    };
    let same = migrate::guard::device_of(other.path()).unwrap()
        == migrate::guard::device_of(node.root.path()).unwrap();
    if same {
        println!("SKIPPED: /dev/shm and the temporary directory are one file system here");
        return;
    }
    let before = node.snapshot();
    let err = format!(
        "{:#}",
        migrate::migrate(&node.request_into(other.path()), &env, false).unwrap_err()
    );
    assert!(err.contains("different file systems"), "{err}");
    assert_eq!(node.snapshot(), before);
}
