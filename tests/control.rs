//! The control socket end to end: a real socket in a temporary directory,
//! the real server, and a scripted stand-in for the daemon loop that
//! answers its requests. The CLI tests run the built binary against it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use common::{error_of, NobodyBinary};
use laggmond::config::Driver;
use laggmond::control::client;
use laggmond::control::protocol::{Reply, Request, MAX_CLIENTS, MAX_REQUEST};
use laggmond::control::server::{self, ControlRequest};
use laggmond::event::{Event, Kind, Severity, Timestamp, What};
use laggmond::status::{GroupStatus, Link, PortStatus, Role, State, Status};

/// Long enough for a loaded machine, short enough that a hang fails fast.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the stand-in daemon owns: the event history and what it was asked.
#[derive(Default)]
struct DaemonState {
    history: Vec<Event>,
    /// Every request that reached the daemon, with the peer's uid.
    seen: Vec<(Request, u32)>,
    /// Emit one event just before answering a history request, the way a
    /// real event can slip in between a follower's subscription and its
    /// history.
    race_history: bool,
}

/// A running server with a stand-in daemon behind it.
struct Harness {
    dir: tempfile::TempDir,
    socket: PathBuf,
    state: Arc<Mutex<DaemonState>>,
    events: broadcast::Sender<Arc<Event>>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    daemon: JoinHandle<()>,
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(64, None).await
    }

    /// A server whose live stream holds `capacity` events, its socket
    /// owned by `group`.
    async fn start_with(capacity: usize, group: Option<&str>) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("laggmond.sock");
        let listener = server::bind(&socket, group).expect("bind");
        let (to_daemon, requests) = mpsc::channel(16);
        let (events, _) = broadcast::channel(capacity);
        let state = Arc::new(Mutex::new(DaemonState::default()));
        let shutdown = CancellationToken::new();
        let daemon = tokio::spawn(fake_daemon(requests, Arc::clone(&state), events.clone()));
        let server = tokio::spawn(server::serve(
            listener,
            to_daemon,
            events.clone(),
            shutdown.clone(),
        ));
        Harness {
            dir,
            socket,
            state,
            events,
            shutdown,
            server,
            daemon,
        }
    }

    /// Records and broadcasts an event, as the daemon loop does.
    fn emit(&self) -> u64 {
        emit(&mut self.state.lock().expect("state"), &self.events)
    }

    fn seen(&self) -> Vec<(Request, u32)> {
        self.state.lock().expect("state").seen.clone()
    }

    async fn connect(&self) -> RawClient {
        RawClient::connect(&self.socket).await
    }

    /// Stops the server and checks it left nothing running: no follower
    /// still subscribed, no connection still holding a way to the daemon.
    async fn stop(self) {
        self.shutdown.cancel();
        within(self.server).await.expect("server task");
        assert_eq!(self.events.receiver_count(), 0, "a follower outlived serve");
        within(self.daemon).await.expect("daemon task");
    }
}

fn emit(state: &mut DaemonState, events: &broadcast::Sender<Arc<Event>>) -> u64 {
    let seq = state.history.last().map_or(1, |last| last.seq + 1);
    let event = Event {
        seq,
        time: Timestamp::now(),
        severity: Severity::Info,
        what: What::port("lagg0", Kind::PortUp, "em0"),
    };
    state.history.push(event.clone());
    // No receivers is fine: nobody follows.
    let _ = events.send(Arc::new(event));
    seq
}

/// Answers the server's requests the way the daemon loop would.
async fn fake_daemon(
    mut requests: mpsc::Receiver<ControlRequest>,
    state: Arc<Mutex<DaemonState>>,
    events: broadcast::Sender<Arc<Event>>,
) {
    while let Some(ControlRequest {
        request,
        peer_uid,
        reply,
    }) = requests.recv().await
    {
        let mut state = state.lock().expect("state");
        state.seen.push((request.clone(), peer_uid));
        let answer = match request {
            Request::Status { group: Some(name) } if name != "lagg0" => {
                Reply::error(format!("no group {name}"))
            }
            Request::Status { .. } => Reply {
                status: Some(sample_status()),
                ..Reply::ok()
            },
            Request::Events { n, .. } => {
                if state.race_history {
                    emit(&mut state, &events);
                }
                let skip = state.history.len().saturating_sub(n.unwrap_or(usize::MAX));
                Reply {
                    events: Some(state.history[skip..].to_vec()),
                    ..Reply::ok()
                }
            }
            Request::Metrics => Reply {
                metrics: Some("laggmond_up 1\n".into()),
                ..Reply::ok()
            },
            Request::Reload | Request::SetActive { .. } | Request::ClearDamping { .. } => {
                Reply::ok()
            }
        };
        let _ = reply.send(answer);
    }
}

