//! The FreeBSD kernel interface laggmond uses, as plain Rust: constants,
//! ioctl numbers and `#[repr(C)]` mirrors of the kernel structs.
//!
//! Nothing here calls the kernel, so it compiles on every OS and its
//! layout is checked by unit tests on any LP64 host (FreeBSD amd64 and
//! Linux x86_64 lay out C structs identically). The `libc` crate defines
//! neither the lagg structs nor their ioctls, hence these mirrors. Struct
//! and field names follow the C headers (`sys/net/if.h`,
//! `sys/net/if_lagg.h`) so they can be compared line by line.

use core::ffi::c_void;
use core::fmt;
use core::mem::size_of;

// ---------------------------------------------------------------------------
// Routing socket (`sys/net/route.h`, `sys/sys/socket.h`)
// ---------------------------------------------------------------------------

/// `PF_ROUTE` on FreeBSD; Linux's libc value differs, so it lives here.
pub const PF_ROUTE: i32 = 17;
/// Socket option that makes a receive-buffer overflow visible as `ENOBUFS`
/// instead of a silent drop (FreeBSD 15 header; older kernels refuse it).
pub const SO_RERROR: i32 = 0x0002_0000;

/// The only routing-message version the parser accepts; the kernel header
/// says older versions are to be ignored.
pub const RTM_VERSION: u8 = 5;
/// Address added to an interface (`struct ifa_msghdr`); skipped.
pub const RTM_NEWADDR: u8 = 0x0c;
/// Address removed from an interface (`struct ifa_msghdr`); skipped.
pub const RTM_DELADDR: u8 = 0x0d;
/// Interface flags or link state changed (`struct if_msghdr`).
pub const RTM_IFINFO: u8 = 0x0e;
/// Multicast address added (`struct ifma_msghdr`); skipped.
pub const RTM_NEWMADDR: u8 = 0x0f;
/// Multicast address removed (`struct ifma_msghdr`); skipped.
pub const RTM_DELMADDR: u8 = 0x10;
/// Interface arrival or departure (`struct if_announcemsghdr`).
pub const RTM_IFANNOUNCE: u8 = 0x11;
/// 802.11 event: announce header plus a payload; skipped.
pub const RTM_IEEE80211: u8 = 0x12;

/// `ifan_what` of an interface that attached.
pub const IFAN_ARRIVAL: u16 = 0;
/// `ifan_what` of an interface that detached.
pub const IFAN_DEPARTURE: u16 = 1;

/// `ifi_link_state` of a driver that does not report carrier; lagg never
/// uses such a port.
pub const LINK_STATE_UNKNOWN: u8 = 0;
/// `ifi_link_state`: no carrier.
pub const LINK_STATE_DOWN: u8 = 1;
/// `ifi_link_state`: carrier.
pub const LINK_STATE_UP: u8 = 2;

/// Interface is administratively up; lagg only uses ports that are.
pub const IFF_UP: i32 = 0x1;
/// Interface supports broadcast.
pub const IFF_BROADCAST: i32 = 0x2;
/// Driver resources allocated (`IFF_DRV_RUNNING`); lagg ignores it.
pub const IFF_RUNNING: i32 = 0x40;
/// Interface receives all frames.
pub const IFF_PROMISC: i32 = 0x100;
/// Interface cannot hear its own transmissions.
pub const IFF_SIMPLEX: i32 = 0x800;
/// Interface supports multicast.
pub const IFF_MULTICAST: i32 = 0x8000;

/// Size of an interface name buffer, terminating NUL included.
pub const IFNAMSIZ: usize = 16;

/// `ifi_type` of a port while it is a lagg member (its own type returns
/// when it leaves the lagg).
pub const IFT_IEEE8023ADLAG: u8 = 0xa1;

// ---------------------------------------------------------------------------
// lagg (`sys/net/if_lagg.h`)
// ---------------------------------------------------------------------------

/// Most ports a lagg can have; also the size of the `SIOCGLAGG` port buffer.
pub const LAGG_MAX_PORTS: usize = 32;

