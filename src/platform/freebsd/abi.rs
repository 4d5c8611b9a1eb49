//! The FreeBSD kernel interface laggmond uses, as plain Rust: constants,
//! ioctl numbers and `#[repr(C)]` structs, with the names of the C
//! headers (`sys/net/if.h`, `sys/net/if_lagg.h`, `sys/net/bpf.h`, ...).
//!
//! Where the `libc` crate defines an item for FreeBSD (the routing-message
//! headers, `ifreq`, the BPF structs, most `BIOC*` numbers, `IFF_*`,
//! `RTM_*`, ...) it is libc's: libc checks those against FreeBSD's headers
//! in its own CI. libc defines them only when the target is FreeBSD, yet
//! all of this module but the system calls is built and tested on Linux
//! too. So the one `cfg` below picks where they come from: `libc` on
//! FreeBSD, elsewhere `mirror`, a hand-written copy with libc's names,
//! types and values, so the code compiles the same on both. Constants the
//! parser compares with message bytes are re-typed here (`u8`, `u16`) from
//! whichever of the two is in use.
//!
//! What libc lacks is written out below: the lagg structs and ioctls,
//! `IFT_*`, the `SIOC*` numbers, `SO_RERROR`, `BIOCSDIRECTION`, the BPF
//! opcodes and directions, `IFM_*`. Nothing here calls the kernel.
//!
//! The header check (the project's test script) compiles FreeBSD's own
//! headers for FreeBSD amd64 and asserts, at compile time of this module
//! for `x86_64-unknown-freebsd`, that every size, alignment, field offset
//! and constant here, libc's as re-exported and the mirror's alike, equals
//! the header's. Its list of items is `tests/freebsd-abi/items`.

use core::ffi::{c_char, c_int, c_uint, c_ulong};
use core::fmt;
use core::mem::size_of;

// Where libc's FreeBSD items come from: the one platform switch.
#[cfg(target_os = "freebsd")]
use libc as from_libc;
#[cfg(not(target_os = "freebsd"))]
use mirror as from_libc;

// Also built on FreeBSD for the header check, which compares it there.
#[cfg(any(not(target_os = "freebsd"), laggmond_abi_check))]
#[cfg_attr(target_os = "freebsd", allow(dead_code))]
pub mod mirror;

#[cfg(all(target_os = "freebsd", laggmond_abi_check))]
#[path = "../../../tests/freebsd-abi/check.rs"]
mod header_check;

// ---------------------------------------------------------------------------
// From libc (or its mirror)
// ---------------------------------------------------------------------------

/// The routing-message headers the parser reads by offset, and `if_data`,
/// which `SIOCGIFDATA` fills for resyncs.
pub use from_libc::{if_announcemsghdr, if_data, if_msghdr};

/// The per-interface ioctl request (flags, `if_data`, hardware address).
pub use from_libc::ifreq;

/// `ifr_addr`'s type: `SIOCGHWADDR` answers with the port's own hardware
/// address in its `sa_data`.
pub use from_libc::sockaddr;

/// A link-level address (`AF_LINK`), as `getifaddrs(3)` reports a port's
/// current hardware address, which lagg overwrites with its own.
pub use from_libc::{sockaddr_dl, AF_LINK};

/// The `SIOCGIFMEDIA` request: carrier as the driver's media layer sees
/// it, for path probes that must tell a dead path from a dead link.
pub use from_libc::ifmediareq;

/// BPF, for path probes: a filter program and its instructions, the
/// header before each captured frame, its timestamp, and the rounding
/// that finds the next header in a read buffer.
pub use from_libc::{bpf_hdr, bpf_insn, bpf_program, timeval, BPF_WORDALIGN};

/// BPF ioctls for path probes: attach to a port (`BIOCSETIF`), install the
/// filter (`BIOCSETF`), wake per frame (`BIOCIMMEDIATE`), send with the
/// port's own source address (`BIOCSHDRCMPLT`), size reads (`BIOCGBLEN`)
/// and receive what is sent to that address (`BIOCPROMISC`: lagg gives
/// its members its own address, which is all their receive filter keeps).
pub use from_libc::{BIOCGBLEN, BIOCIMMEDIATE, BIOCPROMISC, BIOCSETF, BIOCSETIF, BIOCSHDRCMPLT};

