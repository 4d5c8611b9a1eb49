//! The client side of the control socket: what the CLI (and tests) use to
//! talk to a running daemon.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec, LinesCodecError};

use super::protocol::{Reply, Request};
use crate::event::Event;

/// How long the daemon may take to answer a request before the client
/// gives up, so a hung daemon cannot hang `laggmond status` forever.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest reply line read. Replies carry the whole event history, so this
/// is generous; it only stops a runaway peer from exhausting memory.
const MAX_REPLY: usize = 64 * 1024 * 1024;

/// Why talking to the daemon failed. [`ClientError::NotRunning`] is its own
/// case because the CLI reports it with its own exit status.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon: the socket is missing (`stale: false`) or nobody listens
    /// on it (`stale: true`, left by a crashed run).
    NotRunning { socket: PathBuf, stale: bool },
    /// The socket exists but could not be used (permissions, I/O).
    Io { socket: PathBuf, source: io::Error },
    /// The daemon did not answer within [`REPLY_TIMEOUT`].
    Timeout { socket: PathBuf },
    /// The daemon sent something that is not the protocol.
    Protocol { socket: PathBuf, detail: String },
    /// An event follower fell behind and the daemon dropped events for it.
    Lagged { missed: u64 },
    /// The daemon ended an event stream with an error.
    Daemon(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotRunning {
                socket,
                stale: false,
            } => write!(f, "not running (no socket at {})", socket.display()),
            ClientError::NotRunning {
                socket,
                stale: true,
            } => {
                write!(f, "not running (nothing listening on {})", socket.display())
            }
            ClientError::Io { socket, source } => {
                write!(
                    f,
                    "cannot talk to the daemon on {}: {source}",
                    socket.display()
                )
            }
            ClientError::Timeout { socket } => write!(
                f,
                "no reply from the daemon on {} within {}s",
                socket.display(),
                REPLY_TIMEOUT.as_secs()
            ),
            ClientError::Protocol { socket, detail } => write!(
                f,
                "unexpected answer from the daemon on {}: {detail}",
                socket.display()
            ),
            ClientError::Lagged { missed } => write!(
                f,
                "fell behind the event stream and was disconnected ({missed} events missed)"
            ),
            ClientError::Daemon(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Sends one request on a fresh connection and returns the daemon's reply;
/// an error reply is `Ok` with `ok: false`.
pub async fn request(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    Connection::connect(socket).await?.call(request).await
}

/// A connection to the daemon, for more than one request or for following
/// the event stream.
pub struct Connection {
    socket: PathBuf,
    lines: Framed<UnixStream, LinesCodec>,
}

impl Connection {
    /// Connects to the daemon's socket.
    pub async fn connect(socket: &Path) -> Result<Connection, ClientError> {
        let stream = UnixStream::connect(socket).await.map_err(|e| {
            let stale = match e.kind() {
                io::ErrorKind::NotFound => false,
                io::ErrorKind::ConnectionRefused => true,
                _ => {
                    return ClientError::Io {
                        socket: socket.to_owned(),
                        source: e,
                    }
                }
            };
            ClientError::NotRunning {
                socket: socket.to_owned(),
                stale,
            }
        })?;
        Ok(Connection {
            socket: socket.to_owned(),
            lines: Framed::new(stream, LinesCodec::new_with_max_length(MAX_REPLY)),
        })
    }

    /// Sends a request and waits for its reply. After an `events` request
    /// with `follow`, read the stream with [`Connection::next_event`].
    pub async fn call(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let line = serde_json::to_string(request).map_err(|e| self.protocol(e.to_string()))?;
        let exchange = async {
            self.lines.send(line).await.map_err(|e| self.io(e))?;
            match self.read_line().await? {
                Some(line) => serde_json::from_str::<Reply>(&line)
                    .map_err(|e| self.protocol(format!("bad reply: {e}"))),
                None => Err(self.protocol("connection closed before the reply".into())),
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
            })?
    }

    /// The next event of a followed stream; `None` when the daemon closed
    /// the stream (it is shutting down).
    pub async fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        let Some(line) = self.read_line().await? else {
            return Ok(None);
        };
        if let Ok(event) = serde_json::from_str::<Event>(&line) {
            return Ok(Some(event));
        }
        match serde_json::from_str::<Reply>(&line) {
            Ok(reply) if reply.error.as_deref() == Some("lagged") => Err(ClientError::Lagged {
                missed: reply.missed.unwrap_or(0),
            }),
            Ok(Reply {
                ok: false,
                error: Some(message),
                ..
            }) => Err(ClientError::Daemon(message)),
            _ => Err(self.protocol(format!("not an event: {line}"))),
        }
    }

    /// The next line from the daemon; `None` at the end of the stream.
    async fn read_line(&mut self) -> Result<Option<String>, ClientError> {
        match self.lines.next().await {
            None => Ok(None),
            Some(Ok(line)) => Ok(Some(line)),
            Some(Err(e)) => Err(self.io(e)),
        }
    }

    fn io(&self, error: LinesCodecError) -> ClientError {
        match error {
            LinesCodecError::Io(source) => ClientError::Io {
                socket: self.socket.clone(),
                source,
            },
            LinesCodecError::MaxLineLengthExceeded => {
                self.protocol(format!("reply longer than {MAX_REPLY} bytes"))
            }
        }
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            detail,
        }
    }
}

