//! laggmond watches failover link aggregates (FreeBSD `lagg(4)`, Linux
//! bonding in active-backup, or plain ports it arbitrates itself), logs
//! every failover with its cause and outage, enforces the configured port
//! priority and answers on a Unix socket.
//!
//! The pieces, one module per concern: [`config`] (the YAML file),
//! [`engine`] (the pure failover state machine), [`platform`] (the kernel),
//! [`daemon`] (the event loop that owns the engine), [`control`] (the Unix
//! socket and its client), [`event`], [`status`], [`metrics`], [`hooks`]
//! and [`log`] (the outputs), and [`names`] (the one spelling of every
//! name they share).

pub mod config;
pub mod control;
pub mod daemon;
pub mod engine;
pub mod event;
pub mod history;
pub mod hooks;
pub mod log;
pub mod metrics;
pub mod names;
pub mod platform;
pub mod probe;
pub mod status;
