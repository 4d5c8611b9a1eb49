//! The daemon: one task owns the engine and everything it knows.
//!
//! The loop `select!`s over kernel updates, the engine's deadline, the
//! periodic resync, signals and control requests; the kernel's answers to
//! actions come with the updates, in order.
//! Everything else (the control server, hooks, the platform) talks to it
//! through channels, so there are no locks around the state.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigSet, Signal as Sig};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Driver};
use crate::control::protocol::{Reply, Request};
use crate::control::server::{self, ControlRequest};
use crate::engine::{Action, Command, Engine, Input, Output};
use crate::event::{Event, Kind, Timestamp, What};
use crate::history::History;
use crate::hooks::{self, HookHandle};
use crate::log::Logger;
use crate::metrics::Counters;
use crate::platform::{self, Aggregate, Answer, PlatformHandle, Update};
use crate::status::{FailoverStatus, Status};

/// Exit status for a configuration error (sysexits `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// Default pidfile; rc.d and the systemd unit use it too.
pub const DEFAULT_PIDFILE: &str = "/var/run/laggmond.pid";

/// How long shutdown waits for the kernel to bring held-down ports back.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How many events a live follower may fall behind before it is dropped.
const FOLLOW_QUEUE: usize = 1024;

/// How `laggmond run` was invoked.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Stay attached to the terminal and log to stderr.
    pub foreground: bool,
    /// Where the pid is written and locked; [`DEFAULT_PIDFILE`] when `None`.
    pub pidfile: Option<PathBuf>,
}

