//! Detection latency of a link change, side by side: the kernel floor
//! (`ip -ts monitor link`), laggmond's event stream, a laggmond hook, and
//! netplug's script. Needs root (network namespaces); prints figures.
//!
//! Method. A namespace holds the monitored veth port `lmport0` (and a
//! steady second port `lmport1`); their far ends live in a peer namespace.
//! Each monitored port has an interface index different from its far
//! end's, so the kernel reports its carrier changes at once instead of
//! batching them in linkwatch (up to a second). In the monitored
//! namespace run: the real laggmond (`driver: none`, one group of both
//! ports, a hook on `port_down`/`port_up`), `ip -ts monitor link`, and
//! `netplugd` on the same `lmport0` when it is installed. The harness
//! follows laggmond's event stream on the control socket itself and
//! stamps each JSON line as it arrives. The hook and netplug's script are
//! this same program (see `record_and_exit`): its first act is to read
//! the clock. The far end is flapped by `SIOCSIFFLAGS` from a socket of
//! the peer namespace, the wall time read just before the call, with
//! random 50-500 ms gaps. Every clock is `CLOCK_REALTIME`.
//!
//! Run as root: `cargo bench --bench latency` (`LATENCY_FLAPS=N` changes
//! the number of link changes, 200 by default).

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

/// Network namespaces, veth pairs and netplug are Linux's.
#[cfg(not(target_os = "linux"))]
fn main() {
    println!("skipped: the latency benchmark needs Linux network namespaces");
}

#[cfg(target_os = "linux")]
mod support;

#[cfg(target_os = "linux")]
mod linux {
    use super::support::{lock, quantile, start_daemon, wall_ns, Guard, Namespaces, Result};
    use std::collections::HashMap;
    use std::fs;
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::symlink;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;

