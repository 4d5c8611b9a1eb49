//! The path rules, with synthetic time: a port whose link is up but whose
//! probes go unanswered is not trusted, and a target that stops answering
//! never leaves a group without a port.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{
    cfg, clear_damping, config, ev, failover, flapping, group_cfg, link, ms, recovered, set_active,
    snapshot, Rig, G, HOLD_MS,
};
use crate::config::{Driver, GroupConfig, ProbeConfig, Require};
use crate::engine::*;
use crate::event::{Cause, Kind, What};
use crate::platform::kernel::{Aggregate, Answer, Update};
use crate::probe::{PathReport, PathState, PathVerdict};

/// The probe settings of the test groups. The engine only needs to know
/// that there are some, and how soon after a link comes up a dead path
/// can be judged (`missed` × `interval`): kept short here, so that a
/// verdict at any moment of a test is one the probes could have given.
pub(super) fn probe() -> ProbeConfig {
    ProbeConfig {
        arp: vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)],
        interval: ms(10),
        missed: 3,
        require: Require::Any,
        source: Ipv4Addr::UNSPECIFIED,
    }
}

/// `cfg` with a probe.
fn probed_cfg(ports: &[&str], preempt_delay_ms: u64, max_flaps: u32) -> Arc<Config> {
    let mut group = group_cfg(G, ports, preempt_delay_ms, max_flaps);
    group.probe = Some(probe());
    config(vec![group])
}

fn up_verdict(rtt_ms: u64) -> PathVerdict {
    PathVerdict::Up { rtt: ms(rtt_ms) }
}

fn down_verdict() -> PathVerdict {
    PathVerdict::Down {
        missed: 3,
        targets: probe().arp,
    }
}

fn path_down(port: &str) -> What {
    What {
        targets: Some(vec!["192.0.2.1".to_owned(), "192.0.2.2".to_owned()]),
        missed: Some(3),
        ..ev(Kind::PathDown, port)
    }
}

fn path_up(port: &str, rtt_ms: u64) -> What {
    What {
        rtt_ms: Some(rtt_ms),
        ..ev(Kind::PathUp, port)
    }
}

fn all_paths_down(port: &str) -> What {
    What {
        port: Some(port.to_owned()),
        ..What::new(G, Kind::AllPathsDown)
    }
}

fn report(group: &str, port: &str, verdict: PathVerdict) -> Input {
    Input::Path(PathReport {
        group: group.to_owned(),
        port: port.to_owned(),
        verdict,
    })
}

impl Rig {
    /// A probed group whose first snapshot at 0 had every port up, and
    /// whose probes then found every path up at 0 (silently).
    fn probed(ports: &[&str], preempt_delay_ms: u64, max_flaps: u32) -> Rig {
        let mut rig = Rig::new(probed_cfg(ports, preempt_delay_ms, max_flaps));
        let links: Vec<(&str, bool)> = ports.iter().map(|port| (*port, true)).collect();
        assert_eq!(rig.feed(0, snapshot(&links)), vec![]);
        for port in ports {
            assert_eq!(rig.path(0, port, up_verdict(1)), vec![]);
        }
        rig
    }

    fn path(&mut self, millis: u64, port: &str, verdict: PathVerdict) -> Vec<What> {
        self.feed(millis, report(G, port, verdict))
    }
}

// ---- driver none -----------------------------------------------------------

#[test]
fn a_dead_path_on_the_active_port_fails_over_as_path_down() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 4);
    assert_eq!(rig.active(), Some("em0"));
    assert_eq!(
        rig.path(1_000, "em0", down_verdict()),
        vec![
            path_down("em0"),
            failover("em0", "em1", Cause::PathDown, None)
        ]
    );
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.port("em0").path(), PathState::Down);
    assert_eq!(rig.port("em0").rtt(), None);
    assert!(!rig.port("em0").usable());
    assert!(rig.port("em0").has_trusted_link());
    assert_eq!(rig.port("em0").transitions_total(), 1);
    // The same verdict again changes nothing.
    assert_eq!(rig.path(2_000, "em0", down_verdict()), vec![]);
}

#[test]
fn a_dead_path_on_a_backup_is_only_path_down() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 4);
    assert_eq!(
        rig.path(1_000, "em1", down_verdict()),
        vec![path_down("em1")]
    );
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn a_path_back_fails_back_after_the_preempt_delay_not_before() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 4);
    rig.path(1_000, "em0", down_verdict());
    assert_eq!(
        rig.path(2_000, "em0", up_verdict(3)),
        vec![path_up("em0", 3)]
    );
    assert_eq!(rig.port("em0").rtt(), Some(ms(3)));
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.deadline(), Some(7_000));
    assert_eq!(rig.tick(6_999), vec![]);
    assert_eq!(
        rig.tick(7_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
    assert_eq!(rig.active(), Some("em0"));
    // A newer round trip replaces the old one silently.
    assert_eq!(rig.path(8_000, "em0", up_verdict(2)), vec![]);
    assert_eq!(rig.port("em0").rtt(), Some(ms(2)));
}

#[test]
fn a_path_that_dies_again_during_the_delay_restarts_the_clock() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 10);
    rig.path(1_000, "em0", down_verdict());
    rig.path(2_000, "em0", up_verdict(1));
    assert_eq!(
        rig.path(4_000, "em0", down_verdict()),
        vec![path_down("em0")]
    );
    assert_eq!(rig.deadline(), None);
    assert_eq!(
        rig.path(5_000, "em0", up_verdict(1)),
        vec![path_up("em0", 1)]
    );
    assert_eq!(rig.deadline(), Some(10_000));
    assert_eq!(rig.tick(7_000), vec![]);
    assert_eq!(
        rig.tick(10_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn all_paths_down_keeps_traffic_on_the_linked_port_once_then_recovers() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 10);
    rig.path(1_000, "em0", down_verdict());
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(
        rig.path(1_500, "em1", down_verdict()),
        vec![path_down("em1"), all_paths_down("em1")]
    );
    assert_eq!(rig.active(), Some("em1"), "traffic stays on a linked port");
    assert_eq!(rig.tick(2_000), vec![]);
    assert_eq!(rig.path(2_500, "em1", down_verdict()), vec![]);
    assert_eq!(
        rig.command(2_600, set_active(Some("em0"))),
        Err("port em0 has no working path".to_owned())
    );
    // The active port's path works again: no failover, only the recovery.
    assert_eq!(
        rig.path(3_000, "em1", up_verdict(4)),
        vec![path_up("em1", 4), ev(Kind::PathsRecovered, "em1")]
    );
    assert_eq!(rig.active(), Some("em1"));
    // em0 comes back and preempts by the usual rules.
    assert_eq!(
        rig.path(4_000, "em0", up_verdict(1)),
        vec![path_up("em0", 1)]
    );
    assert_eq!(
        rig.tick(9_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn a_path_back_on_another_port_moves_traffic_at_once_and_recovers() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 10);
    rig.path(1_000, "em1", down_verdict());
    assert_eq!(
        rig.path(1_500, "em0", down_verdict()),
        vec![path_down("em0"), all_paths_down("em0")]
    );
    assert_eq!(rig.active(), Some("em0"));
    assert_eq!(
        rig.path(2_000, "em1", up_verdict(1)),
        vec![
            path_up("em1", 1),
            failover("em0", "em1", Cause::PathDown, None),
            ev(Kind::PathsRecovered, "em1"),
        ]
    );
}

#[test]
fn with_every_path_dead_losing_the_link_moves_to_the_next_linked_port() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 10);
    rig.path(1_000, "em0", down_verdict());
    rig.path(1_500, "em1", down_verdict());
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(
        rig.down(2_000, "em1"),
        vec![
            ev(Kind::PortDown, "em1"),
            failover("em1", "em0", Cause::LinkDown, Some(0)),
        ]
    );
    assert_eq!(rig.port("em1").path(), PathState::Unknown);
    assert_eq!(
        rig.down(3_000, "em0"),
        vec![ev(Kind::PortDown, "em0"), super::all_down(Some("em0"))]
    );
    // em1 comes back with its path not judged yet: usable, and the paths
    // count as recovered with it.
    assert_eq!(
        rig.up(4_000, "em1"),
        vec![
            ev(Kind::PortUp, "em1"),
            recovered("em1", 1_000),
            failover("em0", "em1", Cause::LinkUp, Some(1_000)),
            ev(Kind::PathsRecovered, "em1"),
        ]
    );
}

