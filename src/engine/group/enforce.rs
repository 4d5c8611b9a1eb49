//! Steering a kernel aggregate toward the engine's choice: the actions
//! laggmond sends, their answers, timeouts and backoffs, lagg's port
//! reorder, and lagg's flap damping by administrative state. The rules
//! are in the engine's module doc.

use std::time::{Duration, Instant};

use crate::config::Driver;
use crate::engine::damping::instant_after;
use crate::engine::Action;
use crate::event::{Cause, Kind, What};
use crate::probe::PathState;

use super::{Group, Interfaces, Output, Port, PortLink};

/// How long the kernel has to show a switch it accepted.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an action may stay unanswered before it counts as failed (the
/// daemon always answers; this only keeps a lost answer from blocking the
/// group for good).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest wait before a failed target is tried again, and between
/// two lagg reorders, however short `preempt_delay` is.
const MIN_RETRY: Duration = Duration::from_secs(1);

/// A `SetActive` sent, waiting for the kernel to switch.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    /// The port asked for.
    pub(super) port: String,
    /// What the switch is reported as once the kernel made it.
    pub(super) reason: Cause,
    /// When it was sent.
    at: Instant,
    /// When the kernel accepted it.
    answered: Option<Instant>,
}

/// An action whose answer has not arrived. Answers name only the port, so
/// each goes to the oldest action on that port.
#[derive(Clone, Debug)]
pub(super) struct Awaited {
    pub(super) port: String,
    pub(super) request: Requested,
}

/// What an awaited action asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Requested {
    /// `SetActive`; `closed` once the kernel switched or the engine gave
    /// up, so that a late answer changes nothing.
    Active { closed: bool },
    /// `SetAdminUp` with this `up`.
    AdminUp(bool),
    /// `AddPort` (`true`) or `RemovePort` (`false`).
    Member(bool),
}

/// A target that failed and its earliest next attempt.
#[derive(Clone, Debug)]
pub(super) struct Retry {
    pub(super) port: String,
    at: Instant,
}

/// How laggmond holds a lagg port out of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hold {
    /// Administratively down (asked for, or done).
    Down,
    /// Asked back up; its next link change is taken silently.
    Releasing,
}

impl Group {
    /// Takes the kernel's answer to an action about `port`.
    pub(crate) fn action_done(
        &mut self,
        now: Instant,
        port: &str,
        result: Result<(), String>,
        events: &mut Vec<What>,
    ) {
        let awaited = &mut self.kernel.awaited;
        let request = awaited
            .iter()
            .position(|awaited| awaited.port == port)
            .and_then(|index| awaited.remove(index))
            .map(|awaited| awaited.request);
        match request {
            Some(Requested::Active { closed: true }) => {}
            Some(Requested::Active { closed: false }) => {
                self.active_answered(now, port, result, events)
            }
            Some(Requested::AdminUp(up)) => self.admin_answered(now, port, up, result, events),
            Some(Requested::Member(add)) => self.member_answered(now, port, add, result, events),
            None => {
                if let Err(error) = result {
                    events.push(self.enforce_failed(port, error));
                }
            }
        }
    }

    /// Gives back every port laggmond holds down or took out of its lagg
    /// (the group goes away, or the daemon stops).
    pub(crate) fn release_all(&mut self, known: &Interfaces, out: &mut Output) {
        let held: Vec<String> = self.kernel.holds.keys().cloned().collect();
        for name in held {
            self.release(&name, known, out);
        }
        self.add_back_all(known, out);
    }

    /// Gives back `name` if laggmond holds it down or took it out of its
    /// lagg, and it still exists.
    pub(super) fn release(&mut self, name: &str, known: &Interfaces, out: &mut Output) {
        let held = self.kernel.holds.remove(name) == Some(Hold::Down);
        if held && known.link(name) != PortLink::Missing {
            self.send_admin(name, true, out);
        }
        self.add_back(name, known, out);
    }

    /// Whether a lagg reorder was sent and not answered yet.
    pub(super) fn reorder_in_flight(&self) -> bool {
        self.config.driver == Driver::Lagg
            && self
                .kernel
                .pending
                .as_ref()
                .is_some_and(|pending| pending.answered.is_none())
    }

    /// Forgets the pending action; its answer, if it still comes, changes
    /// nothing.
    pub(super) fn drop_pending(&mut self) {
        self.kernel.pending = None;
        for awaited in &mut self.kernel.awaited {
            if let Requested::Active { closed } = &mut awaited.request {
                *closed = true;
            }
        }
    }

