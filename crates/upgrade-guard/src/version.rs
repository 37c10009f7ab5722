//! Package versions as the four services spell them, and their order.
//!
//! The formats in use: LND `0.19.3-beta`, `0.20.0-beta.rc1` (every LND
//! release carries `-beta`; only `rcN` marks a pre-release), Fulcrum
//! `1.12.0.1` (four components), bitcoind `29.0`, `30.0rc2`, monerod
//! `0.18.4.4`, optionally with a leading `v` and `+build` metadata. No crate
//! fits all of them (semver wants exactly three components), so this is a
//! small, strict parser: the numeric release compares component by component
//! (missing ones are zero, so `29` equals `29.0`), then a pre-release marker
//! (`alpha` < `pre` < `rc`, then its number) sorts before the release
//! itself. Other suffix words (`beta`) do not take part in the order.

use std::cmp::Ordering;
use std::fmt;

/// A version string that cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse version {raw:?}: {reason}")]
pub struct VersionError {
    pub raw: String,
    pub reason: &'static str,
}

/// A parsed package version; `raw` is kept for messages.
#[derive(Debug, Clone)]
pub struct Version {
    raw: String,
    release: Vec<u64>,
    /// `None` for a release; `Some((rank, n))` for a pre-release.
    pre: Option<(u8, u64)>,
}

impl Version {
    pub fn parse(raw: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError {
            raw: raw.to_string(),
            reason,
        };
        let s = raw.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        // Build metadata never orders versions.
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        let numeric_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (numbers, suffix) = s.split_at(numeric_end);
        let numbers = numbers.trim_end_matches('.');
        if numbers.is_empty() {
            return Err(err("it does not start with a number"));
        }
        let mut release = Vec::new();
        for part in numbers.split('.') {
            if part.is_empty() {
                return Err(err("it has an empty component (two dots in a row)"));
            }
            release.push(
                part.parse::<u64>()
                    .map_err(|_| err("a component is too large"))?,
            );
        }
        let pre = parse_suffix(suffix).map_err(err)?;
        Ok(Self {
            raw: raw.to_string(),
            release,
            pre,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// Splits the suffix into words and numbers (`-beta.rc1` → beta, rc, 1) and
/// finds a pre-release marker with its number.
fn parse_suffix(suffix: &str) -> Result<Option<(u8, u64)>, &'static str> {
    let lower = suffix.to_ascii_lowercase();
    let mut tokens: Vec<&str> = Vec::new();
    let mut start = None;
    let mut prev_digit = false;
    for (i, c) in lower.char_indices() {
        if c.is_ascii_alphanumeric() {
            let digit = c.is_ascii_digit();
            match start {
                Some(s) if digit != prev_digit => {
                    tokens.push(&lower[s..i]);
                    start = Some(i);
                }
                None => start = Some(i),
                _ => {}
            }
            prev_digit = digit;
        } else {
            if let Some(s) = start.take() {
                tokens.push(&lower[s..i]);
            }
            if !matches!(c, '-' | '.' | '_' | '~') {
                return Err(
                    "its suffix holds a character other than letters, digits, '-', '.', '_', '~'",
                );
            }
        }
    }
    if let Some(s) = start {
        tokens.push(&lower[s..]);
    }
    for (i, t) in tokens.iter().enumerate() {
        let rank = match *t {
            "alpha" | "dev" => 0,
            "pre" => 1,
            "rc" => 2,
            _ => continue,
        };
        let n = match tokens.get(i + 1) {
            Some(next) if next.bytes().all(|b| b.is_ascii_digit()) => next
                .parse::<u64>()
                .map_err(|_| "its pre-release number is too large")?,
            _ => 0,
        };
        return Ok(Some((rank, n)));
    }
    Ok(None)
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.release.len().max(other.release.len());
        for i in 0..len {
            let a = self.release.get(i).copied().unwrap_or(0);
            let b = other.release.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn the_issue_examples_order_correctly() {
        assert!(v("0.19.3-beta") < v("0.20.0-beta"));
        assert!(v("1.12.0.1") < v("1.12.1"));
        assert!(v("29.0") < v("30.1"));
        // Component-wise, not as strings or floats.
        assert!(v("0.9.0-beta") < v("0.19.0-beta"));
        assert!(v("1.9.9") < v("1.10"));
        assert!(v("0.18.4.4") > v("0.18.4.3"));
    }

    #[test]
    fn prefixes_and_missing_components() {
        assert_eq!(v("v0.19.3-beta"), v("0.19.3-beta"));
        assert_eq!(v("V29.0"), v("29.0"));
        assert_eq!(v("29"), v("29.0"));
        assert_eq!(v("29.0.0"), v("29.0"));
        assert_eq!(v("1.0.0+build.5"), v("1.0.0"));
        // The -beta of LND releases is no pre-release.
        assert_eq!(v("0.19.3-beta"), v("0.19.3"));
    }

    #[test]
    fn release_candidates_sort_before_their_release() {
        assert!(v("30.0rc2") < v("30.0"));
        assert!(v("30.0rc1") < v("30.0rc2"));
        assert!(v("30.0rc2") > v("29.1"));
        assert!(v("0.20.0-beta.rc1") < v("0.20.0-beta"));
        assert!(v("0.20.0-beta.rc3") > v("0.20.0-beta.rc2"));
        assert!(v("v0.20.0-beta.rc1") > v("0.19.3-beta"));
        assert!(v("1.0-alpha") < v("1.0-pre1"));
        assert!(v("1.0-pre1") < v("1.0-rc1"));
        assert!(v("1.0-RC10") > v("1.0-rc9"));
    }

    #[test]
    fn nonsense_is_a_named_error() {
        for bad in ["", "beta", "unstable-2024-01-01", "1..2", "1.0 foo", "v"] {
            let e = Version::parse(bad).unwrap_err();
            assert_eq!(e.raw, bad);
            assert!(e.to_string().contains("failed to parse version"), "{e}");
        }
        assert!(Version::parse("99999999999999999999999").is_err());
    }

    #[test]
    fn display_keeps_the_package_spelling() {
        assert_eq!(v("v0.20.0-beta").to_string(), "v0.20.0-beta");
    }
}