#[test]
fn a_dead_path_on_the_only_port_keeps_traffic_there() {
    let mut rig = Rig::probed(&["em0"], 5_000, 4);
    assert_eq!(
        rig.path(1_000, "em0", down_verdict()),
        vec![path_down("em0"), all_paths_down("em0")]
    );
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn a_flapping_path_damps_the_port() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 2);
    rig.path(1_000, "em0", down_verdict());
    rig.path(2_000, "em0", up_verdict(1));
    assert_eq!(
        rig.path(3_000, "em0", down_verdict()),
        vec![path_down("em0"), flapping("em0", 3, HOLD_MS)]
    );
    assert_eq!(rig.port("em0").damped_until(), Some(rig.at(63_000)));
    assert_eq!(rig.port("em0").transitions_total(), 3);
    // Answers again, but damped: not trusted until the damping ends.
    assert_eq!(
        rig.path(4_000, "em0", up_verdict(1)),
        vec![path_up("em0", 1)]
    );
    assert!(!rig.port("em0").usable());
    assert_eq!(rig.tick(9_000), vec![]);
    assert_eq!(rig.active(), Some("em1"));
    assert_eq!(rig.tick(63_000), vec![ev(Kind::FlapCleared, "em0")]);
    assert_eq!(rig.deadline(), Some(68_000));
    assert_eq!(
        rig.tick(68_000),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn link_and_path_changes_count_together_for_damping() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 2);
    rig.path(1_000, "em0", down_verdict());
    rig.down(2_000, "em0");
    assert_eq!(
        rig.up(3_000, "em0"),
        vec![ev(Kind::PortUp, "em0"), flapping("em0", 3, HOLD_MS)]
    );
}

#[test]
fn an_active_port_damped_by_its_path_fails_over_as_damped() {
    let mut rig = Rig::probed(&["em0", "em1"], 0, 2);
    rig.path(1_000, "em0", down_verdict());
    assert_eq!(
        rig.path(1_100, "em0", up_verdict(1)),
        vec![
            path_up("em0", 1),
            failover("em1", "em0", Cause::Preempt, None)
        ]
    );
    assert_eq!(
        rig.path(1_200, "em0", down_verdict()),
        vec![
            path_down("em0"),
            flapping("em0", 3, HOLD_MS),
            failover("em0", "em1", Cause::Damped, None),
        ]
    );
}

#[test]
fn verdicts_while_the_link_is_down_are_ignored() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 4);
    rig.down(1_000, "em0");
    assert_eq!(rig.port("em0").path(), PathState::Unknown);
    assert_eq!(rig.port("em0").rtt(), None);
    assert_eq!(rig.path(1_500, "em0", up_verdict(1)), vec![]);
    assert_eq!(rig.path(1_600, "em0", down_verdict()), vec![]);
    assert_eq!(rig.port("em0").path(), PathState::Unknown);
    assert_eq!(rig.port("em0").transitions_total(), 1);
    // Missing counts as no link too.
    rig.gone(1_700, "em1");
    assert_eq!(rig.path(1_800, "em1", down_verdict()), vec![]);
}

#[test]
fn an_unknown_path_is_usable_but_does_not_preempt() {
    let mut rig = Rig::new(probed_cfg(&["em0", "em1"], 5_000, 4));
    assert_eq!(
        rig.feed(0, snapshot(&[("em0", true), ("em1", true)])),
        vec![]
    );
    assert_eq!(rig.active(), Some("em0"), "no verdict yet: still chosen");
    assert_eq!(rig.port("em0").path(), PathState::Unknown);
    assert!(rig.port("em1").usable());
    assert_eq!(
        rig.down(1_000, "em0"),
        vec![
            ev(Kind::PortDown, "em0"),
            failover("em0", "em1", Cause::LinkDown, Some(0)),
        ]
    );
    assert_eq!(rig.up(2_000, "em0"), vec![ev(Kind::PortUp, "em0")]);
    assert_eq!(rig.deadline(), None, "an unknown path does not preempt");
    assert_eq!(rig.tick(20_000), vec![]);
    assert_eq!(rig.active(), Some("em1"));
    // The first answer is silent; the port was steady long enough.
    assert_eq!(
        rig.path(21_000, "em0", up_verdict(1)),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
}

#[test]
fn a_first_verdict_does_not_restart_the_preempt_clock() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 4);
    rig.down(1_000, "em0");
    rig.up(2_000, "em0");
    assert_eq!(rig.path(3_000, "em0", up_verdict(1)), vec![]);
    assert_eq!(rig.deadline(), Some(7_000));
}

