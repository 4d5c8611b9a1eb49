//! Faults around a running daemon (`driver: none`, veth ports in a
//! namespace): ports deleted or renamed under it, its socket file removed,
//! an unreadable config on reload, a `kill -9` and restart, and hooks that
//! hang, flood or do not exist. After each: the status matches the kernel,
//! and no process or file descriptor is left behind.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, Files, Netns, VethLab};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Generous bound for anything the daemon should do "at once".
const PROMPTLY: Duration = Duration::from_secs(5);

/// Descriptors the daemon may hold above a baseline after a fault has
/// passed (the runtime may keep a spare or two).
const FD_SLACK: usize = 3;

/// Primary p0, backup p1, failback after 1 s.
const GROUP: &str =
    "groups:\n  uplink:\n    driver: none\n    ports: [p0, p1]\n    preempt_delay: 1s\n";

fn is_port_event(kind: &'static str, port: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["kind"] == kind && e["port"] == port
}

fn is_failover_to(port: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["kind"] == "failover" && e["to"] == port
}

/// A daemon on ports p0 and p1, with the default recording hook.
fn start_two_ports(files: &Files) -> (VethLab, Daemon) {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    files.write_config(GROUP);
    let daemon = Daemon::start(&bench.ns, files);
    (bench, daemon)
}

/// The interface index of `name` in `ns`, from `ip -j link show`.
fn ifindex(ns: &Netns, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-j", "link", "show", name])
        .output()
        .expect("ip link show");
    let links: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ip -j link show {name}: {e}"));
    links[0]["ifindex"]
        .as_u64()
        .unwrap_or_else(|| panic!("no ifindex for {name}: {links}"))
}

/// Waits for an event after `seq`, failing the test with `what` if none comes.
fn expect_event(daemon: &Daemon, seq: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    daemon
        .wait_event(seq, PROMPTLY, pred)
        .unwrap_or_else(|| panic!("no {what}; events: {:?}", daemon.events()))
}

/// Port `index` of the group has this link state and role.
fn assert_port(group: &Value, index: usize, link: &str, role: &str) {
    let port = &group["ports"][index];
    assert_eq!(port["link"], link, "{group}");
    assert_eq!(port["role"], role, "{group}");
}

/// The active port reaches `port` (hold-downs end by themselves).
fn wait_active(daemon: &Daemon, port: &str) -> Value {
    let reached = common::wait_for(PROMPTLY, || daemon.group("uplink")["active"] == port);
    let group = daemon.group("uplink");
    assert!(reached, "active never became {port}: {group}");
    group
}

#[test]
fn a_port_deleted_and_recreated_with_a_new_index_is_found_again() {
    let files = Files::new();
    let (bench, daemon) = start_two_ports(&files);
    let old_index = ifindex(&bench.ns, "p0");
    let fds = common::fd_count(daemon.pid());

    let seq = daemon.last_seq();
    bench.ns.ip(&["link", "del", "p0"]);
    expect_event(
        &daemon,
        seq,
        "port_missing",
        is_port_event("port_missing", "p0"),
    );
    let failover = expect_event(&daemon, seq, "failover", is_failover_to("p1"));
    assert_eq!(failover["from"], "p0", "{failover}");
    let group = wait_active(&daemon, "p1");
    assert_port(&group, 0, "missing", "missing");

    let seq = daemon.last_seq();
    bench.add_port("p0");
    let new_index = ifindex(&bench.ns, "p0");
    assert_ne!(old_index, new_index, "the test needs a new index");
    expect_event(
        &daemon,
        seq,
        "port_found",
        is_port_event("port_found", "p0"),
    );
    let back = expect_event(&daemon, seq, "failback", is_failover_to("p0"));
    assert_eq!(back["cause"], "preempt", "{back}");
    let group = wait_active(&daemon, "p0");
    assert_port(&group, 0, "up", "active");
    assert_port(&group, 1, "up", "backup");
    // The recording hook of the failback may still hold its pipes a moment.
    assert!(
        common::wait_for(PROMPTLY, || common::fd_count(daemon.pid())
            <= fds + FD_SLACK),
        "fds grew from {fds} to {}",
        common::fd_count(daemon.pid())
    );
}

