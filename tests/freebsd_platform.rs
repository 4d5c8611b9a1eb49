//! The FreeBSD platform, on any OS.
//!
//! First the state machine alone, fed with routing-message bytes (the
//! golden vectors of the FreeBSD facts, in `fixtures/freebsd/`, and
//! messages built by `RouteMessage::to_bytes`) and with `SIOCGLAGG`
//! replies decoded from port-buffer bytes. Then the whole platform task
//! over the simulated kernel: the two seed setups (a server with
//! `laggport em0 laggport bge0`, a laptop with `laggport em0 laggport
//! wlan0`), failover and failback, MASTER drift after a detach and attach,
//! its repair by reorder, errors, admin state, ports taken out of their
//! lagg for a dead path and put back, other protocols, lost and broken
//! messages.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use laggmond::platform::freebsd::abi::{
    LacpOpReq, LaggReqAll, IFF_UP, IFT_IEEE8023ADLAG, LAGG_PORT_ACTIVE, LAGG_PORT_COLLECTING,
    LAGG_PORT_DISTRIBUTING, LAGG_PORT_MASTER, LAGG_PROTO_FAILOVER, LAGG_PROTO_LACP,
    LINK_STATE_DOWN, LINK_STATE_UNKNOWN, LINK_STATE_UP,
};
use laggmond::platform::freebsd::fake::{
    interface, links, FakeLaggKernel, KernelCall, FLAGS_UP, IFT_ETHER,
};
use laggmond::platform::freebsd::{
    spawn_with, Interface, LaggKernel, LaggState, LaggTable, Options, RouteMessage, SettleTime,
    LAGG_PORT_BUFFER_LEN,
};
use laggmond::platform::{Aggregate, Answer, Link, LinkState, PlatformHandle, Request, Update};
use tokio::time::{timeout, Instant};

// --- fixtures --------------------------------------------------------------

/// Bytes from a fixture: hex pairs, `#` comments; zero-padded to `len`.
fn fixture(text: &str, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|pair| u8::from_str_radix(pair, 16).expect("fixture holds hex pairs"))
        .collect();
    assert!(bytes.len() <= len, "fixture longer than {len} bytes");
    bytes.resize(len, 0);
    bytes
}

fn golden_em0_down() -> Vec<u8> {
    fixture(
        include_str!("fixtures/freebsd/rtm_ifinfo_em0_down.hex"),
        168,
    )
}

fn golden_em0_departure() -> Vec<u8> {
    fixture(
        include_str!("fixtures/freebsd/rtm_ifannounce_em0_departure.hex"),
        24,
    )
}

/// Offset of `ifi_link_state` in an `RTM_IFINFO` message.
const IFI_LINK_STATE: usize = 20;

/// A `SIOCGLAGG` reply: the kernel's `lagg_reqall` and the port buffer it
/// filled (72-byte `lagg_reqport` entries: port name at 16, flags at 36),
/// decoded as the platform decodes it.
fn siocglagg(protocol: u32, ports: &[(&str, u32)]) -> LaggState {
    let mut buffer = vec![0u8; LAGG_PORT_BUFFER_LEN];
    for (entry, (name, flags)) in buffer.chunks_exact_mut(72).zip(ports) {
        entry[..5].copy_from_slice(b"lagg0");
        entry[16..16 + name.len()].copy_from_slice(name.as_bytes());
        entry[36..40].copy_from_slice(&flags.to_ne_bytes());
    }
    let reply = LaggReqAll {
        ra_ifname: *b"lagg0\0\0\0\0\0\0\0\0\0\0\0",
        ra_proto: protocol,
        ra_size: ports.len() * 72,
        ra_port: std::ptr::null_mut(),
        ra_ports: ports.len() as i32,
        ra_psc: LacpOpReq::default(),
    };
    LaggState::decode(&reply, &buffer)
}

const MASTER_ACTIVE: u32 = LAGG_PORT_MASTER | LAGG_PORT_ACTIVE;

fn link(index: u32, name: &str, state: LinkState, master: Option<u32>) -> Update {
    Update::Link(Link {
        index,
        name: name.into(),
        state,
        master,
    })
}

fn failover(
    index: u32,
    members: &[&str],
    active: Option<&str>,
    primary: Option<&str>,
) -> Aggregate {
    Aggregate {
        index,
        name: "lagg0".into(),
        mode: "failover".into(),
        failover: true,
        members: members.iter().map(|name| name.to_string()).collect(),
        active: active.map(Into::into),
        primary: primary.map(Into::into),
        kernel_preempts: true,
        arp_monitor: false,
    }
}

const SETTLE: SettleTime = SettleTime {
    min: Duration::from_millis(150),
    max: Duration::from_secs(3),
};

fn errno_text(code: i32) -> String {
    io::Error::from_raw_os_error(code).to_string()
}

// --- the state machine on bytes ----------------------------------------------

