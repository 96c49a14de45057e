//! Span pairing: turns spans into calls between services.
//!
//! CLIENT / PRODUCER spans wait under (trace, span id); SERVER / CONSUMER spans under
//! (trace, parent id), and consumers also under every span they link to (async hand-offs
//! into a new trace). A client meets one server; a producer may meet many consumers.
//! Spans without a kind (legacy instrumentation, converters that drop it) wait as
//! possible parents; a child whose service differs from its parent's gives an edge and is
//! a request of its service, as is a kind-less root or a kind-less span whose parent
//! never arrives, so health comes out of kind-less traces too. A client span still unpaired
//! after the TTL becomes a call to a **virtual node** named from its peer attributes;
//! client spans naming a database (`db.system`) do so at once, since databases emit no
//! server spans. The store is bounded: when full, the entry due first is closed early,
//! as its deadline would (a virtual call, the requests of children whose parent never
//! came), and counted; the newest span is never dropped. Kind-less spans all wait as
//! parents for the TTL plus the allowed lateness (7 s by default), so a million entries
//! hold 143 k spans/s of them; dropping the oldest above that would drop every virtual
//! call and orphan's request.

use std::sync::Arc;

use devloom_schemas::{Span, SpanId, SpanKind, TimestampNs, TraceId};
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use crate::deadline_store::{DeadlineStore, Waiting};
use crate::operator::Operator;
use crate::service_id::ServiceId;
use crate::sharded_map::Entries;

/// Pairing settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairingConfig {
    /// How long (event time) a span waits for its other half, milliseconds.
    pub ttl_ms: u64,
    /// Most entries held; beyond this the entry due first is closed early.
    pub max_pending: usize,
    /// Links of one span followed at most (a consumer span batching a million messages
    /// must not flush the store); the rest are counted and ignored.
    pub max_links_per_span: usize,
}

impl Default for PairingConfig {
    fn default() -> Self {
        Self { ttl_ms: 5_000, max_pending: 1_000_000, max_links_per_span: 128 }
    }
}

impl PairingConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_pending == 0 {
            return Err("max_pending must be above 0".into());
        }
        Ok(())
    }
}

/// What pairing and self-time measurement learned from spans.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// A service or virtual node served one request.
    Request {
        /// Who served it.
        service: ServiceId,
        /// When it ended.
        time_ns: TimestampNs,
        /// How long it took.
        latency_ns: u64,
        /// Whether it failed.
        failed: bool,
        /// The release of a kind-less span found to have served it, for the rollout
        /// analysis. Server and consumer spans reach that stage themselves
        /// ([`crate::rollout::RolloutAnalyzer::on_span`]): copying their release into
        /// every request would cost the hot path.
        release: Option<Box<Release>>,
    },
    /// One call from a caller to a callee.
    Call {
        /// Calling service.
        caller: ServiceId,
        /// Called service or virtual node.
        callee: ServiceId,
        /// When the call ended.
        time_ns: TimestampNs,
        /// Latency the caller saw (the consumer's processing time for async calls).
        latency_ns: u64,
        /// Duration of the callee's span (the caller's for a virtual node, which has none).
        server_ns: u64,
        /// Failed on either side.
        failed: bool,
        /// Producer → consumer hand-off.
        asynchronous: bool,
    },
    /// A span's exclusive time in its service (see [`crate::self_time`]).
    SelfTime {
        /// Whose work it was.
        service: ServiceId,
        /// When the span ended.
        time_ns: TimestampNs,
        /// Duration minus the union of its children's intervals.
        self_ns: u64,
    },
    /// Time on the wire of one call (see [`crate::self_time`]).
    Gap {
        /// Calling service.
        caller: ServiceId,
        /// Called service.
        callee: ServiceId,
        /// When the call ended.
        time_ns: TimestampNs,
        /// What the caller waited beyond the callee's own span.
        gap_ns: u64,
        /// The caller's request failed on this call's answer: the call succeeded, no
        /// other call of the request failed, and the request called nothing after it.
        failed_after: bool,
    },
}

/// What version of a service served a request: resource `service.version` and
/// `deployment.environment.name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// `service.version`.
    pub version: Arc<str>,
    /// `deployment.environment.name`.
    pub environment: Option<Arc<str>>,
}

impl Release {
    /// The span's release, when it names a version.
    pub fn of(span: &Span) -> Option<Box<Self>> {
        let version = span.version.clone()?;
        Some(Box::new(Self { version, environment: span.environment.clone() }))
    }
}

