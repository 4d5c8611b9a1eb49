use netlink_packet_core::{NLM_F_DUMP_INTR, NLM_F_MULTIPART};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::AddressFamily;

use super::super::decode::{Body, Received};
use super::{link_from_message, LinkTable};
use crate::platform::{Link, LinkState, Update};

/// Our socket's port id in these tests.
const PORT: u32 = 4242;

fn message(index: u32, name: &str, flags: LinkFlags, master: Option<u32>) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = flags;
    message.attributes.push(LinkAttribute::IfName(name.into()));
    if let Some(master) = master {
        message.attributes.push(LinkAttribute::Controller(master));
    }
    message
}

fn up(index: u32, name: &str) -> LinkMessage {
    message(
        index,
        name,
        LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp,
        None,
    )
}

/// Admin up, no carrier.
fn down(index: u32, name: &str) -> LinkMessage {
    message(index, name, LinkFlags::Up | LinkFlags::Broadcast, None)
}

fn link(index: u32, name: &str, state: LinkState) -> Link {
    Link {
        index,
        name: name.into(),
        state,
        master: None,
    }
}

/// A multicast notification, here caused by another process's request.
fn notification(body: Body) -> Received {
    Received {
        seq: 1_700_000_000,
        port: 999,
        flags: 0,
        body,
    }
}

fn reply(seq: u32, flags: u16, body: Body) -> Received {
    Received {
        seq,
        port: PORT,
        flags: flags | NLM_F_MULTIPART,
        body,
    }
}

fn done(seq: u32) -> Received {
    reply(seq, 0, Body::Done { code: 0 })
}

/// A table whose first dump listed `links`.
fn table_with(links: Vec<LinkMessage>) -> LinkTable {
    let mut table = LinkTable::new(PORT);
    let seq = table.start_dump().expect("a new table wants a dump");
    for link in links {
        assert_eq!(table.handle(reply(seq, 0, Body::NewLink(link))), vec![]);
    }
    let updates = table.handle(done(seq));
    assert!(matches!(updates[..], [Update::Snapshot(_)]), "{updates:?}");
    table
}

fn snapshot(updates: Vec<Update>) -> Vec<Link> {
    match &updates[..] {
        [Update::Snapshot(links)] => links.clone(),
        _ => panic!("expected exactly one snapshot, got {updates:?}"),
    }
}

#[test]
fn a_new_interface_is_reported() {
    let mut table = table_with(vec![]);
    let updates = table.handle(notification(Body::NewLink(up(3, "eth1"))));
    assert_eq!(updates, vec![Update::Link(link(3, "eth1", LinkState::Up))]);
}

#[test]
fn a_state_change_is_reported_and_a_duplicate_collapsed() {
    let mut table = table_with(vec![up(3, "eth1")]);
    let updates = table.handle(notification(Body::NewLink(down(3, "eth1"))));
    assert_eq!(
        updates,
        vec![Update::Link(link(3, "eth1", LinkState::Down))]
    );
    let repeated = table.handle(notification(Body::NewLink(down(3, "eth1"))));
    assert_eq!(repeated, vec![]);
}

#[test]
fn a_change_the_daemon_does_not_see_is_collapsed() {
    let mut table = table_with(vec![up(3, "eth1")]);
    let mut promiscuous = up(3, "eth1");
    promiscuous.header.flags |= LinkFlags::Promisc;
    promiscuous.attributes.push(LinkAttribute::Mtu(9000));
    assert_eq!(
        table.handle(notification(Body::NewLink(promiscuous))),
        vec![]
    );
}

#[test]
fn a_new_master_is_reported() {
    let mut table = table_with(vec![up(3, "eth1")]);
    let enslaved = message(3, "eth1", LinkFlags::Up | LinkFlags::LowerUp, Some(7));
    let updates = table.handle(notification(Body::NewLink(enslaved)));
    let expected = Link {
        master: Some(7),
        ..link(3, "eth1", LinkState::Up)
    };
    assert_eq!(updates, vec![Update::Link(expected)]);
}