fn sample_status() -> Status {
    let port = |name: &str, role: Role| PortStatus {
        name: name.into(),
        link: Link::Up,
        role,
        since: Some(Timestamp(SystemTime::UNIX_EPOCH)),
        flaps: 0,
        damped: false,
        damped_until: None,
        path: None,
        rtt_ms: None,
    };
    Status {
        version: "0.1.0".into(),
        pid: 42,
        uptime_s: 60,
        groups: vec![GroupStatus {
            name: "lagg0".into(),
            driver: Driver::Lagg,
            active: Some("em0".into()),
            primary: "em0".into(),
            healthy: true,
            state: State::Ok,
            operator: None,
            ports: vec![port("em0", Role::Active), port("bge0", Role::Backup)],
            last_failover: None,
        }],
    }
}

/// Awaits a task, failing the test if it takes too long.
async fn within<T>(task: JoinHandle<T>) -> Result<T, tokio::task::JoinError> {
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("task did not finish in time")
}

/// A client that speaks raw bytes, to send what a well-behaved client
/// never would.
struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    async fn connect(socket: &Path) -> RawClient {
        let stream = UnixStream::connect(socket).await.expect("connect");
        let (reader, writer) = stream.into_split();
        RawClient {
            reader: BufReader::new(reader),
            writer,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send");
    }

    /// The next line, `None` once the server has closed the connection.
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = tokio::time::timeout(PATIENCE, self.reader.read_line(&mut line))
            .await
            .expect("no answer in time");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    }

    async fn reply(&mut self) -> Reply {
        let line = self.line().await.expect("a reply line");
        serde_json::from_str(&line).expect("reply JSON")
    }

    async fn ask(&mut self, request: &str) -> Reply {
        self.send(format!("{request}\n").as_bytes()).await;
        self.reply().await
    }

    async fn assert_closed(&mut self) {
        assert_eq!(self.line().await, None, "the server should have closed");
    }
}

