//! Hooks: operator programs run on matching events.
//!
//! The daemon loop must never wait for a hook, so the machinery lives in its
//! own task: [`HookHandle::dispatch`] only matches the event against the
//! configured hooks and puts runs into a bounded queue; the hook task takes
//! runs from it, at most [`MAX_RUNNING`] at a time. Runs for port and group
//! events go before runs for config events and displace them when the queue
//! is full. Each run gets the event in `LAGGMOND_*` variables and as one
//! JSON line on stdin, its exit status and first lines of output go to the
//! log, and its whole process group is killed at its timeout, also when the
//! program itself has already exited but left processes behind.
//!
//! What leaves the process group (a new session) escapes that, so the
//! daemon also makes itself the reaper of its descendants
//! ([`become_reaper`]): orphans are re-parented to it instead of init, are
//! reaped while the daemon runs and are killed by
//! [`HookHandle::shutdown`].

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::signal::unix::{signal, Signal as SignalStream, SignalKind};
use tokio::sync::{oneshot, Notify};
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::HookConfig;
use crate::event::{Event, Kind};

/// Most hooks running at once: a burst of events must not fork-bomb the host.
pub const MAX_RUNNING: usize = 4;

/// Most runs waiting for a free slot; more are dropped and counted.
pub const QUEUE_CAPACITY: usize = 64;

/// Lines of each output stream kept for the log.
const MAX_OUTPUT_LINES: usize = 10;

/// Bytes of each output stream kept for the log.
const MAX_OUTPUT_BYTES: usize = 4096;

/// How long output is still read after the hook exited: a background
/// process it left behind may hold the pipes open forever.
const OUTPUT_GRACE: Duration = Duration::from_millis(250);

/// How often a process group whose leader exited is checked for being
/// empty, which frees the run's slot before its timeout.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// Least time between two log lines about dropped runs: an event storm
/// must not become a log storm, yet every drop is counted in one of them.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// How often the hook task reaps orphans and reports drops even without
/// a SIGCHLD or a new event (signals coalesce and may be missed).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// How long [`HookHandle::shutdown`] keeps killing and reaping what hooks
/// left behind before it gives up (a process stuck in the kernel).
const SWEEP_LIMIT: Duration = Duration::from_secs(3);

/// Every variable a hook may receive. All are removed from the inherited
/// environment first, so a stale value of the daemon's own never leaks.
const ENV_NAMES: [&str; 13] = [
    "LAGGMOND_EVENT",
    "LAGGMOND_GROUP",
    "LAGGMOND_PORT",
    "LAGGMOND_FROM",
    "LAGGMOND_TO",
    "LAGGMOND_CAUSE",
    "LAGGMOND_SEQ",
    "LAGGMOND_SEVERITY",
    "LAGGMOND_OUTAGE_MS",
    "LAGGMOND_TIME",
    "LAGGMOND_TARGETS",
    "LAGGMOND_MISSED",
    "LAGGMOND_RTT_MS",
];

/// Hook counters, for metrics. `started` counts runs taken from the queue;
/// each of them ends as exactly one of `succeeded`, `failed` or `timed_out`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookStats {
    /// Runs taken from the queue (including those that could not start).
    pub started: u64,
    /// Runs that exited with status 0.
    pub succeeded: u64,
    /// Runs that could not start, exited non-zero, died of a signal or were
    /// killed at shutdown.
    pub failed: u64,
    /// Runs killed at their timeout.
    pub timed_out: u64,
    /// Runs never started: the queue was full, or the daemon shut down
    /// before their turn.
    pub dropped: u64,
}

/// The live counters behind [`HookStats`], shared by the handle and the task.
#[derive(Default)]
struct HookCounters {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    dropped: AtomicU64,
}

impl HookCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HookStats {
        HookStats {
            started: self.started.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// One queued run: which hook, for which event.
struct Job {
    hook: Arc<HookConfig>,
    event: Arc<Event>,
}

impl Job {
    /// Config events say nothing about the links, so their runs yield to
    /// port and group events when the queue is short of room.
    fn is_urgent(&self) -> bool {
        !matches!(
            self.event.what.kind,
            Kind::ConfigReloaded | Kind::ConfigRejected
        )
    }

    /// Names the run in the log.
    fn describe(&self) -> String {
        format!(
            "{} for {} event #{}",
            program(&self.hook),
            self.event.what.kind,
            self.event.seq
        )
    }
}

/// The runs waiting for a slot, in two lines: port and group events first.
#[derive(Default)]
struct Queue {
    urgent: VecDeque<Job>,
    config: VecDeque<Job>,
    /// The task is gone: nothing queued now would ever run.
    task_gone: bool,
    drops: DropTally,
}

impl Queue {
    fn len(&self) -> usize {
        self.urgent.len() + self.config.len()
    }

    /// Queues `job`, or gives back the run that has to be dropped for want
    /// of room: `job` itself, or the newest config run it displaces.
    fn push(&mut self, job: Job) -> Option<Job> {
        if self.task_gone {
            return Some(job);
        }
        let urgent = job.is_urgent();
        if self.len() >= QUEUE_CAPACITY {
            if !urgent {
                return Some(job);
            }
            let Some(displaced) = self.config.pop_back() else {
                return Some(job);
            };
            self.urgent.push_back(job);
            return Some(displaced);
        }
        if urgent {
            self.urgent.push_back(job);
        } else {
            self.config.push_back(job);
        }
        None
    }

    fn take(&mut self) -> Option<Job> {
        self.urgent.pop_front().or_else(|| self.config.pop_front())
    }
}

/// Dropped runs not yet in the log, so that a burst makes one line with a
/// count instead of one line per run.
#[derive(Default)]
struct DropTally {
    unreported: u64,
    /// The latest dropped run, named in the next report.
    latest: String,
    last_report: Option<Instant>,
}

impl DropTally {
    fn note(&mut self, job: &Job) {
        self.unreported += 1;
        self.latest = job.describe();
    }

    /// The log line for the drops not yet reported, if there are any and
    /// the last report is old enough (or `now` is the last chance).
    fn report(&mut self, at_end: bool) -> Option<String> {
        let due = self
            .last_report
            .is_none_or(|last| last.elapsed() >= DROP_REPORT_INTERVAL);
        if self.unreported == 0 || !(due || at_end) {
            return None;
        }
        let line = format!(
            "hook queue full ({QUEUE_CAPACITY} waiting) or hook task gone: {} run(s) dropped{}, latest {}",
            self.unreported,
            self.last_report.map_or(String::new(), |last| format!(
                " in the last {} s",
                last.elapsed().as_secs()
            )),
            self.latest
        );
        self.unreported = 0;
        self.last_report = Some(Instant::now());
        Some(line)
    }
}

/// What the handle and the task share. The queue is shared rather than
/// sent through a channel because [`HookHandle::dispatch`] must decide at
/// once, without waiting for the task, whether a run fits, and which
/// queued run a port or group event displaces; the counters are shared
/// because the task counts runs while the daemon reads them for metrics.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Woken when a run is queued.
    ready: Notify,
    counters: HookCounters,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    fn report_drops(&self, at_end: bool) {
        let line = self.queue().drops.report(at_end);
        if let Some(line) = line {
            tracing::warn!("{line}");
        }
    }
}

/// Locks `mutex` even when a panicking holder poisoned it: the data is
/// plain bookkeeping that every holder leaves consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The daemon's side of the hook task: hands it events, reconfigures it,
/// reads its counters and stops it. Dropped without [`HookHandle::shutdown`],
/// the task still runs what is queued and lets running hooks finish.
pub struct HookHandle {
    /// The hooks new events are matched against; only the handle reads them.
    hooks: Arc<[Arc<HookConfig>]>,
    shared: Arc<Shared>,
    /// Cancelled when the handle goes, with or without a stop: no more
    /// runs will come, so the task ends once the queue is empty.
    closed: DropGuard,
    /// Cancelled by [`HookHandle::shutdown`]: queued runs are dropped and
    /// running hooks killed.
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the hook task with `hooks`. Must be called inside a tokio runtime.
pub fn spawn(hooks: Vec<HookConfig>) -> HookHandle {
    let stop = CancellationToken::new();
    let closed = CancellationToken::new();
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(run_queue(shared.clone(), stop.clone(), closed.clone()));
    HookHandle {
        hooks: to_shared(hooks),
        shared,
        closed: closed.drop_guard(),
        stop,
        task,
    }
}

fn to_shared(hooks: Vec<HookConfig>) -> Arc<[Arc<HookConfig>]> {
    hooks.into_iter().map(Arc::new).collect()
}

impl HookHandle {
    /// Queues a run of every hook whose `on` names the event's kind. Never
    /// waits: when the queue is full the run is dropped (or, for a port or
    /// group event, a queued config run is), counted and logged.
    pub fn dispatch(&mut self, event: Arc<Event>) {
        let matching = self
            .hooks
            .iter()
            .filter(|h| h.on.contains(&event.what.kind));
        let mut queued = false;
        for hook in matching {
            let job = Job {
                hook: hook.clone(),
                event: event.clone(),
            };
            let mut queue = self.shared.queue();
            match queue.push(job) {
                None => queued = true,
                Some(dropped) => {
                    HookCounters::add(&self.shared.counters.dropped, 1);
                    queue.drops.note(&dropped);
                    let line = queue.drops.report(false);
                    drop(queue);
                    if let Some(line) = line {
                        tracing::warn!("{line}");
                    }
                }
            }
        }
        if queued {
            self.shared.ready.notify_one();
        }
    }

