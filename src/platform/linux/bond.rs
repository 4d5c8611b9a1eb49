//! Linux bonding: what the link messages of a bond and of its ports say,
//! the kernel's view of a bond as an [`Aggregate`], and the request that
//! sets a bond's active port. No I/O here.
//!
//! A bond's own message carries its settings in `IFLA_LINKINFO` data (mode,
//! active port, primary, primary reselection, ARP monitor interval);
//! membership is not listed there but carried by each port (`IFLA_MASTER`),
//! so a bond's view is assembled from the messages of several interfaces.

use std::collections::BTreeMap;

use netlink_packet_route::link::{
    InfoBond, InfoBondPort, InfoData, InfoKind, InfoPortData, LinkAttribute, LinkEvent, LinkInfo,
    LinkMessage, MiiStatus,
};

use crate::platform::{Aggregate, Link, Update};

/// `BOND_MODE_ACTIVEBACKUP`: one port carries traffic, the others wait.
/// The only mode laggmond manages.
const MODE_ACTIVE_BACKUP: u8 = 1;

/// `BOND_PRI_RESELECT_ALWAYS`: back to the primary as soon as it has link.
const RESELECT_ALWAYS: u8 = 0;

/// `BOND_PRI_RESELECT_BETTER`: back to the primary when it is faster.
const RESELECT_BETTER: u8 = 1;

/// A bond's settings, from the `IFLA_INFO_DATA` of its link message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BondSettings {
    /// The kernel's mode number (`BOND_MODE_*`); `None` if not reported.
    pub mode: Option<u8>,
    /// Index of the active port; `None` when no port is active.
    pub active: Option<u32>,
    /// Index of the `primary` port; `None` when the option is unset.
    pub primary: Option<u32>,
    /// `primary_reselect` (`BOND_PRI_RESELECT_*`); the kernel's default,
    /// `always` (0), when not reported.
    pub primary_reselect: u8,
    /// `arp_interval` in milliseconds: above 0 the bond runs its own ARP
    /// monitor; 0 (the default) when not reported.
    pub arp_interval: u32,
}

/// What the bond says about one of its ports (`IFLA_INFO_SLAVE_DATA`):
/// the bond's own link monitor, ahead of or behind the carrier. Only logged:
/// it shows when the bond noticed a change, next to the carrier itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BondPortStatus {
    /// The bond's MII monitor verdict on the port.
    pub mii: Option<MiiStatus>,
    /// How often the bond has seen the port's link fail.
    pub link_failures: Option<u32>,
}

/// The bond settings in `message`, if it describes a bond.
pub(crate) fn bond_settings(message: &LinkMessage) -> Option<BondSettings> {
    let infos = link_infos(message)?;
    if !infos
        .iter()
        .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Bond)))
    {
        return None;
    }
    let mut settings = BondSettings::default();
    let options = infos.iter().filter_map(|info| match info {
        LinkInfo::Data(InfoData::Bond(options)) => Some(options),
        _ => None,
    });
    for option in options.flatten() {
        match option {
            InfoBond::Mode(mode) => settings.mode = Some(u8::from(*mode)),
            InfoBond::ActivePort(index) => settings.active = non_zero(*index),
            InfoBond::Primary(index) => settings.primary = non_zero(*index),
            InfoBond::PrimaryReselect(reselect) => {
                settings.primary_reselect = u8::from(*reselect);
            }
            InfoBond::ArpInterval(interval) => settings.arp_interval = *interval,
            _ => {}
        }
    }
    Some(settings)
}

/// What the bond says about the port `message` describes, if it is a bond
/// port.
pub(crate) fn bond_port_status(message: &LinkMessage) -> Option<BondPortStatus> {
    let infos = link_infos(message)?;
    let options = infos.iter().find_map(|info| match info {
        LinkInfo::PortData(InfoPortData::BondPort(options)) => Some(options),
        _ => None,
    })?;
    let mut status = BondPortStatus {
        mii: None,
        link_failures: None,
    };
    for option in options {
        match option {
            InfoBondPort::MiiStatus(mii) => status.mii = Some(*mii),
            InfoBondPort::LinkFailureCount(count) => status.link_failures = Some(*count),
            _ => {}
        }
    }
    Some(status)
}

