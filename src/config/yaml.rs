//! The YAML layer: text to a tree of [`Node`]s that remember where they are
//! in the file. The schema is applied afterwards by the checker, which can
//! then name every key, give every position and report every problem rather
//! than only the first.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Error, MessageFormatter, Spanned, UserMessageFormatter};

use super::position::{child_key, item_key, position};
use super::Problem;

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
