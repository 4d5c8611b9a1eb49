//! Groups driven by a kernel aggregate (bond, lagg), with synthetic time
//! and a hand-fed kernel view; then random sequences against a tiny model
//! of the kernel.

use std::time::Instant;

use super::{config, group_cfg, link, ms, snapshot, HOLD_MS, WINDOW_MS};
use crate::config::{Driver, GroupConfig};
use crate::engine::*;
use crate::event::{Cause, Kind};
use crate::platform::kernel::{Aggregate, Answer, Update};

const BOND: &str = "bond0";
const LAGG: &str = "lagg0";

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn kernel_cfg(
    name: &str,
    driver: Driver,
    ports: &[&str],
    preempt_delay_ms: u64,
    max_flaps: u32,
) -> GroupConfig {
    GroupConfig {
        driver,
        ..group_cfg(name, ports, preempt_delay_ms, max_flaps)
    }
}

/// An active-backup bond without a `primary` option (sticky).
fn bond_view(members: &[&str], active: Option<&str>) -> Aggregate {
    Aggregate {
        index: 100,
        name: BOND.to_owned(),
        mode: "active-backup".to_owned(),
        failover: true,
        members: strings(members),
        active: active.map(str::to_owned),
        primary: None,
        kernel_preempts: false,
        arp_monitor: false,
    }
}

/// A failover lagg with MASTER `master`.
fn lagg_view(members: &[&str], master: &str, active: Option<&str>) -> Aggregate {
    Aggregate {
        index: 200,
        name: LAGG.to_owned(),
        mode: "failover".to_owned(),
        failover: true,
        members: strings(members),
        active: active.map(str::to_owned),
        primary: Some(master.to_owned()),
        kernel_preempts: true,
        arp_monitor: false,
    }
}

fn output(events: Vec<What>, actions: Vec<Action>) -> Output {
    Output {
        events,
        actions,
        notices: Vec::new(),
    }
}

fn events(events: Vec<What>) -> Output {
    output(events, Vec::new())
}

fn actions(actions: Vec<Action>) -> Output {
    output(Vec::new(), actions)
}

fn nothing() -> Output {
    Output::default()
}

/// An engine with one kernel group, the kernel's current view of it and
/// the origin of synthetic time (in ms).
struct Rig {
    engine: Engine,
    t0: Instant,
    view: Aggregate,
}

impl Rig {
    fn new(groups: Vec<GroupConfig>, view: Aggregate) -> Rig {
        Rig {
            engine: Engine::new(config(groups)),
            t0: Instant::now(),
            view,
        }
    }

    /// Snapshot at 0 with the aggregate interface and `links`, then the
    /// view; returns what both produced.
    fn start(&mut self, links: &[(&str, bool)]) -> Output {
        let mut all = vec![(self.view.name.clone(), true)];
        all.extend(links.iter().map(|(name, up)| (name.to_string(), *up)));
        let all: Vec<(&str, bool)> = all.iter().map(|(n, up)| (n.as_str(), *up)).collect();
        let mut out = self.feed(0, snapshot(&all));
        let view = Input::Platform(Update::Aggregate(self.view.clone()));
        let more = self.feed(0, view);
        out.events.extend(more.events);
        out.actions.extend(more.actions);
        out.notices.extend(more.notices);
        out
    }

    /// [`Rig::start`] that must be silent.
    fn started(mut self, links: &[(&str, bool)]) -> Rig {
        assert_eq!(self.start(links), nothing());
        self
    }

    fn name(&self) -> String {
        self.view.name.clone()
    }

    fn at(&self, millis: u64) -> Instant {
        self.t0 + ms(millis)
    }

    fn feed(&mut self, millis: u64, input: Input) -> Output {
        self.engine.handle(self.at(millis), input)
    }

    fn link(&mut self, millis: u64, name: &str, up: bool) -> Output {
        self.feed(millis, Input::Platform(Update::Link(link(name, up))))
    }

    fn gone(&mut self, millis: u64, name: &str) -> Output {
        let name = name.to_owned();
        self.feed(millis, Input::Platform(Update::Gone { index: 1, name }))
    }

    /// Changes the kernel's view and reports it.
    fn kernel(&mut self, millis: u64, change: impl FnOnce(&mut Aggregate)) -> Output {
        change(&mut self.view);
        let view = self.view.clone();
        self.feed(millis, Input::Platform(Update::Aggregate(view)))
    }

    fn kernel_active(&mut self, millis: u64, active: Option<&str>) -> Output {
        self.kernel(millis, |view| view.active = active.map(str::to_owned))
    }

    fn tick(&mut self, millis: u64) -> Output {
        self.feed(millis, Input::Tick)
    }

    fn done(&mut self, millis: u64, port: &str, result: Result<(), &str>) -> Output {
        let input = Input::Platform(Update::Answer(Answer {
            group: self.name(),
            port: port.to_owned(),
            result: result.map_err(str::to_owned),
        }));
        self.feed(millis, input)
    }

    fn command(&mut self, millis: u64, cmd: Command) -> Result<Output, String> {
        self.engine.command(self.at(millis), cmd)
    }

    fn set_active(&mut self, millis: u64, port: Option<&str>) -> Result<Output, String> {
        let cmd = Command::SetActive {
            group: self.name(),
            port: port.map(str::to_owned),
        };
        self.command(millis, cmd)
    }

    fn group(&self) -> &Group {
        self.engine
            .group(&self.view.name)
            .expect("group is configured")
    }

    fn active(&self) -> Option<&str> {
        self.group().active()
    }

    fn port(&self, name: &str) -> &Port {
        self.group().port(name).expect("port is configured")
    }

    /// `next_deadline` in ms since the start.
    fn deadline(&self) -> Option<u64> {
        let deadline = self.engine.next_deadline()?;
        Some(deadline.duration_since(self.t0).as_millis() as u64)
    }

    fn ev(&self, kind: Kind, port: &str) -> What {
        What::port(&self.view.name, kind, port)
    }

    fn failover(&self, from: &str, to: &str, cause: Cause, outage_ms: Option<u64>) -> What {
        What {
            from: Some(from.to_owned()),
            to: Some(to.to_owned()),
            cause: Some(cause),
            outage_ms,
            ..What::new(&self.view.name, Kind::Failover)
        }
    }

    fn failed(&self, port: &str, error: &str) -> What {
        What {
            error: Some(error.to_owned()),
            ..self.ev(Kind::EnforceFailed, port)
        }
    }

