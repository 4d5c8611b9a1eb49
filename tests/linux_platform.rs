//! The Linux link monitor against the real kernel.
//!
//! Every test builds two fresh network namespaces (the monitored one and a
//! peer holding the other ends of veth pairs), runs the monitor on a thread
//! that entered the monitored namespace, drives the links with `ip` and
//! checks what the monitor reports. Names are unique per process and test,
//! so the tests run in parallel. They need root and iproute2.

#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use laggmond::platform::linux::{spawn, Options};
use laggmond::platform::{Link, LinkState, PlatformHandle, Request, Update};
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::sync::{mpsc, oneshot};

use common::{run, VethLab};

/// Longest wait for any single expected update.
const WAIT: Duration = Duration::from_secs(5);

/// How fast a carrier change must be reported.
const PROMPT: Duration = Duration::from_secs(1);

/// Run `ip -n NS -batch -` with `commands`, one per line.
fn ip_batch(ns: &str, commands: &[String]) {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run `ip`: {error}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(commands.join("\n").as_bytes())
        .expect("writing the batch");
    drop(stdin);
    let output = child.wait_with_output().expect("waiting for `ip -batch`");
    assert!(
        output.status.success(),
        "`ip -batch` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Parse `ip -j link show` into the monitor's model of a link.
fn kernel_links(ns: &str) -> BTreeMap<u32, Link> {
    let output = Command::new("ip")
        .args(["-j", "-n", ns, "link", "show"])
        .output()
        .expect("running `ip -j link show`");
    assert!(output.status.success(), "`ip -j link show` failed");
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("`ip -j` prints JSON");
    let index_of = |name: &str| {
        entries
            .iter()
            .find(|entry| entry["ifname"] == name)
            .and_then(|entry| entry["ifindex"].as_u64())
            .map(|index| index as u32)
    };
    entries
        .iter()
        .map(|entry| {
            let flags: Vec<&str> = entry["flags"]
                .as_array()
                .map(|flags| flags.iter().filter_map(|flag| flag.as_str()).collect())
                .unwrap_or_default();
            let link = Link {
                index: entry["ifindex"].as_u64().expect("ifindex") as u32,
                name: entry["ifname"].as_str().expect("ifname").to_string(),
                state: LinkState::from_up(flags.contains(&"UP") && flags.contains(&"LOWER_UP")),
                master: entry["master"].as_str().and_then(index_of),
            };
            (link.index, link)
        })
        .collect()
}

// --- the monitor, running in the namespace ------------------------------

/// The monitor's handle, and the thread whose runtime drives it. Dropping
/// it stops the runtime (and so the monitor) and joins the thread.
struct Monitor {
    handle: PlatformHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    fn start(ns: &str, options: Options) -> Monitor {
        let path = format!("/run/netns/{ns}");
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            // The socket belongs to the namespace of the thread creating it.
            if let Err(error) = enter_netns(&path) {
                let _ = handle_tx.send(Err(error));
                return;
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = handle_tx.send(Err(format!("runtime: {error}")));
                    return;
                }
            };
            runtime.block_on(async move {
                match spawn(options) {
                    Ok(handle) => {
                        let _ = handle_tx.send(Ok(handle));
                        let _ = stopped.await;
                    }
                    Err(error) => {
                        let _ = handle_tx.send(Err(format!("spawn: {error}")));
                    }
                }
            });
        });
        let handle = handle_rx
            .recv_timeout(WAIT)
            .expect("the monitor thread answers")
            .unwrap_or_else(|error| panic!("starting the monitor failed: {error}"));
        Monitor {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The next update, failing the test after [`WAIT`].
    async fn next(&mut self) -> Update {
        match tokio::time::timeout(WAIT, self.handle.updates.recv()).await {
            Ok(Some(update)) => update,
            Ok(None) => panic!("the monitor stopped"),
            Err(_) => panic!("no update within {WAIT:?}"),
        }
    }

    /// The next update within `quiet`, or `None` once the stream is idle.
    async fn next_within(&mut self, quiet: Duration) -> Option<Update> {
        match tokio::time::timeout(quiet, self.handle.updates.recv()).await {
            Ok(Some(update)) => Some(update),
            Ok(None) => panic!("the monitor stopped"),
            Err(_) => None,
        }
    }

    /// Skip updates until one matches `wanted` (within [`WAIT`]).
    async fn wait_for(&mut self, what: &str, wanted: impl Fn(&Update) -> bool) -> Update {
        let deadline = Instant::now() + WAIT;
        let mut skipped = Vec::new();
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.handle.updates.recv()).await {
                Ok(Some(update)) if wanted(&update) => return update,
                Ok(Some(update)) => skipped.push(update),
                Ok(None) => panic!("the monitor stopped while waiting for {what}"),
                Err(_) => break,
            }
        }
        panic!("no {what} within {WAIT:?}; got {skipped:?}");
    }

    /// The first update, which must be the start-up snapshot.
    async fn first_snapshot(&mut self) -> BTreeMap<u32, Link> {
        match self.next().await {
            Update::Snapshot(links) => by_index(links),
            other => panic!("the first update is not a snapshot: {other:?}"),
        }
    }

    /// Read until no update came for a while and the applied updates
    /// equal the kernel's view; returns how many snapshots were read.
    async fn converge(&mut self, lab: &VethLab, model: &mut BTreeMap<u32, Link>) -> usize {
        let deadline = Instant::now() + 4 * WAIT;
        let mut snapshots = 0;
        loop {
            match self.next_within(Duration::from_millis(500)).await {
                Some(update) => {
                    snapshots += usize::from(matches!(update, Update::Snapshot(_)));
                    apply(model, update);
                }
                None if *model == kernel_links(&lab.ns.name) => return snapshots,
                None => assert!(
                    Instant::now() < deadline,
                    "the monitor's view never matched the kernel's:\n{model:#?}\nkernel:\n{:#?}",
                    kernel_links(&lab.ns.name)
                ),
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                eprintln!("the monitor thread panicked");
            }
        }
    }
}

