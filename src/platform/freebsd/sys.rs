//! The FreeBSD system calls: the routing socket and the interface and lagg
//! ioctls. FreeBSD only; everything they read or write is built and decoded
//! by the OS-independent modules beside this one.
//!
//! These are thin synchronous wrappers: the routing socket and the BPF
//! devices of path probes are non-blocking and meant to be driven by the
//! caller's event loop; the ioctls return at once.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::abi::{
    bpf_insn, bpf_program, if_data, IfReq, LaggReqAll, LaggReqPort, NameError, BIOCGBLEN,
    BIOCPROMISC, BIOCSETF, BIOCSETIF, IOCPARM_MASK, PF_ROUTE, SIOCGHWADDR, SIOCGIFDATA,
    SIOCGIFFLAGS, SIOCGLAGG, SIOCSIFFLAGS, SIOCSLAGGDELPORT, SIOCSLAGGPORT, SO_RERROR,
};
use super::kernel::{Interface, LaggKernel};
use super::lagg::{LaggState, LAGG_PORT_BUFFER_LEN};

/// An open routing socket.
#[derive(Debug)]
pub struct RouteSocket {
    /// Non-blocking, close-on-exec; one message per read.
    pub fd: OwnedFd,
    /// Whether the kernel reports lost messages as `ENOBUFS` on the next
    /// read (`SO_RERROR`). When `false`, only the periodic resync recovers
    /// from an overflow.
    pub overflow_reported: bool,
}

/// Opens `socket(PF_ROUTE, SOCK_RAW, 0)` with a receive buffer of
/// `recv_buffer` bytes (the default 8 KiB overflows during bursts of route
/// churn; a size the kernel refuses is logged and the default kept).
/// Protocol 0 is required: interface messages are sent with `AF_UNSPEC`
/// and never reach a socket opened for one address family.
pub fn open_route_socket(recv_buffer: usize) -> io::Result<RouteSocket> {
    let fd = open_socket(
        PF_ROUTE,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
    )?;
    let size = libc::c_int::try_from(recv_buffer).unwrap_or(libc::c_int::MAX);
    if let Err(error) = set_int_option(&fd, libc::SO_RCVBUF, size) {
        // Above kern.ipc.maxsockbuf: smaller, but still a working socket.
        tracing::warn!("cannot set the routing socket's receive buffer to {size} bytes: {error}");
    }
    let overflow_reported = match set_int_option(&fd, SO_RERROR, 1) {
        Ok(()) => true,
        // Kernels before the option refuse it; overflows stay silent there.
        Err(error) if error.raw_os_error() == Some(libc::ENOPROTOOPT) => false,
        Err(error) => return Err(error),
    };
    Ok(RouteSocket {
        fd,
        overflow_reported,
    })
}

/// Reads one routing message into `buf` (use
/// [`READ_BUFFER_LEN`](super::READ_BUFFER_LEN) bytes). `WouldBlock` when
/// none is queued; `ENOBUFS` when messages were lost and a resync is due.
pub fn read_message(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let read = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(read).map_err(|_| io::Error::last_os_error())
}

/// Opens the datagram socket the interface and lagg ioctls are issued on
/// (any datagram socket reaches the interface's own ioctl handler;
/// `AF_LOCAL` exists in every kernel).
pub fn open_ioctl_socket() -> io::Result<OwnedFd> {
    open_socket(libc::AF_LOCAL, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC)
}

/// Reads a lagg's protocol and ports (`SIOCGLAGG`, no privilege needed).
pub fn read_lagg(fd: BorrowedFd<'_>, lagg: &str) -> io::Result<LaggState> {
    let mut port_buf = vec![0u8; LAGG_PORT_BUFFER_LEN];
    let mut request = LaggReqAll::for_read(lagg, &mut port_buf).map_err(invalid_name)?;
    // SAFETY: SIOCGLAGG takes a `lagg_reqall`, whose `ra_port` points at
    // `port_buf`, alive and `ra_size` bytes long for the whole call.
    unsafe { ioctl(fd, SIOCGLAGG, &mut request) }?;
    Ok(LaggState::decode(&request, &port_buf))
}

/// Adds `port` to `lagg` (`SIOCSLAGGPORT`, root only). `EEXIST` means it
/// already is a member.
pub fn add_port(fd: BorrowedFd<'_>, lagg: &str, port: &str) -> io::Result<()> {
    let mut request = LaggReqPort::new(lagg, port).map_err(invalid_name)?;
    // SAFETY: SIOCSLAGGPORT takes a `lagg_reqport`.
    unsafe { ioctl(fd, SIOCSLAGGPORT, &mut request) }
}

/// Removes `port` from `lagg` (`SIOCSLAGGDELPORT`, root only). `ENOENT`
/// means it is not a member.
pub fn remove_port(fd: BorrowedFd<'_>, lagg: &str, port: &str) -> io::Result<()> {
    let mut request = LaggReqPort::new(lagg, port).map_err(invalid_name)?;
    // SAFETY: SIOCSLAGGDELPORT takes a `lagg_reqport`.
    unsafe { ioctl(fd, SIOCSLAGGDELPORT, &mut request) }
}

