//! Splitting a netlink datagram into messages, keeping only what the link
//! table needs.
//!
//! Decoding is lenient on purpose: an attribute the parser does not
//! understand is skipped instead of losing the whole interface, and a
//! malformed link message keeps its header (sequence number, flags) so
//! that dump bookkeeping still sees it. The nested `IFLA_LINKINFO` is
//! parsed as a whole by the library, so one odd bond option would hide the
//! whole bond; when it fails, the bond parts are parsed one by one.

use netlink_packet_core::{
    DoneBuffer, ErrorBuffer, NetlinkBuffer, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized, NLMSG_DONE, NLMSG_ERROR,
};
use netlink_packet_route::link::{
    InfoBond, InfoBondPort, InfoData, InfoKind, InfoPortData, InfoPortKind, LinkAttribute,
    LinkHeader, LinkInfo, LinkMessage,
};

/// Size of `struct ifinfomsg`, the fixed part before a link's attributes.
const LINK_HEADER_LEN: usize = std::mem::size_of::<libc::ifinfomsg>();

/// Netlink messages are padded to this alignment inside a datagram.
const NLMSG_ALIGN: usize = 4;

/// One netlink message: the header fields the table uses and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Received {
    /// `nlmsg_seq`: our dump's number on dump replies.
    pub seq: u32,
    /// `nlmsg_pid`: our socket's port id on dump replies.
    pub port: u32,
    /// `nlmsg_flags` (`NLM_F_MULTI`, `NLM_F_DUMP_INTR`, ...).
    pub flags: u16,
    pub body: Body,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// `RTM_NEWLINK`: an interface exists with this state.
    NewLink(LinkMessage),
    /// `RTM_DELLINK`: an interface went away.
    DelLink(LinkMessage),
    /// `NLMSG_DONE`: the end of a dump; a negative `code` means it failed.
    Done { code: i32 },
    /// `NLMSG_ERROR`: the kernel refused a request (negative errno).
    Error { code: i32 },
    /// A link message whose fixed header could not be read.
    Malformed { message_type: u16, reason: String },
    /// Any other message type; nothing to do with links.
    Other { message_type: u16 },
}

/// Iterator over the messages of one datagram. A broken frame (a length
/// that does not fit) yields one error and ends the iteration, since
/// nothing after it can be located.
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

/// The messages of `datagram`, in order.
pub(crate) fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

impl Iterator for Messages<'_> {
    type Item = Result<Received, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let frame = match NetlinkBuffer::new_checked(self.rest) {
            Ok(frame) => frame,
            Err(error) => {
                self.rest = &[];
                return Some(Err(format!("bad netlink frame: {error}")));
            }
        };
        let length = frame.length() as usize;
        let padded = length.div_ceil(NLMSG_ALIGN) * NLMSG_ALIGN;
        let received = Received {
            seq: frame.sequence_number(),
            port: frame.port_number(),
            flags: frame.flags(),
            body: body(frame.message_type(), frame.payload()),
        };
        self.rest = self.rest.get(padded..).unwrap_or(&[]);
        Some(Ok(received))
    }
}

/// Decode a message's payload according to its type.
fn body(message_type: u16, payload: &[u8]) -> Body {
    match message_type {
        NLMSG_DONE => Body::Done {
            code: done_code(payload),
        },
        NLMSG_ERROR => Body::Error {
            code: error_code(payload),
        },
        libc::RTM_NEWLINK | libc::RTM_DELLINK => match link_message(payload) {
            Ok(link) if message_type == libc::RTM_NEWLINK => Body::NewLink(link),
            Ok(link) => Body::DelLink(link),
            Err(reason) => Body::Malformed {
                message_type,
                reason,
            },
        },
        _ => Body::Other { message_type },
    }
}

/// The status of a finished dump. The kernel may omit it (success).
fn done_code(payload: &[u8]) -> i32 {
    DoneBuffer::new_checked(payload).map_or(0, |done| done.code())
}

/// The errno of an `NLMSG_ERROR`; a truncated one still reports a failure.
fn error_code(payload: &[u8]) -> i32 {
    ErrorBuffer::new_checked(payload)
        .ok()
        .and_then(|error| error.code())
        .map_or(-libc::EINVAL, |code| code.get())
}

/// Parse an `ifinfomsg` and every attribute that parses; the others are
/// skipped (logged at debug) so that an unknown or newer attribute does not
/// hide the interface.
pub(crate) fn link_message(payload: &[u8]) -> Result<LinkMessage, String> {
    let header = LinkHeader::parse(payload).map_err(|error| format!("bad ifinfomsg: {error}"))?;
    let family = header.interface_family;
    let mut message = LinkMessage::default();
    message.header = header;
    let attributes = payload.get(LINK_HEADER_LEN..).unwrap_or(&[]);
    for nla in NlasIterator::new(attributes) {
        let parsed = nla.and_then(|nla| match LinkAttribute::parse_with_param(&nla, family) {
            Err(error) if nla.kind() == libc::IFLA_LINKINFO => {
                tracing::debug!(
                    index = message.header.index,
                    "link info parsed part by part: {error}"
                );
                Ok(LinkAttribute::LinkInfo(lenient_link_info(nla.value())))
            }
            parsed => parsed,
        });
        match parsed {
            Ok(attribute) => message.attributes.push(attribute),
            Err(error) => tracing::debug!(
                index = message.header.index,
                "skipping a link attribute: {error}"
            ),
        }
    }
    Ok(message)
}

