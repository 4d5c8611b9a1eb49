//! The failover engine: a plain state machine with no I/O and no clock.
//!
//! Inputs (link updates, snapshots, path verdicts, timer ticks, operator
//! commands, a new config) go in with `now`; events, actions and the next deadline come
//! out. Every policy lives here: priority order, the hold-down before
//! preempting, flap damping, what counts as a failover and how long its
//! outage was. The daemon drives it; tests drive it with synthetic time.
//!
//! # Policy
//!
//! A port is *usable* when it exists, its link is up, it is not damped and
//! its path is not down (see "Paths" below; without a `probe` the path is
//! `off` and never matters). The engine's *choice* for a group is:
//! 1. the operator's `set-active` port while it stays usable (an operator
//!    choice is dropped as soon as that port stops being usable);
//! 2. else the current active port if it is usable and no better port
//!    may preempt it; a better (earlier in `ports`) usable port preempts
//!    only with `preempt: true` once it has been usable for
//!    `preempt_delay` without interruption (the clock restarts on every
//!    link change, path change to or from `down`, and at the end of its
//!    damping; a port whose path is `unknown` does not preempt); when
//!    several may, the best of them wins;
//! 3. else the first usable port in priority order, at once;
//! 4. else, when no port has a working path but some have link and are
//!    not damped: the active port if it is one of them, else the first of
//!    them (`all_paths_down`, see "Paths");
//! 5. else none: `all_ports_down` (once), and `group_recovered` with the
//!    outage when the first port is usable again.
//!
//! A port changing link more than `max_flaps` times within `window` is
//! damped for `hold`, doubled on each repeat up to 8x; the multiplier goes
//! back to 1x after a quiet `hold` with no damping. A configured port the
//! kernel does not have is `port_missing` and never chosen; when it
//! appears, `port_found`.
//!
//! With `driver: none` the engine's choice *is* the active port. With a
//! kernel aggregate the kernel's active port is observed and reported, and
//! the choice only decides what laggmond asks of the kernel (see "Kernel
//! aggregates" below).
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
//! ## Paths
//!
//! A group with a `probe` keeps per port the state of the path beyond it,
//! as the probes judge it ([`Input::Path`]): `unknown` at the start and
//! whenever the link changes (a verdict is about the link it was made
//! on, so while the link is not up the path is `unknown`, and the latest
//! round trip is forgotten), then `up` or `down`. A verdict about a port
//! whose link is not up, or in a group without `probe`, is ignored as
//! stale. Without a `probe` every path is `off`.
//!
//! `unknown` counts as usable: a group whose probes have not answered yet
//! is not left without traffic. Such a port takes over when the active
//! port fails, but does not preempt a working port until its path is
//! `up`. `down` is not usable: a path going down on the active port moves
//! traffic at once to the best usable port, a `failover` with cause
//! `path_down` (no outage figure: the path died before the probes could
//! tell). A path coming back restarts the preempt clock and takes traffic
//! back after `preempt_delay` (cause `preempt`), exactly as a link coming
//! back. The first `down` after the link came up is `path_down`, a change
//! from `down` to `up` is `path_up` (with the round trip); the first `up`
//! is silent, as a first link state is.
//!
//! A change between `up` and `down` is a transition for flap damping,
//! counted with the link's: a path that flaps gets the port damped as a
//! link that flaps does. The first verdict after the link came up is not
//! one.
//!
//! When no port has a working path but some have link and are not damped,
//! a target that stopped answering must not leave the group without any
//! port: traffic stays on (or goes to) the best such port (rule 4) and the
//! group reports `all_paths_down` (crit) once, with the port that carries
//! traffic, and `paths_recovered` with the port that has a working path
//! when one does again (also when that follows an `all_ports_down` and
//! its `group_recovered`). `all_ports_down` keeps its meaning: no port has
//! link.
//!
//! A reload keeps each remaining port's path; one that adds a `probe`
//! starts its ports at `unknown`, one that removes it turns them `off`.
//!
//! ## Failovers and outages
//!
//! Every change of the active port is one `failover`, never from a port to
//! itself, with a cause: `link_down` or `removed` when the active port
//! lost link or vanished (outage 0 ms: the next port takes over at once;
//! a port dropped from the config by a reload is `removed` with no outage,
//! its interface still works), `damped` when it was damped with link up
//! (no outage), `path_down` when its path died with link up (see
//! "Paths"), `preempt` and `operator` (no outage). When no port is left
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
//!
//! ## Kernel aggregates (`driver: bond` and `lagg`)
//!
//! *Existence.* The aggregate interface is known from the link table by
//! the group's name; its details come in [`Update::Aggregate`]. Until the
//! group has a snapshot and a view of its aggregate, nothing is chosen or
//! reported. An aggregate interface absent after a snapshot is
//! `port_missing` with the group's name as port (once), and `port_found`
//! when it appears again. While it is missing, or exists without a view
//! (after [`Update::AggregateGone`]), the group has no active port, its
//! ports are `unknown`, nothing is reported about them and nothing is
//! asked; when it is back, the group starts over as at the first snapshot.
//!
//! *Members.* A configured port that is not a member is `missing`
//! (`port_missing` once, also when its interface exists: it is not
//! enslaved) and never usable; becoming a member is `port_found`. A member
//! that is not configured is `port_unexpected`, once each time it becomes
//! a member (a reload that drops a member from the config reports it too).
//!
//! *Mode.* An aggregate not in failover mode is `unsupported_mode` (with
//! the mode), once per mode, and left alone: port events are still
//! reported, but no failover, no outage and no action; the group shows
//! the kernel's active port as the kernel has it. Back in failover mode
//! the group starts over silently.
//!
//! *Failovers.* The active port is the kernel's, even a port that is not
//! configured. Each change is one `failover`, its cause inferred in order:
//! 1. the port laggmond asked for: the reason it asked (`preempt`,
//!    `operator`, `damped` or `path_down`);
//! 2. the old port is missing or left the aggregate: `removed`; laggmond
//!    holds it down: `damped`; it has no link: `link_down`. The outage is
//!    the time since the engine saw that change (0 when it saw none);
//! 3. the new port is the kernel's own `primary`, the kernel preempts by
//!    itself (lagg; a bond with `primary_reselect`) and the port came up
//!    within `max(preempt_delay, 5 s)` or was just given back: `link_up`;
//! 4. else `external`: someone else changed it. A preempt then waits for
//!    `preempt_delay` counted from that change.
//!
//! The kernel losing its active port is `all_ports_down` and getting one
//! back `group_recovered` (with a `link_up` failover when it is another
//! port), with the outages of `driver: none`.
//!
//! *Enforcement* (`enforce: true`, failover mode, one `SetActive` at a
//! time). Bond: when the choice differs from the kernel's active port and
//! that port has link (one without link is the business of the bond's own
//! link monitor, which laggmond does not race), [`Action::SetActive`] with
//! its reason; an active port that is not configured ranks below every
//! configured one. lagg: the kernel always sends on its MASTER when that has
//! link, so traffic cannot be held back; enforcing means making the
//! configured primary (or the operator's port) the MASTER, which the
//! platform does by removing and re-adding ports: announced by `enforcing`
//! (port: the new MASTER, from: the old one), then [`Action::SetActive`].
//! An automatic reorder needs `preempt: true`, every configured member
//! usable and steady for `preempt_delay` (a reorder bounces them all), the
//! hold-off after an external change over, and no reorder started within
//! `max(preempt_delay, 1 s)`; an operator's is done at once. While a
//! reorder is unanswered the kernel's views are set aside (their
//! intermediate states are laggmond's own doing) and the latest is taken
//! with the answer.
//!
//! An action is done when the kernel shows it (bond: the port is active;
//! lagg: it is MASTER), with `primary_restored` after the failover when
//! laggmond's own enforcement (not an operator) brought the configured
//! primary back. It failed, `enforce_failed` with the error, when the
//! answer is an error, when the kernel did not show it within 2 s of
//! accepting it ("the kernel did not switch"), or when no answer came
//! within 30 s. That target is then not tried again for
//! `max(preempt_delay, 1 s)`, unless an operator asks for it.
//!
//! *Paths.* The kernel sees carrier only. Bond: the choice leaves an
//! active port whose path is down for a usable one (reason `path_down`;
//! a port with link is laggmond's to act on, unlike one without) and
//! comes back after `preempt_delay` by the usual preempt. lagg: a reorder
//! never makes a port with a dead path the MASTER and waits for every
//! member's path to be `up`. lagg sends on its MASTER whenever that has
//! link and falls back to the next member with link, so with `enforce` a
//! member whose path is down is taken out of the lagg
//! ([`Action::RemovePort`], announced by `enforcing` with the port and
//! cause `path_down`) while another configured member that stays in has
//! a path `up` (an `unknown` path is not enough: the lagg must never be
//! left without a port known to work). Not a damped port (damping holds
//! it down instead), nor one held down. Once out it keeps its link and is
//! still probed; its absence from the members is not `port_missing`, and
//! the kernel's move away from it is a `failover` with cause `path_down`.
//! It goes back ([`Action::AddPort`]; lagg adds it after the others, so
//! the configured primary comes back as MASTER by the reorder above) when
//! its path has been `up` for `preempt_delay` (the clock of "Paths"), at
//! once when no member left in the lagg has a path `up` (a dead path
//! everywhere must not leave the lagg with fewer ports), and when the
//! group stops enforcing, loses its probe, leaves failover mode or goes
//! away, and at [`Engine::shutdown`]. A port whose interface vanishes, or
//! that someone else puts back, is forgotten (and may be taken out again).
//! One change of the lagg's ports at a time (a removal, an addition or a
//! reorder, each waiting for the previous answer); a removal or reorder
//! starts no sooner than `max(preempt_delay, 1 s)` after the previous
//! change started (an addition is not held back, but starts that clock).
//! A failed removal or addition is `enforce_failed` and is tried again
//! after the same backoff; the port is then where the kernel shows it,
//! and one out of the lagg stays laggmond's to put back. The operator cannot choose a port that is out.
//!
//! *Damping.* Bond: the choice leaves a damped active port for a usable
//! one (reason `damped`). lagg, with `enforce`: a damped member is taken
//! out of service by [`Action::SetAdminUp`] `up: false` while another port
//! is usable, and given back (`up: true`) when its damping ends, when no
//! other port is usable any more, when it leaves the aggregate, or when the
//! group stops enforcing or goes away; [`Engine::shutdown`] gives every
//! held port back. While held, its link changes (it reads down without
//! `IFF_UP`) are recorded silently and are not flaps; once given back, its
//! first link change is taken the same way. A failed admin change is
//! `enforce_failed` and is tried again after the same backoff.
//!
//! `enforce: false` only reports: no action ever, and `set-active` is
//! refused. On a kernel group the operator's `set-active` asks the kernel
//! (reason `operator`) and sticks as with `driver: none`.

