//! The configuration: the YAML schema, its defaults and its validation.
//!
//! A config is only ever built by [`Config::load`] / [`Config::parse`], which
//! check everything; the rest of the daemon trusts a `Config` it is given.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use crate::event::{Kind, Severity};
use crate::names::{named, Named};

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

// ---------------------------------------------------------------------------
// Loading and validation
// ---------------------------------------------------------------------------

/// Largest config file accepted. Real ones are a few KiB; the cap keeps a
/// wrong `-c` argument (a log, a disk image) from being read into memory.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Longest control socket path: `sun_path` is 104 bytes on FreeBSD (108 on
/// Linux), including the terminating NUL.
const MAX_SOCKET_PATH: usize = 103;

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
        let text = read_text(path)?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text. `path` names the file in messages
    /// and is kept in [`Config::path`] for reloads.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(ConfigError::whole(path, too_large()));
        }
        let root = yaml::parse(text).map_err(|problem| ConfigError::new(path, vec![problem]))?;
        let Some(root) = root else {
            return Err(ConfigError::whole(
                path,
                "empty configuration; at least one group is required",
            ));
        };
        let mut checker = Checker {
            source: text,
            problems: Vec::new(),
        };
        let config = checker.config(&root, path);
        match config {
            Some(config) if checker.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::new(path, checker.problems)),
        }
    }
}

fn too_large() -> String {
    format!(
        "larger than {} MiB; this is not a laggmond config",
        MAX_FILE_BYTES >> 20
    )
}

/// Reads the file as UTF-8 text. Anything but a regular file is refused by
/// its type, before it is even opened: a FIFO whose writer stays open would
/// hold `check-config`, or a reload, for as long as it likes, and opening a
/// device can act on it (a watchdog arms, a tape rewinds). What was opened
/// is checked again, in case the path changed in between.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::MetadataExt;

    let fail = |message: String| ConfigError::whole(path, message);
    let named = fs::metadata(path).map_err(|e| fail(io_message(&e)))?;
    if let Some(kind) = not_a_regular_file(&named.file_type()) {
        return Err(fail(format!("is {kind}, not a config file")));
    }
    let file = open_for_reading(path).map_err(|e| fail(io_message(&e)))?;
    let metadata = file.metadata().map_err(|e| fail(io_message(&e)))?;
    if let Some(kind) = not_a_regular_file(&metadata.file_type()) {
        return Err(fail(format!("is {kind}, not a config file")));
    }
    if (metadata.dev(), metadata.ino()) != (named.dev(), named.ino()) {
        return Err(fail(
            "was replaced while being opened; try again".to_owned(),
        ));
    }
    if metadata.len() > MAX_FILE_BYTES as u64 {
        return Err(fail(too_large()));
    }
    let mut bytes = Vec::new();
    // Bounded even if the file grew since.
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(io_message(&e)))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(fail(too_large()));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ConfigError::new(
            path,
            vec![Problem {
                position: Some(end_of(valid)),
                key: String::new(),
                message: "not valid UTF-8 text".to_owned(),
            }],
        )
    })
}

/// What a file that is not a regular file is, for the refusal.
fn not_a_regular_file(kind: &fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;

    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

/// Opens `path` for reading without waiting: a plain open of a FIFO
/// nobody writes to blocks forever. A terminal does not become ours.
fn open_for_reading(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;

    fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// The position just after `valid`, a UTF-8 prefix of the file.
fn end_of(valid: &[u8]) -> Position {
    let text = String::from_utf8_lossy(valid);
    let line_start = text.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: text.matches('\n').count() as u64 + 1,
        column: text[line_start..].chars().count() as u64 + 1,
    }
}

fn io_message(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory, not a config file".to_owned(),
        _ => format!("cannot read: {error}"),
    }
}

/// The YAML layer: text to a tree of [`Node`]s that remember where they are
/// in the file. The schema is applied afterwards by [`Checker`], which can
/// then name every key, give every position and report every problem rather
/// than only the first.
mod yaml {
    use std::cell::RefCell;
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_saphyr::{
        DuplicateKeyPolicy, Error, MessageFormatter, Spanned, UserMessageFormatter,
    };

    use super::{child_key, item_key, position, Problem};

    /// A YAML node as written, before the schema is applied. Scalars keep
    /// the type YAML gives them (YAML 1.2 core schema: `yes` is a string).
    #[derive(Debug)]
    pub(super) enum Node {
        Null,
        Bool(bool),
        Int(i128),
        Float(f64),
        Str(String),
        Seq(Vec<Spanned<Node>>),
        /// Entries in file order.
        Map(Vec<(Spanned<String>, Spanned<Node>)>),
    }