    /// Replaces the hooks. Later events are matched against the new ones;
    /// runs already queued or running finish as they were.
    pub fn reconfigure(&mut self, hooks: Vec<HookConfig>) {
        self.hooks = to_shared(hooks);
    }

    /// The counters so far.
    pub fn stats(&self) -> HookStats {
        self.shared.counters.snapshot()
    }

    /// Stops the hook task: queued runs are dropped, running hooks are
    /// killed at once with their process groups and reaped; then, if this
    /// process is a reaper ([`become_reaper`]), every other descendant,
    /// which can only be something a hook left behind, is killed and reaped
    /// too. Returns when no such process remains, or after a bounded wait
    /// for one that does not die.
    pub async fn shutdown(self) {
        let HookHandle {
            stop, task, closed, ..
        } = self;
        stop.cancel();
        drop(closed);
        if let Err(err) = task.await {
            tracing::error!("hook task ended abnormally: {err}");
        }
        reaper::kill_leftovers().await;
    }
}

/// Makes this process the reaper of its descendants: a process a hook
/// started whose parent exits is re-parented to the daemon rather than to
/// init, so the daemon can reap it and kill it at
/// [`HookHandle::shutdown`] even when it left the hook's process group.
/// Linux: `PR_SET_CHILD_SUBREAPER`; FreeBSD: `PROC_REAP_ACQUIRE`; elsewhere
/// nothing (and shutdown kills only the hooks' process groups). Call it
/// once at start, before the first hook runs; the daemon must start no
/// children but hooks afterwards, since shutdown kills every descendant.
pub fn become_reaper() -> io::Result<()> {
    reaper::acquire()
}

/// The hook task: takes runs from the queue while a slot is free, until
/// `stop` is cancelled, or `closed` is and the queue is empty; meanwhile
/// reaps orphans and reports dropped runs.
async fn run_queue(shared: Arc<Shared>, stop: CancellationToken, closed: CancellationToken) {
    let mut running = JoinSet::new();
    let mut child_signals = match signal(SignalKind::child()) {
        Ok(stream) => Some(stream),
        Err(err) => {
            tracing::warn!("no SIGCHLD stream, orphans are reaped once a second: {err}");
            None
        }
    };
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let drained = {
            let mut queue = shared.queue();
            while running.len() < MAX_RUNNING {
                let Some(job) = queue.take() else { break };
                running.spawn(run_job(job, stop.clone(), shared.clone()));
            }
            queue.len() == 0
        };
        // Once the handle is gone nothing is queued any more, so an empty
        // queue stays empty.
        if drained && closed.is_cancelled() {
            break;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(done) = running.join_next(), if !running.is_empty() => report_join(done),
            () = shared.ready.notified() => {}
            // Disabled once seen, or it would be ready on every turn.
            () = closed.cancelled(), if !closed.is_cancelled() => {}
            Some(()) = next_signal(&mut child_signals) => reaper::reap_orphans(),
            _ = housekeeping.tick() => {
                reaper::reap_orphans();
                shared.report_drops(false);
            }
        }
    }
    discard_queued(&shared);
    // Runs see the stop themselves and kill their process groups; without
    // a stop (the handle was dropped) they finish on their own terms.
    while let Some(done) = running.join_next().await {
        report_join(done);
    }
    reaper::reap_orphans();
}

/// The next SIGCHLD; never when there is no stream.
async fn next_signal(stream: &mut Option<SignalStream>) -> Option<()> {
    match stream {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}

fn report_join(done: Result<(), JoinError>) {
    if let Err(err) = done {
        tracing::error!("hook run ended abnormally: {err}");
    }
}

/// Empties the queue for good: its runs are dropped, and so is every later
/// one, all counted and logged.
fn discard_queued(shared: &Shared) {
    let discarded = {
        let mut queue = shared.queue();
        queue.task_gone = true;
        let discarded = queue.len() as u64;
        queue.urgent.clear();
        queue.config.clear();
        discarded
    };
    shared.report_drops(true);
    if discarded > 0 {
        HookCounters::add(&shared.counters.dropped, discarded);
        tracing::warn!("shutting down: {discarded} queued hook runs not started");
    }
}

/// How a run ended.
#[derive(Debug)]
enum Ending {
    Exited(ExitStatus),
    TimedOut,
    /// Killed because the daemon shuts down.
    Stopped,
    /// The child could not be waited for; `kill_on_drop` still kills it.
    WaitFailed(io::Error),
}

/// One run, from spawn to reaping and logging, and then until nothing of
/// its process group is left.
async fn run_job(job: Job, stop: CancellationToken, shared: Arc<Shared>) {
    let counters = &shared.counters;
    HookCounters::add(&counters.started, 1);
    let started_at = Instant::now();
    let deadline = tokio::time::Instant::now() + job.hook.timeout;
    let Some(command) = command(&job.hook, &job.event) else {
        return spawn_failed(&job, "no program configured", counters);
    };
    let mut leader = match Leader::spawn(command) {
        Ok(leader) => leader,
        Err(err) => return spawn_failed(&job, &err.to_string(), counters),
    };
    let group = leader.group();
    let stdin = leader.child.stdin.take();
    let stdout = leader.child.stdout.take();
    let stderr = leader.child.stderr.take();
    let mut out = Captured::default();
    let mut err = Captured::default();
    let (exited_tx, exited_rx) = oneshot::channel();
    let waiting = async {
        let ending = wait_or_kill(&mut leader.child, deadline, &stop).await;
        let _ = exited_tx.send(());
        ending
    };
    let io = async {
        let all_io = async {
            tokio::join!(
                feed(stdin, &job.event),
                capture(stdout, &mut out),
                capture(stderr, &mut err)
            )
        };
        let give_up = async {
            let _ = exited_rx.await;
            tokio::time::sleep(OUTPUT_GRACE).await;
        };
        tokio::select! {
            _ = all_io => {}
            () = give_up => {}
        }
    };
    let (ending, ()) = tokio::join!(waiting, io);
    // Reaped (or beyond waiting for): tokio no longer needs the pid kept
    // from the orphan reaper.
    drop(leader);
    count(&ending, counters);
    report(&job, &ending, started_at.elapsed(), &out, &err);
    match (ending, group) {
        (Ending::Exited(_), Some(group)) => {
            let run = format!("hook {} #{}", program(&job.hook), job.event.seq);
            kill_group_leftovers(group, deadline, &stop, &run, job.hook.timeout).await;
        }
        (Ending::WaitFailed(_), Some(group)) => {
            let _ = killpg(group, Signal::SIGKILL);
        }
        _ => {}
    }
}

/// Pids of the hook programs tokio has spawned and not yet reaped. The
/// orphan reaper leaves them alone, or it would take their exit status
/// from tokio (and free their pids while tokio may still signal them).
/// Process-wide rather than the handle's: every run task registers its
/// program here while the reaper reads the set from the hook task and at
/// shutdown, and a process has one set of children however many handles
/// it starts.
static HOOK_LEADERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// A spawned hook program, registered in [`HOOK_LEADERS`] until dropped.
/// `child` is declared first so that it drops (killed if still running,
/// handed to tokio's own reaping) before the pid is released.
struct Leader {
    child: Child,
    registration: Option<Registration>,
}

/// A pid in [`HOOK_LEADERS`], removed when dropped.
struct Registration(i32);

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&HOOK_LEADERS).remove(&self.0);
    }
}

