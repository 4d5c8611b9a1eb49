//! The status report built from what the engine knows: the daemon calls
//! [`project`] for `status` and `metrics`.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use crate::engine::{Group, Port, PortLink};
use crate::event::Timestamp;
use crate::probe::PathState;

use super::{FailoverStatus, GroupStatus, Link, PortStatus, Role, State, Status};

/// The status report at `now`: every group of the engine in its order,
/// each with its last failover from `last_failover` (by group name).
/// `clock` pairs a monotonic instant with the wall time it was, to show
/// the engine's instants as wall times; `started` is when the daemon
/// started.
pub fn project(
    groups: &[Group],
    last_failover: &HashMap<String, FailoverStatus>,
    clock: (Instant, SystemTime),
    started: Instant,
    now: Instant,
) -> Status {
    let groups = groups
        .iter()
        .map(|group| group_status(group, last_failover.get(group.name()), clock, now))
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_s: now.saturating_duration_since(started).as_secs(),
        groups,
    }
}

fn group_status(
    group: &Group,
    last_failover: Option<&FailoverStatus>,
    clock: (Instant, SystemTime),
    now: Instant,
) -> GroupStatus {
    let active = group.active().map(str::to_owned);
    let ports: Vec<PortStatus> = group
        .ports()
        .iter()
        .map(|port| port_status(port, active.as_deref(), clock, now))
        .collect();
    let all_usable = group.ports().iter().all(Port::usable);
    let healthy = all_usable && active.as_deref() == Some(group.primary());
    let state = match (&active, healthy) {
        (None, _) => State::Down,
        (Some(_), true) => State::Ok,
        (Some(_), false) => State::Degraded,
    };
    GroupStatus {
        name: group.name().to_owned(),
        driver: group.config().driver,
        active,
        primary: group.primary().to_owned(),
        healthy,
        state,
        operator: group.operator().map(str::to_owned),
        ports,
        last_failover: last_failover.cloned(),
    }
}

fn port_status(
    port: &Port,
    active: Option<&str>,
    clock: (Instant, SystemTime),
    now: Instant,
) -> PortStatus {
    let damped_until = port.damped_until();
    let (link, role) = match port.link() {
        PortLink::Unknown => (Link::Unknown, Role::Down),
        PortLink::Missing => (Link::Missing, Role::Missing),
        PortLink::Down => (Link::Down, Role::Down),
        PortLink::Up if active == Some(port.name()) => (Link::Up, Role::Active),
        PortLink::Up if damped_until.is_some() => (Link::Up, Role::Damped),
        PortLink::Up if port.path() == PathState::Down => (Link::Up, Role::PathDown),
        PortLink::Up => (Link::Up, Role::Backup),
    };
    // A group without probes reports no path at all: its report stays
    // what it was before probes existed.
    let path = Some(port.path()).filter(|path| *path != PathState::Off);
    PortStatus {
        name: port.name().to_owned(),
        link,
        role,
        since: port.since().map(|at| wall_time(clock, at)),
        flaps: port.flaps_in_window(now),
        damped: damped_until.is_some(),
        damped_until: damped_until.map(|at| wall_time(clock, at)),
        path,
        rtt_ms: port.rtt().map(|rtt| rtt.as_micros() as f64 / 1000.0),
    }
}

