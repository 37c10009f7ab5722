//! Users and groups by name: the owners the tools give what they write.
//! `None` is "no such account on this host", which each tool words for its
//! own context; an error is a failed lookup (NSS, nscd).

use anyhow::{Context, Result};

/// A user's ids: its uid and its primary group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

/// The user `name`.
pub fn user(name: &str) -> Result<Option<UserIds>> {
    let found = nix::unistd::User::from_name(name)
        .with_context(|| format!("failed to look up user {name}"))?;
    Ok(found.map(|u| UserIds {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// The gid of the group `name`.
pub fn group(name: &str) -> Result<Option<u32>> {
    let found = nix::unistd::Group::from_name(name)
        .with_context(|| format!("failed to look up group {name}"))?;
    Ok(found.map(|g| g.gid.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_and_a_missing_name_is_none() {
        assert_eq!(user("root").unwrap(), Some(UserIds { uid: 0, gid: 0 }));
        assert_eq!(group("root").unwrap(), Some(0));
        assert_eq!(user("no-such-user-chainstead").unwrap(), None);
        assert_eq!(group("no-such-group-chainstead").unwrap(), None);
    }
}
