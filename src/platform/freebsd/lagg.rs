//! lagg state as `SIOCGLAGG` reports it, and the plan that restores the
//! configured primary.
//!
//! lagg emits no failover notification of its own: the daemon re-reads
//! this state after every routing message about the lagg or a member and
//! compares. A change of ACTIVE is a failover, a change of MASTER a primary
//! change.
//!
//! lagg has no way to choose its primary (`sc_primary`, shown as MASTER):
//! the first port ever added is the primary, and only its removal moves the
//! role, to the remaining port with the lowest interface index, which is
//! the first one in the port list. [`LaggState::plan_primary_restore`]
//! computes the removals and re-additions that make the configured primary
//! MASTER again; the caller performs them in one burst and verifies.

use core::fmt;
use core::mem::{offset_of, size_of};

use super::abi::{
    name_from_field, LaggReqAll, LaggReqPort, IFNAMSIZ, LAGG_MAX_PORTS, LAGG_PORT_ACTIVE,
    LAGG_PORT_MASTER, LAGG_PROTO_BROADCAST, LAGG_PROTO_FAILOVER, LAGG_PROTO_LACP,
    LAGG_PROTO_LOADBALANCE, LAGG_PROTO_NONE, LAGG_PROTO_ROUNDROBIN,
};

/// Bytes of the port buffer a `SIOCGLAGG` request should offer: room for
/// the most ports a lagg can have.
pub const LAGG_PORT_BUFFER_LEN: usize = LAGG_MAX_PORTS * size_of::<LaggReqPort>();

const PORT_ENTRY_LEN: usize = size_of::<LaggReqPort>();
const RP_PORTNAME: usize = offset_of!(LaggReqPort, rp_portname);
const RP_FLAGS: usize = offset_of!(LaggReqPort, rp_flags);

/// One lagg port as `SIOCGLAGG` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaggPort {
    /// The port's interface name (lossy if it is not UTF-8).
    pub name: String,
    /// The raw `LAGG_PORT_*` bits, for logging.
    pub flags: u32,
    /// The lagg's primary: traffic returns to it whenever its link is up.
    pub master: bool,
    /// The port lagg transmits on now.
    pub active: bool,
}

/// A lagg's protocol and ports, in the kernel's list order (interface
/// index order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaggState {
    /// `ra_proto`, one of the `LAGG_PROTO_*` values.
    pub protocol: u32,
    /// The ports, in the kernel's list order.
    pub ports: Vec<LaggPort>,
}

impl LaggState {
    /// Decodes a `SIOCGLAGG` reply: `reply` as the kernel returned it and
    /// the port buffer its `ra_port` pointed at. The reported port count
    /// is clamped to the entries the buffer can hold, so a short buffer
    /// or an inconsistent count never reads out of bounds.
    pub fn decode(reply: &LaggReqAll, port_buf: &[u8]) -> LaggState {
        let reported = usize::try_from(reply.ra_ports).unwrap_or(0);
        let count = reported.min(port_buf.len() / PORT_ENTRY_LEN);
        let ports = port_buf
            .chunks_exact(PORT_ENTRY_LEN)
            .take(count)
            .map(decode_port)
            .collect();
        LaggState {
            protocol: reply.ra_proto,
            ports,
        }
    }

    /// Whether this is a failover lagg, the only kind laggmond manages.
    pub fn is_failover(&self) -> bool {
        self.protocol == LAGG_PROTO_FAILOVER
    }

    /// The protocol as `ifconfig` names it, for reports about laggs that
    /// are left alone.
    pub fn protocol_name(&self) -> String {
        match self.protocol {
            LAGG_PROTO_NONE => "none".to_owned(),
            LAGG_PROTO_ROUNDROBIN => "roundrobin".to_owned(),
            LAGG_PROTO_FAILOVER => "failover".to_owned(),
            LAGG_PROTO_LOADBALANCE => "loadbalance".to_owned(),
            LAGG_PROTO_LACP => "lacp".to_owned(),
            LAGG_PROTO_BROADCAST => "broadcast".to_owned(),
            other => format!("unknown protocol {other}"),
        }
    }

    /// The port named `name`, if it is a member.
    pub fn port(&self, name: &str) -> Option<&LaggPort> {
        self.ports.iter().find(|port| port.name == name)
    }

    /// The primary (MASTER) port.
    pub fn master(&self) -> Option<&LaggPort> {
        self.ports.iter().find(|port| port.master)
    }

