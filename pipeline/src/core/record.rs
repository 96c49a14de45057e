//! What sources hand the core: raw records (one payload as a producer wrote it, with
//! where it came from) and, once decoded, [`Input`]s for the operator loop.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use devloom_schemas::Event;
use devloom_schemas::codec::Expect;

use super::decode::Rejected;
use super::latency::wall_clock_ns;

/// Where a record came from, for dead letters and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file, and the 1-based line the record starts on (none for binary files).
    File {
        /// Path as given.
        path: Arc<str>,
        /// Line the record starts on.
        line: Option<u64>,
    },
    /// Standard input, 1-based line.
    Stdin {
        /// Line number.
        line: u64,
    },
    /// The built-in simulator.
    Simulator,
    /// A request to one of the HTTP receivers, by its path (`/v1/receivers/github`,
    /// `/v1/traces`).
    Http {
        /// The route it was posted to.
        route: &'static str,
    },
    /// An event the event-time guard held aside and rejected (its payload is the
    /// normalized event as JSON; the record it came from was processed otherwise).
    Guard,
    /// A Kafka message.
    Kafka {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// The message timestamp, milliseconds since the epoch.
        timestamp_ms: i64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line: Some(l) } => write!(f, "{path}:{l}"),
            Self::File { path, line: None } => f.write_str(path),
            Self::Stdin { line } => write!(f, "<stdin>:{line}"),
            Self::Simulator => f.write_str("<simulator>"),
            Self::Http { route } => write!(f, "POST {route}"),
            Self::Guard => f.write_str("<event-time guard>"),
            Self::Kafka { topic, partition, offset, .. } => write!(f, "{topic}/{partition}@{offset}"),
        }
    }
}

/// One payload to decode.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// The bytes.
    pub payload: Vec<u8>,
    /// Which formats are accepted.
    pub expect: Expect,
    /// Transport headers as they arrived (Kafka headers, the simulator's
    /// `content-type`); kept whole in dead letters.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The transport key (Kafka), kept in dead letters.
    pub key: Option<Vec<u8>>,
    /// A `content-type` the source inferred (a `.ndjson` line), used for detection when
    /// no header says otherwise; not a header, so not kept in dead letters.
    pub content_type_hint: Option<&'static str>,
    /// Event time for payloads that carry none (the Kafka timestamp).
    pub fallback_time_ns: Option<u64>,
    /// Set when the record was longer than the limit: its size in bytes (`payload` then
    /// holds only its first bytes, for the dead letter).
    pub cut_from: Option<u64>,
    /// Where it came from.
    pub origin: Origin,
}

impl RawRecord {
    /// A record with no headers, key or fallback time.
    pub fn new(payload: Vec<u8>, expect: Expect, origin: Origin) -> Self {
        Self {
            payload,
            expect,
            headers: Vec::new(),
            key: None,
            content_type_hint: None,
            fallback_time_ns: None,
            cut_from: None,
            origin,
        }
    }

    /// With a transport header.
    pub fn with_header(mut self, key: &str, value: &[u8]) -> Self {
        self.headers.push((key.to_string(), value.to_vec()));
        self
    }
}

/// When a record was read, for the latency stamps.
#[derive(Clone, Copy, Debug)]
pub struct ReadStamp {
    pub(crate) instant: Instant,
    pub(crate) wall_ns: u64,
}

impl ReadStamp {
    /// Now.
    pub fn now() -> Self {
        Self { instant: Instant::now(), wall_ns: wall_clock_ns() }
    }
}

/// What the operator loop takes, in processing order.
// Unboxed on purpose: replay hands over millions of events a second, one allocation
// each would cost more than moving the larger variant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// The events of one decoded record (the record counts as read).
    Record(Vec<Event>, ReadStamp),
    /// One event of a stream that was merged or archived before it reached the loop;
    /// its record was counted by [`Input::Read`], if at all.
    Event(Event, ReadStamp),
    /// This many records were read whose events follow as [`Input::Event`]s.
    Read(u64),
    /// A record that could not be decoded (or not all of it): published as a dead
    /// letter, then what could be salvaged from it is processed.
    Rejected(Box<Rejected>, ReadStamp),
    /// One step of another traces partition's pairing ([`crate::kafka::hand_on`]): the
    /// call aggregates it handed on (for the graph role), the spans it read that link
    /// into this pairing engine's partition (for the pairing role), then how far the
    /// partitions have come: the slowest one's watermark and the newest span any read.
    Calls {
        /// What was handed on.
        aggregates: Vec<devloom_operators::CallAggregate>,
        /// Spans linking into traces this pairing engine holds.
        links: Vec<crate::kafka::hand_on::Linked>,
        /// The minimum watermark over the traces partitions still being read.
        watermark_ns: devloom_schemas::TimestampNs,
        /// The newest span time over all of them.
        newest_ns: devloom_schemas::TimestampNs,
        /// The traces partition the record is from, and what its pairing has lost so far.
        losses: (i32, devloom_operators::Losses),
    },
    /// Nothing arrived for a while: a chance for periodic work (checkpoints).
    Idle,
}

impl Input {
    /// A decoded record or its dead letter.
    pub fn decoded(decoded: Result<Vec<Event>, Box<Rejected>>, read: ReadStamp) -> Self {
        match decoded {
            Ok(events) => Self::Record(events, read),
            Err(rejected) => Self::Rejected(rejected, read),
        }
    }

    /// The events it carries, at least one: the operator loop's measure of work done
    /// between two looks at the clock.
    pub fn weight(&self) -> u64 {
        let n = match self {
            Self::Record(events, _) => events.len(),
            Self::Rejected(rejected, _) => rejected.salvaged.len(),
            Self::Calls { aggregates, links, .. } => aggregates.len() + links.len(),
            Self::Event(..) | Self::Read(_) | Self::Idle => 1,
        };
        n.max(1) as u64
    }
}

/// Where inputs come from: files, stdin, the simulator, Kafka, the history archive.
/// Each hands the operator loop its inputs in the order they are to be processed.
pub trait Source {
    /// The next input, `None` when the source has ended (or was told to stop).
    fn next_input(&mut self) -> Option<std::io::Result<Input>>;
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn next_input(&mut self) -> Option<std::io::Result<Input>> {
        (**self).next_input()
    }
}
