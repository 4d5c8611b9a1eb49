//! Logging: every event as one line, and the daemon's own diagnostics.
//!
//! Events carry one of syslog's eight severities, which `tracing`'s five
//! levels cannot express, so they bypass `tracing`: [`Logger::event`] writes
//! them to stderr in the foreground and through `syslog(3)` (libc's
//! `openlog`/`syslog`, which find the right socket on Linux and FreeBSD)
//! when syslog is on. Diagnostics that are not events go through `tracing`,
//! to the same places: stderr in the foreground, syslog when it is on, with
//! their level mapped to a severity. Syslog is on as a daemon, and in the
//! foreground when the config says `log.syslog: true`.
//!
//! `openlog` state is process-wide, so the syslog side is one global here,
//! shared by the event path and the `tracing` layer.

use std::ffi::{c_int, CString};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Facility, LogConfig};
use crate::event::{Event, Severity};

/// The environment variable holding the `tracing` filter
/// (`info`, `debug`, `warn,laggmond::hooks=debug`, ...).
pub const FILTER_ENV: &str = "LAGGMOND_LOG";

/// Where events go, and the owner of the process's syslog connection.
pub struct Logger {
    foreground: bool,
    /// Where foreground event lines go; `None` as a daemon.
    stderr: Option<Mutex<Box<dyn Write + Send>>>,
    /// The facility syslog is open with, `None` while it is off.
    syslog: Option<Facility>,
}

/// `text` with its control characters escaped (`\n`, `\r`, `\u{1b}`):
/// text from outside (a file, a hook's output) must stay on its one log
/// line and must not drive the reader's terminal.
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Sets up logging for the process: installs the `tracing` subscriber and,
/// as a daemon, opens syslog with the `daemon` facility until
/// [`Logger::configure`] says otherwise. Call it once, at start.
pub fn init(foreground: bool) -> Result<Logger, String> {
    let filter = filter_from_env()?;
    let stderr_layer = foreground.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(io::stderr)
            .with_ansi(io::stderr().is_terminal())
    });
    // syslog stamps time and priority itself.
    let syslog_layer = tracing_subscriber::fmt::layer()
        .with_writer(SyslogMakeWriter)
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false);
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(syslog_layer)
        .with(filter)
        .try_init()
        .map_err(|err| format!("cannot set up logging: {err}"))?;
    let stderr: Box<dyn Write + Send> = Box::new(io::stderr());
    let mut logger = Logger::new(foreground, foreground.then_some(stderr));
    logger.set_syslog((!foreground).then_some(Facility::Daemon));
    Ok(logger)
}

/// The filter from [`FILTER_ENV`], `info` when it is unset or empty.
fn filter_from_env() -> Result<Targets, String> {
    match std::env::var(FILTER_ENV) {
        Ok(spec) if !spec.trim().is_empty() => spec
            .parse()
            .map_err(|err| format!("{FILTER_ENV}={spec:?} is not a valid filter: {err}")),
        _ => Ok(Targets::new().with_default(Level::INFO)),
    }
}

impl Logger {
    /// A logger for a daemon run inside another program (a test): event
    /// lines go to `out`, syslog only when the config asks for it, and no
    /// global `tracing` subscriber is installed.
    pub fn embedded(out: Box<dyn Write + Send>) -> Logger {
        Logger::new(true, Some(out))
    }

    fn new(foreground: bool, stderr: Option<Box<dyn Write + Send>>) -> Logger {
        Logger {
            foreground,
            stderr: stderr.map(Mutex::new),
            syslog: None,
        }
    }

    /// Applies the `log` section of the config, at start and on reload:
    /// syslog on or off and its facility. A daemon always logs to syslog.
    pub fn configure(&mut self, log: &LogConfig) {
        let wanted = (!self.foreground || log.syslog).then_some(log.facility);
        self.set_syslog(wanted);
    }

