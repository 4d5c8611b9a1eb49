//! Publishing: every event is stamped once and handed to the log, the
//! hooks, the history, live followers and the metrics.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::event::{Event, Kind, Timestamp, What};
use crate::history::History;
use crate::metrics::EventCounters;
use crate::status::FailoverStatus;

use super::Daemon;

/// How many events a live follower may fall behind before it is dropped.
const FOLLOW_QUEUE: usize = 1024;

impl Daemon {
    /// Stamps an event and hands it to every sink.
    pub(super) fn publish(&mut self, what: What) {
        let event = Arc::new(Event {
            seq: self.bus.next_seq(),
            time: Timestamp::now(),
            severity: self.config.log.severity(what.kind),
            what,
        });
        self.logger.event(&event);
        self.hooks.dispatch(event.clone());
        self.bus.record(event);
    }
}

/// Where published events go besides the log and hooks: the bounded
/// history, live followers, metrics counters and each group's last failover.
pub(super) struct EventBus {
    seq: u64,
    pub(super) history: History,
    pub(super) sender: broadcast::Sender<Arc<Event>>,
    pub(super) counters: EventCounters,
    pub(super) last_failover: HashMap<String, FailoverStatus>,
}

impl EventBus {
    pub(super) fn new(capacity: usize) -> EventBus {
        EventBus {
            seq: 0,
            history: History::new(capacity),
            sender: broadcast::channel(FOLLOW_QUEUE).0,
            counters: EventCounters::default(),
            last_failover: HashMap::new(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn record(&mut self, event: Arc<Event>) {
        self.counters.count(&event);
        if event.what.kind == Kind::Failover {
            if let Some(group) = &event.what.group {
                self.last_failover.insert(
                    group.clone(),
                    FailoverStatus {
                        at: event.time,
                        from: event.what.from.clone(),
                        to: event.what.to.clone(),
                        cause: event.what.cause,
                        outage_ms: event.what.outage_ms,
                    },
                );
            }
        }
        // No followers is not an error.
        let _ = self.sender.send(event.clone());
        self.history.push(event);
    }

    pub(super) fn resize(&mut self, capacity: usize) {
        self.history.resize(capacity);
    }
}
