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

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::status::Status;

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Most clients connected at once; more get a `busy` error.
pub const MAX_CLIENTS: usize = 128;

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
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
