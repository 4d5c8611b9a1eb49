//! The only code that talks to the kernel.
//!
//! Each OS module runs one task around its routing socket and gives the
//! daemon the same small interface, a [`PlatformHandle`]: a stream of
//! [`Update`]s (interfaces by name, already de-duplicated, renames turned
//! into a departure plus an arrival) and a channel of [`Request`]s. The
//! types here are plain data so that the engine and tests can use them
//! without any I/O.

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
}

/// The daemon's end of a running platform task.
#[derive(Debug)]
pub struct PlatformHandle {
    /// Updates in the order the kernel reported them. Bounded: when the
    /// daemon falls behind, the platform stops reading, the kernel socket
    /// overflows and a full resync follows, so nothing is silently lost.
    pub updates: mpsc::Receiver<Update>,
    pub requests: mpsc::Sender<Request>,
}

/// Capacity of the update channel between a platform task and the daemon.
pub const UPDATE_QUEUE: usize = 1024;
