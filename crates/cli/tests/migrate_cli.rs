//! The `chainstead migrate-nix-bitcoin` command line: its exit statuses
//! (docs/exit-codes.md) and the running-LND guard against the machine's
//! real /proc, with a stand-in process whose command name is `lnd`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::sync::Mutex;

use support::{Node, NETWORK};

/// The tests here see the machine's real process list, where one of them
/// starts a stand-in `lnd`: they take turns.
static REAL_PROC: Mutex<()> = Mutex::new(());

fn run(node: &Node, extra: &[&str]) -> (i32, String, String) {
    let me = Node::me();
    let fast = node.fast();
    let arg = |p: std::path::PathBuf| p.display().to_string();
    let mut args = vec![
        "migrate-nix-bitcoin".to_owned(),
        format!("--network={NETWORK}"),
        format!("--nix-bitcoin-bitcoind={}", arg(node.nb_bitcoind())),
        format!("--nix-bitcoin-fulcrum={}", arg(node.nb_fulcrum())),
        format!("--nix-bitcoin-lnd={}", arg(node.nb_lnd())),
        format!("--nix-bitcoin-secrets={}", arg(node.nb_secrets())),
        format!("--bitcoind-dir={}", arg(fast.join("bitcoind"))),
        format!("--fulcrum-dir={}", arg(fast.join("fulcrum"))),
        format!("--lnd-dir={}", arg(fast.join("lnd"))),
        format!("--lnd-seed-file={}", arg(fast.join("lnd-seed/seed"))),
        format!(
            "--lnd-wallet-password-file={}",
            arg(fast.join("lnd-wallet-password"))
        ),
    ];
    for flag in ["--bitcoind-user", "--fulcrum-user", "--lnd-user"] {
        args.push(format!("{flag}={}", me.name));
    }
    let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
        .unwrap()
        .unwrap();
    args.push(format!("--macaroon-group={}", group.name));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args(&args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn it_migrates_then_has_nothing_to_do() {
    let _turn = REAL_PROC.lock().unwrap_or_else(|e| e.into_inner());
    let node = Node::new();
    let (code, stdout, stderr) = run(&node, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("would rename") && stdout.contains("dry run"),
        "{stdout}"
    );
    assert!(
        node.nb_lnd().join("graph").is_dir(),
        "a dry run moves nothing"
    );

    let (code, stdout, stderr) = run(&node, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("renamed, never copied"), "{stdout}");
    assert!(stdout.contains("migrated in"), "{stdout}");
    assert!(
        !stdout.contains("abandon") && !stderr.contains("abandon"),
        "no seed word in any output"
    );
    assert!(
        !stdout.contains("correct horse") && !stderr.contains("correct horse"),
        "nor the password"
    );

    let (code, stdout, _) = run(&node, &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to migrate"), "{stdout}");
}

#[test]
fn a_running_lnd_exits_1_and_nothing_moves() {
    let _turn = REAL_PROC.lock().unwrap_or_else(|e| e.into_inner());
    let node = Node::new();
    // A process whose command name is `lnd`: a copy of sleep under that name.
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("lnd");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let mut lnd = Command::new(&fake)
        .arg("30")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let before = node.snapshot();
    let (code, _, stderr) = run(&node, &[]);
    lnd.kill().unwrap();
    lnd.wait().unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("lnd is running"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(node.snapshot(), before);
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args(["migrate-nix-bitcoin", "--network=regtest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bitcoind-dir"));

    // LND without the place for its password.
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args([
            "migrate-nix-bitcoin",
            "--network=regtest",
            "--lnd-dir=/tmp/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Relative paths, every one named; and a network LND has no directory for.
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args([
            "migrate-nix-bitcoin",
            "--network=regtest",
            "--bitcoind-dir=var/lib/chainstead/bitcoind",
            "--nix-bitcoin-fulcrum=/var/lib/../lib/fulcrum",
            "--fulcrum-dir=/var/lib/chainstead/fulcrum",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--bitcoind-dir: \"var/lib/chainstead/bitcoind\" must be an absolute path"),
        "{stderr}"
    );
    assert!(stderr.contains("--nix-bitcoin-fulcrum:"), "{stderr}");
    assert!(
        stderr.contains("bad command line") && !stderr.contains("manifest"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args([
            "migrate-nix-bitcoin",
            "--network=testnet3",
            "--bitcoind-dir=/tmp/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("testnet3"));

    // A user chainstead's configuration has not declared yet.
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args([
            "migrate-nix-bitcoin",
            "--network=regtest",
            "--bitcoind-dir=/tmp/x",
            "--bitcoind-user=no-such-user-chainstead",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("user no-such-user-chainstead does not exist"));
}
