//! One group's state and rules.

use std::time::Instant;

use crate::config::GroupConfig;

/// A port's link as the engine knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortLink {
    /// No snapshot yet.
    Unknown,
    Up,
    Down,
    /// The interface does not exist.
    Missing,
}

/// One configured port.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    pub link: PortLink,
    /// When `link` last changed.
    pub since: Instant,
}

/// One group.
#[derive(Clone, Debug)]
pub struct Group {
    pub config: GroupConfig,
    pub ports: Vec<Port>,
    pub active: Option<String>,
}
