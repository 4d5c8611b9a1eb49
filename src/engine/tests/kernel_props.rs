//! Random sequences against a tiny model of the kernel: a bond or a lagg
//! that follows laggmond's actions at once (or refuses them, or accepts
//! and does nothing), fails over by itself, and is changed by others.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use proptest::prelude::*;

use super::{config, group_cfg, link, ms};
use crate::config::{Driver, GroupConfig};
use crate::engine::*;
use crate::platform::kernel::{Aggregate, Answer, Update};
use crate::probe::PathState;

/// The aggregate of every case.
const AGG: &str = "agg0";
/// A port no config names, which may become a member.
const STRANGER: &str = "x9";
/// Actions one step may cause before the test calls it a storm.
const MAX_ACTIONS_PER_STEP: usize = 64;

/// The kernel as the model sees it. Ports are indexes into `names`.
#[derive(Clone, Debug)]
struct Kernel {
    driver: Driver,
    /// Configured ports in priority order, then the stranger.
    names: Vec<String>,
    carrier: Vec<bool>,
    admin_down: Vec<bool>,
    member: Vec<bool>,
    /// lagg's MASTER.
    master: usize,
    active: Option<usize>,
    failover: bool,
    exists: bool,
    /// Accepts `SetActive` and does nothing.
    lazy: bool,
    /// Answers every action with an error.
    refuses: bool,
}

impl Kernel {
    fn new(driver: Driver, ports: &[String]) -> Kernel {
        let mut names = ports.to_vec();
        names.push(STRANGER.to_owned());
        let count = names.len();
        let mut member = vec![true; count];
        member[count - 1] = false;
        let mut kernel = Kernel {
            driver,
            names,
            carrier: vec![true; count],
            admin_down: vec![false; count],
            member,
            master: 0,
            active: None,
            failover: true,
            exists: true,
            lazy: false,
            refuses: false,
        };
        kernel.reselect();
        kernel
    }

    /// Whether the aggregate can send on port `i`.
    fn carries(&self, i: usize) -> bool {
        self.member[i] && self.carrier[i] && !self.admin_down[i]
    }

    /// The link the platform reports: carrier and administratively up.
    fn visible(&self, i: usize) -> bool {
        self.carrier[i] && !self.admin_down[i]
    }

