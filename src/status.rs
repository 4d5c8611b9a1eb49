//! The status report: what `laggmond status` shows and `--json` prints.
//! Fields may be added, never renamed: scripts parse this.

use serde::{Deserialize, Serialize};

use crate::event::{Cause, Timestamp};

/// The whole daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub groups: Vec<GroupStatus>,
}

/// One group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub driver: String,
    /// The port carrying traffic now; `null` when none can.
    pub active: Option<String>,
    /// The configured primary (first port).
    pub primary: String,
    /// The primary is active and every port is up and trusted.
    pub healthy: bool,
    /// `ok` (healthy), `degraded` (traffic flows, redundancy or priority
    /// lost) or `down` (no port carries traffic).
    pub state: String,
    /// The operator's `set-active` choice, while it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub ports: Vec<PortStatus>,
    pub last_failover: Option<FailoverStatus>,
}

/// One port of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    pub name: String,
    /// `up`, `down`, `missing` or `unknown` (before the first snapshot).
    pub link: String,
    /// `active`, `backup` (usable, standing by), `down`, `damped` or `missing`.
    pub role: String,
    /// When the link last changed (or laggmond first saw it).
    pub since: Option<Timestamp>,
    /// Link changes inside the current damping window.
    pub flaps: u32,
    pub damped: bool,
    /// When a damped port is trusted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damped_until: Option<Timestamp>,
}

/// The group's most recent failover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverStatus {
    pub at: Timestamp,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cause: Option<Cause>,
    pub outage_ms: Option<u64>,
}