/// The routing socket's protocol family.
pub use from_libc::PF_ROUTE;

/// Interface flags (`ifm_flags`, `SIOCGIFFLAGS`): lagg only uses ports
/// that are `IFF_UP`; the others describe the test interfaces.
pub use from_libc::{IFF_BROADCAST, IFF_MULTICAST, IFF_PROMISC, IFF_RUNNING, IFF_SIMPLEX, IFF_UP};

/// Size of an interface name buffer, terminating NUL included.
pub use from_libc::IFNAMSIZ;

/// libc's `c_int` constant as the byte a routing message carries it in;
/// a value that does not fit stops the build.
const fn byte(value: c_int) -> u8 {
    assert!(value >= 0 && value <= u8::MAX as c_int, "not a byte");
    value as u8
}

/// libc's `c_int` constant as the `u16` a routing message carries it in.
const fn half(value: c_int) -> u16 {
    assert!(value >= 0 && value <= u16::MAX as c_int, "not a u16");
    value as u16
}

/// The only routing-message version the parser accepts; the kernel header
/// says older versions are to be ignored.
pub const RTM_VERSION: u8 = byte(from_libc::RTM_VERSION);
/// Address added to an interface (`struct ifa_msghdr`); skipped.
pub const RTM_NEWADDR: u8 = byte(from_libc::RTM_NEWADDR);
/// Address removed from an interface (`struct ifa_msghdr`); skipped.
pub const RTM_DELADDR: u8 = byte(from_libc::RTM_DELADDR);
/// Interface flags or link state changed (`struct if_msghdr`).
pub const RTM_IFINFO: u8 = byte(from_libc::RTM_IFINFO);
/// Multicast address added (`struct ifma_msghdr`); skipped.
pub const RTM_NEWMADDR: u8 = byte(from_libc::RTM_NEWMADDR);
/// Multicast address removed (`struct ifma_msghdr`); skipped.
pub const RTM_DELMADDR: u8 = byte(from_libc::RTM_DELMADDR);
/// Interface arrival or departure (`struct if_announcemsghdr`).
pub const RTM_IFANNOUNCE: u8 = byte(from_libc::RTM_IFANNOUNCE);
/// 802.11 event: announce header plus a payload; skipped.
pub const RTM_IEEE80211: u8 = byte(from_libc::RTM_IEEE80211);

/// `ifan_what` of an interface that attached.
pub const IFAN_ARRIVAL: u16 = half(from_libc::IFAN_ARRIVAL);
/// `ifan_what` of an interface that detached.
pub const IFAN_DEPARTURE: u16 = half(from_libc::IFAN_DEPARTURE);

/// `ifi_link_state` of a driver that does not report carrier; lagg never
/// uses such a port.
pub const LINK_STATE_UNKNOWN: u8 = byte(from_libc::LINK_STATE_UNKNOWN);
/// `ifi_link_state`: no carrier.
pub const LINK_STATE_DOWN: u8 = byte(from_libc::LINK_STATE_DOWN);
/// `ifi_link_state`: carrier.
pub const LINK_STATE_UP: u8 = byte(from_libc::LINK_STATE_UP);

// ---------------------------------------------------------------------------
// Not in libc: written out here, guarded by the header check
// ---------------------------------------------------------------------------

/// Socket option that makes a receive-buffer overflow visible as `ENOBUFS`
/// instead of a silent drop (FreeBSD 15 header; older kernels refuse it).
pub const SO_RERROR: c_int = 0x0002_0000;

/// `ifi_type` of an Ethernet interface outside any lagg.
pub const IFT_ETHER: u8 = 0x06;
/// `ifi_type` of a port while it is a lagg member (its own type returns
/// when it leaves the lagg).
pub const IFT_IEEE8023ADLAG: u8 = 0xa1;

