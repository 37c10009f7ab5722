//! Optional age encryption (X25519 recipients) on top of LND's own
//! encryption, so copies kept offsite and config snapshots are unreadable
//! without the operator's age identity.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, Context, Result};

pub struct Sealer {
    recipients: Vec<age::x25519::Recipient>,
}

impl Sealer {
    pub fn new(recipients: &[String]) -> Result<Self> {
        let recipients = recipients
            .iter()
            .map(|r| {
                r.parse::<age::x25519::Recipient>()
                    .map_err(|e| anyhow!("failed to parse age recipient {r}: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { recipients })
    }

    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let enc = age::Encryptor::with_recipients(
            self.recipients.iter().map(|r| r as &dyn age::Recipient),
        )
        .context("failed to set up age encryption")?;
        let mut out = Vec::with_capacity(plain.len() + 256);
        let mut w = enc
            .wrap_output(&mut out)
            .context("failed to start age encryption")?;
        w.write_all(plain).context("failed to encrypt with age")?;
        w.finish().context("failed to finish age encryption")?;
        Ok(out)
    }
}

/// Decrypts with the identities in an age identity file (`age-keygen` output).
pub fn open(identity_file: &Path, sealed: &[u8]) -> Result<Vec<u8>> {
    let ids = age::IdentityFile::from_file(identity_file.display().to_string())
        .with_context(|| format!("failed to read age identity {}", identity_file.display()))?
        .into_identities()
        .with_context(|| format!("failed to load age identity {}", identity_file.display()))?;
    let dec = age::Decryptor::new_buffered(sealed).context("failed to parse an age file")?;
    let mut r = dec
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .with_context(|| {
            format!(
                "failed to decrypt with the identity in {}",
                identity_file.display()
            )
        })?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .context("failed to decrypt the age payload (corrupt or truncated)")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn round_trip_and_wrong_key() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let idf = dir.path().join("id");
        std::fs::write(&idf, format!("{}\n", id.to_string().expose_secret())).unwrap();
        let otherf = dir.path().join("other");
        std::fs::write(&otherf, format!("{}\n", other.to_string().expose_secret())).unwrap();
        let sealer = Sealer::new(&[id.to_public().to_string()]).unwrap();
        let plain = b"0123456789012345678901234567890123456789012345".to_vec();
        let sealed = sealer.seal(&plain).unwrap();
        assert_ne!(sealed, plain);
        assert_eq!(open(&idf, &sealed).unwrap(), plain);
        assert!(open(&otherf, &sealed).is_err());
        let mut cut = sealed.clone();
        cut.truncate(sealed.len() - 5);
        assert!(open(&idf, &cut).is_err());
    }
}