/// The wall time of a monotonic instant, by the pairing `(anchor, wall)`.
fn wall_time((anchor, wall): (Instant, SystemTime), at: Instant) -> Timestamp {
    Timestamp(if at >= anchor {
        wall + (at - anchor)
    } else {
        wall - (anchor - at)
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::config::Config;
    use crate::engine::{Engine, Input};
    use crate::event::Cause;
    use crate::platform::{self, LinkState, Update};

    // 2026-11-21T10:00:00.123Z
    const T: u64 = 1_795_255_200_123;

    fn engine() -> Engine {
        let text = "groups:\n  uplink:\n    driver: none\n    ports: [p0, p1, p2, p3]\n";
        let config = Config::parse(text, Path::new("laggmond.yml")).expect("config");
        Engine::new(Arc::new(config))
    }

    fn link(index: u32, name: &str, up: bool) -> platform::Link {
        platform::Link {
            index,
            name: name.to_owned(),
            state: LinkState::from_up(up),
            master: None,
        }
    }

    #[test]
    fn before_the_first_snapshot_every_link_is_unknown_and_the_group_down() {
        let start = Instant::now();
        let clock = (start, UNIX_EPOCH + Duration::from_millis(T));
        let status = project(engine().groups(), &HashMap::new(), clock, start, start);
        let group = &status.groups[0];
        assert_eq!(group.state, State::Down);
        assert!(!group.healthy);
        for port in &group.ports {
            assert_eq!(
                (port.link, port.role),
                (Link::Unknown, Role::Down),
                "{port:?}"
            );
        }
        assert_eq!(
            serde_json::to_string(&group.ports[0]).unwrap(),
            r#"{"name":"p0","link":"unknown","role":"down","since":null,"flaps":0,"damped":false}"#
        );
    }

    #[test]
    fn ports_and_group_are_named_in_the_report_words() {
        let start = Instant::now();
        let clock = (start, UNIX_EPOCH + Duration::from_millis(T));
        let mut engine = engine();
        let seen = start + Duration::from_secs(1);
        let links = vec![
            link(1, "p0", false),
            link(2, "p1", true),
            link(3, "p2", true),
        ];
        engine.handle(seen, Input::Platform(Update::Snapshot(links)));
        let failover = FailoverStatus {
            at: Timestamp(UNIX_EPOCH + Duration::from_millis(T)),
            from: Some("p0".into()),
            to: Some("p1".into()),
            cause: Some(Cause::LinkDown),
            outage_ms: Some(12),
        };
        let failovers = HashMap::from([("uplink".to_owned(), failover)]);
        let later = start + Duration::from_secs(3);
        let status = project(engine.groups(), &failovers, clock, start, later);
        assert_eq!(status.uptime_s, 3);
        assert_eq!(
            serde_json::to_string(&status.groups).unwrap(),
            concat!(
                r#"[{"name":"uplink","driver":"none","active":"p1","primary":"p0","healthy":false,"state":"degraded","ports":["#,
                r#"{"name":"p0","link":"down","role":"down","since":"2026-11-21T10:00:01.123Z","flaps":0,"damped":false},"#,
                r#"{"name":"p1","link":"up","role":"active","since":"2026-11-21T10:00:01.123Z","flaps":0,"damped":false},"#,
                r#"{"name":"p2","link":"up","role":"backup","since":"2026-11-21T10:00:01.123Z","flaps":0,"damped":false},"#,
                r#"{"name":"p3","link":"missing","role":"missing","since":"2026-11-21T10:00:01.123Z","flaps":0,"damped":false}],"#,
                r#""last_failover":{"at":"2026-11-21T10:00:00.123Z","from":"p0","to":"p1","cause":"link_down","outage_ms":12}}]"#,
            )
        );
    }

    #[test]
    fn a_probed_group_shows_each_path_and_round_trip() {
        let text = "groups:\n  uplink:\n    driver: none\n    ports: [p0, p1, p2]\n";
        let config = Config::parse(text, Path::new("laggmond.yml")).expect("config");
        let mut config = config;
        config.groups[0].probe = Some(crate::config::ProbeConfig {
            arp: vec![std::net::Ipv4Addr::new(192, 0, 2, 1)],
            interval: Duration::from_secs(1),
            missed: 3,
            require: crate::config::Require::Any,
            source: std::net::Ipv4Addr::UNSPECIFIED,
        });
        let mut engine = Engine::new(Arc::new(config));
        let start = Instant::now();
        let clock = (start, UNIX_EPOCH + Duration::from_millis(T));
        let links = vec![
            link(1, "p0", true),
            link(2, "p1", true),
            link(3, "p2", true),
        ];
        engine.handle(start, Input::Platform(Update::Snapshot(links)));
        let verdict = |port: &str, verdict| {
            Input::Path(crate::probe::PathReport {
                group: "uplink".into(),
                port: port.into(),
                verdict,
            })
        };
        let up = crate::probe::PathVerdict::Up {
            rtt: Duration::from_micros(213),
        };
        let down = crate::probe::PathVerdict::Down {
            missed: 3,
            targets: vec![std::net::Ipv4Addr::new(192, 0, 2, 1)],
        };
        engine.handle(start, verdict("p0", up));
        // A dead path is judged `missed` intervals after the link came up.
        engine.handle(start + Duration::from_secs(3), verdict("p1", down));
        let status = project(engine.groups(), &HashMap::new(), clock, start, start);
        assert_eq!(
            serde_json::to_string(&status.groups[0].ports).unwrap(),
            concat!(
                r#"[{"name":"p0","link":"up","role":"active","since":"2026-11-21T10:00:00.123Z","flaps":0,"damped":false,"path":"up","rtt_ms":0.213},"#,
                r#"{"name":"p1","link":"up","role":"path_down","since":"2026-11-21T10:00:00.123Z","flaps":0,"damped":false,"path":"down"},"#,
                r#"{"name":"p2","link":"up","role":"backup","since":"2026-11-21T10:00:00.123Z","flaps":0,"damped":false,"path":"unknown"}]"#,
            )
        );
        assert_eq!(status.groups[0].state, State::Degraded);
        assert!(!status.groups[0].healthy);
    }

    #[test]
    fn a_group_without_probe_reports_exactly_what_it_did_before_probes() {
        let start = Instant::now();
        let clock = (start, UNIX_EPOCH + Duration::from_millis(T));
        let mut engine = engine();
        let links = vec![link(1, "p0", true), link(2, "p1", true)];
        engine.handle(start, Input::Platform(Update::Snapshot(links)));
        // Verdicts for a group that does not probe change nothing.
        engine.handle(
            start,
            Input::Path(crate::probe::PathReport {
                group: "uplink".into(),
                port: "p0".into(),
                verdict: crate::probe::PathVerdict::Up {
                    rtt: Duration::from_millis(1),
                },
            }),
        );
        let status = project(engine.groups(), &HashMap::new(), clock, start, start);
        assert_eq!(
            serde_json::to_string(&status.groups).unwrap(),
            concat!(
                r#"[{"name":"uplink","driver":"none","active":"p0","primary":"p0","healthy":false,"state":"degraded","ports":["#,
                r#"{"name":"p0","link":"up","role":"active","since":"2026-11-21T10:00:00.123Z","flaps":0,"damped":false},"#,
                r#"{"name":"p1","link":"up","role":"backup","since":"2026-11-21T10:00:00.123Z","flaps":0,"damped":false},"#,
                r#"{"name":"p2","link":"missing","role":"missing","since":"2026-11-21T10:00:00.123Z","flaps":0,"damped":false},"#,
                r#"{"name":"p3","link":"missing","role":"missing","since":"2026-11-21T10:00:00.123Z","flaps":0,"damped":false}],"#,
                r#""last_failover":null}]"#,
            )
        );
    }

    #[test]
    fn instants_before_the_clock_pairing_are_shown_too() {
        let anchor = Instant::now() + Duration::from_secs(10);
        let wall = UNIX_EPOCH + Duration::from_millis(T);
        let before = anchor - Duration::from_secs(2);
        assert_eq!(
            wall_time((anchor, wall), before).to_string(),
            "2026-11-21T09:59:58.123Z"
        );
    }
}
