//! `chainstead tls-cert`: the self-signed certificate Fulcrum serves, with
//! the host names and addresses LAN clients use as subject alternative
//! names.
//!
//! Idempotent: the SAN list the certificate was made for is recorded next
//! to it (`<cert>.sans`, one entry a line, sorted). Same list, nothing is
//! written; another list, a new certificate is made from the same key, so
//! only the fingerprint a client pinned changes, and only when the names
//! do. Writes are atomic with the mode and owner asked for.
//!
//! The key is not made here: Fulcrum supports RSA keys fully and other
//! types experimentally (doc/fulcrum-example-config.conf, `key`), and ring
//! cannot generate RSA keys, so the module makes the key once with openssl
//! and this command signs with it (RSA or ECDSA, PKCS#8 PEM).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chainstead_common::fs::{write_atomic_owned, Owner};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// The SANs of the certificate the shell script made before this command
/// existed; a certificate without a record and with this list is adopted
/// as it is, so an upgrade does not change a pinned fingerprint.
pub const LEGACY_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// One subject alternative name: an IP address or a DNS name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum San {
    Ip(IpAddr),
    Dns(String),
}

impl San {
    /// Parses an address, or else a host name (letters, digits, `-`, `.`).
    pub fn parse(text: &str) -> Result<Self> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let name = text.to_ascii_lowercase();
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            bail!("{text:?} is neither an IP address nor a host name (letters, digits, '-', '.')");
        }
        Ok(Self::Dns(name))
    }

    fn record_line(&self) -> String {
        match self {
            Self::Ip(ip) => ip.to_string(),
            Self::Dns(name) => name.clone(),
        }
    }
}

/// What [`ensure`] was asked to make.
#[derive(Clone, Debug)]
pub struct Request {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub sans: Vec<String>,
    pub common_name: String,
    pub days: u32,
    pub owner: Owner,
}

/// What [`ensure`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The certificate already names exactly these SANs.
    Unchanged,
    /// A certificate from before the record existed, with the legacy SANs:
    /// kept, and the record written.
    Adopted,
    /// No certificate was there; one was made.
    Created,
    /// The SAN list changed; a new certificate was made from the same key.
    Regenerated,
}

/// Where the SAN list of `cert_file` is recorded.
pub fn record_path(cert_file: &Path) -> PathBuf {
    let mut name = cert_file.as_os_str().to_owned();
    name.push(".sans");
    PathBuf::from(name)
}

/// The normalised record text of a SAN list: parsed, deduplicated, sorted.
pub fn normalise(sans: &[String]) -> Result<(BTreeSet<San>, String)> {
    if sans.is_empty() {
        bail!("no subject alternative names given; list at least one host name or address");
    }
    let set = sans
        .iter()
        .map(|s| San::parse(s))
        .collect::<Result<BTreeSet<_>>>()?;
    let text = set.iter().map(|s| s.record_line() + "\n").collect();
    Ok((set, text))
}

/// Makes the certificate if it is missing or names other SANs.
pub fn ensure(req: &Request) -> Result<Outcome> {
    let (sans, record) = normalise(&req.sans)?;
    let record_file = record_path(&req.cert_file);
    let cert_exists = req.cert_file.exists();
    let recorded = match std::fs::read_to_string(&record_file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("failed to read {}", record_file.display()))
        }
    };
    if cert_exists {
        match &recorded {
            Some(text) if *text == record => return Ok(Outcome::Unchanged),
            None if record == normalise(&LEGACY_SANS.map(String::from))?.1 => {
                write_atomic_owned(&record_file, record.as_bytes(), 0o644, req.owner)?;
                return Ok(Outcome::Adopted);
            }
            _ => {}
        }
    }
    let pem = make_pem(req, &sans)?;
    write_atomic_owned(&req.cert_file, pem.as_bytes(), 0o644, req.owner)?;
    // After the certificate: a crash in between leaves a stale record, and
    // the next run makes the certificate again.
    write_atomic_owned(&record_file, record.as_bytes(), 0o644, req.owner)?;
    Ok(if cert_exists {
        Outcome::Regenerated
    } else {
        Outcome::Created
    })
}

