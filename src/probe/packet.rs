//! Linux: one `AF_PACKET` socket per probed port, bound to that port
//! alone, with the reply filter attached before it is bound, so that no
//! unfiltered frame is ever queued to it.
//!
//! A socket bound to a bond's inactive slave still receives that slave's
//! frames (the bond hands them on as an exact match), which is what lets
//! a backup's path be probed while it carries no traffic.

use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoBondPort, InfoPortData, LinkAttribute, LinkInfo};
use tokio::io::unix::AsyncFd;

use super::filter::{arp_reply_filter, Insn};
use super::PortAddress;

/// `ETH_P_ARP` in network byte order, as `socket(2)` and `bind(2)` take it.
const ARP_PROTOCOL: u16 = (libc::ETH_P_ARP as u16).to_be();

/// The Ethernet broadcast address: ARP requests go to every station.
const BROADCAST: [u8; 6] = [0xff; 6];

/// A packet socket that sends ARP requests out of one port and receives
/// the replies the filter lets through.
#[derive(Debug)]
pub struct PortSocket {
    socket: AsyncFd<OwnedFd>,
    ifindex: i32,
}

impl PortSocket {
    /// Opens the socket for the port with index `ifindex`, letting through
    /// only ARP replies to `address` from one of `targets`.
    pub fn open(
        ifindex: u32,
        address: PortAddress,
        targets: &[Ipv4Addr],
    ) -> io::Result<PortSocket> {
        let mac = address.sender;
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::other(format!("interface index {ifindex} out of range")))?;
        // Protocol 0: nothing is received until bind names ARP, by which
        // time the filter is in place.
        // SAFETY: plain system call; the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(context("opening a packet socket"));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let filter = arp_reply_filter(mac, targets).map_err(io::Error::other)?;
        attach_filter(&fd, &filter)?;
        bind(&fd, ifindex)?;
        if address.foreign {
            // Only then: a driver without a unicast filter list goes
            // promiscuous for any address added.
            accept_unicast(&fd, ifindex, mac)?;
        }
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which is the only
        // one to close it.
        let socket = unsafe { AsyncFd::register(fd) }.map_err(|error| {
            let error = error.into_parts().1;
            io::Error::new(
                error.kind(),
                format!("registering the packet socket: {error}"),
            )
        })?;
        Ok(PortSocket { socket, ifindex })
    }

    /// Sends one frame out of the port, to the Ethernet broadcast address.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let address = link_address(self.ifindex, BROADCAST);
        // SAFETY: `frame` and `address` outlive the call; the lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.socket.get_ref().as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&address).cast(),
                socklen::<libc::sockaddr_ll>(),
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next frame the filter let through, into `buffer`; its length.
    /// Cancel-safe: a frame is taken off the socket only when returned.
    pub async fn receive(&self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.socket.readable().await?;
            let read = ready.try_io(|socket| {
                // SAFETY: `buffer` is valid for writes of its length.
                let read = unsafe {
                    libc::recv(
                        socket.get_ref().as_raw_fd(),
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                        libc::MSG_TRUNC,
                    )
                };
                if read < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(read.unsigned_abs())
                }
            });
            if let Ok(result) = read {
                return result;
            }
        }
    }
}

/// The hardware address a port sends its probes from, and whether it is
/// not the port's current address.
///
/// A bond gives every slave the bond's address (unless `fail_over_mac`
/// says otherwise), so probing from the current address would show the
/// bond's address on every backup port: the switch would move it there
/// and the replies of one port would reach another. So the sender is the
/// port's own address: its permanent one (`IFLA_PERM_ADDRESS`, the burnt-in
/// address of a real NIC) where the driver has one; else the address the
/// bond saved when it took the port (`IFLA_BOND_SLAVE_PERM_HWADDR`, what
/// the port had before the bond changed it: a virtual port has no
/// permanent address); else its current address.
pub async fn port_address(ifindex: u32) -> io::Result<PortAddress> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let lookup = async {
        let mut links = handle.link().get().match_index(ifindex).execute();
        let link = links
            .try_next()
            .await
            .map_err(|error| io::Error::other(format!("reading interface {ifindex}: {error}")))?
            .ok_or_else(|| io::Error::other(format!("no interface with index {ifindex}")))?;
        let mut current = None;
        let mut permanent = None;
        let mut before_bond = None;
        for attribute in link.attributes {
            match attribute {
                LinkAttribute::PermAddress(bytes) => permanent = mac(&bytes),
                LinkAttribute::Address(bytes) => current = mac(&bytes),
                LinkAttribute::LinkInfo(infos) => before_bond = saved_by_bond(&infos),
                _ => {}
            }
        }
        PortAddress::choose(permanent, before_bond, current).ok_or_else(|| {
            io::Error::other(format!(
                "interface {ifindex} has no Ethernet hardware address"
            ))
        })
    };
    tokio::select! {
        found = lookup => found,
        () = connection => Err(io::Error::other("the netlink connection ended")),
    }
}

impl PortAddress {
    /// The first of the port's own addresses it has (see [`port_address`]),
    /// compared with its `current` one.
    fn choose(
        permanent: Option<[u8; 6]>,
        before_bond: Option<[u8; 6]>,
        current: Option<[u8; 6]>,
    ) -> Option<PortAddress> {
        let sender = permanent.or(before_bond).or(current)?;
        Some(PortAddress {
            sender,
            foreign: current != Some(sender),
        })
    }
}

