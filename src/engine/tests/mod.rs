//! The engine's policy, rule by rule, with synthetic time. Groups driven
//! by a kernel aggregate are in [`kernel`], random sequences against a
//! model kernel in [`kernel_props`]; both build on the helpers here.

mod kernel;
mod kernel_props;
mod path;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::config::{Driver, Facility, FlapDamping, GroupConfig, LogConfig};
use crate::event::{Cause, Kind};
use crate::platform::kernel::{Link, LinkState};

/// The group most tests use.
const G: &str = "lagg0";
/// Damping window of the test configs.
pub(super) const WINDOW_MS: u64 = 10_000;
/// Base damping hold of the test configs.
pub(super) const HOLD_MS: u64 = 60_000;

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub(super) fn group_cfg(
    name: &str,
    ports: &[&str],
    preempt_delay_ms: u64,
    max_flaps: u32,
) -> GroupConfig {
    GroupConfig {
        probe: None,
        name: name.to_owned(),
        driver: Driver::None,
        ports: ports.iter().map(|port| port.to_string()).collect(),
        preempt: true,
        preempt_delay: ms(preempt_delay_ms),
        flap_damping: FlapDamping {
            max_flaps,
            window: ms(WINDOW_MS),
            hold: ms(HOLD_MS),
        },
        enforce: true,
    }
}

pub(super) fn config(groups: Vec<GroupConfig>) -> Arc<Config> {
    Arc::new(Config {
        path: PathBuf::from("laggmond.yml"),
        socket: PathBuf::from("laggmond.sock"),
        socket_group: None,
        resync_interval: Duration::from_secs(60),
        history: 100,
        log: LogConfig {
            syslog: false,
            facility: Facility::Daemon,
            severities: HashMap::new(),
        },
        groups,
        hooks: Vec::new(),
    })
}

/// One group `lagg0` with `ports`, preempting after `preempt_delay_ms`.
fn cfg(ports: &[&str], preempt_delay_ms: u64, max_flaps: u32) -> Arc<Config> {
    config(vec![group_cfg(G, ports, preempt_delay_ms, max_flaps)])
}

pub(super) fn link(name: &str, up: bool) -> Link {
    Link {
        index: 1,
        name: name.to_owned(),
        state: LinkState::from_up(up),
        master: None,
    }
}

pub(super) fn snapshot(links: &[(&str, bool)]) -> Input {
    let links = links.iter().map(|(name, up)| link(name, *up)).collect();
    Input::Platform(Update::Snapshot(links))
}

fn ev(kind: Kind, port: &str) -> What {
    What::port(G, kind, port)
}

fn failover(from: &str, to: &str, cause: Cause, outage_ms: Option<u64>) -> What {
    What {
        from: Some(from.to_owned()),
        to: Some(to.to_owned()),
        cause: Some(cause),
        outage_ms,
        ..What::new(G, Kind::Failover)
    }
}

fn flapping(port: &str, flaps: u32, hold_ms: u64) -> What {
    What {
        flaps: Some(flaps),
        hold_ms: Some(hold_ms),
        ..ev(Kind::Flapping, port)
    }
}

fn all_down(last: Option<&str>) -> What {
    What {
        port: last.map(str::to_owned),
        ..What::new(G, Kind::AllPortsDown)
    }
}

fn recovered(port: &str, outage_ms: u64) -> What {
    What {
        outage_ms: Some(outage_ms),
        ..ev(Kind::GroupRecovered, port)
    }
}

fn set_active(port: Option<&str>) -> Command {
    Command::SetActive {
        group: G.to_owned(),
        port: port.map(str::to_owned),
    }
}

fn clear_damping(group: Option<&str>, port: Option<&str>) -> Command {
    Command::ClearDamping {
        group: group.map(str::to_owned),
        port: port.map(str::to_owned),
    }
}

/// An engine and the origin of its synthetic time; times are in ms.
struct Rig {
    engine: Engine,
    t0: Instant,
}

impl Rig {
    fn new(config: Arc<Config>) -> Rig {
        Rig {
            engine: Engine::new(config),
            t0: Instant::now(),
        }
    }

    /// A rig for `cfg(ports, ..)` whose first snapshot at 0 had every
    /// port up; the start produces no event.
    fn started(ports: &[&str], preempt_delay_ms: u64, max_flaps: u32) -> Rig {
        let mut rig = Rig::new(cfg(ports, preempt_delay_ms, max_flaps));
        let links: Vec<(&str, bool)> = ports.iter().map(|port| (*port, true)).collect();
        assert_eq!(rig.feed(0, snapshot(&links)), vec![]);
        rig
    }

    fn at(&self, millis: u64) -> Instant {
        self.t0 + ms(millis)
    }

    fn feed(&mut self, millis: u64, input: Input) -> Vec<What> {
        let out = self.engine.handle(self.at(millis), input);
        assert_eq!(out.actions, vec![], "driver none never asks the kernel");
        out.events
    }

    fn up(&mut self, millis: u64, name: &str) -> Vec<What> {
        self.feed(millis, Input::Platform(Update::Link(link(name, true))))
    }

    fn down(&mut self, millis: u64, name: &str) -> Vec<What> {
        self.feed(millis, Input::Platform(Update::Link(link(name, false))))
    }

    fn gone(&mut self, millis: u64, name: &str) -> Vec<What> {
        let name = name.to_owned();
        self.feed(millis, Input::Platform(Update::Gone { index: 1, name }))
    }

    fn tick(&mut self, millis: u64) -> Vec<What> {
        self.feed(millis, Input::Tick)
    }

    fn command(&mut self, millis: u64, cmd: Command) -> Result<Vec<What>, String> {
        let out = self.engine.command(self.at(millis), cmd)?;
        assert_eq!(out.actions, vec![]);
        Ok(out.events)
    }

    fn reconfigure(&mut self, millis: u64, config: Arc<Config>) -> Vec<What> {
        let out = self.engine.reconfigure(self.at(millis), config);
        assert_eq!(out.actions, vec![]);
        out.events
    }

    fn group(&self, name: &str) -> &Group {
        self.engine.group(name).expect("group is configured")
    }

    fn active(&self) -> Option<&str> {
        self.group(G).active()
    }

    fn port(&self, name: &str) -> &Port {
        self.group(G).port(name).expect("port is configured")
    }

    /// `next_deadline` in ms since the start.
    fn deadline(&self) -> Option<u64> {
        let deadline = self.engine.next_deadline()?;
        Some(deadline.duration_since(self.t0).as_millis() as u64)
    }
}