    fn flapping(&self, port: &str, flaps: u32) -> What {
        What {
            flaps: Some(flaps),
            hold_ms: Some(HOLD_MS),
            ..self.ev(Kind::Flapping, port)
        }
    }

    fn enforcing(&self, port: &str, from: &str) -> What {
        What {
            from: Some(from.to_owned()),
            ..self.ev(Kind::Enforcing, port)
        }
    }

    fn set_active_action(&self, port: &str) -> Action {
        Action::SetActive {
            group: self.name(),
            port: port.to_owned(),
        }
    }

    fn admin(&self, port: &str, up: bool) -> Action {
        Action::SetAdminUp {
            group: self.name(),
            port: port.to_owned(),
            up,
        }
    }
}

/// bond0 over eth0 (primary) and eth1, both up, eth0 active.
fn bond(preempt_delay_ms: u64, max_flaps: u32) -> Rig {
    let conf = kernel_cfg(
        BOND,
        Driver::Bond,
        &["eth0", "eth1"],
        preempt_delay_ms,
        max_flaps,
    );
    let view = bond_view(&["eth0", "eth1"], Some("eth0"));
    Rig::new(vec![conf], view).started(&[("eth0", true), ("eth1", true)])
}

/// lagg0 over em0 (configured primary) and bge0, both up, with `master`
/// as lagg's MASTER and active port.
fn lagg(preempt_delay_ms: u64, max_flaps: u32, master: &str) -> Rig {
    let conf = kernel_cfg(
        LAGG,
        Driver::Lagg,
        &["em0", "bge0"],
        preempt_delay_ms,
        max_flaps,
    );
    let members: Vec<&str> = if master == "em0" {
        vec!["em0", "bge0"]
    } else {
        vec!["bge0", "em0"]
    };
    let view = lagg_view(&members, master, Some(master));
    Rig::new(vec![conf], view).started(&[("em0", true), ("bge0", true)])
}

/// A bond whose kernel failed over to eth1 at 1000 and whose eth0 came
/// back at 2000: with a 5 s delay, the engine preempts at 7000.
fn bond_waiting_to_preempt() -> Rig {
    let mut rig = bond(5_000, 4);
    rig.link(1_000, "eth0", false);
    rig.kernel_active(1_000, Some("eth1"));
    assert_eq!(
        rig.link(2_000, "eth0", true),
        events(vec![rig.ev(Kind::PortUp, "eth0")])
    );
    rig
}

// ---- start ----------------------------------------------------------------

#[test]
fn bond_start_follows_the_kernel_silently() {
    let rig = bond(5_000, 4);
    assert_eq!(rig.active(), Some("eth0"));
    assert_eq!(rig.group().aggregate(), Some(&rig.view));
    assert_eq!(rig.group().enforcing(), None);
    assert_eq!(rig.port("eth1").link(), PortLink::Up);
    assert_eq!(rig.deadline(), None);
}

#[test]
fn nothing_happens_before_both_a_snapshot_and_a_view() {
    let conf = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1"], 5_000, 4);
    let mut rig = Rig::new(
        vec![conf.clone()],
        bond_view(&["eth0", "eth1"], Some("eth1")),
    );
    // The view first: kept until the snapshot.
    let view = Input::Platform(Update::Aggregate(rig.view.clone()));
    assert_eq!(rig.feed(0, view), nothing());
    assert_eq!(rig.active(), None);
    assert_eq!(rig.group().aggregate(), None);
    let links = snapshot(&[("bond0", true), ("eth0", true), ("eth1", true)]);
    assert_eq!(rig.feed(10, links), nothing());
    assert_eq!(rig.active(), Some("eth1"));

    // The snapshot first: the group waits for the view.
    let mut rig = Rig::new(vec![conf], bond_view(&["eth0"], Some("eth0")));
    let links = snapshot(&[("bond0", true), ("eth0", true), ("eth1", true)]);
    assert_eq!(rig.feed(0, links), nothing());
    assert_eq!(rig.active(), None);
    assert_eq!(rig.port("eth1").link(), PortLink::Unknown);
    assert_eq!(rig.tick(100), nothing());
    assert_eq!(
        rig.set_active(150, Some("eth0")),
        Err("port eth0 has not been seen yet".to_owned())
    );
    let view = Input::Platform(Update::Aggregate(rig.view.clone()));
    assert_eq!(
        rig.feed(200, view),
        events(vec![rig.ev(Kind::PortMissing, "eth1")])
    );
    assert_eq!(rig.active(), Some("eth0"));
}

#[test]
fn a_kernel_with_no_active_port_at_start_is_all_ports_down() {
    let conf = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1"], 0, 4);
    let mut rig = Rig::new(vec![conf], bond_view(&["eth0", "eth1"], None));
    let out = rig.start(&[("eth0", false), ("eth1", false)]);
    assert_eq!(out, events(vec![What::new(BOND, Kind::AllPortsDown)]));
    assert_eq!(rig.group().down_since(), Some(rig.at(0)));
    assert_eq!(
        rig.link(700, "eth1", true),
        events(vec![rig.ev(Kind::PortUp, "eth1")])
    );
    assert_eq!(
        rig.kernel_active(750, Some("eth1")),
        events(vec![What {
            outage_ms: Some(750),
            ..rig.ev(Kind::GroupRecovered, "eth1")
        }])
    );
}

// ---- the kernel fails over, laggmond preempts -----------------------------

#[test]
fn a_kernel_failover_after_link_loss_is_link_down_with_the_time_it_took() {
    let mut rig = bond(5_000, 4);
    assert_eq!(
        rig.link(1_000, "eth0", false),
        events(vec![rig.ev(Kind::PortDown, "eth0")])
    );
    // The bond's own monitor fails over: laggmond does not race it.
    assert_eq!(rig.active(), Some("eth0"));
    assert_eq!(rig.tick(1_020), nothing());
    assert_eq!(
        rig.kernel_active(1_040, Some("eth1")),
        events(vec![rig.failover(
            "eth0",
            "eth1",
            Cause::LinkDown,
            Some(40)
        )])
    );
    assert_eq!(rig.active(), Some("eth1"));
    assert_eq!(rig.deadline(), None);
}