/// An interface's flags, `if_flags | if_drv_flags` (`SIOCGIFFLAGS`).
pub fn interface_flags(fd: BorrowedFd<'_>, name: &str) -> io::Result<i32> {
    let mut request = IfReq::new(name).map_err(invalid_name)?;
    // SAFETY: SIOCGIFFLAGS takes a `struct ifreq`.
    unsafe { ioctl(fd, SIOCGIFFLAGS, &mut request) }?;
    Ok(request.flags())
}

/// Sets an interface's flags (`SIOCSIFFLAGS`, root only): clearing
/// `IFF_UP` takes a port out of lagg's service.
pub fn set_interface_flags(fd: BorrowedFd<'_>, name: &str, flags: i32) -> io::Result<()> {
    let mut request = IfReq::new(name).map_err(invalid_name)?;
    request.set_flags(flags);
    // SAFETY: SIOCSIFFLAGS takes a `struct ifreq`.
    unsafe { ioctl(fd, SIOCSIFFLAGS, &mut request) }
}

/// An interface's `if_data` (`SIOCGIFDATA`): its link state, for resyncs.
pub fn interface_data(fd: BorrowedFd<'_>, name: &str) -> io::Result<if_data> {
    // SAFETY: `if_data` is integers and unions of integers; all zeroes is
    // a valid value.
    let mut data: if_data = unsafe { core::mem::zeroed() };
    let mut request = IfReq::new(name).map_err(invalid_name)?;
    request.set_data(&mut data);
    // SAFETY: SIOCGIFDATA takes a `struct ifreq` whose `ifr_data` points
    // at `data`, a whole `if_data` that outlives the call.
    unsafe { ioctl(fd, SIOCGIFDATA, &mut request) }?;
    Ok(data)
}

/// A port's own hardware address (`SIOCGHWADDR`): the one it was made
/// with, not the lagg's, which lagg writes over every member's current
/// address. Path probes send from it.
pub fn hardware_address(fd: BorrowedFd<'_>, name: &str) -> io::Result<[u8; 6]> {
    let mut request = IfReq::new(name).map_err(invalid_name)?;
    // SAFETY: SIOCGHWADDR takes a `struct ifreq` and fills its `ifr_addr`.
    unsafe { ioctl(fd, SIOCGHWADDR, &mut request) }?;
    request.hardware_address().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name} has no hardware address"),
        )
    })
}

/// Opens a BPF descriptor from the cloning device, non-blocking and
/// close-on-exec, read and written by a path probe.
pub fn open_bpf() -> io::Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated literal.
    let fd = unsafe {
        libc::open(
            c"/dev/bpf".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The size of the descriptor's buffer (`BIOCGBLEN`): every read must
/// ask for exactly that many bytes, or the kernel refuses it.
pub fn bpf_buffer_length(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut length: libc::c_uint = 0;
    // SAFETY: BIOCGBLEN writes a `u_int`.
    unsafe { ioctl(fd, BIOCGBLEN, &mut length) }?;
    usize::try_from(length).map_err(io::Error::other)
}

/// Attaches the descriptor to the interface `name` (`BIOCSETIF`).
pub fn bpf_attach(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let mut request = IfReq::new(name).map_err(invalid_name)?;
    // SAFETY: BIOCSETIF takes a `struct ifreq`; only its name is read.
    unsafe { ioctl(fd, BIOCSETIF, &mut request) }
}

/// Installs the read filter (`BIOCSETF`). The kernel copies the program
/// and empties the descriptor's buffers, so nothing captured under the
/// previous filter (or none) is read after it.
pub fn bpf_set_filter(fd: BorrowedFd<'_>, program: &[bpf_insn]) -> io::Result<()> {
    let mut request = bpf_program {
        bf_len: libc::c_uint::try_from(program.len())
            .map_err(|_| io::Error::other("BPF program too long"))?,
        // The kernel only reads through this pointer (copyin).
        bf_insns: program.as_ptr().cast_mut(),
    };
    // SAFETY: BIOCSETF takes a `struct bpf_program` whose `bf_insns`
    // points at `bf_len` instructions, alive for the call.
    unsafe { ioctl(fd, BIOCSETF, &mut request) }
}

/// Puts the descriptor's interface in promiscuous mode (`BIOCPROMISC`)
/// until the descriptor is closed; the kernel counts such requests, so
/// this adds to whatever else asked for it. The descriptor must be
/// attached.
pub fn bpf_promiscuous(fd: BorrowedFd<'_>) -> io::Result<()> {
    // An `_IO` request: the kernel copies nothing, the argument is unused.
    let mut unused: libc::c_int = 0;
    // SAFETY: BIOCPROMISC reads and writes nothing through its argument.
    unsafe { ioctl(fd, libc::c_ulong::from(BIOCPROMISC), &mut unused) }
}

/// Sets one of the descriptor's `u_int` options (`BIOCIMMEDIATE`,
/// `BIOCSHDRCMPLT`, `BIOCSDIRECTION`, ...) to `value`.
pub fn bpf_set_option(
    fd: BorrowedFd<'_>,
    request: libc::c_ulong,
    mut value: libc::c_uint,
) -> io::Result<()> {
    // The kernel copies as many bytes as the number encodes: one that
    // does not encode a `u_int` would read past `value`.
    if (request >> 16) & IOCPARM_MASK != core::mem::size_of::<libc::c_uint>() as libc::c_ulong {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ioctl {request:#x} does not take a u_int"),
        ));
    }
    // SAFETY: the request copies a `u_int` in or out, checked above.
    unsafe { ioctl(fd, request, &mut value) }
}

/// Reads what the descriptor captured into `buf`, which must be the
/// buffer size [`bpf_buffer_length`] returned. `WouldBlock` when nothing
/// is captured yet.
pub fn read_bpf(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    read_message(fd, buf)
}

/// Sends one whole frame out of the descriptor's interface; a short write
/// is an error, as a cut frame is no probe.
pub fn write_frame(fd: BorrowedFd<'_>, frame: &[u8]) -> io::Result<()> {
    // SAFETY: `frame` is valid for reads of its length.
    let written = unsafe { libc::write(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    let written = usize::try_from(written).map_err(|_| io::Error::last_os_error())?;
    if written != frame.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("wrote {written} of {} bytes", frame.len()),
        ));
    }
    Ok(())
}

