//! The FreeBSD platform task: one loop around the routing socket, the
//! kernel calls and the daemon's channels.
//!
//! The loop waits for a routing message, a daemon request or the end of a
//! reorder window. After a message it takes every message already queued
//! (up to a batch), so that a burst (a reorder, a flapping cable) costs one
//! re-read per lagg, then performs the reads the [`LaggTable`] asks for and
//! sends what it reports. Kernel calls are ioctls that return at once, so
//! they are made inline; a reorder runs as one burst.
//!
//! The loop is the same over the real kernel ([`spawn`], FreeBSD only)
//! and over any [`LaggKernel`] with routing messages from a channel
//! ([`spawn_with`], every OS), which is how it is tested.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, Interval, MissedTickBehavior};

use super::enforce;
use super::kernel::LaggKernel;
use super::table::{LaggTable, SettleTime};
#[cfg(target_os = "freebsd")]
use crate::platform::context;
use crate::platform::{Answer, Flow, PlatformHandle, Request, Update, REQUEST_QUEUE, UPDATE_QUEUE};

/// How the FreeBSD platform is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Receive buffer of the routing socket, in bytes (`SO_RCVBUF`). The
    /// kernel's default of 8 KiB overflows during bursts of route churn,
    /// since every routing message reaches the socket.
    pub recv_buffer: usize,
    /// How long the link events a reorder causes are held back.
    pub settle: SettleTime,
    /// How often every lagg is read again. Adding or removing a port sends
    /// no routing message unless the port's link bounces, so this is what
    /// notices membership (and so MASTER) changes made with `ifconfig`;
    /// `None` leaves that to the daemon's periodic resync. Zero counts as
    /// `None`.
    pub lagg_poll: Option<Duration>,
}

impl Default for Options {
    /// 256 KiB of receive buffer; reorder windows of 2 s to 10 s (a port
    /// whose MAC is reprogrammed may renegotiate its link for a few
    /// seconds); laggs read every 5 s (one ioctl each).
    fn default() -> Options {
        Options {
            recv_buffer: 256 * 1024,
            settle: SettleTime {
                min: Duration::from_secs(2),
                max: Duration::from_secs(10),
            },
            lagg_poll: Some(Duration::from_secs(5)),
        }
    }
}

/// Messages taken from the socket in one go before the re-reads.
const BATCH: usize = 256;

/// Rounds of reads per wakeup; each round's results may ask for more.
const WORK_ROUNDS: usize = 8;

/// Consecutive failed socket reads after which the socket is deemed
/// broken and the task stops.
const MAX_READ_ERRORS: u32 = 16;

/// Starts the platform task over `kernel`, with routing messages (or read
/// errors such as `ENOBUFS`) from `messages`, as a task of the current
/// tokio runtime. When `messages` closes, the task goes on serving
/// requests. It ends when the daemon drops the handle.
pub fn spawn_with<K>(
    kernel: K,
    messages: mpsc::Receiver<io::Result<Vec<u8>>>,
    options: &Options,
) -> io::Result<PlatformHandle>
where
    K: LaggKernel + Send + 'static,
{
    start(kernel, messages, options)
}

/// Starts the platform on the running system: opens the routing socket
/// (`socket(PF_ROUTE, SOCK_RAW, 0)`, non-blocking, receive buffer raised,
/// `SO_RERROR` where the kernel has it) and the ioctl socket here, so that
/// their failures are returned, then runs the task on the current tokio
/// runtime.
#[cfg(target_os = "freebsd")]
pub fn spawn(options: Options) -> io::Result<PlatformHandle> {
    ensure_runtime()?;
    let socket = super::sys::open_route_socket(options.recv_buffer)
        .map_err(context("opening the routing socket"))?;
    if !socket.overflow_reported {
        tracing::info!(
            "the kernel does not report routing-socket overflows (no SO_RERROR); \
             lost messages are only caught up by the periodic resync"
        );
    }
    let kernel = super::sys::SysKernel::open().map_err(context("opening the ioctl socket"))?;
    let source = socket::RouteSocketSource::new(socket.fd)
        .map_err(context("registering the routing socket"))?;
    start(kernel, source, &options)
}