/// Seed 1 as the state machine sees it: lo0, em0 (2), bge0 (3), lagg0 (4).
fn seed1_table() -> LaggTable {
    let mut table = LaggTable::new(SETTLE);
    assert!(table.take_work().resync, "a new table wants a full read");
    let interfaces = vec![
        interface(1, "lo0", LINK_STATE_UNKNOWN, 0x18),
        interface(2, "em0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
        interface(3, "bge0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
        interface(4, "lagg0", LINK_STATE_UP, IFT_ETHER),
    ];
    let laggs = vec![(
        "lagg0".to_owned(),
        siocglagg(LAGG_PROTO_FAILOVER, &[("em0", MASTER_ACTIVE), ("bge0", 0)]),
    )];
    let updates = table.on_resync(interfaces, laggs);
    assert_eq!(
        updates,
        [
            Update::Snapshot(vec![
                Link {
                    index: 1,
                    name: "lo0".into(),
                    state: LinkState::Down,
                    master: None
                },
                Link {
                    index: 2,
                    name: "em0".into(),
                    state: LinkState::Up,
                    master: Some(4)
                },
                Link {
                    index: 3,
                    name: "bge0".into(),
                    state: LinkState::Up,
                    master: Some(4)
                },
                Link {
                    index: 4,
                    name: "lagg0".into(),
                    state: LinkState::Up,
                    master: None
                },
            ]),
            Update::Aggregate(failover(4, &["em0", "bge0"], Some("em0"), Some("em0"))),
        ]
    );
    table
}

/// One read as the platform task makes it: the message, then, for each
/// link change it claims, the interface's own state as the kernel reports
/// it `now` (gone when not listed).
fn read_confirmed(table: &mut LaggTable, bytes: &[u8], now: &[Interface]) -> Vec<Update> {
    let mut updates = table.on_read(bytes);
    for claim in table.take_claims() {
        let read = now
            .iter()
            .find(|interface| interface.name == claim.name)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENXIO));
        updates.extend(table.on_confirmation(&claim, read));
    }
    updates
}

/// The laggs the table wants read, which must be just `expected`.
fn expect_lagg_reads(table: &mut LaggTable, expected: &[&str]) {
    let work = table.take_work();
    assert!(!work.resync && work.interfaces.is_empty(), "{work:?}");
    assert_eq!(work.laggs, expected);
}

#[test]
fn seed1_failover_failback_and_master_drift_from_bytes() {
    let mut table = seed1_table();

    // em0 loses carrier (the golden RTM_IFINFO, which SIOCGIFDATA
    // confirms); lagg moved to bge0.
    let em0_down = interface(2, "em0", LINK_STATE_DOWN, IFT_IEEE8023ADLAG);
    let updates = read_confirmed(&mut table, &golden_em0_down(), &[em0_down]);
    assert_eq!(updates, [link(2, "em0", LinkState::Down, Some(4))]);
    expect_lagg_reads(&mut table, &["lagg0"]);
    let read = siocglagg(
        LAGG_PROTO_FAILOVER,
        &[("em0", LAGG_PORT_MASTER), ("bge0", LAGG_PORT_ACTIVE)],
    );
    let updates = table.on_lagg("lagg0", Ok(read));
    assert_eq!(
        updates,
        [Update::Aggregate(failover(
            4,
            &["em0", "bge0"],
            Some("bge0"),
            Some("em0")
        ))]
    );

    // em0 is back: lagg returns to it by itself.
    let mut em0_up = golden_em0_down();
    em0_up[IFI_LINK_STATE] = LINK_STATE_UP;
    let em0_now = interface(2, "em0", LINK_STATE_UP, IFT_IEEE8023ADLAG);
    let updates = read_confirmed(&mut table, &em0_up, &[em0_now]);
    assert_eq!(updates, [link(2, "em0", LinkState::Up, Some(4))]);
    expect_lagg_reads(&mut table, &["lagg0"]);
    let read = siocglagg(LAGG_PROTO_FAILOVER, &[("em0", MASTER_ACTIVE), ("bge0", 0)]);
    let updates = table.on_lagg("lagg0", Ok(read));
    assert_eq!(
        updates,
        [Update::Aggregate(failover(
            4,
            &["em0", "bge0"],
            Some("em0"),
            Some("em0")
        ))]
    );

    // em0 detaches (the golden RTM_IFANNOUNCE): bge0 becomes MASTER.
    let updates = table.on_read(&golden_em0_departure());
    assert_eq!(
        updates,
        [Update::Gone {
            index: 2,
            name: "em0".into()
        }]
    );
    expect_lagg_reads(&mut table, &["lagg0"]);
    let read = siocglagg(LAGG_PROTO_FAILOVER, &[("bge0", MASTER_ACTIVE)]);
    let updates = table.on_lagg("lagg0", Ok(read));
    assert_eq!(
        updates,
        [Update::Aggregate(failover(
            4,
            &["bge0"],
            Some("bge0"),
            Some("bge0")
        ))]
    );

    // em0 attaches again, with a new index: read it, probe it for a lagg.
    let arrival = RouteMessage::IfAnnounce {
        index: 5,
        name: "em0".into(),
        arrival: true,
    };
    assert_eq!(table.on_read(&arrival.to_bytes()), []);
    let work = table.take_work();
    assert_eq!(
        (work.resync, work.interfaces, work.laggs),
        (false, vec!["em0".to_owned()], vec!["em0".to_owned()])
    );
    let updates = table.on_interface("em0", Ok(interface(5, "em0", LINK_STATE_UP, IFT_ETHER)));
    assert_eq!(updates, [link(5, "em0", LinkState::Up, None)]);
    let not_a_lagg = io::Error::from_raw_os_error(libc::EINVAL);
    assert_eq!(table.on_lagg("em0", Err(not_a_lagg)), []);

    // It is added back to lagg0, last: the MAC reprogramming bounces it,
    // and its ifi_type says it is a lagg member now.
    let joined = RouteMessage::IfInfo {
        index: 5,
        flags: FLAGS_UP,
        link_state: LINK_STATE_UP,
        if_type: IFT_IEEE8023ADLAG,
    };
    assert_eq!(table.on_read(&joined.to_bytes()), []);
    expect_lagg_reads(&mut table, &["lagg0"]);
    let read = siocglagg(LAGG_PROTO_FAILOVER, &[("bge0", MASTER_ACTIVE), ("em0", 0)]);
    let updates = table.on_lagg("lagg0", Ok(read));
    assert_eq!(
        updates,
        [
            link(5, "em0", LinkState::Up, Some(4)),
            Update::Aggregate(failover(4, &["bge0", "em0"], Some("bge0"), Some("bge0"))),
        ]
    );
    assert!(table.take_work().is_empty());
}