/// Every interface's index and name, for resyncs.
pub fn interface_names() -> io::Result<Vec<(u32, String)>> {
    let interfaces = nix::net::if_::if_nameindex().map_err(io::Error::from)?;
    Ok(interfaces
        .iter()
        .map(|interface| {
            let name = interface.name().to_string_lossy().into_owned();
            (interface.index(), name)
        })
        .collect())
}

/// One interface's index, flags, link state and type.
pub fn read_interface(fd: BorrowedFd<'_>, index: u32, name: &str) -> io::Result<Interface> {
    let flags = interface_flags(fd, name)?;
    let data = interface_data(fd, name)?;
    Ok(Interface {
        index,
        name: name.to_owned(),
        flags,
        link_state: data.ifi_link_state,
        if_type: data.ifi_type,
    })
}

/// The running kernel, as the platform task calls it: every call is an
/// ioctl on one datagram socket.
#[derive(Debug)]
pub struct SysKernel {
    fd: OwnedFd,
}

impl SysKernel {
    /// Opens the socket the ioctls are issued on.
    pub fn open() -> io::Result<SysKernel> {
        Ok(SysKernel {
            fd: open_ioctl_socket()?,
        })
    }
}

impl LaggKernel for SysKernel {
    fn interfaces(&mut self) -> io::Result<Vec<Interface>> {
        let mut interfaces = Vec::new();
        for (index, name) in interface_names()? {
            match read_interface(self.fd.as_fd(), index, &name) {
                Ok(interface) => interfaces.push(interface),
                // It left between the listing and the read.
                Err(error) if error.raw_os_error() == Some(libc::ENXIO) => {}
                Err(error) => return Err(io::Error::new(error.kind(), format!("{name}: {error}"))),
            }
        }
        Ok(interfaces)
    }

    fn interface(&mut self, name: &str) -> io::Result<Interface> {
        let index = nix::net::if_::if_nametoindex(name).map_err(io::Error::from)?;
        read_interface(self.fd.as_fd(), index, name)
    }

    fn read_lagg(&mut self, lagg: &str) -> io::Result<LaggState> {
        read_lagg(self.fd.as_fd(), lagg)
    }

    fn add_port(&mut self, lagg: &str, port: &str) -> io::Result<()> {
        add_port(self.fd.as_fd(), lagg, port)
    }

    fn remove_port(&mut self, lagg: &str, port: &str) -> io::Result<()> {
        remove_port(self.fd.as_fd(), lagg, port)
    }

    fn interface_flags(&mut self, name: &str) -> io::Result<i32> {
        interface_flags(self.fd.as_fd(), name)
    }

    fn set_interface_flags(&mut self, name: &str, flags: i32) -> io::Result<()> {
        set_interface_flags(self.fd.as_fd(), name, flags)
    }
}

/// Issues `request` with `arg`.
///
/// # Safety
///
/// `arg` must be the struct `request` encodes, and every pointer inside it
/// must be valid for what the kernel reads or writes through it.
unsafe fn ioctl<T>(fd: BorrowedFd<'_>, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: upheld by the caller.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg as *mut T) };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn open_socket(domain: libc::c_int, kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with no pointer arguments.
    let fd = unsafe { libc::socket(domain, kind, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int_option(fd: &OwnedFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its size is passed with it.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn invalid_name(error: NameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}
