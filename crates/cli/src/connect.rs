//! `chainstead connect [sparrow|feather|zeus|thunderhub]`: where each wallet
//! reaches this node (LAN addresses, onion addresses) and what to paste
//! into which field, with Fulcrum's certificate fingerprint to pin.
//!
//! Onion addresses come from the `hostname` files Tor writes (readable by
//! root only on NixOS: `/var/lib/tor` is 0700). Without a wallet named,
//! every configured wallet is shown, but no credential: the lndconnect URI
//! (it holds a macaroon) is printed only by `connect zeus`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};
use clap::ValueEnum;

use crate::manifest::{Lan, Manifest, Onion};
use crate::{fingerprint, lndconnect, onion};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Wallet {
    /// Sparrow (and other Electrum wallets) on Fulcrum.
    Sparrow,
    /// Feather on monerod's restricted RPC.
    Feather,
    /// Zeus on LND (REST), with an lndconnect URI.
    Zeus,
    /// ThunderHub in a browser.
    Thunderhub,
}

/// What `connect` prints: `stdout` for the operator (and, for Zeus, the
/// URI), `warnings` for stderr.
#[derive(Debug, Default)]
pub struct Report {
    pub stdout: String,
    pub warnings: Vec<String>,
}

/// Builds the report for `wallet`, or for every configured wallet.
pub fn report(manifest: &Manifest, wallet: Option<Wallet>) -> Result<Report> {
    let mut r = Report::default();
    let all = wallet.is_none();
    let wants = |w: Wallet| all || wallet == Some(w);
    let mut shown = 0;
    if wants(Wallet::Sparrow) && manifest.fulcrum.is_some() {
        sparrow(manifest, &mut r)?;
        shown += 1;
    }
    if wants(Wallet::Feather) && manifest.monerod.is_some() {
        feather(manifest, &mut r);
        shown += 1;
    }
    if wants(Wallet::Zeus) && manifest.lnd.is_some() {
        zeus(manifest, &mut r, !all)?;
        shown += 1;
    }
    if wants(Wallet::Thunderhub) && manifest.thunderhub.is_some() {
        thunderhub(manifest, &mut r);
        shown += 1;
    }
    if let Some(b) = &manifest.bitcoind {
        if all {
            let _ = writeln!(r.stdout, "bitcoind (P2P mode: {})", b.mode);
            if let Some(o) = &b.rpc_onion {
                let _ = writeln!(
                    r.stdout,
                    "  RPC onion:     {}",
                    onion_line(o, "an RPC client with a Tor proxy and an rpcauth user")
                );
            }
            let _ = writeln!(
                r.stdout,
                "  its own onion address (P2P) is in `bitcoin-cli getnetworkinfo` (localaddresses)\n"
            );
        }
    }
    if shown == 0 {
        match wallet {
            Some(w) => bail!(
                "{w:?} is not configured on this node: enable its service and its LAN switch or onion service (docs/access.md)"
            ),
            None => bail!("no wallet-facing service is enabled on this node (docs/access.md)"),
        }
    }
    Ok(r)
}

fn lan_lines(out: &mut String, label: &str, lan: &Option<Lan>, hint: &str) {
    if let Some(lan) = lan {
        for h in &lan.hosts {
            let _ = writeln!(
                out,
                "  {label}{}   {hint}",
                lndconnect::authority(h, lan.port)
            );
        }
    }
}

fn onion_line(o: &Onion, hint: &str) -> String {
    match onion::read_hostname(&o.hostname_file) {
        Ok(addr) => format!("{}   {hint}", lndconnect::authority(&addr, o.port)),
        Err(e) => format!("({}: {e})", o.hostname_file.display()),
    }
}

fn sparrow(m: &Manifest, r: &mut Report) -> Result<()> {
    let Some(f) = &m.fulcrum else { return Ok(()) };
    let out = &mut r.stdout;
    let _ = writeln!(out, "Sparrow: Settings > Server > Private Electrum");
    lan_lines(
        out,
        "LAN, SSL on:   ",
        &f.lan,
        "(URL and port; tick Use SSL)",
    );
    match fingerprint::of_pem_file(&f.cert_file) {
        Ok(fp) => {
            let _ = writeln!(out, "  certificate:   {}", f.cert_file.display());
            let _ = writeln!(out, "  SHA-256:       {fp}");
            let _ = writeln!(
                out,
                "                 (compare with what Sparrow shows before trusting it)"
            );
        }
        Err(e) => r.warnings.push(format!("{e:#}")),
    }
    if let Some(o) = &f.onion_ssl {
        let _ = writeln!(
            out,
            "  onion, SSL on: {}",
            onion_line(
                o,
                "(tick Use Proxy: Tor on 127.0.0.1:9050 or Sparrow's own)"
            )
        );
    }
    if let Some(o) = &f.onion_tcp {
        let _ = writeln!(
            out,
            "  onion, no SSL: {}",
            onion_line(o, "(Tor encrypts end to end; tick Use Proxy)")
        );
    }
    if f.lan.is_none() && f.onion_ssl.is_none() && f.onion_tcp.is_none() {
        let _ = writeln!(
            out,
            "  loopback only: tunnel with `ssh -N -L 50002:127.0.0.1:50002 <node>`, or turn on services.chainstead.access.lan.fulcrum"
        );
    }
    out.push('\n');
    Ok(())
}

