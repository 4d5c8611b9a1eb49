//! The checker: applies the schema to a parsed tree, collecting every
//! problem rather than stopping at the first.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::position::{child_key, invisible, item_key, position, shown};
use super::yaml::Node;
use super::{
    Config, Driver, Facility, FlapDamping, GroupConfig, HookConfig, LogConfig, ProbeConfig,
    Problem, Require, DEFAULT_SOCKET, MAX_PORTS, MAX_PROBE_INTERVAL, MAX_PROBE_MISSED,
    MAX_PROBE_TARGETS, MIN_PROBE_INTERVAL,
};
use crate::event::{Kind, Severity};
use crate::names::Named;

/// Longest control socket path: `sun_path` is 104 bytes on FreeBSD (108 on
/// Linux), including the terminating NUL.
const MAX_SOCKET_PATH: usize = 103;

/// Applies the schema to `root`, parsed from `source`: the config, or every
/// problem found.
pub(super) fn check(
    source: &str,
    root: &Spanned<Node>,
    path: &Path,
) -> Result<Config, Vec<Problem>> {
    let mut checker = Checker {
        source,
        problems: Vec::new(),
    };
    let config = checker.config(root, path);
    match config {
        Some(config) if checker.problems.is_empty() => Ok(config),
        _ => Err(checker.problems),
    }
}

/// What `probe.arp` holds, for the messages that say so.
fn arp_expected() -> String {
    format!("a list of 1 to {MAX_PROBE_TARGETS} IPv4 addresses")
}

/// Every name of `T`, `a, b, c`.
fn names_of<T: Named>() -> String {
    let names: Vec<&str> = T::all().iter().map(|value| value.as_str()).collect();
    names.join(", ")
}

/// Every name of `T` as alternatives, `a, b or c`.
fn alternatives<T: Named>() -> String {
    match T::all().split_last() {
        Some((last, [])) => last.as_str().to_owned(),
        Some((last, rest)) => {
            let rest: Vec<&str> = rest.iter().map(|value| value.as_str()).collect();
            format!("{} or {}", rest.join(", "), last.as_str())
        }
        None => String::new(),
    }
}

