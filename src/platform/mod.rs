//! The only code that talks to the kernel.
//!
//! Each OS module runs one task around its routing socket and gives the
//! daemon the same small interface, a [`PlatformHandle`]: a stream of
//! [`Update`]s (interfaces by name, already de-duplicated, renames turned
//! into a departure plus an arrival) and a channel of [`Request`]s. The
//! plain data lives in [`kernel`] so that the engine and tests can use it
//! without any I/O.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::mpsc;

#[cfg(target_os = "linux")]
pub mod linux;

pub mod fake;
pub mod freebsd;
pub mod kernel;

pub use kernel::{Aggregate, Answer, Link, LinkState, Update};

/// What the daemon asks of the platform.
#[derive(Debug)]
pub enum Request {
    /// Re-read everything and send a [`Update::Snapshot`] (periodic resync).
    Resync,
    /// Make `port` the active port of the aggregate `group`; answered with
    /// exactly one [`Update::Answer`] once the kernel answered, after the
    /// updates that show the outcome.
    SetActive { group: String, port: String },
    /// Set or clear `IFF_UP` on `port` of aggregate `group`: how a flapping
    /// lagg port is taken out of service (lagg uses only admin-up ports).
    /// Answered with exactly one [`Update::Answer`], like
    /// [`Request::SetActive`].
    SetAdminUp {
        group: String,
        port: String,
        up: bool,
    },
    /// Take `port` out of the lagg `group` (`SIOCSLAGGDELPORT`): how a port
    /// whose path is dead is kept from carrying traffic, since lagg uses
    /// any member with link. Answered with exactly one [`Update::Answer`],
    /// like [`Request::SetActive`].
    RemovePort { group: String, port: String },
    /// Put `port` back into the lagg `group` (`SIOCSLAGGPORT`) after a
    /// [`Request::RemovePort`]. Answered like [`Request::SetActive`].
    AddPort { group: String, port: String },
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

/// Requests the daemon may queue before it waits for the platform: few are
/// ever outstanding, since each waits for the kernel's answer.
pub const REQUEST_QUEUE: usize = 64;

/// Prefixes an I/O error with what was being done, so that a failed start
/// says which step failed.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub(crate) fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |error| io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// Whether a platform task's run loop goes on after handling a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Wait for the next wake-up.
    Continue,
    /// The daemon's end is gone or the socket is beyond repair: end the task.
    Stop,
}