impl Leader {
    /// Spawns `command` under the registry's lock, so the orphan reaper
    /// never sees the child before it is registered.
    fn spawn(mut command: Command) -> io::Result<Leader> {
        let mut leaders = lock(&HOOK_LEADERS);
        let child = command.spawn()?;
        let pid = child.id().and_then(|id| i32::try_from(id).ok());
        let registration = pid.map(|pid| {
            leaders.insert(pid);
            Registration(pid)
        });
        Ok(Leader {
            child,
            registration,
        })
    }

    /// The run's process group: the program leads its own.
    fn group(&self) -> Option<Pid> {
        self.registration.as_ref().map(|r| Pid::from_raw(r.0))
    }
}
/// The command for one run, or `None` when the hook has no program.
fn command(hook: &HookConfig, event: &Event) -> Option<Command> {
    let (program, args) = hook.run.split_first()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills whatever it started too.
        .process_group(0)
        .kill_on_drop(true);
    for name in ENV_NAMES {
        cmd.env_remove(name);
    }
    for (name, value) in environment(event) {
        cmd.env(name, value);
    }
    Some(cmd)
}

/// The `LAGGMOND_*` variables of an event, only those whose field is set.
fn environment(event: &Event) -> Vec<(&'static str, String)> {
    let what = &event.what;
    let optional = [
        ("LAGGMOND_GROUP", what.group.clone()),
        ("LAGGMOND_PORT", what.port.clone()),
        ("LAGGMOND_FROM", what.from.clone()),
        ("LAGGMOND_TO", what.to.clone()),
        ("LAGGMOND_CAUSE", what.cause.map(|c| c.as_str().to_owned())),
        ("LAGGMOND_OUTAGE_MS", what.outage_ms.map(|v| v.to_string())),
        // Space-separated, so that a shell loops over them as they are.
        (
            "LAGGMOND_TARGETS",
            what.targets.as_ref().map(|t| t.join(" ")),
        ),
        ("LAGGMOND_MISSED", what.missed.map(|v| v.to_string())),
        ("LAGGMOND_RTT_MS", what.rtt_ms.map(|v| v.to_string())),
    ];
    let mut env = vec![
        ("LAGGMOND_EVENT", what.kind.as_str().to_owned()),
        ("LAGGMOND_SEQ", event.seq.to_string()),
        ("LAGGMOND_SEVERITY", event.severity.as_str().to_owned()),
        ("LAGGMOND_TIME", event.time.to_string()),
    ];
    env.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v))),
    );
    env
}

fn spawn_failed(job: &Job, why: &str, counters: &HookCounters) {
    HookCounters::add(&counters.failed, 1);
    tracing::warn!(
        "hook {} #{} for {} could not start: {why}",
        program(&job.hook),
        job.event.seq,
        job.event.what.kind
    );
}