/// Longest pid shown from a pidfile: a pid has at most 10 digits; more is
/// not a pid, and a hostile file must not flood the terminal.
const MAX_PID_SHOWN: usize = 20;

/// Whether a daemon holds `pidfile` locked, as a running laggmond does, and
/// the pid written in it (escaped and shortened for printing; empty in the
/// instant between the lock and the write). `None` when nothing holds the
/// lock or the file cannot be checked. Lets the CLI tell "not running" from
/// "running, but its socket is gone".
///
/// The file is opened read-only, without following a symbolic link and
/// without blocking on a FIFO, and only a regular file counts. Probing the
/// lock takes it for an instant when it is free; a daemon starting at that
/// very instant tries again a little later.
pub fn locked_pid(pidfile: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(pidfile)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    match file.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => {}
        // Free (our lock goes with the file) or not lockable: no daemon.
        Ok(()) | Err(std::fs::TryLockError::Error(_)) => return None,
    }
    let mut bytes = Vec::new();
    // A pid and a newline; anything longer is cut below anyway.
    let _ = (&file).take(64).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let pid: String = text.trim().chars().take(MAX_PID_SHOWN).collect();
    Some(crate::log::escape_controls(&pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_socket_means_not_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("none.sock");
        let error = request(&socket, &Request::Metrics)
            .await
            .expect_err("nobody listens");
        assert!(matches!(
            error,
            ClientError::NotRunning { stale: false, .. }
        ));
        assert_eq!(
            error.to_string(),
            format!("not running (no socket at {})", socket.display())
        );
    }

    #[tokio::test]
    async fn stale_socket_means_not_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
        let error = request(&socket, &Request::Metrics)
            .await
            .expect_err("nobody listens");
        assert!(matches!(error, ClientError::NotRunning { stale: true, .. }));
    }

    #[tokio::test]
    async fn a_daemon_that_hangs_up_is_a_protocol_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("rude.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let rude = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            drop(stream);
        });
        let error = request(&socket, &Request::Metrics)
            .await
            .expect_err("no reply");
        assert!(
            matches!(error, ClientError::Protocol { .. } | ClientError::Io { .. }),
            "{error:?}"
        );
        rude.await.expect("rude server");
    }

    #[tokio::test]
    async fn stream_lines_are_events_or_the_lagged_notice() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let mut connection = Connection {
            socket: PathBuf::from("test.sock"),
            lines: Framed::new(ours, LinesCodec::new()),
        };
        let mut server = Framed::new(theirs, LinesCodec::new());
        let event = r#"{"seq":5,"time":"2026-11-21T10:00:00.123Z","severity":"info","group":"lagg0","kind":"port_up","port":"em0"}"#;
        server.send(event).await.expect("send event");
        server
            .send(r#"{"ok":false,"error":"lagged","missed":9}"#)
            .await
            .expect("send lagged");
        server.send("garbage").await.expect("send garbage");
        drop(server);

        let first = connection.next_event().await.expect("event");
        assert_eq!(first.map(|e| e.seq), Some(5));
        let lagged = connection.next_event().await.expect_err("lagged");
        assert!(
            matches!(lagged, ClientError::Lagged { missed: 9 }),
            "{lagged:?}"
        );
        let garbage = connection.next_event().await.expect_err("garbage");
        assert!(
            matches!(garbage, ClientError::Protocol { .. }),
            "{garbage:?}"
        );
        assert!(connection.next_event().await.expect("end").is_none());
    }
}