/// `ra_proto` of a lagg without a protocol.
pub const LAGG_PROTO_NONE: u32 = 0;
/// `laggproto roundrobin`.
pub const LAGG_PROTO_ROUNDROBIN: u32 = 1;
/// `laggproto failover`: the only protocol laggmond manages.
pub const LAGG_PROTO_FAILOVER: u32 = 2;
/// `laggproto loadbalance`.
pub const LAGG_PROTO_LOADBALANCE: u32 = 3;
/// `laggproto lacp`.
pub const LAGG_PROTO_LACP: u32 = 4;
/// `laggproto broadcast`.
pub const LAGG_PROTO_BROADCAST: u32 = 5;

/// `rp_flags` of a port that is neither master nor active.
pub const LAGG_PORT_SLAVE: u32 = 0;
/// The lagg's primary (`sc_primary`): the port traffic returns to.
pub const LAGG_PORT_MASTER: u32 = 0x1;
/// Port is itself a lagg.
pub const LAGG_PORT_STACK: u32 = 0x2;
/// The port lagg transmits on now (at most one with failover).
pub const LAGG_PORT_ACTIVE: u32 = 0x4;
/// LACP: port is collecting.
pub const LAGG_PORT_COLLECTING: u32 = 0x8;
/// LACP: port is distributing.
pub const LAGG_PORT_DISTRIBUTING: u32 = 0x10;

// ---------------------------------------------------------------------------
// ioctl encoding (`sys/sys/ioccom.h`)
// ---------------------------------------------------------------------------

/// Mask of the parameter length encoded in an ioctl number.
pub const IOCPARM_MASK: u32 = 0x1fff;
/// The kernel copies the struct out to user space.
pub const IOC_OUT: u32 = 0x4000_0000;
/// The kernel copies the struct in from user space.
pub const IOC_IN: u32 = 0x8000_0000;
/// The kernel copies the struct in and back out.
pub const IOC_INOUT: u32 = IOC_IN | IOC_OUT;

/// FreeBSD's `_IOC(inout, group, num, len)`. The struct size is part of the
/// number, so a struct of the wrong size makes a different (failing) ioctl:
/// every number below is computed from the mirrors in this module.
pub const fn ioc(inout: u32, group: u8, num: u8, len: usize) -> u32 {
    inout | ((len as u32 & IOCPARM_MASK) << 16) | ((group as u32) << 8) | num as u32
}

/// The ioctl group of interface requests, `'i'`.
const IOC_GROUP_IF: u8 = b'i';

/// Set the interface flags (`_IOW('i', 16, struct ifreq)`).
pub const SIOCSIFFLAGS: u32 = ioc(IOC_IN, IOC_GROUP_IF, 16, size_of::<IfReq>());
/// Read the interface flags (`_IOWR('i', 17, struct ifreq)`).
pub const SIOCGIFFLAGS: u32 = ioc(IOC_INOUT, IOC_GROUP_IF, 17, size_of::<IfReq>());
/// Copy a `struct if_data` to `ifr_data` (`_IOW('i', 44, struct ifreq)`).
pub const SIOCGIFDATA: u32 = ioc(IOC_IN, IOC_GROUP_IF, 44, size_of::<IfReq>());
/// Which lagg a port belongs to, or one port of a lagg
/// (`_IOWR('i', 140, struct lagg_reqport)`).
pub const SIOCGLAGGPORT: u32 = ioc(IOC_INOUT, IOC_GROUP_IF, 140, size_of::<LaggReqPort>());
/// Add a port to a lagg (`_IOW('i', 141, struct lagg_reqport)`).
pub const SIOCSLAGGPORT: u32 = ioc(IOC_IN, IOC_GROUP_IF, 141, size_of::<LaggReqPort>());
/// Remove a port from a lagg (`_IOW('i', 142, struct lagg_reqport)`).
pub const SIOCSLAGGDELPORT: u32 = ioc(IOC_IN, IOC_GROUP_IF, 142, size_of::<LaggReqPort>());
/// Read a lagg's protocol and ports (`_IOWR('i', 143, struct lagg_reqall)`).
pub const SIOCGLAGG: u32 = ioc(IOC_INOUT, IOC_GROUP_IF, 143, size_of::<LaggReqAll>());

