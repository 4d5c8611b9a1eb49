//! The configuration: the YAML schema, its defaults and its validation.
//!
//! A config is only ever built by [`Config::load`] / [`Config::parse`], which
//! check everything; the rest of the daemon trusts a `Config` it is given.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::event::{Kind, Severity};

/// Most ports one group may have: lagg's `LAGG_MAX_PORTS` is 32 as well.
pub const MAX_PORTS: usize = 32;

/// The whole daemon configuration, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where the file came from (for messages and reloads).
    pub path: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// Group that may connect to the control socket (mode 0660); `None`
    /// leaves the socket to root's primary group.
    pub socket_group: Option<String>,
    /// The slow periodic full resync with the kernel.
    pub resync_interval: Duration,
    /// How many events `status` and `events` keep.
    pub history: usize,
    pub log: LogConfig,
    /// Groups in the order the file lists them.
    pub groups: Vec<GroupConfig>,
    pub hooks: Vec<HookConfig>,
}

/// Where and how events are logged.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Log to syslog even in the foreground (a daemon always does).
    pub syslog: bool,
    pub facility: Facility,
    /// Severity overrides by event kind (`failover_severity` lands here as
    /// the entry for `failover`); kinds not named keep [`Kind::default_severity`].
    pub severities: HashMap<Kind, Severity>,
}

impl LogConfig {
    /// The syslog severity an event of this kind is logged with.
    pub fn severity(&self, kind: Kind) -> Severity {
        self.severities
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_severity())
    }
}

/// syslog facilities a daemon may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Daemon,
    User,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

/// How the kernel aggregates a group's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// FreeBSD `lagg(4)`, `laggproto failover`.
    Lagg,
    /// Linux bonding, `mode active-backup`.
    Bond,
    /// No kernel aggregate: laggmond itself picks the port that should
    /// carry traffic and reports it.
    None,
}

impl Driver {
    /// The name used in the config and in status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Lagg => "lagg",
            Driver::Bond => "bond",
            Driver::None => "none",
        }
    }
}

/// One failover group: an aggregate and its ports in priority order.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupConfig {
    /// The aggregate interface (`lagg0`, `bond0`); for `driver: none` any
    /// name the operator likes.
    pub name: String,
    pub driver: Driver,
    /// Priority order: the first is the preferred primary.
    pub ports: Vec<String>,
    /// Move traffic back to a better port once it is healthy again.
    pub preempt: bool,
    /// How long a recovered better port must stay up before traffic moves back.
    pub preempt_delay: Duration,
    pub flap_damping: FlapDamping,
    /// `false`: watch and report only, never change the kernel's choice.
    pub enforce: bool,
}

impl GroupConfig {
    /// The configured primary: the first port listed.
    pub fn primary(&self) -> &str {
        &self.ports[0]
    }
}

/// A port that changes link more than `max_flaps` times within `window` is
/// not trusted for `hold` (doubling on each repeat, up to 8x).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlapDamping {
    pub max_flaps: u32,
    pub window: Duration,
    pub hold: Duration,
}

impl Default for FlapDamping {
    fn default() -> Self {
        FlapDamping {
            max_flaps: 4,
            window: Duration::from_secs(60),
            hold: Duration::from_secs(300),
        }
    }
}

/// A program run on matching events.
#[derive(Clone, Debug, PartialEq)]
pub struct HookConfig {
    /// Event kinds that run it.
    pub on: Vec<Kind>,
    /// argv, run directly without a shell.
    pub run: Vec<String>,
    /// Killed after this long.
    pub timeout: Duration,
}

/// The default config file of this platform.
pub fn default_path() -> &'static Path {
    if cfg!(target_os = "freebsd") {
        Path::new("/usr/local/etc/laggmond.yml")
    } else {
        Path::new("/etc/laggmond.yml")
    }
}

/// The default control socket path.
pub const DEFAULT_SOCKET: &str = "/var/run/laggmond.sock";
