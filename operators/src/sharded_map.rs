//! A hash map that grows a slice at a time: the table of the pairing and self-time
//! stores.
//!
//! A hash table grows by doubling, in one go. A store filling from a cold start at
//! 200 k spans/s doubles its way up to a million entries, and its last doublings moved
//! hundreds of MB on the operator loop while alerts waited (BENCHMARKS.md). Split over
//! [`SHARDS`] tables that each double on their own, a doubling moves one table's share.
//! Tables of equal shares would reach their thresholds together (each holds about the
//! same count: eight of 64 doubled within the same thousand inserts in the test below)
//! and so the shares are unequal: table `i` takes a share proportional to 2^(i/64).
//! While the store doubles, each table doubles once, one after the other.

use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};

use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Tables a map is split over.
const SHARDS: usize = 64;

/// Bits of a key's mixed hash that pick its table.
const PICK_BITS: u32 = 12;

/// 2^(1/64): table `i` takes the hashes whose top bits, read as `u` in [0, 1), have
/// 1 + `u` from 2^(i/64) up to 2^((i+1)/64).
const SHARE_STEP: f64 = 1.010_889_286_051_700_5;

/// The table of each value of a hash's top [`PICK_BITS`].
static PICK: [u8; 1 << PICK_BITS] = picks();

const fn picks() -> [u8; 1 << PICK_BITS] {
    let mut table = [0; 1 << PICK_BITS];
    let (mut j, mut shard, mut bound) = (0, 0, SHARE_STEP);
    while j < table.len() {
        let at = 1.0 + (j as f64 + 0.5) / table.len() as f64;
        while at >= bound && shard < SHARDS - 1 {
            shard += 1;
            bound *= SHARE_STEP;
        }
        table[j] = shard as u8;
        j += 1;
    }
    table
}

/// A map from `K` to `V` over [`SHARDS`] tables of unequal shares.
#[derive(Debug)]
pub(crate) struct ShardedMap<K, V> {
    shards: Vec<FxHashMap<K, V>>,
    /// The tables' lengths summed, kept: a store reads it for every new entry.
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| FxHashMap::default()).collect(), len: 0 }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// The table of `key`: its hash mixed (the tables hash it again and read its top
    /// bits, which must not all agree within one table), its top bits looked up.
    fn shard(&self, key: &K) -> usize {
        let mixed = FxBuildHasher.hash_one(key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        usize::from(PICK[(mixed >> (64 - PICK_BITS)) as usize])
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.shards[self.shard(key)].contains_key(key)
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    /// The value of `key`, `make()` put there first when missing: one lookup where
    /// `contains_key`, `insert` and `get_mut` take three (a store does this for every
    /// span, twice).
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let shard = self.shard(&key);
        match self.shards[shard].entry(key) {
            Entry::Occupied(found) => found.into_mut(),
            Entry::Vacant(slot) => {
                self.len += 1;
                slot.insert(make())
            }
        }
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        let old = self.shards[shard].insert(key, value);
        self.len += usize::from(old.is_none());
        old
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let shard = self.shard(key);
        let old = self.shards[shard].remove(key);
        self.len -= usize::from(old.is_some());
        old
    }

    /// A copy of every entry, for a checkpoint.
    pub(crate) fn entries(&self) -> Entries<K, V>
    where
        K: Clone,
        V: Clone,
    {
        let mut entries = Vec::with_capacity(self.len);
        for shard in &self.shards {
            entries.extend(shard.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Entries(entries)
    }
}

impl<K: Hash + Eq, V> From<Entries<K, V>> for ShardedMap<K, V> {
    fn from(entries: Entries<K, V>) -> Self {
        entries.0.into_iter().collect()
    }
}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Self::default();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

/// A map's entries copied for a checkpoint. The operator loop takes the copy and waits
/// for it (at a real 100 k spans/s the stores hold some 700 k spans), so the copy is
/// left in the tables' order; the writer thread puts it in key order as it serializes,
/// so the same state always writes the same checkpoint. Two copies are equal when they
/// hold the same entries.
#[derive(Clone, Debug)]
pub(crate) struct Entries<K, V>(Vec<(K, V)>);

impl<K, V> Entries<K, V> {
    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.0.iter()
    }
}

impl<K: Ord, V> Entries<K, V> {
    fn in_key_order(&self) -> Vec<&(K, V)> {
        let mut sorted: Vec<&(K, V)> = self.0.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        sorted
    }
}

impl<K: Ord, V: PartialEq> PartialEq for Entries<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.in_key_order() == other.in_key_order()
    }
}

