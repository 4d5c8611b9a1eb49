//! The ARP frames of a path probe: the request sent out of a port, and the
//! parser that decides whether a received frame is an answer to it.
//!
//! Frames are Ethernet II without an 802.1Q tag: the probe's socket is
//! bound to the port itself, where untagged frames are the port's own.

use std::net::Ipv4Addr;

use super::ignored::Ignored;

/// Length of an Ethernet II ARP frame for IPv4, without padding.
pub const FRAME_LEN: usize = 42;

/// The Ethernet broadcast address: a request must reach the target
/// whatever its hardware address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

// Field offsets in the frame, shared with the socket filter so that both
// read the same bytes.
pub(super) const ETH_DESTINATION: usize = 0;
pub(super) const ETH_SOURCE: usize = 6;
pub(super) const ETH_TYPE: usize = 12;
/// Hardware type, then protocol type: one 32-bit word.
pub(super) const ARP_TYPES: usize = 14;
/// Hardware and protocol address lengths, then the operation: one word.
pub(super) const ARP_LENGTHS_OP: usize = 18;
pub(super) const ARP_SENDER_MAC: usize = 22;
pub(super) const ARP_SENDER_IP: usize = 28;
pub(super) const ARP_TARGET_MAC: usize = 32;
pub(super) const ARP_TARGET_IP: usize = 38;

pub(super) const ETHERTYPE_ARP: u16 = 0x0806;
pub(super) const HTYPE_ETHERNET: u16 = 1;
pub(super) const PTYPE_IPV4: u16 = 0x0800;
pub(super) const HLEN_ETHERNET: u8 = 6;
pub(super) const PLEN_IPV4: u8 = 4;
pub(super) const OP_REQUEST: u16 = 1;
pub(super) const OP_REPLY: u16 = 2;

/// The ARP request asking who has `target`, broadcast from `source_mac`.
///
/// `sender_ip` is the group's `source`, 0.0.0.0 unless configured: from
/// 0.0.0.0 the request is an RFC 5227 ARP probe, which no neighbour takes
/// into its ARP cache, so probing a port that is not carrying traffic
/// moves nobody's idea of where our address lives.
pub fn request(source_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; FRAME_LEN] {
    frame(BROADCAST, OP_REQUEST, source_mac, sender_ip, [0; 6], target)
}

