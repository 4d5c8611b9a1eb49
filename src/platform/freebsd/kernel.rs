//! The kernel calls the FreeBSD platform makes, behind a trait.
//!
//! The platform task reads interfaces and laggs and reorders lagg ports
//! only through [`LaggKernel`]. On FreeBSD it is implemented by the system
//! calls (`sys::SysKernel`); everywhere, by the simulated lagg of
//! [`fake`](super::fake), which lets the whole task run in tests on any OS.

use std::io;

use super::lagg::LaggState;
use super::message::port_link_up;
use crate::platform::LinkState;

/// One interface as a full read reports it (`if_nameindex`,
/// `SIOCGIFFLAGS` and `SIOCGIFDATA`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The kernel's interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// `if_flags | if_drv_flags` (`IFF_*`).
    pub flags: i32,
    /// `ifi_link_state` (`LINK_STATE_*`).
    pub link_state: u8,
    /// `ifi_type` (`IFT_*`); `IFT_IEEE8023ADLAG` while a lagg member.
    pub if_type: u8,
}

impl Interface {
    /// Whether lagg can use the interface as a port.
    pub fn link_state(&self) -> LinkState {
        LinkState::from_up(port_link_up(self.flags, self.link_state))
    }
}

/// The kernel calls of the FreeBSD platform. Every call is synchronous and
/// returns at once (they are ioctls), so the platform task issues them
/// directly. Errors are the kernel's `errno`s.
pub trait LaggKernel {
    /// Every interface that exists now.
    fn interfaces(&mut self) -> io::Result<Vec<Interface>>;

    /// One interface, by name (after it attached or was renamed).
    fn interface(&mut self, name: &str) -> io::Result<Interface>;

    /// A lagg's protocol and ports (`SIOCGLAGG`). Fails on an interface
    /// that is not a lagg, which is how laggs are told from other
    /// interfaces.
    fn read_lagg(&mut self, lagg: &str) -> io::Result<LaggState>;

    /// Adds `port` to `lagg` (`SIOCSLAGGPORT`); `EEXIST` when it already
    /// is a member.
    fn add_port(&mut self, lagg: &str, port: &str) -> io::Result<()>;

    /// Removes `port` from `lagg` (`SIOCSLAGGDELPORT`).
    fn remove_port(&mut self, lagg: &str, port: &str) -> io::Result<()>;

    /// An interface's flags (`SIOCGIFFLAGS`).
    fn interface_flags(&mut self, name: &str) -> io::Result<i32>;

    /// Sets an interface's flags (`SIOCSIFFLAGS`).
    fn set_interface_flags(&mut self, name: &str, flags: i32) -> io::Result<()>;
}
