//! lagg and dead paths: lagg sends on its MASTER whenever that has link
//! and falls back to the next port with link, so the only way to keep a
//! port whose path is dead from carrying traffic is to take it out of the
//! lagg. The port keeps its link, so its probes go on; it goes back when
//! its path has worked for `preempt_delay`, when no port left in the lagg
//! has a working path, or when laggmond stops managing it. The rules are
//! in the engine's module doc.

use std::time::Instant;

use crate::config::Driver;
use crate::engine::damping::instant_after;
use crate::engine::Action;
use crate::event::{Cause, Kind, What};
use crate::probe::PathState;

use super::enforce::{Awaited, Requested};
use super::{Group, Interfaces, Output, Port, PortLink};

/// Where a port laggmond takes out of its lagg stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Removal {
    /// `RemovePort` sent, not answered yet.
    Removing,
    /// Out of the lagg, probed on its own.
    Out,
    /// `AddPort` sent, not answered yet.
    Adding,
}

impl Group {
    /// Takes ports whose path died out of the lagg, one at a time and
    /// rate-limited, and puts them back when they should be.
    pub(super) fn reconcile_removals(
        &mut self,
        now: Instant,
        known: &Interfaces,
        out: &mut Output,
    ) {
        self.kernel.member_retry.retain(|_, at| *at > now);
        // A lagg that is gone freed its ports, and a port whose interface
        // vanished left the lagg by itself: a new interface of that name is
        // not laggmond's to add.
        if known.link(self.name()) == PortLink::Missing {
            self.kernel.removed.clear();
        }
        self.kernel
            .removed
            .retain(|name, _| known.link(name) != PortLink::Missing);
        let Some(view) = self.kernel.view.clone() else {
            return;
        };
        let is_member = |name: &str| view.members.iter().any(|member| member == name);
        let out_ports: Vec<String> = self
            .kernel
            .removed
            .iter()
            .filter(|(_, removal)| **removal == Removal::Out)
            .map(|(name, _)| name.clone())
            .collect();
        for name in out_ports {
            if is_member(&name) {
                // Someone put it back: it is an ordinary member again.
                self.kernel.removed.remove(&name);
            } else if !self.kernel.member_retry.contains_key(&name) && self.wants_back(now, &name) {
                // Not held back by the rate limit (a port goes back for
                // safety as often as not), but it starts one: the reorder
                // that follows waits for its own delay.
                self.kernel.last_reorder = Some(now);
                self.request_member(&name, true, out);
            }
        }
        if let Some(index) = self.removal_candidate(now, &is_member) {
            let name = self.ports[index].name().to_owned();
            out.events.push(What {
                cause: Some(Cause::PathDown),
                ..What::port(self.name(), Kind::Enforcing, &name)
            });
            self.kernel.last_reorder = Some(now);
            self.request_member(&name, false, out);
        }
    }

    /// Puts back every port laggmond took out of the lagg (the group goes
    /// away, or the daemon stops); the engine no longer follows them.
    pub(super) fn add_back_all(&mut self, known: &Interfaces, out: &mut Output) {
        let removed: Vec<String> = self.kernel.removed.keys().cloned().collect();
        for name in removed {
            self.add_back(&name, known, out);
        }
    }

    /// Puts `name` back if laggmond took it out and it still exists.
    pub(super) fn add_back(&mut self, name: &str, known: &Interfaces, out: &mut Output) {
        if self.kernel.removed.remove(name).is_some() && known.link(name) != PortLink::Missing {
            self.send_member(name, true, out);
        }
    }

    /// The answer to a `RemovePort` (`add: false`) or `AddPort`. On
    /// failure the change is tried again after the backoff, and the port
    /// is where the kernel shows it (the updates that show the outcome
    /// come before the answer): a removal that failed after the port left
    /// (its check could not read the lagg) leaves the port laggmond's to
    /// put back, an addition that failed with the port in is done.
    pub(super) fn member_answered(
        &mut self,
        now: Instant,
        port: &str,
        add: bool,
        result: Result<(), String>,
        events: &mut Vec<What>,
    ) {
        let tracked = self.kernel.removed.contains_key(port);
        match result {
            Ok(()) if add => {
                self.kernel.removed.remove(port);
            }
            Ok(()) => {
                if tracked {
                    self.kernel.removed.insert(port.to_owned(), Removal::Out);
                }
            }
            Err(error) => {
                events.push(What {
                    error: Some(error),
                    ..What::port(self.name(), Kind::EnforceFailed, port)
                });
                let retry_at = instant_after(now, self.retry_delay());
                self.kernel.member_retry.insert(port.to_owned(), retry_at);
                let member = self
                    .kernel
                    .view
                    .as_ref()
                    .is_some_and(|view| view.members.iter().any(|m| m == port));
                if tracked && !member {
                    self.kernel.removed.insert(port.to_owned(), Removal::Out);
                } else {
                    self.kernel.removed.remove(port);
                }
            }
        }
    }

