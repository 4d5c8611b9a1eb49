//! Bonds in the link table: aggregates assembled from the messages of the
//! bond and of its ports, sent after the link updates of the same batch.

use netlink_packet_core::NLM_F_MULTIPART;
use netlink_packet_route::link::{
    BondMode, BondPrimaryReselect, InfoBond, InfoBondPort, InfoData, InfoKind, InfoPortData,
    InfoPortKind, LinkAttribute, LinkEvent, LinkFlags, LinkInfo, LinkMessage, MiiStatus,
};

use super::super::decode::{Body, Received};
use super::LinkTable;
use crate::platform::linux::bond::ActivePortChange;
use crate::platform::{Aggregate, Link, LinkState, Update};

const PORT: u32 = 4242;
const BOND: u32 = 7;
const ETH0: u32 = 2;
const ETH1: u32 = 3;

fn named(index: u32, name: &str, flags: LinkFlags) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = flags;
    message.attributes.push(LinkAttribute::IfName(name.into()));
    message
}

fn up_flags() -> LinkFlags {
    LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp
}

/// A bond's message with `options` (mode, active port, ...).
fn bond(index: u32, name: &str, options: Vec<InfoBond>) -> LinkMessage {
    let mut message = named(index, name, up_flags());
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bond),
        LinkInfo::Data(InfoData::Bond(options)),
    ]));
    message
}

/// bond0 in active-backup mode with `active` (0: none).
fn bond0(active: u32) -> LinkMessage {
    bond(
        BOND,
        "bond0",
        vec![
            InfoBond::Mode(BondMode::ActiveBackup),
            InfoBond::ActivePort(active),
            InfoBond::PrimaryReselect(BondPrimaryReselect::Always),
        ],
    )
}

/// A veth port, with carrier when `up`, enslaved to `master` if any.
fn port(index: u32, name: &str, up: bool, master: Option<u32>) -> LinkMessage {
    let flags = if up { up_flags() } else { LinkFlags::Up };
    let mut message = named(index, name, flags);
    let mut infos = vec![LinkInfo::Kind(InfoKind::Veth)];
    if let Some(master) = master {
        message.attributes.push(LinkAttribute::Controller(master));
        let mii = if up { MiiStatus::Up } else { MiiStatus::Down };
        infos.push(LinkInfo::PortKind(InfoPortKind::Bond));
        infos.push(LinkInfo::PortData(InfoPortData::BondPort(vec![
            InfoBondPort::MiiStatus(mii),
            InfoBondPort::LinkFailureCount(0),
        ])));
    }
    message.attributes.push(LinkAttribute::LinkInfo(infos));
    message
}

fn link(index: u32, name: &str, state: LinkState, master: Option<u32>) -> Link {
    Link {
        index,
        name: name.into(),
        state,
        master,
    }
}

fn aggregate(members: &[&str], active: Option<&str>) -> Aggregate {
    Aggregate {
        index: BOND,
        name: "bond0".into(),
        mode: "active-backup".into(),
        failover: true,
        members: members.iter().map(|member| member.to_string()).collect(),
        active: active.map(str::to_owned),
        primary: None,
        kernel_preempts: false,
        arp_monitor: false,
    }
}

fn notification(message: LinkMessage) -> Received {
    Received {
        seq: 0,
        port: 0,
        flags: 0,
        body: Body::NewLink(message),
    }
}

fn deletion(message: LinkMessage) -> Received {
    Received {
        body: Body::DelLink(message),
        ..notification(LinkMessage::default())
    }
}

/// Run a dump listing `links` to its end; returns the updates of its end
/// and the aggregate news after it, as the socket loop sends them.
fn dump(table: &mut LinkTable, links: Vec<LinkMessage>) -> Vec<Update> {
    table.request_dump();
    let seq = table.start_dump().expect("a dump is wanted");
    let reply = |body| Received {
        seq,
        port: PORT,
        flags: NLM_F_MULTIPART,
        body,
    };
    for message in links {
        assert_eq!(table.handle(reply(Body::NewLink(message))), vec![]);
    }
    let mut updates = table.handle(reply(Body::Done { code: 0 }));
    updates.extend(table.aggregate_news());
    updates
}

