//! The failover engine: a plain state machine with no I/O and no clock.
//!
//! Inputs (link updates, snapshots, timer ticks, operator commands, a new
//! config) go in with `now`; events, actions and the next deadline come
//! out. Every policy lives here: priority order, the hold-down before
//! preempting, flap damping, what counts as a failover and how long its
//! outage was. The daemon drives it; tests drive it with synthetic time.
//!
//! # Policy
//!
//! A port is *usable* when it exists, its link is up and it is not damped.
//! The engine's *choice* for a group is:
//! 1. the operator's `set-active` port while it stays usable (an operator
//!    choice is dropped as soon as that port stops being usable);
//! 2. else the current active port if it is usable and no better port
//!    may preempt it; a better (earlier in `ports`) usable port preempts
//!    only with `preempt: true` once it has been usable for
//!    `preempt_delay` without interruption (the clock restarts on every
//!    link change and at the end of its damping); when several may, the
//!    best of them wins;
//! 3. else the first usable port in priority order, at once;
//! 4. else none: `all_ports_down` (once), and `group_recovered` with the
//!    outage when the first port is usable again.
//!
//! A port changing link more than `max_flaps` times within `window` is
//! damped for `hold`, doubled on each repeat up to 8x; the multiplier goes
//! back to 1x after a quiet `hold` with no damping. A configured port the
//! kernel does not have is `port_missing` and never chosen; when it
//! appears, `port_found`.
//!
//! With `driver: none` the engine's choice *is* the active port. With a
//! kernel aggregate the kernel's active port is observed, and when
//! `enforce` is set and it differs from the choice, the engine asks for it
//! with [`Action::SetActive`]. For now every driver behaves like `none`;
//! the code keeps computing the choice apart from applying it so that the
//! kernel's view can slot in.
//!
//! ## Ports and their events
//!
//! Interfaces are known by name. Until the first snapshot every port is
//! `unknown`: link updates are remembered but nothing is chosen or
//! reported. The first snapshot reports only ports that are absent
//! (`port_missing`) and makes the initial choice, the first usable port,
//! which is not a failover; with no usable port it is `all_ports_down`.
//! After that: up to down is `port_down`, down to up `port_up`, present to
//! absent `port_missing`, absent to present `port_found` alone (a port
//! that appears with link up is simply usable, and preempts by the usual
//! rules). Updates that change nothing report nothing. Interfaces no group
//! names are remembered, so that a reload that adds them knows their link
//! at once, but produce no events.
//!
//! ## Flap damping
//!
//! A *transition* is a change of whether a port has link (up against down
//! or absent); learning the first state is not one. At each transition
//! the transitions of the last `window` are counted, and more than
//! `max_flaps` damp the port for `hold * 2^level` (`flapping`, with the
//! count and the hold). The level (0 to 3) grows by one per damping and
//! starts over at 0 when a damping starts a base `hold` or more after the
//! previous one ended. Transitions while damped are counted but do not
//! extend the hold. The damping ends at the first tick at or after its end
//! (`flap_cleared`): the history is forgotten and the preempt clock starts
//! at the damping's end. `clear-damping` ends it at once (`flap_cleared`)
//! and also forgets the doubling. A reload applies a changed threshold to
//! the history at once.
//!
//! ## Failovers and outages
//!
//! Every change of the active port is one `failover`, never from a port to
//! itself, with a cause: `link_down` or `removed` when the active port
//! lost link or vanished (outage 0 ms: the next port takes over at once;
//! a port dropped from the config by a reload is `removed` with no outage,
//! its interface still works), `damped` when it was damped with link up
//! (no outage), `preempt` and `operator` (no outage). When no port is left
//! the group reports `all_ports_down` (with the last active port) and no
//! failover; when a port is usable again it reports `group_recovered` with
//! the outage since the loss (since the first snapshot if the group never
//! had traffic), and a `failover` with cause `link_up` and the same outage
//! when traffic resumes on a different port than before.
//!
//! An operator's `set-active` needs a usable port and holds against
//! preemption until that port stops being usable or the choice is cleared;
//! then the usual rules apply at once (a better port that has been steady
//! for `preempt_delay` preempts right away).

mod damping;
mod group;
mod port;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::event::{Kind, What};
use crate::platform::{LinkState, Update};

pub use group::Group;
pub use port::{Port, PortLink};

