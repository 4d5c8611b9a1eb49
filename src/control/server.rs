//! The control socket server.
//!
//! One task accepts connections; each connection gets a task of its own
//! that reads request lines, checks them, forwards them to the daemon loop
//! and writes the replies. The server holds no daemon state: the daemon
//! answers through the `reply` channel of each [`ControlRequest`], and live
//! events reach followers through a broadcast channel, so a slow or hostile
//! client can only ever slow itself down.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::unistd::{Gid, Group, Uid};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::protocol::{Reply, Request, MAX_CLIENTS, MAX_REQUEST};
use crate::event::Event;

/// How long writing one line to a client may take. Only a client that has
/// stopped reading (its socket buffer is full) gets near it; it is then
/// disconnected so it cannot hold one of the [`MAX_CLIENTS`] slots forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (typically: out of file descriptors) so
/// the accept loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Mode of the socket file: root and the socket group may connect.
const SOCKET_MODE: u32 = 0o660;

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
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(finished) = connections.join_next() => report_panic(finished),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let connection = Connection::new(stream, to_daemon.clone(), events.clone());
                        connections.spawn(serve_connection(connection, slot, shutdown.clone()));
                    }
                    Err(_) => refuse_busy(&stream),
                },
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

/// Tells a client over the limit why it is turned away. The socket buffer
/// of a fresh connection is empty, so the short line fits without waiting.
fn refuse_busy(stream: &UnixStream) {
    let line = reply_line(&Reply::error("busy: too many clients"));
    let _ = stream.try_write(line.as_bytes());
}

/// Logs a connection task that panicked; a finished one needs nothing.
fn report_panic(finished: Result<(), JoinError>) {
    if let Err(e) = finished {
        tracing::error!("control connection task failed: {e}");
    }
}

/// Runs one connection until it ends or the server shuts down; holding
/// `slot` is what counts the connection against [`MAX_CLIENTS`].
async fn serve_connection(
    connection: Connection,
    slot: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
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
        to_daemon: mpsc::Sender<ControlRequest>,
        events: broadcast::Sender<Arc<Event>>,
    ) -> Connection {
        let peer_uid = match stream.peer_cred() {
            Ok(credentials) => Some(credentials.uid()),
            Err(e) => {
                tracing::warn!("control socket: cannot read peer credentials: {e}");
                None
            }
        };
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
            match self.read_request().await {
                Incoming::Closed => return Ok(()),
                Incoming::Fatal(reply) => return self.write(reply_line(&reply)).await,
                Incoming::Invalid(reply) => self.write(reply_line(&reply)).await?,
                Incoming::Request(Request::Events { n, follow: true }) => {
                    return self.follow(n).await;
                }
                Incoming::Request(request) => {
                    let reply = self.answer(request).await;
                    self.write(reply_line(&reply)).await?;
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
        let last_in_history = history
            .events
            .as_ref()
            .and_then(|events| events.last())
            .map(|event| event.seq);
        self.write(reply_line(&history)).await?;
        if !history.ok {
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

    /// Writes one line, giving up on a client that does not read it.
    async fn write(&mut self, line: String) -> io::Result<()> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(line.as_bytes())).await {
            Ok(written) => written,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut connection = Connection::new(ours, to_daemon, events);
        connection.peer_uid = None;
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
}