    /// The port carrying traffic (ACTIVE); `None` when no port is usable.
    pub fn active(&self) -> Option<&LaggPort> {
        self.ports.iter().find(|port| port.active)
    }

    /// The operations that make `priority[0]`, the configured primary T,
    /// lagg's MASTER; empty when it already is.
    ///
    /// Removed: the ports listed before T plus the current master P (only
    /// P's removal moves MASTER, to the first remaining port, which is T
    /// once the ports before it are gone). Non-primary ports go first and
    /// P last, so the lagg MAC changes, and every port is reprogrammed,
    /// exactly once. They are re-added in configured priority order (ports
    /// not in the configuration after them, in list order); lagg keeps T as
    /// MASTER since the list is not empty.
    ///
    /// Whether T is healthy enough, and whether enforcing is allowed now,
    /// is the caller's decision.
    pub fn plan_primary_restore(&self, priority: &[String]) -> Result<Vec<LaggOp>, PlanError> {
        if !self.is_failover() {
            return Err(PlanError::NotFailover(self.protocol_name()));
        }
        let target = priority.first().ok_or(PlanError::NoPriority)?;
        let target_at = self
            .ports
            .iter()
            .position(|port| &port.name == target)
            .ok_or_else(|| PlanError::NotMember(target.clone()))?;
        let master_at = self
            .ports
            .iter()
            .position(|port| port.master)
            .ok_or(PlanError::NoMaster)?;
        if master_at == target_at {
            return Ok(Vec::new());
        }

        let mut removed: Vec<&str> = self.ports[..target_at]
            .iter()
            .enumerate()
            .filter(|&(at, _)| at != master_at)
            .map(|(_, port)| port.name.as_str())
            .collect();
        removed.push(&self.ports[master_at].name);

        let mut re_added = removed.clone();
        // Stable: unconfigured ports keep their list order at the end.
        re_added.sort_by_key(|name| {
            priority
                .iter()
                .position(|configured| configured == name)
                .unwrap_or(usize::MAX)
        });

        let removals = removed.into_iter().map(|name| LaggOp::Remove(name.into()));
        let additions = re_added.into_iter().map(|name| LaggOp::Add(name.into()));
        Ok(removals.chain(additions).collect())
    }
}

/// Decodes one `lagg_reqport` entry of the port buffer.
fn decode_port(entry: &[u8]) -> LaggPort {
    let name = name_from_field(&entry[RP_PORTNAME..RP_PORTNAME + IFNAMSIZ]);
    let flags = u32::from_ne_bytes([
        entry[RP_FLAGS],
        entry[RP_FLAGS + 1],
        entry[RP_FLAGS + 2],
        entry[RP_FLAGS + 3],
    ]);
    LaggPort {
        name,
        flags,
        master: flags & LAGG_PORT_MASTER != 0,
        active: flags & LAGG_PORT_ACTIVE != 0,
    }
}

/// One step of a primary restore, on the lagg being enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaggOp {
    /// Remove the port from the lagg (`SIOCSLAGGDELPORT`).
    Remove(String),
    /// Add the port to the lagg (`SIOCSLAGGPORT`; `EEXIST` means it
    /// already is a member).
    Add(String),
}

impl LaggOp {
    /// The port the operation is about.
    pub fn port(&self) -> &str {
        match self {
            LaggOp::Remove(port) | LaggOp::Add(port) => port,
        }
    }
}

impl fmt::Display for LaggOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaggOp::Remove(port) => write!(f, "remove {port}"),
            LaggOp::Add(port) => write!(f, "add {port}"),
        }
    }
}

/// Why no primary restore can be planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Only failover laggs are managed; carries the protocol's name.
    NotFailover(String),
    /// The group lists no ports.
    NoPriority,
    /// The configured primary is not a port of the lagg.
    NotMember(String),
    /// No port is MASTER, so no removal is known to move the role.
    NoMaster,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NotFailover(protocol) => {
                write!(f, "lagg protocol is {protocol}, not failover")
            }
            PlanError::NoPriority => write!(f, "no ports configured"),
            PlanError::NotMember(port) => {
                write!(f, "configured primary {port} is not a port of the lagg")
            }
            PlanError::NoMaster => write!(f, "no port of the lagg is MASTER"),
        }
    }
}

impl std::error::Error for PlanError {}

#[cfg(all(test, target_pointer_width = "64", target_endian = "little"))]
mod tests {
    use super::*;
    use crate::platform::freebsd::abi::{LacpOpReq, LAGG_PORT_STACK};

