//! The BPF device of one probed port: FreeBSD only. Same API as the
//! Linux packet socket, so the prober uses either unchanged.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::Captures;
use crate::platform::freebsd::abi::{
    bpf_insn, BIOCIMMEDIATE, BIOCSDIRECTION, BIOCSHDRCMPLT, BPF_D_IN,
};
use crate::platform::freebsd::sys;
use crate::probe::filter::arp_reply_filter;
use crate::probe::PortAddress;

/// A BPF descriptor that sends ARP requests out of one port and receives
/// the replies the filter lets through.
#[derive(Debug)]
pub struct PortSocket {
    device: AsyncFd<OwnedFd>,
    /// The last read, handed out one frame per receive.
    captures: Mutex<Captures>,
}

impl PortSocket {
    /// Opens a descriptor on the port with index `ifindex`, letting
    /// through only ARP replies to `mac` from one of `targets`.
    pub fn open(
        ifindex: u32,
        address: PortAddress,
        targets: &[Ipv4Addr],
    ) -> io::Result<PortSocket> {
        let mac = address.sender;
        let port = interface_name(ifindex)?;
        let program: Vec<bpf_insn> = arp_reply_filter(mac, targets)
            .map_err(io::Error::other)?
            .iter()
            .map(|insn| bpf_insn {
                code: insn.code,
                jt: insn.jt,
                jf: insn.jf,
                k: insn.k,
            })
            .collect();
        let fd = sys::open_bpf().map_err(|error| context("opening /dev/bpf", error))?;
        let length = sys::bpf_buffer_length(fd.as_fd())
            .map_err(|error| context("reading the BPF buffer size", error))?;
        sys::bpf_attach(fd.as_fd(), &port)
            .map_err(|error| context(&format!("attaching BPF to {port}"), error))?;
        // lagg sets its own address on every member, and the member's
        // receive filter keeps only that: the replies, sent to the port's
        // own address, pass only in promiscuous mode. The filter below
        // still wakes the daemon for nothing else, and the mode ends with
        // the descriptor.
        sys::bpf_promiscuous(fd.as_fd())
            .map_err(|error| context(&format!("making {port} promiscuous"), error))?;
        // After attaching: the kernel empties the buffer as it installs a
        // filter, so no unfiltered frame is ever read.
        sys::bpf_set_filter(fd.as_fd(), &program)
            .map_err(|error| context("installing the ARP reply filter", error))?;
        let options = [
            // A reply wakes the reader at once, not when the buffer fills.
            (BIOCIMMEDIATE, 1, "immediate mode"),
            // The frame goes out with the source address written in it,
            // the port's own; else the kernel would write the port's
            // current address, which on a lagg member is the lagg's.
            (BIOCSHDRCMPLT, 1, "complete headers"),
            // Only what the port receives: not our own requests.
            (BIOCSDIRECTION, BPF_D_IN, "the inbound direction"),
        ];
        for (request, value, what) in options {
            sys::bpf_set_option(fd.as_fd(), request, value)
                .map_err(|error| context(&format!("setting {what}"), error))?;
        }
        // Readable only: BPF refuses any other kqueue filter.
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which is the only
        // one to close it.
        let device = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|error| context("registering the BPF device", error.into_parts().1))?;
        Ok(PortSocket {
            device,
            captures: Mutex::new(Captures::new(length)),
        })
    }

    /// Sends one whole frame out of the port, as written.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        sys::write_frame(self.device.get_ref().as_fd(), frame)
    }

    /// The next frame the filter let through, into `buffer`; its length.
    /// Cancel-safe: a frame is taken from the held read only when
    /// returned, and a read is only made when nothing is held.
    pub async fn receive(&self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.captures().next_frame(buffer) {
                Some(Ok(length)) => return Ok(length),
                // Not what the kernel writes; the rest of that read is
                // dropped and the next one is trusted again.
                Some(Err(malformed)) => {
                    tracing::warn!("dropping the rest of a BPF read: {malformed}");
                    continue;
                }
                None => {}
            }
            let mut ready = self.device.readable().await?;
            let read = ready.try_io(|device| {
                let read = self
                    .captures()
                    .refill(|space| sys::read_bpf(device.get_ref().as_fd(), space))?;
                if read == 0 {
                    // Nothing captured after all: wait for the next wake-up
                    // rather than spin.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(read)
            });
            if let Ok(Err(error)) = read {
                return Err(error);
            }
        }
    }

    fn captures(&self) -> MutexGuard<'_, Captures> {
        // Poisoning is ignored: the held read has no invariant a panic
        // could break that a refill does not restore.
        self.captures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The hardware address a port sends its probes from: its own
/// (`SIOCGHWADDR`), not the lagg's, which lagg writes over the current
/// address of every member; the switch must never learn the lagg's
/// address on a backup port.
pub async fn port_address(ifindex: u32) -> io::Result<PortAddress> {
    let port = interface_name(ifindex)?;
    let socket = sys::open_ioctl_socket()?;
    let sender = sys::hardware_address(socket.as_fd(), &port)
        .map_err(|error| context(&format!("reading the hardware address of {port}"), error))?;
    // The device is promiscuous while probed (see `open`), so no filter
    // needs to be told of the address.
    Ok(PortAddress {
        sender,
        foreign: false,
    })
}

/// The name of the interface with index `ifindex`: BPF and the interface
/// ioctls address interfaces by name.
fn interface_name(ifindex: u32) -> io::Result<String> {
    let name = nix::net::if_::if_indextoname(ifindex)
        .map_err(|error| context(&format!("no interface with index {ifindex}"), error.into()))?;
    name.into_string()
        .map_err(|_| io::Error::other(format!("interface {ifindex} has a name that is not UTF-8")))
}

/// `error`, prefixed with what was being done.
fn context(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}
