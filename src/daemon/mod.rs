//! The daemon: one task owns the engine and everything it knows.
//!
//! The loop `select!`s over kernel updates, the engine's deadline, the
//! periodic resync, signals, control requests and finished config reads;
//! the kernel's answers to actions come with the updates, in order.
//! Everything else (the control server, hooks, the platform) talks to it
//! through channels, so there are no locks around the state.
//!
//! One file per concern: `process` starts the process (config, pidfile,
//! detaching, runtime) and `signals` and `pidfile` serve it; this file
//! is the loop; `actions` carries the engine's actions to the kernel,
//! `bus` publishes events, `control` answers the control socket,
//! `probes` drives the path probes and `reload` reads a new config.

mod actions;
mod bus;
mod control;
mod pidfile;
mod probes;
mod process;
mod reload;
mod signals;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::Signal;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::control::server::ControlRequest;
use crate::engine::{Engine, Input, Notice, Output};
use crate::hooks::{self, HookHandle};
use crate::log::Logger;
use crate::platform::{Answer, PlatformHandle, Update};

pub use process::{run, RunOptions, DEFAULT_PIDFILE, EXIT_CONFIG};

use bus::EventBus;
use control::ControlSocket;
use probes::Probes;
use reload::Reloads;

/// The target of the daemon's own log lines, whichever of its files
/// writes them: one name to filter on (`LAGGMOND_LOG`) and to read in
/// the foreground log.
const LOG_TARGET: &str = "laggmond::daemon";

/// The running daemon: the engine and every sink of its events.
pub struct Daemon {
    config: Arc<Config>,
    engine: Engine,
    platform: PlatformHandle,
    logger: Logger,
    hooks: HookHandle,
    bus: EventBus,
    control: ControlSocket,
    control_rx: mpsc::Receiver<ControlRequest>,
    control_tx: mpsc::Sender<ControlRequest>,
    /// The path probes, and what they report.
    probes: Probes,
    /// Config reads for SIGHUP and `reload`, off the loop.
    reloads: Reloads,
    /// The slow periodic full resync with the kernel.
    resync: tokio::time::Interval,
    shutdown: CancellationToken,
    started: Instant,
    /// Pairs the monotonic clock with the wall clock, to show engine times.
    clock: (Instant, SystemTime),
}

impl Daemon {
    /// Binds the control socket and starts the hook runner. Must be called
    /// inside a tokio runtime; `shutdown` ends [`Daemon::run`].
    pub fn start(
        config: Arc<Config>,
        platform: PlatformHandle,
        mut logger: Logger,
        shutdown: CancellationToken,
    ) -> Result<Daemon, String> {
        logger.configure(&config.log);
        let (control_tx, control_rx) = mpsc::channel(64);
        let bus = EventBus::new(config.history);
        let control = ControlSocket::open(&config, control_tx.clone(), bus.sender.clone())?;
        let now = Instant::now();
        Ok(Daemon {
            resync: resync_timer(config.resync_interval),
            engine: Engine::new(config.clone()),
            hooks: hooks::spawn(config.hooks.clone()),
            probes: Probes::start(&config),
            config,
            platform,
            logger,
            bus,
            control,
            control_rx,
            control_tx,
            reloads: Reloads::default(),
            shutdown,
            started: now,
            clock: (now, SystemTime::now()),
        })
    }

    /// The loop. Returns when `shutdown` is cancelled (Ok) or the platform
    /// failed (Err); the control socket is closed and removed either way.
    /// `hup` asks for a reload.
    pub async fn run(mut self, mut hup: Signal) -> Result<(), String> {
        tracing::info!(
            "laggmond {} started, {} group(s), config {}",
            env!("CARGO_PKG_VERSION"),
            self.config.groups.len(),
            self.config.path.display()
        );
        let result = loop {
            let deadline = self.engine.next_deadline();
            tokio::select! {
                _ = self.shutdown.cancelled() => break Ok(()),
                update = self.platform.updates.recv() => match update {
                    Some(update) => self.feed(Input::Platform(update)),
                    None => break Err("the kernel monitor stopped".to_owned()),
                },
                report = self.probes.next_report() => self.feed(Input::Path(report)),
                _ = sleep_until(deadline), if deadline.is_some() => self.feed(Input::Tick),
                _ = self.resync.tick() => self.request_resync(),
                Some(request) = self.control_rx.recv() => self.answer(request),
                _ = hup.recv() => self.reload(None),
                (outcome, waiting) = self.reloads.finished() => self.reloaded(outcome, waiting),
            }
        };
        self.stop().await;
        result
    }

    /// Gives back the ports laggmond took out of service, closes the
    /// control socket, stops hooks and removes the socket file.
    async fn stop(mut self) {
        self.release_ports().await;
        self.control.close().await;
        self.hooks.shutdown().await;
        tracing::info!("laggmond stopped");
    }

    /// Passes one input to the engine and carries out what it says.
    fn feed(&mut self, input: Input) {
        if let Input::Platform(update) = &input {
            self.probes.kernel_news(update);
        }
        let output = self.engine.handle(Instant::now(), input);
        self.apply(output);
    }

    /// Logs the engine's notices, publishes its events and sends its
    /// actions. An action the platform could not take is answered here,
    /// after all of them are sent, so the engine never sees an answer in
    /// the middle of its own output.
    fn apply(&mut self, output: Output) {
        for notice in output.notices {
            log_notice(&notice);
        }
        for what in output.events {
            self.publish(what);
        }
        let refused: Vec<Answer> = output
            .actions
            .into_iter()
            .filter_map(|action| self.send_action(action).err())
            .collect();
        for answer in refused {
            self.feed(Input::Platform(Update::Answer(answer)));
        }
    }
}

/// Says what the operator should change, and how.
fn log_notice(notice: &Notice) {
    match notice {
        Notice::KernelPreempts { group, primary } => tracing::warn!(
            "{group}: the bond returns to its primary {primary} by itself, before laggmond's \
             preempt_delay; to let laggmond decide, run: ip link set {group} type bond \
             primary_reselect failure",
            primary = primary.as_deref().unwrap_or("?"),
        ),
        Notice::KernelArpMonitor { group } => tracing::warn!(
            "{group}: the bond runs its own ARP monitor beside laggmond's path probes; the \
             two judge the paths apart and may move traffic against each other; to leave the \
             paths to laggmond, run: ip link set {group} type bond arp_interval 0 miimon 100"
        ),
    }
}

/// The periodic resync; the first tick is skipped because the platform
/// reads everything when it starts.
fn resync_timer(period: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

/// Sleeps until `deadline`; never called with `None` (the select guard
/// sees to that), but pends forever then to be safe.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
