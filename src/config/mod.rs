//! The configuration: the YAML schema, its defaults and its validation.
//!
//! [`Config::load`] and [`Config::parse`] check everything before they hand
//! out a `Config`, and the rest of the daemon trusts the one it is given.
//!
//! The work is split by concern: `file` reads the file within bounds,
//! `yaml` turns text into a tree that remembers positions, `check`
//! applies the schema to that tree, and `position` holds the key paths and
//! quoting both of those use, so the YAML layer needs nothing of the checker.

mod check;
mod file;
mod position;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::event::{Kind, Severity};
use crate::names::named;

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
    /// Where and how events are logged.
    pub log: LogConfig,
    /// Groups in the order the file lists them.
    pub groups: Vec<GroupConfig>,
    /// Programs run on events, in file order.
    pub hooks: Vec<HookConfig>,
}

/// Where and how events are logged.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Log to syslog even in the foreground (a daemon always does).
    pub syslog: bool,
    /// The syslog facility events are logged under.
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

named! {
    /// syslog facilities a daemon may use.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
    pub enum Facility {
        Daemon => "daemon",
        User => "user",
        Local0 => "local0",
        Local1 => "local1",
        Local2 => "local2",
        Local3 => "local3",
        Local4 => "local4",
        Local5 => "local5",
        Local6 => "local6",
        Local7 => "local7",
    }
}

named! {
    /// How the kernel aggregates a group's ports. The names are the ones
    /// used in the config and in status output.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
    pub enum Driver {
        /// FreeBSD `lagg(4)`, `laggproto failover`.
        Lagg => "lagg",
        /// Linux bonding, `mode active-backup`.
        Bond => "bond",
        /// No kernel aggregate: laggmond itself picks the port that should
        /// carry traffic and reports it.
        None => "none",
    }
}

/// One failover group: an aggregate and its ports in priority order.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupConfig {
    /// The aggregate interface (`lagg0`, `bond0`); for `driver: none` any
    /// name the operator likes.
    pub name: String,
    /// How the kernel aggregates the ports.
    pub driver: Driver,
    /// Priority order: the first is the preferred primary.
    pub ports: Vec<String>,
    /// Move traffic back to a better port once it is healthy again.
    pub preempt: bool,
    /// How long a recovered better port must stay up before traffic moves back.
    pub preempt_delay: Duration,
    /// When a flapping port stops being trusted.
    pub flap_damping: FlapDamping,
    /// `false`: watch and report only, never change the kernel's choice.
    pub enforce: bool,
    /// Path probes: ARP requests to targets beyond the switch, per port,
    /// to see a dead path that carrier does not show. `None`: carrier
    /// alone decides (the path is `off`).
    pub probe: Option<ProbeConfig>,
}

/// How a group's ports are probed (`groups.NAME.probe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// IPv4 targets beyond the switch (1 to [`MAX_PROBE_TARGETS`]), each
    /// asked by an ARP request every `interval`.
    pub arp: Vec<std::net::Ipv4Addr>,
    /// How often each port is probed; from [`MIN_PROBE_INTERVAL`] to
    /// [`MAX_PROBE_INTERVAL`].
    pub interval: Duration,
    /// Intervals in a row without a valid answer after which the path is
    /// down; from 1 to [`MAX_PROBE_MISSED`].
    pub missed: u32,
    /// Whether one target answering is enough, or all must.
    pub require: Require,
    /// The sender IP of the requests: 0.0.0.0 (an RFC 5227 ARP probe, which
    /// changes no neighbour's ARP cache) unless set.
    pub source: std::net::Ipv4Addr,
}

/// The most targets a group may probe.
pub const MAX_PROBE_TARGETS: usize = 16;

/// The shortest probe interval: faster would only add noise and load.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// The longest probe interval: a path asked less often than once a minute
/// is hardly watched, and a dead one would go unseen for minutes.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// The most intervals in a row a path may go unanswered before it is down.
/// Beyond 100 the detection time is better stretched with a longer
/// `interval` than counted in intervals (100 at the default 1s is already
/// well over a minute), and the bound keeps the counters the engine holds
/// per port and target small.
pub const MAX_PROBE_MISSED: u32 = 100;

