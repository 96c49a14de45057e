//! What a pairing engine tells the others, one record per traces partition and step on
//! the `devloom.calls` topic: the call aggregates it handed on while reading its
//! partition up to an offset, the spans it read that link into traces of other
//! partitions, and how far its stream has come (watermark, newest span).
//!
//! Readers merge these per partition ("lanes") in the order one instance reading every
//! partition would have read the messages behind them: the graph stage with the alerts
//! and deploys, each pairing engine with its own partition (taking the linked spans
//! meant for it, at exactly the place the single instance would have paired them). A
//! lane's records are applied once each, by offset: an engine that restarts from a
//! checkpoint publishes again what it had published, and readers drop it. A lane waiting
//! for the others says where it stands (a frontier: nothing it publishes later sits
//! before its next message), so no two lanes wait for each other, and says it again
//! while it waits, for readers that restored a checkpoint taken after it.

use devloom_operators::{CallAggregate, Losses};
use devloom_schemas::{Span, TimestampNs, TraceId};
use serde::{Deserialize, Serialize};

/// One step of one traces partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HandOn {
    /// The traces partition.
    pub partition: i32,
    /// The last traces message this covers.
    pub offset: i64,
    /// Its Kafka timestamp (ms): where this step sits in the event-time merge.
    pub timestamp_ms: i64,
    /// The pairing engine's watermark after it.
    pub watermark_ns: TimestampNs,
    /// The newest span time the engine has read.
    pub newest_ns: TimestampNs,
    /// The partition has been read to its end: it holds nobody back until it has more.
    #[serde(default)]
    pub idle: bool,
    /// A progress-only record: nothing this lane publishes later sits before its next
    /// message, at this (Kafka timestamp, offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontier: Option<(i64, i64)>,
    /// What pairing handed on at this step.
    #[serde(default)]
    pub aggregates: Vec<CallAggregate>,
    /// Spans read at this step that link into a trace of another partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Linked>,
    /// What the partition's pairing has lost so far (late, evicted, expired spans…),
    /// cumulative: the graph stage's maps note it, with counts within a few percent of
    /// one instance's (each partition expires spans at its own watermark).
    #[serde(default)]
    pub losses: Losses,
}

/// A span linking into a trace another traces partition holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linked {
    /// The partition holding `trace_id` (by the key's murmur2, as it was produced).
    pub partition: i32,
    /// The trace linked into.
    pub trace_id: TraceId,
    /// The span.
    pub span: Span,
}

impl HandOn {
    /// Where the record sits in the merge: (Kafka timestamp, offset) of the last message
    /// it covers, or of the next one for a frontier.
    pub fn position(&self) -> (i64, i64) {
        self.frontier.unwrap_or((self.timestamp_ms, self.offset))
    }
}

/// A lane as the graph stage tracks it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lane {
    /// The last traces offset applied (records at or before it are repeats).
    pub applied: Option<i64>,
    /// The last traces offset queued for the merge.
    pub seen: Option<i64>,
    /// Watermark and newest span time after the last applied record.
    pub watermark_ns: TimestampNs,
    /// Newest span time after the last applied record.
    pub newest_ns: TimestampNs,
    /// The last record said the partition is read to its end.
    pub idle: bool,
    /// Merge position of the last record queued.
    pub queued_at: Option<(i64, i64)>,
}

impl Lane {
    /// A lane resuming after `applied`.
    pub fn resumed(applied: Option<i64>) -> Self {
        Self { applied, seen: applied, ..Self::default() }
    }