#[test]
fn the_primary_back_is_set_active_after_the_delay_and_confirmed_by_the_kernel() {
    let mut rig = bond_waiting_to_preempt();
    assert_eq!(rig.deadline(), Some(7_000));
    assert_eq!(rig.tick(6_999), nothing());
    assert_eq!(
        rig.tick(7_000),
        actions(vec![rig.set_active_action("eth0")])
    );
    assert_eq!(rig.group().enforcing(), Some("eth0"));
    assert_eq!(rig.deadline(), Some(37_000), "waits for the answer");
    assert_eq!(rig.tick(7_001), nothing(), "one action at a time");
    assert_eq!(rig.done(7_010, "eth0", Ok(())), nothing());
    assert_eq!(rig.deadline(), Some(9_010), "waits for the kernel");
    assert_eq!(
        rig.kernel_active(7_020, Some("eth0")),
        events(vec![
            rig.failover("eth1", "eth0", Cause::Preempt, None),
            rig.ev(Kind::PrimaryRestored, "eth0"),
        ])
    );
    assert_eq!(rig.group().enforcing(), None);
    assert_eq!(rig.active(), Some("eth0"));
    assert_eq!(rig.deadline(), None);
}

#[test]
fn the_kernel_may_show_the_switch_before_the_answer() {
    let mut rig = bond_waiting_to_preempt();
    rig.tick(7_000);
    assert_eq!(
        rig.kernel_active(7_005, Some("eth0")),
        events(vec![
            rig.failover("eth1", "eth0", Cause::Preempt, None),
            rig.ev(Kind::PrimaryRestored, "eth0"),
        ])
    );
    assert_eq!(rig.done(7_010, "eth0", Ok(())), nothing());
    assert_eq!(
        rig.done(7_011, "eth0", Err("late")),
        events(vec![rig.failed("eth0", "late")])
    );
    assert_eq!(rig.deadline(), None);
}

#[test]
fn a_refused_set_active_is_enforce_failed_and_waits_before_trying_again() {
    let mut rig = bond_waiting_to_preempt();
    rig.tick(7_000);
    assert_eq!(
        rig.done(7_010, "eth0", Err("Operation not permitted")),
        events(vec![rig.failed("eth0", "Operation not permitted")])
    );
    assert_eq!(rig.group().enforcing(), None);
    assert_eq!(rig.deadline(), Some(12_010));
    assert_eq!(rig.tick(12_009), nothing());
    assert_eq!(
        rig.tick(12_010),
        actions(vec![rig.set_active_action("eth0")])
    );
}

#[test]
fn the_backoff_is_at_least_a_second() {
    let mut rig = bond(0, 4);
    rig.link(1_000, "eth0", false);
    rig.kernel_active(1_000, Some("eth1"));
    let up = rig.link(2_000, "eth0", true);
    assert_eq!(up.actions, vec![rig.set_active_action("eth0")]);
    rig.done(2_010, "eth0", Err("busy"));
    assert_eq!(rig.deadline(), Some(3_010));
}

#[test]
fn an_accepted_switch_the_kernel_does_not_make_is_enforce_failed_after_two_seconds() {
    let mut rig = bond_waiting_to_preempt();
    rig.tick(7_000);
    rig.done(7_010, "eth0", Ok(()));
    assert_eq!(rig.tick(9_009), nothing());
    assert_eq!(
        rig.tick(9_010),
        events(vec![rig.failed("eth0", "the kernel did not switch")])
    );
    assert_eq!(rig.group().enforcing(), None);
    assert_eq!(rig.deadline(), Some(14_010));
    assert_eq!(
        rig.tick(14_010),
        actions(vec![rig.set_active_action("eth0")])
    );
}

#[test]
fn an_action_never_answered_is_given_up_after_thirty_seconds() {
    let mut rig = bond_waiting_to_preempt();
    rig.tick(7_000);
    assert_eq!(
        rig.tick(37_000),
        events(vec![rig.failed("eth0", "no answer from the kernel")])
    );
    assert_eq!(rig.group().enforcing(), None);
    // A late answer changes nothing.
    assert_eq!(rig.done(38_000, "eth0", Err("timed out")), nothing());
}

#[test]
fn a_bond_primary_the_kernel_prefers_comes_back_by_itself_as_link_up() {
    let mut rig = bond(5_000, 4);
    rig.kernel(0, |view| {
        view.primary = Some("eth0".to_owned());
        view.kernel_preempts = true;
    });
    rig.link(1_000, "eth0", false);
    rig.kernel_active(1_000, Some("eth1"));
    rig.link(2_000, "eth0", true);
    assert_eq!(
        rig.kernel_active(2_100, Some("eth0")),
        events(vec![rig.failover("eth1", "eth0", Cause::LinkUp, None)])
    );
    assert_eq!(rig.deadline(), None);
}

/// A bond told to return to its primary by itself (`primary_reselect`
/// `always`) races the hold-down: the operator hears so once, and again
/// only after the setting was fixed and came back.
#[test]
fn a_bond_that_preempts_by_itself_is_named_once() {
    let mut rig = bond(5_000, 4);
    let told = Notice::KernelPreempts {
        group: rig.name(),
        primary: Some("eth0".to_owned()),
    };
    let out = rig.kernel(0, |view| {
        view.primary = Some("eth0".to_owned());
        view.kernel_preempts = true;
    });
    assert_eq!(out.notices, std::slice::from_ref(&told));
    assert_eq!(rig.kernel_active(1_000, Some("eth1")).notices, []);
    assert_eq!(
        rig.kernel(2_000, |view| view.kernel_preempts = false),
        nothing()
    );
    let out = rig.kernel(3_000, |view| view.kernel_preempts = true);
    assert_eq!(out.notices, [told]);
}

/// lagg always returns to its MASTER and cannot be told otherwise, and a
/// bond laggmond does not enforce on is the kernel's to steer: no notice.
#[test]
fn only_an_enforced_bond_gets_the_kernel_preempts_notice() {
    let mut rig = lagg(5_000, 4, "em0");
    assert_eq!(
        rig.kernel(1_000, |view| view.kernel_preempts = true),
        nothing()
    );

    let mut conf = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1"], 5_000, 4);
    conf.enforce = false;
    let view = bond_view(&["eth0", "eth1"], Some("eth0"));
    let mut rig = Rig::new(vec![conf], view).started(&[("eth0", true), ("eth1", true)]);
    let out = rig.kernel(1_000, |view| {
        view.primary = Some("eth0".to_owned());
        view.kernel_preempts = true;
    });
    assert_eq!(out.notices, []);
}

/// A bond's own ARP monitor is the only path monitor of a group without
/// `probe`: nothing to fight, no notice.
#[test]
fn a_bonds_arp_monitor_without_probes_is_no_notice() {
    let mut rig = bond(5_000, 4);
    assert_eq!(rig.kernel(1_000, |view| view.arp_monitor = true), nothing());
}