#[test]
fn a_first_dead_verdict_is_path_down_but_not_a_flap() {
    let mut rig = Rig::new(probed_cfg(&["em0", "em1"], 5_000, 4));
    rig.feed(0, snapshot(&[("em0", true), ("em1", true)]));
    assert_eq!(
        rig.path(1_000, "em0", down_verdict()),
        vec![
            path_down("em0"),
            failover("em0", "em1", Cause::PathDown, None)
        ]
    );
    assert_eq!(rig.port("em0").transitions_total(), 0);
}

#[test]
fn the_operator_choice_is_dropped_when_its_path_dies() {
    let mut rig = Rig::probed(&["em0", "em1"], 0, 4);
    rig.command(100, set_active(Some("em1"))).unwrap();
    assert_eq!(
        rig.path(200, "em1", down_verdict()),
        vec![
            path_down("em1"),
            failover("em1", "em0", Cause::PathDown, None)
        ]
    );
    assert_eq!(rig.group(G).operator(), None);
}

#[test]
fn clear_damping_trusts_a_port_with_a_dead_path_only_for_its_link() {
    let mut rig = Rig::new(probed_cfg(&["em0", "em1"], 0, 0));
    rig.feed(0, snapshot(&[("em0", true), ("em1", true)]));
    assert_eq!(
        rig.path(100, "em0", down_verdict()),
        vec![
            path_down("em0"),
            failover("em0", "em1", Cause::PathDown, None)
        ]
    );
    // The first verdict is no flap; the way back is one, and damps.
    assert_eq!(
        rig.path(200, "em0", up_verdict(1)),
        vec![path_up("em0", 1), flapping("em0", 1, HOLD_MS)]
    );
    rig.path(300, "em0", down_verdict());
    assert_eq!(
        rig.command(400, clear_damping(None, Some("em0"))),
        Ok(vec![ev(Kind::FlapCleared, "em0")])
    );
    assert_eq!(rig.active(), Some("em1"), "its path is still down");
}

#[test]
fn a_reload_keeps_the_path_state() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 4);
    rig.path(1_000, "em0", down_verdict());
    rig.path(1_000, "em1", up_verdict(2));
    assert_eq!(
        rig.reconfigure(2_000, probed_cfg(&["em0", "em1", "em2"], 5_000, 4)),
        vec![ev(Kind::PortMissing, "em2")]
    );
    assert_eq!(rig.port("em0").path(), PathState::Down);
    assert_eq!(rig.port("em1").path(), PathState::Up);
    assert_eq!(rig.port("em1").rtt(), Some(ms(2)));
    assert_eq!(rig.port("em2").path(), PathState::Unknown);
    assert_eq!(rig.active(), Some("em1"));
}

#[test]
fn a_reload_that_drops_the_probe_forgets_the_paths() {
    let mut rig = Rig::probed(&["em0", "em1"], 5_000, 4);
    rig.path(1_000, "em0", down_verdict());
    assert_eq!(
        rig.reconfigure(10_000, cfg(&["em0", "em1"], 5_000, 4)),
        vec![failover("em1", "em0", Cause::Preempt, None)]
    );
    assert_eq!(rig.port("em0").path(), PathState::Off);
    assert_eq!(rig.port("em1").rtt(), None);
    // Probing again starts from unknown.
    assert_eq!(
        rig.reconfigure(11_000, probed_cfg(&["em0", "em1"], 5_000, 4)),
        vec![]
    );
    assert_eq!(rig.port("em0").path(), PathState::Unknown);
}

#[test]
fn a_reload_that_drops_the_probe_while_every_path_is_dead_recovers_them() {
    let mut rig = Rig::probed(&["em0"], 5_000, 4);
    rig.path(1_000, "em0", down_verdict());
    assert_eq!(
        rig.reconfigure(2_000, cfg(&["em0"], 5_000, 4)),
        vec![ev(Kind::PathsRecovered, "em0")]
    );
}