/// `laggmond run`: checks the config, takes the pidfile, detaches unless
/// in the foreground, then runs the loop until SIGTERM or SIGINT.
pub fn run(opts: RunOptions) -> ExitCode {
    // From the first instant: a service manager may signal as soon as the
    // pidfile names us, long before the handlers exist.
    if let Err(e) = handled_signals().thread_block() {
        eprintln!("laggmond: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let config = match load_config(&opts.config) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let pidfile_path = opts
        .pidfile
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PIDFILE));
    let pidfile = match Pidfile::lock(&pidfile_path) {
        Ok(pidfile) => pidfile,
        Err(message) => {
            eprintln!("laggmond: {message}");
            return ExitCode::FAILURE;
        }
    };
    if !opts.foreground {
        // Before any thread exists: fork(2) keeps only the calling thread.
        if let Err(e) = nix::unistd::daemon(false, false) {
            eprintln!("laggmond: cannot detach: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = pidfile.write_pid() {
        eprintln!("laggmond: {}: {e}", pidfile_path.display());
        return ExitCode::FAILURE;
    }
    let logger = match crate::log::init(opts.foreground) {
        Ok(logger) => logger,
        Err(message) => {
            eprintln!("laggmond: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let signals = Signals::install()?;
        // After detaching, whose fork would drop it; before the first hook.
        if let Err(e) = hooks::become_reaper() {
            tracing::warn!("cannot become the reaper of hook descendants: {e}");
        }
        let platform = start_platform()?;
        let shutdown = CancellationToken::new();
        let daemon = Daemon::start(Arc::new(config), platform, logger, shutdown.clone())?;
        tokio::spawn(stop_on_signal(signals.term, signals.int, shutdown));
        daemon.run(signals.hup).await
    });
    // A config read stuck in the kernel must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(pidfile);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and checks a config for this platform, as one printable message.
fn load_config(path: &Path) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    supported_here(&config)?;
    Ok(config)
}

/// Refuses drivers this build cannot drive, naming the group.
fn supported_here(config: &Config) -> Result<(), String> {
    for group in &config.groups {
        let missing = match group.driver {
            Driver::None => None,
            Driver::Lagg if !cfg!(target_os = "freebsd") => Some("lagg(4) exists only on FreeBSD"),
            Driver::Bond if !cfg!(target_os = "linux") => Some("bonding exists only on Linux"),
            Driver::Lagg | Driver::Bond => None,
        };
        if let Some(why) = missing {
            return Err(format!(
                "{}: group {}: driver {}: {why}",
                config.path.display(),
                group.name,
                group.driver.as_str()
            ));
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn start_platform() -> Result<PlatformHandle, String> {
    platform::linux::spawn(platform::linux::Options::default())
        .map_err(|e| format!("cannot open the rtnetlink socket: {e}"))
}

#[cfg(target_os = "freebsd")]
fn start_platform() -> Result<PlatformHandle, String> {
    platform::freebsd::spawn(platform::freebsd::Options::default())
        .map_err(|e| format!("cannot open the routing socket: {e}"))
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn start_platform() -> Result<PlatformHandle, String> {
    Err("no platform support for this operating system".to_owned())
}

/// The signals laggmond acts on: blocked from the start of [`run`] until
/// their handlers exist, so one sent early waits instead of killing.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Sig::SIGHUP, Sig::SIGTERM, Sig::SIGINT] {
        set.add(signal);
    }
    set
}

/// The handlers of [`handled_signals`]. Each stream also holds a signal
/// that arrived while they were blocked.
struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers, then unblocks the signals.
    fn install() -> Result<Signals, String> {
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
        };
        let signals = Signals {
            hup: handler(SignalKind::hangup(), "SIGHUP")?,
            term: handler(SignalKind::terminate(), "SIGTERM")?,
            int: handler(SignalKind::interrupt(), "SIGINT")?,
        };
        handled_signals()
            .thread_unblock()
            .map_err(|e| format!("cannot unblock signals: {e}"))?;
        Ok(signals)
    }
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
async fn stop_on_signal(mut term: Signal, mut int: Signal, shutdown: CancellationToken) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

/// How often [`Pidfile::lock`] opens the pidfile again when the file it
/// locked was unlinked meanwhile.
const PIDFILE_ATTEMPTS: usize = 5;

/// How long a busy pidfile lock is tried again before it means that
/// another instance runs.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

/// The pidfile, locked for as long as this value lives and removed with it.
struct Pidfile {
    path: PathBuf,
    file: File,
}

impl Pidfile {
    /// Opens and locks `path`; a running instance holds the lock, and its
    /// pid is named in the error. The pidfile usually lives in a directory
    /// others may write to: a symbolic link or a hard link planted there
    /// must not make root truncate the file it points at, so only a regular
    /// file of our own with one name is taken.
    fn lock(path: &Path) -> Result<Pidfile, String> {
        // A stopping instance unlinks the file it held locked: a lock won
        // on that unlinked file is worth nothing, so the file is opened
        // again until the locked one is the one the path names.
        for _ in 0..PIDFILE_ATTEMPTS {
            let file = Pidfile::open_checked(path)?;
            Pidfile::take_lock(path, &file)?;
            if Pidfile::still_named(path, &file)? {
                return Ok(Pidfile {
                    path: path.to_owned(),
                    file,
                });
            }
        }
        Err(format!(
            "{}: replaced again and again while being locked; refusing to use it as the pidfile",
            path.display()
        ))
    }

    /// Opens the pidfile and refuses anything but a regular file of ours
    /// with one name.
    fn open_checked(path: &Path) -> Result<File, String> {
        use std::os::unix::fs::OpenOptionsExt;

        let at = path.display();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            // A FIFO would block the open; it is refused below by type.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::EMLINK) => format!(
                    "{at}: is a symbolic link (or a loop of them on the way); refusing to use it as the pidfile"
                ),
                _ => format!("{at}: {e}"),
            })?;
        Pidfile::check(path, &file)?;
        Ok(file)
    }

    /// The pidfile's own checks: type, owner, one name. Returns what it
    /// read of the file.
    fn check(path: &Path, file: &File) -> Result<std::fs::Metadata, String> {
        use std::os::unix::fs::MetadataExt;

        let at = path.display();
        let metadata = file.metadata().map_err(|e| format!("{at}: {e}"))?;
        let ours = nix::unistd::geteuid().as_raw();
        if !metadata.is_file() {
            return Err(format!(
                "{at}: not a regular file; refusing to use it as the pidfile"
            ));
        }
        if metadata.uid() != ours {
            return Err(format!(
                "{at}: owned by uid {}, not by uid {ours} that runs laggmond; refusing to use it as the pidfile",
                metadata.uid()
            ));
        }
        if metadata.nlink() != 1 {
            return Err(format!(
                "{at}: has {} names (hard links); refusing to use it as the pidfile",
                metadata.nlink()
            ));
        }
        Ok(metadata)
    }

    /// Locks `file`. A client checking whether a daemon runs holds the
    /// lock for an instant, so a busy lock is tried again for a moment
    /// before it means a running instance, whose pid is named.
    fn take_lock(path: &Path, file: &File) -> Result<(), String> {
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut pid = Vec::new();
                    let _ = file.take(32).read_to_end(&mut pid);
                    let pid = crate::log::escape_controls(String::from_utf8_lossy(&pid).trim());
                    return Err(format!("already running as pid {pid}"));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()))
                }
            }
        }
    }

    /// Whether the path still names the locked `file` with its one name
    /// (checked again now that the lock keeps other instances out).
    fn still_named(path: &Path, file: &File) -> Result<bool, String> {
        use std::os::unix::fs::MetadataExt;

        let held = Pidfile::check(path, file)?;
        Ok(std::fs::symlink_metadata(path)
            .is_ok_and(|named| (named.dev(), named.ino()) == (held.dev(), held.ino())))
    }

    /// Writes this process's pid (after detaching, so it is the daemon's).
    fn write_pid(&self) -> io::Result<()> {
        let mut file = &self.file;
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Remove while still holding the lock, so no second instance can
        // lock the file that is about to disappear.
        let _ = std::fs::remove_file(&self.path);
    }
}

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
    /// Config reads for SIGHUP and `reload`, off the loop.
    reloads: Reloads,
    /// The slow periodic full resync with the kernel.
    resync: tokio::time::Interval,
    /// Groups already warned about by [`Daemon::check_kernel_policy`].
    warned: HashSet<String>,
    shutdown: CancellationToken,
    started: Instant,
    /// Pairs the monotonic clock with the wall clock, to show engine times.
    clock: (Instant, SystemTime),
}

