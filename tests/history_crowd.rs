//! A full event history and a crowd of clients that ask for it and never
//! read: the daemon must not hold a copy of the history per client, and
//! must go on reporting link changes meanwhile.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{rss_kib, wait_for, wall_ms, Daemon, Files, VethLab};
use serde_json::Value;

/// Events kept: enough that a copy per client is obvious.
const HISTORY: u64 = 20_000;
const CLIENTS: usize = 100;
/// What the crowd may add to the daemon's memory. A copy of the history per
/// client is about 6 MiB each here, 600 MiB in all; a cursor each is a few
/// KiB.
const GROWTH_LIMIT_KIB: u64 = 64 * 1024;

/// Flaps `port` `times` times in one `ip -batch` run in the peer namespace.
fn flap(bench: &VethLab, port: &str, times: usize) {
    let mut ip = Command::new("ip")
        .args(["-n", &bench.peer.name, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ip -batch");
    let script = format!("link set {port} down\nlink set {port} up\n").repeat(times);
    ip.stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the batch");
    assert!(ip.wait().expect("ip -batch").success());
}

/// One request on a fresh connection; its reply line.
fn ask(socket: &Path, line: &str) -> Value {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream.write_all(line.as_bytes()).expect("send");
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .expect("read the reply");
    serde_json::from_str(&reply).expect("reply JSON")
}

/// The sequence number of the newest event.
fn newest_seq(socket: &Path) -> u64 {
    let reply = ask(socket, "{\"cmd\":\"events\",\"n\":1}\n");
    reply["events"][0]["seq"].as_u64().unwrap_or(0)
}

/// Flaps the primary until the history is full and the daemon quiet.
fn fill_history(bench: &VethLab, socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while newest_seq(socket) < HISTORY {
        assert!(Instant::now() < deadline, "the history did not fill");
        flap(bench, "p0", 2000);
    }
    let mut last = 0;
    assert!(
        wait_for(Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(300));
            let seq = newest_seq(socket);
            std::mem::replace(&mut last, seq) == seq
        }),
        "the daemon did not settle"
    );
}

/// A follower of live events only.
fn follow(socket: &Path) -> BufReader<UnixStream> {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream
        .write_all(b"{\"cmd\":\"events\",\"n\":0,\"follow\":true}\n")
        .expect("follow");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut reader = BufReader::new(stream);
    let mut history = String::new();
    reader.read_line(&mut history).expect("the empty history");
    assert_eq!(history, "{\"ok\":true,\"events\":[]}\n");
    reader
}

/// The first failover the follower sees.
fn next_failover(follower: &mut BufReader<UnixStream>) -> Value {
    loop {
        let mut line = String::new();
        let read = follower.read_line(&mut line).expect("an event in time");
        assert!(read > 0, "the follower was closed");
        let event: Value = serde_json::from_str(&line).expect("event JSON");
        if event["kind"] == "failover" {
            return event;
        }
    }
}

#[test]
fn clients_that_never_read_the_history_cost_little_and_delay_nothing() {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    files.write_config(&format!(
        "history: {HISTORY}\ngroups:\n  uplink:\n    driver: none\n    ports: [p0, p1]\n    preempt_delay: 0s\n    flap_damping: {{max_flaps: 1000, window: 1s, hold: 1s}}\n"
    ));
    let daemon = Daemon::start(&bench.ns, &files);
    let socket = files.socket();
    fill_history(&bench, &socket);
    // Damping, if the flaps came fast enough for it, is over after its hold.
    assert!(
        wait_for(Duration::from_secs(10), || daemon.group("uplink")["active"]
            == "p0"),
        "p0 never became active again"
    );
    let mut follower = follow(&socket);
    let before = rss_kib(daemon.pid());

    let crowd: Vec<UnixStream> = (0..CLIENTS)
        .map(|_| {
            let mut stream = UnixStream::connect(&socket).expect("connect");
            stream.write_all(b"{\"cmd\":\"events\"}\n").expect("ask");
            stream
        })
        .collect();
    let lost_at = wall_ms();
    bench.carrier("p0", false);
    let failover = next_failover(&mut follower);
    println!(
        "carrier loss -> failover on the stream: {} ms",
        wall_ms().saturating_sub(lost_at)
    );
    assert_eq!(failover["to"], "p1", "{failover}");
    let mut peak = before;
    for _ in 0..50 {
        peak = peak.max(rss_kib(daemon.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("daemon RSS: {before} KiB before the crowd, peak {peak} KiB with it");
    assert!(
        peak.saturating_sub(before) < GROWTH_LIMIT_KIB,
        "{CLIENTS} clients grew the daemon from {before} KiB to {peak} KiB"
    );
    assert!(
        ask(&socket, "{\"cmd\":\"status\"}\n")["ok"] == true,
        "status is still answered"
    );
    drop(crowd);
}
