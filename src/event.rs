//! The one event type. The engine says what happened ([`What`]); the daemon
//! stamps it with a sequence number, the wall time and the configured
//! severity ([`Event`]) and hands the same value to every sink: the log,
//! the history, stream subscribers, metrics and hooks.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::names::named;

named! {
    /// What kind of thing happened. The names are the ones used in the config
    /// (`hooks.on`, `log.severities`), in JSON and in hook environments.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Kind {
        /// A port lost link.
        PortDown => "port_down",
        /// A port regained link.
        PortUp => "port_up",
        /// The active port changed.
        Failover => "failover",
        /// No port of the group can carry traffic.
        AllPortsDown => "all_ports_down",
        /// The first port came back after `all_ports_down`.
        GroupRecovered => "group_recovered",
        /// The configured primary carries traffic again after enforcement.
        PrimaryRestored => "primary_restored",
        /// laggmond could not make the kernel use the port it should.
        EnforceFailed => "enforce_failed",
        /// A disruptive change to the kernel aggregate is about to be made.
        Enforcing => "enforcing",
        /// A port changed link too often and is not trusted for a while.
        Flapping => "flapping",
        /// A damped port is trusted again.
        FlapCleared => "flap_cleared",
        /// A port's probes went unanswered: its link is up but its path is
        /// dead, so it is not trusted.
        PathDown => "path_down",
        /// A port whose path was dead answers its probes again.
        PathUp => "path_up",
        /// No port has a working path; traffic stays on a port with link.
        AllPathsDown => "all_paths_down",
        /// A port has a working path again after `all_paths_down`.
        PathsRecovered => "paths_recovered",
        /// A configured port does not exist.
        PortMissing => "port_missing",
        /// A port that was missing exists now.
        PortFound => "port_found",
        /// The aggregate has a member that is not configured.
        PortUnexpected => "port_unexpected",
        /// The aggregate is not in failover mode; laggmond leaves it alone.
        UnsupportedMode => "unsupported_mode",
        /// A new config is in force.
        ConfigReloaded => "config_reloaded",
        /// A new config was refused; the old one stays.
        ConfigRejected => "config_rejected",
    }
}

impl Kind {
    /// The syslog severity used unless the config says otherwise.
    pub fn default_severity(self) -> Severity {
        match self {
            Kind::AllPortsDown | Kind::AllPathsDown => Severity::Crit,
            Kind::Failover
            | Kind::PathDown
            | Kind::Flapping
            | Kind::EnforceFailed
            | Kind::ConfigRejected
            | Kind::UnsupportedMode => Severity::Warning,
            Kind::PrimaryRestored
            | Kind::GroupRecovered
            | Kind::PathsRecovered
            | Kind::Enforcing => Severity::Notice,
            _ => Severity::Info,
        }
    }
}

named! {
    /// syslog severities, most severe first (the numeric order of syslog(3)).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Severity {
        Emerg => "emerg",
        Alert => "alert",
        Crit => "crit",
        Err => "err",
        Warning => "warning",
        Notice => "notice",
        Info => "info",
        Debug => "debug",
    }
}

named! {
    /// Why the active port changed.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Cause {
        /// The active port lost link.
        LinkDown => "link_down",
        /// A port came up and took over by itself (the kernel's own
        /// preemption, or the first port back after all were down).
        LinkUp => "link_up",
        /// laggmond moved traffic back to a better port after its hold-down.
        Preempt => "preempt",
        /// The active port was flapping and is damped.
        Damped => "damped",
        /// The active port disappeared.
        Removed => "removed",
        /// An operator asked for it (`set-active`).
        Operator => "operator",
        /// Someone other than laggmond changed the kernel's choice.
        External => "external",
        /// The active port has link but its path is dead (probes
        /// unanswered).
        PathDown => "path_down",
    }
}

/// What happened, as the engine reports it: no clock, no sequence number.
/// Fields that do not apply to a kind are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct What {
    /// The group, absent for daemon-wide events (config reloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// How long no port carried traffic, when that happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_ms: Option<u64>,
    /// Link transitions counted inside the damping window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaps: Option<u32>,
    /// How long a damped port is held out of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_ms: Option<u64>,
    /// The error, for `enforce_failed` and `config_rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The aggregate's mode, for `unsupported_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The probe targets that did not answer, for `path_down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// Probe intervals in a row without enough answers, for `path_down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u32>,
    /// The round trip of the answer that showed the path working, in
    /// whole milliseconds, for `path_up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u64>,
}

impl What {
    /// An event of `kind` about `group`, all other fields empty.
    pub fn new(group: &str, kind: Kind) -> What {
        What {
            group: Some(group.to_owned()),
            ..What::global(kind)
        }
    }

    /// An event of `kind` about `port` of `group`.
    pub fn port(group: &str, kind: Kind, port: &str) -> What {
        What {
            port: Some(port.to_owned()),
            ..What::new(group, kind)
        }
    }