fn ensure_runtime() -> io::Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other(
            "the FreeBSD platform must be started inside a tokio runtime",
        )),
    }
}

fn start<K, S>(kernel: K, source: S, options: &Options) -> io::Result<PlatformHandle>
where
    K: LaggKernel + Send + 'static,
    S: RouteSource,
{
    ensure_runtime()?;
    let (update_tx, update_rx) = mpsc::channel(UPDATE_QUEUE);
    let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let lagg_poll = options
        .lagg_poll
        .filter(|period| !period.is_zero())
        .map(|period| {
            let mut poll = tokio::time::interval_at(Instant::now() + period, period);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            poll
        });
    let foreign_messages = Arc::new(AtomicU64::new(0));
    let task = LaggTask {
        kernel,
        lagg_poll,
        source,
        source_open: true,
        read_errors: 0,
        table: LaggTable::new(options.settle),
        foreign: foreign_messages.clone(),
        outbox: Vec::new(),
        pending: Vec::new(),
        updates: update_tx,
        requests: request_rx,
    };
    tokio::spawn(task.run());
    Ok(PlatformHandle {
        updates: update_rx,
        requests: request_tx,
        foreign_messages,
    })
}

/// Where routing messages come from: the routing socket, or a channel.
trait RouteSource: Send + 'static {
    /// The next message (one read); `None` when there will be no more.
    /// Cancel-safe.
    fn next(&mut self) -> impl Future<Output = Option<io::Result<Vec<u8>>>> + Send;

    /// The next message if one is queued, without waiting.
    fn try_next(&mut self) -> Option<io::Result<Vec<u8>>>;
}

impl RouteSource for mpsc::Receiver<io::Result<Vec<u8>>> {
    async fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        self.recv().await
    }

    fn try_next(&mut self) -> Option<io::Result<Vec<u8>>> {
        self.try_recv().ok()
    }
}

/// A SetActive, RemovePort or AddPort whose answer waits for its lagg's
/// settle window to close, so that it follows the updates that show the
/// outcome.
struct PendingAnswer {
    /// The lagg whose window must close first.
    lagg: String,
    answer: Answer,
}

/// What woke the task up.
enum Wakeup {
    Read(Option<io::Result<Vec<u8>>>),
    Request(Option<Request>),
    Deadline,
    LaggPoll,
}

struct LaggTask<K, S> {
    kernel: K,
    /// When to read every lagg again.
    lagg_poll: Option<Interval>,
    source: S,
    /// `false` once the message source has ended.
    source_open: bool,
    read_errors: u32,
    table: LaggTable,
    /// The table's count of contradicted messages, published for the
    /// daemon's metrics.
    foreign: Arc<AtomicU64>,
    /// Updates not sent yet, in order; answers given at once go here too,
    /// so they follow the updates queued before them.
    outbox: Vec<Update>,
    pending: Vec<PendingAnswer>,
    updates: mpsc::Sender<Update>,
    requests: mpsc::Receiver<Request>,
}

