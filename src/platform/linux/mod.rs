//! Linux: link state and bonds from rtnetlink.
//!
//! One task, one netlink socket. The socket is subscribed to the link
//! multicast group and also carries our full dumps (`RTM_GETLINK` with
//! `NLM_F_DUMP`), so dump replies and notifications are read in the order
//! the kernel produced them and a stale notification can never be applied
//! after a newer dump. The only wakeups are socket readiness and daemon
//! requests; nothing polls. A socket overrun (`ENOBUFS`: notifications were
//! lost) is answered with a new dump and a snapshot.
//!
//! Bonds come from the same messages: a bond's link message carries its
//! settings, its ports' messages carry their master. Setting the active
//! port is a request of its own, sent on its own socket and awaited in the
//! monitor's own loop, so the monitor keeps reading while the kernel
//! answers, and the answer goes out on the update stream after the news
//! that shows it.
//!
//! Only the kernel is believed: any process with `CAP_NET_ADMIN` can send a
//! datagram to our port (or to the link group), so every datagram whose
//! sender is not port 0 is dropped unread and counted.

mod bond;
mod decode;
mod set_active;
mod table;

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::{context, Answer, Flow, PlatformHandle, Request, Update, REQUEST_QUEUE, UPDATE_QUEUE};
use table::LinkTable;

/// How the link monitor is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Receive buffer of the netlink socket, in bytes (`SO_RCVBUF`; the
    /// kernel doubles it for its bookkeeping). It holds the notifications
    /// that arrive while the daemon is busy; when it overflows a full
    /// re-read follows. Tests shrink it to force overruns; below about
    /// 64 KiB a dump only makes progress while no notification is queued.
    pub recv_buffer: usize,
}

impl Default for Options {
    /// 1 MiB: thousands of link notifications, enough for a burst of
    /// interfaces being created or flapping at once.
    fn default() -> Options {
        Options {
            recv_buffer: 1 << 20,
        }
    }
}

/// Size of the datagram buffer: kernel dump chunks stay below 32 KiB and a
/// single notification is far smaller. A datagram that does not fit is
/// lost, and the buffer grows.
const DATAGRAM_BUFFER: usize = 64 * 1024;

/// Consecutive receive errors after which the socket is deemed broken.
const MAX_RECV_ERRORS: u32 = 16;

/// Start the link monitor: open and subscribe the netlink socket and send
/// the first dump request here, so that their failures are returned, then
/// run the monitor as a task of the current tokio runtime. The task ends
/// when the daemon drops the handle.
pub fn spawn(options: Options) -> io::Result<PlatformHandle> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "the Linux link monitor must be started inside a tokio runtime",
        ));
    }
    let (socket, port, recv_buffer) = open_socket(&options)?;
    let mut table = LinkTable::new(port);
    if let Some(seq) = table.start_dump() {
        send_dump_request(&socket, seq).map_err(context("sending the first link dump request"))?;
    }
    // SAFETY: the `Socket` owns its descriptor and moves into the
    // `AsyncFd`, which is the only one to close it.
    let socket = unsafe { AsyncFd::register(socket) }
        .map_err(|error| context("registering the netlink socket")(error.into_parts().1))?;
    let (update_tx, update_rx) = mpsc::channel(UPDATE_QUEUE);
    let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let foreign_messages = Arc::new(AtomicU64::new(0));
    let task = LinkTask {
        socket,
        table,
        buffer: vec![0; DATAGRAM_BUFFER],
        recv_errors: 0,
        foreign: foreign_messages.clone(),
        updates: update_tx,
        requests: request_rx,
        changes: FuturesUnordered::new(),
        recv_buffer,
    };
    tokio::spawn(task.run());
    Ok(PlatformHandle {
        updates: update_rx,
        requests: request_tx,
        foreign_messages,
    })
}