    /// A daemon-wide event.
    pub fn global(kind: Kind) -> What {
        What {
            group: None,
            kind,
            port: None,
            from: None,
            to: None,
            cause: None,
            outage_ms: None,
            flaps: None,
            hold_ms: None,
            error: None,
            mode: None,
            targets: None,
            missed: None,
            rtt_ms: None,
        }
    }

    /// The human sentence that opens the log line.
    pub fn sentence(&self) -> String {
        let group = self.group.as_deref().unwrap_or("laggmond");
        let port = self.port.as_deref().unwrap_or("?");
        let from = self.from.as_deref().unwrap_or("none");
        let to = self.to.as_deref().unwrap_or("none");
        let mut s = match self.kind {
            Kind::PortDown => format!("{group}: {port} link down"),
            Kind::PortUp => format!("{group}: {port} link up"),
            Kind::Failover => {
                let why = match self.cause {
                    Some(Cause::LinkDown) => format!("{from} link down"),
                    Some(Cause::LinkUp) => format!("{to} link up"),
                    Some(Cause::Preempt) => format!("{to} preferred and stable"),
                    Some(Cause::Damped) => format!("{from} flapping"),
                    Some(Cause::Removed) => format!("{from} removed"),
                    Some(Cause::Operator) => "operator request".to_owned(),
                    Some(Cause::External) => "changed outside laggmond".to_owned(),
                    Some(Cause::PathDown) => format!("{from} path down"),
                    None => "unknown cause".to_owned(),
                };
                format!("{group}: failover {from} -> {to} ({why})")
            }
            Kind::AllPortsDown => format!("{group}: all ports down, no traffic"),
            Kind::GroupRecovered => format!("{group}: recovered on {port}"),
            Kind::PrimaryRestored => format!("{group}: primary {port} carries traffic again"),
            Kind::EnforceFailed => format!("{group}: could not make {port} active"),
            Kind::Enforcing if self.cause == Some(Cause::PathDown) => {
                format!("{group}: taking {port} out of the lagg, its path is down")
            }
            Kind::Enforcing => {
                format!("{group}: making {port} active, expect a brief outage")
            }
            Kind::Flapping => format!("{group}: {port} is flapping, damped"),
            Kind::FlapCleared => format!("{group}: {port} no longer damped"),
            Kind::PathDown => {
                let mut s = format!("{group}: {port} path down");
                if let Some(missed) = self.missed {
                    let _ = write!(s, ", {missed} probe intervals unanswered");
                }
                s
            }
            Kind::PathUp => format!("{group}: {port} path up"),
            Kind::AllPathsDown => match &self.port {
                Some(port) => {
                    format!("{group}: no port has a working path, traffic stays on {port}")
                }
                None => format!("{group}: no port has a working path"),
            },
            Kind::PathsRecovered => format!("{group}: {port} has a working path again"),
            Kind::PortMissing => format!("{group}: configured port {port} does not exist"),
            Kind::PortFound => format!("{group}: port {port} exists now"),
            Kind::PortUnexpected => format!("{group}: {port} is a member but not configured"),
            Kind::UnsupportedMode => {
                let mode = self.mode.as_deref().unwrap_or("?");
                format!("{group}: mode {mode} is not failover; left alone")
            }
            Kind::ConfigReloaded => "configuration reloaded".to_owned(),
            Kind::ConfigRejected => "new configuration rejected, keeping the old one".to_owned(),
        };
        if let Some(outage) = self.outage_ms {
            let _ = write!(s, ", outage {outage} ms");
        }
        s
    }

    /// The `key=value` pairs of the log line, in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut add = |key, value: Option<String>| {
            if let Some(v) = value {
                out.push((key, v));
            }
        };
        add("group", self.group.clone());
        add("event", Some(self.kind.as_str().to_owned()));
        add("port", self.port.clone());
        add("from", self.from.clone());
        add("to", self.to.clone());
        add("cause", self.cause.map(|c| c.as_str().to_owned()));
        add("outage_ms", self.outage_ms.map(|v| v.to_string()));
        add("flaps", self.flaps.map(|v| v.to_string()));
        add("hold_ms", self.hold_ms.map(|v| v.to_string()));
        add("error", self.error.clone());
        add("mode", self.mode.clone());
        add("targets", self.targets.as_ref().map(|t| t.join(",")));
        add("missed", self.missed.map(|v| v.to_string()));
        add("rtt_ms", self.rtt_ms.map(|v| v.to_string()));
        out
    }
}

/// An event as every sink sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increases by one per event over the daemon's lifetime.
    pub seq: u64,
    /// Wall time, RFC 3339 with milliseconds, UTC.
    pub time: Timestamp,
    pub severity: Severity,
    #[serde(flatten)]
    pub what: What,
}

impl Event {
    /// One log line: the sentence, then `key=value` fields. Values with
    /// spaces, quotes or `=` are quoted so the line stays machine-readable.
    pub fn log_line(&self) -> String {
        let mut line = self.what.sentence();
        for (key, value) in self.what.fields() {
            let _ = write!(line, " {key}={}", quote(&value));
        }
        line
    }
}

