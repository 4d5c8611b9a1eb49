//! Hostile clients on the control socket of a running daemon (`driver:
//! none`, two veth ports in a namespace): garbage, bad JSON, unknown
//! commands, an overlong line, a request trickled byte by byte, idle and
//! non-reading clients, a crowd of connections and a storm of connects.
//!
//! Throughout, a poller keeps asking for `status` and a follower keeps
//! reading events; a carrier loss during the storm must still come out as
//! a failover, a non-root peer may change nothing, memory stays bounded and
//! file descriptors return to where they were.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{error_of, Daemon, Files, NobodyBinary, VethLab};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use serde_json::Value;

/// Longest any single socket operation may take before the daemon counts
/// as hung. Far above what it needs; only a hang gets near it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's request size limit (64 KiB) and client limit.
const MAX_REQUEST: usize = 64 * 1024;
const MAX_CLIENTS: usize = 128;

/// Bound on the daemon's resident memory at any point of the abuse. An
/// unoptimised build measures about 13 MiB idle and 15 MiB at the peak;
/// the bound leaves twice that for allocator and build differences while
/// still catching anything that buffers a 10 MiB line or leaks per client.
const RSS_BOUND_KIB: u64 = 32 * 1024;

/// File descriptors the daemon may hold above its idle baseline once every
/// abusive client is gone (the runtime may keep a spare or two).
const FD_SLACK: usize = 3;

/// Connects without ever blocking on a full listen backlog: retries until
/// [`IO_TIMEOUT`], then fails the test. Reads and writes time out too.
fn connect(path: &Path) -> UnixStream {
    let deadline = Instant::now() + IO_TIMEOUT;
    let address = UnixAddr::new(path).expect("socket address");
    loop {
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        match socket::connect(fd.as_raw_fd(), &address) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream.set_nonblocking(false).expect("blocking");
                stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
                return stream;
            }
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("connect to {}: {e}", path.display()),
        }
    }
}

/// Reads one reply line and parses it; `None` at end of stream.
fn read_reply(reader: &mut impl BufRead) -> Option<Value> {
    let mut line = String::new();
    let read = reader
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no reply within {IO_TIMEOUT:?}: {e}"));
    if read == 0 {
        return None;
    }
    Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?}: {e}")))
}

/// Sends one request line on a fresh connection; its reply.
fn ask(path: &Path, line: &str) -> Value {
    let mut stream = connect(path);
    stream.write_all(line.as_bytes()).expect("send");
    read_reply(&mut BufReader::new(stream)).expect("a reply")
}

fn is_busy(reply: &Value) -> bool {
    reply["ok"] == false && error_of(reply).starts_with("busy")
}

/// `status` over the protocol answers with the group, active on `port`.
fn assert_status_answers(path: &Path) {
    let reply = ask(path, "{\"cmd\":\"status\"}\n");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["status"]["groups"][0]["name"], "uplink", "{reply}");
}

/// Waits until `status` answers `ok` again (slots of closed clients are
/// freed asynchronously).
fn wait_until_status_answers(path: &Path) {
    let answered = common::wait_for(IO_TIMEOUT, || {
        ask(path, "{\"cmd\":\"status\"}\n")["ok"] == true
    });
    assert!(answered, "status never answered again");
}

/// What the background `status` poller saw.
#[derive(Debug, Default)]
struct PollCounts {
    answered: usize,
    busy: usize,
    /// Anything else: no reply, a wrong reply, a hang.
    failures: Vec<String>,
}

/// Asks for `status` every few milliseconds until stopped.
struct Poller {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<PollCounts>,
}

impl Poller {
    fn start(path: PathBuf) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut counts = PollCounts::default();
            while !stopped.load(Ordering::Relaxed) {
                let reply = ask(&path, "{\"cmd\":\"status\"}\n");
                if reply["ok"] == true && reply["status"]["groups"].is_array() {
                    counts.answered += 1;
                } else if is_busy(&reply) {
                    counts.busy += 1;
                } else {
                    counts.failures.push(reply.to_string());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            counts
        });
        Poller { stop, thread }
    }

    fn finish(self) -> PollCounts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("status poller")
    }
}

/// A follower that reads every event line and keeps it.
struct Follower {
    events: Arc<Mutex<Vec<Value>>>,
    stream: UnixStream,
    thread: JoinHandle<()>,
}