#[test]
fn a_port_renamed_away_and_back_is_missing_then_found() {
    let files = Files::new();
    let (bench, daemon) = start_two_ports(&files);
    let index = ifindex(&bench.ns, "p0");

    let seq = daemon.last_seq();
    // Linux renames only interfaces that are down.
    bench.ns.ip(&["link", "set", "p0", "down"]);
    bench.ns.ip(&["link", "set", "p0", "name", "away0"]);
    bench.ns.ip(&["link", "set", "away0", "up"]);
    expect_event(&daemon, seq, "failover", is_failover_to("p1"));
    expect_event(
        &daemon,
        seq,
        "port_missing",
        is_port_event("port_missing", "p0"),
    );
    let group = wait_active(&daemon, "p1");
    assert_port(&group, 0, "missing", "missing");
    // The interface under its new name is nobody's port.
    assert!(
        !group.to_string().contains("away0"),
        "renamed port still shown: {group}"
    );

    let seq = daemon.last_seq();
    bench.ns.ip(&["link", "set", "away0", "down"]);
    bench.ns.ip(&["link", "set", "away0", "name", "p0"]);
    bench.ns.ip(&["link", "set", "p0", "up"]);
    assert_eq!(
        ifindex(&bench.ns, "p0"),
        index,
        "same interface, same index"
    );
    expect_event(
        &daemon,
        seq,
        "port_found",
        is_port_event("port_found", "p0"),
    );
    expect_event(&daemon, seq, "failback", is_failover_to("p0"));
    let group = wait_active(&daemon, "p0");
    assert_port(&group, 0, "up", "active");
}

#[test]
fn a_deleted_socket_file_is_bound_again_on_sighup() {
    let files = Files::new();
    let (_bench, daemon) = start_two_ports(&files);
    let fds = common::fd_count(daemon.pid());
    let seq = daemon.last_seq();

    fs::remove_file(files.socket()).expect("remove the socket file");
    let status = daemon.cli(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{status:?}");

    daemon.signal(Signal::SIGHUP);
    assert!(
        common::wait_for(PROMPTLY, || daemon.status_json().is_some()),
        "the socket was not bound again; log:\n{}",
        daemon.log_text()
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(files.socket()).expect("socket").permissions(),
    );
    assert_eq!(mode & 0o777, 0o660, "socket mode {mode:o}");
    expect_event(&daemon, seq, "config_reloaded", |e| {
        e["kind"] == "config_reloaded"
    });
    assert!(daemon.log_text().contains("vanished"));
    assert_eq!(daemon.group("uplink")["active"], "p0");
    // The old listener is closed, not leaked.
    assert!(
        common::wait_for(PROMPTLY, || common::fd_count(daemon.pid())
            <= fds + FD_SLACK),
        "fds grew from {fds} to {}",
        common::fd_count(daemon.pid())
    );
}

/// The socket's path taken by a regular file (a stray `> /var/run/...`, or
/// someone locking clients out): on SIGHUP the daemon says so, moves the
/// file aside, keeping it, and binds its socket again.
#[test]
fn a_socket_file_replaced_by_a_regular_file_is_moved_aside_and_bound_again_on_sighup() {
    let files = Files::new();
    let (_bench, daemon) = start_two_ports(&files);
    let seq = daemon.last_seq();

    let socket = files.socket();
    fs::remove_file(&socket).expect("remove the socket file");
    fs::write(&socket, "not a socket\n").expect("write the impostor");
    let status = daemon.cli(&["status"]);
    assert!(!status.status.success(), "{status:?}");

    daemon.signal(Signal::SIGHUP);
    assert!(
        common::wait_for(PROMPTLY, || daemon.status_json().is_some()),
        "the socket was not bound again; log:\n{}",
        daemon.log_text()
    );
    let kind = fs::symlink_metadata(&socket).expect("socket").file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&kind), "{kind:?}");
    let aside = files.path("laggmond.sock.displaced");
    assert_eq!(
        fs::read_to_string(&aside).expect("the impostor is kept aside"),
        "not a socket\n"
    );
    expect_event(&daemon, seq, "config_reloaded", |e| {
        e["kind"] == "config_reloaded"
    });
    let log = daemon.log_text();
    let warning = format!(
        "control socket {} was replaced by a regular file; moved it to {}",
        socket.display(),
        aside.display()
    );
    assert!(log.contains(&warning), "log:\n{log}");
    assert_eq!(daemon.group("uplink")["active"], "p0");
}