mod damping;
mod group;
mod port;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, Driver};
use crate::event::{Kind, What};
use crate::platform::kernel::{Aggregate, Answer, LinkState, Update};
use crate::probe::PathReport;

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
    /// A port's probes judged its path anew; news about a group or port
    /// the config no longer has is ignored.
    Path(PathReport),
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
    /// Take `port` out of the lagg `group` (`SIOCSLAGGDELPORT`): lagg sends
    /// on its MASTER whenever that has link, and falls back to the next
    /// port with link, so a port whose path is dead can only be kept from
    /// carrying traffic by not being a member. Its link stays up, so its
    /// probes go on.
    RemovePort { group: String, port: String },
    /// Put `port` back into the lagg `group` (`SIOCSLAGGPORT`), after a
    /// [`Action::RemovePort`]: its path works again, no other port's does,
    /// or laggmond stops managing it.
    AddPort { group: String, port: String },
}

/// What one input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// What happened, in order, for the daemon to stamp and publish.
    pub events: Vec<What>,
    /// What the daemon must ask of the kernel.
    pub actions: Vec<Action>,
    /// What the operator should change in the kernel's settings, for the
    /// daemon to log.
    pub notices: Vec<Notice>,
}

/// A kernel setting that works against laggmond's policy. Said once per
/// group, and again only after it was fixed and came back: advice for the
/// log, not an event, since nothing happened to the traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The bond `group` moves traffic back to its own `primary` as soon as
    /// that has link (`primary_reselect` `always` or `better`), racing
    /// laggmond's `preempt_delay`. lagg always does this and cannot be told
    /// otherwise, so only bonds are named.
    KernelPreempts {
        group: String,
        primary: Option<String>,
    },
    /// The bond `group` runs its own ARP monitor (`arp_interval` above 0)
    /// while the group has a `probe`: two monitors judge the same paths,
    /// on their own timers and targets, and the bond moves traffic on its
    /// verdicts as laggmond moves it on its own, so the two may fight.
    KernelArpMonitor { group: String },
}