    /// Ends the pending action if the kernel did it (bond: the port is
    /// active; lagg: the port is MASTER), with `primary_restored` when the
    /// engine's own enforcement brought the configured primary back.
    pub(super) fn finish_pending(&mut self, events: &mut Vec<What>) {
        let (Some(pending), Some(view)) = (&self.kernel.pending, &self.kernel.view) else {
            return;
        };
        let done = match self.config.driver {
            Driver::Lagg => view.primary.as_deref() == Some(pending.port.as_str()),
            _ => self.active.as_deref() == Some(pending.port.as_str()),
        };
        if !done {
            return;
        }
        let restored = pending.reason != Cause::Operator && pending.port == self.primary();
        let port = pending.port.clone();
        self.drop_pending();
        if restored {
            events.push(What::port(self.name(), Kind::PrimaryRestored, &port));
        }
    }

    /// Gives up on an action left unanswered for too long.
    pub(super) fn expire_unanswered(&mut self, now: Instant, events: &mut Vec<What>) {
        let Some(pending) = &self.kernel.pending else {
            return;
        };
        if pending.answered.is_none() && now >= instant_after(pending.at, ANSWER_TIMEOUT) {
            let port = pending.port.clone();
            events.push(self.enforce_failed(&port, "no answer from the kernel".to_owned()));
            self.fail_pending(now);
        }
    }

    /// Gives up on an accepted action the kernel did not carry out.
    pub(super) fn expire_unconfirmed(&mut self, now: Instant, events: &mut Vec<What>) {
        let Some(pending) = &self.kernel.pending else {
            return;
        };
        let timed_out = pending
            .answered
            .is_some_and(|at| now >= instant_after(at, CONFIRM_TIMEOUT));
        if timed_out {
            let port = pending.port.clone();
            events.push(self.enforce_failed(&port, "the kernel did not switch".to_owned()));
            self.fail_pending(now);
        }
    }

    /// Steers the kernel toward the engine's choice, when the group
    /// enforces and no action is under way.
    pub(super) fn enforce(&mut self, now: Instant, known: &Interfaces, out: &mut Output) {
        // One change of the lagg's ports at a time: a reorder planned while
        // a port is on its way out or back would plan from a stale list.
        if !self.config.enforce || self.lagg_change_in_flight() {
            return;
        }
        match self.config.driver {
            Driver::Bond => self.enforce_bond(now, known, out),
            Driver::Lagg => self.enforce_lagg(now, out),
            Driver::None => {}
        }
    }

    /// Takes flapping lagg ports out of service and gives them back, and
    /// gives back ports that no longer need holding.
    pub(super) fn reconcile_holds(&mut self, now: Instant, known: &Interfaces, out: &mut Output) {
        self.kernel.admin_retry.retain(|_, at| *at > now);
        for index in 0..self.ports.len() {
            let name = self.ports[index].name().to_owned();
            if known.link(&name) == PortLink::Missing {
                // A new interface of that name starts administratively fresh.
                self.kernel.holds.remove(&name);
                continue;
            }
            if self.kernel.admin_retry.contains_key(&name) {
                continue;
            }
            let hold = self.kernel.holds.get(&name).copied();
            match (self.wants_hold(index), hold) {
                (true, None | Some(Hold::Releasing)) => self.request_admin(&name, false, out),
                (false, Some(Hold::Down)) => self.request_admin(&name, true, out),
                _ => {}
            }
        }
    }

    /// The next moment time alone matters for the kernel side: a timeout,
    /// a backoff or hold-off ending, a port becoming steady. Only moments
    /// after `now`, so that a tick never finds the same deadline again.
    pub(super) fn wake_time(&self, now: Instant) -> Option<Instant> {
        let kernel = &self.kernel;
        let pending = kernel
            .pending
            .as_ref()
            .map(|pending| match pending.answered {
                Some(at) => instant_after(at, CONFIRM_TIMEOUT),
                None => instant_after(pending.at, ANSWER_TIMEOUT),
            });
        let retry = kernel.retry.as_ref().map(|retry| retry.at);
        let admin = kernel.admin_retry.values().copied();
        let mut times: Vec<Instant> = [pending, retry]
            .into_iter()
            .flatten()
            .chain(admin)
            .chain(self.membership_wake())
            .collect();
        if self.config.enforce {
            let reorder = kernel
                .last_reorder
                .map(|at| instant_after(at, self.retry_delay()));
            let preempt = self.preempt_wake();
            times.extend(
                [reorder, kernel.external_until, preempt]
                    .into_iter()
                    .flatten(),
            );
        }
        times.into_iter().filter(|at| *at > now).min()
    }

