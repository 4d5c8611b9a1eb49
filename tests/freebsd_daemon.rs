//! The daemon with the FreeBSD platform, over a scripted lagg kernel that
//! speaks real routing-message bytes: the two seeds of the FreeBSD users,
//! a server (`laggport em0 laggport bge0`) and a laptop (`laggport em0
//! laggport wlan0`). The daemon loop, the engine, the platform task and
//! the control socket are the real ones; only the system calls are not.
//! Dead paths, which the loop cannot be told of here, are tested over the
//! real engine and platform joined as the loop joins them.

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

// --- dead paths: the engine and the platform over the fake kernel ----------
//
// The daemon loop hears of paths only from the prober, which needs real
// sockets on real interfaces, and a `probe` is refused on FreeBSD until it
// has one: the loop cannot be given a verdict here. So these tests join the
// real engine and the real platform task the way the loop does (actions
// become requests, every update and answer goes to the engine, ticks at
// its deadlines) and feed the verdicts by hand.

mod paths {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use laggmond::config::Config;
    use laggmond::engine::{Action, Engine, Input, Output};
    use laggmond::event::{Cause, Kind, What};
    use laggmond::platform::freebsd::abi::LAGG_PROTO_FAILOVER;
    use laggmond::platform::freebsd::fake::{FakeLaggKernel, KernelCall};
    use laggmond::platform::freebsd::{spawn_with, Options, SettleTime};
    use laggmond::platform::{PlatformHandle, Request, Update};
    use laggmond::probe::{PathReport, PathVerdict};

    /// How long any step may take before the test gives up.
    const PATIENCE: Duration = Duration::from_secs(10);

    struct Bench {
        engine: Engine,
        platform: PlatformHandle,
        kernel: FakeLaggKernel,
        /// Every event the engine reported, in order.
        events: Vec<What>,
        /// Requests sent and not answered yet.
        unanswered: usize,
        _dir: tempfile::TempDir,
    }

    impl Bench {
        /// lagg0 in failover over em0 (MASTER) and bge0, probed, with a
        /// 300 ms preempt_delay (so the backoff and rate limit are 1 s);
        /// both paths found working.
        async fn start() -> Bench {
            let kernel = FakeLaggKernel::new();
            kernel.attach("em0");
            kernel.attach("bge0");
            kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["em0", "bge0"]);
            let options = Options {
                settle: SettleTime {
                    min: Duration::from_millis(100),
                    max: Duration::from_secs(2),
                },
                lagg_poll: None,
                ..Options::default()
            };
            let platform =
                spawn_with(kernel.clone(), kernel.route_socket(), &options).expect("platform");
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("laggmond.yml");
            let yaml = "groups:\n  lagg0:\n    driver: lagg\n    ports: [em0, bge0]\n    \
                        preempt_delay: 300ms\n    probe:\n      arp: [192.0.2.1]\n      \
                        interval: 50ms\n      missed: 1\n";
            std::fs::write(&path, yaml).expect("config");
            let config = Config::load(&path).expect("valid config");
            let mut bench = Bench {
                engine: Engine::new(Arc::new(config)),
                platform,
                kernel,
                events: Vec::new(),
                unanswered: 0,
                _dir: dir,
            };
            bench
                .pump_until("lagg0 followed", |bench| {
                    bench.engine.groups()[0].active() == Some("em0")
                })
                .await;
            bench.path("em0", true);
            bench.path("bge0", true);
            bench.kernel.take_changes();
            // No dead path can be judged sooner after the link came up
            // than one interval (`missed` × `interval`).
            tokio::time::sleep(Duration::from_millis(60)).await;
            bench
        }

        /// The probes' verdict on `port`'s path.
        fn path(&mut self, port: &str, up: bool) {
            let verdict = if up {
                PathVerdict::Up {
                    rtt: Duration::from_millis(1),
                }
            } else {
                PathVerdict::Down {
                    missed: 3,
                    targets: vec!["192.0.2.1".parse().expect("address")],
                }
            };
            let report = PathReport {
                group: "lagg0".into(),
                port: port.into(),
                verdict,
            };
            let out = self.engine.handle(Instant::now(), Input::Path(report));
            self.act(out);
        }

        /// Keeps the events and sends the actions, as the daemon does.
        fn act(&mut self, out: Output) {
            self.events.extend(out.events);
            for action in out.actions {
                let request = match action {
                    Action::SetActive { group, port } => Request::SetActive { group, port },
                    Action::SetAdminUp { group, port, up } => {
                        Request::SetAdminUp { group, port, up }
                    }
                    Action::RemovePort { group, port } => Request::RemovePort { group, port },
                    Action::AddPort { group, port } => Request::AddPort { group, port },
                };
                self.platform
                    .requests
                    .try_send(request)
                    .expect("the platform takes requests");
                self.unanswered += 1;
            }
        }

