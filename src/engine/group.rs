//! One group's state and rules: which port should carry traffic, and what
//! changing it is reported as. Groups driven by a kernel aggregate follow
//! the kernel in [`kernel`] and steer it in [`enforce`].

mod enforce;
mod kernel;
mod membership;

use std::time::{Duration, Instant};

use crate::config::{Driver, GroupConfig};
use crate::event::{Cause, Kind, What};
use crate::probe::PathVerdict;

use super::damping::{instant_after, Damped};
use super::port::{LinkChange, PathChange, Port, PortLink};
use super::{Interfaces, Output};

use kernel::KernelState;

/// One failover group.
#[derive(Clone, Debug)]
pub struct Group {
    config: GroupConfig,
    /// In priority order, like `config.ports`.
    ports: Vec<Port>,
    /// The port carrying traffic; with `driver: none` it is the choice.
    active: Option<String>,
    /// The operator's `set-active` port, while it stays usable.
    operator: Option<String>,
    /// Whether the initial choice was made (after the first snapshot).
    started: bool,
    /// Set while no port carries traffic.
    outage: Option<Outage>,
    /// Whether `all_paths_down` was reported and no port has had a
    /// working path since.
    paths_lost: bool,
    /// What a group with a kernel aggregate knows of it and of the actions
    /// in flight; unused with `driver: none`.
    kernel: KernelState,
}

/// A time when no port of the group carried traffic.
#[derive(Clone, Debug)]
struct Outage {
    since: Instant,
    /// The port that carried traffic before, if any.
    last_active: Option<String>,
}

impl Group {
    /// A group whose ports are all unknown, before its first snapshot.
    pub(crate) fn new(config: GroupConfig) -> Group {
        let ports = config
            .ports
            .iter()
            .map(|name| Port::new(name, config.flap_damping, config.probe.is_some()))
            .collect();
        Group {
            config,
            ports,
            active: None,
            operator: None,
            started: false,
            outage: None,
            paths_lost: false,
            kernel: KernelState::default(),
        }
    }

