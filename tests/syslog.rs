//! Events and diagnostics reach syslog with the right priority.
//!
//! `openlog`/`syslog` and the tracing subscriber are process-wide, so this
//! file holds a single test and runs as its own process. libc always sends to
//! `/dev/log`; the test stands in for the syslog daemon there, and only when
//! nothing exists at that path, so a real syslog is never touched.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use laggmond::config::{Facility, LogConfig};
use laggmond::event::{Cause, Event, Kind, Severity, Timestamp, What};

const DEV_LOG: &str = "/dev/log";

/// The stand-in syslog socket, removed again when the test ends.
struct FakeSyslog {
    socket: UnixDatagram,
}

impl FakeSyslog {
    /// Binds at `/dev/log`, or says why it cannot.
    fn bind() -> Result<FakeSyslog, String> {
        if Path::new(DEV_LOG).symlink_metadata().is_ok() {
            return Err(format!(
                "{DEV_LOG} exists (a real syslog?), not touching it"
            ));
        }
        let socket =
            UnixDatagram::bind(DEV_LOG).map_err(|err| format!("cannot bind {DEV_LOG}: {err}"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|err| format!("cannot set a read timeout: {err}"))?;
        Ok(FakeSyslog { socket })
    }

    /// The first datagram containing `needle`; others (from any other
    /// process logging meanwhile) are skipped.
    fn expect(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
                if datagram.contains(needle) {
                    return datagram;
                }
                seen.push(datagram);
            }
        }
        panic!("no datagram containing {needle:?}; got {seen:?}");
    }
}

impl Drop for FakeSyslog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(DEV_LOG);
    }
}

fn event(severity: Severity, port: &str) -> Event {
    Event {
        seq: 1,
        time: Timestamp(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        severity,
        what: What {
            from: Some(port.to_owned()),
            to: Some("bge0".into()),
            cause: Some(Cause::LinkDown),
            ..What::new("lagg0", Kind::Failover)
        },
    }
}

fn log_config(facility: Facility) -> LogConfig {
    LogConfig {
        syslog: false,
        facility,
        severities: HashMap::new(),
    }
}

#[test]
fn daemon_logs_events_and_diagnostics_to_syslog() {
    let syslog = match FakeSyslog::bind() {
        Ok(syslog) => syslog,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let pid = std::process::id();
    let ident = format!("laggmond[{pid}]: ");

    let mut logger = laggmond::log::init(false).expect("logging set up");
    // A daemon logs to syslog even when the config does not ask for it.
    logger.configure(&log_config(Facility::Daemon));

    let warning = event(Severity::Warning, &format!("em{pid}"));
    let line = warning.log_line();
    logger.event(&warning);
    let got = syslog.expect(&line);
    assert!(got.starts_with("<28>"), "daemon|warning is 28: {got:?}");
    assert!(got.contains(&format!("{ident}{line}")), "{got:?}");

    tracing::warn!("diagnostic warning {pid}");
    let got = syslog.expect(&format!("diagnostic warning {pid}"));
    assert!(got.starts_with("<28>"), "{got:?}");
    assert!(got.contains(&ident), "{got:?}");
    tracing::info!("diagnostic info {pid}");
    let got = syslog.expect(&format!("diagnostic info {pid}"));
    assert!(got.starts_with("<30>"), "daemon|info is 30: {got:?}");

    // A reload with another facility reopens syslog with it.
    logger.configure(&log_config(Facility::Local3));
    let crit = event(Severity::Crit, &format!("ix{pid}"));
    logger.event(&crit);
    let got = syslog.expect(&crit.log_line());
    assert!(got.starts_with("<154>"), "local3|crit is 154: {got:?}");
    tracing::warn!("after reload {pid}");
    let got = syslog.expect(&format!("after reload {pid}"));
    assert!(got.starts_with("<156>"), "local3|warning is 156: {got:?}");
}
