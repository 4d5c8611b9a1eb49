//! The FreeBSD platform's state machine: what the kernel said about every
//! interface and lagg, what the daemon has been told, and what must be
//! read next. No I/O and no clock: the platform task feeds it routing
//! messages and the results of its reads, passes the time where it
//! matters, and sends the [`Update`]s that come out.
//!
//! How laggs are found: an interface is a lagg when `SIOCGLAGG` succeeds on
//! it. Its `ifi_type` cannot tell: a lagg is `IFT_ETHER` like its ports,
//! and it is the *ports* that turn `IFT_IEEE8023ADLAG` while they are
//! members. Every interface is probed on a full read and on arrival; that
//! `ifi_type` is used only to notice that a port has just joined a lagg.
//!
//! When a lagg is read again: after every routing message about the lagg
//! or one of its members (lagg sends no message of its own about failover
//! or membership), after a port turned lagg member, on arrival of an
//! interface, when the platform's lagg poll asks
//! ([`LaggTable::reread_laggs`]), on the daemon's resync and after lost
//! messages (full read).
//!
//! Reorders: making a port MASTER removes and re-adds ports, whose links
//! bounce. From [`LaggTable::begin_settle`] until the lagg has settled, the
//! Link updates of its ports (and of the lagg itself) and its Aggregate
//! updates are held back; the state is still tracked. The window closes
//! once `min` has passed and every port is back in the link state it had
//! before, or after `max` at the latest; the lagg is then read once more
//! and its true link states and a fresh Aggregate are sent.
//!
//! Link changes are confirmed: any process that may write to the routing
//! socket can make it broadcast a message, and the routing socket does not
//! say who sent one. An `RTM_IFINFO` that would change an interface's link
//! state is therefore not applied but returned as a [`Claim`]; the platform
//! task reads the interface (`SIOCGIFFLAGS`, `SIOCGIFDATA`) at once and
//! hands the result to [`LaggTable::on_confirmation`], which believes the
//! read. A message the read contradicts moves nothing and is counted
//! ([`LaggTable::foreign_messages`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::time::{Duration, Instant};

use super::abi::IFT_IEEE8023ADLAG;
use super::kernel::Interface;
use super::lagg::LaggState;
use super::message::{parse, port_link_up, ParseError, RouteMessage};
use crate::platform::{Aggregate, Link, LinkState, Update};

/// How long the link events of a reordered lagg are held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleTime {
    /// At least this long after the reorder started, so that bounces that
    /// are reported late are still caught.
    pub min: Duration,
    /// At most this long, even when a port has not come back: then it is
    /// really down, and the daemon must hear it.
    pub max: Duration,
}

/// What the I/O layer must read next, from [`LaggTable::take_work`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Read every interface and probe each for a lagg, then call
    /// [`LaggTable::on_resync`].
    pub resync: bool,
    /// Read these interfaces (they attached), then call
    /// [`LaggTable::on_interface`] for each.
    pub interfaces: Vec<String>,
    /// Read these laggs, or interfaces that may be laggs, with `SIOCGLAGG`
    /// (after the interfaces), then call [`LaggTable::on_lagg`] for each.
    pub laggs: Vec<String>,
}

impl Work {
    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        !self.resync && self.interfaces.is_empty() && self.laggs.is_empty()
    }
}

/// A link change an `RTM_IFINFO` announced and the interface's own state
/// has not confirmed yet, from [`LaggTable::take_claims`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The interface's index.
    pub index: u32,
    /// The interface's name: what to read.
    pub name: String,
    /// The link state the message says the interface now has.
    pub state: LinkState,
}

/// A lagg as last read.
#[derive(Clone, Debug)]
struct KnownLagg {
    index: u32,
    state: LaggState,
}

/// The reorder window of one lagg.
#[derive(Clone, Debug)]
struct Settle {
    since: Instant,
    /// Link state before the reorder of every port and of the lagg: the
    /// interfaces whose updates are held back.
    before: BTreeMap<String, LinkState>,
    /// The final read of the lagg has been asked for.
    closing: bool,
}

/// The state machine; see the module documentation.
#[derive(Debug)]
pub struct LaggTable {
    settle_time: SettleTime,
    /// Every interface with known state, by index.
    interfaces: BTreeMap<u32, Interface>,
    /// Interfaces that attached and are not read yet, by index.
    arrived: BTreeMap<u32, String>,
    laggs: BTreeMap<String, KnownLagg>,
    /// What the daemon was told.
    reported_links: BTreeMap<u32, Link>,
    reported_aggregates: BTreeMap<String, Aggregate>,
    settling: BTreeMap<String, Settle>,
    settled: Vec<String>,
    want_resync: bool,
    want_interfaces: BTreeSet<String>,
    want_laggs: BTreeSet<String>,
    /// Link changes waiting for their confirmation, by index.
    claims: BTreeMap<u32, Claim>,
    /// Link changes the interface's own state contradicted.
    foreign: u64,
    /// A message of an unknown version was logged already.
    version_warned: bool,
}