#[test]
fn verdicts_for_groups_without_probe_or_unknown_ports_are_ignored() {
    let mut rig = Rig::started(&["em0", "em1"], 5_000, 4);
    assert_eq!(rig.path(1_000, "em0", down_verdict()), vec![]);
    assert_eq!(rig.port("em0").path(), PathState::Off);
    assert!(rig.port("em0").usable());
    assert_eq!(rig.path(1_000, "em9", down_verdict()), vec![]);
    assert_eq!(
        rig.feed(1_000, report("nope", "em0", down_verdict())),
        vec![]
    );
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn verdicts_before_the_first_snapshot_are_ignored() {
    let mut rig = Rig::new(probed_cfg(&["em0", "em1"], 5_000, 4));
    assert_eq!(rig.path(0, "em0", down_verdict()), vec![]);
    assert_eq!(rig.port("em0").path(), PathState::Unknown);
    rig.feed(1, snapshot(&[("em0", true), ("em1", true)]));
    assert_eq!(rig.active(), Some("em0"));
}

// ---- kernel drivers --------------------------------------------------------

const BOND: &str = "bond0";

/// An engine with one probed kernel group (every port up, every path
/// found up at 0), the kernel's view of it and the origin of synthetic
/// time.
struct KernelRig {
    engine: Engine,
    t0: Instant,
    view: Aggregate,
}

impl KernelRig {
    /// A bond `bond0` of `ports`, the first active.
    fn bond(ports: &[&str], preempt_delay_ms: u64) -> KernelRig {
        let view = Aggregate {
            index: 100,
            name: BOND.to_owned(),
            mode: "active-backup".to_owned(),
            failover: true,
            members: ports.iter().map(|port| port.to_string()).collect(),
            active: ports.first().map(|port| port.to_string()),
            primary: None,
            kernel_preempts: false,
            arp_monitor: false,
        };
        KernelRig::new(Driver::Bond, ports, preempt_delay_ms, view)
    }

    /// A failover lagg `lagg0` of `ports` whose MASTER and active port is
    /// `master`.
    fn lagg(ports: &[&str], preempt_delay_ms: u64, master: &str) -> KernelRig {
        let view = Aggregate {
            index: 200,
            name: G.to_owned(),
            mode: "failover".to_owned(),
            failover: true,
            members: ports.iter().map(|port| port.to_string()).collect(),
            active: Some(master.to_owned()),
            primary: Some(master.to_owned()),
            kernel_preempts: true,
            arp_monitor: false,
        };
        KernelRig::new(Driver::Lagg, ports, preempt_delay_ms, view)
    }

    /// [`KernelRig::lagg`] with `enforce: false`: laggmond only watches.
    fn watched_lagg(ports: &[&str], preempt_delay_ms: u64, master: &str) -> KernelRig {
        let mut rig = KernelRig::lagg(ports, preempt_delay_ms, master);
        let mut config = (**rig.engine.config()).clone();
        config.groups[0].enforce = false;
        assert_eq!(
            rig.engine.reconfigure(rig.t0, Arc::new(config)),
            Output::default()
        );
        rig
    }

    fn new(driver: Driver, ports: &[&str], preempt_delay_ms: u64, view: Aggregate) -> KernelRig {
        let group = GroupConfig {
            driver,
            probe: Some(probe()),
            ..group_cfg(&view.name, ports, preempt_delay_ms, 4)
        };
        let mut rig = KernelRig {
            engine: Engine::new(config(vec![group])),
            t0: Instant::now(),
            view,
        };
        let mut links = vec![link(&rig.view.name, true)];
        links.extend(ports.iter().map(|port| link(port, true)));
        assert_eq!(
            rig.feed(0, Input::Platform(Update::Snapshot(links))),
            Output::default()
        );
        let view = rig.view.clone();
        assert_eq!(
            rig.feed(0, Input::Platform(Update::Aggregate(view))),
            Output::default()
        );
        for port in ports {
            assert_eq!(rig.path(0, port, up_verdict(1)), Output::default());
        }
        rig
    }

    fn feed(&mut self, millis: u64, input: Input) -> Output {
        self.engine.handle(self.t0 + ms(millis), input)
    }

    fn path(&mut self, millis: u64, port: &str, verdict: PathVerdict) -> Output {
        let group = self.view.name.clone();
        self.feed(millis, report(&group, port, verdict))
    }

    fn kernel_active(&mut self, millis: u64, port: &str) -> Output {
        self.kernel(millis, |view| view.active = Some(port.to_owned()))
    }

    /// The kernel reports the aggregate changed by `change`.
    fn kernel(&mut self, millis: u64, change: impl FnOnce(&mut Aggregate)) -> Output {
        change(&mut self.view);
        let view = self.view.clone();
        self.feed(millis, Input::Platform(Update::Aggregate(view)))
    }

    fn done(&mut self, millis: u64, port: &str) -> Output {
        let answer = Answer {
            group: self.view.name.clone(),
            port: port.to_owned(),
            result: Ok(()),
        };
        self.feed(millis, Input::Platform(Update::Answer(answer)))
    }

    /// The kernel's answer to the action about `port`: an error.
    fn refused(&mut self, millis: u64, port: &str, error: &str) -> Output {
        let answer = Answer {
            group: self.view.name.clone(),
            port: port.to_owned(),
            result: Err(error.to_owned()),
        };
        self.feed(millis, Input::Platform(Update::Answer(answer)))
    }

    /// The lagg's ports are now `members` with MASTER (and active port)
    /// `master`.
    fn members(&mut self, millis: u64, members: &[&str], master: &str) -> Output {
        self.view.members = members.iter().map(|port| port.to_string()).collect();
        self.view.primary = Some(master.to_owned());
        self.view.active = Some(master.to_owned());
        let view = self.view.clone();
        self.feed(millis, Input::Platform(Update::Aggregate(view)))
    }

    fn tick(&mut self, millis: u64) -> Output {
        self.feed(millis, Input::Tick)
    }

    fn group(&self) -> &Group {
        self.engine.group(&self.view.name).expect("the group")
    }

    fn deadline(&self) -> Option<u64> {
        let deadline = self.engine.next_deadline()?;
        Some(deadline.duration_since(self.t0).as_millis() as u64)
    }

    fn active(&self) -> Option<&str> {
        self.engine.group(&self.view.name).and_then(Group::active)
    }
}

fn bond(what: What) -> What {
    What {
        group: Some(BOND.to_owned()),
        ..what
    }
}

fn set_bond_active(port: &str) -> Action {
    Action::SetActive {
        group: BOND.to_owned(),
        port: port.to_owned(),
    }
}

#[test]
fn bond_a_dead_path_on_the_active_port_moves_the_bond_away_and_back() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    assert_eq!(
        rig.path(1_000, "eth0", down_verdict()),
        Output {
            events: vec![bond(path_down("eth0"))],
            actions: vec![set_bond_active("eth1")],
            notices: vec![],
        }
    );
    assert_eq!(rig.done(1_010, "eth1"), Output::default());
    assert_eq!(
        rig.kernel_active(1_020, "eth1").events,
        vec![bond(failover("eth0", "eth1", Cause::PathDown, None))]
    );
    assert_eq!(rig.active(), Some("eth1"));
    // The path comes back: laggmond asks for eth0 after the hold-down.
    assert_eq!(
        rig.path(2_000, "eth0", up_verdict(1)).events,
        vec![bond(path_up("eth0", 1))]
    );
    assert_eq!(rig.deadline(), Some(7_000));
    assert_eq!(rig.tick(6_999), Output::default());
    assert_eq!(rig.tick(7_000).actions, vec![set_bond_active("eth0")]);
    rig.done(7_010, "eth0");
    assert_eq!(
        rig.kernel_active(7_020, "eth0").events,
        vec![
            bond(failover("eth1", "eth0", Cause::Preempt, None)),
            bond(ev(Kind::PrimaryRestored, "eth0")),
        ]
    );
}

#[test]
fn bond_with_every_path_dead_stays_on_its_active_port() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    assert_eq!(
        rig.path(1_000, "eth1", down_verdict()),
        Output {
            events: vec![bond(path_down("eth1"))],
            ..Output::default()
        }
    );
    assert_eq!(
        rig.path(1_100, "eth0", down_verdict()),
        Output {
            events: vec![bond(path_down("eth0")), bond(all_paths_down("eth0"))],
            ..Output::default()
        }
    );
    assert_eq!(rig.tick(60_000), Output::default());
    assert_eq!(
        rig.path(61_000, "eth0", up_verdict(1)).events,
        vec![
            bond(path_up("eth0", 1)),
            bond(ev(Kind::PathsRecovered, "eth0"))
        ]
    );
}

