//! Keys waiting for a deadline, earliest first: the expiry order of the pairing and
//! self-time stores.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use devloom_schemas::TimestampNs;
use serde::{Deserialize, Serialize};

/// `(deadline, seq, key)` in deadline order, ties in arrival (`seq`) order: a heap, not
/// a queue in arrival order. A store that expires from the front of an arrival-order
/// queue keeps a due key behind one that arrived earlier with a later deadline, so what
/// expires at a watermark would depend on which other traces shared the store (one
/// instance reading every partition, or one reading a few). The owner skips items whose
/// key was removed or queued again since (their `seq` is stale).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Deadlines<K: Ord>(BinaryHeap<Reverse<(TimestampNs, u64, K)>>);

/// The same keys and deadlines, whatever the heap's layout.
impl<K: Copy + Ord> PartialEq for Deadlines<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0.clone().into_sorted_vec() == other.0.clone().into_sorted_vec()
    }
}

impl<K: Copy + Ord> Deadlines<K> {
    /// Queues `key` (arrival number `seq`) for `deadline_ns`.
    pub(crate) fn push(&mut self, deadline_ns: TimestampNs, seq: u64, key: K) {
        self.0.push(Reverse((deadline_ns, seq, key)));
    }

    /// The earliest.
    pub(crate) fn front(&self) -> Option<(TimestampNs, u64, K)> {
        self.0.peek().map(|r| r.0)
    }

    /// Removes the earliest.
    pub(crate) fn pop_front(&mut self) -> Option<(TimestampNs, u64, K)> {
        self.0.pop().map(|r| r.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_by_deadline_then_arrival() {
        let mut d = Deadlines::default();
        for (seq, (deadline, key)) in
            [(50, 'a'), (40, 'b'), (60, 'c'), (40, 'd'), (55, 'e')].into_iter().enumerate()
        {
            d.push(deadline, seq as u64, key);
        }
        let order: Vec<char> = std::iter::from_fn(|| d.pop_front()).map(|(_, _, k)| k).collect();
        assert_eq!(order, ['b', 'd', 'a', 'e', 'c']);
    }
}
