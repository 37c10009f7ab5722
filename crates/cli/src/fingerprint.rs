//! SHA-256 fingerprints of PEM certificates, as Sparrow and browsers show
//! them: the digest of the DER encoding, uppercase hex pairs joined by `:`.

use std::path::Path;

use anyhow::{Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The DER of the first certificate in `pem`.
pub fn first_cert_der(pem: &[u8]) -> Result<Vec<u8>> {
    let cert = CertificateDer::pem_slice_iter(pem)
        .next()
        .context("no CERTIFICATE block in it")?
        .context("failed to parse the PEM")?;
    Ok(cert.as_ref().to_vec())
}

/// Reads `path` and returns the DER of its first certificate.
pub fn read_cert_der(path: &Path) -> Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("failed to read certificate {}", path.display()))?;
    first_cert_der(&pem).with_context(|| format!("failed to read certificate {}", path.display()))
}

/// `AB:CD:...` of the SHA-256 of `der`.
pub fn sha256_colon_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint of the certificate in the PEM file at `path`.
pub fn of_pem_file(path: &Path) -> Result<String> {
    Ok(sha256_colon_hex(&read_cert_der(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_in_colon_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            sha256_colon_hex(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn fingerprint_is_of_the_der_not_the_pem_text() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, cert.pem()).unwrap();
        assert_eq!(
            of_pem_file(&file).unwrap(),
            sha256_colon_hex(cert.der().as_ref())
        );
        assert_eq!(of_pem_file(&file).unwrap().len(), 32 * 3 - 1);
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let err = format!("{:#}", of_pem_file(&file).unwrap_err());
        assert!(
            err.contains("key.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
    }
}
