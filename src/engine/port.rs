//! One configured port: its link as the engine knows it, its flap history
//! and the clock that decides when it may take traffic back.

use std::time::{Duration, Instant};

use crate::config::FlapDamping;
use crate::event::Kind;
use crate::platform::kernel::LinkState;

use super::damping::{Damped, FlapState};

/// A port's link as the engine knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortLink {
    /// No snapshot yet.
    Unknown,
    /// The interface exists and can carry traffic.
    Up,
    /// The interface exists but has no link (or is administratively down).
    Down,
    /// The interface does not exist.
    Missing,
}

impl PortLink {
    /// The link of an interface that exists.
    pub fn present(state: LinkState) -> PortLink {
        match state {
            LinkState::Up => PortLink::Up,
            LinkState::Down => PortLink::Down,
        }
    }
}

/// What a link change of a port produced, for the group to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkChange {
    /// `port_up`, `port_down`, `port_missing` or `port_found`, if any.
    pub event: Option<Kind>,
    /// The damping this change started.
    pub damped: Option<Damped>,
}

/// One configured port of a group.
#[derive(Clone, Debug)]
pub struct Port {
    name: String,
    link: PortLink,
    /// When `link` last changed; `None` until the first snapshot.
    since: Option<Instant>,
    /// Start of the preempt clock: the last link change or damping end.
    steady_since: Option<Instant>,
    flaps: FlapState,
    /// The group's damping policy, kept here so the port can answer
    /// questions about its window on its own.
    policy: FlapDamping,
}

impl Port {
    /// A port the engine knows nothing about yet.
    pub(crate) fn new(name: &str, policy: FlapDamping) -> Port {
        Port {
            name: name.to_owned(),
            link: PortLink::Unknown,
            since: None,
            steady_since: None,
            flaps: FlapState::default(),
            policy,
        }
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link as last reported.
    pub fn link(&self) -> PortLink {
        self.link
    }

    /// When the link last changed, or when the port was first seen; `None`
    /// before the first snapshot (the engine has no clock of its own).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// When a damped port is trusted again; `None` when not damped.
    pub fn damped_until(&self) -> Option<Instant> {
        self.flaps.until()
    }

    /// Link transitions inside the damping window ending at `now`.
    pub fn flaps_in_window(&self, now: Instant) -> u32 {
        self.flaps.in_window(now, self.policy.window)
    }

    /// Every link transition counted since the port was first seen.
    #[cfg(test)]
    pub fn transitions_total(&self) -> u64 {
        self.flaps.total()
    }

    /// Whether the port may carry traffic: it exists, has link and is not
    /// damped.
    pub fn usable(&self) -> bool {
        self.link == PortLink::Up && self.flaps.until().is_none()
    }

    /// When the port may preempt a worse one: `delay` after its preempt
    /// clock started. `None` when that is beyond what an `Instant` holds.
    pub fn preempt_ready_at(&self, delay: Duration) -> Option<Instant> {
        self.steady_since?.checked_add(delay)
    }

    /// Why an operator may not choose this port, as a sentence; `None`
    /// when the port is usable.
    pub fn unusable_reason(&self) -> Option<String> {
        let name = &self.name;
        match self.link {
            PortLink::Unknown => Some(format!("port {name} has not been seen yet")),
            PortLink::Missing => Some(format!("port {name} does not exist")),
            PortLink::Down => Some(format!("port {name} is down")),
            PortLink::Up if !self.usable() => {
                Some(format!("port {name} is damped (until clear-damping)"))
            }
            PortLink::Up => None,
        }
    }

    /// Takes a new link state; `None` when nothing changed. A change of
    /// whether the port has link counts as a transition for damping; the
    /// first state learned (from `Unknown`) does not.
    pub(crate) fn set_link(&mut self, now: Instant, link: PortLink) -> Option<LinkChange> {
        if link == self.link || link == PortLink::Unknown {
            return None;
        }
        let old = std::mem::replace(&mut self.link, link);
        self.since = Some(now);
        self.steady_since = Some(now);
        let flipped = old != PortLink::Unknown && (old == PortLink::Up) != (link == PortLink::Up);
        let damped = if flipped {
            self.flaps.record(now, &self.policy)
        } else {
            None
        };
        Some(LinkChange {
            event: link_event(old, link),
            damped,
        })
    }

    /// Takes a link state without reporting it or counting a transition:
    /// a port the engine took out of service changes link because of
    /// that, not because it flaps. Returns whether the link changed.
    pub(crate) fn set_link_quietly(&mut self, now: Instant, link: PortLink) -> bool {
        if link == self.link || link == PortLink::Unknown {
            return false;
        }
        self.link = link;
        self.since = Some(now);
        self.steady_since = Some(now);
        true
    }

    /// Forgets the link (the aggregate holding the port is gone): the next
    /// state learned is a first one again. The flap history stays.
    pub(crate) fn forget_link(&mut self) {
        self.link = PortLink::Unknown;
        self.since = None;
        self.steady_since = None;
    }

    /// Whether the port is damped: not trusted, whatever its link, so a
    /// kernel aggregate is steered away from it.
    pub fn damped(&self) -> bool {
        self.flaps.until().is_some()
    }

    /// Takes a reloaded policy and applies it at once to the history, so
    /// a tightened threshold can damp the port now.
    pub(crate) fn set_policy(&mut self, now: Instant, policy: FlapDamping) -> Option<Damped> {
        self.policy = policy;
        self.flaps.check(now, &policy)
    }

    /// Ends the damping if its time is up; returns whether it ended. The
    /// preempt clock starts over at the damping's end.
    pub(crate) fn expire_damping(&mut self, now: Instant) -> bool {
        let Some(end) = self.flaps.expire(now) else {
            return false;
        };
        self.restart_steady_clock(end);
        true
    }

    /// Forgets damping, history and doubling (operator request); returns
    /// whether the port was damped. The preempt clock starts over now.
    pub(crate) fn clear_damping(&mut self, now: Instant) -> bool {
        let was_damped = self.flaps.clear();
        if was_damped {
            self.restart_steady_clock(now);
        }
        was_damped
    }

    /// Starts the preempt clock at `at`, unless a link change came later.
    fn restart_steady_clock(&mut self, at: Instant) {
        self.steady_since = Some(self.steady_since.map_or(at, |since| since.max(at)));
    }
}

/// The event a link change is reported with. The first state learned is
/// silent except for an absent port; an interface that appears is only
/// `port_found`, even when it comes with link up.
fn link_event(old: PortLink, new: PortLink) -> Option<Kind> {
    match (old, new) {
        (_, PortLink::Missing) => Some(Kind::PortMissing),
        (PortLink::Unknown, _) => None,
        (PortLink::Missing, _) => Some(Kind::PortFound),
        (PortLink::Down, PortLink::Up) => Some(Kind::PortUp),
        (PortLink::Up, PortLink::Down) => Some(Kind::PortDown),
        _ => None,
    }
}
