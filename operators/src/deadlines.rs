//! Keys waiting for a deadline, earliest first: the expiry order of the pairing and
//! self-time stores.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use devloom_schemas::TimestampNs;

/// A slot holds the deadlines of about 17 ms (`deadline >> SLOT_BITS`).
const SLOT_BITS: u32 = 24;

/// Slots kept in the ring: about 17 s ahead of the earliest, past the default 5 s TTL;
/// later deadlines wait in `far`.
const RING_SLOTS: u64 = 1_024;

/// Emptied slots' buffers kept for the next slots, and the largest kept (a burst's is let
/// go): a ring of full-sized buffers would hold several times the live items.
const SPARE_SLOTS: usize = 64;
const SPARE_CAPACITY: usize = 4_096;

type Item<K> = (TimestampNs, u64, K);

/// `(deadline, seq, key)` in deadline order, ties in arrival (`seq`) order, not in
/// arrival order alone. A store that expires from the front of an arrival-order queue
/// keeps a due key behind one that arrived earlier with a later deadline, so what
/// expires at a watermark would depend on which other traces shared the store (one
/// instance reading every partition, or one reading a few). The owner skips items whose
/// key was removed or queued again since (their `seq` is stale).
///
/// A calendar: a ring of slots from the earliest on, each item appended unsorted to its
/// deadline's slot, and a slot sorted once, when it becomes the earliest. Deadlines are
/// a span's end plus the TTL and batches of spans arrive out of order within their
/// window, so a binary heap of all ~200 k items of a loaded store paid a cache miss per
/// level on every pop (the biggest single cost of a loaded run, BENCHMARKS.md); here a
/// push is an append and a pop takes the last item of a short sorted buffer. A deadline
/// before the earliest slot (a late span) goes to a small heap of stragglers. Not saved
/// in checkpoints: a store's entries hold their live `(deadline, seq)`, and the queue is
/// rebuilt from them ([`Deadlines::rebuilt`]); the stale items it skips are not missed.
#[derive(Clone, Debug)]
pub(crate) struct Deadlines<K> {
    /// Slot `n` for `n` in `base..base + RING_SLOTS` at `ring[n % RING_SLOTS]`; empty
    /// until the first push.
    ring: Vec<Slot<K>>,
    base: u64,
    in_ring: usize,
    /// Slots from `base + RING_SLOTS` on, moved into the ring as it comes near them.
    far: BTreeMap<u64, Vec<Item<K>>>,
    /// Deadlines in slots before `base`.
    stragglers: BinaryHeap<Reverse<Item<K>>>,
    spare: Vec<Vec<Item<K>>>,
}

/// Items whose deadlines share a slot; once sorted, latest first, so the earliest pops
/// off the end.
#[derive(Clone, Debug)]
struct Slot<K> {
    items: Vec<Item<K>>,
    sorted: bool,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            ring: Vec::new(),
            base: 0,
            in_ring: 0,
            far: BTreeMap::new(),
            stragglers: BinaryHeap::new(),
            spare: Vec::new(),
        }
    }
}

impl<K: Copy + Ord> Deadlines<K> {
    /// A queue of `items` (in any order), as pushing them one by one would make it.
    pub(crate) fn rebuilt(items: impl IntoIterator<Item = Item<K>>) -> Self {
        let mut items: Vec<_> = items.into_iter().collect();
        // Earliest first: the ring then starts at the earliest slot, with no stragglers.
        items.sort_unstable();
        let mut deadlines = Self::default();
        for (deadline_ns, seq, key) in items {
            deadlines.push(deadline_ns, seq, key);
        }
        deadlines
    }

    /// Queues `key` (arrival number `seq`) for `deadline_ns`.
    pub(crate) fn push(&mut self, deadline_ns: TimestampNs, seq: u64, key: K) {
        let item = (deadline_ns, seq, key);
        let n = deadline_ns >> SLOT_BITS;
        if self.in_ring == 0 && self.far.is_empty() {
            self.base = n;
        }
        if n < self.base {
            self.stragglers.push(Reverse(item));
        } else if n - self.base >= RING_SLOTS {
            self.far.entry(n).or_default().push(item);
        } else {
            let slot = place(&mut self.ring, n);
            if slot.items.capacity() == 0
                && let Some(buffer) = self.spare.pop()
            {
                slot.items = buffer;
            }
            if slot.sorted {
                let at = slot.items.partition_point(|queued| *queued > item);
                slot.items.insert(at, item);
            } else {
                slot.items.push(item);
            }
            self.in_ring += 1;
        }
    }

    /// The earliest.
    pub(crate) fn front(&mut self) -> Option<Item<K>> {
        let slotted = self.front_slot().and_then(|slot| slot.items.last().copied());
        match (slotted, self.stragglers.peek()) {
            (Some(item), Some(Reverse(late))) => Some(item.min(*late)),
            (item, late) => item.or(late.map(|r| r.0)),
        }
    }