/// The control socket and the task serving it.
struct ControlSocket {
    path: PathBuf,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
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
            config,
            platform,
            logger,
            bus,
            control,
            control_rx,
            control_tx,
            reloads: Reloads::default(),
            warned: HashSet::new(),
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

    /// Brings back every port the engine holds down (lagg damping), and
    /// waits a little for the kernel's answers: a port must not stay down
    /// because laggmond stopped.
    async fn release_ports(&mut self) {
        let output = self.engine.shutdown();
        if output.actions.is_empty() {
            return;
        }
        for what in output.events {
            self.publish(what);
        }
        let mut sent = 0;
        for action in output.actions {
            match self.send_action(action) {
                Ok(()) => sent += 1,
                Err(Answer {
                    port,
                    result: Err(error),
                    ..
                }) => tracing::error!("could not bring {port} back into service: {error}"),
                Err(_) => {}
            }
        }
        // Answers come on the update stream; the other updates no longer
        // matter once the loop has ended.
        let answers = async {
            let mut answered = 0;
            while answered < sent {
                let Some(update) = self.platform.updates.recv().await else {
                    break;
                };
                if let Update::Answer(Answer { port, result, .. }) = update {
                    answered += 1;
                    if let Err(error) = result {
                        tracing::error!("could not bring {port} back into service: {error}");
                    }
                }
            }
        };
        if tokio::time::timeout(RELEASE_WAIT, answers).await.is_err() {
            tracing::error!("the kernel did not answer in time; some ports may still be down");
        }
    }

    /// Passes one input to the engine and carries out what it says.
    fn feed(&mut self, input: Input) {
        if let Input::Platform(Update::Aggregate(aggregate)) = &input {
            self.check_kernel_policy(aggregate);
        }
        let output = self.engine.handle(Instant::now(), input);
        self.apply(output);
    }