// ---------------------------------------------------------------------------
// Interface names
// ---------------------------------------------------------------------------

/// Why a name cannot be put in a kernel name field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Empty names address no interface.
    Empty,
    /// The name and its NUL must fit in [`IFNAMSIZ`] bytes.
    TooLong(String),
    /// A NUL inside the name would cut it short in the kernel.
    ContainsNul(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "empty interface name"),
            NameError::TooLong(name) => write!(
                f,
                "interface name {name:?} is {} bytes, at most {} fit",
                name.len(),
                IFNAMSIZ - 1
            ),
            NameError::ContainsNul(name) => write!(f, "interface name {name:?} contains a NUL"),
        }
    }
}

impl std::error::Error for NameError {}

/// Encodes `name` as a NUL-terminated kernel name field.
pub fn ifname(name: &str) -> Result<[u8; IFNAMSIZ], NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() >= IFNAMSIZ {
        return Err(NameError::TooLong(name.to_owned()));
    }
    if name.contains('\0') {
        return Err(NameError::ContainsNul(name.to_owned()));
    }
    let mut field = [0u8; IFNAMSIZ];
    field[..name.len()].copy_from_slice(name.as_bytes());
    Ok(field)
}

/// Decodes a kernel name field: up to the first NUL (the whole field when
/// there is none). Bytes that are not UTF-8 become U+FFFD, so such a name
/// can never match a configured port but its interface index still counts.
pub fn name_from_field(field: &[u8]) -> String {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}

// ---------------------------------------------------------------------------
// Routing-message headers (`sys/net/if.h`). The parser reads by offset;
// these mirrors give it its offsets and let the tests check them.
// ---------------------------------------------------------------------------

/// `struct if_data`: interface state and counters, embedded in
/// [`IfMsgHdr`] (fixed-width since FreeBSD 11).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfData {
    pub ifi_type: u8,
    pub ifi_physical: u8,
    pub ifi_addrlen: u8,
    pub ifi_hdrlen: u8,
    /// One of the `LINK_STATE_*` values.
    pub ifi_link_state: u8,
    pub ifi_vhid: u8,
    /// `size_of::<IfData>()` as the kernel sees it; informational only.
    pub ifi_datalen: u16,
    pub ifi_mtu: u32,
    pub ifi_metric: u32,
    pub ifi_baudrate: u64,
    pub ifi_ipackets: u64,
    pub ifi_ierrors: u64,
    pub ifi_opackets: u64,
    pub ifi_oerrors: u64,
    pub ifi_collisions: u64,
    pub ifi_ibytes: u64,
    pub ifi_obytes: u64,
    pub ifi_imcasts: u64,
    pub ifi_omcasts: u64,
    pub ifi_iqdrops: u64,
    pub ifi_oqdrops: u64,
    pub ifi_noproto: u64,
    pub ifi_hwassist: u64,
    /// `__ifi_epoch` (a `time_t` in a union with a `u64`).
    pub ifi_epoch: u64,
    /// `__ifi_lastchange` (a `struct timeval` in a union with two `u64`s).
    pub ifi_lastchange: [u64; 2],
}

/// `struct if_msghdr`: the header of an `RTM_IFINFO` message.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfMsgHdr {
    pub ifm_msglen: u16,
    pub ifm_version: u8,
    pub ifm_type: u8,
    pub ifm_addrs: i32,
    /// `if_flags | if_drv_flags`, so `IFF_RUNNING` is included.
    pub ifm_flags: i32,
    pub ifm_index: u16,
    pub _ifm_spare1: u16,
    pub ifm_data: IfData,
}

/// `struct if_announcemsghdr`: the header of an `RTM_IFANNOUNCE` message.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfAnnounceMsgHdr {
    pub ifan_msglen: u16,
    pub ifan_version: u8,
    pub ifan_type: u8,
    pub ifan_index: u16,
    pub ifan_name: [u8; IFNAMSIZ],
    /// [`IFAN_ARRIVAL`] or [`IFAN_DEPARTURE`].
    pub ifan_what: u16,
}

