//! A store of entries that each wait for a deadline: what the pairing and self-time
//! stores share. The table, the queue in deadline order, and the arrival numbers
//! (`seq`) that order ties and tell an entry's live queue item from the stale ones a
//! moved deadline or a removal leaves behind.
//!
//! What an entry holds, and what closing one gives, is its operator's business; the
//! store keeps the invariant both rely on: a live entry's `(deadline, seq)` is exactly
//! that of one item in the queue, so an item whose `seq` differs from its entry's (or
//! whose entry is gone) is skipped, and an item's deadline is its entry's.

use std::hash::Hash;

use devloom_schemas::TimestampNs;

use crate::deadlines::Deadlines;
use crate::sharded_map::{Entries, ShardedMap};

/// An entry's place in its store's deadline order, kept in the entry itself (so a
/// checkpoint holds it and the queue is rebuilt from the entries on restore).
pub(crate) trait Waiting {
    /// Its deadline and arrival number: its live item in the queue.
    fn due(&self) -> (TimestampNs, u64);
    /// Moves it to `deadline_ns`, as arrival `seq`.
    fn set_due(&mut self, deadline_ns: TimestampNs, seq: u64);
}

/// Entries under keys `K`, each waiting for its deadline.
#[derive(Debug)]
pub(crate) struct DeadlineStore<K, V> {
    entries: ShardedMap<K, V>,
    queue: Deadlines<K>,
    next_seq: u64,
}

impl<K, V> Default for DeadlineStore<K, V> {
    fn default() -> Self {
        Self { entries: ShardedMap::default(), queue: Deadlines::default(), next_seq: 0 }
    }
}

impl<K: Copy + Ord + Hash, V: Waiting> DeadlineStore<K, V> {
    /// A store of checkpointed `entries`, the next arrival numbered `next_seq`.
    pub(crate) fn restored(entries: Entries<K, V>, next_seq: u64) -> Self {
        let queue = Deadlines::rebuilt(entries.iter().map(|(key, entry)| {
            let (deadline_ns, seq) = entry.due();
            (deadline_ns, seq, *key)
        }));
        Self { entries: entries.into(), queue, next_seq }
    }

