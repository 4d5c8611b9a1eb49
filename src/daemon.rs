//! The daemon: the event loop that owns the engine.
//!
//! Placeholder until the loop lands: it keeps the CLI's `run` command
//! compiling and refuses to start.

use std::path::PathBuf;
use std::process::ExitCode;

/// What `laggmond run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// Stay attached to the terminal and log to stderr.
    pub foreground: bool,
    /// Where to write the pid, if anywhere.
    pub pidfile: Option<PathBuf>,
}

/// Runs the daemon until it is told to stop; the exit status says how it ended.
pub fn run(opts: RunOptions) -> ExitCode {
    let _ = opts;
    eprintln!("laggmond: the daemon is not built yet");
    ExitCode::FAILURE
}
