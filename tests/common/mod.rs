//! Test bench for the real daemon: network namespaces with veth ports, the
//! `laggmond` binary running inside one, and its CLI. Every namespace and
//! process is owned by a guard that removes it on drop, also when a test
//! fails, and every name carries the test process's pid so tests can run
//! in parallel.

#![allow(dead_code)]

use std::fs;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use laggmond::control::protocol::Reply;
use serde_json::Value;

/// The binary under test.
pub const LAGGMOND: &str = env!("CARGO_BIN_EXE_laggmond");

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique short name: interface and namespace names are limited.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command and fails the test, with its output, if it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Milliseconds since the epoch, by the wall clock (event times use it).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A network namespace that exists until this value is dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace with loopback up, as a host has it: the daemon runs in
    /// these.
    pub fn new() -> Netns {
        let ns = Netns::bare();
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A namespace exactly as the kernel makes it, loopback down: tests
    /// that compare a monitor's view with the kernel's want nothing set up
    /// behind their back.
    pub fn bare() -> Netns {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests make network namespaces and must run as root"
        );
        let name = unique("lmt");
        sh(&["ip", "netns", "add", &name]);
        Netns { name }
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Said, not asserted: a panic while unwinding would abort the run,
        // but a namespace left behind should not go unnoticed.
        let deleted = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !matches!(&deleted, Ok(output) if output.status.success()) {
            eprintln!(
                "could not delete network namespace {}: {deleted:?}",
                self.name
            );
        }
    }
}

/// The daemon's namespace, where the ports live, and the peer namespace
/// holding the far end of every veth pair: setting a far end down drops
/// carrier on the port.
pub struct VethLab {
    pub ns: Netns,
    pub peer: Netns,
    next_index: AtomicU32,
}

/// Index of the first port; far ends get their namespace's lowest free
/// indexes, far below.
const FIRST_PORT_INDEX: u32 = 100;

impl VethLab {
    /// Two namespaces with loopback up, for the daemon.
    pub fn new() -> VethLab {
        VethLab::of(Netns::new(), Netns::new())
    }

    /// Two untouched namespaces (see [`Netns::bare`]), for tests that
    /// compare the kernel's view with what a monitor reports.
    pub fn bare() -> VethLab {
        VethLab::of(Netns::bare(), Netns::bare())
    }

    /// The one place the port indexes start, whichever namespaces.
    fn of(ns: Netns, peer: Netns) -> VethLab {
        VethLab {
            ns,
            peer,
            next_index: AtomicU32::new(FIRST_PORT_INDEX),
        }
    }

    /// Creates port `name` in the daemon's namespace, its far end `name`
    /// in the peer namespace, both up.
    pub fn add_port(&self, name: &str) {
        self.veth(name, name);
    }

    /// A veth pair, `name` in the daemon's namespace and `peer_name` in the
    /// peer namespace, both up.
    pub fn veth(&self, name: &str, peer_name: &str) {
        self.veth_down(name, peer_name);
        self.ns.ip(&["link", "set", name, "up"]);
        self.peer.ip(&["link", "set", peer_name, "up"]);
    }

    /// A veth pair left administratively down on both ends. The port gets
    /// an index different from its far end's: the kernel then reports its
    /// carrier changes at once, where for a same-index pair (as for a
    /// physical NIC) it may hold them back up to a second behind other
    /// link changes. The tests time the daemon, not that.
    pub fn veth_down(&self, name: &str, peer_name: &str) {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed).to_string();
        sh(&[
            "ip",
            "link",
            "add",
            name,
            "index",
            &index,
            "netns",
            &self.ns.name,
            "type",
            "veth",
            "peer",
            "name",
            peer_name,
            "netns",
            &self.peer.name,
        ]);
    }

    /// Drops (`false`) or restores (`true`) carrier on port `name`; returns
    /// the wall time just before the change.
    pub fn carrier(&self, name: &str, up: bool) -> u64 {
        let at = wall_ms();
        self.peer
            .ip(&["link", "set", name, if up { "up" } else { "down" }]);
        at
    }
}