    /// One `lagg_reqport` entry built from the documented layout: lagg
    /// name at 0, port name at 16, flags at 36, 72 bytes per entry.
    fn entry(port: &[u8], flags: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 72];
        bytes[..5].copy_from_slice(b"lagg0");
        bytes[16..16 + port.len()].copy_from_slice(port);
        bytes[36..40].copy_from_slice(&flags.to_le_bytes());
        bytes
    }

    fn port_buffer(entries: &[(&[u8], u32)]) -> Vec<u8> {
        let mut buf: Vec<u8> = entries
            .iter()
            .flat_map(|(name, flags)| entry(name, *flags))
            .collect();
        buf.resize(LAGG_PORT_BUFFER_LEN, 0);
        buf
    }

    fn reply(protocol: u32, ports: i32) -> LaggReqAll {
        LaggReqAll {
            ra_ifname: *b"lagg0\0\0\0\0\0\0\0\0\0\0\0",
            ra_proto: protocol,
            ra_size: 0,
            ra_port: core::ptr::null_mut(),
            ra_ports: ports,
            ra_psc: LacpOpReq::default(),
        }
    }

    fn port(name: &str, master: bool, active: bool) -> LaggPort {
        let mut flags = 0;
        if master {
            flags |= LAGG_PORT_MASTER;
        }
        if active {
            flags |= LAGG_PORT_ACTIVE;
        }
        LaggPort {
            name: name.into(),
            flags,
            master,
            active,
        }
    }

    fn failover(ports: Vec<LaggPort>) -> LaggState {
        LaggState {
            protocol: LAGG_PROTO_FAILOVER,
            ports,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn buffer_len_is_ifconfigs() {
        assert_eq!(LAGG_PORT_BUFFER_LEN, 2304);
    }

    #[test]
    fn decodes_ports_in_list_order_with_flags() {
        let buf = port_buffer(&[(b"em0", 0x5), (b"bge0", 0x0)]);
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, 2), &buf);
        assert!(state.is_failover());
        assert_eq!(state.protocol_name(), "failover");
        assert_eq!(
            state.ports,
            vec![port("em0", true, true), port("bge0", false, false)]
        );
        assert_eq!(state.master().map(|p| p.name.as_str()), Some("em0"));
        assert_eq!(state.active().map(|p| p.name.as_str()), Some("em0"));
        assert_eq!(state.port("bge0"), Some(&port("bge0", false, false)));
        assert_eq!(state.port("wlan0"), None);
    }

    #[test]
    fn decodes_failed_over_state() {
        // em0 is still MASTER but down: bge0 carries the traffic.
        let buf = port_buffer(&[(b"em0", LAGG_PORT_MASTER), (b"bge0", LAGG_PORT_ACTIVE)]);
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, 2), &buf);
        assert_eq!(state.master().map(|p| p.name.as_str()), Some("em0"));
        assert_eq!(state.active().map(|p| p.name.as_str()), Some("bge0"));
    }

    #[test]
    fn keeps_unknown_flag_bits() {
        let buf = port_buffer(&[(b"lagg1", LAGG_PORT_STACK | 0x40)]);
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, 1), &buf);
        assert_eq!(state.ports[0].flags, 0x42);
        assert!(!state.ports[0].master && !state.ports[0].active);
    }

    #[test]
    fn port_count_is_clamped_to_the_buffer() {
        let buf = port_buffer(&[(b"em0", 0x5), (b"bge0", 0)]);
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, 1000), &buf[..72 * 2 + 40]);
        assert_eq!(state.ports.len(), 2);
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, 1000), &buf);
        assert_eq!(state.ports.len(), LAGG_MAX_PORTS);
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, -3), &buf);
        assert!(state.ports.is_empty());
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, 2), &[]);
        assert!(state.ports.is_empty());
    }

    #[test]
    fn names_are_nul_terminated_within_ifnamsiz() {
        let buf = port_buffer(&[(b"abcdefghijklmnop", 0), (b"em\xff0", 0), (b"re0\0junk", 0)]);
        let state = LaggState::decode(&reply(LAGG_PROTO_FAILOVER, 3), &buf);
        let decoded: Vec<&str> = state.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(decoded, ["abcdefghijklmnop", "em\u{fffd}0", "re0"]);
    }

    #[test]
    fn other_protocols_are_named() {
        let state = LaggState::decode(&reply(LAGG_PROTO_LACP, 0), &[]);
        assert!(!state.is_failover());
        assert_eq!(state.protocol_name(), "lacp");
        assert_eq!(
            LaggState::decode(&reply(9, 0), &[]).protocol_name(),
            "unknown protocol 9"
        );
    }

    #[test]
    fn no_plan_when_the_primary_is_master() {
        let state = failover(vec![port("em0", true, true), port("bge0", false, false)]);
        assert_eq!(
            state.plan_primary_restore(&names(&["em0", "bge0"])),
            Ok(vec![])
        );
        // Failed over (bge0 ACTIVE) but em0 still MASTER: lagg returns by itself.
        let state = failover(vec![port("em0", true, false), port("bge0", false, true)]);
        assert_eq!(
            state.plan_primary_restore(&names(&["em0", "bge0"])),
            Ok(vec![])
        );
    }

    #[test]
    fn master_drifted_to_bge0_after_em0_reattached() {
        // em0 detached and came back with a higher interface index.
        let state = failover(vec![port("bge0", true, true), port("em0", false, false)]);
        assert_eq!(
            state.plan_primary_restore(&names(&["em0", "bge0"])),
            Ok(vec![
                LaggOp::Remove("bge0".into()),
                LaggOp::Add("bge0".into())
            ])
        );
    }

    #[test]
    fn master_listed_after_the_primary() {
        // Ports added in the wrong order: em0 has the lower index.
        let state = failover(vec![port("em0", false, false), port("bge0", true, true)]);
        assert_eq!(
            state.plan_primary_restore(&names(&["em0", "bge0"])),
            Ok(vec![
                LaggOp::Remove("bge0".into()),
                LaggOp::Add("bge0".into())
            ])
        );
    }

    #[test]
    fn three_ports_remove_others_first_and_master_last() {
        let state = failover(vec![
            port("wlan0", true, false),
            port("bge0", false, true),
            port("em0", false, false),
        ]);
        let plan = state.plan_primary_restore(&names(&["em0", "bge0", "wlan0"]));
        assert_eq!(
            plan,
            Ok(vec![
                LaggOp::Remove("bge0".into()),
                LaggOp::Remove("wlan0".into()),
                LaggOp::Add("bge0".into()),
                LaggOp::Add("wlan0".into()),
            ])
        );
    }

    #[test]
    fn re_adds_in_configured_order_then_unconfigured_ports() {
        let state = failover(vec![
            port("igb0", false, false),
            port("wlan0", false, false),
            port("bge0", true, true),
            port("em0", false, false),
        ]);
        let plan = state
            .plan_primary_restore(&names(&["em0", "bge0", "wlan0"]))
            .expect("plannable");
        let described: Vec<String> = plan.iter().map(LaggOp::to_string).collect();
        assert_eq!(
            described,
            [
                "remove igb0",
                "remove wlan0",
                "remove bge0",
                "add bge0",
                "add wlan0",
                "add igb0"
            ]
        );
        assert_eq!(plan[0].port(), "igb0");
    }

    #[test]
    fn ports_after_the_primary_are_left_alone() {
        let state = failover(vec![
            port("bge0", true, true),
            port("em0", false, false),
            port("wlan0", false, false),
        ]);
        let plan = state
            .plan_primary_restore(&names(&["em0", "wlan0", "bge0"]))
            .expect("plannable");
        assert!(plan.iter().all(|op| op.port() == "bge0"));
    }

    #[test]
    fn absent_primary_is_an_error() {
        let state = failover(vec![port("bge0", true, true)]);
        let error = state
            .plan_primary_restore(&names(&["em0", "bge0"]))
            .expect_err("em0 is not a member");
        assert_eq!(error, PlanError::NotMember("em0".into()));
        assert_eq!(
            error.to_string(),
            "configured primary em0 is not a port of the lagg"
        );
    }

    #[test]
    fn unplannable_states_are_errors() {
        let state = failover(vec![port("bge0", false, true), port("em0", false, false)]);
        assert_eq!(
            state.plan_primary_restore(&names(&["em0"])),
            Err(PlanError::NoMaster)
        );
        assert_eq!(state.plan_primary_restore(&[]), Err(PlanError::NoPriority));
        let lacp = LaggState {
            protocol: LAGG_PROTO_LACP,
            ports: vec![port("bge0", true, true), port("em0", false, false)],
        };
        let error = lacp
            .plan_primary_restore(&names(&["em0"]))
            .expect_err("not failover");
        assert_eq!(error.to_string(), "lagg protocol is lacp, not failover");
    }
}