/// The parts of an `IFLA_LINKINFO` the table uses (the kinds, a bond's
/// options, a bond port's status), each kept if it parses by itself.
fn lenient_link_info(payload: &[u8]) -> Vec<LinkInfo> {
    let mut infos = Vec::new();
    let mut kind = None;
    let mut port_kind = None;
    for nla in NlasIterator::new(payload).flatten() {
        match nla.kind() {
            libc::IFLA_INFO_KIND => {
                if let Ok(parsed) = InfoKind::parse(&nla) {
                    kind = Some(parsed.clone());
                    infos.push(LinkInfo::Kind(parsed));
                }
            }
            libc::IFLA_INFO_SLAVE_KIND => {
                if let Ok(parsed) = InfoPortKind::parse(&nla) {
                    port_kind = Some(parsed.clone());
                    infos.push(LinkInfo::PortKind(parsed));
                }
            }
            libc::IFLA_INFO_DATA if kind == Some(InfoKind::Bond) => {
                let options = each_parsed(nla.value(), InfoBond::parse);
                infos.push(LinkInfo::Data(InfoData::Bond(options)));
            }
            libc::IFLA_INFO_SLAVE_DATA if port_kind == Some(InfoPortKind::Bond) => {
                let options = each_parsed(nla.value(), InfoBondPort::parse);
                infos.push(LinkInfo::PortData(InfoPortData::BondPort(options)));
            }
            _ => {}
        }
    }
    infos
}