    /// Publishes the engine's events and sends its actions. An action the
    /// platform could not take is answered here, after all of them are
    /// sent, so the engine never sees an answer in the middle of its own
    /// output.
    fn apply(&mut self, output: Output) {
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

    /// Warns once per group when the kernel would move traffic back to its
    /// own primary by itself, racing laggmond's hold-down, and says how to
    /// hand the decision over. lagg always does this and cannot be told
    /// otherwise, so only bonds are checked.
    fn check_kernel_policy(&mut self, aggregate: &Aggregate) {
        let Some(group) = self.config.groups.iter().find(|g| g.name == aggregate.name) else {
            return;
        };
        let fights = group.driver == Driver::Bond && group.enforce && aggregate.kernel_preempts;
        if !fights {
            self.warned.remove(&aggregate.name);
            return;
        }
        if self.warned.insert(aggregate.name.clone()) {
            tracing::warn!(
                "{name}: the bond returns to its primary {primary} by itself, before laggmond's \
                 preempt_delay; to let laggmond decide, run: ip link set {name} type bond \
                 primary_reselect failure",
                name = aggregate.name,
                primary = aggregate.primary.as_deref().unwrap_or("?"),
            );
        }
    }

    /// Sends an action to the platform, whose answer comes later as an
    /// [`Update::Answer`]; when the request cannot even be queued, the
    /// answer that says why is returned instead.
    fn send_action(&mut self, action: Action) -> Result<(), Answer> {
        let (group, port, request) = match action {
            Action::SetActive { group, port } => (
                group.clone(),
                port.clone(),
                platform::Request::SetActive { group, port },
            ),
            Action::SetAdminUp { group, port, up } => (
                group.clone(),
                port.clone(),
                platform::Request::SetAdminUp { group, port, up },
            ),
        };
        self.platform.requests.try_send(request).map_err(|error| {
            let why = match error {
                mpsc::error::TrySendError::Full(_) => "the kernel monitor is busy",
                mpsc::error::TrySendError::Closed(_) => "the kernel monitor stopped",
            };
            Answer {
                group,
                port,
                result: Err(why.to_owned()),
            }
        })
    }

    fn request_resync(&mut self) {
        if self
            .platform
            .requests
            .try_send(platform::Request::Resync)
            .is_err()
        {
            tracing::warn!("kernel monitor busy; periodic resync skipped");
        }
    }

    /// Stamps an event and hands it to every sink.
    fn publish(&mut self, what: What) {
        let event = Arc::new(Event {
            seq: self.bus.next_seq(),
            time: Timestamp::now(),
            severity: self.config.log.severity(what.kind),
            what,
        });
        self.logger.event(&event);
        self.hooks.dispatch(event.clone());
        self.bus.record(event);
    }

    /// SIGHUP or `reload` (whose client waits on `reply`): the file is read
    /// off the loop, which goes on meanwhile; [`Daemon::reloaded`] applies
    /// it. A request that comes while a read runs gets a read of its own
    /// after it: the file may have changed since the first began.
    fn reload(&mut self, reply: Option<oneshot::Sender<Reply>>) {
        self.reloads.request(reply, &self.config.path);
    }

    /// A config read ended: a good file replaces the config and keeps all
    /// state; a bad one (or a read past [`RELOAD_DEADLINE`]) is logged
    /// with its location, published as `config_rejected`, and changes
    /// nothing. Every waiting client hears the outcome.
    fn reloaded(&mut self, outcome: Result<Config, String>, waiting: Vec<oneshot::Sender<Reply>>) {
        let reply = match outcome {
            Ok(config) => {
                self.replace_config(Arc::new(config));
                Reply::ok()
            }
            Err(message) => {
                // One log line per problem, each with the prefix, so that
                // syslog (one record per line) and grep keep the context.
                let mut logged = false;
                for line in message.lines().filter(|line| !line.trim().is_empty()) {
                    tracing::error!("reload refused: {line}");
                    logged = true;
                }
                if !logged {
                    tracing::error!("reload refused");
                }
                self.publish(What {
                    error: Some(message.clone()),
                    ..What::global(Kind::ConfigRejected)
                });
                Reply::error(message)
            }
        };
        for client in waiting {
            // The client may have gone; nothing to do then.
            let _ = client.send(reply.clone());
        }
        self.reloads.next(&self.config.path);
    }

    /// Puts a new, valid config in force, keeping all state.
    fn replace_config(&mut self, config: Arc<Config>) {
        if config.socket != self.config.socket || config.socket_group != self.config.socket_group {
            tracing::warn!("socket and socket_group changes take effect at restart");
        }
        if config.resync_interval != self.config.resync_interval {
            self.resync = resync_timer(config.resync_interval);
        }
        self.logger.configure(&config.log);
        self.hooks.reconfigure(config.hooks.clone());
        self.bus.resize(config.history);
        let output = self.engine.reconfigure(Instant::now(), config.clone());
        self.config = config;
        self.control
            .reopen_if_gone(&self.config, &self.control_tx, &self.bus.sender);
        self.publish(What::global(Kind::ConfigReloaded));
        self.apply(output);
    }

    /// Answers one control request.
    fn answer(&mut self, request: ControlRequest) {
        let reply = match request.request {
            Request::Status { group } => self.status_reply(group.as_deref()),
            // A view, not a copy: the client task streams it.
            Request::Events { n, .. } => Reply {
                history: Some(self.bus.history.view(n)),
                ..Reply::ok()
            },
            Request::Metrics => Reply {
                metrics: Some(crate::metrics::render(
                    &self.status(),
                    &self.bus.counters,
                    &self.hooks.stats(),
                    self.platform
                        .foreign_messages
                        .load(std::sync::atomic::Ordering::Relaxed),
                    &server::counters(),
                )),
                ..Reply::ok()
            },
            Request::Reload => return self.reload(Some(request.reply)),
            Request::SetActive { group, port } => self.command(Command::SetActive { group, port }),
            Request::ClearDamping { group, port } => {
                self.command(Command::ClearDamping { group, port })
            }
        };
        // The client may have gone; nothing to do then.
        let _ = request.reply.send(reply);
    }

    fn command(&mut self, command: Command) -> Reply {
        match self.engine.command(Instant::now(), command) {
            Ok(output) => {
                self.apply(output);
                Reply::ok()
            }
            Err(message) => Reply::error(message),
        }
    }

    fn status_reply(&self, group: Option<&str>) -> Reply {
        let mut status = self.status();
        if let Some(name) = group {
            status.groups.retain(|g| g.name == name);
            if status.groups.is_empty() {
                return Reply::error(format!("no group {name}"));
            }
        }
        Reply {
            status: Some(status),
            ..Reply::ok()
        }
    }

    /// The status report, built from the engine and the event history.
    fn status(&self) -> Status {
        crate::status::project(
            self.engine.groups(),
            &self.bus.last_failover,
            self.clock,
            self.started,
            Instant::now(),
        )
    }
}

impl ControlSocket {
    fn open(
        config: &Config,
        to_daemon: mpsc::Sender<ControlRequest>,
        events: broadcast::Sender<Arc<Event>>,
    ) -> Result<ControlSocket, String> {
        let listener: UnixListener =
            server::bind(&config.socket, config.socket_group.as_deref())
                .map_err(|e| format!("control socket {}: {e}", config.socket.display()))?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(server::serve(listener, to_daemon, events, stop.clone()));
        Ok(ControlSocket {
            path: config.socket.clone(),
            stop,
            task,
        })
    }

