//! The Linux platform against the real bonding driver.
//!
//! These tests create bonds and veth pairs in the machine's own network
//! namespace, so they only run in a throw-away VM with the bonding driver:
//! `scripts/vmtest.sh` builds them on the host, boots the VM and sets
//! `LAGGMOND_VM_TEST`. Anywhere else every test says why it skips and
//! passes. Each test covers a long sequence, because every VM boot costs
//! seconds and the emulated CPU is slow; they print the latencies they
//! measure.

#![cfg(target_os = "linux")]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use laggmond::platform::linux::{spawn, Options};
use laggmond::platform::{Aggregate, LinkState, PlatformHandle, Request, Update};
use rtnetlink::LinkUnspec;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use common::run;

/// Longest wait for any expected update or kernel state.
const WAIT: Duration = Duration::from_secs(5);

/// How fast a failover must be reported, even on an emulated CPU.
const PROMPT: Duration = Duration::from_secs(1);

/// The damping hold of the daemon test: long enough that the `ip` calls
/// of a flapping burst on an emulated CPU cannot outlast it.
const HOLD: Duration = Duration::from_secs(12);

/// Set by the VM script: this machine is disposable.
const VM_MARKER: &str = "LAGGMOND_VM_TEST";

/// Whether this machine may and can run the tests; says why not.
fn in_a_bonding_vm() -> bool {
    if !Path::new("/sys/class/net/bonding_masters").exists() {
        eprintln!("skipped: needs the bonding driver (run scripts/vmtest.sh)");
        return false;
    }
    if std::env::var_os(VM_MARKER).is_none() {
        eprintln!(
            "skipped: creates bonds and veth pairs on this machine; run scripts/vmtest.sh \
             (it sets {VM_MARKER} in its VM)"
        );
        return false;
    }
    true
}

// --- the kernel's failover notice, as the platform logs it ------------------

/// When the platform logged the kernel's bonding-failover notification.
static FAILOVER_NOTICES: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// The platform's log line for the kernel's own failover notification.
const FAILOVER_NOTICE: &str = "kernel bonding failover notification";

/// Records when [`FAILOVER_NOTICE`] is logged.
struct NoticeRecorder;

impl<S: tracing::Subscriber> Layer<S> for NoticeRecorder {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        let mut message = MessageField(String::new());
        event.record(&mut message);
        if message.0 == FAILOVER_NOTICE {
            if let Ok(mut notices) = FAILOVER_NOTICES.lock() {
                notices.push(Instant::now());
            }
        }
    }
}

/// The `message` field of an event.
struct MessageField(String);

impl tracing::field::Visit for MessageField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Record failover notices; print the platform's warnings.
fn watch_logs() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let notices = Targets::new().with_target("laggmond::platform::linux", tracing::Level::DEBUG);
    let _ = tracing_subscriber::registry()
        .with(NoticeRecorder.with_filter(notices))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(LevelFilter::WARN),
        )
        .try_init();
}

/// The first failover notice logged at or after `since`.
fn failover_notice_since(since: Instant) -> Option<Instant> {
    let notices = FAILOVER_NOTICES.lock().ok()?;
    notices.iter().copied().find(|notice| *notice >= since)
}

// --- the machine: ip, sysfs --------------------------------------------------