/// Whether `text` is a whole number as YAML writes one (`42`, `-7`,
/// `0x2a`, `0o52`), for telling a number out of range from a fraction.
fn looks_integral(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(hex) = digits.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(octal) = digits.strip_prefix("0o") {
        return !octal.is_empty() && octal.chars().all(|c| matches!(c, '0'..='7'));
    }
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// What is wrong with a name or path that holds a control character or
/// an invisible one (the first found), as the end of a message.
fn hidden_character(text: &str) -> Option<String> {
    text.chars().find_map(|c| {
        if c.is_control() {
            Some(format!(
                "contains a control character (U+{:04X})",
                u32::from(c)
            ))
        } else if invisible(c) {
            Some(format!(
                "contains an invisible or bidirectional formatting character (U+{:04X})",
                u32::from(c)
            ))
        } else {
            None
        }
    })
}

/// What a node is, for "expected X, found Y" messages.
fn describe(node: &Node) -> String {
    match node {
        Node::Null => "nothing".to_owned(),
        Node::Bool(value) => format!("the boolean `{value}`"),
        Node::Int(value) => format!("the integer `{value}`"),
        Node::Float(value) => format!("the number `{value}`"),
        Node::Str(value) => format!("the string {}", shown(value)),
        Node::Seq(_) => "a list".to_owned(),
        Node::Map(_) => "a mapping".to_owned(),
    }
}

/// Range a duration setting must fall in, with the upper bound in words.
struct DurationLimits {
    min: Duration,
    max: Duration,
    max_text: &'static str,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// Smallest positive duration: "more than zero".
const POSITIVE: Duration = Duration::from_nanos(1);

const RESYNC_LIMITS: DurationLimits = DurationLimits {
    min: Duration::from_secs(1),
    max: DAY,
    max_text: "1 day",
};
const DELAY_LIMITS: DurationLimits = DurationLimits {
    min: Duration::ZERO,
    max: DAY,
    max_text: "1 day",
};
const WINDOW_LIMITS: DurationLimits = DurationLimits {
    min: POSITIVE,
    max: DAY,
    max_text: "1 day",
};
const HOLD_LIMITS: DurationLimits = DurationLimits {
    min: POSITIVE,
    max: Duration::from_secs(7 * 86_400),
    max_text: "1 week",
};
const HOOK_TIMEOUT_LIMITS: DurationLimits = DurationLimits {
    min: POSITIVE,
    max: HOUR,
    max_text: "1 hour",
};
const PROBE_INTERVAL_LIMITS: DurationLimits = DurationLimits {
    min: MIN_PROBE_INTERVAL,
    max: MAX_PROBE_INTERVAL,
    max_text: "1 minute",
};

const DEFAULT_RESYNC: Duration = MINUTE;
const DEFAULT_HISTORY: u64 = 256;
const MAX_HISTORY: u64 = 100_000;
const DEFAULT_PREEMPT_DELAY: Duration = Duration::from_secs(10);
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Three misses in a row: one lost frame, or two, is not a dead path.
const DEFAULT_PROBE_MISSED: u32 = 3;
/// 0.0.0.0: an RFC 5227 ARP probe, which no neighbour caches.
const DEFAULT_PROBE_SOURCE: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
/// More flaps than this per window is not damping any more; it also bounds
/// what the engine keeps per port.
const MAX_FLAPS: u64 = 1000;

const TOP_KEYS: &[&str] = &[
    "socket",
    "socket_group",
    "resync_interval",
    "history",
    "log",
    "groups",
    "hooks",
];
const LOG_KEYS: &[&str] = &["syslog", "facility", "failover_severity", "severities"];
const GROUP_KEYS: &[&str] = &[
    "driver",
    "ports",
    "preempt",
    "preempt_delay",
    "flap_damping",
    "enforce",
    "probe",
];
const FLAP_KEYS: &[&str] = &["max_flaps", "window", "hold"];
const HOOK_KEYS: &[&str] = &["on", "run", "timeout"];
const PROBE_KEYS: &[&str] = &["arp", "interval", "missed", "require", "source"];

type Entries = [(Spanned<String>, Spanned<Node>)];

/// The entries of one schema mapping whose keys have been checked.
struct Fields<'n> {
    path: String,
    entries: &'n Entries,
    /// Where to report a missing required key: the key that owns the mapping.
    owner: Location,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Spanned<Node>> {
        self.entries
            .iter()
            .find(|(key, _)| key.value == name)
            .map(|(_, value)| value)
    }

    fn key(&self, name: &str) -> String {
        child_key(&self.path, name)
    }

    /// Where the key `name` itself is written.
    fn key_location(&self, name: &str) -> Option<Location> {
        self.entries
            .iter()
            .find(|(key, _)| key.value == name)
            .map(|(key, _)| key.referenced)
    }
}

/// Applies the schema to a parsed tree, collecting every problem.
struct Checker<'s> {
    /// The text the tree was parsed from: a number too large or written
    /// with a fraction is shown as written, not as the float YAML made of it.
    source: &'s str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, at: Location, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            position: position(at),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, node: &Spanned<Node>, key: &str, expected: &str) {
        let message = match &node.value {
            Node::Null => format!("missing value; expected {expected}"),
            other => format!("expected {expected}, found {}", describe(other)),
        };
        self.report(node.referenced, key, message);
    }

    fn config(&mut self, root: &Spanned<Node>, path: &Path) -> Option<Config> {
        if !matches!(root.value, Node::Map(_)) {
            self.report(
                root.referenced,
                "",
                format!(
                    "expected a mapping of settings (socket, log, groups, hooks), found {}",
                    describe(&root.value)
                ),
            );
            return None;
        }
        let top = self.fields(Some(root), "", root.referenced, TOP_KEYS)?;
        Some(Config {
            path: path.to_owned(),
            socket: self.socket(top.get("socket")),
            socket_group: self.socket_group(top.get("socket_group")),
            resync_interval: self.duration(
                top.get("resync_interval"),
                "resync_interval",
                DEFAULT_RESYNC,
                &RESYNC_LIMITS,
            ),
            history: self.integer(
                top.get("history"),
                "history",
                DEFAULT_HISTORY,
                1..=MAX_HISTORY,
            ) as usize,
            log: self.log(top.get("log")),
            groups: self.groups(top.get("groups")),
            hooks: self.hooks(top.get("hooks")),
        })
    }

    /// A mapping with a fixed set of keys; nothing (`key:` with no value)
    /// counts as an empty mapping.
    fn fields<'n>(
        &mut self,
        node: Option<&'n Spanned<Node>>,
        path: &str,
        owner: Location,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let entries = match node {
            None => &[],
            Some(node) => self.entries(node, path, "a mapping of settings")?,
        };
        for (key, _) in entries {
            if !allowed.contains(&key.value.as_str()) {
                self.report(
                    key.referenced,
                    &child_key(path, &key.value),
                    format!("unknown key; allowed keys: {}", allowed.join(", ")),
                );
            }
        }
        Some(Fields {
            path: path.to_owned(),
            entries,
            owner,
        })
    }

    /// The entries of a mapping with free-form keys; nothing counts as empty.
    fn entries<'n>(
        &mut self,
        node: &'n Spanned<Node>,
        key: &str,
        expected: &str,
    ) -> Option<&'n Entries> {
        match &node.value {
            Node::Map(entries) => Some(entries),
            Node::Null => Some(&[]),
            _ => {
                self.wrong_type(node, key, expected);
                None
            }
        }
    }

    fn list<'n>(
        &mut self,
        node: &'n Spanned<Node>,
        key: &str,
        expected: &str,
    ) -> Option<&'n [Spanned<Node>]> {
        match &node.value {
            Node::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, key, expected);
                None
            }
        }
    }

    fn string<'n>(
        &mut self,
        node: &'n Spanned<Node>,
        key: &str,
        expected: &str,
    ) -> Option<&'n str> {
        match &node.value {
            Node::Str(text) => Some(text),
            _ => {
                self.wrong_type(node, key, expected);
                None
            }
        }
    }

    fn boolean(&mut self, node: Option<&Spanned<Node>>, key: &str, default: bool) -> bool {
        match node.map(|node| (node, &node.value)) {
            None => default,
            Some((_, Node::Bool(value))) => *value,
            Some((node, _)) => {
                self.wrong_type(node, key, "true or false");
                default
            }
        }
    }

    fn integer(
        &mut self,
        node: Option<&Spanned<Node>>,
        key: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> u64 {
        let Some(node) = node else {
            return default;
        };
        let allowed = format!("an integer from {} to {}", range.start(), range.end());
        let problem = match &node.value {
            Node::Int(value) => match u64::try_from(*value) {
                Ok(value) if range.contains(&value) => return value,
                _ => format!("`{value}` is out of range; must be {allowed}"),
            },
            // YAML makes a float of an integer too large for 64 bits, so
            // the text decides which of the two mistakes was made.
            Node::Float(value) => {
                let written = self.written(node).unwrap_or_else(|| value.to_string());
                if looks_integral(&written) {
                    format!("{} is out of range; must be {allowed}", shown(&written))
                } else {
                    format!("{} is not an integer; must be {allowed}", shown(&written))
                }
            }
            _ => {
                self.wrong_type(node, key, &allowed);
                return default;
            }
        };
        self.report(node.referenced, key, problem);
        default
    }

    /// The scalar as it is written in the file (where it is defined, for
    /// an alias), when the parser says where that is.
    fn written(&self, node: &Spanned<Node>) -> Option<String> {
        let span = node.defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let text = self.source.get(start..start.checked_add(len)?)?.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }

    fn duration(
        &mut self,
        node: Option<&Spanned<Node>>,
        key: &str,
        default: Duration,
        limits: &DurationLimits,
    ) -> Duration {
        let Some(node) = node else {
            return default;
        };
        let parsed = match &node.value {
            Node::Str(text) => parse_duration(text),
            Node::Int(value) => Err(format!("`{value}` has no unit; write e.g. {value}s")),
            _ => {
                self.wrong_type(node, key, "a duration such as 10s, 5m or 1h 30m");
                return default;
            }
        };
        let problem = match parsed {
            Ok(value) if value < limits.min && limits.min == POSITIVE => {
                "must be more than 0".to_owned()
            }
            Ok(value) if value < limits.min => format!(
                "must be at least {}",
                humantime::format_duration(limits.min)
            ),
            Ok(value) if value > limits.max => format!("must be at most {}", limits.max_text),
            Ok(value) => return value,
            Err(message) => message,
        };
        self.report(node.referenced, key, problem);
        default
    }

    /// One of the values of `T`, by name.
    fn choice<T: Named>(&mut self, node: &Spanned<Node>, key: &str, what: &str) -> Option<T> {
        let names = names_of::<T>();
        let text = self.string(node, key, &format!("a {what} ({names})"))?;
        let found = T::from_name(text);
        if found.is_none() {
            let message = format!("unknown {what} {}; expected one of: {names}", shown(text));
            self.report(node.referenced, key, message);
        }
        found
    }

    fn kind(&mut self, node: &Spanned<Node>, key: &str) -> Option<Kind> {
        self.choice::<Kind>(node, key, "event kind")
    }

    fn socket(&mut self, node: Option<&Spanned<Node>>) -> PathBuf {
        let default = PathBuf::from(DEFAULT_SOCKET);
        let Some(node) = node else {
            return default;
        };
        let Some(text) = self.string(node, "socket", "an absolute path") else {
            return default;
        };
        let problem = if !text.starts_with('/') {
            format!("must be an absolute path, found {}", shown(text))
        } else if text.ends_with('/') {
            "must name a socket file, not a directory".to_owned()
        } else if let Some(hidden) = hidden_character(text) {
            format!("path {} {hidden}", shown(text))
        } else if text.len() > MAX_SOCKET_PATH {
            format!("longer than {MAX_SOCKET_PATH} bytes, the limit of a Unix socket path")
        } else {
            return PathBuf::from(text);
        };
        self.report(node.referenced, "socket", problem);
        default
    }

    fn socket_group(&mut self, node: Option<&Spanned<Node>>) -> Option<String> {
        let node = node.filter(|node| !matches!(node.value, Node::Null))?;
        let text = self.string(node, "socket_group", "a group name")?;
        if let Some(hidden) = hidden_character(text) {
            let message = format!("group name {} {hidden}", shown(text));
            self.report(node.referenced, "socket_group", message);
            return None;
        }
        let bad = text.is_empty()
            || text
                .chars()
                .any(|c| c == ':' || c.is_whitespace() || c.is_control());
        if bad {
            self.report(
                node.referenced,
                "socket_group",
                format!("{} is not a valid group name", shown(text)),
            );
            return None;
        }
        Some(text.to_owned())
    }

    fn log(&mut self, node: Option<&Spanned<Node>>) -> LogConfig {
        let mut log = LogConfig {
            syslog: false,
            facility: Facility::Daemon,
            severities: HashMap::new(),
        };
        let owner = node.map_or(Location::UNKNOWN, |node| node.referenced);
        let Some(fields) = self.fields(node, "log", owner, LOG_KEYS) else {
            return log;
        };
        log.syslog = self.boolean(fields.get("syslog"), &fields.key("syslog"), false);
        if let Some(node) = fields.get("facility") {
            let choice = self.choice::<Facility>(node, &fields.key("facility"), "facility");
            log.facility = choice.unwrap_or(Facility::Daemon);
        }
        let overrides = self.severities(fields.get("severities"), &fields.key("severities"));
        for (kind, (severity, _)) in &overrides {
            log.severities.insert(*kind, *severity);
        }
        if let Some(node) = fields.get("failover_severity") {
            let key = fields.key("failover_severity");
            if let Some(severity) = self.choice::<Severity>(node, &key, "severity") {
                match overrides.get(&Kind::Failover) {
                    Some((_, at)) => {
                        let message = format!(
                            "conflicts with log.severities.failover (line {}); set only one",
                            at.line()
                        );
                        self.report(node.referenced, &key, message);
                    }
                    None => {
                        log.severities.insert(Kind::Failover, severity);
                    }
                }
            }
        }
        log
    }

    /// `severities: {kind: severity}`, each with where its key is.
    fn severities(
        &mut self,
        node: Option<&Spanned<Node>>,
        key: &str,
    ) -> HashMap<Kind, (Severity, Location)> {
        let mut overrides = HashMap::new();
        let Some(node) = node else {
            return overrides;
        };
        let Some(entries) = self.entries(node, key, "a mapping of event kinds to severities")
        else {
            return overrides;
        };
        for (name, value) in entries {
            let entry_key = child_key(key, &name.value);
            let Some(kind) = Kind::from_name(&name.value) else {
                let message = format!("unknown event kind; known kinds: {}", names_of::<Kind>());
                self.report(name.referenced, &entry_key, message);
                continue;
            };
            if let Some(severity) = self.choice::<Severity>(value, &entry_key, "severity") {
                overrides.insert(kind, (severity, name.referenced));
            }
        }
        overrides
    }

    fn groups(&mut self, node: Option<&Spanned<Node>>) -> Vec<GroupConfig> {
        let entries = match node {
            None => &[],
            Some(node) => {
                match self.entries(node, "groups", "a mapping of group names to groups") {
                    Some(entries) => entries,
                    None => return Vec::new(),
                }
            }
        };
        if entries.is_empty() {
            let at = node.map_or(Location::UNKNOWN, |node| node.referenced);
            self.report(at, "groups", "at least one group is required");
            return Vec::new();
        }
        let mut groups = Vec::new();
        // Which group each port is in, to refuse a port in two groups.
        let mut owners: HashMap<&str, &str> = HashMap::new();
        for (name, body) in entries {
            let key = child_key("groups", &name.value);
            self.interface_name(&name.value, name.referenced, &key, "group name");
            if let Some((group, ports)) = self.group(name, body, &key) {
                self.claim_ports(&name.value, ports, entries, &mut owners);
                groups.push(group);
            }
        }
        groups
    }

    /// Records `group` as the owner of its ports, refusing ports that are
    /// already in another group or that are themselves groups.
    fn claim_ports<'n>(
        &mut self,
        group: &'n str,
        ports: &'n [Spanned<Node>],
        groups: &Entries,
        owners: &mut HashMap<&'n str, &'n str>,
    ) {
        let key = child_key(&child_key("groups", group), "ports");
        for port in ports {
            let Node::Str(name) = &port.value else {
                continue;
            };
            let message = if groups.iter().any(|(group, _)| group.value == *name) {
                format!(
                    "port {} is the name of a group; an aggregate cannot be a port",
                    shown(name)
                )
            } else {
                match owners.get(name.as_str()) {
                    None => {
                        owners.insert(name, group);
                        continue;
                    }
                    // Listed twice in this group: already reported.
                    Some(owner) if *owner == group => continue,
                    Some(owner) => format!(
                        "port {} is already in group {}; a port belongs to one group only",
                        shown(name),
                        shown(owner)
                    ),
                }
            };
            self.report(port.referenced, &key, message);
        }
    }

    /// One group, and the port nodes for the checks across groups.
    fn group<'n>(
        &mut self,
        name: &Spanned<String>,
        body: &'n Spanned<Node>,
        key: &str,
    ) -> Option<(GroupConfig, &'n [Spanned<Node>])> {
        if !matches!(body.value, Node::Map(_) | Node::Null) {
            self.wrong_type(
                body,
                key,
                "a mapping of group settings (driver, ports, ...)",
            );
            return None;
        }
        let fields = self.fields(Some(body), key, name.referenced, GROUP_KEYS)?;
        let driver = self.required(&fields, "driver", &alternatives::<Driver>());
        let driver = driver.and_then(|node| self.driver(node, &fields.key("driver")));
        let port_nodes = self.required(&fields, "ports", "a list of ports in priority order");
        let port_nodes =
            port_nodes.and_then(|node| self.list(node, &fields.key("ports"), "a list of ports"));
        let ports = port_nodes.and_then(|nodes| self.ports(nodes, &fields, body));
        // Before the rest, which stops at a missing driver or port list:
        // the probe's own problems are reported either way.
        let probe = self.probe(&fields);
        let group = GroupConfig {
            name: name.value.clone(),
            driver: driver?,
            ports: ports?,
            preempt: self.boolean(fields.get("preempt"), &fields.key("preempt"), true),
            preempt_delay: self.duration(
                fields.get("preempt_delay"),
                &fields.key("preempt_delay"),
                DEFAULT_PREEMPT_DELAY,
                &DELAY_LIMITS,
            ),
            flap_damping: self
                .flap_damping(fields.get("flap_damping"), &fields.key("flap_damping")),
            enforce: self.boolean(fields.get("enforce"), &fields.key("enforce"), true),
            probe,
        };
        Some((group, port_nodes?))
    }

    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        name: &str,
        expected: &str,
    ) -> Option<&'n Spanned<Node>> {
        let node = fields.get(name);
        if node.is_none() {
            let message = format!("missing required key `{name}` ({expected})");
            self.report(fields.owner, &fields.path, message);
        }
        node
    }

    fn driver(&mut self, node: &Spanned<Node>, key: &str) -> Option<Driver> {
        if matches!(&node.value, Node::Str(text) if text == "team") {
            self.report(node.referenced, key, "driver team is not supported yet");
            return None;
        }
        self.choice::<Driver>(node, key, "driver")
    }

    /// The port names, each a valid interface name, listed once, 1..=32 of
    /// them; `None` when the list is unusable.
    fn ports(
        &mut self,
        nodes: &[Spanned<Node>],
        fields: &Fields<'_>,
        body: &Spanned<Node>,
    ) -> Option<Vec<String>> {
        let key = fields.key("ports");
        let at = fields
            .get("ports")
            .map_or(body.referenced, |node| node.referenced);
        if nodes.is_empty() {
            self.report(at, &key, "a group needs at least one port");
            return None;
        }
        if nodes.len() > MAX_PORTS {
            let message = format!(
                "a group has at most {MAX_PORTS} ports, found {}",
                nodes.len()
            );
            self.report(at, &key, message);
        }
        let mut ports: Vec<(String, Location)> = Vec::new();
        for node in nodes {
            let Some(name) = self.string(node, &key, "an interface name") else {
                continue;
            };
            if !self.interface_name(name, node.referenced, &key, "port name") {
                continue;
            }
            if let Some((_, first)) = ports.iter().find(|(port, _)| port == name) {
                let message = format!(
                    "port {} is listed twice (first at line {}, column {})",
                    shown(name),
                    first.line(),
                    first.column()
                );
                self.report(node.referenced, &key, message);
                continue;
            }
            ports.push((name.to_owned(), node.referenced));
        }
        Some(ports.into_iter().map(|(name, _)| name).collect())
    }

    /// Reports and returns false unless `name` is something the kernels
    /// accept as an interface name.
    fn interface_name(&mut self, name: &str, at: Location, key: &str, what: &str) -> bool {
        let problem = if name.is_empty() {
            format!("{what} is empty")
        } else if name.len() > 15 {
            format!(
                "{what} {} is longer than 15 bytes, the kernel's limit",
                shown(name)
            )
        } else if name == "." || name == ".." {
            format!("{what} {} is not a valid interface name", shown(name))
        } else if let Some(hidden) = hidden_character(name) {
            format!("{what} {} {hidden}", shown(name))
        } else if name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            format!(
                "{what} {} may not contain '/', ':' or whitespace",
                shown(name)
            )
        } else {
            return true;
        };
        self.report(at, key, problem);
        false
    }

    /// The group's `probe` block, `None` when there is none (or it is
    /// unusable, which is reported).
    fn probe(&mut self, group: &Fields<'_>) -> Option<ProbeConfig> {
        let node = group.get("probe")?;
        let key = group.key("probe");
        let owner = group.key_location("probe").unwrap_or(node.referenced);
        match &node.value {
            // `probe:` alone most likely lost its block to indentation;
            // taking it for "no probes" would silently watch carrier only.
            Node::Null => {
                let message = format!(
                    "probe needs arp targets ({}); \
                     remove `probe` to go by carrier alone",
                    arp_expected()
                );
                self.report(owner, &key, message);
                return None;
            }
            Node::Map(_) => {}
            _ => {
                let expected = format!("a mapping of probe settings ({})", PROBE_KEYS.join(", "));
                self.wrong_type(node, &key, &expected);
                return None;
            }
        }
        let fields = self.fields(Some(node), &key, owner, PROBE_KEYS)?;
        let arp = self.required(&fields, "arp", &arp_expected());
        let arp = arp.and_then(|node| self.probe_targets(node, &fields.key("arp")));
        let interval = self.duration(
            fields.get("interval"),
            &fields.key("interval"),
            DEFAULT_PROBE_INTERVAL,
            &PROBE_INTERVAL_LIMITS,
        );
        let missed = self.integer(
            fields.get("missed"),
            &fields.key("missed"),
            DEFAULT_PROBE_MISSED.into(),
            1..=MAX_PROBE_MISSED.into(),
        );
        let require = fields
            .get("require")
            .and_then(|node| self.choice::<Require>(node, &fields.key("require"), "requirement"))
            .unwrap_or(Require::Any);
        let source = self.probe_source(fields.get("source"), &fields.key("source"));
        Some(ProbeConfig {
            arp: arp?,
            interval,
            missed: u32::try_from(missed).unwrap_or(DEFAULT_PROBE_MISSED),
            require,
            source,
        })
    }

    /// The probe targets: 1 to [`MAX_PROBE_TARGETS`] unicast IPv4
    /// addresses, each listed once; `None` when the list is unusable.
    fn probe_targets(&mut self, node: &Spanned<Node>, key: &str) -> Option<Vec<Ipv4Addr>> {
        let items = self.list(node, key, &arp_expected())?;
        if items.is_empty() {
            self.report(node.referenced, key, "a probe needs at least one target");
            return None;
        }
        if items.len() > MAX_PROBE_TARGETS {
            let message = format!(
                "a probe has at most {MAX_PROBE_TARGETS} targets, found {}",
                items.len()
            );
            self.report(node.referenced, key, message);
        }
        let mut targets: Vec<(Ipv4Addr, Location)> = Vec::new();
        for item in items {
            let Some(address) = self.ipv4(item, key, "target") else {
                continue;
            };
            if let Some(what) = not_unicast(address) {
                let message = format!(
                    "target `{address}` is {what}; \
                     a target must be a unicast address on the link"
                );
                self.report(item.referenced, key, message);
                continue;
            }
            if let Some((_, first)) = targets.iter().find(|(target, _)| *target == address) {
                let message = format!(
                    "target `{address}` is listed twice (first at line {}, column {})",
                    first.line(),
                    first.column()
                );
                self.report(item.referenced, key, message);
                continue;
            }
            targets.push((address, item.referenced));
        }
        Some(targets.into_iter().map(|(address, _)| address).collect())
    }

    /// The sender address of the probes: 0.0.0.0 when not set, or any
    /// address the port could own.
    fn probe_source(&mut self, node: Option<&Spanned<Node>>, key: &str) -> Ipv4Addr {
        let Some(node) = node.filter(|node| !matches!(node.value, Node::Null)) else {
            return DEFAULT_PROBE_SOURCE;
        };
        let Some(address) = self.ipv4(node, key, "source") else {
            return DEFAULT_PROBE_SOURCE;
        };
        // 0.0.0.0 written out is the default: RFC 5227 probes.
        let unfit = not_unicast(address).filter(|_| !address.is_unspecified());
        if let Some(what) = unfit {
            let message = format!(
                "source `{address}` is {what}; \
                 it must be a unicast address on the link, or 0.0.0.0"
            );
            self.report(node.referenced, key, message);
            return DEFAULT_PROBE_SOURCE;
        }
        address
    }

    /// An IPv4 address written as a dotted quad; `what` names it in the
    /// messages.
    fn ipv4(&mut self, node: &Spanned<Node>, key: &str, what: &str) -> Option<Ipv4Addr> {
        let text = self.string(node, key, "an IPv4 address such as 192.0.2.1")?;
        if let Ok(address) = text.parse::<Ipv4Addr>() {
            return Some(address);
        }
        let message = if leading_zero(text) {
            format!(
                "{what} {} has a part with a leading zero, which some programs read as octal; \
                 write each part in decimal without leading zeros",
                shown(text)
            )
        } else if text.parse::<Ipv6Addr>().is_ok() {
            format!(
                "{what} {} is an IPv6 address; ARP works with IPv4 addresses only",
                shown(text)
            )
        } else {
            format!(
                "{what} {} is not an IPv4 address; write a dotted quad such as 192.0.2.1 \
                 (names are not looked up)",
                shown(text)
            )
        };
        self.report(node.referenced, key, message);
        None
    }

    fn flap_damping(&mut self, node: Option<&Spanned<Node>>, key: &str) -> FlapDamping {
        let defaults = FlapDamping::default();
        let owner = node.map_or(Location::UNKNOWN, |node| node.referenced);
        let Some(fields) = self.fields(node, key, owner, FLAP_KEYS) else {
            return defaults;
        };
        let max_flaps = self.integer(
            fields.get("max_flaps"),
            &fields.key("max_flaps"),
            defaults.max_flaps.into(),
            1..=MAX_FLAPS,
        );
        FlapDamping {
            max_flaps: u32::try_from(max_flaps).unwrap_or(defaults.max_flaps),
            window: self.duration(
                fields.get("window"),
                &fields.key("window"),
                defaults.window,
                &WINDOW_LIMITS,
            ),
            hold: self.duration(
                fields.get("hold"),
                &fields.key("hold"),
                defaults.hold,
                &HOLD_LIMITS,
            ),
        }
    }

    fn hooks(&mut self, node: Option<&Spanned<Node>>) -> Vec<HookConfig> {
        let Some(node) = node.filter(|node| !matches!(node.value, Node::Null)) else {
            return Vec::new();
        };
        let Some(items) = self.list(node, "hooks", "a list of hooks") else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| self.hook(item, &item_key("hooks", index)))
            .collect()
    }

    fn hook(&mut self, node: &Spanned<Node>, key: &str) -> Option<HookConfig> {
        let fields = self.fields(Some(node), key, node.referenced, HOOK_KEYS)?;
        let on = self.required(&fields, "on", "a list of event kinds");
        let on = on.and_then(|node| self.hook_kinds(node, &fields.key("on")));
        let run = self.required(&fields, "run", "the program and its arguments");
        let run = run.and_then(|node| self.hook_argv(node, &fields.key("run")));
        let timeout = self.duration(
            fields.get("timeout"),
            &fields.key("timeout"),
            DEFAULT_HOOK_TIMEOUT,
            &HOOK_TIMEOUT_LIMITS,
        );
        Some(HookConfig {
            on: on?,
            run: run?,
            timeout,
        })
    }

    fn hook_kinds(&mut self, node: &Spanned<Node>, key: &str) -> Option<Vec<Kind>> {
        let items = self.list(node, key, "a list of event kinds")?;
        if items.is_empty() {
            self.report(node.referenced, key, "a hook needs at least one event kind");
            return None;
        }
        let mut kinds = Vec::new();
        for item in items {
            let Some(kind) = self.kind(item, key) else {
                continue;
            };
            if kinds.contains(&kind) {
                self.report(
                    item.referenced,
                    key,
                    format!("event kind `{kind}` is listed twice"),
                );
            } else {
                kinds.push(kind);
            }
        }
        Some(kinds)
    }

    fn hook_argv(&mut self, node: &Spanned<Node>, key: &str) -> Option<Vec<String>> {
        let items = self.list(node, key, "a list: the program, then its arguments")?;
        let Some(program) = items.first() else {
            self.report(node.referenced, key, "a hook needs a program to run");
            return None;
        };
        let mut argv = Vec::new();
        for item in items {
            let Some(arg) = self.string(item, key, "a string (quote numbers)") else {
                continue;
            };
            if arg.contains('\0') {
                self.report(item.referenced, key, "an argument may not contain NUL");
                continue;
            }
            argv.push(arg.to_owned());
        }
        if let Node::Str(path) = &program.value {
            // A NUL is reported above, as in any argument.
            let hidden = hidden_character(path).filter(|_| !path.contains('\0'));
            if let Some(hidden) = hidden {
                let message = format!("the program {} {hidden}", shown(path));
                self.report(program.referenced, key, message);
            } else if !path.starts_with('/') {
                let message = format!(
                    "the program must be an absolute path, found {}",
                    shown(path)
                );
                self.report(program.referenced, key, message);
            }
        }
        Some(argv)
    }
}