/// Files of one daemon run, in a temporary directory.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Files {
        let dir = tempfile::Builder::new()
            .prefix("laggmond-test")
            .tempdir()
            .expect("tempdir");
        Files { dir }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn socket(&self) -> PathBuf {
        self.path("laggmond.sock")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.path("laggmond.pid")
    }
    pub fn config(&self) -> PathBuf {
        self.path("laggmond.yml")
    }
    pub fn log(&self) -> PathBuf {
        self.path("laggmond.log")
    }
    pub fn hook_record(&self) -> PathBuf {
        self.path("hook.log")
    }

    /// Writes the config: `socket` and a hook recording every event are
    /// added in front of `body` (which holds `groups:` and the rest).
    pub fn write_config(&self, body: &str) {
        let text = format!(
            "socket: {}\nhooks:\n  - on: [failover, all_ports_down, group_recovered, flapping]\n    run: [/bin/sh, -c, 'echo \"$LAGGMOND_SEQ $LAGGMOND_EVENT $LAGGMOND_GROUP from=$LAGGMOND_FROM to=$LAGGMOND_TO cause=$LAGGMOND_CAUSE\" >> {}']\n    timeout: 5s\n{body}",
            self.socket().display(),
            self.hook_record().display()
        );
        fs::write(self.config(), text).expect("write config");
    }
}