/// Run `ip` with the words of `command`; `Err` with its message on failure.
/// Asynchronous, so the monitor keeps reading meanwhile.
async fn try_ip(command: &str) -> Result<(), String> {
    let output = tokio::process::Command::new("ip")
        .args(command.split_whitespace())
        .output()
        .await
        .map_err(|error| format!("cannot run ip: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Run `ip`; a failure fails the test.
async fn ip(command: &str) {
    if let Err(error) = try_ip(command).await {
        panic!("`ip {command}` failed: {error}");
    }
}

/// Run `ip` until it succeeds (the bond refuses some changes until its
/// link monitor caught up); returns when the last attempt started.
async fn ip_until_accepted(command: &str) -> Instant {
    let deadline = Instant::now() + WAIT;
    loop {
        let started = Instant::now();
        match try_ip(command).await {
            Ok(()) => return started,
            Err(error) if Instant::now() > deadline => {
                panic!("`ip {command}` still refused after {WAIT:?}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A sysfs attribute of an interface (`bond0/bonding/active_slave`).
fn sysfs(attribute: &str) -> String {
    let path = format!("/sys/class/net/{attribute}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
        .trim()
        .to_owned()
}

/// Wait until the sysfs `attribute` reads `wanted`.
async fn sysfs_becomes(attribute: &str, wanted: &str) {
    let deadline = Instant::now() + WAIT;
    while sysfs(attribute) != wanted {
        assert!(
            Instant::now() < deadline,
            "{attribute} is {:?}, not {wanted:?}, after {WAIT:?}",
            sysfs(attribute)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Interfaces to delete when a test ends, also when it fails.
struct Cleanup(Vec<&'static str>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            // Deleting one end of a veth pair deletes both; missing is fine.
            let _ = std::process::Command::new("ip")
                .args(["link", "del", name])
                .output();
        }
    }
}

/// `bond` in active-backup mode (miimon 10 ms) over veth ports whose peers
/// (`peer0` for `eth0`...) are up: the peers are the cables.
async fn active_backup_bond(bond: &str, ports: &[(&str, &str)], options: &str) {
    for (port, peer) in ports {
        ip(&format!("link add {port} type veth peer name {peer}")).await;
    }
    ip(&format!(
        "link add {bond} type bond mode active-backup miimon 10 {options}"
    ))
    .await;
    for (port, peer) in ports {
        ip(&format!("link set {port} master {bond}")).await;
        ip(&format!("link set {peer} up")).await;
    }
    ip(&format!("link set {bond} up")).await;
}

// --- the platform under test -------------------------------------------------

/// The running platform and the latest aggregate it reported per name.
struct Platform {
    handle: PlatformHandle,
    aggregates: BTreeMap<String, Aggregate>,
    /// Updates read while waiting for an answer and not yet read by the
    /// test: the next reads get them first, so no goal misses one.
    replay: VecDeque<Update>,
}

/// A condition on one update, and what it is in words.
type Goal<'a> = (&'a str, &'a dyn Fn(&Update) -> bool);

impl Platform {
    fn start() -> Platform {
        Platform {
            handle: spawn(Options::default()).expect("the platform starts"),
            aggregates: BTreeMap::new(),
            replay: VecDeque::new(),
        }
    }

    /// The next update; `None` after `quiet` without one.
    async fn next_within(&mut self, quiet: Duration) -> Option<Update> {
        match self.replay.pop_front() {
            Some(update) => Some(update),
            None => self.receive(quiet).await,
        }
    }

    /// The next update off the stream, noting the aggregates as they are
    /// reported; `None` after `quiet` without one.
    async fn receive(&mut self, quiet: Duration) -> Option<Update> {
        let update = match tokio::time::timeout(quiet, self.handle.updates.recv()).await {
            Ok(Some(update)) => update,
            Ok(None) => panic!("the platform stopped"),
            Err(_) => return None,
        };
        match &update {
            Update::Aggregate(aggregate) => {
                self.aggregates
                    .insert(aggregate.name.clone(), aggregate.clone());
            }
            Update::AggregateGone { name, .. } => {
                self.aggregates.remove(name);
            }
            _ => {}
        }
        Some(update)
    }

    /// Read updates until each goal was met by one; returns when each was
    /// first met, in the goals' order.
    async fn until_all(&mut self, goals: &[Goal<'_>]) -> Vec<Instant> {
        let deadline = Instant::now() + WAIT;
        let mut met: Vec<Option<Instant>> = vec![None; goals.len()];
        let mut seen = Vec::new();
        while met.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(update) = self.next_within(left).await else {
                let missing: Vec<&str> = goals
                    .iter()
                    .zip(&met)
                    .filter(|(_, met)| met.is_none())
                    .map(|((what, _), _)| *what)
                    .collect();
                panic!("no {missing:?} within {WAIT:?}; got {seen:#?}");
            };
            let now = Instant::now();
            for ((_, goal), met) in goals.iter().zip(met.iter_mut()) {
                if met.is_none() && goal(&update) {
                    *met = Some(now);
                }
            }
            seen.push(update);
        }
        met.into_iter().flatten().collect()
    }

    /// Read updates until one meets `goal`; returns when.
    async fn until(&mut self, what: &str, goal: &dyn Fn(&Update) -> bool) -> Instant {
        self.until_all(&[(what, goal)]).await[0]
    }

    /// The latest aggregate reported under `name`.
    fn aggregate(&self, name: &str) -> &Aggregate {
        self.aggregates
            .get(name)
            .unwrap_or_else(|| panic!("no aggregate {name} reported: {:?}", self.aggregates))
    }

    /// Ask for `port` to become `group`'s active port; the answer and how
    /// long it took. The updates before the answer are noted and kept for
    /// the next reads.
    async fn set_active(&mut self, group: &str, port: &str) -> (Result<(), String>, Duration) {
        let started = Instant::now();
        let request = Request::SetActive {
            group: group.into(),
            port: port.into(),
        };
        self.handle
            .requests
            .send(request)
            .await
            .expect("the platform takes requests");
        let deadline = started + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receive(left).await {
                Some(Update::Answer(answer)) => {
                    assert_eq!(
                        (answer.group.as_str(), answer.port.as_str()),
                        (group, port),
                        "the answer is about the request"
                    );
                    return (answer.result, started.elapsed());
                }
                Some(update) => self.replay.push_back(update),
                None => panic!(
                    "set-active not answered within {WAIT:?}; got {:#?}",
                    self.replay
                ),
            }
        }
    }
}

fn link_is(name: &'static str, state: LinkState) -> impl Fn(&Update) -> bool {
    move |update| matches!(update, Update::Link(link) if link.name == name && link.state == state)
}

fn aggregate_where(
    name: &'static str,
    wanted: impl Fn(&Aggregate) -> bool,
) -> impl Fn(&Update) -> bool {
    move |update| matches!(update, Update::Aggregate(aggregate) if aggregate.name == name && wanted(aggregate))
}

fn active_is(name: &'static str, port: &'static str) -> impl Fn(&Update) -> bool {
    aggregate_where(name, move |aggregate| {
        aggregate.active.as_deref() == Some(port)
    })
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

// --- the tests -------------------------------------------------------------------

#[test]
fn an_active_backup_bond_is_watched_and_steered() {
    if !in_a_bonding_vm() {
        return;
    }
    watch_logs();
    let _cleanup = Cleanup(vec!["bond0", "eth0", "eth1"]);
    run(async {
        active_backup_bond("bond0", &[("eth0", "peer0"), ("eth1", "peer1")], "").await;
        sysfs_becomes("bond0/bonding/active_slave", "eth0").await;

        let mut platform = Platform::start();
        start_up(&mut platform).await;
        let by_ip = async {
            let started = Instant::now();
            ip("link set peer0 down").await;
            started
        };
        cable_pulled(&mut platform, "ip link set peer0 down", by_ip).await;
        set_active_back(&mut platform).await;
        let by_netlink = netlink_down("peer0");
        cable_pulled(&mut platform, "netlink request peer0 down", by_netlink).await;
        set_active_back(&mut platform).await;
        set_active_refused(&mut platform).await;
        changed_by_another_tool(&mut platform).await;
        port_removed_and_added(&mut platform).await;
        bond_deleted_and_created(&mut platform).await;
        resync(&mut platform).await;
    });
}

/// Start: a snapshot, then bond0 as the kernel has it.
async fn start_up(platform: &mut Platform) {
    match platform.next_within(WAIT).await {
        Some(Update::Snapshot(links)) => {
            let eth0 = links.iter().find(|link| link.name == "eth0");
            assert!(
                matches!(eth0, Some(link) if link.state == LinkState::Up && link.master.is_some()),
                "eth0 in the snapshot: {eth0:?}"
            );
        }
        other => panic!("the first update is not a snapshot: {other:?}"),
    }
    let bond = match platform.next_within(WAIT).await {
        Some(Update::Aggregate(bond)) => bond,
        other => panic!("the snapshot is not followed by bond0: {other:?}"),
    };
    assert_eq!(bond.name, "bond0");
    assert_eq!(bond.mode, "active-backup");
    assert!(bond.failover);
    assert_eq!(bond.members, names(&["eth0", "eth1"]));
    assert_eq!(bond.active.as_deref(), Some("eth0"));
    assert_eq!(bond.primary, None);
    assert!(!bond.kernel_preempts);
}

/// Bring `peer` down with one netlink request from this process, which
/// unlike `ip` costs no process start on the emulated CPU and so times the
/// kernel and the platform alone; returns when the request was sent.
async fn netlink_down(peer: &str) -> Instant {
    let (connection, handle, _) = rtnetlink::new_connection().expect("a netlink socket");
    let connection = tokio::spawn(connection);
    let started = Instant::now();
    let request = LinkUnspec::new_with_name(peer).down().build();
    if let Err(error) = handle.link().set(request).execute().await {
        panic!("cannot bring {peer} down: {error}");
    }
    connection.abort();
    started
}

/// eth0's cable pulled by `pull` (which returns when it started): its link
/// goes down and the bond fails over to eth1, both reported promptly.
async fn cable_pulled(platform: &mut Platform, how: &str, pull: impl Future<Output = Instant>) {
    let pulled = pull.await;
    let pull_took = pulled.elapsed();
    let down = link_is("eth0", LinkState::Down);
    let failover = active_is("bond0", "eth1");
    let met = platform
        .until_all(&[("eth0 down", &down), ("failover to eth1", &failover)])
        .await;
    let (link_after, failover_after) = (met[0] - pulled, met[1] - pulled);
    let notice = failover_notice_since(pulled).map(|notice| notice - pulled);
    eprintln!(
        "{how} (took {}): Link eth0 down after {}, Aggregate active eth1 after {}, \
         kernel failover notification read after {}",
        ms(pull_took),
        ms(link_after),
        ms(failover_after),
        notice.map_or("(not seen)".to_owned(), ms)
    );
    assert!(link_after < PROMPT, "eth0 down took {link_after:?}");
    assert!(
        failover_after < PROMPT,
        "the failover took {failover_after:?}"
    );
    assert!(
        notice.is_some(),
        "the kernel's failover notification was not seen"
    );
    assert_eq!(sysfs("bond0/bonding/active_slave"), "eth1");
}

/// eth0's cable back: the bond stays on eth1 (no primary) until asked;
/// the request right away waits for the bond to see eth0's link.
async fn set_active_back(platform: &mut Platform) {
    ip("link set peer0 up").await;
    let (answer, took) = platform.set_active("bond0", "eth0").await;
    eprintln!(
        "set-active bond0 eth0 right after peer0 up: {answer:?} after {}",
        ms(took)
    );
    assert_eq!(answer, Ok(()));
    // The news that shows the new active port comes before the answer.
    assert_eq!(
        platform.aggregate("bond0").active.as_deref(),
        Some("eth0"),
        "bond0 with eth0 active was reported before the answer"
    );
    assert_eq!(sysfs("bond0/bonding/active_slave"), "eth0");
    let back = active_is("bond0", "eth0");
    let up = link_is("eth0", LinkState::Up);
    platform
        .until_all(&[("eth0 up", &up), ("active eth0", &back)])
        .await;
}

/// A port without link cannot become active: an error with the kernel's
/// reason, and nothing changes.
async fn set_active_refused(platform: &mut Platform) {
    ip("link set peer1 down").await;
    platform
        .until("eth1 down", &link_is("eth1", LinkState::Down))
        .await;
    let (answer, took) = platform.set_active("bond0", "eth1").await;
    eprintln!(
        "set-active bond0 eth1 without link: {answer:?} after {}",
        ms(took)
    );
    let error = answer.expect_err("a port without link is refused");
    assert!(
        error.contains("eth1") && error.contains("bond0") && error.contains("os error"),
        "{error}"
    );
    assert_eq!(sysfs("bond0/bonding/active_slave"), "eth0");
    for (group, port, named) in [("bond9", "eth0", "bond9"), ("bond0", "eth9", "eth9")] {
        let (answer, _) = platform.set_active(group, port).await;
        let error = answer.expect_err("unknown names are refused");
        assert!(error.contains(named), "{error}");
    }
    ip("link set peer1 up").await;
    platform
        .until("eth1 up", &link_is("eth1", LinkState::Up))
        .await;
}

/// Another tool sets the active port: reported like any change.
async fn changed_by_another_tool(platform: &mut Platform) {
    let asked = ip_until_accepted("link set bond0 type bond active_slave eth1").await;
    let reported = platform
        .until("active eth1", &active_is("bond0", "eth1"))
        .await;
    eprintln!(
        "ip ... active_slave eth1: Aggregate active eth1 after {}",
        ms(reported - asked)
    );
}

/// A port leaves the bond and comes back.
async fn port_removed_and_added(platform: &mut Platform) {
    ip("link set eth1 nomaster").await;
    let only_eth0 = aggregate_where("bond0", |bond| {
        bond.members == names(&["eth0"]) && bond.active.as_deref() == Some("eth0")
    });
    platform.until("bond0 over eth0 only", &only_eth0).await;

    ip("link set eth1 down").await;
    ip("link set eth1 master bond0").await;
    let both = aggregate_where("bond0", |bond| bond.members == names(&["eth0", "eth1"]));
    platform.until("bond0 over eth0 and eth1", &both).await;
    assert_eq!(platform.aggregate("bond0").active.as_deref(), Some("eth0"));
}

/// The bond deleted and made again: gone, then new.
async fn bond_deleted_and_created(platform: &mut Platform) {
    let old_index = platform.aggregate("bond0").index;
    let deleted = Instant::now();
    ip("link del bond0").await;
    let gone = |update: &Update| matches!(update, Update::AggregateGone { index, name } if *index == old_index && name == "bond0");
    let at = platform.until("bond0 gone", &gone).await;
    eprintln!(
        "ip link del bond0: AggregateGone after {}",
        ms(at - deleted)
    );
    assert!(!platform.aggregates.contains_key("bond0"));

    ip("link add bond0 type bond mode active-backup miimon 10").await;
    for port in ["eth0", "eth1"] {
        ip(&format!("link set {port} down")).await;
        ip(&format!("link set {port} master bond0")).await;
    }
    ip("link set bond0 up").await;
    let whole = aggregate_where("bond0", |bond| {
        bond.members == names(&["eth0", "eth1"]) && bond.active.as_deref() == Some("eth0")
    });
    platform.until("bond0 again", &whole).await;
    assert_ne!(platform.aggregate("bond0").index, old_index);
}

/// A resync: a snapshot, directly followed by the bond.
async fn resync(platform: &mut Platform) {
    platform
        .handle
        .requests
        .send(Request::Resync)
        .await
        .expect("the platform takes requests");
    let snapshot = |update: &Update| matches!(update, Update::Snapshot(_));
    platform.until("a snapshot", &snapshot).await;
    match platform.next_within(WAIT).await {
        Some(Update::Aggregate(bond)) => {
            assert_eq!(bond.name, "bond0");
            assert_eq!(bond.members, names(&["eth0", "eth1"]));
        }
        other => panic!("the snapshot is not followed by bond0: {other:?}"),
    }
}

#[test]
fn other_modes_and_kernel_preemption_are_reported() {
    if !in_a_bonding_vm() {
        return;
    }
    watch_logs();
    let _cleanup = Cleanup(vec!["bond1", "bond2", "eth2", "eth3", "eth4"]);
    run(async {
        let mut platform = Platform::start();
        let snapshot = |update: &Update| matches!(update, Update::Snapshot(_));
        platform.until("the first snapshot", &snapshot).await;

        ip("link add eth2 type veth peer name peer2").await;
        ip("link add bond1 type bond mode balance-rr miimon 10").await;
        ip("link set eth2 master bond1").await;
        let round_robin = aggregate_where("bond1", |bond| bond.members == names(&["eth2"]));
        platform.until("bond1 over eth2", &round_robin).await;
        let bond1 = platform.aggregate("bond1");
        assert_eq!(bond1.mode, "balance-rr");
        assert!(!bond1.failover);
        let (answer, _) = platform.set_active("bond1", "eth2").await;
        let error = answer.expect_err("no active port in balance-rr");
        assert!(error.contains("balance-rr"), "{error}");

        active_backup_bond(
            "bond2",
            &[("eth3", "peer3"), ("eth4", "peer4")],
            "primary_reselect always",
        )
        .await;
        ip("link set bond2 type bond primary eth3").await;
        let preempting = aggregate_where("bond2", |bond| {
            bond.primary.as_deref() == Some("eth3") && bond.kernel_preempts
        });
        platform.until("bond2 preempting", &preempting).await;
        assert_eq!(
            platform.aggregate("bond2").members,
            names(&["eth3", "eth4"])
        );

        ip("link set bond2 type bond primary_reselect failure").await;
        let not_preempting = aggregate_where("bond2", |bond| {
            bond.primary.as_deref() == Some("eth3") && !bond.kernel_preempts
        });
        platform
            .until("bond2 not preempting", &not_preempting)
            .await;
    });
}

/// The real daemon on a real bond: failover, failback after the
/// hold-down, damping, operator and external changes, membership and the
/// bond itself coming and going, each read back from the kernel.
#[test]
fn the_daemon_watches_and_steers_a_real_bond() {
    if !in_a_bonding_vm() {
        return;
    }
    let _cleanup = Cleanup(vec!["bond5", "eth5", "eth6"]);
    run(active_backup_bond(
        "bond5",
        &[("eth5", "peer5"), ("eth6", "peer6")],
        "",
    ));
    run(sysfs_becomes("bond5/bonding/active_slave", "eth5"));
    let files = common::Files::new();
    files.write_config(&format!(
        "groups:\n  bond5:\n    driver: bond\n    ports: [eth5, eth6]\n    preempt_delay: 1s\n    \
         flap_damping: {{max_flaps: 3, window: 30s, hold: {}s}}\n",
        HOLD.as_secs()
    ));
    let daemon = common::Daemon::start_here(&files);
    let group = daemon.group("bond5");
    assert_eq!(group["driver"], "bond", "{group}");
    assert_eq!(group["active"], "eth5", "{group}");
    assert_eq!(group["healthy"], true, "{group}");
    let kernel_active = || sysfs("bond5/bonding/active_slave");
    let kind = |kind: &'static str| move |e: &serde_json::Value| e["kind"] == kind;

    // The primary's peer goes down: the bond fails over, laggmond says why.
    let seq = daemon.last_seq();
    let pulled = common::wall_ms();
    run(ip("link set peer5 down"));
    let failover = daemon
        .wait_event(seq, PROMPT, kind("failover"))
        .expect("failover within 1 s");
    assert_eq!(failover["from"], "eth5", "{failover}");
    assert_eq!(failover["to"], "eth6", "{failover}");
    assert_eq!(failover["cause"], "link_down", "{failover}");
    println!(
        "daemon: peer down -> failover event {} ms; kernel failover notification logged {}",
        common::event_ms(&failover).saturating_sub(pulled),
        kernel_notice_after(&daemon.log_text(), pulled)
            .map_or("never".to_owned(), |ms| format!("{ms} ms"))
    );
    assert_eq!(kernel_active(), "eth6");

    // Back up: port_up, then after the 1 s hold-down laggmond moves the
    // bond back (it would stay on eth6 by itself).
    let seq = daemon.last_seq();
    run(ip("link set peer5 up"));
    let up = daemon
        .wait_event(seq, WAIT, |e| e["kind"] == "port_up" && e["port"] == "eth5")
        .expect("port_up");
    let back = daemon
        .wait_event(seq, WAIT, kind("failover"))
        .expect("failback");
    assert_eq!(back["to"], "eth5", "{back}");
    assert_eq!(back["cause"], "preempt", "{back}");
    assert!(
        common::event_ms(&back) >= common::event_ms(&up) + 950,
        "{up} {back}"
    );
    assert!(daemon
        .wait_event(seq, WAIT, kind("primary_restored"))
        .is_some());
    assert_eq!(kernel_active(), "eth5");

    // An operator moves it; the kernel follows and it sticks.
    let seq = daemon.last_seq();
    let moved = daemon.cli(&["set-active", "bond5", "eth6"]);
    assert!(moved.status.success(), "{moved:?}");
    let operator = daemon
        .wait_event(seq, WAIT, kind("failover"))
        .expect("operator failover");
    assert_eq!(operator["cause"], "operator", "{operator}");
    assert_eq!(kernel_active(), "eth6");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        kernel_active(),
        "eth6",
        "an operator's choice is not preempted"
    );
    let seq = daemon.last_seq();
    assert!(daemon
        .cli(&["set-active", "bond5", "--clear"])
        .status
        .success());
    let back = daemon
        .wait_event(seq, WAIT, kind("failover"))
        .expect("back after clear");
    assert_eq!(back["to"], "eth5", "{back}");
    assert_eq!(kernel_active(), "eth5");

    // Another tool changes the active slave: reported as external, and
    // the priority comes back only after the hold-down.
    let seq = daemon.last_seq();
    let changed = common::wall_ms();
    run(ip("link set bond5 type bond active_slave eth6"));
    let external = daemon
        .wait_event(seq, WAIT, kind("failover"))
        .expect("external change");
    assert_eq!(external["cause"], "external", "{external}");
    let restored = daemon
        .wait_event(
            external["seq"].as_u64().unwrap_or(0),
            WAIT,
            kind("failover"),
        )
        .expect("priority restored");
    assert_eq!(restored["to"], "eth5", "{restored}");
    assert!(common::event_ms(&restored) >= changed + 950, "{restored}");
    assert_eq!(kernel_active(), "eth5");

    // Flapping: damped, no failback while damped, then back.
    let seq = daemon.last_seq();
    for state in ["down", "up", "down", "up"] {
        run(ip(&format!("link set peer5 {state}")));
        std::thread::sleep(Duration::from_millis(200));
    }
    let flapping = daemon
        .wait_event(seq, WAIT, kind("flapping"))
        .expect("flapping");
    assert_eq!(flapping["port"], "eth5", "{flapping}");
    // Well inside the 12 s hold, which counts from the flap that damped
    // the port: on an emulated CPU each `ip` call alone can take seconds.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(kernel_active(), "eth6", "no failback while damped");
    let cleared = daemon
        .wait_event(seq, HOLD + WAIT, kind("flap_cleared"))
        .expect("flap_cleared");
    let back = daemon
        .wait_event(cleared["seq"].as_u64().unwrap_or(0), WAIT, kind("failover"))
        .expect("failback after damping");
    assert_eq!(back["to"], "eth5", "{back}");
    assert_eq!(kernel_active(), "eth5");

    // A slave leaves the bond and comes back.
    let seq = daemon.last_seq();
    run(ip("link set eth6 nomaster"));
    let missing = daemon
        .wait_event(seq, WAIT, |e| {
            e["kind"] == "port_missing" && e["port"] == "eth6"
        })
        .expect("port_missing eth6");
    run(ip("link set eth6 down"));
    run(ip("link set eth6 master bond5"));
    run(ip("link set eth6 up"));
    daemon
        .wait_event(missing["seq"].as_u64().unwrap_or(0), WAIT, |e| {
            e["kind"] == "port_found" && e["port"] == "eth6"
        })
        .expect("port_found eth6");

    // The bond itself is deleted and created again.
    let seq = daemon.last_seq();
    run(ip("link del bond5"));
    let gone = daemon
        .wait_event(seq, WAIT, |e| {
            e["kind"] == "port_missing" && e["port"] == "bond5"
        })
        .expect("bond5 missing");
    // The ports outlive their bond: enslave them to the new one.
    run(async {
        ip("link add bond5 type bond mode active-backup miimon 10").await;
        for port in ["eth5", "eth6"] {
            ip(&format!("link set {port} down")).await;
            ip(&format!("link set {port} master bond5")).await;
        }
        ip("link set bond5 up").await;
    });
    daemon
        .wait_event(gone["seq"].as_u64().unwrap_or(0), WAIT, |e| {
            e["kind"] == "port_found" && e["port"] == "bond5"
        })
        .expect("bond5 found again");
    assert!(
        common::wait_for(WAIT, || daemon.group("bond5")["active"] == "eth5"),
        "{}",
        daemon.group("bond5")
    );
    println!("--- laggmond status on a real bond ---");
    println!(
        "{}",
        String::from_utf8_lossy(&daemon.cli(&["status"]).stdout)
    );
}

/// Milliseconds from `since` (epoch ms) to the daemon's first debug line
/// about the kernel's own failover notification after it.
fn kernel_notice_after(log: &str, since: u64) -> Option<u64> {
    log.lines()
        .filter(|line| line.contains(FAILOVER_NOTICE))
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|time| humantime::parse_rfc3339(time).ok())
        .filter_map(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .find(|&ms| ms >= since)
        .map(|ms| ms - since)
}

// --- path probes through a real bond ------------------------------------------

/// The probe target: on the bridge the bond's far ends are in.
const PROBE_TARGET: &str = "192.0.2.1";

/// Probing every 100 ms, a path down after 3 intervals without an answer.
const PROBE_INTERVAL_MS: u64 = 100;
const PROBE_MISSED: u64 = 3;

/// bond7 (active-backup, miimon) over eth7 and eth8, whose far ends
/// (peer7, peer8) are ports of bridge br7 in the namespace `far`, which
/// holds the probe target on the bridge itself: a switch with a host
/// behind it. eth7 is active.
fn bond_behind_a_bridge(far: &common::Netns) {
    // Loaded on demand like veth; asked for here so that a kernel
    // without it fails with the reason rather than with `ip`'s message.
    let _ = std::process::Command::new("modprobe")
        .arg("bridge")
        .output();
    for (port, peer) in [("eth7", "peer7"), ("eth8", "peer8")] {
        common::sh(&[
            "ip", "link", "add", port, "type", "veth", "peer", "name", peer, "netns", &far.name,
        ]);
    }
    // arp_ignore=1: only the bridge answers for its address, not the
    // bridge ports for an address they do not have.
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &far.name,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore",
    ]);
    far.ip(&["link", "add", "br7", "type", "bridge"]);
    far.ip(&["addr", "add", &format!("{PROBE_TARGET}/24"), "dev", "br7"]);
    far.ip(&["link", "set", "br7", "up"]);
    for peer in ["peer7", "peer8"] {
        far.ip(&["link", "set", peer, "master", "br7"]);
        far.ip(&["link", "set", peer, "up"]);
    }
    common::sh(&[
        "ip",
        "link",
        "add",
        "bond7",
        "type",
        "bond",
        "mode",
        "active-backup",
        "miimon",
        "10",
    ]);
    for port in ["eth7", "eth8"] {
        common::sh(&["ip", "link", "set", port, "master", "bond7"]);
    }
    common::sh(&["ip", "link", "set", "bond7", "up"]);
}

/// The output of a command that must succeed.
fn output_of(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {args:?}: {error}"));
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The daemon's path probes on a real bond: a backup's path is probed
/// while it carries nothing, a dead path behind a port with carrier moves
/// the kernel's active slave away, and its return brings it back only
/// after the hold-down. Then the bond is given its own ARP monitor, which
/// would fight the probes: the operator is told.
///
/// The bond gives both slaves its own address (the first slave's), as it
/// does by default (`fail_over_mac none`); each port still probes from
/// its own address, the one the bond saved when it took the port (a real
/// NIC's burnt-in address; veth has none, so the saved one stands in for
/// it). Were both to probe from the bond's address, the bridge would learn
/// it on whichever port sent last, and one port's replies would reach the
/// other: a dead path could look alive. The bridge's table shows which
/// address it learned where.
#[test]
fn the_daemon_moves_a_bond_off_a_dead_path_and_back() {
    if !in_a_bonding_vm() {
        return;
    }
    // Dropped last: whatever is left here once the namespace, and with it
    // the far ends and so the ports, is gone.
    let _cleanup = Cleanup(vec!["bond7", "eth7", "eth8"]);
    let far = common::Netns::new();
    bond_behind_a_bridge(&far);
    run(sysfs_becomes("bond7/bonding/active_slave", "eth7"));
    let address = |attribute: &str| sysfs(attribute).to_lowercase();
    let (bond_mac, saved7, saved8) = (
        address("bond7/address"),
        address("eth7/bonding_slave/perm_hwaddr"),
        address("eth8/bonding_slave/perm_hwaddr"),
    );
    println!(
        "bond7 {bond_mac}; eth7 {} (saved {saved7}); eth8 {} (saved {saved8})",
        address("eth7/address"),
        address("eth8/address")
    );
    assert_eq!(address("eth8/address"), bond_mac, "the bond's address");
    assert_ne!(saved7, saved8, "the ports' own addresses");

    let files = common::Files::new();
    files.write_config(&format!(
        "groups:\n  bond7:\n    driver: bond\n    ports: [eth7, eth8]\n    preempt_delay: 1s\n    \
         probe:\n      arp: [{PROBE_TARGET}]\n      interval: {PROBE_INTERVAL_MS}ms\n      \
         missed: {PROBE_MISSED}\n"
    ));
    let daemon = common::Daemon::start_here(&files);
    let port = |group: &serde_json::Value, name: &str| {
        group["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no port {name} in {group}"))
    };
    let paths_up = common::wait_for(WAIT, || {
        let group = daemon.group("bond7");
        port(&group, "eth7")["path"] == "up" && port(&group, "eth8")["path"] == "up"
    });
    assert!(
        paths_up,
        "paths not up: {}\nlog:\n{}",
        daemon.group("bond7"),
        daemon.log_text()
    );
    assert_eq!(daemon.group("bond7")["active"], "eth7");

    // Each port's probes came from its own address, learned on its own
    // far end; the backup's too.
    let fdb = output_of(&["bridge", "-n", &far.name, "fdb", "show", "br", "br7"]);
    for (saved, peer) in [(&saved7, "peer7"), (&saved8, "peer8")] {
        assert!(
            fdb.lines()
                .any(|line| line.contains(saved.as_str()) && line.contains(&format!("dev {peer}"))),
            "{saved} not learned on {peer}:\n{fdb}"
        );
    }

    let is = |kind: &'static str, port: &'static str| {
        move |e: &serde_json::Value| e["kind"] == kind && (port.is_empty() || e["port"] == port)
    };
    let kernel_active = || sysfs("bond7/bonding/active_slave");

    // eth7's far end leaves the bridge: the carrier stays, the path goes.
    let seq = daemon.last_seq();
    let cut = common::wall_ms();
    far.ip(&["link", "set", "peer7", "nomaster"]);
    let down = daemon
        .wait_event(seq, WAIT, is("path_down", "eth7"))
        .expect("path_down eth7");
    assert_eq!(down["missed"], PROBE_MISSED, "{down}");
    let failover = daemon
        .wait_event(seq, WAIT, is("failover", ""))
        .expect("failover");
    assert_eq!(
        (&failover["from"], &failover["to"], &failover["cause"]),
        (
            &serde_json::Value::from("eth7"),
            &serde_json::Value::from("eth8"),
            &serde_json::Value::from("path_down")
        ),
        "{failover}"
    );
    run(sysfs_becomes("bond7/bonding/active_slave", "eth8"));
    let moved = common::wall_ms();
    println!(
        "bond path cut -> path_down {} ms, failover event {} ms, kernel active_slave eth8 \
         seen {} ms (missed x interval = {} ms)",
        common::event_ms(&down).saturating_sub(cut),
        common::event_ms(&failover).saturating_sub(cut),
        moved.saturating_sub(cut),
        PROBE_MISSED * PROBE_INTERVAL_MS
    );
    let group = daemon.group("bond7");
    assert_eq!(port(&group, "eth7")["link"], "up", "the carrier stayed");
    assert_eq!(port(&group, "eth7")["path"], "down", "{group}");

    // Back in the bridge: path_up, and the kernel's active slave moves
    // back only after the 1 s hold-down.
    let seq = daemon.last_seq();
    let restored = common::wall_ms();
    far.ip(&["link", "set", "peer7", "master", "br7"]);
    let up = daemon
        .wait_event(seq, WAIT, is("path_up", "eth7"))
        .expect("path_up eth7");
    let up_ms = common::event_ms(&up);
    // The kernel's own view through the hold-down, for as much of it as is
    // left once path_up was seen (the margin is for the event's stamp).
    while common::wall_ms() < up_ms + 950 {
        assert_eq!(kernel_active(), "eth8", "moved back before the hold-down");
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = daemon
        .wait_event(seq, WAIT, is("failover", ""))
        .expect("failback");
    assert_eq!(back["to"], "eth7", "{back}");
    assert_eq!(back["cause"], "preempt", "{back}");
    assert!(
        common::event_ms(&back) >= up_ms + 1000,
        "failback before the 1 s hold-down: {up} then {back}"
    );
    run(sysfs_becomes("bond7/bonding/active_slave", "eth7"));
    let returned = common::wall_ms();
    println!(
        "bond path restored -> path_up {} ms; path_up -> failback event {} ms, kernel \
         active_slave eth7 seen {} ms",
        up_ms.saturating_sub(restored),
        common::event_ms(&back).saturating_sub(up_ms),
        returned.saturating_sub(up_ms)
    );
    assert!(returned >= up_ms + 1000, "the kernel moved back too early");

    // The bond's own ARP monitor beside the probes: reported, said once.
    let notice = "runs its own ARP monitor";
    run(ip(&format!(
        "link set bond7 type bond miimon 0 arp_interval 100 arp_ip_target {PROBE_TARGET}"
    )));
    assert!(
        common::wait_for(WAIT, || daemon.log_text().contains(notice)),
        "no notice of the bond's ARP monitor; log:\n{}",
        daemon.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.log_text().matches(notice).count(), 1, "said once");
    drop(daemon);
}