    /// When a better port than the kernel's active one becomes steady
    /// enough to take over (lagg: when every member is, if the configured
    /// primary is not MASTER).
    fn preempt_wake(&self) -> Option<Instant> {
        if !self.config.preempt || self.operator.is_some() {
            return None;
        }
        let delay = self.config.preempt_delay;
        if self.config.driver == Driver::Lagg {
            let master = self.kernel.view.as_ref()?.primary.as_deref();
            if master == Some(self.primary()) {
                return None;
            }
            // A reorder waits for every member to be usable and steady.
            let members = self.ports.iter().filter(|p| p.link() != PortLink::Missing);
            return members
                .map(|port| port.preempt_ready_at(delay).filter(|_| port.usable()))
                .collect::<Option<Vec<Instant>>>()?
                .into_iter()
                .max();
        }
        self.ports[..self.active_index()?]
            .iter()
            .filter(|port| port.usable())
            .filter_map(|port| port.preempt_ready_at(delay))
            .min()
    }

    /// Bond: ask for the choice when it is not the kernel's active port,
    /// unless the kernel is failing over by itself.
    fn enforce_bond(&mut self, now: Instant, known: &Interfaces, out: &mut Output) {
        let Some(active) = self.active.clone() else {
            // The bond takes the first port that gets link by itself.
            return;
        };
        let current = self.index_of(&active);
        let has_link = match current {
            Some(index) => self.ports[index].link() == PortLink::Up,
            None => known.link(&active) == PortLink::Up,
        };
        if !has_link {
            // The bond's own link monitor moves traffic: do not race it.
            return;
        }
        let Some(choice) = self.choose(now) else {
            return;
        };
        let target = self.ports[choice].name().to_owned();
        if target == active {
            return;
        }
        let reason = if self.operator.as_deref() == Some(target.as_str()) {
            Cause::Operator
        } else if current.is_some_and(|index| self.ports[index].damped()) {
            Cause::Damped
        } else if current.is_some_and(|index| self.ports[index].path() == PathState::Down) {
            Cause::PathDown
        } else {
            Cause::Preempt
        };
        if (reason == Cause::Preempt && self.held_off(now)) || self.retry_blocks(now, &target) {
            return;
        }
        self.request_active(now, target, reason, out);
    }

    /// lagg: make the operator's port, else the configured primary, the
    /// MASTER, announced by `enforcing`; automatic reorders only when safe.
    fn enforce_lagg(&mut self, now: Instant, out: &mut Output) {
        let Some(master) = self.kernel.view.as_ref().map(|view| view.primary.clone()) else {
            return;
        };
        let (target, reason) = match &self.operator {
            Some(port) => (port.clone(), Cause::Operator),
            None => (self.primary().to_owned(), Cause::Preempt),
        };
        if master.as_deref() == Some(target.as_str()) || self.retry_blocks(now, &target) {
            return;
        }
        if self.kernel.is_removed(&target) {
            // Out of the lagg for its path: it goes back first.
            return;
        }
        let Some(index) = self.index_of(&target) else {
            return;
        };
        if !self.ports[index].usable() {
            return;
        }
        if reason == Cause::Preempt && !self.reorder_allowed(now) {
            return;
        }
        out.events.push(What {
            from: master,
            ..What::port(self.name(), Kind::Enforcing, &target)
        });
        self.kernel.last_reorder = Some(now);
        self.request_active(now, target, reason, out);
    }

    /// Whether an automatic reorder may start: every configured member
    /// (the new MASTER among them) is usable and has been steady for
    /// `preempt_delay` (a reorder bounces them all), and no reorder started
    /// within the rate limit.
    fn reorder_allowed(&self, now: Instant) -> bool {
        let delay = self.config.preempt_delay;
        let steady =
            |port: &Port| port.usable() && port.preempt_ready_at(delay).is_some_and(|at| at <= now);
        let members_steady = self
            .ports
            .iter()
            .all(|port| port.link() == PortLink::Missing || steady(port));
        let rested = self
            .kernel
            .last_reorder
            .is_none_or(|at| instant_after(at, self.retry_delay()) <= now);
        self.config.preempt && members_steady && rested && !self.held_off(now)
    }

