//! The failover engine: a plain state machine with no I/O and no clock.
//!
//! Inputs (link updates, snapshots, timer ticks, operator commands, a new
//! config) go in with `now`; events, actions and the next deadline come
//! out. Every policy lives here: priority order, the hold-down before
//! preempting, flap damping, what counts as a failover and how long its
//! outage was. The daemon drives it; tests drive it with synthetic time.
//!
//! # Policy
//!
//! A port is *usable* when it exists, its link is up and it is not damped.
//! The engine's *choice* for a group is:
//! 1. the operator's `set-active` port while it stays usable (an operator
//!    choice is dropped as soon as that port stops being usable);
//! 2. else the current active port if it is usable and no better port
//!    may preempt it; a better (earlier in `ports`) usable port preempts
//!    only with `preempt: true` once it has been usable for
//!    `preempt_delay` without interruption (the clock restarts on every
//!    link change and at the end of its damping);
//! 3. else the first usable port in priority order, at once;
//! 4. else none: `all_ports_down` (once), and `group_recovered` with the
//!    outage when the first port is usable again.
//!
//! A port changing link more than `max_flaps` times within `window` is
//! damped for `hold`, doubled on each repeat up to 8x; the multiplier goes
//! back to 1x after a quiet `hold` with no damping. A configured port the
//! kernel does not have is `port_missing` and never chosen; when it
//! appears, `port_found`.
//!
//! With `driver: none` the engine's choice *is* the active port. With a
//! kernel aggregate the kernel's active port is observed, and when
//! `enforce` is set and it differs from the choice, the engine asks for it
//! with [`Action::SetActive`].

mod group;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::event::What;
use crate::platform::Update;

pub use group::{Group, Port, PortLink};

/// Something the engine is told.
#[derive(Debug)]
pub enum Input {
    /// Kernel news from the platform.
    Platform(Update),
    /// The deadline from [`Engine::next_deadline`] has passed (extra ticks
    /// are harmless).
    Tick,
    /// The kernel answered an [`Action::SetActive`].
    ActionDone {
        group: String,
        port: String,
        result: Result<(), String>,
    },
}

/// An operator's request. Refused with a reason when it cannot be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Move traffic of `group` to `port` and keep it there until the port
    /// fails; `None` clears a previous choice.
    SetActive { group: String, port: Option<String> },
    /// Trust a damped port again at once; `None` means every port (of every
    /// group when `group` is `None` too).
    ClearDamping {
        group: Option<String>,
        port: Option<String>,
    },
}

/// Something the daemon must do for the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make the kernel aggregate `group` transmit on `port`.
    SetActive { group: String, port: String },
}

/// What one input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub events: Vec<What>,
    pub actions: Vec<Action>,
}

/// The state of every group, and the rules that move it.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    groups: Vec<Group>,
}
