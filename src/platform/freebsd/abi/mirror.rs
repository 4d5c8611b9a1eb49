//! The `libc` crate's FreeBSD definitions that [`abi`](super) uses,
//! written out for the other OSes the FreeBSD code is built and tested on
//! (`libc` defines them only when the target is FreeBSD).
//!
//! Names, types and values are libc's for FreeBSD amd64, so the code above
//! compiles the same against either. The header check compares every item
//! here, and libc's own, with FreeBSD's headers.

#![allow(non_camel_case_types, non_snake_case)]

use core::ffi::{c_char, c_int, c_long, c_uchar, c_uint, c_ulong, c_ushort};

// Routing socket (`sys/sys/socket.h`, `sys/net/route.h`).

/// The routing socket's protocol family.
pub const PF_ROUTE: c_int = 17;
/// The family of a [`sockaddr_dl`].
pub const AF_LINK: c_int = 18;
/// The routing-message version the parser reads.
pub const RTM_VERSION: c_int = 5;
/// Address added to an interface.
pub const RTM_NEWADDR: c_int = 0xc;
/// Address removed from an interface.
pub const RTM_DELADDR: c_int = 0xd;
/// Interface flags or link state changed.
pub const RTM_IFINFO: c_int = 0xe;
/// Multicast address added.
pub const RTM_NEWMADDR: c_int = 0xf;
/// Multicast address removed.
pub const RTM_DELMADDR: c_int = 0x10;
/// Interface arrival or departure.
pub const RTM_IFANNOUNCE: c_int = 0x11;
/// 802.11 event.
pub const RTM_IEEE80211: c_int = 0x12;

// Interfaces (`sys/net/if.h`).

/// `ifan_what` of an interface that attached.
pub const IFAN_ARRIVAL: c_int = 0;
/// `ifan_what` of an interface that detached.
pub const IFAN_DEPARTURE: c_int = 1;
/// `ifi_link_state`: the driver does not report carrier.
pub const LINK_STATE_UNKNOWN: c_int = 0;
/// `ifi_link_state`: no carrier.
pub const LINK_STATE_DOWN: c_int = 1;
/// `ifi_link_state`: carrier.
pub const LINK_STATE_UP: c_int = 2;
/// Interface is administratively up.
pub const IFF_UP: c_int = 0x1;
/// Interface supports broadcast.
pub const IFF_BROADCAST: c_int = 0x2;
/// Driver resources allocated.
pub const IFF_RUNNING: c_int = 0x40;
/// Interface receives all frames.
pub const IFF_PROMISC: c_int = 0x100;
/// Interface cannot hear its own transmissions.
pub const IFF_SIMPLEX: c_int = 0x800;
/// Interface supports multicast.
pub const IFF_MULTICAST: c_int = 0x8000;
/// Size of an interface name buffer, NUL included.
pub const IFNAMSIZ: usize = 16;

// BPF (`sys/net/bpf.h`).

/// Read the buffer length reads must use.
pub const BIOCGBLEN: c_ulong = 0x4004_4266;
/// Install a read filter.
pub const BIOCSETF: c_ulong = 0x8010_4267;
/// Attach the descriptor to an interface.
pub const BIOCSETIF: c_ulong = 0x8020_426c;
/// Return from a read as soon as a packet arrives.
pub const BIOCIMMEDIATE: c_ulong = 0x8004_4270;
/// Send frames with the source address as written.
pub const BIOCSHDRCMPLT: c_ulong = 0x8004_4275;
/// Put the interface in promiscuous mode while the descriptor is open
/// (`_IO`, no argument; libc types it `c_uint`).
pub const BIOCPROMISC: c_uint = 0x2000_4269;
/// Alignment of each record in a read buffer.
pub const BPF_ALIGNMENT: usize = 8;

/// `x` rounded up to the next record boundary of a read buffer.
pub const fn BPF_WORDALIGN(x: usize) -> usize {
    (x + (BPF_ALIGNMENT - 1)) & !(BPF_ALIGNMENT - 1)
}