/// Counters of the pairing store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingCounters {
    /// Calls found by pairing two spans.
    pub paired: u64,
    /// Entries that reached the TTL unpaired (excluding those that became virtual calls).
    pub expired: u64,
    /// Entries closed early because the store was full (what their deadline would have
    /// given, given now: calls arriving for them later are missed).
    pub evicted: u64,
    /// Calls to virtual nodes.
    pub virtual_calls: u64,
    /// Span links beyond `max_links_per_span`, ignored.
    #[serde(default)]
    pub links_dropped: u64,
}

/// One half of a call, as much of a span as pairing needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Half {
    service: ServiceId,
    kind: SpanKind,
    start_ns: TimestampNs,
    end_ns: TimestampNs,
    failed: bool,
    /// Virtual node name for an unpaired client / producer.
    peer: Option<Arc<str>>,
    /// The span's release, kept only for a kind-less span: the one kind that may turn
    /// out later to have served a request.
    #[serde(default)]
    release: Option<Box<Release>>,
}

/// The virtual node a span calls when no instrumented span answers it: a producer's
/// destination, a client's peer ([`PeerAttributes::virtual_node_name`]), a kind-less
/// span's explicitly named peer ([`PeerAttributes::outbound_name`]).
///
/// [`PeerAttributes::virtual_node_name`]: devloom_schemas::PeerAttributes::virtual_node_name
/// [`PeerAttributes::outbound_name`]: devloom_schemas::PeerAttributes::outbound_name
pub(crate) fn peer_name(span: &Span) -> Option<&str> {
    match span.kind {
        SpanKind::Producer => span.peer.messaging_destination.as_deref(),
        SpanKind::Client => span.peer.virtual_node_name(),
        SpanKind::Unspecified => span.peer.outbound_name(),
        _ => None,
    }
}

/// Names of the peers calls went to, one shared copy each: one allocation per peer, not
/// one per call (at most [`PeerNames::MAX`] shared; names beyond are copied per call).
#[derive(Debug, Default)]
pub(crate) struct PeerNames(FxHashSet<Arc<str>>);

impl PeerNames {
    const MAX: usize = 4096;

    /// The shared copy of `name`.
    pub(crate) fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let name: Arc<str> = Arc::from(name);
        if self.0.len() < Self::MAX {
            self.0.insert(name.clone());
        }
        name
    }
}

impl Half {
    fn of(span: &Span, peers: &mut PeerNames) -> Self {
        let kind_less = span.kind == SpanKind::Unspecified;
        let peer = peer_name(span).map(|name| peers.get(name));
        Self {
            service: ServiceId::service(span.service.clone(), span.region.clone()),
            kind: span.kind,
            start_ns: span.start_ns,
            end_ns: span.end_ns,
            failed: span.failed,
            peer,
            release: if kind_less { Release::of(span) } else { None },
        }
    }

    fn duration(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// Spans waiting under one (trace, span id) key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    caller: Option<Half>,
    callees: Vec<Half>,
    paired: bool,
    seq: u64,
    deadline_ns: TimestampNs,
}

impl Waiting for Entry {
    fn due(&self) -> (TimestampNs, u64) {
        (self.deadline_ns, self.seq)
    }

    fn set_due(&mut self, deadline_ns: TimestampNs, seq: u64) {
        (self.deadline_ns, self.seq) = (deadline_ns, seq);
    }
}

type Key = (TraceId, SpanId);

/// Serializable state of a [`SpanPairer`] (entries in key order when serialized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairingSnapshot {
    entries: Entries<Key, Entry>,
    next_seq: u64,
    counters: PairingCounters,
}

/// The span-pairing operator.
#[derive(Debug, Default)]
pub struct SpanPairer {
    config: PairingConfig,
    /// Each entry due its first span's end plus the TTL.
    entries: DeadlineStore<Key, Entry>,
    counters: PairingCounters,
    peers: PeerNames,
}