// ---- external changes and the operator ------------------------------------

#[test]
fn an_external_change_is_reported_and_undone_only_after_the_hold_down() {
    let mut rig = bond(5_000, 4);
    assert_eq!(
        rig.kernel_active(10_000, Some("eth1")),
        events(vec![rig.failover("eth0", "eth1", Cause::External, None)])
    );
    assert_eq!(rig.deadline(), Some(15_000));
    assert_eq!(rig.tick(14_999), nothing());
    assert_eq!(
        rig.tick(15_000),
        actions(vec![rig.set_active_action("eth0")])
    );
    rig.done(15_005, "eth0", Ok(()));
    assert_eq!(
        rig.kernel_active(15_010, Some("eth0")),
        events(vec![
            rig.failover("eth1", "eth0", Cause::Preempt, None),
            rig.ev(Kind::PrimaryRestored, "eth0"),
        ])
    );
}

#[test]
fn an_unconfigured_active_port_is_external_and_moved_away_after_the_hold_down() {
    let mut rig = bond(5_000, 4);
    assert_eq!(rig.link(900, "eth9", true), nothing());
    assert_eq!(
        rig.kernel(1_000, |view| {
            view.members.push("eth9".to_owned());
            view.active = Some("eth9".to_owned());
        }),
        events(vec![
            rig.ev(Kind::PortUnexpected, "eth9"),
            rig.failover("eth0", "eth9", Cause::External, None),
        ])
    );
    assert_eq!(rig.active(), Some("eth9"));
    assert_eq!(rig.deadline(), Some(6_000));
    assert_eq!(
        rig.tick(6_000),
        actions(vec![rig.set_active_action("eth0")])
    );
    assert_eq!(
        rig.kernel_active(6_010, Some("eth0")),
        events(vec![
            rig.failover("eth9", "eth0", Cause::Preempt, None),
            rig.ev(Kind::PrimaryRestored, "eth0"),
        ])
    );
    // Someone enslaves eth9 again and makes it active; it then fails.
    rig.kernel_active(7_000, Some("eth9"));
    rig.link(8_000, "eth9", false);
    assert_eq!(
        rig.kernel_active(8_000, Some("eth1")),
        events(vec![rig.failover("eth9", "eth1", Cause::LinkDown, Some(0))])
    );
}

#[test]
fn operator_set_active_asks_the_kernel_and_sticks() {
    let mut rig = bond(5_000, 4);
    assert_eq!(
        rig.set_active(1_000, Some("eth1")),
        Ok(actions(vec![rig.set_active_action("eth1")]))
    );
    assert_eq!(rig.group().operator(), Some("eth1"));
    assert_eq!(rig.group().enforcing(), Some("eth1"));
    assert_eq!(rig.done(1_010, "eth1", Ok(())), nothing());
    assert_eq!(
        rig.kernel_active(1_020, Some("eth1")),
        events(vec![rig.failover("eth0", "eth1", Cause::Operator, None)])
    );
    assert_eq!(rig.deadline(), None);
    assert_eq!(rig.tick(100_000), nothing());
    // Clearing it lets the steady primary preempt at once.
    assert_eq!(
        rig.set_active(200_000, None),
        Ok(actions(vec![rig.set_active_action("eth0")]))
    );
    assert_eq!(
        rig.kernel_active(200_010, Some("eth0")),
        events(vec![
            rig.failover("eth1", "eth0", Cause::Preempt, None),
            rig.ev(Kind::PrimaryRestored, "eth0"),
        ])
    );
}

#[test]
fn operator_set_active_is_refused_with_a_reason() {
    let conf = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1", "eth2"], 0, 4);
    let mut rig = Rig::new(vec![conf], bond_view(&["eth0", "eth1"], Some("eth0")));
    rig.start(&[("eth0", true), ("eth1", false), ("eth2", true)]);
    assert_eq!(
        rig.set_active(100, Some("eth2")),
        Err("port eth2 is not a member of bond0".to_owned())
    );
    assert_eq!(
        rig.set_active(100, Some("eth1")),
        Err("port eth1 is down".to_owned())
    );
    assert_eq!(
        rig.set_active(100, Some("eth7")),
        Err("port eth7 is not in group bond0".to_owned())
    );
}

#[test]
fn an_operator_choice_after_a_failure_is_tried_at_once() {
    let mut rig = bond(5_000, 4);
    rig.set_active(1_000, Some("eth1")).unwrap();
    rig.done(1_010, "eth1", Err("busy"));
    assert_eq!(
        rig.set_active(1_100, Some("eth1")),
        Ok(actions(vec![rig.set_active_action("eth1")]))
    );
}

// ---- damping ----------------------------------------------------------------

#[test]
fn a_damped_active_bond_port_is_left_for_a_usable_one() {
    let mut rig = bond(1_000, 3);
    rig.link(100, "eth0", false);
    rig.link(150, "eth0", true);
    rig.link(200, "eth0", false);
    // The kernel never left eth0; its fourth transition damps it.
    assert_eq!(
        rig.link(250, "eth0", true),
        output(
            vec![rig.ev(Kind::PortUp, "eth0"), rig.flapping("eth0", 4)],
            vec![rig.set_active_action("eth1")],
        )
    );
    rig.done(255, "eth1", Ok(()));
    assert_eq!(
        rig.kernel_active(260, Some("eth1")),
        events(vec![rig.failover("eth0", "eth1", Cause::Damped, None)])
    );
    let end = 250 + HOLD_MS;
    assert_eq!(rig.deadline(), Some(end));
    assert_eq!(
        rig.tick(end),
        events(vec![rig.ev(Kind::FlapCleared, "eth0")])
    );
    assert_eq!(rig.deadline(), Some(end + 1_000));
    assert_eq!(
        rig.tick(end + 1_000),
        actions(vec![rig.set_active_action("eth0")])
    );
}

#[test]
fn a_damped_bond_port_without_an_alternative_keeps_the_traffic() {
    let mut rig = bond(1_000, 0);
    rig.link(100, "eth1", false);
    rig.link(200, "eth0", false);
    let out = rig.link(300, "eth0", true);
    assert_eq!(out.actions, vec![]);
    assert_eq!(rig.active(), Some("eth0"));
}

// ---- enforce: false ----------------------------------------------------------