// ---- start ----------------------------------------------------------------

#[test]
fn start_with_every_port_up_chooses_the_primary_silently() {
    let rig = Rig::started(&["em0", "em1"], 5_000, 4);
    assert_eq!(rig.active(), Some("em0"));
    assert_eq!(rig.group(G).primary(), "em0");
    assert_eq!(rig.group(G).operator(), None);
    assert_eq!(rig.engine.next_deadline(), None);
    assert_eq!(rig.port("em0").link(), PortLink::Up);
    assert_eq!(rig.port("em0").since(), Some(rig.at(0)));
    assert_eq!(rig.port("em0").transitions_total(), 0);
}

#[test]
fn start_with_the_primary_down_chooses_the_backup_without_a_failover() {
    let mut rig = Rig::new(cfg(&["em0", "em1"], 5_000, 4));
    assert_eq!(
        rig.feed(0, snapshot(&[("em0", false), ("em1", true)])),
        vec![]
    );
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.port("em0").link(), PortLink::Down);
}

#[test]
fn start_with_no_usable_port_is_all_ports_down_without_a_port() {
    let mut rig = Rig::new(cfg(&["em0", "em1"], 5_000, 4));
    assert_eq!(
        rig.feed(0, snapshot(&[("em0", false), ("em1", false)])),
        vec![all_down(None)]
    );
    assert_eq!(rig.active(), None);
    assert_eq!(rig.group(G).down_since(), Some(rig.at(0)));
}

#[test]
fn nothing_is_chosen_or_reported_before_the_first_snapshot() {
    let mut rig = Rig::new(cfg(&["em0", "em1"], 0, 4));
    assert_eq!(rig.engine.groups().len(), 1);
    assert!(!rig.engine.synced());
    assert_eq!(rig.up(0, "em0"), vec![]);
    assert_eq!(rig.down(1, "em0"), vec![]);
    assert_eq!(rig.gone(2, "em1"), vec![]);
    assert_eq!(rig.tick(3), vec![]);
    assert_eq!(rig.active(), None);
    assert_eq!(rig.port("em0").link(), PortLink::Unknown);
    assert_eq!(rig.port("em0").since(), None);
    assert!(!rig.port("em0").usable());
    assert_eq!(rig.engine.next_deadline(), None);
    assert_eq!(
        rig.command(4, set_active(Some("em0"))),
        Err("port em0 has not been seen yet".to_owned())
    );
    assert_eq!(rig.command(5, set_active(None)), Ok(vec![]));
    assert_eq!(rig.active(), None, "clearing must not start the group");
    // The first snapshot is the truth, whatever came before.
    assert_eq!(
        rig.feed(10, snapshot(&[("em0", true), ("em1", true)])),
        vec![]
    );
    assert!(rig.engine.synced());
    assert_eq!(rig.active(), Some("em0"));
    assert_eq!(rig.port("em0").transitions_total(), 0);
}

// ---- failover and preempt -------------------------------------------------

#[test]
fn primary_down_fails_over_at_once_with_no_outage() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 4);
    assert_eq!(
        rig.down(1_000, "em0"),
        vec![
            ev(Kind::PortDown, "em0"),
            failover("em0", "em1", Cause::LinkDown, Some(0)),
        ]
    );
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.port("em0").since(), Some(rig.at(1_000)));
    assert_eq!(rig.port("em0").transitions_total(), 1);
    assert_eq!(rig.engine.next_deadline(), None);
}