#[test]
fn bond_a_dead_path_on_a_backup_asks_nothing() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    assert_eq!(
        rig.path(1_000, "eth1", down_verdict()),
        Output {
            events: vec![bond(path_down("eth1"))],
            ..Output::default()
        }
    );
}

#[test]
fn bond_a_port_without_link_is_left_to_the_bond() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    rig.path(1_000, "eth1", down_verdict());
    // eth0 loses link; eth1 has link but a dead path: the bond's own
    // monitor moves traffic, laggmond asks nothing, and no path works
    // once traffic is on eth1.
    let out = rig.feed(2_000, Input::Platform(Update::Link(link("eth0", false))));
    assert_eq!(out.actions, vec![]);
    assert_eq!(out.events, vec![bond(ev(Kind::PortDown, "eth0"))]);
    assert_eq!(
        rig.kernel_active(2_010, "eth1").events,
        vec![
            bond(failover("eth0", "eth1", Cause::LinkDown, Some(10))),
            bond(all_paths_down("eth1")),
        ]
    );
}

#[test]
fn bond_the_operator_may_not_choose_a_dead_path() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    rig.path(1_000, "eth1", down_verdict());
    let cmd = Command::SetActive {
        group: BOND.to_owned(),
        port: Some("eth1".to_owned()),
    };
    assert_eq!(
        rig.engine.command(rig.t0 + ms(1_100), cmd),
        Err("port eth1 has no working path".to_owned())
    );
}

fn lagg_reorder(port: &str, from: &str) -> Output {
    Output {
        events: vec![What {
            from: Some(from.to_owned()),
            ..ev(Kind::Enforcing, port)
        }],
        actions: vec![Action::SetActive {
            group: G.to_owned(),
            port: port.to_owned(),
        }],
        notices: vec![],
    }
}

#[test]
fn lagg_a_dead_path_is_reported_and_asks_nothing_of_the_kernel() {
    // Only when laggmond watches: an enforcing lagg takes the port out
    // (see the lagg removal tests below).
    let mut rig = KernelRig::watched_lagg(&["em0", "bge0"], 5_000, "em0");
    assert_eq!(
        rig.path(1_000, "em0", down_verdict()),
        Output {
            events: vec![path_down("em0")],
            ..Output::default()
        }
    );
    assert_eq!(rig.active(), Some("em0"), "the kernel keeps its MASTER");
    assert_eq!(
        rig.path(2_000, "bge0", down_verdict()),
        Output {
            events: vec![path_down("bge0"), all_paths_down("em0")],
            ..Output::default()
        }
    );
    assert_eq!(rig.tick(60_000), Output::default());
}

#[test]
fn lagg_never_makes_a_dead_path_the_master() {
    let mut rig = KernelRig::lagg(&["em0", "bge0"], 5_000, "bge0");
    // The dead backup is taken out of the lagg rather than made MASTER.
    assert_eq!(
        rig.path(1_000, "em0", down_verdict()),
        Output {
            events: vec![path_down("em0"), removing("em0")],
            actions: vec![remove_port("em0")],
            notices: vec![],
        }
    );
    assert_eq!(rig.members(1_010, &["bge0"], "bge0"), Output::default());
    assert_eq!(rig.done(1_020, "em0"), Output::default());
    assert_eq!(rig.tick(30_000), Output::default());
    let cmd = Command::SetActive {
        group: G.to_owned(),
        port: Some("em0".to_owned()),
    };
    assert_eq!(
        rig.engine.command(rig.t0 + ms(30_100), cmd),
        Err("port em0 has no working path".to_owned())
    );
    // The path is back: em0 goes back into the lagg once it is steady,
    // and the reorder follows after its own delay.
    assert_eq!(
        rig.path(40_000, "em0", up_verdict(1)).events,
        vec![path_up("em0", 1)]
    );
    assert_eq!(rig.deadline(), Some(45_000));
    assert_eq!(rig.tick(44_999), Output::default());
    assert_eq!(rig.tick(45_000).actions, vec![add_port("em0")]);
    assert_eq!(
        rig.members(45_010, &["bge0", "em0"], "bge0"),
        Output::default()
    );
    assert_eq!(rig.done(45_020, "em0"), Output::default());
    assert_eq!(rig.deadline(), Some(50_000));
    assert_eq!(rig.tick(49_999), Output::default());
    assert_eq!(rig.tick(50_000), lagg_reorder("em0", "bge0"));
}

#[test]
fn lagg_waits_for_every_path_to_be_judged_before_a_reorder() {
    let conf = GroupConfig {
        driver: Driver::Lagg,
        probe: Some(probe()),
        ..group_cfg(G, &["em0", "bge0"], 5_000, 4)
    };
    let mut engine = Engine::new(config(vec![conf]));
    let t0 = Instant::now();
    let links = vec![link(G, true), link("em0", true), link("bge0", true)];
    engine.handle(t0, Input::Platform(Update::Snapshot(links)));
    let view = Aggregate {
        index: 200,
        name: G.to_owned(),
        mode: "failover".to_owned(),
        failover: true,
        members: vec!["bge0".to_owned(), "em0".to_owned()],
        active: Some("bge0".to_owned()),
        primary: Some("bge0".to_owned()),
        kernel_preempts: true,
        arp_monitor: false,
    };
    engine.handle(t0, Input::Platform(Update::Aggregate(view)));
    // No verdict yet: no reorder, however long.
    assert_eq!(engine.next_deadline(), None);
    assert_eq!(
        engine.handle(t0 + ms(60_000), Input::Tick),
        Output::default()
    );
    engine.handle(t0 + ms(61_000), report(G, "em0", up_verdict(1)));
    assert_eq!(
        engine.handle(t0 + ms(62_000), report(G, "bge0", up_verdict(1))),
        lagg_reorder("em0", "bge0")
    );
}

