//! The status report: what `laggmond status` shows and `--json` prints.
//! Fields may be added, never renamed: scripts parse this.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Driver;
use crate::event::{Cause, Timestamp};
use crate::names::named;
use crate::probe::PathState;

mod projection;

pub use projection::project;

/// The whole daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub groups: Vec<GroupStatus>,
}

/// One group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub driver: Driver,
    /// The port carrying traffic now; `null` when none can.
    pub active: Option<String>,
    /// The configured primary (first port).
    pub primary: String,
    /// The primary is active and every port is up and trusted.
    pub healthy: bool,
    pub state: State,
    /// The operator's `set-active` choice, while it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub ports: Vec<PortStatus>,
    pub last_failover: Option<FailoverStatus>,
}

/// One port of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    pub name: String,
    pub link: Link,
    pub role: Role,
    /// When the link last changed (or laggmond first saw it).
    pub since: Option<Timestamp>,
    /// Link changes inside the current damping window.
    pub flaps: u32,
    pub damped: bool,
    /// When a damped port is trusted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damped_until: Option<Timestamp>,
    /// The path beyond the port as its probes judge it; absent when the
    /// group has no probe, so that the report of a group without probes
    /// stays what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathState>,
    /// The round trip of the latest probe answer, in milliseconds with
    /// microseconds; absent while the path is not up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

named! {
    /// How a group is doing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum State {
        /// Healthy: the primary carries traffic, every port is up and trusted.
        Ok => "ok",
        /// Traffic flows, but redundancy or priority is lost.
        Degraded => "degraded",
        /// No port carries traffic.
        Down => "down",
    }
}

named! {
    /// A port's link.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Link {
        Up => "up",
        Down => "down",
        /// The interface does not exist.
        Missing => "missing",
        /// Not known before the first snapshot of the kernel.
        Unknown => "unknown",
    }
}

named! {
    /// What a port does for its group.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Role {
        /// Carries the group's traffic.
        Active => "active",
        /// Usable, standing by.
        Backup => "backup",
        /// Has no link (or its link is not known yet).
        Down => "down",
        /// Up but flapping, held out of service.
        Damped => "damped",
        /// Up, but its path is dead (probes unanswered): not trusted.
        PathDown => "path_down",
        /// The interface does not exist.
        Missing => "missing",
    }
}

/// The group's most recent failover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverStatus {
    pub at: Timestamp,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cause: Option<Cause>,
    pub outage_ms: Option<u64>,
}

/// The human-readable `laggmond status` report: a line about the daemon,
/// then per group a headline, a table of its ports and its last failover.
/// With `group`, only that group is shown. Plain text, aligned columns, no
/// colours: it is read in terminals, mails and tickets alike.
pub fn render(status: &Status, group: Option<&str>) -> String {
    let uptime = humantime::format_duration(Duration::from_secs(status.uptime_s));
    let mut out = format!(
        "laggmond {} (pid {}), up {uptime}\n",
        status.version, status.pid
    );
    let shown = status
        .groups
        .iter()
        .filter(|g| group.is_none_or(|name| g.name == name));
    for g in shown {
        out.push('\n');
        render_group(&mut out, g);
    }
    out
}

/// One group's block: headline, port table, last failover.
fn render_group(out: &mut String, group: &GroupStatus) {
    out.push_str(&headline(group));
    out.push('\n');
    for row in port_table(&group.ports) {
        let _ = writeln!(out, "  {row}");
    }
    let _ = writeln!(out, "  {}", last_failover(group.last_failover.as_ref()));
}

/// `lagg0 (lagg): active em0 (primary), ok` and its degraded and down forms.
fn headline(group: &GroupStatus) -> String {
    let summary = match (group.state, group.active.as_deref()) {
        (State::Down, _) | (_, None) => "DOWN: no port carries traffic".to_owned(),
        (State::Ok, Some(active)) => format!("active {}, ok", name_active(group, active)),
        (state, Some(active)) => {
            let mut summary = format!("{state}: active {}", name_active(group, active));
            for problem in problems(group) {
                let _ = write!(summary, ", {problem}");
            }
            summary
        }
    };
    let mut line = format!("{} ({}): {summary}", group.name, group.driver);
    if let Some(port) = &group.operator {
        let _ = write!(line, ", operator chose {port}");
    }
    line
}

/// The active port, marked when it is the primary.
fn name_active(group: &GroupStatus, active: &str) -> String {
    if active == group.primary {
        format!("{active} (primary)")
    } else {
        active.to_owned()
    }
}

/// Why a group is degraded: the primary not carrying traffic, and every
/// port that could not take over if needed.
fn problems(group: &GroupStatus) -> Vec<String> {
    let mut problems = Vec::new();
    for port in &group.ports {
        let is_primary = port.name == group.primary;
        let standing_by = port.role == Role::Backup;
        if port.role == Role::Active || (standing_by && !is_primary) {
            continue;
        }
        let condition = if standing_by {
            "standing by"
        } else {
            port.role.as_str()
        };
        if is_primary {
            problems.push(format!("primary {} {condition}", port.name));
        } else {
            problems.push(format!("{} {condition}", port.name));
        }
    }
    problems
}