#[test]
fn primary_back_preempts_only_after_the_delay() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 4);
    rig.down(1_000, "em0");
    assert_eq!(rig.up(2_000, "em0"), vec![ev(Kind::PortUp, "em0")]);
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.deadline(), Some(7_000));
    assert_eq!(rig.tick(6_999), vec![]);
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(
        rig.tick(7_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
    assert_eq!(rig.active(), Some("em0"));
    assert_eq!(rig.engine.next_deadline(), None);
    assert_eq!(rig.tick(7_001), vec![], "extra ticks are harmless");
}

#[test]
fn a_late_tick_preempts_at_once() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 4);
    rig.down(1_000, "em0");
    rig.up(2_000, "em0");
    assert_eq!(
        rig.tick(60_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn a_zero_preempt_delay_preempts_with_the_link_up() {
    let mut rig = Rig::started(&["em0", "em1"], 0, 4);
    rig.down(1_000, "em0");
    assert_eq!(
        rig.up(2_000, "em0"),
        vec![
            ev(Kind::PortUp, "em0"),
            failover("em1", "em0", Cause::Preempt, None),
        ]
    );
    assert_eq!(rig.engine.next_deadline(), None);
}

#[test]
fn a_drop_during_the_delay_restarts_the_clock() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 10);
    rig.down(1_000, "em0");
    rig.up(2_000, "em0");
    assert_eq!(rig.down(4_000, "em0"), vec![ev(Kind::PortDown, "em0")]);
    assert_eq!(rig.engine.next_deadline(), None);
    assert_eq!(rig.tick(7_000), vec![]);
    assert_eq!(rig.up(8_000, "em0"), vec![ev(Kind::PortUp, "em0")]);
    assert_eq!(rig.deadline(), Some(13_000));
    assert_eq!(rig.tick(12_999), vec![]);
    assert_eq!(
        rig.tick(13_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn without_preempt_the_active_port_sticks() {
    let mut conf = group_cfg(G, &["em0", "em1"], 1_000, 4);
    conf.preempt = false;
    let mut rig = Rig::new(config(vec![conf]));
    rig.feed(0, snapshot(&[("em0", true), ("em1", true)]));
    rig.down(1_000, "em0");
    assert_eq!(rig.up(2_000, "em0"), vec![ev(Kind::PortUp, "em0")]);
    assert_eq!(rig.engine.next_deadline(), None);
    assert_eq!(rig.tick(1_000_000), vec![]);
    assert_eq!(rig.active(), Some("em1"));
    // It still fails over when the sticky port fails.
    assert_eq!(
        rig.down(1_000_001, "em1"),
        vec![
            ev(Kind::PortDown, "em1"),
            failover("em1", "em0", Cause::LinkDown, Some(0)),
        ]
    );
}

#[test]
fn the_best_steady_port_preempts_first() {
    let mut rig = Rig::started(&["em0", "em1", "em2"], 5_000, 10);
    rig.down(100, "em0");
    rig.down(200, "em1");
    assert_eq!(rig.active(), Some("em2"));
    rig.up(1_000, "em1");
    rig.up(3_000, "em0");
    assert_eq!(rig.deadline(), Some(6_000));
    assert_eq!(
        rig.tick(6_000),
        vec![failover("em2", "em1", Cause::Preempt, None)]
    );
    assert_eq!(rig.deadline(), Some(8_000));
    assert_eq!(
        rig.tick(8_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
    assert_eq!(rig.engine.next_deadline(), None);
}

#[test]
fn when_the_active_port_fails_the_first_usable_port_takes_over_without_delay() {
    let mut rig = Rig::started(&["em0", "em1", "em2"], 5_000, 10);
    rig.down(100, "em0");
    rig.down(200, "em1");
    rig.up(1_000, "em0");
    // em0 has not been up for the delay, but em2 is gone: em0 at once.
    assert_eq!(
        rig.down(2_000, "em2"),
        vec![
            ev(Kind::PortDown, "em2"),
            failover("em2", "em0", Cause::LinkDown, Some(0)),
        ]
    );
}

#[test]
fn a_worse_port_coming_up_changes_nothing() {
    let mut rig = Rig::started(&["em0", "em1"], 0, 4);
    rig.down(100, "em1");
    assert_eq!(rig.up(200, "em1"), vec![ev(Kind::PortUp, "em1")]);
    assert_eq!(rig.active(), Some("em0"));
    assert_eq!(rig.engine.next_deadline(), None);
}

// ---- flap damping ---------------------------------------------------------

#[test]
fn a_flapping_primary_is_damped_and_only_preempts_after_damping_and_delay() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 2);
    rig.down(100, "em0");
    rig.up(200, "em0");
    assert_eq!(
        rig.tick(1_200),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
    assert_eq!(
        rig.down(1_300, "em0"),
        vec![
            ev(Kind::PortDown, "em0"),
            flapping("em0", 3, HOLD_MS),
            failover("em0", "em1", Cause::LinkDown, Some(0)),
        ]
    );
    let end = 1_300 + HOLD_MS;
    assert_eq!(rig.port("em0").damped_until(), Some(rig.at(end)));
    assert_eq!(rig.up(1_400, "em0"), vec![ev(Kind::PortUp, "em0")]);
    assert!(!rig.port("em0").usable());
    assert_eq!(rig.port("em0").flaps_in_window(rig.at(1_400)), 4);
    assert_eq!(rig.deadline(), Some(end));
    assert_eq!(rig.tick(5_000), vec![], "preempt_delay alone is not enough");
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.tick(end - 1), vec![]);
    assert_eq!(rig.tick(end), vec![ev(Kind::FlapCleared, "em0")]);
    assert!(rig.port("em0").usable());
    assert_eq!(rig.port("em0").damped_until(), None);
    assert_eq!(rig.port("em0").flaps_in_window(rig.at(end)), 0);
    assert_eq!(rig.port("em0").transitions_total(), 4);
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.deadline(), Some(end + 1_000));
    assert_eq!(
        rig.tick(end + 1_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn transitions_outside_the_window_do_not_count() {
    let mut rig = Rig::started(&["em0", "em1"], 0, 2);
    rig.down(0, "em0");
    rig.up(1_000, "em0");
    // The first transition has left the window by now.
    assert_eq!(
        rig.down(WINDOW_MS, "em0"),
        vec![
            ev(Kind::PortDown, "em0"),
            failover("em0", "em1", Cause::LinkDown, Some(0)),
        ]
    );
    assert_eq!(rig.port("em0").flaps_in_window(rig.at(WINDOW_MS)), 2);
    assert_eq!(
        rig.port("em0").flaps_in_window(rig.at(WINDOW_MS + 1_000)),
        1
    );
}

#[test]
fn transitions_while_damped_do_not_extend_the_hold() {
    let mut rig = Rig::started(&["em0", "em1"], 0, 0);
    rig.down(0, "em1");
    for at in 1..20 {
        let events = if at % 2 == 1 {
            rig.up(at, "em1")
        } else {
            rig.down(at, "em1")
        };
        assert!(events.iter().all(|what| what.kind != Kind::Flapping));
    }
    assert_eq!(rig.port("em1").damped_until(), Some(rig.at(HOLD_MS)));
}

#[test]
fn damping_doubles_up_to_eight_times_and_starts_over_after_a_quiet_hold() {
    // max_flaps 0: every transition of the backup damps it.
    let mut rig = Rig::started(&["em0", "em1"], 0, 0);
    let mut now = 0;
    let mut link_up = true;
    for factor in [1, 2, 4, 8, 8] {
        link_up = !link_up;
        let events = if link_up {
            rig.up(now, "em1")
        } else {
            rig.down(now, "em1")
        };
        let hold = HOLD_MS * factor;
        assert_eq!(events.last(), Some(&flapping("em1", 1, hold)));
        assert_eq!(rig.port("em1").damped_until(), Some(rig.at(now + hold)));
        now += hold;
        assert_eq!(rig.tick(now), vec![ev(Kind::FlapCleared, "em1")]);
        now += 1;
    }
    // A quiet base hold after the last damping ended: back to 1x.
    now += HOLD_MS;
    let events = if link_up {
        rig.down(now, "em1")
    } else {
        rig.up(now, "em1")
    };
    assert_eq!(events.last(), Some(&flapping("em1", 1, HOLD_MS)));
}

#[test]
fn a_damped_port_that_goes_down_is_a_link_down_failover() {
    let mut rig = Rig::started(&["em0", "em1"], 0, 0);
    assert_eq!(
        rig.down(100, "em0"),
        vec![
            ev(Kind::PortDown, "em0"),
            flapping("em0", 1, HOLD_MS),
            failover("em0", "em1", Cause::LinkDown, Some(0)),
        ]
    );
}

#[test]
fn an_active_port_damped_with_link_up_fails_over_as_damped() {
    let mut rig = Rig::started(&["em0", "em1"], 0, 10);
    rig.down(100, "em0");
    rig.up(200, "em0");
    assert_eq!(rig.active(), Some("em0"));
    // A reload tightens the threshold below the port's history.
    assert_eq!(
        rig.reconfigure(300, cfg(&["em0", "em1"], 0, 1)),
        vec![
            flapping("em0", 2, HOLD_MS),
            failover("em0", "em1", Cause::Damped, None),
        ]
    );
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.port("em0").link(), PortLink::Up);
}

#[test]
fn a_damped_only_port_recovers_the_group_when_the_damping_ends() {
    let mut rig = Rig::started(&["em0"], 0, 0);
    assert_eq!(
        rig.down(100, "em0"),
        vec![
            ev(Kind::PortDown, "em0"),
            flapping("em0", 1, HOLD_MS),
            all_down(Some("em0")),
        ]
    );
    assert_eq!(rig.up(200, "em0"), vec![ev(Kind::PortUp, "em0")]);
    assert_eq!(rig.active(), None);
    let end = 100 + HOLD_MS;
    assert_eq!(
        rig.tick(end),
        vec![ev(Kind::FlapCleared, "em0"), recovered("em0", HOLD_MS)]
    );
    assert_eq!(rig.active(), Some("em0"));
}

// ---- missing and found ports ----------------------------------------------

#[test]
fn a_port_missing_at_start_is_reported_and_preempts_once_found() {
    let mut rig = Rig::new(cfg(&["em0", "em1"], 5_000, 4));
    assert_eq!(
        rig.feed(0, snapshot(&[("em1", true)])),
        vec![ev(Kind::PortMissing, "em0")]
    );
    assert_eq!(rig.port("em0").link(), PortLink::Missing);
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.up(1_000, "em0"), vec![ev(Kind::PortFound, "em0")]);
    assert!(rig.port("em0").usable());
    assert_eq!(rig.port("em0").transitions_total(), 1);
    assert_eq!(rig.deadline(), Some(6_000));
    assert_eq!(
        rig.tick(6_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn a_port_found_down_is_not_usable() {
    let mut rig = Rig::new(cfg(&["em0", "em1"], 0, 4));
    rig.feed(0, snapshot(&[("em1", true)]));
    assert_eq!(rig.down(1_000, "em0"), vec![ev(Kind::PortFound, "em0")]);
    assert_eq!(rig.port("em0").transitions_total(), 0);
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(
        rig.up(2_000, "em0"),
        vec![
            ev(Kind::PortUp, "em0"),
            failover("em1", "em0", Cause::Preempt, None),
        ]
    );
}

#[test]
fn the_only_port_appearing_recovers_the_group_without_a_failover() {
    let mut rig = Rig::new(cfg(&["em0"], 5_000, 4));
    assert_eq!(
        rig.feed(0, snapshot(&[])),
        vec![ev(Kind::PortMissing, "em0"), all_down(None)]
    );
    assert_eq!(
        rig.up(500, "em0"),
        vec![ev(Kind::PortFound, "em0"), recovered("em0", 500)]
    );
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn the_active_port_vanishing_is_a_removed_failover() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 4);
    assert_eq!(
        rig.gone(1_000, "em0"),
        vec![
            ev(Kind::PortMissing, "em0"),
            failover("em0", "em1", Cause::Removed, Some(0)),
        ]
    );
    assert_eq!(rig.port("em0").link(), PortLink::Missing);
    assert_eq!(
        rig.gone(1_500, "em1"),
        vec![ev(Kind::PortMissing, "em1"), all_down(Some("em1")),]
    );
}

#[test]
fn a_backup_vanishing_is_only_port_missing() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 4);
    assert_eq!(rig.gone(1_000, "em1"), vec![ev(Kind::PortMissing, "em1")]);
    assert_eq!(rig.down(1_100, "em1"), vec![ev(Kind::PortFound, "em1")]);
    assert_eq!(rig.gone(1_200, "em1"), vec![ev(Kind::PortMissing, "em1")]);
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn a_snapshot_reports_every_difference() {
    let mut rig = Rig::started(&["em0", "em1", "em2"], 0, 4);
    assert_eq!(
        rig.feed(1_000, snapshot(&[("em0", false), ("em2", true)])),
        vec![
            ev(Kind::PortDown, "em0"),
            ev(Kind::PortMissing, "em1"),
            failover("em0", "em2", Cause::LinkDown, Some(0)),
        ]
    );
}

// ---- all ports down and recovery ------------------------------------------

#[test]
fn all_ports_down_is_reported_once() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 10);
    rig.down(1_000, "em0");
    assert_eq!(
        rig.down(2_000, "em1"),
        vec![ev(Kind::PortDown, "em1"), all_down(Some("em1"))]
    );
    assert_eq!(rig.active(), None);
    assert_eq!(rig.group(G).down_since(), Some(rig.at(2_000)));
    assert_eq!(rig.gone(3_000, "em0"), vec![ev(Kind::PortMissing, "em0")]);
    assert_eq!(rig.tick(4_000), vec![]);
    assert_eq!(rig.engine.next_deadline(), None);
}

#[test]
fn recovery_on_the_last_active_port_is_group_recovered_with_the_outage() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 10);
    rig.down(1_000, "em0");
    rig.down(2_000, "em1");
    assert_eq!(
        rig.up(2_700, "em1"),
        vec![ev(Kind::PortUp, "em1"), recovered("em1", 700)]
    );
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.group(G).down_since(), None);
}

