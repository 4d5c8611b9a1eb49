//! Routing-socket messages, parsed from bytes by offset.
//!
//! FreeBSD's routing socket has no kernel-side filter, so the daemon reads
//! every routing message (route churn included) and keeps only the two
//! that concern interfaces: `RTM_IFINFO` (flags and link state changed) and
//! `RTM_IFANNOUNCE` (attach or detach). Each `read(2)` returns exactly one
//! message; [`messages`] also walks buffers that hold several, such as
//! sysctl interface-list dumps.
//!
//! Fields are read in host byte order, as the kernel writes them (the test
//! vectors are amd64, little-endian), at offsets taken from the
//! [`abi`](super::abi) structs, whose layout the header check pins down.

use core::fmt;
use core::mem::{offset_of, size_of};

use super::abi::{
    if_announcemsghdr, if_data, if_msghdr, name_from_field, IFAN_ARRIVAL, IFAN_DEPARTURE, IFF_UP,
    IFNAMSIZ, LINK_STATE_UP, RTM_IFANNOUNCE, RTM_IFINFO, RTM_VERSION,
};
use crate::platform::LinkState;

/// Bytes every routing message starts with: `u16 msglen`, `u8 version`,
/// `u8 type`.
pub const COMMON_HEADER_LEN: usize = 4;

/// A read buffer that holds any routing message: route(8) uses 2048, and
/// `RTM_IEEE80211` carries a payload, so leave room.
pub const READ_BUFFER_LEN: usize = 8192;

const IF_MSGHDR_LEN: usize = size_of::<if_msghdr>();
const IFM_FLAGS: usize = offset_of!(if_msghdr, ifm_flags);
const IFM_INDEX: usize = offset_of!(if_msghdr, ifm_index);
const IFM_LINK_STATE: usize = offset_of!(if_msghdr, ifm_data) + offset_of!(if_data, ifi_link_state);
const IFM_TYPE: usize = offset_of!(if_msghdr, ifm_data) + offset_of!(if_data, ifi_type);
const IFM_DATALEN: usize = offset_of!(if_msghdr, ifm_data) + offset_of!(if_data, ifi_datalen);

const IF_ANNOUNCE_LEN: usize = size_of::<if_announcemsghdr>();
const IFAN_INDEX: usize = offset_of!(if_announcemsghdr, ifan_index);
const IFAN_NAME: usize = offset_of!(if_announcemsghdr, ifan_name);
const IFAN_WHAT: usize = offset_of!(if_announcemsghdr, ifan_what);

/// A routing message laggmond acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteMessage {
    /// `RTM_IFINFO`: an interface's flags or link state changed. Sent for
    /// lagg ports and for the lagg itself.
    IfInfo {
        /// The interface index.
        index: u16,
        /// `if_flags | if_drv_flags` (`IFF_*`).
        flags: i32,
        /// `ifi_link_state` (`LINK_STATE_*`).
        link_state: u8,
        /// `ifi_type` (`IFT_*`): a lagg member reports
        /// [`IFT_IEEE8023ADLAG`](super::abi::IFT_IEEE8023ADLAG), which is
        /// how a port that just joined a lagg shows itself.
        if_type: u8,
    },
    /// `RTM_IFANNOUNCE`: an interface attached or detached (never sent for
    /// lagg membership changes).
    IfAnnounce {
        /// The interface index.
        index: u16,
        /// The interface name (lossy if it is not UTF-8).
        name: String,
        /// `true` on attach (`IFAN_ARRIVAL`), `false` on detach.
        arrival: bool,
    },
}

impl RouteMessage {
    /// The interface the message is about.
    pub fn index(&self) -> u16 {
        match self {
            RouteMessage::IfInfo { index, .. } | RouteMessage::IfAnnounce { index, .. } => *index,
        }
    }

    /// For `RTM_IFINFO`, whether lagg can use the interface as a port.
    pub fn link_state(&self) -> Option<LinkState> {
        match self {
            RouteMessage::IfInfo {
                flags, link_state, ..
            } => Some(LinkState::from_up(port_link_up(*flags, *link_state))),
            RouteMessage::IfAnnounce { .. } => None,
        }
    }