impl SpanPairer {
    /// A pairer with `config`.
    pub fn new(config: PairingConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Counters so far.
    pub fn counters(&self) -> PairingCounters {
        self.counters
    }

    /// Entries waiting.
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    /// The entry of `key`, new (due `time_ns` + TTL) when missing; making room in a full
    /// store closes the entry due first into `out`.
    fn entry(&mut self, key: Key, time_ns: TimestampNs, out: &mut Vec<Observation>) -> &mut Entry {
        if self.entries.full_without(&key, self.config.max_pending)
            && let Some((_, entry)) = self.entries.pop_due(TimestampNs::MAX)
        {
            // Closed now, as its deadline would.
            self.counters.evicted += 1;
            self.close(&entry, out);
        }
        let deadline_ns = time_ns.saturating_add(self.config.ttl_ms.saturating_mul(1_000_000));
        self.entries.get_or_insert_with(key, deadline_ns, |deadline_ns, seq| Entry {
            caller: None,
            callees: Vec::new(),
            paired: false,
            seq,
            deadline_ns,
        })
    }

    /// What an entry leaving the store gives: an unpaired call to its virtual node, or,
    /// for kind-less children whose parent never came, the requests they served.
    fn close(&mut self, entry: &Entry, out: &mut Vec<Observation>) {
        match &entry.caller {
            Some(caller)
                if !entry.paired
                    && matches!(
                        caller.kind,
                        SpanKind::Client | SpanKind::Producer | SpanKind::Unspecified
                    ) =>
            {
                match caller.peer.clone() {
                    Some(name) => self.emit_virtual(caller, name, out),
                    // A kind-less leaf is no half of anything.
                    None if caller.kind == SpanKind::Unspecified => {}
                    None => self.counters.expired += 1,
                }
            }
            Some(_) => {}
            None => {
                self.counters.expired += 1;
                // Kind-less spans whose parent never arrived (outside the capture, or
                // sampled away): each entered its service from elsewhere.
                for callee in entry.callees.iter().filter(|c| c.kind == SpanKind::Unspecified) {
                    out.push(request(callee));
                }
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        self.entries.remove(key);
    }

    /// The span's links as pairing keys, at most `max_links_per_span` (the rest counted).
    fn links<'a>(&mut self, span: &'a Span) -> impl Iterator<Item = Key> + 'a {
        let max = self.config.max_links_per_span;
        self.counters.links_dropped += span.links.len().saturating_sub(max) as u64;
        span.links.iter().take(max).map(|l| (l.trace_id, l.span_id))
    }

    fn add_caller(&mut self, key: Key, half: Half, out: &mut Vec<Observation>) {
        let one_to_one = half.kind == SpanKind::Client;
        let entry = self.entry(key, half.end_ns, out);
        let waiting = std::mem::take(&mut entry.callees);
        if !waiting.is_empty() {
            entry.paired = true;
        }
        entry.caller = Some(half);
        let caller = entry.caller.clone().expect("set above");
        let done = one_to_one && !waiting.is_empty();
        for callee in waiting.iter().filter(|c| pairs(&caller, c)) {
            self.emit_call(&caller, callee, out);
        }
        if done {
            self.remove(&key);
        }
    }

    fn add_callee(&mut self, key: Key, half: Half, out: &mut Vec<Observation>) {
        let entry = self.entry(key, half.end_ns, out);
        match entry.caller.clone() {
            Some(caller) if pairs(&caller, &half) => {
                entry.paired = true;
                let one_to_one = caller.kind == SpanKind::Client;
                self.emit_call(&caller, &half, out);
                if one_to_one {
                    self.remove(&key);
                }
            }
            Some(_) => {}
            None => entry.callees.push(half),
        }
    }

    fn emit_call(&mut self, caller: &Half, callee: &Half, out: &mut Vec<Observation>) {
        if caller.service == callee.service {
            return;
        }
        self.counters.paired += 1;
        if callee.kind == SpanKind::Unspecified {
            // A kind-less child in another service: it entered that service.
            out.push(request(callee));
        }
        let asynchronous = callee.kind == SpanKind::Consumer;
        let (time_ns, latency_ns) = match (caller.kind, asynchronous) {
            (SpanKind::Client, false) => (caller.end_ns, caller.duration()),
            _ => (callee.end_ns, callee.duration()),
        };
        out.push(Observation::Call {
            caller: caller.service.clone(),
            callee: callee.service.clone(),
            time_ns,
            latency_ns,
            server_ns: callee.duration(),
            failed: caller.failed || callee.failed,
            asynchronous,
        });
    }

    fn emit_virtual(&mut self, caller: &Half, name: Arc<str>, out: &mut Vec<Observation>) {
        self.counters.virtual_calls += 1;
        let callee = ServiceId::virtual_node(name);
        out.push(Observation::Request {
            service: callee.clone(),
            time_ns: caller.end_ns,
            latency_ns: caller.duration(),
            failed: caller.failed,
            release: None,
        });
        out.push(Observation::Call {
            caller: caller.service.clone(),
            callee,
            time_ns: caller.end_ns,
            latency_ns: caller.duration(),
            server_ns: caller.duration(),
            failed: caller.failed,
            asynchronous: caller.kind == SpanKind::Producer,
        });
    }
}

/// The request a span served in its service.
fn request(half: &Half) -> Observation {
    Observation::Request {
        service: half.service.clone(),
        time_ns: half.end_ns,
        latency_ns: half.duration(),
        failed: half.failed,
        release: half.release.clone(),
    }
}

/// Does a waiting caller pair with this callee? Clients meet servers (or consumers of
/// a request/reply over messaging); producers meet consumers; kind-less parents meet
/// kind-less children and the spans that link to them.
fn pairs(caller: &Half, callee: &Half) -> bool {
    match caller.kind {
        SpanKind::Client => matches!(callee.kind, SpanKind::Server | SpanKind::Consumer),
        SpanKind::Producer => callee.kind == SpanKind::Consumer,
        SpanKind::Unspecified => matches!(callee.kind, SpanKind::Unspecified | SpanKind::Consumer),
        SpanKind::Server | SpanKind::Consumer | SpanKind::Internal => false,
    }
}

impl SpanPairer {
    /// The consumer side of `span`'s links into `trace`, which this pairer's partition
    /// holds while the span's own trace is another's: the hand-off is paired here, the
    /// rest of the span where its trace is.
    pub fn on_linked(&mut self, span: &Span, trace: TraceId, out: &mut Vec<Observation>) {
        if !matches!(span.kind, SpanKind::Consumer | SpanKind::Unspecified) {
            return;
        }
        let half = Half { kind: SpanKind::Consumer, ..Half::of(span, &mut self.peers) };
        let max = self.config.max_links_per_span;
        let mut keys: Vec<Key> = span
            .links
            .iter()
            .take(max)
            .filter(|l| l.trace_id == trace)
            .map(|l| (l.trace_id, l.span_id))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            self.add_callee(key, half.clone(), out);
        }
    }
}