/// `ifm_status` bit: the driver reports carrier in [`IFM_ACTIVE`].
pub const IFM_AVALID: c_int = 0x1;
/// `ifm_status` bit: carrier, when [`IFM_AVALID`] is set.
pub const IFM_ACTIVE: c_int = 0x2;

/// `BIOCSDIRECTION` argument: capture only what the port receives, so a
/// probe never sees its own transmissions.
pub const BPF_D_IN: c_uint = 0;
/// `BIOCSDIRECTION` argument: capture both directions (the default).
pub const BPF_D_INOUT: c_uint = 1;
/// `BIOCSDIRECTION` argument: capture only what the port sends.
pub const BPF_D_OUT: c_uint = 2;

// BPF opcodes (`sys/net/bpf.h`): libc defines them for Linux only. A probe
// filter loads header fields (`BPF_LD` with a size and `BPF_ABS`),
// compares them (`BPF_JMP | BPF_JEQ | BPF_K`) and accepts or drops
// (`BPF_RET | BPF_K`).

/// Instruction class: load into the accumulator.
pub const BPF_LD: u16 = 0x00;
/// Instruction class: load into the index register.
pub const BPF_LDX: u16 = 0x01;
/// Instruction class: arithmetic on the accumulator.
pub const BPF_ALU: u16 = 0x04;
/// Instruction class: conditional jump.
pub const BPF_JMP: u16 = 0x05;
/// Instruction class: return how many bytes to accept (0 drops).
pub const BPF_RET: u16 = 0x06;
/// Load size: 32-bit word (an address part).
pub const BPF_W: u16 = 0x00;
/// Load size: 16-bit half word (an EtherType).
pub const BPF_H: u16 = 0x08;
/// Load size: byte.
pub const BPF_B: u16 = 0x10;
/// Load mode: at an absolute offset in the frame.
pub const BPF_ABS: u16 = 0x20;
/// Load mode: at an offset from the index register.
pub const BPF_IND: u16 = 0x40;
/// ALU operation: bitwise and (masking a field).
pub const BPF_AND: u16 = 0x50;
/// Jump: always.
pub const BPF_JA: u16 = 0x00;
/// Jump: if equal.
pub const BPF_JEQ: u16 = 0x10;
/// Jump: if greater than.
pub const BPF_JGT: u16 = 0x20;
/// Jump: if any bit is set.
pub const BPF_JSET: u16 = 0x40;
/// Operand: the constant `k`.
pub const BPF_K: u16 = 0x00;
/// Operand: the index register.
pub const BPF_X: u16 = 0x08;

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
// ioctl encoding (`sys/sys/ioccom.h`): libc has no `_IOW`/`_IOWR` for
// FreeBSD
// ---------------------------------------------------------------------------

/// Mask of the parameter length encoded in an ioctl number.
pub const IOCPARM_MASK: c_ulong = 0x1fff;
/// The kernel copies the struct out to user space.
pub const IOC_OUT: c_ulong = 0x4000_0000;
/// The kernel copies the struct in from user space.
pub const IOC_IN: c_ulong = 0x8000_0000;
/// The kernel copies the struct in and back out.
pub const IOC_INOUT: c_ulong = IOC_IN | IOC_OUT;

/// FreeBSD's `_IOC(inout, group, num, len)`. The struct size is part of the
/// number, so a struct of the wrong size makes a different (failing) ioctl:
/// every number below is computed from the structs in this module.
pub const fn ioc(inout: c_ulong, group: u8, num: u8, len: usize) -> c_ulong {
    inout | ((len as c_ulong & IOCPARM_MASK) << 16) | ((group as c_ulong) << 8) | num as c_ulong
}

/// The ioctl group of interface requests, `'i'`.
const IOC_GROUP_IF: u8 = b'i';