#[test]
fn a_group_that_does_not_enforce_never_asks_the_kernel() {
    for driver in [Driver::Bond, Driver::Lagg] {
        let mut conf = kernel_cfg(BOND, driver, &["eth0", "eth1"], 1_000, 1);
        conf.enforce = false;
        let mut view = bond_view(&["eth1", "eth0"], Some("eth1"));
        view.primary = Some("eth1".to_owned());
        let mut rig = Rig::new(vec![conf], view).started(&[("eth0", true), ("eth1", true)]);
        let mut outputs = vec![
            rig.tick(10_000),
            rig.link(10_100, "eth1", false),
            rig.kernel_active(10_100, Some("eth0")),
            rig.link(10_200, "eth1", true),
            rig.link(10_300, "eth1", false),
            rig.link(10_400, "eth1", true),
            rig.kernel_active(10_500, Some("eth1")),
            rig.tick(100_000),
            rig.tick(1_000_000),
        ];
        outputs.push(rig.done(1_000_001, "eth0", Err("stray")));
        assert!(
            outputs.iter().all(|out| out.actions.is_empty()),
            "{outputs:?}"
        );
        assert!(rig.port("eth1").damped() || rig.port("eth1").transitions_total() > 2);
        assert_eq!(
            rig.set_active(1_000_002, Some("eth0")),
            Err("group bond0 only watches (enforce: false)".to_owned())
        );
        assert_eq!(rig.set_active(1_000_003, None), Ok(nothing()));
    }
}

// ---- membership and mode ---------------------------------------------------

#[test]
fn a_port_not_enslaved_is_missing_until_it_is() {
    let conf = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1"], 5_000, 4);
    let mut rig = Rig::new(vec![conf], bond_view(&["eth0"], Some("eth0")));
    assert_eq!(
        rig.start(&[("eth0", true), ("eth1", true)]),
        events(vec![rig.ev(Kind::PortMissing, "eth1")])
    );
    assert_eq!(rig.port("eth1").link(), PortLink::Missing);
    assert!(!rig.port("eth1").usable());
    assert_eq!(rig.link(100, "eth1", false), nothing());
    assert_eq!(
        rig.kernel(200, |view| view.members.push("eth1".to_owned())),
        events(vec![rig.ev(Kind::PortFound, "eth1")])
    );
    assert_eq!(rig.port("eth1").link(), PortLink::Down);
    assert_eq!(
        rig.kernel(300, |view| view.members.retain(|m| m != "eth1")),
        events(vec![rig.ev(Kind::PortMissing, "eth1")])
    );
    assert_eq!(rig.kernel(400, |_| {}), nothing());
}

#[test]
fn an_active_port_leaving_the_bond_is_removed() {
    let mut rig = bond(5_000, 4);
    rig.kernel(1_000, |view| view.members.retain(|m| m != "eth0"));
    assert_eq!(
        rig.kernel_active(1_030, Some("eth1")),
        events(vec![rig.failover("eth0", "eth1", Cause::Removed, Some(30))])
    );
}

#[test]
fn a_member_that_is_not_configured_is_unexpected_once_per_appearance() {
    let mut rig = bond(5_000, 4);
    let add = |view: &mut Aggregate| view.members.push("eth9".to_owned());
    assert_eq!(
        rig.kernel(100, add),
        events(vec![rig.ev(Kind::PortUnexpected, "eth9")])
    );
    assert_eq!(rig.kernel(200, |_| {}), nothing());
    assert_eq!(
        rig.kernel(300, |view| view.members.retain(|m| m != "eth9")),
        nothing()
    );
    assert_eq!(
        rig.kernel(400, add),
        events(vec![rig.ev(Kind::PortUnexpected, "eth9")])
    );
}

#[test]
fn a_mode_that_is_not_failover_is_reported_once_and_left_alone() {
    let mut rig = bond(5_000, 4);
    let unsupported = |mode: &str| What {
        mode: Some(mode.to_owned()),
        ..What::new(BOND, Kind::UnsupportedMode)
    };
    assert_eq!(
        rig.kernel(100, |view| {
            view.mode = "balance-rr".to_owned();
            view.failover = false;
            view.active = None;
        }),
        events(vec![unsupported("balance-rr")])
    );
    assert_eq!(rig.active(), None);
    assert_eq!(
        rig.link(200, "eth0", false),
        events(vec![rig.ev(Kind::PortDown, "eth0")])
    );
    assert_eq!(rig.kernel(300, |_| {}), nothing());
    assert_eq!(
        rig.kernel(400, |view| view.mode = "802.3ad".to_owned()),
        events(vec![unsupported("802.3ad")])
    );
    assert_eq!(
        rig.set_active(450, Some("eth1")),
        Err("group bond0 is in mode 802.3ad, which laggmond leaves alone".to_owned())
    );
    assert_eq!(rig.tick(100_000), nothing());
    // Back to failover: the group starts over, silently.
    assert_eq!(
        rig.kernel(200_000, |view| {
            view.mode = "active-backup".to_owned();
            view.failover = true;
            view.active = Some("eth1".to_owned());
        }),
        nothing()
    );
    assert_eq!(rig.active(), Some("eth1"));
    rig.link(200_100, "eth0", true);
    assert_eq!(
        rig.tick(205_100),
        actions(vec![rig.set_active_action("eth0")])
    );
}

// ---- the aggregate itself --------------------------------------------------

#[test]
fn an_aggregate_deleted_and_recreated_is_missing_then_starts_over() {
    let mut rig = bond(5_000, 4);
    assert_eq!(
        rig.gone(1_000, "bond0"),
        events(vec![rig.ev(Kind::PortMissing, "bond0")])
    );
    assert_eq!(rig.active(), None);
    assert_eq!(rig.group().aggregate(), None);
    assert_eq!(rig.group().down_since(), None);
    assert_eq!(rig.port("eth0").link(), PortLink::Unknown);
    assert_eq!(rig.deadline(), None);
    let gone_too = Update::AggregateGone {
        index: 100,
        name: BOND.to_owned(),
    };
    assert_eq!(rig.feed(1_000, Input::Platform(gone_too)), nothing());
    assert_eq!(rig.link(1_100, "eth0", false), nothing());
    assert_eq!(rig.tick(2_000), nothing());
    assert_eq!(
        rig.link(3_000, "bond0", true),
        events(vec![rig.ev(Kind::PortFound, "bond0")])
    );
    assert_eq!(
        rig.kernel(3_000, |view| {
            view.members.clear();
            view.active = None;
        }),
        events(vec![
            rig.ev(Kind::PortMissing, "eth0"),
            rig.ev(Kind::PortMissing, "eth1"),
            What::new(BOND, Kind::AllPortsDown),
        ])
    );
    assert_eq!(
        rig.kernel(3_500, |view| {
            view.members = strings(&["eth0", "eth1"]);
            view.active = Some("eth1".to_owned());
        }),
        events(vec![
            rig.ev(Kind::PortFound, "eth0"),
            rig.ev(Kind::PortFound, "eth1"),
            What {
                outage_ms: Some(500),
                ..rig.ev(Kind::GroupRecovered, "eth1")
            },
        ])
    );
}