/// Move this thread into the network namespace at `path`.
fn enter_netns(path: &str) -> Result<(), String> {
    let namespace = File::open(path).map_err(|error| format!("open {path}: {error}"))?;
    // SAFETY: setns only reads the descriptor, which stays open meanwhile.
    let result = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
    if result != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn by_index(links: Vec<Link>) -> BTreeMap<u32, Link> {
    links.into_iter().map(|link| (link.index, link)).collect()
}

/// What the daemon does with updates: keep a table.
fn apply(model: &mut BTreeMap<u32, Link>, update: Update) {
    match update {
        Update::Link(link) => {
            model.insert(link.index, link);
        }
        Update::Gone { index, .. } => {
            model.remove(&index);
        }
        Update::Snapshot(links) => *model = by_index(links),
        // Aggregates come on top of the links; these tests have none. An
        // answer changes no link.
        Update::Aggregate(_) | Update::AggregateGone { .. } | Update::Answer(_) => {}
    }
}

fn named<'a>(links: &'a BTreeMap<u32, Link>, name: &str) -> &'a Link {
    links
        .values()
        .find(|link| link.name == name)
        .unwrap_or_else(|| panic!("{name} not in {links:?}"))
}

fn is_link(update: &Update, name: &str, state: LinkState) -> bool {
    matches!(update, Update::Link(link) if link.name == name && link.state == state)
}

