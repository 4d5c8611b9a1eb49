//! The control socket: the server the daemon runs and the client the CLI uses.
//!
//! [`server`] accepts connections and forwards each request to the daemon
//! loop as a [`server::ControlRequest`]; [`client`] is what `laggmond status`
//! and the other commands use to talk to it. Both speak [`protocol`].

pub mod client;
pub mod protocol;
pub mod server;