#[test]
fn an_aggregate_that_stops_being_one_is_forgotten_silently_until_it_is_back() {
    let mut rig = bond(5_000, 4);
    let gone = Update::AggregateGone {
        index: 100,
        name: BOND.to_owned(),
    };
    assert_eq!(rig.feed(1_000, Input::Platform(gone)), nothing());
    assert_eq!(rig.active(), None);
    assert_eq!(rig.group().aggregate(), None);
    assert_eq!(rig.link(1_100, "eth0", false), nothing());
    assert_eq!(rig.kernel_active(2_000, Some("eth1")), nothing());
    assert_eq!(rig.active(), Some("eth1"));
    assert_eq!(rig.port("eth0").link(), PortLink::Down);
}

#[test]
fn an_aggregate_missing_at_start_is_reported_until_it_appears() {
    let conf = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1"], 5_000, 4);
    let mut rig = Rig::new(vec![conf], bond_view(&["eth0", "eth1"], Some("eth0")));
    let links = snapshot(&[("eth0", true), ("eth1", true)]);
    assert_eq!(
        rig.feed(0, links),
        events(vec![rig.ev(Kind::PortMissing, "bond0")])
    );
    let links = snapshot(&[("eth0", true), ("eth1", true)]);
    assert_eq!(rig.feed(100, links), nothing(), "reported once");
    assert_eq!(
        rig.link(200, "bond0", true),
        events(vec![rig.ev(Kind::PortFound, "bond0")])
    );
    assert_eq!(rig.kernel(300, |_| {}), nothing());
    assert_eq!(rig.active(), Some("eth0"));
}

#[test]
fn a_snapshot_without_the_aggregate_forgets_its_view() {
    let mut rig = bond(5_000, 4);
    let links = snapshot(&[("eth0", true), ("eth1", true)]);
    assert_eq!(
        rig.feed(100, links),
        events(vec![rig.ev(Kind::PortMissing, "bond0")])
    );
    // The interface is back but the old view is not trusted.
    assert_eq!(
        rig.link(200, "bond0", true),
        events(vec![rig.ev(Kind::PortFound, "bond0")])
    );
    assert_eq!(rig.active(), None);
}

#[test]
fn the_kernel_losing_every_port_is_all_ports_down_then_recovered() {
    let mut rig = bond(5_000, 4);
    rig.link(100, "eth0", false);
    rig.kernel_active(100, Some("eth1"));
    rig.link(200, "eth1", false);
    assert_eq!(
        rig.kernel_active(200, None),
        events(vec![What {
            port: Some("eth1".to_owned()),
            ..What::new(BOND, Kind::AllPortsDown)
        }])
    );
    rig.link(700, "eth0", true);
    assert_eq!(
        rig.kernel_active(750, Some("eth0")),
        events(vec![
            What {
                outage_ms: Some(550),
                ..rig.ev(Kind::GroupRecovered, "eth0")
            },
            rig.failover("eth1", "eth0", Cause::LinkUp, Some(550)),
        ])
    );
}

// ---- lagg ---------------------------------------------------------------------

#[test]
fn lagg_returns_to_its_master_by_itself_as_link_up() {
    let mut rig = lagg(5_000, 4, "em0");
    assert_eq!(
        rig.link(1_000, "em0", false),
        events(vec![rig.ev(Kind::PortDown, "em0")])
    );
    assert_eq!(
        rig.kernel_active(1_000, Some("bge0")),
        events(vec![rig.failover("em0", "bge0", Cause::LinkDown, Some(0))])
    );
    assert_eq!(
        rig.link(3_000, "em0", true),
        events(vec![rig.ev(Kind::PortUp, "em0")])
    );
    assert_eq!(
        rig.kernel_active(3_000, Some("em0")),
        events(vec![rig.failover("bge0", "em0", Cause::LinkUp, None)])
    );
    assert_eq!(rig.deadline(), None);
    assert_eq!(rig.tick(100_000), nothing());
}

#[test]
fn lagg_master_drift_is_enforced_by_a_reorder_after_the_delay() {
    let mut rig = lagg(5_000, 4, "bge0");
    assert_eq!(rig.active(), Some("bge0"));
    assert_eq!(rig.deadline(), Some(5_000));
    assert_eq!(rig.tick(4_999), nothing());
    assert_eq!(
        rig.tick(5_000),
        output(
            vec![rig.enforcing("em0", "bge0")],
            vec![rig.set_active_action("em0")],
        )
    );
    assert_eq!(rig.group().enforcing(), Some("em0"));
    // What the kernel shows during the reorder is laggmond's own doing.
    assert_eq!(
        rig.kernel(5_010, |view| {
            view.members = strings(&["em0"]);
            view.primary = Some("em0".to_owned());
            view.active = Some("em0".to_owned());
        }),
        nothing()
    );
    assert_eq!(
        rig.kernel(5_015, |view| view.members = strings(&["em0", "bge0"])),
        nothing()
    );
    assert_eq!(
        rig.done(5_020, "em0", Ok(())),
        events(vec![
            rig.failover("bge0", "em0", Cause::Preempt, None),
            rig.ev(Kind::PrimaryRestored, "em0"),
        ])
    );
    assert_eq!(rig.group().enforcing(), None);
    assert_eq!(rig.group().aggregate(), Some(&rig.view));
    assert_eq!(rig.deadline(), Some(10_000), "the rate limit ends");
    assert_eq!(rig.tick(10_000), nothing());
    assert_eq!(rig.deadline(), None);
}

#[test]
fn lagg_reorder_confirmed_after_the_answer() {
    let mut rig = lagg(5_000, 4, "bge0");
    rig.tick(5_000);
    assert_eq!(rig.done(5_020, "em0", Ok(())), nothing());
    assert_eq!(
        rig.kernel(5_030, |view| {
            view.members = strings(&["em0", "bge0"]);
            view.primary = Some("em0".to_owned());
            view.active = Some("em0".to_owned());
        }),
        events(vec![
            rig.failover("bge0", "em0", Cause::Preempt, None),
            rig.ev(Kind::PrimaryRestored, "em0"),
        ])
    );
}

