//! The per-port path state machine: which targets to ask and when, which
//! answers count, and when the path is judged up or down.
//!
//! Pure: the I/O layer sends what [`Tick::send`] names, feeds back the
//! replies [`parse_reply`] accepted, wakes at [`PathProbe::next_deadline`]
//! and passes the time in, so every rule is tested with synthetic time.
//!
//! Each call of [`PathProbe::on_interval`] closes the interval that just
//! ended, judges it per `require`, and opens the next one by asking every
//! target again. `missed` failed intervals in a row make the path down;
//! one good interval makes it up. A port whose link comes up with a dead
//! path goes from unknown to down after `missed` failed intervals, so
//! that it is seen, not left unknown for ever.
//!
//! [`parse_reply`]: super::arp::parse_reply

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::ignored::Ignored;
use super::{PathState, PathVerdict};
use crate::config::{ProbeConfig, Require};

/// What the driver must do when an interval ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Targets to send an ARP request to now, in configured order.
    pub send: Vec<Ipv4Addr>,
    /// The path changed: reported once per change.
    pub verdict: Option<PathVerdict>,
}

/// The probe of one port's path, built from its group's probe settings.
#[derive(Clone, Debug)]
pub struct PathProbe {
    targets: Vec<Ipv4Addr>,
    interval: Duration,
    missed: u32,
    require: Require,
    state: PathState,
    /// `None` while the link is down: nothing is sent, nothing counts.
    running: Option<Running>,
}

/// What a running probe remembers; forgotten when the link goes down.
#[derive(Clone, Debug)]
struct Running {
    /// When the open interval ends (the next requests are due).
    deadline: Instant,
    /// `None` until the first requests are sent.
    open: Option<Interval>,
    /// When the latest request to each target was sent.
    last_sent: Vec<Option<Instant>>,
    /// Failed intervals since the last good one, or since the start.
    failed: u32,
}

/// The answers of the interval being collected.
#[derive(Clone, Debug)]
struct Interval {
    answered: Vec<bool>,
    /// The round trip of the interval's first valid answer.
    first_rtt: Option<Duration>,
}

impl PathProbe {
    /// A stopped probe for a port of a group probed as `config` says;
    /// [`start`](Self::start) it when the port's link comes up.
    ///
    /// A target listed twice is asked once: otherwise its second entry
    /// could never be answered and `require: all` would never be met.
    pub fn new(config: &ProbeConfig) -> Self {
        let mut targets = Vec::with_capacity(config.arp.len());
        for target in &config.arp {
            if !targets.contains(target) {
                targets.push(*target);
            }
        }
        PathProbe {
            targets,
            interval: config.interval,
            // The config refuses 0; 1 keeps "down at once" meaning that.
            missed: config.missed.max(1),
            require: config.require,
            state: PathState::Unknown,
            running: None,
        }
    }

    /// The targets asked, in configured order: what the socket filter
    /// lets through.
    pub fn targets(&self) -> &[Ipv4Addr] {
        &self.targets
    }

    /// What is known of the path now.
    pub fn state(&self) -> PathState {
        self.state
    }

    /// The port's link came up: whatever was known of the path is stale.
    /// The first requests are due at once, `now`.
    pub fn start(&mut self, now: Instant) {
        self.state = PathState::Unknown;
        self.running = Some(Running {
            deadline: now,
            open: None,
            last_sent: vec![None; self.targets.len()],
            failed: 0,
        });
    }

    /// The port's link went down: probing stops and the path is unknown
    /// (a dead link says nothing of the path beyond it).
    pub fn stop(&mut self) {
        self.state = PathState::Unknown;
        self.running = None;
    }