#[test]
fn recovery_on_another_port_is_also_a_link_up_failover() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 10);
    rig.down(1_000, "em0");
    rig.down(2_000, "em1");
    assert_eq!(
        rig.up(2_300, "em0"),
        vec![
            ev(Kind::PortUp, "em0"),
            recovered("em0", 300),
            failover("em1", "em0", Cause::LinkUp, Some(300)),
        ]
    );
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn recovery_after_a_start_without_traffic_counts_from_the_snapshot() {
    let mut rig = Rig::new(cfg(&["em0", "em1"], 5_000, 4));
    rig.feed(100, snapshot(&[("em0", false), ("em1", false)]));
    assert_eq!(
        rig.up(1_100, "em1"),
        vec![ev(Kind::PortUp, "em1"), recovered("em1", 1_000)]
    );
}

// ---- operator -------------------------------------------------------------

#[test]
fn set_active_moves_traffic_and_holds_against_preempt() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    assert_eq!(
        rig.command(1_000, set_active(Some("em1"))),
        Ok(vec![failover("em0", "em1", Cause::Operator, None)])
    );
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.group(G).operator(), Some("em1"));
    assert_eq!(rig.engine.next_deadline(), None);
    assert_eq!(rig.tick(100_000), vec![]);
    // A better port bouncing does not take it back either.
    rig.down(100_100, "em0");
    rig.up(100_200, "em0");
    assert_eq!(rig.tick(200_000), vec![]);
    assert_eq!(rig.active(), Some("em1"));
}