/// A `NETLINK_ROUTE` socket subscribed to link notifications, non-blocking,
/// and the port id the kernel gave it.
fn open_socket(options: &Options) -> io::Result<(Socket, u32, usize)> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(context("opening a netlink socket"))?;
    let recv_buffer = set_recv_buffer(&socket, options.recv_buffer)?;
    let address = socket
        .bind_auto()
        .map_err(context("binding the netlink socket"))?;
    socket
        .add_membership(libc::RTNLGRP_LINK)
        .map_err(context("joining the netlink link group"))?;
    socket
        .set_non_blocking(true)
        .map_err(context("making the netlink socket non-blocking"))?;
    tracing::debug!(
        fd = socket.as_raw_fd(),
        port = address.port_number(),
        "netlink socket open"
    );
    Ok((socket, address.port_number(), recv_buffer))
}

/// Set the receive buffer. `SO_RCVBUFFORCE` (root) honours the size even
/// above the system's `rmem_max`; `SO_RCVBUF` is capped by it.
/// Returns the size in force, which bounds what can be queued at once.
fn set_recv_buffer(socket: &Socket, size: usize) -> io::Result<usize> {
    match setsockopt(socket, sockopt::RcvBufForce, &size) {
        Ok(()) => {}
        Err(Errno::EPERM) => {
            setsockopt(socket, sockopt::RcvBuf, &size)
                .map_err(io::Error::from)
                .map_err(context("setting the netlink receive buffer"))?;
        }
        Err(errno) => {
            return Err(context("forcing the netlink receive buffer")(errno.into()));
        }
    }
    match getsockopt(socket, sockopt::RcvBuf) {
        Ok(effective) => {
            tracing::debug!(requested = size, effective, "netlink receive buffer");
            Ok(effective)
        }
        Err(errno) => {
            tracing::debug!("cannot read back the netlink receive buffer: {errno}");
            // The kernel doubles what it is given.
            Ok(size.saturating_mul(2))
        }
    }
}

/// Ask the kernel for every link, tagged with `seq`.
fn send_dump_request(socket: &Socket, seq: u32) -> io::Result<()> {
    let request = dump_request(seq);
    let sent = socket.send_to(&request, &SocketAddr::new(0, 0), 0)?;
    if sent != request.len() {
        return Err(io::Error::other(format!(
            "short send: {sent} of {} bytes",
            request.len()
        )));
    }
    tracing::debug!(seq, "link dump requested");
    Ok(())
}