/// Set the interface flags (`_IOW('i', 16, struct ifreq)`).
pub const SIOCSIFFLAGS: c_ulong = ioc(IOC_IN, IOC_GROUP_IF, 16, size_of::<ifreq>());
/// Read the interface flags (`_IOWR('i', 17, struct ifreq)`).
pub const SIOCGIFFLAGS: c_ulong = ioc(IOC_INOUT, IOC_GROUP_IF, 17, size_of::<ifreq>());
/// Copy a `struct if_data` to `ifr_data` (`_IOW('i', 44, struct ifreq)`).
pub const SIOCGIFDATA: c_ulong = ioc(IOC_IN, IOC_GROUP_IF, 44, size_of::<ifreq>());
/// Read the media status, carrier included, for path probes
/// (`_IOWR('i', 56, struct ifmediareq)`).
pub const SIOCGIFMEDIA: c_ulong = ioc(IOC_INOUT, IOC_GROUP_IF, 56, size_of::<ifmediareq>());
/// Read a port's own hardware address, not the lagg's that it carries
/// while a member, for path probes (`_IOWR('i', 62, struct ifreq)`).
pub const SIOCGHWADDR: c_ulong = ioc(IOC_INOUT, IOC_GROUP_IF, 62, size_of::<ifreq>());
/// Which lagg a port belongs to, or one port of a lagg
/// (`_IOWR('i', 140, struct lagg_reqport)`).
pub const SIOCGLAGGPORT: c_ulong = ioc(IOC_INOUT, IOC_GROUP_IF, 140, size_of::<LaggReqPort>());
/// Add a port to a lagg (`_IOW('i', 141, struct lagg_reqport)`).
pub const SIOCSLAGGPORT: c_ulong = ioc(IOC_IN, IOC_GROUP_IF, 141, size_of::<LaggReqPort>());
/// Remove a port from a lagg (`_IOW('i', 142, struct lagg_reqport)`).
pub const SIOCSLAGGDELPORT: c_ulong = ioc(IOC_IN, IOC_GROUP_IF, 142, size_of::<LaggReqPort>());
/// Read a lagg's protocol and ports (`_IOWR('i', 143, struct lagg_reqall)`).
pub const SIOCGLAGG: c_ulong = ioc(IOC_INOUT, IOC_GROUP_IF, 143, size_of::<LaggReqAll>());

/// Capture one direction only, so a probe does not see its own frames
/// (`_IOW('B', 119, u_int)`; libc has it only as the older
/// `BIOCSSEESENT`).
pub const BIOCSDIRECTION: c_ulong = ioc(IOC_IN, b'B', 119, size_of::<c_uint>());

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

/// A `struct ifreq` with the accessors the flag and data ioctls need; the
/// same layout (`repr(transparent)`), so it is passed to the kernel as is.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct IfReq(pub ifreq);

impl IfReq {
    /// A zeroed request for the interface `name`.
    pub fn new(name: &str) -> Result<IfReq, NameError> {
        // SAFETY: `ifreq` is integers, arrays and a union of those and a
        // pointer; all zeroes is a valid value of each.
        let mut request: ifreq = unsafe { core::mem::zeroed() };
        request.ifr_name = ifname(name)?.map(|byte| byte as c_char);
        Ok(IfReq(request))
    }

    /// The interface flags as `SIOCGIFFLAGS` returns them: `ifr_flags` is
    /// the low half, `ifr_flagshigh` the high half.
    pub fn flags(&self) -> i32 {
        // SAFETY: `new` zeroes all of the union and any bit pattern is a
        // valid `[c_short; 2]`.
        let [low, high] = unsafe { self.0.ifr_ifru.ifru_flags };
        i32::from(low as u16) | (i32::from(high as u16) << 16)
    }

    /// Sets the flags `SIOCSIFFLAGS` applies, split as the kernel expects.
    pub fn set_flags(&mut self, flags: i32) {
        self.0.ifr_ifru.ifru_flags = [flags as i16, (flags >> 16) as i16];
    }

    /// Points `ifr_data` at `buf` for `SIOCGIFDATA`.
    pub fn set_data(&mut self, buf: &mut if_data) {
        self.0.ifr_ifru.ifru_data = (buf as *mut if_data).cast();
    }