/// Something the engine is told.
#[derive(Debug)]
pub enum Input {
    /// Kernel news from the platform.
    Platform(Update),
    /// The deadline from [`Engine::next_deadline`] has passed (extra ticks
    /// are harmless).
    Tick,
    /// The kernel answered an [`Action`] about `port` of `group`.
    ActionDone {
        group: String,
        port: String,
        result: Result<(), String>,
    },
}

/// An operator's request. Refused with a reason when it cannot be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Move traffic of `group` to `port` and keep it there until the port
    /// fails; `None` clears a previous choice.
    SetActive { group: String, port: Option<String> },
    /// Trust a damped port again at once; `None` means every port (of every
    /// group when `group` is `None` too).
    ClearDamping {
        group: Option<String>,
        port: Option<String>,
    },
}

/// Something the daemon must do for the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make the kernel aggregate `group` transmit on `port` (bond: set the
    /// active slave; lagg: make `port` the MASTER by reordering ports).
    SetActive { group: String, port: String },
    /// Take `port` out of service (`up: false`) or back (`up: true`) by
    /// its administrative state: lagg's flap damping.
    SetAdminUp {
        group: String,
        port: String,
        up: bool,
    },
}

/// What one input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// What happened, in order, for the daemon to stamp and publish.
    pub events: Vec<What>,
    /// What the daemon must ask of the kernel.
    pub actions: Vec<Action>,
}

/// The state of every group, and the rules that move it.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    groups: Vec<Group>,
    interfaces: Interfaces,
}

/// What the engine knows of every interface, configured or not.
#[derive(Debug, Default)]
struct Interfaces {
    /// Whether a snapshot arrived: before that, an interface not listed
    /// may still exist.
    synced: bool,
    /// Interfaces that exist, by name.
    links: HashMap<String, LinkState>,
}

impl Interfaces {
    /// The link a port called `name` has.
    fn link(&self, name: &str) -> PortLink {
        if !self.synced {
            return PortLink::Unknown;
        }
        self.links
            .get(name)
            .map_or(PortLink::Missing, |state| PortLink::present(*state))
    }
}

impl Engine {
    /// An engine that knows nothing of the kernel yet: every port is
    /// [`PortLink::Unknown`] until the first [`Update::Snapshot`].
    pub fn new(config: Arc<Config>) -> Engine {
        let groups = config.groups.iter().cloned().map(Group::new).collect();
        Engine {
            config,
            groups,
            interfaces: Interfaces::default(),
        }
    }