#[test]
fn set_active_on_the_active_port_only_pins_it() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 10);
    rig.down(100, "em0");
    rig.up(200, "em0");
    assert_eq!(rig.command(300, set_active(Some("em1"))), Ok(vec![]));
    assert_eq!(rig.group(G).operator(), Some("em1"));
    assert_eq!(rig.tick(10_000), vec![]);
    assert_eq!(rig.active(), Some("em1"));
}

#[test]
fn set_active_is_refused_with_a_reason() {
    let mut rig = Rig::new(cfg(&["em0", "em1", "em2", "em3"], 0, 0));
    rig.feed(
        0,
        snapshot(&[("em0", true), ("em1", false), ("em2", true), ("em4", true)]),
    );
    rig.down(100, "em2");
    rig.up(200, "em2");
    let refuse = |rig: &mut Rig, cmd: Command| rig.command(300, cmd).unwrap_err();
    let other_group = Command::SetActive {
        group: "lagg9".to_owned(),
        port: Some("em0".to_owned()),
    };
    assert_eq!(refuse(&mut rig, other_group), "no group lagg9");
    assert_eq!(
        refuse(&mut rig, set_active(Some("em4"))),
        "port em4 is not in group lagg0"
    );
    assert_eq!(
        refuse(&mut rig, set_active(Some("em1"))),
        "port em1 is down"
    );
    assert_eq!(
        refuse(&mut rig, set_active(Some("em2"))),
        "port em2 is damped (until clear-damping)"
    );
    assert_eq!(
        refuse(&mut rig, set_active(Some("em3"))),
        "port em3 does not exist"
    );
    assert_eq!(rig.group(G).operator(), None);
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn the_operator_choice_is_dropped_when_its_port_fails() {
    let mut rig = Rig::started(&["em0", "em1", "em2"], 1_000, 4);
    rig.command(1_000, set_active(Some("em2"))).unwrap();
    assert_eq!(
        rig.down(2_000, "em2"),
        vec![
            ev(Kind::PortDown, "em2"),
            failover("em2", "em0", Cause::LinkDown, Some(0)),
        ]
    );
    assert_eq!(rig.group(G).operator(), None);
    // It does not come back with the link.
    assert_eq!(rig.up(3_000, "em2"), vec![ev(Kind::PortUp, "em2")]);
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn clearing_the_operator_choice_restores_the_policy() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    rig.command(1_000, set_active(Some("em1"))).unwrap();
    // em0 has been steady since 0: it preempts at once.
    assert_eq!(
        rig.command(5_000, set_active(None)),
        Ok(vec![failover("em1", "em0", Cause::Preempt, None)])
    );
    assert_eq!(rig.group(G).operator(), None);
}

#[test]
fn clearing_the_operator_choice_still_waits_for_a_recent_port() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    rig.command(1_000, set_active(Some("em1"))).unwrap();
    rig.down(2_000, "em0");
    rig.up(4_500, "em0");
    assert_eq!(rig.command(5_000, set_active(None)), Ok(vec![]));
    assert_eq!(rig.deadline(), Some(5_500));
    assert_eq!(
        rig.tick(5_500),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn clearing_the_operator_choice_without_preempt_keeps_the_port() {
    let mut conf = group_cfg(G, &["em0", "em1"], 0, 4);
    conf.preempt = false;
    let mut rig = Rig::new(config(vec![conf]));
    rig.feed(0, snapshot(&[("em0", true), ("em1", true)]));
    rig.command(1_000, set_active(Some("em1"))).unwrap();
    assert_eq!(rig.command(2_000, set_active(None)), Ok(vec![]));
    assert_eq!(rig.active(), Some("em1"));
}

// ---- clear-damping --------------------------------------------------------

#[test]
fn clear_damping_trusts_the_port_again_and_forgets_the_doubling() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 0);
    rig.down(100, "em0");
    rig.up(200, "em0");
    assert_eq!(rig.port("em0").damped_until(), Some(rig.at(100 + HOLD_MS)));
    assert_eq!(
        rig.command(500, clear_damping(Some(G), Some("em0"))),
        Ok(vec![ev(Kind::FlapCleared, "em0")])
    );
    assert!(rig.port("em0").usable());
    assert_eq!(rig.port("em0").flaps_in_window(rig.at(500)), 0);
    // The preempt clock starts at the clear.
    assert_eq!(rig.deadline(), Some(1_500));
    assert_eq!(
        rig.tick(1_500),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
    // The next damping is back to the base hold.
    let events = rig.down(2_000, "em0");
    assert!(events.contains(&flapping("em0", 1, HOLD_MS)), "{events:?}");
}

#[test]
fn clear_damping_of_an_undamped_port_reports_nothing() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    assert_eq!(rig.command(0, clear_damping(None, None)), Ok(vec![]));
    assert_eq!(rig.command(0, clear_damping(None, Some("em1"))), Ok(vec![]));
}

#[test]
fn clear_damping_errors_name_what_is_wrong() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    assert_eq!(
        rig.command(0, clear_damping(Some("lagg9"), None)),
        Err("no group lagg9".to_owned())
    );
    assert_eq!(
        rig.command(0, clear_damping(Some(G), Some("em7"))),
        Err("port em7 is not in group lagg0".to_owned())
    );
    assert_eq!(
        rig.command(0, clear_damping(None, Some("em7"))),
        Err("no group has port em7".to_owned())
    );
}

#[test]
fn clear_damping_without_a_group_covers_every_group() {
    let mut rig = Rig::new(config(vec![
        group_cfg("lagg0", &["em0", "em1"], 0, 0),
        group_cfg("lagg1", &["em2", "em3"], 0, 0),
    ]));
    rig.feed(
        0,
        snapshot(&[("em0", true), ("em1", true), ("em2", true), ("em3", true)]),
    );
    rig.down(100, "em1");
    rig.down(100, "em3");
    let events = rig.command(200, clear_damping(None, None)).unwrap();
    assert_eq!(
        events,
        vec![
            What::port("lagg0", Kind::FlapCleared, "em1"),
            What::port("lagg1", Kind::FlapCleared, "em3"),
        ]
    );
}

// ---- reconfigure ----------------------------------------------------------