    /// Parses one YAML document; `None` when it is empty (or only comments).
    pub(super) fn parse(text: &str) -> Result<Option<Spanned<Node>>, Problem> {
        TRACKER.with(|t| *t.borrow_mut() = Tracker::default());
        let result = serde_saphyr::from_str_with_options::<Option<Spanned<Node>>>(text, options());
        let failed_at = TRACKER.with(|t| t.take().failed_at);
        result.map_err(|error| problem(&error, failed_at.unwrap_or_default()))
    }

    /// Limits sized for config files: a real one has a few hundred nodes and
    /// a nesting depth of 4; ten thousand nodes is dozens of full groups.
    /// They stop alias bombs, deep nesting and enormous lists long before
    /// memory, stack or time suffer.
    fn options() -> serde_saphyr::Options {
        serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_events: 20_000,
                max_aliases: 1_000,
                max_anchors: 1_000,
                max_recorded_anchor_events: 10_000,
                max_recorded_anchor_bytes: 1 << 20,
                max_depth: 16,
                flow_nesting_limit: 16,
                // Two, so that a second document gets the clearer
                // "multiple documents" error rather than a budget breach.
                max_documents: 2,
                max_nodes: 10_000,
                max_total_scalar_bytes: 2 << 20,
                max_merge_keys: 100,
            },
            alias_limits: serde_saphyr::alias_limits! {
                max_total_replayed_events: 10_000,
                max_replay_stack_depth: 16,
            },
            duplicate_keys: DuplicateKeyPolicy::Error,
            strict_booleans: true,
            reject_unsupported_tags: true,
            emit_comments: false,
            with_snippet: false,
        }
    }

    /// One line's worth of explanation for a YAML-level error.
    fn problem(error: &Error, key: String) -> Problem {
        let mut inner = error;
        while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = inner {
            inner = error;
        }
        let position = error.location().and_then(position);
        let (key, message) = match inner {
            Error::DuplicateMappingKey {
                key: Some(name), ..
            } => (
                child_key(&key, name),
                "duplicate key; a key may appear only once".to_owned(),
            ),
            Error::DuplicateMappingKey { key: None, .. } => {
                (key, "duplicate key; a key may appear only once".to_owned())
            }
            // The place in the tree where a limit tripped says nothing useful.
            Error::Budget { .. }
            | Error::AliasReplayCounterOverflow { .. }
            | Error::AliasReplayLimitExceeded { .. }
            | Error::AliasExpansionLimitExceeded { .. }
            | Error::AliasReplayStackDepthExceeded { .. } => (
                String::new(),
                sanitize(&UserMessageFormatter.format_message(inner)),
            ),
            Error::MultipleDocuments { .. } => (
                String::new(),
                "a config file holds a single YAML document; remove the extra `---`".to_owned(),
            ),
            other => (key, sanitize(&UserMessageFormatter.format_message(other))),
        };
        Problem {
            position,
            key,
            message,
        }
    }

    /// Control characters in a message would break the one-line-per-problem
    /// layout.
    fn sanitize(message: &str) -> String {
        crate::log::escape_controls(message)
    }

    thread_local! {
        /// The key path being read. `Spanned<T>` takes no seed, so the
        /// recursive `Deserialize` of [`Node`] has no other way to share it;
        /// it lets a YAML error deep in the file name its key.
        static TRACKER: RefCell<Tracker> = RefCell::new(Tracker::default());
    }

    #[derive(Default)]
    struct Tracker {
        /// Key paths of the nodes being read, innermost last.
        stack: Vec<String>,
        /// Where the first failure happened (the innermost one).
        failed_at: Option<String>,
    }

    fn current_path() -> String {
        TRACKER.with(|t| t.borrow().stack.last().cloned().unwrap_or_default())
    }

    /// Runs `read` with `path` as the current key path and remembers the
    /// path if it fails first.
    fn reading<T, E>(path: String, read: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        TRACKER.with(|t| t.borrow_mut().stack.push(path));
        let result = read();
        TRACKER.with(|t| {
            let mut tracker = t.borrow_mut();
            let path = tracker.stack.pop();
            if result.is_err() && tracker.failed_at.is_none() {
                tracker.failed_at = path;
            }
        });
        result
    }

    impl<'de> Deserialize<'de> for Node {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
            deserializer.deserialize_any(NodeVisitor)
        }
    }

    struct NodeVisitor;

    impl<'de> Visitor<'de> for NodeVisitor {
        type Value = Node;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any YAML value")
        }

        fn visit_unit<E>(self) -> Result<Node, E> {
            Ok(Node::Null)
        }

        fn visit_none<E>(self) -> Result<Node, E> {
            Ok(Node::Null)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
            Node::deserialize(deserializer)
        }

        fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
            Ok(Node::Bool(value))
        }

        fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
            Ok(Node::Int(value.into()))
        }

        fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
            Ok(Node::Int(value.into()))
        }

        fn visit_i128<E>(self, value: i128) -> Result<Node, E> {
            Ok(Node::Int(value))
        }

        fn visit_u128<E>(self, value: u128) -> Result<Node, E> {
            Ok(i128::try_from(value).map_or(Node::Float(value as f64), Node::Int))
        }

        fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
            Ok(Node::Float(value))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Node, E> {
            Ok(Node::Str(value.to_owned()))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
            let parent = current_path();
            let mut items = Vec::new();
            while let Some(item) = reading(item_key(&parent, items.len()), || seq.next_element())? {
                items.push(item);
            }
            Ok(Node::Seq(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
            let parent = current_path();
            let mut entries = Vec::new();
            while let Some(key) = reading(parent.clone(), || map.next_key::<Spanned<String>>())? {
                let value = reading(child_key(&parent, &key.value), || map.next_value())?;
                entries.push((key, value));
            }
            Ok(Node::Map(entries))
        }
    }
}