    /// Removes the earliest.
    pub(crate) fn pop_front(&mut self) -> Option<Item<K>> {
        let earliest = self.front()?;
        if self.stragglers.peek().is_some_and(|Reverse(late)| *late == earliest) {
            self.stragglers.pop();
            return Some(earliest);
        }
        let slot = &mut self.ring[(self.base % RING_SLOTS) as usize];
        slot.items.pop();
        self.in_ring -= 1;
        if slot.items.is_empty() {
            slot.sorted = false;
            let emptied = std::mem::take(&mut slot.items);
            if self.spare.len() < SPARE_SLOTS && emptied.capacity() <= SPARE_CAPACITY {
                self.spare.push(emptied);
            }
        }
        Some(earliest)
    }

    /// The earliest non-empty slot of the ring, sorted, after moving `base` up to it and
    /// `far`'s slots that came within reach into the ring.
    fn front_slot(&mut self) -> Option<&Slot<K>> {
        loop {
            if self.in_ring == 0 {
                let (&n, _) = self.far.first_key_value()?;
                self.base = n;
            }
            while let Some(entry) = self.far.first_entry()
                && *entry.key() - self.base < RING_SLOTS
            {
                let (n, items) = entry.remove_entry();
                self.in_ring += items.len();
                place(&mut self.ring, n).items = items;
            }
            let at = (self.base % RING_SLOTS) as usize;
            if !self.ring[at].items.is_empty() {
                let slot = &mut self.ring[at];
                if !slot.sorted {
                    slot.items.sort_unstable_by(|a, b| b.cmp(a));
                    slot.sorted = true;
                }
                return Some(&self.ring[at]);
            }
            self.base += 1;
        }
    }
}

/// Slot `n`'s place in `ring`, which is made on first use.
fn place<K>(ring: &mut Vec<Slot<K>>, n: u64) -> &mut Slot<K> {
    if ring.is_empty() {
        *ring = (0..RING_SLOTS).map(|_| Slot { items: Vec::new(), sorted: false }).collect();
    }
    &mut ring[(n % RING_SLOTS) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT_NS: u64 = 1 << SLOT_BITS;

    #[test]
    fn keys_come_out_by_deadline_then_arrival() {
        let mut d = Deadlines::default();
        // Ties on a deadline, one a slot later, one past the ring.
        let far = 2 * RING_SLOTS * SLOT_NS;
        for (seq, (deadline, key)) in
            [(50, 'a'), (40, 'b'), (SLOT_NS + 60, 'c'), (40, 'd'), (55, 'e'), (far, 'f'), (45, 'g')]
                .into_iter()
                .enumerate()
        {
            d.push(deadline, seq as u64, key);
        }
        assert_eq!(d.front().map(|(_, _, k)| k), Some('b'));
        let order: Vec<char> = std::iter::from_fn(|| d.pop_front()).map(|(_, _, k)| k).collect();
        assert_eq!(order, ['b', 'd', 'g', 'a', 'e', 'c', 'f']);
        assert_eq!(d.front(), None);
    }

    #[test]
    fn a_late_deadline_comes_out_before_the_slots_it_missed() {
        let mut d = Deadlines::default();
        d.push(10 * SLOT_NS, 0, 'a');
        d.push(12 * SLOT_NS, 1, 'b');
        assert_eq!(d.pop_front().map(|(_, _, k)| k), Some('a'));
        // The ring has moved on to 'b'; these are earlier.
        d.push(3 * SLOT_NS, 2, 'c');
        d.push(12 * SLOT_NS - 1, 3, 'd');
        d.push(11 * SLOT_NS, 4, 'e');
        let order: Vec<char> = std::iter::from_fn(|| d.pop_front()).map(|(_, _, k)| k).collect();
        assert_eq!(order, ['c', 'e', 'd', 'b']);
    }

    #[test]
    fn any_mix_of_pushes_and_pops_keeps_the_order_a_sorted_list_keeps() {
        let mut d = Deadlines::default();
        let mut reference: Vec<Item<u32>> = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut now = 0;
        for seq in 0..20_000 {
            let roll = next();
            if roll % 3 == 0 {
                let expected = reference.first().copied();
                assert_eq!(d.front(), expected);
                assert_eq!(d.pop_front(), expected);
                if expected.is_some() {
                    reference.remove(0);
                }
            } else {
                // Mostly near now, some late, a few far ahead.
                now += roll % (SLOT_NS / 4);
                let deadline = match roll % 50 {
                    0 => now + (roll >> 8) % (3 * RING_SLOTS * SLOT_NS),
                    1..=5 => now.saturating_sub((roll >> 8) % (40 * SLOT_NS)),
                    _ => now + (roll >> 8) % (300 * SLOT_NS),
                };
                let item = (deadline, seq, (roll >> 40) as u32);
                d.push(item.0, item.1, item.2);
                let at = reference.partition_point(|queued| *queued < item);
                reference.insert(at, item);
            }
        }
        // Rebuilt from what is left, in reverse: the same order to the end.
        let mut again = Deadlines::rebuilt(reference.iter().rev().copied());
        let rest: Vec<_> = std::iter::from_fn(|| d.pop_front()).collect();
        assert_eq!(rest, reference);
        let rest: Vec<_> = std::iter::from_fn(|| again.pop_front()).collect();
        assert_eq!(rest, reference, "rebuilt");
    }
}
