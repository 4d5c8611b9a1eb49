//! Following a kernel aggregate (`driver: bond` or `lagg`): whether it
//! exists, its members, its mode and its active port, and why that port
//! changed. The rules are in the engine's module doc.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::engine::damping::instant_after;
use crate::event::{Cause, Kind, What};
use crate::platform::kernel::Aggregate;

use super::enforce::{Awaited, Hold, Pending, Retry};
use super::membership::Removal;
use super::{millis, Group, Interfaces, Output, PortLink};

/// How recently a port must have come up for the kernel's own move to it
/// to count as the kernel preempting (`link_up`) rather than someone
/// else's doing, unless the group's `preempt_delay` is longer (bonding's
/// `updelay` can delay the kernel's move by that much).
const KERNEL_PREEMPT_WINDOW: Duration = Duration::from_secs(5);

/// What a group with a kernel aggregate knows beyond its ports.
#[derive(Clone, Debug, Default)]
pub(super) struct KernelState {
    /// The kernel's view the group follows; `None` while it waits for one
    /// or the aggregate is missing.
    pub(super) view: Option<Aggregate>,
    /// Whether `port_missing` was reported for the aggregate interface.
    aggregate_missing: bool,
    /// The mode last reported as `unsupported_mode`.
    reported_mode: Option<String>,
    /// Members that are not configured, reported once while they stay.
    unexpected: BTreeSet<String>,
    /// The `SetActive` waiting for the kernel to switch.
    pub(super) pending: Option<Pending>,
    /// Actions not answered yet, oldest first.
    pub(super) awaited: VecDeque<Awaited>,
    /// A target that failed, not tried again before its time.
    pub(super) retry: Option<Retry>,
    /// After a change made outside laggmond, no preempt before this.
    pub(super) external_until: Option<Instant>,
    /// When the last lagg port reorder started (rate limit).
    pub(super) last_reorder: Option<Instant>,
    /// Ports laggmond took out of service, or is giving back.
    pub(super) holds: BTreeMap<String, Hold>,
    /// Ports whose admin-state change failed, not tried again before.
    pub(super) admin_retry: BTreeMap<String, Instant>,
    /// Ports laggmond took out of the lagg because their path is dead,
    /// or is taking out or putting back: their absence from the members is
    /// laggmond's doing, not the port going missing.
    pub(super) removed: BTreeMap<String, Removal>,
    /// Ports whose removal or re-addition failed, not tried again before.
    pub(super) member_retry: BTreeMap<String, Instant>,
    /// The next moment time alone matters, computed at each refresh.
    pub(super) wake_at: Option<Instant>,
}

impl KernelState {
    /// Whether laggmond holds `port` administratively down.
    pub(super) fn is_held_down(&self, port: &str) -> bool {
        self.holds.get(port) == Some(&Hold::Down)
    }

    /// Whether laggmond took `port` out of the lagg (or is taking it out,
    /// or putting it back).
    pub(super) fn is_removed(&self, port: &str) -> bool {
        self.removed.contains_key(port)
    }

    /// Lets `port` be tried again at once after a failure.
    pub(super) fn forget_retry(&mut self, port: &str) {
        if self.retry.as_ref().is_some_and(|retry| retry.port == port) {
            self.retry = None;
        }
    }
}

/// Where a group's aggregate interface stands.
enum Presence {
    /// No snapshot yet: it may exist.
    Unsynced,
    /// The link table does not have it.
    Missing,
    /// It exists (its details may not have arrived yet).
    Present,
}

impl Group {
    /// Follows the kernel at `now`: the aggregate's existence, members,
    /// mode and active port; then steers it and takes flapping lagg ports
    /// out of service. Repeating it with nothing new reports nothing.
    pub(super) fn refresh(&mut self, now: Instant, known: &Interfaces, out: &mut Output) {
        self.expire_unanswered(now, &mut out.events);
        match self.presence(known) {
            Presence::Unsynced => self.stop(),
            Presence::Missing => {
                self.report_aggregate_missing(&mut out.events);
                self.stop();
            }
            Presence::Present => {
                self.report_aggregate_found(&mut out.events);
                match self.view_to_follow(known) {
                    Some(view) => self.follow(now, view, known, out),
                    None => self.stop(),
                }
            }
        }
        self.reconcile_holds(now, known, out);
        self.reconcile_removals(now, known, out);
        self.kernel.wake_at = self.wake_time(now);
    }

