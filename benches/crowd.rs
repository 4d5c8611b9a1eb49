//! A full event history and 100 control clients that ask for it and never
//! read, against the real daemon. Needs root (network namespaces); prints
//! figures.
//!
//! Method. A namespace holds two veth ports in one group (`driver: none`,
//! `history: 100000`); their far ends live in a peer namespace, each with
//! an interface index different from its port's, so the kernel reports
//! carrier changes at once. The primary's far end is flapped by one
//! `ip -batch` run until the history is full, then the daemon is left to
//! settle. A follower of live events stamps each line as it arrives. A
//! carrier loss on the primary is timed without clients first; then 100
//! clients connect, each sends `{"cmd":"events"}` and never reads, and
//! another carrier loss is timed while they are connected. Each carrier
//! change is written to an `ip -batch` already running in the peer
//! namespace, the wall clock read just before the write; its lag is until
//! the follower reads the `failover` event. The daemon's `VmRSS` is sampled
//! every 10 ms meanwhile; `VmHWM` is its peak over the whole run, the
//! filling included.
//!
//! Run as root: `cargo bench --bench crowd` (`CROWD_CLIENTS`,
//! `CROWD_HISTORY` change the 100 clients and 100 000 events).

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

/// Network namespaces and veth pairs are Linux's.
#[cfg(not(target_os = "linux"))]
fn main() {
    println!("skipped: the crowd benchmark needs Linux network namespaces");
}

#[cfg(target_os = "linux")]
mod support;

#[cfg(target_os = "linux")]
mod linux {
    use super::support::{
        daemon_pid, env_number, proc_status, request, start_daemon, status_field, wall_ns, Guard,
        Namespaces, Result,
    };
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::process::{ChildStdin, Command, Stdio};
    use std::thread;
    use std::time::{Duration, Instant};

