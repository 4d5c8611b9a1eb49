//! Prometheus text exposition: what a scraper needs to graph failovers and
//! alert on a group running without redundancy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::event::{Cause, Event, Kind};
use crate::hooks::HookStats;
use crate::probe::ignored::Ignored;
use crate::probe::{PathState, ProbeCounters};
use crate::status::{GroupStatus, Link, PortStatus, Status};

/// Counters kept from published events, across reloads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventCounters {
    /// Events by kind.
    pub events: BTreeMap<Kind, u64>,
    /// Failovers by (group, cause).
    pub failovers: BTreeMap<(String, Cause), u64>,
    /// Link changes (`port_up` + `port_down`) by (group, port).
    pub flaps: BTreeMap<(String, String), u64>,
    /// Times a port was damped, by (group, port).
    pub dampings: BTreeMap<(String, String), u64>,
}

impl EventCounters {
    /// Counts one published event.
    pub fn count(&mut self, event: &Event) {
        let what = &event.what;
        *self.events.entry(what.kind).or_default() += 1;
        let group = what.group.clone().unwrap_or_default();
        match what.kind {
            Kind::Failover => {
                if let Some(cause) = what.cause {
                    *self.failovers.entry((group, cause)).or_default() += 1;
                }
            }
            Kind::PortUp | Kind::PortDown => {
                let port = what.port.clone().unwrap_or_default();
                *self.flaps.entry((group, port)).or_default() += 1;
            }
            Kind::Flapping => {
                let port = what.port.clone().unwrap_or_default();
                *self.dampings.entry((group, port)).or_default() += 1;
            }
            _ => {}
        }
    }
}

/// Clients the control socket turned away or timed out: the trace of
/// someone crowding it, which an operator should see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlCounters {
    /// Refused because every slot open to them was taken.
    pub refused_busy: u64,
    /// Refused because their uid held its share of the slots.
    pub refused_uid_cap: u64,
    /// Closed for sending no complete request in time.
    pub timed_out: u64,
}

