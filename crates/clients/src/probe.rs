//! What one readiness look at a daemon yields (the sync gate's backends,
//! the Electrum probe): an [`Observation`] (ready or not yet,
//! with the numbers behind it) or a [`ProbeError`].
//!
//! "Not yet" is never an error: a daemon that is not running, still loading
//! its index or still syncing is an ordinary observation.

/// One answer from the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub ready: bool,
    /// Current height (blocks), if the backend told us.
    pub height: Option<u64>,
    /// The height it is syncing towards, if known.
    pub target: Option<u64>,
    /// Progress 0..=1 if the backend has its own notion (bitcoind's
    /// verificationprogress); otherwise derived from height/target.
    pub ratio: Option<f64>,
    /// Human text without the gate name, e.g. "IBD 61.3%, block 512345/872001".
    pub text: String,
    /// A short stable word for what is going on ("ibd", "warmup", "down",
    /// "synced"...), so logs are written when it changes, not every poll.
    pub phase: &'static str,
    /// The backend knows readiness is close (bitcoind out of IBD but a few
    /// blocks behind): poll fast whatever the estimate says.
    pub near: bool,
}

impl Observation {
    pub fn ready(text: String, height: Option<u64>) -> Self {
        Self {
            ready: true,
            height,
            target: height,
            ratio: Some(1.0),
            text,
            phase: "ready",
            near: true,
        }
    }

    /// Not ready, with no numbers (daemon down, warming up, locked...).
    pub fn waiting(phase: &'static str, text: String) -> Self {
        Self {
            ready: false,
            height: None,
            target: None,
            ratio: None,
            text,
            phase,
            near: false,
        }
    }

    /// Blocks still missing, if both ends are known.
    pub fn remaining(&self) -> Option<u64> {
        match (self.height, self.target) {
            (Some(h), Some(t)) => Some(t.saturating_sub(h)),
            _ => None,
        }
    }

    /// The progress ratio to export: the backend's own, else height/target.
    pub fn progress_ratio(&self) -> Option<f64> {
        if self.ready {
            return Some(1.0);
        }
        self.ratio.or(match (self.height, self.target) {
            (Some(h), Some(t)) if t > 0 => Some((h as f64 / t as f64).min(1.0)),
            _ => None,
        })
    }
}

pub use crate::error::ProbeError;

pub type ProbeResult = Result<Observation, ProbeError>;

/// An intermediate step that did not produce the value asked for.
#[derive(Debug)]
pub enum Wait {
    NotYet(Observation),
    Err(ProbeError),
}

/// Formats a ratio as a percentage with one decimal, never showing 100.0%
/// for something that is not finished.
pub fn percent(ratio: f64) -> String {
    let p = (ratio * 1000.0).floor() / 10.0;
    format!("{:.1}%", p.clamp(0.0, 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down() {
        assert_eq!(percent(0.61349), "61.3%");
        assert_eq!(percent(0.99999), "99.9%");
        assert_eq!(percent(1.0), "100.0%");
    }

    #[test]
    fn ratio_from_heights() {
        let mut o = Observation::waiting("sync", "x".into());
        assert_eq!(o.progress_ratio(), None);
        o.height = Some(50);
        o.target = Some(200);
        assert_eq!(o.progress_ratio(), Some(0.25));
        assert_eq!(o.remaining(), Some(150));
    }
}