    /// When time alone may change a removal: a backoff ending, a removed
    /// port's path steady long enough, the rate limit ending for a port
    /// that waits to be taken out.
    pub(super) fn membership_wake(&self) -> Vec<Instant> {
        let mut times: Vec<Instant> = self.kernel.member_retry.values().copied().collect();
        if !self.removal_applies() {
            return times;
        }
        let delay = self.config.preempt_delay;
        times.extend(
            self.kernel
                .removed
                .keys()
                .filter_map(|name| self.port(name))
                .filter(|port| port.usable() && port.path() == PathState::Up)
                .filter_map(|port| port.preempt_ready_at(delay)),
        );
        let waiting = self.ports.iter().any(|port| {
            !self.kernel.is_removed(port.name())
                && port.has_trusted_link()
                && port.path() == PathState::Down
        });
        if waiting {
            if let Some(at) = self.kernel.last_reorder {
                times.push(instant_after(at, self.retry_delay()));
            }
        }
        times
    }

    /// Whether laggmond takes ports with a dead path out of the lagg: an
    /// enforcing lagg in failover mode that probes paths.
    pub(super) fn removal_applies(&self) -> bool {
        self.config.driver == Driver::Lagg
            && self.config.enforce
            && self.config.probe.is_some()
            && self.kernel.view.as_ref().is_some_and(|view| view.failover)
    }

    /// Whether a change of the lagg's ports (a removal, an addition, a
    /// reorder) is under way: they are made one at a time.
    pub(super) fn lagg_change_in_flight(&self) -> bool {
        self.kernel.pending.is_some()
            || self
                .kernel
                .removed
                .values()
                .any(|removal| *removal != Removal::Out)
    }

    /// Whether the removed port `name` should go back now: laggmond no
    /// longer manages the lagg, no port left in it has a working path, or
    /// its own path has worked for `preempt_delay`.
    fn wants_back(&self, now: Instant, name: &str) -> bool {
        let Some(port) = self.port(name) else {
            return true;
        };
        if !self.removal_applies() || !self.another_working_member(name) {
            return true;
        }
        port.usable()
            && port.path() == PathState::Up
            && port
                .preempt_ready_at(self.config.preempt_delay)
                .is_some_and(|at| at <= now)
    }

    /// The port to take out of the lagg now, if any: a configured member
    /// with link, not damped (damping has its own remedy) nor held, whose
    /// path is down, while another member's path works; one change at a
    /// time, rate-limited like reorders, and not while its backoff runs.
    fn removal_candidate(&self, now: Instant, is_member: &dyn Fn(&str) -> bool) -> Option<usize> {
        if !self.removal_applies() || self.lagg_change_in_flight() {
            return None;
        }
        let rested = self
            .kernel
            .last_reorder
            .is_none_or(|at| instant_after(at, self.retry_delay()) <= now);
        if !rested {
            return None;
        }
        self.ports.iter().position(|port| {
            let name = port.name();
            is_member(name)
                && !self.kernel.is_removed(name)
                && !self.kernel.holds.contains_key(name)
                && !self.kernel.member_retry.contains_key(name)
                && port.has_trusted_link()
                && port.path() == PathState::Down
                && self.another_working_member(name)
        })
    }

    /// Whether a configured port other than `name` is in the lagg (and
    /// stays there) and has a working path: the lagg must never be left
    /// without one when a port is taken out, and a port stays out only
    /// while one has.
    fn another_working_member(&self, name: &str) -> bool {
        let Some(view) = &self.kernel.view else {
            return false;
        };
        self.ports.iter().any(|port: &Port| {
            port.name() != name
                && view.members.iter().any(|member| member == port.name())
                && !self.kernel.is_removed(port.name())
                && port.usable()
                && port.path() == PathState::Up
        })
    }

    /// Takes `port` out of the lagg or puts it back, and remembers which.
    fn request_member(&mut self, port: &str, add: bool, out: &mut Output) {
        self.send_member(port, add, out);
        let removal = if add {
            Removal::Adding
        } else {
            Removal::Removing
        };
        self.kernel.removed.insert(port.to_owned(), removal);
    }

    fn send_member(&mut self, port: &str, add: bool, out: &mut Output) {
        let group = self.name().to_owned();
        let port_name = port.to_owned();
        out.actions.push(if add {
            Action::AddPort {
                group,
                port: port_name,
            }
        } else {
            Action::RemovePort {
                group,
                port: port_name,
            }
        });
        self.kernel.awaited.push_back(Awaited {
            port: port.to_owned(),
            request: Requested::Member(add),
        });
    }
}