impl LaggTable {
    /// A table that knows nothing yet and wants a full read.
    pub fn new(settle_time: SettleTime) -> LaggTable {
        LaggTable {
            settle_time,
            interfaces: BTreeMap::new(),
            arrived: BTreeMap::new(),
            laggs: BTreeMap::new(),
            reported_links: BTreeMap::new(),
            reported_aggregates: BTreeMap::new(),
            settling: BTreeMap::new(),
            settled: Vec::new(),
            want_resync: true,
            want_interfaces: BTreeSet::new(),
            want_laggs: BTreeSet::new(),
            claims: BTreeMap::new(),
            foreign: 0,
            version_warned: false,
        }
    }

    /// What must be read now; the table forgets it was wanted.
    pub fn take_work(&mut self) -> Work {
        Work {
            resync: std::mem::take(&mut self.want_resync),
            interfaces: std::mem::take(&mut self.want_interfaces)
                .into_iter()
                .collect(),
            laggs: std::mem::take(&mut self.want_laggs).into_iter().collect(),
        }
    }

    /// The link changes routing messages claimed since the last call: read
    /// each interface now and pass the result to
    /// [`on_confirmation`](LaggTable::on_confirmation) before anything else.
    pub fn take_claims(&mut self) -> Vec<Claim> {
        std::mem::take(&mut self.claims).into_values().collect()
    }

    /// The interface's own state, read for `claim`: it is what is
    /// recorded and reported, whatever the message said. A message that
    /// the read contradicts is counted as foreign. A failed read leaves
    /// the interface as it was: gone (`ENXIO`), its departure is on its
    /// way; otherwise a full read decides.
    pub fn on_confirmation(&mut self, claim: &Claim, read: io::Result<Interface>) -> Vec<Update> {
        let interface = match read {
            Ok(interface) if interface.index == claim.index && interface.name == claim.name => {
                interface
            }
            Ok(other) => {
                tracing::debug!(
                    "reading {} to confirm its link returned {} at index {}; re-reading all",
                    claim.name,
                    other.name,
                    other.index
                );
                self.want_resync = true;
                return Vec::new();
            }
            Err(error) => {
                if error.raw_os_error() != Some(libc::ENXIO) {
                    tracing::warn!(
                        "cannot read {} to confirm its link: {error}; re-reading all",
                        claim.name
                    );
                    self.want_resync = true;
                }
                return Vec::new();
            }
        };
        let actual = interface.link_state();
        if actual != claim.state {
            self.foreign += 1;
            tracing::debug!(
                "a routing message says {} is {:?} but the interface is {actual:?}; not believed",
                claim.name,
                claim.state
            );
        }
        let Some(known) = self.interfaces.get_mut(&claim.index) else {
            return Vec::new();
        };
        let if_type = interface.if_type;
        *known = interface;
        self.want_laggs_for(&claim.name, if_type);
        self.sync_link(claim.index).into_iter().collect()
    }

    /// How many link changes announced by routing messages the interfaces'
    /// own state contradicted: messages that cannot have come from the
    /// kernel, or news already outdated when read.
    pub fn foreign_messages(&self) -> u64 {
        self.foreign
    }

    /// The daemon asked for a full read (periodic resync).
    pub fn request_resync(&mut self) {
        self.want_resync = true;
    }

    /// Time to read every lagg again: membership changes that bounced no
    /// link sent no message.
    pub fn reread_laggs(&mut self) {
        self.want_laggs.extend(self.laggs.keys().cloned());
    }

    /// The routing socket overflowed (`ENOBUFS`): messages were lost, read
    /// everything. Returns whether this is news (no full read was due), so
    /// that a flood of overflows is logged once.
    pub fn messages_lost(&mut self) -> bool {
        !std::mem::replace(&mut self.want_resync, true)
    }

    /// One read of the routing socket. Messages of other types are
    /// skipped; a bad message is logged and skipped, and since it may have
    /// been about an interface, a full read follows (except for a foreign
    /// version, which would repeat with every message).
    pub fn on_read(&mut self, bytes: &[u8]) -> Vec<Update> {
        match parse(bytes) {
            Ok(Some(message)) => self.on_message(message),
            Ok(None) => Vec::new(),
            Err(ParseError::Version { version }) => {
                if !std::mem::replace(&mut self.version_warned, true) {
                    tracing::warn!(
                        "routing message version {version} is not understood; such \
                         messages are skipped and only full re-reads see their news"
                    );
                }
                Vec::new()
            }
            Err(error) => {
                tracing::warn!("{error}; skipped, re-reading all interfaces");
                self.want_resync = true;
                Vec::new()
            }
        }
    }

    /// One parsed routing message.
    pub fn on_message(&mut self, message: RouteMessage) -> Vec<Update> {
        match message {
            RouteMessage::IfInfo {
                index,
                flags,
                link_state,
                if_type,
            } => self.on_ifinfo(u32::from(index), flags, link_state, if_type),
            RouteMessage::IfAnnounce {
                index,
                name,
                arrival: true,
            } => self.on_arrival(u32::from(index), name),
            RouteMessage::IfAnnounce {
                index,
                name,
                arrival: false,
            } => self.depart(u32::from(index), &name),
        }
    }

