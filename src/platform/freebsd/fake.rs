//! A simulated FreeBSD kernel: interfaces, laggs and the routing socket,
//! for running the FreeBSD platform task on any OS.
//!
//! It follows the `if_lagg.c` rules the platform depends on: the port list
//! is kept in interface-index order, the first port added to an empty lagg
//! becomes MASTER, removing the MASTER hands the role to the first
//! remaining port, ACTIVE is the MASTER when usable, else the next usable
//! port after it, else the first usable one; members have `ifi_type`
//! `IFT_IEEE8023ADLAG`. Every change is announced on the routing socket as
//! the kernel would (`RTM_IFINFO`, `RTM_IFANNOUNCE`, as bytes), including
//! the link bounce of each port whose MAC a port removal or addition
//! reprograms. Calls are recorded, and any call can be made to fail once
//! with an `errno`.
//!
//! The handle is cheap to clone: the test keeps one to drive and inspect
//! the kernel while the platform task owns another.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::abi::{
    IFF_BROADCAST, IFF_MULTICAST, IFF_RUNNING, IFF_SIMPLEX, IFF_UP, IFT_IEEE8023ADLAG,
    LAGG_MAX_PORTS, LAGG_PORT_ACTIVE, LAGG_PORT_MASTER, LAGG_PROTO_FAILOVER, LINK_STATE_DOWN,
    LINK_STATE_UP,
};
use super::kernel::{Interface, LaggKernel};
use super::lagg::{LaggPort, LaggState};
use super::message::{port_link_up, RouteMessage};
use crate::platform::{LinkState, Update};

/// `ifi_type` of an Ethernet interface outside any lagg, which the
/// simulated interfaces are; here for the tests that build them.
pub use super::abi::IFT_ETHER;

/// Flags of an interface that is up and running:
/// UP|BROADCAST|RUNNING|SIMPLEX|MULTICAST, as ifconfig shows `0x8843`.
pub const FLAGS_UP: i32 = IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_SIMPLEX | IFF_MULTICAST;

/// How many routing messages the simulated socket holds.
const SOCKET_QUEUE: usize = 1024;

/// One kernel call the platform made, in the order it made them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelCall {
    /// [`LaggKernel::interfaces`].
    Interfaces,
    /// [`LaggKernel::interface`] of the named interface.
    Interface(String),
    /// [`LaggKernel::read_lagg`] (`SIOCGLAGG`) of the named interface.
    ReadLagg(String),
    /// [`LaggKernel::add_port`] (`SIOCSLAGGPORT`).
    AddPort {
        /// The lagg.
        lagg: String,
        /// The port added.
        port: String,
    },
    /// [`LaggKernel::remove_port`] (`SIOCSLAGGDELPORT`).
    RemovePort {
        /// The lagg.
        lagg: String,
        /// The port removed.
        port: String,
    },
    /// [`LaggKernel::interface_flags`] (`SIOCGIFFLAGS`) of the named
    /// interface.
    InterfaceFlags(String),
    /// [`LaggKernel::set_interface_flags`] (`SIOCSIFFLAGS`).
    SetInterfaceFlags {
        /// The interface.
        name: String,
        /// The flags written.
        flags: i32,
    },
}

impl KernelCall {
    /// Adding `port` to `lagg0`, the lagg of every test setup: the call a
    /// test expects the platform to make when it restores a primary.
    pub fn add(port: &str) -> KernelCall {
        KernelCall::AddPort {
            lagg: "lagg0".into(),
            port: port.into(),
        }
    }

    /// Removing `port` from `lagg0`, the other half of a reorder.
    pub fn remove(port: &str) -> KernelCall {
        KernelCall::RemovePort {
            lagg: "lagg0".into(),
            port: port.into(),
        }
    }

    /// Whether the call changes the kernel (rather than reading it).
    pub fn changes(&self) -> bool {
        matches!(
            self,
            KernelCall::AddPort { .. }
                | KernelCall::RemovePort { .. }
                | KernelCall::SetInterfaceFlags { .. }
        )
    }
}