// ---------------------------------------------------------------------------
// lagg ioctl structs (`sys/net/if_lagg.h`, `sys/net/ieee8023ad_lacp.h`)
// ---------------------------------------------------------------------------

/// `struct lacp_opreq`: LACP state of a port or lagg. laggmond never reads
/// it; it is here because it sizes the unions in the lagg requests, and so
/// their ioctl numbers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LacpOpReq {
    pub actor_prio: u16,
    pub actor_mac: [u8; 6],
    pub actor_key: u16,
    pub actor_portprio: u16,
    pub actor_portno: u16,
    pub actor_state: u8,
    pub partner_prio: u16,
    pub partner_mac: [u8; 6],
    pub partner_key: u16,
    pub partner_portprio: u16,
    pub partner_portno: u16,
    pub partner_state: u8,
}

/// `struct lagg_reqport`: one port, for adding or removing it and as an
/// entry of the `SIOCGLAGG` port buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaggReqPort {
    /// The lagg's name.
    pub rp_ifname: [u8; IFNAMSIZ],
    /// The port's name.
    pub rp_portname: [u8; IFNAMSIZ],
    /// Always 0 on FreeBSD (never stored by the kernel).
    pub rp_prio: u32,
    /// `LAGG_PORT_*` bits.
    pub rp_flags: u32,
    /// `union { struct lacp_opreq rpsc_lacp; } rp_psc`: one member, so the
    /// member itself has the union's layout.
    pub rp_psc: LacpOpReq,
}

impl LaggReqPort {
    /// The request that adds `port` to, or removes it from, `lagg`
    /// ([`SIOCSLAGGPORT`], [`SIOCSLAGGDELPORT`]).
    pub fn new(lagg: &str, port: &str) -> Result<LaggReqPort, NameError> {
        Ok(LaggReqPort {
            rp_ifname: ifname(lagg)?,
            rp_portname: ifname(port)?,
            ..LaggReqPort::default()
        })
    }
}

/// `struct lagg_reqall`: the [`SIOCGLAGG`] request and reply. The kernel
/// fills `ra_proto`, `ra_ports` and up to `ra_size` bytes of
/// [`LaggReqPort`] entries at `ra_port`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaggReqAll {
    /// The lagg's name.
    pub ra_ifname: [u8; IFNAMSIZ],
    /// One of the `LAGG_PROTO_*` values.
    pub ra_proto: u32,
    /// In: bytes available at `ra_port`; out: bytes all ports would need.
    pub ra_size: usize,
    /// Where the kernel writes the port entries.
    pub ra_port: *mut LaggReqPort,
    /// Out: how many entries the kernel wrote.
    pub ra_ports: i32,
    /// `union { struct lacp_opreq rpsc_lacp; } ra_psc`.
    pub ra_psc: LacpOpReq,
}

impl LaggReqAll {
    /// A [`SIOCGLAGG`] request for `lagg` whose port entries go to
    /// `port_buf` (use [`LAGG_MAX_PORTS`] entries' worth, as ifconfig
    /// does). The request holds a raw pointer into `port_buf`: it must be
    /// used while `port_buf` is alive and not otherwise borrowed.
    pub fn for_read(lagg: &str, port_buf: &mut [u8]) -> Result<LaggReqAll, NameError> {
        Ok(LaggReqAll {
            ra_ifname: ifname(lagg)?,
            ra_proto: LAGG_PROTO_NONE,
            ra_size: port_buf.len(),
            ra_port: port_buf.as_mut_ptr().cast(),
            ra_ports: 0,
            ra_psc: LacpOpReq::default(),
        })
    }
}

// ---------------------------------------------------------------------------
// struct ifreq, as used for SIOCGIFFLAGS / SIOCSIFFLAGS / SIOCGIFDATA
// ---------------------------------------------------------------------------