/// `struct timeval`, as FreeBSD amd64 lays it out.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct timeval {
    pub tv_sec: i64,
    pub tv_usec: c_long,
}

/// `struct sockaddr`, FreeBSD's (length byte first).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sockaddr {
    pub sa_len: u8,
    pub sa_family: u8,
    pub sa_data: [c_char; 14],
}

/// `struct sockaddr_dl`: a link-level address.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sockaddr_dl {
    pub sdl_len: c_uchar,
    pub sdl_family: c_uchar,
    pub sdl_index: c_ushort,
    pub sdl_type: c_uchar,
    pub sdl_nlen: c_uchar,
    pub sdl_alen: c_uchar,
    pub sdl_slen: c_uchar,
    pub sdl_data: [c_char; 46],
}

/// `struct if_data`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct if_data {
    pub ifi_type: u8,
    pub ifi_physical: u8,
    pub ifi_addrlen: u8,
    pub ifi_hdrlen: u8,
    pub ifi_link_state: u8,
    pub ifi_vhid: u8,
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
    pub __ifi_epoch: __c_anonymous_ifi_epoch,
    pub __ifi_lastchange: __c_anonymous_ifi_lastchange,
}

/// `if_data.__ifi_epoch`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union __c_anonymous_ifi_epoch {
    pub tt: i64,
    pub ph: u64,
}

/// `if_data.__ifi_lastchange`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union __c_anonymous_ifi_lastchange {
    pub tv: timeval,
    pub ph: __c_anonymous_ph,
}

/// `if_data.__ifi_lastchange.ph`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct __c_anonymous_ph {
    pub ph1: u64,
    pub ph2: u64,
}

/// `struct if_msghdr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct if_msghdr {
    pub ifm_msglen: c_ushort,
    pub ifm_version: c_uchar,
    pub ifm_type: c_uchar,
    pub ifm_addrs: c_int,
    pub ifm_flags: c_int,
    pub ifm_index: c_ushort,
    pub _ifm_spare1: c_ushort,
    pub ifm_data: if_data,
}

/// `struct if_announcemsghdr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct if_announcemsghdr {
    pub ifan_msglen: c_ushort,
    pub ifan_version: c_uchar,
    pub ifan_type: c_uchar,
    pub ifan_index: c_ushort,
    pub ifan_name: [c_char; IFNAMSIZ],
    pub ifan_what: c_ushort,
}

/// `struct ifreq`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ifreq {
    pub ifr_name: [c_char; IFNAMSIZ],
    pub ifr_ifru: __c_anonymous_ifr_ifru,
}

/// `ifreq.ifr_ifru`: the members abi.rs uses, which also give the union
/// its size (a `sockaddr`) and alignment (a pointer).
#[repr(C)]
#[derive(Clone, Copy)]
pub union __c_anonymous_ifr_ifru {
    pub ifru_addr: sockaddr,
    pub ifru_flags: [i16; 2],
    pub ifru_data: *mut c_char,
}

/// `struct ifmediareq`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ifmediareq {
    pub ifm_name: [c_char; IFNAMSIZ],
    pub ifm_current: c_int,
    pub ifm_mask: c_int,
    pub ifm_status: c_int,
    pub ifm_active: c_int,
    pub ifm_count: c_int,
    pub ifm_ulist: *mut c_int,
}

/// `struct bpf_program`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct bpf_program {
    pub bf_len: c_uint,
    pub bf_insns: *mut bpf_insn,
}

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct bpf_insn {
    pub code: c_ushort,
    pub jt: c_uchar,
    pub jf: c_uchar,
    pub k: u32,
}

/// `struct bpf_hdr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct bpf_hdr {
    pub bh_tstamp: timeval,
    pub bh_caplen: u32,
    pub bh_datalen: u32,
    pub bh_hdrlen: c_ushort,
}
