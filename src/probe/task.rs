//! The prober: one task that sends each probed port's ARP requests when
//! they are due, reads the replies and tells the daemon when a port's
//! path changes.
//!
//! The daemon says which groups probe which ports ([`ProbeHandle::configure`])
//! and passes on link changes ([`ProbeHandle::links`]): a port is probed
//! only while its link is up, from the moment it comes up. Each probed
//! port has its own packet socket, read by a small task of its own that
//! passes on only the senders of valid replies; the judging is
//! [`PathProbe`]'s, with the time passed in. The socket is an `AF_PACKET`
//! socket on Linux, a BPF device on FreeBSD, with the same API.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How long after a failure a port's socket is opened, or read, again.
const REOPEN_AFTER: Duration = Duration::from_secs(5);

/// The largest frame read: an ARP reply is 42 to 60 bytes; a longer frame
/// is cut and still parsed (its tail is padding).
const FRAME_BUFFER: usize = 128;

/// What the daemon tells the prober.
#[derive(Debug)]
enum Command {
    /// The probed ports of every group with a `probe`, replacing the last.
    Configure(Vec<ProbedGroup>),
    /// Some links changed.
    Links(Vec<(String, bool)>),
    /// Every link there is, after a resync: the others are gone.
    AllLinks(Vec<(String, bool)>),
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
        // The task ends only with the handle: sending cannot fail before.
        let _ = self.commands.send(Command::Configure(groups));
    }

    /// Passes on `links` (name, up): every link, not only the probed
    /// ones, so that a port a reload starts probing is probed at once.
    pub fn links<'a>(&self, links: impl IntoIterator<Item = (&'a str, bool)>) {
        let _ = self.commands.send(Command::Links(owned(links)));
    }

    /// Passes on every link there is (a resync); any other is gone.
    pub fn all_links<'a>(&self, links: impl IntoIterator<Item = (&'a str, bool)>) {
        let _ = self.commands.send(Command::AllLinks(owned(links)));
    }
}

fn owned<'a>(links: impl IntoIterator<Item = (&'a str, bool)>) -> Vec<(String, bool)> {
    links
        .into_iter()
        .map(|(name, up)| (name.to_owned(), up))
        .collect()
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
        openings: 0,
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
        _stop: stop.drop_guard(),
    }
}

/// A valid reply from `sender` on the port of `key`, read at `at` by the
/// reader of the port's `opening`.
#[derive(Debug)]
struct Reply {
    key: PortKey,
    opening: u64,
    sender: Ipv4Addr,
    at: Instant,
}

/// A probed port and its group, which its reports name.
type PortKey = (String, String);

