//! The real daemon (`driver: none`) on real veth ports in network
//! namespaces, driven and observed only from outside: carrier changes,
//! signals, the CLI, the log and a hook's record.

mod common;

use std::time::Duration;

use common::{lines, Daemon, Files, VethLab};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Primary p0, backup p1, failback after 1 s, damping after 3 flaps.
fn two_port_config(files: &Files, ports: &[&str]) {
    files.write_config(&format!(
        "groups:\n  uplink:\n    driver: none\n    ports: [{}]\n    preempt_delay: 1s\n    flap_damping: {{max_flaps: 3, window: 30s, hold: 3s}}\n",
        ports.join(", ")
    ));
}

fn is(kind: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["kind"] == kind
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn failover_and_failback_are_seen_everywhere() {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    two_port_config(&files, &["p0", "p1"]);
    let daemon = Daemon::start(&bench.ns, &files);

    let group = daemon.group("uplink");
    assert_eq!(group["active"], "p0", "{group}");
    assert_eq!(group["healthy"], true, "{group}");
    assert_eq!(group["ports"][1]["role"], "backup", "{group}");

    // Carrier loss on the primary: failover to the backup within a second.
    let seq = daemon.last_seq();
    let lost_at = bench.carrier("p0", false);
    let failover = daemon
        .wait_event(seq, SECOND, is("failover"))
        .expect("failover within 1 s");
    assert_eq!(failover["from"], "p0");
    assert_eq!(failover["to"], "p1");
    assert_eq!(failover["cause"], "link_down");
    assert_eq!(failover["severity"], "warning");
    let latency = common::event_ms(&failover).saturating_sub(lost_at);
    println!("carrier loss -> failover event: {latency} ms");
    assert!(daemon.wait_event(seq, SECOND, is("port_down")).is_some());

    let group = daemon.group("uplink");
    assert_eq!(group["active"], "p1");
    assert_eq!(group["state"], "degraded");
    assert_eq!(group["last_failover"]["cause"], "link_down");
    let log = daemon.log_text();
    assert!(
        log.contains("uplink: failover p0 -> p1 (p0 link down)")
            && log.contains("from=p0 to=p1 cause=link_down"),
        "log:\n{log}"
    );
    let record = format!(
        "{} failover uplink from=p0 to=p1 cause=link_down",
        failover["seq"]
    );
    assert!(
        common::wait_for(SECOND, || lines(&files.hook_record()).contains(&record)),
        "hook record {:?} lacks {record:?}",
        lines(&files.hook_record())
    );

    // Back up: port_up at once, failover back only after preempt_delay.
    let seq = daemon.last_seq();
    let up_at = bench.carrier("p0", true);
    let port_up = daemon
        .wait_event(seq, SECOND, |e| e["kind"] == "port_up" && e["port"] == "p0")
        .expect("port_up");
    let back = daemon
        .wait_event(seq, 3 * SECOND, is("failover"))
        .expect("failback");
    assert_eq!(back["from"], "p1");
    assert_eq!(back["to"], "p0");
    assert_eq!(back["cause"], "preempt");
    assert!(
        common::event_ms(&back) >= common::event_ms(&port_up) + 1000,
        "failback came before the 1 s hold-down: {port_up} then {back}"
    );
    assert!(common::event_ms(&back) >= up_at + 1000);
    assert_eq!(daemon.group("uplink")["active"], "p0");

    // The human table names the active port.
    let table = daemon.cli(&["status"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("uplink") && text.contains("p0"), "{text}");
}

#[test]
fn flapping_primary_is_damped_before_it_gets_traffic_back() {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    two_port_config(&files, &["p0", "p1"]);
    let daemon = Daemon::start(&bench.ns, &files);
    let seq = daemon.last_seq();

    // Four transitions inside the window: more than max_flaps (3).
    for up in [false, true, false, true] {
        bench.carrier("p0", up);
        std::thread::sleep(Duration::from_millis(200));
    }
    let flapping = daemon
        .wait_event(seq, SECOND, is("flapping"))
        .expect("flapping");
    assert_eq!(flapping["port"], "p0");
    let group = daemon.group("uplink");
    assert_eq!(group["active"], "p1", "{group}");
    assert_eq!(group["ports"][0]["damped"], true, "{group}");

    // Up and past preempt_delay, but damped: traffic stays on p1.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(daemon.group("uplink")["active"], "p1");

    // The hold ends (3 s), then the 1 s hold-down, then traffic returns.
    let cleared = daemon
        .wait_event(seq, 4 * SECOND, is("flap_cleared"))
        .expect("flap_cleared");
    let cleared_seq = cleared["seq"].as_u64().unwrap_or(0);
    let back = daemon
        .wait_event(cleared_seq, 3 * SECOND, |e| {
            e["kind"] == "failover" && e["to"] == "p0"
        })
        .expect("failback after damping");
    assert_eq!(back["cause"], "preempt");
    // The hold-down counts from the damping's scheduled end; the
    // flap_cleared event is stamped when the timer fired, a little later.
    assert!(common::event_ms(&back) >= common::event_ms(&cleared) + 950);
}

#[test]
fn all_ports_down_then_recovery() {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    two_port_config(&files, &["p0", "p1"]);
    let daemon = Daemon::start(&bench.ns, &files);
    let seq = daemon.last_seq();

    bench.carrier("p0", false);
    bench.carrier("p1", false);
    let down = daemon
        .wait_event(seq, SECOND, is("all_ports_down"))
        .expect("all_ports_down");
    assert_eq!(down["severity"], "crit");
    let group = daemon.group("uplink");
    assert_eq!(group["active"], Value::Null, "{group}");
    assert_eq!(group["state"], "down", "{group}");

    bench.carrier("p1", true);
    let recovered = daemon
        .wait_event(seq, SECOND, is("group_recovered"))
        .expect("group_recovered");
    assert_eq!(recovered["port"], "p1");
    assert!(recovered["outage_ms"].as_u64().is_some(), "{recovered}");
    assert_eq!(daemon.group("uplink")["active"], "p1");
    let record = lines(&files.hook_record());
    assert!(
        common::wait_for(SECOND, || lines(&files.hook_record())
            .iter()
            .any(|l| l.contains("all_ports_down uplink"))),
        "{record:?}"
    );
}

#[test]
fn a_missing_port_is_reported_then_picked_up() {
    let bench = VethLab::new();
    bench.add_port("p1");
    let files = Files::new();
    two_port_config(&files, &["p0", "p1"]);
    let daemon = Daemon::start(&bench.ns, &files);

    let missing = daemon
        .wait_event(0, SECOND, is("port_missing"))
        .expect("port_missing");
    assert_eq!(missing["port"], "p0");
    let group = daemon.group("uplink");
    assert_eq!(group["active"], "p1", "{group}");
    assert_eq!(group["ports"][0]["link"], "missing", "{group}");

    let seq = daemon.last_seq();
    bench.add_port("p0");
    let found = daemon
        .wait_event(seq, SECOND, |e| {
            e["kind"] == "port_found" && e["port"] == "p0"
        })
        .expect("port_found");
    let back = daemon
        .wait_event(seq, 3 * SECOND, is("failover"))
        .expect("preferred port takes over");
    assert_eq!(back["to"], "p0");
    assert_eq!(back["cause"], "preempt");
    assert!(common::event_ms(&back) >= common::event_ms(&found));
}

#[test]
fn a_broken_config_on_sighup_keeps_the_old_one() {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    two_port_config(&files, &["p0", "p1"]);
    let daemon = Daemon::start(&bench.ns, &files);
    bench.carrier("p0", false);
    assert!(daemon.wait_event(0, SECOND, is("failover")).is_some());
    let seq = daemon.last_seq();

    std::fs::write(
        files.config(),
        "groups:\n  uplink:\n    ports: [p0, p1]\n    bogus: 1\n",
    )
    .expect("write");
    daemon.signal(Signal::SIGHUP);
    let rejected = daemon
        .wait_event(seq, SECOND, is("config_rejected"))
        .expect("config_rejected");
    let error = rejected["error"].as_str().unwrap_or_default();
    let path = files.config().display().to_string();
    assert!(
        error.contains(&format!("{path}:4:5")) && error.contains("bogus"),
        "error should name file, line, column and key: {error}"
    );
    assert!(daemon.log_text().contains("bogus"));

    // Still running, same state and history.
    let group = daemon.group("uplink");
    assert_eq!(group["active"], "p1", "{group}");
    assert_eq!(group["last_failover"]["from"], "p0", "{group}");
    assert!(daemon.events().iter().any(|e| e["kind"] == "failover"));

    // A good file then takes effect and keeps the state.
    two_port_config(&files, &["p0", "p1"]);
    let seq = daemon.last_seq();
    let reload = daemon.cli(&["reload"]);
    assert!(reload.status.success(), "{reload:?}");
    assert!(daemon
        .wait_event(seq, SECOND, is("config_reloaded"))
        .is_some());
    assert_eq!(daemon.group("uplink")["active"], "p1");
}

/// A refused reload logs each problem on a line of its own, each with the
/// same prefix, so syslog (a record per line) and a grep for the prefix
/// keep every problem; the `config_rejected` event keeps the whole message.
#[test]
fn a_refused_reload_logs_one_prefixed_line_per_problem() {
    let bench = VethLab::new();
    bench.add_port("p0");
    let files = Files::new();
    two_port_config(&files, &["p0"]);
    let daemon = Daemon::start(&bench.ns, &files);
    let seq = daemon.last_seq();

    std::fs::write(
        files.config(),
        "history: 10.0\ngroups:\n  uplink:\n    ports: [p0]\n    bogus: 1\n",
    )
    .expect("write");
    daemon.signal(Signal::SIGHUP);
    let rejected = daemon
        .wait_event(seq, SECOND, is("config_rejected"))
        .expect("config_rejected");
    let error = rejected["error"].as_str().unwrap_or_default();
    let path = files.config().display().to_string();
    let problems: Vec<&str> = error.lines().collect();
    assert_eq!(problems.len(), 3, "three problems: {error}");
    assert!(problems
        .iter()
        .all(|line| line.starts_with(&format!("{path}:"))));

    let log = daemon.log_text();
    let logged: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("reload refused"))
        .collect();
    assert_eq!(logged.len(), problems.len(), "log:\n{log}");
    for (line, problem) in logged.iter().zip(&problems) {
        assert!(
            line.ends_with(&format!("reload refused: {problem}")),
            "{line:?} should end with the problem {problem:?}"
        );
    }
}

#[test]
fn sigterm_removes_socket_and_pidfile_and_a_second_instance_refuses() {
    let bench = VethLab::new();
    bench.add_port("p0");
    let files = Files::new();
    two_port_config(&files, &["p0"]);
    let mut daemon = Daemon::start(&bench.ns, &files);
    assert!(files.socket().exists() && files.pidfile().exists());
    let pid = std::fs::read_to_string(files.pidfile()).expect("pidfile");
    assert_eq!(pid.trim(), daemon.pid().to_string());

    let second = std::process::Command::new(common::LAGGMOND)
        .args(["run", "-f", "-c"])
        .arg(files.config())
        .arg("--pidfile")
        .arg(files.pidfile())
        .output()
        .expect("second instance");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!(
            "laggmond: already running as pid {}",
            daemon.pid()
        )),
        "{stderr}"
    );
    assert!(
        files.socket().exists(),
        "the second instance must not touch the socket"
    );

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!files.socket().exists(), "socket left behind");
    assert!(!files.pidfile().exists(), "pidfile left behind");

    let status = common::cli(&files.socket(), &["status"]);
    assert_eq!(status.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&status.stderr).contains("not running"));
}