    /// When [`on_interval`](Self::on_interval) is due; `None` while
    /// stopped.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.running.as_ref().map(|running| running.deadline)
    }

    /// The interval ended: judges it and opens the next one, whose
    /// requests [`Tick::send`] lists. The next interval is measured from
    /// `now`, so each lasts at least `interval` however late the wake-up.
    ///
    /// Before the deadline (an early wake-up) or while stopped it does
    /// nothing: an interval cut short would be judged on too little.
    pub fn on_interval(&mut self, now: Instant) -> Tick {
        let Some(running) = self.running.as_mut() else {
            return Tick::default();
        };
        if now < running.deadline {
            return Tick::default();
        }
        let verdict = match running.open.take() {
            Some(closed) => {
                let judged = judge(&closed, self.require);
                running.failed = if judged.is_some() {
                    0
                } else {
                    running.failed.saturating_add(1)
                };
                match judged {
                    Some(rtt) if self.state != PathState::Up => {
                        self.state = PathState::Up;
                        Some(PathVerdict::Up { rtt })
                    }
                    None if running.failed >= self.missed && self.state != PathState::Down => {
                        self.state = PathState::Down;
                        let targets = self
                            .targets
                            .iter()
                            .zip(&closed.answered)
                            .filter(|(_, answered)| !**answered)
                            .map(|(target, _)| *target)
                            .collect();
                        Some(PathVerdict::Down {
                            missed: self.missed,
                            targets,
                        })
                    }
                    _ => None,
                }
            }
            None => None,
        };
        running.open = Some(Interval {
            answered: vec![false; self.targets.len()],
            first_rtt: None,
        });
        running.last_sent.fill(Some(now));
        running.deadline = now + self.interval;
        Tick {
            send: self.targets.clone(),
            verdict,
        }
    }

    /// A reply from `sender_ip` arrived (already accepted by the parser):
    /// counts it for the open interval and returns its round trip, or
    /// says why it does not count.
    ///
    /// An ARP reply does not say which request it answers, so a reply
    /// counts if a request to its sender was sent within the last
    /// `missed` intervals (a slow answer still shows a working path), and
    /// its round trip is measured from the latest request to that target.
    /// Duplicates count once; each returns its own round trip.
    pub fn on_reply(&mut self, now: Instant, sender_ip: Ipv4Addr) -> Result<Duration, Ignored> {
        let index = self
            .targets
            .iter()
            .position(|target| *target == sender_ip)
            .ok_or(Ignored::NotATarget)?;
        let running = self.running.as_mut().ok_or(Ignored::Unsolicited)?;
        let sent = running.last_sent[index].ok_or(Ignored::Unsolicited)?;
        let open = running.open.as_mut().ok_or(Ignored::Unsolicited)?;
        let rtt = now.saturating_duration_since(sent);
        let window = self
            .interval
            .checked_mul(self.missed)
            .unwrap_or(Duration::MAX);
        if rtt > window {
            return Err(Ignored::Late);
        }
        open.answered[index] = true;
        open.first_rtt.get_or_insert(rtt);
        Ok(rtt)
    }
}