/// An `RTM_NEWLINK` as the kernel sends it when interface `index` (`name`)
/// loses carrier: admin-up without `IFF_LOWER_UP` nor `IFF_RUNNING`,
/// `IFLA_CARRIER` 0, `IFLA_OPERSTATE` down; port 0 in its header.
fn carrier_lost(index: u32, name: &str) -> Vec<u8> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = LinkFlags::Up | LinkFlags::Broadcast | LinkFlags::Multicast;
    link.attributes = vec![
        LinkAttribute::IfName(name.into()),
        LinkAttribute::Carrier(0),
        LinkAttribute::OperState(State::Down),
    ];
    let payload = RouteNetlinkMessage::NewLink(link);
    let mut message = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(payload),
    );
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// Sends `message` in namespace `ns` from a socket of its own, as any
/// process with `CAP_NET_ADMIN` there can: once to the port of the
/// monitor's socket, once to the link group. Returns the forger's port.
fn forge(ns: &str, message: &[u8]) -> u32 {
    let path = format!("/run/netns/{ns}");
    let message = message.to_vec();
    std::thread::spawn(move || {
        enter_netns(&path).unwrap_or_else(|error| panic!("{error}"));
        let monitor = monitor_port();
        let mut socket = Socket::new(NETLINK_ROUTE).expect("a netlink socket");
        let forger = socket
            .bind_auto()
            .expect("binding the forger")
            .port_number();
        let link_group = 1 << (libc::RTNLGRP_LINK - 1);
        for to in [SocketAddr::new(monitor, 0), SocketAddr::new(0, link_group)] {
            let sent = socket
                .send_to(&message, &to, 0)
                .expect("sending the forgery");
            assert_eq!(sent, message.len(), "short send to {to:?}");
        }
        forger
    })
    .join()
    .expect("the forging thread")
}

/// The port id of the monitor's socket, from a thread inside its
/// namespace: the `NETLINK_ROUTE` socket of this process there that
/// joined a multicast group (`/proc/thread-self/net/netlink` lists the
/// namespace's sockets with port and inode; `/proc/self/fd` shows which
/// inodes are ours).
fn monitor_port() -> u32 {
    let ours: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("listing our descriptors")
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.ok()?.path()).ok()?;
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let table = std::fs::read_to_string("/proc/thread-self/net/netlink")
        .expect("reading the namespace's netlink sockets");
    let ports: Vec<u32> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let protocol: u32 = fields.get(1)?.parse().ok()?;
            let port: u32 = fields.get(2)?.parse().ok()?;
            let groups = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let monitor = protocol == NETLINK_ROUTE as u32 && groups != 0 && ours.contains(&inode);
            monitor.then_some(port)
        })
        .collect();
    assert_eq!(ports.len(), 1, "one monitor socket expected in:\n{table}");
    ports[0]
}

fn show_logs() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
}

// --- the tests --------------------------------------------------------------

#[test]
fn the_first_snapshot_is_the_kernels_view() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    lab.veth_down("d0", "e0");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        let links = monitor.first_snapshot().await;
        assert_eq!(named(&links, "a0").state, LinkState::Up);
        assert_eq!(named(&links, "d0").state, LinkState::Down);
        assert_eq!(named(&links, "lo").state, LinkState::Down);
        assert_eq!(links, kernel_links(&lab.ns.name));
    });
}

#[test]
fn losing_and_regaining_carrier_is_reported_promptly() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        monitor.first_snapshot().await;
        let start = Instant::now();
        lab.peer.ip(&["link", "set", "b0", "down"]);
        monitor
            .wait_for("a0 down", |u| is_link(u, "a0", LinkState::Down))
            .await;
        let down = start.elapsed();

        let start = Instant::now();
        lab.peer.ip(&["link", "set", "b0", "up"]);
        monitor
            .wait_for("a0 up", |u| is_link(u, "a0", LinkState::Up))
            .await;
        let up = start.elapsed();

        eprintln!("carrier loss reported after {down:?}, carrier return after {up:?}");
        assert!(down < PROMPT, "carrier loss took {down:?}");
        assert!(up < PROMPT, "carrier return took {up:?}");
    });
}

#[test]
fn administrative_down_is_reported() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        monitor.first_snapshot().await;
        let start = Instant::now();
        lab.ns.ip(&["link", "set", "a0", "down"]);
        monitor
            .wait_for("a0 down", |u| is_link(u, "a0", LinkState::Down))
            .await;
        let elapsed = start.elapsed();
        eprintln!("admin down reported after {elapsed:?}");
        assert!(elapsed < PROMPT, "admin down took {elapsed:?}");
    });
}

