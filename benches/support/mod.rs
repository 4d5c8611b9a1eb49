//! What the benchmarks that run the real daemon share: a pair of network
//! namespaces, the daemon started inside one of them, clocks, quantiles.
//! Linux only: the benchmarks declare it under `cfg(target_os = "linux")`.

#![allow(dead_code)] // each benchmark uses its own part

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
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

/// The number in environment variable `name`, or `default` when unset:
/// how the operator scales a benchmark without rebuilding it.
pub fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(value) => value.parse().map_err(|e| format!("{name}={value}: {e}")),
        Err(_) => Ok(default),
    }
}

/// One control request on a fresh connection; the parsed reply. A fresh
/// connection each time, so that a benchmark's probes never queue behind
/// its own load.
pub fn request(socket: &Path, line: &str) -> Result<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("request: {e}"))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| format!("reply: {e}"))?;
    serde_json::from_str(&reply).map_err(|e| format!("reply {reply:?}: {e}"))
}

/// The daemon's pid, from its own `status`: the process in the namespace
/// is not the child the benchmark started (that is `ip netns exec`'s).
pub fn daemon_pid(socket: &Path) -> Result<u32> {
    let reply = request(socket, "{\"cmd\":\"status\"}\n")?;
    reply["status"]["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .ok_or_else(|| format!("status reply without a pid: {reply}"))
}

/// `/proc/PID/status` of process `pid`: the memory figures the
/// benchmarks report come from it.
pub fn proc_status(pid: u32) -> Result<String> {
    let path = format!("/proc/{pid}/status");
    std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

/// The value of `field` (with its colon, as `VmRSS:`) in a
/// `/proc/PID/status` text, trimmed; the unit stays, for the caller to
/// print or strip.
pub fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .map(str::trim)
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

    /// Port `name` with index `index` in the monitored namespace, its far
    /// end of the same name with index `index + 1` in the peer namespace,
    /// both up. The indexes differ so that the kernel reports carrier
    /// changes at once rather than batched up to a second later.
    pub fn add_port(&self, name: &str, index: u32) -> Result<()> {
        let (near, far) = (index.to_string(), (index + 1).to_string());
        sh(&[
            "ip",
            "link",
            "add",
            "name",
            name,
            "index",
            &near,
            "netns",
            &self.monitored,
            "type",
            "veth",
            "peer",
            "name",
            name,
            "index",
            &far,
            "netns",
            &self.peer,
        ])?;
        sh(&["ip", "-n", &self.monitored, "link", "set", name, "up"])?;
        sh(&["ip", "-n", &self.peer, "link", "set", name, "up"])
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