/// Waits for the child until `deadline` or a stop, then kills its process
/// group; in every case the child is reaped before this returns (unless
/// waiting itself fails).
async fn wait_or_kill(
    child: &mut Child,
    deadline: tokio::time::Instant,
    stop: &CancellationToken,
) -> Ending {
    let ending = tokio::select! {
        status = child.wait() => {
            return match status {
                Ok(status) => Ending::Exited(status),
                Err(err) => Ending::WaitFailed(err),
            };
        }
        () = tokio::time::sleep_until(deadline) => Ending::TimedOut,
        () = stop.cancelled() => Ending::Stopped,
    };
    kill_group(child);
    match child.wait().await {
        Ok(_) => ending,
        Err(err) => Ending::WaitFailed(err),
    }
}

/// SIGKILLs the child's process group. The child is not reaped yet, so its
/// pid (the group id) cannot have been reused.
fn kill_group(child: &mut Child) {
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let killed = group.is_some_and(|pgid| killpg(pgid, Signal::SIGKILL).is_ok());
    if !killed {
        let _ = child.start_kill();
    }
}

/// After the program exited: waits until its process group is empty, and
/// SIGKILLs what is left of it at the run's deadline or a stop, so that
/// `sleep 300 &` in a hook does not outlive the hook's timeout. The group
/// id is the reaped program's pid, which no new process gets while the
/// group has members; polling for the group's end leaves only a window of
/// [`GROUP_POLL`], in which the whole pid space would have to wrap around,
/// for `killpg` to reach a stranger.
async fn kill_group_leftovers(
    group: Pid,
    deadline: tokio::time::Instant,
    stop: &CancellationToken,
    run: &str,
    timeout: Duration,
) {
    let when = loop {
        if !group_exists(group) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                break format!("at its timeout ({})", humantime::format_duration(timeout));
            }
            () = stop.cancelled() => break "at shutdown".to_owned(),
            () = tokio::time::sleep(GROUP_POLL) => {}
        }
    };
    match killpg(group, Signal::SIGKILL) {
        Ok(()) => tracing::warn!("{run}: processes it left running killed {when}"),
        Err(Errno::ESRCH) => {}
        Err(err) => tracing::warn!("{run}: cannot kill the processes it left running: {err}"),
    }
}

/// Whether process group `group` still has a member. A group the daemon
/// may not signal still exists.
fn group_exists(group: Pid) -> bool {
    !matches!(killpg(group, None), Err(Errno::ESRCH))
}

/// The daemon as the reaper of its descendants (see [`become_reaper`]).
/// Reaping orphans is the same on Linux and FreeBSD; becoming the reaper
/// and killing every descendant at shutdown are per system, in `system`.
mod reaper {
    use super::*;

    /// Set once this process is a reaper: only then are orphans its
    /// children, to reap and to kill. Process-wide like the property it
    /// mirrors, which [`become_reaper`] sets before any handle exists.
    static ACTIVE: AtomicBool = AtomicBool::new(false);

    /// Pause between two rounds of killing at shutdown, for the killed to
    /// die and for their own children to be re-parented to the daemon.
    const SWEEP_PAUSE: Duration = Duration::from_millis(20);

    pub(super) fn acquire() -> io::Result<()> {
        if system::acquire()? {
            ACTIVE.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn active() -> bool {
        ACTIVE.load(Ordering::Relaxed)
    }

    /// Reaps the children that have exited and are not hook programs
    /// tokio waits for: with a reaper, orphans become the daemon's
    /// children and would stay zombies otherwise.
    pub(super) fn reap_orphans() {
        if active() {
            system::reap_exited(&lock(&HOOK_LEADERS));
        }
    }

    /// Kills and reaps every descendant that is not a hook program tokio
    /// waits for, round after round (a killed process's children become
    /// the daemon's), until none is left or [`SWEEP_LIMIT`] has passed.
    pub(super) async fn kill_leftovers() {
        if !active() {
            return;
        }
        let deadline = Instant::now() + SWEEP_LIMIT;
        let mut killed = BTreeSet::new();
        let mut count = 0;
        loop {
            let remain = {
                let leaders = lock(&HOOK_LEADERS);
                count += system::kill_descendants(&leaders, &mut killed);
                system::reap_exited(&leaders);
                system::descendants_remain(&leaders)
            };
            if !remain {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    "processes hooks left behind still alive after {} s, giving up",
                    SWEEP_LIMIT.as_secs()
                );
                break;
            }
            tokio::time::sleep(SWEEP_PAUSE).await;
        }
        if count > 0 {
            tracing::info!("killed {count} process(es) that hooks left behind");
        }
    }

    /// Waits for children without taking a hook program from tokio:
    /// `waitid(P_ALL, .., WNOWAIT)` only looks at an exited child, which is
    /// reaped by pid unless it is one of `leaders`. Such a leader hides
    /// the others until tokio reaps it; the next SIGCHLD or housekeeping
    /// tick gets them.
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    fn reap_exited_children(leaders: &BTreeSet<i32>) {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        loop {
            let pid = match waitid(Id::All, peek) {
                Ok(status) => match status.pid() {
                    Some(pid) => pid,
                    None => return,
                },
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => return,
                Err(err) => {
                    tracing::warn!("cannot look for exited children: {err}");
                    return;
                }
            };
            if leaders.contains(&pid.as_raw()) {
                return;
            }
            match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
                Ok(status) => tracing::debug!("reaped orphan {pid}: {status:?}"),
                Err(Errno::EINTR) => {}
                Err(err) => {
                    tracing::warn!("cannot reap orphan {pid}: {err}");
                    return;
                }
            }
        }
    }

    #[cfg(target_os = "linux")]
    mod system {
        use super::*;
        use nix::sys::signal::kill;

        /// `PR_SET_CHILD_SUBREAPER`.
        pub(super) fn acquire() -> io::Result<bool> {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_SET_CHILD_SUBREAPER,
                    1 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if rc == 0 {
                Ok(true)
            } else {
                Err(io::Error::last_os_error())
            }
        }

        pub(super) fn reap_exited(leaders: &BTreeSet<i32>) {
            reap_exited_children(leaders);
        }