impl Operator for SpanPairer {
    type In = Span;
    type Out = Observation;
    type Ctx = ();
    type Snapshot = PairingSnapshot;

    fn on_event(&mut self, _: &(), span: &Span, out: &mut Vec<Observation>) {
        let half = Half::of(span, &mut self.peers);
        if matches!(span.kind, SpanKind::Server | SpanKind::Consumer) {
            out.push(request(&half));
        }
        let own = (span.trace_id, span.span_id);
        let parent = span.parent_span_id.map(|p| (span.trace_id, p));
        match span.kind {
            SpanKind::Client | SpanKind::Unspecified if span.peer.db_system.is_some() => {
                let name = half.peer.clone().unwrap_or_else(|| Arc::from("database"));
                self.emit_virtual(&half, name, out);
            }
            SpanKind::Client | SpanKind::Producer => self.add_caller(own, half, out),
            SpanKind::Server => {
                if let Some(key) = parent {
                    self.add_callee(key, half, out);
                }
            }
            SpanKind::Consumer => {
                let mut keys: Vec<Key> = parent.into_iter().collect();
                keys.extend(self.links(span));
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    self.add_callee(key, half.clone(), out);
                }
            }
            SpanKind::Unspecified => {
                // Links are asynchronous hand-offs whatever the kind: the consumer side.
                let mut links: Vec<Key> = self.links(span).collect();
                links.sort_unstable();
                links.dedup();
                match parent.filter(|p| !links.contains(p)) {
                    Some(key) => self.add_callee(key, half.clone(), out),
                    // A root without a kind: a request entering its service.
                    None if parent.is_none() => out.push(request(&half)),
                    None => {}
                }
                for key in links {
                    self.add_callee(key, Half { kind: SpanKind::Consumer, ..half.clone() }, out);
                }
                self.add_caller(own, half, out);
            }
            SpanKind::Internal => {}
        }
    }

    fn on_watermark(&mut self, _: &(), event_time: TimestampNs, out: &mut Vec<Observation>) {
        while let Some((_, entry)) = self.entries.pop_due(event_time) {
            self.close(&entry, out);
        }
    }

    fn snapshot(&self) -> PairingSnapshot {
        let (entries, next_seq) = self.entries.snapshot();
        PairingSnapshot { entries, next_seq, counters: self.counters }
    }

    fn restore(&mut self, s: PairingSnapshot) {
        self.entries = DeadlineStore::restored(s.entries, s.next_seq);
        self.counters = s.counters;
    }
}