use yaml::Node;

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

/// `key.child` for messages; odd names are quoted so the path stays one line.
fn child_key(parent: &str, name: &str) -> String {
    let name = shown_key(name);
    if parent.is_empty() {
        name
    } else {
        format!("{parent}.{name}")
    }
}

/// `key[index]` for messages.
fn item_key(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

fn shown_key(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !invisible(c));
    if plain {
        name.to_owned()
    } else {
        format!("{:?}", truncated(name))
    }
}

/// A value from the file as it appears in a message: in backquotes, escaped
/// and shortened when it would garble the line.
fn shown(value: &str) -> String {
    let plain = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| !c.is_control() && c != '`' && !invisible(c));
    if plain {
        format!("`{value}`")
    } else {
        format!("{:?}", truncated(value))
    }
}

fn truncated(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_owned(),
    }
}

fn position(location: serde_saphyr::Location) -> Option<Position> {
    (location.line() > 0).then(|| Position {
        line: location.line(),
        column: location.column(),
    })
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

/// Characters that do not show as themselves: a name holding one looks
/// like another name in a listing or a log (`lagg0` with a zero-width
/// space, a path whose tail a right-to-left override reverses), so names
/// and paths refuse them.
fn invisible(c: char) -> bool {
    matches!(
        c,
        // Zero-width space, non-joiner, joiner; word joiner; BOM.
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
        // Left-to-right, right-to-left and Arabic letter marks.
        | '\u{200E}' | '\u{200F}' | '\u{061C}'
        // Bidi embeddings, overrides and isolates.
        | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
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

const DEFAULT_RESYNC: Duration = MINUTE;
const DEFAULT_HISTORY: u64 = 256;
const MAX_HISTORY: u64 = 100_000;
const DEFAULT_PREEMPT_DELAY: Duration = Duration::from_secs(10);
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
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
];
const FLAP_KEYS: &[&str] = &["max_flaps", "window", "hold"];
const HOOK_KEYS: &[&str] = &["on", "run", "timeout"];

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

    #[test]
    fn the_end_of_a_valid_prefix_is_a_line_and_column() {
        assert_eq!(end_of(b""), Position { line: 1, column: 1 });
        assert_eq!(end_of(b"ab\ncd"), Position { line: 2, column: 3 });
        // Columns count characters, not bytes.
        assert_eq!(
            end_of("a\n\u{e4}\u{e4}".as_bytes()),
            Position { line: 2, column: 3 }
        );
    }

    #[test]
    fn odd_keys_and_values_stay_on_one_line() {
        assert_eq!(child_key("", "groups"), "groups");
        assert_eq!(child_key("groups", "lagg0"), "groups.lagg0");
        assert_eq!(child_key("groups", "a\nb"), "groups.\"a\\nb\"");
        assert_eq!(item_key("hooks", 2), "hooks[2]");
        assert_eq!(shown("em0"), "`em0`");
        assert_eq!(shown("a\u{0}b"), "\"a\\0b\"");
        let long = shown(&"x".repeat(100));
        assert!(long.len() < 80 && long.ends_with("...\""), "{long}");
    }

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
