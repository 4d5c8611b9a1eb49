//! A link storm and a crowd of control clients against the real daemon.
//! Needs root (network namespaces); prints figures.
//!
//! Method. A namespace holds 64 veth ports in 16 groups of 4 (`driver:
//! none`, damping out of reach); their far ends live in a peer namespace.
//! Each port has an interface index different from its far end's, so the
//! kernel reports its carrier changes at once instead of batching them in
//! linkwatch. The real laggmond runs in the monitored namespace; the
//! harness follows its event stream on the control socket and stamps each
//! line as it arrives. One thread flips the far ends round-robin by
//! `SIOCSIFFLAGS` as fast as it can, the wall time read just before each
//! call. Halfway through, 100 clients ask `{"cmd":"status"}` in a loop on
//! their own connections for 10 s. Then every far end is brought up and the
//! daemon's status is compared with the kernel's view of every port. The
//! daemon's warnings (stderr) are searched for netlink overruns.
//!
//! Run as root: `cargo bench --bench storm` (`STORM_SECS`, `STORM_CLIENTS`
//! and `CLIENT_SECS` change the 30 s storm, 100 clients and 10 s).

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

/// Network namespaces and veth pairs are Linux's.
#[cfg(not(target_os = "linux"))]
fn main() {
    println!("skipped: the storm benchmark needs Linux network namespaces");
}

#[cfg(target_os = "linux")]
mod support;