impl Follower {
    fn start(path: &Path) -> Follower {
        let mut stream = connect(path);
        stream
            .write_all(b"{\"cmd\":\"events\",\"follow\":true}\n")
            .expect("follow");
        // Events come only when something happens: no read timeout.
        stream.set_read_timeout(None).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let history = read_reply(&mut reader).expect("history");
        assert_eq!(history["ok"], true, "{history}");
        let events = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&events);
        let thread = std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    kept.lock().expect("events").push(event);
                }
                line.clear();
            }
        });
        Follower {
            events,
            stream,
            thread,
        }
    }

    fn find(&self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .find(|e| pred(e))
            .cloned()
    }

    fn stop(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.thread.join().expect("follower");
    }
}

/// Resident memory and open descriptors of the daemon over the run.
struct Footprint {
    pid: i32,
    rss_baseline: u64,
    rss_peak: u64,
    fd_baseline: usize,
    fd_peak: usize,
}

impl Footprint {
    fn new(pid: i32) -> Footprint {
        let rss = common::rss_kib(pid);
        let fds = common::fd_count(pid);
        println!("baseline: VmRSS {rss} KiB, {fds} fds");
        Footprint {
            pid,
            rss_baseline: rss,
            rss_peak: rss,
            fd_baseline: fds,
            fd_peak: fds,
        }
    }

    /// Samples both, prints them and checks memory against the bound.
    fn sample(&mut self, when: &str) {
        let rss = common::rss_kib(self.pid);
        let fds = common::fd_count(self.pid);
        println!("{when}: VmRSS {rss} KiB, {fds} fds");
        self.rss_peak = self.rss_peak.max(rss);
        self.fd_peak = self.fd_peak.max(fds);
        assert!(
            rss < RSS_BOUND_KIB,
            "{when}: VmRSS {rss} KiB is over the {RSS_BOUND_KIB} KiB bound"
        );
    }
}

/// Deterministic bytes, mostly not UTF-8, with a few newlines among them.
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Invalid UTF-8 ends the connection with one clear error; random bytes
/// get error replies only, never a crash.
fn send_garbage(path: &Path) {
    let mut stream = connect(path);
    stream
        .write_all(b"\xff\xfe{\"cmd\":\"status\"}\n")
        .expect("send");
    let mut reader = BufReader::new(stream);
    let reply = read_reply(&mut reader).expect("a reply");
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(error_of(&reply).contains("UTF-8"), "{reply}");
    assert!(read_reply(&mut reader).is_none(), "connection not closed");

    let mut stream = connect(path);
    // The daemon may close on the first bad line while this is still
    // writing; a failed write is then expected.
    let _ = stream.write_all(&garbage(256 * 1024));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reader = BufReader::new(stream);
    let mut replies = 0;
    while let Some(reply) = read_reply(&mut reader) {
        assert_eq!(reply["ok"], false, "garbage accepted: {reply}");
        replies += 1;
    }
    assert!(replies >= 1, "garbage got no error reply");
}

/// Every line is refused with a reason, and the connection stays usable.
fn send_bad_requests(path: &Path) {
    let deep = format!("{}\n", "[".repeat(MAX_REQUEST - 100));
    let lines = [
        "{\n",
        "{\"cmd\":\n",
        "null\n",
        "[]\n",
        "42\n",
        "\"status\"\n",
        "{\"cmd\":\"status\"\n",
        "\u{1}\u{2}\u{7f}\n",
        "{\"cmd\":null}\n",
        "{\"command\":\"status\"}\n",
        "{\"cmd\":\"status\",\"extra\":1}\n",
        "{\"cmd\":\"status\",\"group\":5}\n",
        "{\"cmd\":\"events\",\"n\":-1}\n",
        "{\"cmd\":\"events\",\"n\":1e999}\n",
        "{\"cmd\":\"events\",\"n\":18446744073709551616}\n",
        "{\"cmd\":\"set-active\"}\n",
        "{\"cmd\":\"shutdown\"}\n",
        "{\"cmd\":\"exec\",\"argv\":[\"/bin/sh\"]}\n",
        "{\"cmd\":\"STATUS\"}\n",
        "{\"cmd\":\"status\\u0000\"}\n",
        deep.as_str(),
    ];
    let mut stream = connect(path);
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for line in lines {
        stream.write_all(line.as_bytes()).expect("send");
        let reply = read_reply(&mut reader).expect("a reply");
        assert_eq!(reply["ok"], false, "{line:?} accepted: {reply}");
        let shown: String = line.chars().take(40).collect();
        assert!(
            error_of(&reply).starts_with("bad request"),
            "{shown:?}: {reply}"
        );
    }
    stream.write_all(b"{\"cmd\":\"status\"}\n").expect("send");
    let reply = read_reply(&mut reader).expect("a reply");
    assert_eq!(reply["ok"], true, "status after bad requests: {reply}");
}