#[test]
fn reconfigure_keeps_the_state_of_remaining_groups_and_ports() {
    let mut rig = Rig::started(&["em0", "em1", "em2"], 1_000, 0);
    rig.down(100, "em0");
    rig.command(200, set_active(Some("em2"))).unwrap();
    let damped_until = rig.port("em0").damped_until();
    assert!(damped_until.is_some());
    let since = rig.port("em0").since();
    assert_eq!(
        rig.reconfigure(300, cfg(&["em0", "em1", "em2"], 9_000, 0)),
        vec![]
    );
    assert_eq!(rig.active(), Some("em2"));
    assert_eq!(rig.group(G).operator(), Some("em2"));
    assert_eq!(rig.port("em0").damped_until(), damped_until);
    assert_eq!(rig.port("em0").since(), since);
    assert_eq!(rig.port("em0").transitions_total(), 1);
    assert_eq!(rig.group(G).config().preempt_delay, ms(9_000));
}

#[test]
fn reconfigure_adds_a_port_known_from_an_earlier_snapshot() {
    let mut rig = Rig::new(cfg(&["em0", "em1"], 1_000, 4));
    rig.feed(0, snapshot(&[("em0", true), ("em1", true), ("em2", false)]));
    rig.down(100, "em0");
    assert_eq!(rig.active(), Some("em1"));
    // Interfaces in no group produce nothing but are remembered.
    assert_eq!(rig.up(200, "em2"), vec![]);
    assert_eq!(
        rig.reconfigure(300, cfg(&["em2", "em1", "em3"], 1_000, 4)),
        vec![ev(Kind::PortMissing, "em3")]
    );
    let names: Vec<&str> = rig.group(G).ports().iter().map(Port::name).collect();
    assert_eq!(names, ["em2", "em1", "em3"]);
    assert_eq!(rig.port("em2").link(), PortLink::Up);
    assert_eq!(rig.port("em2").since(), Some(rig.at(300)));
    assert_eq!(rig.port("em3").link(), PortLink::Missing);
    // The new primary preempts by the usual rules.
    assert_eq!(rig.deadline(), Some(1_300));
    assert_eq!(
        rig.tick(1_300),
        vec![failover("em1", "em2", Cause::Preempt, None)]
    );
    // A port dropped from the config is forgotten.
    assert!(rig.group(G).port("em0").is_none());
    assert_eq!(rig.up(1_400, "em0"), vec![]);
}

#[test]
fn reconfigure_before_the_first_snapshot_keeps_ports_unknown() {
    let mut rig = Rig::new(cfg(&["em0"], 1_000, 4));
    rig.up(0, "em1");
    assert_eq!(rig.reconfigure(100, cfg(&["em0", "em1"], 1_000, 4)), vec![]);
    assert_eq!(rig.port("em1").link(), PortLink::Unknown);
    assert_eq!(rig.active(), None);
}

#[test]
fn reconfigure_drops_a_removed_active_port_with_a_failover() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    assert_eq!(
        rig.reconfigure(100, cfg(&["em1"], 1_000, 4)),
        vec![failover("em0", "em1", Cause::Removed, None)]
    );
    assert_eq!(
        rig.reconfigure(200, cfg(&["em5"], 1_000, 4)),
        vec![ev(Kind::PortMissing, "em5"), all_down(Some("em1"))]
    );
}

#[test]
fn reconfigure_drops_an_operator_choice_that_left_the_group() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    rig.command(100, set_active(Some("em1"))).unwrap();
    assert_eq!(
        rig.reconfigure(200, cfg(&["em0"], 1_000, 4)),
        vec![failover("em1", "em0", Cause::Removed, None)]
    );
    assert_eq!(rig.group(G).operator(), None);
}

#[test]
fn reconfigure_adds_and_removes_groups() {
    let mut rig = Rig::new(config(vec![
        group_cfg("lagg0", &["em0", "em1"], 0, 4),
        group_cfg("lagg1", &["em2", "em3"], 0, 4),
    ]));
    rig.feed(
        0,
        snapshot(&[("em0", true), ("em1", true), ("em2", true), ("em3", false)]),
    );
    let events = rig.reconfigure(
        100,
        config(vec![
            group_cfg("lagg2", &["em3", "em2"], 0, 4),
            group_cfg("lagg0", &["em0", "em1"], 0, 4),
            group_cfg("lagg3", &["em8"], 0, 4),
        ]),
    );
    assert_eq!(
        events,
        vec![
            What::port("lagg3", Kind::PortMissing, "em8"),
            What::new("lagg3", Kind::AllPortsDown),
        ]
    );
    let names: Vec<&str> = rig.engine.groups().iter().map(Group::name).collect();
    assert_eq!(names, ["lagg2", "lagg0", "lagg3"]);
    assert_eq!(rig.engine.config().groups.len(), 3);
    assert_eq!(rig.group("lagg2").active(), Some("em2"));
    assert!(rig.engine.group("lagg1").is_none());
    assert_eq!(
        rig.up(200, "em3"),
        vec![
            What::port("lagg2", Kind::PortUp, "em3"),
            What {
                from: Some("em2".to_owned()),
                to: Some("em3".to_owned()),
                cause: Some(Cause::Preempt),
                ..What::new("lagg2", Kind::Failover)
            },
        ]
    );
}

// ---- duplicates, unconfigured interfaces, several groups -------------------

#[test]
fn duplicate_updates_produce_nothing() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    rig.down(100, "em1");
    assert_eq!(rig.down(200, "em1"), vec![]);
    assert_eq!(rig.up(300, "em0"), vec![]);
    assert_eq!(
        rig.feed(400, snapshot(&[("em0", true), ("em1", false)])),
        vec![]
    );
    rig.gone(500, "em1");
    assert_eq!(rig.gone(600, "em1"), vec![]);
    assert_eq!(rig.port("em1").transitions_total(), 1);
    assert_eq!(rig.port("em1").since(), Some(rig.at(500)));
}

#[test]
fn interfaces_in_no_group_produce_nothing() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    assert_eq!(rig.up(100, "lo0"), vec![]);
    assert_eq!(rig.down(200, "lo0"), vec![]);
    assert_eq!(rig.gone(300, "lo0"), vec![]);
    assert_eq!(
        rig.feed(
            400,
            snapshot(&[("em0", true), ("em1", true), ("igb0", true)])
        ),
        vec![]
    );
}