fn feather(m: &Manifest, r: &mut Report) {
    let Some(x) = &m.monerod else { return };
    let out = &mut r.stdout;
    let _ = writeln!(
        out,
        "Feather: Settings > Node > Node > Custom node > Add custom node"
    );
    lan_lines(out, "LAN:           ", &x.lan, "(restricted RPC; no login)");
    if let Some(o) = &x.onion {
        let _ = writeln!(
            out,
            "  onion:         {}",
            onion_line(o, "(Settings > Network > Proxy: Tor)")
        );
    }
    if x.lan.is_none() && x.onion.is_none() {
        let _ = writeln!(
            out,
            "  loopback only: turn on services.chainstead.access.lan.monerod or services.chainstead.tor"
        );
    }
    out.push('\n');
}

fn zeus(m: &Manifest, r: &mut Report, with_uri: bool) -> Result<()> {
    let Some(l) = &m.lnd else { return Ok(()) };
    let _ = writeln!(
        r.stdout,
        "Zeus: Settings > Connect a node > + > scan or paste the lndconnect URI ({} macaroon)",
        l.macaroon_kind
    );
    let mut endpoints: Vec<(String, u16, &str)> = Vec::new();
    for (lan, what) in [(&l.lan_rest, "LAN, REST"), (&l.lan_grpc, "LAN, gRPC")] {
        if let Some(lan) = lan {
            endpoints.extend(lan.hosts.iter().map(|h| (h.clone(), lan.port, what)));
        }
    }
    for (o, what) in [
        (&l.onion_rest, "onion, REST"),
        (&l.onion_grpc, "onion, gRPC"),
    ] {
        if let Some(o) = o {
            match onion::read_hostname(&o.hostname_file) {
                Ok(addr) => endpoints.push((addr, o.port, what)),
                Err(e) => {
                    let _ = writeln!(r.stdout, "  {what}: ({}: {e})", o.hostname_file.display());
                }
            }
        }
    }
    if endpoints.is_empty() {
        let _ = writeln!(r.stdout, "  no LAN switch or onion service for LND is on\n");
        return Ok(());
    }
    if !with_uri {
        for (host, port, what) in &endpoints {
            let _ = writeln!(r.stdout, "  {what}: {}", lndconnect::authority(host, *port));
        }
        let _ = writeln!(
            r.stdout,
            "  run `chainstead connect zeus` (as root) for the URI\n"
        );
        return Ok(());
    }
    let cert = fingerprint::read_cert_der(&l.tls_cert_file)?;
    let macaroon = read_macaroon(&l.macaroon_file)?;
    for (host, port, what) in &endpoints {
        let uri = lndconnect::encode(host, *port, Some(&cert), &macaroon);
        let _ = writeln!(r.stdout, "  {what}:\n{}", uri.expose());
    }
    r.stdout.push('\n');
    r.warnings.push(format!(
        "each URI above holds LND's {} macaroon: it is a credential. Show it only to the phone you pair, never paste it into a chat or a ticket.",
        l.macaroon_kind
    ));
    if l.macaroon_kind == "admin" {
        r.warnings.push(
            "the admin macaroon can spend every coin of this node; prefer readonly or invoice (services.chainstead.access.lan.lnd.macaroonKind)".into(),
        );
    }
    Ok(())
}

fn read_macaroon(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => bail!("failed to read macaroon {}: it is empty", path.display()),
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "failed to read macaroon {}: permission denied; run as root or as a member of LND's macaroon group",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "failed to read macaroon {}: it does not exist yet (LND makes it once its wallet is unlocked)",
            path.display()
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("failed to read macaroon {}", path.display()))),
    }
}