/// What makes `address` unfit to be asked or to ask from, as the end of
/// "X is ...": no host answers ARP for these, and none may send from them.
fn not_unicast(address: Ipv4Addr) -> Option<&'static str> {
    if address.is_unspecified() {
        Some("the unspecified address")
    } else if address.is_broadcast() {
        Some("the broadcast address")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if address.is_loopback() {
        Some("a loopback address")
    } else {
        None
    }
}

/// Whether `text` is a dotted quad but for a part written with a leading
/// zero (`010.0.0.1`): `inet_aton` reads that part as octal, so whether
/// it means 8 or 10 depends on the reader; it is refused rather than
/// guessed.
fn leading_zero(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            !part.is_empty() && part.len() <= 4 && part.bytes().all(|b| b.is_ascii_digit())
        })
        && parts
            .iter()
            .any(|part| part.len() > 1 && part.starts_with('0'))
}

/// A duration as written in the file: `10s`, `5m`, `1h 30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("{} is negative; a duration cannot be", shown(text)));
    }
    humantime::parse_duration(trimmed).map_err(|error| {
        format!(
            "{} is not a duration ({error}); write e.g. 10s, 5m or 1h 30m",
            shown(text)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dotted_quads_with_a_leading_zero_are_taken_for_octal() {
        assert!(leading_zero("010.0.0.1"));
        assert!(leading_zero("192.0.2.01"));
        assert!(leading_zero("1.2.3.0400"));
        assert!(!leading_zero("10.0.0.1"));
        assert!(!leading_zero("0.0.0.0"));
        assert!(!leading_zero("01.2.3"));
        assert!(!leading_zero("0x1.2.3.4"));
        assert!(!leading_zero("01.2.3.4.5"));
    }

    #[test]
    fn only_unicast_addresses_are_fit_to_probe() {
        let fit = |text: &str| not_unicast(text.parse().expect("an address"));
        assert_eq!(fit("192.0.2.1"), None);
        // Private and link-local addresses are ordinary neighbours.
        assert_eq!(fit("10.0.0.1"), None);
        assert_eq!(fit("169.254.1.1"), None);
        assert_eq!(fit("0.0.0.0"), Some("the unspecified address"));
        assert_eq!(fit("255.255.255.255"), Some("the broadcast address"));
        assert_eq!(fit("224.0.0.1"), Some("a multicast address"));
        assert_eq!(fit("239.255.255.255"), Some("a multicast address"));
        assert_eq!(fit("127.0.0.53"), Some("a loopback address"));
    }

    #[test]
    fn durations_take_humantime_units_and_refuse_negatives() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("-1s"),
            Err("`-1s` is negative; a duration cannot be".to_owned())
        );
        let garbage = parse_duration("5 parsecs").expect_err("unknown unit");
        assert!(
            garbage.starts_with("`5 parsecs` is not a duration ("),
            "{garbage}"
        );
    }
}
