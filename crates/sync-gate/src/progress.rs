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

/// A rise of the target height by more than this many blocks in one
/// reading is a jump (headers learnt after a long time offline, a first
/// peer telling monerod its height), not blocks being found: about an hour
/// of bitcoin blocks, while the gate reads at least every slow interval.
const TARGET_JUMP: u64 = 6;

/// Observed (time, height) pairs since the last regression, and what the
/// last reading said, to recognise the next one.
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
    last_ready: bool,
    last_target: Option<u64>,
}

impl Rate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in one reading. The window starts over on a regression (ready
    /// before, not now: bitcoind back in IBD after a restart; the height
    /// going down; the target jumping up or becoming known) and on a
    /// reading without a height (the daemon down or warming up, so the
    /// next heights belong to a restarted daemon): readings from before
    /// would estimate a rate the backend no longer has.
    pub fn update(&mut self, at: Instant, obs: &Observation) {
        let target_jumped = match (self.last_target, obs.target) {
            (Some(before), Some(now)) => now > before.saturating_add(TARGET_JUMP),
            (None, Some(_)) => true,
            _ => false,
        };
        if (self.last_ready && !obs.ready) || target_jumped {
            self.reset();
        }
        self.last_ready = obs.ready;
        self.last_target = obs.target;
        match obs.height {
            Some(h) => self.observe(at, h),
            None => self.reset(),
        }
    }

    /// Forgets the readings: after a failed poll the next one may come
    /// from a restarted daemon.
    pub fn reset(&mut self) {
        self.samples.clear();
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
/// couple of blocks, when the estimate says it is near, when the distance
/// is unknown (daemon down, warming up, wallet locked: all cheap to ask
/// about and possibly over at any second), and while there is no estimate
/// yet: the first readings, and those after an error or a regression, come
/// fast until the height has moved, so a short sync is released within a
/// fast interval. A height that stays put is no estimate either: monerod
/// can sit at one height for tens of seconds and then add a hundred blocks
/// at once.
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
        Some(_) => poll.slow(),
        None => poll.fast(),
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
        // No rate yet, far away: fast until the height moves, however
        // long it stays put (monerod adds blocks in large batches).
        assert_eq!(next_interval(&syncing(10, 1000), &r, &poll), poll.fast());
        let mut still = Rate::new();
        still.observe(t0, 10);
        still.observe(t0 + poll.slow() * 3, 10);
        assert_eq!(
            next_interval(&syncing(10, 1000), &still, &poll),
            poll.fast()
        );
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

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    /// The first readings of a sync that ends soon are fast until a rate
    /// exists, then follow the estimate.
    #[test]
    fn fast_until_a_rate_exists() {
        let poll = Poll::default();
        let t0 = Instant::now();
        let mut r = Rate::new();
        r.update(t0, &syncing(1000, 1300));
        assert_eq!(next_interval(&syncing(1000, 1300), &r, &poll), poll.fast());
        // 30 blocks/s with 270 to go: ~9 s, near.
        r.update(at(t0, 1), &syncing(1030, 1300));
        assert_eq!(next_interval(&syncing(1030, 1300), &r, &poll), poll.fast());
        // 30 blocks/s with 30,000 to go: far.
        let mut far = Rate::new();
        far.update(t0, &syncing(1000, 31_030));
        far.update(at(t0, 1), &syncing(1030, 31_030));
        assert_eq!(
            next_interval(&syncing(1030, 31_030), &far, &poll),
            poll.slow()
        );
    }

    /// An error, or a reading without a height (down, warming up), starts
    /// the estimate over: the next readings are fast again.
    #[test]
    fn error_or_restart_starts_over() {
        let poll = Poll::default();
        let t0 = Instant::now();
        let far = syncing(1030, 31_030);
        let mut r = Rate::new();
        r.update(t0, &syncing(1000, 31_030));
        r.update(at(t0, 1), &far);
        assert_eq!(next_interval(&far, &r, &poll), poll.slow());
        r.reset();
        r.update(at(t0, 30), &far);
        assert_eq!(next_interval(&far, &r, &poll), poll.fast());

        let mut r = Rate::new();
        r.update(t0, &syncing(1000, 31_030));
        r.update(at(t0, 1), &far);
        r.update(at(t0, 2), &Observation::waiting("warmup", "x".into()));
        r.update(at(t0, 30), &syncing(1040, 31_030));
        assert_eq!(r.per_sec(), None);
        assert_eq!(
            next_interval(&syncing(1040, 31_030), &r, &poll),
            poll.fast()
        );
    }

    /// Back in IBD after being ready: no estimate from the readings before
    /// (it said `~1s left` while the blocks stood still).
    #[test]
    fn back_in_ibd_forgets_the_rate() {
        let t0 = Instant::now();
        let mut r = Rate::new();
        r.update(t0, &syncing(100, 1000));
        r.update(at(t0, 10), &syncing(550, 1000));
        r.update(at(t0, 20), &Observation::ready("synced".into(), Some(1000)));
        let behind = syncing(1000, 1003);
        r.update(at(t0, 50), &behind);
        assert_eq!(r.per_sec(), None);
        assert_eq!(status_line("b", &behind, &r), "b: block 1000/1003");
        r.update(at(t0, 80), &syncing(1000, 1003));
        assert_eq!(status_line("b", &behind, &r), "b: block 1000/1003");
    }

    /// Headers jumping (bitcoind learns a week of headers) or a target
    /// becoming known starts over; a block found meanwhile does not.
    #[test]
    fn target_jump_forgets_the_rate() {
        let t0 = Instant::now();
        let mut r = Rate::new();
        r.update(t0, &syncing(100, 200));
        r.update(at(t0, 10), &syncing(150, 201));
        assert_eq!(r.per_sec(), Some(5.0));
        r.update(at(t0, 20), &syncing(150, 1200));
        assert_eq!(r.per_sec(), None);
        assert_eq!(
            status_line("b", &syncing(150, 1200), &r),
            "b: block 150/1200"
        );

        // monerod: no target while it has no peer, then one.
        let mut r = Rate::new();
        let mut no_peers = syncing(1, 0);
        no_peers.target = None;
        r.update(t0, &no_peers);
        r.update(at(t0, 30), &no_peers);
        r.update(at(t0, 31), &syncing(1, 201));
        // The rate counts from the first reading with a target.
        r.update(at(t0, 32), &syncing(11, 201));
        assert_eq!(r.per_sec(), Some(10.0));
    }
}