/// The port table, header first, columns aligned; FLAPS is right-aligned
/// and damped ports get a note after it. A group whose ports have a path
/// (it probes) gets PATH and RTT columns after LINK; one that does not
/// keeps the table it always had.
fn port_table(ports: &[PortStatus]) -> Vec<String> {
    let probed = ports.iter().any(|port| port.path.is_some());
    let header = if probed {
        &["PORT", "LINK", "PATH", "RTT", "ROLE", "SINCE", "FLAPS"][..]
    } else {
        &["PORT", "LINK", "ROLE", "SINCE", "FLAPS"][..]
    };
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    rows.extend(ports.iter().map(|port| {
        let mut row = vec![port.name.clone(), port.link.to_string()];
        if probed {
            row.push(port.path.map_or_else(|| "-".to_owned(), |p| p.to_string()));
            row.push(
                port.rtt_ms
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}ms")),
            );
        }
        row.extend([
            port.role.to_string(),
            port.since.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            port.flaps.to_string(),
        ]);
        row
    }));
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // The RTT and FLAPS columns hold numbers, right-aligned.
    let right = |column: usize| column + 1 == header.len() || (probed && column == 3);
    let notes = std::iter::once(None).chain(ports.iter().map(damped_note));
    rows.iter()
        .zip(notes)
        .map(|(row, note)| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(column, (cell, &width))| {
                    if right(column) {
                        format!("{cell:>width$}")
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect();
            let mut line = cells.join("  ");
            if let Some(note) = note {
                let _ = write!(line, "  {note}");
            }
            line
        })
        .collect()
}

/// `damped until TIME` for a damped port.
fn damped_note(port: &PortStatus) -> Option<String> {
    if !port.damped {
        return None;
    }
    Some(match port.damped_until {
        Some(until) => format!("damped until {until}"),
        None => "damped".to_owned(),
    })
}