    /// The hardware address `SIOCGHWADDR` wrote into `ifr_addr.sa_data`:
    /// a port's own, which path probes send from, where the lagg's copy
    /// would teach the switch the lagg's address on a backup port. `None`
    /// when it is all zeroes (no address).
    pub fn hardware_address(&self) -> Option<[u8; 6]> {
        // SAFETY: `new` zeroes all of the union, and any bit pattern is a
        // valid `sockaddr`.
        let data = unsafe { self.0.ifr_ifru.ifru_addr.sa_data };
        let mut mac = [0u8; 6];
        for (byte, c) in mac.iter_mut().zip(data) {
            *byte = c as u8;
        }
        (mac != [0; 6]).then_some(mac)
    }

    /// The interface name the request addresses.
    pub fn name(&self) -> String {
        name_from_field(&self.0.ifr_name.map(|c| c as u8))
    }
}

impl fmt::Debug for IfReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IfReq")
            .field("ifr_name", &self.name())
            .field("flags", &format_args!("{:#x}", self.flags()))
            .finish()
    }
}

// The header check pins every number; these test behaviour.
#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn ioc_encodes_like_ioccom_h() {
        // Two lagg ioctls laggmond does not issue, from their C struct sizes.
        assert_eq!(ioc(IOC_IN, b'i', 144, 80), 0x8050_6990); // SIOCSLAGG
        assert_eq!(ioc(IOC_INOUT, b'i', 145, 20), 0xc014_6991); // SIOCGLAGGFLAGS
                                                                // The length is masked to 13 bits.
        assert_eq!(ioc(IOC_OUT, b'i', 1, 0x2000 + 3), 0x4003_6901);
    }

    #[test]
    fn request_names_line_up_with_ifr_name() {
        // ifioctl() routes every request by the first 16 bytes.
        assert_eq!(offset_of!(ifreq, ifr_name), 0);
        assert_eq!(offset_of!(LaggReqAll, ra_ifname), 0);
        assert_eq!(offset_of!(LaggReqPort, rp_ifname), 0);
        assert_eq!(offset_of!(ifmediareq, ifm_name), 0);
    }

    #[test]
    fn ifreq_flags_split_into_low_and_high_halves() {
        let mut req = IfReq::new("em0").expect("valid name");
        assert_eq!(req.flags(), 0);
        req.set_flags(0x0100_8843);
        // SAFETY: set_flags just wrote the flags member.
        assert_eq!(
            unsafe { req.0.ifr_ifru.ifru_flags },
            [0x8843u16 as i16, 0x0100]
        );
        assert_eq!(req.flags(), 0x0100_8843);
        req.set_flags(req.flags() & !IFF_UP);
        assert_eq!(req.flags(), 0x0100_8842);
        assert_eq!(req.name(), "em0");
        assert_eq!(req.0.ifr_name[3], 0);
    }

    #[test]
    fn the_hardware_address_is_read_from_sa_data() {
        let mut req = IfReq::new("em1").expect("valid name");
        assert_eq!(req.hardware_address(), None);
        let mac = [0x02, 0x00, 0x5e, 0x10, 0xfe, 0x81];
        // SAFETY: writing a whole `sockaddr` member of the zeroed union.
        unsafe {
            for (slot, byte) in req.0.ifr_ifru.ifru_addr.sa_data.iter_mut().zip(mac) {
                *slot = byte as c_char;
            }
        }
        assert_eq!(req.hardware_address(), Some(mac));
        // sa_data starts two bytes into ifr_addr, after sa_len and sa_family.
        assert_eq!(offset_of!(sockaddr, sa_data), 2);
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

        let mut buf = vec![0u8; LAGG_MAX_PORTS * size_of::<LaggReqPort>()];
        let all = LaggReqAll::for_read("lagg0", &mut buf).expect("valid name");
        assert_eq!(all.ra_size, buf.len());
        assert_eq!(all.ra_port.cast::<u8>(), buf.as_mut_ptr());
        assert_eq!(name_from_field(&all.ra_ifname), "lagg0");
    }
}