#[test]
fn bond_a_reload_keeps_the_path_state_and_asks_nothing_new() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    rig.path(1_000, "eth0", down_verdict());
    rig.done(1_010, "eth1");
    rig.kernel_active(1_020, "eth1");
    let config = rig.engine.config().clone();
    assert_eq!(
        rig.engine.reconfigure(rig.t0 + ms(2_000), config),
        Output::default()
    );
    let group = rig.engine.group(BOND).expect("the bond");
    assert_eq!(group.port("eth0").map(Port::path), Some(PathState::Down));
    assert_eq!(group.port("eth1").map(Port::rtt), Some(Some(ms(1))));
    assert_eq!(rig.active(), Some("eth1"));
}

#[test]
fn bond_a_link_coming_back_starts_with_an_unknown_path() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    rig.feed(1_000, Input::Platform(Update::Link(link("eth1", false))));
    let eth1 = |rig: &KernelRig| {
        let group = rig.engine.group(BOND).expect("the bond");
        group.port("eth1").map(Port::path)
    };
    assert_eq!(eth1(&rig), Some(PathState::Unknown));
    assert_eq!(rig.path(1_500, "eth1", up_verdict(1)), Output::default());
    rig.feed(2_000, Input::Platform(Update::Link(link("eth1", true))));
    assert_eq!(eth1(&rig), Some(PathState::Unknown));
}

// ---- lagg: taking a port whose path is dead out of the lagg ---------------

/// `enforcing` for taking `port` out of the lagg.
fn removing(port: &str) -> What {
    What {
        cause: Some(Cause::PathDown),
        ..ev(Kind::Enforcing, port)
    }
}

fn remove_port(port: &str) -> Action {
    Action::RemovePort {
        group: G.to_owned(),
        port: port.to_owned(),
    }
}

fn add_port(port: &str) -> Action {
    Action::AddPort {
        group: G.to_owned(),
        port: port.to_owned(),
    }
}

fn enforce_failed(port: &str, error: &str) -> What {
    What {
        error: Some(error.to_owned()),
        ..ev(Kind::EnforceFailed, port)
    }
}

/// A lagg of em0 (MASTER) and bge0 whose em0 was taken out at 1000 for
/// its dead path: the kernel showed it at 1010, answered at 1020.
fn lagg_without_em0() -> KernelRig {
    let mut rig = KernelRig::lagg(&["em0", "bge0"], 5_000, "em0");
    assert_eq!(
        rig.path(1_000, "em0", down_verdict()),
        Output {
            events: vec![path_down("em0"), removing("em0")],
            actions: vec![remove_port("em0")],
            notices: vec![],
        }
    );
    assert!(rig.group().is_removed("em0"));
    rig
}

#[test]
fn lagg_a_dead_path_on_the_master_takes_it_out_and_back_after_the_delay() {
    let mut rig = lagg_without_em0();
    // The kernel moves traffic to bge0: laggmond's doing, for em0's path;
    // em0 is not missing, keeps its link and is still probed.
    assert_eq!(
        rig.members(1_010, &["bge0"], "bge0").events,
        vec![failover("em0", "bge0", Cause::PathDown, None)]
    );
    assert_eq!(rig.done(1_020, "em0"), Output::default());
    let em0 = rig.group().port("em0").expect("em0");
    assert_eq!(em0.link(), PortLink::Up);
    assert_eq!(em0.path(), PathState::Down);
    assert_eq!(rig.path(1_500, "em0", down_verdict()), Output::default());
    assert_eq!(rig.tick(30_000), Output::default());
    // The path works again: back after preempt_delay, appended to the lagg.
    assert_eq!(
        rig.path(31_000, "em0", up_verdict(2)).events,
        vec![path_up("em0", 2)]
    );
    assert_eq!(rig.deadline(), Some(36_000));
    assert_eq!(rig.tick(35_999), Output::default());
    assert_eq!(rig.tick(36_000), output_actions(vec![add_port("em0")]));
    assert_eq!(
        rig.members(36_010, &["bge0", "em0"], "bge0"),
        Output::default()
    );
    assert_eq!(rig.done(36_020, "em0"), Output::default());
    assert!(!rig.group().is_removed("em0"));
    // The existing reorder makes em0 MASTER again after its own delay.
    assert_eq!(rig.deadline(), Some(41_000));
    assert_eq!(rig.tick(41_000), lagg_reorder("em0", "bge0"));
    rig.done(41_010, "em0");
    assert_eq!(
        rig.members(41_020, &["em0", "bge0"], "em0").events,
        vec![
            failover("bge0", "em0", Cause::Preempt, None),
            ev(Kind::PrimaryRestored, "em0"),
        ]
    );
}

fn output_actions(actions: Vec<Action>) -> Output {
    Output {
        actions,
        ..Output::default()
    }
}

#[test]
fn lagg_a_dead_path_on_a_backup_takes_it_out_without_a_failover() {
    let mut rig = KernelRig::lagg(&["em0", "bge0"], 5_000, "em0");
    assert_eq!(
        rig.path(1_000, "bge0", down_verdict()),
        Output {
            events: vec![path_down("bge0"), removing("bge0")],
            actions: vec![remove_port("bge0")],
            notices: vec![],
        }
    );
    assert_eq!(rig.members(1_010, &["em0"], "em0"), Output::default());
    assert_eq!(rig.done(1_020, "em0"), Output::default());
    assert_eq!(rig.active(), Some("em0"));
}

#[test]
fn lagg_never_takes_out_the_last_port_with_a_working_path() {
    let mut rig = KernelRig::lagg(&["em0", "bge0"], 5_000, "em0");
    rig.path(1_000, "bge0", down_verdict());
    rig.members(1_010, &["em0"], "em0");
    rig.done(1_020, "bge0");
    // em0's path dies too: it stays, and bge0 goes back, so that a dead
    // path everywhere does not leave the lagg with fewer ports.
    assert_eq!(
        rig.path(2_000, "em0", down_verdict()),
        Output {
            events: vec![path_down("em0"), all_paths_down("em0")],
            actions: vec![add_port("bge0")],
            notices: vec![],
        }
    );
    assert_eq!(
        rig.members(2_010, &["em0", "bge0"], "em0"),
        Output::default()
    );
    assert_eq!(rig.done(2_020, "bge0"), Output::default());
    assert!(!rig.group().is_removed("bge0"));
    assert_eq!(rig.tick(60_000), Output::default());
}

