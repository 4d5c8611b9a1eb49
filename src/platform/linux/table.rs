//! The link table: what the kernel said about every interface, and the
//! bookkeeping of full dumps. No I/O here; the socket loop feeds decoded
//! messages in the order the kernel queued them and sends what comes out.
//!
//! Dump replies and multicast notifications share one socket, so they
//! arrive in the kernel's order: each dump chunk is built when it is read,
//! after every notification queued before it. Hence, per interface, the
//! message read last is the newest, whichever kind it is. During a dump the
//! table therefore collects dump entries and notifications alike into one
//! pending view, which replaces the table when the dump ends.
//!
//! Bonds are assembled from several interfaces' messages (the bond's own
//! settings, its ports' `IFLA_MASTER`), so their views are compared with
//! what the daemon was told once a whole batch of messages is applied; the
//! socket loop asks for that news after each datagram.

use std::collections::BTreeMap;

use netlink_packet_core::NLM_F_DUMP_INTR;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::AddressFamily;

use super::bond::{self, ActivePortChange, BondPortStatus, BondSettings};
use super::decode::{Body, Received};
use crate::platform::{Aggregate, Link, LinkState, Update};

/// Where the table stands with full dumps.
#[derive(Debug)]
enum Dump {
    /// No dump running; `wanted` when one should be sent.
    Idle { wanted: bool },
    /// Our request `seq` is being answered.
    Running {
        seq: u32,
        /// Interfaces as dumped, overridden by later notifications.
        pending: BTreeMap<u32, Interface>,
        /// Messages were lost or the kernel flagged the dump inconsistent:
        /// discard it when it ends and dump again.
        redo: bool,
    },
}

/// One interface as the table keeps it: what the daemon is told, plus
/// what bonding says when it is a bond or a bond's port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interface {
    link: Link,
    bond: Option<BondSettings>,
    bond_port: Option<BondPortStatus>,
}

/// Every interface by index, plus the state of the current dump and the
/// bonds as last reported.
#[derive(Debug)]
pub(crate) struct LinkTable {
    /// Our socket's port id: dump replies carry it, notifications do not.
    port: u32,
    interfaces: BTreeMap<u32, Interface>,
    dump: Dump,
    last_seq: u32,
    /// The aggregates the daemon was last told about, by index.
    reported: BTreeMap<u32, Aggregate>,
    /// A snapshot was sent: every aggregate is sent again after it.
    resend_aggregates: bool,
}

impl LinkTable {
    /// An empty table for the socket bound to `port`, wanting a first dump.
    pub(crate) fn new(port: u32) -> LinkTable {
        LinkTable {
            port,
            interfaces: BTreeMap::new(),
            dump: Dump::Idle { wanted: true },
            last_seq: 0,
            reported: BTreeMap::new(),
            resend_aggregates: false,
        }
    }

    /// The daemon asked for a snapshot. A dump already running will
    /// produce one, so the request joins it.
    pub(crate) fn request_dump(&mut self) {
        if let Dump::Idle { wanted } = &mut self.dump {
            *wanted = true;
        }
    }

    /// The socket overflowed: notifications were lost. A running dump may
    /// have been overtaken by the lost ones, so it is redone. Returns
    /// whether this is news, i.e. no re-read was already due (so that a
    /// flood of overruns is logged once).
    pub(crate) fn messages_lost(&mut self) -> bool {
        let due = match &mut self.dump {
            Dump::Idle { wanted } | Dump::Running { redo: wanted, .. } => wanted,
        };
        !std::mem::replace(due, true)
    }

    /// When a dump is wanted and none runs, start one and return the
    /// sequence number its request must carry.
    pub(crate) fn start_dump(&mut self) -> Option<u32> {
        if !matches!(self.dump, Dump::Idle { wanted: true }) {
            return None;
        }
        self.last_seq = self.last_seq.wrapping_add(1).max(1);
        self.dump = Dump::Running {
            seq: self.last_seq,
            pending: BTreeMap::new(),
            redo: false,
        };
        Some(self.last_seq)
    }

    /// A datagram was cut: what it held is lost, possibly the end of the
    /// running dump, which then would never finish. Start over.
    pub(crate) fn datagram_truncated(&mut self) {
        self.dump = Dump::Idle { wanted: true };
    }

    /// The dump request could not be sent: give up until the next request.
    pub(crate) fn dump_not_sent(&mut self) {
        self.dump = Dump::Idle { wanted: false };
    }

    /// Whether a dump is being answered (for logs and tests).
    pub(crate) fn dump_running(&self) -> bool {
        matches!(self.dump, Dump::Running { .. })
    }

    /// Every known interface, by index.
    pub(crate) fn links(&self) -> impl Iterator<Item = &Link> {
        self.interfaces.values().map(|interface| &interface.link)
    }