#[test]
fn seed2_laptop_from_bytes() {
    let mut table = LaggTable::new(SETTLE);
    table.take_work();
    let interfaces = vec![
        interface(1, "em0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
        interface(2, "wlan0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
        interface(3, "lagg0", LINK_STATE_UP, IFT_ETHER),
    ];
    let read = siocglagg(LAGG_PROTO_FAILOVER, &[("em0", MASTER_ACTIVE), ("wlan0", 0)]);
    let updates = table.on_resync(interfaces, vec![("lagg0".to_owned(), read)]);
    assert_eq!(
        updates.last(),
        Some(&Update::Aggregate(failover(
            3,
            &["em0", "wlan0"],
            Some("em0"),
            Some("em0")
        )))
    );

    for (carrier, active) in [(false, "wlan0"), (true, "em0")] {
        let message = RouteMessage::IfInfo {
            index: 1,
            flags: FLAGS_UP,
            link_state: if carrier { LINK_STATE_UP } else { 1 },
            if_type: IFT_IEEE8023ADLAG,
        };
        let now = Interface {
            index: 1,
            name: "em0".into(),
            flags: FLAGS_UP,
            link_state: if carrier { LINK_STATE_UP } else { 1 },
            if_type: IFT_IEEE8023ADLAG,
        };
        let updates = read_confirmed(&mut table, &message.to_bytes(), &[now]);
        let state = LinkState::from_up(carrier);
        assert_eq!(updates, [link(1, "em0", state, Some(3))]);
        expect_lagg_reads(&mut table, &["lagg0"]);
        let flags = |port: &str| {
            let master = if port == "em0" { LAGG_PORT_MASTER } else { 0 };
            let active = if port == active { LAGG_PORT_ACTIVE } else { 0 };
            master | active
        };
        let read = siocglagg(
            LAGG_PROTO_FAILOVER,
            &[("em0", flags("em0")), ("wlan0", flags("wlan0"))],
        );
        let updates = table.on_lagg("lagg0", Ok(read));
        assert_eq!(
            updates,
            [Update::Aggregate(failover(
                3,
                &["em0", "wlan0"],
                Some(active),
                Some("em0")
            ))]
        );
    }
}

#[test]
fn a_lacp_lagg_is_reported_as_not_failover() {
    let mut table = LaggTable::new(SETTLE);
    let lacp_flags = LAGG_PORT_ACTIVE | LAGG_PORT_COLLECTING | LAGG_PORT_DISTRIBUTING;
    let interfaces = vec![
        interface(1, "igb0", LINK_STATE_UP, IFT_IEEE8023ADLAG),
        interface(2, "igb1", LINK_STATE_UP, IFT_IEEE8023ADLAG),
        interface(3, "lagg0", LINK_STATE_UP, IFT_ETHER),
    ];
    let read = siocglagg(
        LAGG_PROTO_LACP,
        &[("igb0", lacp_flags), ("igb1", lacp_flags)],
    );
    let updates = table.on_resync(interfaces, vec![("lagg0".to_owned(), read)]);
    assert_eq!(
        updates.last(),
        Some(&Update::Aggregate(Aggregate {
            index: 3,
            name: "lagg0".into(),
            mode: "lacp".into(),
            failover: false,
            members: vec!["igb0".into(), "igb1".into()],
            active: Some("igb0".into()),
            primary: None,
            kernel_preempts: true,
            arp_monitor: false,
        }))
    );
}

#[test]
fn garbage_and_truncated_messages_are_skipped() {
    let mut table = seed1_table();
    let golden = golden_em0_down();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xa8],
        golden[..100].to_vec(),
        vec![0xff; 64],
        vec![0, 0, 5, 14],
        b"GET / HTTP/1.1\r\n".to_vec(),
    ];
    for bytes in &garbage {
        assert_eq!(table.on_read(bytes), [], "{bytes:?}");
    }
    assert!(
        table.take_work().resync,
        "a broken message may have been news"
    );
    // Still working.
    let em0_down = interface(2, "em0", LINK_STATE_DOWN, IFT_IEEE8023ADLAG);
    assert_eq!(
        read_confirmed(&mut table, &golden, &[em0_down]),
        [link(2, "em0", LinkState::Down, Some(4))]
    );
}

/// Anyone allowed to write to the routing socket can make it broadcast an
/// `RTM_IFINFO`: a link change is believed only when the interface's own
/// state (`SIOCGIFDATA`) says so.
#[test]
fn a_link_change_the_interface_contradicts_is_not_believed_from_bytes() {
    let mut table = seed1_table();
    let em0_up = interface(2, "em0", LINK_STATE_UP, IFT_IEEE8023ADLAG);
    let updates = read_confirmed(&mut table, &golden_em0_down(), &[em0_up]);
    assert_eq!(updates, []);
    assert_eq!(table.foreign_messages(), 1);

    // The same bytes from the kernel, em0 really down: news.
    let em0_down = interface(2, "em0", LINK_STATE_DOWN, IFT_IEEE8023ADLAG);
    let updates = read_confirmed(&mut table, &golden_em0_down(), &[em0_down]);
    assert_eq!(updates, [link(2, "em0", LinkState::Down, Some(4))]);
    assert_eq!(table.foreign_messages(), 1);
}