#[test]
fn lagg_an_unknown_path_is_not_enough_to_take_another_port_out() {
    let mut rig = KernelRig::lagg(&["em0", "bge0"], 5_000, "em0");
    // bge0's link bounced: its path is unknown until the probes answer.
    rig.feed(500, Input::Platform(Update::Link(link("bge0", false))));
    rig.feed(600, Input::Platform(Update::Link(link("bge0", true))));
    assert_eq!(
        rig.path(1_000, "em0", down_verdict()),
        Output {
            events: vec![path_down("em0")],
            ..Output::default()
        }
    );
    assert_eq!(
        rig.path(2_000, "bge0", up_verdict(1)),
        Output {
            events: vec![removing("em0")],
            actions: vec![remove_port("em0")],
            notices: vec![],
        }
    );
}

#[test]
fn lagg_removals_are_one_at_a_time_and_rate_limited() {
    let mut rig = KernelRig::lagg(&["em0", "bge0", "ix0"], 5_000, "em0");
    rig.path(1_000, "em0", down_verdict());
    // Not while the first is unanswered, nor within preempt_delay of it.
    assert_eq!(
        rig.path(1_005, "bge0", down_verdict()).actions,
        Vec::<Action>::new()
    );
    rig.members(1_010, &["bge0", "ix0"], "bge0");
    assert_eq!(rig.done(1_020, "em0").actions, Vec::<Action>::new());
    assert_eq!(rig.deadline(), Some(6_000));
    assert_eq!(rig.tick(5_999), Output::default());
    assert_eq!(
        rig.tick(6_000),
        Output {
            events: vec![removing("bge0")],
            actions: vec![remove_port("bge0")],
            notices: vec![],
        }
    );
}

#[test]
fn lagg_no_removal_while_a_reorder_is_under_way() {
    let mut rig = KernelRig::lagg(&["em0", "bge0", "ix0"], 5_000, "bge0");
    assert_eq!(rig.tick(5_000), lagg_reorder("em0", "bge0"));
    // ix0's path dies during the reorder: one change of the ports at a
    // time, and no more than one per preempt_delay.
    let out = rig.path(5_100, "ix0", down_verdict());
    assert_eq!(out.actions, Vec::<Action>::new());
    rig.done(5_200, "em0");
    rig.members(5_300, &["em0", "bge0", "ix0"], "em0");
    assert_eq!(rig.deadline(), Some(10_000));
    assert_eq!(
        rig.tick(10_000),
        Output {
            events: vec![removing("ix0")],
            actions: vec![remove_port("ix0")],
            notices: vec![],
        }
    );
}

#[test]
fn lagg_a_failed_removal_is_enforce_failed_and_tried_again_after_the_backoff() {
    let mut rig = lagg_without_em0();
    assert_eq!(
        rig.refused(1_010, "em0", "SIOCSLAGGDELPORT em0: Device busy"),
        Output {
            events: vec![enforce_failed("em0", "SIOCSLAGGDELPORT em0: Device busy")],
            ..Output::default()
        }
    );
    assert!(!rig.group().is_removed("em0"));
    assert_eq!(rig.deadline(), Some(6_000));
    assert_eq!(rig.tick(5_999), Output::default());
    assert_eq!(
        rig.tick(6_010),
        Output {
            events: vec![removing("em0")],
            actions: vec![remove_port("em0")],
            notices: vec![],
        }
    );
}

#[test]
fn lagg_a_failed_addition_is_enforce_failed_and_tried_again_after_the_backoff() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    rig.path(2_000, "em0", up_verdict(1));
    assert_eq!(rig.tick(7_000).actions, vec![add_port("em0")]);
    assert_eq!(
        rig.refused(7_010, "em0", "SIOCSLAGGPORT em0: Cannot allocate memory"),
        Output {
            events: vec![enforce_failed(
                "em0",
                "SIOCSLAGGPORT em0: Cannot allocate memory"
            )],
            ..Output::default()
        }
    );
    assert!(rig.group().is_removed("em0"), "still out, and still ours");
    assert_eq!(rig.tick(12_009), Output::default());
    assert_eq!(rig.tick(12_010).actions, vec![add_port("em0")]);
}

#[test]
fn lagg_a_removed_port_that_loses_link_stays_out_until_its_path_works() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    assert_eq!(
        rig.feed(2_000, Input::Platform(Update::Link(link("em0", false)))),
        Output {
            events: vec![ev(Kind::PortDown, "em0")],
            ..Output::default()
        }
    );
    assert_eq!(rig.tick(30_000), Output::default());
    rig.feed(31_000, Input::Platform(Update::Link(link("em0", true))));
    assert_eq!(rig.tick(40_000), Output::default(), "path still unknown");
    // The link has been steady for preempt_delay; the first verdict does
    // not restart that clock, as for a preempt.
    assert_eq!(
        rig.path(41_000, "em0", up_verdict(1)).actions,
        vec![add_port("em0")]
    );
}

#[test]
fn lagg_the_operator_may_not_choose_a_port_that_is_out() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    let cmd = |port: &str| Command::SetActive {
        group: G.to_owned(),
        port: Some(port.to_owned()),
    };
    assert_eq!(
        rig.engine.command(rig.t0 + ms(1_100), cmd("em0")),
        Err("port em0 has no working path".to_owned())
    );
    rig.path(2_000, "em0", up_verdict(1));
    assert_eq!(
        rig.engine.command(rig.t0 + ms(2_100), cmd("em0")),
        Err("port em0 is out of lagg0 until its path has worked for preempt_delay".to_owned())
    );
}

#[test]
fn lagg_shutdown_puts_every_removed_port_back() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    assert_eq!(rig.engine.shutdown().actions, vec![add_port("em0")]);
    // Also a removal not answered yet: the port may be out already.
    let mut rig = lagg_without_em0();
    assert_eq!(rig.engine.shutdown().actions, vec![add_port("em0")]);
}

