//! Why a look at a daemon failed, sorted by what the caller should do.

use std::fmt;

/// A failed look.
#[derive(Debug)]
pub enum ProbeError {
    /// The configuration is wrong (credentials, chain, certificate, the
    /// address answers something that is not the backend). Retrying the
    /// same thing will not help; the service exits non-zero so systemd's
    /// restart backoff applies and the operator sees a failed unit.
    Misconfig(anyhow::Error),
    /// Worth retrying: a timeout, a reset connection, a busy server.
    Transient(anyhow::Error),
}

impl ProbeError {
    pub fn misconfig(msg: impl fmt::Display) -> Self {
        Self::Misconfig(anyhow::anyhow!("{msg}"))
    }
    pub fn transient(msg: impl fmt::Display) -> Self {
        Self::Transient(anyhow::anyhow!("{msg}"))
    }
    pub fn is_misconfig(&self) -> bool {
        matches!(self, Self::Misconfig(_))
    }
    pub fn into_inner(self) -> anyhow::Error {
        match self {
            Self::Misconfig(e) | Self::Transient(e) => e,
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misconfig(e) => write!(f, "{e:#}"),
            Self::Transient(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for ProbeError {}