/// A 10 MiB line is cut off at the limit: one error reply, then the
/// connection is closed, and the daemon never holds the whole line.
fn send_huge_line(path: &Path) {
    let stream = connect(path);
    let mut writer = stream.try_clone().expect("clone");
    let sent = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < 10 * 1024 * 1024 {
            // Fails once the daemon has refused the line and closed.
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut reader = BufReader::new(stream);
    let reply = read_reply(&mut reader).expect("a reply");
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(error_of(&reply).contains("too long"), "{reply}");
    let sent = sent.join().expect("writer");
    println!("overlong line: refused after the client sent {sent} bytes");
}

/// A request written one byte at a time, then several in one write.
fn send_split_requests(path: &Path) {
    let mut stream = connect(path);
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for byte in b"{\"cmd\":\"status\"}\n" {
        stream.write_all(&[*byte]).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    let reply = read_reply(&mut reader).expect("a reply");
    assert_eq!(reply["ok"], true, "{reply}");

    let burst = "{\"cmd\":\"status\"}\n\n{\"cmd\":\"metrics\"}\n{\"cmd\":\"events\",\"n\":1}\n";
    stream.write_all(burst.as_bytes()).expect("send");
    for payload in ["status", "metrics", "events"] {
        let reply = read_reply(&mut reader).expect("a reply");
        assert_eq!(reply["ok"], true, "{reply}");
        assert!(!reply[payload].is_null(), "no {payload} in {reply}");
    }
}

/// 500 clients at once: those beyond the limit are told `busy`, the rest
/// are served; nobody waits forever. Returns how many were served.
fn crowd(path: &Path, footprint: &mut Footprint) -> usize {
    let crowd: Vec<UnixStream> = (0..500).map(|_| connect(path)).collect();
    footprint.sample("500 clients connected");
    let (mut served, mut busy) = (0, 0);
    for mut stream in crowd {
        // A refused client's socket is already closed by the daemon.
        let _ = stream.write_all(b"{\"cmd\":\"status\"}\n");
        let reply = read_reply(&mut BufReader::new(&mut stream)).expect("a reply");
        if reply["ok"] == true {
            served += 1;
        } else if is_busy(&reply) {
            busy += 1;
        } else {
            panic!("neither served nor busy: {reply}");
        }
    }
    println!("500 clients: {served} served, {busy} told busy");
    assert_eq!(served + busy, 500);
    served
}

/// Connects and closes `count` times; every tenth leaves half a request.
fn connect_and_close(path: &Path, count: usize, done: &AtomicUsize) {
    for i in 0..count {
        let mut stream = connect(path);
        if i % 10 == 0 {
            let _ = stream.write_all(b"{\"cmd\":\"sta");
        }
        drop(stream);
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the CLI as `nobody`, from a copy it can reach.
fn as_nobody(binary: &NobodyBinary, socket: &Path, args: &[&str]) -> std::process::Output {
    binary
        .command()
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .expect("run the CLI as nobody")
}

/// `nobody` may look but not touch: every changing command is refused.
fn assert_nobody_changes_nothing(daemon: &Daemon, socket: &Path) {
    let binary = NobodyBinary::new();
    let status = as_nobody(&binary, socket, &["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    for args in [
        &["set-active", "uplink", "p1"][..],
        &["set-active", "uplink", "--clear"],
        &["reload"],
        &["clear-damping"],
    ] {
        let denied = as_nobody(&binary, socket, args);
        assert_eq!(denied.status.code(), Some(1), "{args:?}: {denied:?}");
        let stderr = String::from_utf8_lossy(&denied.stderr);
        assert!(stderr.contains("permission denied"), "{args:?}: {stderr}");
    }
    assert_eq!(daemon.group("uplink")["active"], "p0");
}

#[test]
fn hostile_clients_do_not_stop_the_daemon() {
    let started = Instant::now();
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    let files = Files::new();
    files.write_config(
        "socket_group: nogroup\ngroups:\n  uplink:\n    driver: none\n    ports: [p0, p1]\n    preempt_delay: 1s\n",
    );
    // `nobody` must reach the socket to be refused by the daemon itself.
    std::fs::set_permissions(
        files.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let daemon = Daemon::start(&bench.ns, &files);
    let socket = files.socket();
    let mut footprint = Footprint::new(daemon.pid());

    let poller = Poller::start(socket.clone());
    let follower = Follower::start(&socket);
    // Held open, silent, for the whole run.
    let idle = connect(&socket);
    let mut deaf = connect(&socket);
    deaf.write_all(b"{\"cmd\":\"events\",\"follow\":true}\n")
        .expect("follow");

    send_garbage(&socket);
    send_bad_requests(&socket);
    send_huge_line(&socket);
    send_split_requests(&socket);
    assert_status_answers(&socket);
    footprint.sample("after bad input");

    let served = crowd(&socket, &mut footprint);
    // Both followers hold slots of their own; so does the idle client,
    // unless the request deadline has closed it already on a slow run.
    assert!(
        (1..=MAX_CLIENTS - 2).contains(&served),
        "{served} served beyond the limit"
    );
    wait_until_status_answers(&socket);
    assert!(
        daemon.metric("laggmond_control_clients_refused_total{reason=\"busy\"}")
            >= 500 - served as u64,
        "refusals are counted"
    );
    assert_nobody_changes_nothing(&daemon, &socket);
    footprint.sample("after the crowd");

    // A connect storm, and a carrier loss in the middle of it.
    let seq = daemon.last_seq();
    let done = Arc::new(AtomicUsize::new(0));
    let storm = {
        let (socket, done) = (socket.clone(), Arc::clone(&done));
        std::thread::spawn(move || connect_and_close(&socket, 10_000, &done))
    };
    assert!(common::wait_for(IO_TIMEOUT, || done
        .load(Ordering::Relaxed)
        >= 2_000));
    bench.carrier("p0", false);
    storm.join().expect("connect storm");
    footprint.sample("after 10,000 connects");
    wait_until_status_answers(&socket);
    let failover = daemon
        .wait_event(seq, IO_TIMEOUT, |e| e["kind"] == "failover")
        .expect("the carrier loss is reported");
    assert_eq!(failover["from"], "p0", "{failover}");
    assert_eq!(failover["to"], "p1", "{failover}");
    assert_eq!(failover["cause"], "link_down", "{failover}");
    let live = |e: &Value| e["kind"] == "failover" && e["seq"] == failover["seq"];
    assert!(
        common::wait_for(IO_TIMEOUT, || follower.find(live).is_some()),
        "the follower did not get the failover"
    );
    assert_eq!(daemon.group("uplink")["active"], "p1");

    // Carrier back: traffic returns after the hold-down.
    let seq = daemon.last_seq();
    bench.carrier("p0", true);
    let back = daemon
        .wait_event(seq, IO_TIMEOUT, |e| e["kind"] == "failover")
        .expect("failback");
    assert_eq!(back["to"], "p0", "{back}");
    assert_eq!(daemon.group("uplink")["active"], "p0");

    // The silent client blocked nothing, and is closed once the deadline
    // for a request is past; the deaf follower is not held to it.
    idle.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let told = read_reply(&mut BufReader::new(&idle)).expect("told why it is closed");
    assert!(error_of(&told).starts_with("timeout"), "{told}");
    assert_eq!(
        (&idle).read(&mut [0u8; 1]).expect("closed"),
        0,
        "closed after the deadline"
    );
    assert!(daemon.metric("laggmond_control_clients_timed_out_total") >= 1);
    // Counted each time, logged once a minute at most.
    let log = daemon.log_text();
    let reports = log.matches("clients refused (all slots taken)").count();
    assert!((1..=2).contains(&reports), "{reports} reports:\n{log}");
    drop(idle);
    drop(deaf);
    follower.stop();
    let counts = poller.finish();
    println!("status poller: {counts:?}");
    assert!(counts.failures.is_empty(), "{:?}", counts.failures);
    assert!(
        counts.answered > 0,
        "status never answered during the abuse"
    );

    let settled = common::wait_for(IO_TIMEOUT, || {
        common::fd_count(footprint.pid) <= footprint.fd_baseline + FD_SLACK
    });
    footprint.sample("after the abuse");
    println!(
        "VmRSS baseline {} KiB, peak {} KiB (bound {RSS_BOUND_KIB} KiB); fds baseline {}, peak {}, after {}",
        footprint.rss_baseline,
        footprint.rss_peak,
        footprint.fd_baseline,
        footprint.fd_peak,
        common::fd_count(footprint.pid)
    );
    assert!(
        settled,
        "fds did not return near the baseline of {}: {}",
        footprint.fd_baseline,
        common::fd_count(footprint.pid)
    );
    assert!(
        footprint.fd_peak > footprint.fd_baseline + 100,
        "the crowd never showed in the fd count"
    );
    assert_status_answers(&socket);
    assert!(
        !daemon.log_text().contains("panicked"),
        "{}",
        daemon.log_text()
    );
    println!("abuse took {} ms", started.elapsed().as_millis());
}
