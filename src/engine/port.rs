//! One configured port: its link and path as the engine knows them, its
//! flap history and the clock that decides when it may take traffic back.

use std::time::{Duration, Instant};

use crate::config::FlapDamping;
use crate::event::Kind;
use crate::platform::kernel::LinkState;
use crate::probe::{PathState, PathVerdict};

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

/// What a path verdict changed on a port, for the group to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PathChange {
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
    /// Start of the preempt clock: the last link change, path change to or
    /// from down, or damping end.
    steady_since: Option<Instant>,
    /// The path beyond the port: `Off` when the group has no probe.
    path: PathState,
    /// The round trip of the latest answer while the path is up.
    rtt: Option<Duration>,
    flaps: FlapState,
    /// The group's damping policy, kept here so the port can answer
    /// questions about its window on its own.
    policy: FlapDamping,
}

impl Port {
    /// A port the engine knows nothing about yet; `probed` when its group
    /// probes paths.
    pub(crate) fn new(name: &str, policy: FlapDamping, probed: bool) -> Port {
        Port {
            name: name.to_owned(),
            link: PortLink::Unknown,
            since: None,
            steady_since: None,
            path: unknown_or_off(probed),
            rtt: None,
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

    /// The path beyond the port as its probes last judged it; `Unknown`
    /// whenever the link is not up (a verdict about a path without link
    /// would be stale), `Off` when the group does not probe.
    pub fn path(&self) -> PathState {
        self.path
    }

    /// The round trip of the latest answer, while the path is up.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
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

    /// Whether the port may carry traffic: it exists, has link, is not
    /// damped and its path is not known to be dead (an unknown path counts
    /// as working, so that a group without answers yet keeps traffic).
    pub fn usable(&self) -> bool {
        self.has_trusted_link() && self.path != PathState::Down
    }

    /// Whether the port has link and is not damped, whatever its path: the
    /// last resort when no port has a working path.
    pub fn has_trusted_link(&self) -> bool {
        self.link == PortLink::Up && self.flaps.until().is_none()
    }

    /// When the port may preempt a worse one: `delay` after its preempt
    /// clock started. `None` when that is beyond what an `Instant` holds,
    /// and while its path is unknown: traffic moves off a working port
    /// only to a path the probes have seen working.
    pub fn preempt_ready_at(&self, delay: Duration) -> Option<Instant> {
        if self.path == PathState::Unknown {
            return None;
        }
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
            PortLink::Up if self.damped() => {
                Some(format!("port {name} is damped (until clear-damping)"))
            }
            PortLink::Up if self.path == PathState::Down => {
                Some(format!("port {name} has no working path"))
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
        self.forget_path();
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
        self.forget_path();
        true
    }

    /// Takes a verdict of the port's probes; `None` when it changes
    /// nothing the group reports (the same state again, or the first
    /// verdict `up`), or when it is ignored: the group does not probe, or
    /// the link is not up (the verdict is about a path the port no longer
    /// has). A change between `up` and `down` counts as a transition for
    /// damping, as a link change does; the first verdict after the link
    /// came up does not. The preempt clock restarts whenever the path
    /// goes down or comes back from down.
    pub(crate) fn set_path(&mut self, now: Instant, verdict: &PathVerdict) -> Option<PathChange> {
        if self.path == PathState::Off || self.link != PortLink::Up {
            return None;
        }
        let new = match verdict {
            PathVerdict::Up { rtt } => {
                self.rtt = Some(*rtt);
                PathState::Up
            }
            PathVerdict::Down { .. } => {
                self.rtt = None;
                PathState::Down
            }
        };
        let old = std::mem::replace(&mut self.path, new);
        if old == new || (old, new) == (PathState::Unknown, PathState::Up) {
            return None;
        }
        self.steady_since = Some(now);
        let damped = if old == PathState::Unknown {
            None
        } else {
            self.flaps.record(now, &self.policy)
        };
        Some(PathChange { damped })
    }

    /// Starts or stops probing the port (a reload added or removed the
    /// group's probe); a port kept probed keeps its path.
    pub(crate) fn set_probed(&mut self, probed: bool) {
        if probed != (self.path != PathState::Off) {
            self.path = unknown_or_off(probed);
            self.rtt = None;
        }
    }

    /// The link changed: whatever the probes said was about the old link.
    fn forget_path(&mut self) {
        if self.path != PathState::Off {
            self.path = PathState::Unknown;
            self.rtt = None;
        }
    }

    /// Forgets the link (the aggregate holding the port is gone): the next
    /// state learned is a first one again. The flap history stays.
    pub(crate) fn forget_link(&mut self) {
        self.link = PortLink::Unknown;
        self.since = None;
        self.steady_since = None;
        self.forget_path();
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

/// The path state of a port that has no verdict yet.
fn unknown_or_off(probed: bool) -> PathState {
    if probed {
        PathState::Unknown
    } else {
        PathState::Off
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