#[cfg(test)]
mod tests {
    use devloom_schemas::{PeerAttributes, SpanLink};

    use super::*;

    fn span(trace: u128, id: u64, parent: Option<u64>, service: &str, kind: SpanKind, end_ms: u64) -> Span {
        Span {
            trace_id: TraceId(trace),
            span_id: SpanId(id),
            parent_span_id: parent.map(SpanId),
            links: vec![],
            service: Arc::from(service),
            region: None,
            version: None,
            environment: None,
            kind,
            name: "op".into(),
            start_ns: (end_ms - 10) * 1_000_000,
            end_ns: end_ms * 1_000_000,
            failed: false,
            peer: PeerAttributes::default(),
        }
    }

    fn calls(out: &[Observation]) -> Vec<(String, String, bool)> {
        out.iter()
            .filter_map(|o| match o {
                Observation::Call { caller, callee, asynchronous, .. } => {
                    Some((caller.to_string(), callee.to_string(), *asynchronous))
                }
                _ => None,
            })
            .collect()
    }

    fn run(p: &mut SpanPairer, spans: &[Span]) -> Vec<Observation> {
        let mut out = Vec::new();
        for s in spans {
            p.on_event(&(), s, &mut out);
        }
        out
    }

    #[test]
    fn client_server_pair_in_either_order() {
        for order in [[0, 1], [1, 0]] {
            let spans = [
                span(1, 10, None, "frontend", SpanKind::Client, 100),
                span(1, 11, Some(10), "cart", SpanKind::Server, 95),
            ];
            let mut p = SpanPairer::default();
            let out = run(&mut p, &[spans[order[0]].clone(), spans[order[1]].clone()]);
            assert_eq!(calls(&out), vec![("frontend".into(), "cart".into(), false)]);
            assert_eq!(p.counters().paired, 1);
            assert_eq!(p.pending(), 0, "a client meets one server");
        }
    }

    #[test]
    fn producer_fans_out_to_linked_consumers_in_new_traces() {
        let mut p = SpanPairer::default();
        let producer = span(1, 10, None, "orders", SpanKind::Producer, 100);
        let mut c1 = span(2, 20, None, "fulfillment", SpanKind::Consumer, 300);
        c1.links = vec![SpanLink { trace_id: TraceId(1), span_id: SpanId(10) }];
        let mut c2 = span(3, 30, None, "billing", SpanKind::Consumer, 400);
        c2.links = c1.links.clone();
        let out = run(&mut p, &[c1, producer, c2]);
        assert_eq!(
            calls(&out),
            vec![("orders".into(), "fulfillment".into(), true), ("orders".into(), "billing".into(), true)]
        );
    }

    #[test]
    fn a_span_with_a_million_links_follows_the_first_few_and_counts_the_rest() {
        let mut p = SpanPairer::new(PairingConfig { max_links_per_span: 3, ..PairingConfig::default() });
        let producers: Vec<Span> =
            (0..5).map(|i| span(1, 10 + i, None, "orders", SpanKind::Producer, 100)).collect();
        let mut batch = span(2, 20, None, "fulfillment", SpanKind::Consumer, 300);
        batch.links =
            (0..1_000_000).map(|i| SpanLink { trace_id: TraceId(1), span_id: SpanId(10 + i) }).collect();
        let mut out = run(&mut p, &producers);
        p.on_event(&(), &batch, &mut out);
        assert_eq!(calls(&out).len(), 3, "the first three links paired");
        assert_eq!(p.counters().links_dropped, 999_997);
        assert!(p.pending() <= 5, "the store holds the producers, not a million consumer halves");
    }

    #[test]
    fn legacy_spans_without_kind_give_edges_on_service_change() {
        let mut p = SpanPairer::default();
        let out = run(
            &mut p,
            &[
                span(1, 10, None, "web", SpanKind::Unspecified, 100),
                span(1, 11, Some(10), "web", SpanKind::Unspecified, 90),
                span(1, 12, Some(10), "legacy-billing", SpanKind::Unspecified, 95),
            ],
        );
        assert_eq!(calls(&out), vec![("web".into(), "legacy-billing".into(), false)]);
    }