    /// The kernel's own choice: lagg sends on its MASTER when it can,
    /// a bond keeps its active port while it works.
    fn reselect(&mut self) {
        if !self.member[self.master] {
            self.master = (0..self.names.len())
                .find(|&i| self.member[i])
                .unwrap_or(self.master);
        }
        if !self.exists || !self.failover {
            self.active = None;
            return;
        }
        let first = (0..self.names.len()).find(|&i| self.carries(i));
        self.active = match self.driver {
            Driver::Lagg if self.carries(self.master) => Some(self.master),
            Driver::Lagg => first,
            _ => self.active.filter(|&i| self.carries(i)).or(first),
        };
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    fn view(&self) -> Aggregate {
        let lagg = self.driver == Driver::Lagg;
        let mut order: Vec<usize> = (0..self.names.len()).filter(|&i| self.member[i]).collect();
        if lagg {
            order.sort_by_key(|&i| i != self.master);
        }
        let mode = match (lagg, self.failover) {
            (true, true) => "failover",
            (true, false) => "lacp",
            (false, true) => "active-backup",
            (false, false) => "balance-rr",
        };
        Aggregate {
            index: 50,
            name: AGG.to_owned(),
            mode: mode.to_owned(),
            failover: self.failover,
            members: order.iter().map(|&i| self.names[i].clone()).collect(),
            active: self.active.map(|i| self.names[i].clone()),
            primary: lagg.then(|| self.names[self.master].clone()),
            kernel_preempts: lagg,
            arp_monitor: false,
        }
    }

    /// Carries out an action like the kernel would.
    fn apply(&mut self, action: &Action) -> Result<(), String> {
        if self.refuses {
            return Err("refused".to_owned());
        }
        match action {
            Action::SetActive { port, .. } => {
                let i = self.index(port).ok_or("no such port")?;
                if !self.exists || !self.member[i] {
                    return Err("not a member".to_owned());
                }
                if self.lazy {
                    return Ok(());
                }
                match self.driver {
                    Driver::Lagg => self.master = i,
                    _ if self.carries(i) => self.active = Some(i),
                    _ => return Err("no carrier".to_owned()),
                }
            }
            Action::SetAdminUp { port, up, .. } => {
                let i = self.index(port).ok_or("no such port")?;
                self.admin_down[i] = !up;
            }
            Action::RemovePort { port, .. } | Action::AddPort { port, .. } => {
                let add = matches!(action, Action::AddPort { .. });
                let i = self.index(port).ok_or("no such port")?;
                if self.driver != Driver::Lagg {
                    return Err("port removal is for lagg only".to_owned());
                }
                // As the platform: a port goes back whatever the mode.
                if !self.exists || (!add && !self.failover) {
                    return Err("not a failover lagg".to_owned());
                }
                // As the platform: a port already where it should be is
                // success, the last port is never removed.
                let members = self.member.iter().filter(|m| **m).count();
                if !add && self.member[i] && members == 1 {
                    return Err("last port".to_owned());
                }
                self.member[i] = add;
            }
        }
        self.reselect();
        Ok(())
    }
}

/// One random step; port indexes are taken modulo the number of ports.
#[derive(Clone, Debug)]
enum Step {
    Carrier(usize, bool),
    Wait(u64),
    TickAfter(u64),
    TickAtDeadline,
    /// Someone else makes a port active (bond) or MASTER (lagg).
    External(usize),
    Enslave(usize, bool),
    Failover(bool),
    Exists(bool),
    Lazy(bool),
    Refuses(bool),
    Operator(Option<usize>),
    ClearDamping,
    Snapshot,
    Reload,
    /// The probes judge a port's path: up or down.
    Path(usize, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..8usize, any::<bool>()).prop_map(|(i, up)| Step::Carrier(i, up)),
        2 => (0..3_000u64).prop_map(Step::Wait),
        3 => (0..3_000u64).prop_map(Step::TickAfter),
        4 => Just(Step::TickAtDeadline),
        1 => (0..8usize).prop_map(Step::External),
        1 => (0..8usize, any::<bool>()).prop_map(|(i, on)| Step::Enslave(i, on)),
        1 => prop::bool::weighted(0.7).prop_map(Step::Failover),
        1 => prop::bool::weighted(0.7).prop_map(Step::Exists),
        1 => prop::bool::weighted(0.3).prop_map(Step::Lazy),
        1 => prop::bool::weighted(0.3).prop_map(Step::Refuses),
        1 => prop::option::of(0..4usize).prop_map(Step::Operator),
        1 => Just(Step::ClearDamping),
        1 => Just(Step::Snapshot),
        1 => Just(Step::Reload),
        3 => (0..8usize, any::<bool>()).prop_map(|(i, up)| Step::Path(i, up)),
    ]
}

/// A random kernel group: driver, ports, enforce, preempt, preempt_delay,
/// max_flaps, hold, and whether it probes paths.
fn group() -> impl Strategy<Value = GroupConfig> {
    (
        any::<bool>(),
        1..=3usize,
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        0..3_000u64,
        0..4u32,
        1..8_000u64,
        any::<bool>(),
    )
        .prop_map(
            |(lagg, size, enforce, preempt, delay, max_flaps, hold, probed)| {
                let ports: Vec<String> = (0..size).map(|n| format!("p{n}")).collect();
                let refs: Vec<&str> = ports.iter().map(String::as_str).collect();
                let mut conf = group_cfg(AGG, &refs, delay, max_flaps);
                conf.driver = if lagg { Driver::Lagg } else { Driver::Bond };
                conf.enforce = enforce;
                conf.preempt = preempt;
                conf.flap_damping.hold = ms(hold);
                conf.probe = probed.then(super::path::probe);
                conf
            },
        )
}

/// The engine, the model kernel and what the platform last reported.
struct Sim {
    engine: Engine,
    kernel: Kernel,
    now: Instant,
    enforce: bool,
    /// The link each interface was last reported with (absent: gone).
    reported: HashMap<String, bool>,
    actions: VecDeque<Action>,
    actions_this_step: usize,
    /// Ports the engine took out of the lagg and has not put back, as far
    /// as nobody else touched them since.
    taken_out: BTreeSet<String>,
}

impl Sim {
    fn new(conf: GroupConfig) -> Sim {
        let kernel = Kernel::new(conf.driver, &conf.ports);
        let enforce = conf.enforce;
        Sim {
            engine: Engine::new(config(vec![conf])),
            kernel,
            now: Instant::now(),
            enforce,
            reported: HashMap::new(),
            actions: VecDeque::new(),
            actions_this_step: 0,
            taken_out: BTreeSet::new(),
        }
    }

