//! FreeBSD `lagg(4)`: the routing socket and the lagg ioctls.
//!
//! Interface events come from the routing socket
//! (`socket(PF_ROUTE, SOCK_RAW, 0)`), filtered in userland to `RTM_IFINFO`
//! and `RTM_IFANNOUNCE` ([`message`]). lagg reports no failover itself, so
//! its state (protocol, ports, MASTER and ACTIVE) is re-read with
//! `SIOCGLAGG` and compared ([`lagg`]); the configured primary is restored
//! by removing and re-adding ports ([`LaggState::plan_primary_restore`]).
//!
//! Everything in these modules is plain data and byte parsing: it compiles
//! on every OS so that the struct layouts ([`abi`]) and the parsers are
//! unit-tested anywhere. Only the system calls are FreeBSD-specific.

pub mod abi;
pub mod lagg;
pub mod message;

pub use lagg::{LaggOp, LaggPort, LaggState, PlanError, LAGG_PORT_BUFFER_LEN};
pub use message::{messages, parse, port_link_up, ParseError, RouteMessage, READ_BUFFER_LEN};

// The system calls: FreeBSD only.
#[cfg(target_os = "freebsd")]
pub mod sys;