#[test]
fn lost_messages_want_a_full_read() {
    let mut table = seed1_table();
    assert!(table.messages_lost());
    assert!(table.take_work().resync);
}

// --- the platform task over the simulated kernel ------------------------------

/// How long any expected update may take.
const WAIT: Duration = Duration::from_secs(5);

fn options() -> Options {
    Options {
        recv_buffer: 256 * 1024,
        settle: SETTLE,
        lagg_poll: None,
    }
}

/// A running platform over a simulated kernel.
struct Platform {
    handle: PlatformHandle,
    kernel: FakeLaggKernel,
    /// Updates already taken off the stream (while looking for an answer,
    /// or checking that none came) and not yet read: the next reads get
    /// them first, so no later assertion misses one.
    replay: VecDeque<Update>,
}

impl Platform {
    /// Starts the platform once the kernel is set up by `boot`. The
    /// routing socket is open during the boot, so its messages are queued
    /// before the first full read, as on a real system.
    async fn start(boot: impl FnOnce(&FakeLaggKernel), options: &Options) -> Platform {
        let kernel = FakeLaggKernel::new();
        let messages = kernel.route_socket();
        boot(&kernel);
        let handle = spawn_with(kernel.clone(), messages, options).expect("in a runtime");
        Platform {
            handle,
            kernel,
            replay: VecDeque::new(),
        }
    }

    async fn next(&mut self) -> Update {
        if let Some(update) = self.replay.pop_front() {
            return update;
        }
        match timeout(WAIT, self.handle.updates.recv()).await {
            Ok(Some(update)) => update,
            Ok(None) => panic!("the platform task stopped"),
            Err(_) => panic!("no update within {WAIT:?}"),
        }
    }

    /// Every update up to and including the first that `done` accepts.
    async fn until(&mut self, done: impl Fn(&Update) -> bool) -> Vec<Update> {
        let mut seen = Vec::new();
        loop {
            let update = self.next().await;
            let last = done(&update);
            seen.push(update);
            if last {
                return seen;
            }
        }
    }

    /// Updates up to the next Aggregate, which is returned separately.
    async fn until_aggregate(&mut self) -> (Vec<Update>, Aggregate) {
        let mut seen = self
            .until(|update| matches!(update, Update::Aggregate(_)))
            .await;
        match seen.pop() {
            Some(Update::Aggregate(aggregate)) => (seen, aggregate),
            other => panic!("expected an aggregate, got {other:?}"),
        }
    }

    /// Whatever arrives within `period`.
    async fn quiet_for(&mut self, period: Duration) -> Vec<Update> {
        let mut seen: Vec<Update> = self.replay.drain(..).collect();
        let deadline = Instant::now() + period;
        while let Ok(Some(update)) =
            tokio::time::timeout_at(deadline, self.handle.updates.recv()).await
        {
            seen.push(update);
        }
        seen
    }

    async fn request(&self, request: Request) {
        self.handle
            .requests
            .send(request)
            .await
            .expect("the platform takes requests");
    }

    /// Asks for `port` as lagg0's MASTER; the answer comes on the stream.
    async fn set_active(&self, port: &str) {
        self.request(Request::SetActive {
            group: "lagg0".into(),
            port: port.into(),
        })
        .await;
    }

    /// Sets `port` of lagg0 administratively up or down: answered at once,
    /// before the routing messages the change causes.
    async fn set_admin_up(&mut self, port: &str, up: bool) -> Result<(), String> {
        self.request(Request::SetAdminUp {
            group: "lagg0".into(),
            port: port.into(),
            up,
        })
        .await;
        let answer = self.answer().await;
        assert_eq!(
            (answer.group.as_str(), answer.port.as_str()),
            ("lagg0", port)
        );
        answer.result
    }

    /// Asks to take `port` out of lagg0 (`add: false`) or put it back;
    /// the answer comes on the stream once the lagg has settled.
    async fn membership(&self, port: &str, add: bool) {
        let (group, port) = ("lagg0".to_owned(), port.to_owned());
        let request = if add {
            Request::AddPort { group, port }
        } else {
            Request::RemovePort { group, port }
        };
        self.request(request).await;
    }

    /// lagg0's ports in the kernel now.
    fn members(&self) -> Vec<String> {
        let lagg = self.kernel.lagg("lagg0").expect("lagg0");
        lagg.ports.into_iter().map(|port| port.name).collect()
    }

    /// The next update, which must be an answer.
    async fn answer(&mut self) -> Answer {
        match self.next().await {
            Update::Answer(answer) => answer,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    /// The next answer; the updates before it stay for the next reads.
    async fn answer_among_updates(&mut self) -> Answer {
        let mut before = Vec::new();
        let answer = loop {
            match self.next().await {
                Update::Answer(answer) => break answer,
                other => before.push(other),
            }
        };
        self.replay.extend(before);
        answer
    }

    /// Whatever has arrived by now, without waiting; kept for the next
    /// reads.
    fn arrived(&mut self) -> Vec<Update> {
        while let Ok(update) = self.handle.updates.try_recv() {
            self.replay.push_back(update);
        }
        self.replay.iter().cloned().collect()
    }

    fn index(&self, name: &str) -> u32 {
        self.kernel
            .interface_now(name)
            .map(|interface| interface.index)
            .unwrap_or_else(|| panic!("no interface {name}"))
    }
}

/// The answer about `port` of lagg0.
fn answered(port: &str, result: Result<(), String>) -> Answer {
    Answer {
        group: "lagg0".into(),
        port: port.into(),
        result,
    }
}

/// `rc.conf`: `ifconfig_lagg0="laggproto failover laggport em0 laggport
/// bge0"`; lo0, em0, bge0 attach first.
fn seed1_boot(kernel: &FakeLaggKernel) {
    kernel.attach("lo0");
    kernel.attach("em0");
    kernel.attach("bge0");
    kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["em0", "bge0"]);
}

/// `ifconfig_lagg0="up laggproto failover laggport em0 laggport wlan0 DHCP"`.
fn seed2_boot(kernel: &FakeLaggKernel) {
    kernel.attach("lo0");
    kernel.attach("em0");
    kernel.attach("wlan0");
    kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["em0", "wlan0"]);
}