/// The simulated kernel; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct FakeLaggKernel {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    last_index: u32,
    interfaces: BTreeMap<String, FakeInterface>,
    laggs: BTreeMap<String, FakeLagg>,
    calls: Vec<KernelCall>,
    /// One-shot failures: the next call equal to the key fails with the
    /// `errno`.
    failures: Vec<(KernelCall, i32)>,
    socket: Option<mpsc::Sender<io::Result<Vec<u8>>>>,
    /// MAC reprogramming leaves links alone (drivers that do not
    /// renegotiate): lagg membership changes then send no message at all.
    steady_links: bool,
}

#[derive(Clone, Debug)]
struct FakeInterface {
    index: u32,
    flags: i32,
    link_state: u8,
    /// The lagg it is a port of.
    lagg: Option<String>,
}

#[derive(Clone, Debug)]
struct FakeLagg {
    protocol: u32,
    /// Port names in interface-index order.
    ports: Vec<String>,
    primary: Option<String>,
}

impl FakeLaggKernel {
    /// A kernel without interfaces.
    pub fn new() -> FakeLaggKernel {
        FakeLaggKernel::default()
    }

    /// Opens the routing socket: from now on every change is sent on the
    /// returned channel, as the platform task reads it.
    pub fn route_socket(&self) -> mpsc::Receiver<io::Result<Vec<u8>>> {
        let (sender, receiver) = mpsc::channel(SOCKET_QUEUE);
        self.lock().socket = Some(sender);
        receiver
    }

    /// Queues raw bytes, or a read error such as `ENOBUFS`, on the routing
    /// socket.
    pub fn send_raw(&self, read: io::Result<Vec<u8>>) {
        self.lock().send(read);
    }

    /// Attaches an Ethernet interface, up and with carrier, with the next
    /// interface index; returns the index.
    pub fn attach(&self, name: &str) -> u32 {
        self.lock().attach(name, FLAGS_UP, LINK_STATE_UP)
    }

    /// Creates lagg `name` with `protocol` and adds `ports` in order, as
    /// `ifconfig lagg0 create laggproto failover laggport em0 laggport
    /// bge0` does; the first port becomes MASTER.
    pub fn create_lagg(&self, name: &str, protocol: u32, ports: &[&str]) -> u32 {
        let mut state = self.lock();
        let index = state.attach(name, FLAGS_UP, LINK_STATE_DOWN);
        state.laggs.insert(
            name.to_owned(),
            FakeLagg {
                protocol,
                ports: Vec::new(),
                primary: None,
            },
        );
        for port in ports {
            if let Err(error) = state.join(name, port) {
                panic!("simulated lagg {name} cannot take {port}: {error}");
            }
        }
        index
    }

    /// Sets a port's carrier, as a cable plugged or pulled does.
    pub fn set_carrier(&self, name: &str, up: bool) {
        let mut state = self.lock();
        let link_state = if up { LINK_STATE_UP } else { LINK_STATE_DOWN };
        let Some(interface) = state.interfaces.get_mut(name) else {
            panic!("simulated kernel has no interface {name}");
        };
        interface.link_state = link_state;
        state.announce_info(name);
        if let Some(lagg) = state.lagg_of(name) {
            state.update_lagg_link(&lagg);
        }
    }

    /// Detaches an interface (unplugged, driver unloaded, lagg destroyed):
    /// a port leaves its lagg as `lagg_port_ifdetach` makes it, a lagg
    /// releases its ports; then it departs.
    pub fn detach(&self, name: &str) {
        let mut state = self.lock();
        if let Some(lagg) = state.lagg_of(name) {
            if let Err(error) = state.leave(&lagg, name, false) {
                panic!("simulated lagg {lagg} cannot drop {name}: {error}");
            }
        }
        let ports = state
            .laggs
            .get(name)
            .map(|lagg| lagg.ports.clone())
            .unwrap_or_default();
        for port in ports {
            if let Err(error) = state.leave(name, &port, true) {
                panic!("simulated lagg {name} cannot release {port}: {error}");
            }
        }
        state.laggs.remove(name);
        let Some(interface) = state.interfaces.remove(name) else {
            panic!("simulated kernel has no interface {name}");
        };
        state.send_message(RouteMessage::IfAnnounce {
            index: interface.index as u16,
            name: name.to_owned(),
            arrival: false,
        });
    }

