//! Path probes against the real daemon: how long after a path is cut the
//! failover comes, against the theoretical `missed × interval`, and what
//! 32 probed ports cost the daemon in CPU and memory. Needs root (network
//! namespaces); prints figures.
//!
//! Method. A namespace holds 32 veth ports; their far ends sit in a Linux
//! bridge in a peer namespace, and the bridge itself holds the probe
//! target 192.0.2.1 (`arp_ignore=1` there, so that only the bridge
//! answers for it). A path is cut by taking a far end out of the bridge,
//! its carrier untouched: only the probes can see it. Each far end has an
//! interface index different from its port's, as in the other benchmarks.
//!
//! Detection: one group of two ports probed with `missed: 3` at 100 ms,
//! then at 1 s. The active port's path is cut (one `ip -batch` already
//! running in the peer namespace, the wall clock read just before the
//! write), the `failover` with cause `path_down` awaited on the event
//! stream, the path restored and the failback (`preempt_delay: 0s`)
//! awaited. Before each cut the harness waits half an interval plus a
//! random part of one, so that cuts land at random points of the probe
//! interval: a cut just after a good reply is seen only when `missed`
//! whole intervals after the current one have failed, one just before the
//! interval ends after `missed` intervals, hence the range
//! `missed × interval` to `(missed + 1) × interval`.
//!
//! CPU: every port probed at 100 ms with one target, every path up and
//! nothing else happening; the daemon's CPU time over a window (from
//! `/proc/PID/stat` and, finer, the threads' `schedstat`), its wake-ups
//! (context switches), the probes sent and replies counted (from its
//! metrics) and its memory. Once as 16 groups of 2 ports, once as one
//! group of 32 (the most a group may have).
//!
//! Run as root: `cargo bench --bench probe` (`PROBE_CUTS_FAST`,
//! `PROBE_CUTS_SLOW` change the 20 cuts at 100 ms and 5 at 1 s,
//! `PROBE_CPU_SECS` the 10 s window).

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

/// Network namespaces, veth pairs and Linux bridges are Linux's, and so
/// is the prober.
#[cfg(not(target_os = "linux"))]
fn main() {
    println!("skipped: the probe benchmark needs Linux network namespaces");
}

#[cfg(target_os = "linux")]
mod support;

#[cfg(target_os = "linux")]
mod linux {
    use super::support::{
        daemon_pid, env_number, proc_status, quantile, request, sh, start_daemon, status_field,
        wall_ns, Guard, Namespaces, Result,
    };
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::{ChildStdin, Command, Stdio};
    use std::thread;
    use std::time::{Duration, Instant};

    /// The probe target, on the bridge in the peer namespace.
    const TARGET: &str = "192.0.2.1";
    /// Probed ports in the CPU runs; the detection runs use the first two.
    const PORTS: usize = 32;
    /// Failed intervals before a path is down, in every run.
    const MISSED: u64 = 3;
    /// The bridge holding the far ends and the target.
    const BRIDGE: &str = "br0";

    fn port(index: usize) -> String {
        format!("lmprobe{index}")
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        // `cargo test --all-targets` runs benchmarks without `--bench`
        // only to see that they start; the measurement is for `cargo bench`.
        if !args.iter().any(|arg| arg == "--bench") {
            println!("probe: skipped; run it with `cargo bench --bench probe`");
            return;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("probe: skipped, needs root for network namespaces");
            return;
        }
        if let Err(error) = run() {
            eprintln!("probe: {error}");
            std::process::exit(1);
        }
    }

    fn run() -> Result<()> {
        let fast_cuts = env_number("PROBE_CUTS_FAST", 20)? as usize;
        let slow_cuts = env_number("PROBE_CUTS_SLOW", 5)? as usize;
        let cpu_secs = env_number("PROBE_CPU_SECS", 10)?;
        let namespaces = bridged_lab()?;
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;

        let mut rows = Vec::new();
        for (interval_ms, cuts) in [(100, fast_cuts), (1000, slow_cuts)] {
            if cuts > 0 {
                rows.push(detection(&namespaces, dir.path(), interval_ms, cuts)?);
            }
        }
        let mut footprints = Vec::new();
        for groups in [16, 1] {
            footprints.push(footprint(&namespaces, dir.path(), groups, cpu_secs)?);
        }
        report(&rows, &footprints, cpu_secs);
        Ok(())
    }

