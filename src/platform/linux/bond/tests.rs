use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{
    BondMode, BondPrimaryReselect, InfoBond, InfoBondPort, InfoData, InfoKind, InfoPortData,
    InfoPortKind, LinkAttribute, LinkEvent, LinkInfo, LinkMessage, MiiStatus,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::*;
use crate::platform::LinkState;

fn bond_message(options: Vec<InfoBond>) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = 7;
    message
        .attributes
        .push(LinkAttribute::IfName("bond0".into()));
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bond),
        LinkInfo::Data(InfoData::Bond(options)),
    ]));
    message
}

fn link(index: u32, name: &str, master: Option<u32>) -> Link {
    Link {
        index,
        name: name.into(),
        state: LinkState::Up,
        master,
    }
}

fn active_backup(active: Option<u32>) -> BondSettings {
    BondSettings {
        mode: Some(1),
        active,
        primary: None,
        primary_reselect: 0,
        arp_interval: 0,
    }
}

fn aggregate_of(name: &str, members: &[&str], active: Option<&str>) -> Aggregate {
    Aggregate {
        index: 7,
        name: name.into(),
        mode: "active-backup".into(),
        failover: true,
        members: members.iter().map(|member| member.to_string()).collect(),
        active: active.map(str::to_owned),
        primary: None,
        kernel_preempts: false,
        arp_monitor: false,
    }
}

#[test]
fn a_bonds_settings_are_read_from_its_link_info() {
    let message = bond_message(vec![
        InfoBond::Mode(BondMode::ActiveBackup),
        InfoBond::MiiMon(10),
        InfoBond::ActivePort(3),
        InfoBond::Primary(2),
        InfoBond::PrimaryReselect(BondPrimaryReselect::Better),
    ]);
    let settings = bond_settings(&message).expect("a bond");
    assert_eq!(
        settings,
        BondSettings {
            mode: Some(1),
            active: Some(3),
            primary: Some(2),
            primary_reselect: 1,
            arp_interval: 0,
        }
    );
    assert!(settings.is_active_backup());
}

#[test]
fn a_bond_without_options_has_no_active_port_and_the_default_reselection() {
    let settings = bond_settings(&bond_message(vec![InfoBond::ActivePort(0)])).expect("a bond");
    assert_eq!(settings, BondSettings::default());
    assert!(!settings.is_active_backup(), "mode unknown");
}

#[test]
fn other_interfaces_have_no_bond_settings() {
    let mut veth = LinkMessage::default();
    veth.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Veth,
        )]));
    assert_eq!(bond_settings(&veth), None);
    assert_eq!(bond_settings(&LinkMessage::default()), None);
    assert_eq!(bond_port_status(&veth), None);
}

#[test]
fn a_bond_ports_status_is_read_from_its_port_data() {
    let mut port = LinkMessage::default();
    port.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::PortKind(InfoPortKind::Bond),
        LinkInfo::PortData(InfoPortData::BondPort(vec![
            InfoBondPort::MiiStatus(MiiStatus::Down),
            InfoBondPort::LinkFailureCount(4),
            InfoBondPort::QueueId(0),
        ])),
    ]));
    assert_eq!(
        bond_port_status(&port),
        Some(BondPortStatus {
            mii: Some(MiiStatus::Down),
            link_failures: Some(4),
        })
    );
    assert_eq!(bond_settings(&port), None, "a port is not a bond");
}

#[test]
fn the_kernels_failover_notice_is_recognised() {
    let mut message = bond_message(vec![InfoBond::ActivePort(3)]);
    assert!(!is_failover_notice(&message));
    message
        .attributes
        .push(LinkAttribute::Event(LinkEvent::BondingOptions));
    assert!(!is_failover_notice(&message));
    message
        .attributes
        .push(LinkAttribute::Event(LinkEvent::BondingFailover));
    assert!(is_failover_notice(&message));
}

#[test]
fn modes_have_the_kernels_names() {
    let names: Vec<String> = (0..=6).map(|mode| mode_name(Some(mode))).collect();
    assert_eq!(
        names,
        [
            "balance-rr",
            "active-backup",
            "balance-xor",
            "broadcast",
            "802.3ad",
            "balance-tlb",
            "balance-alb"
        ]
    );
    assert_eq!(mode_name(Some(9)), "mode 9");
    assert_eq!(mode_name(None), "unknown");
}

#[test]
fn an_aggregate_lists_the_bonds_members_in_index_order_and_names_its_ports() {
    let bond = link(7, "bond0", None);
    let links = [
        link(1, "lo", None),
        link(2, "eth0", Some(7)),
        link(3, "eth1", Some(7)),
        link(4, "eth2", Some(8)),
        bond.clone(),
    ];
    let settings = BondSettings {
        primary: Some(2),
        primary_reselect: 2,
        ..active_backup(Some(3))
    };
    let aggregate = aggregate(&bond, &settings, links.iter());
    assert_eq!(
        aggregate,
        Aggregate {
            primary: Some("eth0".into()),
            ..aggregate_of("bond0", &["eth0", "eth1"], Some("eth1"))
        }
    );
}