    /// The monitored port that is flapped.
    const PORT: &str = "lmport0";
    /// The steady second port of the group.
    const STEADY: &str = "lmport1";
    /// Name of the link through which netplug runs this program.
    const NETPLUG_SCRIPT: &str = "netplug-script";
    /// Where the hook and netplug's script record their start times.
    const HOOK_TIMES: &str = "hook.times";
    const NETPLUG_TIMES: &str = "netplug.times";

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if let Some(code) = record_and_exit(&args) {
            std::process::exit(code);
        }
        // `cargo test --all-targets` runs benchmarks without `--bench`
        // only to see that they start; the measurement is for `cargo bench`.
        if !args.iter().any(|arg| arg == "--bench") {
            println!("latency: skipped; run it with `cargo bench --bench latency`");
            return;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("latency: skipped, needs root for network namespaces");
            return;
        }
        if let Err(error) = run() {
            eprintln!("latency: {error}");
            std::process::exit(1);
        }
    }

    /// The hook and netplug's script: when this program runs as one of them,
    /// appends `<wall ns> <what> <port>` to its file and gives the exit code.
    fn record_and_exit(args: &[String]) -> Option<i32> {
        let now = wall_ns();
        let argv0 = Path::new(args.first()?);
        let (file, what, port) = if argv0.file_name()? == NETPLUG_SCRIPT {
            // netplug runs `script IFACE in|out|probe`.
            let dir = argv0.parent()?;
            let port = args.get(1)?.clone();
            (dir.join(NETPLUG_TIMES), args.get(2)?.clone(), port)
        } else if args.get(1).map(String::as_str) == Some("hook") {
            let event = std::env::var("LAGGMOND_EVENT").unwrap_or_default();
            let port = std::env::var("LAGGMOND_PORT").unwrap_or_default();
            (PathBuf::from(args.get(2)?), event, port)
        } else {
            return None;
        };
        let line = format!("{now} {what} {port}\n");
        let written = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        Some(if written.is_ok() { 0 } else { 1 })
    }

    /// The two namespaces with the monitored port and a steady second one.
    fn namespaces() -> Result<Namespaces> {
        let namespaces = Namespaces::new("lmbench")?;
        namespaces.add_port(PORT, 7001)?;
        namespaces.add_port(STEADY, 7003)?;
        Ok(namespaces)
    }

    /// Timestamps (wall ns) of one observer, each with whether it saw the
    /// port go up.
    type Seen = Arc<Mutex<Vec<(i128, bool)>>>;

    fn run() -> Result<()> {
        let flaps: usize = match std::env::var("LATENCY_FLAPS") {
            Ok(value) => value
                .parse()
                .map_err(|_| format!("LATENCY_FLAPS={value}: not a number"))?,
            Err(_) => 200,
        };
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let namespaces = namespaces()?;

        let ip_seen: Seen = Arc::default();
        let _monitor = start_ip_monitor(&namespaces.monitored, ip_seen.clone())?;
        let _netplug = start_netplug(&namespaces.monitored, dir.path(), &exe)?;
        let socket = dir.path().join("laggmond.sock");
        let _daemon = start_laggmond(&namespaces.monitored, dir.path(), &exe, &socket)?;
        let stream_seen: Seen = Arc::default();
        follow_events(&socket, stream_seen.clone())?;
        // Let every observer settle before the first change.
        thread::sleep(Duration::from_secs(2));
        let before = [&ip_seen, &stream_seen].map(|seen| lock(seen).len());

        let far_end = FarEnd::open(&namespaces.peer, PORT)?;
        let changes = flap(&far_end, flaps)?;
        thread::sleep(Duration::from_secs(2));

        let ip = lock(&ip_seen)[before[0]..].to_vec();
        let stream = lock(&stream_seen)[before[1]..].to_vec();
        let hooks = read_times(&dir.path().join(HOOK_TIMES), "port_up", "port_down")?;
        let netplug = read_times(&dir.path().join(NETPLUG_TIMES), "in", "out")?;
        report(&changes, &ip, &stream, &hooks, netplug.as_deref());
        Ok(())
    }

    /// `ip -ts monitor link` in `netns`; records the time ip printed for each
    /// line about [`PORT`].
    fn start_ip_monitor(netns: &str, seen: Seen) -> Result<Guard> {
        let mut child = Command::new("ip")
            .args(["-n", netns, "-ts", "monitor", "link"])
            .env("TZ", "UTC")
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("ip monitor: {e}"))?;
        let stdout = child.stdout.take().ok_or("ip monitor: no stdout")?;
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|line| line.ok()) {
                if let Some(sample) = parse_monitor_line(&line) {
                    lock(&seen).push(sample);
                }
            }
        });
        Ok(Guard(child))
    }

    /// `[2026-01-02T03:04:05.678901] 7001: lmport0@lmport0: <FLAGS> ...`: the
    /// time and whether the port has carrier.
    fn parse_monitor_line(line: &str) -> Option<(i128, bool)> {
        let (stamp, rest) = line.strip_prefix('[')?.split_once("] ")?;
        let (_, rest) = rest.split_once(": ")?;
        let (name, rest) = rest.split_once(": ")?;
        if name.split('@').next()? != PORT {
            return None;
        }
        let flags = rest.strip_prefix('<')?.split('>').next()?;
        let up = !flags.split(',').any(|flag| flag == "NO-CARRIER");
        Some((parse_utc(stamp)?, up))
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC) in ns since the epoch.
    fn parse_utc(stamp: &str) -> Option<i128> {
        let (date, time) = stamp.split_once('T')?;
        let mut date = date.split('-').map(|part| part.parse::<i64>().ok());
        let (y, m, d) = (date.next()??, date.next()??, date.next()??);
        let (hms, fraction) = time.split_once('.')?;
        let mut hms = hms.split(':').map(|part| part.parse::<i64>().ok());
        let (hh, mm, ss) = (hms.next()??, hms.next()??, hms.next()??);
        let digits = fraction.len().min(9);
        let nanos = fraction[..digits].parse::<i64>().ok()? * 10i64.pow((9 - digits) as u32);
        let seconds = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
        Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// netplugd in the foreground on [`PORT`], its script a link to this
    /// program; `None` when netplug is not installed.
    fn start_netplug(netns: &str, dir: &Path, exe: &Path) -> Result<Option<Guard>> {
        if Command::new("netplugd").arg("-h").output().is_err() {
            println!("netplugd not found: netplug column skipped");
            return Ok(None);
        }
        let script = dir.join(NETPLUG_SCRIPT);
        symlink(exe, &script).map_err(|e| format!("{}: {e}", script.display()))?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "netplugd",
                "-F",
                "-P",
                "-c",
                "/dev/null",
            ])
            .args(["-i", PORT, "-s"])
            .arg(&script)
            .arg("-p")
            .arg(dir.join("netplugd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("netplugd: {e}"))?;
        Ok(Some(Guard(child)))
    }

    /// The real daemon on both ports; its hook is this program.
    fn start_laggmond(netns: &str, dir: &Path, exe: &Path, socket: &Path) -> Result<Guard> {
        let config = dir.join("laggmond.yml");
        let yaml = format!(
            "socket: {socket}\nresync_interval: 60s\ngroups:\n  bench:\n    driver: none\n    \
             ports: [{PORT}, {STEADY}]\n    preempt: true\n    preempt_delay: 0s\n    \
             flap_damping: {{ max_flaps: 1000, window: 60s, hold: 1s }}\n\
             hooks:\n  - on: [port_down, port_up]\n    run: [{exe}, hook, {times}]\n    timeout: 5s\n",
            socket = socket.display(),
            exe = exe.display(),
            times = dir.join(HOOK_TIMES).display(),
        );
        fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
        start_daemon(netns, &config, socket, &dir.join("laggmond.log"), None)
    }

    /// Follows the event stream on the control socket and stamps each
    /// `port_down`/`port_up` of [`PORT`] when its line arrives.
    fn follow_events(socket: &Path, seen: Seen) -> Result<()> {
        let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(b"{\"cmd\":\"events\",\"follow\":true}\n")
            .map_err(|e| format!("events request: {e}"))?;
        thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(|line| line.ok()) {
                let now = wall_ns();
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if event["port"] != PORT {
                    continue;
                }
                match event["kind"].as_str() {
                    Some("port_down") => lock(&seen).push((now, false)),
                    Some("port_up") => lock(&seen).push((now, true)),
                    _ => {}
                }
            }
        });
        Ok(())
    }

    /// The far end of a port, changed by ioctl on a socket of its namespace.
    struct FarEnd {
        socket: OwnedFd,
        name: [libc::c_char; libc::IFNAMSIZ],
    }

    impl FarEnd {
        fn open(netns: &str, name: &str) -> Result<FarEnd> {
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
            let mut ifname = [0; libc::IFNAMSIZ];
            for (slot, byte) in ifname.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
                *slot = byte as libc::c_char;
            }
            Ok(FarEnd {
                socket,
                name: ifname,
            })
        }

        /// Sets the far end up or down; returns the wall time just before.
        fn set_up(&self, up: bool) -> Result<i128> {
            // SAFETY: ifreq is plain data; the ioctls read and write only it.
            unsafe {
                let mut request: libc::ifreq = std::mem::zeroed();
                request.ifr_name = self.name;
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
                Ok(at)
            }
        }
    }

    /// `count` link changes, down first, with random 50-500 ms gaps; returns
    /// each change's time and whether it brought the link up.
    fn flap(far_end: &FarEnd, count: usize) -> Result<Vec<(i128, bool)>> {
        let mut random = (wall_ns() as u64) | 1;
        let mut changes = Vec::with_capacity(count);
        for index in 0..count {
            // xorshift64: the gaps only need to be irregular.
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            thread::sleep(Duration::from_millis(50 + random % 451));
            let up = index % 2 == 1;
            changes.push((far_end.set_up(up)?, up));
        }
        Ok(changes)
    }

    /// `<ns> <what> <port>` lines of [`PORT`]; `up`/`down` name the two
    /// directions. A missing file is no observation (`None`).
    fn read_times(file: &Path, up: &str, down: &str) -> Result<Option<Vec<(i128, bool)>>> {
        let Ok(text) = fs::read_to_string(file) else {
            return Ok(None);
        };
        let mut seen = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [at, what, port] = fields[..] else {
                return Err(format!("{}: bad line {line:?}", file.display()));
            };
            let at: i128 = at.parse().map_err(|_| format!("bad time in {line:?}"))?;
            if port == PORT && (what == up || what == down) {
                seen.push((at, what == up));
            }
        }
        seen.sort();
        Ok(Some(seen))
    }

    /// For each change, the delay (ms) until the first observation of the
    /// same direction after it and before the next change; `None` if missed.
    fn latencies(changes: &[(i128, bool)], seen: &[(i128, bool)]) -> Vec<Option<f64>> {
        changes
            .iter()
            .enumerate()
            .map(|(index, &(at, up))| {
                let until = changes.get(index + 1).map_or(i128::MAX, |next| next.0);
                seen.iter()
                    .find(|&&(time, dir)| dir == up && time >= at && time < until)
                    .map(|&(time, _)| (time - at) as f64 / 1e6)
            })
            .collect()
    }

    fn print_row(label: &str, delays: &[Option<f64>]) {
        let mut found: Vec<f64> = delays.iter().flatten().copied().collect();
        let missed = delays.len() - found.len();
        if found.is_empty() {
            println!("{label:<34} no observation ({missed} missed)");
            return;
        }
        found.sort_by(f64::total_cmp);
        println!(
            "{label:<34} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6} {:>6}",
            quantile(&found, 0.5),
            quantile(&found, 0.9),
            quantile(&found, 0.99),
            found[found.len() - 1],
            found.len(),
            missed
        );
    }

    fn report(
        changes: &[(i128, bool)],
        ip: &[(i128, bool)],
        stream: &[(i128, bool)],
        hooks: &Option<Vec<(i128, bool)>>,
        netplug: Option<&[(i128, bool)]>,
    ) {
        let columns: Vec<(&str, Vec<Option<f64>>)> = vec![
            ("(a) ip -ts monitor link", latencies(changes, ip)),
            ("(b) laggmond event stream", latencies(changes, stream)),
            (
                "(c) laggmond hook started",
                latencies(changes, hooks.as_deref().unwrap_or(&[])),
            ),
            (
                "(d) netplug script started",
                latencies(changes, netplug.unwrap_or(&[])),
            ),
        ];
        println!(
            "\n{} link changes of {PORT} (index differs from its peer's: no linkwatch batching)",
            changes.len()
        );
        println!(
            "{:<34} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
            "latency from the change, ms", "median", "p90", "p99", "max", "seen", "missed"
        );
        let by_name: HashMap<&str, &Vec<Option<f64>>> = columns
            .iter()
            .map(|(name, delays)| (*name, delays))
            .collect();
        for (name, delays) in &columns {
            print_row(name, delays);
        }
        // Paired: how much later than the kernel floor each observer was.
        if let Some(floor) = by_name.get("(a) ip -ts monitor link") {
            for (name, delays) in columns.iter().skip(1) {
                let behind: Vec<Option<f64>> = delays
                    .iter()
                    .zip(floor.iter())
                    .map(|(delay, floor)| Some((*delay)? - (*floor)?))
                    .collect();
                print_row(&format!("{} - (a)", &name[..3]), &behind);
            }
        }
    }
}
