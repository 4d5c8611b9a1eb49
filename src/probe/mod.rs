//! Path probes: ARP requests sent out of each port to targets beyond the
//! switch, so that a port whose link is up but whose path is dead (a hung
//! switch port, a wrong VLAN, a dead uplink) is not trusted.
//!
//! What the engine is told is plain data, here; how frames are built,
//! filtered and judged lives in the submodules, apart from any I/O and
//! clocks, so that all of it is tested anywhere:
//!
//! - [`arp`]: the request sent out of a port and the parser of replies;
//! - [`filter`]: the classic BPF program the socket runs, so that only
//!   candidate replies wake the daemon;
//! - [`path`]: the per-port state machine that turns requests sent and
//!   replies received into verdicts;
//! - [`bpf`]: the walk of a FreeBSD BPF read buffer, one frame at a time;
//! - [`ignored`]: why a received frame did not count, one name each.

pub mod arp;
pub mod bpf;
pub mod filter;
pub mod ignored;
#[cfg(target_os = "linux")]
mod packet;
pub mod path;
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub mod task;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::named;
use ignored::Ignored;

/// A port's path changed, as its probes judged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathReport {
    /// The group whose probe settings judged it.
    pub group: String,
    /// The port probed.
    pub port: String,
    /// The judgement.
    pub verdict: PathVerdict,
}

/// What a port's probes say about the path beyond it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathVerdict {
    /// Answers came (from enough targets, per `require`) in the latest
    /// interval; `rtt` is the round trip of the first valid answer.
    Up { rtt: Duration },
    /// `missed` intervals in a row went without enough answers; `targets`
    /// are the ones that did not answer.
    Down { missed: u32, targets: Vec<Ipv4Addr> },
}

/// What a port sends its probes from: its own hardware address, which
/// may not be the one it has now (a bond or lagg gives its members its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAddress {
    /// The sender's hardware address in every request, and the target
    /// hardware address of every reply.
    pub sender: [u8; 6],
    /// Whether `sender` is not the port's current address: a NIC filters
    /// unicast frames by its current address, so the socket must ask for
    /// `sender` to be let in too, or the replies never reach it.
    pub foreign: bool,
}

/// Counters of the probes, shared by the prober and the metrics.
#[derive(Debug, Default)]
pub struct ProbeCounters {
    /// ARP requests sent.
    pub sent: AtomicU64,
    /// Replies that counted for a port's path.
    pub replies: AtomicU64,
    /// Frames that reached a probe socket and did not count, by reason
    /// (indexed like [`Ignored::ALL`]).
    pub ignored: [AtomicU64; Ignored::ALL.len()],
}

impl ProbeCounters {
    /// Counts one frame ignored for `reason`.
    pub fn ignore(&self, reason: Ignored) {
        if let Some(index) = Ignored::ALL.iter().position(|known| *known == reason) {
            self.ignored[index].fetch_add(1, Ordering::Relaxed);
        }
    }
}

named! {
    /// What the engine holds of a port's path, as status shows it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum PathState {
        /// The group has no `probe`: carrier alone decides.
        Off => "off",
        /// No verdict since the link came up (or since the start); counts
        /// as working, so that a group without answers yet keeps traffic.
        Unknown => "unknown",
        /// The latest verdict: enough targets answer.
        Up => "up",
        /// The latest verdict: the path is dead though the link is up.
        Down => "down",
    }
}