#[test]
fn groups_are_independent() {
    let mut rig = Rig::new(config(vec![
        group_cfg("lagg0", &["em0", "em1"], 1_000, 4),
        group_cfg("lagg1", &["em2", "em3"], 2_000, 4),
        group_cfg("lagg2", &["em4", "em5"], 3_000, 4),
    ]));
    let all: Vec<(&str, bool)> = ["em0", "em1", "em2", "em3", "em4", "em5"]
        .into_iter()
        .map(|name| (name, true))
        .collect();
    assert_eq!(rig.feed(0, snapshot(&all)), vec![]);
    let lagg1_failover = What {
        from: Some("em2".to_owned()),
        to: Some("em3".to_owned()),
        cause: Some(Cause::LinkDown),
        outage_ms: Some(0),
        ..What::new("lagg1", Kind::Failover)
    };
    assert_eq!(
        rig.down(100, "em2"),
        vec![What::port("lagg1", Kind::PortDown, "em2"), lagg1_failover]
    );
    assert_eq!(
        rig.down(100, "em5"),
        vec![What::port("lagg2", Kind::PortDown, "em5")]
    );
    let actives: Vec<Option<&str>> = rig.engine.groups().iter().map(Group::active).collect();
    assert_eq!(actives, [Some("em0"), Some("em3"), Some("em4")]);
    rig.up(200, "em2");
    rig.up(200, "em5");
    assert_eq!(rig.deadline(), Some(2_200));
    assert_eq!(rig.tick(2_200).len(), 1);
    assert_eq!(rig.group("lagg1").active(), Some("em2"));
    assert_eq!(rig.engine.next_deadline(), None);
}

// ---- actions --------------------------------------------------------------

#[test]
fn a_failed_action_is_enforce_failed() {
    let mut rig = Rig::started(&["em0", "em1"], 1_000, 4);
    let done = |group: &str, result| {
        Input::Platform(Update::Answer(Answer {
            group: group.to_owned(),
            port: "em1".to_owned(),
            result,
        }))
    };
    assert_eq!(
        rig.feed(100, done(G, Err("Device busy".to_owned()))),
        vec![What {
            error: Some("Device busy".to_owned()),
            ..ev(Kind::EnforceFailed, "em1")
        }]
    );
    assert_eq!(rig.feed(200, done(G, Ok(()))), vec![]);
    assert_eq!(rig.feed(300, done("lagg9", Err("gone".to_owned()))), vec![]);
}

// ---- robustness -----------------------------------------------------------

#[test]
fn absurd_durations_do_not_panic() {
    let mut conf = group_cfg(G, &["em0", "em1"], 0, 0);
    conf.preempt_delay = Duration::MAX;
    conf.flap_damping.hold = Duration::MAX;
    conf.flap_damping.window = Duration::MAX;
    let mut rig = Rig::new(config(vec![conf]));
    rig.feed(0, snapshot(&[("em0", true), ("em1", true)]));
    let events = rig.down(100, "em0");
    assert_eq!(events[1].hold_ms, Some(u64::MAX));
    assert!(rig.port("em0").damped_until().is_some());
    rig.up(200, "em0");
    rig.command(300, clear_damping(None, None)).unwrap();
    assert_eq!(rig.tick(400), vec![]);
    assert_eq!(rig.active(), Some("em1"));
}

#[test]
fn a_group_without_ports_does_not_panic() {
    let mut rig = Rig::new(cfg(&[], 0, 4));
    assert_eq!(rig.group(G).primary(), "");
    assert_eq!(rig.feed(0, snapshot(&[])), vec![all_down(None)]);
    assert_eq!(rig.tick(100), vec![]);
}

// ---- random sequences ------------------------------------------------------

/// One random step of the property test; port indexes are taken modulo
/// the number of interfaces.
#[derive(Clone, Debug)]
enum Step {
    Up(usize),
    Down(usize),
    Gone(usize),
    /// Per interface: absent, down or up.
    Snapshot(Vec<Option<bool>>),
    /// Let time pass without telling the engine.
    Wait(u64),
    /// Let time pass, then tick (possibly late).
    TickAfter(u64),
    /// Tick exactly at the next deadline, if there is one.
    TickAtDeadline,
    SetActive(usize, Option<usize>),
    ClearDamping(usize),
    Reload,
    /// A path verdict for an interface: up (with a round trip) or down.
    Path(usize, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..16usize).prop_map(Step::Up),
        4 => (0..16usize).prop_map(Step::Down),
        1 => (0..16usize).prop_map(Step::Gone),
        1 => prop::collection::vec(prop::option::of(any::<bool>()), 16).prop_map(Step::Snapshot),
        2 => (0..3_000u64).prop_map(Step::Wait),
        2 => (0..3_000u64).prop_map(Step::TickAfter),
        3 => Just(Step::TickAtDeadline),
        1 => (0..3usize, prop::option::of(0..4usize)).prop_map(|(g, p)| Step::SetActive(g, p)),
        1 => (0..16usize).prop_map(Step::ClearDamping),
        1 => Just(Step::Reload),
        4 => (0..16usize, any::<bool>()).prop_map(|(i, up)| Step::Path(i, up)),
    ]
}

/// Random groups: sizes, preempt, preempt_delay, max_flaps, window, hold,
/// and whether they probe paths.
fn groups() -> impl Strategy<Value = Vec<GroupConfig>> {
    let group = (
        1..=4usize,
        any::<bool>(),
        0..2_000u64,
        0..4u32,
        1..5_000u64,
        1..5_000u64,
        any::<bool>(),
    );
    prop::collection::vec(group, 1..=3).prop_map(|groups| {
        let mut next_port = 0;
        groups
            .into_iter()
            .enumerate()
            .map(
                |(index, (size, preempt, delay, max_flaps, window, hold, probed))| {
                    let ports: Vec<String> = (next_port..next_port + size)
                        .map(|n| format!("p{n}"))
                        .collect();
                    next_port += size;
                    let port_refs: Vec<&str> = ports.iter().map(String::as_str).collect();
                    let mut conf = group_cfg(&format!("g{index}"), &port_refs, delay, max_flaps);
                    conf.preempt = preempt;
                    conf.flap_damping.window = ms(window);
                    conf.flap_damping.hold = ms(hold);
                    conf.probe = probed.then(path::probe);
                    conf
                },
            )
            .collect()
    })
}

/// Every interface a test may name: the configured ports and one more.
fn interface_names(groups: &[GroupConfig]) -> Vec<String> {
    let mut names: Vec<String> = groups.iter().flat_map(|g| g.ports.clone()).collect();
    names.push("lo0".to_owned());
    names
}

