//! The event-time merge over partitions: a message is released only when every
//! assigned partition has one waiting or has been read to its end, in the order Kafka
//! timestamp, topic rank, partition, offset. The order, and so the output, depends on
//! the data, not on fetch timing.

use std::collections::{BTreeMap, VecDeque};

use super::decode_pool::Slot;
use super::hand_on::HandOn;

/// Merge order: Kafka timestamp, topic rank, partition, offset.
pub type MergeKey = (i64, usize, i32, i64);

/// A polled message waiting for the merge.
pub struct Pending {
    /// Its place in the merge order.
    pub order: MergeKey,
    /// Its Kafka timestamp (ms) and offset (a pairing engine orders by a coarser time).
    pub at: (i64, i64),
    /// What it holds.
    pub input: Queued,
}

/// What waits in the merge.
pub enum Queued {
    /// An input message: decoded (or its dead letter), now or once its worker is done.
    Message(Slot),
    /// A pairing instance's step over a traces partition (the graph role), waiting in
    /// that partition's place; `at` is its offset on the calls topic.
    HandOn {
        /// The record.
        record: Box<HandOn>,
        /// Its offset on the calls topic.
        at: i64,
    },
}

/// Per-partition queues (keyed `topic/partition`) and the merge over them.
#[derive(Default)]
pub struct Merger {
    queues: BTreeMap<String, VecDeque<Pending>>,
}

impl Merger {
    /// Queues `p` on its partition; returns that queue's length.
    pub fn push(&mut self, key: String, p: Pending) -> usize {
        let q = self.queues.entry(key).or_default();
        q.push_back(p);
        q.len()
    }

    /// The next message in event-time order, once every partition (`caught_up` says
    /// which have been read to their end) has one waiting or is at its end.
    pub fn pop(&mut self, caught_up: &BTreeMap<String, bool>) -> Option<(String, Pending)> {
        let mut best: Option<(&String, MergeKey)> = None;
        for (key, at_end) in caught_up {
            match self.queues.get(key).and_then(VecDeque::front) {
                Some(p) => {
                    if best.is_none_or(|(_, o)| p.order < o) {
                        best = Some((key, p.order));
                    }
                }
                None if *at_end => {}
                None => return None,
            }
        }
        let key = best?.0.clone();
        let p = self.queues.get_mut(&key)?.pop_front()?;
        Some((key, p))
    }

    /// Kafka timestamp and offset of the first message waiting on a partition.
    pub fn front(&self, key: &str) -> Option<(i64, i64)> {
        self.queues.get(key).and_then(VecDeque::front).map(|p| p.at)
    }

    /// Messages waiting on a partition.
    pub fn len(&self, key: &str) -> usize {
        self.queues.get(key).map_or(0, VecDeque::len)
    }
}
