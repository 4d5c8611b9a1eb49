//! Flap damping of one port: a port whose link changes too often is not
//! trusted for a while, and for longer each time it does it again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::FlapDamping;

/// The highest doubling step: a hold grows to at most 2^3 = 8x the base.
const MAX_LEVEL: u32 = 3;

/// Transitions kept even when `max_flaps` is lower, so that the count a
/// damped port shows stays exact in all but pathological cases.
const MIN_KEPT: usize = 256;

/// A damping that has just started, with what the `flapping` event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Damped {
    /// Transitions counted inside the window when the port was damped.
    pub flaps: u32,
    /// How long the port is held out of service.
    pub hold: Duration,
}

/// One port's transition history and damping state.
#[derive(Clone, Debug, Default)]
pub(crate) struct FlapState {
    /// The most recent transitions, oldest first. Bounded so that a
    /// wildly flapping port cannot grow memory; the bound is above
    /// `max_flaps`, so dropping older ones never changes a decision.
    recent: VecDeque<Instant>,
    /// Every transition ever counted, for metrics.
    total: u64,
    /// Set while damped.
    until: Option<Instant>,
    /// The doubling step the next damping uses.
    level: u32,
    /// When the last damping ran out (not when an operator cleared it).
    last_end: Option<Instant>,
}

impl FlapState {
    /// Counts a link transition at `now`; returns the damping it starts.
    pub fn record(&mut self, now: Instant, policy: &FlapDamping) -> Option<Damped> {
        self.total = self.total.saturating_add(1);
        self.recent.push_back(now);
        let keep = usize::try_from(policy.max_flaps)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .max(MIN_KEPT);
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
        self.check(now, policy)
    }

    /// Damps the port when its history exceeds `policy` and it is not
    /// damped already; returns the damping it starts.
    pub fn check(&mut self, now: Instant, policy: &FlapDamping) -> Option<Damped> {
        if self.until.is_some() {
            return None;
        }
        let flaps = self.in_window(now, policy.window);
        if flaps <= policy.max_flaps {
            return None;
        }
        if self.quiet_since_last_damping(now, policy.hold) {
            self.level = 0;
        }
        let hold = policy.hold.saturating_mul(1 << self.level);
        self.until = Some(instant_after(now, hold));
        self.level = (self.level + 1).min(MAX_LEVEL);
        Some(Damped { flaps, hold })
    }

    /// Ends a damping whose time is up; returns when it ended.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        let end = self.until.filter(|until| *until <= now)?;
        self.until = None;
        self.last_end = Some(end);
        self.recent.clear();
        Some(end)
    }

    /// Forgets the damping, the history and the doubling (an operator's
    /// clear-damping); returns whether the port was damped.
    pub fn clear(&mut self) -> bool {
        let was_damped = self.until.take().is_some();
        self.recent.clear();
        self.level = 0;
        self.last_end = None;
        was_damped
    }

    /// When the current damping ends, if the port is damped.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Every transition ever counted.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Transitions less than `window` before `now`.
    pub fn in_window(&self, now: Instant, window: Duration) -> u32 {
        let count = self
            .recent
            .iter()
            .filter(|at| now.saturating_duration_since(**at) < window)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Whether a base `hold` has passed since the last damping ran out
    /// (or there never was one): the doubling starts over then.
    fn quiet_since_last_damping(&self, now: Instant, hold: Duration) -> bool {
        self.last_end
            .is_none_or(|end| now.saturating_duration_since(end) >= hold)
    }
}

/// `now + duration`, or the farthest instant on the way there that this
/// platform can represent: an absurd configured hold must not panic.
pub(crate) fn instant_after(now: Instant, duration: Duration) -> Instant {
    let mut step = duration;
    loop {
        if let Some(at) = now.checked_add(step) {
            return at;
        }
        step /= 2;
    }
}