#[cfg(target_os = "linux")]
mod linux {
    use super::support::{
        daemon_pid, env_number, lock, proc_status, quantile, request, start_daemon, status_field,
        wall_ns, Guard, Namespaces, Result,
    };
    use std::collections::HashMap;
    use std::fs;
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    /// Ports per group and groups: 64 ports in all.
    const PORTS_PER_GROUP: usize = 4;
    const GROUPS: usize = 16;
    const PORTS: usize = PORTS_PER_GROUP * GROUPS;
    /// Interface index of the first monitored port; far ends are odd.
    const FIRST_INDEX: u32 = 8001;

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        // `cargo test --all-targets` runs benchmarks without `--bench`
        // only to see that they start; the measurement is for `cargo bench`.
        if !args.iter().any(|arg| arg == "--bench") {
            println!("storm: skipped; run it with `cargo bench --bench storm`");
            return;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("storm: skipped, needs root for network namespaces");
            return;
        }
        if let Err(error) = run() {
            eprintln!("storm: {error}");
            std::process::exit(1);
        }
    }

    /// Name of monitored port `index` (its far end has the same name).
    fn port_name(index: usize) -> String {
        format!("st{index}")
    }

    /// Runs `ip [-n netns] -batch -` with `commands` on its standard input:
    /// one process for the many commands that build the ports.
    fn ip_batch(netns: Option<&str>, commands: &str) -> Result<()> {
        let mut child = Command::new("ip")
            .args(netns.map_or(Vec::new(), |netns| vec!["-n", netns]))
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("ip -batch: {e}"))?;
        child
            .stdin
            .take()
            .ok_or("ip -batch: no stdin")?
            .write_all(commands.as_bytes())
            .map_err(|e| format!("ip -batch: {e}"))?;
        let status = child.wait().map_err(|e| format!("ip -batch: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("ip -batch failed: {status}"))
        }
    }

    /// Both namespaces and the [`PORTS`] veth pairs, every end up.
    fn namespaces() -> Result<Namespaces> {
        let namespaces = Namespaces::new("lmstorm")?;
        let (monitored, peer) = (&namespaces.monitored, &namespaces.peer);
        let (mut create, mut set_up) = (String::new(), String::new());
        for port in 0..PORTS {
            let name = port_name(port);
            let near = FIRST_INDEX + 2 * port as u32;
            let far = near + 1;
            create.push_str(&format!(
                "link add name {name} index {near} netns {monitored} type veth \
                 peer name {name} index {far} netns {peer}\n"
            ));
            set_up.push_str(&format!("link set {name} up\n"));
        }
        ip_batch(None, &create)?;
        ip_batch(Some(monitored), &set_up)?;
        ip_batch(Some(peer), &set_up)?;
        Ok(namespaces)
    }

    /// One line of the event stream: when it arrived and what it said.
    struct Arrival {
        at: i128,
        /// `Some((port, up))` for `port_down`/`port_up`.
        port_change: Option<(usize, bool)>,
        /// The daemon's notice that this follower fell behind.
        lagged: bool,
    }

    type Arrivals = Arc<Mutex<Vec<Arrival>>>;

    /// One link change made by the harness.
    #[derive(Clone, Copy)]
    struct Change {
        at: i128,
        port: usize,
        up: bool,
    }

    fn run() -> Result<()> {
        let storm_secs = env_number("STORM_SECS", 30)?;
        let clients = env_number("STORM_CLIENTS", 100)? as usize;
        let client_secs = env_number("CLIENT_SECS", 10)?;
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let namespaces = namespaces()?;
        let socket = dir.path().join("laggmond.sock");
        let log = dir.path().join("laggmond.log");
        let _daemon = start_laggmond(&namespaces.monitored, dir.path(), &socket, &log)?;
        let arrivals: Arrivals = Arc::default();
        follow_events(&socket, arrivals.clone())?;
        // Let the daemon take its first snapshot before anything changes.
        thread::sleep(Duration::from_secs(2));
        let pid = daemon_pid(&socket)?;
        let memory_before = memory(pid)?;

        let far_ends = FarEnds::open(&namespaces.peer)?;
        let storm = Duration::from_secs(storm_secs);
        // The clients run in the middle of the storm's second half.
        let client_delay = storm / 2;
        let crowd = {
            let socket = socket.clone();
            thread::spawn(move || {
                thread::sleep(client_delay);
                crowd(&socket, clients, Duration::from_secs(client_secs))
            })
        };
        let started = wall_ns();
        let mut changes = flap(&far_ends, storm)?;
        let stopped = wall_ns();
        let crowd = crowd
            .join()
            .map_err(|_| "client thread panicked".to_owned())?;
        changes.extend(far_ends.all_up()?);
        thread::sleep(Duration::from_secs(3));

        let memory_after = memory(pid)?;
        let arrivals = std::mem::take(&mut *lock(&arrivals));
        report_storm(&changes, &arrivals, started, stopped, &crowd);
        println!("daemon memory before the storm: {memory_before}");
        println!("daemon memory after the storm:  {memory_after}");
        report_crowd(&crowd, clients);
        report_overruns(&log)?;
        compare_state(&socket, &namespaces.monitored)
    }

    /// The real daemon on every port, warnings and worse to `log`.
    fn start_laggmond(netns: &str, dir: &Path, socket: &Path, log: &Path) -> Result<Guard> {
        let config = dir.join("laggmond.yml");
        // No resync in the run: the final state must come from the event
        // path (and any overrun re-read), not from a periodic dump.
        let mut yaml = format!(
            "socket: {socket}\nresync_interval: 3600s\ngroups:\n",
            socket = socket.display()
        );
        for group in 0..GROUPS {
            let ports: Vec<String> = (0..PORTS_PER_GROUP)
                .map(|slot| port_name(group * PORTS_PER_GROUP + slot))
                .collect();
            // 1000 flaps per 100 ms is far beyond what the harness reaches.
            yaml.push_str(&format!(
                "  g{group:02}:\n    driver: none\n    ports: [{}]\n    preempt: true\n    \
                 preempt_delay: 0s\n    flap_damping: {{ max_flaps: 1000, window: 100ms, hold: 1s }}\n",
                ports.join(", ")
            ));
        }
        fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
        start_daemon(netns, &config, socket, log, Some("warn"))
    }

    /// Follows the event stream and stamps each line as it arrives. A
    /// follower that falls behind is told so and disconnected by the
    /// daemon; this one then follows again at once, as a real client would.
    fn follow_events(socket: &Path, arrivals: Arrivals) -> Result<()> {
        let first = open_follow(socket)?;
        let socket = socket.to_path_buf();
        let ports: HashMap<String, usize> = (0..PORTS).map(|p| (port_name(p), p)).collect();
        thread::spawn(move || {
            let mut stream = Some(first);
            while let Some(current) = stream.take() {
                read_events(current, &ports, &arrivals);
                // The daemon is gone when it no longer accepts.
                stream = open_follow(&socket).ok();
            }
        });
        Ok(())
    }

    fn open_follow(socket: &Path) -> Result<UnixStream> {
        let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(b"{\"cmd\":\"events\",\"follow\":true}\n")
            .map_err(|e| format!("events request: {e}"))?;
        Ok(stream)
    }

    /// Records the lines of one follow connection until it ends.
    fn read_events(stream: UnixStream, ports: &HashMap<String, usize>, arrivals: &Arrivals) {
        for line in BufReader::new(stream).lines().map_while(|line| line.ok()) {
            let at = wall_ns();
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let lagged = event["error"] == "lagged";
            let port = event["port"].as_str().and_then(|name| ports.get(name));
            let port_change = match (port, event["kind"].as_str()) {
                (Some(&port), Some("port_down")) => Some((port, false)),
                (Some(&port), Some("port_up")) => Some((port, true)),
                _ => None,
            };
            // The first line is the reply carrying the history.
            if event.get("kind").is_some() || lagged {
                lock(arrivals).push(Arrival {
                    at,
                    port_change,
                    lagged,
                });
            }
        }
    }

    /// `VmRSS` and `VmHWM` of process `pid`, as `/proc` writes them.
    fn memory(pid: u32) -> Result<String> {
        let text = proc_status(pid)?;
        let field = |name: &str| status_field(&text, name).unwrap_or("?");
        Ok(format!(
            "VmRSS {}, VmHWM {}",
            field("VmRSS:"),
            field("VmHWM:")
        ))
    }

    /// The far ends, changed by ioctl on one socket of their namespace.
    struct FarEnds {
        socket: OwnedFd,
        names: Vec<[libc::c_char; libc::IFNAMSIZ]>,
        up: Mutex<Vec<bool>>,
    }

    impl FarEnds {
        fn open(netns: &str) -> Result<FarEnds> {
            let path = format!("/run/netns/{netns}");
            let file = fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            // setns changes only the calling thread: make the socket in a
            // thread of its own, then the socket keeps its namespace.
            let socket = thread::spawn(move || -> Result<OwnedFd> {
                // SAFETY: plain system calls on a valid descriptor.
                unsafe {
                    if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                        return Err(format!("setns: {}", std::io::Error::last_os_error()));
                    }
                    let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                    if fd < 0 {
                        return Err(format!("socket: {}", std::io::Error::last_os_error()));
                    }
                    Ok(OwnedFd::from_raw_fd(fd))
                }
            })
            .join()
            .map_err(|_| "namespace thread panicked".to_owned())??;
            let names = (0..PORTS)
                .map(|port| {
                    let mut ifname = [0; libc::IFNAMSIZ];
                    let name = port_name(port);
                    for (slot, byte) in ifname.iter_mut().zip(name.bytes()) {
                        *slot = byte as libc::c_char;
                    }
                    ifname
                })
                .collect();
            Ok(FarEnds {
                socket,
                names,
                up: Mutex::new(vec![true; PORTS]),
            })
        }

        /// Sets far end `port` up or down; returns the wall time just before.
        fn set_up(&self, port: usize, up: bool) -> Result<i128> {
            // SAFETY: ifreq is plain data; the ioctls read and write only it.
            let at = unsafe {
                let mut request: libc::ifreq = std::mem::zeroed();
                request.ifr_name = self.names[port];
                if libc::ioctl(self.socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) != 0 {
                    return Err(format!("SIOCGIFFLAGS: {}", std::io::Error::last_os_error()));
                }
                let flags = request.ifr_ifru.ifru_flags;
                let iff_up = libc::IFF_UP as libc::c_short;
                request.ifr_ifru.ifru_flags = if up { flags | iff_up } else { flags & !iff_up };
                let at = wall_ns();
                if libc::ioctl(self.socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) != 0 {
                    return Err(format!("SIOCSIFFLAGS: {}", std::io::Error::last_os_error()));
                }
                at
            };
            lock(&self.up)[port] = up;
            Ok(at)
        }

        /// Flips far end `port`.
        fn toggle(&self, port: usize) -> Result<Change> {
            let up = !lock(&self.up)[port];
            Ok(Change {
                at: self.set_up(port, up)?,
                port,
                up,
            })
        }

        /// Brings every far end that is down back up.
        fn all_up(&self) -> Result<Vec<Change>> {
            let down: Vec<usize> = (0..PORTS).filter(|&p| !lock(&self.up)[p]).collect();
            down.into_iter()
                .map(|port| {
                    Ok(Change {
                        at: self.set_up(port, true)?,
                        port,
                        up: true,
                    })
                })
                .collect()
        }
    }

    /// Flips the far ends round-robin, back to back, for `duration`.
    fn flap(far_ends: &FarEnds, duration: Duration) -> Result<Vec<Change>> {
        let start = Instant::now();
        let mut changes = Vec::new();
        let mut port = 0;
        while start.elapsed() < duration {
            changes.push(far_ends.toggle(port)?);
            port = (port + 1) % PORTS;
        }
        Ok(changes)
    }

    /// What the control clients saw.
    struct Crowd {
        started: i128,
        stopped: i128,
        /// Milliseconds per answered request.
        latencies: Vec<f64>,
        failures: usize,
    }

    /// `clients` threads, each asking for the status in a loop on its own
    /// connection for `duration`.
    fn crowd(socket: &Path, clients: usize, duration: Duration) -> Crowd {
        let started = wall_ns();
        let deadline = Instant::now() + duration;
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let socket = socket.to_path_buf();
                thread::spawn(move || one_client(&socket, deadline))
            })
            .collect();
        let mut crowd = Crowd {
            started,
            stopped: 0,
            latencies: Vec::new(),
            failures: 0,
        };
        for thread in threads {
            match thread.join() {
                Ok((latencies, failures)) => {
                    crowd.latencies.extend(latencies);
                    crowd.failures += failures;
                }
                Err(_) => crowd.failures += 1,
            }
        }
        crowd.stopped = wall_ns();
        crowd
    }

    /// One client's request latencies (ms) and failures until `deadline`.
    fn one_client(socket: &Path, deadline: Instant) -> (Vec<f64>, usize) {
        let mut latencies = Vec::new();
        let Ok(stream) = UnixStream::connect(socket) else {
            return (latencies, 1);
        };
        let Ok(mut writer) = stream.try_clone() else {
            return (latencies, 1);
        };
        let mut reader = BufReader::new(stream);
        let mut reply = String::new();
        while Instant::now() < deadline {
            let sent = Instant::now();
            reply.clear();
            if writer.write_all(b"{\"cmd\":\"status\"}\n").is_err()
                || reader.read_line(&mut reply).is_err()
                || !reply.starts_with("{\"ok\":true")
            {
                return (latencies, 1);
            }
            latencies.push(sent.elapsed().as_secs_f64() * 1e3);
        }
        (latencies, 0)
    }

    /// For each of `changes` (the final ones, each port's last), the delay
    /// (ms) until the first event of the same port and direction after it;
    /// `None` when none came. Unambiguous only for a port's last change.
    fn lags_of_last(changes: &[Change], arrivals: &[Arrival]) -> Vec<Option<f64>> {
        changes
            .iter()
            .map(|change| {
                arrivals
                    .iter()
                    .filter(|a| a.at >= change.at)
                    .find(|a| a.port_change == Some((change.port, change.up)))
                    .map(|a| (a.at - change.at) as f64 / 1e6)
            })
            .collect()
    }

    /// For each `port_down`/`port_up` delivered, the delay (ms) since the
    /// latest change of that port in that direction before it arrived: a
    /// lower bound of the lag, exact when the kernel merged no changes.
    fn lags_since_latest(changes: &[Change], arrivals: &[Arrival]) -> Vec<(i128, f64)> {
        let mut per_port: Vec<Vec<(i128, bool)>> = vec![Vec::new(); PORTS];
        for change in changes {
            per_port[change.port].push((change.at, change.up));
        }
        arrivals
            .iter()
            .filter_map(|arrival| {
                let (port, up) = arrival.port_change?;
                let changes = &per_port[port];
                let before = changes.partition_point(|&(at, _)| at <= arrival.at);
                let (at, _) = changes[..before]
                    .iter()
                    .rev()
                    .find(|&&(_, dir)| dir == up)?;
                Some((*at, (arrival.at - at) as f64 / 1e6))
            })
            .collect()
    }

    fn print_quantiles(label: &str, values: &[Option<f64>]) {
        let mut found: Vec<f64> = values.iter().flatten().copied().collect();
        let missed = values.len() - found.len();
        if found.is_empty() {
            println!("{label:<38} none ({missed} missed)");
            return;
        }
        found.sort_by(f64::total_cmp);
        println!(
            "{label:<38} {:>8.3} {:>8.3} {:>9.3} {:>8} {:>7}",
            quantile(&found, 0.5),
            quantile(&found, 0.99),
            found[found.len() - 1],
            found.len(),
            missed
        );
    }

    fn report_storm(
        changes: &[Change],
        arrivals: &[Arrival],
        started: i128,
        stopped: i128,
        crowd: &Crowd,
    ) {
        let seconds = (stopped - started) as f64 / 1e9;
        let in_storm = |at: i128| at >= started && at < stopped;
        let storm_changes = changes.iter().filter(|c| in_storm(c.at)).count();
        let delivered = arrivals.iter().filter(|a| in_storm(a.at)).count();
        let lagged = arrivals.iter().filter(|a| a.lagged).count();
        println!(
            "\nstorm: {PORTS} ports in {GROUPS} groups, {seconds:.1} s, {storm_changes} link \
             changes ({:.0}/s), then {} far ends brought up",
            storm_changes as f64 / seconds,
            changes.len() - storm_changes
        );
        println!(
            "event stream: {delivered} events during the storm ({:.0}/s), {} in all, \
             {lagged} lagged notices",
            delivered as f64 / seconds,
            arrivals.len()
        );
        let last_change = changes.iter().map(|c| c.at).max().unwrap_or(stopped);
        let last_event = arrivals.iter().map(|a| a.at).max().unwrap_or(stopped);
        println!(
            "last event arrived {:.1} ms after the last change (the backlog at the end)",
            (last_event - last_change) as f64 / 1e6
        );
        let window = |c: &Change| c.at >= crowd.started && c.at < crowd.stopped;
        let before = |c: &Change| c.at < crowd.started;
        let rate = |keep: &dyn Fn(&Change) -> bool, from: i128, to: i128| {
            let count = changes.iter().filter(|c| keep(c)).count();
            count as f64 / ((to - from) as f64 / 1e9)
        };
        println!(
            "link changes/s: {:.0} before the clients, {:.0} while they ran",
            rate(&before, started, crowd.started),
            rate(&window, crowd.started, crowd.stopped.min(stopped))
        );
        println!(
            "{:<38} {:>8} {:>8} {:>9} {:>8} {:>7}",
            "event lag, ms", "p50", "p99", "max", "seen", "missed"
        );
        let settling: Vec<Change> = changes
            .iter()
            .filter(|c| c.at >= stopped)
            .copied()
            .collect();
        print_quantiles(
            "settling: each port's last change",
            &lags_of_last(&settling, arrivals),
        );
        let latest = lags_since_latest(changes, arrivals);
        let pick = |keep: &dyn Fn(i128) -> bool| -> Vec<Option<f64>> {
            latest
                .iter()
                .filter(|(at, _)| keep(*at))
                .map(|(_, lag)| Some(*lag))
                .collect()
        };
        println!("storm: lag since the latest change of that direction (lower bound)");
        print_quantiles("all events", &pick(&|_| true));
        print_quantiles("before the clients", &pick(&|at| at < crowd.started));
        print_quantiles(
            "while the clients ran",
            &pick(&|at| at >= crowd.started && at < crowd.stopped),
        );
        print_quantiles("after the clients", &pick(&|at| at >= crowd.stopped));
    }

    fn report_crowd(crowd: &Crowd, clients: usize) {
        let mut latencies = crowd.latencies.clone();
        latencies.sort_by(f64::total_cmp);
        let seconds = (crowd.stopped - crowd.started) as f64 / 1e9;
        if latencies.is_empty() {
            println!(
                "control socket: no request answered ({} failures)",
                crowd.failures
            );
            return;
        }
        println!(
            "control socket: {clients} clients, {seconds:.1} s, {} status requests ({:.0}/s), \
             {} failures; latency ms p50 {:.3} p99 {:.3} max {:.3}",
            latencies.len(),
            latencies.len() as f64 / seconds,
            crowd.failures,
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }

    /// Counts the daemon's netlink overrun warnings.
    fn report_overruns(log: &Path) -> Result<()> {
        let text = fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let overruns = text.lines().filter(|l| l.contains("overrun")).count();
        let rereads = text
            .lines()
            .filter(|l| l.contains("re-reading all links"))
            .count();
        println!(
            "daemon log: {overruns} overrun warnings, {rereads} \"re-reading all links\" lines, \
             {} lines in all",
            text.lines().count()
        );
        for line in text.lines().take(5) {
            println!("  {line}");
        }
        Ok(())
    }

    /// The daemon's link of every port against the kernel's.
    fn compare_state(socket: &Path, netns: &str) -> Result<()> {
        let reply = request(socket, "{\"cmd\":\"status\"}\n")?;
        let mut daemon: HashMap<String, String> = HashMap::new();
        for group in reply["status"]["groups"].as_array().into_iter().flatten() {
            for port in group["ports"].as_array().into_iter().flatten() {
                let name = port["name"].as_str().unwrap_or_default().to_owned();
                daemon.insert(name, port["link"].as_str().unwrap_or_default().to_owned());
            }
        }
        let output = Command::new("ip")
            .args(["-n", netns, "-j", "link", "show"])
            .output()
            .map_err(|e| format!("ip link: {e}"))?;
        let links: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|e| format!("ip -j link: {e}"))?;
        let mut kernel: HashMap<String, String> = HashMap::new();
        for link in links.as_array().into_iter().flatten() {
            let name = link["ifname"].as_str().unwrap_or_default().to_owned();
            let flags: Vec<&str> = link["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|flag| flag.as_str())
                .collect();
            let up =
                link["operstate"] == "UP" && flags.contains(&"UP") && flags.contains(&"LOWER_UP");
            kernel.insert(name, if up { "up" } else { "down" }.to_owned());
        }
        let mut differences = Vec::new();
        for port in 0..PORTS {
            let name = port_name(port);
            let ours = daemon.get(&name).map_or("absent", String::as_str);
            let real = kernel.get(&name).map_or("absent", String::as_str);
            if ours != real {
                differences.push(format!("{name}: daemon {ours}, kernel {real}"));
            }
        }
        let kernel_up = (0..PORTS)
            .filter(|&p| kernel.get(&port_name(p)).map(String::as_str) == Some("up"))
            .count();
        if differences.is_empty() {
            println!(
                "status after settling: OK, all {PORTS} ports equal the kernel's ({kernel_up} up)"
            );
        } else {
            println!("status after settling: {} differences", differences.len());
            for difference in differences {
                println!("  {difference}");
            }
        }
        Ok(())
    }
}
