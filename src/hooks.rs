//! Hooks: operator programs run on matching events.
//!
//! The daemon loop must never wait for a hook, so the machinery lives in its
//! own task: [`HookHandle::dispatch`] only matches the event against the
//! configured hooks and puts runs into a bounded queue; the hook task takes
//! runs from it, at most [`MAX_RUNNING`] at a time. Each run gets the event in
//! `LAGGMOND_*` variables and as one JSON line on stdin, is killed with its
//! whole process group at its timeout, and its exit status and first lines of
//! output go to the log. No child outlives its run: every child is reaped,
//! and `kill_on_drop` covers the paths where a run is torn down early.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinSet};

use crate::config::HookConfig;
use crate::event::Event;

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

/// Every variable a hook may receive. All are removed from the inherited
/// environment first, so a stale value of the daemon's own never leaks.
const ENV_NAMES: [&str; 10] = [
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
struct Counters {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
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

/// The daemon's side of the hook task: hands it events, reconfigures it,
/// reads its counters and stops it. Dropped without [`HookHandle::shutdown`],
/// the task still runs what is queued and lets running hooks finish.
pub struct HookHandle {
    /// The hooks new events are matched against.
    hooks: Mutex<Arc<[Arc<HookConfig>]>>,
    queue: mpsc::Sender<Job>,
    /// Set once the queue overflowed, so a burst logs one warning, not one
    /// per dropped run; cleared when the queue takes runs again.
    overflowing: AtomicBool,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the hook task with `hooks`. Must be called inside a tokio runtime.
pub fn spawn(hooks: Vec<HookConfig>) -> HookHandle {
    let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
    let (stop, stop_rx) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    let task = tokio::spawn(run_queue(jobs, stop_rx, counters.clone()));
    HookHandle {
        hooks: Mutex::new(shared(hooks)),
        queue,
        overflowing: AtomicBool::new(false),
        counters,
        stop,
        task,
    }
}

fn shared(hooks: Vec<HookConfig>) -> Arc<[Arc<HookConfig>]> {
    hooks.into_iter().map(Arc::new).collect()
}

impl HookHandle {
    /// Queues a run of every hook whose `on` names the event's kind. Never
    /// waits: when the queue is full the run is dropped, counted and logged.
    pub fn dispatch(&self, event: Arc<Event>) {
        let hooks = self.current_hooks();
        let matching = hooks.iter().filter(|h| h.on.contains(&event.what.kind));
        for hook in matching {
            let job = Job {
                hook: hook.clone(),
                event: event.clone(),
            };
            match self.queue.try_send(job) {
                Ok(()) => self.note_queue_accepting(),
                Err(err) => self.note_dropped(&err),
            }
        }
    }

    /// Replaces the hooks. Later events are matched against the new ones;
    /// runs already queued or running finish as they were.
    pub fn reconfigure(&self, hooks: Vec<HookConfig>) {
        let hooks = shared(hooks);
        match self.hooks.lock() {
            Ok(mut current) => *current = hooks,
            Err(poisoned) => *poisoned.into_inner() = hooks,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> HookStats {
        self.counters.snapshot()
    }

    /// Stops the hook task: queued runs are dropped, running hooks are
    /// killed at once and reaped. Returns when no child remains.
    pub async fn shutdown(self) {
        // `send_replace` stores the value even if the task already ended and
        // dropped its receiver, where `send` would fail.
        self.stop.send_replace(true);
        if let Err(err) = self.task.await {
            tracing::error!("hook task ended abnormally: {err}");
        }
    }

    fn current_hooks(&self) -> Arc<[Arc<HookConfig>]> {
        match self.hooks.lock() {
            Ok(hooks) => hooks.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn note_queue_accepting(&self) {
        if self.overflowing.swap(false, Ordering::Relaxed) {
            tracing::info!("hook queue accepts runs again");
        }
    }

    fn note_dropped(&self, err: &mpsc::error::TrySendError<Job>) {
        Counters::add(&self.counters.dropped, 1);
        let job = match err {
            mpsc::error::TrySendError::Full(job) => job,
            mpsc::error::TrySendError::Closed(job) => {
                tracing::warn!(
                    "hook task is gone, {} not run for event #{}",
                    program(&job.hook),
                    job.event.seq
                );
                return;
            }
        };
        if !self.overflowing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "hook queue full ({QUEUE_CAPACITY} waiting), dropping runs, first {} for event #{}",
                program(&job.hook),
                job.event.seq
            );
        }
    }
}

/// The hook task: takes runs from the queue while a slot is free, until the
/// daemon stops it or drops the handle.
async fn run_queue(
    mut jobs: mpsc::Receiver<Job>,
    mut stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop_requested(&mut stop) => break,
            Some(done) = running.join_next(), if !running.is_empty() => report_join(done),
            job = jobs.recv(), if running.len() < MAX_RUNNING => match job {
                Some(job) => {
                    running.spawn(run_job(job, stop.clone(), counters.clone()));
                }
                None => break,
            },
        }
    }
    discard_queued(&mut jobs, &counters);
    // Runs see the stop themselves and kill their children; without a stop
    // (the handle was dropped) they finish on their own terms.
    while let Some(done) = running.join_next().await {
        report_join(done);
    }
}

/// Resolves once a stop was asked for; never when the handle was dropped
/// without one.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn report_join(done: Result<(), JoinError>) {
    if let Err(err) = done {
        tracing::error!("hook run ended abnormally: {err}");
    }
}

fn discard_queued(jobs: &mut mpsc::Receiver<Job>, counters: &Counters) {
    jobs.close();
    let mut discarded = 0;
    while jobs.try_recv().is_ok() {
        discarded += 1;
    }
    if discarded > 0 {
        Counters::add(&counters.dropped, discarded);
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

/// One run, from spawn to reaping and logging.
async fn run_job(job: Job, mut stop: watch::Receiver<bool>, counters: Arc<Counters>) {
    Counters::add(&counters.started, 1);
    let started_at = Instant::now();
    let mut child = match command(&job.hook, &job.event).map(|mut c| c.spawn()) {
        Some(Ok(child)) => child,
        Some(Err(err)) => return spawn_failed(&job, &err.to_string(), &counters),
        None => return spawn_failed(&job, "no program configured", &counters),
    };
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = Captured::default();
    let mut err = Captured::default();
    let (exited_tx, exited_rx) = oneshot::channel();
    let waiting = async {
        let ending = wait_or_kill(&mut child, job.hook.timeout, &mut stop).await;
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
    count(&ending, &counters);
    report(&job, &ending, started_at.elapsed(), &out, &err);
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

fn spawn_failed(job: &Job, why: &str, counters: &Counters) {
    Counters::add(&counters.failed, 1);
    tracing::warn!(
        "hook {} #{} for {} could not start: {why}",
        program(&job.hook),
        job.event.seq,
        job.event.what.kind
    );
}

/// Waits for the child until its timeout or a stop, then kills its process
/// group; in every case the child is reaped before this returns (unless
/// waiting itself fails).
async fn wait_or_kill(
    child: &mut Child,
    timeout: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Ending {
    let ending = tokio::select! {
        status = child.wait() => {
            return match status {
                Ok(status) => Ending::Exited(status),
                Err(err) => Ending::WaitFailed(err),
            };
        }
        () = tokio::time::sleep(timeout) => Ending::TimedOut,
        () = stop_requested(stop) => Ending::Stopped,
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

fn count(ending: &Ending, counters: &Counters) {
    let counter = match ending {
        Ending::Exited(status) if status.success() => &counters.succeeded,
        Ending::TimedOut => &counters.timed_out,
        _ => &counters.failed,
    };
    Counters::add(counter, 1);
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

/// The log lines for one stream's kept output, each after `prefix`.
fn output_lines(prefix: &str, captured: &Captured) -> Vec<String> {
    let mut lines: Vec<String> = captured
        .lines()
        .into_iter()
        .map(|line| format!("{prefix}: {line}"))
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
        let handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 5000)]);
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
    fn a_hook_without_a_program_has_no_command() {
        let hook = argv_hook(&[Kind::Failover], &[], 1000);
        assert!(command(&hook, &event(Kind::Failover, 1)).is_none());
    }

    #[tokio::test]
    async fn hooks_run_only_for_their_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"echo "$LAGGMOND_EVENT" >> "$1/ran""#;
        let handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 5000)]);
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
        let handle = spawn(vec![old]);
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
        let handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 200)]);
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
        let handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 200)]);
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
        let handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 5000)]);
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
        let handle = spawn(vec![argv_hook(&[Kind::Failover], &["true"], 5000)]);
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
        let handle = spawn(vec![
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
        let handle = spawn(vec![hook]);
        handle.dispatch(event(Kind::Failover, 1));
        let stats = wait_for_stats(&handle, |s| s.succeeded + s.failed + s.timed_out == 1).await;
        assert_eq!(stats.succeeded, 1, "{stats:?}");
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn an_endless_flood_is_killed_at_the_timeout() {
        let handle = spawn(vec![argv_hook(&[Kind::Failover], &["yes"], 300)]);
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
        let handle = spawn(vec![sh_hook(&[Kind::Failover], script, dir.path(), 30_000)]);
        for seq in 1..=6 {
            handle.dispatch(event(Kind::Failover, seq));
        }
        let mut pids = Vec::new();
        for seq in 1..=4 {
            pids.push(wait_for_pid(&dir.path().join(format!("pid.{seq}"))).await);
        }
        let counters = handle.counters.clone();
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .expect("shutdown within 5 s");
        let stats = counters.snapshot();
        assert_eq!((stats.started, stats.failed, stats.dropped), (4, 4, 2));
        for pid in pids {
            assert!(reaped(pid), "hook {pid} still exists");
        }
    }
}