#[test]
fn a_rename_is_a_departure_then_an_arrival() {
    let mut table = table_with(vec![down(3, "eth1")]);
    let updates = table.handle(notification(Body::NewLink(down(3, "wan0"))));
    assert_eq!(
        updates,
        vec![
            Update::Gone {
                index: 3,
                name: "eth1".into()
            },
            Update::Link(link(3, "wan0", LinkState::Down)),
        ]
    );
}

#[test]
fn a_deletion_is_reported_once() {
    let mut table = table_with(vec![up(3, "eth1")]);
    let gone = Update::Gone {
        index: 3,
        name: "eth1".into(),
    };
    assert_eq!(
        table.handle(notification(Body::DelLink(up(3, "eth1")))),
        vec![gone]
    );
    assert_eq!(
        table.handle(notification(Body::DelLink(up(3, "eth1")))),
        vec![]
    );
    assert_eq!(table.links().count(), 0);
}

#[test]
fn bridge_port_messages_are_not_about_the_interface() {
    let mut table = table_with(vec![up(3, "eth1")]);
    let mut left_bridge = down(3, "eth1");
    left_bridge.header.interface_family = AddressFamily::Bridge;
    assert_eq!(
        table.handle(notification(Body::NewLink(left_bridge.clone()))),
        vec![]
    );
    assert_eq!(
        table.handle(notification(Body::DelLink(left_bridge))),
        vec![]
    );
    assert_eq!(
        table.links().cloned().collect::<Vec<_>>(),
        vec![link(3, "eth1", LinkState::Up)]
    );
}

fn state_of(message: &LinkMessage) -> LinkState {
    link_from_message(message)
        .map(|link| link.state)
        .expect("named link")
}

#[test]
fn up_needs_admin_up_and_carrier() {
    let state = |flags| state_of(&message(1, "x", flags, None));
    assert_eq!(state(LinkFlags::Up | LinkFlags::LowerUp), LinkState::Up);
    assert_eq!(state(LinkFlags::Up), LinkState::Down);
    assert_eq!(
        state(LinkFlags::LowerUp | LinkFlags::Running),
        LinkState::Down
    );
    assert_eq!(state(LinkFlags::empty()), LinkState::Down);
}

#[test]
fn running_counts_only_when_the_kernel_reports_no_carrier_at_all() {
    let old_kernel = message(1, "x", LinkFlags::Up | LinkFlags::Running, None);
    assert_eq!(state_of(&old_kernel), LinkState::Up);
    // Carrier just lost: the operational state (RUNNING) lags behind.
    let mut just_lost = old_kernel.clone();
    just_lost.attributes.push(LinkAttribute::Carrier(0));
    assert_eq!(state_of(&just_lost), LinkState::Down);
}

#[test]
fn a_message_without_a_name_is_ignored() {
    let mut table = table_with(vec![]);
    let mut nameless = LinkMessage::default();
    nameless.header.index = 9;
    assert_eq!(link_from_message(&nameless), None);
    assert_eq!(table.handle(notification(Body::NewLink(nameless))), vec![]);
}

#[test]
fn the_first_dump_becomes_a_snapshot_in_index_order() {
    let mut table = LinkTable::new(PORT);
    let seq = table.start_dump().expect("first dump");
    assert_eq!(table.start_dump(), None, "one dump at a time");
    table.handle(reply(seq, 0, Body::NewLink(up(5, "eth2"))));
    table.handle(reply(seq, 0, Body::NewLink(down(1, "lo"))));
    let links = snapshot(table.handle(done(seq)));
    assert_eq!(
        links,
        vec![
            link(1, "lo", LinkState::Down),
            link(5, "eth2", LinkState::Up)
        ]
    );
    assert!(!table.dump_running());
    assert_eq!(table.start_dump(), None, "no dump wanted after a snapshot");
}