    /// Whether reprogramming a port's MAC bounces its link (the default),
    /// as on many drivers, or leaves it alone, as on others.
    pub fn set_link_bounce(&self, bounce: bool) {
        self.lock().steady_links = !bounce;
    }

    /// Makes the next call equal to `call` fail with `errno`.
    pub fn fail_next(&self, call: KernelCall, errno: i32) {
        self.lock().failures.push((call, errno));
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<KernelCall> {
        self.lock().calls.clone()
    }

    /// The calls made so far that changed the kernel, in order; the record
    /// is cleared.
    pub fn take_changes(&self) -> Vec<KernelCall> {
        let calls = std::mem::take(&mut self.lock().calls);
        calls.into_iter().filter(KernelCall::changes).collect()
    }

    /// A lagg as `SIOCGLAGG` would report it now (not recorded as a call).
    pub fn lagg(&self, name: &str) -> Option<LaggState> {
        self.lock().lagg_state(name)
    }

    /// An interface as a read would report it now (not recorded).
    pub fn interface_now(&self, name: &str) -> Option<Interface> {
        let state = self.lock();
        state.interfaces.get(name).map(|i| state.describe(name, i))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already;
        // the state is still usable for its report.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `call` and returns its injected failure, if any.
    fn call(&self, call: KernelCall) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.lock();
        state.calls.push(call.clone());
        if let Some(at) = state
            .failures
            .iter()
            .position(|(failing, _)| *failing == call)
        {
            let (_, errno) = state.failures.remove(at);
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(state)
    }
}

impl LaggKernel for FakeLaggKernel {
    fn interfaces(&mut self) -> io::Result<Vec<Interface>> {
        let state = self.call(KernelCall::Interfaces)?;
        let mut all: Vec<Interface> = state
            .interfaces
            .iter()
            .map(|(name, interface)| state.describe(name, interface))
            .collect();
        all.sort_by_key(|interface| interface.index);
        Ok(all)
    }

    fn interface(&mut self, name: &str) -> io::Result<Interface> {
        let state = self.call(KernelCall::Interface(name.to_owned()))?;
        let interface = state.interfaces.get(name).ok_or_else(no_device)?;
        Ok(state.describe(name, interface))
    }

    fn read_lagg(&mut self, lagg: &str) -> io::Result<LaggState> {
        let state = self.call(KernelCall::ReadLagg(lagg.to_owned()))?;
        if !state.interfaces.contains_key(lagg) {
            return Err(no_device());
        }
        state.lagg_state(lagg).ok_or_else(|| errno(libc::EINVAL))
    }

    fn add_port(&mut self, lagg: &str, port: &str) -> io::Result<()> {
        let call = KernelCall::AddPort {
            lagg: lagg.to_owned(),
            port: port.to_owned(),
        };
        self.call(call)?.join(lagg, port)
    }

    fn remove_port(&mut self, lagg: &str, port: &str) -> io::Result<()> {
        let call = KernelCall::RemovePort {
            lagg: lagg.to_owned(),
            port: port.to_owned(),
        };
        self.call(call)?.leave(lagg, port, true)
    }

    fn interface_flags(&mut self, name: &str) -> io::Result<i32> {
        let state = self.call(KernelCall::InterfaceFlags(name.to_owned()))?;
        state
            .interfaces
            .get(name)
            .map(|interface| interface.flags)
            .ok_or_else(no_device)
    }

    fn set_interface_flags(&mut self, name: &str, flags: i32) -> io::Result<()> {
        let call = KernelCall::SetInterfaceFlags {
            name: name.to_owned(),
            flags,
        };
        let mut state = self.call(call)?;
        let interface = state.interfaces.get_mut(name).ok_or_else(no_device)?;
        // Only IFF_UP is modelled as settable; the driver flags stay.
        interface.flags = (interface.flags & !IFF_UP) | (flags & IFF_UP);
        state.announce_info(name);
        Ok(())
    }
}

impl State {
    fn attach(&mut self, name: &str, flags: i32, link_state: u8) -> u32 {
        assert!(
            !self.interfaces.contains_key(name),
            "simulated interface {name} attached twice"
        );
        self.last_index += 1;
        let index = self.last_index;
        self.interfaces.insert(
            name.to_owned(),
            FakeInterface {
                index,
                flags,
                link_state,
                lagg: None,
            },
        );
        self.send_message(RouteMessage::IfAnnounce {
            index: index as u16,
            name: name.to_owned(),
            arrival: true,
        });
        self.announce_info(name);
        index
    }

    /// `lagg_port_create`: adds `port` in index order; the first port of
    /// an empty lagg is MASTER. The port's MAC is reprogrammed, which
    /// bounces its link.
    fn join(&mut self, lagg: &str, port: &str) -> io::Result<()> {
        if !self.interfaces.contains_key(port) {
            return Err(errno(libc::EINVAL));
        }
        let member_of = self.lagg_of(port);
        let list = self.laggs.get_mut(lagg).ok_or_else(no_device)?;
        match member_of {
            Some(other) if other == lagg => return Err(errno(libc::EEXIST)),
            Some(_) => return Err(errno(libc::EBUSY)),
            None => {}
        }
        if list.ports.len() >= LAGG_MAX_PORTS {
            return Err(errno(libc::ENOSPC));
        }
        if list.ports.is_empty() {
            list.primary = Some(port.to_owned());
        }
        list.ports.push(port.to_owned());
        let mut ports = std::mem::take(&mut list.ports);
        ports.sort_by_key(|name| self.interfaces.get(name).map_or(u32::MAX, |i| i.index));
        if let Some(list) = self.laggs.get_mut(lagg) {
            list.ports = ports;
        }
        if let Some(interface) = self.interfaces.get_mut(port) {
            interface.lagg = Some(lagg.to_owned());
        }
        self.bounce(port);
        self.update_lagg_link(lagg);
        Ok(())
    }

    /// `lagg_port_destroy`: the port gets its own MAC back (a bounce),
    /// unless it is detaching; if it was MASTER, the first remaining port
    /// takes the role and every remaining port is reprogrammed to the new
    /// MAC (a bounce each).
    fn leave(&mut self, lagg: &str, port: &str, restore_mac: bool) -> io::Result<()> {
        let list = self.laggs.get_mut(lagg).ok_or_else(no_device)?;
        let at = list
            .ports
            .iter()
            .position(|name| name == port)
            .ok_or_else(|| errno(libc::ENOENT))?;
        list.ports.remove(at);
        let primary_moved = list.primary.as_deref() == Some(port);
        if primary_moved {
            list.primary = list.ports.first().cloned();
        }
        let remaining = list.ports.clone();
        if let Some(interface) = self.interfaces.get_mut(port) {
            interface.lagg = None;
        }
        if restore_mac {
            self.bounce(port);
        }
        if primary_moved {
            for name in &remaining {
                self.bounce(name);
            }
        }
        self.update_lagg_link(lagg);
        Ok(())
    }

    fn lagg_of(&self, port: &str) -> Option<String> {
        self.interfaces.get(port).and_then(|i| i.lagg.clone())
    }

    fn usable(&self, port: &str) -> bool {
        self.interfaces
            .get(port)
            .is_some_and(|i| port_link_up(i.flags, i.link_state))
    }

    /// `lagg_link_active(sc, sc_primary)`.
    fn active_port(&self, lagg: &FakeLagg) -> Option<String> {
        let primary = lagg.primary.as_ref()?;
        if self.usable(primary) {
            return Some(primary.clone());
        }
        let at = lagg.ports.iter().position(|name| name == primary)?;
        if let Some(next) = lagg.ports.get(at + 1).filter(|next| self.usable(next)) {
            return Some(next.clone());
        }
        lagg.ports.iter().find(|name| self.usable(name)).cloned()
    }

    /// `SIOCGLAGG`, with the flags `lagg_port2req` reports.
    fn lagg_state(&self, name: &str) -> Option<LaggState> {
        let lagg = self.laggs.get(name)?;
        let active = self.active_port(lagg);
        let ports = lagg
            .ports
            .iter()
            .map(|port| {
                let (master, active) = if lagg.protocol == LAGG_PROTO_FAILOVER {
                    (
                        lagg.primary.as_ref() == Some(port),
                        active.as_ref() == Some(port),
                    )
                } else {
                    (false, self.usable(port))
                };
                let mut flags = 0;
                if master {
                    flags |= LAGG_PORT_MASTER;
                }
                if active {
                    flags |= LAGG_PORT_ACTIVE;
                }
                LaggPort {
                    name: port.clone(),
                    flags,
                    master,
                    active,
                }
            })
            .collect();
        Some(LaggState {
            protocol: lagg.protocol,
            ports,
        })
    }

    fn describe(&self, name: &str, interface: &FakeInterface) -> Interface {
        Interface {
            index: interface.index,
            name: name.to_owned(),
            flags: interface.flags,
            link_state: interface.link_state,
            if_type: if interface.lagg.is_some() {
                IFT_IEEE8023ADLAG
            } else {
                IFT_ETHER
            },
        }
    }

    /// `lagg_linkstate`: the lagg has link when any port has carrier.
    fn update_lagg_link(&mut self, lagg: &str) {
        let Some(list) = self.laggs.get(lagg) else {
            return;
        };
        let up = list.ports.iter().any(|port| {
            self.interfaces
                .get(port)
                .is_some_and(|i| i.link_state == LINK_STATE_UP)
        });
        let link_state = if up { LINK_STATE_UP } else { LINK_STATE_DOWN };
        if let Some(interface) = self.interfaces.get_mut(lagg) {
            if interface.link_state != link_state {
                interface.link_state = link_state;
                self.announce_info(lagg);
            }
        }
    }

    /// A MAC reprogramming: the driver re-initialises, the link drops and
    /// comes back.
    fn bounce(&mut self, name: &str) {
        let Some(interface) = self.interfaces.get(name) else {
            return;
        };
        if self.steady_links || interface.link_state != LINK_STATE_UP {
            return;
        }
        let mut down = self.describe(name, interface);
        down.link_state = LINK_STATE_DOWN;
        self.send_message(info_message(&down));
        self.announce_info(name);
    }

    fn announce_info(&mut self, name: &str) {
        if let Some(interface) = self.interfaces.get(name) {
            let message = info_message(&self.describe(name, interface));
            self.send_message(message);
        }
    }

    fn send_message(&mut self, message: RouteMessage) {
        self.send(Ok(message.to_bytes()));
    }

    fn send(&mut self, read: io::Result<Vec<u8>>) {
        if let Some(socket) = &self.socket {
            // A full or closed socket loses the message, as the kernel's
            // would; the tests size the queue so that this does not happen.
            let _ = socket.try_send(read);
        }
    }
}

/// An up interface as a kernel read reports it: the state machine's tests
/// and the platform's tests build their resyncs from these.
pub fn interface(index: u32, name: &str, link_state: u8, if_type: u8) -> Interface {
    Interface {
        index,
        name: name.into(),
        flags: FLAGS_UP,
        link_state,
        if_type,
    }
}

/// The link changes among `updates`, as `(name, state)`: what most tests
/// check, without the indexes and aggregates around them.
pub fn links(updates: &[Update]) -> Vec<(String, LinkState)> {
    updates
        .iter()
        .filter_map(|update| match update {
            Update::Link(link) => Some((link.name.clone(), link.state)),
            _ => None,
        })
        .collect()
}

fn info_message(interface: &Interface) -> RouteMessage {
    RouteMessage::IfInfo {
        index: interface.index as u16,
        flags: interface.flags,
        link_state: interface.link_state,
        if_type: interface.if_type,
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn no_device() -> io::Error {
    errno(libc::ENXIO)
}