/// Feeds one step; returns the events and whether it was a tick.
fn run_step(
    engine: &mut Engine,
    now: &mut Instant,
    step: &Step,
    names: &[String],
) -> (Vec<What>, bool) {
    let name = |index: usize| names[index % names.len()].clone();
    let platform = |update| Input::Platform(update);
    let link = |index: usize, up: bool| platform(Update::Link(self::link(&name(index), up)));
    let input = match step {
        Step::Up(index) => link(*index, true),
        Step::Down(index) => link(*index, false),
        Step::Gone(index) => platform(Update::Gone {
            index: 1,
            name: name(*index),
        }),
        Step::Snapshot(states) => {
            let links = names
                .iter()
                .zip(states)
                .filter_map(|(name, state)| state.map(|up| self::link(name, up)))
                .collect();
            platform(Update::Snapshot(links))
        }
        Step::Wait(millis) => {
            *now += ms(*millis);
            return (Vec::new(), false);
        }
        Step::TickAfter(millis) => {
            *now += ms(*millis);
            Input::Tick
        }
        Step::TickAtDeadline => {
            if let Some(deadline) = engine.next_deadline() {
                *now = (*now).max(deadline);
            }
            Input::Tick
        }
        Step::SetActive(group, port) => {
            let groups = engine.groups();
            let group = &groups[group % groups.len()];
            let ports = group.ports();
            let cmd = Command::SetActive {
                group: group.name().to_owned(),
                port: port.map(|p| ports[p % ports.len()].name().to_owned()),
            };
            return (
                engine
                    .command(*now, cmd)
                    .map(|out| out.events)
                    .unwrap_or_default(),
                false,
            );
        }
        Step::ClearDamping(index) => {
            let cmd = Command::ClearDamping {
                group: None,
                port: Some(name(*index)),
            };
            return (
                engine
                    .command(*now, cmd)
                    .map(|out| out.events)
                    .unwrap_or_default(),
                false,
            );
        }
        Step::Reload => {
            let config = engine.config().clone();
            return (engine.reconfigure(*now, config).events, false);
        }
        Step::Path(index, up) => {
            let port = name(*index);
            let groups = engine.groups();
            let group = groups
                .iter()
                .find(|group| group.has_port(&port))
                .unwrap_or(&groups[0]);
            let verdict = if *up {
                crate::probe::PathVerdict::Up { rtt: ms(1) }
            } else {
                crate::probe::PathVerdict::Down {
                    missed: 1,
                    targets: Vec::new(),
                }
            };
            Input::Path(crate::probe::PathReport {
                group: group.name().to_owned(),
                port,
                verdict,
            })
        }
    };
    let is_tick = matches!(input, Input::Tick);
    (engine.handle(*now, input).events, is_tick)
}

/// The invariants that hold after every step.
fn check(
    engine: &Engine,
    now: Instant,
    events: &[What],
    was_tick: bool,
) -> Result<(), TestCaseError> {
    for group in engine.groups() {
        // A dead path never leaves a group without traffic: any port with
        // link that is not damped will do when no path works.
        let any_linked = group.ports().iter().any(Port::has_trusted_link);
        if engine.synced() {
            prop_assert_eq!(
                any_linked,
                group.active().is_some(),
                "group {}",
                group.name()
            );
        }
        if let Some(active) = group.active() {
            let port = group.port(active);
            prop_assert!(
                port.is_some_and(Port::has_trusted_link),
                "active {active} unusable"
            );
            // A port with a dead path is never active while a port with a
            // working (or not yet judged) path could be.
            let any_usable = group.ports().iter().any(Port::usable);
            prop_assert!(
                !any_usable || port.is_some_and(Port::usable),
                "active {active} has a dead path while another port works"
            );
        }
        if group.config().probe.is_none() {
            for port in group.ports() {
                prop_assert_eq!(port.path(), crate::probe::PathState::Off);
            }
        }
        if let Some(operator) = group.operator() {
            prop_assert_eq!(group.active(), Some(operator));
        }
        let mine = |what: &&What| what.group.as_deref() == Some(group.name());
        if let Some(last) = events
            .iter()
            .filter(mine)
            .rfind(|what| what.kind == Kind::Failover)
        {
            prop_assert_eq!(last.to.as_deref(), group.active());
        }
        for what in events.iter().filter(mine) {
            match what.kind {
                Kind::Failover => {
                    prop_assert!(what.from.is_some() && what.to.is_some());
                    prop_assert_ne!(&what.from, &what.to);
                    prop_assert!(what.cause.is_some());
                }
                Kind::GroupRecovered => prop_assert!(what.outage_ms.is_some()),
                _ => {}
            }
        }
    }
    if was_tick {
        if let Some(deadline) = engine.next_deadline() {
            prop_assert!(deadline > now, "deadline in the past after a tick");
        }
    }
    Ok(())
}

/// `all_paths_down` and `paths_recovered` alternate per group, starting
/// with `all_paths_down`, and no group stays reported as without paths
/// while one of its ports is usable.
fn check_paths_lost(
    engine: &Engine,
    events: &[What],
    lost: &mut HashMap<String, bool>,
) -> Result<(), TestCaseError> {
    for what in events {
        let Some(group) = &what.group else {
            continue;
        };
        let was_lost = lost.get(group).copied().unwrap_or(false);
        match what.kind {
            Kind::AllPathsDown => {
                prop_assert!(!was_lost, "all_paths_down twice in {}", group);
                lost.insert(group.clone(), true);
            }
            Kind::PathsRecovered => {
                prop_assert!(was_lost, "paths_recovered without a loss in {}", group);
                lost.insert(group.clone(), false);
            }
            _ => {}
        }
    }
    for group in engine.groups() {
        let usable = group.ports().iter().any(Port::usable);
        let reported_lost = lost.get(group.name()).copied().unwrap_or(false);
        prop_assert!(
            !(usable && reported_lost && group.active().is_some()),
            "group {} still reported without paths",
            group.name()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_for_any_sequence(
        groups in groups(),
        steps in prop::collection::vec(step(), 1..80),
        snapshot_first in any::<bool>(),
    ) {
        let names = interface_names(&groups);
        let mut engine = Engine::new(config(groups));
        let mut now = Instant::now();
        if snapshot_first {
            let all_up = names.iter().map(|name| link(name, true)).collect();
            engine.handle(now, Input::Platform(Update::Snapshot(all_up)));
        }
        let mut paths_lost: HashMap<String, bool> = HashMap::new();
        for step in &steps {
            let (events, was_tick) = run_step(&mut engine, &mut now, step, &names);
            check(&engine, now, &events, was_tick)?;
            check_paths_lost(&engine, &events, &mut paths_lost)?;
        }
    }
}
