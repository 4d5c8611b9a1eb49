//! The prober: one task that sends each probed port's ARP requests when
//! they are due, reads the replies and tells the daemon when a port's
//! path changes.
//!
//! The daemon says which groups probe which ports ([`ProbeHandle::configure`])
//! and passes on link changes ([`ProbeHandle::link`]): a port is probed
//! only while its link is up, from the moment it comes up. Each probed
//! port has its own packet socket, read by a small task of its own that
//! passes on only the senders of valid replies; the judging is
//! [`PathProbe`]'s, with the time passed in. The socket is an `AF_PACKET`
//! socket on Linux, a BPF device on FreeBSD, with the same API.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::arp;
#[cfg(target_os = "freebsd")]
use super::bpf::{port_address, PortSocket};
#[cfg(target_os = "linux")]
use super::packet::{port_address, PortSocket};
use super::path::PathProbe;
use super::{PathReport, ProbeCounters};
use crate::config::{Config, ProbeConfig};

/// Path reports the daemon may fall behind by before the prober waits for
/// it; verdicts are rare (one per change of a port's path).
const REPORT_QUEUE: usize = 256;

/// Replies queued from the port readers to the prober.
const REPLY_QUEUE: usize = 1024;

/// The largest frame read: an ARP reply is 42 to 60 bytes; a longer frame
/// is cut and still parsed (its tail is padding).
const FRAME_BUFFER: usize = 128;

/// What the daemon tells the prober.
#[derive(Debug)]
enum Command {
    /// The probed ports of every group with a `probe`, replacing the last.
    Configure(Vec<ProbedGroup>),
    /// A port's link changed; every link is listed after a resync.
    Links(Vec<(String, bool)>),
}

/// One group's probe settings and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ProbedGroup {
    name: String,
    ports: Vec<String>,
    probe: ProbeConfig,
}

/// The daemon's end of the prober.
#[derive(Debug)]
pub struct ProbeHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// Path changes, in the order they were judged.
    pub reports: mpsc::Receiver<PathReport>,
    /// Shared with the task, read for the metrics.
    pub counters: Arc<ProbeCounters>,
    /// The ports whose link changes matter to the prober.
    probed: Vec<String>,
    /// Stops the task when the daemon drops the handle.
    _stop: DropGuard,
}

impl ProbeHandle {
    /// Puts `config`'s probe settings in force (at start and on reload).
    pub fn configure(&mut self, config: &Config) {
        let groups: Vec<ProbedGroup> = config
            .groups
            .iter()
            .filter_map(|group| {
                Some(ProbedGroup {
                    name: group.name.clone(),
                    ports: group.ports.clone(),
                    probe: group.probe.clone()?,
                })
            })
            .collect();
        self.probed = groups.iter().flat_map(|g| g.ports.clone()).collect();
        // The task ends only with the handle: sending cannot fail before.
        let _ = self.commands.send(Command::Configure(groups));
    }

    /// Passes on the link of the probed ports among `links` (name, up).
    pub fn links<'a>(&self, links: impl IntoIterator<Item = (&'a str, bool)>) {
        let probed: Vec<(String, bool)> = links
            .into_iter()
            .filter(|(name, _)| self.probed.iter().any(|port| port == name))
            .map(|(name, up)| (name.to_owned(), up))
            .collect();
        if !probed.is_empty() {
            let _ = self.commands.send(Command::Links(probed));
        }
    }
}

/// Starts the prober as a task of the current tokio runtime; it probes
/// nothing until [`ProbeHandle::configure`] and [`ProbeHandle::links`].
pub fn spawn() -> ProbeHandle {
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (report_tx, reports) = mpsc::channel(REPORT_QUEUE);
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
    let counters = Arc::new(ProbeCounters::default());
    let stop = CancellationToken::new();
    let task = Prober {
        groups: Vec::new(),
        links: HashMap::new(),
        ports: HashMap::new(),
        commands: command_rx,
        reports: report_tx,
        replies: reply_rx,
        reply_tx,
        counters: counters.clone(),
        stop: stop.clone(),
    };
    tokio::spawn(task.run());
    ProbeHandle {
        commands,
        reports,
        counters,
        probed: Vec::new(),
        _stop: stop.drop_guard(),
    }
}

/// A valid reply from `sender` on the port of `key`, read at `at`.
#[derive(Debug)]
struct Reply {
    key: PortKey,
    sender: Ipv4Addr,
    at: Instant,
}

/// A probed port of a group: a port may be probed by two groups.
type PortKey = (String, String);

/// One probed port with link up.
struct ProbedPort {
    probe: PathProbe,
    /// `None` when the socket could not be opened (logged); the path then
    /// goes down after `missed` intervals, as it should when nothing can
    /// be sent.
    socket: Option<Arc<PortSocket>>,
    mac: [u8; 6],
    source: Ipv4Addr,
    /// Ends the port's reader.
    _reader: Option<DropGuard>,
}

struct Prober {
    groups: Vec<ProbedGroup>,
    /// The link of every probed port, as last told.
    links: HashMap<String, bool>,
    /// The probed ports whose link is up.
    ports: HashMap<PortKey, ProbedPort>,
    commands: mpsc::UnboundedReceiver<Command>,
    reports: mpsc::Sender<PathReport>,
    replies: mpsc::Receiver<Reply>,
    reply_tx: mpsc::Sender<Reply>,
    counters: Arc<ProbeCounters>,
    stop: CancellationToken,
}

