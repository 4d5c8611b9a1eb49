//! The FreeBSD system calls: the routing socket and the interface and lagg
//! ioctls. FreeBSD only; everything they read or write is built and decoded
//! by the OS-independent modules beside this one.
//!
//! These are thin synchronous wrappers: the routing socket is non-blocking
//! and meant to be driven by the caller's event loop; the ioctls return at
//! once.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::abi::{
    IfData, IfReq, LaggReqAll, LaggReqPort, NameError, PF_ROUTE, SIOCGIFDATA, SIOCGIFFLAGS,
    SIOCGLAGG, SIOCSIFFLAGS, SIOCSLAGGDELPORT, SIOCSLAGGPORT, SO_RERROR,
};
use super::lagg::{LaggState, LAGG_PORT_BUFFER_LEN};

/// Receive buffer asked for on the routing socket: the default 8 KiB
/// overflows (silently, before FreeBSD 15) during bursts of route churn.
pub const ROUTE_SOCKET_RCVBUF: libc::c_int = 256 * 1024;

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

/// Opens `socket(PF_ROUTE, SOCK_RAW, 0)`. Protocol 0 is required: interface
/// messages are sent with `AF_UNSPEC` and never reach a socket opened for
/// one address family.
pub fn open_route_socket() -> io::Result<RouteSocket> {
    let fd = open_socket(
        PF_ROUTE,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
    )?;
    set_int_option(&fd, libc::SO_RCVBUF, ROUTE_SOCKET_RCVBUF)?;
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
pub fn interface_data(fd: BorrowedFd<'_>, name: &str) -> io::Result<IfData> {
    let mut data = IfData::default();
    let mut request = IfReq::new(name).map_err(invalid_name)?;
    request.set_data(&mut data);
    // SAFETY: SIOCGIFDATA takes a `struct ifreq` whose `ifr_data` points
    // at `data`, a whole `if_data` that outlives the call.
    unsafe { ioctl(fd, SIOCGIFDATA, &mut request) }?;
    Ok(data)
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

/// Issues `request` with `arg`.
///
/// # Safety
///
/// `arg` must be the struct `request` encodes, and every pointer inside it
/// must be valid for what the kernel reads or writes through it.
unsafe fn ioctl<T>(fd: BorrowedFd<'_>, request: u32, arg: &mut T) -> io::Result<()> {
    // SAFETY: upheld by the caller.
    let result =
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::c_ulong::from(request), arg as *mut T) };
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