#[test]
fn an_active_port_not_known_yet_is_none() {
    let bond = link(7, "bond0", None);
    let aggregate = aggregate(&bond, &active_backup(Some(12)), [bond.clone()].iter());
    assert_eq!(aggregate, aggregate_of("bond0", &[], None));
}

#[test]
fn the_kernel_preempts_with_a_primary_and_reselection_always_or_better() {
    let bond = link(7, "bond0", None);
    let links = [link(2, "eth0", Some(7)), bond.clone()];
    let preempts = |primary, primary_reselect| {
        let settings = BondSettings {
            primary,
            primary_reselect,
            ..active_backup(Some(2))
        };
        aggregate(&bond, &settings, links.iter()).kernel_preempts
    };
    assert!(preempts(Some(2), 0), "always");
    assert!(preempts(Some(2), 1), "better");
    assert!(!preempts(Some(2), 2), "failure");
    assert!(!preempts(None, 0), "no primary");
}

/// A bond with `arp_interval` set runs its own ARP monitor, which would
/// fight laggmond's path probes: decoded from `IFLA_BOND_ARP_INTERVAL` and
/// reported on the aggregate; 0 (or not reported) means the bond has none.
#[test]
fn a_bonds_own_arp_monitor_is_read_from_its_arp_interval() {
    let message = bond_message(vec![
        InfoBond::Mode(BondMode::ActiveBackup),
        InfoBond::ArpInterval(100),
        InfoBond::ArpIpTarget(vec![std::net::Ipv4Addr::new(192, 0, 2, 1)]),
    ]);
    let settings = bond_settings(&message).expect("a bond");
    assert_eq!(settings.arp_interval, 100);
    let bond = link(7, "bond0", None);
    assert!(aggregate(&bond, &settings, [bond.clone()].iter()).arp_monitor);

    for options in [vec![InfoBond::ArpInterval(0)], vec![InfoBond::MiiMon(10)]] {
        let settings = bond_settings(&bond_message(options)).expect("a bond");
        assert!(!aggregate(&bond, &settings, [bond.clone()].iter()).arp_monitor);
    }
}

#[test]
fn a_bond_in_another_mode_is_no_failover_aggregate() {
    let bond = link(7, "bond0", None);
    let settings = BondSettings {
        mode: Some(0),
        ..BondSettings::default()
    };
    let aggregate = aggregate(&bond, &settings, [bond.clone()].iter());
    assert_eq!(aggregate.mode, "balance-rr");
    assert!(!aggregate.failover);
}

fn by_index(aggregates: impl IntoIterator<Item = Aggregate>) -> BTreeMap<u32, Aggregate> {
    aggregates
        .into_iter()
        .map(|aggregate| (aggregate.index, aggregate))
        .collect()
}

#[test]
fn only_new_and_changed_aggregates_are_news() {
    let old = aggregate_of("bond0", &["eth0", "eth1"], Some("eth0"));
    let reported = by_index([old.clone()]);
    assert_eq!(aggregate_news(&reported, &reported, false), vec![]);
    let moved = aggregate_of("bond0", &["eth0", "eth1"], Some("eth1"));
    assert_eq!(
        aggregate_news(&reported, &by_index([moved.clone()]), false),
        vec![Update::Aggregate(moved)]
    );
    assert_eq!(
        aggregate_news(&BTreeMap::new(), &reported, false),
        vec![Update::Aggregate(old)]
    );
}

#[test]
fn after_a_snapshot_every_aggregate_is_sent() {
    let bond = aggregate_of("bond0", &["eth0"], Some("eth0"));
    let reported = by_index([bond.clone()]);
    assert_eq!(
        aggregate_news(&reported, &reported, true),
        vec![Update::Aggregate(bond)]
    );
}

#[test]
fn departures_come_first_and_a_rename_departs_and_arrives() {
    let gone = Aggregate {
        index: 3,
        ..aggregate_of("bond9", &[], None)
    };
    let old = aggregate_of("bond0", &["eth0"], None);
    let renamed = aggregate_of("uplink", &["eth0"], None);
    let news = aggregate_news(&by_index([gone, old]), &by_index([renamed.clone()]), false);
    assert_eq!(
        news,
        vec![
            Update::AggregateGone {
                index: 3,
                name: "bond9".into()
            },
            Update::AggregateGone {
                index: 7,
                name: "bond0".into()
            },
            Update::Aggregate(renamed),
        ]
    );
}

#[test]
fn the_set_active_request_names_the_bond_by_index_and_only_sets_the_active_port() {
    let change = ActivePortChange {
        bond: "bond0".into(),
        bond_index: 7,
        port: "eth1".into(),
        port_index: 3,
    };
    let mut message = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(change.request())),
    );
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    let parsed =
        NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).expect("our own request parses");
    assert_eq!(parsed.header.message_type, libc::RTM_NEWLINK);
    let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = parsed.payload else {
        panic!("not a new-link message: {parsed:?}");
    };
    assert_eq!(link.header.index, 7);
    assert_eq!(
        link.attributes,
        vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bond),
            LinkInfo::Data(InfoData::Bond(vec![InfoBond::ActivePort(3)])),
        ])]
    );
}