/// Renders every metric. Series that are zero are still written for each
/// configured group and port, so rates and alerts work from the start.
/// `foreign_messages` is the platform's count of routing messages it did
/// not believe (see `PlatformHandle::foreign_messages`).
pub fn render(
    status: &Status,
    counters: &EventCounters,
    hooks: &HookStats,
    foreign_messages: u64,
    control: &ControlCounters,
    probes: &ProbeCounters,
) -> String {
    let mut out = Metrics::default();
    out.family(
        "laggmond_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    out.sample("laggmond_uptime_seconds", &[], status.uptime_s);

    out.per_group(
        status,
        "laggmond_group_healthy",
        "gauge",
        "1 when the primary is active and every port is up and trusted.",
        |g| u64::from(g.healthy),
    );
    out.per_group(
        status,
        "laggmond_group_up",
        "gauge",
        "1 when some port of the group carries traffic.",
        |g| u64::from(g.active.is_some()),
    );
    out.per_port(
        status,
        "laggmond_port_active",
        "gauge",
        "1 for the port that carries the group's traffic, 0 for the others.",
        |g, p| u64::from(g.active.as_deref() == Some(p.name.as_str())),
    );
    out.per_port(
        status,
        "laggmond_port_link_up",
        "gauge",
        "1 when the port has link.",
        |_, p| u64::from(p.link == Link::Up),
    );
    out.per_port(
        status,
        "laggmond_port_damped",
        "gauge",
        "1 while a flapping port is held out of service.",
        |_, p| u64::from(p.damped),
    );
    out.paths(status);
    let count = |map: &BTreeMap<(String, String), u64>, g: &GroupStatus, p: &PortStatus| {
        map.get(&(g.name.clone(), p.name.clone()))
            .copied()
            .unwrap_or(0)
    };
    out.per_port(
        status,
        "laggmond_port_flaps_total",
        "counter",
        "Link changes seen on the port.",
        |g, p| count(&counters.flaps, g, p),
    );
    out.per_port(
        status,
        "laggmond_port_dampings_total",
        "counter",
        "Times the port was damped for flapping.",
        |g, p| count(&counters.dampings, g, p),
    );
    out.family(
        "laggmond_failovers_total",
        "counter",
        "Changes of the active port, by cause.",
    );
    for g in &status.groups {
        for cause in Cause::ALL {
            let n = counters
                .failovers
                .get(&(g.name.clone(), cause))
                .copied()
                .unwrap_or(0);
            out.sample(
                "laggmond_failovers_total",
                &[("group", &g.name), ("cause", cause.as_str())],
                n,
            );
        }
    }
    out.family(
        "laggmond_events_total",
        "counter",
        "Events published, by kind.",
    );
    for kind in Kind::ALL {
        let n = counters.events.get(&kind).copied().unwrap_or(0);
        out.sample("laggmond_events_total", &[("kind", kind.as_str())], n);
    }
    out.family("laggmond_hooks_total", "counter", "Hook runs, by outcome.");
    for (outcome, n) in [
        ("started", hooks.started),
        ("succeeded", hooks.succeeded),
        ("failed", hooks.failed),
        ("timed_out", hooks.timed_out),
        ("dropped", hooks.dropped),
    ] {
        out.sample("laggmond_hooks_total", &[("outcome", outcome)], n);
    }
    out.family(
        "laggmond_foreign_messages_total",
        "counter",
        "Routing messages not believed: not sent by the kernel, or contradicted by the interface's own state.",
    );
    out.sample("laggmond_foreign_messages_total", &[], foreign_messages);
    out.control(control);
    if status
        .groups
        .iter()
        .any(|g| g.ports.iter().any(|p| p.path.is_some()))
    {
        out.probes(probes);
    }
    out.text
}

/// The text being written.
#[derive(Default)]
struct Metrics {
    text: String,
}

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A family with one sample per group.
    fn per_group(
        &mut self,
        status: &Status,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&GroupStatus) -> u64,
    ) {
        self.family(name, kind, help);
        for g in &status.groups {
            self.sample(name, &[("group", &g.name)], value(g));
        }
    }

    /// A family with one sample per port of every group.
    fn per_port(
        &mut self,
        status: &Status,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&GroupStatus, &PortStatus) -> u64,
    ) {
        self.family(name, kind, help);
        for g in &status.groups {
            for p in &g.ports {
                self.sample(name, &[("group", &g.name), ("port", &p.name)], value(g, p));
            }
        }
    }

    /// The probe counters, written when some group probes.
    fn probes(&mut self, probes: &ProbeCounters) {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        self.family(
            "laggmond_probes_sent_total",
            "counter",
            "ARP requests sent by path probes.",
        );
        self.sample("laggmond_probes_sent_total", &[], load(&probes.sent));
        self.family(
            "laggmond_probe_replies_total",
            "counter",
            "ARP replies that counted for a port's path.",
        );
        self.sample("laggmond_probe_replies_total", &[], load(&probes.replies));
        self.family(
            "laggmond_probe_frames_ignored_total",
            "counter",
            "Frames on probe sockets that did not count, by reason.",
        );
        for (reason, counter) in Ignored::ALL.iter().zip(&probes.ignored) {
            self.sample(
                "laggmond_probe_frames_ignored_total",
                &[("reason", reason.as_str())],
                load(counter),
            );
        }
    }

    /// The path gauges, for the ports of groups that probe only: a user
    /// without probes sees no new series (and no empty families).
    fn paths(&mut self, status: &Status) {
        let probed = || {
            status.groups.iter().flat_map(|g| {
                g.ports
                    .iter()
                    .filter_map(move |p| p.path.map(|path| (g, p, path)))
            })
        };
        if probed().next().is_some() {
            self.family(
                "laggmond_port_path_up",
                "gauge",
                "1 when the port's probes show its path working, 0 when it is down or not known yet.",
            );
            for (g, p, path) in probed() {
                let labels = [("group", g.name.as_str()), ("port", p.name.as_str())];
                self.sample(
                    "laggmond_port_path_up",
                    &labels,
                    u64::from(path == PathState::Up),
                );
            }
        }
        let timed = || probed().filter_map(|(g, p, _)| p.rtt_ms.map(|rtt| (g, p, rtt)));
        if timed().next().is_some() {
            self.family(
                "laggmond_port_probe_rtt_seconds",
                "gauge",
                "Round trip of the latest probe answer, while the path is up.",
            );
            for (g, p, rtt_ms) in timed() {
                let labels = [("group", g.name.as_str()), ("port", p.name.as_str())];
                self.sample_float("laggmond_port_probe_rtt_seconds", &labels, rtt_ms / 1000.0);
            }
        }
    }

    /// The control socket's refused and timed-out clients.
    fn control(&mut self, control: &ControlCounters) {
        self.family(
            "laggmond_control_clients_refused_total",
            "counter",
            "Control clients turned away: every slot taken (busy), or their user's share taken (uid_cap).",
        );
        for (reason, n) in [
            ("busy", control.refused_busy),
            ("uid_cap", control.refused_uid_cap),
        ] {
            self.sample(
                "laggmond_control_clients_refused_total",
                &[("reason", reason)],
                n,
            );
        }
        self.family(
            "laggmond_control_clients_timed_out_total",
            "counter",
            "Control clients closed for sending no complete request in time.",
        );
        self.sample(
            "laggmond_control_clients_timed_out_total",
            &[],
            control.timed_out,
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.sample_text(name, labels, &value.to_string());
    }

    fn sample_float(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.sample_text(name, labels, &value.to_string());
    }

    fn sample_text(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// Escapes a label value as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Driver;
    use crate::event::{Severity, Timestamp, What};
    use crate::names::Named;
    use crate::status::{Role, State};

    fn port(name: &str, link: &str, damped: bool) -> PortStatus {
        PortStatus {
            name: name.into(),
            link: Link::from_name(link).expect("a link"),
            role: Role::Backup,
            since: None,
            flaps: 0,
            damped,
            damped_until: None,
            path: None,
            rtt_ms: None,
        }
    }

    fn status() -> Status {
        Status {
            version: "0.1.0".into(),
            pid: 1,
            uptime_s: 42,
            groups: vec![GroupStatus {
                name: "lagg0".into(),
                driver: Driver::None,
                active: Some("bge0".into()),
                primary: "em0".into(),
                healthy: false,
                state: State::Degraded,
                operator: None,
                ports: vec![port("em0", "down", false), port("bge0", "up", true)],
                last_failover: None,
            }],
        }
    }

    /// Fails, showing the whole text, unless every line is in it.
    fn assert_has_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    fn event(what: What) -> Event {
        Event {
            seq: 1,
            time: Timestamp::now(),
            severity: Severity::Warning,
            what,
        }
    }

    #[test]
    fn gauges_follow_the_status() {
        let text = render(
            &status(),
            &EventCounters::default(),
            &HookStats::default(),
            0,
            &ControlCounters::default(),
            &ProbeCounters::default(),
        );
        assert_has_lines(
            &text,
            &[
                "laggmond_uptime_seconds 42",
                "laggmond_group_healthy{group=\"lagg0\"} 0",
                "laggmond_group_up{group=\"lagg0\"} 1",
                "laggmond_port_active{group=\"lagg0\",port=\"em0\"} 0",
                "laggmond_port_active{group=\"lagg0\",port=\"bge0\"} 1",
                "laggmond_port_link_up{group=\"lagg0\",port=\"em0\"} 0",
                "laggmond_port_damped{group=\"lagg0\",port=\"bge0\"} 1",
                "laggmond_failovers_total{group=\"lagg0\",cause=\"preempt\"} 0",
                "# TYPE laggmond_failovers_total counter",
            ],
        );
    }

    #[test]
    fn counters_count_failovers_by_cause_and_flaps_by_port() {
        let mut counters = EventCounters::default();
        let failover = What {
            from: Some("em0".into()),
            to: Some("bge0".into()),
            cause: Some(Cause::LinkDown),
            ..What::new("lagg0", Kind::Failover)
        };
        counters.count(&event(failover.clone()));
        counters.count(&event(failover));
        counters.count(&event(What::port("lagg0", Kind::PortDown, "em0")));
        counters.count(&event(What::port("lagg0", Kind::PortUp, "em0")));
        counters.count(&event(What::port("lagg0", Kind::Flapping, "em0")));
        let text = render(
            &status(),
            &counters,
            &HookStats::default(),
            0,
            &ControlCounters::default(),
            &ProbeCounters::default(),
        );
        assert_has_lines(
            &text,
            &[
                "laggmond_failovers_total{group=\"lagg0\",cause=\"link_down\"} 2",
                "laggmond_port_flaps_total{group=\"lagg0\",port=\"em0\"} 2",
                "laggmond_port_dampings_total{group=\"lagg0\",port=\"em0\"} 1",
                "laggmond_events_total{kind=\"failover\"} 2",
            ],
        );
    }

    #[test]
    fn foreign_messages_are_a_counter() {
        let text = render(
            &status(),
            &EventCounters::default(),
            &HookStats::default(),
            3,
            &ControlCounters::default(),
            &ProbeCounters::default(),
        );
        assert_has_lines(
            &text,
            &[
                "# HELP laggmond_foreign_messages_total Routing messages not believed: not sent by the kernel, or contradicted by the interface's own state.",
                "# TYPE laggmond_foreign_messages_total counter",
                "laggmond_foreign_messages_total 3",
            ],
        );
    }

    #[test]
    fn probed_ports_have_path_and_round_trip_gauges() {
        let mut probed = status();
        probed.groups[0].ports[0].path = Some(PathState::Down);
        probed.groups[0].ports[1].path = Some(PathState::Up);
        probed.groups[0].ports[1].rtt_ms = Some(0.213);
        let text = render(
            &probed,
            &EventCounters::default(),
            &HookStats::default(),
            0,
            &ControlCounters::default(),
            &ProbeCounters::default(),
        );
        assert_has_lines(
            &text,
            &[
                "# TYPE laggmond_port_path_up gauge",
                "laggmond_port_path_up{group=\"lagg0\",port=\"em0\"} 0",
                "laggmond_port_path_up{group=\"lagg0\",port=\"bge0\"} 1",
                "# TYPE laggmond_port_probe_rtt_seconds gauge",
                "laggmond_port_probe_rtt_seconds{group=\"lagg0\",port=\"bge0\"} 0.000213",
                "laggmond_failovers_total{group=\"lagg0\",cause=\"path_down\"} 0",
                "laggmond_events_total{kind=\"all_paths_down\"} 0",
            ],
        );
        assert!(!text.contains("probe_rtt_seconds{group=\"lagg0\",port=\"em0\"}"));
    }

    #[test]
    fn groups_without_probe_have_no_path_series() {
        let text = render(
            &status(),
            &EventCounters::default(),
            &HookStats::default(),
            0,
            &ControlCounters::default(),
            &ProbeCounters::default(),
        );
        assert!(!text.contains("laggmond_port_path_up"), "{text}");
        assert!(!text.contains("laggmond_port_probe_rtt_seconds"), "{text}");
    }

    #[test]
    fn path_events_and_failovers_are_counted() {
        let mut counters = EventCounters::default();
        counters.count(&event(What {
            from: Some("em0".into()),
            to: Some("bge0".into()),
            cause: Some(Cause::PathDown),
            ..What::new("lagg0", Kind::Failover)
        }));
        counters.count(&event(What::port("lagg0", Kind::PathDown, "em0")));
        let text = render(
            &status(),
            &counters,
            &HookStats::default(),
            0,
            &ControlCounters::default(),
            &ProbeCounters::default(),
        );
        assert_has_lines(
            &text,
            &[
                "laggmond_failovers_total{group=\"lagg0\",cause=\"path_down\"} 1",
                "laggmond_events_total{kind=\"path_down\"} 1",
                "laggmond_events_total{kind=\"paths_recovered\"} 0",
            ],
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
