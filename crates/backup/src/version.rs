//! Versions and their names. A name starts with a fixed-width UTC time, so
//! names of one kind sort chronologically; it ends with a short content
//! hash (and `.age` when encrypted), so a copy can be checked against it.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Channel,
    Snapshot,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Channel => "channel",
            Kind::Snapshot => "snapshot",
        }
    }

    /// The prefix every version name of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Channel => "channel.backup.",
            Kind::Snapshot => "snapshot.",
        }
    }

    /// Sub-folder of a target that holds this kind ("" = the target root).
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Channel => "",
            Kind::Snapshot => "snapshots",
        }
    }
}

pub const AGE_SUFFIX: &str = ".age";

/// One accepted version, ready to be pushed.
#[derive(Debug)]
pub struct Version {
    pub kind: Kind,
    /// The plaintext name, e.g. `channel.backup.20261121T070000.123456789Z.3f2a9c1b0d4e`.
    pub name: String,
    pub sha256: String,
    pub plain: Arc<Vec<u8>>,
    /// age ciphertext, present when some target encrypts.
    pub sealed: Option<Arc<Vec<u8>>>,
    /// When the change was seen (for latency figures in logs).
    pub seen: Instant,
}

/// What one target stores: the name and bytes after optional encryption.
pub struct Artifact<'a> {
    pub kind: Kind,
    pub name: String,
    pub data: &'a [u8],
}

impl Version {
    pub fn artifact(&self, encrypt: bool) -> Option<Artifact<'_>> {
        if encrypt {
            self.sealed.as_ref().map(|s| Artifact {
                kind: self.kind,
                name: format!("{}{AGE_SUFFIX}", self.name),
                data: s.as_slice(),
            })
        } else {
            Some(Artifact {
                kind: self.kind,
                name: self.name.clone(),
                data: self.plain.as_slice(),
            })
        }
    }
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S%.9fZ").to_string()
}

pub fn channel_name(t: DateTime<Utc>, sha256_hex: &str) -> String {
    format!(
        "{}{}.{}",
        Kind::Channel.prefix(),
        timestamp(t),
        &sha256_hex[..12]
    )
}

/// Snapshots are named by the NAR's sha256 in Nix base32, as the store does.
pub fn snapshot_name(t: DateTime<Utc>, nix32: &str) -> String {
    format!("{}{}.{}.nar", Kind::Snapshot.prefix(), timestamp(t), nix32)
}

/// True if `name` is a complete version name of `kind` (not a temp file,
/// not the pointer).
pub fn is_version(kind: Kind, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(kind.prefix()) else {
        return false;
    };
    let rest = rest.strip_suffix(AGE_SUFFIX).unwrap_or(rest);
    // 20261121T070000.123456789Z = 26 characters, then '.'.
    rest.len() > 27 && rest.as_bytes()[8] == b'T' && rest.as_bytes()[26] == b'.'
}

/// Refuses anything but a version name of `kind` before it is used as a
/// file name or object key: a name given to `restore --version`, or read
/// from a target's `latest` pointer, must not reach outside the target
/// (`../`, absolute paths) or name something that is not a version.
pub fn check_name(kind: Kind, name: &str) -> anyhow::Result<()> {
    let plain_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if is_version(kind, name) && plain_chars && !name.contains("..") {
        Ok(())
    } else {
        anyhow::bail!(
            "failed to use {name:?}: it is not a {} version name; `status` lists the versions a target holds",
            kind.prefix().trim_end_matches('.')
        )
    }
}

/// The time part of a version name.
pub fn time_of(kind: Kind, name: &str) -> Option<DateTime<Utc>> {
    let rest = name.strip_prefix(kind.prefix())?;
    let ts = rest.get(..26)?;
    chrono::NaiveDateTime::parse_from_str(ts, "%Y%m%dT%H%M%S%.9fZ")
        .ok()
        .map(|n| n.and_utc())
}

/// The hash part a copy must match: 12 hex characters of the sha256 for
/// channel backups, the Nix base32 sha256 for snapshots.
pub fn hash_part(kind: Kind, name: &str) -> Option<&str> {
    let rest = name.strip_prefix(kind.prefix())?;
    let rest = rest.strip_suffix(AGE_SUFFIX).unwrap_or(rest);
    let rest = rest.get(27..)?;
    Some(rest.strip_suffix(".nar").unwrap_or(rest))
}

/// Checks plaintext against the hash in its name.
pub fn matches_name(kind: Kind, name: &str, plain: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(plain);
    match (kind, hash_part(kind, name)) {
        (Kind::Channel, Some(h)) => hex::encode(digest).starts_with(h) && h.len() == 12,
        (Kind::Snapshot, Some(h)) => nix_base32::to_nix_base32(&digest) == h,
        _ => false,
    }
}