    /// Refuses an operator's `set-active` that a kernel group cannot do.
    pub(super) fn check_kernel_operator(&self, name: &str) -> Result<(), String> {
        let group = self.name();
        if !self.config.enforce {
            return Err(format!("group {group} only watches (enforce: false)"));
        }
        let Some(view) = &self.kernel.view else {
            return Ok(());
        };
        if !view.failover {
            return Err(format!(
                "group {group} is in mode {}, which laggmond leaves alone",
                view.mode
            ));
        }
        if self.kernel.is_removed(name) {
            // Why it is out matters more than that it is.
            if let Some(reason) = self.port(name).and_then(|port| port.unusable_reason()) {
                return Err(reason);
            }
            return Err(format!(
                "port {name} is out of {group} until its path has worked for preempt_delay"
            ));
        }
        if !view.members.iter().any(|member| member == name) {
            return Err(format!("port {name} is not a member of {group}"));
        }
        Ok(())
    }

    fn presence(&self, known: &Interfaces) -> Presence {
        if !known.synced {
            Presence::Unsynced
        } else if known.links.contains_key(self.name()) {
            Presence::Present
        } else {
            Presence::Missing
        }
    }

    fn report_aggregate_missing(&mut self, events: &mut Vec<What>) {
        if !self.kernel.aggregate_missing {
            self.kernel.aggregate_missing = true;
            events.push(What::port(self.name(), Kind::PortMissing, self.name()));
        }
    }

    fn report_aggregate_found(&mut self, events: &mut Vec<What>) {
        if self.kernel.aggregate_missing {
            self.kernel.aggregate_missing = false;
            events.push(What::port(self.name(), Kind::PortFound, self.name()));
        }
    }

    /// The latest view, except while a lagg reorder is under way: the
    /// kernel passes through states (ports removed, re-added) that are
    /// laggmond's own doing, so the view is taken once the answer came.
    fn view_to_follow(&self, known: &Interfaces) -> Option<Aggregate> {
        if self.reorder_in_flight() {
            if let Some(view) = &self.kernel.view {
                return Some(view.clone());
            }
        }
        known.aggregates.get(self.name()).cloned()
    }

    /// Forgets the aggregate (missing, or no view of it): nothing is
    /// active and nothing reported until it is back, which starts the
    /// group over like the first snapshot.
    fn stop(&mut self) {
        self.kernel.view = None;
        self.active = None;
        self.started = false;
        self.outage = None;
        self.paths_lost = false;
        self.drop_pending();
        self.kernel.unexpected.clear();
        self.kernel.reported_mode = None;
        self.kernel.external_until = None;
        for port in &mut self.ports {
            port.forget_link();
        }
    }

    /// Takes one view of the kernel into account.
    fn follow(&mut self, now: Instant, view: Aggregate, known: &Interfaces, out: &mut Output) {
        self.sync_members(now, &view, known, &mut out.events);
        self.report_unexpected(&view, &mut out.events);
        let failover_mode = self.check_mode(&view, &mut out.events);
        let kernel_active = view.active.clone();
        self.kernel.view = Some(view);
        if !failover_mode {
            self.leave_alone(kernel_active);
            return;
        }
        self.drop_stale_operator();
        if self.started {
            self.track_active(now, kernel_active, known, &mut out.events);
        } else {
            self.started = true;
            self.start(now, kernel_active, &mut out.events);
        }
        self.report_paths(&mut out.events);
        self.finish_pending(&mut out.events);
        self.expire_unconfirmed(now, &mut out.events);
        self.enforce(now, known, out);
    }

    /// Sets every port's link: a port that is not a member is missing to
    /// the group, whether its interface exists or not.
    fn sync_members(
        &mut self,
        now: Instant,
        view: &Aggregate,
        known: &Interfaces,
        events: &mut Vec<What>,
    ) {
        for index in 0..self.ports.len() {
            let name = self.ports[index].name();
            // A port laggmond took out keeps the link of its interface: it
            // is still probed, and its path decides when it goes back.
            let link = if view.members.iter().any(|member| member == name)
                || self.kernel.is_removed(name)
            {
                known.link(name)
            } else {
                PortLink::Missing
            };
            self.set_member_link(now, index, link, events);
        }
    }

    /// Sets one port's link; a port laggmond holds down (or has just
    /// released, until its first change) changes link silently.
    fn set_member_link(
        &mut self,
        now: Instant,
        index: usize,
        link: PortLink,
        events: &mut Vec<What>,
    ) {
        let name = self.ports[index].name().to_owned();
        match self.kernel.holds.get(&name).copied() {
            Some(hold) if link != PortLink::Missing => {
                let changed = self.ports[index].set_link_quietly(now, link);
                if changed && hold == Hold::Releasing {
                    self.kernel.holds.remove(&name);
                }
            }
            _ => self.set_port_link(now, index, link, events),
        }
    }

    /// `port_unexpected` once for each member that is not configured, in
    /// the kernel's order, each time it becomes a member.
    fn report_unexpected(&mut self, view: &Aggregate, events: &mut Vec<What>) {
        let mut strangers = BTreeSet::new();
        for name in &view.members {
            if self.has_port(name) || !strangers.insert(name.clone()) {
                continue;
            }
            if !self.kernel.unexpected.contains(name) {
                events.push(What::port(self.name(), Kind::PortUnexpected, name));
            }
        }
        self.kernel.unexpected = strangers;
    }