    /// Takes in a record as it is polled: `true` when it is new and goes to the merge;
    /// an idle record (or a repeat) only updates what the lane says.
    pub fn poll(&mut self, h: &HandOn) -> bool {
        if let Some(at) = h.frontier {
            let new = self.queued_at.is_none_or(|q| at > q) && self.seen.is_none_or(|s| at.1 > s);
            if new {
                self.queued_at = Some(at);
                self.idle = false;
            }
            return new;
        }
        if self.seen.is_some_and(|s| h.offset < s) {
            return false;
        }
        if h.idle || self.seen == Some(h.offset) {
            // An empty partition says it is at its end before saying anything else.
            self.idle = h.idle && self.seen.unwrap_or(h.offset) == h.offset;
            return false;
        }
        self.seen = Some(h.offset);
        self.queued_at = Some(h.position());
        self.idle = false;
        true
    }

    /// The record is applied.
    pub fn apply(&mut self, h: &HandOn) {
        self.applied = Some(h.offset);
        self.watermark_ns = h.watermark_ns;
        self.newest_ns = h.newest_ns;
    }
}

/// The graph stage's watermark and newest span time over the lanes: the slowest lane
/// that is not at its end sets the watermark (all at their end: the furthest); lanes that
/// have said nothing yet hold it at 0.
pub fn merged_progress<'a>(lanes: impl Iterator<Item = &'a Lane>) -> (TimestampNs, TimestampNs) {
    let (mut busy, mut ended, mut newest, mut unknown) = (None::<TimestampNs>, 0, 0, false);
    for lane in lanes {
        newest = newest.max(lane.newest_ns);
        match (lane.applied, lane.idle) {
            (None, false) => unknown = true,
            (_, true) => ended = ended.max(lane.watermark_ns),
            (Some(_), false) => busy = Some(busy.map_or(lane.watermark_ns, |b| b.min(lane.watermark_ns))),
        }
    }
    if unknown {
        return (0, newest);
    }
    (busy.unwrap_or(ended), newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, idle: bool) -> HandOn {
        HandOn {
            partition: 0,
            offset,
            timestamp_ms: offset,
            watermark_ns: offset.max(0) as u64 * 10,
            newest_ns: offset.max(0) as u64 * 10 + 5,
            idle,
            frontier: None,
            aggregates: Vec::new(),
            links: Vec::new(),
            losses: Losses::default(),
        }
    }

    #[test]
    fn a_lane_takes_each_offset_once_and_an_idle_record_only_marks_its_end() {
        let mut lane = Lane::resumed(Some(4));
        assert!(!lane.poll(&record(3, false)), "before the checkpoint: a repeat");
        assert!(!lane.poll(&record(4, false)), "the applied offset: a repeat");
        assert!(lane.poll(&record(7, false)));
        assert!(!lane.poll(&record(7, false)), "published twice");
        assert!(!lane.idle);
        assert!(!lane.poll(&record(7, true)));
        assert!(lane.idle, "read to its end at 7");
        assert!(!lane.poll(&record(5, true)), "a stale idle record");
        assert!(lane.idle);
        assert!(lane.poll(&record(9, false)));
        assert!(!lane.idle, "more came");
        let frontier = HandOn { frontier: Some((12, 12)), ..record(9, false) };
        assert!(lane.poll(&frontier), "a frontier past the last record");
        assert!(!lane.poll(&frontier), "the same frontier again");
        assert!(lane.poll(&record(12, false)), "the message at the frontier");
        let mut empty = Lane::resumed(None);
        assert!(!empty.poll(&record(-1, true)));
        assert!(empty.idle, "an empty partition is at its end");
    }

    #[test]
    fn the_slowest_busy_lane_sets_the_watermark() {
        let mut a = Lane::resumed(None);
        let b = Lane::resumed(None);
        assert_eq!(merged_progress([&a, &b].into_iter()), (0, 0), "b has said nothing");
        a.apply(&record(3, false));
        let mut b = b;
        b.apply(&record(8, false));
        assert_eq!(merged_progress([&a, &b].into_iter()), (30, 85));
        a.idle = true;
        assert_eq!(merged_progress([&a, &b].into_iter()), (80, 85), "a ended");
        b.idle = true;
        assert_eq!(merged_progress([&a, &b].into_iter()), (80, 85), "both ended: the furthest");
    }
}