/// The round trip of its first answer if the interval had enough answers
/// per `require`; `None` if it failed. No targets never make a good
/// interval.
fn judge(interval: &Interval, require: Require) -> Option<Duration> {
    let enough = match require {
        Require::Any => interval.answered.contains(&true),
        Require::All => !interval.answered.contains(&false),
    };
    interval.first_rtt.filter(|_| enough)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::names::Named;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
    const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
    const SECOND: Duration = Duration::from_secs(1);

    fn config(targets: &[Ipv4Addr], missed: u32, require: Require) -> ProbeConfig {
        ProbeConfig {
            arp: targets.to_vec(),
            interval: SECOND,
            missed,
            require,
            source: Ipv4Addr::UNSPECIFIED,
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A probe started at `t0`, its first requests sent then.
    fn started(targets: &[Ipv4Addr], missed: u32, require: Require) -> (PathProbe, Instant) {
        let t0 = Instant::now();
        let mut probe = PathProbe::new(&config(targets, missed, require));
        probe.start(t0);
        assert_eq!(probe.next_deadline(), Some(t0));
        let tick = probe.on_interval(t0);
        assert_eq!(tick.send, probe.targets());
        assert_eq!(tick.verdict, None);
        (probe, t0)
    }

    fn up(rtt: Duration) -> Option<PathVerdict> {
        Some(PathVerdict::Up { rtt })
    }

    fn down(missed: u32, targets: &[Ipv4Addr]) -> Option<PathVerdict> {
        Some(PathVerdict::Down {
            missed,
            targets: targets.to_vec(),
        })
    }

    #[test]
    fn the_states_have_their_names() {
        let names: Vec<&str> = PathState::ALL.iter().map(|state| state.as_str()).collect();
        assert_eq!(names, ["off", "unknown", "up", "down"]);
        assert_eq!(PathState::from_name("off"), Some(PathState::Off));
    }

    #[test]
    fn a_new_probe_is_stopped() {
        let now = Instant::now();
        let mut probe = PathProbe::new(&config(&[A], 3, Require::Any));
        assert_eq!(probe.state(), PathState::Unknown);
        assert_eq!(probe.next_deadline(), None);
        assert_eq!(probe.on_interval(now), Tick::default());
        assert_eq!(probe.on_reply(now, A), Err(Ignored::Unsolicited));
        assert_eq!(probe.on_reply(now, STRANGER), Err(Ignored::NotATarget));
    }

    #[test]
    fn every_target_is_asked_every_interval() {
        let (mut probe, t0) = started(&[A, B, C], 3, Require::Any);
        assert_eq!(probe.next_deadline(), Some(t0 + SECOND));
        let tick = probe.on_interval(t0 + SECOND);
        assert_eq!(tick.send, [A, B, C]);
        assert_eq!(probe.next_deadline(), Some(t0 + 2 * SECOND));
    }

    #[test]
    fn an_early_wake_up_does_nothing() {
        let (mut probe, t0) = started(&[A], 1, Require::Any);
        assert_eq!(probe.on_interval(t0 + ms(999)), Tick::default());
        assert_eq!(probe.next_deadline(), Some(t0 + SECOND));
        assert_eq!(probe.state(), PathState::Unknown);
    }

    #[test]
    fn a_late_wake_up_measures_the_next_interval_from_then() {
        let (mut probe, t0) = started(&[A], 1, Require::Any);
        probe.on_interval(t0 + ms(1300));
        assert_eq!(probe.next_deadline(), Some(t0 + ms(2300)));
    }

    #[test]
    fn any_needs_one_answer() {
        let (mut probe, t0) = started(&[A, B, C], 3, Require::Any);
        assert_eq!(probe.on_reply(t0 + ms(12), B), Ok(ms(12)));
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, up(ms(12)));
        assert_eq!(probe.state(), PathState::Up);
    }

    #[test]
    fn all_needs_every_answer() {
        let (mut probe, t0) = started(&[A, B], 2, Require::All);
        probe.on_reply(t0 + ms(5), A).unwrap();
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, None);
        assert_eq!(probe.state(), PathState::Unknown);

        probe.on_reply(t0 + ms(1005), A).unwrap();
        assert_eq!(
            probe.on_interval(t0 + 2 * SECOND).verdict,
            down(2, &[B]),
            "B failed two intervals in a row"
        );

        probe.on_reply(t0 + ms(2020), B).unwrap();
        probe.on_reply(t0 + ms(2030), A).unwrap();
        assert_eq!(probe.on_interval(t0 + 3 * SECOND).verdict, up(ms(20)));
        assert_eq!(probe.state(), PathState::Up);
    }

    #[test]
    fn one_missed_interval_is_enough_when_missed_is_one() {
        let (mut probe, t0) = started(&[A, B], 1, Require::Any);
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, down(1, &[A, B]));
        assert_eq!(probe.state(), PathState::Down);
    }

    #[test]
    fn an_unknown_path_goes_down_after_missed_intervals() {
        let (mut probe, t0) = started(&[A], 3, Require::Any);
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, None);
        assert_eq!(probe.on_interval(t0 + 2 * SECOND).verdict, None);
        assert_eq!(probe.state(), PathState::Unknown);
        assert_eq!(probe.on_interval(t0 + 3 * SECOND).verdict, down(3, &[A]));
        assert_eq!(probe.state(), PathState::Down);
    }

    #[test]
    fn an_up_path_goes_down_after_missed_intervals_in_a_row() {
        let (mut probe, t0) = started(&[A], 3, Require::Any);
        probe.on_reply(t0 + ms(1), A).unwrap();
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, up(ms(1)));
        // Two failures, a success, two failures: never three in a row.
        let mut at = t0 + SECOND;
        for answered in [false, false, true, false, false] {
            if answered {
                probe.on_reply(at + ms(1), A).unwrap();
            }
            at += SECOND;
            assert_eq!(probe.on_interval(at).verdict, None);
            assert_eq!(probe.state(), PathState::Up);
        }
        at += SECOND;
        assert_eq!(probe.on_interval(at).verdict, down(3, &[A]));
    }

    #[test]
    fn verdicts_are_not_repeated() {
        let (mut probe, t0) = started(&[A], 1, Require::Any);
        let mut at = t0;
        for _ in 0..3 {
            probe.on_reply(at + ms(1), A).unwrap();
            at += SECOND;
            probe.on_interval(at);
        }
        assert_eq!(probe.state(), PathState::Up);
        let mut verdicts = Vec::new();
        for _ in 0..3 {
            at += SECOND;
            verdicts.push(probe.on_interval(at).verdict);
        }
        assert_eq!(verdicts, [down(1, &[A]), None, None]);
        probe.on_reply(at + ms(7), A).unwrap();
        assert_eq!(probe.on_interval(at + SECOND).verdict, up(ms(7)));
        probe.on_reply(at + ms(1008), A).unwrap();
        assert_eq!(probe.on_interval(at + 2 * SECOND).verdict, None);
    }

    #[test]
    fn the_rtt_is_from_the_latest_request_to_that_target() {
        let (mut probe, t0) = started(&[A, B], 3, Require::Any);
        probe.on_interval(t0 + SECOND);
        // Requests went out at t0 + 1 s; an answer 30 ms later.
        assert_eq!(probe.on_reply(t0 + ms(1030), B), Ok(ms(30)));
        assert_eq!(probe.on_reply(t0 + ms(1045), A), Ok(ms(45)));
        // The verdict carries the first answer's round trip.
        assert_eq!(probe.on_interval(t0 + 2 * SECOND).verdict, up(ms(30)));
    }

    #[test]
    fn a_late_answer_within_the_window_counts() {
        let (mut probe, t0) = started(&[A], 3, Require::Any);
        // The driver stalled: the answer comes 2.5 intervals after the
        // request, within the 3 intervals of the window.
        assert_eq!(probe.on_reply(t0 + ms(2500), A), Ok(ms(2500)));
        assert_eq!(probe.on_reply(t0 + ms(3000), A), Ok(ms(3000)));
        assert_eq!(probe.on_interval(t0 + ms(3000)).verdict, up(ms(2500)));
    }

    #[test]
    fn an_answer_after_the_window_is_late() {
        let (mut probe, t0) = started(&[A], 3, Require::Any);
        assert_eq!(probe.on_reply(t0 + ms(3001), A), Err(Ignored::Late));
        let (mut probe, t0) = started(&[A], 1, Require::Any);
        assert_eq!(probe.on_reply(t0 + ms(1001), A), Err(Ignored::Late));
        // Not counted: the stalled interval failed.
        assert_eq!(probe.on_interval(t0 + ms(1001)).verdict, down(1, &[A]));
    }

    #[test]
    fn an_answer_to_the_previous_interval_counts_for_the_open_one() {
        let (mut probe, t0) = started(&[A], 2, Require::Any);
        probe.on_interval(t0 + SECOND);
        // It may answer the request of t0: ARP does not say which.
        assert_eq!(probe.on_reply(t0 + ms(1002), A), Ok(ms(2)));
        assert_eq!(probe.on_interval(t0 + 2 * SECOND).verdict, up(ms(2)));
    }

    #[test]
    fn answers_from_others_do_not_count() {
        let (mut probe, t0) = started(&[A], 1, Require::Any);
        assert_eq!(
            probe.on_reply(t0 + ms(3), STRANGER),
            Err(Ignored::NotATarget)
        );
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, down(1, &[A]));
    }

    #[test]
    fn duplicates_count_once() {
        let (mut probe, t0) = started(&[A, B], 3, Require::All);
        assert_eq!(probe.on_reply(t0 + ms(4), A), Ok(ms(4)));
        assert_eq!(probe.on_reply(t0 + ms(9), A), Ok(ms(9)));
        // A twice is not A and B.
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, None);
        probe.on_reply(t0 + ms(1004), A).unwrap();
        probe.on_reply(t0 + ms(1006), B).unwrap();
        probe.on_reply(t0 + ms(1008), B).unwrap();
        assert_eq!(probe.on_interval(t0 + 2 * SECOND).verdict, up(ms(4)));
    }

    #[test]
    fn a_target_listed_twice_is_asked_once() {
        let (mut probe, t0) = started(&[A, B, A], 3, Require::All);
        assert_eq!(probe.targets(), [A, B]);
        probe.on_reply(t0 + ms(1), A).unwrap();
        probe.on_reply(t0 + ms(2), B).unwrap();
        assert_eq!(probe.on_interval(t0 + SECOND).verdict, up(ms(1)));
    }

    #[test]
    fn stopping_forgets_everything() {
        let (mut probe, t0) = started(&[A], 1, Require::Any);
        probe.on_reply(t0 + ms(1), A).unwrap();
        probe.on_interval(t0 + SECOND);
        assert_eq!(probe.state(), PathState::Up);

        probe.stop();
        assert_eq!(probe.state(), PathState::Unknown);
        assert_eq!(probe.next_deadline(), None);
        assert_eq!(probe.on_reply(t0 + ms(1002), A), Err(Ignored::Unsolicited));
        assert_eq!(probe.on_interval(t0 + 5 * SECOND), Tick::default());
    }

    #[test]
    fn the_link_coming_up_again_starts_afresh() {
        let (mut probe, t0) = started(&[A], 2, Require::Any);
        probe.on_interval(t0 + SECOND);
        assert_eq!(probe.on_interval(t0 + 2 * SECOND).verdict, down(2, &[A]));

        // Up again without going down first (a flap too quick to see).
        let t1 = t0 + ms(2500);
        probe.start(t1);
        assert_eq!(probe.state(), PathState::Unknown);
        assert_eq!(probe.next_deadline(), Some(t1));
        // The requests of before are forgotten: nothing asked yet.
        assert_eq!(probe.on_reply(t1, A), Err(Ignored::Unsolicited));
        assert_eq!(probe.on_interval(t1).verdict, None);
        // The failure count starts again too.
        assert_eq!(probe.on_interval(t1 + SECOND).verdict, None);
        assert_eq!(probe.on_interval(t1 + 2 * SECOND).verdict, down(2, &[A]));

        probe.start(t1 + ms(2100));
        probe.on_interval(t1 + ms(2100));
        probe.on_reply(t1 + ms(2111), A).unwrap();
        assert_eq!(probe.on_interval(t1 + ms(3100)).verdict, up(ms(11)));
    }

    /// One step of the driver, in milliseconds after the previous one.
    #[derive(Clone, Debug)]
    enum Step {
        /// Wakes for the interval, `late` after its deadline.
        Interval {
            late: u64,
        },
        /// Wakes before the deadline.
        Early,
        /// A reply from target `target` (one past the last: a stranger).
        Reply {
            after: u64,
            target: usize,
        },
        Stop,
        Start {
            after: u64,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0u64..400).prop_map(|late| Step::Interval { late }),
            1 => Just(Step::Early),
            6 => (0u64..1500, 0usize..5).prop_map(|(after, target)| Step::Reply { after, target }),
            1 => Just(Step::Stop),
            1 => (0u64..3000).prop_map(|after| Step::Start { after }),
        ]
    }

    /// What the rules say, kept apart from the code under test.
    #[derive(Default)]
    struct Model {
        running: bool,
        opened: bool,
        sent: Vec<Option<Instant>>,
        answered: Vec<Option<Duration>>,
        first_rtt: Option<Duration>,
        failed_in_a_row: u32,
        last_verdict: Option<bool>,
    }

    proptest! {
        #[test]
        fn verdicts_follow_the_rules(
            target_count in 1usize..5,
            missed in 1u32..5,
            all in any::<bool>(),
            steps in proptest::collection::vec(step(), 0..120),
        ) {
            let targets: Vec<Ipv4Addr> =
                (0..target_count).map(|index| Ipv4Addr::new(10, 0, 0, index as u8 + 1)).collect();
            let require = if all { Require::All } else { Require::Any };
            let mut probe = PathProbe::new(&config(&targets, missed, require));
            let mut now = Instant::now();
            let mut model = Model::default();
            let window = SECOND * missed;

            for step in steps {
                match step {
                    Step::Start { after } => {
                        now += ms(after);
                        probe.start(now);
                        model = Model {
                            running: true,
                            sent: vec![None; target_count],
                            answered: vec![None; target_count],
                            ..Model::default()
                        };
                    }
                    Step::Stop => {
                        probe.stop();
                        model.running = false;
                        prop_assert_eq!(probe.next_deadline(), None);
                    }
                    Step::Early => {
                        if let Some(deadline) = probe.next_deadline() {
                            if deadline > now {
                                prop_assert_eq!(probe.on_interval(now), Tick::default());
                            }
                        }
                    }
                    Step::Reply { after, target } => {
                        now += ms(after);
                        let sender = Ipv4Addr::new(10, 0, 0, target as u8 + 1);
                        let expected = if target >= target_count {
                            Err(Ignored::NotATarget)
                        } else {
                            match model.sent.get(target).copied().flatten().filter(|_| model.running) {
                                None => Err(Ignored::Unsolicited),
                                Some(sent) if now - sent > window => Err(Ignored::Late),
                                Some(sent) => Ok(now - sent),
                            }
                        };
                        prop_assert_eq!(probe.on_reply(now, sender), expected);
                        if let Ok(rtt) = expected {
                            model.answered[target].get_or_insert(rtt);
                            model.first_rtt.get_or_insert(rtt);
                        }
                    }
                    Step::Interval { late } => {
                        let Some(deadline) = probe.next_deadline() else {
                            prop_assert!(!model.running);
                            prop_assert_eq!(probe.on_interval(now), Tick::default());
                            continue;
                        };
                        now = now.max(deadline) + ms(late);
                        let state_before = probe.state();
                        let tick = probe.on_interval(now);
                        prop_assert_eq!(&tick.send, &targets);
                        prop_assert_eq!(probe.next_deadline(), Some(now + SECOND));

                        let good = if all {
                            model.answered.iter().all(Option::is_some)
                        } else {
                            model.answered.iter().any(Option::is_some)
                        };
                        if model.opened {
                            if good {
                                model.failed_in_a_row = 0;
                            } else {
                                model.failed_in_a_row += 1;
                            }
                        }
                        match &tick.verdict {
                            Some(PathVerdict::Up { rtt }) => {
                                prop_assert!(model.opened && good);
                                prop_assert_ne!(model.last_verdict, Some(true), "Up twice");
                                prop_assert_ne!(state_before, PathState::Up);
                                prop_assert_eq!(Some(*rtt), model.first_rtt);
                                model.last_verdict = Some(true);
                            }
                            Some(PathVerdict::Down { missed: said, targets: silent }) => {
                                prop_assert_eq!(*said, missed);
                                prop_assert!(model.failed_in_a_row >= missed, "Down too soon");
                                prop_assert_ne!(model.last_verdict, Some(false), "Down twice");
                                prop_assert_ne!(state_before, PathState::Down);
                                let unanswered: Vec<Ipv4Addr> = targets
                                    .iter()
                                    .zip(&model.answered)
                                    .filter(|(_, answer)| answer.is_none())
                                    .map(|(target, _)| *target)
                                    .collect();
                                prop_assert_eq!(silent, &unanswered);
                                model.last_verdict = Some(false);
                            }
                            None => {}
                        }
                        // And nothing is left unsaid.
                        if model.opened && good {
                            prop_assert_eq!(probe.state(), PathState::Up);
                        } else if model.failed_in_a_row >= missed {
                            prop_assert_eq!(probe.state(), PathState::Down);
                        } else {
                            prop_assert_eq!(probe.state(), state_before);
                        }

                        model.opened = true;
                        model.sent.fill(Some(now));
                        model.answered.fill(None);
                        model.first_rtt = None;
                    }
                }
            }
        }
    }
}