#[test]
fn a_stale_socket_from_a_crash_is_replaced() {
    let bench = VethLab::new();
    bench.add_port("p0");
    let files = Files::new();
    two_port_config(&files, &["p0"]);
    let mut first = Daemon::start(&bench.ns, &files);
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5));
    assert!(files.socket().exists(), "kill -9 leaves the socket behind");
    drop(first);

    let second = Daemon::start(&bench.ns, &files);
    assert_eq!(second.group("uplink")["active"], "p0");
}

#[test]
fn a_non_root_client_reads_status_but_cannot_change_anything() {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    two_port_config(&files, &["p0", "p1"]);
    // Let `nobody` reach the socket: the directory and the socket's group.
    std::fs::set_permissions(
        files.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let text = std::fs::read_to_string(files.config()).expect("config");
    std::fs::write(files.config(), format!("socket_group: nogroup\n{text}")).expect("config");
    let daemon = Daemon::start(&bench.ns, &files);

    let binary = common::NobodyBinary::new();
    let as_nobody = |args: &[&str]| {
        binary
            .command()
            .arg("-s")
            .arg(files.socket())
            .args(args)
            .output()
            .expect("run as nobody")
    };
    let status = as_nobody(&["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    let denied = as_nobody(&["set-active", "uplink", "p1"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("permission denied"),
        "{denied:?}"
    );
    assert_eq!(daemon.group("uplink")["active"], "p0");

    // Root may.
    let seq = daemon.last_seq();
    let moved = daemon.cli(&["set-active", "uplink", "p1"]);
    assert!(moved.status.success(), "{moved:?}");
    let failover = daemon
        .wait_event(seq, SECOND, is("failover"))
        .expect("operator failover");
    assert_eq!(failover["cause"], "operator");
    assert_eq!(daemon.group("uplink")["active"], "p1");
}