/// One probed port with link up.
struct ProbedPort {
    probe: PathProbe,
    /// Which opening of the port this is: a reply still queued from a
    /// socket of an earlier link of the port must not count for this one.
    opening: u64,
    /// `None` when the socket could not be opened (logged); the path then
    /// goes down after `missed` intervals, as it should when nothing can
    /// be sent.
    socket: Option<Arc<PortSocket>>,
    mac: [u8; 6],
    source: Ipv4Addr,
    /// When to try again to open the socket, after a failure.
    retry_at: Option<Instant>,
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
    /// Openings of ports so far, to tell them apart.
    openings: u64,
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
            // Not biased: a flood of replies on one port must not keep the
            // intervals of all from being judged.
            tokio::select! {
                () = self.stop.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                Some(reply) = self.replies.recv() => self.on_reply(reply),
                () = sleep_until(deadline), if deadline.is_some() => {
                    // A reply read in time counts for the interval it
                    // arrived in, not after that interval was judged; no
                    // more than the queue held, however fast more come.
                    for _ in 0..REPLY_QUEUE {
                        let Ok(reply) = self.replies.try_recv() else {
                            break;
                        };
                        self.on_reply(reply);
                    }
                    for report in self.on_deadline() {
                        if self.reports.send(report).await.is_err() {
                            return;
                        }
                    }
                    self.reopen_failed().await;
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
            Command::AllLinks(links) => self.links = links.into_iter().collect(),
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
    async fn open(&mut self, key: &PortKey, config: &ProbeConfig) -> ProbedPort {
        let mut probe = PathProbe::new(config);
        probe.start(Instant::now());
        self.openings += 1;
        let mut port = ProbedPort {
            probe,
            opening: self.openings,
            socket: None,
            mac: [0; 6],
            source: config.source,
            retry_at: None,
            _reader: None,
        };
        self.open_socket(key, config, &mut port).await;
        port
    }

    /// Opens the port's socket and starts its reader; on failure, logs it
    /// and sets when to try again: a host-side fault (no descriptors left,
    /// a netlink hiccup) must not leave the port judged dead for good.
    async fn open_socket(&self, key: &PortKey, config: &ProbeConfig, port: &mut ProbedPort) {
        let (group, name) = key;
        let opened = async {
            let ifindex = interface_index(name)?;
            let address = port_address(ifindex).await?;
            let socket = PortSocket::open(ifindex, address, &config.arp)?;
            Ok::<_, std::io::Error>((Arc::new(socket), address.sender))
        };
        match opened.await {
            Ok((socket, mac)) => {
                port._reader =
                    Some(self.read_replies(key.clone(), port.opening, socket.clone(), mac));
                port.socket = Some(socket);
                port.mac = mac;
                port.retry_at = None;
            }
            Err(error) => {
                if port.retry_at.is_none() {
                    tracing::error!("{group}: cannot probe {name}: {error}; trying again");
                } else {
                    tracing::debug!("{group}: cannot probe {name} yet: {error}");
                }
                port.retry_at = Some(Instant::now() + REOPEN_AFTER);
            }
        }
    }

    /// Tries again to open the sockets that could not be opened.
    async fn reopen_failed(&mut self) {
        let now = Instant::now();
        let due: Vec<PortKey> = self
            .ports
            .iter()
            .filter(|(_, port)| port.retry_at.is_some_and(|at| at <= now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let Some(config) = self
                .groups
                .iter()
                .find(|group| group.name == key.0)
                .map(|group| group.probe.clone())
            else {
                continue;
            };
            if let Some(mut port) = self.ports.remove(&key) {
                self.open_socket(&key, &config, &mut port).await;
                self.ports.insert(key, port);
            }
        }
    }

    /// Reads the port's socket in a task of its own, passing on the
    /// sender of each valid reply; ends with the returned guard.
    fn read_replies(
        &self,
        key: PortKey,
        opening: u64,
        socket: Arc<PortSocket>,
        mac: [u8; 6],
    ) -> DropGuard {
        let stop = self.stop.child_token();
        let replies = self.reply_tx.clone();
        let counters = self.counters.clone();
        let guard = stop.clone().drop_guard();
        tokio::spawn(async move {
            let mut buffer = [0u8; FRAME_BUFFER];
            let mut failing = false;
            loop {
                let read = tokio::select! {
                    () = stop.cancelled() => break,
                    read = socket.receive(&mut buffer) => read,
                };
                let length = match read {
                    Ok(length) => length.min(buffer.len()),
                    // The port went down under the socket, which works
                    // again when it comes back.
                    Err(error) if error.raw_os_error() == Some(libc::ENETDOWN) => continue,
                    Err(error) => {
                        // Said once, then tried again calmly: a reader that
                        // gave up would leave the port judged dead for good.
                        if !failing {
                            tracing::warn!(
                                "{}: reading probe replies on {}: {error}",
                                key.0,
                                key.1
                            );
                            failing = true;
                        }
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(REOPEN_AFTER) => continue,
                        }
                    }
                };
                failing = false;
                match arp::parse_reply(&buffer[..length], mac) {
                    Ok(reply) => {
                        let reply = Reply {
                            key: key.clone(),
                            opening,
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
        let Some(port) = self
            .ports
            .get_mut(&reply.key)
            .filter(|port| port.opening == reply.opening)
        else {
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
