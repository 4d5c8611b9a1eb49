//! FreeBSD `lagg(4)`: the routing socket and the lagg ioctls.
//!
//! Interface events come from the routing socket
//! (`socket(PF_ROUTE, SOCK_RAW, 0)`), filtered in userland to `RTM_IFINFO`
//! and `RTM_IFANNOUNCE` ([`message`]). lagg reports no failover itself, so
//! its state (protocol, ports, MASTER and ACTIVE) is re-read with
//! `SIOCGLAGG` and compared ([`lagg`], [`table`]); the configured primary
//! is restored by removing and re-adding ports
//! ([`LaggState::plan_primary_restore`], [`enforce`]).
//!
//! Everything in these modules is plain data, byte parsing and logic over
//! the [`LaggKernel`] trait: it compiles on every OS so that the struct
//! layouts ([`abi`]), the parsers, the state machine and the whole
//! platform task ([`spawn_with`] over the simulated kernel of [`fake`])
//! are tested anywhere. Only the system calls (`sys` and `spawn`) are
//! FreeBSD-specific.

pub mod abi;
pub mod enforce;
pub mod fake;
pub mod kernel;
pub mod lagg;
pub mod message;
pub mod table;
mod task;

pub use kernel::{Interface, LaggKernel};
pub use lagg::{LaggOp, LaggPort, LaggState, PlanError, LAGG_PORT_BUFFER_LEN};
pub use message::{messages, parse, port_link_up, ParseError, RouteMessage, READ_BUFFER_LEN};
pub use table::{Claim, LaggTable, SettleTime, Work};
#[cfg(target_os = "freebsd")]
pub use task::spawn;
pub use task::{spawn_with, Options};

// The system calls: FreeBSD only.
#[cfg(target_os = "freebsd")]
pub mod sys;
