//! Sync rate from observed heights, the "~3h left" estimate, and the
//! adaptive poll interval built on them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::manifest::Poll;
use crate::probe::Observation;

/// How much history the rate is computed over: long enough to smooth the
/// bursts of block validation, short enough to follow a changing rate.
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Within this many blocks of the target the gate polls fast regardless of
/// the estimate: a block or two can arrive at any moment.
const NEAR_BLOCKS: u64 = 2;

/// Observed (time, height) pairs.
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&mut self, at: Instant, height: u64) {
        // A lower height (reorg, restart with a wiped index) starts over.
        if self.samples.back().is_some_and(|(_, h)| *h > height) {
            self.samples.clear();
        }
        self.samples.push_back((at, height));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Blocks per second over the window, if it moved at all.
    pub fn per_sec(&self) -> Option<f64> {
        let (t0, h0) = *self.samples.front()?;
        let (t1, h1) = *self.samples.back()?;
        let dt = t1.duration_since(t0).as_secs_f64();
        if dt < 0.5 || h1 <= h0 {
            return None;
        }
        Some((h1 - h0) as f64 / dt)
    }

    /// Time left for `remaining` blocks at the observed rate.
    pub fn eta(&self, remaining: u64) -> Option<Duration> {
        let r = self.per_sec()?;
        let secs = remaining as f64 / r;
        (secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
    }
}

/// "~40s", "~12m", "~3h", "~2d".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 90 {
        format!("~{}s", s.max(1))
    } else if s < 90 * 60 {
        format!("~{}m", (s + 30) / 60)
    } else if s < 48 * 3600 {
        format!("~{}h", (s + 1800) / 3600)
    } else {
        format!("~{}d", (s + 43200) / 86400)
    }
}

/// Status text: `<name>: <text>[, ~3h left]`.
pub fn status_line(name: &str, obs: &Observation, rate: &Rate) -> String {
    let eta = match obs.remaining() {
        Some(rem) if !obs.ready && rem > 0 => rate.eta(rem).map(|d| format!(", {} left", human(d))),
        _ => None,
    };
    format!("{name}: {}{}", obs.text, eta.unwrap_or_default())
}

/// The wait before the next poll while not yet released.
///
/// Slow while the estimate says readiness is far off; fast when within a
/// couple of blocks, when the estimate says it is near, or when the
/// distance is unknown (daemon down, warming up, wallet locked: all cheap
/// to ask about and possibly over at any second).
pub fn next_interval(obs: &Observation, rate: &Rate, poll: &Poll) -> Duration {
    let Some(remaining) = obs.remaining() else {
        return poll.fast();
    };
    if obs.near || remaining <= NEAR_BLOCKS {
        return poll.fast();
    }
    match rate.eta(remaining) {
        // Near: the remaining time is within two slow intervals.
        Some(eta) if eta <= poll.slow() * 2 => poll.fast(),
        _ => poll.slow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syncing(h: u64, t: u64) -> Observation {
        let mut o = Observation::waiting("sync", format!("block {h}/{t}"));
        o.height = Some(h);
        o.target = Some(t);
        o
    }

    #[test]
    fn rate_and_eta() {
        let t0 = Instant::now();
        let mut r = Rate::new();
        assert_eq!(r.per_sec(), None);
        r.observe(t0, 100);
        r.observe(t0 + Duration::from_secs(10), 200);
        assert_eq!(r.per_sec(), Some(10.0));
        assert_eq!(r.eta(36_000), Some(Duration::from_secs(3600)));
        // A reorg below the last height starts over.
        r.observe(t0 + Duration::from_secs(20), 150);
        assert_eq!(r.per_sec(), None);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(Duration::from_secs(40)), "~40s");
        assert_eq!(human(Duration::from_secs(12 * 60)), "~12m");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 600)), "~3h");
        assert_eq!(human(Duration::from_secs(5 * 86400)), "~5d");
    }

    #[test]
    fn status_has_the_estimate() {
        let t0 = Instant::now();
        let mut r = Rate::new();
        r.observe(t0, 500_000);
        r.observe(t0 + Duration::from_secs(100), 500_100);
        let o = syncing(500_100, 510_900);
        assert_eq!(
            status_line("bitcoind", &o, &r),
            "bitcoind: block 500100/510900, ~3h left"
        );
    }

    #[test]
    fn slow_far_fast_near() {
        let poll = Poll::default();
        let t0 = Instant::now();
        let mut r = Rate::new();
        // Unknown rate, far away: slow.
        assert_eq!(next_interval(&syncing(10, 1000), &r, &poll), poll.slow());
        // Unknown distance: fast.
        assert_eq!(
            next_interval(&Observation::waiting("down", "x".into()), &r, &poll),
            poll.fast()
        );
        // Within two blocks: fast.
        assert_eq!(next_interval(&syncing(998, 1000), &r, &poll), poll.fast());
        // At one block per second, 30 blocks is near, 3000 is far.
        r.observe(t0, 0);
        r.observe(t0 + Duration::from_secs(100), 100);
        assert_eq!(next_interval(&syncing(100, 130), &r, &poll), poll.fast());
        assert_eq!(next_interval(&syncing(100, 3100), &r, &poll), poll.slow());
    }
}