/// The reply a target at `sender_ip` with `sender_mac` sends to the
/// request of `target_mac`, `target_ip`: what [`parse_reply`] accepts.
/// For tests and simulated networks, which answer probes without a kernel.
pub fn reply(
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> [u8; FRAME_LEN] {
    frame(
        target_mac, OP_REPLY, sender_mac, sender_ip, target_mac, target_ip,
    )
}

/// An Ethernet II ARP frame for IPv4; the Ethernet source is the sender.
fn frame(
    destination: [u8; 6],
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> [u8; FRAME_LEN] {
    let mut frame = [0; FRAME_LEN];
    frame[ETH_DESTINATION..ETH_SOURCE].copy_from_slice(&destination);
    frame[ETH_SOURCE..ETH_TYPE].copy_from_slice(&sender_mac);
    frame[ETH_TYPE..ARP_TYPES].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    frame[ARP_TYPES..ARP_TYPES + 2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    frame[ARP_TYPES + 2..ARP_LENGTHS_OP].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
    frame[ARP_LENGTHS_OP] = HLEN_ETHERNET;
    frame[ARP_LENGTHS_OP + 1] = PLEN_IPV4;
    frame[ARP_LENGTHS_OP + 2..ARP_SENDER_MAC].copy_from_slice(&op.to_be_bytes());
    frame[ARP_SENDER_MAC..ARP_SENDER_IP].copy_from_slice(&sender_mac);
    frame[ARP_SENDER_IP..ARP_TARGET_MAC].copy_from_slice(&sender_ip.octets());
    frame[ARP_TARGET_MAC..ARP_TARGET_IP].copy_from_slice(&target_mac);
    frame[ARP_TARGET_IP..FRAME_LEN].copy_from_slice(&target_ip.octets());
    frame
}

/// An answer to one of our requests, as far as the frame alone can tell:
/// whether its sender is a target, and was asked, is the path state
/// machine's to judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpReply {
    /// Who answered: matched against the configured targets.
    pub sender_ip: Ipv4Addr,
    /// The hardware address it answered with, for logs.
    pub sender_mac: [u8; 6],
}

/// The ARP reply in `frame` if it is one addressed to `our_mac`, or why
/// the frame does not count.
///
/// Both the Ethernet destination and the ARP target hardware address must
/// be ours: a reply flooded to us, or an answer to another host's request,
/// says nothing about our path. Bytes after the 42 of the frame (the
/// padding to Ethernet's minimum of 60) are ignored.
pub fn parse_reply(frame: &[u8], our_mac: [u8; 6]) -> Result<ArpReply, Ignored> {
    let field = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    if frame.len() < ARP_TYPES {
        return Err(Ignored::Short);
    }
    if field(ETH_TYPE) != ETHERTYPE_ARP {
        return Err(Ignored::NotArp);
    }
    if frame.len() < FRAME_LEN {
        return Err(Ignored::Short);
    }
    if field(ARP_TYPES) != HTYPE_ETHERNET
        || field(ARP_TYPES + 2) != PTYPE_IPV4
        || frame[ARP_LENGTHS_OP] != HLEN_ETHERNET
        || frame[ARP_LENGTHS_OP + 1] != PLEN_IPV4
    {
        return Err(Ignored::Malformed);
    }
    if field(ARP_LENGTHS_OP + 2) != OP_REPLY {
        return Err(Ignored::NotReply);
    }
    if frame[ETH_DESTINATION..ETH_SOURCE] != our_mac
        || frame[ARP_TARGET_MAC..ARP_TARGET_IP] != our_mac
    {
        return Err(Ignored::NotForUs);
    }
    let mut sender_mac = [0; 6];
    sender_mac.copy_from_slice(&frame[ARP_SENDER_MAC..ARP_SENDER_IP]);
    let mut sender_ip = [0; 4];
    sender_ip.copy_from_slice(&frame[ARP_SENDER_IP..ARP_TARGET_MAC]);
    Ok(ArpReply {
        sender_ip: Ipv4Addr::from(sender_ip),
        sender_mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OURS: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const ROUTER_MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc];
    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    /// The router's answer to our probe from 0.0.0.0.
    fn router_reply() -> [u8; FRAME_LEN] {
        reply(ROUTER_MAC, ROUTER, OURS, Ipv4Addr::UNSPECIFIED)
    }

    fn expected() -> Result<ArpReply, Ignored> {
        Ok(ArpReply {
            sender_ip: ROUTER,
            sender_mac: ROUTER_MAC,
        })
    }

    #[test]
    fn a_request_is_byte_exact() {
        #[rustfmt::skip]
        let golden: [u8; 42] = [
            // Ethernet: broadcast, from us, ARP.
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x08, 0x06,
            // ARP: Ethernet, IPv4, 6, 4, request.
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
            // Sender: our MAC, 0.0.0.0 (an RFC 5227 probe).
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x00, 0x00, 0x00, 0x00,
            // Target: unknown MAC, 192.0.2.1.
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xc0, 0x00, 0x02, 0x01,
        ];
        assert_eq!(request(OURS, Ipv4Addr::UNSPECIFIED, ROUTER), golden);
    }

    #[test]
    fn a_request_carries_a_configured_source() {
        let frame = request(OURS, Ipv4Addr::new(198, 51, 100, 7), ROUTER);
        assert_eq!(frame[28..32], [198, 51, 100, 7]);
    }

    #[test]
    fn a_reply_is_byte_exact() {
        #[rustfmt::skip]
        let golden: [u8; 42] = [
            // Ethernet: to us, from the router, ARP.
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc,
            0x08, 0x06,
            // ARP: Ethernet, IPv4, 6, 4, reply.
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
            // Sender: the router.
            0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc,
            0xc0, 0x00, 0x02, 0x01,
            // Target: us, 0.0.0.0.
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(router_reply(), golden);
        assert_eq!(parse_reply(&golden, OURS), expected());
    }

    #[test]
    fn padding_is_accepted() {
        let mut padded = router_reply().to_vec();
        padded.resize(60, 0);
        assert_eq!(parse_reply(&padded, OURS), expected());
        padded.resize(1514, 0xa5);
        assert_eq!(parse_reply(&padded, OURS), expected());
    }

    #[test]
    fn short_frames_are_ignored() {
        let frame = router_reply();
        for len in 0..FRAME_LEN {
            assert_eq!(
                parse_reply(&frame[..len], OURS),
                Err(Ignored::Short),
                "length {len}"
            );
        }
    }

    #[test]
    fn other_ethertypes_are_not_arp() {
        let mut ipv4 = router_reply();
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse_reply(&ipv4, OURS), Err(Ignored::NotArp));
        // A short frame of another type is told by its type.
        assert_eq!(parse_reply(&ipv4[..20], OURS), Err(Ignored::NotArp));
        let mut rarp = router_reply();
        rarp[12..14].copy_from_slice(&[0x80, 0x35]);
        assert_eq!(parse_reply(&rarp, OURS), Err(Ignored::NotArp));
    }

    #[test]
    fn a_vlan_tagged_reply_is_not_accepted() {
        let untagged = router_reply();
        let mut tagged = untagged[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        tagged.extend_from_slice(&untagged[12..]);
        assert_eq!(parse_reply(&tagged, OURS), Err(Ignored::NotArp));
    }

    #[test]
    fn wrong_types_and_lengths_are_malformed() {
        // (offset, value): hardware type, protocol type, both lengths.
        for (at, value) in [(15, 6), (14, 1), (16, 0x86), (17, 0xdd), (18, 8), (19, 16)] {
            let mut frame = router_reply();
            frame[at] = value;
            assert_eq!(
                parse_reply(&frame, OURS),
                Err(Ignored::Malformed),
                "byte {at} = {value}"
            );
        }
    }

    #[test]
    fn requests_and_other_operations_are_not_replies() {
        assert_eq!(
            parse_reply(
                &request(ROUTER_MAC, ROUTER, Ipv4Addr::new(192, 0, 2, 9)),
                OURS
            ),
            Err(Ignored::NotReply)
        );
        for op in [0u16, 1, 3, 4, 8, 9, 0x0102, 0xffff] {
            let mut frame = router_reply();
            frame[20..22].copy_from_slice(&op.to_be_bytes());
            assert_eq!(parse_reply(&frame, OURS), Err(Ignored::NotReply), "op {op}");
        }
    }

    #[test]
    fn replies_to_others_are_not_for_us() {
        let other = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x31];
        let to_other = reply(ROUTER_MAC, ROUTER, other, Ipv4Addr::UNSPECIFIED);
        assert_eq!(parse_reply(&to_other, OURS), Err(Ignored::NotForUs));

        // Each of the two addresses alone is enough to refuse, in any byte.
        for field in [0, 32] {
            for at in field..field + 6 {
                let mut frame = router_reply();
                frame[at] ^= 0x01;
                assert_eq!(
                    parse_reply(&frame, OURS),
                    Err(Ignored::NotForUs),
                    "byte {at}"
                );
            }
        }

        // A reply broadcast to everyone is not addressed to us either.
        let mut broadcast = router_reply();
        broadcast[..6].copy_from_slice(&BROADCAST);
        assert_eq!(parse_reply(&broadcast, OURS), Err(Ignored::NotForUs));
    }

    #[test]
    fn the_sender_and_source_bytes_are_not_judged_here() {
        // Which sender counts is the path's question; the Ethernet source
        // and the target IP say nothing the parser needs.
        let mut frame = router_reply();
        frame[6..12].copy_from_slice(&[0x66; 6]);
        frame[38..42].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(parse_reply(&frame, OURS), expected());
    }

    fn mac() -> impl Strategy<Value = [u8; 6]> {
        any::<[u8; 6]>()
    }

    fn ip() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    proptest! {
        #[test]
        fn never_panics(frame in proptest::collection::vec(any::<u8>(), 0..128), ours in mac()) {
            if let Ok(parsed) = parse_reply(&frame, ours) {
                prop_assert!(frame.len() >= FRAME_LEN);
                prop_assert_eq!(&frame[..6], &ours[..]);
                prop_assert_eq!(&frame[32..38], &ours[..]);
                prop_assert_eq!(&frame[22..28], &parsed.sender_mac[..]);
            }
        }

        #[test]
        fn a_reply_round_trips(
            sender_mac in mac(),
            sender_ip in ip(),
            ours in mac(),
            our_ip in ip(),
            padding in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut frame = reply(sender_mac, sender_ip, ours, our_ip).to_vec();
            frame.extend_from_slice(&padding);
            prop_assert_eq!(parse_reply(&frame, ours), Ok(ArpReply { sender_ip, sender_mac }));
        }

        #[test]
        fn our_own_request_is_never_a_reply(ours in mac(), source in ip(), target in ip()) {
            prop_assert_eq!(parse_reply(&request(ours, source, target), ours), Err(Ignored::NotReply));
        }
    }
}