    #[test]
    fn kind_less_requests_carry_their_release_and_server_spans_leave_it_on_the_span() {
        let versioned = |mut s: Span, v: &str| {
            s.version = Some(v.into());
            s.environment = Some("production".into());
            s
        };
        let mut p = SpanPairer::default();
        let out = run(
            &mut p,
            &[
                versioned(span(1, 10, None, "web", SpanKind::Server, 100), "2.0.0"),
                versioned(span(2, 20, None, "legacy", SpanKind::Unspecified, 100), "0.9"),
                versioned(span(2, 21, Some(20), "billing", SpanKind::Unspecified, 95), "4.1"),
            ],
        );
        let releases: Vec<(String, Option<String>)> = out
            .iter()
            .filter_map(|o| match o {
                Observation::Request { service, release, .. } => {
                    Some((service.to_string(), release.as_ref().map(|r| r.version.to_string())))
                }
                _ => None,
            })
            .collect();
        let want = |s: &str, v: Option<&str>| (s.to_string(), v.map(str::to_string));
        for expected in [want("web", None), want("legacy", Some("0.9")), want("billing", Some("4.1"))] {
            assert!(releases.contains(&expected), "{expected:?} in {releases:?}");
        }
    }

    fn requests(out: &[Observation]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Observation::Request { service, .. } => Some(service.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn kind_less_spans_entering_a_service_are_its_requests() {
        let mut p =
            SpanPairer::new(PairingConfig { ttl_ms: 1_000, max_pending: 100, ..PairingConfig::default() });
        let mut out = run(
            &mut p,
            &[
                span(1, 11, Some(10), "web", SpanKind::Unspecified, 90),
                span(1, 12, Some(10), "billing", SpanKind::Unspecified, 95),
                span(1, 10, None, "web", SpanKind::Unspecified, 100),
                span(2, 21, Some(20), "orphan", SpanKind::Unspecified, 100),
            ],
        );
        assert_eq!(requests(&out), ["web", "billing"], "the root and the child in another service");
        p.on_watermark(&(), 2_000_000_000, &mut out);
        assert_eq!(requests(&out), ["web", "billing", "orphan"], "a parent that never came: from elsewhere");
    }

    #[test]
    fn unpaired_clients_become_virtual_nodes_after_ttl_databases_at_once() {
        let mut p =
            SpanPairer::new(PairingConfig { ttl_ms: 1_000, max_pending: 100, ..PairingConfig::default() });
        let mut db = span(1, 10, None, "cart", SpanKind::Client, 100);
        db.peer.db_system = Some("postgresql".into());
        let mut ext = span(1, 11, None, "cart", SpanKind::Client, 100);
        ext.peer.peer_service = Some("stripe".into());
        let anonymous = span(1, 12, None, "cart", SpanKind::Client, 100);
        // Two databases of one system, told apart by their hosts; a kind-less call too.
        let mut orders = span(1, 13, None, "cart", SpanKind::Client, 100);
        orders.peer.db_system = Some("postgresql".into());
        orders.peer.server_address = Some("orders-db".into());
        let mut payments = span(1, 14, None, "cart", SpanKind::Unspecified, 100);
        payments.peer.db_system = Some("postgresql".into());
        payments.peer.server_address = Some("payments-db".into());
        let out = run(&mut p, &[db, ext, anonymous, orders, payments]);
        assert_eq!(
            calls(&out),
            vec![
                ("cart".into(), "postgresql".into(), false),
                ("cart".into(), "orders-db".into(), false),
                ("cart".into(), "payments-db".into(), false)
            ]
        );
        let mut out = Vec::new();
        p.on_watermark(&(), 1_099_000_000, &mut out);
        assert!(out.is_empty(), "not before the TTL");
        p.on_watermark(&(), 1_100_000_000, &mut out);
        assert_eq!(calls(&out), vec![("cart".into(), "stripe".into(), false)]);
        let c = p.counters();
        assert_eq!((c.virtual_calls, c.expired, p.pending()), (4, 1, 0));
        let Observation::Call { callee, .. } = &out[1] else { panic!() };
        assert!(callee.virtual_node);
    }

    #[test]
    fn full_store_closes_the_oldest_early_and_keeps_the_newest() {
        let mut p =
            SpanPairer::new(PairingConfig { ttl_ms: 60_000, max_pending: 2, ..PairingConfig::default() });
        run(
            &mut p,
            &[
                span(1, 1, None, "a", SpanKind::Client, 10),
                span(2, 2, None, "a", SpanKind::Client, 11),
                span(3, 3, None, "a", SpanKind::Client, 12),
            ],
        );
        assert_eq!((p.pending(), p.counters().evicted, p.counters().expired), (2, 1, 1));
        // The newest still pairs; the oldest, closed unpaired, does not.
        let out = run(
            &mut p,
            &[span(3, 4, Some(3), "b", SpanKind::Server, 12), span(1, 5, Some(1), "b", SpanKind::Server, 12)],
        );
        assert_eq!(calls(&out), vec![("a".into(), "b".into(), false)]);
    }

    /// Kind-less traces, one every 100 ms: web (0–100 ms) calling api (20–60) and, by
    /// `peer.service`, stripe (70–90), and a worker span whose parent never arrives;
    /// through a store of `max_pending` with the engine's watermark (2 s behind). The
    /// observations sorted, as text, and the counters.
    fn kind_less_through_store(traces: u64, max_pending: usize) -> (Vec<String>, PairingCounters) {
        let mut p = SpanPairer::new(PairingConfig { ttl_ms: 5_000, max_pending, ..PairingConfig::default() });
        let mut out = Vec::new();
        for t in 0..traces {
            let at = t * 100;
            let kind_less = |id, parent, service, start, end| Span {
                start_ns: (at + start) * 1_000_000,
                ..span(u128::from(t), id, parent, service, SpanKind::Unspecified, at + end)
            };
            let mut stripe = kind_less(3, Some(1), "web", 70, 90);
            stripe.peer.peer_service = Some("stripe".into());
            for s in [
                kind_less(2, Some(1), "api", 20, 60),
                stripe,
                kind_less(1, None, "web", 0, 100),
                kind_less(4, Some(99), "worker", 30, 50),
            ] {
                p.on_event(&(), &s, &mut out);
            }
            p.on_watermark(&(), (at + 100).saturating_sub(2_000) * 1_000_000, &mut out);
        }
        p.on_watermark(&(), u64::MAX, &mut out);
        let mut seen: Vec<String> = out.iter().map(|o| format!("{o:?}")).collect();
        seen.sort();
        (seen, p.counters())
    }

    #[test]
    fn a_full_store_closes_entries_early_as_their_deadline_would() {
        // 200 traces of five entries, 7 s each in the store at 10 traces/s: 350 wanted.
        let (roomy, counters) = kind_less_through_store(200, 1_000);
        assert_eq!(
            (counters.paired, counters.virtual_calls, counters.expired, counters.evicted),
            (200, 200, 200, 0)
        );
        assert_eq!(roomy.iter().filter(|o| o.contains("virtual_node: true")).count(), 400);
        // Twenty entries: each is closed half a second in. Dropping the oldest instead
        // would have lost nearly every call to stripe and request of the worker.
        let (full, tight) = kind_less_through_store(200, 20);
        assert_eq!(full, roomy);
        assert_eq!(PairingCounters { evicted: 0, ..tight }, counters);
        assert_eq!(tight.evicted, 1_000 - 20, "all but the last twenty closed early");
    }

    #[test]
    fn snapshot_restore_round_trip_and_determinism() {
        let spans: Vec<Span> = (0..50u64)
            .flat_map(|i| {
                [
                    span(i as u128, i * 2, None, "a", SpanKind::Client, 100 + i),
                    span(i as u128 / 2, i * 2 + 1, Some(i * 2), "b", SpanKind::Server, 100 + i),
                ]
            })
            .collect();
        let (head, tail) = spans.split_at(37);
        let mut whole = SpanPairer::default();
        let mut expected = run(&mut whole, &spans);
        whole.on_watermark(&(), u64::MAX, &mut expected);

        let mut first = SpanPairer::default();
        let mut got = run(&mut first, head);
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let mut second = SpanPairer::default();
        second.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(second.snapshot(), first.snapshot());
        got.extend(run(&mut second, tail));
        second.on_watermark(&(), u64::MAX, &mut got);
        assert_eq!(got, expected);
        assert_eq!(second.counters(), whole.counters());

        let mut again = SpanPairer::default();
        let mut twice = run(&mut again, &spans);
        again.on_watermark(&(), u64::MAX, &mut twice);
        assert_eq!(twice, expected, "same input, same output");
    }
}