    /// The aggregate updates due after a batch of messages: what changed
    /// in the bonds since the daemon was last told (membership, active
    /// port, primary, mode), departed bonds, and after a snapshot every
    /// bond. Sent after the link updates of the batch, so the daemon knows
    /// the ports an aggregate names.
    pub(crate) fn aggregate_news(&mut self) -> Vec<Update> {
        let current: BTreeMap<u32, Aggregate> = self
            .interfaces
            .values()
            .filter_map(|interface| {
                let settings = interface.bond.as_ref()?;
                let links = self.interfaces.values().map(|other| &other.link);
                let aggregate = bond::aggregate(&interface.link, settings, links);
                Some((aggregate.index, aggregate))
            })
            .collect();
        let resend = std::mem::take(&mut self.resend_aggregates);
        let news = bond::aggregate_news(&self.reported, &current, resend);
        self.reported = current;
        news
    }

    /// Check a request to make `port` the active port of the bond `group`
    /// against what the kernel said, and find their indexes. An error
    /// names what is wrong, in words for the operator.
    pub(crate) fn active_port_change(
        &self,
        group: &str,
        port: &str,
    ) -> Result<ActivePortChange, String> {
        let by_name = |name: &str| {
            self.interfaces
                .values()
                .find(|interface| interface.link.name == name)
        };
        let bond = by_name(group).ok_or_else(|| format!("{group}: no such interface"))?;
        let settings = bond
            .bond
            .as_ref()
            .ok_or_else(|| format!("{group} is not a bond"))?;
        if !settings.is_active_backup() {
            return Err(format!(
                "{group} is a {} bond; only an active-backup bond has an active port to set",
                bond::mode_name(settings.mode)
            ));
        }
        let member = by_name(port)
            .ok_or_else(|| format!("{group} has no port {port}: no such interface"))?;
        if member.link.master != Some(bond.link.index) {
            return Err(format!("{port} is not a member of {group}"));
        }
        Ok(ActivePortChange {
            bond: group.to_owned(),
            bond_index: bond.link.index,
            port: port.to_owned(),
            port_index: member.link.index,
        })
    }

    /// Apply one message; returns the updates for the daemon, in order.
    /// Link messages that are not part of the running dump are news,
    /// whatever caused them (even a stray entry of an abandoned dump is the
    /// kernel's current state, read in order).
    pub(crate) fn handle(&mut self, message: Received) -> Vec<Update> {
        if self.is_dump_reply(&message) {
            return self.dump_reply(message);
        }
        match message.body {
            Body::NewLink(link) => self.link_seen(&link),
            Body::DelLink(link) => self.link_removed(&link),
            Body::Malformed { reason, .. } => {
                tracing::warn!("ignoring a malformed link notification: {reason}");
                Vec::new()
            }
            other => {
                tracing::debug!(seq = message.seq, ?other, "ignoring a netlink message");
                Vec::new()
            }
        }
    }

    /// Whether `message` answers the running dump: sent to our socket
    /// with the dump's sequence number.
    fn is_dump_reply(&self, message: &Received) -> bool {
        matches!(self.dump, Dump::Running { seq, .. }
            if message.port == self.port && message.seq == seq)
    }

    /// A message answering the running dump.
    fn dump_reply(&mut self, message: Received) -> Vec<Update> {
        let Dump::Running { pending, redo, .. } = &mut self.dump else {
            return Vec::new();
        };
        if message.flags & NLM_F_DUMP_INTR != 0 && !*redo {
            tracing::debug!("link dump interrupted by a change; it will be redone");
            *redo = true;
        }
        match message.body {
            Body::NewLink(message) => {
                if let Some(interface) = family_interface(&message) {
                    pending.insert(interface.link.index, interface);
                }
                Vec::new()
            }
            Body::Done { code } => self.dump_done(code),
            Body::Error { code } if code == -libc::ENOBUFS => {
                // The dump started but its first part found the socket
                // full: the kernel reports that, yet keeps the dump going
                // and sends the rest as the socket is read.
                tracing::debug!("link dump delayed by a full socket");
                Vec::new()
            }
            Body::Error { code } if code < 0 => {
                tracing::warn!(
                    "the kernel refused the link dump: {}; will retry on the next resync",
                    std::io::Error::from_raw_os_error(-code)
                );
                self.dump = Dump::Idle { wanted: false };
                Vec::new()
            }
            Body::Malformed { reason, .. } => {
                // Not redone: the kernel would send the same bytes again.
                tracing::warn!("skipping a malformed link in the dump: {reason}");
                Vec::new()
            }
            other => {
                tracing::debug!(?other, "ignoring a dump reply");
                Vec::new()
            }
        }
    }