    /// The result of reading an interface that attached.
    pub fn on_interface(&mut self, name: &str, read: io::Result<Interface>) -> Vec<Update> {
        match read {
            Ok(interface) if interface.name == name => {
                self.arrived.retain(|_, arrived| arrived != name);
                let index = interface.index;
                let mut updates = self.drop_stale(index, name);
                self.interfaces.insert(index, interface);
                updates.extend(self.sync_link(index));
                updates
            }
            Ok(other) => {
                tracing::warn!(
                    "reading interface {name} returned {}; re-reading all interfaces",
                    other.name
                );
                self.want_resync = true;
                Vec::new()
            }
            Err(error) => {
                self.arrived.retain(|_, arrived| arrived != name);
                // ENXIO: it left again, and its departure is on its way.
                if error.raw_os_error() != Some(libc::ENXIO) {
                    tracing::warn!("cannot read interface {name}: {error}; re-reading all");
                    self.want_resync = true;
                }
                Vec::new()
            }
        }
    }

    /// The result of `SIOCGLAGG` on `name`: a failure means it is not (or
    /// no longer) a lagg.
    pub fn on_lagg(&mut self, name: &str, read: io::Result<LaggState>) -> Vec<Update> {
        let state = match read {
            Ok(state) => state,
            Err(error) => {
                let Some(known) = self.laggs.remove(name) else {
                    return Vec::new();
                };
                tracing::debug!("{name} is no longer a lagg: {error}");
                return self.lagg_gone(name, known);
            }
        };
        let Some(index) = self.index_of(name) else {
            tracing::debug!("lagg {name} is not a known interface; re-reading all");
            self.want_resync = true;
            return Vec::new();
        };
        let before = self
            .laggs
            .insert(name.to_owned(), KnownLagg { index, state })
            .map(|known| known.state);
        let mut members: BTreeSet<String> = port_names(before.as_ref()).collect();
        members.extend(port_names(self.laggs.get(name).map(|known| &known.state)));
        let mut updates = self.sync_links_named(members);
        updates.extend(self.sync_aggregate(name));
        if self.settling.get(name).is_some_and(|settle| settle.closing) {
            updates.extend(self.finish_settle(name));
        }
        updates
    }

    /// A full read: every interface and every lagg among them. Sends a
    /// Snapshot, then an Aggregate for each lagg (AggregateGone for the
    /// laggs that are no more). During a reorder window the held-back
    /// ports and lagg are shown as last reported.
    pub fn on_resync(
        &mut self,
        interfaces: Vec<Interface>,
        laggs: Vec<(String, LaggState)>,
    ) -> Vec<Update> {
        self.arrived.clear();
        self.interfaces = interfaces
            .into_iter()
            .map(|interface| (interface.index, interface))
            .collect();
        self.laggs = laggs
            .into_iter()
            .filter_map(|(name, state)| {
                let index = self.index_of(&name)?;
                Some((name, KnownLagg { index, state }))
            })
            .collect();

        let links: Vec<Link> = self
            .interfaces
            .values()
            .map(
                |interface| match self.reported_links.get(&interface.index) {
                    Some(reported) if self.held_back(&interface.name) => reported.clone(),
                    _ => self.link_of(interface),
                },
            )
            .collect();
        self.reported_links = links
            .iter()
            .map(|link| (link.index, link.clone()))
            .collect();
        let mut updates = vec![Update::Snapshot(links)];
        updates.extend(self.aggregates_after_resync());
        let closing: Vec<String> = self
            .settling
            .iter()
            .filter(|(_, settle)| settle.closing)
            .map(|(name, _)| name.clone())
            .collect();
        for name in closing {
            updates.extend(self.finish_settle(&name));
        }
        updates
    }

    /// A reorder of `lagg` starts now: hold back its updates.
    pub fn begin_settle(&mut self, lagg: &str, now: Instant) {
        let ports = port_names(self.laggs.get(lagg).map(|known| &known.state));
        let before = ports
            .chain(std::iter::once(lagg.to_owned()))
            .filter_map(|name| {
                let state = self.interface_named(&name)?.link_state();
                Some((name, state))
            })
            .collect();
        let settle = Settle {
            since: now,
            before,
            closing: false,
        };
        self.settling.insert(lagg.to_owned(), settle);
    }

    /// Whether a reorder of `lagg` has not settled yet.
    pub fn is_settling(&self, lagg: &str) -> bool {
        self.settling.contains_key(lagg)
    }