    /// A copy of the entries, and the next arrival number: what a checkpoint holds.
    pub(crate) fn snapshot(&self) -> (Entries<K, V>, u64)
    where
        V: Clone,
    {
        (self.entries.entries(), self.next_seq)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Takes an entry out before its deadline (its queue item goes stale).
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key)
    }

    /// Whether `key` would be a new entry in a store holding `max` already.
    pub(crate) fn full_without(&self, key: &K, max: usize) -> bool {
        self.entries.len() >= max.max(1) && !self.entries.contains_key(key)
    }

    /// The entry of `key`; when missing, `make(deadline_ns, seq)` queued for
    /// `deadline_ns` as arrival `seq`.
    pub(crate) fn get_or_insert_with(
        &mut self,
        key: K,
        deadline_ns: TimestampNs,
        make: impl FnOnce(TimestampNs, u64) -> V,
    ) -> &mut V {
        self.place(key, deadline_ns, make, false)
    }

    /// The entry of `key` as [`Self::get_or_insert_with`] gives it, due no earlier than
    /// `deadline_ns`: an entry already there moves to it (as a new arrival) when it is
    /// later.
    pub(crate) fn due_by(
        &mut self,
        key: K,
        deadline_ns: TimestampNs,
        make: impl FnOnce(TimestampNs, u64) -> V,
    ) -> &mut V {
        self.place(key, deadline_ns, make, true)
    }

    fn place(
        &mut self,
        key: K,
        deadline_ns: TimestampNs,
        make: impl FnOnce(TimestampNs, u64) -> V,
        later: bool,
    ) -> &mut V {
        let seq = self.next_seq;
        let mut made = false;
        let entry = self.entries.get_or_insert_with(key, || {
            made = true;
            make(deadline_ns, seq)
        });
        let moved = !made && later && deadline_ns > entry.due().0;
        if moved {
            entry.set_due(deadline_ns, seq);
        }
        if made || moved {
            self.queue.push(deadline_ns, seq, key);
            self.next_seq += 1;
        }
        entry
    }

    /// The earliest deadline in the queue: the entry due first's, or a stale item's
    /// before it (which [`Self::next_due`] then skips). Not looked up: a full store
    /// asks for every new entry.
    pub(crate) fn earliest_queued(&mut self) -> Option<TimestampNs> {
        self.queue.front().map(|(deadline_ns, _, _)| deadline_ns)
    }

    /// The next entry due by `event_time` and its key, taken out of the queue but left
    /// in the table (entries closing together may read each other).
    pub(crate) fn next_due(&mut self, event_time: TimestampNs) -> Option<(K, &V)> {
        while let Some((deadline_ns, seq, key)) = self.queue.front() {
            if deadline_ns > event_time {
                return None;
            }
            self.queue.pop_front();
            if let Some(entry) = self.entries.get(&key).filter(|e| e.due().1 == seq) {
                return Some((key, entry));
            }
        }
        None
    }

    /// The next entry due by `event_time`, taken out of the store.
    pub(crate) fn pop_due(&mut self, event_time: TimestampNs) -> Option<(K, V)> {
        let (key, _) = self.next_due(event_time)?;
        self.entries.remove(&key).map(|entry| (key, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Item {
        name: &'static str,
        due: (TimestampNs, u64),
    }

    impl Waiting for Item {
        fn due(&self) -> (TimestampNs, u64) {
            self.due
        }

        fn set_due(&mut self, deadline_ns: TimestampNs, seq: u64) {
            self.due = (deadline_ns, seq);
        }
    }

    fn named(name: &'static str) -> impl FnOnce(TimestampNs, u64) -> Item {
        move |deadline_ns, seq| Item { name, due: (deadline_ns, seq) }
    }

    fn drain(store: &mut DeadlineStore<u32, Item>, event_time: TimestampNs) -> Vec<&'static str> {
        std::iter::from_fn(|| store.pop_due(event_time)).map(|(_, item)| item.name).collect()
    }

    #[test]
    fn entries_close_by_deadline_then_arrival_and_removed_ones_are_skipped() {
        let mut store = DeadlineStore::default();
        store.get_or_insert_with(1, 30, named("a"));
        store.get_or_insert_with(2, 10, named("b"));
        store.get_or_insert_with(3, 30, named("c"));
        store.get_or_insert_with(4, 20, named("d"));
        assert_eq!(store.get_or_insert_with(2, 5, named("x")).name, "b", "found, not made or moved");
        assert_eq!(store.remove(&4).map(|i| i.name), Some("d"));
        assert_eq!(store.earliest_queued(), Some(10));
        assert_eq!(drain(&mut store, 29), ["b"], "d was taken out; a and c are due at 30");
        assert_eq!(store.earliest_queued(), Some(30), "d's stale item went with b");
        assert_eq!(drain(&mut store, 30), ["a", "c"], "a tie goes to the earlier arrival");
        assert_eq!((store.len(), store.earliest_queued()), (0, None));
    }

    #[test]
    fn a_later_deadline_moves_an_entry_behind_the_ones_it_now_follows() {
        let mut store = DeadlineStore::default();
        store.due_by(1, 10, named("a"));
        store.due_by(2, 20, named("b"));
        assert_eq!(store.due_by(1, 5, named("x")).due, (10, 0), "an earlier deadline moves nothing");
        assert_eq!(store.due_by(1, 20, named("x")).due, (20, 2), "moved, as the newest arrival");
        let mut next = |event_time| store.next_due(event_time).map(|(key, item)| (key, item.name));
        assert_eq!(next(10), None, "its old place is stale");
        assert_eq!(next(20), Some((2, "b")), "b arrived at 20 first");
        assert_eq!(next(20), Some((1, "a")));
        assert_eq!(next(20), None);
        assert_eq!(store.len(), 2, "what is due is left in the table");
    }

    #[test]
    fn a_restored_store_closes_what_the_original_would_in_the_same_order() {
        let mut store = DeadlineStore::default();
        for (key, deadline) in [(1, 50), (2, 40), (3, 50), (4, 60), (5, 40)] {
            store.due_by(key, deadline, named("n"));
        }
        store.due_by(2, 55, named("n"));
        store.remove(&3);
        let (entries, next_seq) = store.snapshot();
        let mut restored = DeadlineStore::restored(entries, next_seq);
        let order = |s: &mut DeadlineStore<u32, Item>| -> Vec<u32> {
            std::iter::from_fn(|| s.pop_due(TimestampNs::MAX)).map(|(key, _)| key).collect()
        };
        assert_eq!(order(&mut restored), order(&mut store));
        assert_eq!(order(&mut store), Vec::<u32>::new());
        assert_eq!(restored.get_or_insert_with(9, 1, named("n")).due, (1, 6), "numbering goes on");
    }

    #[test]
    fn a_store_is_full_only_for_keys_it_does_not_hold() {
        let mut store = DeadlineStore::default();
        store.get_or_insert_with(1, 10, named("a"));
        store.get_or_insert_with(2, 10, named("b"));
        assert!(store.full_without(&3, 2));
        assert!(!store.full_without(&1, 2), "an entry already there takes no room");
        assert!(!store.full_without(&3, 3));
        assert!(store.full_without(&3, 0), "a store holds one entry at least");
        assert!(!DeadlineStore::<u32, Item>::default().full_without(&1, 0));
    }
}