    const PRIMARY: &str = "lmcrowd0";
    const BACKUP: &str = "lmcrowd1";

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        // `cargo test --all-targets` runs benchmarks without `--bench`
        // only to see that they start; the measurement is for `cargo bench`.
        if !args.iter().any(|arg| arg == "--bench") {
            println!("crowd: skipped; run it with `cargo bench --bench crowd`");
            return;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("crowd: skipped, needs root for network namespaces");
            return;
        }
        if let Err(error) = run() {
            eprintln!("crowd: {error}");
            std::process::exit(1);
        }
    }

    /// An `ip -batch` reading commands for the peer namespace.
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

        /// Sends `script`; returns the wall time just before.
        fn send(&mut self, script: &str) -> Result<i128> {
            let at = wall_ns();
            self.commands
                .write_all(script.as_bytes())
                .and_then(|()| self.commands.flush())
                .map_err(|e| format!("ip -batch: {e}"))?;
            Ok(at)
        }
    }

    fn newest_seq(socket: &Path) -> Result<u64> {
        let reply = request(socket, "{\"cmd\":\"events\",\"n\":1}\n")?;
        Ok(reply["events"][0]["seq"].as_u64().unwrap_or(0))
    }

    /// A `VmRSS:` or `VmHWM:` figure of `/proc/PID/status`, in KiB.
    fn memory_kib(pid: u32, field: &str) -> Result<u64> {
        status_field(&proc_status(pid)?, field)
            .and_then(|value| value.trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no {field} for {pid}"))
    }

    /// Flaps the primary until `history` events were published, then waits
    /// for the daemon to settle and the primary to carry traffic again.
    fn fill(far: &mut FarEnds, socket: &Path, history: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        let flap = format!("link set {PRIMARY} down\nlink set {PRIMARY} up\n").repeat(500);
        while newest_seq(socket)? < history {
            if Instant::now() > deadline {
                return Err("the history did not fill in 300 s".into());
            }
            far.send(&flap)?;
            thread::sleep(Duration::from_millis(50));
        }
        let mut last = 0;
        loop {
            thread::sleep(Duration::from_millis(500));
            let seq = newest_seq(socket)?;
            let status = request(socket, "{\"cmd\":\"status\",\"group\":\"uplink\"}\n")?;
            let active = &status["status"]["groups"][0]["active"];
            if seq == last && active == PRIMARY {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the daemon did not settle".into());
            }
            last = seq;
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

    /// Wall time when the follower reads the next failover to `to`.
    fn failover_seen(follower: &mut BufReader<UnixStream>, to: &str) -> Result<i128> {
        loop {
            let mut line = String::new();
            match follower.read_line(&mut line) {
                Ok(0) => return Err("the follower was closed".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("no failover in 30 s: {e}")),
            }
            let now = wall_ns();
            let event: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
            if event["kind"] == "failover" && event["to"] == to {
                return Ok(now);
            }
        }
    }

    /// Takes the primary's carrier away and back; the lag of the failover.
    fn carrier_loss(far: &mut FarEnds, follower: &mut BufReader<UnixStream>) -> Result<f64> {
        let lost = far.send(&format!("link set {PRIMARY} down\n"))?;
        let seen = failover_seen(follower, BACKUP)?;
        far.send(&format!("link set {PRIMARY} up\n"))?;
        failover_seen(follower, PRIMARY)?;
        Ok((seen - lost) as f64 / 1e6)
    }

    /// Peak `VmRSS` of `pid` over `span`, sampled every 10 ms.
    fn peak_rss(pid: u32, span: Duration) -> Result<u64> {
        let end = Instant::now() + span;
        let mut peak = 0;
        while Instant::now() < end {
            peak = peak.max(memory_kib(pid, "VmRSS:")?);
            thread::sleep(Duration::from_millis(10));
        }
        Ok(peak)
    }

    fn run() -> Result<()> {
        let clients = env_number("CROWD_CLIENTS", 100)? as usize;
        let history = env_number("CROWD_HISTORY", 100_000)?;
        let namespaces = Namespaces::new("lmcrowd")?;
        namespaces.add_port(PRIMARY, 7101)?;
        namespaces.add_port(BACKUP, 7103)?;
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let socket = dir.path().join("laggmond.sock");
        let config = dir.path().join("laggmond.yml");
        std::fs::write(
            &config,
            format!(
                "socket: {}\nhistory: {history}\ngroups:\n  uplink:\n    driver: none\n    ports: [{PRIMARY}, {BACKUP}]\n    preempt_delay: 0s\n    flap_damping: {{max_flaps: 1000, window: 1s, hold: 1s}}\n",
                socket.display()
            ),
        )
        .map_err(|e| format!("config: {e}"))?;
        let _daemon = start_daemon(
            &namespaces.monitored,
            &config,
            &socket,
            &dir.path().join("laggmond.log"),
            Some("warn"),
        )?;
        let pid = daemon_pid(&socket)?;
        let mut far = FarEnds::open(&namespaces.peer)?;
        let started = Instant::now();
        fill(&mut far, &socket, history)?;
        println!(
            "history of {history} events filled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut follower = follow(&socket)?;
        let quiet_rss = memory_kib(pid, "VmRSS:")?;
        let quiet_lag = carrier_loss(&mut far, &mut follower)?;

        let mut crowd = Vec::with_capacity(clients);
        for _ in 0..clients {
            let mut stream = UnixStream::connect(&socket).map_err(|e| format!("connect: {e}"))?;
            stream
                .write_all(b"{\"cmd\":\"events\"}\n")
                .map_err(|e| format!("ask: {e}"))?;
            crowd.push(stream);
        }
        let crowd_lag = carrier_loss(&mut far, &mut follower)?;
        let crowd_rss = peak_rss(pid, Duration::from_secs(2))?;
        let hwm = memory_kib(pid, "VmHWM:")?;
        drop(crowd);
        thread::sleep(Duration::from_secs(1));
        let after_rss = memory_kib(pid, "VmRSS:")?;

        println!("| | no clients | {clients} clients that never read |");
        println!("|---|---|---|");
        println!(
            "| carrier loss -> failover read by a follower, ms | {quiet_lag:.3} | {crowd_lag:.3} |"
        );
        println!(
            "| daemon VmRSS, MiB | {:.1} | peak {:.1}; {:.1} after they left |",
            quiet_rss as f64 / 1024.0,
            crowd_rss as f64 / 1024.0,
            after_rss as f64 / 1024.0
        );
        println!(
            "daemon VmHWM over the whole run: {:.1} MiB",
            hwm as f64 / 1024.0
        );
        Ok(())
    }
}