    /// Whether laggmond should hold port `index` down: a damped lagg member
    /// while another port can carry the traffic.
    fn wants_hold(&self, index: usize) -> bool {
        let port = &self.ports[index];
        let failover_mode = self.kernel.view.as_ref().is_some_and(|view| view.failover);
        let member = matches!(port.link(), PortLink::Up | PortLink::Down);
        let alternative = self
            .ports
            .iter()
            .enumerate()
            .any(|(i, other)| i != index && other.usable());
        // A port taken out for its dead path is probed: holding it down
        // would blind its probes.
        let removed = self.kernel.is_removed(port.name());
        self.config.driver == Driver::Lagg
            && self.config.enforce
            && failover_mode
            && member
            && !removed
            && port.damped()
            && alternative
    }

    /// Whether a change made outside laggmond still holds preempts off.
    fn held_off(&self, now: Instant) -> bool {
        self.kernel.external_until.is_some_and(|until| now < until)
    }

    /// Whether `target` failed recently and must not be tried yet.
    fn retry_blocks(&self, now: Instant, target: &str) -> bool {
        self.kernel
            .retry
            .as_ref()
            .is_some_and(|retry| retry.port == target && now < retry.at)
    }

    /// The backoff after a failure and the lagg reorder rate limit.
    pub(super) fn retry_delay(&self) -> Duration {
        self.config.preempt_delay.max(MIN_RETRY)
    }

    fn request_active(&mut self, now: Instant, port: String, reason: Cause, out: &mut Output) {
        out.actions.push(Action::SetActive {
            group: self.name().to_owned(),
            port: port.clone(),
        });
        self.kernel.awaited.push_back(Awaited {
            port: port.clone(),
            request: Requested::Active { closed: false },
        });
        self.kernel.pending = Some(Pending {
            port,
            reason,
            at: now,
            answered: None,
        });
    }

    /// Holds `port` down or gives it back, and remembers which.
    fn request_admin(&mut self, port: &str, up: bool, out: &mut Output) {
        self.send_admin(port, up, out);
        let hold = if up { Hold::Releasing } else { Hold::Down };
        self.kernel.holds.insert(port.to_owned(), hold);
    }

    fn send_admin(&mut self, port: &str, up: bool, out: &mut Output) {
        out.actions.push(Action::SetAdminUp {
            group: self.name().to_owned(),
            port: port.to_owned(),
            up,
        });
        self.kernel.awaited.push_back(Awaited {
            port: port.to_owned(),
            request: Requested::AdminUp(up),
        });
    }

    /// The answer to the pending `SetActive`.
    fn active_answered(
        &mut self,
        now: Instant,
        port: &str,
        result: Result<(), String>,
        events: &mut Vec<What>,
    ) {
        let pending = self
            .kernel
            .pending
            .as_mut()
            .filter(|pending| pending.port == port && pending.answered.is_none());
        match (pending, result) {
            (Some(pending), Ok(())) => pending.answered = Some(now),
            (Some(_), Err(error)) => {
                events.push(self.enforce_failed(port, error));
                self.fail_pending(now);
            }
            (None, Ok(())) => {}
            (None, Err(error)) => events.push(self.enforce_failed(port, error)),
        }
    }

    /// The answer to a `SetAdminUp`: on failure the port stays as it was,
    /// and the change is tried again after the backoff.
    fn admin_answered(
        &mut self,
        now: Instant,
        port: &str,
        up: bool,
        result: Result<(), String>,
        events: &mut Vec<What>,
    ) {
        let Err(error) = result else {
            return;
        };
        events.push(self.enforce_failed(port, error));
        let retry_at = instant_after(now, self.retry_delay());
        self.kernel.admin_retry.insert(port.to_owned(), retry_at);
        if up && self.has_port(port) {
            self.kernel.holds.insert(port.to_owned(), Hold::Down);
        } else if !up {
            self.kernel.holds.remove(port);
        }
    }

    /// Ends the pending action as failed: its target waits for the backoff.
    fn fail_pending(&mut self, now: Instant) {
        let Some(pending) = self.kernel.pending.take() else {
            return;
        };
        self.drop_pending();
        self.kernel.retry = Some(Retry {
            port: pending.port,
            at: instant_after(now, self.retry_delay()),
        });
    }

    fn enforce_failed(&self, port: &str, error: String) -> What {
        What {
            error: Some(error),
            ..What::port(self.name(), Kind::EnforceFailed, port)
        }
    }
}