    /// The namespaces with [`PORTS`] ports whose far ends are in a bridge
    /// holding [`TARGET`]; everything goes with the namespaces on drop.
    fn bridged_lab() -> Result<Namespaces> {
        let namespaces = Namespaces::new("lmprobe")?;
        let peer = namespaces.peer.as_str();
        // arp_ignore=1: only the bridge answers for its address, not the
        // far ends for an address they do not have.
        sh(&[
            "ip",
            "netns",
            "exec",
            peer,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore",
        ])?;
        sh(&["ip", "-n", peer, "link", "add", BRIDGE, "type", "bridge"])?;
        let address = format!("{TARGET}/24");
        sh(&["ip", "-n", peer, "addr", "add", &address, "dev", BRIDGE])?;
        sh(&["ip", "-n", peer, "link", "set", BRIDGE, "up"])?;
        for index in 0..PORTS {
            let name = port(index);
            namespaces.add_port(&name, 7201 + 2 * index as u32)?;
            sh(&["ip", "-n", peer, "link", "set", &name, "master", BRIDGE])?;
        }
        Ok(namespaces)
    }

    /// Starts the daemon with `groups` in its config, its files named
    /// after `name` in `dir`.
    fn daemon(
        namespaces: &Namespaces,
        dir: &Path,
        name: &str,
        groups: &str,
    ) -> Result<(Guard, PathBuf)> {
        let socket = dir.join(format!("{name}.sock"));
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(
            &config,
            format!("socket: {}\ngroups:\n{groups}", socket.display()),
        )
        .map_err(|e| format!("config: {e}"))?;
        let guard = start_daemon(
            &namespaces.monitored,
            &config,
            &socket,
            &dir.join(format!("{name}.log")),
            Some("warn"),
        )?;
        Ok((guard, socket))
    }

    /// One group's config: `ports` probed every `interval_ms`, failback
    /// at once, damping out of reach (a path's changes count as flaps).
    fn group(name: &str, ports: &[String], interval_ms: u64) -> String {
        format!(
            "  {name}:\n    driver: none\n    ports: [{}]\n    preempt_delay: 0s\n    \
             flap_damping: {{max_flaps: 1000, window: 1s, hold: 1s}}\n    \
             probe:\n      arp: [{TARGET}]\n      interval: {interval_ms}ms\n      missed: {MISSED}\n",
            ports.join(", ")
        )
    }

