//! Path probes on real ports: the daemon's ports are veth pairs whose far
//! ends sit in a Linux bridge in the peer namespace, which also holds the
//! probe target (on the bridge itself). Taking a far end out of the bridge
//! cuts the path while the carrier stays up: only the probes can see it.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::{Daemon, Files, VethLab};
use serde_json::Value;

/// The target's address, on the bridge in the peer namespace.
const TARGET: &str = "192.0.2.1";

/// Probing every 100 ms, down after 3 missed: seen within 400 ms.
const INTERVAL_MS: u64 = 100;
const MISSED: u64 = 3;

const SECOND: Duration = Duration::from_secs(1);

/// p0 (primary) and p1 with their far ends in bridge br0, which answers
/// ARP for the target. The ports have no IP address of their own.
fn bridged_lab() -> VethLab {
    let lab = VethLab::new();
    lab.add_port("p0");
    lab.add_port("p1");
    // arp_ignore=1: only the bridge answers for its address, not the
    // bridge ports for an address they do not have.
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &lab.peer.name,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore",
    ]);
    lab.peer.ip(&["link", "add", "br0", "type", "bridge"]);
    lab.peer
        .ip(&["addr", "add", &format!("{TARGET}/24"), "dev", "br0"]);
    lab.peer.ip(&["link", "set", "br0", "up"]);
    for port in ["p0", "p1"] {
        cut(&lab, port, false);
    }
    lab
}

/// Takes the far end of `port` out of the bridge (`true`) or puts it back:
/// the path goes or comes, the carrier never changes.
fn cut(lab: &VethLab, port: &str, cut: bool) {
    if cut {
        lab.peer.ip(&["link", "set", port, "nomaster"]);
    } else {
        lab.peer.ip(&["link", "set", port, "master", "br0"]);
    }
}

fn config(files: &Files) {
    files.write_config(&format!(
        "groups:\n  uplink:\n    driver: none\n    ports: [p0, p1]\n    preempt_delay: 1s\n    \
         probe:\n      arp: [{TARGET}]\n      interval: {INTERVAL_MS}ms\n      missed: {MISSED}\n"
    ));
}

fn is<'a>(kind: &'a str, port: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["kind"] == kind && (port.is_empty() || e["port"] == port)
}

fn port<'a>(group: &'a Value, name: &str) -> &'a Value {
    group["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no port {name} in {group}"))
}

/// Waits until both ports' paths are up (the first verdicts).
fn paths_up(daemon: &Daemon) {
    let up = common::wait_for(5 * SECOND, || {
        let group = daemon.group("uplink");
        port(&group, "p0")["path"] == "up" && port(&group, "p1")["path"] == "up"
    });
    assert!(
        up,
        "paths not up: {}\nlog:\n{}",
        daemon.group("uplink"),
        daemon.log_text()
    );
}

#[test]
fn a_dead_path_moves_traffic_and_its_return_brings_it_back() {
    let lab = bridged_lab();
    let files = Files::new();
    config(&files);
    let daemon = Daemon::start(&lab.ns, &files);
    paths_up(&daemon);
    let group = daemon.group("uplink");
    assert_eq!(group["active"], "p0", "{group}");
    assert!(port(&group, "p0")["rtt_ms"].as_f64().is_some(), "{group}");

    // Cut p0's path: path_down and a failover with cause path_down within
    // missed × interval plus one interval (and some scheduling slack).
    let seq = daemon.last_seq();
    let cut_at = common::wall_ms();
    cut(&lab, "p0", true);
    let budget = Duration::from_millis((MISSED + 1) * INTERVAL_MS) + SECOND;
    let down = daemon
        .wait_event(seq, budget, is("path_down", "p0"))
        .expect("path_down");
    assert_eq!(down["targets"], serde_json::json!([TARGET]), "{down}");
    assert_eq!(down["missed"], MISSED, "{down}");
    let failover = daemon
        .wait_event(seq, SECOND, is("failover", ""))
        .expect("failover");
    assert_eq!(
        (&failover["from"], &failover["to"], &failover["cause"]),
        (
            &Value::from("p0"),
            &Value::from("p1"),
            &Value::from("path_down")
        ),
        "{failover}"
    );
    println!(
        "path cut -> failover: {} ms (missed x interval = {} ms)",
        common::event_ms(&failover).saturating_sub(cut_at),
        MISSED * INTERVAL_MS
    );
    let group = daemon.group("uplink");
    assert_eq!(
        port(&group, "p0")["link"],
        "up",
        "the carrier never changed"
    );
    assert_eq!(port(&group, "p0")["path"], "down", "{group}");

    // Restore it: path_up, then the failback only after preempt_delay.
    let seq = daemon.last_seq();
    cut(&lab, "p0", false);
    let up = daemon
        .wait_event(seq, 2 * SECOND, is("path_up", "p0"))
        .expect("path_up");
    assert!(up["rtt_ms"].as_u64().is_some(), "{up}");
    let back = daemon
        .wait_event(seq, 3 * SECOND, is("failover", ""))
        .expect("failback");
    assert_eq!(back["to"], "p0", "{back}");
    assert_eq!(back["cause"], "preempt", "{back}");
    assert!(
        common::event_ms(&back) >= common::event_ms(&up) + 1000,
        "failback before the 1 s hold-down: {up} then {back}"
    );

    // Requests were sent and replies counted.
    for name in ["laggmond_probes_sent_total", "laggmond_probe_replies_total"] {
        let value = daemon.metric(name);
        assert!(value > 0, "{name} is {value}");
    }
    let metrics = String::from_utf8_lossy(&daemon.cli(&["metrics"]).stdout).into_owned();
    assert!(
        metrics.contains("laggmond_port_path_up{group=\"uplink\",port=\"p0\"} 1"),
        "{metrics}"
    );
}

