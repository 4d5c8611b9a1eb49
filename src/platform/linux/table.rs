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

use std::collections::BTreeMap;

use netlink_packet_core::NLM_F_DUMP_INTR;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::AddressFamily;

use super::decode::{Body, Received};
use crate::platform::{Link, LinkState, Update};

/// Where the table stands with full dumps.
#[derive(Debug)]
enum Dump {
    /// No dump running; `wanted` when one should be sent.
    Idle { wanted: bool },
    /// Our request `seq` is being answered.
    Running {
        seq: u32,
        /// Interfaces as dumped, overridden by later notifications.
        pending: BTreeMap<u32, Link>,
        /// Messages were lost or the kernel flagged the dump inconsistent:
        /// discard it when it ends and dump again.
        redo: bool,
    },
}

/// Every interface by index, plus the state of the current dump.
#[derive(Debug)]
pub(crate) struct LinkTable {
    /// Our socket's port id: dump replies carry it, notifications do not.
    port: u32,
    links: BTreeMap<u32, Link>,
    dump: Dump,
    last_seq: u32,
}

impl LinkTable {
    /// An empty table for the socket bound to `port`, wanting a first dump.
    pub(crate) fn new(port: u32) -> LinkTable {
        LinkTable {
            port,
            links: BTreeMap::new(),
            dump: Dump::Idle { wanted: true },
            last_seq: 0,
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
    #[cfg(test)]
    pub(crate) fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
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
                if let Some(link) = family_link(&message) {
                    pending.insert(link.index, link);
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
        self.links = pending;
        tracing::debug!(links = self.links.len(), "link dump complete");
        vec![Update::Snapshot(self.links.values().cloned().collect())]
    }

    /// `RTM_NEWLINK` notification: report what changed, if anything.
    fn link_seen(&mut self, message: &LinkMessage) -> Vec<Update> {
        let Some(link) = family_link(message) else {
            return Vec::new();
        };
        tracing::debug!(?link, "link notification");
        if let Dump::Running { pending, .. } = &mut self.dump {
            pending.insert(link.index, link.clone());
        }
        match self.links.insert(link.index, link.clone()) {
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
        match self.links.remove(&index) {
            Some(old) => vec![Update::Gone {
                index,
                name: old.name,
            }],
            None => Vec::new(),
        }
    }
}

/// The interface a link message describes, if it describes one. Messages
/// of another family (a bridge's per-port messages use `AF_BRIDGE`, and
/// its `RTM_DELLINK` means "left the bridge") are not about the interface
/// itself.
fn family_link(message: &LinkMessage) -> Option<Link> {
    if message.header.interface_family != AddressFamily::Unspec {
        return None;
    }
    let link = link_from_message(message);
    if link.is_none() {
        tracing::warn!(
            index = message.header.index,
            "link message without a name, ignored"
        );
    }
    link
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