/// `status` against a daemon that runs but whose socket is gone (removed,
/// or replaced by a regular file) says so, with the pid from the pidfile
/// and the cure, and fails with status 1, not 3 ("not running"); once
/// the daemon has stopped, the same command says "not running" again.
#[test]
fn status_without_a_socket_names_the_daemon_that_still_runs() {
    let files = Files::new();
    let (_bench, mut daemon) = start_two_ports(&files);
    let socket = files.socket();
    let pidfile = files.pidfile();
    let pid = daemon.pid();
    let status = || {
        let pidfile = pidfile.to_str().expect("a UTF-8 path");
        common::cli(&socket, &["--pidfile", pidfile, "status"])
    };

    fs::remove_file(&socket).expect("remove the socket file");
    let gone = status();
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert_eq!(
        String::from_utf8_lossy(&gone.stderr),
        format!(
            "laggmond: {}: no such socket, but laggmond runs as pid {pid} (from {}): its socket was removed; send it SIGHUP to bind it again\n",
            socket.display(),
            pidfile.display()
        )
    );

    fs::write(&socket, "").expect("write the impostor");
    let replaced = status();
    assert_eq!(replaced.status.code(), Some(1), "{replaced:?}");
    let stderr = String::from_utf8_lossy(&replaced.stderr);
    assert!(
        stderr.contains(&format!(
            "nothing listens on this socket, but laggmond runs as pid {pid}"
        )) && stderr.contains("its socket was replaced; send it SIGHUP"),
        "{stderr}"
    );

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(PROMPTLY), Some(0), "{}", daemon.log_text());
    fs::remove_file(&socket).ok();
    let stopped = status();
    assert_eq!(stopped.status.code(), Some(3), "{stopped:?}");
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("not running"),
        "{stopped:?}"
    );
}