/// The start of every platform: one Snapshot, then the lagg.
async fn expect_start(platform: &mut Platform) -> Aggregate {
    match platform.next().await {
        Update::Snapshot(links) => {
            let names: Vec<&str> = links.iter().map(|link| link.name.as_str()).collect();
            assert!(names.contains(&"lagg0"), "{names:?}");
            assert!(links.iter().all(|link| link.state == LinkState::Up));
        }
        other => panic!("expected the snapshot first, got {other:?}"),
    }
    let (before, aggregate) = platform.until_aggregate().await;
    assert_eq!(before, [], "the aggregate follows the snapshot");
    aggregate
}

fn changes(kernel: &FakeLaggKernel) -> Vec<KernelCall> {
    kernel.take_changes()
}

#[tokio::test]
async fn seed1_server_failover_drift_and_repair() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    let lagg0 = platform.index("lagg0");
    let em0 = platform.index("em0");
    let start = expect_start(&mut platform).await;
    assert_eq!(
        start,
        failover(lagg0, &["em0", "bge0"], Some("em0"), Some("em0"))
    );
    // The boot messages were older than the first read: nothing follows.
    assert_eq!(platform.quiet_for(Duration::from_millis(200)).await, []);

    // em0 loses carrier: lagg fails over to bge0.
    platform.kernel.set_carrier("em0", false);
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Down, Some(lagg0))]);
    assert_eq!(
        aggregate,
        failover(lagg0, &["em0", "bge0"], Some("bge0"), Some("em0"))
    );

    // em0 is back: lagg returns to it by itself.
    platform.kernel.set_carrier("em0", true);
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Up, Some(lagg0))]);
    assert_eq!(
        aggregate,
        failover(lagg0, &["em0", "bge0"], Some("em0"), Some("em0"))
    );

    // em0 detaches: bge0 becomes MASTER (and bounces with the MAC change).
    platform.kernel.detach("em0");
    let (updates, aggregate) = platform.until_aggregate().await;
    assert!(
        updates.contains(&Update::Gone {
            index: em0,
            name: "em0".into()
        }),
        "{updates:?}"
    );
    assert_eq!(
        aggregate,
        failover(lagg0, &["bge0"], Some("bge0"), Some("bge0"))
    );

    // em0 attaches again, and is added back last: MASTER stays bge0.
    platform.kernel.attach("em0");
    let em0 = platform.index("em0");
    let updates = platform
        .until(|update| matches!(update, Update::Link(link) if link.name == "em0"))
        .await;
    assert_eq!(updates.last(), Some(&link(em0, "em0", LinkState::Up, None)));
    platform
        .kernel
        .clone()
        .add_port("lagg0", "em0")
        .expect("em0 joins lagg0");
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(
        updates.last(),
        Some(&link(em0, "em0", LinkState::Up, Some(lagg0))),
        "{updates:?}"
    );
    assert_eq!(
        aggregate,
        failover(lagg0, &["bge0", "em0"], Some("bge0"), Some("bge0"))
    );
    changes(&platform.kernel);

    // The daemon asks for em0 as MASTER: remove and re-add bge0.
    let asked = Instant::now();
    platform.set_active("em0").await;
    tokio::time::sleep(SETTLE.min / 3).await;
    let early = platform.arrived();
    assert!(
        !early
            .iter()
            .any(|update| matches!(update, Update::Answer(_))),
        "answered before settling: {early:?}"
    );
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [], "the reorder's link bounces are held back");
    assert_eq!(
        aggregate,
        failover(lagg0, &["bge0", "em0"], Some("em0"), Some("em0"))
    );
    assert!(asked.elapsed() >= SETTLE.min);
    // The answer comes right after the Aggregate that shows the new
    // MASTER: whoever reads it already knows the outcome.
    assert_eq!(
        platform.next().await,
        Update::Answer(answered("em0", Ok(()))),
        "the answer directly follows the aggregate showing em0 as MASTER"
    );
    assert_eq!(
        changes(&platform.kernel),
        [KernelCall::remove("bge0"), KernelCall::add("bge0")]
    );
    // Every bounce was absorbed: nothing left to report.
    assert_eq!(platform.quiet_for(Duration::from_millis(200)).await, []);

    // Asking again changes nothing.
    platform.set_active("em0").await;
    assert_eq!(platform.answer().await, answered("em0", Ok(())));
    assert_eq!(changes(&platform.kernel), []);
}