/// Whether `message` is the kernel's announcement that a bond changed its
/// active port by itself (`IFLA_EVENT_BONDING_FAILOVER`).
pub(crate) fn is_failover_notice(message: &LinkMessage) -> bool {
    message
        .attributes
        .iter()
        .any(|attribute| matches!(attribute, LinkAttribute::Event(LinkEvent::BondingFailover)))
}

/// The `IFLA_LINKINFO` attributes of `message`.
fn link_infos(message: &LinkMessage) -> Option<&[LinkInfo]> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => Some(infos.as_slice()),
            _ => None,
        })
}

/// An interface index, where the kernel uses 0 for "none".
fn non_zero(index: u32) -> Option<u32> {
    (index != 0).then_some(index)
}

/// A bond mode as `ip` and the bonding documentation name it.
pub(crate) fn mode_name(mode: Option<u8>) -> String {
    let name = match mode {
        Some(0) => "balance-rr",
        Some(MODE_ACTIVE_BACKUP) => "active-backup",
        Some(2) => "balance-xor",
        Some(3) => "broadcast",
        Some(4) => "802.3ad",
        Some(5) => "balance-tlb",
        Some(6) => "balance-alb",
        Some(other) => return format!("mode {other}"),
        None => "unknown",
    };
    name.to_owned()
}

impl BondSettings {
    /// Whether the bond is in the one mode laggmond manages.
    pub(crate) fn is_active_backup(&self) -> bool {
        self.mode == Some(MODE_ACTIVE_BACKUP)
    }

    /// Whether the kernel moves traffic back to the primary by itself as
    /// soon as it has link, racing any hold-down of laggmond's.
    fn kernel_preempts(&self) -> bool {
        self.primary.is_some() && matches!(self.primary_reselect, RESELECT_ALWAYS | RESELECT_BETTER)
    }
}

/// The kernel's view of the bond `bond` with `settings`, given every known
/// interface in index order: its members are those whose master it is.
pub(crate) fn aggregate<'a>(
    bond: &Link,
    settings: &BondSettings,
    links: impl Iterator<Item = &'a Link> + Clone,
) -> Aggregate {
    let name_of = |index: Option<u32>| {
        let index = index?;
        links
            .clone()
            .find(|link| link.index == index)
            .map(|link| link.name.clone())
    };
    Aggregate {
        index: bond.index,
        name: bond.name.clone(),
        mode: mode_name(settings.mode),
        failover: settings.is_active_backup(),
        members: links
            .clone()
            .filter(|link| link.master == Some(bond.index))
            .map(|link| link.name.clone())
            .collect(),
        active: name_of(settings.active),
        primary: name_of(settings.primary),
        kernel_preempts: settings.kernel_preempts(),
        arp_monitor: settings.arp_interval > 0,
    }
}

/// The updates that take the daemon from the aggregates it was told about,
/// `reported`, to `current`: departures first, then every aggregate that
/// is new or changed (all of them when `resend`, after a snapshot). A
/// renamed bond departs under its old name and arrives under the new one.
pub(crate) fn aggregate_news(
    reported: &BTreeMap<u32, Aggregate>,
    current: &BTreeMap<u32, Aggregate>,
    resend: bool,
) -> Vec<Update> {
    let gone = |old: &Aggregate| Update::AggregateGone {
        index: old.index,
        name: old.name.clone(),
    };
    let mut news: Vec<Update> = reported
        .values()
        .filter(|old| match current.get(&old.index) {
            None => true,
            Some(new) => new.name != old.name,
        })
        .map(gone)
        .collect();
    for new in current.values() {
        if resend || reported.get(&new.index) != Some(new) {
            news.push(Update::Aggregate(new.clone()));
        }
    }
    news
}

/// A checked request to make `port` the active port of `bond`: both exist,
/// the bond is in active-backup mode and the port is its member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActivePortChange {
    pub bond: String,
    pub bond_index: u32,
    pub port: String,
    pub port_index: u32,
}

impl ActivePortChange {
    /// The `RTM_NEWLINK` body that sets the bond option `active_slave`:
    /// only the bond's index and kind besides, so nothing else is touched.
    pub(crate) fn request(&self) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = self.bond_index;
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bond),
            LinkInfo::Data(InfoData::Bond(vec![InfoBond::ActivePort(self.port_index)])),
        ]));
        message
    }
}

#[cfg(test)]
mod tests;
