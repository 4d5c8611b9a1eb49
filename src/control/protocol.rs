//! The control protocol: newline-delimited JSON over a Unix stream socket.
//!
//! One request per line, one reply line per request:
//!
//! ```text
//! > {"cmd":"status"}
//! < {"ok":true,"status":{...}}
//! > {"cmd":"set-active","group":"lagg0","port":"em0"}
//! < {"ok":false,"error":"permission denied"}
//! ```
//!
//! `{"cmd":"events","follow":true}` answers `{"ok":true,"events":[...]}`
//! with the history, then streams each new event as one JSON line; a
//! follower that cannot keep up gets `{"ok":false,"error":"lagged",...}`
//! and is disconnected.
//!
//! A client that sends no complete request within [`REQUEST_DEADLINE`]
//! gets `{"ok":false,"error":"timeout: ..."}` and is disconnected; one over
//! [`MAX_CLIENTS`] or over [`MAX_CLIENTS_PER_UID`] gets `busy: ...`.

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::history::HistoryView;
use crate::status::Status;

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Most clients connected at once; more get a `busy` error.
pub const MAX_CLIENTS: usize = 128;

/// Slots only root may take, so root is served whoever else is connected.
pub const ROOT_RESERVED: usize = 4;

/// Most connections one uid other than root may hold: half the slots, so
/// one user cannot lock the others out.
pub const MAX_CLIENTS_PER_UID: usize = MAX_CLIENTS / 2;

/// How long a client may take to send a complete request (from its
/// connection or its previous reply) before it is told so and closed.
/// Followers are exempt once following: they only read.
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "cmd",
    rename_all = "kebab-case",
    deny_unknown_fields,
    from = "WireRequest"
)]
pub enum Request {
    /// The state of every group, or of one.
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// The event history (the last `n`, all when absent), then, with
    /// `follow`, every new event as it happens.
    Events {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n: Option<usize>,
        #[serde(default)]
        follow: bool,
    },
    /// Prometheus text exposition.
    Metrics,
    /// Re-read the config file (root only).
    Reload,
    /// Operator failover; `port: null` clears it (root only).
    SetActive { group: String, port: Option<String> },
    /// Trust damped ports again (root only).
    ClearDamping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
    },
}

/// [`Request`] as it is read. Serde accepts any field beside the tag of a
/// unit variant, even with `deny_unknown_fields`; empty struct variants
/// refuse them, so `metrics` and `reload` are refused with an unknown
/// field like every other command.
#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
enum WireRequest {
    Status {
        #[serde(default)]
        group: Option<String>,
    },
    Events {
        #[serde(default)]
        n: Option<usize>,
        #[serde(default)]
        follow: bool,
    },
    Metrics {},
    Reload {},
    SetActive {
        group: String,
        port: Option<String>,
    },
    ClearDamping {
        #[serde(default)]
        group: Option<String>,
        #[serde(default)]
        port: Option<String>,
    },
}

impl From<WireRequest> for Request {
    fn from(wire: WireRequest) -> Request {
        match wire {
            WireRequest::Status { group } => Request::Status { group },
            WireRequest::Events { n, follow } => Request::Events { n, follow },
            WireRequest::Metrics {} => Request::Metrics,
            WireRequest::Reload {} => Request::Reload,
            WireRequest::SetActive { group, port } => Request::SetActive { group, port },
            WireRequest::ClearDamping { group, port } => Request::ClearDamping { group, port },
        }
    }
}

impl Request {
    /// Whether the request changes anything, and so needs root.
    pub fn is_privileged(&self) -> bool {
        matches!(
            self,
            Request::Reload | Request::SetActive { .. } | Request::ClearDamping { .. }
        )
    }

    /// Parses one request line; the error is a sentence for the reply.
    pub fn parse(line: &str) -> Result<Request, String> {
        serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))
    }
}

/// A reply line. Exactly one of the payload fields is set on success.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// For a follower that fell behind: how many events it missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// The daemon's answer to `events`, inside the process only: the server
    /// streams it as the `events` field as the client reads, so no client
    /// gets a copy of the history of its own.
    #[serde(skip)]
    pub history: Option<HistoryView>,
}

impl Reply {
    /// A bare success.
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }

    /// A failure with a one-line reason.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(message.into()),
            ..Reply::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_reads_back_as_written() {
        for request in [
            Request::Status { group: None },
            Request::Status {
                group: Some("lagg0".into()),
            },
            Request::Events {
                n: Some(3),
                follow: true,
            },
            Request::Metrics,
            Request::Reload,
            Request::SetActive {
                group: "lagg0".into(),
                port: None,
            },
            Request::ClearDamping {
                group: Some("lagg0".into()),
                port: Some("em0".into()),
            },
        ] {
            let line = serde_json::to_string(&request).expect("serializes");
            assert_eq!(Request::parse(&line), Ok(request), "{line}");
        }
    }

    #[test]
    fn unknown_fields_are_named_for_every_command() {
        for line in [
            r#"{"cmd":"status","x":1}"#,
            r#"{"cmd":"events","x":1}"#,
            r#"{"cmd":"metrics","x":1}"#,
            r#"{"cmd":"reload","x":1}"#,
            r#"{"cmd":"set-active","group":"lagg0","port":null,"x":1}"#,
            r#"{"cmd":"clear-damping","x":1}"#,
        ] {
            let error = Request::parse(line).expect_err(line);
            assert!(error.contains("unknown field `x`"), "{line}: {error}");
        }
    }
}