#[tokio::test]
async fn seed2_laptop_fails_over_to_wifi_and_back() {
    let mut platform = Platform::start(seed2_boot, &options()).await;
    let lagg0 = platform.index("lagg0");
    let em0 = platform.index("em0");
    let start = expect_start(&mut platform).await;
    assert_eq!(
        start,
        failover(lagg0, &["em0", "wlan0"], Some("em0"), Some("em0"))
    );

    platform.kernel.set_carrier("em0", false);
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Down, Some(lagg0))]);
    assert_eq!(aggregate.active.as_deref(), Some("wlan0"));
    assert_eq!(aggregate.primary.as_deref(), Some("em0"));

    platform.kernel.set_carrier("em0", true);
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Up, Some(lagg0))]);
    assert_eq!(aggregate.active.as_deref(), Some("em0"));
}

/// bge0 attached before em0 and was added first: bge0 is MASTER.
fn drifted_boot(kernel: &FakeLaggKernel) {
    kernel.attach("bge0");
    kernel.attach("em0");
    kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["bge0", "em0"]);
}

#[tokio::test]
async fn a_failed_re_add_puts_the_port_back_and_names_the_step() {
    let mut platform = Platform::start(drifted_boot, &options()).await;
    let lagg0 = platform.index("lagg0");
    assert_eq!(
        expect_start(&mut platform).await.primary.as_deref(),
        Some("bge0")
    );
    changes(&platform.kernel);
    platform
        .kernel
        .fail_next(KernelCall::add("bge0"), libc::EBUSY);

    platform.set_active("em0").await;
    let (_, aggregate) = platform.until_aggregate().await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered(
            "em0",
            Err(format!(
                "SIOCSLAGGPORT bge0: {}; re-added bge0 to lagg0",
                errno_text(libc::EBUSY)
            ))
        )
    );
    assert_eq!(
        changes(&platform.kernel),
        [
            KernelCall::remove("bge0"),
            KernelCall::add("bge0"),
            KernelCall::add("bge0")
        ]
    );
    // No port is left out; the fresh Aggregate shows where MASTER ended.
    assert_eq!(
        aggregate,
        failover(lagg0, &["bge0", "em0"], Some("em0"), Some("em0"))
    );
}

#[tokio::test]
async fn a_failed_removal_answers_at_once_with_the_step() {
    let mut platform = Platform::start(drifted_boot, &options()).await;
    expect_start(&mut platform).await;
    changes(&platform.kernel);
    platform
        .kernel
        .fail_next(KernelCall::remove("bge0"), libc::EBUSY);
    platform.set_active("em0").await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered(
            "em0",
            Err(format!(
                "SIOCSLAGGDELPORT bge0: {}",
                errno_text(libc::EBUSY)
            ))
        )
    );
    assert_eq!(changes(&platform.kernel), [KernelCall::remove("bge0")]);
}

#[tokio::test]
async fn a_second_reorder_waits_for_the_first_to_settle() {
    let mut platform = Platform::start(drifted_boot, &options()).await;
    expect_start(&mut platform).await;
    platform.set_active("em0").await;
    platform.set_active("bge0").await;
    // The refusal comes at once; the first answer only once it settled.
    assert_eq!(
        platform.answer_among_updates().await,
        answered(
            "bge0",
            Err("lagg0 is still settling after a reorder; try again later".into())
        )
    );
    assert_eq!(
        platform.answer_among_updates().await,
        answered("em0", Ok(()))
    );
}

#[tokio::test]
async fn set_active_is_refused_on_a_lacp_lagg() {
    let mut platform = Platform::start(
        |kernel| {
            kernel.attach("igb0");
            kernel.attach("igb1");
            kernel.create_lagg("lagg0", LAGG_PROTO_LACP, &["igb0", "igb1"]);
        },
        &options(),
    )
    .await;
    let aggregate = expect_start(&mut platform).await;
    assert_eq!(
        (aggregate.mode.as_str(), aggregate.failover),
        ("lacp", false)
    );
    assert_eq!(aggregate.members, ["igb0", "igb1"]);
    assert_eq!(aggregate.primary, None);
    changes(&platform.kernel);
    platform.set_active("igb1").await;
    assert_eq!(
        platform.answer().await,
        answered(
            "igb1",
            Err("cannot make igb1 MASTER of lagg0: lagg protocol is lacp, not failover".into())
        )
    );
    assert_eq!(changes(&platform.kernel), []);
}

#[tokio::test]
async fn admin_down_takes_a_port_out_of_service() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    let lagg0 = platform.index("lagg0");
    let em0 = platform.index("em0");
    expect_start(&mut platform).await;
    changes(&platform.kernel);

    assert_eq!(platform.set_admin_up("em0", false).await, Ok(()));
    assert_eq!(
        changes(&platform.kernel),
        [KernelCall::SetInterfaceFlags {
            name: "em0".into(),
            flags: FLAGS_UP & !IFF_UP
        }]
    );
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Down, Some(lagg0))]);
    assert_eq!(aggregate.active.as_deref(), Some("bge0"));

    assert_eq!(platform.set_admin_up("em0", true).await, Ok(()));
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Up, Some(lagg0))]);
    assert_eq!(aggregate.active.as_deref(), Some("em0"));

    assert_eq!(
        platform.set_admin_up("em9", false).await,
        Err(format!("SIOCGIFFLAGS em9: {}", errno_text(libc::ENXIO)))
    );
}

#[tokio::test]
async fn lost_messages_and_resync_requests_bring_a_snapshot() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    expect_start(&mut platform).await;

    platform
        .kernel
        .send_raw(Err(io::Error::from_raw_os_error(libc::ENOBUFS)));
    assert!(matches!(platform.next().await, Update::Snapshot(_)));
    assert!(matches!(platform.next().await, Update::Aggregate(_)));

    platform.request(Request::Resync).await;
    assert!(matches!(platform.next().await, Update::Snapshot(_)));
    assert!(matches!(platform.next().await, Update::Aggregate(_)));
}