#[test]
fn a_failed_lagg_reorder_is_enforce_failed_and_the_kernel_is_followed() {
    let mut rig = lagg(5_000, 4, "bge0");
    rig.tick(5_000);
    // A reorder that stopped half way: bge0 was removed and not re-added.
    rig.kernel(5_010, |view| {
        view.members = strings(&["em0"]);
        view.primary = Some("em0".to_owned());
        view.active = Some("em0".to_owned());
    });
    assert_eq!(
        rig.done(5_020, "em0", Err("Device busy")),
        events(vec![
            rig.failed("em0", "Device busy"),
            rig.ev(Kind::PortMissing, "bge0"),
            // The engine learns of the loss only now.
            rig.failover("bge0", "em0", Cause::Removed, Some(0)),
        ])
    );
}

#[test]
fn lagg_reorders_are_rate_limited() {
    let mut rig = lagg(5_000, 4, "em0");
    // The operator's reorder is done at once.
    assert_eq!(
        rig.set_active(6_000, Some("bge0")),
        Ok(output(
            vec![rig.enforcing("bge0", "em0")],
            vec![rig.set_active_action("bge0")],
        ))
    );
    rig.done(6_010, "bge0", Ok(()));
    assert_eq!(
        rig.kernel(6_020, |view| {
            view.members = strings(&["bge0", "em0"]);
            view.primary = Some("bge0".to_owned());
            view.active = Some("bge0".to_owned());
        }),
        events(vec![rig.failover("em0", "bge0", Cause::Operator, None)])
    );
    // Back to the policy: the next reorder waits for the rate limit.
    assert_eq!(rig.set_active(7_000, None), Ok(nothing()));
    assert_eq!(rig.deadline(), Some(11_000));
    assert_eq!(rig.tick(10_999), nothing());
    assert_eq!(
        rig.tick(11_000),
        output(
            vec![rig.enforcing("em0", "bge0")],
            vec![rig.set_active_action("em0")],
        )
    );
}

#[test]
fn lagg_never_reorders_while_a_member_is_down_or_unsteady() {
    let conf = kernel_cfg(LAGG, Driver::Lagg, &["em0", "bge0"], 5_000, 4);
    // MASTER bge0 has no link: lagg sends on em0.
    let view = lagg_view(&["bge0", "em0"], "bge0", Some("em0"));
    let mut rig = Rig::new(vec![conf], view).started(&[("em0", true), ("bge0", false)]);
    assert_eq!(rig.deadline(), None);
    assert_eq!(rig.tick(100_000), nothing());
    assert_eq!(
        rig.link(200_000, "bge0", true),
        events(vec![rig.ev(Kind::PortUp, "bge0")])
    );
    assert_eq!(
        rig.kernel_active(200_000, Some("bge0")),
        events(vec![rig.failover("em0", "bge0", Cause::LinkUp, None)])
    );
    // bge0 just came up: the reorder waits until it has been steady.
    assert_eq!(rig.deadline(), Some(205_000));
    assert_eq!(rig.tick(204_999), nothing());
    assert_eq!(
        rig.tick(205_000),
        output(
            vec![rig.enforcing("em0", "bge0")],
            vec![rig.set_active_action("em0")],
        )
    );
}

#[test]
fn lagg_takes_a_flapping_port_out_of_service_and_back() {
    let mut rig = lagg(1_000, 2, "em0");
    rig.link(100, "bge0", false);
    rig.link(200, "bge0", true);
    assert_eq!(
        rig.link(300, "bge0", false),
        output(
            vec![rig.ev(Kind::PortDown, "bge0"), rig.flapping("bge0", 3)],
            vec![rig.admin("bge0", false)],
        )
    );
    assert!(rig.group().is_held_down("bge0"));
    assert_eq!(rig.done(310, "bge0", Ok(())), nothing());
    // Held down: its link changes are laggmond's doing, not flaps.
    assert_eq!(rig.link(400, "bge0", true), nothing());
    assert_eq!(rig.link(500, "bge0", false), nothing());
    assert_eq!(rig.port("bge0").transitions_total(), 3);
    let end = 300 + HOLD_MS;
    assert_eq!(
        rig.tick(end),
        output(
            vec![rig.ev(Kind::FlapCleared, "bge0")],
            vec![rig.admin("bge0", true)],
        )
    );
    assert!(!rig.group().is_held_down("bge0"));
    // Its first link state after the release is taken as it is.
    assert_eq!(rig.link(end + 50, "bge0", true), nothing());
    assert_eq!(rig.port("bge0").transitions_total(), 3);
    assert_eq!(rig.port("bge0").link(), PortLink::Up);
    assert_eq!(
        rig.link(end + 100, "bge0", false),
        events(vec![rig.ev(Kind::PortDown, "bge0")])
    );
    assert_eq!(rig.port("bge0").transitions_total(), 4);
}

#[test]
fn a_flapping_lagg_master_is_held_down_and_lagg_returns_to_it_after() {
    let mut rig = lagg(1_000, 2, "em0");
    rig.link(100, "em0", false);
    rig.kernel_active(100, Some("bge0"));
    rig.link(200, "em0", true);
    rig.kernel_active(200, Some("em0"));
    let out = rig.link(300, "em0", true);
    assert_eq!(out, nothing());
    // A flap too quick for lagg to move, then the third transition.
    rig.link(300, "em0", false);
    assert!(rig.port("em0").damped());
    assert_eq!(rig.done(305, "em0", Ok(())), nothing());
    assert_eq!(
        rig.kernel_active(320, Some("bge0")),
        events(vec![rig.failover("em0", "bge0", Cause::Damped, None)])
    );
    let end = 300 + HOLD_MS;
    assert_eq!(
        rig.tick(end),
        output(
            vec![rig.ev(Kind::FlapCleared, "em0")],
            vec![rig.admin("em0", true)],
        )
    );
    assert_eq!(rig.link(end + 200, "em0", true), nothing());
    assert_eq!(
        rig.kernel_active(end + 200, Some("em0")),
        events(vec![rig.failover("bge0", "em0", Cause::LinkUp, None)])
    );
}

#[test]
fn lagg_returning_to_a_released_port_is_link_up_even_without_a_link_change() {
    let mut rig = lagg(1_000, 0, "em0");
    rig.link(100, "em0", false);
    rig.kernel_active(100, Some("bge0"));
    // A stray report while held: recorded quietly.
    assert_eq!(rig.link(200, "em0", true), nothing());
    let end = 100 + HOLD_MS;
    rig.tick(end);
    assert_eq!(
        rig.kernel_active(end + 10, Some("em0")),
        events(vec![rig.failover("bge0", "em0", Cause::LinkUp, None)])
    );
}