/// A sequence of `[key, value]` pairs in key order (the format of a sorted `Vec`).
impl<K: Ord + Serialize, V: Serialize> Serialize for Entries<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.in_key_order())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_grow_by_two_to_the_sixty_fourth_from_table_to_table() {
        let counts = PICK.iter().fold([0usize; SHARDS], |mut counts, &s| {
            counts[usize::from(s)] += 1;
            counts
        });
        assert!(counts.iter().all(|&c| c > 0), "every table has a share: {counts:?}");
        let (first, last) = (counts[..8].iter().sum::<usize>(), counts[56..].iter().sum::<usize>());
        let ratio = last as f64 / first as f64;
        assert!((1.7..2.0).contains(&ratio), "last eighth / first eighth {ratio} (2^(56/64) = 1.83)");
    }

    #[test]
    fn a_map_filling_up_moves_a_slice_at_a_time() {
        // Trace and span ids as a tracer makes them (random), from a fixed seed.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut map = ShardedMap::default();
        // For each insert that grew a table: when, and how many entries it moved.
        let mut doublings = Vec::new();
        for i in 0..1_000_000usize {
            let key = ((u128::from(next()) << 64) | u128::from(next()), next());
            let shard = map.shard(&key);
            let (capacity, moved) = (map.shards[shard].capacity(), map.shards[shard].len());
            map.insert(key, i);
            if map.shards[shard].capacity() != capacity && moved > 0 {
                doublings.push((i, moved));
            }
        }
        assert_eq!(map.len(), 1_000_000);
        // One table would move 917 k entries at once; equal shares moved 115 k in 1,000
        // inserts (eight tables' doublings).
        let largest = doublings.iter().map(|&(_, moved)| moved).max().unwrap();
        assert!(largest < 1_000_000 / 40, "one doubling moved {largest} entries");
        let window = doublings
            .iter()
            .filter(|&&(i, _)| i >= 500_000)
            .map(|&(i, _)| {
                doublings
                    .iter()
                    .filter(|&&(j, _)| (i..i + 1_000).contains(&j))
                    .map(|&(_, m)| m)
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0);
        assert!(window < 1_000_000 / 25, "doublings within 1,000 inserts moved {window} entries");
        for (i, (key, value)) in map.shards.iter().flat_map(|s| s.iter()).enumerate().take(100) {
            assert_eq!(map.get(key), Some(value), "entry {i} found where it was put");
        }
    }

    #[test]
    fn insert_get_remove_keep_the_count() {
        let mut map: ShardedMap<(u128, u64), &str> = [((1, 2), "a"), ((3, 4), "b")].into_iter().collect();
        assert_eq!((map.len(), map.get(&(1, 2)), map.contains_key(&(3, 4))), (2, Some(&"a"), true));
        assert_eq!(*map.get_or_insert_with((1, 2), || "x"), "a", "found, not made");
        assert_eq!(map.len(), 2);
        assert_eq!(*map.get_or_insert_with((5, 6), || "e"), "e");
        assert_eq!((map.len(), map.get(&(5, 6))), (3, Some(&"e")), "made and counted");
        assert_eq!(map.remove(&(5, 6)), Some("e"));
        assert_eq!(map.insert((1, 2), "c"), Some("a"));
        assert_eq!(map.len(), 2, "replacing is no new entry");
        *map.get_or_insert_with((3, 4), || "x") = "d";
        assert_eq!(map.remove(&(3, 4)), Some("d"));
        assert_eq!((map.remove(&(3, 4)), map.len()), (None, 1));
        assert_eq!(map.entries().0, vec![((1, 2), "c")]);
    }

    #[test]
    fn entries_are_written_in_key_order_and_equal_whatever_their_order() {
        let keys = [(9u128, 1u64), (1, 7), (5, 2), (1, 3), (7, 7)];
        let map: ShardedMap<_, _> = keys.iter().map(|&k| (k, k.1 * 10)).collect();
        let entries = map.entries();
        let mut reversed = entries.clone();
        reversed.0.reverse();
        assert_eq!(entries, reversed, "the same entries in another order");
        let json = serde_json::to_string(&reversed).unwrap();
        assert_eq!(json, "[[[1,3],30],[[1,7],70],[[5,2],20],[[7,7],70],[[9,1],10]]");
        let read: Entries<(u128, u64), u64> = serde_json::from_str(&json).unwrap();
        assert_eq!(ShardedMap::from(read).entries(), entries, "restored");
        let mut other = entries.clone();
        other.0[0].1 += 1;
        assert_ne!(entries, other, "a value differs");
        other.0.pop();
        assert_ne!(entries, other, "an entry less");
    }
}