/// A config replaced by a FIFO, nobody writing to it, then a writer that
/// holds it open and never writes: a blocking open or read would hang the
/// daemon loop for as long as the writer likes; the reload is refused by
/// the file's type instead, and the loop goes on.
#[test]
fn a_fifo_config_on_sighup_is_rejected_and_the_daemon_keeps_answering() {
    let files = Files::new();
    let (bench, daemon) = start_two_ports(&files);

    fs::remove_file(files.config()).expect("remove config");
    nix::unistd::mkfifo(
        &files.config(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    let refused_on_sighup = || {
        let seq = daemon.last_seq();
        daemon.signal(Signal::SIGHUP);
        let rejected = expect_event(&daemon, seq, "config_rejected", |e| {
            e["kind"] == "config_rejected"
        });
        let error = rejected["error"].as_str().unwrap_or_default();
        assert!(error.contains("is a FIFO, not a config file"), "{rejected}");
    };
    refused_on_sighup();

    // Opening read-write does not wait for a reader, and keeps a writer.
    let _writer = fs::File::options()
        .read(true)
        .write(true)
        .open(files.config())
        .expect("hold the FIFO open");
    refused_on_sighup();
    let reload = daemon.cli(&["reload"]);
    assert_eq!(reload.status.code(), Some(1), "{reload:?}");
    assert!(
        String::from_utf8_lossy(&reload.stderr).contains("is a FIFO"),
        "{reload:?}"
    );

    // Still running on the old config and still handling links.
    let seq = daemon.last_seq();
    bench.carrier("p0", false);
    expect_event(&daemon, seq, "failover", is_failover_to("p1"));
    assert_eq!(daemon.group("uplink")["active"], "p1");
}

#[test]
fn after_kill_9_a_restart_takes_over_socket_and_pidfile_and_rebuilds_state() {
    let files = Files::new();
    let (bench, mut first) = start_two_ports(&files);
    bench.carrier("p0", false);
    expect_event(&first, 0, "failover", is_failover_to("p1"));
    let first_pid = first.pid();

    first.signal(Signal::SIGKILL);
    first.wait_exit(PROMPTLY);
    let ended = first.child.try_wait().expect("wait");
    assert!(
        ended.is_some_and(|status| status.code().is_none()),
        "not killed: {ended:?}"
    );
    drop(first);
    assert!(files.socket().exists(), "kill -9 leaves the socket");
    let left = fs::read_to_string(files.pidfile()).expect("kill -9 leaves the pidfile");
    assert_eq!(left.trim(), first_pid.to_string());
    // As if the dead daemon's pid now belonged to another live process:
    // the lock, not the pid written in the file, decides.
    fs::write(files.pidfile(), "1\n").expect("pidfile");

    let second = Daemon::start(&bench.ns, &files);
    let pid = fs::read_to_string(files.pidfile()).expect("pidfile");
    assert_eq!(pid.trim(), second.pid().to_string());
    // Rebuilt from the kernel: p0 is still without carrier.
    let group = second.group("uplink");
    assert_eq!(group["active"], "p1", "{group}");
    assert_port(&group, 0, "down", "down");
    assert_port(&group, 1, "up", "active");

    let seq = second.last_seq();
    bench.carrier("p0", true);
    expect_event(&second, seq, "failback", is_failover_to("p0"));
    wait_active(&second, "p0");
}

/// The three bad hooks for every failover: one hangs (and leaves a
/// grandchild), one floods both output streams, one does not exist. Each
/// shell hook appends its pids to `pids` so the test can check them.
fn bad_hooks_config(files: &Files) -> String {
    let pids = files.path("hook.pids").display().to_string();
    format!(
        "socket: {socket}\nhooks:\n  - on: [failover]\n    run: [/bin/sh, -c, 'echo $$ >> {pids}; sleep 31 & echo $! >> {pids}; sleep 30']\n    timeout: 1s\n  - on: [failover]\n    run: [/bin/sh, -c, 'echo $$ >> {pids}; head -c 20000000 /dev/zero; head -c 20000000 /dev/zero >&2']\n    timeout: 30s\n  - on: [failover]\n    run: [/nonexistent/laggmond-hook, --urgent]\n    timeout: 5s\n{GROUP}",
        socket = files.socket().display()
    )
}

/// The `laggmond_hooks_total` counters by outcome, from `metrics`.
fn hook_counts(daemon: &Daemon) -> Vec<(String, u64)> {
    let out = daemon.cli(&["metrics"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("laggmond_hooks_total{outcome=\""))
        .filter_map(|rest| {
            let (outcome, value) = rest.split_once("\"} ")?;
            Some((outcome.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn hook_count(counts: &[(String, u64)], outcome: &str) -> u64 {
    counts
        .iter()
        .find(|(name, _)| name == outcome)
        .map_or(0, |(_, n)| *n)
}

/// Whether process `pid` is gone: absent, or a zombie that is no longer
/// the daemon's to reap (the hooks' orphans go to init).
fn gone(pid: i32, daemon_pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let mut fields = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace();
    let state = fields.next().unwrap_or_default();
    let parent: i32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    state == "Z" && parent != daemon_pid
}

/// Waits until `runs` hook runs have ended, then checks that nothing of
/// them is left: no child of the daemon, no process a hook started, no
/// extra descriptor.
fn assert_hooks_cleaned_up(daemon: &Daemon, files: &Files, runs: u64, fds: usize) {
    let ended = common::wait_for(Duration::from_secs(15), || {
        let counts = hook_counts(daemon);
        ["succeeded", "failed", "timed_out"]
            .iter()
            .map(|outcome| hook_count(&counts, outcome))
            .sum::<u64>()
            >= runs
    });
    let counts = hook_counts(daemon);
    assert!(ended, "hook runs did not end: {counts:?}");
    assert_eq!(hook_count(&counts, "started"), runs, "{counts:?}");
    assert_eq!(hook_count(&counts, "timed_out"), runs / 3, "{counts:?}");
    assert_eq!(hook_count(&counts, "failed"), runs / 3, "{counts:?}");
    assert_eq!(hook_count(&counts, "succeeded"), runs / 3, "{counts:?}");

    let pid = daemon.pid();
    assert!(
        common::wait_for(PROMPTLY, || common::children_of(pid).is_empty()),
        "the daemon still has children: {:?}",
        common::children_of(pid)
    );
    let started: Vec<i32> = common::lines(&files.path("hook.pids"))
        .iter()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    assert!(!started.is_empty(), "the hooks recorded no pids");
    assert!(
        common::wait_for(PROMPTLY, || started.iter().all(|&p| gone(p, pid))),
        "hook processes left running: {:?}",
        started
            .iter()
            .filter(|&&p| !gone(p, pid))
            .collect::<Vec<_>>()
    );
    assert!(
        common::wait_for(PROMPTLY, || common::fd_count(pid) <= fds + FD_SLACK),
        "fds grew from {fds} to {}",
        common::fd_count(pid)
    );
}

#[test]
fn hanging_flooding_and_missing_hooks_leave_nothing_behind() {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    fs::write(files.config(), bad_hooks_config(&files)).expect("config");
    let daemon = Daemon::start(&bench.ns, &files);
    let fds = common::fd_count(daemon.pid());
    println!("baseline: {fds} fds");

    let seq = daemon.last_seq();
    bench.carrier("p0", false);
    expect_event(&daemon, seq, "failover", is_failover_to("p1"));
    assert_eq!(daemon.group("uplink")["active"], "p1");
    assert_hooks_cleaned_up(&daemon, &files, 3, fds);

    let log = daemon.log_text();
    for expected in [
        "timed out (1s), killed",
        "/nonexistent/laggmond-hook",
        "could not start",
        "(more output discarded)",
    ] {
        assert!(log.contains(expected), "no {expected:?} in the log:\n{log}");
    }
    assert!(
        log.len() < 1024 * 1024,
        "the flood reached the log: {} bytes",
        log.len()
    );

    // The hook machinery still works for the next event.
    let seq = daemon.last_seq();
    bench.carrier("p0", true);
    expect_event(&daemon, seq, "failback", is_failover_to("p0"));
    assert_hooks_cleaned_up(&daemon, &files, 6, fds);
    let group = daemon.group("uplink");
    assert_eq!(group["active"], "p0", "{group}");
    assert_port(&group, 0, "up", "active");
    println!("after: {} fds", common::fd_count(daemon.pid()));
}