#[test]
fn lagg_keeps_a_damped_port_when_no_other_can_carry_traffic() {
    let mut rig = lagg(1_000, 2, "em0");
    rig.link(100, "bge0", false);
    // Later, em0 flaps while bge0 is still down.
    let start = 100 + WINDOW_MS;
    rig.link(start, "em0", false);
    rig.link(start + 100, "em0", true);
    let out = rig.link(start + 200, "em0", false);
    assert!(out.events.contains(&rig.flapping("em0", 3)), "{out:?}");
    assert_eq!(out.actions, vec![], "bge0 is down: em0 stays in service");
    let out = rig.link(start + 300, "em0", true);
    assert_eq!(out, events(vec![rig.ev(Kind::PortUp, "em0")]));
    // bge0 comes back: now em0 can be held down.
    assert_eq!(
        rig.link(start + 400, "bge0", true),
        output(
            vec![rig.ev(Kind::PortUp, "bge0")],
            vec![rig.admin("em0", false)],
        )
    );
    // bge0 fails again: em0 is given back at once.
    assert_eq!(
        rig.link(start + 500, "bge0", false),
        output(
            vec![rig.ev(Kind::PortDown, "bge0")],
            vec![rig.admin("em0", true)],
        )
    );
}

#[test]
fn a_failed_admin_change_is_enforce_failed_and_retried() {
    let mut rig = lagg(1_000, 0, "em0");
    rig.link(100, "bge0", false);
    assert_eq!(
        rig.done(110, "bge0", Err("Operation not permitted")),
        events(vec![rig.failed("bge0", "Operation not permitted")])
    );
    assert!(!rig.group().is_held_down("bge0"));
    // Not held: its link counts again.
    assert_eq!(
        rig.link(120, "bge0", true),
        events(vec![rig.ev(Kind::PortUp, "bge0")])
    );
    assert_eq!(rig.deadline(), Some(1_110));
    assert_eq!(rig.tick(1_110), actions(vec![rig.admin("bge0", false)]));
}

#[test]
fn lagg_never_reorders_while_a_port_is_damped() {
    let mut rig = lagg(1_000, 0, "bge0");
    rig.link(100, "em0", false);
    assert!(rig.port("em0").damped());
    rig.link(200, "em0", true);
    assert!(rig.group().is_held_down("em0") || rig.port("em0").link() == PortLink::Up);
    for at in [1_000, 5_000, 30_000] {
        let out = rig.tick(at);
        assert!(
            !out.actions
                .iter()
                .any(|a| matches!(a, Action::SetActive { .. })),
            "{out:?}"
        );
    }
}

// ---- reload and shutdown -----------------------------------------------------

#[test]
fn reconfigure_keeps_the_kernel_view() {
    let mut rig = bond(5_000, 4);
    let slower = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1"], 9_000, 4);
    let out = rig.engine.reconfigure(rig.at(100), config(vec![slower]));
    assert_eq!(out, nothing());
    assert_eq!(rig.group().aggregate(), Some(&rig.view));
    assert_eq!(rig.active(), Some("eth0"));
    // A member dropped from the config is unexpected now.
    let fewer = kernel_cfg(BOND, Driver::Bond, &["eth0"], 9_000, 4);
    let out = rig.engine.reconfigure(rig.at(200), config(vec![fewer]));
    assert_eq!(out, events(vec![rig.ev(Kind::PortUnexpected, "eth1")]));
    // A group removed and added back knows its aggregate at once.
    let out = rig.engine.reconfigure(rig.at(300), config(vec![]));
    assert_eq!(out, nothing());
    let again = kernel_cfg(BOND, Driver::Bond, &["eth0", "eth1"], 9_000, 4);
    let out = rig.engine.reconfigure(rig.at(400), config(vec![again]));
    assert_eq!(out, nothing());
    assert_eq!(rig.active(), Some("eth0"));
    assert_eq!(rig.port("eth1").link(), PortLink::Up);
}

#[test]
fn a_held_port_is_given_back_when_its_group_or_the_daemon_goes() {
    let mut rig = lagg(1_000, 0, "em0");
    rig.link(100, "bge0", false);
    assert!(rig.group().is_held_down("bge0"));
    assert_eq!(
        rig.engine.shutdown(),
        actions(vec![rig.admin("bge0", true)])
    );

    let mut rig = lagg(1_000, 0, "em0");
    rig.link(100, "bge0", false);
    let only_em0 = kernel_cfg(LAGG, Driver::Lagg, &["em0"], 1_000, 0);
    let out = rig.engine.reconfigure(rig.at(200), config(vec![only_em0]));
    assert_eq!(
        out,
        output(
            vec![rig.ev(Kind::PortUnexpected, "bge0")],
            vec![rig.admin("bge0", true)],
        )
    );

    let mut rig = lagg(1_000, 0, "em0");
    rig.link(100, "bge0", false);
    let out = rig.engine.reconfigure(rig.at(200), config(vec![]));
    assert_eq!(out, actions(vec![rig.admin("bge0", true)]));

    // enforce turned off: given back, never held again.
    let mut rig = lagg(1_000, 0, "em0");
    rig.link(100, "bge0", false);
    let mut watch = kernel_cfg(LAGG, Driver::Lagg, &["em0", "bge0"], 1_000, 0);
    watch.enforce = false;
    let out = rig.engine.reconfigure(rig.at(200), config(vec![watch]));
    assert_eq!(out, actions(vec![rig.admin("bge0", true)]));
}

#[test]
fn a_driver_change_starts_the_group_over() {
    let mut rig = bond(5_000, 4);
    let plain = group_cfg(BOND, &["eth1", "eth0"], 5_000, 4);
    let out = rig.engine.reconfigure(rig.at(100), config(vec![plain]));
    assert_eq!(out, nothing());
    assert_eq!(rig.active(), Some("eth1"));
    assert_eq!(rig.group().aggregate(), None);
}

#[test]
fn none_groups_ignore_aggregates() {
    let mut rig = Rig::new(
        vec![group_cfg(BOND, &["eth0", "eth1"], 0, 4)],
        bond_view(&["eth0", "eth1"], Some("eth1")),
    )
    .started(&[("eth0", true), ("eth1", true)]);
    assert_eq!(rig.active(), Some("eth0"));
    assert_eq!(rig.kernel_active(100, Some("eth0")), nothing());
    assert_eq!(rig.group().aggregate(), None);
}