#[test]
fn with_every_path_dead_traffic_stays_on_a_linked_port() {
    let lab = bridged_lab();
    let files = Files::new();
    config(&files);
    let daemon = Daemon::start(&lab.ns, &files);
    paths_up(&daemon);

    let seq = daemon.last_seq();
    cut(&lab, "p0", true);
    cut(&lab, "p1", true);
    let all = daemon
        .wait_event(seq, 3 * SECOND, is("all_paths_down", ""))
        .expect("all_paths_down");
    assert_eq!(all["severity"], "crit", "{all}");
    let group = daemon.group("uplink");
    assert!(
        group["active"] == "p0" || group["active"] == "p1",
        "no port carries traffic: {group}"
    );
    assert!(
        daemon
            .events()
            .iter()
            .all(|e| !(e["kind"] == "all_ports_down" && e["seq"].as_u64() > Some(seq))),
        "all_ports_down although every link is up"
    );

    let seq = daemon.last_seq();
    cut(&lab, "p1", false);
    let recovered = daemon
        .wait_event(seq, 3 * SECOND, is("paths_recovered", ""))
        .expect("paths_recovered");
    println!("recovered: {recovered}");
    assert!(
        common::wait_for(3 * SECOND, || daemon.group("uplink")["active"] == "p1"),
        "traffic not on the port with a path: {}",
        daemon.group("uplink")
    );
}

/// The backup's probes come from its own address: the target's ARP cache
/// and the bridge's forwarding table never see the address of another
/// port on it, and the sender IP 0.0.0.0 adds no neighbour entry at all.
#[test]
fn probes_leave_no_trace_in_neighbours() {
    let lab = bridged_lab();
    let files = Files::new();
    config(&files);
    let daemon = Daemon::start(&lab.ns, &files);
    paths_up(&daemon);
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    let neighbours = output(&["ip", "-n", &lab.peer.name, "neigh", "show", "dev", "br0"]);
    assert!(
        !neighbours.contains("lladdr"),
        "the target learned a neighbour from a probe: {neighbours}"
    );
    let mac = |name: &str| {
        let text = output(&["ip", "-n", &lab.ns.name, "-br", "link", "show", name]);
        text.split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_owned()
    };
    let (p0, p1) = (mac("p0"), mac("p1"));
    let fdb = output(&["bridge", "-n", &lab.peer.name, "fdb", "show", "br", "br0"]);
    for line in fdb.lines() {
        if line.contains(&p0) {
            assert!(
                line.contains("dev p0"),
                "p0's address learned elsewhere: {line}"
            );
        }
        if line.contains(&p1) {
            assert!(
                line.contains("dev p1"),
                "p1's address learned elsewhere: {line}"
            );
        }
    }
    assert!(
        fdb.contains(&p1),
        "the backup's probes never reached the bridge: {fdb}"
    );
    drop(daemon);
}

/// Spoofed and malformed frames sent at a probed port from the far side
/// change nothing: the path stays as the real target makes it.
#[test]
fn forged_replies_do_not_keep_a_dead_path_up() {
    let lab = bridged_lab();
    let files = Files::new();
    config(&files);
    let daemon = Daemon::start(&lab.ns, &files);
    paths_up(&daemon);
    let seq = daemon.last_seq();
    cut(&lab, "p0", true);
    // From p0's far end (out of the bridge now): forged replies from the
    // target's address to another MAC, from another address to p0's MAC,
    // and garbage, for the whole detection time.
    let p0 = {
        let text = output(&["ip", "-n", &lab.ns.name, "-br", "link", "show", "p0"]);
        text.split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_owned()
    };
    let forger = common::Forger::open(&lab.peer.name, "p0");
    let deadline = std::time::Instant::now() + Duration::from_millis((MISSED + 2) * INTERVAL_MS);
    while std::time::Instant::now() < deadline {
        forger.reply_from(TARGET, "02:00:00:00:00:99");
        forger.reply_from("192.0.2.77", &p0);
        forger.garbage();
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon
        .wait_event(seq, 2 * SECOND, is("path_down", "p0"))
        .expect("path_down despite the forged frames");
    // The filter keeps these frames out of userspace altogether; what
    // passes it and still does not count is counted by reason.
    let metrics = String::from_utf8_lossy(&daemon.cli(&["metrics"]).stdout).into_owned();
    let ignored: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("laggmond_probe_frames_ignored_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!("frames past the filter and ignored: {ignored}");
    assert_eq!(daemon.group("uplink")["active"], "p1");
}

fn output(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