    /// The message as the kernel sends it, in host byte order: the fields
    /// above at their offsets, `RTM_VERSION`, `ifi_datalen` set as the
    /// kernel sets it and every other byte zero. It exists so that tests
    /// and scripted kernels speak the same bytes as the routing socket;
    /// [`parse`] reads it back unchanged. Names longer than the kernel's
    /// field are cut to [`IFNAMSIZ`] bytes, without a NUL, as the kernel
    /// would have them.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            RouteMessage::IfInfo {
                index,
                flags,
                link_state,
                if_type,
            } => {
                let mut bytes = header_bytes(IF_MSGHDR_LEN, RTM_IFINFO);
                bytes[IFM_FLAGS..IFM_FLAGS + 4].copy_from_slice(&flags.to_ne_bytes());
                bytes[IFM_INDEX..IFM_INDEX + 2].copy_from_slice(&index.to_ne_bytes());
                bytes[IFM_TYPE] = *if_type;
                bytes[IFM_LINK_STATE] = *link_state;
                let datalen = size_of::<if_data>() as u16;
                bytes[IFM_DATALEN..IFM_DATALEN + 2].copy_from_slice(&datalen.to_ne_bytes());
                bytes
            }
            RouteMessage::IfAnnounce {
                index,
                name,
                arrival,
            } => {
                let mut bytes = header_bytes(IF_ANNOUNCE_LEN, RTM_IFANNOUNCE);
                bytes[IFAN_INDEX..IFAN_INDEX + 2].copy_from_slice(&index.to_ne_bytes());
                let name = &name.as_bytes()[..name.len().min(IFNAMSIZ)];
                bytes[IFAN_NAME..IFAN_NAME + name.len()].copy_from_slice(name);
                let what = if *arrival {
                    IFAN_ARRIVAL
                } else {
                    IFAN_DEPARTURE
                };
                bytes[IFAN_WHAT..IFAN_WHAT + 2].copy_from_slice(&what.to_ne_bytes());
                bytes
            }
        }
    }
}

/// A zeroed message of `len` bytes with its common header filled in.
fn header_bytes(len: usize, msg_type: u8) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    // Both headers are far shorter than u16::MAX.
    bytes[..2].copy_from_slice(&(len as u16).to_ne_bytes());
    bytes[2] = RTM_VERSION;
    bytes[3] = msg_type;
    bytes
}

/// Whether lagg considers a port usable (`LAGG_PORTACTIVE`): carrier
/// (`LINK_STATE_UP`) and administratively up (`IFF_UP`). `IFF_RUNNING` does
/// not count, and a driver reporting `LINK_STATE_UNKNOWN` is never used.
pub fn port_link_up(flags: i32, link_state: u8) -> bool {
    link_state == LINK_STATE_UP && flags & IFF_UP != 0
}