    fn group(&self) -> &Group {
        self.engine.group(AGG).expect("the group is configured")
    }

    /// Feeds one input and checks what came out.
    fn input(&mut self, input: Input) -> Result<(), TestCaseError> {
        let was_tick = matches!(input, Input::Tick);
        let before = self.group().enforcing().map(str::to_owned);
        let out = self.engine.handle(self.now, input);
        self.check(&out, before)?;
        if was_tick {
            if let Some(deadline) = self.engine.next_deadline() {
                prop_assert!(deadline > self.now, "deadline in the past after a tick");
            }
        }
        self.actions.extend(out.actions);
        Ok(())
    }

    fn command(&mut self, cmd: Command) -> Result<(), TestCaseError> {
        let before = self.group().enforcing().map(str::to_owned);
        if let Ok(out) = self.engine.command(self.now, cmd) {
            self.check(&out, before)?;
            self.actions.extend(out.actions);
        }
        Ok(())
    }

    /// The invariants of one engine call.
    fn check(&self, out: &Output, before: Option<String>) -> Result<(), TestCaseError> {
        let group = self.group();
        if !self.enforce {
            prop_assert!(
                out.actions.is_empty(),
                "enforce: false asked {:?}",
                out.actions
            );
        }
        let set_active: Vec<&str> = out
            .actions
            .iter()
            .filter_map(|action| match action {
                Action::SetActive { port, .. } => Some(port.as_str()),
                _ => None,
            })
            .collect();
        prop_assert!(
            set_active.len() <= 1,
            "several SetActive: {:?}",
            out.actions
        );
        if let Some(port) = set_active.first() {
            // Never toward a dead path while some port has a working one.
            let usable = group.port(port).is_some_and(Port::usable);
            let any_usable = group.ports().iter().any(Port::usable);
            prop_assert!(usable || !any_usable, "asked for {port} with a dead path");
            prop_assert_eq!(group.enforcing(), Some(*port));
            prop_assert!(group.aggregate().is_some_and(|view| view.failover));
            if let Some(previous) = before {
                // A new action only once the previous one is over.
                let failed = out.events.iter().any(|what| {
                    what.kind == Kind::EnforceFailed && what.port.as_deref() == Some(&previous)
                });
                let done = match self.kernel.driver {
                    Driver::Lagg => group
                        .aggregate()
                        .is_some_and(|view| view.primary.as_deref() == Some(&previous)),
                    _ => group.active() == Some(previous.as_str()),
                };
                prop_assert!(failed || done, "{previous} still pending: {:?}", out);
            }
        }
        self.check_removals(out)?;
        let failovers: Vec<&What> = out
            .events
            .iter()
            .filter(|what| what.kind == Kind::Failover)
            .collect();
        for what in &failovers {
            prop_assert!(what.from.is_some() && what.to.is_some() && what.cause.is_some());
            prop_assert_ne!(&what.from, &what.to);
        }
        if let Some(last) = failovers.last() {
            prop_assert_eq!(last.to.as_deref(), group.active());
        }
        Ok(())
    }

    /// A port is taken out of a lagg only for a dead path, only while
    /// another port in the lagg has a working one, and one at a time.
    fn check_removals(&self, out: &Output) -> Result<(), TestCaseError> {
        let group = self.group();
        let removals: Vec<&str> = out
            .actions
            .iter()
            .filter_map(|action| match action {
                Action::RemovePort { port, .. } => Some(port.as_str()),
                _ => None,
            })
            .collect();
        prop_assert!(removals.len() <= 1, "several removals: {:?}", out.actions);
        for port in removals {
            prop_assert!(self.kernel.driver == Driver::Lagg && self.enforce);
            prop_assert!(group.config().probe.is_some());
            let path = group.port(port).map(Port::path);
            prop_assert_eq!(path, Some(PathState::Down), "{} removed", port);
            let view = group.aggregate().expect("a lagg to remove from");
            let working = group.ports().iter().any(|other| {
                other.name() != port
                    && view.members.iter().any(|member| member == other.name())
                    && !group.is_removed(other.name())
                    && other.usable()
                    && other.path() == PathState::Up
            });
            prop_assert!(working, "{port} removed without a working member left");
        }
        Ok(())
    }