#[tokio::test]
async fn status_round_trips_and_the_connection_stays_open() {
    let harness = Harness::start().await;
    let mut client = harness.connect().await;
    let reply = client.ask(r#"{"cmd":"status"}"#).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.status, Some(sample_status()));
    let metrics = client.ask(r#"{"cmd":"metrics"}"#).await;
    assert_eq!(metrics.metrics.as_deref(), Some("laggmond_up 1\n"));
    let uid = nix::unistd::getuid().as_raw();
    assert_eq!(
        harness.seen(),
        vec![
            (Request::Status { group: None }, uid),
            (Request::Metrics, uid)
        ]
    );
    harness.stop().await;
}

#[tokio::test]
async fn library_client_round_trips() {
    let harness = Harness::start().await;
    let reply = client::request(&harness.socket, &Request::Status { group: None })
        .await
        .expect("reply");
    assert_eq!(reply.status, Some(sample_status()));
    let refused = client::request(
        &harness.socket,
        &Request::Status {
            group: Some("nope".into()),
        },
    )
    .await
    .expect("reply");
    assert_eq!(refused.error.as_deref(), Some("no group nope"));
    harness.stop().await;
}

#[tokio::test]
async fn a_request_of_exactly_the_limit_is_accepted_one_byte_more_is_not() {
    let harness = Harness::start().await;

    let head = r#"{"cmd":"status""#;
    let padded = format!("{head}{}}}\n", " ".repeat(MAX_REQUEST - head.len() - 1));
    assert_eq!(padded.len(), MAX_REQUEST + 1, "limit plus the newline");
    let mut exact = harness.connect().await;
    exact.send(padded.as_bytes()).await;
    assert!(exact.reply().await.ok);
    assert!(exact.ask(r#"{"cmd":"metrics"}"#).await.ok, "still open");

    let RawClient {
        mut reader,
        mut writer,
    } = harness.connect().await;
    let too_long = format!("{head}{}}}\n", " ".repeat(MAX_REQUEST - head.len()));
    // The server stops reading midway, so the write may fail; the reply counts.
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(too_long.as_bytes()).await;
        writer
    });
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("reply");
    let reply: Reply = serde_json::from_str(&line).expect("reply JSON");
    assert_eq!(error_of(&reply), "request too long (limit 65536 bytes)");
    let writer = within(sender).await.expect("sender");
    let mut over = RawClient { reader, writer };
    over.assert_closed().await;
    harness.stop().await;
}

#[tokio::test]
async fn bad_json_and_unknown_commands_are_named_and_the_connection_survives() {
    let harness = Harness::start().await;
    let mut client = harness.connect().await;

    let bad = client.ask(r#"{"cmd":"status""#).await;
    assert!(error_of(&bad).starts_with("bad request:"), "{bad:?}");

    let unknown = client.ask(r#"{"cmd":"frobnicate"}"#).await;
    assert!(error_of(&unknown).contains("frobnicate"), "{unknown:?}");

    let extra = client.ask(r#"{"cmd":"status","colour":"red"}"#).await;
    assert!(error_of(&extra).contains("colour"), "{extra:?}");

    assert!(client.ask(r#"{"cmd":"status"}"#).await.ok);
    assert_eq!(
        harness.seen().len(),
        1,
        "only the valid request reached the daemon"
    );
    harness.stop().await;
}

/// `metrics` and `reload` take no field at all: an extra one is refused
/// and named, as for every other command, and never reaches the daemon
/// (a reload from root would otherwise run whatever the client meant).
#[tokio::test]
async fn metrics_and_reload_refuse_unknown_fields_by_name() {
    let harness = Harness::start().await;
    let mut client = harness.connect().await;
    for line in [r#"{"cmd":"metrics","x":1}"#, r#"{"cmd":"reload","x":1}"#] {
        let reply = client.ask(line).await;
        assert!(!reply.ok, "{line}: {reply:?}");
        let error = error_of(&reply);
        assert!(error.starts_with("bad request:"), "{line}: {error}");
        assert!(error.contains("unknown field `x`"), "{line}: {error}");
    }
    assert!(harness.seen().is_empty(), "nothing reached the daemon");
    assert!(client.ask(r#"{"cmd":"metrics"}"#).await.ok);
    assert_eq!(harness.seen().len(), 1, "the valid request did");
    harness.stop().await;
}

#[tokio::test]
async fn non_utf8_is_refused_and_closed() {
    let harness = Harness::start().await;
    let mut client = harness.connect().await;
    client.send(b"{\"cmd\":\"st\xffatus\"}\n").await;
    assert_eq!(
        error_of(&client.reply().await),
        "request is not valid UTF-8"
    );
    client.assert_closed().await;
    harness.stop().await;
}

#[tokio::test]
async fn privileged_requests_from_root_reach_the_daemon() {
    if !nix::unistd::getuid().is_root() {
        return;
    }
    let harness = Harness::start().await;
    let mut client = harness.connect().await;
    let reply = client
        .ask(r#"{"cmd":"set-active","group":"lagg0","port":"bge0"}"#)
        .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        harness.seen(),
        vec![(
            Request::SetActive {
                group: "lagg0".into(),
                port: Some("bge0".into())
            },
            0
        )]
    );
    harness.stop().await;
}

#[tokio::test]
async fn client_number_129_is_told_the_server_is_busy() {
    let harness = Harness::start().await;
    let mut clients = Vec::new();
    for _ in 0..MAX_CLIENTS {
        let mut client = harness.connect().await;
        // A reply proves the server accepted it and holds a slot for it.
        assert!(client.ask(r#"{"cmd":"metrics"}"#).await.ok);
        clients.push(client);
    }

    let mut extra = harness.connect().await;
    assert_eq!(error_of(&extra.reply().await), "busy: too many clients");
    extra.assert_closed().await;

    // Once one leaves, there is room again.
    drop(clients.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut next = harness.connect().await;
        let reply = next.ask(r#"{"cmd":"metrics"}"#).await;
        if reply.ok {
            break;
        }
        assert_eq!(error_of(&reply), "busy: too many clients");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.stop().await;
}

#[tokio::test]
async fn follower_gets_history_then_live_events_without_duplicates() {
    let harness = Harness::start().await;
    harness.emit();
    harness.emit();
    harness.state.lock().expect("state").race_history = true;

    let mut follower = harness.connect().await;
    let history = follower.ask(r#"{"cmd":"events","follow":true}"#).await;
    let seqs: Vec<u64> = history
        .events
        .expect("history")
        .iter()
        .map(|e| e.seq)
        .collect();
    // The third event happened after the subscription but before the history.
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(
        harness.seen()[0].0,
        Request::Events {
            n: None,
            follow: false
        },
        "the server asks the daemon for the history only"
    );

    harness.emit();
    harness.emit();
    for expected in [4, 5] {
        let line = follower.line().await.expect("an event line");
        let event: Event = serde_json::from_str(&line).expect("event JSON");
        assert_eq!(event.seq, expected, "{line}");
        assert_eq!(event.what.kind, Kind::PortUp);
    }
    harness.stop().await;
    follower.assert_closed().await;
}

#[tokio::test]
async fn follower_with_a_short_history_still_gets_every_new_event() {
    let harness = Harness::start().await;
    for _ in 0..5 {
        harness.emit();
    }
    let mut follower = harness.connect().await;
    let history = follower
        .ask(r#"{"cmd":"events","n":2,"follow":true}"#)
        .await;
    let seqs: Vec<u64> = history
        .events
        .expect("history")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [4, 5]);
    harness.emit();
    let event: Event = serde_json::from_str(&follower.line().await.expect("event")).expect("JSON");
    assert_eq!(event.seq, 6);
    harness.stop().await;
}

#[tokio::test]
async fn follower_that_stops_reading_is_dropped_with_lagged_and_nobody_waits() {
    let harness = Harness::start_with(16, None).await;
    let mut follower = harness.connect().await;
    let history = follower.ask(r#"{"cmd":"events","follow":true}"#).await;
    assert_eq!(history.events, Some(vec![]));

    // Far more than the socket buffer and the stream hold together. Emitting
    // never waits for the follower: that is the point.
    for i in 0..20_000 {
        harness.emit();
        if i % 4 == 0 {
            tokio::task::yield_now().await;
        }
    }

    // Others are served while the follower is stuck.
    let mut other = harness.connect().await;
    assert!(other.ask(r#"{"cmd":"status"}"#).await.ok);

    let mut expected = 1;
    let missed = loop {
        let line = follower
            .line()
            .await
            .expect("events, then the lagged notice");
        if let Ok(event) = serde_json::from_str::<Event>(&line) {
            assert_eq!(event.seq, expected, "events arrive in order, without gaps");
            expected += 1;
            continue;
        }
        let reply: Reply = serde_json::from_str(&line).expect("reply JSON");
        assert_eq!(error_of(&reply), "lagged");
        break reply.missed.expect("missed count");
    };
    assert!(missed > 0);
    assert!(
        expected > 1,
        "the follower got events before it fell behind"
    );
    assert!(expected + missed <= 20_001);
    follower.assert_closed().await;
    harness.stop().await;
}

#[tokio::test]
async fn a_follower_that_leaves_is_unsubscribed() {
    let harness = Harness::start().await;
    let mut follower = harness.connect().await;
    assert!(follower.ask(r#"{"cmd":"events","follow":true}"#).await.ok);
    assert_eq!(harness.events.receiver_count(), 1);
    drop(follower);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while harness.events.receiver_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still subscribed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    harness.stop().await;
}

#[tokio::test]
async fn shutdown_ends_every_connection() {
    let harness = Harness::start().await;
    let mut idle = harness.connect().await;
    assert!(idle.ask(r#"{"cmd":"status"}"#).await.ok);
    let mut follower = harness.connect().await;
    assert!(follower.ask(r#"{"cmd":"events","follow":true}"#).await.ok);
    let mut silent = harness.connect().await;

    let socket = harness.socket.clone();
    harness.stop().await;
    idle.assert_closed().await;
    follower.assert_closed().await;
    silent.assert_closed().await;
    assert!(
        UnixStream::connect(&socket).await.is_err(),
        "nothing accepts after shutdown"
    );
}

#[tokio::test]
async fn a_gone_daemon_gives_an_error_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s");
    let listener = server::bind(&socket, None).expect("bind");
    let (to_daemon, requests) = mpsc::channel(1);
    drop(requests);
    let (events, _) = broadcast::channel(4);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, to_daemon, events, shutdown.clone()));
    let mut client = RawClient::connect(&socket).await;
    assert_eq!(
        error_of(&client.ask(r#"{"cmd":"status"}"#).await),
        "daemon is shutting down"
    );
    shutdown.cancel();
    within(server).await.expect("server");
}

#[tokio::test]
async fn bind_replaces_a_stale_socket_with_a_0660_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("crashed run"));
    let listener = server::bind(&socket, None).expect("stale socket replaced");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    drop(listener);
}

#[tokio::test]
async fn bind_refuses_a_live_socket_and_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s");
    let _live = server::bind(&socket, None).expect("first");
    let error = server::bind(&socket, None).expect_err("second");
    assert_eq!(
        error.to_string(),
        format!("another laggmond is listening on {}", socket.display())
    );

    let file = dir.path().join("f");
    std::fs::write(&file, "precious").expect("file");
    let error = server::bind(&file, None).expect_err("not a socket");
    assert!(error.to_string().contains("not a socket"), "{error}");
    assert_eq!(std::fs::read_to_string(&file).expect("file"), "precious");
}

#[tokio::test]
async fn bind_gives_the_socket_to_the_group() {
    if !nix::unistd::getuid().is_root() {
        return;
    }
    let Some(group) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .ok()
        .flatten()
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s");
    let _listener = server::bind(&socket, Some(&group.name)).expect("bind");
    let metadata = std::fs::metadata(&socket).expect("socket");
    assert_eq!((metadata.uid(), metadata.gid()), (0, 65534));
}

#[tokio::test]
async fn bind_names_an_unknown_group_and_leaves_no_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s");
    let error = server::bind(&socket, Some("no-such-group-here")).expect_err("unknown group");
    assert!(error.to_string().contains("no-such-group-here"), "{error}");
    assert!(!socket.exists());
}

// The CLI, run as a separate process against the harness.

async fn cli(harness: &Harness, args: &[&str]) -> Output {
    cli_as(harness, args, None).await
}

/// Runs the binary with `-s SOCKET ARGS`, as `nobody` from `binary` when
/// given.
async fn cli_as(harness: &Harness, args: &[&str], as_nobody: Option<&NobodyBinary>) -> Output {
    let mut command = match as_nobody {
        Some(binary) => tokio::process::Command::from(binary.command()),
        None => tokio::process::Command::new(common::LAGGMOND),
    };
    command.arg("-s").arg(&harness.socket).args(args);
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the CLI hung")
        .expect("run the CLI")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn cli_status_prints_the_table_or_the_json() {
    let harness = Harness::start().await;
    let table = cli(&harness, &["status"]).await;
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    assert!(
        stdout(&table).contains("lagg0 (lagg): active em0 (primary), ok\n"),
        "{}",
        stdout(&table)
    );

    let json = cli(&harness, &["status", "--json"]).await;
    assert_eq!(json.status.code(), Some(0));
    let out = stdout(&json);
    assert_eq!(out.lines().count(), 1, "{out}");
    let status: Status = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status, sample_status());

    let unknown = cli(&harness, &["status", "bond9"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(stderr(&unknown), "laggmond: no group bond9\n");
    harness.stop().await;
}

#[tokio::test]
async fn cli_says_not_running_with_status_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("absent.sock");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_laggmond"))
            .args(args)
            .env("LAGGMOND_SOCKET", &socket)
            .output()
            .expect("run the CLI")
    };
    let expected = format!(
        "laggmond: not running (no socket at {})\n",
        socket.display()
    );

    let status = run(&["status"]);
    assert_eq!(status.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&status.stderr), expected);

    let reload = run(&["reload"]);
    assert_eq!(reload.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&reload.stderr), expected);
}

#[tokio::test]
async fn cli_changes_reach_the_daemon() {
    if !nix::unistd::getuid().is_root() {
        return;
    }
    let harness = Harness::start().await;
    for args in [
        &["set-active", "lagg0", "bge0"][..],
        &["set-active", "lagg0", "--clear"],
        &["clear-damping", "lagg0"],
        &["reload"],
    ] {
        let output = cli(&harness, args).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    let requests: Vec<Request> = harness.seen().into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        requests,
        vec![
            Request::SetActive {
                group: "lagg0".into(),
                port: Some("bge0".into())
            },
            Request::SetActive {
                group: "lagg0".into(),
                port: None
            },
            Request::ClearDamping {
                group: Some("lagg0".into()),
                port: None
            },
            Request::Reload,
        ]
    );
    harness.stop().await;
}

#[tokio::test]
async fn cli_usage_errors_exit_2() {
    let harness = Harness::start().await;
    for args in [
        &["set-active", "lagg0"][..],
        &["set-active", "lagg0", "em0", "--clear"],
        &["frobnicate"],
    ] {
        let output = cli(&harness, args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    assert!(harness.seen().is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn cli_events_prints_lines_or_json() {
    let harness = Harness::start().await;
    harness.emit();
    harness.emit();
    let human = cli(&harness, &["events", "-n", "1"]).await;
    assert_eq!(human.status.code(), Some(0), "{}", stderr(&human));
    let out = stdout(&human);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.ends_with(" info    lagg0: em0 link up group=lagg0 event=port_up port=em0\n"),
        "{out}"
    );

    let json = cli(&harness, &["events", "--json"]).await;
    let seqs: Vec<u64> = stdout(&json)
        .lines()
        .map(|line| serde_json::from_str::<Event>(line).expect("event JSON").seq)
        .collect();
    assert_eq!(seqs, [1, 2]);
    harness.stop().await;
}

#[tokio::test]
async fn cli_follow_prints_until_the_daemon_closes() {
    let harness = Harness::start().await;
    harness.emit();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_laggmond"))
        .arg("-s")
        .arg(&harness.socket)
        .args(["events", "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the CLI");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(next_seq(&mut lines).await, 1);
    // The history is printed, so the follower is subscribed: this one is live.
    harness.emit();
    assert_eq!(next_seq(&mut lines).await, 2);
    harness.stop().await;
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the CLI kept running")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// The sequence number of the next JSON event line the CLI prints.
async fn next_seq(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> u64 {
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("no output in time")
        .expect("read")
        .expect("a line");
    serde_json::from_str::<Event>(&line)
        .expect("event JSON")
        .seq
}

#[tokio::test]
async fn cli_check_config_fails_with_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.yml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_laggmond"))
        .args(["check-config", "-c"])
        .arg(&missing)
        .output()
        .expect("run the CLI");
    assert_eq!(output.status.code(), Some(78));
    let err = String::from_utf8_lossy(&output.stderr);
    // Config problems are printed bare, starting with the file's path.
    assert!(
        err.starts_with(&missing.display().to_string()) && err.lines().count() == 1,
        "{err}"
    );
}

/// Root and a non-root member of the socket group, end to end: the group
/// may look, only root may change things, and the refusal never reaches
/// the daemon.
#[tokio::test]
async fn non_root_may_look_but_not_change() {
    if !nix::unistd::getuid().is_root() {
        return;
    }
    let Some(group) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .ok()
        .flatten()
    else {
        return;
    };
    let harness = Harness::start_with(64, Some(&group.name)).await;
    // The unprivileged process must reach the socket in the temporary directory.
    std::fs::set_permissions(harness.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    let binary = NobodyBinary::new();
    let nobody = Some(&binary);

    let look = cli_as(&harness, &["status"], nobody).await;
    assert_eq!(look.status.code(), Some(0), "{}", stderr(&look));
    let change = cli_as(&harness, &["reload"], nobody).await;
    assert_eq!(change.status.code(), Some(1));
    assert_eq!(stderr(&change), "laggmond: permission denied\n");

    assert_eq!(
        harness.seen(),
        vec![(Request::Status { group: None }, common::NOBODY)],
        "only the status request reached the daemon"
    );
    harness.stop().await;
}

/// Connects `count` times as `uid` (group 65534) and sends each
/// connection `line`; returns the first line each got back, with the
/// connections. Only the connecting thread changes its credentials (the
/// raw system call changes the calling thread's alone, where the C
/// library's wrapper would change every thread's), and the kernel
/// records a peer's credentials at connect time: the test process stays
/// root. The thread ends with the connections made, taking its
/// credentials with it.
#[cfg(target_os = "linux")]
async fn as_user(
    uid: u32,
    socket: &Path,
    count: usize,
    line: &'static str,
) -> Vec<(String, std::os::unix::net::UnixStream)> {
    let socket = socket.to_owned();
    let thread = std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        // SAFETY: plain system calls on integers; they touch no memory.
        let changed = unsafe {
            libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534) == 0
                && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
        };
        assert!(changed, "setresuid: {}", std::io::Error::last_os_error());
        let streams: Vec<_> = (0..count)
            .map(|_| std::os::unix::net::UnixStream::connect(&socket).expect("connect"))
            .collect();
        streams
            .into_iter()
            .map(|mut stream| {
                stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
                // A refused client may be closed already.
                let _ = stream.write_all(line.as_bytes());
                let mut first = String::new();
                let mut reader = std::io::BufReader::new(&stream);
                reader.read_line(&mut first).expect("a reply in time");
                (first, stream)
            })
            .collect()
    });
    // Joined off the runtime, which must go on serving meanwhile.
    tokio::task::spawn_blocking(move || thread.join().expect("client thread"))
        .await
        .expect("join")
}

/// One user filling the socket must leave room for root and for other
/// users: a user gets half the slots at most, and the surplus is told why.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn one_user_cannot_lock_out_root_or_other_users() {
    if !nix::unistd::getuid().is_root() {
        return;
    }
    let Some(group) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .ok()
        .flatten()
    else {
        return;
    };
    let harness = Harness::start_with(64, Some(&group.name)).await;
    std::fs::set_permissions(harness.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    // Followers: exempt from the request deadline, they hold their slots.
    let follow = "{\"cmd\":\"events\",\"follow\":true}\n";
    let crowd = as_user(common::NOBODY, &harness.socket, MAX_CLIENTS + 8, follow).await;
    let served = crowd
        .iter()
        .filter(|(line, _)| line.starts_with("{\"ok\":true"))
        .count();
    for (line, _) in crowd
        .iter()
        .filter(|(line, _)| !line.starts_with("{\"ok\":true"))
    {
        let reply: Reply = serde_json::from_str(line).expect("reply JSON");
        assert!(error_of(&reply).starts_with("busy"), "{line}");
    }
    assert!(
        (1..=MAX_CLIENTS / 2).contains(&served),
        "one user holds {served} of {MAX_CLIENTS} slots"
    );

    let mut root = harness.connect().await;
    assert!(
        root.ask(r#"{"cmd":"reload"}"#).await.ok,
        "root was locked out"
    );
    let metrics = "{\"cmd\":\"metrics\"}\n";
    let other = as_user(common::NOBODY - 1, &harness.socket, 1, metrics).await;
    assert!(
        other[0].0.starts_with("{\"ok\":true"),
        "another user was locked out: {}",
        other[0].0
    );
    drop((crowd, other));
    harness.stop().await;
}

/// A client that sends nothing, or a request too slowly, is told so and
/// closed after the deadline; a follower, which has nothing more to send,
/// is not.
#[tokio::test]
async fn a_request_must_come_in_time_but_a_follower_may_stay() {
    let harness = Harness::start().await;
    let idle = async {
        let mut idle = harness.connect().await;
        let reply = idle.reply().await;
        assert!(error_of(&reply).starts_with("timeout"), "{reply:?}");
        idle.assert_closed().await;
    };
    let drip = async {
        let RawClient {
            mut reader,
            mut writer,
        } = harness.connect().await;
        let dripping = tokio::spawn(async move {
            // 8.5 s for the whole request, one byte at a time.
            for byte in b"{\"cmd\":\"status\"}\n" {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, reader.read_line(&mut line))
            .await
            .expect("no answer in time")
            .expect("read");
        let reply: Reply = serde_json::from_str(&line).expect("reply JSON");
        assert!(error_of(&reply).starts_with("timeout"), "{reply:?}");
        dripping.await.expect("dripping client");
    };
    let follower = async {
        let mut follower = harness.connect().await;
        let history = follower.ask(r#"{"cmd":"events","follow":true}"#).await;
        assert!(history.ok, "{history:?}");
        // Beyond the deadline for a request.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let seq = harness.emit();
        let line = follower.line().await.expect("the follower is still served");
        let event: Event = serde_json::from_str(&line).expect("an event");
        assert_eq!(event.seq, seq);
    };
    tokio::join!(idle, drip, follower);
    harness.stop().await;
}