impl Prober {
    async fn run(mut self) {
        loop {
            let deadline = self
                .ports
                .values()
                .filter_map(|port| port.probe.next_deadline())
                .min();
            tokio::select! {
                () = self.stop.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                Some(reply) = self.replies.recv() => self.on_reply(reply),
                () = sleep_until(deadline), if deadline.is_some() => {
                    for report in self.on_deadline() {
                        if self.reports.send(report).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        tracing::debug!("prober stopped");
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Configure(groups) => {
                if groups != self.groups {
                    // New settings: every port starts over, as after a
                    // link change.
                    self.ports.clear();
                    self.groups = groups;
                }
            }
            Command::Links(links) => self.links.extend(links),
        }
        self.reconcile().await;
    }

    /// Probes every configured port whose link is up, and only those.
    async fn reconcile(&mut self) {
        let wanted: Vec<(PortKey, ProbeConfig)> = self
            .groups
            .iter()
            .flat_map(|group| {
                group
                    .ports
                    .iter()
                    .map(move |port| ((group.name.clone(), port.clone()), group.probe.clone()))
            })
            .filter(|((_, port), _)| self.links.get(port) == Some(&true))
            .collect();
        self.ports
            .retain(|key, _| wanted.iter().any(|(wanted, _)| wanted == key));
        for (key, probe) in wanted {
            if !self.ports.contains_key(&key) {
                let port = self.open(&key, &probe).await;
                self.ports.insert(key, port);
            }
        }
    }

    /// Starts probing a port whose link came up.
    async fn open(&self, key: &PortKey, config: &ProbeConfig) -> ProbedPort {
        let (group, port) = key;
        let mut probe = PathProbe::new(config);
        probe.start(Instant::now());
        let opened = async {
            let ifindex = interface_index(port)?;
            let address = port_address(ifindex).await?;
            let socket = PortSocket::open(ifindex, address, &config.arp)?;
            Ok::<_, std::io::Error>((Arc::new(socket), address.sender))
        };
        let (socket, mac, reader) = match opened.await {
            Ok((socket, mac)) => {
                let reader = self.read_replies(key.clone(), socket.clone(), mac);
                (Some(socket), mac, Some(reader))
            }
            Err(error) => {
                tracing::error!("{group}: cannot probe {port}: {error}");
                (None, [0; 6], None)
            }
        };
        ProbedPort {
            probe,
            socket,
            mac,
            source: config.source,
            _reader: reader,
        }
    }

    /// Reads the port's socket in a task of its own, passing on the
    /// sender of each valid reply; ends with the returned guard.
    fn read_replies(&self, key: PortKey, socket: Arc<PortSocket>, mac: [u8; 6]) -> DropGuard {
        let stop = self.stop.child_token();
        let replies = self.reply_tx.clone();
        let counters = self.counters.clone();
        let guard = stop.clone().drop_guard();
        tokio::spawn(async move {
            let mut buffer = [0u8; FRAME_BUFFER];
            loop {
                let read = tokio::select! {
                    () = stop.cancelled() => break,
                    read = socket.receive(&mut buffer) => read,
                };
                let length = match read {
                    Ok(length) => length.min(buffer.len()),
                    Err(error) => {
                        tracing::warn!("{}: reading probe replies on {}: {error}", key.0, key.1);
                        break;
                    }
                };
                match arp::parse_reply(&buffer[..length], mac) {
                    Ok(reply) => {
                        let reply = Reply {
                            key: key.clone(),
                            sender: reply.sender_ip,
                            at: Instant::now(),
                        };
                        if replies.send(reply).await.is_err() {
                            break;
                        }
                    }
                    Err(reason) => counters.ignore(reason),
                }
            }
        });
        guard
    }

    fn on_reply(&mut self, reply: Reply) {
        let Some(port) = self.ports.get_mut(&reply.key) else {
            // The port went down or away since the reply was read.
            return;
        };
        match port.probe.on_reply(reply.at, reply.sender) {
            Ok(_) => {
                self.counters.replies.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => self.counters.ignore(reason),
        }
    }

    /// Closes the intervals that ended, sends the next requests and
    /// returns the paths that changed.
    fn on_deadline(&mut self) -> Vec<PathReport> {
        let now = Instant::now();
        let mut reports = Vec::new();
        for ((group, name), port) in &mut self.ports {
            if port.probe.next_deadline().is_none_or(|at| at > now) {
                continue;
            }
            let tick = port.probe.on_interval(now);
            if let Some(socket) = &port.socket {
                for target in tick.send {
                    match socket.send(&arp::request(port.mac, port.source, target)) {
                        Ok(()) => {
                            self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // Logged at debug: a port without carrier refuses
                        // every send, and its path going down says so.
                        Err(error) => tracing::debug!("{group}: probe {target} on {name}: {error}"),
                    }
                }
            }
            if let Some(verdict) = tick.verdict {
                reports.push(PathReport {
                    group: group.clone(),
                    port: name.clone(),
                    verdict,
                });
            }
        }
        reports
    }
}

/// The kernel's index of the interface called `name`.
fn interface_index(name: &str) -> std::io::Result<u32> {
    let name = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::other(format!("bad interface name {name:?}")))?;
    // SAFETY: `name` is a valid C string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(index)
}

/// Sleeps until `deadline`; pends forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