/// The state of every group, and the rules that move it.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    groups: Vec<Group>,
    /// The groups each interface name concerns (their ports, and a kernel
    /// group's own aggregate), so that news about one interface costs the
    /// same however many groups there are.
    by_interface: HashMap<String, Vec<usize>>,
    interfaces: Interfaces,
    /// Groups already given [`Notice::KernelPreempts`], by name, so that
    /// a reload does not repeat it.
    told_kernel_preempts: HashSet<String>,
    /// Groups already given [`Notice::KernelArpMonitor`], by name, for the
    /// same reason.
    told_arp_monitor: HashSet<String>,
}

/// What the engine knows of every interface, configured or not, and of
/// every kernel aggregate.
#[derive(Debug, Default)]
pub(crate) struct Interfaces {
    /// Whether a snapshot arrived: before that, an interface not listed
    /// may still exist.
    synced: bool,
    /// Interfaces that exist, by name.
    links: HashMap<String, LinkState>,
    /// The kernel's latest view of each aggregate, by name; kept for
    /// groups a reload may add.
    aggregates: HashMap<String, Aggregate>,
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
        let groups: Vec<Group> = config.groups.iter().cloned().map(Group::new).collect();
        Engine {
            config,
            by_interface: index_by_interface(&groups),
            groups,
            interfaces: Interfaces::default(),
            told_kernel_preempts: HashSet::new(),
            told_arp_monitor: HashSet::new(),
        }
    }

    /// The config in force.
    #[cfg(test)]
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Every group, in config order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The group called `name`.
    #[cfg(test)]
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.name() == name)
    }

    /// Whether the first snapshot arrived (before it nothing is chosen).
    #[cfg(test)]
    pub fn synced(&self) -> bool {
        self.interfaces.synced
    }

    /// Takes one input at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) -> Output {
        let mut out = Output::default();
        match input {
            Input::Platform(update) => self.platform(now, update, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::Path(report) => self.path(now, report, &mut out),
        }
        out
    }

    /// Runs an operator's command at `now`; the error is a sentence for
    /// the operator, and a refused command changes nothing.
    pub fn command(&mut self, now: Instant, cmd: Command) -> Result<Output, String> {
        let mut out = Output::default();
        match cmd {
            Command::SetActive { group, port } => {
                self.set_active(now, &group, port.as_deref(), &mut out)?
            }
            Command::ClearDamping { group, port } => {
                self.clear_damping(now, group.as_deref(), port.as_deref(), &mut out)?
            }
        }
        Ok(out)
    }

    /// Takes a new config (a reload). Groups and ports that remain keep
    /// all their state (a group whose driver changed starts over); new
    /// ones start from what is known of their interfaces and aggregates;
    /// removed ones vanish without a word, after giving back any port
    /// laggmond held down or took out of its lagg. Then every group is
    /// evaluated under the new rules.
    pub fn reconfigure(&mut self, now: Instant, config: Arc<Config>) -> Output {
        let mut out = Output::default();
        let mut old = std::mem::take(&mut self.groups);
        for group_config in &config.groups {
            let known = &self.interfaces;
            let kept = old
                .iter()
                .position(|group| {
                    group.name() == group_config.name
                        && group.config().driver == group_config.driver
                })
                .map(|index| old.swap_remove(index));
            let mut group = match kept {
                Some(mut group) => {
                    group.reconfigure(now, group_config.clone(), known, &mut out);
                    group
                }
                None => {
                    let mut group = Group::new(group_config.clone());
                    if !group.is_kernel() {
                        group.sync_links(now, |name| known.link(name), &mut out.events);
                    }
                    group
                }
            };
            group.reconcile(now, known, &mut out);
            self.groups.push(group);
        }
        for mut group in old {
            group.release_all(&self.interfaces, &mut out);
        }
        self.by_interface = index_by_interface(&self.groups);
        self.config = config;
        out
    }

    /// What the daemon must do before it exits: give back every port
    /// laggmond took out of service or out of its lagg, so that none stays
    /// down or out without it.
    pub fn shutdown(&mut self) -> Output {
        let mut out = Output::default();
        for group in &mut self.groups {
            group.release_all(&self.interfaces, &mut out);
        }
        out
    }

    /// The earliest moment a [`Input::Tick`] could change something: a
    /// damping ending, a better port becoming steady enough to preempt, an
    /// action's timeout or a backoff ending. `None` when only new input
    /// can change anything.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups.iter().filter_map(Group::next_deadline).min()
    }

    fn platform(&mut self, now: Instant, update: Update, out: &mut Output) {
        match update {
            Update::Link(link) => {
                self.interfaces.links.insert(link.name.clone(), link.state);
                self.interface_changed(now, &link.name, out);
            }
            Update::Gone { name, .. } => {
                self.interfaces.links.remove(&name);
                self.interfaces.aggregates.remove(&name);
                self.interface_changed(now, &name, out);
            }
            Update::Snapshot(links) => {
                self.interfaces.synced = true;
                self.interfaces.links = links
                    .into_iter()
                    .map(|link| (link.name, link.state))
                    .collect();
                let links = &self.interfaces.links;
                self.interfaces
                    .aggregates
                    .retain(|name, _| links.contains_key(name));
                self.resync(now, out);
            }
            Update::Aggregate(view) => {
                self.check_kernel_policy(&view, out);
                self.check_kernel_monitor(&view, out);
                let name = view.name.clone();
                self.interfaces.aggregates.insert(name.clone(), view);
                self.aggregate_changed(now, &name, out);
            }
            Update::AggregateGone { name, .. } => {
                self.interfaces.aggregates.remove(&name);
                self.aggregate_changed(now, &name, out);
            }
            Update::Answer(Answer {
                group,
                port,
                result,
            }) => self.action_done(now, &group, &port, result, out),
        }
    }

    /// Tells the operator once per group when the kernel would move
    /// traffic back to its own primary by itself (see [`Notice`]); said
    /// again only after the setting was fixed and came back.
    fn check_kernel_policy(&mut self, view: &Aggregate, out: &mut Output) {
        let Some(group) = self.config.groups.iter().find(|g| g.name == view.name) else {
            return;
        };
        let fights = group.driver == Driver::Bond && group.enforce && view.kernel_preempts;
        if !fights {
            self.told_kernel_preempts.remove(&view.name);
        } else if self.told_kernel_preempts.insert(view.name.clone()) {
            out.notices.push(Notice::KernelPreempts {
                group: view.name.clone(),
                primary: view.primary.clone(),
            });
        }
    }

    /// Tells the operator once per group when the bond runs its own ARP
    /// monitor beside the group's path probes (see [`Notice`]); said again
    /// only after the monitor was turned off and came back. Not for a group
    /// without `probe`: there the bond's monitor is the only one.
    fn check_kernel_monitor(&mut self, view: &Aggregate, out: &mut Output) {
        let Some(group) = self.config.groups.iter().find(|g| g.name == view.name) else {
            return;
        };
        let fights = group.probe.is_some() && view.arp_monitor;
        if !fights {
            self.told_arp_monitor.remove(&view.name);
        } else if self.told_arp_monitor.insert(view.name.clone()) {
            out.notices.push(Notice::KernelArpMonitor {
                group: view.name.clone(),
            });
        }
    }

    /// Passes the news about one interface to the groups it concerns.
    fn interface_changed(&mut self, now: Instant, name: &str, out: &mut Output) {
        if !self.interfaces.synced {
            return;
        }
        let link = self.interfaces.link(name);
        let Some(indexes) = self.by_interface.get(name) else {
            return;
        };
        for &index in indexes {
            let group = &mut self.groups[index];
            if group.is_kernel() {
                group.reconcile(now, &self.interfaces, out);
            } else if group.set_link(now, name, link, &mut out.events) {
                group.evaluate(now, &mut out.events);
            }
        }
    }

    /// Passes the kernel's news about an aggregate to its group.
    fn aggregate_changed(&mut self, now: Instant, name: &str, out: &mut Output) {
        if !self.interfaces.synced {
            return;
        }
        let Some(indexes) = self.by_interface.get(name) else {
            return;
        };
        for &index in indexes {
            let group = &mut self.groups[index];
            if group.is_kernel() && group.name() == name {
                group.reconcile(now, &self.interfaces, out);
            }
        }
    }

    /// Brings every port in line with the interfaces after a snapshot.
    fn resync(&mut self, now: Instant, out: &mut Output) {
        let interfaces = &self.interfaces;
        for group in &mut self.groups {
            if !group.is_kernel() {
                group.sync_links(now, |name| interfaces.link(name), &mut out.events);
            }
            group.reconcile(now, interfaces, out);
        }
    }

    /// Passes a path verdict to its group, which acts on it at once.
    fn path(&mut self, now: Instant, report: PathReport, out: &mut Output) {
        let Ok(index) = self.group_index(&report.group) else {
            return;
        };
        let group = &mut self.groups[index];
        if group.set_path(now, &report.port, &report.verdict, &mut out.events) {
            group.reconcile(now, &self.interfaces, out);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Output) {
        for group in &mut self.groups {
            group.expire_dampings(now, &mut out.events);
            group.reconcile(now, &self.interfaces, out);
        }
    }

    /// Takes the kernel's answer to an action. Without a kernel aggregate
    /// only a failure is reported; a group dropped by a reload meanwhile
    /// is no longer reported on.
    fn action_done(
        &mut self,
        now: Instant,
        group: &str,
        port: &str,
        result: Result<(), String>,
        out: &mut Output,
    ) {
        let Ok(index) = self.group_index(group) else {
            return;
        };
        let group = &mut self.groups[index];
        if group.is_kernel() {
            group.action_done(now, port, result, &mut out.events);
            group.reconcile(now, &self.interfaces, out);
        } else if let Err(error) = result {
            out.events.push(What {
                error: Some(error),
                ..What::port(group.name(), Kind::EnforceFailed, port)
            });
        }
    }

    fn set_active(
        &mut self,
        now: Instant,
        group: &str,
        port: Option<&str>,
        out: &mut Output,
    ) -> Result<(), String> {
        let index = self.group_index(group)?;
        let group = &mut self.groups[index];
        group.set_operator(port)?;
        group.reconcile(now, &self.interfaces, out);
        Ok(())
    }

    /// Clears damping of `port` in `group`; either or both may be `None`
    /// for "every". Checks everything before changing anything.
    fn clear_damping(
        &mut self,
        now: Instant,
        group: Option<&str>,
        port: Option<&str>,
        out: &mut Output,
    ) -> Result<(), String> {
        let targets = self.clear_damping_targets(group, port)?;
        for index in targets {
            let group = &mut self.groups[index];
            group.clear_damping(now, port, &mut out.events)?;
            group.reconcile(now, &self.interfaces, out);
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
}

/// Maps every interface name to the groups it concerns, in group order.
fn index_by_interface(groups: &[Group]) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, group) in groups.iter().enumerate() {
        let aggregate = group.is_kernel().then(|| group.name());
        let ports = group.ports().iter().map(|port| port.name());
        for name in ports.chain(aggregate) {
            let groups = map.entry(name.to_owned()).or_default();
            if !groups.contains(&index) {
                groups.push(index);
            }
        }
    }
    map
}