/// `last failover: TIME FROM -> TO (CAUSE), outage N ms`, or `none`.
fn last_failover(failover: Option<&FailoverStatus>) -> String {
    let Some(failover) = failover else {
        return "last failover: none".to_owned();
    };
    let mut line = format!(
        "last failover: {} {} -> {}",
        failover.at,
        failover.from.as_deref().unwrap_or("none"),
        failover.to.as_deref().unwrap_or("none"),
    );
    if let Some(cause) = failover.cause {
        let _ = write!(line, " ({cause})");
    }
    if let Some(outage) = failover.outage_ms {
        let _ = write!(line, ", outage {outage} ms");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Named;
    use std::time::UNIX_EPOCH;

    fn at(ms: u64) -> Option<Timestamp> {
        Some(Timestamp(UNIX_EPOCH + Duration::from_millis(ms)))
    }

    // 2026-11-21T10:00:00.123Z
    const T: u64 = 1_795_255_200_123;

    fn port(name: &str, link: &str, role: &str) -> PortStatus {
        PortStatus {
            name: name.into(),
            link: Link::from_name(link).expect("a link"),
            role: Role::from_name(role).expect("a role"),
            since: at(T),
            flaps: 0,
            damped: false,
            damped_until: None,
            path: None,
            rtt_ms: None,
        }
    }

    fn group(state: &str, active: Option<&str>, ports: Vec<PortStatus>) -> GroupStatus {
        GroupStatus {
            name: "lagg0".into(),
            driver: Driver::Lagg,
            active: active.map(str::to_owned),
            primary: "em0".into(),
            healthy: state == "ok",
            state: State::from_name(state).expect("a state"),
            operator: None,
            ports,
            last_failover: None,
        }
    }

    fn status(groups: Vec<GroupStatus>) -> Status {
        Status {
            version: "0.1.0".into(),
            pid: 123,
            uptime_s: 3723,
            groups,
        }
    }

    #[test]
    fn healthy_group_renders_as_an_aligned_table() {
        let healthy = group(
            "ok",
            Some("em0"),
            vec![port("em0", "up", "active"), port("bge0", "up", "backup")],
        );
        assert_eq!(
            render(&status(vec![healthy]), None),
            "laggmond 0.1.0 (pid 123), up 1h 2m 3s\n\
             \n\
             lagg0 (lagg): active em0 (primary), ok\n\
             \x20 PORT  LINK  ROLE    SINCE                     FLAPS\n\
             \x20 em0   up    active  2026-11-21T10:00:00.123Z      0\n\
             \x20 bge0  up    backup  2026-11-21T10:00:00.123Z      0\n\
             \x20 last failover: none\n"
        );
    }

    #[test]
    fn degraded_group_names_the_primary_and_the_failover() {
        let mut degraded = group(
            "degraded",
            Some("bge0"),
            vec![port("em0", "down", "down"), port("bge0", "up", "active")],
        );
        degraded.ports[0].flaps = 12;
        degraded.last_failover = Some(FailoverStatus {
            at: Timestamp(UNIX_EPOCH + Duration::from_millis(T)),
            from: Some("em0".into()),
            to: Some("bge0".into()),
            cause: Some(Cause::LinkDown),
            outage_ms: Some(12),
        });
        let text = render(&status(vec![degraded]), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "lagg0 (lagg): degraded: active bge0, primary em0 down"
        );
        assert_eq!(
            lines[4],
            "  em0   down  down    2026-11-21T10:00:00.123Z     12"
        );
        assert_eq!(
            lines[6],
            "  last failover: 2026-11-21T10:00:00.123Z em0 -> bge0 (link_down), outage 12 ms"
        );
    }

    #[test]
    fn down_group_says_so_and_damped_ports_say_until_when() {
        let mut em0 = port("em0", "down", "damped");
        em0.damped = true;
        em0.damped_until = at(T + 300_000);
        em0.flaps = 5;
        let mut bge0 = port("bge0", "unknown", "down");
        bge0.since = None;
        let down = group("down", None, vec![em0, bge0]);
        let text = render(&status(vec![down]), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "lagg0 (lagg): DOWN: no port carries traffic");
        assert_eq!(
            lines[4],
            "  em0   down     damped  2026-11-21T10:00:00.123Z      5  damped until 2026-11-21T10:05:00.123Z"
        );
        assert_eq!(
            lines[5],
            "  bge0  unknown  down    -                             0"
        );
    }

    #[test]
    fn degraded_redundancy_and_operator_choice_are_named() {
        let mut lost_backup = group(
            "degraded",
            Some("em0"),
            vec![
                port("em0", "up", "active"),
                port("bge0", "missing", "missing"),
            ],
        );
        lost_backup.operator = Some("em0".into());
        let text = render(&status(vec![lost_backup]), None);
        assert!(
            text.contains(
                "lagg0 (lagg): degraded: active em0 (primary), bge0 missing, operator chose em0\n"
            ),
            "{text}"
        );

        let waiting = group(
            "degraded",
            Some("bge0"),
            vec![port("em0", "up", "backup"), port("bge0", "up", "active")],
        );
        let text = render(&status(vec![waiting]), None);
        assert!(
            text.contains("degraded: active bge0, primary em0 standing by\n"),
            "{text}"
        );
    }

    #[test]
    fn a_probed_group_gets_path_and_round_trip_columns() {
        let mut em0 = port("em0", "up", "active");
        em0.path = Some(PathState::Up);
        em0.rtt_ms = Some(0.213);
        let mut bge0 = port("bge0", "up", "path_down");
        bge0.path = Some(PathState::Down);
        let probed = group("degraded", Some("em0"), vec![em0, bge0]);
        let text = render(&status(vec![probed]), None);
        assert_eq!(
            text,
            "laggmond 0.1.0 (pid 123), up 1h 2m 3s\n\
             \n\
             lagg0 (lagg): degraded: active em0 (primary), bge0 path_down\n\
             \x20 PORT  LINK  PATH      RTT  ROLE       SINCE                     FLAPS\n\
             \x20 em0   up    up    0.213ms  active     2026-11-21T10:00:00.123Z      0\n\
             \x20 bge0  up    down        -  path_down  2026-11-21T10:00:00.123Z      0\n\
             \x20 last failover: none\n"
        );
    }

    #[test]
    fn only_probed_groups_get_the_path_columns() {
        let mut em0 = port("em0", "up", "active");
        em0.path = Some(PathState::Unknown);
        let probed = group("ok", Some("em0"), vec![em0]);
        let mut plain = group("ok", Some("eth0"), vec![port("eth0", "up", "active")]);
        plain.name = "bond0".into();
        let text = render(&status(vec![probed, plain]), None);
        assert!(
            text.contains("  PORT  LINK  PATH     RTT  ROLE    SINCE"),
            "{text}"
        );
        assert!(text.contains("  PORT  LINK  ROLE    SINCE"), "{text}");
        assert!(
            text.contains("  em0   up    unknown    -  active"),
            "{text}"
        );
    }

    #[test]
    fn a_named_group_is_shown_alone() {
        let mut other = group("ok", Some("eth0"), vec![port("eth0", "up", "active")]);
        other.name = "bond0".into();
        other.driver = Driver::Bond;
        other.primary = "eth0".into();
        let both = status(vec![
            group("ok", Some("em0"), vec![port("em0", "up", "active")]),
            other,
        ]);
        let text = render(&both, Some("bond0"));
        assert!(
            text.contains("bond0 (bond): active eth0 (primary), ok"),
            "{text}"
        );
        assert!(!text.contains("lagg0"), "{text}");
        assert_eq!(render(&both, None).matches("last failover").count(), 2);
    }
}
