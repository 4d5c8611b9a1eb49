//! The control socket: the server the daemon runs and the client the CLI uses.

pub mod protocol;
