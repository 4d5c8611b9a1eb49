//! The only code that talks to the kernel.
//!
//! Each OS module runs one task around its routing socket and gives the
//! daemon the same small interface, a [`PlatformHandle`]: a stream of
//! [`Update`]s (interfaces by name, already de-duplicated, renames turned
//! into a departure plus an arrival) and a channel of [`Request`]s. The
//! types here are plain data so that the engine and tests can use them
//! without any I/O.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

#[cfg(target_os = "linux")]
pub mod linux;

pub mod fake;
pub mod freebsd;

/// Whether a port can carry traffic, as its aggregate decides it: the
/// interface is administratively up and has carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Up,
    Down,
}

impl LinkState {
    /// `Up` when `up`, else `Down`.
    pub fn from_up(up: bool) -> LinkState {
        if up {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }
}

/// One network interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The kernel's interface index; stable while the interface exists.
    pub index: u32,
    pub name: String,
    pub state: LinkState,
    /// Index of the aggregate this interface is enslaved to, if any.
    pub master: Option<u32>,
}

/// The kernel's view of one aggregate interface (a lagg or a bond).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    pub index: u32,
    /// `lagg0`, `bond0`: the group's name in the config.
    pub name: String,
    /// The mode as the kernel's tools name it (`failover`, `lacp`,
    /// `active-backup`, `balance-rr`, ...).
    pub mode: String,
    /// Whether `mode` is the failover mode laggmond manages; an aggregate
    /// in any other mode is reported and left alone.
    pub failover: bool,
    /// Member ports in the kernel's order.
    pub members: Vec<String>,
    /// The port the kernel transmits on now; `None` when none can.
    pub active: Option<String>,
    /// The port the kernel prefers by itself: lagg's MASTER (the port
    /// added first), the bond's `primary` option when set.
    pub primary: Option<String>,
    /// Whether the kernel moves traffic back to `primary` by itself as
    /// soon as it has link: always for lagg; for a bond with a `primary`
    /// and `primary_reselect` `always` or `better`.
    pub kernel_preempts: bool,
}

/// What the platform tells the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// An interface appeared or changed (only sent when something the
    /// daemon cares about changed).
    Link(Link),
    /// An interface disappeared (or was renamed away from this name).
    Gone { index: u32, name: String },
    /// A full, consistent view of every interface: sent after start, after
    /// lost messages and on every periodic resync. Interfaces not listed do
    /// not exist.
    Snapshot(Vec<Link>),
    /// An aggregate appeared or changed (membership, active port, primary,
    /// mode). Sent after the [`Update::Link`]s of its members that came in
    /// the same kernel news, and after every snapshot for each aggregate.
    Aggregate(Aggregate),
    /// An aggregate interface disappeared.
    AggregateGone { index: u32, name: String },
}

/// What the daemon asks of the platform.
#[derive(Debug)]
pub enum Request {
    /// Re-read everything and send a [`Update::Snapshot`] (periodic resync).
    Resync,
    /// Make `port` the active port of the aggregate `group`; the result is
    /// sent back once the kernel answered.
    SetActive {
        group: String,
        port: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Set or clear `IFF_UP` on `port` of aggregate `group`: how a flapping
    /// lagg port is taken out of service (lagg uses only admin-up ports).
    SetAdminUp {
        group: String,
        port: String,
        up: bool,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The daemon's end of a running platform task.
#[derive(Debug)]
pub struct PlatformHandle {
    /// Updates in the order the kernel reported them. Bounded: when the
    /// daemon falls behind, the platform stops reading, the kernel socket
    /// overflows and a full resync follows, so nothing is silently lost.
    pub updates: mpsc::Receiver<Update>,
    pub requests: mpsc::Sender<Request>,
    /// Routing messages the platform refused to believe, since they did
    /// not come from the kernel: on Linux, datagrams from another sender
    /// than the kernel's port; on FreeBSD, link changes that the
    /// interface's own state contradicted. Any process allowed to write
    /// to the routing socket could otherwise fake a link change and move
    /// traffic; the count shows someone tries. Shared with the platform
    /// task, read for the metrics.
    pub foreign_messages: Arc<AtomicU64>,
}

/// Capacity of the update channel between a platform task and the daemon.
pub const UPDATE_QUEUE: usize = 1024;