#[test]
fn a_dump_replaces_the_table() {
    let mut table = table_with(vec![up(1, "a"), up(2, "b")]);
    table.request_dump();
    let seq = table.start_dump().expect("requested dump");
    table.handle(reply(seq, 0, Body::NewLink(down(2, "b"))));
    table.handle(reply(seq, 0, Body::NewLink(up(3, "c"))));
    let links = snapshot(table.handle(done(seq)));
    assert_eq!(
        links,
        vec![link(2, "b", LinkState::Down), link(3, "c", LinkState::Up)]
    );
    // "a" was not in the dump: it is new again if it shows up.
    let updates = table.handle(notification(Body::NewLink(up(1, "a"))));
    assert_eq!(updates, vec![Update::Link(link(1, "a", LinkState::Up))]);
}

#[test]
fn notifications_during_a_dump_are_sent_and_the_newest_news_wins() {
    let mut table = table_with(vec![up(2, "b"), up(3, "c")]);
    table.request_dump();
    let seq = table.start_dump().expect("requested dump");

    // "e" changes before its dump entry is built: the entry is newer.
    let early = table.handle(notification(Body::NewLink(down(5, "e"))));
    assert_eq!(early, vec![Update::Link(link(5, "e", LinkState::Down))]);
    table.handle(reply(seq, 0, Body::NewLink(up(2, "b"))));
    table.handle(reply(seq, 0, Body::NewLink(up(3, "c"))));
    // "c" changes after its entry: the notification is newer.
    let late = table.handle(notification(Body::NewLink(down(3, "c"))));
    assert_eq!(late, vec![Update::Link(link(3, "c", LinkState::Down))]);
    // "b" is deleted after its entry.
    let deleted = table.handle(notification(Body::DelLink(up(2, "b"))));
    assert_eq!(
        deleted,
        vec![Update::Gone {
            index: 2,
            name: "b".into()
        }]
    );
    // "d" appears after the dump passed its place.
    let appeared = table.handle(notification(Body::NewLink(up(4, "d"))));
    assert_eq!(appeared, vec![Update::Link(link(4, "d", LinkState::Up))]);
    table.handle(reply(seq, 0, Body::NewLink(up(5, "e"))));

    let links = snapshot(table.handle(done(seq)));
    assert_eq!(
        links,
        vec![
            link(3, "c", LinkState::Down),
            link(4, "d", LinkState::Up),
            link(5, "e", LinkState::Up),
        ]
    );
}

#[test]
fn an_interrupted_dump_is_redone() {
    let mut table = table_with(vec![]);
    table.request_dump();
    let first = table.start_dump().expect("requested dump");
    table.handle(reply(first, NLM_F_DUMP_INTR, Body::NewLink(up(2, "b"))));
    assert_eq!(table.handle(done(first)), vec![]);
    let second = table.start_dump().expect("the dump is redone");
    assert_ne!(second, first);
    table.handle(reply(second, 0, Body::NewLink(up(2, "b"))));
    let links = snapshot(table.handle(done(second)));
    assert_eq!(links, vec![link(2, "b", LinkState::Up)]);
}

#[test]
fn an_interruption_flagged_on_done_is_redone() {
    let mut table = LinkTable::new(PORT);
    let seq = table.start_dump().expect("first dump");
    table.handle(reply(seq, 0, Body::NewLink(up(2, "b"))));
    let interrupted = reply(seq, NLM_F_DUMP_INTR, Body::Done { code: 0 });
    assert_eq!(table.handle(interrupted), vec![]);
    assert!(table.start_dump().is_some());
}

#[test]
fn lost_messages_redo_a_running_dump_or_start_one() {
    let mut table = table_with(vec![]);
    assert!(table.messages_lost(), "the first loss is news");
    assert!(!table.messages_lost(), "a re-read is already due");
    let seq = table.start_dump().expect("lost messages start a dump");
    assert!(table.messages_lost(), "a loss during a dump is news");
    assert!(!table.messages_lost(), "the dump will be redone anyway");
    assert_eq!(table.handle(done(seq)), vec![]);
    let again = table.start_dump().expect("lost messages redo the dump");
    snapshot(table.handle(done(again)));
    assert!(table.messages_lost(), "in sync again: a loss is news");
}