    /// The config in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Every group, in config order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.name() == name)
    }

    /// Whether the first snapshot arrived (before it nothing is chosen).
    pub fn synced(&self) -> bool {
        self.interfaces.synced
    }

    /// Takes one input at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) -> Output {
        let mut out = Output::default();
        match input {
            Input::Platform(update) => self.platform(now, update, &mut out.events),
            Input::Tick => self.tick(now, &mut out.events),
            Input::ActionDone {
                group,
                port,
                result,
            } => self.action_done(&group, &port, result, &mut out.events),
        }
        out
    }

    /// Runs an operator's command at `now`; the error is a sentence for
    /// the operator, and a refused command changes nothing.
    pub fn command(&mut self, now: Instant, cmd: Command) -> Result<Output, String> {
        let mut out = Output::default();
        match cmd {
            Command::SetActive { group, port } => {
                self.set_active(now, &group, port.as_deref(), &mut out.events)?
            }
            Command::ClearDamping { group, port } => {
                self.clear_damping(now, group.as_deref(), port.as_deref(), &mut out.events)?
            }
        }
        Ok(out)
    }

    /// Takes a new config (a reload). Groups and ports that remain keep
    /// all their state; new ones start from what is known of their
    /// interfaces; removed ones vanish without a word. Then every group is
    /// evaluated under the new rules.
    pub fn reconfigure(&mut self, now: Instant, config: Arc<Config>) -> Output {
        let mut out = Output::default();
        let mut old = std::mem::take(&mut self.groups);
        for group_config in &config.groups {
            let interfaces = &self.interfaces;
            let link_of = |name: &str| interfaces.link(name);
            let kept = old
                .iter()
                .position(|group| group.name() == group_config.name)
                .map(|index| old.swap_remove(index));
            let mut group = match kept {
                Some(mut group) => {
                    group.reconfigure(now, group_config.clone(), link_of, &mut out.events);
                    group
                }
                None => {
                    let mut group = Group::new(group_config.clone());
                    group.sync_links(now, link_of, &mut out.events);
                    group
                }
            };
            if interfaces.synced {
                group.evaluate(now, &mut out.events);
            }
            self.groups.push(group);
        }
        self.config = config;
        out
    }

    /// The earliest moment a [`Input::Tick`] could change something: a
    /// damping ending or a better port becoming steady enough to preempt.
    /// `None` when only new input can change anything.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups.iter().filter_map(Group::next_deadline).min()
    }

    fn platform(&mut self, now: Instant, update: Update, out: &mut Vec<What>) {
        match update {
            Update::Link(link) => {
                self.interfaces.links.insert(link.name.clone(), link.state);
                self.interface_changed(now, &link.name, out);
            }
            Update::Gone { name, .. } => {
                self.interfaces.links.remove(&name);
                self.interface_changed(now, &name, out);
            }
            Update::Snapshot(links) => {
                self.interfaces.synced = true;
                self.interfaces.links = links
                    .into_iter()
                    .map(|link| (link.name, link.state))
                    .collect();
                self.resync(now, out);
            }
            // Kernel aggregates: not used by `driver: none` groups.
            Update::Aggregate(_) | Update::AggregateGone { .. } => {}
        }
    }

    /// Passes the news about one interface to the groups that have it.
    fn interface_changed(&mut self, now: Instant, name: &str, out: &mut Vec<What>) {
        if !self.interfaces.synced {
            return;
        }
        let link = self.interfaces.link(name);
        for group in &mut self.groups {
            if group.set_link(now, name, link, out) {
                group.evaluate(now, out);
            }
        }
    }

    /// Brings every port in line with the interfaces after a snapshot.
    fn resync(&mut self, now: Instant, out: &mut Vec<What>) {
        let interfaces = &self.interfaces;
        for group in &mut self.groups {
            group.sync_links(now, |name| interfaces.link(name), out);
            group.evaluate(now, out);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<What>) {
        for group in &mut self.groups {
            group.expire_dampings(now, out);
            if self.interfaces.synced {
                group.evaluate(now, out);
            }
        }
    }

    /// Reports a kernel that refused to make a port active.
    fn action_done(
        &mut self,
        group: &str,
        port: &str,
        result: Result<(), String>,
        out: &mut Vec<What>,
    ) {
        let Err(error) = result else {
            return;
        };
        // A group dropped by a reload meanwhile is no longer reported on.
        if self.group(group).is_some() {
            out.push(What {
                error: Some(error),
                ..What::port(group, Kind::EnforceFailed, port)
            });
        }
    }

    fn set_active(
        &mut self,
        now: Instant,
        group: &str,
        port: Option<&str>,
        out: &mut Vec<What>,
    ) -> Result<(), String> {
        let synced = self.interfaces.synced;
        let group = self.group_mut(group)?;
        group.set_operator(port)?;
        if synced {
            group.evaluate(now, out);
        }
        Ok(())
    }

    /// Clears damping of `port` in `group`; either or both may be `None`
    /// for "every". Checks everything before changing anything.
    fn clear_damping(
        &mut self,
        now: Instant,
        group: Option<&str>,
        port: Option<&str>,
        out: &mut Vec<What>,
    ) -> Result<(), String> {
        let targets = self.clear_damping_targets(group, port)?;
        let synced = self.interfaces.synced;
        for index in targets {
            let group = &mut self.groups[index];
            group.clear_damping(now, port, out)?;
            if synced {
                group.evaluate(now, out);
            }
        }
        Ok(())
    }

    /// The groups a clear-damping applies to, or why it cannot apply.
    fn clear_damping_targets(
        &self,
        group: Option<&str>,
        port: Option<&str>,
    ) -> Result<Vec<usize>, String> {
        if let Some(name) = group {
            let index = self.group_index(name)?;
            if let Some(port) = port.filter(|port| !self.groups[index].has_port(port)) {
                return Err(format!("port {port} is not in group {name}"));
            }
            return Ok(vec![index]);
        }
        let targets: Vec<usize> = (0..self.groups.len())
            .filter(|&index| port.is_none_or(|port| self.groups[index].has_port(port)))
            .collect();
        match port {
            Some(port) if targets.is_empty() => Err(format!("no group has port {port}")),
            _ => Ok(targets),
        }
    }

    fn group_index(&self, name: &str) -> Result<usize, String> {
        self.groups
            .iter()
            .position(|group| group.name() == name)
            .ok_or_else(|| format!("no group {name}"))
    }

    fn group_mut(&mut self, name: &str) -> Result<&mut Group, String> {
        let index = self.group_index(name)?;
        Ok(&mut self.groups[index])
    }
}
