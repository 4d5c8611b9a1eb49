//! The control socket server.
//!
//! One task accepts connections; each connection gets a task of its own
//! that reads request lines, checks them, forwards them to the daemon loop
//! and writes the replies. The server holds no daemon state: the daemon
//! answers through the `reply` channel of each [`ControlRequest`], and live
//! events reach followers through a broadcast channel, so a slow or hostile
//! client can only ever slow itself down. Slots are shared out per uid with
//! some kept for root, and a client has a deadline to send each request, so
//! no user can hold the socket against the others.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::unistd::{Gid, Group, Uid};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{JoinError, JoinSet};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    Reply, Request, MAX_CLIENTS, MAX_CLIENTS_PER_UID, MAX_REQUEST, REQUEST_DEADLINE, ROOT_RESERVED,
};
use crate::event::Event;
use crate::history::HistoryView;
use crate::metrics::ControlCounters;

/// How long writing one line to a client may take. Only a client that has
/// stopped reading (its socket buffer is full) gets near it; it is then
/// disconnected so it cannot hold one of the [`MAX_CLIENTS`] slots forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (typically: out of file descriptors) so
/// the accept loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Mode of the socket file: root and the socket group may connect.
const SOCKET_MODE: u32 = 0o660;

/// How much of an `events` reply is encoded before it is written: what a
/// client that does not read can make the daemon hold, whatever the
/// history's size.
const WRITE_CHUNK: usize = 8 * 1024;

/// Least time between two log lines about refused or timed-out clients, so
/// a crowd of them cannot flood the log.
const NOTICE_INTERVAL: Duration = Duration::from_secs(60);

/// One client request on its way to the daemon loop, which owns the state
/// needed to answer it.
#[derive(Debug)]
pub struct ControlRequest {
    /// What the client asked, already parsed and authorised.
    pub request: Request,
    /// The client's uid (from the kernel, not the client's word), for logs.
    pub peer_uid: u32,
    /// Where the daemon sends its answer.
    pub reply: oneshot::Sender<Reply>,
}

impl ControlRequest {
    /// Leaves a trace of who changed the daemon's state: a privileged
    /// request with the uid the kernel vouches for, as JSON (which escapes
    /// control characters). At debug level, so that the log of a daemon
    /// run at the usual level stays as it was.
    fn log_if_privileged(&self) {
        if !self.request.is_privileged() {
            return;
        }
        let request =
            serde_json::to_string(&self.request).unwrap_or_else(|_| format!("{:?}", self.request));
        tracing::debug!(
            "control: privileged request from uid {}: {request}",
            self.peer_uid
        );
    }
}

/// Creates the control socket at `path`, replacing the socket file of a
/// crashed run but never a live daemon's, and restricts it to root and
/// `group` (mode 0660). Must be called inside a tokio runtime.
pub fn bind(path: &Path, group: Option<&str>) -> io::Result<UnixListener> {
    // Resolved first, so a misspelt group does not leave a socket behind.
    let gid = group.map(group_id).transpose()?;
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|e| with_path(e, "cannot bind", path))?;
    if let Err(e) = restrict_access(path, gid) {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(listener)
}

/// The gid of the socket group, or an error naming it.
fn group_id(name: &str) -> io::Result<Gid> {
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("socket group {name:?} does not exist"),
        )),
        Err(errno) => Err(io::Error::new(
            io::Error::from(errno).kind(),
            format!("cannot look up socket group {name:?}: {errno}"),
        )),
    }
}

/// Removes the socket file left by a run that did not clean up, after
/// making sure nobody listens on it; refuses to touch anything else.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(e, "cannot inspect", path)),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket, not replacing it",
                path.display()
            ),
        ));
    }
    if someone_listens(path).map_err(|e| with_path(e, "cannot probe", path))? {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another laggmond is listening on {}", path.display()),
        ));
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(with_path(e, "cannot remove stale socket", path))
        }
        _ => Ok(()),
    }
}

/// What is at the control socket's path, for a daemon checking that its
/// socket is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing: the file was removed.
    Nothing,
    /// A socket, presumably the daemon's own.
    Socket,
    /// Something else, described for the log ("a regular file").
    Other(&'static str),
}