#[test]
fn lagg_a_reload_that_drops_the_probe_or_the_group_puts_removed_ports_back() {
    let reloaded = |change: fn(&mut Config)| {
        let mut rig = lagg_without_em0();
        rig.members(1_010, &["bge0"], "bge0");
        rig.done(1_020, "em0");
        let mut config = (**rig.engine.config()).clone();
        change(&mut config);
        let out = rig.engine.reconfigure(rig.t0 + ms(2_000), Arc::new(config));
        (out.actions, rig)
    };
    let (actions, _) = reloaded(|config| config.groups[0].probe = None);
    assert_eq!(actions, vec![add_port("em0")]);
    let (actions, _) = reloaded(|config| config.groups[0].enforce = false);
    assert_eq!(actions, vec![add_port("em0")]);
    let (actions, _) = reloaded(|config| config.groups.clear());
    assert_eq!(actions, vec![add_port("em0")]);
    let (actions, _) = reloaded(|config| config.groups[0].ports.retain(|p| p != "em0"));
    assert_eq!(actions, vec![add_port("em0")]);
    // A reload that keeps everything keeps em0 out, and its path.
    let (actions, rig) = reloaded(|_| {});
    assert_eq!(actions, vec![]);
    assert!(rig.group().is_removed("em0"));
}

#[test]
fn lagg_a_port_put_back_by_someone_else_is_a_member_again() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    // Someone adds em0 back by hand: it is an ordinary member again, and
    // still dead, so it goes out again once the rate limit allows.
    assert_eq!(
        rig.members(2_000, &["bge0", "em0"], "bge0"),
        Output::default()
    );
    assert!(!rig.group().is_removed("em0"));
    assert_eq!(rig.tick(6_000).actions, vec![remove_port("em0")]);
}

#[test]
fn lagg_a_removed_port_whose_interface_vanishes_is_forgotten() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    let gone = Update::Gone {
        index: 1,
        name: "em0".to_owned(),
    };
    assert_eq!(
        rig.feed(2_000, Input::Platform(gone)).events,
        vec![ev(Kind::PortMissing, "em0")]
    );
    assert!(!rig.group().is_removed("em0"));
    assert_eq!(rig.engine.shutdown().actions, vec![]);
}

#[test]
fn lagg_a_removed_port_goes_back_when_the_lagg_leaves_failover_mode() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    rig.view.mode = "lacp".to_owned();
    rig.view.failover = false;
    let view = rig.view.clone();
    let out = rig.feed(2_000, Input::Platform(Update::Aggregate(view)));
    assert_eq!(out.actions, vec![add_port("em0")]);
}

#[test]
fn lagg_a_removal_that_failed_with_the_port_out_leaves_it_laggmonds_to_put_back() {
    let mut rig = lagg_without_em0();
    // The port left, but the check after it failed: the kernel's view,
    // which comes before the answer, says where the port is.
    rig.members(1_010, &["bge0"], "bge0");
    assert_eq!(
        rig.refused(
            1_020,
            "em0",
            "SIOCGLAGG lagg0: Input/output error (verifying)"
        )
        .events,
        vec![enforce_failed(
            "em0",
            "SIOCGLAGG lagg0: Input/output error (verifying)"
        )]
    );
    assert!(rig.group().is_removed("em0"));
    assert_eq!(rig.engine.shutdown().actions, vec![add_port("em0")]);
}

#[test]
fn lagg_an_addition_that_failed_with_the_port_in_is_done() {
    let mut rig = lagg_without_em0();
    rig.members(1_010, &["bge0"], "bge0");
    rig.done(1_020, "em0");
    rig.path(2_000, "em0", up_verdict(1));
    assert_eq!(rig.tick(7_000).actions, vec![add_port("em0")]);
    rig.members(7_010, &["bge0", "em0"], "bge0");
    rig.refused(
        7_020,
        "em0",
        "SIOCGLAGG lagg0: Input/output error (verifying)",
    );
    assert!(!rig.group().is_removed("em0"));
    assert_eq!(rig.engine.shutdown().actions, vec![]);
}

/// A bond that runs its own ARP monitor beside the group's probes: the
/// operator hears so once, not on every later news of the bond nor after
/// a reload, and again only after the monitor was turned off and came back.
#[test]
fn bond_its_own_arp_monitor_beside_the_probes_is_named_once() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    let told = Notice::KernelArpMonitor {
        group: BOND.to_owned(),
    };
    let out = rig.kernel(1_000, |view| view.arp_monitor = true);
    assert_eq!(out.notices, std::slice::from_ref(&told));
    assert_eq!(rig.kernel_active(2_000, "eth1").notices, []);
    let config = rig.engine.config().clone();
    assert_eq!(
        rig.engine.reconfigure(rig.t0 + ms(3_000), config).notices,
        []
    );
    assert_eq!(rig.kernel_active(4_000, "eth0").notices, []);

    assert_eq!(
        rig.kernel(5_000, |view| view.arp_monitor = false).notices,
        []
    );
    let out = rig.kernel(6_000, |view| view.arp_monitor = true);
    assert_eq!(out.notices, [told]);
}

/// The notice names the ARP monitor alone: a bond that also preempts by
/// itself hears both, each once.
#[test]
fn bond_the_arp_monitor_notice_comes_beside_the_preempt_notice() {
    let mut rig = KernelRig::bond(&["eth0", "eth1"], 5_000);
    let out = rig.kernel(1_000, |view| {
        view.arp_monitor = true;
        view.primary = Some("eth0".to_owned());
        view.kernel_preempts = true;
    });
    assert_eq!(
        out.notices,
        [
            Notice::KernelPreempts {
                group: BOND.to_owned(),
                primary: Some("eth0".to_owned()),
            },
            Notice::KernelArpMonitor {
                group: BOND.to_owned(),
            },
        ]
    );
}

/// A `down` judged on the link before a flap can reach the engine after
/// the flap's news: sooner after the link came up than the probes can
/// judge, it is ignored; a dead path on the new link is reported in its
/// own time.
#[test]
fn a_dead_path_judged_before_the_link_came_back_is_ignored() {
    let mut group = group_cfg(G, &["em0", "em1"], 5_000, 4);
    group.probe = Some(ProbeConfig {
        interval: ms(1_000),
        ..probe()
    });
    let mut rig = Rig::new(config(vec![group]));
    rig.feed(0, snapshot(&[("em0", true), ("em1", true)]));
    rig.feed(10_000, Input::Platform(Update::Link(link("em0", false))));
    rig.feed(10_100, Input::Platform(Update::Link(link("em0", true))));
    assert_eq!(rig.path(10_200, "em0", down_verdict()), vec![]);
    assert_eq!(rig.port("em0").path(), PathState::Unknown);
    assert_eq!(
        rig.path(13_100, "em0", down_verdict()),
        vec![path_down("em0")]
    );
}