/// Why bytes are not a routing message laggmond can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than the common header.
    TooShort { len: usize },
    /// The header's length cannot even cover the header itself.
    BadLength { msglen: usize },
    /// The header announces more bytes than there are.
    Truncated { len: usize, msglen: usize },
    /// Not [`RTM_VERSION`]: the layout is unknown.
    Version { version: u8 },
    /// A message too short for its type's header.
    HeaderTooShort {
        msg_type: u8,
        msglen: usize,
        needed: usize,
    },
    /// An `RTM_IFANNOUNCE` that is neither arrival nor departure.
    UnknownAnnouncement { index: u16, what: u16 },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort { len } => write!(
                f,
                "routing message too short: {len} bytes, its header needs {COMMON_HEADER_LEN}"
            ),
            ParseError::BadLength { msglen } => write!(
                f,
                "routing message length {msglen} is shorter than its {COMMON_HEADER_LEN}-byte header"
            ),
            ParseError::Truncated { len, msglen } => write!(
                f,
                "truncated routing message: {len} bytes, header says {msglen}"
            ),
            ParseError::Version { version } => write!(
                f,
                "routing message version {version}, expected {RTM_VERSION}"
            ),
            ParseError::HeaderTooShort {
                msg_type,
                msglen,
                needed,
            } => write!(
                f,
                "{} message of {msglen} bytes is shorter than its {needed}-byte header",
                type_name(*msg_type)
            ),
            ParseError::UnknownAnnouncement { index, what } => write!(
                f,
                "RTM_IFANNOUNCE for interface index {index} with unknown ifan_what {what} \
                 (expected {IFAN_ARRIVAL} arrival or {IFAN_DEPARTURE} departure)"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// The name of a message type, for error messages.
fn type_name(msg_type: u8) -> String {
    match msg_type {
        RTM_IFINFO => "RTM_IFINFO".to_owned(),
        RTM_IFANNOUNCE => "RTM_IFANNOUNCE".to_owned(),
        other => format!("routing message type {other}"),
    }
}

/// Parses the routing message at the start of `buf` (one `read(2)` of the
/// routing socket). Bytes beyond the message's own length are ignored.
/// `Ok(None)` is a valid message of a type laggmond does not use.
pub fn parse(buf: &[u8]) -> Result<Option<RouteMessage>, ParseError> {
    let (msg, _rest) = split_first(buf)?;
    parse_message(msg)
}

/// Splits off the first message by its `msglen`, checking that the length
/// is plausible and present.
fn split_first(buf: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let header: &[u8; COMMON_HEADER_LEN] = buf
        .get(..COMMON_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(ParseError::TooShort { len: buf.len() })?;
    let msglen = usize::from(u16_at(header, 0));
    if msglen < COMMON_HEADER_LEN {
        return Err(ParseError::BadLength { msglen });
    }
    if msglen > buf.len() {
        return Err(ParseError::Truncated {
            len: buf.len(),
            msglen,
        });
    }
    Ok(buf.split_at(msglen))
}

/// Parses one message whose length has been checked to be exactly `msg`.
fn parse_message(msg: &[u8]) -> Result<Option<RouteMessage>, ParseError> {
    let (version, msg_type) = match msg {
        [_, _, version, msg_type, ..] => (*version, *msg_type),
        _ => return Err(ParseError::BadLength { msglen: msg.len() }),
    };
    if version != RTM_VERSION {
        return Err(ParseError::Version { version });
    }
    match msg_type {
        RTM_IFINFO => parse_ifinfo(msg).map(Some),
        RTM_IFANNOUNCE => parse_ifannounce(msg).map(Some),
        _ => Ok(None),
    }
}

/// `RTM_IFINFO`: index, flags and link state. `ifi_datalen` is not used to
/// derive offsets; the fixed `if_msghdr` layout is the kernel's contract.
fn parse_ifinfo(msg: &[u8]) -> Result<RouteMessage, ParseError> {
    let header = fixed_header::<IF_MSGHDR_LEN>(msg, RTM_IFINFO)?;
    Ok(RouteMessage::IfInfo {
        index: u16_at(header, IFM_INDEX),
        flags: i32_at(header, IFM_FLAGS),
        link_state: header[IFM_LINK_STATE],
        if_type: header[IFM_TYPE],
    })
}

/// `RTM_IFANNOUNCE`: index, name and arrival or departure.
fn parse_ifannounce(msg: &[u8]) -> Result<RouteMessage, ParseError> {
    let header = fixed_header::<IF_ANNOUNCE_LEN>(msg, RTM_IFANNOUNCE)?;
    let index = u16_at(header, IFAN_INDEX);
    let arrival = match u16_at(header, IFAN_WHAT) {
        IFAN_ARRIVAL => true,
        IFAN_DEPARTURE => false,
        what => return Err(ParseError::UnknownAnnouncement { index, what }),
    };
    Ok(RouteMessage::IfAnnounce {
        index,
        name: name_from_field(&header[IFAN_NAME..IFAN_NAME + IFNAMSIZ]),
        arrival,
    })
}

/// The first `N` bytes of `msg` as an array, so that every field read
/// after this check is in bounds.
fn fixed_header<const N: usize>(msg: &[u8], msg_type: u8) -> Result<&[u8; N], ParseError> {
    msg.get(..N)
        .and_then(|h| h.try_into().ok())
        .ok_or(ParseError::HeaderTooShort {
            msg_type,
            msglen: msg.len(),
            needed: N,
        })
}

fn u16_at<const N: usize>(header: &[u8; N], at: usize) -> u16 {
    u16::from_ne_bytes([header[at], header[at + 1]])
}

fn i32_at<const N: usize>(header: &[u8; N], at: usize) -> i32 {
    i32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
}

/// The messages laggmond uses in a buffer of consecutive routing messages,
/// each advanced over by its own `msglen`.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

/// Iterator returned by [`messages`]. A bad message of plausible length is
/// reported and stepped over; a bad length ends the walk, since nothing
/// after it can be located.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl Iterator for Messages<'_> {
    type Item = Result<RouteMessage, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (msg, rest) = match split_first(self.rest) {
                Ok(split) => split,
                Err(error) => {
                    self.rest = &[];
                    return Some(Err(error));
                }
            };
            self.rest = rest;
            match parse_message(msg) {
                Ok(None) => continue,
                Ok(Some(message)) => return Some(Ok(message)),
                Err(error) => return Some(Err(error)),
            }
        }
        None
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::platform::freebsd::abi::{
        IFF_BROADCAST, IFF_MULTICAST, IFF_RUNNING, IFF_SIMPLEX, IFT_IEEE8023ADLAG, LINK_STATE_DOWN,
        LINK_STATE_UNKNOWN, RTM_NEWADDR,
    };
    use proptest::prelude::*;

    /// The facts file's `RTM_IFINFO` for if#2: lagg member, link DOWN, MTU
    /// 1500, 1 Gb/s, flags UP|BROADCAST|RUNNING|SIMPLEX|MULTICAST.
    fn golden_ifinfo() -> Vec<u8> {
        let mut bytes = vec![
            0xa8, 0x00, 0x05, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x43, 0x88, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, //
            0xa1, 0x00, 0x06, 0x0e, 0x01, 0x00, 0x98, 0x00, 0xdc, 0x05, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, //
            0x00, 0xca, 0x9a, 0x3b, 0x00, 0x00, 0x00, 0x00,
        ];
        bytes.resize(168, 0);
        bytes
    }

    /// The facts file's `RTM_IFANNOUNCE`: if#2 `em0` departed.
    fn golden_ifannounce() -> Vec<u8> {
        vec![
            0x18, 0x00, 0x05, 0x11, 0x02, 0x00, 0x65, 0x6d, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
        ]
    }

    #[test]
    fn golden_ifinfo_parses() {
        let bytes = golden_ifinfo();
        assert_eq!(bytes.len(), 168);
        let message = parse(&bytes).expect("valid").expect("used type");
        assert_eq!(
            message,
            RouteMessage::IfInfo {
                index: 2,
                flags: IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_SIMPLEX | IFF_MULTICAST,
                link_state: LINK_STATE_DOWN,
                if_type: IFT_IEEE8023ADLAG,
            }
        );
        assert_eq!(message.index(), 2);
        assert_eq!(message.link_state(), Some(LinkState::Down));
    }

    #[test]
    fn golden_ifannounce_parses() {
        let message = parse(&golden_ifannounce())
            .expect("valid")
            .expect("used type");
        assert_eq!(
            message,
            RouteMessage::IfAnnounce {
                index: 2,
                name: "em0".into(),
                arrival: false,
            }
        );
        assert_eq!(message.link_state(), None);
    }

    #[test]
    fn ifinfo_link_up_needs_carrier_and_iff_up() {
        let mut bytes = golden_ifinfo();
        bytes[20] = LINK_STATE_UP;
        let up = parse(&bytes).expect("valid").expect("used type");
        assert_eq!(up.link_state(), Some(LinkState::Up));

        bytes[8] &= !(IFF_UP as u8);
        let admin_down = parse(&bytes).expect("valid").expect("used type");
        assert_eq!(admin_down.link_state(), Some(LinkState::Down));
    }

    #[test]
    fn port_link_up_is_lagg_portactive() {
        assert!(port_link_up(IFF_UP, LINK_STATE_UP));
        assert!(port_link_up(IFF_UP | IFF_RUNNING, LINK_STATE_UP));
        assert!(!port_link_up(IFF_RUNNING, LINK_STATE_UP));
        assert!(!port_link_up(IFF_UP | IFF_RUNNING, LINK_STATE_DOWN));
        assert!(!port_link_up(IFF_UP | IFF_RUNNING, LINK_STATE_UNKNOWN));
    }

    #[test]
    fn arrival_and_long_names_parse() {
        let mut bytes = golden_ifannounce();
        bytes[4] = 7;
        bytes[6..22].copy_from_slice(b"abcdefghijklmnop"); // no NUL at all
        bytes[22] = 0;
        let message = parse(&bytes).expect("valid").expect("used type");
        assert_eq!(
            message,
            RouteMessage::IfAnnounce {
                index: 7,
                name: "abcdefghijklmnop".into(),
                arrival: true,
            }
        );
    }

    #[test]
    fn non_utf8_name_is_replaced_not_rejected() {
        let mut bytes = golden_ifannounce();
        bytes[7] = 0xff;
        let message = parse(&bytes).expect("valid").expect("used type");
        assert_eq!(
            message,
            RouteMessage::IfAnnounce {
                index: 2,
                name: "e\u{fffd}0".into(),
                arrival: false,
            }
        );
    }

    #[test]
    fn other_types_are_skipped() {
        let mut bytes = golden_ifannounce();
        bytes[3] = RTM_NEWADDR;
        assert_eq!(parse(&bytes), Ok(None));
        // Even a short message of an unused type is only skipped.
        assert_eq!(parse(&[4, 0, 5, 1]), Ok(None));
    }

    #[test]
    fn bytes_after_the_message_are_ignored() {
        let mut bytes = golden_ifannounce();
        bytes.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(parse(&bytes), parse(&golden_ifannounce()));
    }

    #[test]
    fn truncated_message_is_an_error() {
        let bytes = golden_ifinfo();
        let error = parse(&bytes[..12]).expect_err("truncated");
        assert_eq!(
            error,
            ParseError::Truncated {
                len: 12,
                msglen: 168
            }
        );
        assert_eq!(
            error.to_string(),
            "truncated routing message: 12 bytes, header says 168"
        );
    }

    #[test]
    fn buffer_shorter_than_common_header_is_an_error() {
        for len in 0..COMMON_HEADER_LEN {
            let error = parse(&golden_ifinfo()[..len]).expect_err("too short");
            assert_eq!(error, ParseError::TooShort { len });
        }
        assert_eq!(
            ParseError::TooShort { len: 3 }.to_string(),
            "routing message too short: 3 bytes, its header needs 4"
        );
    }

    #[test]
    fn zero_and_tiny_lengths_are_errors() {
        for msglen in 0..4u8 {
            let error = parse(&[msglen, 0, 5, RTM_IFINFO, 0, 0]).expect_err("bad length");
            assert_eq!(
                error,
                ParseError::BadLength {
                    msglen: msglen.into()
                }
            );
        }
        assert_eq!(
            ParseError::BadLength { msglen: 0 }.to_string(),
            "routing message length 0 is shorter than its 4-byte header"
        );
    }

    #[test]
    fn wrong_version_is_an_error() {
        let mut bytes = golden_ifinfo();
        bytes[2] = 4;
        let error = parse(&bytes).expect_err("old version");
        assert_eq!(error, ParseError::Version { version: 4 });
        assert_eq!(error.to_string(), "routing message version 4, expected 5");
    }

    #[test]
    fn message_shorter_than_its_header_is_an_error() {
        let mut bytes = golden_ifinfo();
        bytes[0] = 24; // msglen 24, a whole buffer of 168
        let error = parse(&bytes).expect_err("short header");
        assert_eq!(
            error,
            ParseError::HeaderTooShort {
                msg_type: RTM_IFINFO,
                msglen: 24,
                needed: 168
            }
        );
        assert_eq!(
            error.to_string(),
            "RTM_IFINFO message of 24 bytes is shorter than its 168-byte header"
        );

        let mut bytes = golden_ifannounce();
        bytes[0] = 23;
        let error = parse(&bytes).expect_err("short header");
        assert_eq!(
            error.to_string(),
            "RTM_IFANNOUNCE message of 23 bytes is shorter than its 24-byte header"
        );
    }

    #[test]
    fn unknown_announcement_is_an_error() {
        let mut bytes = golden_ifannounce();
        bytes[22] = 9;
        let error = parse(&bytes).expect_err("unknown what");
        assert_eq!(error, ParseError::UnknownAnnouncement { index: 2, what: 9 });
        assert_eq!(
            error.to_string(),
            "RTM_IFANNOUNCE for interface index 2 with unknown ifan_what 9 \
             (expected 0 arrival or 1 departure)"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let garbage = [0xffu8; 64];
        assert_eq!(
            parse(&garbage),
            Err(ParseError::Truncated {
                len: 64,
                msglen: 0xffff
            })
        );
        let mut ascii = b"GET / HTTP/1.1\r\n".to_vec();
        ascii[0] = 16;
        ascii[1] = 0;
        assert_eq!(parse(&ascii), Err(ParseError::Version { version: b'T' }));
    }

    #[test]
    fn messages_walks_a_buffer_by_msglen() {
        let mut buf = golden_ifinfo();
        buf.extend_from_slice(&[8, 0, 5, RTM_NEWADDR, 0, 0, 0, 0]); // skipped
        buf.extend(golden_ifannounce());
        let parsed: Vec<_> = messages(&buf).collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].as_ref().map(RouteMessage::index), Ok(2));
        assert!(matches!(
            parsed[1],
            Ok(RouteMessage::IfAnnounce { arrival: false, .. })
        ));
    }

    #[test]
    fn messages_steps_over_a_bad_message_and_stops_at_a_bad_length() {
        let mut bad_version = golden_ifannounce();
        bad_version[2] = 7;
        let mut buf = bad_version;
        buf.extend(golden_ifannounce());
        buf.extend_from_slice(&[0, 0, 5, RTM_IFINFO]); // msglen 0
        buf.extend(golden_ifannounce()); // unreachable
        let parsed: Vec<_> = messages(&buf).collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0], Err(ParseError::Version { version: 7 }));
        assert!(parsed[1].is_ok());
        assert_eq!(parsed[2], Err(ParseError::BadLength { msglen: 0 }));
        assert_eq!(messages(&[]).count(), 0);
    }

    #[test]
    fn to_bytes_matches_the_golden_announcement() {
        let message = RouteMessage::IfAnnounce {
            index: 2,
            name: "em0".into(),
            arrival: false,
        };
        assert_eq!(message.to_bytes(), golden_ifannounce());
    }

    #[test]
    fn to_bytes_matches_the_golden_ifinfo_in_every_modelled_field() {
        let message = parse(&golden_ifinfo()).expect("valid").expect("used type");
        let bytes = message.to_bytes();
        let golden = golden_ifinfo();
        assert_eq!(bytes.len(), golden.len());
        // Header, flags, index, ifi_type, link state and ifi_datalen agree;
        // the golden vector also carries addrlen, hdrlen, MTU and baudrate.
        for at in [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 16, 20, 22, 23] {
            assert_eq!(bytes[at], golden[at], "byte {at}");
        }
        assert_eq!(&golden[18..20], &[0x06, 0x0e]);
        assert_eq!(&bytes[18..20], &[0, 0]);
    }

    #[test]
    fn to_bytes_cuts_long_names_to_the_field() {
        let message = RouteMessage::IfAnnounce {
            index: 9,
            name: "abcdefghijklmnopqrst".into(),
            arrival: true,
        };
        let parsed = parse(&message.to_bytes()).expect("valid").expect("used");
        assert_eq!(
            parsed,
            RouteMessage::IfAnnounce {
                index: 9,
                name: "abcdefghijklmnop".into(),
                arrival: true,
            }
        );
    }

    proptest! {
        #[test]
        fn to_bytes_round_trips(
            index in any::<u16>(),
            flags in any::<i32>(),
            link_state in any::<u8>(),
            if_type in any::<u8>(),
            name in "[a-z]{1,6}[0-9]{1,3}",
            arrival in any::<bool>(),
        ) {
            let info = RouteMessage::IfInfo { index, flags, link_state, if_type };
            prop_assert_eq!(parse(&info.to_bytes()), Ok(Some(info)));
            let announce = RouteMessage::IfAnnounce { index, name, arrival };
            prop_assert_eq!(parse(&announce.to_bytes()), Ok(Some(announce)));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
            let _ = messages(&bytes).count();
        }

        #[test]
        fn parse_never_panics_on_plausible_headers(
            msglen in 0u16..400,
            msg_type in prop_oneof![Just(RTM_IFINFO), Just(RTM_IFANNOUNCE), any::<u8>()],
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = msglen.to_le_bytes().to_vec();
            bytes.extend([RTM_VERSION, msg_type]);
            bytes.extend(body);
            match parse(&bytes) {
                Ok(Some(message)) => {
                    let expected = if msg_type == RTM_IFINFO { IF_MSGHDR_LEN } else { IF_ANNOUNCE_LEN };
                    prop_assert!(usize::from(msglen) >= expected);
                    prop_assert!(usize::from(msglen) <= bytes.len());
                    let _ = message.link_state();
                }
                Ok(None) => prop_assert!(msg_type != RTM_IFINFO && msg_type != RTM_IFANNOUNCE),
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
        }
    }
}
