//! A real Tor makes the onion services the module configures, and the
//! command reads their addresses.
//!
//! Tor runs on 127.0.0.1 in a temporary directory with `DisableNetwork 1`
//! and `SocksPort 0`: it opens no connection and listens nowhere. Onion
//! services are declared as nixpkgs' services.tor renders
//! `relay.onionServices.<name>` (HiddenServiceDir, then HiddenServicePort
//! `<virtual port> <addr>:<port>` and HiddenServiceVersion 3). Tor makes
//! each service's keys and `hostname` file at start, before it needs the
//! network, so they appear offline.
//!
//! NOT exercised (there is no Tor network here): publishing descriptors,
//! a client reaching the service through Tor, the SOCKS proxy, the control
//! port the daemons use for their own P2P onion services.
//!
//! Ignored by default (it needs the `tor` binary); run it with
//! `cargo test -p chainstead-cli -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chainstead_cli::onion;
use chainstead_testkit::{require_binary, ChildGuard};

fn wait_for(file: &Path, child: &mut ChildGuard, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("tor exited ({status}) before writing {}", file.display());
        }
        if std::fs::metadata(file).is_ok_and(|m| m.len() > 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("tor wrote no {} within {timeout:?}", file.display());
}

#[test]
#[ignore]
fn tor_writes_hostname_files_offline_and_connect_reads_them() {
    let tor = require_binary("tor");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fulcrum = d.join("onion/fulcrum");
    let monerod = d.join("onion/monerod-rpc");
    std::fs::create_dir_all(d.join("onion")).unwrap();
    let torrc = format!(
        "DataDirectory {data}\nSocksPort 0\nDisableNetwork 1\nLog notice stderr\n\
         HiddenServiceDir {fulcrum}\nHiddenServicePort 50002 127.0.0.1:50002\nHiddenServiceVersion 3\n\
         HiddenServiceDir {monerod}\nHiddenServicePort 18089 127.0.0.1:18089\nHiddenServiceVersion 3\n",
        data = d.join("data").display(),
        fulcrum = fulcrum.display(),
        monerod = monerod.display(),
    );
    std::fs::write(d.join("torrc"), torrc).unwrap();
    let mut child = ChildGuard::spawn_quiet(Command::new(tor).arg("-f").arg(d.join("torrc")));
    // Generous: key generation is quick, but the machine may be loaded.
    for service in [&fulcrum, &monerod] {
        wait_for(
            &service.join("hostname"),
            &mut child,
            Duration::from_secs(120),
        );
    }
    let fulcrum_addr = onion::read_hostname(&fulcrum.join("hostname")).unwrap();
    let monerod_addr = onion::read_hostname(&monerod.join("hostname")).unwrap();
    assert_ne!(fulcrum_addr, monerod_addr, "one key per service");

    // The command reads them as the operator would run it.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(d.join("cert.pem"), cert.pem()).unwrap();
    let manifest = serde_json::json!({
        "version": 1,
        "fulcrum": {
            "cert_file": d.join("cert.pem"),
            "onion_ssl": { "hostname_file": fulcrum.join("hostname"), "port": 50002 }
        },
        "monerod": {
            "onion": { "hostname_file": monerod.join("hostname"), "port": 18089 }
        }
    });
    std::fs::write(d.join("cli.json"), manifest.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chainstead"))
        .args(["connect", "--manifest"])
        .arg(d.join("cli.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("{fulcrum_addr}:50002")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{monerod_addr}:18089")),
        "{stdout}"
    );

    // A restart keeps the address (the key stays in the directory).
    drop(child);
    let mut again = ChildGuard::spawn_quiet(
        Command::new(require_binary("tor"))
            .arg("-f")
            .arg(d.join("torrc")),
    );
    wait_for(
        &fulcrum.join("hostname"),
        &mut again,
        Duration::from_secs(120),
    );
    assert_eq!(
        onion::read_hostname(&fulcrum.join("hostname")).unwrap(),
        fulcrum_addr
    );
}
