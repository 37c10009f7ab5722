//! Reading the onion address Tor writes into an onion service's directory
//! (`<HiddenServiceDir>/hostname`: the address and a newline).
//!
//! Tor facts (rend-spec-v3, "Encoding onion addresses"): a v3 address is 56
//! characters of lowercase base32 (`a-z`, `2-7`) encoding the 32-byte
//! public key, a 2-byte checksum and the version byte 3, followed by
//! `.onion`; the version byte makes the last character `d`. The checksum
//! needs SHA3-256 and is not verified here: Tor wrote the file.

use std::io::ErrorKind;
use std::path::Path;

/// Why an address could not be read. Callers branch: a missing file means
/// Tor has not started yet (or the service is off), a denied read means
/// the command needs root.
#[derive(Debug)]
pub enum OnionError {
    Missing,
    PermissionDenied,
    Invalid(String),
    Io(std::io::Error),
}

impl std::fmt::Display for OnionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "not created yet (is tor.service running?)"),
            Self::PermissionDenied => write!(f, "not readable by this user (run as root)"),
            Self::Invalid(why) => write!(f, "not an onion v3 address: {why}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OnionError {}

/// Reads and checks the address in `hostname_file`.
pub fn read_hostname(hostname_file: &Path) -> Result<String, OnionError> {
    let text = match std::fs::read_to_string(hostname_file) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(OnionError::Missing),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(OnionError::PermissionDenied)
        }
        Err(e) => return Err(OnionError::Io(e)),
    };
    let address = text.trim_end_matches(['\n', '\r']);
    check_v3(address)?;
    Ok(address.to_owned())
}

/// Checks the form of a v3 onion address (`<56 base32>.onion`).
pub fn check_v3(address: &str) -> Result<(), OnionError> {
    let Some(label) = address.strip_suffix(".onion") else {
        return Err(OnionError::Invalid(format!(
            "{address:?} does not end in .onion"
        )));
    };
    if label.len() != 56 {
        return Err(OnionError::Invalid(format!(
            "{address:?} has {} characters before .onion, not 56",
            label.len()
        )));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || ('2'..='7').contains(c)))
    {
        return Err(OnionError::Invalid(format!(
            "{address:?} has {c:?}, which is not lowercase base32"
        )));
    }
    if !label.ends_with('d') {
        return Err(OnionError::Invalid(format!(
            "{address:?} does not carry version 3"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The form of a v3 address (not a real service).
    const ADDR: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";

    #[test]
    fn reads_the_address_tor_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hostname");
        std::fs::write(&file, format!("{ADDR}\n")).unwrap();
        assert_eq!(read_hostname(&file).unwrap(), ADDR);
    }

    #[test]
    fn a_missing_file_is_not_yet() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_hostname(&dir.path().join("hostname")),
            Err(OnionError::Missing)
        ));
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for (bad, why) in [
            (
                "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd",
                ".onion",
            ),
            ("abc.onion", "not 56"),
            (
                "PG6MMJIYJMCRSSLVYKFWNNTLARU7P5SVN6Y2YMMJU6NUBXNDF4PSCRYD.onion",
                "base32",
            ),
            (
                "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscrya.onion",
                "version 3",
            ),
            (
                "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscr1d.onion",
                "base32",
            ),
        ] {
            let err = check_v3(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn trailing_junk_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hostname");
        std::fs::write(&file, format!("{ADDR} extra\n")).unwrap();
        assert!(matches!(read_hostname(&file), Err(OnionError::Invalid(_))));
    }
}