/// What occupies `path`, without following a symbolic link there.
pub fn occupant(path: &Path) -> io::Result<Occupant> {
    let kind = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Occupant::Nothing),
        Err(e) => return Err(with_path(e, "cannot inspect", path)),
    };
    Ok(if kind.is_socket() {
        Occupant::Socket
    } else if kind.is_file() {
        Occupant::Other("a regular file")
    } else if kind.is_dir() {
        Occupant::Other("a directory")
    } else if kind.is_symlink() {
        Occupant::Other("a symbolic link")
    } else if kind.is_fifo() {
        Occupant::Other("a FIFO")
    } else {
        Occupant::Other("a device")
    })
}

/// Most `.displaced` names tried before giving up: more than a few
/// impostors not cleaned up is for the operator to look at.
const MAX_DISPLACED: usize = 10;

/// Moves whatever took the place of the daemon's socket file aside to
/// `PATH.displaced` (or `PATH.displaced.1`, ...), and returns the new name.
///
/// Moved, not removed: it may be evidence of tampering, or the data of a
/// program that was given the wrong path, and keeping it costs nothing. A
/// rename within the directory moves a symbolic link itself, never what it
/// points at, and copies nothing. An existing name is never overwritten;
/// the check before the rename can only be raced by someone who may write
/// to the socket's directory, who could replace the socket anyway.
pub fn displace(path: &Path) -> io::Result<std::path::PathBuf> {
    let mut base = path.as_os_str().to_owned();
    base.push(".displaced");
    for index in 0..MAX_DISPLACED {
        let mut aside = base.clone();
        if index > 0 {
            aside.push(format!(".{index}"));
        }
        let aside = std::path::PathBuf::from(aside);
        match fs::symlink_metadata(&aside) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(e, "cannot inspect", &aside)),
        }
        fs::rename(path, &aside).map_err(|e| with_path(e, "cannot rename", path))?;
        return Ok(aside);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} and {} more names like it exist already",
            Path::new(&base).display(),
            MAX_DISPLACED - 1
        ),
    ))
}

/// Whether a process accepts connections on the socket at `path`. The probe
/// does not block, so a hung daemon with a full backlog cannot hang us.
fn someone_listens(path: &Path) -> io::Result<bool> {
    let probe = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let address = UnixAddr::new(path)?;
    match socket::connect(probe.as_raw_fd(), &address) {
        // EAGAIN: the backlog is full, which takes a listener.
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => Ok(true),
        Err(Errno::ECONNREFUSED) | Err(Errno::ENOENT) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Mode 0660 and, with a group, owner root:group.
fn restrict_access(path: &Path, gid: Option<Gid>) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| with_path(e, "cannot chmod", path))?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, Some(Uid::from_raw(0)), Some(gid))
            .map_err(|errno| with_path(errno.into(), "cannot chown", path))?;
    }
    Ok(())
}

/// Prefixes an error with what was being done to which path.
fn with_path(error: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{doing} {}: {error}", path.display()))
}

/// Accepts clients until `shutdown` is cancelled, then ends every connection
/// (followers included) and returns once their tasks have finished.
///
/// Requests go to the daemon through `to_daemon`; `events` is the daemon's
/// live event stream, which followers subscribe to.
pub async fn serve(
    listener: UnixListener,
    to_daemon: mpsc::Sender<ControlRequest>,
    events: broadcast::Sender<Arc<Event>>,
    shutdown: CancellationToken,
) {
    let slots = Slots::default();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(finished) = connections.join_next() => report_panic(finished),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let peer_uid = peer_uid(&stream);
                    match slots.take(peer_uid) {
                        Ok(slot) => {
                            let connection =
                                Connection::new(stream, peer_uid, to_daemon.clone(), events.clone());
                            connections.spawn(serve_connection(connection, slot, shutdown.clone()));
                        }
                        Err(refusal) => refuse(&stream, refusal),
                    }
                }
                Err(e) => {
                    tracing::warn!("control socket: accept failed: {e}");
                    let _ = shutdown.run_until_cancelled(tokio::time::sleep(ACCEPT_BACKOFF)).await;
                }
            },
        }
    }
    // Every connection watches the same token, so these all end promptly.
    while let Some(finished) = connections.join_next().await {
        report_panic(finished);
    }
}

