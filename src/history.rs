//! The bounded event history, and the views of it that `events` replies
//! are streamed from.
//!
//! A reply to `events` must not copy the history per client: with a large
//! `history`, a crowd of clients that never read would each pin a copy.
//! The ring is therefore kept as sealed chunks of [`CHUNK`] events, each an
//! immutable `Arc<[Arc<Event>]>` shared by the ring and every view, plus a
//! short open tail. A view is one shared [`Snapshot`] (a pointer per chunk
//! and a copy of the tail, at most [`CHUNK`] pointers) and a cursor range:
//! each client holds a constant amount of its own, and one snapshot serves
//! every client until the ring changes (it is cached until then).
//!
//! A view keeps its chunks alive after the ring has evicted them; a client
//! that stops reading is disconnected after the server's write timeout,
//! which bounds how long that lasts.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use crate::event::Event;

/// Events per sealed chunk: small enough that the open tail copied into a
/// snapshot is cheap, large enough that a snapshot of a 100 000-event
/// history is a few hundred pointers.
pub const CHUNK: usize = 256;

/// The last `capacity` events, oldest first.
#[derive(Debug, Default)]
pub struct History {
    capacity: usize,
    /// Full chunks, oldest first; each is exactly [`CHUNK`] long.
    sealed: VecDeque<Arc<[Arc<Event>]>>,
    /// Events of `sealed[0]` already evicted. The chunk is dropped whole
    /// once all of them are, so up to `CHUNK - 1` evicted events linger.
    skip: usize,
    /// Events not yet sealed into a chunk.
    tail: Vec<Arc<Event>>,
    len: usize,
    /// The snapshot of the current contents, shared by every view taken
    /// until the next change.
    cached: Option<Arc<Snapshot>>,
}

impl History {
    /// An empty history keeping at most `capacity` events.
    pub fn new(capacity: usize) -> History {
        History {
            capacity,
            ..History::default()
        }
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `event`, evicting the oldest beyond the capacity.
    pub fn push(&mut self, event: Arc<Event>) {
        self.cached = None;
        self.tail.push(event);
        self.len += 1;
        if self.tail.len() == CHUNK {
            self.sealed
                .push_back(Arc::from(std::mem::take(&mut self.tail)));
        }
        self.trim();
    }

    /// Changes the capacity, evicting the oldest events beyond it.
    pub fn resize(&mut self, capacity: usize) {
        self.cached = None;
        self.capacity = capacity;
        self.trim();
    }

    fn trim(&mut self) {
        while self.len > self.capacity {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if self.sealed.is_empty() {
            self.tail.remove(0);
        } else {
            self.skip += 1;
            if self.skip == CHUNK {
                self.sealed.pop_front();
                self.skip = 0;
            }
        }
        self.len -= 1;
    }

    /// A view of the last `n` events (all when `None`), oldest first.
    pub fn view(&mut self, n: Option<usize>) -> HistoryView {
        let snapshot = Arc::clone(self.cached.get_or_insert_with(|| {
            let mut chunks: Vec<Arc<[Arc<Event>]>> = self.sealed.iter().cloned().collect();
            if !self.tail.is_empty() {
                chunks.push(Arc::from(self.tail.as_slice()));
            }
            Arc::new(Snapshot {
                chunks,
                skip: self.skip,
            })
        }));
        let n = n.unwrap_or(self.len).min(self.len);
        HistoryView {
            snapshot,
            next: self.len - n,
            end: self.len,
        }
    }
}

/// The history as it was when a view was taken; immutable, shared.
#[derive(Debug)]
pub struct Snapshot {
    chunks: Vec<Arc<[Arc<Event>]>>,
    skip: usize,
}

impl Snapshot {
    fn get(&self, index: usize) -> Option<&Arc<Event>> {
        let at = index + self.skip;
        self.chunks.get(at / CHUNK)?.get(at % CHUNK)
    }
}

/// A cursor over a range of a [`Snapshot`]: what a client task walks to
/// write an `events` reply as its socket drains.
#[derive(Clone)]
pub struct HistoryView {
    snapshot: Arc<Snapshot>,
    next: usize,
    end: usize,
}

impl HistoryView {
    /// Events left to walk.
    pub fn remaining(&self) -> usize {
        self.end - self.next
    }

    /// The newest event of the view, whatever has been walked.
    pub fn newest(&self) -> Option<&Arc<Event>> {
        self.end.checked_sub(1).and_then(|i| self.snapshot.get(i))
    }
}

impl Iterator for HistoryView {
    type Item = Arc<Event>;

    fn next(&mut self) -> Option<Arc<Event>> {
        if self.next == self.end {
            return None;
        }
        let event = self.snapshot.get(self.next).cloned();
        self.next += 1;
        event
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl fmt::Debug for HistoryView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HistoryView({}..{})", self.next, self.end)
    }
}

/// Views are equal when they walk the same events of the same snapshot.
impl PartialEq for HistoryView {
    fn eq(&self, other: &HistoryView) -> bool {
        Arc::ptr_eq(&self.snapshot, &other.snapshot)
            && (self.next, self.end) == (other.next, other.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Kind, Severity, Timestamp, What};

    fn event(seq: u64) -> Arc<Event> {
        Arc::new(Event {
            seq,
            time: Timestamp::now(),
            severity: Severity::Info,
            what: What::global(Kind::ConfigReloaded),
        })
    }

    fn seqs(view: HistoryView) -> Vec<u64> {
        view.map(|e| e.seq).collect()
    }

    #[test]
    fn keeps_the_last_capacity_events_across_chunks() {
        for capacity in [0, 1, 5, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let mut history = History::new(capacity);
            for total in 1..=(4 * CHUNK as u64 + 3) {
                history.push(event(total));
                let kept = (total as usize).min(capacity) as u64;
                let expected: Vec<u64> = (total - kept + 1..=total).collect();
                assert_eq!(seqs(history.view(None)), expected, "{capacity}/{total}");
            }
        }
    }

    #[test]
    fn a_view_of_n_is_the_newest_n_and_outlives_changes() {
        let mut history = History::new(1000);
        for seq in 1..=600 {
            history.push(event(seq));
        }
        let view = history.view(Some(3));
        assert_eq!(view.newest().map(|e| e.seq), Some(600));
        for seq in 601..=2000 {
            history.push(event(seq));
        }
        assert_eq!(seqs(view), vec![598, 599, 600]);
        assert_eq!(history.view(Some(5000)).remaining(), 1000);
    }

    #[test]
    fn views_share_one_snapshot_until_the_ring_changes() {
        let mut history = History::new(10);
        history.push(event(1));
        let (a, b) = (history.view(None), history.view(None));
        assert_eq!(a, b);
        history.push(event(2));
        assert_ne!(history.view(None).snapshot.as_ref() as *const _, {
            a.snapshot.as_ref() as *const _
        });
    }

    #[test]
    fn shrinking_evicts_the_oldest() {
        let mut history = History::new(1000);
        for seq in 1..=700 {
            history.push(event(seq));
        }
        history.resize(4);
        assert_eq!(seqs(history.view(None)), vec![697, 698, 699, 700]);
        history.push(event(701));
        assert_eq!(seqs(history.view(None)), vec![698, 699, 700, 701]);
    }
}
