//! Starting the process: the config is checked, the pidfile taken, the
//! terminal left and the runtime built before the loop runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, Driver};
use crate::hooks;
use crate::platform::{self, PlatformHandle};

use super::pidfile::Pidfile;
use super::signals::{handled_signals, stop_on_signal, Signals};
use super::{Daemon, LOG_TARGET};

/// Exit status for a configuration error (sysexits `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// Default pidfile; rc.d and the systemd unit use it too.
pub const DEFAULT_PIDFILE: &str = "/var/run/laggmond.pid";

/// How `laggmond run` was invoked.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Stay attached to the terminal and log to stderr.
    pub foreground: bool,
    /// Where the pid is written and locked; [`DEFAULT_PIDFILE`] when `None`.
    pub pidfile: Option<PathBuf>,
}

/// `laggmond run`: checks the config, takes the pidfile, detaches unless
/// in the foreground, then runs the loop until SIGTERM or SIGINT.
pub fn run(opts: RunOptions) -> ExitCode {
    // From the first instant: a service manager may signal as soon as the
    // pidfile names us, long before the handlers exist.
    if let Err(e) = handled_signals().thread_block() {
        eprintln!("laggmond: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let config = match load_config(&opts.config) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let pidfile_path = opts
        .pidfile
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PIDFILE));
    let pidfile = match Pidfile::lock(&pidfile_path) {
        Ok(pidfile) => pidfile,
        Err(message) => {
            eprintln!("laggmond: {message}");
            return ExitCode::FAILURE;
        }
    };
    if !opts.foreground {
        // Before any thread exists: fork(2) keeps only the calling thread.
        if let Err(e) = nix::unistd::daemon(false, false) {
            eprintln!("laggmond: cannot detach: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = pidfile.write_pid() {
        eprintln!("laggmond: {}: {e}", pidfile_path.display());
        return ExitCode::FAILURE;
    }
    let logger = match crate::log::init(opts.foreground) {
        Ok(logger) => logger,
        Err(message) => {
            eprintln!("laggmond: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, "cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let signals = Signals::install()?;
        // After detaching, whose fork would drop it; before the first hook.
        if let Err(e) = hooks::become_reaper() {
            tracing::warn!(target: LOG_TARGET, "cannot become the reaper of hook descendants: {e}");
        }
        let platform = start_platform()?;
        let shutdown = CancellationToken::new();
        let daemon = Daemon::start(Arc::new(config), platform, logger, shutdown.clone())?;
        tokio::spawn(stop_on_signal(signals.term, signals.int, shutdown));
        daemon.run(signals.hup).await
    });
    // A config read stuck in the kernel must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(pidfile);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(target: LOG_TARGET, "{message}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and checks a config for this platform, as one printable message.
pub(super) fn load_config(path: &Path) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    supported_here(&config)?;
    Ok(config)
}

/// Refuses drivers this build cannot drive, naming the group.
fn supported_here(config: &Config) -> Result<(), String> {
    for group in &config.groups {
        let missing = match group.driver {
            Driver::None => None,
            Driver::Lagg if !cfg!(target_os = "freebsd") => Some("lagg(4) exists only on FreeBSD"),
            Driver::Bond if !cfg!(target_os = "linux") => Some("bonding exists only on Linux"),
            Driver::Lagg | Driver::Bond => None,
        };
        let refused = |what: &str, why: &str| {
            format!(
                "{}: group {}: {what}: {why}",
                config.path.display(),
                group.name
            )
        };
        if let Some(why) = missing {
            return Err(refused(&format!("driver {}", group.driver.as_str()), why));
        }
        if group.probe.is_some() && !cfg!(any(target_os = "linux", target_os = "freebsd")) {
            return Err(refused(
                "probe",
                "path probes are not available on this system yet",
            ));
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn start_platform() -> Result<PlatformHandle, String> {
    platform::linux::spawn(platform::linux::Options::default())
        .map_err(|e| format!("cannot open the rtnetlink socket: {e}"))
}

#[cfg(target_os = "freebsd")]
fn start_platform() -> Result<PlatformHandle, String> {
    platform::freebsd::spawn(platform::freebsd::Options::default())
        .map_err(|e| format!("cannot open the routing socket: {e}"))
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn start_platform() -> Result<PlatformHandle, String> {
    Err("no platform support for this operating system".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/laggmond.yml")).expect("a valid config")
    }

    #[test]
    fn probes_are_refused_only_where_there_is_no_prober() {
        let probed = config(
            "groups:\n  uplinks:\n    driver: none\n    ports: [eth0, eth1]\n    \
             probe:\n      arp: [192.0.2.1]\n",
        );
        let result = supported_here(&probed);
        if cfg!(any(target_os = "linux", target_os = "freebsd")) {
            assert_eq!(result, Ok(()));
        } else {
            assert_eq!(
                result,
                Err("/etc/laggmond.yml: group uplinks: probe: \
                     path probes are not available on this system yet"
                    .to_owned())
            );
        }
        let unprobed = config("groups:\n  uplinks:\n    driver: none\n    ports: [eth0, eth1]\n");
        assert_eq!(supported_here(&unprobed), Ok(()));
    }
}