/// Compares by the time in the name (fixed width, so plain string order).
pub fn newer(a: &str, b: &str) -> bool {
    a > b
}

/// The time to name the next version by: `now`, unless the clock says a
/// time not after `floor` (the time of the newest name given or seen on a
/// target), then 1 ns after `floor`. So names strictly increase even when
/// the clock steps back (NTP, a wrong RTC at boot) or an earlier name was
/// taken while the clock ran ahead.
pub fn next_time(now: DateTime<Utc>, floor: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match floor {
        Some(f) if now <= f => f + chrono::Duration::nanoseconds(1),
        _ => now,
    }
}

/// `name` (a plain version name) with its time replaced by `t`; the hash
/// part, and so the content it names, stays.
pub fn renamed(kind: Kind, name: &str, t: DateTime<Utc>) -> Option<String> {
    let hash = hash_part(kind, name)?;
    Some(match kind {
        Kind::Channel => format!("{}{}.{hash}", kind.prefix(), timestamp(t)),
        Kind::Snapshot => snapshot_name(t, hash),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn check_name_refuses_paths_and_strangers() {
        let good = "channel.backup.20261121T070000.123456789Z.0123abcd";
        assert!(
            is_version(Kind::Channel, good),
            "fixture must be a real name"
        );
        check_name(Kind::Channel, good).unwrap();
        check_name(Kind::Channel, &format!("{good}.age")).unwrap();
        for bad in [
            "../../etc/shadow",
            "channel.backup.20261121T070000.123456789Z/../../x",
            "/etc/passwd",
            "channel.backup.20261121T070000.123456789Z..x",
            "snapshot.20261121T070000.123456789Z.0123abcd",
            "",
        ] {
            let err = check_name(Kind::Channel, bad).unwrap_err();
            assert!(
                format!("{err}").contains("not a channel.backup version name"),
                "{bad}: {err}"
            );
        }
    }

    use super::*;

    #[test]
    fn names_sort_and_parse() {
        let t1 = DateTime::parse_from_rfc3339("2026-11-21T07:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let t2 = t1 + chrono::Duration::milliseconds(1);
        let h = crate::channel::sha256_hex(b"x");
        let a = channel_name(t1, &h);
        let b = channel_name(t2, &h);
        assert_eq!(
            a,
            format!("channel.backup.20261121T070000.500000000Z.{}", &h[..12])
        );
        assert!(newer(&b, &a));
        assert!(is_version(Kind::Channel, &a));
        assert!(is_version(Kind::Channel, &format!("{a}.age")));
        assert!(!is_version(Kind::Channel, "latest"));
        assert!(!is_version(Kind::Channel, ".tmp-abc"));
        assert_eq!(time_of(Kind::Channel, &a), Some(t1));
        assert!(matches_name(Kind::Channel, &a, b"x"));
        assert!(matches_name(Kind::Channel, &format!("{a}.age"), b"x"));
        assert!(!matches_name(Kind::Channel, &a, b"y"));
        let n = snapshot_name(
            t1,
            &nix_base32::to_nix_base32(&sha2::Sha256::digest(b"nar")),
        );
        use sha2::Digest;
        assert!(is_version(Kind::Snapshot, &n));
        assert!(matches_name(Kind::Snapshot, &n, b"nar"));
        let later = t1 + chrono::Duration::days(400);
        let n2 = renamed(Kind::Snapshot, &n, later).unwrap();
        assert_eq!(time_of(Kind::Snapshot, &n2), Some(later));
        assert!(matches_name(Kind::Snapshot, &n2, b"nar"));
        let a2 = renamed(Kind::Channel, &a, later).unwrap();
        assert!(newer(&a2, &b) && matches_name(Kind::Channel, &a2, b"x"));
    }

    /// A clock stepped back (or a name taken while it ran ahead) must not
    /// give a name older than the newest one: the next is 1 ns later.
    #[test]
    fn next_time_never_goes_back() {
        let ahead = DateTime::parse_from_rfc3339("2031-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let now = ahead - chrono::Duration::days(1800);
        let t = next_time(now, Some(ahead));
        assert_eq!(t, ahead + chrono::Duration::nanoseconds(1));
        assert!(newer(
            &channel_name(t, "0123456789ab"),
            &channel_name(ahead, "ffffffffffff")
        ));
        assert_eq!(next_time(t, Some(t)), t + chrono::Duration::nanoseconds(1));
        let later = ahead + chrono::Duration::seconds(5);
        assert_eq!(next_time(later, Some(ahead)), later);
        assert_eq!(next_time(now, None), now);
    }
}