        /// Runs the loop until `done` holds.
        async fn pump_until(&mut self, what: &str, done: impl Fn(&Bench) -> bool) {
            let give_up = Instant::now() + PATIENCE;
            while !done(self) {
                assert!(
                    Instant::now() < give_up,
                    "never {what}; events: {:#?}",
                    self.events
                );
                let wait = self
                    .engine
                    .next_deadline()
                    .map_or(Duration::from_millis(50), |at| {
                        at.saturating_duration_since(Instant::now())
                    })
                    .min(Duration::from_millis(50));
                let input = match tokio::time::timeout(wait, self.platform.updates.recv()).await {
                    Ok(Some(update)) => {
                        if matches!(update, Update::Answer(_)) {
                            self.unanswered -= 1;
                        }
                        Input::Platform(update)
                    }
                    Ok(None) => panic!("the platform stopped"),
                    Err(_) => Input::Tick,
                };
                let out = self.engine.handle(Instant::now(), input);
                self.act(out);
            }
        }

        /// Every request answered.
        async fn settle(&mut self) {
            self.pump_until("answered", |bench| bench.unanswered == 0)
                .await;
        }

        fn members(&self) -> Vec<String> {
            let lagg = self.kernel.lagg("lagg0").expect("lagg0");
            lagg.ports.into_iter().map(|port| port.name).collect()
        }

        fn master(&self) -> Option<String> {
            let lagg = self.kernel.lagg("lagg0").expect("lagg0");
            lagg.master().map(|port| port.name.clone())
        }

        fn saw(&self, kind: Kind, port: &str) -> bool {
            self.events
                .iter()
                .any(|what| what.kind == kind && what.port.as_deref() == Some(port))
        }

        /// The daemon stops: what the engine gives back, answered.
        async fn stop(mut self) -> FakeLaggKernel {
            let out = self.engine.shutdown();
            self.act(out);
            self.settle().await;
            self.kernel
        }
    }

    #[tokio::test]
    async fn a_dead_master_is_taken_out_and_given_back_at_exit() {
        let mut bench = Bench::start().await;
        bench.path("em0", false);
        assert!(bench.saw(Kind::Enforcing, "em0"), "{:?}", bench.events);
        bench.settle().await;
        assert_eq!(bench.members(), ["bge0"]);
        assert_eq!(bench.kernel.take_changes(), [KernelCall::remove("em0")]);
        let failover = bench
            .events
            .iter()
            .find(|what| what.kind == Kind::Failover)
            .expect("a failover");
        assert_eq!(
            (failover.from.as_deref(), failover.to.as_deref()),
            (Some("em0"), Some("bge0"))
        );
        assert_eq!(failover.cause, Some(Cause::PathDown));
        assert!(!bench.saw(Kind::PortMissing, "em0"), "{:?}", bench.events);
        assert_eq!(bench.engine.groups()[0].active(), Some("bge0"));

        let kernel = bench.stop().await;
        let lagg = kernel.lagg("lagg0").expect("lagg0");
        let members: Vec<&str> = lagg.ports.iter().map(|p| p.name.as_str()).collect();
        assert!(members.contains(&"em0"), "em0 back at exit: {members:?}");
        assert_eq!(kernel.take_changes(), [KernelCall::add("em0")]);
    }

    #[tokio::test]
    async fn failed_steps_are_tried_again_and_the_primary_comes_back() {
        let mut bench = Bench::start().await;
        // The removal fails: em0 stays in, and is tried again after the
        // backoff.
        bench
            .kernel
            .fail_next(KernelCall::remove("em0"), libc::EBUSY);
        bench.path("em0", false);
        bench
            .pump_until("the removal failed", |bench| {
                bench.saw(Kind::EnforceFailed, "em0")
            })
            .await;
        assert_eq!(bench.members(), ["em0", "bge0"]);
        bench
            .pump_until("em0 out", |bench| bench.members() == ["bge0"])
            .await;
        bench.settle().await;
        assert_eq!(
            bench.kernel.take_changes(),
            [KernelCall::remove("em0"), KernelCall::remove("em0")]
        );

        // The path is back; putting em0 back fails once, then works.
        bench.events.clear();
        bench.kernel.fail_next(KernelCall::add("em0"), libc::ENOMEM);
        bench.path("em0", true);
        bench
            .pump_until("the addition failed", |bench| {
                bench.saw(Kind::EnforceFailed, "em0")
            })
            .await;
        assert_eq!(bench.members(), ["bge0"]);
        // Then the existing reorder makes em0 MASTER again.
        bench
            .pump_until("em0 MASTER again", |bench| {
                bench.saw(Kind::PrimaryRestored, "em0")
            })
            .await;
        assert_eq!(bench.master().as_deref(), Some("em0"));
        assert_eq!(bench.members(), ["em0", "bge0"]);
        assert_eq!(
            bench.kernel.take_changes(),
            [
                KernelCall::add("em0"),
                KernelCall::add("em0"),
                KernelCall::remove("bge0"),
                KernelCall::add("bge0"),
            ]
        );
        bench.settle().await;
        // Nothing left to give back.
        let kernel = bench.stop().await;
        assert_eq!(kernel.take_changes(), []);
    }
}