#[test]
fn a_rename_is_a_departure_then_an_arrival() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        let index = named(&monitor.first_snapshot().await, "a0").index;
        lab.ns.ip(&["link", "set", "a0", "down"]);
        lab.ns.ip(&["link", "set", "a0", "name", "c0"]);
        monitor
            .wait_for("a0 gone", |u| {
                *u == Update::Gone {
                    index,
                    name: "a0".into(),
                }
            })
            .await;
        let arrival = monitor.next().await;
        let expected = Link {
            index,
            name: "c0".into(),
            state: LinkState::Down,
            master: None,
        };
        assert_eq!(arrival, Update::Link(expected));
    });
}

#[test]
fn deletion_and_creation_are_reported() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        let index = named(&monitor.first_snapshot().await, "a0").index;
        lab.ns.ip(&["link", "del", "a0"]);
        monitor
            .wait_for("a0 gone", |u| {
                *u == Update::Gone {
                    index,
                    name: "a0".into(),
                }
            })
            .await;

        lab.veth_down("d0", "e0");
        monitor
            .wait_for("d0 down", |u| is_link(u, "d0", LinkState::Down))
            .await;
        lab.peer.ip(&["link", "set", "e0", "up"]);
        lab.ns.ip(&["link", "set", "d0", "up"]);
        monitor
            .wait_for("d0 up", |u| is_link(u, "d0", LinkState::Up))
            .await;
    });
}

#[test]
fn a_resync_sends_the_kernels_view() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    lab.veth("a1", "b1");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        monitor.first_snapshot().await;
        lab.peer.ip(&["link", "set", "b1", "down"]);
        lab.veth_down("a2", "b2");
        monitor
            .handle
            .requests
            .send(Request::Resync)
            .await
            .expect("the monitor takes requests");
        let snapshot = monitor
            .wait_for("a snapshot", |u| matches!(u, Update::Snapshot(_)))
            .await;
        let Update::Snapshot(links) = snapshot else {
            unreachable!("waited for a snapshot");
        };
        let links = by_index(links);
        assert_eq!(named(&links, "a1").state, LinkState::Down);
        assert_eq!(links, kernel_links(&lab.ns.name));
    });
}

#[test]
fn setting_the_active_port_is_refused_for_now() {
    let lab = VethLab::bare();
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        monitor.first_snapshot().await;
        let request = Request::SetActive {
            group: "bond0".into(),
            port: "a0".into(),
        };
        monitor
            .handle
            .requests
            .send(request)
            .await
            .expect("the monitor takes requests");
        let answer = match monitor.next().await {
            Update::Answer(answer) => answer,
            other => panic!("expected the answer, got {other:?}"),
        };
        assert_eq!(
            (answer.group.as_str(), answer.port.as_str()),
            ("bond0", "a0")
        );
        let error = answer.result.expect_err("not supported yet");
        assert!(error.contains("bond"), "{error}");
    });
}

#[test]
fn a_burst_of_changes_collapses_to_the_final_state() {
    let lab = VethLab::bare();
    let names: Vec<String> = (0..8).map(|n| format!("f{n}")).collect();
    for (n, name) in names.iter().enumerate() {
        lab.veth(name, &format!("g{n}"));
    }
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        let mut model = monitor.first_snapshot().await;
        let mut commands = Vec::new();
        for round in 0..20 {
            for name in &names {
                let state = if round % 2 == 0 { "down" } else { "up" };
                commands.push(format!("link set {name} {state}"));
            }
        }
        // End with odd links down, even links up.
        for (n, name) in names.iter().enumerate() {
            let state = if n % 2 == 1 { "down" } else { "up" };
            commands.push(format!("link set {name} {state}"));
        }
        ip_batch(&lab.ns.name, &commands);

        let mut previous = model.clone();
        let deadline = Instant::now() + 4 * WAIT;
        loop {
            match monitor.next_within(Duration::from_millis(500)).await {
                Some(Update::Link(link)) => {
                    assert_ne!(previous.get(&link.index), Some(&link), "duplicate update");
                    previous.insert(link.index, link.clone());
                    apply(&mut model, Update::Link(link));
                }
                Some(other) => panic!("unexpected update in a burst: {other:?}"),
                None if model == kernel_links(&lab.ns.name) => break,
                None => assert!(Instant::now() < deadline, "never converged: {model:#?}"),
            }
        }
        for (n, name) in names.iter().enumerate() {
            let expected = LinkState::from_up(n % 2 == 0);
            assert_eq!(named(&model, name).state, expected, "{name}");
        }
    });
}