    /// Writes one event as one line to every output that is on.
    pub fn event(&self, event: &Event) {
        if let Some(stderr) = &self.stderr {
            let mut line = stderr_line(event);
            // One write for the line and its end: stderr is unbuffered,
            // and `writeln!` would make it two system calls.
            line.push('\n');
            let mut out = match stderr.lock() {
                Ok(out) => out,
                Err(poisoned) => poisoned.into_inner(),
            };
            // Nowhere left to report a failing stderr.
            let _ = out.write_all(line.as_bytes());
        }
        if self.syslog.is_some() {
            syslog::send(severity_code(event.severity), &event.log_line());
        }
    }

    fn set_syslog(&mut self, wanted: Option<Facility>) {
        if wanted == self.syslog {
            return;
        }
        match wanted {
            Some(facility) => syslog::open(facility_code(facility)),
            None => syslog::close(),
        }
        self.syslog = wanted;
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if self.syslog.is_some() {
            syslog::close();
        }
    }
}

/// An event's foreground line: time, severity, then the log line.
fn stderr_line(event: &Event) -> String {
    format!("{} {} {}", event.time, event.severity, event.log_line())
}

/// The syslog(3) facility code.
fn facility_code(facility: Facility) -> c_int {
    match facility {
        Facility::Daemon => libc::LOG_DAEMON,
        Facility::User => libc::LOG_USER,
        Facility::Local0 => libc::LOG_LOCAL0,
        Facility::Local1 => libc::LOG_LOCAL1,
        Facility::Local2 => libc::LOG_LOCAL2,
        Facility::Local3 => libc::LOG_LOCAL3,
        Facility::Local4 => libc::LOG_LOCAL4,
        Facility::Local5 => libc::LOG_LOCAL5,
        Facility::Local6 => libc::LOG_LOCAL6,
        Facility::Local7 => libc::LOG_LOCAL7,
    }
}

/// The syslog(3) severity code.
fn severity_code(severity: Severity) -> c_int {
    match severity {
        Severity::Emerg => libc::LOG_EMERG,
        Severity::Alert => libc::LOG_ALERT,
        Severity::Crit => libc::LOG_CRIT,
        Severity::Err => libc::LOG_ERR,
        Severity::Warning => libc::LOG_WARNING,
        Severity::Notice => libc::LOG_NOTICE,
        Severity::Info => libc::LOG_INFO,
        Severity::Debug => libc::LOG_DEBUG,
    }
}

/// The severity a `tracing` diagnostic is sent to syslog with.
fn level_code(level: Level) -> c_int {
    match level {
        Level::ERROR => libc::LOG_ERR,
        Level::WARN => libc::LOG_WARNING,
        Level::INFO => libc::LOG_INFO,
        Level::DEBUG | Level::TRACE => libc::LOG_DEBUG,
    }
}

/// The process's syslog connection.
mod syslog {
    use super::*;

    /// Marks syslog as closed in [`FACILITY`].
    const CLOSED: c_int = -1;

    /// The open facility, or [`CLOSED`]. Senders read it so that `tracing`
    /// output stops and starts with the logger's own.
    static FACILITY: AtomicI32 = AtomicI32::new(CLOSED);

    /// (Re)opens syslog with `facility`.
    pub(super) fn open(facility: c_int) {
        // SAFETY: the ident is a static C string, which `openlog` may keep
        // a pointer to; libc serialises these calls internally.
        unsafe {
            libc::closelog();
            libc::openlog(c"laggmond".as_ptr(), libc::LOG_PID, facility);
        }
        FACILITY.store(facility, Ordering::Release);
    }

    pub(super) fn close() {
        FACILITY.store(CLOSED, Ordering::Release);
        // SAFETY: closing is valid in any state.
        unsafe { libc::closelog() };
    }

    pub(super) fn is_open() -> bool {
        FACILITY.load(Ordering::Acquire) != CLOSED
    }