    /// The group (aggregate) name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The configuration in force.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Ports in priority order.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The port called `name`, if the group has it.
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|port| port.name() == name)
    }

    /// The port carrying traffic, `None` when no port can. With a kernel
    /// aggregate it is the kernel's active port, whatever chose it.
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// The operator's `set-active` choice while it holds.
    pub fn operator(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    /// The configured primary (first port); empty for a group without
    /// ports, which a validated config never has.
    pub fn primary(&self) -> &str {
        self.config.ports.first().map_or("", String::as_str)
    }

    /// Since when no port carries traffic (after the first snapshot).
    #[cfg(test)]
    pub fn down_since(&self) -> Option<Instant> {
        self.outage.as_ref().map(|outage| outage.since)
    }

    /// The kernel's view of the aggregate the group follows, as last
    /// taken into account; `None` with `driver: none`, before the kernel
    /// reported it and while the aggregate is missing.
    #[cfg(test)]
    pub fn aggregate(&self) -> Option<&crate::platform::kernel::Aggregate> {
        self.kernel.view.as_ref()
    }

    /// The port laggmond asked the kernel to make active (lagg: MASTER)
    /// and is waiting for, if any.
    #[cfg(test)]
    pub fn enforcing(&self) -> Option<&str> {
        self.kernel
            .pending
            .as_ref()
            .map(|pending| pending.port.as_str())
    }

    /// Whether laggmond took `port` out of service (lagg flap damping).
    #[cfg(test)]
    pub fn is_held_down(&self, port: &str) -> bool {
        self.kernel.is_held_down(port)
    }

    /// Whether laggmond took `port` out of its lagg because its path is
    /// dead (or is taking it out, or putting it back).
    #[cfg(test)]
    pub fn is_removed(&self, port: &str) -> bool {
        self.kernel.is_removed(port)
    }

    /// Whether `name` is one of the group's ports.
    pub(crate) fn has_port(&self, name: &str) -> bool {
        self.port(name).is_some()
    }

    /// Whether a kernel aggregate carries the traffic (bond, lagg): the
    /// engine follows it instead of deciding.
    pub(crate) fn is_kernel(&self) -> bool {
        self.config.driver != Driver::None
    }

    /// Brings the group in line with what is known at `now`: applies the
    /// policy, or follows the kernel's aggregate.
    pub(crate) fn reconcile(&mut self, now: Instant, known: &Interfaces, out: &mut Output) {
        if self.is_kernel() {
            self.refresh(now, known, out);
        } else if known.synced {
            self.evaluate(now, &mut out.events);
        }
    }

    /// Takes a new config, keeping the state of every port that remains;
    /// new ports learn their link from `known` (a kernel group's at its
    /// next refresh), removed ones vanish, given back to service first if
    /// laggmond had taken them out of it.
    pub(crate) fn reconfigure(
        &mut self,
        now: Instant,
        config: GroupConfig,
        known: &Interfaces,
        out: &mut Output,
    ) {
        let mut old = std::mem::take(&mut self.ports);
        let policy = config.flap_damping;
        let kernel = config.driver != Driver::None;
        let probed = config.probe.is_some();
        for name in &config.ports {
            let port = match old.iter().position(|port| port.name() == name) {
                Some(index) => {
                    let mut port = old.swap_remove(index);
                    port.set_probed(probed);
                    if let Some(damped) = port.set_policy(now, policy) {
                        out.events.push(self.flapping(name, damped));
                    }
                    port
                }
                None => {
                    let mut port = Port::new(name, policy, probed);
                    if !kernel {
                        let change = port.set_link(now, known.link(name));
                        self.report(name, change, &mut out.events);
                    }
                    port
                }
            };
            self.ports.push(port);
        }
        for port in old {
            self.release(port.name(), known, out);
        }
        self.config = config;
    }

    /// Sets the link of every port from `link_of` (a snapshot).
    pub(crate) fn sync_links(
        &mut self,
        now: Instant,
        link_of: impl Fn(&str) -> PortLink,
        out: &mut Vec<What>,
    ) {
        for index in 0..self.ports.len() {
            let link = link_of(self.ports[index].name());
            self.set_port_link(now, index, link, out);
        }
    }

    /// Sets the link of `name`; returns whether the group has that port.
    pub(crate) fn set_link(
        &mut self,
        now: Instant,
        name: &str,
        link: PortLink,
        out: &mut Vec<What>,
    ) -> bool {
        let Some(index) = self.index_of(name) else {
            return false;
        };
        self.set_port_link(now, index, link, out);
        true
    }

    fn set_port_link(&mut self, now: Instant, index: usize, link: PortLink, out: &mut Vec<What>) {
        let change = self.ports[index].set_link(now, link);
        let name = self.ports[index].name().to_owned();
        self.report(&name, change, out);
    }

    /// Takes the probes' verdict on the path of `name`; returns whether
    /// the group has that port. A verdict on a port without link, or in a
    /// group that does not probe, is ignored.
    pub(crate) fn set_path(
        &mut self,
        now: Instant,
        name: &str,
        verdict: &PathVerdict,
        out: &mut Vec<What>,
    ) -> bool {
        let Some(index) = self.index_of(name) else {
            return false;
        };
        if self.judged_before_the_link(index, now, verdict) {
            return true;
        }
        if let Some(change) = self.ports[index].set_path(now, verdict) {
            self.report_path(name, verdict, change, out);
        }
        true
    }

    /// Whether `verdict` is `down` sooner after the port's link last came up
    /// than the probes can judge it (`missed` × `interval`): then it was
    /// judged on the link before, and reached the engine after the link's
    /// news, by another way. A dead path on the new link is reported in
    /// its own time.
    fn judged_before_the_link(&self, index: usize, now: Instant, verdict: &PathVerdict) -> bool {
        let (PathVerdict::Down { .. }, Some(probe)) = (verdict, &self.config.probe) else {
            return false;
        };
        let judging = probe.interval.saturating_mul(probe.missed);
        self.ports[index]
            .since()
            .is_some_and(|since| now < instant_after(since, judging))
    }

    /// Reports a port's path change and the damping it started.
    fn report_path(
        &self,
        name: &str,
        verdict: &PathVerdict,
        change: PathChange,
        out: &mut Vec<What>,
    ) {
        let what = match verdict {
            PathVerdict::Up { rtt } => What {
                rtt_ms: Some(millis(*rtt)),
                ..What::port(self.name(), Kind::PathUp, name)
            },
            PathVerdict::Down { missed, targets } => What {
                targets: Some(targets.iter().map(ToString::to_string).collect()),
                missed: Some(*missed),
                ..What::port(self.name(), Kind::PathDown, name)
            },
        };
        out.push(what);
        if let Some(damped) = change.damped {
            out.push(self.flapping(name, damped));
        }
    }

    /// `all_paths_down` once when no port has a working path but some
    /// port with link carries traffic, `paths_recovered` when a port has a
    /// working path again. A group that does not probe never reports
    /// either: every port with link counts as having a path.
    pub(super) fn report_paths(&mut self, out: &mut Vec<What>) {
        let working = self
            .active_index()
            .filter(|&index| self.ports[index].usable())
            .or_else(|| self.ports.iter().position(Port::usable));
        if let Some(index) = working {
            if std::mem::take(&mut self.paths_lost) {
                out.push(self.port_event(Kind::PathsRecovered, index));
            }
            return;
        }
        // A kernel may still show a port without link as active for a
        // moment: traffic is on a linked port only once it moved there.
        let linked = self
            .active_index()
            .is_some_and(|index| self.ports[index].has_trusted_link());
        if linked && !self.paths_lost {
            self.paths_lost = true;
            out.push(What {
                port: self.active.clone(),
                ..What::new(self.name(), Kind::AllPathsDown)
            });
        }
    }

    /// Ends every damping whose time is up.
    pub(crate) fn expire_dampings(&mut self, now: Instant, out: &mut Vec<What>) {
        for index in 0..self.ports.len() {
            if self.ports[index].expire_damping(now) {
                out.push(self.port_event(Kind::FlapCleared, index));
            }
        }
    }

    /// Operator: trusts `port` (every port when `None`) again at once.
    pub(crate) fn clear_damping(
        &mut self,
        now: Instant,
        port: Option<&str>,
        out: &mut Vec<What>,
    ) -> Result<(), String> {
        let targets = match port {
            Some(name) => vec![self.existing_index(name)?],
            None => (0..self.ports.len()).collect(),
        };
        for index in targets {
            if self.ports[index].clear_damping(now) {
                out.push(self.port_event(Kind::FlapCleared, index));
            }
        }
        Ok(())
    }

    /// Operator: pins traffic to `port` while it stays usable, or lets the
    /// normal policy decide again (`None`). Takes effect at the next
    /// [`Group::evaluate`].
    pub(crate) fn set_operator(&mut self, port: Option<&str>) -> Result<(), String> {
        let Some(name) = port else {
            self.operator = None;
            return Ok(());
        };
        let index = self.existing_index(name)?;
        if self.is_kernel() {
            self.check_kernel_operator(name)?;
        }
        if let Some(reason) = self.ports[index].unusable_reason() {
            return Err(reason);
        }
        self.operator = Some(name.to_owned());
        // A new request is a new intent: an earlier failure does not hold it back.
        self.kernel.forget_retry(name);
        Ok(())
    }

    /// Applies the policy at `now`: computes the choice, then makes it the
    /// active port, reporting what that means for traffic.
    pub(crate) fn evaluate(&mut self, now: Instant, out: &mut Vec<What>) {
        self.drop_stale_operator();
        let choice = self
            .choose(now)
            .map(|index| self.ports[index].name().to_owned());
        self.apply(now, choice, out);
        self.report_paths(out);
    }

    /// The earliest moment the passing of time alone could change this
    /// group: a damping ending, or a better port becoming steady enough to
    /// preempt; with a kernel aggregate also the timeouts and backoffs of
    /// its actions.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let damping_end = self.ports.iter().filter_map(Port::damped_until).min();
        let other = if self.is_kernel() {
            self.kernel.wake_at
        } else {
            self.preempt_deadline()
        };
        [damping_end, other].into_iter().flatten().min()
    }

    /// When the earliest better port may preempt the active one, if
    /// preempting can happen at all now.
    fn preempt_deadline(&self) -> Option<Instant> {
        if !self.started || !self.config.preempt || self.operator.is_some() {
            return None;
        }
        let active = self.active_index()?;
        self.ports[..active]
            .iter()
            .filter(|port| port.usable())
            .filter_map(|port| port.preempt_ready_at(self.config.preempt_delay))
            .min()
    }

    /// The choice (rules 1-5 of the module doc), as a port index.
    fn choose(&self, now: Instant) -> Option<usize> {
        self.choose_usable(now).or_else(|| self.last_resort())
    }

    /// When no port has a working path: the active port while it has
    /// link and is not damped, else the first such port, so that a target
    /// that stops answering never leaves the group without traffic.
    fn last_resort(&self) -> Option<usize> {
        self.active_index()
            .filter(|&index| self.ports[index].has_trusted_link())
            .or_else(|| self.ports.iter().position(Port::has_trusted_link))
    }

    /// The choice among usable ports (rules 1-3 of the module doc).
    fn choose_usable(&self, now: Instant) -> Option<usize> {
        if let Some(index) = self.operator.as_deref().and_then(|p| self.index_of(p)) {
            return Some(index);
        }
        let Some(active) = self
            .active_index()
            .filter(|&index| self.ports[index].usable())
        else {
            return self.ports.iter().position(Port::usable);
        };
        if !self.config.preempt {
            return Some(active);
        }
        let steady = |port: &Port| {
            port.usable()
                && port
                    .preempt_ready_at(self.config.preempt_delay)
                    .is_some_and(|at| at <= now)
        };
        self.ports[..active]
            .iter()
            .position(steady)
            .or(Some(active))
    }

    /// Makes `choice` the active port: with `driver: none` the choice is
    /// the active port at once (kernel drivers ask the kernel instead, in
    /// [`enforce`], and follow what it reports).
    fn apply(&mut self, now: Instant, choice: Option<String>, out: &mut Vec<What>) {
        if !self.started {
            self.started = true;
            self.start(now, choice, out);
            return;
        }
        if choice == self.active {
            return;
        }
        match (self.active.take(), choice) {
            (Some(from), Some(to)) => self.switch(from, to, out),
            (Some(from), None) => self.lose_all(now, Some(from), out),
            (None, Some(to)) => self.recover(now, to, out),
            (None, None) => {}
        }
    }

    /// The initial choice is not a change: nothing to report unless no
    /// port can carry traffic.
    fn start(&mut self, now: Instant, choice: Option<String>, out: &mut Vec<What>) {
        match choice {
            Some(port) => self.active = Some(port),
            None => self.lose_all(now, None, out),
        }
    }

    /// Traffic moves from one port to another.
    fn switch(&mut self, from: String, to: String, out: &mut Vec<What>) {
        let (cause, outage_ms) = self.switch_cause(&from, &to);
        out.push(self.failover(from, to.clone(), cause, outage_ms));
        self.active = Some(to);
    }

    /// Why traffic leaves `from` for `to`, and the outage that caused: a
    /// lost port is replaced at once (0 ms), a move between working ports
    /// stops nothing.
    fn switch_cause(&self, from: &str, to: &str) -> (Cause, Option<u64>) {
        let Some(port) = self.port(from) else {
            // Dropped from the config: the interface itself still works.
            return (Cause::Removed, None);
        };
        if port.usable() {
            let cause = if self.operator.as_deref() == Some(to) {
                Cause::Operator
            } else {
                Cause::Preempt
            };
            return (cause, None);
        }
        match port.link() {
            PortLink::Missing => (Cause::Removed, Some(0)),
            PortLink::Up if port.damped() => (Cause::Damped, None),
            // The path died before the probes could tell: no outage figure.
            PortLink::Up => (Cause::PathDown, None),
            PortLink::Down | PortLink::Unknown => (Cause::LinkDown, Some(0)),
        }
    }

    /// No port can carry traffic any more.
    fn lose_all(&mut self, now: Instant, last_active: Option<String>, out: &mut Vec<What>) {
        out.push(What {
            port: last_active.clone(),
            ..What::new(self.name(), Kind::AllPortsDown)
        });
        self.active = None;
        self.outage = Some(Outage {
            since: now,
            last_active,
        });
    }

    /// Traffic flows again after all ports were down.
    fn recover(&mut self, now: Instant, to: String, out: &mut Vec<What>) {
        let outage = self.outage.take();
        let outage_ms = outage
            .as_ref()
            .map(|outage| millis(now.saturating_duration_since(outage.since)));
        out.push(What {
            outage_ms,
            ..What::port(self.name(), Kind::GroupRecovered, &to)
        });
        let last_active = outage.and_then(|outage| outage.last_active);
        if let Some(from) = last_active.filter(|from| *from != to) {
            out.push(self.failover(from, to.clone(), Cause::LinkUp, outage_ms));
        }
        self.active = Some(to);
    }

    /// An operator choice holds only while its port is usable (and still
    /// configured).
    fn drop_stale_operator(&mut self) {
        let usable = |name: &str| self.port(name).is_some_and(Port::usable);
        if self.operator.as_deref().is_some_and(|name| !usable(name)) {
            self.operator = None;
        }
    }

    fn failover(&self, from: String, to: String, cause: Cause, outage_ms: Option<u64>) -> What {
        What {
            from: Some(from),
            to: Some(to),
            cause: Some(cause),
            outage_ms,
            ..What::new(self.name(), Kind::Failover)
        }
    }

    /// Reports a port's link change and the damping it started.
    fn report(&self, name: &str, change: Option<LinkChange>, out: &mut Vec<What>) {
        let Some(change) = change else {
            return;
        };
        if let Some(kind) = change.event {
            out.push(What::port(self.name(), kind, name));
        }
        if let Some(damped) = change.damped {
            out.push(self.flapping(name, damped));
        }
    }

    fn flapping(&self, name: &str, damped: Damped) -> What {
        What {
            flaps: Some(damped.flaps),
            hold_ms: Some(millis(damped.hold)),
            ..What::port(self.name(), Kind::Flapping, name)
        }
    }

    fn port_event(&self, kind: Kind, index: usize) -> What {
        What::port(self.name(), kind, self.ports[index].name())
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|port| port.name() == name)
    }

    /// Like `index_of`, with the operator's error when there is none.
    fn existing_index(&self, name: &str) -> Result<usize, String> {
        self.index_of(name)
            .ok_or_else(|| format!("port {name} is not in group {}", self.name()))
    }

    fn active_index(&self) -> Option<usize> {
        self.active.as_deref().and_then(|name| self.index_of(name))
    }
}

/// Whole milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