    /// Someone deleted the socket file under us, or put something else in
    /// its place: bind it again (on reload), so clients work again.
    fn reopen_if_gone(
        &mut self,
        config: &Config,
        to_daemon: &mpsc::Sender<ControlRequest>,
        events: &broadcast::Sender<Arc<Event>>,
    ) {
        let at = self.path.display();
        match server::occupant(&self.path) {
            Ok(server::Occupant::Socket) => return,
            Ok(server::Occupant::Nothing) => {
                tracing::warn!("control socket {at} vanished; binding it again");
            }
            // Our own path, taken by something else: bind would refuse to
            // replace it, leaving clients locked out. It is moved aside
            // (kept, in case it matters to someone), not removed.
            Ok(server::Occupant::Other(kind)) => match server::displace(&self.path) {
                Ok(aside) => tracing::warn!(
                    "control socket {at} was replaced by {kind}; moved it to {} and binding the socket again",
                    aside.display()
                ),
                Err(e) => {
                    tracing::error!(
                        "control socket {at} was replaced by {kind} that cannot be moved aside ({e}); remove it and send SIGHUP"
                    );
                    return;
                }
            },
            Err(e) => {
                tracing::error!("control socket: {e}");
                return;
            }
        }
        self.stop.cancel();
        match ControlSocket::open(config, to_daemon.clone(), events.clone()) {
            Ok(fresh) => *self = fresh,
            Err(message) => tracing::error!("{message}"),
        }
    }