/// `ifr_ifru`: the request-specific part of [`IfReq`]. Only the members
/// laggmond uses are named; `raw` gives the union the kernel's 16 bytes
/// (its largest members are a `sockaddr` and two-word buffers) and
/// `data` its pointer alignment.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IfReqData {
    /// `ifru_flags`: `ifr_flags` (low 16 bits) and `ifr_flagshigh`.
    pub flags: [i16; 2],
    /// `ifru_data`: where `SIOCGIFDATA` writes a [`IfData`].
    pub data: *mut c_void,
    /// The union's full size.
    pub raw: [u8; 16],
}

/// `struct ifreq`: the per-interface request of the `SIOC[GS]IF*` ioctls.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IfReq {
    pub ifr_name: [u8; IFNAMSIZ],
    pub ifr_ifru: IfReqData,
}

impl IfReq {
    /// A zeroed request for the interface `name`.
    pub fn new(name: &str) -> Result<IfReq, NameError> {
        Ok(IfReq {
            ifr_name: ifname(name)?,
            ifr_ifru: IfReqData { raw: [0; 16] },
        })
    }

    /// The interface flags as `SIOCGIFFLAGS` returns them: `ifr_flags` is
    /// the low half, `ifr_flagshigh` the high half.
    pub fn flags(&self) -> i32 {
        // SAFETY: every constructor initialises all 16 bytes of the union
        // and any bit pattern is a valid `[i16; 2]`.
        let [low, high] = unsafe { self.ifr_ifru.flags };
        i32::from(low as u16) | (i32::from(high as u16) << 16)
    }

    /// Sets the flags `SIOCSIFFLAGS` applies, split as the kernel expects.
    pub fn set_flags(&mut self, flags: i32) {
        self.ifr_ifru.flags = [flags as i16, (flags >> 16) as i16];
    }

    /// Points `ifr_data` at `buf` for `SIOCGIFDATA`.
    pub fn set_data(&mut self, buf: &mut IfData) {
        self.ifr_ifru.data = (buf as *mut IfData).cast();
    }
}

impl fmt::Debug for IfReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IfReq")
            .field("ifr_name", &name_from_field(&self.ifr_name))
            .field("flags", &format_args!("{:#x}", self.flags()))
            .finish()
    }
}