/// The bytes of an `RTM_GETLINK` dump request.
fn dump_request(seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let payload = RouteNetlinkMessage::GetLink(LinkMessage::default());
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// The I/O driver of the link monitor: the socket, the table and the daemon's channels.
struct LinkTask {
    socket: AsyncFd<Socket>,
    table: LinkTable,
    buffer: Vec<u8>,
    recv_errors: u32,
    /// Datagrams dropped because another process sent them; shared with
    /// the daemon's handle for the metrics.
    foreign: Arc<AtomicU64>,
    updates: mpsc::Sender<Update>,
    requests: mpsc::Receiver<Request>,
    /// The active-port changes the kernel has not answered yet, each with
    /// the answer it becomes. Polled by the loop itself, so no answer can
    /// leave except through [`LinkTask::answer_after_news`].
    changes: FuturesUnordered<PendingChange>,
    /// The socket's receive buffer in force: no more than this many bytes
    /// can be queued in it at once.
    recv_buffer: usize,
}

/// One active-port change in flight, resolving to the answer to send.
type PendingChange = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// What woke the task up.
enum Wakeup {
    Datagram(io::Result<Datagram>),
    Request(Option<Request>),
    /// The kernel answered an active-port change.
    ChangeDone(Answer),
}

impl LinkTask {
    /// The event loop.
    async fn run(mut self) {
        loop {
            self.send_wanted_dump();
            let wakeup = tokio::select! {
                received = receive(&self.socket, &mut self.buffer) => Wakeup::Datagram(received),
                request = self.requests.recv() => Wakeup::Request(request),
                // An empty set is ready at once with `None`: left unpolled.
                Some(answer) = self.changes.next(), if !self.changes.is_empty() => {
                    Wakeup::ChangeDone(answer)
                }
            };
            let flow = match wakeup {
                Wakeup::Datagram(received) => self.on_datagram(received).await,
                Wakeup::Request(request) => self.on_request(request).await,
                Wakeup::ChangeDone(answer) => self.answer_after_news(answer).await,
            };
            if flow == Flow::Stop {
                break;
            }
        }
        tracing::debug!("link monitor stopped");
    }

    /// Send the dump the table wants, if any.
    fn send_wanted_dump(&mut self) {
        let Some(seq) = self.table.start_dump() else {
            return;
        };
        if let Err(error) = send_dump_request(self.socket.get_ref(), seq) {
            tracing::error!("cannot request a link dump: {error}; will retry on the next resync");
            self.table.dump_not_sent();
        }
    }

    /// A datagram (or a receive error): update the table, tell the daemon.
    async fn on_datagram(&mut self, received: io::Result<Datagram>) -> Flow {
        let Datagram { length, sender } = match received {
            Ok(datagram) => datagram,
            Err(error) => return self.on_receive_error(error),
        };
        self.recv_errors = 0;
        if sender != KERNEL_PORT {
            // Checked before the length: a forger must not make us grow
            // the buffer or re-read every link either.
            self.foreign.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                sender,
                length,
                "dropped a netlink datagram not sent by the kernel"
            );
            return Flow::Continue;
        }
        if length > self.buffer.len() {
            tracing::warn!(
                length,
                "netlink datagram larger than the buffer; re-reading all links"
            );
            self.buffer.resize(length, 0);
            self.table.datagram_truncated();
            return Flow::Continue;
        }
        let mut updates = Vec::new();
        for message in decode::messages(&self.buffer[..length]) {
            match message {
                Ok(message) => updates.extend(self.table.handle(message)),
                Err(error) => {
                    tracing::warn!("{error}; re-reading all links");
                    self.table.request_dump();
                }
            }
        }
        updates.extend(self.table.aggregate_news());
        for update in updates {
            if self.updates.send(update).await.is_err() {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// `ENOBUFS` means lost notifications (or a dump part the kernel could
    /// not queue yet; the two look the same): dump again. Other errors are
    /// treated the same until too many in a row show the socket is broken.
    fn on_receive_error(&mut self, error: io::Error) -> Flow {
        if error.raw_os_error() == Some(libc::ENOBUFS) {
            if self.table.messages_lost() {
                tracing::warn!("netlink socket overrun, messages lost; re-reading all links");
            } else {
                tracing::debug!("netlink socket overrun again before the re-read");
            }
            return Flow::Continue;
        }
        if error.kind() == io::ErrorKind::Interrupted {
            return Flow::Continue;
        }
        self.recv_errors += 1;
        if self.recv_errors >= MAX_RECV_ERRORS {
            tracing::error!("netlink socket keeps failing ({error}); link monitor stopped");
            return Flow::Stop;
        }
        tracing::warn!("netlink receive failed: {error}; re-reading all links");
        let _ = self.table.messages_lost();
        Flow::Continue
    }

    /// A daemon request, or `None` when the daemon dropped its handle.
    async fn on_request(&mut self, request: Option<Request>) -> Flow {
        match request {
            None => Flow::Stop,
            Some(Request::Resync) => {
                tracing::debug!(
                    joins_running_dump = self.table.dump_running(),
                    "resync requested"
                );
                self.table.request_dump();
                Flow::Continue
            }
            Some(Request::SetActive { group, port }) => {
                match self.table.active_port_change(&group, &port) {
                    Ok(change) => {
                        self.changes.push(Box::pin(async move {
                            let result = set_active::set_active(change).await;
                            Answer {
                                group,
                                port,
                                result,
                            }
                        }));
                        Flow::Continue
                    }
                    Err(error) => self.send(answer(group, port, Err(error))).await,
                }
            }
            Some(Request::SetAdminUp { group, port, .. }) => {
                // Only lagg damps by admin state; a bond steers its active slave.
                let refusal = Err("admin-down damping is for lagg only".to_owned());
                self.send(answer(group, port, refusal)).await
            }
            Some(Request::RemovePort { group, port } | Request::AddPort { group, port }) => {
                // A bond is steered by its active slave; only lagg uses
                // every member with link, so only lagg needs ports taken out.
                let refusal = Err("port removal is for lagg only".to_owned());
                self.send(answer(group, port, refusal)).await
            }
        }
    }

    /// Sends the kernel's answer to an active-port change, after the news
    /// that shows its outcome. The kernel changes the bond under the
    /// rtnetlink lock and multicasts the bond's new link message (its
    /// state change after the change of settings) to our socket before it
    /// acknowledges the request on the other socket. So once the answer is
    /// here, that news already waits in our socket: taking everything
    /// queued there first puts the updates showing the new active port
    /// ahead of the answer. Once as many bytes as the socket can hold
    /// were read, whatever was queued with the answer has been, so a storm
    /// of news cannot hold the answer (or the loop) here for ever.
    async fn answer_after_news(&mut self, answer: Answer) -> Flow {
        let mut read = 0;
        while read < self.recv_buffer {
            let received = recv_datagram(self.socket.get_ref(), &mut self.buffer);
            match &received {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Ok(datagram) => read += datagram.length.max(1),
                Err(_) => read += 1,
            }
            if self.on_datagram(received).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        self.send(Update::Answer(answer)).await
    }

    /// Sends one update to the daemon; `Stop` when the daemon is gone.
    async fn send(&mut self, update: Update) -> Flow {
        match self.updates.send(update).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }
}

/// The answer about `port` of the bond `group`, as an update.
fn answer(group: String, port: String, result: Result<(), String>) -> Update {
    Update::Answer(Answer {
        group,
        port,
        result,
    })
}

/// The netlink port id of the kernel: the only sender believed.
const KERNEL_PORT: u32 = 0;

/// One datagram read off the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Datagram {
    /// Its full length, which exceeds the buffer when it was cut.
    length: usize,
    /// The port id of the socket that sent it ([`KERNEL_PORT`] for the
    /// kernel, whether unicast or multicast).
    sender: u32,
}

/// Wait for the next datagram and read it into `buffer`, with its sender.
/// Cancel-safe: a datagram is only taken off the socket in the poll that
/// returns it.
async fn receive(socket: &AsyncFd<Socket>, buffer: &mut [u8]) -> io::Result<Datagram> {
    // Readiness alone does not count against the task's budget: without
    // this, a socket that keeps failing would never let the runtime run
    // anything else.
    tokio::task::coop::consume_budget().await;
    loop {
        let mut ready = socket.readable().await?;
        match ready.try_io(|socket| recv_datagram(socket.get_ref(), buffer)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// Read the next datagram into `buffer`, with its sender, without waiting:
/// `WouldBlock` when none is queued.
fn recv_datagram(socket: &Socket, buffer: &mut [u8]) -> io::Result<Datagram> {
    // One recvmsg per datagram: a peek would let the kernel continue a
    // dump in between and report its failure on the read, forever.
    socket
        .recv_from(&mut &mut *buffer, libc::MSG_TRUNC)
        .map(|(length, address)| Datagram {
            length,
            sender: address.port_number(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NLM_F_DUMP;

    #[test]
    fn the_dump_request_asks_for_every_link_with_our_sequence() {
        let bytes = dump_request(42);
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes)
            .expect("our own request parses");
        assert_eq!(message.header.message_type, libc::RTM_GETLINK);
        assert_eq!(message.header.flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(message.header.sequence_number, 42);
        assert_eq!(message.header.length as usize, bytes.len());
        match message.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(link)) => {
                assert_eq!(link.header.index, 0, "no filter on the interface");
            }
            other => panic!("unexpected payload {other:?}"),
        }
    }

    #[test]
    fn the_default_receive_buffer_is_one_mebibyte() {
        assert_eq!(Options::default().recv_buffer, 1024 * 1024);
    }

    #[test]
    fn spawning_outside_a_runtime_is_an_error_not_a_panic() {
        let error = spawn(Options::default()).expect_err("no runtime");
        assert!(error.to_string().contains("tokio runtime"), "{error}");
    }
}
