//! What hooks leave behind, around a running daemon (`driver: none`, veth
//! ports in a namespace): a background process of a hook that already
//! exited dies at the hook's timeout, or at the daemon's stop when that
//! comes first; a process that left the hook's session dies at the stop
//! at the latest and is reaped meanwhile; hook output reaches the log with
//! its control characters escaped. Each leftover process is found by a
//! sleep duration no other test uses, and killed by a guard if it survives.

mod common;

use std::fs;
use std::time::Duration;

use common::{Daemon, Files, Leftovers, VethLab};
use nix::sys::signal::Signal;

/// Generous bound for anything that should happen "at once".
const PROMPTLY: Duration = Duration::from_secs(10);

/// Primary p0, backup p1.
const GROUP: &str = "groups:\n  uplink:\n    driver: none\n    ports: [p0, p1]\n";

/// A daemon on ports p0 and p1 whose failover runs `/bin/sh -c script`
/// with `timeout`.
fn start_with_hook(files: &Files, script: &str, timeout: &str) -> (VethLab, Daemon) {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let config = format!(
        "socket: {socket}\nhooks:\n  - on: [failover]\n    run: [/bin/sh, -c, '{script}']\n    timeout: {timeout}\n{GROUP}",
        socket = files.socket().display()
    );
    fs::write(files.config(), config).expect("config");
    let daemon = Daemon::start(&bench.ns, files);
    (bench, daemon)
}

/// Takes p0's carrier away: the failover to p1 runs the hook.
fn fail_over(bench: &VethLab, daemon: &Daemon) {
    let seq = daemon.last_seq();
    bench.carrier("p0", false);
    daemon
        .wait_event(seq, PROMPTLY, |e| {
            e["kind"] == "failover" && e["to"] == "p1"
        })
        .expect("a failover to p1");
}

#[test]
fn a_background_process_of_an_exited_hook_dies_at_the_timeout() {
    const SLEEP: &[&str] = &["sleep", "3171"];
    let leftovers = Leftovers(SLEEP);
    let files = Files::new();
    let (bench, daemon) = start_with_hook(&files, "sleep 3171 & exit 0", "1s");
    fail_over(&bench, &daemon);
    let pid = leftovers.wait_started();
    leftovers.wait_gone("after the hook's timeout");
    assert!(
        !common::children_of(daemon.pid())
            .iter()
            .any(|(child, _, _)| *child == pid),
        "the daemon did not reap {pid}"
    );
    let log = daemon.log_text();
    assert!(
        log.contains("processes it left running killed at its timeout (1s)"),
        "the kill is not in the log:\n{log}"
    );
}

#[test]
fn a_background_process_of_an_exited_hook_dies_at_the_stop() {
    const SLEEP: &[&str] = &["sleep", "3172"];
    let leftovers = Leftovers(SLEEP);
    let files = Files::new();
    let (bench, mut daemon) = start_with_hook(&files, "sleep 3172 & exit 0", "1h");
    fail_over(&bench, &daemon);
    leftovers.wait_started();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(PROMPTLY), Some(0), "laggmond did not stop");
    leftovers.wait_gone("after the daemon stopped");
}

#[test]
fn a_process_that_left_the_hooks_session_is_reaped_and_dies_at_the_stop() {
    const SLEEP: &[&str] = &["sleep", "3176"];
    let leftovers = Leftovers(SLEEP);
    let files = Files::new();
    let short = files.path("short.pid");
    let script = format!(
        "setsid sleep 3176 & setsid sleep 0.3 & echo $! > {}; exit 0",
        short.display()
    );
    let (bench, mut daemon) = start_with_hook(&files, &script, "1h");
    fail_over(&bench, &daemon);
    let pid = leftovers.wait_started();
    // The hook exited and the sleeps left its session: the daemon, as the
    // reaper, is now their parent.
    assert!(
        common::wait_for(PROMPTLY, || common::parent_of(pid) == Some(daemon.pid())),
        "{pid} was not re-parented to the daemon: parent {:?}",
        common::parent_of(pid)
    );
    let short_pid: i32 = common::wait_for(PROMPTLY, || {
        fs::read_to_string(&short).is_ok_and(|t| t.ends_with('\n'))
    })
    .then(|| fs::read_to_string(&short).ok()?.trim().parse().ok())
    .flatten()
    .expect("the hook wrote the short sleep's pid");
    assert!(
        common::wait_for(PROMPTLY, || common::parent_of(short_pid).is_none()),
        "the short sleep {short_pid} was not reaped: {:?}",
        common::children_of(daemon.pid())
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(PROMPTLY), Some(0), "laggmond did not stop");
    leftovers.wait_gone("after the daemon stopped");
}

#[test]
fn control_characters_in_hook_output_are_escaped_in_the_log() {
    let files = Files::new();
    let script = r#"printf "forged\rreal\033[2Kend\n""#;
    let (bench, daemon) = start_with_hook(&files, script, "10s");
    fail_over(&bench, &daemon);
    let expected = r"stdout: forged\rreal\u{1b}[2Kend";
    let logged = common::wait_for(PROMPTLY, || daemon.log_text().contains(expected));
    let log = daemon.log_text();
    assert!(logged, "no {expected:?} in the log:\n{log}");
    assert!(!log.contains('\r'), "a carriage return reached the log");
    assert!(!log.contains('\u{1b}'), "an escape reached the log");
}