fn make_pem(req: &Request, sans: &BTreeSet<San>) -> Result<String> {
    let key_pem = std::fs::read_to_string(&req.key_file).with_context(|| {
        format!(
            "failed to read TLS key {} (the unit makes it before this command runs)",
            req.key_file.display()
        )
    })?;
    let key = KeyPair::from_pem(&key_pem).with_context(|| {
        format!(
            "failed to load TLS key {}: expected an RSA or ECDSA key in PKCS#8 PEM",
            req.key_file.display()
        )
    })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.common_name.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s {
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            San::Dns(name) => {
                Ok(SanType::DnsName(name.clone().try_into().with_context(
                    || format!("failed to use {name:?} as a DNS name"),
                )?))
            }
        })
        .collect::<Result<_>>()?;
    // Self-signed, so it is its own CA (as `openssl req -x509` made it):
    // CA:TRUE with keyCertSign keeps strict verifiers (Python's default
    // context, OpenSSL's X509_STRICT) satisfied when it is pinned as the
    // trust anchor.
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(i64::from(req.days));
    let cert = params
        .self_signed(&key)
        .context("failed to sign the certificate")?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::extensions::GeneralName;

    fn setup() -> (tempfile::TempDir, Request) {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key.pem");
        let key = KeyPair::generate().unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let req = Request {
            cert_file: dir.path().join("cert.pem"),
            key_file,
            sans: vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "Node.Home.Arpa".into(),
                "192.168.1.10".into(),
            ],
            common_name: "chainstead-fulcrum".into(),
            days: 3650,
            owner: Owner::default(),
        };
        (dir, req)
    }

    fn sans_of(file: &Path) -> Vec<String> {
        let der = crate::fingerprint::read_cert_der(file).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let mut out: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                other => format!("{other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn makes_a_certificate_with_exactly_the_listed_sans() {
        let (_dir, req) = setup();
        assert_eq!(ensure(&req).unwrap(), Outcome::Created);
        assert_eq!(
            sans_of(&req.cert_file),
            vec![
                "DNS:localhost",
                "DNS:node.home.arpa",
                "IP:127.0.0.1",
                "IP:192.168.1.10"
            ]
        );
        let mode = std::fs::metadata(&req.cert_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(
            std::fs::read_to_string(record_path(&req.cert_file)).unwrap(),
            "127.0.0.1\n192.168.1.10\nlocalhost\nnode.home.arpa\n"
        );
    }

    #[test]
    fn same_list_keeps_the_certificate_and_a_new_list_replaces_it() {
        let (_dir, mut req) = setup();
        ensure(&req).unwrap();
        let first = crate::fingerprint::of_pem_file(&req.cert_file).unwrap();
        // Same names in another order and case: nothing changes.
        req.sans.reverse();
        req.sans[1] = "NODE.home.arpa".into();
        assert_eq!(ensure(&req).unwrap(), Outcome::Unchanged);
        assert_eq!(
            crate::fingerprint::of_pem_file(&req.cert_file).unwrap(),
            first
        );
        // A new address: a new certificate, the new SAN in it.
        req.sans.push("10.0.0.5".into());
        assert_eq!(ensure(&req).unwrap(), Outcome::Regenerated);
        assert_ne!(
            crate::fingerprint::of_pem_file(&req.cert_file).unwrap(),
            first
        );
        assert!(sans_of(&req.cert_file).contains(&"IP:10.0.0.5".to_owned()));
    }

    #[test]
    fn a_legacy_certificate_is_adopted_not_replaced() {
        let (_dir, mut req) = setup();
        std::fs::write(&req.cert_file, "legacy pinned certificate").unwrap();
        req.sans = vec!["::1".into(), "localhost".into(), "127.0.0.1".into()];
        assert_eq!(ensure(&req).unwrap(), Outcome::Adopted);
        assert_eq!(
            std::fs::read_to_string(&req.cert_file).unwrap(),
            "legacy pinned certificate"
        );
        // A legacy certificate with a new list is replaced.
        req.sans.push("192.168.1.10".into());
        assert_eq!(ensure(&req).unwrap(), Outcome::Regenerated);
    }

    #[test]
    fn bad_input_is_named() {
        let (_dir, mut req) = setup();
        req.sans = vec!["node_1.lan".into()];
        assert!(format!("{:#}", ensure(&req).unwrap_err()).contains("node_1.lan"));
        req.sans = vec![];
        assert!(format!("{:#}", ensure(&req).unwrap_err()).contains("no subject alternative names"));
        req.sans = vec!["localhost".into()];
        std::fs::write(&req.key_file, "garbage").unwrap();
        let err = format!("{:#}", ensure(&req).unwrap_err());
        assert!(err.contains("key.pem"), "{err}");
        assert!(!req.cert_file.exists(), "nothing is written on failure");
    }

    /// The module's key: RSA from openssl, as Fulcrum prefers. Needs the
    /// openssl binary, hence ignored in the Nix build.
    #[test]
    #[ignore]
    fn signs_with_an_openssl_rsa_key() {
        let (_dir, req) = setup();
        let status = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&req.key_file)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(ensure(&req).unwrap(), Outcome::Created);
        let der = crate::fingerprint::read_cert_der(&req.cert_file).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
        );
    }
}