    /// Whether the aggregate is in failover mode; reports a mode that is
    /// not, once per mode.
    fn check_mode(&mut self, view: &Aggregate, events: &mut Vec<What>) -> bool {
        if view.failover {
            self.kernel.reported_mode = None;
            return true;
        }
        if self.kernel.reported_mode.as_deref() != Some(view.mode.as_str()) {
            self.kernel.reported_mode = Some(view.mode.clone());
            events.push(What {
                mode: Some(view.mode.clone()),
                ..What::new(self.name(), Kind::UnsupportedMode)
            });
        }
        false
    }

    /// An aggregate in a mode laggmond does not manage: its active port is
    /// shown as the kernel has it, silently; back in failover mode the
    /// group starts over.
    fn leave_alone(&mut self, kernel_active: Option<String>) {
        self.active = kernel_active;
        self.started = false;
        self.outage = None;
        self.paths_lost = false;
        self.drop_pending();
    }

    /// Reports a change of the kernel's active port.
    fn track_active(
        &mut self,
        now: Instant,
        kernel_active: Option<String>,
        known: &Interfaces,
        events: &mut Vec<What>,
    ) {
        if kernel_active == self.active {
            return;
        }
        match (self.active.clone(), kernel_active) {
            (Some(from), Some(to)) => {
                let (cause, outage_ms) = self.kernel_cause(now, &from, &to, known);
                if cause == Cause::External {
                    let hold = instant_after(now, self.config.preempt_delay);
                    self.kernel.external_until = Some(hold);
                }
                events.push(self.failover(from, to.clone(), cause, outage_ms));
                self.active = Some(to);
            }
            (Some(from), None) => self.lose_all(now, Some(from), events),
            (None, Some(to)) => self.recover(now, to, events),
            (None, None) => {}
        }
    }

    /// Why the kernel moved traffic from `from` to `to`, and the outage.
    fn kernel_cause(
        &self,
        now: Instant,
        from: &str,
        to: &str,
        known: &Interfaces,
    ) -> (Cause, Option<u64>) {
        if let Some(pending) = self.kernel.pending.as_ref().filter(|p| p.port == to) {
            return (pending.reason, None);
        }
        if self.kernel.is_removed(from) {
            // laggmond took it out because its path died.
            return (Cause::PathDown, None);
        }
        if let Some(loss) = self.loss_of(now, from, known) {
            return loss;
        }
        if self.kernel_preempted(now, to) || self.kernel.holds.get(to) == Some(&Hold::Releasing) {
            return (Cause::LinkUp, None);
        }
        (Cause::External, None)
    }

    /// Why the old active port cannot carry traffic any more, if it
    /// cannot, with the time since it stopped.
    fn loss_of(
        &self,
        now: Instant,
        from: &str,
        known: &Interfaces,
    ) -> Option<(Cause, Option<u64>)> {
        let Some(port) = self.port(from) else {
            return self.foreign_loss(from, known);
        };
        let outage = port
            .since()
            .map_or(0, |since| millis(now.saturating_duration_since(since)));
        match port.link() {
            PortLink::Missing => Some((Cause::Removed, Some(outage))),
            _ if self.kernel.is_held_down(from) => Some((Cause::Damped, None)),
            PortLink::Down => Some((Cause::LinkDown, Some(outage))),
            PortLink::Up | PortLink::Unknown => None,
        }
    }

    /// [`Group::loss_of`] for a port that is not configured: the engine
    /// knows only its link, not since when.
    fn foreign_loss(&self, from: &str, known: &Interfaces) -> Option<(Cause, Option<u64>)> {
        let member = self
            .kernel
            .view
            .as_ref()
            .is_some_and(|view| view.members.iter().any(|member| member == from));
        match known.link(from) {
            PortLink::Missing => Some((Cause::Removed, Some(0))),
            _ if !member => Some((Cause::Removed, Some(0))),
            PortLink::Down => Some((Cause::LinkDown, Some(0))),
            PortLink::Up | PortLink::Unknown => None,
        }
    }

    /// Whether a move to `to` is the kernel going back to its preferred
    /// port by itself, which it does right after that port came up (a port
    /// laggmond just gave back counts as coming up).
    fn kernel_preempted(&self, now: Instant, to: &str) -> bool {
        let Some(view) = &self.kernel.view else {
            return false;
        };
        if !view.kernel_preempts || view.primary.as_deref() != Some(to) {
            return false;
        }
        let window = self.config.preempt_delay.max(KERNEL_PREEMPT_WINDOW);
        self.port(to).is_some_and(|port| {
            port.link() == PortLink::Up
                && port
                    .since()
                    .is_some_and(|since| now.saturating_duration_since(since) <= window)
        })
    }
}