    /// Waits until every port of every group has its path up and each
    /// group's first port is active.
    fn settled(socket: &Path, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let reply = request(socket, "{\"cmd\":\"status\"}\n")?;
            let groups = reply["status"]["groups"].as_array().cloned();
            let ready = groups.as_deref().is_some_and(|groups| {
                groups.iter().all(|group| {
                    group["ports"].as_array().is_some_and(|ports| {
                        ports.iter().all(|p| p["path"] == "up")
                            && ports.first().is_some_and(|p| group["active"] == p["name"])
                    })
                })
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("paths not all up in {within:?}: {reply}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// An `ip -batch` reading commands for the peer namespace, so that a
    /// cut costs a write, not starting a process.
    struct FarEnds {
        _ip: Guard,
        commands: ChildStdin,
    }

    impl FarEnds {
        fn open(peer: &str) -> Result<FarEnds> {
            let mut child = Command::new("ip")
                .args(["-n", peer, "-batch", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("ip -batch: {e}"))?;
            let commands = child.stdin.take().ok_or("ip -batch: no stdin")?;
            Ok(FarEnds {
                _ip: Guard(child),
                commands,
            })
        }

        /// Sends `line`; returns the wall time just before.
        fn send(&mut self, line: &str) -> Result<i128> {
            let at = wall_ns();
            self.commands
                .write_all(line.as_bytes())
                .and_then(|()| self.commands.flush())
                .map_err(|e| format!("ip -batch: {e}"))?;
            Ok(at)
        }
    }

    /// A follower of live events only.
    fn follow(socket: &Path) -> Result<BufReader<UnixStream>> {
        let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(b"{\"cmd\":\"events\",\"n\":0,\"follow\":true}\n")
            .map_err(|e| format!("follow: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("timeout: {e}"))?;
        let mut reader = BufReader::new(stream);
        let mut history = String::new();
        reader
            .read_line(&mut history)
            .map_err(|e| format!("history: {e}"))?;
        Ok(reader)
    }

    /// The next failover to `to` with `cause`, and the wall time the
    /// follower read it.
    fn failover(
        follower: &mut BufReader<UnixStream>,
        to: &str,
        cause: &str,
    ) -> Result<(serde_json::Value, i128)> {
        loop {
            let mut line = String::new();
            match follower.read_line(&mut line) {
                Ok(0) => return Err("the follower was closed".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("no failover to {to} in 30 s: {e}")),
            }
            let read = wall_ns();
            let event: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
            if event["ok"] == false {
                return Err(format!("the follower was dropped: {line}"));
            }
            if event["kind"] == "failover" && event["to"] == to {
                if event["cause"] != cause {
                    return Err(format!("failover for another cause: {line}"));
                }
                return Ok((event, read));
            }
        }
    }

    /// The event's own time (milliseconds, truncated) in wall ns.
    fn event_ns(event: &serde_json::Value) -> Result<i128> {
        let time = event["time"].as_str().ok_or("event without a time")?;
        let at = humantime::parse_rfc3339(time).map_err(|e| format!("{time}: {e}"))?;
        at.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .map_err(|e| format!("{time}: {e}"))
    }

    /// Detection at one interval: `cuts` pairs of latencies in ms, from the
    /// cut to the failover's own time and to the follower reading it.
    struct Detection {
        interval_ms: u64,
        stamped: Vec<f64>,
        read: Vec<f64>,
    }

    fn detection(
        namespaces: &Namespaces,
        dir: &Path,
        interval_ms: u64,
        cuts: usize,
    ) -> Result<Detection> {
        let (primary, backup) = (port(0), port(1));
        let config = group("uplink", &[primary.clone(), backup.clone()], interval_ms);
        let name = format!("detect{interval_ms}");
        let (_daemon, socket) = daemon(namespaces, dir, &name, &config)?;
        settled(&socket, Duration::from_secs(10))?;
        let mut follower = follow(&socket)?;
        let mut far = FarEnds::open(&namespaces.peer)?;
        let interval = Duration::from_millis(interval_ms);
        let mut random = (wall_ns() as u64) | 1;
        let mut detection = Detection {
            interval_ms,
            stamped: Vec::with_capacity(cuts),
            read: Vec::with_capacity(cuts),
        };
        for _ in 0..cuts {
            // xorshift64: the cut only needs to land at a random point of
            // the probe interval.
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let phase = interval.mul_f64((random % 1000) as f64 / 1000.0);
            thread::sleep(interval / 2 + phase);
            let cut = far.send(&format!("link set {primary} nomaster\n"))?;
            let (event, read) = failover(&mut follower, &backup, "path_down")?;
            detection
                .stamped
                .push((event_ns(&event)? - cut) as f64 / 1e6);
            detection.read.push((read - cut) as f64 / 1e6);
            far.send(&format!("link set {primary} master {BRIDGE}\n"))?;
            failover(&mut follower, &primary, "preempt")?;
        }
        Ok(detection)
    }

    /// The daemon's footprint over a window with every path up.
    struct Footprint {
        groups: usize,
        /// utime and stime, in clock ticks converted to ms.
        user_ms: f64,
        system_ms: f64,
        /// The threads' run time from `schedstat`, in ms.
        sched_ms: f64,
        switches: u64,
        sent: u64,
        replies: u64,
        rss_kib: u64,
        hwm_kib: u64,
        threads: String,
        /// Path changes during the window: 0 when the idle state held.
        path_events: usize,
    }

    fn footprint(
        namespaces: &Namespaces,
        dir: &Path,
        groups: usize,
        secs: u64,
    ) -> Result<Footprint> {
        let names: Vec<String> = (0..PORTS).map(port).collect();
        let per_group = PORTS / groups;
        let config: String = names
            .chunks(per_group)
            .enumerate()
            .map(|(index, ports)| group(&format!("g{index}"), ports, 100))
            .collect();
        let name = format!("cpu{groups}");
        let (_daemon, socket) = daemon(namespaces, dir, &name, &config)?;
        settled(&socket, Duration::from_secs(10))?;
        // Past the start: the sockets are open, the first verdicts given.
        thread::sleep(Duration::from_secs(2));
        let pid = daemon_pid(&socket)?;
        let follower = follow(&socket)?;

        let before = Sample::take(pid, &socket)?;
        thread::sleep(Duration::from_secs(secs));
        let after = Sample::take(pid, &socket)?;

        // Whatever the follower got meanwhile is a change of some path.
        follower
            .get_ref()
            .set_nonblocking(true)
            .map_err(|e| format!("follower: {e}"))?;
        let path_events = follower
            .lines()
            .map_while(|line| line.ok())
            .filter(|line| line.contains("\"kind\":\"path_"))
            .count();
        let status = proc_status(pid)?;
        let kib = |field| {
            status_field(&status, field)
                .and_then(|value| value.trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("no {field} for {pid}"))
        };
        Ok(Footprint {
            groups,
            user_ms: (after.user_ticks - before.user_ticks) as f64 * 1000.0 / clock_ticks(),
            system_ms: (after.system_ticks - before.system_ticks) as f64 * 1000.0 / clock_ticks(),
            sched_ms: (after.sched_ns - before.sched_ns) as f64 / 1e6,
            switches: after.switches - before.switches,
            sent: after.sent - before.sent,
            replies: after.replies - before.replies,
            rss_kib: kib("VmRSS:")?,
            hwm_kib: kib("VmHWM:")?,
            threads: status_field(&status, "Threads:").unwrap_or("?").to_owned(),
            path_events,
        })
    }

    /// Clock ticks per second, the unit of `/proc/PID/stat`'s times.
    fn clock_ticks() -> f64 {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 {
            ticks as f64
        } else {
            100.0
        }
    }

    /// The daemon's counters at one moment.
    struct Sample {
        user_ticks: u64,
        system_ticks: u64,
        sched_ns: u64,
        switches: u64,
        sent: u64,
        replies: u64,
    }

    impl Sample {
        fn take(pid: u32, socket: &Path) -> Result<Sample> {
            let stat_path = format!("/proc/{pid}/stat");
            let stat =
                std::fs::read_to_string(&stat_path).map_err(|e| format!("{stat_path}: {e}"))?;
            // After the command name in parentheses: state is field 3,
            // utime and stime are fields 14 and 15.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let field = |n: usize| -> Result<u64> {
                fields
                    .get(n - 3)
                    .and_then(|value| value.parse().ok())
                    .ok_or_else(|| format!("{stat_path}: no field {n}"))
            };
            let (mut sched_ns, mut switches) = (0, 0);
            let tasks = format!("/proc/{pid}/task");
            for task in std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e}"))? {
                let task = task.map_err(|e| format!("{tasks}: {e}"))?.path();
                let schedstat = std::fs::read_to_string(task.join("schedstat"))
                    .map_err(|e| format!("{}: {e}", task.display()))?;
                sched_ns += schedstat
                    .split_whitespace()
                    .next()
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .unwrap_or(0);
                let status = std::fs::read_to_string(task.join("status"))
                    .map_err(|e| format!("{}: {e}", task.display()))?;
                for field in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
                    switches += status_field(&status, field)
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
            let reply = request(socket, "{\"cmd\":\"metrics\"}\n")?;
            let metrics = reply["metrics"].as_str().unwrap_or_default();
            let counter = |name: &str| -> Result<u64> {
                metrics
                    .lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                    .and_then(|value| value.trim().parse().ok())
                    .ok_or_else(|| format!("no {name} in the metrics"))
            };
            Ok(Sample {
                user_ticks: field(14)?,
                system_ticks: field(15)?,
                sched_ns,
                switches,
                sent: counter("laggmond_probes_sent_total")?,
                replies: counter("laggmond_probe_replies_total")?,
            })
        }
    }

    fn report(rows: &[Detection], footprints: &[Footprint], secs: u64) {
        println!("\npath cut -> failover (cause path_down), missed = {MISSED}, ms");
        println!(
            "{:<34} {:>7} {:>7} {:>8} {:>7} {:>7} {:>12}",
            "interval, clock", "cuts", "min", "median", "p90", "max", "theory"
        );
        for row in rows {
            let low = MISSED * row.interval_ms;
            let high = (MISSED + 1) * row.interval_ms;
            for (clock, values) in [
                ("failover's own time", &row.stamped),
                ("read by a follower", &row.read),
            ] {
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                println!(
                    "{:<34} {:>7} {:>7.1} {:>8.1} {:>7.1} {:>7.1} {:>12}",
                    format!("{} ms, {clock}", row.interval_ms),
                    sorted.len(),
                    sorted[0],
                    quantile(&sorted, 0.5),
                    quantile(&sorted, 0.9),
                    sorted[sorted.len() - 1],
                    format!("{low} to {high}"),
                );
            }
        }
        println!(
            "\n{PORTS} probed ports at 100 ms, 1 target, every path up, over {secs} s \
             (one core = 1000 ms/s)"
        );
        println!(
            "{:<10} {:>11} {:>11} {:>15} {:>8} {:>12} {:>10} {:>12} {:>9} {:>9} {:>7} {:>11}",
            "groups",
            "utime ms/s",
            "stime ms/s",
            "schedstat ms/s",
            "% core",
            "switches/s",
            "sent/s",
            "replies/s",
            "VmRSS kB",
            "VmHWM kB",
            "threads",
            "path events"
        );
        for f in footprints {
            let per_second = |n: f64| n / secs as f64;
            println!(
                "{:<10} {:>11.1} {:>11.1} {:>15.2} {:>8.2} {:>12.1} {:>10.1} {:>12.1} {:>9} {:>9} {:>7} {:>11}",
                format!("{} x {}", f.groups, PORTS / f.groups),
                per_second(f.user_ms),
                per_second(f.system_ms),
                per_second(f.sched_ms),
                per_second(f.sched_ms) / 10.0,
                per_second(f.switches as f64),
                per_second(f.sent as f64),
                per_second(f.replies as f64),
                f.rss_kib,
                f.hwm_kib,
                f.threads,
                f.path_events
            );
        }
    }
}