    async fn close(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where published events go besides the log and hooks: the bounded
/// history, live followers, metrics counters and each group's last failover.
struct EventBus {
    seq: u64,
    history: History,
    sender: broadcast::Sender<Arc<Event>>,
    counters: Counters,
    last_failover: HashMap<String, FailoverStatus>,
}

impl EventBus {
    fn new(capacity: usize) -> EventBus {
        EventBus {
            seq: 0,
            history: History::new(capacity),
            sender: broadcast::channel(FOLLOW_QUEUE).0,
            counters: Counters::default(),
            last_failover: HashMap::new(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn record(&mut self, event: Arc<Event>) {
        self.counters.count(&event);
        if event.what.kind == Kind::Failover {
            if let Some(group) = &event.what.group {
                self.last_failover.insert(
                    group.clone(),
                    FailoverStatus {
                        at: event.time,
                        from: event.what.from.clone(),
                        to: event.what.to.clone(),
                        cause: event.what.cause,
                        outage_ms: event.what.outage_ms,
                    },
                );
            }
        }
        // No followers is not an error.
        let _ = self.sender.send(event.clone());
        self.history.push(event);
    }

    fn resize(&mut self, capacity: usize) {
        self.history.resize(capacity);
    }
}

/// How long reading the config for a reload may take. A regular file is
/// read in microseconds; a file system that stalls must not hold a client
/// (or the next reload) forever.
const RELOAD_DEADLINE: Duration = Duration::from_secs(5);

/// The clients waiting for one config read.
type Waiting = Vec<oneshot::Sender<Reply>>;

/// Config reads for reloads. They run on the blocking pool, never on the
/// loop: a file system may stall, and the loop must not.
#[derive(Default)]
struct Reloads {
    /// The read in flight.
    running: Option<ConfigRead>,
    /// Asked for while a read ran: one more read, after it.
    queued: Option<Waiting>,
    /// A read given up at its deadline and not returned yet. No other read
    /// starts until it does: each would strand one more thread.
    stuck: Option<tokio::task::JoinHandle<Result<Config, String>>>,
}

/// One config read on the blocking pool.
struct ConfigRead {
    task: tokio::task::JoinHandle<Result<Config, String>>,
    /// When it is given up: [`RELOAD_DEADLINE`] after it began.
    deadline: Instant,
    waiting: Waiting,
}

impl Reloads {
    /// Starts a read of `path` for `reply` (if any), or queues one behind
    /// the read in flight.
    fn request(&mut self, reply: Option<oneshot::Sender<Reply>>, path: &Path) {
        if self.running.is_some() {
            self.queued.get_or_insert_with(Vec::new).extend(reply);
        } else {
            self.start(path, reply.into_iter().collect());
        }
    }

    /// Starts the queued read, if one was asked for.
    fn next(&mut self, path: &Path) {
        if let Some(waiting) = self.queued.take() {
            self.start(path, waiting);
        }
    }

    fn start(&mut self, path: &Path, waiting: Waiting) {
        let task = if self.stuck.as_ref().is_some_and(|read| !read.is_finished()) {
            tokio::spawn(async {
                Err("the previous read of the config has not returned yet; \
                     the file system holding it may hang"
                    .to_owned())
            })
        } else {
            self.stuck = None;
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || load_config(&path))
        };
        self.running = Some(ConfigRead {
            task,
            deadline: Instant::now() + RELOAD_DEADLINE,
            waiting,
        });
    }

    /// The outcome of the read in flight and its clients; pending while
    /// there is none. A read past its deadline is left to finish alone.
    async fn finished(&mut self) -> (Result<Config, String>, Waiting) {
        let Some(read) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = tokio::time::timeout_at(read.deadline.into(), &mut read.task).await;
        let Some(read) = self.running.take() else {
            return std::future::pending().await;
        };
        let outcome = match outcome {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Err(format!("reading the config failed: {e}")),
            Err(_) => {
                self.stuck = Some(read.task);
                Err(format!(
                    "reading the config took longer than {} s; the old config stays",
                    RELOAD_DEADLINE.as_secs()
                ))
            }
        };
        (outcome, read.waiting)
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