impl<K, S> LaggTask<K, S>
where
    K: LaggKernel + Send + 'static,
    S: RouteSource,
{
    async fn run(mut self) {
        while self.step().await == Flow::Continue {}
        tracing::debug!("FreeBSD platform task stopped");
    }

    /// Does the pending reads, waits for one wakeup and handles it.
    async fn step(&mut self) -> Flow {
        if self.do_work().await == Flow::Stop {
            return Flow::Stop;
        }
        let deadline = self.table.next_deadline(Instant::now().into_std());
        let wakeup = tokio::select! {
            read = self.source.next(), if self.source_open => Wakeup::Read(read),
            request = self.requests.recv() => Wakeup::Request(request),
            () = sleep_until(deadline.map_or_else(Instant::now, Instant::from_std)),
                if deadline.is_some() => Wakeup::Deadline,
            _ = tick(&mut self.lagg_poll), if self.lagg_poll.is_some() => Wakeup::LaggPoll,
        };
        let flow = match wakeup {
            Wakeup::Read(read) => self.on_reads(read),
            Wakeup::Request(request) => self.on_request(request),
            Wakeup::Deadline => Flow::Continue,
            Wakeup::LaggPoll => {
                self.table.reread_laggs();
                Flow::Continue
            }
        };
        self.table.poll(Instant::now().into_std());
        if self.flush().await == Flow::Stop {
            return Flow::Stop;
        }
        flow
    }

    /// Performs the reads the table wants until it wants none.
    async fn do_work(&mut self) -> Flow {
        for _ in 0..WORK_ROUNDS {
            let work = self.table.take_work();
            if work.is_empty() {
                return Flow::Continue;
            }
            if work.resync {
                self.full_read();
            }
            for name in &work.interfaces {
                let read = self.kernel.interface(name);
                self.outbox.extend(self.table.on_interface(name, read));
            }
            for name in &work.laggs {
                let read = self.kernel.read_lagg(name);
                self.outbox.extend(self.table.on_lagg(name, read));
            }
            if self.flush().await == Flow::Stop {
                return Flow::Stop;
            }
        }
        tracing::debug!("more reads wanted; continuing after the next wakeup");
        Flow::Continue
    }

    /// Reads every interface and probes each for a lagg. The messages
    /// queued until now are older than this read and are dropped: applied
    /// after it, they would report past flaps again.
    fn full_read(&mut self) {
        let mut superseded = 0usize;
        while self.source.try_next().is_some() {
            superseded += 1;
        }
        if superseded > 0 {
            tracing::debug!("{superseded} queued routing messages superseded by a full read");
        }
        let interfaces = match self.kernel.interfaces() {
            Ok(interfaces) => interfaces,
            Err(error) => {
                tracing::error!(
                    "cannot list the interfaces: {error}; trying again on the next resync"
                );
                return;
            }
        };
        // SIOCGLAGG fails on every interface that is not a lagg.
        let laggs = interfaces
            .iter()
            .filter_map(|interface| {
                let state = self.kernel.read_lagg(&interface.name).ok()?;
                Some((interface.name.clone(), state))
            })
            .collect();
        tracing::debug!("read all interfaces");
        self.outbox.extend(self.table.on_resync(interfaces, laggs));
    }

    /// A read of the routing socket, then whatever else is queued.
    fn on_reads(&mut self, read: Option<io::Result<Vec<u8>>>) -> Flow {
        let Some(read) = read else {
            tracing::debug!("routing messages ended");
            self.source_open = false;
            return Flow::Continue;
        };
        if self.on_read(read) == Flow::Stop {
            return Flow::Stop;
        }
        for _ in 1..BATCH {
            let Some(read) = self.source.try_next() else {
                break;
            };
            if self.on_read(read) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// One read: a message, or an error. `ENOBUFS` means messages were
    /// lost (`SO_RERROR`): everything is read again.
    fn on_read(&mut self, read: io::Result<Vec<u8>>) -> Flow {
        let error = match read {
            Ok(bytes) => {
                self.read_errors = 0;
                self.outbox.extend(self.table.on_read(&bytes));
                self.confirm_claims();
                return Flow::Continue;
            }
            Err(error) => error,
        };
        if error.raw_os_error() == Some(libc::ENOBUFS) {
            if self.table.messages_lost() {
                tracing::warn!(
                    "routing socket overflowed, messages lost; re-reading all interfaces"
                );
            }
            return Flow::Continue;
        }
        if error.kind() == io::ErrorKind::Interrupted {
            return Flow::Continue;
        }
        self.read_errors += 1;
        if self.read_errors >= MAX_READ_ERRORS {
            tracing::error!("the routing socket keeps failing ({error}); FreeBSD platform stopped");
            return Flow::Stop;
        }
        tracing::warn!("reading the routing socket failed: {error}; re-reading all interfaces");
        self.table.messages_lost();
        Flow::Continue
    }

    /// Reads each interface whose link a message just claimed changed,
    /// right after the message, so that only the kernel's own state moves
    /// a port and the read is as close to the message as it can be.
    fn confirm_claims(&mut self) {
        for claim in self.table.take_claims() {
            let read = self.kernel.interface(&claim.name);
            self.outbox.extend(self.table.on_confirmation(&claim, read));
        }
        self.foreign
            .store(self.table.foreign_messages(), Ordering::Relaxed);
    }

    /// A daemon request, or `None` when the daemon dropped its handle.
    fn on_request(&mut self, request: Option<Request>) -> Flow {
        match request {
            None => return Flow::Stop,
            Some(Request::Resync) => self.table.request_resync(),
            Some(Request::SetActive { group, port }) => self.set_active(group, port),
            Some(Request::SetAdminUp { group, port, up }) => {
                let result = enforce::set_admin_up(&mut self.kernel, &port, up);
                match &result {
                    Ok(()) => tracing::info!("{group}: {port} set administratively {}", updown(up)),
                    Err(error) => {
                        tracing::warn!("{group}: cannot set {port} {}: {error}", updown(up))
                    }
                }
                self.answer(group, port, result);
            }
            Some(Request::RemovePort { group, port }) => self.membership(group, port, false),
            Some(Request::AddPort { group, port }) => self.membership(group, port, true),
        }
        Flow::Continue
    }

    /// Takes `port` out of lagg `lagg` or puts it back (`add`). Like a
    /// reorder, the change bounces the port's link (its MAC is
    /// reprogrammed, and the remaining ports' too when the MASTER leaves),
    /// so it opens a settle window and is answered once that closed,
    /// after the updates that show the outcome. A change made while a
    /// window is open (several ports put back at exit) joins it.
    fn membership(&mut self, lagg: String, port: String, add: bool) {
        let (doing, done) = if add {
            ("adding", "added to")
        } else {
            ("removing", "removed from")
        };
        let op = match enforce::plan_membership(&mut self.kernel, &lagg, &port, add) {
            Ok(Some(op)) => op,
            Ok(None) => {
                self.answer(lagg, port, Ok(()));
                return;
            }
            Err(error) => {
                tracing::warn!("{lagg}: {doing} {port} refused: {error}");
                self.answer(lagg, port, Err(error));
                return;
            }
        };
        if !self.table.is_settling(&lagg) {
            self.table.begin_settle(&lagg, Instant::now().into_std());
        }
        let result = enforce::execute_membership(&mut self.kernel, &lagg, &op);
        match &result {
            Ok(()) => tracing::info!("{lagg}: {port} {done} the lagg ({})", op_ioctl_name(add)),
            Err(error) => tracing::warn!("{lagg}: {doing} {port} failed: {error}"),
        }
        self.answer_after_settle(lagg, port, result);
    }

    /// Makes `port` the MASTER of lagg `lagg`. The answer is sent once the
    /// reorder has settled, after the updates that show its outcome.
    fn set_active(&mut self, lagg: String, port: String) {
        if self.table.is_settling(&lagg) {
            let refusal = format!("{lagg} is still settling after a reorder; try again later");
            self.answer(lagg, port, Err(refusal));
            return;
        }
        let plan = match enforce::plan_restore(&mut self.kernel, &lagg, &port) {
            Ok(plan) => plan,
            Err(error) => {
                self.answer(lagg, port, Err(error));
                return;
            }
        };
        if plan.is_empty() {
            self.answer(lagg, port, Ok(()));
            return;
        }
        let steps: Vec<String> = plan.iter().map(ToString::to_string).collect();
        tracing::info!("{lagg}: making {port} MASTER: {}", steps.join(", "));
        self.table.begin_settle(&lagg, Instant::now().into_std());
        let result = enforce::execute_restore(&mut self.kernel, &lagg, &port, &plan);
        if let Err(error) = &result {
            tracing::warn!("{lagg}: making {port} MASTER failed: {error}");
        }
        self.answer_after_settle(lagg, port, result);
    }

    /// Queues the answer about `port` of lagg `lagg` until the lagg's
    /// reorder window closes: it goes out after the updates that show
    /// what the change did.
    fn answer_after_settle(&mut self, lagg: String, port: String, result: Result<(), String>) {
        self.pending.push(PendingAnswer {
            lagg: lagg.clone(),
            answer: Answer {
                group: lagg,
                port,
                result,
            },
        });
    }

    /// Answers a request at once, behind the updates already queued.
    fn answer(&mut self, group: String, port: String, result: Result<(), String>) {
        self.outbox.push(Update::Answer(Answer {
            group,
            port,
            result,
        }));
    }

    /// Sends the queued updates, then the answers of the reorders that
    /// have settled.
    async fn flush(&mut self) -> Flow {
        for update in std::mem::take(&mut self.outbox) {
            if self.updates.send(update).await.is_err() {
                return Flow::Stop;
            }
        }
        for lagg in self.table.take_settled() {
            let (done, waiting) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|pending| pending.lagg == lagg);
            self.pending = waiting;
            for PendingAnswer { answer, .. } in done {
                if self.updates.send(Update::Answer(answer)).await.is_err() {
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }
}

/// The next tick of `interval`; never ready without one.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The ioctl a membership change uses, for the log.
fn op_ioctl_name(add: bool) -> &'static str {
    if add {
        "SIOCSLAGGPORT"
    } else {
        "SIOCSLAGGDELPORT"
    }
}

fn updown(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

/// The routing socket as a message source.
#[cfg(target_os = "freebsd")]
mod socket {
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    use super::RouteSource;
    use crate::platform::freebsd::message::READ_BUFFER_LEN;
    use crate::platform::freebsd::sys::read_message;

    /// The non-blocking routing socket under tokio, and its read buffer.
    pub(super) struct RouteSocketSource {
        fd: AsyncFd<OwnedFd>,
        buffer: Vec<u8>,
    }

    impl RouteSocketSource {
        /// Registers the (non-blocking) socket with the runtime.
        pub(super) fn new(fd: OwnedFd) -> io::Result<RouteSocketSource> {
            // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which is then
            // the only owner of the descriptor and the only one to close it.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|error| error.into_parts().1)?;
            Ok(RouteSocketSource {
                fd,
                buffer: vec![0; READ_BUFFER_LEN],
            })
        }
    }

    impl RouteSource for RouteSocketSource {
        async fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
            // Readiness alone does not count against the task's budget:
            // without this, a socket that keeps failing would never let the
            // runtime run anything else.
            tokio::task::coop::consume_budget().await;
            loop {
                let mut ready = match self.fd.readable().await {
                    Ok(ready) => ready,
                    Err(error) => return Some(Err(error)),
                };
                let buffer = &mut self.buffer;
                // One read is one message: the kernel queues each as its
                // own record.
                match ready.try_io(|fd| read_message(fd.get_ref().as_fd(), buffer)) {
                    Ok(read) => return Some(read.map(|len| buffer[..len].to_vec())),
                    Err(_would_block) => continue,
                }
            }
        }

        fn try_next(&mut self) -> Option<io::Result<Vec<u8>>> {
            match read_message(self.fd.get_ref().as_fd(), &mut self.buffer) {
                // Stale readiness is cleared by the next `next`.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
                read => Some(read.map(|len| self.buffer[..len].to_vec())),
            }
        }
    }
}