/// Apply one batch of notifications as the socket loop does.
fn batch(table: &mut LinkTable, messages: Vec<Received>) -> Vec<Update> {
    let mut updates: Vec<Update> = messages
        .into_iter()
        .flat_map(|message| table.handle(message))
        .collect();
    updates.extend(table.aggregate_news());
    updates
}

fn the_usual_links() -> Vec<LinkMessage> {
    vec![
        named(1, "lo", LinkFlags::Up),
        port(ETH0, "eth0", true, Some(BOND)),
        port(ETH1, "eth1", true, Some(BOND)),
        bond0(ETH0),
    ]
}

/// A table whose first dump found bond0 over eth0 (active) and eth1.
fn bonded_table() -> LinkTable {
    let mut table = LinkTable::new(PORT);
    let updates = dump(&mut table, the_usual_links());
    assert!(matches!(updates[0], Update::Snapshot(_)), "{updates:?}");
    table
}

#[test]
fn a_snapshot_is_followed_by_each_bonds_aggregate() {
    let mut table = LinkTable::new(PORT);
    let updates = dump(&mut table, the_usual_links());
    match &updates[..] {
        [Update::Snapshot(links), Update::Aggregate(bond)] => {
            assert_eq!(links.len(), 4);
            assert_eq!(*bond, aggregate(&["eth0", "eth1"], Some("eth0")));
        }
        other => panic!("expected a snapshot and bond0, got {other:?}"),
    }
    assert_eq!(table.aggregate_news(), vec![], "nothing new since");
}

#[test]
fn every_snapshot_sends_every_bond_again() {
    let mut table = bonded_table();
    let updates = dump(&mut table, the_usual_links());
    assert!(matches!(
        &updates[..],
        [Update::Snapshot(_), Update::Aggregate(bond)]
            if *bond == aggregate(&["eth0", "eth1"], Some("eth0"))
    ));
}

#[test]
fn a_failover_comes_after_the_ports_link_update() {
    let mut table = bonded_table();
    let mut failover = bond0(ETH1);
    failover
        .attributes
        .push(LinkAttribute::Event(LinkEvent::BondingFailover));
    let updates = batch(
        &mut table,
        vec![
            notification(port(ETH0, "eth0", false, Some(BOND))),
            notification(failover),
        ],
    );
    assert_eq!(
        updates,
        vec![
            Update::Link(link(ETH0, "eth0", LinkState::Down, Some(BOND))),
            Update::Aggregate(aggregate(&["eth0", "eth1"], Some("eth1"))),
        ]
    );
}

#[test]
fn a_notification_that_changes_nothing_in_the_bond_is_no_news() {
    let mut table = bonded_table();
    let mut options_changed = bond0(ETH0);
    options_changed
        .attributes
        .push(LinkAttribute::Event(LinkEvent::BondingOptions));
    assert_eq!(
        batch(&mut table, vec![notification(options_changed)]),
        vec![]
    );
}

#[test]
fn a_port_leaving_and_rejoining_changes_the_members() {
    let mut table = bonded_table();
    let left = batch(
        &mut table,
        vec![notification(port(ETH1, "eth1", true, None))],
    );
    assert_eq!(
        left,
        vec![
            Update::Link(link(ETH1, "eth1", LinkState::Up, None)),
            Update::Aggregate(aggregate(&["eth0"], Some("eth0"))),
        ]
    );
    let rejoined = batch(
        &mut table,
        vec![notification(port(ETH1, "eth1", true, Some(BOND)))],
    );
    assert_eq!(
        rejoined,
        vec![
            Update::Link(link(ETH1, "eth1", LinkState::Up, Some(BOND))),
            Update::Aggregate(aggregate(&["eth0", "eth1"], Some("eth0"))),
        ]
    );
}

#[test]
fn a_deleted_bond_is_gone_and_a_new_one_reported() {
    let mut table = bonded_table();
    let updates = batch(
        &mut table,
        vec![
            notification(port(ETH0, "eth0", true, None)),
            notification(port(ETH1, "eth1", true, None)),
            deletion(bond0(0)),
        ],
    );
    assert_eq!(
        updates[2..],
        [
            Update::Gone {
                index: BOND,
                name: "bond0".into()
            },
            Update::AggregateGone {
                index: BOND,
                name: "bond0".into()
            },
        ]
    );
    let created = batch(&mut table, vec![notification(bond0(0))]);
    assert_eq!(
        created,
        vec![
            Update::Link(link(BOND, "bond0", LinkState::Up, None)),
            Update::Aggregate(aggregate(&[], None)),
        ]
    );
}

