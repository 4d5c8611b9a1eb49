//! What the benchmarks that run the real daemon share: a pair of network
//! namespaces, the daemon started inside one of them, clocks, quantiles.
//! Linux only: the benchmarks declare it under `cfg(target_os = "linux")`.

#![allow(dead_code)] // each benchmark uses its own part

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Errors are sentences for the operator running the benchmark.
pub type Result<T> = std::result::Result<T, String>;

/// Wall time in nanoseconds, the clock every observer is compared on.
pub fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Runs a command; fails with its words when it fails.
pub fn sh(argv: &[&str]) -> Result<()> {
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed: {status}", argv.join(" ")))
    }
}

/// A mutex that a panicking reader thread must not make unusable.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A child process killed and reaped on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon's namespace and the peer namespace holding the far ends of
/// its ports; both deleted on drop.
pub struct Namespaces {
    pub monitored: String,
    pub peer: String,
}

impl Namespaces {
    /// Two fresh namespaces named after `prefix` and this process.
    pub fn new(prefix: &str) -> Result<Namespaces> {
        let pid = std::process::id();
        let namespaces = Namespaces {
            monitored: format!("{prefix}{pid}"),
            peer: format!("{prefix}p{pid}"),
        };
        sh(&["ip", "netns", "add", &namespaces.monitored])?;
        sh(&["ip", "netns", "add", &namespaces.peer])?;
        Ok(namespaces)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.monitored]);
        let _ = sh(&["ip", "netns", "del", &self.peer]);
    }
}

/// Runs the laggmond this benchmark was built with, `run -f -c config`,
/// inside `netns`, stderr to `log`, and waits until its socket exists.
pub fn start_daemon(
    netns: &str,
    config: &Path,
    socket: &Path,
    log: &Path,
    filter: Option<&str>,
) -> Result<Guard> {
    let log = std::fs::File::create(log).map_err(|e| format!("log: {e}"))?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_laggmond")])
        .args(["run", "-f", "-c"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(filter) = filter {
        command.env("LAGGMOND_LOG", filter);
    }
    let guard = Guard(command.spawn().map_err(|e| format!("laggmond: {e}"))?);
    let start = Instant::now();
    while !socket.exists() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("laggmond did not open its socket within 10 s".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(guard)
}
