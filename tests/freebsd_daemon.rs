//! The daemon with the FreeBSD platform, over a scripted lagg kernel that
//! speaks real routing-message bytes: the two seeds of the FreeBSD users,
//! a server (`laggport em0 laggport bge0`) and a laptop (`laggport em0
//! laggport wlan0`). The daemon loop, the engine, the platform task and
//! the control socket are the real ones; only the system calls are not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use laggmond::config::Config;
use laggmond::control::client;
use laggmond::control::protocol::{Reply, Request};
use laggmond::daemon::Daemon;
use laggmond::event::{Cause, Event, Kind};
use laggmond::log::Logger;
use laggmond::platform::freebsd::abi::{IFF_UP, LAGG_PROTO_FAILOVER};
use laggmond::platform::freebsd::fake::{FakeLaggKernel, KernelCall};
use laggmond::platform::freebsd::{spawn_with, LaggKernel, Options, SettleTime};
use laggmond::status::GroupStatus;
use tokio_util::sync::CancellationToken;

/// A running daemon over a fake kernel; stopped on drop.
struct FakeLaggDaemon {
    kernel: FakeLaggKernel,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), String>>,
    /// The daemon's event log lines.
    log: Arc<Mutex<Vec<u8>>>,
}

/// A `Write` that appends to a shared buffer.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FakeLaggDaemon {
    /// `lagg0` in failover over `ports` (the first is MASTER), all up,
    /// watched with a 1 s hold-down; a port is damped past `max_flaps`
    /// link changes in a minute (a detach and attach alone makes five).
    async fn start(ports: &[&str], max_flaps: u32) -> FakeLaggDaemon {
        let kernel = FakeLaggKernel::new();
        for port in ports {
            kernel.attach(port);
        }
        kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, ports);
        let options = Options {
            settle: SettleTime {
                min: Duration::from_millis(200),
                max: Duration::from_secs(2),
            },
            lagg_poll: None,
            ..Options::default()
        };
        let platform =
            spawn_with(kernel.clone(), kernel.route_socket(), &options).expect("platform");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("laggmond.yml");
        let yaml = format!(
            "socket: {}\ngroups:\n  lagg0:\n    driver: lagg\n    ports: [{}]\n    preempt_delay: 1s\n    flap_damping: {{max_flaps: {max_flaps}, window: 60s, hold: 5m}}\n",
            dir.path().join("laggmond.sock").display(),
            ports.join(", ")
        );
        std::fs::write(&path, &yaml).expect("config");
        let config = Config::load(&path).expect("valid config");
        let log = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let daemon = Daemon::start(
            Arc::new(config),
            platform,
            Logger::embedded(Box::new(Sink(log.clone()))),
            shutdown.clone(),
        )
        .expect("daemon starts");
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("SIGHUP handler");
        let task = tokio::spawn(daemon.run(hup));
        let bench = FakeLaggDaemon {
            kernel,
            dir,
            shutdown,
            task,
            log,
        };
        for _ in 0..250 {
            if bench.group().await.is_some_and(|g| g.active.is_some()) {
                return bench;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("lagg0 never got an active port; log:\n{}", bench.log_text());
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("laggmond.sock")
    }

    async fn ask(&self, request: Request) -> Reply {
        client::request(&self.socket(), &request)
            .await
            .expect("daemon answers")
    }

    async fn group(&self) -> Option<GroupStatus> {
        let reply = self.ask(Request::Status { group: None }).await;
        reply.status.and_then(|s| s.groups.into_iter().next())
    }

    async fn events(&self) -> Vec<Event> {
        let reply = self
            .ask(Request::Events {
                n: None,
                follow: false,
            })
            .await;
        reply.events.unwrap_or_default()
    }

    /// Waits (up to 5 s) for an event after `after` matching `pred`.
    async fn event(&self, after: u64, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        for _ in 0..250 {
            if let Some(e) = self
                .events()
                .await
                .into_iter()
                .find(|e| e.seq > after && pred(e))
            {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no {what} after seq {after}; events: {:#?}\nlog:\n{}",
            self.events().await,
            self.log_text()
        );
    }

    async fn last_seq(&self) -> u64 {
        self.events().await.last().map_or(0, |e| e.seq)
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().expect("log")).into_owned()
    }

    async fn stop(self) {
        let socket = self.socket();
        self.shutdown.cancel();
        let result = self.task.await.expect("daemon task");
        assert_eq!(result, Ok(()));
        assert!(!socket.exists(), "socket removed");
    }
}

fn failover(e: &Event) -> bool {
    e.what.kind == Kind::Failover
}

#[tokio::test]
async fn seed_server_em0_bge0() {
    let bench = FakeLaggDaemon::start(&["em0", "bge0"], 10).await;
    let group = bench.group().await.expect("lagg0");
    assert_eq!(group.active.as_deref(), Some("em0"));
    assert_eq!(group.driver.as_str(), "lagg");

    // em0 loses link: lagg sends on bge0, laggmond logs the failover.
    let seq = bench.last_seq().await;
    bench.kernel.set_carrier("em0", false);
    let e = bench.event(seq, "failover to bge0", failover).await;
    assert_eq!(e.what.from.as_deref(), Some("em0"));
    assert_eq!(e.what.to.as_deref(), Some("bge0"));
    assert_eq!(e.what.cause, Some(Cause::LinkDown));
    assert!(bench
        .log_text()
        .contains("lagg0: failover em0 -> bge0 (em0 link down)"));

    // em0 is back: lagg returns to its MASTER by itself, at once.
    let seq = bench.last_seq().await;
    bench.kernel.set_carrier("em0", true);
    let e = bench.event(seq, "failback to em0", failover).await;
    assert_eq!(e.what.to.as_deref(), Some("em0"));
    assert_eq!(e.what.cause, Some(Cause::LinkUp));
    assert_eq!(
        bench.kernel.take_changes(),
        vec![],
        "laggmond changed nothing so far"
    );

    // em0 detaches and comes back (a driver reload): it is re-added after
    // bge0, so bge0 is MASTER now. Once em0 has been up for the 1 s
    // hold-down, laggmond announces and makes the reorder.
    let seq = bench.last_seq().await;
    bench.kernel.detach("em0");
    bench.kernel.attach("em0");
    // As devd's pccard_ether does on the arrival.
    LaggKernel::add_port(&mut bench.kernel.clone(), "lagg0", "em0").expect("re-add em0");
    bench.kernel.take_changes();
    let enforcing = bench
        .event(seq, "enforcing", |e| e.what.kind == Kind::Enforcing)
        .await;
    assert_eq!(enforcing.what.port.as_deref(), Some("em0"));
    let restored = bench
        .event(seq, "primary_restored", |e| {
            e.what.kind == Kind::PrimaryRestored
        })
        .await;
    assert!(restored.seq > enforcing.seq);
    assert_eq!(
        bench.kernel.take_changes(),
        vec![
            KernelCall::RemovePort {
                lagg: "lagg0".into(),
                port: "bge0".into()
            },
            KernelCall::AddPort {
                lagg: "lagg0".into(),
                port: "bge0".into()
            },
        ],
        "remove the port ahead of em0, then add it back"
    );
    let lagg = bench.kernel.lagg("lagg0").expect("lagg0");
    assert_eq!(lagg.master().map(|p| p.name.as_str()), Some("em0"));
    let group = bench.group().await.expect("lagg0");
    assert_eq!(group.active.as_deref(), Some("em0"));
    assert!(group.healthy, "{group:?}");
    bench.stop().await;
}

#[tokio::test]
async fn seed_laptop_em0_wlan0() {
    let bench = FakeLaggDaemon::start(&["em0", "wlan0"], 10).await;
    let seq = bench.last_seq().await;
    bench.kernel.set_carrier("em0", false);
    let e = bench.event(seq, "failover to wlan0", failover).await;
    assert_eq!(e.what.to.as_deref(), Some("wlan0"));
    assert_eq!(e.what.cause, Some(Cause::LinkDown));

    let seq = bench.last_seq().await;
    bench.kernel.set_carrier("em0", true);
    let e = bench.event(seq, "back to em0", failover).await;
    assert_eq!(e.what.to.as_deref(), Some("em0"));
    assert_eq!(e.what.cause, Some(Cause::LinkUp));
    let group = bench.group().await.expect("lagg0");
    assert_eq!(group.active.as_deref(), Some("em0"));
    bench.stop().await;
}

/// A flapping lagg port is taken out of service by clearing `IFF_UP`
/// (lagg uses only admin-up ports), and given back when laggmond stops.
#[tokio::test]
async fn a_flapping_port_is_held_down_and_given_back_at_exit() {
    let bench = FakeLaggDaemon::start(&["em0", "bge0"], 3).await;
    let seq = bench.last_seq().await;
    // Each change is seen before the next: the platform believes only the
    // link state the interface shows when it is read.
    for up in [false, true, false] {
        let before = bench.last_seq().await;
        bench.kernel.set_carrier("em0", up);
        let kind = if up { Kind::PortUp } else { Kind::PortDown };
        bench
            .event(before, "em0's link change", |e| {
                e.what.kind == kind && e.what.port.as_deref() == Some("em0")
            })
            .await;
    }
    bench.kernel.set_carrier("em0", true);
    let flapping = bench
        .event(seq, "flapping", |e| e.what.kind == Kind::Flapping)
        .await;
    assert_eq!(flapping.what.port.as_deref(), Some("em0"));
    let admin = |up: bool| {
        move |call: &KernelCall| {
            matches!(call, KernelCall::SetInterfaceFlags { name, flags }
                if name == "em0" && (flags & IFF_UP != 0) == up)
        }
    };
    for _ in 0..250 {
        if bench.kernel.calls().iter().any(admin(false)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        bench.kernel.calls().iter().any(admin(false)),
        "em0 taken down: {:?}",
        bench.kernel.calls()
    );
    let group = bench.group().await.expect("lagg0");
    assert_eq!(group.active.as_deref(), Some("bge0"), "{group:?}");
    assert!(!bench.kernel.calls().iter().any(admin(true)));

    let kernel = bench.kernel.clone();
    bench.stop().await;
    assert!(
        kernel.calls().iter().any(admin(true)),
        "em0 given back at exit: {:?}",
        kernel.calls()
    );
    let em0 = kernel.interface_now("em0").expect("em0");
    assert_ne!(em0.flags & IFF_UP, 0, "em0 is admin-up again");
}