#[tokio::test]
async fn broken_messages_are_skipped_and_the_platform_goes_on() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    let lagg0 = platform.index("lagg0");
    let em0 = platform.index("em0");
    expect_start(&mut platform).await;

    // A foreign version is skipped without more ado.
    let mut foreign = golden_em0_down();
    foreign[2] = 6;
    platform.kernel.send_raw(Ok(foreign));
    assert_eq!(platform.quiet_for(Duration::from_millis(100)).await, []);

    // Truncated and garbage bytes are skipped; a full read follows.
    platform
        .kernel
        .send_raw(Ok(golden_em0_down()[..40].to_vec()));
    platform.kernel.send_raw(Ok(vec![0xff; 64]));
    platform.kernel.send_raw(Ok(Vec::new()));
    assert!(matches!(platform.next().await, Update::Snapshot(_)));
    assert!(matches!(platform.next().await, Update::Aggregate(_)));

    platform.kernel.set_carrier("em0", false);
    let (updates, _) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Down, Some(lagg0))]);
}

/// A process writes an `RTM_IFINFO` saying em0 lost carrier to the routing
/// socket, which broadcasts it: em0 still has carrier, so nothing moves;
/// the message is counted. The next true change is reported as usual.
#[tokio::test]
async fn a_forged_link_change_moves_nothing() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    let lagg0 = platform.index("lagg0");
    let em0 = platform.index("em0");
    let bge0 = platform.index("bge0");
    expect_start(&mut platform).await;
    platform.kernel.calls();

    let forged = RouteMessage::IfInfo {
        index: em0 as u16,
        flags: FLAGS_UP,
        link_state: LINK_STATE_DOWN,
        if_type: IFT_IEEE8023ADLAG,
    };
    platform.kernel.send_raw(Ok(forged.to_bytes()));
    // A true change after it: its updates come after whatever the forged
    // message caused, since messages are handled in order.
    platform.kernel.set_carrier("bge0", false);
    let updates = platform
        .until(|update| matches!(update, Update::Link(_)))
        .await;
    assert_eq!(
        updates,
        [link(bge0, "bge0", LinkState::Down, Some(lagg0))],
        "nothing about em0"
    );
    assert_eq!(platform.handle.foreign_messages.load(Ordering::Relaxed), 1);
    assert!(
        platform
            .kernel
            .calls()
            .contains(&KernelCall::Interface("em0".into())),
        "em0 itself was asked"
    );

    platform.kernel.set_carrier("em0", false);
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(
        updates,
        [
            link(em0, "em0", LinkState::Down, Some(lagg0)),
            link(lagg0, "lagg0", LinkState::Down, None),
        ]
    );
    assert_eq!(aggregate.active, None);
    assert_eq!(platform.handle.foreign_messages.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_lagg_poll_sees_silent_membership_changes() {
    let options = Options {
        lagg_poll: Some(Duration::from_millis(100)),
        ..options()
    };
    let mut platform = Platform::start(drifted_boot, &options).await;
    let lagg0 = platform.index("lagg0");
    expect_start(&mut platform).await;
    // A driver that does not bounce: the reorder by hand sends nothing.
    platform.kernel.set_link_bounce(false);
    let mut kernel = platform.kernel.clone();
    kernel.remove_port("lagg0", "bge0").expect("member");
    kernel.add_port("lagg0", "bge0").expect("not a member");
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(links(&updates), []);
    assert_eq!(
        aggregate,
        failover(lagg0, &["bge0", "em0"], Some("em0"), Some("em0"))
    );
}

#[tokio::test]
async fn a_lagg_created_and_destroyed_later_is_followed() {
    let mut platform = Platform::start(
        |kernel| {
            kernel.attach("em0");
            kernel.attach("bge0");
        },
        &options(),
    )
    .await;
    let start = platform
        .until(|update| matches!(update, Update::Snapshot(_)))
        .await;
    assert_eq!(start.len(), 1);

    let lagg0 = platform
        .kernel
        .create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["em0", "bge0"]);
    let (_, aggregate) = platform.until_aggregate().await;
    assert_eq!(
        aggregate,
        failover(lagg0, &["em0", "bge0"], Some("em0"), Some("em0"))
    );

    platform.kernel.detach("lagg0");
    let updates = platform
        .until(|update| matches!(update, Update::AggregateGone { .. }))
        .await;
    assert_eq!(
        updates.last(),
        Some(&Update::AggregateGone {
            index: lagg0,
            name: "lagg0".into()
        })
    );
}

#[tokio::test]
async fn spawning_outside_a_runtime_is_an_error() {
    let kernel = FakeLaggKernel::new();
    let messages = kernel.route_socket();
    let result = std::thread::spawn(move || spawn_with(kernel, messages, &options()).map(|_| ()))
        .join()
        .expect("no panic");
    let error = result.expect_err("no runtime on that thread");
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}

// --- taking a port out of its lagg and back (dead paths) -------------------