#[test]
fn a_bond_missing_from_a_dump_is_gone_after_the_snapshot() {
    let mut table = bonded_table();
    let updates = dump(&mut table, vec![port(ETH0, "eth0", true, None)]);
    assert!(
        matches!(
            &updates[..],
            [Update::Snapshot(_), Update::AggregateGone { index: BOND, name }] if name == "bond0"
        ),
        "{updates:?}"
    );
}

#[test]
fn a_renamed_bond_departs_and_arrives() {
    let mut table = bonded_table();
    let mut renamed = bond0(ETH0);
    renamed.attributes[0] = LinkAttribute::IfName("uplink".into());
    let updates = batch(&mut table, vec![notification(renamed)]);
    assert_eq!(
        updates[2..],
        [
            Update::AggregateGone {
                index: BOND,
                name: "bond0".into()
            },
            Update::Aggregate(Aggregate {
                name: "uplink".into(),
                ..aggregate(&["eth0", "eth1"], Some("eth0"))
            }),
        ]
    );
}

#[test]
fn a_primary_with_reselection_always_lets_the_kernel_preempt() {
    let mut table = bonded_table();
    let with_primary = bond(
        BOND,
        "bond0",
        vec![
            InfoBond::Mode(BondMode::ActiveBackup),
            InfoBond::ActivePort(ETH0),
            InfoBond::Primary(ETH0),
            InfoBond::PrimaryReselect(BondPrimaryReselect::Always),
        ],
    );
    let updates = batch(&mut table, vec![notification(with_primary)]);
    assert_eq!(
        updates,
        vec![Update::Aggregate(Aggregate {
            primary: Some("eth0".into()),
            kernel_preempts: true,
            arp_monitor: false,
            ..aggregate(&["eth0", "eth1"], Some("eth0"))
        })]
    );
}

#[test]
fn bond_news_during_a_dump_is_sent_and_kept() {
    let mut table = bonded_table();
    table.request_dump();
    let seq = table.start_dump().expect("requested dump");
    let reply = |body| Received {
        seq,
        port: PORT,
        flags: NLM_F_MULTIPART,
        body,
    };
    let failed_over = aggregate(&["eth0", "eth1"], Some("eth1"));
    let during = batch(&mut table, vec![notification(bond0(ETH1))]);
    assert_eq!(during, vec![Update::Aggregate(failed_over.clone())]);
    // The dump reaches the ports after the news about the bond.
    for message in [
        port(ETH0, "eth0", true, Some(BOND)),
        port(ETH1, "eth1", true, Some(BOND)),
    ] {
        assert_eq!(table.handle(reply(Body::NewLink(message))), vec![]);
    }
    let mut updates = table.handle(reply(Body::Done { code: 0 }));
    updates.extend(table.aggregate_news());
    assert!(
        matches!(
            &updates[..],
            [Update::Snapshot(links), Update::Aggregate(bond)]
                if links.len() == 3 && *bond == failed_over
        ),
        "{updates:?}"
    );
}

#[test]
fn a_set_active_request_is_checked_against_the_kernels_view() {
    let mut table = bonded_table();
    assert_eq!(
        table.active_port_change("bond0", "eth1"),
        Ok(ActivePortChange {
            bond: "bond0".into(),
            bond_index: BOND,
            port: "eth1".into(),
            port_index: ETH1,
        })
    );
    batch(
        &mut table,
        vec![
            notification(port(5, "eth2", true, None)),
            notification(bond(9, "bond1", vec![InfoBond::Mode(BondMode::BalanceRr)])),
        ],
    );
    let error = |group, port| {
        table
            .active_port_change(group, port)
            .expect_err("refused before asking the kernel")
    };
    assert_eq!(error("bond7", "eth0"), "bond7: no such interface");
    assert_eq!(error("eth2", "eth0"), "eth2 is not a bond");
    assert_eq!(
        error("bond1", "eth0"),
        "bond1 is a balance-rr bond; only an active-backup bond has an active port to set"
    );
    assert_eq!(
        error("bond0", "eth9"),
        "bond0 has no port eth9: no such interface"
    );
    assert_eq!(error("bond0", "eth2"), "eth2 is not a member of bond0");
}