/// The address a bond saved for its slave when it took it, from the
/// slave's `IFLA_LINKINFO`.
fn saved_by_bond(infos: &[LinkInfo]) -> Option<[u8; 6]> {
    infos.iter().find_map(|info| match info {
        LinkInfo::PortData(InfoPortData::BondPort(options)) => {
            options.iter().find_map(|option| match option {
                InfoBondPort::PermHwaddr(bytes) => mac(bytes),
                _ => None,
            })
        }
        _ => None,
    })
}

/// Six bytes that are not all zero (a driver without a permanent address
/// reports zeros, or nothing).
fn mac(bytes: &[u8]) -> Option<[u8; 6]> {
    let mac: [u8; 6] = bytes.try_into().ok()?;
    (mac != [0; 6]).then_some(mac)
}

fn attach_filter(fd: &OwnedFd, program: &[Insn]) -> io::Result<()> {
    let program = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| io::Error::other("the reply filter is too long"))?,
        // The kernel copies the program; it only reads through this pointer.
        filter: program.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    // SAFETY: `SO_ATTACH_FILTER` takes a `sock_fprog`; `program` points
    // at `len` instructions laid out as `sock_filter` (checked in the
    // filter's tests), alive for the call.
    unsafe {
        set_option(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &program,
            "attaching the ARP reply filter",
        )
    }
}

/// Adds `mac` to the port's unicast filter for as long as the socket is
/// open (the kernel drops the membership with the socket): the replies
/// to a port's own address reach it while a bond has given it another.
fn accept_unicast(fd: &OwnedFd, ifindex: i32, mac: [u8; 6]) -> io::Result<()> {
    let mut address = [0u8; 8];
    address[..6].copy_from_slice(&mac);
    let membership = libc::packet_mreq {
        mr_ifindex: ifindex,
        mr_type: libc::PACKET_MR_UNICAST as libc::c_ushort,
        mr_alen: 6,
        mr_address: address,
    };
    // SAFETY: `PACKET_ADD_MEMBERSHIP` takes a `packet_mreq`.
    unsafe {
        set_option(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &membership,
            "letting the port's own address in",
        )
    }
}

/// `setsockopt(2)` with `value`, the error prefixed with `what`.
///
/// # Safety
///
/// `T` must be the type the kernel expects for `level` and `name`, and
/// any pointer inside `value` valid for the call.
unsafe fn set_option<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` is alive for the call and its size is passed; the
    // caller vouches for its type.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            socklen::<T>(),
        )
    };
    if result < 0 {
        return Err(context(what));
    }
    Ok(())
}

fn bind(fd: &OwnedFd, ifindex: i32) -> io::Result<()> {
    let address = link_address(ifindex, [0; 6]);
    // SAFETY: `address` is a valid `sockaddr_ll` alive for the call.
    let result = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            socklen::<libc::sockaddr_ll>(),
        )
    };
    if result < 0 {
        return Err(context("binding the packet socket to the port"));
    }
    Ok(())
}

/// The link-layer address of `ifindex` for ARP frames to `destination`.
fn link_address(ifindex: i32, destination: [u8; 6]) -> libc::sockaddr_ll {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&destination);
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ARP_PROTOCOL,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    }
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// The last OS error, prefixed with what was being done.
fn context(what: &str) -> io::Error {
    let error = io::Error::last_os_error();
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BURNT_IN: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const SAVED: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
    const BONDS: [u8; 6] = [0x02, 0, 0, 0, 0, 3];

    /// A real NIC in a bond: its burnt-in address, let in beside the
    /// bond's; a veth in a bond: the address the bond saved; a port out of
    /// any bond: its own, with nothing to let in.
    #[test]
    fn a_port_probes_from_its_own_address() {
        let choose = PortAddress::choose;
        let chosen = |sender, foreign| Some(PortAddress { sender, foreign });
        assert_eq!(
            choose(Some(BURNT_IN), Some(SAVED), Some(BONDS)),
            chosen(BURNT_IN, true)
        );
        assert_eq!(choose(None, Some(SAVED), Some(BONDS)), chosen(SAVED, true));
        assert_eq!(
            choose(Some(BURNT_IN), None, Some(BURNT_IN)),
            chosen(BURNT_IN, false)
        );
        assert_eq!(choose(None, None, Some(BONDS)), chosen(BONDS, false));
        assert_eq!(choose(None, None, None), None);
    }

    #[test]
    fn the_address_a_bond_saved_is_read_from_its_port_data() {
        let port_data = |options| vec![LinkInfo::PortData(InfoPortData::BondPort(options))];
        assert_eq!(
            saved_by_bond(&port_data(vec![
                InfoBondPort::QueueId(0),
                InfoBondPort::PermHwaddr(SAVED.to_vec()),
            ])),
            Some(SAVED)
        );
        assert_eq!(
            saved_by_bond(&port_data(vec![InfoBondPort::PermHwaddr(vec![0; 6])])),
            None,
            "zeros are no address"
        );
        assert_eq!(saved_by_bond(&port_data(vec![])), None);
        assert_eq!(saved_by_bond(&[]), None);
    }
}