    /// `NLMSG_DONE` of our dump: adopt it, redo it, or give up on an error.
    fn dump_done(&mut self, code: i32) -> Vec<Update> {
        let finished = std::mem::replace(&mut self.dump, Dump::Idle { wanted: false });
        let Dump::Running { pending, redo, .. } = finished else {
            return Vec::new();
        };
        if redo {
            self.dump = Dump::Idle { wanted: true };
            return Vec::new();
        }
        if code < 0 {
            tracing::warn!(
                "the link dump failed: {}; will retry on the next resync",
                std::io::Error::from_raw_os_error(-code)
            );
            return Vec::new();
        }
        self.interfaces = pending;
        self.resend_aggregates = true;
        tracing::debug!(links = self.interfaces.len(), "link dump complete");
        vec![Update::Snapshot(self.links().cloned().collect())]
    }

    /// `RTM_NEWLINK` notification: report what changed, if anything.
    fn link_seen(&mut self, message: &LinkMessage) -> Vec<Update> {
        let Some(interface) = family_interface(message) else {
            return Vec::new();
        };
        let link = interface.link.clone();
        tracing::debug!(?link, "link notification");
        if let Dump::Running { pending, .. } = &mut self.dump {
            pending.insert(link.index, interface.clone());
        }
        let old = self.interfaces.insert(link.index, interface);
        self.log_bond_news(message, old.as_ref());
        match old.map(|old| old.link) {
            Some(old) if old == link => Vec::new(),
            Some(old) if old.name != link.name => vec![
                Update::Gone {
                    index: old.index,
                    name: old.name,
                },
                Update::Link(link),
            ],
            _ => vec![Update::Link(link)],
        }
    }

    /// Log what bonding says in a notification just applied: its own
    /// failover announcement, which dates the kernel's decision, and
    /// changes of its verdict on a port. The active port itself is taken
    /// from the bond's settings, which every notification carries.
    fn log_bond_news(&self, message: &LinkMessage, old: Option<&Interface>) {
        let Some(new) = self.interfaces.get(&message.header.index) else {
            return;
        };
        if bond::is_failover_notice(message) {
            let active = new
                .bond
                .as_ref()
                .and_then(|settings| settings.active)
                .and_then(|index| self.interfaces.get(&index))
                .map_or("none", |port| port.link.name.as_str());
            tracing::debug!(
                bond = %new.link.name,
                active,
                "kernel bonding failover notification"
            );
        }
        if let Some(status) = &new.bond_port {
            if old.and_then(|old| old.bond_port.as_ref()) != Some(status) {
                tracing::debug!(
                    port = %new.link.name,
                    mii = ?status.mii,
                    link_failures = ?status.link_failures,
                    "bond port status"
                );
            }
        }
    }

    /// `RTM_DELLINK` notification: the interface is gone.
    fn link_removed(&mut self, message: &LinkMessage) -> Vec<Update> {
        if message.header.interface_family != AddressFamily::Unspec {
            return Vec::new();
        }
        let index = message.header.index;
        tracing::debug!(index, "link removed");
        if let Dump::Running { pending, .. } = &mut self.dump {
            pending.remove(&index);
        }
        match self.interfaces.remove(&index) {
            Some(old) => vec![Update::Gone {
                index,
                name: old.link.name,
            }],
            None => Vec::new(),
        }
    }
}

/// The interface a link message describes, if it describes one. Messages
/// of another family (a bridge's per-port messages use `AF_BRIDGE`, and
/// its `RTM_DELLINK` means "left the bridge") are not about the interface
/// itself.
fn family_interface(message: &LinkMessage) -> Option<Interface> {
    if message.header.interface_family != AddressFamily::Unspec {
        return None;
    }
    let Some(link) = link_from_message(message) else {
        tracing::warn!(
            index = message.header.index,
            "link message without a name, ignored"
        );
        return None;
    };
    Some(Interface {
        link,
        bond: bond::bond_settings(message),
        bond_port: bond::bond_port_status(message),
    })
}

/// A [`Link`] from a link message: `None` when it has no name.
pub(crate) fn link_from_message(message: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut master = None;
    let mut reports_carrier = false;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(ifname) => name = Some(ifname.clone()),
            LinkAttribute::Controller(index) if *index != 0 => master = Some(*index),
            LinkAttribute::Carrier(_) => reports_carrier = true,
            _ => {}
        }
    }
    Some(Link {
        index: message.header.index,
        name: name?,
        state: LinkState::from_up(link_is_up(message.header.flags, reports_carrier)),
        master,
    })
}

/// Up means admin-up with carrier (`IFF_LOWER_UP`). `IFF_RUNNING` is only
/// a fallback for kernels too old to report carrier (no `IFF_LOWER_UP`,
/// no `IFLA_CARRIER`): it follows the operational state, which the kernel
/// updates up to a second after the carrier, so a link that just lost
/// carrier is still `IFF_RUNNING`.
fn link_is_up(flags: LinkFlags, reports_carrier: bool) -> bool {
    let carrier = if reports_carrier || flags.contains(LinkFlags::LowerUp) {
        flags.contains(LinkFlags::LowerUp)
    } else {
        flags.contains(LinkFlags::Running)
    };
    flags.contains(LinkFlags::Up) && carrier
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bond_tests;