    /// Lets time pass: reorder windows that are over ask for the lagg's
    /// final read.
    pub fn poll(&mut self, now: Instant) {
        let over: Vec<String> = self
            .settling
            .iter()
            .filter(|(_, settle)| !settle.closing && self.settle_over(settle, now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in over {
            if let Some(settle) = self.settling.get_mut(&name) {
                settle.closing = true;
            }
            self.want_laggs.insert(name);
        }
    }

    /// When [`poll`](LaggTable::poll) should be called next, if a window is
    /// open.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.settling
            .values()
            .filter(|settle| !settle.closing)
            .map(|settle| {
                let earliest = settle.since + self.settle_time.min;
                if now < earliest {
                    earliest
                } else {
                    settle.since + self.settle_time.max
                }
            })
            .min()
    }

    /// The laggs whose reorder window closed since the last call (their
    /// final updates were returned already): the answers to their
    /// requests are due.
    pub fn take_settled(&mut self) -> Vec<String> {
        std::mem::take(&mut self.settled)
    }

    fn on_ifinfo(&mut self, index: u32, flags: i32, link_state: u8, if_type: u8) -> Vec<Update> {
        let name = if let Some(name) = self.arrived.remove(&index) {
            self.interfaces.insert(
                index,
                Interface {
                    index,
                    name: name.clone(),
                    flags,
                    link_state,
                    if_type,
                },
            );
            name
        } else if let Some(interface) = self.interfaces.get_mut(&index) {
            let claimed = LinkState::from_up(port_link_up(flags, link_state));
            if claimed != interface.link_state() {
                // Not applied before the interface itself confirms it.
                let claim = Claim {
                    index,
                    name: interface.name.clone(),
                    state: claimed,
                };
                self.claims.insert(index, claim);
                return Vec::new();
            }
            interface.flags = flags;
            interface.link_state = link_state;
            interface.if_type = if_type;
            interface.name.clone()
        } else {
            tracing::debug!("RTM_IFINFO for unknown interface index {index}; re-reading all");
            self.want_resync = true;
            return Vec::new();
        };
        self.want_laggs_for(&name, if_type);
        self.sync_link(index).into_iter().collect()
    }

    /// An interface attached (or was renamed to `name`): read it, and probe
    /// whether it is a lagg. An arrival of an interface already known by
    /// that name and index (announced before a full read that saw it) only
    /// re-reads it.
    fn on_arrival(&mut self, index: u32, name: String) -> Vec<Update> {
        let known = self
            .interfaces
            .get(&index)
            .map(|interface| interface.name.clone());
        let updates = match known {
            Some(old) if old == name => Vec::new(),
            // The index is known under another name: its departure was lost.
            Some(old) => self.depart(index, &old),
            None => {
                self.arrived.insert(index, name.clone());
                Vec::new()
            }
        };
        self.want_interfaces.insert(name.clone());
        self.want_laggs.insert(name);
        updates
    }

    /// An interface detached (or was renamed away from `name`).
    fn depart(&mut self, index: u32, name: &str) -> Vec<Update> {
        self.arrived.remove(&index);
        let name = self
            .interfaces
            .remove(&index)
            .map_or_else(|| name.to_owned(), |interface| interface.name);
        let mut updates = Vec::new();
        if self.reported_links.remove(&index).is_some() {
            updates.push(Update::Gone {
                index,
                name: name.clone(),
            });
        }
        if let Some(known) = self.laggs.remove(&name) {
            updates.extend(self.lagg_gone(&name, known));
        } else if let Some(lagg) = self.lagg_of(&name) {
            self.want_laggs.insert(lagg);
        }
        updates
    }

    /// `name` stopped being a lagg: its ports lose their master, the
    /// daemon hears AggregateGone, and a reorder window on it is over.
    fn lagg_gone(&mut self, name: &str, known: KnownLagg) -> Vec<Update> {
        if self.settling.remove(name).is_some() {
            self.settled.push(name.to_owned());
        }
        let mut updates = Vec::new();
        if self.reported_aggregates.remove(name).is_some() {
            updates.push(Update::AggregateGone {
                index: known.index,
                name: name.to_owned(),
            });
        }
        updates.extend(self.sync_links_named(port_names(Some(&known.state))));
        updates
    }

    /// Which laggs a message about `name` makes worth reading.
    fn want_laggs_for(&mut self, name: &str, if_type: u8) {
        if self.laggs.contains_key(name) {
            self.want_laggs.insert(name.to_owned());
        } else if let Some(lagg) = self.lagg_of(name) {
            self.want_laggs.insert(lagg);
        } else if if_type == IFT_IEEE8023ADLAG {
            // A port that just joined a lagg: which one, only a read says.
            self.want_laggs.extend(self.laggs.keys().cloned());
        }
    }

    /// Whether the window of `settle` can close at `now`.
    fn settle_over(&self, settle: &Settle, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(settle.since);
        if elapsed >= self.settle_time.max {
            return true;
        }
        elapsed >= self.settle_time.min
            && settle.before.iter().all(|(name, before)| {
                self.interface_named(name)
                    .is_some_and(|interface| interface.link_state() == *before)
            })
    }

    /// Closes the window of `name`: the true link states of its ports,
    /// then a fresh Aggregate, whether or not it changed.
    fn finish_settle(&mut self, name: &str) -> Vec<Update> {
        let Some(settle) = self.settling.remove(name) else {
            return Vec::new();
        };
        self.settled.push(name.to_owned());
        let mut ports: BTreeSet<String> = settle.before.into_keys().collect();
        ports.extend(port_names(self.laggs.get(name).map(|known| &known.state)));
        let mut updates = self.sync_links_named(ports);
        if let Some(aggregate) = self.aggregate(name) {
            self.reported_aggregates
                .insert(name.to_owned(), aggregate.clone());
            updates.push(Update::Aggregate(aggregate));
        }
        updates
    }

    /// AggregateGone for the laggs a full read no longer shows, then an
    /// Aggregate for each lagg.
    fn aggregates_after_resync(&mut self) -> Vec<Update> {
        let mut updates = Vec::new();
        let vanished: Vec<String> = self
            .reported_aggregates
            .keys()
            .chain(self.settling.keys())
            .filter(|name| !self.laggs.contains_key(*name))
            .cloned()
            .collect();
        for name in vanished {
            if self.settling.remove(&name).is_some() {
                self.settled.push(name.clone());
            }
            if let Some(gone) = self.reported_aggregates.remove(&name) {
                updates.push(Update::AggregateGone {
                    index: gone.index,
                    name,
                });
            }
        }
        let names: Vec<String> = self.laggs.keys().cloned().collect();
        for name in names {
            let aggregate = match self.reported_aggregates.get(&name) {
                Some(reported) if self.settling.contains_key(&name) => Some(reported.clone()),
                _ => self.aggregate(&name),
            };
            if let Some(aggregate) = aggregate {
                self.reported_aggregates.insert(name, aggregate.clone());
                updates.push(Update::Aggregate(aggregate));
            }
        }
        updates
    }

    /// The Link update for interface `index`, if the daemon has not been
    /// told this yet and it is not held back.
    fn sync_link(&mut self, index: u32) -> Option<Update> {
        let interface = self.interfaces.get(&index)?;
        if self.held_back(&interface.name) {
            return None;
        }
        let link = self.link_of(interface);
        if self.reported_links.get(&index) == Some(&link) {
            return None;
        }
        self.reported_links.insert(index, link.clone());
        Some(Update::Link(link))
    }

    /// [`sync_link`](LaggTable::sync_link) for the interfaces named.
    fn sync_links_named(&mut self, names: impl IntoIterator<Item = String>) -> Vec<Update> {
        let indexes: Vec<u32> = names
            .into_iter()
            .filter_map(|name| self.interface_named(&name).map(|i| i.index))
            .collect();
        indexes
            .into_iter()
            .filter_map(|index| self.sync_link(index))
            .collect()
    }

    /// The Aggregate update for lagg `name`, if it changed and is not held
    /// back.
    fn sync_aggregate(&mut self, name: &str) -> Option<Update> {
        if self.settling.contains_key(name) {
            return None;
        }
        let aggregate = self.aggregate(name)?;
        if self.reported_aggregates.get(name) == Some(&aggregate) {
            return None;
        }
        self.reported_aggregates
            .insert(name.to_owned(), aggregate.clone());
        Some(Update::Aggregate(aggregate))
    }

    /// Whether updates about interface `name` are held back by a reorder.
    fn held_back(&self, name: &str) -> bool {
        self.settling
            .values()
            .any(|settle| settle.before.contains_key(name))
    }

    fn link_of(&self, interface: &Interface) -> Link {
        Link {
            index: interface.index,
            name: interface.name.clone(),
            state: interface.link_state(),
            master: self
                .lagg_of(&interface.name)
                .and_then(|lagg| self.laggs.get(&lagg).map(|known| known.index)),
        }
    }

    fn aggregate(&self, name: &str) -> Option<Aggregate> {
        let known = self.laggs.get(name)?;
        let state = &known.state;
        Some(Aggregate {
            index: known.index,
            name: name.to_owned(),
            mode: state.protocol_name(),
            failover: state.is_failover(),
            members: port_names(Some(state)).collect(),
            active: state.active().map(|port| port.name.clone()),
            primary: state.master().map(|port| port.name.clone()),
            kernel_preempts: true,
            // lagg has no link monitor of its own beyond the carrier.
            arp_monitor: false,
        })
    }

    /// The lagg `port` is a member of, as last read.
    fn lagg_of(&self, port: &str) -> Option<String> {
        self.laggs
            .iter()
            .find(|(_, known)| known.state.port(port).is_some())
            .map(|(name, _)| name.clone())
    }

    fn interface_named(&self, name: &str) -> Option<&Interface> {
        self.interfaces
            .values()
            .find(|interface| interface.name == name)
    }

    /// The index of interface `name`, read or only announced.
    fn index_of(&self, name: &str) -> Option<u32> {
        self.interface_named(name)
            .map(|interface| interface.index)
            .or_else(|| {
                self.arrived
                    .iter()
                    .find(|(_, arrived)| *arrived == name)
                    .map(|(index, _)| *index)
            })
    }

    /// Before interface `name` is recorded at `index`: another index with
    /// that name, or another name at that index, is stale (a rename or a
    /// departure that was not seen) and departs.
    fn drop_stale(&mut self, index: u32, name: &str) -> Vec<Update> {
        let stale: Vec<(u32, String)> = self
            .interfaces
            .iter()
            .filter(|(at, old)| (**at == index) != (old.name == name))
            .map(|(at, old)| (*at, old.name.clone()))
            .collect();
        stale
            .into_iter()
            .flat_map(|(at, old)| self.depart(at, &old))
            .collect()
    }
}

/// The port names of a lagg state, in list order.
fn port_names(state: Option<&LaggState>) -> impl Iterator<Item = String> + '_ {
    state
        .into_iter()
        .flat_map(|state| state.ports.iter().map(|port| port.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::freebsd::abi::{
        LAGG_PORT_ACTIVE, LAGG_PORT_MASTER, LAGG_PROTO_FAILOVER, LINK_STATE_DOWN, LINK_STATE_UP,
    };
    use crate::platform::freebsd::fake::{interface, links, FLAGS_UP, IFT_ETHER};
    use crate::platform::freebsd::lagg::LaggPort;

    const SETTLE: SettleTime = SettleTime {
        min: Duration::from_secs(2),
        max: Duration::from_secs(10),
    };

    fn failover(ports: &[(&str, u32)]) -> LaggState {
        LaggState {
            protocol: LAGG_PROTO_FAILOVER,
            ports: ports
                .iter()
                .map(|(name, flags)| LaggPort {
                    name: (*name).into(),
                    flags: *flags,
                    master: flags & LAGG_PORT_MASTER != 0,
                    active: flags & LAGG_PORT_ACTIVE != 0,
                })
                .collect(),
        }
    }

    const MASTER_ACTIVE: u32 = LAGG_PORT_MASTER | LAGG_PORT_ACTIVE;

    /// em0 (2) and bge0 (3) in lagg0 (4), em0 MASTER and ACTIVE.
    fn started() -> LaggTable {
        let mut table = LaggTable::new(SETTLE);
        assert!(table.take_work().resync);
        let interfaces = vec![
            interface(2, "em0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
            interface(3, "bge0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
            interface(4, "lagg0", LINK_STATE_UP, IFT_ETHER),
        ];
        let laggs = vec![(
            "lagg0".to_owned(),
            failover(&[("em0", MASTER_ACTIVE), ("bge0", 0)]),
        )];
        let updates = table.on_resync(interfaces, laggs);
        assert_eq!(updates.len(), 2, "{updates:?}");
        assert!(table.take_work().is_empty());
        table
    }

    fn ifinfo(index: u16, link_state: u8, if_type: u8) -> RouteMessage {
        RouteMessage::IfInfo {
            index,
            flags: FLAGS_UP,
            link_state,
            if_type,
        }
    }

    /// A message the kernel sent: every link change it claims is
    /// confirmed by a read that agrees with it, as the platform task does.
    fn believed(table: &mut LaggTable, message: RouteMessage) -> Vec<Update> {
        let RouteMessage::IfInfo {
            flags,
            link_state,
            if_type,
            ..
        } = message
        else {
            return table.on_message(message);
        };
        let mut updates = table.on_message(message);
        for claim in table.take_claims() {
            let read = Interface {
                index: claim.index,
                name: claim.name.clone(),
                flags,
                link_state,
                if_type,
            };
            updates.extend(table.on_confirmation(&claim, Ok(read)));
        }
        updates
    }

    #[test]
    fn a_repeated_state_is_reported_once() {
        let mut table = started();
        let down = believed(&mut table, ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        assert_eq!(links(&down), [("em0".to_owned(), LinkState::Down)]);
        assert_eq!(table.take_work().laggs, ["lagg0"]);
        let again = believed(&mut table, ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        assert!(again.is_empty());
        // Still worth a lagg read: lagg may have changed its mind anyway.
        assert_eq!(table.take_work().laggs, ["lagg0"]);
    }

    #[test]
    fn a_link_change_waits_for_the_interface_to_confirm_it() {
        let mut table = started();
        let updates = table.on_message(ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        assert!(updates.is_empty(), "nothing before the read: {updates:?}");
        assert!(table.take_work().is_empty(), "not even a lagg read");
        let claims = table.take_claims();
        assert_eq!(
            claims,
            [Claim {
                index: 2,
                name: "em0".into(),
                state: LinkState::Down
            }]
        );
        let read = interface(2, "em0", LINK_STATE_DOWN, IFT_IEEE8023ADLAG);
        let updates = table.on_confirmation(&claims[0], Ok(read));
        assert_eq!(links(&updates), [("em0".to_owned(), LinkState::Down)]);
        assert_eq!(table.take_work().laggs, ["lagg0"]);
        assert_eq!(table.foreign_messages(), 0);
        // No change, nothing to confirm.
        assert!(table
            .on_message(ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG))
            .is_empty());
        assert!(table.take_claims().is_empty());
    }

    #[test]
    fn a_link_change_the_interface_contradicts_moves_nothing() {
        let mut table = started();
        // A message says em0 lost carrier; em0 itself says it has it.
        table.on_message(ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        let claims = table.take_claims();
        let read = interface(2, "em0", LINK_STATE_UP, IFT_IEEE8023ADLAG);
        let updates = table.on_confirmation(&claims[0], Ok(read));
        assert!(updates.is_empty(), "{updates:?}");
        assert_eq!(table.foreign_messages(), 1);
        // The state kept is the interface's: the true loss is news.
        let updates = believed(&mut table, ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        assert_eq!(links(&updates), [("em0".to_owned(), LinkState::Down)]);
        // A forged "back up" is refused the same way.
        table.on_message(ifinfo(2, LINK_STATE_UP, IFT_IEEE8023ADLAG));
        let claims = table.take_claims();
        let read = interface(2, "em0", LINK_STATE_DOWN, IFT_IEEE8023ADLAG);
        assert!(table.on_confirmation(&claims[0], Ok(read)).is_empty());
        assert_eq!(table.foreign_messages(), 2);
    }

    #[test]
    fn a_claim_that_cannot_be_read_is_not_believed() {
        let mut table = started();
        table.on_message(ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        let claims = table.take_claims();
        // Gone: its departure is on its way.
        let gone = io::Error::from_raw_os_error(libc::ENXIO);
        assert!(table.on_confirmation(&claims[0], Err(gone)).is_empty());
        assert!(table.take_work().is_empty());
        // Any other failure: a full read decides.
        let failed = io::Error::from_raw_os_error(libc::EIO);
        assert!(table.on_confirmation(&claims[0], Err(failed)).is_empty());
        assert!(table.take_work().resync);
        // Another interface under that name now: a full read too.
        let renamed = interface(9, "em0", LINK_STATE_DOWN, IFT_ETHER);
        assert!(table.on_confirmation(&claims[0], Ok(renamed)).is_empty());
        assert!(table.take_work().resync);
        assert_eq!(table.foreign_messages(), 0);
        let updates = table.on_message(ifinfo(3, LINK_STATE_UP, IFT_IEEE8023ADLAG));
        assert!(updates.is_empty(), "bge0 unchanged");
    }

    #[test]
    fn an_unchanged_lagg_read_reports_nothing() {
        let mut table = started();
        let state = failover(&[("em0", MASTER_ACTIVE), ("bge0", 0)]);
        assert!(table.on_lagg("lagg0", Ok(state)).is_empty());
    }

    #[test]
    fn an_unknown_index_asks_for_a_full_read() {
        let mut table = started();
        assert!(table
            .on_message(ifinfo(77, LINK_STATE_UP, IFT_ETHER))
            .is_empty());
        assert!(table.take_work().resync);
    }

    #[test]
    fn a_port_turning_lagg_member_rereads_every_lagg() {
        let mut table = started();
        // igb0 arrives, is read, then turns up as a lagg member.
        table.on_message(RouteMessage::IfAnnounce {
            index: 5,
            name: "igb0".into(),
            arrival: true,
        });
        let work = table.take_work();
        assert_eq!(
            (work.interfaces, work.laggs),
            (vec!["igb0".to_owned()], vec!["igb0".to_owned()])
        );
        let read = table.on_interface("igb0", Ok(interface(5, "igb0", LINK_STATE_UP, IFT_ETHER)));
        assert_eq!(links(&read), [("igb0".to_owned(), LinkState::Up)]);
        assert!(table
            .on_lagg("igb0", Err(io::Error::from_raw_os_error(libc::EINVAL)))
            .is_empty());
        assert!(table
            .on_message(ifinfo(5, LINK_STATE_UP, IFT_ETHER))
            .is_empty());
        assert!(table.take_work().is_empty(), "not a member, not a lagg");
        believed(&mut table, ifinfo(5, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        assert_eq!(table.take_work().laggs, ["lagg0"]);
    }

    #[test]
    fn an_arrival_already_seen_by_the_full_read_is_only_reread() {
        let mut table = started();
        let updates = table.on_message(RouteMessage::IfAnnounce {
            index: 2,
            name: "em0".into(),
            arrival: true,
        });
        assert!(updates.is_empty());
        let updates = table.on_interface(
            "em0",
            Ok(interface(2, "em0", LINK_STATE_UP, IFT_IEEE8023ADLAG)),
        );
        assert!(updates.is_empty(), "{updates:?}");
    }

    #[test]
    fn a_rename_departs_the_old_name() {
        let mut table = started();
        // The departure of bge0 was lost; index 3 arrives as "uplink0".
        let updates = table.on_message(RouteMessage::IfAnnounce {
            index: 3,
            name: "uplink0".into(),
            arrival: true,
        });
        assert_eq!(
            updates,
            [Update::Gone {
                index: 3,
                name: "bge0".into()
            }]
        );
        let updates = table.on_interface(
            "uplink0",
            Ok(interface(3, "uplink0", LINK_STATE_UP, IFT_ETHER)),
        );
        assert_eq!(links(&updates), [("uplink0".to_owned(), LinkState::Up)]);
    }

    #[test]
    fn an_interface_gone_before_its_read_is_forgotten() {
        let mut table = started();
        table.on_message(RouteMessage::IfAnnounce {
            index: 9,
            name: "tap0".into(),
            arrival: true,
        });
        table.take_work();
        let updates = table.on_interface("tap0", Err(io::Error::from_raw_os_error(libc::ENXIO)));
        assert!(updates.is_empty());
        assert!(table.take_work().is_empty());
        // Its departure reports nothing: the daemon never heard of it.
        let updates = table.on_message(RouteMessage::IfAnnounce {
            index: 9,
            name: "tap0".into(),
            arrival: false,
        });
        assert!(updates.is_empty());
        // Other read errors are worth a full read.
        table.on_interface("em0", Err(io::Error::from_raw_os_error(libc::EIO)));
        assert!(table.take_work().resync);
    }

    #[test]
    fn lost_messages_are_news_once() {
        let mut table = started();
        assert!(table.messages_lost());
        assert!(!table.messages_lost());
        assert!(table.take_work().resync);
        assert!(table.messages_lost());
    }

    #[test]
    fn bad_messages_ask_for_a_full_read_but_foreign_versions_do_not() {
        let mut table = started();
        let mut bytes = ifinfo(2, LINK_STATE_DOWN, IFT_ETHER).to_bytes();
        bytes[2] = 6;
        assert!(table.on_read(&bytes).is_empty());
        assert!(table.on_read(&bytes).is_empty());
        assert!(table.take_work().is_empty());
        bytes[2] = 5;
        assert!(table.on_read(&bytes[..100]).is_empty());
        assert!(table.take_work().resync);
        // Other types are skipped quietly.
        assert!(table.on_read(&[8, 0, 5, 1, 0, 0, 0, 0]).is_empty());
        assert!(table.take_work().is_empty());
    }

    #[test]
    fn a_lagg_that_fails_to_read_is_gone() {
        let mut table = started();
        let updates = table.on_lagg("lagg0", Err(io::Error::from_raw_os_error(libc::ENXIO)));
        assert_eq!(
            updates[0],
            Update::AggregateGone {
                index: 4,
                name: "lagg0".into()
            }
        );
        // The ports lost their master.
        let masters: Vec<Option<u32>> = updates[1..]
            .iter()
            .map(|update| match update {
                Update::Link(link) => link.master,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(masters, [None, None]);
    }

    #[test]
    fn the_settle_window_waits_min_then_for_the_ports_at_most_max() {
        let start = Instant::now();
        let mut table = started();
        table.begin_settle("lagg0", start);
        assert!(table.is_settling("lagg0"));
        assert_eq!(table.next_deadline(start), Some(start + SETTLE.min));
        // em0 bounces: held back.
        assert!(believed(&mut table, ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG)).is_empty());
        table.take_work();
        let after_min = start + SETTLE.min;
        table.poll(after_min);
        assert!(table.take_work().is_empty(), "em0 is not back yet");
        assert_eq!(table.next_deadline(after_min), Some(start + SETTLE.max));
        table.poll(start + SETTLE.max);
        assert_eq!(table.take_work().laggs, ["lagg0"]);
        assert_eq!(table.next_deadline(start + SETTLE.max), None);
        let updates = table.on_lagg(
            "lagg0",
            Ok(failover(&[
                ("em0", LAGG_PORT_MASTER),
                ("bge0", LAGG_PORT_ACTIVE),
            ])),
        );
        assert_eq!(links(&updates), [("em0".to_owned(), LinkState::Down)]);
        assert!(
            matches!(updates.last(), Some(Update::Aggregate(a)) if a.active.as_deref() == Some("bge0"))
        );
        assert_eq!(table.take_settled(), ["lagg0"]);
        assert!(!table.is_settling("lagg0"));
    }

    #[test]
    fn the_settle_window_closes_after_min_once_the_ports_are_back() {
        let start = Instant::now();
        let mut table = started();
        table.begin_settle("lagg0", start);
        believed(&mut table, ifinfo(2, LINK_STATE_DOWN, IFT_IEEE8023ADLAG));
        believed(&mut table, ifinfo(2, LINK_STATE_UP, IFT_IEEE8023ADLAG));
        table.take_work();
        table.poll(start + SETTLE.min / 2);
        assert!(table.take_work().is_empty(), "min has not passed");
        table.poll(start + SETTLE.min);
        assert_eq!(table.take_work().laggs, ["lagg0"]);
        // A fresh Aggregate even though nothing changed.
        let updates = table.on_lagg(
            "lagg0",
            Ok(failover(&[("em0", MASTER_ACTIVE), ("bge0", 0)])),
        );
        assert_eq!(updates.len(), 1);
        assert!(matches!(&updates[0], Update::Aggregate(a) if a.primary.as_deref() == Some("em0")));
        assert_eq!(table.take_settled(), ["lagg0"]);
    }

    #[test]
    fn a_full_read_during_the_window_shows_what_was_reported() {
        let start = Instant::now();
        let mut table = started();
        table.begin_settle("lagg0", start);
        let interfaces = vec![
            interface(2, "em0", LINK_STATE_DOWN, IFT_ETHER),
            interface(3, "bge0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
            interface(4, "lagg0", LINK_STATE_UP, IFT_ETHER),
        ];
        let laggs = vec![("lagg0".to_owned(), failover(&[("bge0", MASTER_ACTIVE)]))];
        let updates = table.on_resync(interfaces, laggs);
        let Update::Snapshot(snapshot) = &updates[0] else {
            panic!("snapshot first: {updates:?}");
        };
        assert_eq!(snapshot[0].state, LinkState::Up, "em0 as last reported");
        let Update::Aggregate(aggregate) = &updates[1] else {
            panic!("aggregate second: {updates:?}");
        };
        assert_eq!(aggregate.members, ["em0", "bge0"], "as last reported");
        assert!(table.is_settling("lagg0"));
    }
}