#[test]
fn an_overrun_is_recovered_by_a_snapshot() {
    show_logs();
    let lab = VethLab::bare();
    let count = 16;
    let names: Vec<String> = (0..count).map(|n| format!("o{n}")).collect();
    let mut setup = Vec::new();
    for (n, name) in names.iter().enumerate() {
        setup.push(format!(
            "link add {name} type veth peer name p{n} netns {}",
            lab.peer.name
        ));
        setup.push(format!("link set {name} up"));
    }
    ip_batch(&lab.ns.name, &setup);
    let peer_up: Vec<String> = (0..count).map(|n| format!("link set p{n} up")).collect();
    ip_batch(&lab.peer.name, &peer_up);

    // The smallest buffer the kernel allows: a few notifications.
    let mut monitor = Monitor::start(&lab.ns.name, Options { recv_buffer: 4096 });
    run(async {
        let mut model = monitor.first_snapshot().await;
        // More state changes than the update queue holds, while this test
        // reads nothing: the monitor blocks and its socket overflows.
        let mut flaps = Vec::new();
        for round in 0..120 {
            for name in &names {
                let state = if round % 2 == 0 { "down" } else { "up" };
                flaps.push(format!("link set {name} {state}"));
            }
        }
        ip_batch(&lab.ns.name, &flaps);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let snapshots = monitor.converge(&lab, &mut model).await;
        eprintln!(
            "{} changes, {snapshots} snapshot(s) after the overrun",
            flaps.len()
        );
        assert!(snapshots >= 1, "no overrun was detected");
        for name in &names {
            assert_eq!(named(&model, name).state, LinkState::Up, "{name}");
        }
    });
}

/// Only the kernel is believed: a process of the namespace with
/// `CAP_NET_ADMIN` sends the monitor, and the link group, a well-formed
/// "a0 lost carrier". Nothing about a0 is reported, both copies are
/// counted, and a true change that follows is reported as usual.
#[test]
fn link_messages_not_sent_by_the_kernel_are_dropped() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    lab.veth("a1", "b1");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        let a0 = named(&monitor.first_snapshot().await, "a0").index;
        let forger = forge(&lab.ns.name, &carrier_lost(a0, "a0"));
        assert_ne!(forger, 0, "the forger is not the kernel");

        // A true change after the forgeries: the monitor reads in order,
        // so whatever they caused would come before it.
        lab.peer.ip(&["link", "set", "b1", "down"]);
        let mut before = Vec::new();
        loop {
            match monitor.next().await {
                update if is_link(&update, "a1", LinkState::Down) => break,
                update => before.push(update),
            }
        }
        assert_eq!(before, [], "nothing may come of the forged messages");
        assert_eq!(
            monitor.handle.foreign_messages.load(Ordering::Relaxed),
            2,
            "the unicast and the multicast copy are counted"
        );
        assert_eq!(
            named(&kernel_links(&lab.ns.name), "a0").state,
            LinkState::Up
        );

        lab.peer.ip(&["link", "set", "b0", "down"]);
        monitor
            .wait_for("a0 down", |u| is_link(u, "a0", LinkState::Down))
            .await;
        assert_eq!(monitor.handle.foreign_messages.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn the_monitor_ends_when_the_daemon_drops_its_end() {
    let lab = VethLab::bare();
    lab.veth("a0", "b0");
    let mut monitor = Monitor::start(&lab.ns.name, Options::default());
    run(async {
        monitor.first_snapshot().await;
        let (_, closed) = mpsc::channel::<Update>(1);
        drop(std::mem::replace(&mut monitor.handle.updates, closed));
        lab.ns.ip(&["link", "set", "a0", "down"]);
        tokio::time::timeout(WAIT, monitor.handle.requests.closed())
            .await
            .expect("the monitor stops once it cannot send");
    });
}