/// The peer's uid, from the kernel (recorded when it connected); `None`
/// when the kernel will not say, and such a peer is refused everything.
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    match stream.peer_cred() {
        Ok(credentials) => Some(credentials.uid()),
        Err(e) => {
            tracing::warn!("control socket: cannot read peer credentials: {e}");
            None
        }
    }
}

/// Tells a client over a limit why it is turned away. The socket buffer
/// of a fresh connection is empty, so the short line fits without waiting.
fn refuse(stream: &UnixStream, refusal: Refusal) {
    let (message, trouble) = match refusal {
        Refusal::Busy => ("busy: too many clients", Trouble::Busy),
        Refusal::UidCap => ("busy: too many clients of this user", Trouble::UidCap),
    };
    let _ = stream.try_write(reply_line(&Reply::error(message)).as_bytes());
    note(trouble);
}

/// Why a client was turned away at the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Every slot open to the peer is taken.
    Busy,
    /// The peer's uid holds [`MAX_CLIENTS_PER_UID`] connections already.
    UidCap,
}

/// Who holds the connection slots. Root may take all [`MAX_CLIENTS`];
/// everyone else shares all but [`ROOT_RESERVED`] of them, at most
/// [`MAX_CLIENTS_PER_UID`] per uid, so no user can lock out root or all
/// the others.
#[derive(Clone, Default)]
struct Slots(Arc<Mutex<Occupancy>>);

#[derive(Default)]
struct Occupancy {
    total: usize,
    /// Connections per uid; `None` for peers of unknown uid, who count as
    /// one user other than root.
    by_uid: HashMap<Option<u32>, usize>,
}