/// Every attribute in `payload` that `parse` accepts; the others are
/// skipped.
fn each_parsed<'a, T, E>(
    payload: &'a [u8],
    parse: impl Fn(&NlaBuffer<&'a [u8]>) -> Result<T, E>,
) -> Vec<T> {
    NlasIterator::new(payload)
        .flatten()
        .filter_map(|nla| parse(&nla).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::DefaultNla;
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP_INTR, NLM_F_MULTIPART,
    };
    use netlink_packet_route::link::{BondMode, LinkFlags, MiiStatus};
    use netlink_packet_route::RouteNetlinkMessage;

    fn encode(message: RouteNetlinkMessage, seq: u32, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.port_number = 77;
        header.flags = flags;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn eth0() -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = 2;
        link.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        link.attributes.push(LinkAttribute::IfName("eth0".into()));
        link.attributes.push(LinkAttribute::Controller(5));
        link
    }

    fn done(seq: u32, flags: u16, code: i32) -> Vec<u8> {
        let mut bytes = vec![0; 20];
        let mut frame = NetlinkBuffer::new(&mut bytes[..]);
        frame.set_length(20);
        frame.set_message_type(NLMSG_DONE);
        frame.set_flags(flags);
        frame.set_sequence_number(seq);
        frame.set_port_number(77);
        bytes[16..20].copy_from_slice(&code.to_ne_bytes());
        bytes
    }

    #[test]
    fn a_datagram_with_a_link_and_done_decodes_in_order() {
        let mut datagram = encode(RouteNetlinkMessage::NewLink(eth0()), 9, NLM_F_MULTIPART);
        datagram.extend(done(9, NLM_F_MULTIPART | NLM_F_DUMP_INTR, 0));
        let decoded: Vec<_> = messages(&datagram).collect();
        assert_eq!(
            decoded,
            vec![
                Ok(Received {
                    seq: 9,
                    port: 77,
                    flags: NLM_F_MULTIPART,
                    body: Body::NewLink(eth0()),
                }),
                Ok(Received {
                    seq: 9,
                    port: 77,
                    flags: NLM_F_MULTIPART | NLM_F_DUMP_INTR,
                    body: Body::Done { code: 0 },
                }),
            ]
        );
    }

    #[test]
    fn dellink_and_failed_done_are_recognised() {
        let mut datagram = encode(RouteNetlinkMessage::DelLink(eth0()), 0, 0);
        datagram.extend(done(3, 0, -libc::EINTR));
        let bodies: Vec<_> = messages(&datagram).map(|m| m.map(|m| m.body)).collect();
        assert_eq!(
            bodies,
            vec![
                Ok(Body::DelLink(eth0())),
                Ok(Body::Done { code: -libc::EINTR })
            ]
        );
    }

    #[test]
    fn a_frame_longer_than_the_datagram_is_an_error_and_ends_iteration() {
        let mut datagram = encode(RouteNetlinkMessage::NewLink(eth0()), 1, 0);
        datagram.truncate(datagram.len() - 4);
        let decoded: Vec<_> = messages(&datagram).collect();
        assert_eq!(decoded.len(), 1);
        assert!(decoded[0].is_err(), "{decoded:?}");
    }

    #[test]
    fn a_link_message_without_its_fixed_header_is_malformed_not_lost() {
        let mut datagram = done(4, NLM_F_DUMP_INTR, 0);
        datagram[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
        let decoded: Vec<_> = messages(&datagram).collect();
        match &decoded[..] {
            [Ok(Received {
                seq: 4,
                flags: NLM_F_DUMP_INTR,
                body: Body::Malformed { message_type, .. },
                ..
            })] => assert_eq!(*message_type, libc::RTM_NEWLINK),
            other => panic!("unexpected decoding: {other:?}"),
        }
    }

    #[test]
    fn a_broken_attribute_is_skipped_and_the_rest_kept() {
        let mut datagram = encode(RouteNetlinkMessage::NewLink(eth0()), 1, 0);
        // A trailing attribute whose length runs past the message.
        datagram.extend([40, 0, 3, 0]);
        let total = datagram.len() as u32;
        datagram[0..4].copy_from_slice(&total.to_ne_bytes());
        let bodies: Vec<_> = messages(&datagram).map(|m| m.map(|m| m.body)).collect();
        assert_eq!(bodies, vec![Ok(Body::NewLink(eth0()))]);
    }

    /// A link message whose link info holds `infos`, as the kernel sends it.
    fn with_link_info(infos: Vec<LinkInfo>) -> LinkMessage {
        let mut link = eth0();
        link.attributes.push(LinkAttribute::LinkInfo(infos));
        link
    }

    fn decoded_body(link: LinkMessage) -> Body {
        let datagram = encode(RouteNetlinkMessage::NewLink(link), 1, 0);
        match &messages(&datagram).collect::<Vec<_>>()[..] {
            [Ok(received)] => received.body.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn a_bond_keeps_its_options_when_one_of_them_is_broken() {
        let broken_miimon = InfoBond::Other(DefaultNla::new(3, vec![1]));
        let sent = with_link_info(vec![
            LinkInfo::Kind(InfoKind::Bond),
            LinkInfo::Data(InfoData::Bond(vec![
                InfoBond::Mode(BondMode::ActiveBackup),
                broken_miimon,
                InfoBond::ActivePort(3),
            ])),
        ]);
        let kept = with_link_info(vec![
            LinkInfo::Kind(InfoKind::Bond),
            LinkInfo::Data(InfoData::Bond(vec![
                InfoBond::Mode(BondMode::ActiveBackup),
                InfoBond::ActivePort(3),
            ])),
        ]);
        assert_eq!(decoded_body(sent), Body::NewLink(kept));
    }

    #[test]
    fn a_bond_port_keeps_its_status_when_one_part_is_broken() {
        let broken_failure_count = InfoBondPort::Other(DefaultNla::new(3, vec![1]));
        let sent = with_link_info(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::PortKind(InfoPortKind::Bond),
            LinkInfo::PortData(InfoPortData::BondPort(vec![
                broken_failure_count,
                InfoBondPort::MiiStatus(MiiStatus::Up),
            ])),
        ]);
        let kept = with_link_info(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::PortKind(InfoPortKind::Bond),
            LinkInfo::PortData(InfoPortData::BondPort(vec![InfoBondPort::MiiStatus(
                MiiStatus::Up,
            )])),
        ]);
        assert_eq!(decoded_body(sent), Body::NewLink(kept));
    }

    #[test]
    fn intact_link_info_is_decoded_whole() {
        let link = with_link_info(vec![
            LinkInfo::Kind(InfoKind::Bond),
            LinkInfo::Data(InfoData::Bond(vec![
                InfoBond::Mode(BondMode::BalanceRr),
                InfoBond::MiiMon(10),
            ])),
        ]);
        assert_eq!(decoded_body(link.clone()), Body::NewLink(link));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            datagram in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        ) {
            let count = messages(&datagram).count();
            proptest::prop_assert!(count <= datagram.len() / 16 + 1);
        }

        #[test]
        fn a_corrupted_datagram_never_panics(
            edits in proptest::collection::vec((0usize..512, proptest::num::u8::ANY), 1..8),
            cut in 0usize..512,
        ) {
            let mut datagram = encode(RouteNetlinkMessage::NewLink(eth0()), 9, NLM_F_MULTIPART);
            datagram.extend(done(9, NLM_F_MULTIPART, 0));
            for (position, value) in edits {
                let position = position % datagram.len();
                datagram[position] = value;
            }
            datagram.truncate(cut.max(1));
            for message in messages(&datagram) {
                if let Ok(Received { body: Body::NewLink(link), .. }) = message {
                    proptest::prop_assert!(link.attributes.len() <= 2 + datagram.len() / 4);
                }
            }
        }
    }
}