    /// Every path works again and time passes: every port laggmond took
    /// out of the lagg is back in it.
    fn heal(&mut self) -> Result<(), TestCaseError> {
        self.actions_this_step = 0;
        self.kernel.refuses = false;
        self.kernel.lazy = false;
        self.kernel.exists = true;
        self.kernel.failover = true;
        for i in 0..self.kernel.names.len() {
            self.kernel.carrier[i] = true;
        }
        self.kernel.reselect();
        self.publish()?;
        self.run_actions()?;
        for _ in 0..64 {
            self.actions_this_step = 0;
            for i in 0..self.kernel.names.len() {
                let name = self.kernel.names[i].clone();
                self.input(Input::Path(crate::probe::PathReport {
                    group: AGG.to_owned(),
                    port: name,
                    verdict: crate::probe::PathVerdict::Up { rtt: ms(1) },
                }))?;
            }
            self.run_actions()?;
            self.actions_this_step = 0;
            self.now += ms(1_000);
            if let Some(deadline) = self.engine.next_deadline() {
                self.now = self.now.max(deadline);
            }
            self.input(Input::Tick)?;
            self.run_actions()?;
        }
        let group = self.group();
        for name in &self.kernel.names {
            prop_assert!(!group.is_removed(name), "{name} still out");
        }
        prop_assert!(self.taken_out.is_empty(), "not back: {:?}", self.taken_out);
        Ok(())
    }

    /// Reports what changed in the kernel: links first, then the aggregate.
    fn publish(&mut self) -> Result<(), TestCaseError> {
        for i in 0..self.kernel.names.len() {
            let name = self.kernel.names[i].clone();
            let up = self.kernel.visible(i);
            if self.reported.insert(name.clone(), up) != Some(up) {
                self.input(Input::Platform(Update::Link(link(&name, up))))?;
            }
        }
        let exists = self.kernel.exists;
        let was = self.reported.contains_key(AGG);
        if exists && !was {
            self.reported.insert(AGG.to_owned(), true);
            self.input(Input::Platform(Update::Link(link(AGG, true))))?;
        }
        if exists {
            let view = self.kernel.view();
            self.input(Input::Platform(Update::Aggregate(view)))?;
        } else if was {
            self.reported.remove(AGG);
            let name = AGG.to_owned();
            self.input(Input::Platform(Update::Gone { index: 50, name }))?;
            let gone = Update::AggregateGone {
                index: 50,
                name: AGG.to_owned(),
            };
            self.input(Input::Platform(gone))?;
        }
        Ok(())
    }

    /// A full snapshot, then the aggregate.
    fn snapshot(&mut self) -> Result<(), TestCaseError> {
        let mut links: Vec<_> = (0..self.kernel.names.len())
            .map(|i| link(&self.kernel.names[i], self.kernel.visible(i)))
            .collect();
        if self.kernel.exists {
            links.push(link(AGG, true));
        }
        self.reported = links
            .iter()
            .map(|l| (l.name.clone(), l.state == LinkState::Up))
            .collect();
        self.input(Input::Platform(Update::Snapshot(links)))?;
        if self.kernel.exists {
            let view = self.kernel.view();
            self.input(Input::Platform(Update::Aggregate(view)))?;
        }
        Ok(())
    }