impl Slots {
    /// A slot for a peer with this uid, or why there is none.
    fn take(&self, uid: Option<u32>) -> Result<Slot, Refusal> {
        let mut occupancy = self.lock();
        let root = uid == Some(0);
        let open_to_peer = if root {
            MAX_CLIENTS
        } else {
            MAX_CLIENTS - ROOT_RESERVED
        };
        if occupancy.total >= open_to_peer {
            return Err(Refusal::Busy);
        }
        let held = occupancy.by_uid.entry(uid).or_default();
        if !root && *held >= MAX_CLIENTS_PER_UID {
            return Err(Refusal::UidCap);
        }
        *held += 1;
        occupancy.total += 1;
        Ok(Slot {
            slots: self.clone(),
            uid,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Occupancy> {
        // The counts stay consistent whatever panicked while holding them.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in [`Slots`], given back when dropped.
struct Slot {
    slots: Slots,
    uid: Option<u32>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut occupancy = self.slots.lock();
        occupancy.total -= 1;
        if let Some(held) = occupancy.by_uid.get_mut(&self.uid) {
            *held -= 1;
            if *held == 0 {
                occupancy.by_uid.remove(&self.uid);
            }
        }
    }
}

/// Clients the server turned away or timed out, for the daemon's metrics:
/// process-wide, so they survive the socket being bound again.
static REFUSED_BUSY: AtomicU64 = AtomicU64::new(0);
static REFUSED_UID_CAP: AtomicU64 = AtomicU64::new(0);
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// The same, not yet logged.
static NOTICES: Mutex<Notices> = Mutex::new(Notices::new());

/// What went wrong with a client, for counting and logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trouble {
    Busy,
    UidCap,
    TimedOut,
}

/// Counts of refused and timed-out clients since the server started, for
/// `metrics`.
pub fn counters() -> ControlCounters {
    ControlCounters {
        refused_busy: REFUSED_BUSY.load(Ordering::Relaxed),
        refused_uid_cap: REFUSED_UID_CAP.load(Ordering::Relaxed),
        timed_out: TIMED_OUT.load(Ordering::Relaxed),
    }
}

/// Counts one troublesome client and logs, at most once per
/// [`NOTICE_INTERVAL`], how many there were since the last line.
fn note(trouble: Trouble) {
    let counter = match trouble {
        Trouble::Busy => &REFUSED_BUSY,
        Trouble::UidCap => &REFUSED_UID_CAP,
        Trouble::TimedOut => &TIMED_OUT,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let mut notices = NOTICES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(line) = notices.note(trouble, Instant::now()) {
        tracing::warn!("{line}");
    }
}

/// Troublesome clients not yet logged, and when the last line was.
struct Notices {
    last: Option<Instant>,
    busy: u64,
    uid_cap: u64,
    timed_out: u64,
}

impl Notices {
    const fn new() -> Notices {
        Notices {
            last: None,
            busy: 0,
            uid_cap: 0,
            timed_out: 0,
        }
    }

    /// Counts `trouble` at `now`; the line to log, when one is due.
    fn note(&mut self, trouble: Trouble, now: Instant) -> Option<String> {
        match trouble {
            Trouble::Busy => self.busy += 1,
            Trouble::UidCap => self.uid_cap += 1,
            Trouble::TimedOut => self.timed_out += 1,
        }
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < NOTICE_INTERVAL)
        {
            return None;
        }
        let line = format!(
            "control socket: {} clients refused (all slots taken), {} refused (per-user limit), \
             {} closed for sending no request within {}s, since the last report",
            self.busy,
            self.uid_cap,
            self.timed_out,
            REQUEST_DEADLINE.as_secs()
        );
        *self = Notices {
            last: Some(now),
            ..Notices::new()
        };
        Some(line)
    }
}

/// Logs a connection task that panicked; a finished one needs nothing.
fn report_panic(finished: Result<(), JoinError>) {
    if let Err(e) = finished {
        tracing::error!("control connection task failed: {e}");
    }
}

/// Runs one connection until it ends or the server shuts down; holding
/// `slot` is what counts the connection against the limits.
async fn serve_connection(connection: Connection, slot: Slot, shutdown: CancellationToken) {
    if let Some(Err(e)) = shutdown.run_until_cancelled(connection.run()).await {
        tracing::debug!("control connection ended: {e}");
    }
    drop(slot);
}

/// Whether a peer with this uid may make this request: anyone who can
/// connect may look, only root may change things.
fn permitted(request: &Request, peer_uid: u32) -> bool {
    !request.is_privileged() || peer_uid == 0
}

/// Hands a request to the daemon loop and waits for its answer.
async fn ask_daemon(
    to_daemon: &mpsc::Sender<ControlRequest>,
    request: Request,
    peer_uid: u32,
) -> Reply {
    let (reply, answer) = oneshot::channel();
    let forwarded = ControlRequest {
        request,
        peer_uid,
        reply,
    };
    forwarded.log_if_privileged();
    if to_daemon.send(forwarded).await.is_err() {
        return Reply::error("daemon is shutting down");
    }
    answer
        .await
        .unwrap_or_else(|_| Reply::error("daemon dropped the request"))
}

/// A reply as one newline-terminated line.
fn reply_line(reply: &Reply) -> String {
    let mut line = serde_json::to_string(reply)
        .unwrap_or_else(|e| format!(r#"{{"ok":false,"error":"cannot encode the reply: {e}"}}"#));
    line.push('\n');
    line
}

/// What the client sent next, sorted by what to do about it.
enum Incoming {
    Request(Request),
    /// A line that is not a valid request: say so and read on.
    Invalid(Reply),
    /// The stream is unusable (overlong line, not UTF-8): say so and close.
    Fatal(Reply),
    Closed,
}

/// One client connection.
struct Connection {
    lines: FramedRead<OwnedReadHalf, LinesCodec>,
    writer: OwnedWriteHalf,
    /// `None` when the kernel would not say who the peer is: such a peer
    /// is refused everything.
    peer_uid: Option<u32>,
    to_daemon: mpsc::Sender<ControlRequest>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Connection {
    fn new(
        stream: UnixStream,
        peer_uid: Option<u32>,
        to_daemon: mpsc::Sender<ControlRequest>,
        events: broadcast::Sender<Arc<Event>>,
    ) -> Connection {
        let (reader, writer) = stream.into_split();
        Connection {
            lines: FramedRead::new(reader, LinesCodec::new_with_max_length(MAX_REQUEST)),
            writer,
            peer_uid,
            to_daemon,
            events,
        }
    }

    /// Answers requests until the client leaves or breaks the protocol.
    async fn run(mut self) -> io::Result<()> {
        loop {
            let Ok(incoming) = tokio::time::timeout(REQUEST_DEADLINE, self.read_request()).await
            else {
                note(Trouble::TimedOut);
                let reply = Reply::error(format!(
                    "timeout: no complete request within {}s",
                    REQUEST_DEADLINE.as_secs()
                ));
                return self.write(reply_line(&reply)).await;
            };
            match incoming {
                Incoming::Closed => return Ok(()),
                Incoming::Fatal(reply) => return self.write(reply_line(&reply)).await,
                Incoming::Invalid(reply) => self.write(reply_line(&reply)).await?,
                Incoming::Request(Request::Events { n, follow: true }) => {
                    return self.follow(n).await;
                }
                Incoming::Request(request) => {
                    let reply = self.answer(request).await;
                    self.send(reply).await?;
                }
            }
        }
    }

    /// Reads the next request line; blank lines are skipped.
    async fn read_request(&mut self) -> Incoming {
        loop {
            return match self.lines.next().await {
                None => Incoming::Closed,
                Some(Ok(line)) if line.trim().is_empty() => continue,
                Some(Ok(line)) => match Request::parse(&line) {
                    Ok(request) => Incoming::Request(request),
                    Err(message) => Incoming::Invalid(Reply::error(message)),
                },
                Some(Err(LinesCodecError::MaxLineLengthExceeded)) => Incoming::Fatal(Reply::error(
                    format!("request too long (limit {MAX_REQUEST} bytes)"),
                )),
                // Socket reads never fail with InvalidData; the codec's UTF-8 check does.
                Some(Err(LinesCodecError::Io(e))) if e.kind() == io::ErrorKind::InvalidData => {
                    Incoming::Fatal(Reply::error("request is not valid UTF-8"))
                }
                Some(Err(LinesCodecError::Io(_))) => Incoming::Closed,
            };
        }
    }

    /// The daemon's answer, or a refusal when the peer may not ask.
    async fn answer(&self, request: Request) -> Reply {
        let Some(uid) = self.peer_uid else {
            return Reply::error("permission denied: peer credentials unavailable");
        };
        if !permitted(&request, uid) {
            return Reply::error("permission denied");
        }
        ask_daemon(&self.to_daemon, request, uid).await
    }

    /// Sends the history, then every new event, until the client leaves or
    /// falls so far behind that events were dropped for it.
    async fn follow(mut self, n: Option<usize>) -> io::Result<()> {
        // Subscribe before asking for the history: an event that happens in
        // between then arrives twice (and is skipped by its sequence number)
        // instead of never.
        let mut live = self.events.subscribe();
        let history = self.answer(Request::Events { n, follow: false }).await;
        let last_in_history = match &history.history {
            Some(view) => view.newest().map(|event| event.seq),
            None => history
                .events
                .as_ref()
                .and_then(|events| events.last())
                .map(|event| event.seq),
        };
        let ok = history.ok;
        self.send(history).await?;
        if !ok {
            return Ok(());
        }
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                input = self.lines.next() => match input {
                    // A follower has nothing more to ask; anything it sends is ignored.
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => return Ok(()),
                },
            };
            match received {
                Ok(event) if last_in_history.is_some_and(|last| event.seq <= last) => {}
                Ok(event) => {
                    let mut line = serde_json::to_string(&*event)?;
                    line.push('\n');
                    self.write(line).await?;
                }
                Err(RecvError::Lagged(missed)) => {
                    let reply = Reply {
                        missed: Some(missed),
                        ..Reply::error("lagged")
                    };
                    return self.write(reply_line(&reply)).await;
                }
                Err(RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Writes a reply; a history view is streamed as the client reads.
    async fn send(&mut self, reply: Reply) -> io::Result<()> {
        match reply.history {
            Some(view) => self.stream_events(view).await,
            None => self.write(reply_line(&reply)).await,
        }
    }

    /// Writes `{"ok":true,"events":[...]}` a chunk at a time, encoding the
    /// next chunk only once the last one is written: the buffer stays about
    /// [`WRITE_CHUNK`] bytes however long the history.
    async fn stream_events(&mut self, view: HistoryView) -> io::Result<()> {
        let mut encoder = EventsReply::new(view);
        let mut buffer = Vec::with_capacity(WRITE_CHUNK + WRITE_CHUNK / 4);
        while encoder.fill(&mut buffer, WRITE_CHUNK)? {
            self.write_bytes(&buffer).await?;
            buffer.clear();
            // A socket with room takes chunk after chunk without a pause:
            // yield after each so that, on this one thread, the daemon loop
            // and the other clients get their turn between two chunks
            // instead of after a whole socket buffer.
            tokio::task::yield_now().await;
        }
        self.write_bytes(&buffer).await
    }

    /// Writes one line, giving up on a client that does not read it.
    async fn write(&mut self, line: String) -> io::Result<()> {
        self.write_bytes(line.as_bytes()).await
    }

    /// Writes `bytes`, giving up on a client that does not read them.
    async fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(bytes)).await {
            Ok(written) => written,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
        }
    }
}

/// The reply line to `events`, encoded piecemeal from a history view;
/// byte for byte what serializing a [`Reply`] with `events` gives.
struct EventsReply {
    view: HistoryView,
    opened: bool,
    /// Whether an event was written, so the next one needs a comma.
    any: bool,
}

impl EventsReply {
    const OPENING: &'static [u8] = br#"{"ok":true,"events":["#;
    const CLOSING: &'static [u8] = b"]}\n";

    fn new(view: HistoryView) -> EventsReply {
        EventsReply {
            view,
            opened: false,
            any: false,
        }
    }

    /// Appends to `buffer` until it holds `limit` bytes or the reply is
    /// complete; `true` while more remains.
    fn fill(&mut self, buffer: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
        if !self.opened {
            buffer.extend_from_slice(Self::OPENING);
            self.opened = true;
        }
        while buffer.len() < limit {
            let Some(event) = self.view.next() else {
                buffer.extend_from_slice(Self::CLOSING);
                return Ok(false);
            };
            if self.any {
                buffer.push(b',');
            }
            self.any = true;
            serde_json::to_writer(&mut *buffer, &*event)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn privileged_requests_are_logged_with_the_uid() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for (request, uid) in [
                (Request::Metrics, 1000),
                (
                    Request::SetActive {
                        group: "lagg0".into(),
                        port: Some("em0".into()),
                    },
                    0,
                ),
            ] {
                let (reply, _answer) = oneshot::channel();
                ControlRequest {
                    request,
                    peer_uid: uid,
                    reply,
                }
                .log_if_privileged();
            }
        });
        let text = String::from_utf8(log.0.lock().expect("log buffer").clone()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "only the privileged request: {text}");
        assert!(
            lines[0].ends_with(
                r#"control: privileged request from uid 0: {"cmd":"set-active","group":"lagg0","port":"em0"}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn anyone_may_look_only_root_may_change() {
        let look = [
            Request::Status { group: None },
            Request::Events {
                n: None,
                follow: true,
            },
            Request::Metrics,
        ];
        let change = [
            Request::Reload,
            Request::SetActive {
                group: "lagg0".into(),
                port: Some("em0".into()),
            },
            Request::ClearDamping {
                group: None,
                port: None,
            },
        ];
        for request in &look {
            assert!(permitted(request, 65534), "{request:?}");
            assert!(permitted(request, 0), "{request:?}");
        }
        for request in &change {
            assert!(!permitted(request, 65534), "{request:?}");
            assert!(!permitted(request, 1000), "{request:?}");
            assert!(permitted(request, 0), "{request:?}");
        }
    }

    #[test]
    fn reply_lines_are_single_json_lines() {
        let line = reply_line(&Reply::error("busy: too many clients"));
        assert_eq!(
            line,
            "{\"ok\":false,\"error\":\"busy: too many clients\"}\n"
        );
        let lagged = reply_line(&Reply {
            missed: Some(7),
            ..Reply::error("lagged")
        });
        assert_eq!(lagged, "{\"ok\":false,\"error\":\"lagged\",\"missed\":7}\n");
    }

    #[tokio::test]
    async fn peer_without_credentials_is_refused_everything() {
        let (to_daemon, mut daemon) = mpsc::channel(1);
        let (events, _) = broadcast::channel(4);
        let (ours, _theirs) = UnixStream::pair().expect("socketpair");
        let connection = Connection::new(ours, None, to_daemon, events);
        for request in [Request::Reload, Request::Metrics] {
            let reply = connection.answer(request).await;
            assert!(!reply.ok);
            assert!(reply
                .error
                .as_deref()
                .unwrap_or("")
                .starts_with("permission denied"));
        }
        assert!(daemon.try_recv().is_err(), "the daemon must not be asked");
    }

    fn events(count: u64) -> crate::history::History {
        use crate::event::{Kind, Severity, Timestamp, What};
        let mut history = crate::history::History::new(100_000);
        for seq in 1..=count {
            history.push(Arc::new(Event {
                seq,
                time: Timestamp::now(),
                severity: Severity::Warning,
                what: What::port("lagg0", Kind::PortDown, &format!("em{seq}")),
            }));
        }
        history
    }

    #[test]
    fn streamed_events_reply_is_the_serialized_reply() {
        for (count, limit) in [
            (0, WRITE_CHUNK),
            (1, 1),
            (3, 1),
            (700, 100),
            (700, WRITE_CHUNK),
        ] {
            let mut history = events(count);
            let whole = reply_line(&Reply {
                events: Some(history.view(None).map(|e| Event::clone(&e)).collect()),
                ..Reply::ok()
            });
            let mut encoder = EventsReply::new(history.view(None));
            let (mut streamed, mut buffer) = (Vec::new(), Vec::new());
            while encoder.fill(&mut buffer, limit).expect("encodes") {
                assert!(buffer.len() < limit + 200, "buffer of {}", buffer.len());
                streamed.append(&mut buffer);
            }
            streamed.append(&mut buffer);
            assert_eq!(
                String::from_utf8(streamed).expect("utf-8"),
                whole,
                "{count}"
            );
        }
    }

    #[test]
    fn one_user_cannot_take_every_slot_and_root_is_always_served() {
        let slots = Slots::default();
        let mut held: Vec<Slot> = (0..MAX_CLIENTS_PER_UID)
            .map(|_| slots.take(Some(1000)).expect("within the cap"))
            .collect();
        assert_eq!(slots.take(Some(1000)).err(), Some(Refusal::UidCap));
        while let Ok(slot) = slots.take(Some(1001)) {
            held.push(slot);
        }
        assert_eq!(held.len(), MAX_CLIENTS - ROOT_RESERVED);
        assert_eq!(slots.take(None).err(), Some(Refusal::Busy));
        for _ in 0..ROOT_RESERVED {
            held.push(slots.take(Some(0)).expect("root is served"));
        }
        assert_eq!(slots.take(Some(0)).err(), Some(Refusal::Busy));
        held.truncate(1);
        assert_eq!(slots.lock().total, 1);
        assert!(slots.take(Some(1000)).is_ok(), "slots are given back");
    }

    #[test]
    fn troubles_are_logged_at_most_once_a_minute_with_their_count() {
        let mut notices = Notices::new();
        let start = Instant::now();
        assert!(
            notices.note(Trouble::Busy, start).is_some(),
            "the first is logged"
        );
        for _ in 0..5 {
            assert_eq!(
                notices.note(Trouble::UidCap, start + Duration::from_secs(1)),
                None
            );
        }
        assert_eq!(
            notices.note(Trouble::TimedOut, start + Duration::from_secs(59)),
            None
        );
        let line = notices
            .note(Trouble::TimedOut, start + NOTICE_INTERVAL)
            .expect("a minute later");
        assert!(
            line.contains(
                "0 clients refused (all slots taken), 5 refused (per-user limit), 2 closed"
            ),
            "{line}"
        );
    }
}