/// A running `laggmond run -f` inside a namespace; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon in `ns` with the files' config, socket and
    /// pidfile, and waits until it answers `status`.
    pub fn start(ns: &Netns, files: &Files) -> Daemon {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &ns.name, LAGGMOND]);
        Daemon::spawn(command, files)
    }

    /// Starts the daemon in this process's own network namespace (inside
    /// a throw-away VM, which is isolation enough).
    pub fn start_here(files: &Files) -> Daemon {
        Daemon::spawn(Command::new(LAGGMOND), files)
    }

    /// Runs `command` (which ends in the laggmond binary) with `run -f`.
    fn spawn(mut command: Command, files: &Files) -> Daemon {
        let log = fs::File::create(files.log()).expect("log file");
        let child = command
            .args(["run", "-f", "-c"])
            .arg(files.config())
            .arg("--pidfile")
            .arg(files.pidfile())
            .env("LAGGMOND_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start laggmond");
        let mut daemon = Daemon {
            child,
            socket: files.socket(),
            log: files.log(),
        };
        // Generous: in the VM the first start reads the debug binary over
        // 9p on an emulated CPU, which can take seconds on a busy host.
        let ready = wait_for(Duration::from_secs(30), || {
            daemon.status_json().is_some() || daemon.exited()
        });
        assert!(
            ready && !daemon.exited(),
            "laggmond did not come up; log:\n{}",
            daemon.log_text()
        );
        daemon
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The value of one sample of `laggmond metrics`.
    pub fn metric(&self, sample: &str) -> u64 {
        let out = self.cli(&["metrics"]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
    }

    /// Runs the CLI against this daemon's socket.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.socket, args)
    }

    /// `status --json`, or `None` when the daemon did not answer.
    pub fn status_json(&self) -> Option<Value> {
        let out = self.cli(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The group `name` from `status --json`.
    pub fn group(&self, name: &str) -> Value {
        let status = self.status_json().expect("status answers");
        status["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no group {name} in {status}"))
    }

    /// Every event in the history, as JSON.
    pub fn events(&self) -> Vec<Value> {
        let out = self.cli(&["events", "--json"]);
        assert!(out.status.success(), "events failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until an event matching `pred` with a sequence number above
    /// `after` is in the history; returns it.
    pub fn wait_event(
        &self,
        after: u64,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self
                .events()
                .into_iter()
                .find(|e| e["seq"].as_u64().unwrap_or(0) > after && pred(e))
            {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The highest sequence number so far.
    pub fn last_seq(&self) -> u64 {
        self.events()
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        // `ip netns exec` execs the daemon, so the child's pid is laggmond's.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.exited() {
            // The whole process group: hooks the daemon started go too.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.pid()),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- laggmond log ---\n{}", self.log_text());
        }
    }
}

/// Runs the CLI against `socket`.
pub fn cli(socket: &Path, args: &[&str]) -> Output {
    Command::new(LAGGMOND)
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .expect("run laggmond CLI")
}

/// The unprivileged user and group the permission tests run as.
pub const NOBODY: u32 = 65534;

/// A copy of the laggmond binary that `nobody` can run. The checkout, and
/// so the binary cargo built, may sit in a private (0700) home directory
/// that `nobody` cannot enter; the copy lives in a fresh world-readable
/// temporary directory, removed on drop.
pub struct NobodyBinary {
    dir: tempfile::TempDir,
}

impl NobodyBinary {
    pub fn new() -> NobodyBinary {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("laggmond-nobody")
            .tempdir()
            .expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
        let binary = NobodyBinary { dir };
        // Copied by another process: a file this process held open for
        // writing would be inherited by any child another test thread
        // forks meanwhile, and running the copy would then fail with
        // "text file busy" until that child execs.
        let copied = Command::new("cp")
            .arg(LAGGMOND)
            .arg(binary.path())
            .status()
            .expect("run cp");
        assert!(copied.success(), "cannot copy the laggmond binary");
        fs::set_permissions(binary.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod the binary copy");
        binary
    }

    /// Where the copy is.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("laggmond")
    }

    /// The copy, to be run as `nobody`.
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.path());
        command.uid(NOBODY).gid(NOBODY);
        command
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Milliseconds since the epoch of an event's RFC 3339 `time`.
pub fn event_ms(event: &Value) -> u64 {
    let time = event["time"].as_str().expect("event time");
    humantime::parse_rfc3339(time)
        .expect("RFC 3339 time")
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Lines of a file, empty when it does not exist yet.
pub fn lines(path: &Path) -> Vec<String> {
    fs::File::open(path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default()
}

/// Resident memory of process `pid` in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// How many file descriptors process `pid` has open.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// What `/proc/PID/stat` tells the tests about a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// `Z` is a zombie nobody has reaped.
    pub state: char,
    /// The reaper once the original parent is gone.
    pub parent: i32,
    /// The executable's name, as the kernel shortens it.
    pub command: String,
}

/// The stat of process `pid`; `None` once it is gone (reaped). The hook
/// tests follow processes the daemon left behind by their parent and state.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMMAND) STATE PPID ...`; the command may hold spaces.
    let (head, rest) = stat.rsplit_once(')')?;
    let command = head.split_once('(')?.1.to_owned();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some(ProcStat {
        state,
        parent,
        command,
    })
}

/// The parent of process `pid`; `None` once it is gone (reaped): whether
/// the daemon, as the reaper, took over what a hook left.
pub fn parent_of(pid: i32) -> Option<i32> {
    proc_stat(pid).map(|stat| stat.parent)
}

/// Every process id in `/proc`, for the searches below.
fn all_pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The children of process `pid` as `(pid, state, command)`; state `Z` is
/// a zombie nobody has reaped.
pub fn children_of(pid: i32) -> Vec<(i32, char, String)> {
    all_pids()
        .into_iter()
        .filter_map(|child| {
            let stat = proc_stat(child)?;
            (stat.parent == pid).then_some((child, stat.state, stat.command))
        })
        .collect()
}

/// Live processes whose argv is exactly `argv` (zombies have none): how
/// the hook tests find the processes a hook left behind.
pub fn processes_running(argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    all_pids()
        .into_iter()
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// Generous bound for a leftover process to appear or go.
const LEFTOVER_WAIT: Duration = Duration::from_secs(10);

/// The processes running `argv` that a hook leaves behind; each test uses
/// an argv no other test uses (a distinct sleep duration). Kills, when
/// dropped, every process still running it: a failing test leaves nothing
/// behind.
pub struct Leftovers(pub &'static [&'static str]);

impl Leftovers {
    /// Waits for exactly one process running the argv; its pid.
    pub fn wait_started(&self) -> i32 {
        let mut found = Vec::new();
        let started = wait_for(LEFTOVER_WAIT, || {
            found = processes_running(self.0);
            !found.is_empty()
        });
        assert!(started, "no {:?} started", self.0);
        assert_eq!(
            found.len(),
            1,
            "{:?} runs more than once: {found:?}",
            self.0
        );
        found[0]
    }

    /// Waits until no process runs the argv; `when` says, on failure, what
    /// should have ended it.
    pub fn wait_gone(&self, when: &str) {
        let gone = wait_for(LEFTOVER_WAIT, || processes_running(self.0).is_empty());
        assert!(
            gone,
            "{:?} still running {when}: {:?}",
            self.0,
            processes_running(self.0)
        );
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in processes_running(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs `future` on a fresh current-thread runtime with time and I/O, for
/// tests that must do plain work first (enter a namespace, skip outside a
/// VM) and so cannot be `#[tokio::test]`s.
pub fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(future)
}

/// A control reply as a test holds it: parsed into the protocol's type, or
/// left as JSON when the test sends bytes the protocol type cannot express.
pub trait ControlReply: std::fmt::Debug {
    /// Whether the daemon accepted the request.
    fn accepted(&self) -> bool;
    /// The reply's `error` text, if it has one.
    fn error_text(&self) -> Option<&str>;
}

impl ControlReply for Reply {
    fn accepted(&self) -> bool {
        self.ok
    }
    fn error_text(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl ControlReply for Value {
    fn accepted(&self) -> bool {
        self["ok"] == true
    }
    fn error_text(&self) -> Option<&str> {
        self["error"].as_str()
    }
}

/// The error text of a refused request; fails the test when the request
/// was accepted, since then there is no error to check.
pub fn error_of<R: ControlReply>(reply: &R) -> &str {
    assert!(!reply.accepted(), "expected an error reply: {reply:?}");
    reply.error_text().unwrap_or_default()
}

#[cfg(target_os = "linux")]
/// Sends hand-made Ethernet frames out of one interface of a network
/// namespace: forged ARP replies and garbage, as a hostile neighbour
/// would. The packet socket is made inside the namespace (by a thread that
/// enters it) and stays bound to it.
pub struct Forger {
    socket: std::os::fd::OwnedFd,
    ifindex: i32,
}

#[cfg(target_os = "linux")]
impl Forger {
    /// A forger on interface `name` of namespace `netns`.
    pub fn open(netns: &str, name: &str) -> Forger {
        let netns = format!("/run/netns/{netns}");
        let name = name.to_owned();
        std::thread::spawn(move || {
            use std::os::fd::{AsRawFd, FromRawFd};
            let namespace = fs::File::open(&netns).expect("namespace file");
            // SAFETY: plain system call; this thread alone enters it.
            let entered = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
            let cname = std::ffi::CString::new(name.clone()).expect("interface name");
            // SAFETY: plain system calls on values alive for the calls.
            let (fd, ifindex) = unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(
                    fd >= 0,
                    "packet socket: {}",
                    std::io::Error::last_os_error()
                );
                (fd, libc::if_nametoindex(cname.as_ptr()))
            };
            assert!(ifindex > 0, "no interface {name} in {netns}");
            Forger {
                // SAFETY: a fresh descriptor nobody else owns.
                socket: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
                ifindex: i32::try_from(ifindex).expect("index"),
            }
        })
        .join()
        .expect("forger thread")
    }

    /// An ARP reply from `sender_ip` to the hardware address `to`
    /// (`aa:bb:...`), as if in answer to a probe.
    pub fn reply_from(&self, sender_ip: &str, to: &str) {
        let to = parse_mac(to);
        let frame = laggmond::probe::arp::reply(
            [0x02, 0, 0, 0, 0, 0x66],
            sender_ip.parse().expect("an IPv4 address"),
            to,
            std::net::Ipv4Addr::UNSPECIFIED,
        );
        self.send(&frame);
    }

    /// Frames that are ARP in name only: short, truncated, wrong lengths.
    pub fn garbage(&self) {
        let mut frame = laggmond::probe::arp::reply(
            [0x02, 0, 0, 0, 0, 0x66],
            std::net::Ipv4Addr::new(192, 0, 2, 1),
            [0xff; 6],
            std::net::Ipv4Addr::UNSPECIFIED,
        );
        self.send(&frame[..20]);
        frame[18] = 9; // hardware address length
        self.send(&frame);
        self.send(&[0x08; 64]);
    }

    fn send(&self, frame: &[u8]) {
        use std::os::fd::AsRawFd;
        let mut addr = [0u8; 8];
        addr[..6].copy_from_slice(&frame[..6.min(frame.len())]);
        let address = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: 0,
            sll_ifindex: self.ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr: addr,
        };
        // SAFETY: `frame` and `address` are alive for the call.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&address).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert!(sent >= 0, "send: {}", std::io::Error::last_os_error());
    }
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
#[cfg(target_os = "linux")]
fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("a MAC address");
    }
    mac
}