/// Quotes a log value when it would otherwise be ambiguous.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
    if plain {
        value.to_owned()
    } else {
        serde_json::to_string(value).unwrap_or_default()
    }
}

/// A wall-clock time that serialises as RFC 3339 with milliseconds, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    /// Now, by the system clock.
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }

    /// Milliseconds since the Unix epoch (0 for times before it).
    pub fn unix_ms(self) -> u64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = UNIX_EPOCH + Duration::from_millis(self.unix_ms());
        let s = humantime::format_rfc3339_millis(rounded).to_string();
        f.write_str(&s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s)
            .map(Timestamp)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failover() -> What {
        What {
            from: Some("em0".into()),
            to: Some("bge0".into()),
            cause: Some(Cause::LinkDown),
            outage_ms: Some(12),
            ..What::new("lagg0", Kind::Failover)
        }
    }

    #[test]
    fn failover_log_line_reads_as_a_sentence_then_fields() {
        let event = Event {
            seq: 7,
            time: Timestamp(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            severity: Severity::Warning,
            what: failover(),
        };
        assert_eq!(
            event.log_line(),
            "lagg0: failover em0 -> bge0 (em0 link down), outage 12 ms \
             group=lagg0 event=failover from=em0 to=bge0 cause=link_down outage_ms=12"
        );
    }

    #[test]
    fn event_json_is_flat_and_round_trips() {
        let event = Event {
            seq: 1,
            time: Timestamp(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            severity: Severity::Warning,
            what: failover(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"seq":1,"time":"2023-11-14T22:13:20.123Z","severity":"warning","group":"lagg0","kind":"failover","from":"em0","to":"bge0","cause":"link_down","outage_ms":12}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn every_kind_has_a_sentence_and_a_json_name() {
        for kind in Kind::ALL {
            let what = What::port("g", kind, "p");
            assert!(!what.sentence().is_empty());
            let json = serde_json::to_value(&what).unwrap();
            assert_eq!(json["kind"], kind.as_str());
        }
    }

    #[test]
    fn awkward_values_are_quoted() {
        let what = What {
            error: Some("No such device (os error 19)".into()),
            ..What::port("lagg0", Kind::EnforceFailed, "em0")
        };
        let line = Event {
            seq: 1,
            time: Timestamp::now(),
            severity: Severity::Warning,
            what,
        }
        .log_line();
        assert!(
            line.ends_with(r#"error="No such device (os error 19)""#),
            "{line}"
        );
    }

    #[test]
    fn path_events_read_as_sentences_with_their_fields() {
        let down = What {
            targets: Some(vec!["192.0.2.1".into(), "192.0.2.2".into()]),
            missed: Some(3),
            ..What::port("lagg0", Kind::PathDown, "em0")
        };
        let line = Event {
            seq: 1,
            time: Timestamp::now(),
            severity: Severity::Warning,
            what: down.clone(),
        }
        .log_line();
        assert_eq!(
            line,
            "lagg0: em0 path down, 3 probe intervals unanswered \
             group=lagg0 event=path_down port=em0 targets=192.0.2.1,192.0.2.2 missed=3"
        );
        assert_eq!(
            serde_json::to_string(&down).unwrap(),
            r#"{"group":"lagg0","kind":"path_down","port":"em0","targets":["192.0.2.1","192.0.2.2"],"missed":3}"#
        );
        let up = What {
            rtt_ms: Some(2),
            ..What::port("lagg0", Kind::PathUp, "em0")
        };
        assert_eq!(up.sentence(), "lagg0: em0 path up");
        assert_eq!(
            serde_json::to_string(&up).unwrap(),
            r#"{"group":"lagg0","kind":"path_up","port":"em0","rtt_ms":2}"#
        );
        let lost = What::port("lagg0", Kind::AllPathsDown, "em0");
        assert_eq!(
            lost.sentence(),
            "lagg0: no port has a working path, traffic stays on em0"
        );
        let failover = What {
            from: Some("em0".into()),
            to: Some("bge0".into()),
            cause: Some(Cause::PathDown),
            ..What::new("lagg0", Kind::Failover)
        };
        assert_eq!(
            failover.sentence(),
            "lagg0: failover em0 -> bge0 (em0 path down)"
        );
    }

    #[test]
    fn default_severities_follow_the_design() {
        assert_eq!(Kind::AllPathsDown.default_severity(), Severity::Crit);
        assert_eq!(Kind::PathDown.default_severity(), Severity::Warning);
        assert_eq!(Kind::PathsRecovered.default_severity(), Severity::Notice);
        assert_eq!(Kind::PathUp.default_severity(), Severity::Info);
        assert_eq!(Kind::AllPortsDown.default_severity(), Severity::Crit);
        assert_eq!(Kind::Failover.default_severity(), Severity::Warning);
        assert_eq!(Kind::Flapping.default_severity(), Severity::Warning);
        assert_eq!(Kind::PrimaryRestored.default_severity(), Severity::Notice);
        assert_eq!(Kind::GroupRecovered.default_severity(), Severity::Notice);
        assert_eq!(Kind::PortUp.default_severity(), Severity::Info);
    }
}