#[test]
fn a_resync_during_a_dump_joins_it() {
    let mut table = table_with(vec![]);
    table.request_dump();
    let seq = table.start_dump().expect("requested dump");
    table.request_dump();
    assert_eq!(table.start_dump(), None);
    snapshot(table.handle(done(seq)));
    assert_eq!(table.start_dump(), None, "the request was served");
}

#[test]
fn a_refused_dump_waits_for_the_next_resync() {
    let mut table = table_with(vec![up(2, "b")]);
    table.request_dump();
    let seq = table.start_dump().expect("requested dump");
    let refused = reply(seq, 0, Body::Error { code: -libc::EBUSY });
    assert_eq!(table.handle(refused), vec![]);
    assert!(!table.dump_running());
    assert_eq!(table.start_dump(), None);
    assert_eq!(table.links().count(), 1, "the table is kept");
    table.request_dump();
    assert!(table.start_dump().is_some());
}

#[test]
fn a_dump_delayed_by_a_full_socket_goes_on() {
    let mut table = table_with(vec![]);
    table.request_dump();
    let seq = table.start_dump().expect("requested dump");
    let delayed = reply(
        seq,
        0,
        Body::Error {
            code: -libc::ENOBUFS,
        },
    );
    assert_eq!(table.handle(delayed), vec![]);
    assert!(table.dump_running());
    table.handle(reply(seq, 0, Body::NewLink(up(2, "b"))));
    let links = snapshot(table.handle(done(seq)));
    assert_eq!(links, vec![link(2, "b", LinkState::Up)]);
}

#[test]
fn a_failed_dump_keeps_the_table() {
    let mut table = table_with(vec![up(2, "b")]);
    table.request_dump();
    let seq = table.start_dump().expect("requested dump");
    let failed = reply(
        seq,
        0,
        Body::Done {
            code: -libc::EMSGSIZE,
        },
    );
    assert_eq!(table.handle(failed), vec![]);
    assert!(!table.dump_running());
    assert_eq!(table.links().count(), 1);
}

#[test]
fn stray_replies_of_an_abandoned_dump_are_news_and_its_end_is_ignored() {
    let mut table = table_with(vec![]);
    table.request_dump();
    let abandoned = table.start_dump().expect("requested dump");
    table.datagram_truncated();
    let seq = table.start_dump().expect("a new dump");
    let stray = reply(abandoned, 0, Body::NewLink(up(8, "late")));
    assert_eq!(
        table.handle(stray),
        vec![Update::Link(link(8, "late", LinkState::Up))]
    );
    assert_eq!(table.handle(done(abandoned)), vec![]);
    assert!(table.dump_running());
    assert_eq!(
        snapshot(table.handle(done(seq))),
        vec![link(8, "late", LinkState::Up)]
    );
}

#[test]
fn an_unsent_request_leaves_no_dump_running() {
    let mut table = LinkTable::new(PORT);
    assert!(table.start_dump().is_some());
    table.dump_not_sent();
    assert!(!table.dump_running());
    assert_eq!(table.start_dump(), None);
}

#[test]
fn a_truncated_datagram_abandons_the_dump_and_starts_another() {
    let mut table = table_with(vec![up(2, "b")]);
    table.request_dump();
    let first = table.start_dump().expect("requested dump");
    table.datagram_truncated();
    let second = table.start_dump().expect("a new dump");
    assert_ne!(second, first);
    let late = reply(first, 0, Body::Done { code: 0 });
    assert_eq!(table.handle(late), vec![], "the abandoned dump is ignored");
    assert!(table.dump_running());
    snapshot(table.handle(done(second)));
}