    /// Sends one message with `severity` and the open facility; nothing when
    /// syslog is closed. NUL bytes, which C strings cannot hold, are dropped.
    pub(super) fn send(severity: c_int, message: &str) {
        let facility = FACILITY.load(Ordering::Acquire);
        if facility == CLOSED {
            return;
        }
        let Ok(message) = CString::new(message.replace('\0', "")) else {
            return;
        };
        // SAFETY: a constant "%s" format with one C string argument.
        unsafe { libc::syslog(facility | severity, c"%s".as_ptr(), message.as_ptr()) };
    }
}

/// Hands `tracing`'s formatted diagnostics to syslog while it is open.
struct SyslogMakeWriter;

impl<'a> MakeWriter<'a> for SyslogMakeWriter {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine::new(Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        SyslogLine::new(*meta.level())
    }
}

/// One diagnostic, collected and sent as one syslog message when dropped.
struct SyslogLine {
    severity: c_int,
    /// `None` while syslog is closed: the text is not even collected.
    text: Option<Vec<u8>>,
}

impl SyslogLine {
    fn new(level: Level) -> SyslogLine {
        SyslogLine {
            severity: level_code(level),
            text: syslog::is_open().then(Vec::new),
        }
    }
}

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(text) = &mut self.text {
            text.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        if let Some(text) = self.text.take() {
            let text = String::from_utf8_lossy(&text);
            let message = text.trim_end();
            if !message.is_empty() {
                syslog::send(self.severity, message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cause, Kind, Timestamp, What};
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    /// Keeps every write made to it, one entry each.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Writes {
        /// All that was written, as text.
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
        }
    }

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn failover() -> Event {
        Event {
            seq: 7,
            time: Timestamp(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            severity: Severity::Warning,
            what: What {
                from: Some("em0".into()),
                to: Some("bge0".into()),
                cause: Some(Cause::LinkDown),
                outage_ms: Some(12),
                ..What::new("lagg0", Kind::Failover)
            },
        }
    }

    fn log_config(syslog: bool) -> LogConfig {
        LogConfig {
            syslog,
            facility: Facility::Local3,
            severities: HashMap::new(),
        }
    }

    #[test]
    fn foreground_events_are_one_stamped_line_on_stderr() {
        let out = Writes::default();
        let logger = Logger::new(true, Some(Box::new(out.clone())));
        logger.event(&failover());
        logger.event(&Event {
            severity: Severity::Crit,
            ..failover()
        });
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "2023-11-14T22:13:20.123Z warning lagg0: failover em0 -> bge0 (em0 link down), \
                 outage 12 ms group=lagg0 event=failover from=em0 to=bge0 cause=link_down \
                 outage_ms=12",
                "2023-11-14T22:13:20.123Z crit lagg0: failover em0 -> bge0 (em0 link down), \
                 outage 12 ms group=lagg0 event=failover from=em0 to=bge0 cause=link_down \
                 outage_ms=12",
            ]
        );
        assert!(text.ends_with('\n'));
    }

    /// stderr is unbuffered: each write is a system call, so a line and
    /// its end go out together.
    #[test]
    fn each_event_line_is_one_write() {
        let out = Writes::default();
        let logger = Logger::new(true, Some(Box::new(out.clone())));
        logger.event(&failover());
        logger.event(&failover());
        let writes = out.0.lock().unwrap().clone();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(writes.iter().all(|write| write.ends_with(b"\n")));
    }

    #[test]
    fn foreground_keeps_syslog_off_unless_configured() {
        let mut logger = Logger::new(true, Some(Box::new(Writes::default())));
        logger.configure(&log_config(false));
        assert_eq!(logger.syslog, None);
    }

    #[test]
    fn priorities_combine_facility_and_severity() {
        let daemon_warning = facility_code(Facility::Daemon) | severity_code(Severity::Warning);
        assert_eq!(daemon_warning, (3 << 3) | 4);
        let local7_emerg = facility_code(Facility::Local7) | severity_code(Severity::Emerg);
        assert_eq!(local7_emerg, 23 << 3);
        assert_eq!(severity_code(Severity::Debug), 7);
        assert_eq!(level_code(Level::ERROR), severity_code(Severity::Err));
        assert_eq!(level_code(Level::TRACE), severity_code(Severity::Debug));
    }
}
