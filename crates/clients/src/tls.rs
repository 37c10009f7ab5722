//! TLS to daemons with their own self-signed certificates (LND, Fulcrum):
//! the server is trusted when it presents exactly a certificate from the
//! configured file, or a certificate that chains to one in it.
//!
//! Why not a plain root store: LND's generated certificate is marked as a
//! CA (lightningnetwork/lnd cert/selfsigned.go sets `IsCA: true` "so can
//! sign self"), and webpki refuses a CA certificate used as the server's
//! own certificate. Exact pinning sidesteps that and is stricter anyway.
//! Handshake signatures are still verified with the certificate's key.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Reads all PEM certificates in `path`. `Ok(None)` when the file does not
/// exist (the daemon has not created it yet).
pub fn read_certs(path: &Path) -> anyhow::Result<Option<Vec<CertificateDer<'static>>>> {
    use anyhow::Context;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("failed to read certificate file {}", path.display()))
        }
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("failed to parse certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "failed to parse certificate file {}: it holds no PEM CERTIFICATE block",
            path.display()
        );
    }
    Ok(Some(certs))
}

/// A client configuration trusting only `pinned`. `mismatch` is set when a
/// server presented something else, so callers can tell a certificate
/// mismatch (a configuration error) from a network failure.
pub fn pinned_config(
    pinned: Vec<CertificateDer<'static>>,
    mismatch: Arc<AtomicBool>,
) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in &pinned {
        // A certificate webpki cannot use as an anchor is still pinned.
        let _ = roots.add(c.clone());
    }
    let chained = if roots.is_empty() {
        None
    } else {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .ok()
    };
    let verifier = PinnedVerifier {
        pinned,
        chained,
        provider: provider.clone(),
        mismatch,
    };
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("failed to set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(cfg)
}

#[derive(Debug)]
struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    chained: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    mismatch: Arc<AtomicBool>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        if let Some(v) = &self.chained {
            if v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .is_ok()
            {
                return Ok(ServerCertVerified::assertion());
            }
        }
        self.mismatch.store(true, Ordering::SeqCst);
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Certificates plus a client built for them, rebuilt when the file changes
/// (LND regenerates its certificate when it expires or its names change).
pub struct PinnedCache<T> {
    certs: Option<Vec<CertificateDer<'static>>>,
    value: Option<T>,
    pub mismatch: Arc<AtomicBool>,
}

impl<T: Clone> PinnedCache<T> {
    pub fn new() -> Self {
        Self {
            certs: None,
            value: None,
            mismatch: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Returns the cached value for `certs`, building it when they changed.
    pub fn get(
        &mut self,
        certs: Vec<CertificateDer<'static>>,
        build: impl FnOnce(rustls::ClientConfig) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if let (Some(old), Some(v)) = (&self.certs, &self.value) {
            if *old == certs {
                return Ok(v.clone());
            }
        }
        let cfg = pinned_config(certs.clone(), self.mismatch.clone())?;
        let v = build(cfg)?;
        self.certs = Some(certs);
        self.value = Some(v.clone());
        Ok(v)
    }
}

impl<T: Clone> Default for PinnedCache<T> {
    fn default() -> Self {
        Self::new()
    }
}