named! {
    /// How many of a group's probe targets must answer in an interval for
    /// a port's path to count as working.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
    pub enum Require {
        /// One target answering is enough.
        Any => "any",
        /// Every target must answer.
        All => "all",
    }
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
    /// Link changes allowed within `window`.
    pub max_flaps: u32,
    /// The span flaps are counted over.
    pub window: Duration,
    /// How long a flapping port is distrusted the first time.
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

// ---------------------------------------------------------------------------
// Loading and validation
// ---------------------------------------------------------------------------

/// Largest config file accepted. Real ones are a few KiB; the cap keeps a
/// wrong `-c` argument (a log, a disk image) from being read into memory.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Most problems one error lists; a file of garbage must not produce
/// thousands of lines.
const MAX_PROBLEMS: usize = 50;

/// Why a config was refused: every problem found, each with its place in the
/// file when known.
///
/// `Display` prints one line per problem, `PATH:LINE:COLUMN: key: message`,
/// or `PATH: key: message` when there is no position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    file: PathBuf,
    problems: Vec<Problem>,
}

/// One thing wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// The setting concerned as a dotted path (`groups.lagg0.ports`,
    /// `hooks[0].run`); empty for problems with the file as a whole.
    pub key: String,
    /// What is wrong, for a human.
    pub message: String,
}

/// A place in a config file, so editors can jump to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
}

impl ConfigError {
    /// The config file the problems are in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every problem found, in file order (problems without a position first).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    fn new(file: &Path, mut problems: Vec<Problem>) -> ConfigError {
        problems.sort_by_key(|problem| problem.position);
        if problems.len() > MAX_PROBLEMS {
            let hidden = problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
            problems.push(Problem {
                position: None,
                key: String::new(),
                message: format!("{hidden} more problems not shown"),
            });
        }
        ConfigError {
            file: file.to_owned(),
            problems,
        }
    }

    /// A problem with the file as a whole (missing, unreadable, empty).
    fn whole(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError::new(
            file,
            vec![Problem {
                position: None,
                key: String::new(),
                message: message.into(),
            }],
        )
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:", self.file.display())?;
            if let Some(at) = problem.position {
                write!(f, "{}:{}:", at.line, at.column)?;
            }
            if !problem.key.is_empty() {
                write!(f, " {}:", problem.key)?;
            }
            write!(f, " {}", problem.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = file::read_text(path)?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text. `path` names the file in messages
    /// and is kept in [`Config::path`] for reloads.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(ConfigError::whole(path, file::too_large()));
        }
        let root = yaml::parse(text).map_err(|problem| ConfigError::new(path, vec![problem]))?;
        let Some(root) = root else {
            return Err(ConfigError::whole(
                path,
                "empty configuration; at least one group is required",
            ));
        };
        check::check(text, &root, path).map_err(|problems| ConfigError::new(path, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_error_names_its_own_key_not_the_previous_one() {
        let first = Config::parse("groups:\n  a: {x: 1, x: 2}\n", Path::new("f"));
        assert_eq!(first.expect_err("dup").problems()[0].key, "groups.a.x");
        let second = Config::parse("hooks: [1, 1]\nhooks: 2\n", Path::new("f"));
        let error = second.expect_err("dup");
        assert_eq!(error.problems()[0].key, "hooks");
        assert_eq!(
            error.problems()[0].position,
            Some(Position { line: 2, column: 1 })
        );
    }

    #[test]
    fn many_problems_are_capped() {
        let text: String = (0..200).map(|i| format!("unknown{i}: 1\n")).collect();
        let error = Config::parse(&text, Path::new("f")).expect_err("invalid");
        assert_eq!(error.problems().len(), MAX_PROBLEMS + 1);
        let last = error.to_string().lines().last().map(str::to_owned);
        // 200 unknown keys and the missing groups, 50 shown.
        assert_eq!(last.as_deref(), Some("f: 151 more problems not shown"));
    }
}