// The expected numbers are FreeBSD amd64's; any LP64 host lays the mirrors
// out the same way.
#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of};

    #[test]
    fn ioctl_numbers_match_freebsd_amd64() {
        assert_eq!(SIOCSIFFLAGS, 0x8020_6910);
        assert_eq!(SIOCGIFFLAGS, 0xc020_6911);
        assert_eq!(SIOCGIFDATA, 0x8020_692c);
        assert_eq!(SIOCGLAGGPORT, 0xc048_698c);
        assert_eq!(SIOCSLAGGPORT, 0x8048_698d);
        assert_eq!(SIOCSLAGGDELPORT, 0x8048_698e);
        assert_eq!(SIOCGLAGG, 0xc050_698f);
    }

    #[test]
    fn ioc_encodes_like_ioccom_h() {
        // The lagg ioctls laggmond does not issue, from their C struct sizes.
        assert_eq!(ioc(IOC_IN, b'i', 144, 80), 0x8050_6990); // SIOCSLAGG
        assert_eq!(ioc(IOC_INOUT, b'i', 145, 20), 0xc014_6991); // SIOCGLAGGFLAGS
        assert_eq!(ioc(IOC_IN, b'i', 146, 20), 0x8014_6992); // SIOCSLAGGHASH
        assert_eq!(ioc(IOC_INOUT, b'i', 152, 40), 0xc028_6998); // SIOCGLAGGOPTS
        assert_eq!(ioc(IOC_IN, b'i', 153, 40), 0x8028_6999); // SIOCSLAGGOPTS
        assert_eq!(ioc(IOC_INOUT, b'i', 56, 48), 0xc030_6938); // SIOCGIFMEDIA
        assert_eq!(ioc(IOC_INOUT, b'i', 152, 32), 0xc020_6998); // SIOCGLANPCP
                                                                // The length is masked to 13 bits.
        assert_eq!(ioc(IOC_OUT, b'i', 1, 0x2000 + 3), 0x4003_6901);
    }

    #[test]
    fn constants_match_freebsd_headers() {
        assert_eq!(
            (RTM_VERSION, RTM_NEWADDR, RTM_DELADDR, RTM_IFINFO),
            (5, 12, 13, 14)
        );
        assert_eq!(
            (RTM_NEWMADDR, RTM_DELMADDR, RTM_IFANNOUNCE, RTM_IEEE80211),
            (15, 16, 17, 18)
        );
        assert_eq!((IFAN_ARRIVAL, IFAN_DEPARTURE), (0, 1));
        assert_eq!(
            (LINK_STATE_UNKNOWN, LINK_STATE_DOWN, LINK_STATE_UP),
            (0, 1, 2)
        );
        assert_eq!(
            IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_SIMPLEX | IFF_MULTICAST,
            0x8843
        );
        assert_eq!(IFF_PROMISC, 0x100);
        assert_eq!(
            (IFNAMSIZ, LAGG_MAX_PORTS, IFT_IEEE8023ADLAG),
            (16, 32, 0xa1)
        );
        assert_eq!(
            [
                LAGG_PROTO_NONE,
                LAGG_PROTO_ROUNDROBIN,
                LAGG_PROTO_FAILOVER,
                LAGG_PROTO_LOADBALANCE,
                LAGG_PROTO_LACP,
                LAGG_PROTO_BROADCAST
            ],
            [0, 1, 2, 3, 4, 5]
        );
        assert_eq!(
            [
                LAGG_PORT_SLAVE,
                LAGG_PORT_MASTER,
                LAGG_PORT_STACK,
                LAGG_PORT_ACTIVE,
                LAGG_PORT_COLLECTING,
                LAGG_PORT_DISTRIBUTING
            ],
            [0, 1, 2, 4, 8, 0x10]
        );
        assert_eq!((PF_ROUTE, SO_RERROR), (17, 0x20000));
        assert_eq!(
            (IOC_OUT, IOC_IN, IOC_INOUT),
            (0x4000_0000, 0x8000_0000, 0xc000_0000)
        );
    }

    #[test]
    fn if_data_layout() {
        assert_eq!((size_of::<IfData>(), align_of::<IfData>()), (152, 8));
        let offsets = [
            offset_of!(IfData, ifi_type),
            offset_of!(IfData, ifi_physical),
            offset_of!(IfData, ifi_addrlen),
            offset_of!(IfData, ifi_hdrlen),
            offset_of!(IfData, ifi_link_state),
            offset_of!(IfData, ifi_vhid),
            offset_of!(IfData, ifi_datalen),
            offset_of!(IfData, ifi_mtu),
            offset_of!(IfData, ifi_metric),
            offset_of!(IfData, ifi_baudrate),
        ];
        assert_eq!(offsets, [0, 1, 2, 3, 4, 5, 6, 8, 12, 16]);
        let counters = [
            offset_of!(IfData, ifi_ipackets),
            offset_of!(IfData, ifi_ierrors),
            offset_of!(IfData, ifi_opackets),
            offset_of!(IfData, ifi_oerrors),
            offset_of!(IfData, ifi_collisions),
            offset_of!(IfData, ifi_ibytes),
            offset_of!(IfData, ifi_obytes),
            offset_of!(IfData, ifi_imcasts),
            offset_of!(IfData, ifi_omcasts),
            offset_of!(IfData, ifi_iqdrops),
            offset_of!(IfData, ifi_oqdrops),
            offset_of!(IfData, ifi_noproto),
            offset_of!(IfData, ifi_hwassist),
        ];
        let expected: Vec<usize> = (0..13).map(|i| 24 + 8 * i).collect();
        assert_eq!(counters.to_vec(), expected);
        assert_eq!(expected.last(), Some(&120));
        assert_eq!(offset_of!(IfData, ifi_epoch), 128);
        assert_eq!(offset_of!(IfData, ifi_lastchange), 136);
        assert_eq!(size_of::<[u64; 2]>(), 16);
    }

    #[test]
    fn if_msghdr_layout() {
        assert_eq!((size_of::<IfMsgHdr>(), align_of::<IfMsgHdr>()), (168, 8));
        let offsets = [
            offset_of!(IfMsgHdr, ifm_msglen),
            offset_of!(IfMsgHdr, ifm_version),
            offset_of!(IfMsgHdr, ifm_type),
            offset_of!(IfMsgHdr, ifm_addrs),
            offset_of!(IfMsgHdr, ifm_flags),
            offset_of!(IfMsgHdr, ifm_index),
            offset_of!(IfMsgHdr, _ifm_spare1),
            offset_of!(IfMsgHdr, ifm_data),
        ];
        assert_eq!(offsets, [0, 2, 3, 4, 8, 12, 14, 16]);
        // Absolute offsets inside an RTM_IFINFO message.
        let data = offset_of!(IfMsgHdr, ifm_data);
        assert_eq!(data + offset_of!(IfData, ifi_type), 16);
        assert_eq!(data + offset_of!(IfData, ifi_link_state), 20);
        assert_eq!(data + offset_of!(IfData, ifi_datalen), 22);
        assert_eq!(data + offset_of!(IfData, ifi_mtu), 24);
        assert_eq!(data + offset_of!(IfData, ifi_baudrate), 32);
    }

    #[test]
    fn if_announcemsghdr_layout() {
        assert_eq!(
            (
                size_of::<IfAnnounceMsgHdr>(),
                align_of::<IfAnnounceMsgHdr>()
            ),
            (24, 2)
        );
        let offsets = [
            offset_of!(IfAnnounceMsgHdr, ifan_msglen),
            offset_of!(IfAnnounceMsgHdr, ifan_version),
            offset_of!(IfAnnounceMsgHdr, ifan_type),
            offset_of!(IfAnnounceMsgHdr, ifan_index),
            offset_of!(IfAnnounceMsgHdr, ifan_name),
            offset_of!(IfAnnounceMsgHdr, ifan_what),
        ];
        assert_eq!(offsets, [0, 2, 3, 4, 6, 22]);
    }

    #[test]
    fn lacp_opreq_layout() {
        assert_eq!((size_of::<LacpOpReq>(), align_of::<LacpOpReq>()), (32, 2));
        let offsets = [
            offset_of!(LacpOpReq, actor_prio),
            offset_of!(LacpOpReq, actor_mac),
            offset_of!(LacpOpReq, actor_key),
            offset_of!(LacpOpReq, actor_portprio),
            offset_of!(LacpOpReq, actor_portno),
            offset_of!(LacpOpReq, actor_state),
            offset_of!(LacpOpReq, partner_prio),
            offset_of!(LacpOpReq, partner_mac),
            offset_of!(LacpOpReq, partner_key),
            offset_of!(LacpOpReq, partner_portprio),
            offset_of!(LacpOpReq, partner_portno),
            offset_of!(LacpOpReq, partner_state),
        ];
        assert_eq!(offsets, [0, 2, 8, 10, 12, 14, 16, 18, 24, 26, 28, 30]);
    }

    #[test]
    fn lagg_reqport_layout() {
        assert_eq!(
            (size_of::<LaggReqPort>(), align_of::<LaggReqPort>()),
            (72, 4)
        );
        let offsets = [
            offset_of!(LaggReqPort, rp_ifname),
            offset_of!(LaggReqPort, rp_portname),
            offset_of!(LaggReqPort, rp_prio),
            offset_of!(LaggReqPort, rp_flags),
            offset_of!(LaggReqPort, rp_psc),
        ];
        assert_eq!(offsets, [0, 16, 32, 36, 40]);
        assert_eq!(LAGG_MAX_PORTS * size_of::<LaggReqPort>(), 2304);
    }

    #[test]
    fn lagg_reqall_layout() {
        assert_eq!((size_of::<LaggReqAll>(), align_of::<LaggReqAll>()), (80, 8));
        let offsets = [
            offset_of!(LaggReqAll, ra_ifname),
            offset_of!(LaggReqAll, ra_proto),
            offset_of!(LaggReqAll, ra_size),
            offset_of!(LaggReqAll, ra_port),
            offset_of!(LaggReqAll, ra_ports),
            offset_of!(LaggReqAll, ra_psc),
        ];
        assert_eq!(offsets, [0, 16, 24, 32, 40, 44]);
    }

    #[test]
    fn ifreq_layout() {
        assert_eq!((size_of::<IfReq>(), align_of::<IfReq>()), (32, 8));
        assert_eq!(offset_of!(IfReq, ifr_name), 0);
        assert_eq!(offset_of!(IfReq, ifr_ifru), 16);
        // ifr_flags and ifr_flagshigh are the union's first two shorts.
        assert_eq!(size_of::<IfReqData>(), 16);
        assert_eq!(size_of::<[i16; 2]>(), 4);
    }

    #[test]
    fn request_names_line_up_with_ifr_name() {
        // ifioctl() routes every request by the first 16 bytes.
        assert_eq!(
            offset_of!(LaggReqAll, ra_ifname),
            offset_of!(IfReq, ifr_name)
        );
        assert_eq!(
            offset_of!(LaggReqPort, rp_ifname),
            offset_of!(IfReq, ifr_name)
        );
    }

    #[test]
    fn ifreq_flags_split_into_low_and_high_halves() {
        let mut req = IfReq::new("em0").expect("valid name");
        assert_eq!(req.flags(), 0);
        req.set_flags(0x0100_8843);
        // SAFETY: set_flags just wrote the flags member.
        assert_eq!(unsafe { req.ifr_ifru.flags }, [0x8843u16 as i16, 0x0100]);
        assert_eq!(req.flags(), 0x0100_8843);
        req.set_flags(req.flags() & !IFF_UP);
        assert_eq!(req.flags(), 0x0100_8842);
        assert_eq!(&req.ifr_name[..4], b"em0\0");
    }

    #[test]
    fn ifname_checks_length_and_nul() {
        assert_eq!(&ifname("lagg0").expect("valid")[..6], b"lagg0\0");
        assert!(ifname("abcdefghijklmno").is_ok()); // 15 bytes + NUL
        assert_eq!(
            ifname("abcdefghijklmnop"),
            Err(NameError::TooLong("abcdefghijklmnop".into()))
        );
        assert_eq!(ifname(""), Err(NameError::Empty));
        assert_eq!(
            ifname("em\x000"),
            Err(NameError::ContainsNul("em\x000".into()))
        );
        assert_eq!(
            NameError::TooLong("abcdefghijklmnop".into()).to_string(),
            "interface name \"abcdefghijklmnop\" is 16 bytes, at most 15 fit"
        );
    }

    #[test]
    fn name_from_field_stops_at_nul_and_survives_bad_bytes() {
        assert_eq!(name_from_field(b"em0\0junk\0\0\0\0\0\0\0\0"), "em0");
        assert_eq!(name_from_field(b"abcdefghijklmnop"), "abcdefghijklmnop");
        assert_eq!(name_from_field(b"e\xffm0\0"), "e\u{fffd}m0");
        assert_eq!(name_from_field(b""), "");
    }

    #[test]
    fn lagg_requests_carry_names_and_buffer() {
        let port = LaggReqPort::new("lagg0", "em0").expect("valid names");
        assert_eq!(name_from_field(&port.rp_ifname), "lagg0");
        assert_eq!(name_from_field(&port.rp_portname), "em0");
        assert_eq!(port.rp_flags, 0);
        assert!(LaggReqPort::new("lagg0", "").is_err());

        let mut buf = vec![0u8; 2304];
        let all = LaggReqAll::for_read("lagg0", &mut buf).expect("valid name");
        assert_eq!(all.ra_size, 2304);
        assert_eq!(all.ra_port.cast::<u8>(), buf.as_mut_ptr());
        assert_eq!(name_from_field(&all.ra_ifname), "lagg0");
    }
}