#[tokio::test]
async fn a_port_is_taken_out_of_the_lagg_and_put_back_answered_after_the_outcome() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    let lagg0 = platform.index("lagg0");
    let em0 = platform.index("em0");
    expect_start(&mut platform).await;
    changes(&platform.kernel);

    // em0, the MASTER, goes out: bge0 takes over; em0 keeps its link.
    let asked = Instant::now();
    platform.membership("em0", false).await;
    tokio::time::sleep(SETTLE.min / 3).await;
    let early = platform.arrived();
    assert!(
        !early
            .iter()
            .any(|update| matches!(update, Update::Answer(_))),
        "answered before settling: {early:?}"
    );
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(
        updates,
        [link(em0, "em0", LinkState::Up, None)],
        "em0 leaves lagg0 with its link up; the bounces are held back"
    );
    assert_eq!(
        aggregate,
        failover(lagg0, &["bge0"], Some("bge0"), Some("bge0"))
    );
    assert!(asked.elapsed() >= SETTLE.min);
    assert_eq!(
        platform.next().await,
        Update::Answer(answered("em0", Ok(()))),
        "the answer directly follows the aggregate without em0"
    );
    assert_eq!(changes(&platform.kernel), [KernelCall::remove("em0")]);
    assert_eq!(platform.members(), ["bge0"]);

    // em0 goes back: a member again, MASTER stays bge0 (the reorder that
    // makes em0 MASTER again is the engine's next step).
    platform.membership("em0", true).await;
    let (updates, aggregate) = platform.until_aggregate().await;
    assert_eq!(updates, [link(em0, "em0", LinkState::Up, Some(lagg0))]);
    assert_eq!(
        aggregate,
        failover(lagg0, &["em0", "bge0"], Some("bge0"), Some("bge0"))
    );
    assert_eq!(
        platform.next().await,
        Update::Answer(answered("em0", Ok(())))
    );
    assert_eq!(changes(&platform.kernel), [KernelCall::add("em0")]);

    // Asking again for what already is: answered at once, nothing done.
    platform.membership("em0", true).await;
    assert_eq!(platform.answer().await, answered("em0", Ok(())));
    assert_eq!(changes(&platform.kernel), []);
    assert_eq!(platform.quiet_for(Duration::from_millis(200)).await, []);
}

#[tokio::test]
async fn a_failed_removal_or_addition_is_answered_with_the_step() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    expect_start(&mut platform).await;
    changes(&platform.kernel);

    platform
        .kernel
        .fail_next(KernelCall::remove("bge0"), libc::EBUSY);
    platform.membership("bge0", false).await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered(
            "bge0",
            Err(format!(
                "SIOCSLAGGDELPORT bge0: {}",
                errno_text(libc::EBUSY)
            ))
        )
    );
    assert_eq!(changes(&platform.kernel), [KernelCall::remove("bge0")]);
    assert_eq!(platform.members(), ["em0", "bge0"], "nothing changed");

    platform.membership("bge0", false).await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered("bge0", Ok(()))
    );
    assert_eq!(platform.members(), ["em0"]);
    changes(&platform.kernel);

    platform
        .kernel
        .fail_next(KernelCall::add("bge0"), libc::ENOMEM);
    platform.membership("bge0", true).await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered(
            "bge0",
            Err(format!("SIOCSLAGGPORT bge0: {}", errno_text(libc::ENOMEM)))
        )
    );
    assert_eq!(platform.members(), ["em0"], "still out, to be tried again");
    platform.membership("bge0", true).await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered("bge0", Ok(()))
    );
    assert_eq!(platform.members(), ["em0", "bge0"]);
}

#[tokio::test]
async fn the_last_port_is_never_taken_out_and_lacp_is_left_alone() {
    let mut platform = Platform::start(seed1_boot, &options()).await;
    expect_start(&mut platform).await;
    platform.membership("bge0", false).await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered("bge0", Ok(()))
    );
    changes(&platform.kernel);
    platform.membership("em0", false).await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered(
            "em0",
            Err("em0 is the last port of lagg0; not removed".into())
        )
    );
    assert_eq!(changes(&platform.kernel), []);

    let mut platform = Platform::start(
        |kernel| {
            kernel.attach("igb0");
            kernel.attach("igb1");
            kernel.create_lagg("lagg0", LAGG_PROTO_LACP, &["igb0", "igb1"]);
        },
        &options(),
    )
    .await;
    expect_start(&mut platform).await;
    changes(&platform.kernel);
    platform.membership("igb1", false).await;
    assert_eq!(
        platform.answer().await,
        answered("igb1", Err("lagg0 protocol is lacp, not failover".into()))
    );
    assert_eq!(changes(&platform.kernel), []);
}

/// At exit every removed port is put back at once: the requests made
/// while the lagg settles join that window, and each gets its answer.
#[tokio::test]
async fn several_ports_put_back_together_are_each_answered() {
    let mut platform = Platform::start(
        |kernel| {
            kernel.attach("em0");
            kernel.attach("bge0");
            kernel.attach("ix0");
            kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["em0", "bge0", "ix0"]);
        },
        &options(),
    )
    .await;
    expect_start(&mut platform).await;
    for port in ["bge0", "ix0"] {
        platform.membership(port, false).await;
        assert_eq!(
            platform.answer_among_updates().await,
            answered(port, Ok(()))
        );
    }
    assert_eq!(platform.members(), ["em0"]);
    changes(&platform.kernel);
    platform.membership("bge0", true).await;
    platform.membership("ix0", true).await;
    assert_eq!(
        platform.answer_among_updates().await,
        answered("bge0", Ok(()))
    );
    assert_eq!(
        platform.answer_among_updates().await,
        answered("ix0", Ok(()))
    );
    assert_eq!(
        changes(&platform.kernel),
        [KernelCall::add("bge0"), KernelCall::add("ix0")]
    );
    assert_eq!(platform.members(), ["em0", "bge0", "ix0"]);
}