        /// SIGKILLs every live child but `leaders`; the pids are safe to
        /// signal, since only the daemon reaps its children. Their own
        /// children become the daemon's and get the next round. Returns
        /// how many were not in `killed` yet.
        pub(super) fn kill_descendants(
            leaders: &BTreeSet<i32>,
            killed: &mut BTreeSet<i32>,
        ) -> usize {
            let mut count = 0;
            for (pid, _) in children()
                .into_iter()
                .filter(|(pid, state)| *state != 'Z' && !leaders.contains(pid))
            {
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) => count += usize::from(killed.insert(pid)),
                    Err(Errno::ESRCH) => {}
                    Err(err) => tracing::warn!("cannot kill {pid}, left by a hook: {err}"),
                }
            }
            count
        }

        pub(super) fn descendants_remain(leaders: &BTreeSet<i32>) -> bool {
            children().iter().any(|(pid, _)| !leaders.contains(pid))
        }

        /// The daemon's children with their states, from `/proc`.
        fn children() -> Vec<(i32, char)> {
            let entries = match std::fs::read_dir("/proc") {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::warn!("cannot list /proc to find orphans: {err}");
                    return Vec::new();
                }
            };
            let me = std::process::id().to_string();
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    // `PID (COMMAND) STATE PPID ...`; the command may hold
                    // spaces and parentheses.
                    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
                    let state = fields.next()?.chars().next()?;
                    (fields.next()? == me).then_some((pid, state))
                })
                .collect()
        }
    }

    #[cfg(target_os = "freebsd")]
    mod system {
        use super::*;

        /// `struct procctl_reaper_kill` of `<sys/procctl.h>`, which libc
        /// does not have.
        #[repr(C)]
        struct ReaperKill {
            rk_sig: libc::c_int,
            rk_flags: libc::c_uint,
            rk_subtree: libc::pid_t,
            rk_killed: libc::c_uint,
            rk_fpid: libc::pid_t,
            rk_pad: [libc::c_uint; 15],
        }

        fn procctl_self(command: libc::c_int, data: *mut libc::c_void) -> io::Result<()> {
            // SAFETY: `data` is null or points to the struct `command`
            // expects, alive for the call.
            let rc = unsafe {
                libc::procctl(
                    libc::P_PID,
                    libc::id_t::from(std::process::id()),
                    command,
                    data,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }

        /// `PROC_REAP_ACQUIRE`; already being the reaper is fine.
        pub(super) fn acquire() -> io::Result<bool> {
            match procctl_self(libc::PROC_REAP_ACQUIRE, std::ptr::null_mut()) {
                Err(err) if err.raw_os_error() != Some(libc::EBUSY) => Err(err),
                _ => Ok(true),
            }
        }

        pub(super) fn reap_exited(leaders: &BTreeSet<i32>) {
            reap_exited_children(leaders);
        }

        /// `PROC_REAP_KILL` with SIGKILL over all descendants, at once.
        /// It spares no one, so it is only called when no hook program is
        /// left to tokio (at shutdown, after the hook task ended).
        pub(super) fn kill_descendants(
            _leaders: &BTreeSet<i32>,
            _killed: &mut BTreeSet<i32>,
        ) -> usize {
            let mut request = ReaperKill {
                rk_sig: libc::SIGKILL,
                rk_flags: 0,
                rk_subtree: 0,
                rk_killed: 0,
                rk_fpid: 0,
                rk_pad: [0; 15],
            };
            let data = std::ptr::addr_of_mut!(request).cast::<libc::c_void>();
            match procctl_self(libc::PROC_REAP_KILL, data) {
                Ok(()) => request.rk_killed as usize,
                // Nothing to kill.
                Err(err) if err.raw_os_error() == Some(libc::ESRCH) => 0,
                Err(err) => {
                    tracing::warn!("cannot kill the processes hooks left behind: {err}");
                    0
                }
            }
        }

        /// Whether any child is left, exited or not.
        pub(super) fn descendants_remain(_leaders: &BTreeSet<i32>) -> bool {
            use nix::sys::wait::{waitid, Id, WaitPidFlag};
            let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            !matches!(waitid(Id::All, peek), Err(Errno::ECHILD))
        }
    }

    /// No reaper on other systems: orphans go to init, and only the hooks'
    /// process groups are killed.
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    mod system {
        use super::*;

        pub(super) fn acquire() -> io::Result<bool> {
            Ok(false)
        }

        pub(super) fn reap_exited(_leaders: &BTreeSet<i32>) {}

        pub(super) fn kill_descendants(
            _leaders: &BTreeSet<i32>,
            _killed: &mut BTreeSet<i32>,
        ) -> usize {
            0
        }

        pub(super) fn descendants_remain(_leaders: &BTreeSet<i32>) -> bool {
            false
        }
    }
}

/// Writes the event as one JSON line and closes stdin. A hook that does not
/// read it is fine: the broken pipe is ignored.
async fn feed(stdin: Option<ChildStdin>, event: &Event) {
    let Some(mut stdin) = stdin else { return };
    let mut line = match serde_json::to_vec(event) {
        Ok(json) => json,
        Err(err) => {
            tracing::warn!("event #{} not serialisable for a hook: {err}", event.seq);
            return;
        }
    };
    line.push(b'\n');
    let _ = stdin.write_all(&line).await;
}

/// The start of one output stream, kept for the log.
#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    lines: usize,
    /// Output came after the limits were reached and was discarded.
    truncated: bool,
}

impl Captured {
    fn is_full(&self) -> bool {
        self.lines >= MAX_OUTPUT_LINES || self.kept.len() >= MAX_OUTPUT_BYTES
    }

    fn absorb(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            if self.is_full() {
                self.truncated = true;
                return;
            }
            self.kept.push(byte);
            if byte == b'\n' {
                self.lines += 1;
            }
        }
    }

    /// The kept lines, lossily decoded, without their line ends.
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.kept)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Reads a stream to its end, keeping only its start, so a flooding hook
/// neither blocks on a full pipe nor grows the daemon's memory.
async fn capture<R: AsyncRead + Unpin>(stream: Option<R>, into: &mut Captured) {
    let Some(mut stream) = stream else { return };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => into.absorb(&buf[..n]),
        }
    }
}

fn count(ending: &Ending, counters: &HookCounters) {
    let counter = match ending {
        Ending::Exited(status) if status.success() => &counters.succeeded,
        Ending::TimedOut => &counters.timed_out,
        _ => &counters.failed,
    };
    HookCounters::add(counter, 1);
}

/// Logs how a run ended and its output: info on success, warn otherwise.
/// Each output line names its run, since other messages may come between.
fn report(job: &Job, ending: &Ending, took: Duration, out: &Captured, err: &Captured) {
    let success = matches!(ending, Ending::Exited(status) if status.success());
    let run = format!("hook {} #{}", program(&job.hook), job.event.seq);
    let summary = format!(
        "{run} for {} {} after {} ms",
        job.event.what.kind,
        describe(ending, job.hook.timeout),
        took.as_millis()
    );
    let mut lines = vec![summary];
    lines.extend(output_lines(&format!("{run} stdout"), out));
    lines.extend(output_lines(&format!("{run} stderr"), err));
    for line in lines {
        if success {
            tracing::info!("{line}");
        } else {
            tracing::warn!("{line}");
        }
    }
}