fn thunderhub(m: &Manifest, r: &mut Report) {
    let Some(t) = &m.thunderhub else { return };
    let out = &mut r.stdout;
    let _ = writeln!(out, "ThunderHub: open in a browser");
    lan_lines(
        out,
        "LAN:           ",
        &t.lan,
        "(http://…; put a TLS proxy in front for more than a trusted LAN)",
    );
    if let Some(o) = &t.onion {
        let _ = writeln!(
            out,
            "  onion:         {}",
            onion_line(o, "(Tor Browser, http://…)")
        );
    }
    if t.lan.is_none() && t.onion.is_none() {
        let _ = writeln!(
            out,
            "  loopback only: tunnel with `ssh -L 3000:127.0.0.1:3000 <node>`"
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const ADDR: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";

    fn fixture() -> (tempfile::TempDir, Manifest, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(p.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(p.join("tls.cert"), cert.pem()).unwrap();
        std::fs::write(p.join("readonly.macaroon"), [0x02, 0x01, 0xff]).unwrap();
        std::fs::create_dir(p.join("fulcrum")).unwrap();
        std::fs::write(p.join("fulcrum/hostname"), format!("{ADDR}\n")).unwrap();
        let text = serde_json::json!({
            "version": 1,
            "bitcoind": { "mode": "tor" },
            "fulcrum": {
                "cert_file": p.join("cert.pem"),
                "lan": { "hosts": ["node.home.arpa"], "port": 50002 },
                "onion_ssl": { "hostname_file": p.join("fulcrum/hostname"), "port": 50002 }
            },
            "monerod": {
                "onion": { "hostname_file": p.join("monerod/hostname"), "port": 18089 }
            },
            "lnd": {
                "tls_cert_file": p.join("tls.cert"),
                "macaroon_file": p.join("readonly.macaroon"),
                "macaroon_kind": "readonly",
                "lan_rest": { "hosts": ["192.168.1.10"], "port": 8080 }
            }
        })
        .to_string();
        (dir, Manifest::parse(&text).unwrap(), cert.der().to_vec())
    }

    #[test]
    fn sparrow_gets_lan_onion_and_the_fingerprint() {
        let (_dir, m, der) = fixture();
        let r = report(&m, Some(Wallet::Sparrow)).unwrap();
        assert!(r.stdout.contains("node.home.arpa:50002"), "{}", r.stdout);
        assert!(r.stdout.contains(&format!("{ADDR}:50002")), "{}", r.stdout);
        assert!(
            r.stdout.contains(&fingerprint::sha256_colon_hex(&der)),
            "{}",
            r.stdout
        );
        assert!(!r.stdout.contains("Feather"), "only the wallet asked for");
    }

    #[test]
    fn a_missing_onion_is_reported_not_fatal() {
        let (_dir, m, _) = fixture();
        let r = report(&m, Some(Wallet::Feather)).unwrap();
        assert!(r.stdout.contains("not created yet"), "{}", r.stdout);
    }

    #[test]
    fn zeus_gets_the_uri_with_a_warning_and_the_overview_does_not() {
        let (_dir, m, der) = fixture();
        let r = report(&m, Some(Wallet::Zeus)).unwrap();
        let expected = format!(
            "lndconnect://192.168.1.10:8080?cert={}&macaroon={}",
            URL_SAFE_NO_PAD.encode(&der),
            URL_SAFE_NO_PAD.encode([0x02, 0x01, 0xff])
        );
        assert!(r.stdout.contains(&expected), "{}", r.stdout);
        assert!(r.warnings.iter().any(|w| w.contains("credential")));

        let all = report(&m, None).unwrap();
        assert!(!all.stdout.contains("macaroon="), "{}", all.stdout);
        assert!(all.stdout.contains("192.168.1.10:8080"));
        assert!(all.stdout.contains("P2P mode: tor"));
    }

    #[test]
    fn a_loopback_only_service_says_how_to_reach_it() {
        let (_dir, mut m, _) = fixture();
        if let Some(f) = m.fulcrum.as_mut() {
            f.lan = None;
            f.onion_ssl = None;
        }
        let r = report(&m, Some(Wallet::Sparrow)).unwrap();
        assert!(r.stdout.contains("loopback only"), "{}", r.stdout);
        assert!(!r.stdout.contains(".onion"), "{}", r.stdout);
    }

    #[test]
    fn an_unconfigured_wallet_is_a_clear_error() {
        let (_dir, m, _) = fixture();
        let err = report(&m, Some(Wallet::Thunderhub))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not configured"), "{err}");
    }

    #[test]
    fn a_missing_macaroon_is_named() {
        let (dir, m, _) = fixture();
        std::fs::remove_file(dir.path().join("readonly.macaroon")).unwrap();
        let err = format!("{:#}", report(&m, Some(Wallet::Zeus)).unwrap_err());
        assert!(
            err.contains("readonly.macaroon") && err.contains("does not exist"),
            "{err}"
        );
    }
}