    /// Carries out the engine's actions, answering each once the kernel
    /// reported its effect.
    fn run_actions(&mut self) -> Result<(), TestCaseError> {
        while let Some(action) = self.actions.pop_front() {
            self.actions_this_step += 1;
            prop_assert!(
                self.actions_this_step <= MAX_ACTIONS_PER_STEP,
                "action storm: {action:?}"
            );
            let result = self.kernel.apply(&action);
            match (&action, &result) {
                (Action::RemovePort { port, .. }, Ok(())) => {
                    self.taken_out.insert(port.clone());
                }
                (Action::AddPort { port, .. }, Ok(())) => {
                    self.taken_out.remove(port);
                }
                _ => {}
            }
            self.publish()?;
            let (Action::SetActive { port, .. }
            | Action::SetAdminUp { port, .. }
            | Action::RemovePort { port, .. }
            | Action::AddPort { port, .. }) = action;
            self.input(Input::Platform(Update::Answer(Answer {
                group: AGG.to_owned(),
                port,
                result,
            })))?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        self.actions_this_step = 0;
        let count = self.kernel.names.len();
        let configured = count - 1;
        match step {
            Step::Carrier(i, up) => {
                self.kernel.carrier[i % count] = *up;
                self.kernel.reselect();
                self.publish()?;
            }
            Step::Wait(millis) => self.now += ms(*millis),
            Step::TickAfter(millis) => {
                self.now += ms(*millis);
                self.input(Input::Tick)?;
            }
            Step::TickAtDeadline => {
                if let Some(deadline) = self.engine.next_deadline() {
                    self.now = self.now.max(deadline);
                }
                self.input(Input::Tick)?;
            }
            Step::External(i) => {
                let i = i % count;
                if self.kernel.member[i] {
                    match self.kernel.driver {
                        Driver::Lagg => self.kernel.master = i,
                        _ if self.kernel.carries(i) => self.kernel.active = Some(i),
                        _ => {}
                    }
                    self.kernel.reselect();
                    self.publish()?;
                }
            }
            Step::Enslave(i, on) => {
                // Someone else's doing: not the engine's to put back.
                self.taken_out.remove(&self.kernel.names[i % count]);
                self.kernel.member[i % count] = *on;
                self.kernel.reselect();
                self.publish()?;
            }
            Step::Failover(on) => {
                self.kernel.failover = *on;
                self.kernel.reselect();
                self.publish()?;
            }
            Step::Exists(on) => {
                if !*on {
                    // A destroyed lagg frees its ports.
                    self.taken_out.clear();
                }
                self.kernel.exists = *on;
                self.kernel.reselect();
                self.publish()?;
            }
            Step::Lazy(on) => self.kernel.lazy = *on,
            Step::Refuses(on) => self.kernel.refuses = *on,
            Step::Operator(port) => {
                let port = port.map(|p| self.kernel.names[p % configured].clone());
                self.command(Command::SetActive {
                    group: AGG.to_owned(),
                    port,
                })?;
            }
            Step::ClearDamping => self.command(Command::ClearDamping {
                group: None,
                port: None,
            })?,
            Step::Snapshot => self.snapshot()?,
            Step::Path(i, up) => {
                let verdict = if *up {
                    crate::probe::PathVerdict::Up { rtt: ms(1) }
                } else {
                    crate::probe::PathVerdict::Down {
                        missed: 1,
                        targets: Vec::new(),
                    }
                };
                self.input(Input::Path(crate::probe::PathReport {
                    group: AGG.to_owned(),
                    port: self.kernel.names[i % count].clone(),
                    verdict,
                }))?;
            }
            Step::Reload => {
                let config = self.engine.config().clone();
                let before = self.group().enforcing().map(str::to_owned);
                let out = self.engine.reconfigure(self.now, config);
                self.check(&out, before)?;
                self.actions.extend(out.actions);
            }
        }
        self.run_actions()?;
        self.check_follows_kernel()
    }

    /// Once every action is answered, the group shows the kernel's active
    /// port, and holds down only ports it may.
    fn check_follows_kernel(&self) -> Result<(), TestCaseError> {
        let group = self.group();
        let kernel_active = self.kernel.active.map(|i| self.kernel.names[i].as_str());
        if self.kernel.exists && self.kernel.failover {
            prop_assert_eq!(group.active(), kernel_active);
            prop_assert_eq!(group.aggregate(), Some(&self.kernel.view()));
        }
        for (i, name) in self.kernel.names.iter().enumerate() {
            let held = group.is_held_down(name);
            prop_assert_eq!(held, self.kernel.admin_down[i], "{}", name);
            if held {
                prop_assert!(self.kernel.driver == Driver::Lagg && self.enforce);
                // Damped, or its release failed and is tried again later.
                let damped = group.port(name).is_some_and(Port::damped);
                let retried = self.engine.next_deadline().is_some();
                prop_assert!(damped || retried, "{name} held for nothing");
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kernel_groups_follow_a_model_kernel(
        conf in group(),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let mut sim = Sim::new(conf);
        sim.snapshot()?;
        sim.run_actions()?;
        for step in &steps {
            sim.step(step)?;
        }
        // The daemon stopping gives every held port back.
        sim.kernel.refuses = false;
        for action in sim.engine.shutdown().actions {
            prop_assert!(
                matches!(action, Action::SetAdminUp { up: true, .. } | Action::AddPort { .. }),
                "{action:?}"
            );
            prop_assert!(sim.kernel.apply(&action).is_ok());
        }
        prop_assert!(sim.kernel.admin_down.iter().all(|down| !down), "{:?}", sim.kernel);
    }

    #[test]
    fn a_port_taken_out_of_a_lagg_comes_back_once_its_path_works(
        conf in group(),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let mut sim = Sim::new(conf);
        sim.snapshot()?;
        sim.run_actions()?;
        for step in &steps {
            sim.step(step)?;
        }
        sim.heal()?;
    }
}