fn describe(ending: &Ending, timeout: Duration) -> String {
    use std::os::unix::process::ExitStatusExt;
    match ending {
        Ending::Exited(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => format!("ended ({status})"),
        },
        Ending::TimedOut => format!(
            "timed out ({}), killed",
            humantime::format_duration(timeout)
        ),
        Ending::Stopped => "killed at shutdown".to_owned(),
        Ending::WaitFailed(err) => format!("could not be waited for ({err})"),
    }
}

/// The log lines for one stream's kept output, each after `prefix`, with
/// control characters escaped.
fn output_lines(prefix: &str, captured: &Captured) -> Vec<String> {
    let mut lines: Vec<String> = captured
        .lines()
        .into_iter()
        .map(|line| format!("{prefix}: {}", crate::log::escape_controls(&line)))
        .collect();
    if captured.truncated {
        lines.push(format!("{prefix}: (more output discarded)"));
    }
    lines
}

/// The hook's program, to name it in the log.
fn program(hook: &HookConfig) -> &str {
    hook.run.first().map_or("(none)", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cause, Kind, Severity, Timestamp, What};
    use std::collections::HashMap;
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::time::UNIX_EPOCH;

    /// A hook running `script` under /bin/sh with the test directory as `$1`.
    fn sh_hook(on: &[Kind], script: &str, dir: &Path, timeout_ms: u64) -> HookConfig {
        let run = ["/bin/sh", "-c", script, "hook"]
            .into_iter()
            .map(str::to_owned)
            .chain([dir.display().to_string()])
            .collect();
        HookConfig {
            on: on.to_vec(),
            run,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn argv_hook(on: &[Kind], run: &[&str], timeout_ms: u64) -> HookConfig {
        HookConfig {
            on: on.to_vec(),
            run: run.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn event(kind: Kind, seq: u64) -> Arc<Event> {
        Arc::new(Event {
            seq,
            time: Timestamp(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            severity: kind.default_severity(),
            what: What::new("lagg0", kind),
        })
    }

    fn full_failover() -> Arc<Event> {
        Arc::new(Event {
            seq: 42,
            time: Timestamp(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            severity: Severity::Warning,
            what: What {
                port: Some("em0".into()),
                from: Some("em0".into()),
                to: Some("bge0".into()),
                cause: Some(Cause::LinkDown),
                outage_ms: Some(12),
                ..What::new("lagg0", Kind::Failover)
            },
        })
    }

    /// Polls the counters until `done` holds; fails the test after 10 s.
    async fn wait_for_stats(handle: &HookHandle, done: impl Fn(&HookStats) -> bool) -> HookStats {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = handle.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "gave up waiting: {stats:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_for_pid(path: &Path) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.ends_with('\n') {
                return text.trim().parse().expect("a pid");
            }
            assert!(Instant::now() < deadline, "no pid in {}", path.display());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The process no longer exists: it was reaped.
    fn reaped(pid: i32) -> bool {
        nix::sys::signal::kill(Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH)
    }

    /// The process is dead: reaped, or a zombie waiting for its (new) parent.
    fn dead(pid: i32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        reaped(pid) || state.starts_with('Z')
    }

    #[tokio::test]
    async fn hook_gets_the_event_in_its_environment_and_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"env > "$1/env"; cat > "$1/stdin""#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 5000)]);
        let event = full_failover();
        handle.dispatch(event.clone());
        wait_for_stats(&handle, |s| s.succeeded == 1).await;

        let env_text = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let env: HashMap<&str, &str> = env_text
            .lines()
            .filter_map(|line| line.split_once('='))
            .filter(|(name, _)| ENV_NAMES.contains(name))
            .collect();
        let expected: HashMap<&str, &str> = [
            ("LAGGMOND_EVENT", "failover"),
            ("LAGGMOND_GROUP", "lagg0"),
            ("LAGGMOND_PORT", "em0"),
            ("LAGGMOND_FROM", "em0"),
            ("LAGGMOND_TO", "bge0"),
            ("LAGGMOND_CAUSE", "link_down"),
            ("LAGGMOND_SEQ", "42"),
            ("LAGGMOND_SEVERITY", "warning"),
            ("LAGGMOND_OUTAGE_MS", "12"),
            ("LAGGMOND_TIME", "2023-11-14T22:13:20.123Z"),
        ]
        .into_iter()
        .collect();
        assert_eq!(env, expected);

        let stdin = std::fs::read_to_string(dir.path().join("stdin")).unwrap();
        assert_eq!(stdin.matches('\n').count(), 1, "{stdin:?}");
        assert!(stdin.ends_with('\n'));
        let parsed: Event = serde_json::from_str(&stdin).unwrap();
        assert_eq!(parsed, *event);
        handle.shutdown().await;
    }

    #[test]
    fn unset_fields_are_not_passed_and_inherited_values_are_removed() {
        let hook = argv_hook(&[Kind::ConfigReloaded], &["true"], 1000);
        let event = Event {
            what: What::global(Kind::ConfigReloaded),
            ..(*event(Kind::ConfigReloaded, 3)).clone()
        };
        let cmd = command(&hook, &event).expect("a command");
        let envs: HashMap<String, Option<String>> = cmd
            .as_std()
            .get_envs()
            .map(|(k, v)| {
                let v = v.map(|v| v.to_string_lossy().into_owned());
                (k.to_string_lossy().into_owned(), v)
            })
            .collect();
        for name in ENV_NAMES {
            assert!(envs.contains_key(name), "{name} neither set nor removed");
        }
        assert_eq!(envs["LAGGMOND_GROUP"], None);
        assert_eq!(envs["LAGGMOND_PORT"], None);
        assert_eq!(envs["LAGGMOND_OUTAGE_MS"], None);
        assert_eq!(envs["LAGGMOND_EVENT"].as_deref(), Some("config_reloaded"));
        assert_eq!(envs["LAGGMOND_SEQ"].as_deref(), Some("3"));
    }

    #[test]
    fn hooks_may_run_on_the_path_kinds() {
        let text = "groups:\n  lagg0:\n    driver: none\n    ports: [em0]\n\
                    hooks:\n  - on: [path_down, path_up, all_paths_down, paths_recovered]\n    \
                    run: [/bin/true]\n";
        let config = crate::config::Config::parse(text, std::path::Path::new("laggmond.yml"))
            .expect("the path kinds are event kinds");
        assert_eq!(
            config.hooks[0].on,
            [
                Kind::PathDown,
                Kind::PathUp,
                Kind::AllPathsDown,
                Kind::PathsRecovered
            ]
        );
        let severities = "log:\n  severities:\n    all_paths_down: alert\n\
                          groups:\n  lagg0:\n    driver: none\n    ports: [em0]\n";
        let config = crate::config::Config::parse(severities, std::path::Path::new("l.yml"))
            .expect("the path kinds have severities");
        assert_eq!(config.log.severity(Kind::AllPathsDown), Severity::Alert);
    }

    #[test]
    fn path_fields_reach_the_environment() {
        let down = Event {
            what: What {
                targets: Some(vec!["192.0.2.1".into(), "192.0.2.2".into()]),
                missed: Some(3),
                ..What::port("lagg0", Kind::PathDown, "em0")
            },
            ..(*event(Kind::PathDown, 4)).clone()
        };
        let env: HashMap<&str, String> = environment(&down).into_iter().collect();
        assert_eq!(env["LAGGMOND_EVENT"], "path_down");
        assert_eq!(env["LAGGMOND_TARGETS"], "192.0.2.1 192.0.2.2");
        assert_eq!(env["LAGGMOND_MISSED"], "3");
        assert!(!env.contains_key("LAGGMOND_RTT_MS"));
        let up = Event {
            what: What {
                rtt_ms: Some(2),
                ..What::port("lagg0", Kind::PathUp, "em0")
            },
            ..(*event(Kind::PathUp, 5)).clone()
        };
        let env: HashMap<&str, String> = environment(&up).into_iter().collect();
        assert_eq!(env["LAGGMOND_RTT_MS"], "2");
        assert!(!env.contains_key("LAGGMOND_TARGETS"));
    }

    #[test]
    fn a_hook_without_a_program_has_no_command() {
        let hook = argv_hook(&[Kind::Failover], &[], 1000);
        assert!(command(&hook, &event(Kind::Failover, 1)).is_none());
    }

    #[tokio::test]
    async fn hooks_run_only_for_their_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"echo "$LAGGMOND_EVENT" >> "$1/ran""#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 5000)]);
        handle.dispatch(event(Kind::PortUp, 1));
        handle.dispatch(event(Kind::Failover, 2));
        // A matching port_up run would have been queued first, so it would
        // have been started by the time the failover run succeeded.
        let stats = wait_for_stats(&handle, |s| s.succeeded == 1).await;
        assert_eq!(stats.started, 1);
        let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
        assert_eq!(ran, "failover\n");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn reconfigured_hooks_apply_to_later_events() {
        let dir = tempfile::tempdir().unwrap();
        let old = sh_hook(&[Kind::PortUp], r#"echo old >> "$1/ran""#, dir.path(), 5000);
        let new = sh_hook(
            &[Kind::Failover],
            r#"echo new >> "$1/ran""#,
            dir.path(),
            5000,
        );
        let mut handle = spawn(vec![old]);
        handle.reconfigure(vec![new]);
        handle.dispatch(event(Kind::PortUp, 1));
        handle.dispatch(event(Kind::Failover, 2));
        let stats = wait_for_stats(&handle, |s| s.succeeded == 1).await;
        assert_eq!(stats.started, 1);
        let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
        assert_eq!(ran, "new\n");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn timeout_kills_and_reaps_the_hook() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"echo $$ > "$1/pid"; exec sleep 30"#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 200)]);
        let started = Instant::now();
        handle.dispatch(event(Kind::Failover, 1));
        let pid = wait_for_pid(&dir.path().join("pid")).await;
        let stats = wait_for_stats(&handle, |s| s.timed_out == 1).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!((stats.succeeded, stats.failed), (0, 0));
        assert!(reaped(pid), "hook {pid} still exists");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn timeout_kills_what_the_hook_started_too() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"sleep 30 & echo $! > "$1/pid"; wait"#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 200)]);
        handle.dispatch(event(Kind::Failover, 1));
        let pid = wait_for_pid(&dir.path().join("pid")).await;
        wait_for_stats(&handle, |s| s.timed_out == 1).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead(pid) {
            assert!(
                Instant::now() < deadline,
                "background process {pid} survived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn at_most_four_hooks_run_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"echo start >> "$1/log"; sleep 0.3; echo end >> "$1/log""#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 5000)]);
        for seq in 1..=6 {
            handle.dispatch(event(Kind::Failover, seq));
        }
        wait_for_stats(&handle, |s| s.succeeded == 6).await;
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        let (mut running, mut most) = (0i32, 0i32);
        for line in log.lines() {
            running += if line == "start" { 1 } else { -1 };
            most = most.max(running);
        }
        assert_eq!(log.lines().count(), 12, "{log}");
        assert_eq!(most, MAX_RUNNING as i32, "{log}");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn queue_overflow_is_dropped_and_counted() {
        let mut handle = spawn(vec![argv_hook(&[Kind::Failover], &["true"], 5000)]);
        // No await in between: the hook task cannot take anything yet, so the
        // queue holds exactly its capacity.
        for seq in 0..70 {
            handle.dispatch(event(Kind::Failover, seq));
        }
        assert_eq!(handle.stats().dropped, 70 - QUEUE_CAPACITY as u64);
        let stats = wait_for_stats(&handle, |s| s.succeeded == QUEUE_CAPACITY as u64).await;
        assert_eq!(stats.started, QUEUE_CAPACITY as u64);
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_missing_program_counts_as_failed() {
        let mut handle = spawn(vec![
            argv_hook(&[Kind::Failover], &["/nonexistent/laggmond-hook"], 1000),
            argv_hook(&[Kind::Failover], &[], 1000),
        ]);
        handle.dispatch(event(Kind::Failover, 1));
        let stats = wait_for_stats(&handle, |s| s.failed == 2).await;
        assert_eq!((stats.started, stats.succeeded), (2, 0));
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_flooding_hook_completes() {
        let script = "yes | head -c 100000000";
        let hook = sh_hook(&[Kind::Failover], script, Path::new("."), 20_000);
        let mut handle = spawn(vec![hook]);
        handle.dispatch(event(Kind::Failover, 1));
        let stats = wait_for_stats(&handle, |s| s.succeeded + s.failed + s.timed_out == 1).await;
        assert_eq!(stats.succeeded, 1, "{stats:?}");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn an_endless_flood_is_killed_at_the_timeout() {
        let mut handle = spawn(vec![argv_hook(&[Kind::Failover], &["yes"], 300)]);
        handle.dispatch(event(Kind::Failover, 1));
        wait_for_stats(&handle, |s| s.timed_out == 1).await;
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn capture_keeps_only_the_start_of_a_flood() {
        let flood = tokio::io::repeat(b'y').take(100_000_000);
        let mut captured = Captured::default();
        capture(Some(flood), &mut captured).await;
        assert_eq!(captured.kept.len(), MAX_OUTPUT_BYTES);
        assert!(captured.truncated);
    }

    #[test]
    fn capture_keeps_ten_lines() {
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let mut captured = Captured::default();
        captured.absorb(text.as_bytes());
        assert_eq!(captured.lines().len(), MAX_OUTPUT_LINES);
        assert_eq!(captured.lines()[9], "line 10");
        assert!(captured.truncated);
        let lines = output_lines("hook x #1 stdout", &captured);
        assert_eq!(lines[0], "hook x #1 stdout: line 1");
        assert_eq!(lines[10], "hook x #1 stdout: (more output discarded)");

        let mut exact = Captured::default();
        exact.absorb(b"a\nb\n");
        assert!(!exact.truncated);
        assert_eq!(output_lines("e", &exact), ["e: a", "e: b"]);
    }

    #[test]
    fn endings_are_described_for_the_log() {
        let timeout = Duration::from_secs(10);
        let exited = Ending::Exited(ExitStatus::from_raw(3 << 8));
        assert_eq!(describe(&exited, timeout), "exited with status 3");
        let killed = Ending::Exited(ExitStatus::from_raw(9));
        assert_eq!(describe(&killed, timeout), "killed by signal 9");
        assert_eq!(
            describe(&Ending::TimedOut, timeout),
            "timed out (10s), killed"
        );
    }

    #[tokio::test]
    async fn shutdown_kills_running_hooks_and_drops_queued_runs() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"echo $$ > "$1/pid.$LAGGMOND_SEQ"; exec sleep 30"#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 30_000)]);
        for seq in 1..=6 {
            handle.dispatch(event(Kind::Failover, seq));
        }
        let mut pids = Vec::new();
        for seq in 1..=4 {
            pids.push(wait_for_pid(&dir.path().join(format!("pid.{seq}"))).await);
        }
        let shared = handle.shared.clone();
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .expect("shutdown within 5 s");
        let stats = shared.counters.snapshot();
        assert_eq!((stats.started, stats.failed, stats.dropped), (4, 4, 2));
        for pid in pids {
            assert!(reaped(pid), "hook {pid} still exists");
        }
    }

    /// SIGKILLs a process a test recorded, when the test ends, so a failing
    /// test leaves nothing behind.
    struct KillOnDrop(i32);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }

    async fn wait_dead(pid: i32, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dead(pid) {
            assert!(Instant::now() < deadline, "{what} {pid} survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn what_an_exited_hook_left_running_is_killed_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"sleep 3173 & echo $! > "$1/pid"; exit 0"#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 500)]);
        handle.dispatch(event(Kind::Failover, 1));
        let pid = wait_for_pid(&dir.path().join("pid")).await;
        let _guard = KillOnDrop(pid);
        let stats = wait_for_stats(&handle, |s| s.succeeded == 1).await;
        assert_eq!(stats.timed_out, 0, "{stats:?}");
        wait_dead(pid, "background process").await;
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_kills_what_an_exited_hook_left_running() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"sleep 3174 & echo $! > "$1/pid"; exit 0"#;
        let mut handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 60_000)]);
        handle.dispatch(event(Kind::Failover, 1));
        let pid = wait_for_pid(&dir.path().join("pid")).await;
        let _guard = KillOnDrop(pid);
        wait_for_stats(&handle, |s| s.succeeded == 1).await;
        assert!(!dead(pid), "background process {pid} died on its own");
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .expect("shutdown within 5 s");
        wait_dead(pid, "background process").await;
    }

    #[tokio::test]
    async fn port_and_failover_runs_are_not_dropped_behind_config_runs() {
        let dir = tempfile::tempdir().unwrap();
        let kinds = [Kind::ConfigReloaded, Kind::Failover, Kind::PortDown];
        let script = r#"echo "$LAGGMOND_EVENT" >> "$1/ran""#;
        let mut handle = spawn(vec![sh_hook(&kinds, script, dir.path(), 5000)]);
        // No await in between: the hook task takes nothing meanwhile.
        for seq in 0..QUEUE_CAPACITY as u64 {
            handle.dispatch(event(Kind::ConfigReloaded, seq));
        }
        for seq in 100..105 {
            handle.dispatch(event(Kind::Failover, seq));
            handle.dispatch(event(Kind::PortDown, seq + 10));
        }
        // The queue is full of config and port runs; config runs are
        // dropped, not the port runs they would displace.
        handle.dispatch(event(Kind::ConfigReloaded, 200));
        assert_eq!(handle.stats().dropped, 11);
        let capacity = QUEUE_CAPACITY as u64;
        let stats = wait_for_stats(&handle, |s| s.succeeded == capacity).await;
        assert_eq!((stats.started, stats.failed), (capacity, 0), "{stats:?}");
        let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
        let count = |kind: &str| ran.lines().filter(|line| *line == kind).count();
        assert_eq!(count("failover"), 5, "{ran}");
        assert_eq!(count("port_down"), 5, "{ran}");
        assert_eq!(count("config_reloaded"), QUEUE_CAPACITY - 10, "{ran}");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn port_runs_are_dropped_only_when_no_config_run_is_queued() {
        let mut handle = spawn(vec![argv_hook(&[Kind::PortUp], &["true"], 5000)]);
        for seq in 0..=QUEUE_CAPACITY as u64 {
            handle.dispatch(event(Kind::PortUp, seq));
        }
        assert_eq!(handle.stats().dropped, 1);
        handle.shutdown().await;
    }

    #[test]
    fn every_dropped_run_is_counted_in_a_report() {
        let job = Job {
            hook: Arc::new(argv_hook(&[Kind::Failover], &["/bin/hook"], 1000)),
            event: event(Kind::Failover, 7),
        };
        let mut tally = DropTally::default();
        for _ in 0..3 {
            tally.note(&job);
        }
        let first = tally
            .report(false)
            .expect("the first drops are reported at once");
        assert!(first.contains(": 3 run(s) dropped"), "{first}");
        assert!(first.contains("/bin/hook for failover event #7"), "{first}");
        tally.note(&job);
        tally.note(&job);
        assert_eq!(
            tally.report(false),
            None,
            "reported again within the interval"
        );
        let last = tally.report(true).expect("the rest is reported at the end");
        assert!(
            last.contains(": 2 run(s) dropped in the last 0 s"),
            "{last}"
        );
        assert_eq!(tally.report(true), None, "nothing left to report");
    }

    #[test]
    fn control_characters_in_hook_output_are_escaped() {
        assert_eq!(
            crate::log::escape_controls("a\rb\u{1b}[31mc\td\u{7f}é"),
            "a\\rb\\u{1b}[31mc\\td\\u{7f}é"
        );
        let mut captured = Captured::default();
        captured.absorb(b"ok\r\nforged\rreal\x1b[2K\n\xff\n");
        assert_eq!(
            output_lines("h", &captured),
            ["h: ok", "h: forged\\rreal\\u{1b}[2K", "h: \u{fffd}"]
        );
    }
}
