//! The kernel's view as plain data: interfaces, aggregates and the updates
//! that carry them.
//!
//! Kept apart from the channel types of the parent module so that the
//! engine, which only reasons over this data, depends on no I/O.

/// Whether a port can carry traffic, as its aggregate decides it: the
/// interface is administratively up and has carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Administratively up with carrier.
    Up,
    /// Either down or without carrier.
    Down,
}

impl LinkState {
    /// `Up` when `up`, else `Down`.
    pub fn from_up(up: bool) -> LinkState {
        if up {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }
}

/// One network interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The kernel's interface index; stable while the interface exists.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// Whether the interface can carry traffic.
    pub state: LinkState,
    /// Index of the aggregate this interface is enslaved to, if any.
    pub master: Option<u32>,
}

/// The kernel's view of one aggregate interface (a lagg or a bond).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    /// The kernel's interface index of the aggregate.
    pub index: u32,
    /// `lagg0`, `bond0`: the group's name in the config.
    pub name: String,
    /// The mode as the kernel's tools name it (`failover`, `lacp`,
    /// `active-backup`, `balance-rr`, ...).
    pub mode: String,
    /// Whether `mode` is the failover mode laggmond manages; an aggregate
    /// in any other mode is reported and left alone.
    pub failover: bool,
    /// Member ports in the kernel's order.
    pub members: Vec<String>,
    /// The port the kernel transmits on now; `None` when none can.
    pub active: Option<String>,
    /// The port the kernel prefers by itself: lagg's MASTER (the port
    /// added first), the bond's `primary` option when set.
    pub primary: Option<String>,
    /// Whether the kernel moves traffic back to `primary` by itself as
    /// soon as it has link: always for lagg; for a bond with a `primary`
    /// and `primary_reselect` `always` or `better`.
    pub kernel_preempts: bool,
    /// Whether the kernel judges the ports by ARP probes of its own (a
    /// bond's `arp_interval` above 0): it then moves traffic on its own
    /// verdicts, which may differ from laggmond's path probes. Never for
    /// lagg, whose only monitor is the carrier.
    pub arp_monitor: bool,
}

/// The kernel's answer to a request about `port` of the aggregate `group`
/// (making it the active port, or setting it administratively up or down).
/// Carried on the same stream as the updates, so that the daemon reads it
/// in the order the platform sent it and never before the news it depends
/// on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The aggregate the request was about.
    pub group: String,
    /// The member port the request was about.
    pub port: String,
    /// `Ok` when the kernel did what was asked; else why not, as a
    /// sentence for the operator.
    pub result: Result<(), String>,
}

/// What the platform tells the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// An interface appeared or changed (only sent when something the
    /// daemon cares about changed).
    Link(Link),
    /// An interface disappeared (or was renamed away from this name).
    Gone { index: u32, name: String },
    /// A full, consistent view of every interface: sent after start, after
    /// lost messages and on every periodic resync. Interfaces not listed do
    /// not exist.
    Snapshot(Vec<Link>),
    /// An aggregate appeared or changed (membership, active port, primary,
    /// mode). Sent after the [`Update::Link`]s of its members that came in
    /// the same kernel news, and after every snapshot for each aggregate.
    Aggregate(Aggregate),
    /// An aggregate interface disappeared.
    AggregateGone { index: u32, name: String },
    /// The kernel's answer to one request. Sent after the updates that
    /// show the request's outcome, so whoever reads the answer already
    /// knows the aggregate as the kernel left it: a success is never
    /// judged against a view from before it.
    Answer(Answer),
}
