//! Self time and network gaps: how much of a span was its own service's work, and how
//! much was the wire between two services.
//!
//! A span's **exclusive time** is its duration minus the union of its children's
//! intervals (concurrent children overlap, so the union, not the sum). Where it goes:
//!
//! - SERVER, CONSUMER, INTERNAL and kind-less spans: the **self time** of their service,
//!   one sample per span. A CPU-starved service shows here even when its total latency
//!   is dominated by its callees, and its callers' self time does not move.
//! - A CLIENT span with a server child in another service: its exclusive time is the
//!   **network gap** of that edge (client minus server duration). A kind-less span that
//!   plays the same part (its parent is in its own service, all its children in another)
//!   is treated the same way: converters drop the kind, not the shape.
//! - A kind-less span calling straight into another service's span (traces with server
//!   spans only) has no client span to measure the wire with; the caller's idle time just
//!   before and after each such child (up to the previous sibling or the span's start,
//!   and to the next sibling or its end) is recorded as that edge's gap. It stays in the
//!   caller's self time too: in such traces a network delay and the caller's own work
//!   around the call look alike, and the scorer weighs both.
//!
//! Each gap also says whether the caller's request failed on that call's answer: the
//! call succeeded, no other call of the request failed, and the request called nothing
//! after it (a failing handler stops where it fails). Callers failing on a service's
//! answers point at it even when its own spans look fine (it answered, wrongly); a caller
//! failing on its own spreads its failures over whichever call came last.
//!
//! A call no instrumented span answered (a client span without a child in another
//! service, or a kind-less one naming its peer by `peer.service` or `db.system`) is all
//! wait: its whole duration is the gap of the edge into the virtual node pairing names
//! for that peer. A network fault at the caller slows those calls as much as the ones to
//! instrumented services. Producer spans (and kind-less ones naming only a messaging
//! destination, without links) give neither: the hand-off is asynchronous.
//!
//! Spans wait for their children for the pairing TTL (event time), in any arrival order;
//! then they are measured once, a call before its request even when the two end in the
//! same instant (timestamps in milliseconds). The store is bounded like pairing's, but
//! a full store measures the span due first early, with the children it has, to make
//! room: every span stays in it for the TTL plus the allowed lateness (7 s by default),
//! so a million entries hold 143 k spans/s, and dropping the oldest above that rate would
//! drop every span before its turn. Early, it has had most of its TTL; only children
//! arriving after that are missed.

use std::cmp::Reverse;
use std::sync::Arc;

use devloom_schemas::{Span, SpanId, SpanKind, TimestampNs, TraceId};
use serde::{Deserialize, Serialize};

use crate::deadline_store::{DeadlineStore, Waiting};
use crate::operator::Operator;
use crate::service_id::ServiceId;
use crate::sharded_map::Entries;
use crate::span_pairing::{Observation, PairingConfig, PeerNames, peer_name};

type Key = (TraceId, SpanId);

/// The span itself, once it arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Own {
    service: ServiceId,
    kind: SpanKind,
    start_ns: TimestampNs,
    end_ns: TimestampNs,
    parent: Option<SpanId>,
    /// It failed (status, HTTP code or legacy marker).
    failed: bool,
    /// Names a peer it called (`peer.service`, `db.system`): a call out, not work.
    outbound: bool,
    /// The virtual node it calls when no instrumented span answers it (pairing's name
    /// for it).
    #[serde(default)]
    peer: Option<Arc<str>>,
}

/// A child's interval and where it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Child {
    service: ServiceId,
    kind: SpanKind,
    start_ns: TimestampNs,
    end_ns: TimestampNs,
    #[serde(default)]
    failed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    own: Option<Own>,
    children: Vec<Child>,
    deadline_ns: TimestampNs,
    seq: u64,
}

impl Waiting for Entry {
    fn due(&self) -> (TimestampNs, u64) {
        (self.deadline_ns, self.seq)
    }

    fn set_due(&mut self, deadline_ns: TimestampNs, seq: u64) {
        (self.deadline_ns, self.seq) = (deadline_ns, seq);
    }
}

/// Counters of the self-time store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTimeCounters {
    /// Spans measured.
    pub measured: u64,
    /// Entries closed early to make room in the full store (measured with the children
    /// that had arrived).
    pub evicted: u64,
}

/// Serializable state of a [`SelfTimer`] (entries in key order when serialized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelfTimeSnapshot {
    entries: Entries<Key, Entry>,
    next_seq: u64,
    counters: SelfTimeCounters,
}

/// The self-time operator: spans in, [`Observation::SelfTime`] and [`Observation::Gap`]
/// out.
#[derive(Debug, Default)]
pub struct SelfTimer {
    config: PairingConfig,
    /// Each entry due the TTL after the latest end among its span and children.
    entries: DeadlineStore<Key, Entry>,
    counters: SelfTimeCounters,
    peers: PeerNames,
}

impl SelfTimer {
    /// A store that waits `config.ttl_ms` for children and holds at most
    /// `config.max_pending` spans.
    pub fn new(config: PairingConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Counters so far.
    pub fn counters(&self) -> SelfTimeCounters {
        self.counters
    }

    fn deadline(&self, time_ns: TimestampNs) -> TimestampNs {
        time_ns.saturating_add(self.config.ttl_ms.saturating_mul(1_000_000))
    }

    /// The entry of `key`, new or with its deadline moved to `time_ns` + TTL when that is
    /// later; making room in a full store measures the entry due first into `out`.
    fn entry(&mut self, key: Key, time_ns: TimestampNs, out: &mut Vec<Observation>) -> &mut Entry {
        if self.entries.full_without(&key, self.config.max_pending) {
            // The entries due first (all of them due at that instant) closed now, as if
            // the watermark had reached their deadline: measured with the children they
            // have. The earliest queued deadline may be a stale item's, which closes
            // nothing.
            while let Some(deadline_ns) = self.entries.earliest_queued() {
                let closed = self.close_due(deadline_ns, out);
                if closed > 0 {
                    self.counters.evicted += closed;
                    break;
                }
            }
        }
        let deadline_ns = self.deadline(time_ns);
        self.entries.due_by(key, deadline_ns, |deadline_ns, seq| Entry {
            own: None,
            children: Vec::new(),
            deadline_ns,
            seq,
        })
    }

    /// Measures and removes every entry due by `event_time`; how many.
    fn close_due(&mut self, event_time: TimestampNs, out: &mut Vec<Observation>) -> u64 {
        let mut due = Vec::new();
        while let Some((key, entry)) = self.entries.next_due(event_time) {
            due.push((entry.own.as_ref().map_or((0, Reverse(0)), |o| (o.end_ns, Reverse(o.start_ns))), key));
        }
        // Calls before the requests they were made for, whatever order the spans came
        // in: a call reads its request's status and its other calls. A request may end in
        // the very instant its last call does (a handler returning the moment a wrong
        // answer comes; timestamps in milliseconds), so of two ending together, the one
        // that started later first (a call starts after its request), and of two with the
        // same interval, the one deeper in its trace.
        let entries = &self.entries;
        let depth = |&(trace, span): &Key| {
            let mut at = span;
            let mut depth = 0;
            while let Some(parent) = entries.get(&(trace, at)).and_then(|e| e.own.as_ref()?.parent) {
                if !entries.contains_key(&(trace, parent)) {
                    break;
                }
                (at, depth) = (parent, depth + 1);
            }
            depth
        };
        due.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| depth(y).cmp(&depth(x))));
        let closed = due.len() as u64;
        for (_, key) in due {
            let Entry { own, mut children, .. } = self.entries.remove(&key).expect("queued once");
            if let Some(own) = &own {
                self.measure(key.0, own, &mut children, out);
            }
        }
        closed
    }

    /// Measures a span whose children had their time to arrive.
    fn measure(&mut self, trace: TraceId, own: &Own, children: &mut [Child], out: &mut Vec<Observation>) {
        self.counters.measured += 1;
        children.sort_by_key(|c| (c.start_ns, c.end_ns));
        let exclusive = own.end_ns.saturating_sub(own.start_ns).saturating_sub(covered(own, children));
        let elsewhere = |c: &Child| c.service != own.service;
        let callee = children.iter().find(|c| elsewhere(c)).map(|c| c.service.clone());
        // The request this call was made for: the parent, when it is in this service.
        // Only a span with a callee elsewhere can be a call, and only a client or
        // kind-less one, so only theirs is looked up (in a loaded store a lookup is a
        // cache miss).
        let request = own
            .parent
            .filter(|_| callee.is_some() && matches!(own.kind, SpanKind::Client | SpanKind::Unspecified))
            .and_then(|p| self.entries.get(&(trace, p)))
            .filter(|e| e.own.as_ref().is_some_and(|p| p.service == own.service));
        let client_like = match own.kind {
            SpanKind::Client => true,
            SpanKind::Unspecified => callee.is_some() && children.iter().all(elsewhere) && request.is_some(),
            _ => false,
        };
        let calls_out = own.kind == SpanKind::Client || (own.kind == SpanKind::Unspecified && own.outbound);
        let gap = |callee, failed_after| Observation::Gap {
            caller: own.service.clone(),
            callee,
            time_ns: own.end_ns,
            gap_ns: exclusive,
            failed_after,
        };
        match (own.kind, client_like, callee) {
            (SpanKind::Producer, ..) => {}
            // A call no instrumented span answered: the whole of it is the caller's wait.
            // Its caller's failures right after are not held against the peer: a handler
            // failing in its own code after its last query would blame the database.
            (_, _, None) if calls_out => {
                if let Some(peer) = &own.peer {
                    out.push(gap(ServiceId::virtual_node(peer.clone()), false));
                }
            }
            (_, true, Some(callee)) => {
                let failed_after = request.is_some_and(|r| {
                    let failed = r.own.as_ref().is_some_and(|p| p.failed);
                    failed && !own.failed && failed_on(&r.children, own.start_ns, own.end_ns)
                });
                out.push(gap(callee, failed_after));
            }
            _ => {
                out.push(Observation::SelfTime {
                    service: own.service.clone(),
                    time_ns: own.end_ns,
                    self_ns: exclusive,
                });
                if own.kind == SpanKind::Unspecified {
                    for (i, c) in children.iter().enumerate().filter(|(_, c)| elsewhere(c)) {
                        out.push(Observation::Gap {
                            caller: own.service.clone(),
                            callee: c.service.clone(),
                            time_ns: c.end_ns,
                            gap_ns: idle_around(own, children, i),
                            failed_after: own.failed
                                && !c.failed
                                && failed_on(children, c.start_ns, c.end_ns),
                        });
                    }
                }
            }
        }
    }
}

/// Whether a failed request's failure was the answer of its call from `start_ns` to
/// `end_ns` (one of `calls`): none of its calls failed and none started after that one
/// ended.
fn failed_on(calls: &[Child], start_ns: TimestampNs, end_ns: TimestampNs) -> bool {
    calls.iter().all(|c| !c.failed && (c.start_ns < end_ns || (c.start_ns, c.end_ns) == (start_ns, end_ns)))
}

/// Nanoseconds of `own` covered by at least one child (children sorted by start).
fn covered(own: &Own, children: &[Child]) -> u64 {
    let mut total = 0;
    let mut reach = own.start_ns;
    for c in children {
        let (start, end) = (c.start_ns.max(reach), c.end_ns.min(own.end_ns));
        if end > start {
            total += end - start;
            reach = end;
        }
    }
    total
}

/// The caller's idle time right before and after child `i`: back to the latest end of an
/// earlier child (or the span's start), on to the next child's start (or the span's end).
fn idle_around(own: &Own, children: &[Child], i: usize) -> u64 {
    let c = &children[i];
    let before = children[..i].iter().map(|o| o.end_ns).filter(|&e| e <= c.start_ns).max();
    let after = children[i + 1..].iter().map(|o| o.start_ns).find(|&s| s >= c.end_ns);
    let before = c.start_ns.saturating_sub(before.unwrap_or(own.start_ns).max(own.start_ns));
    let after = after.unwrap_or(own.end_ns).min(own.end_ns).saturating_sub(c.end_ns);
    before + after
}

impl Operator for SelfTimer {
    type In = Span;
    type Out = Observation;
    type Ctx = ();
    type Snapshot = SelfTimeSnapshot;

    fn on_event(&mut self, _: &(), span: &Span, out: &mut Vec<Observation>) {
        let service = ServiceId::service(span.service.clone(), span.region.clone());
        if let Some(parent) = span.parent_span_id {
            let child = Child {
                service: service.clone(),
                kind: span.kind,
                start_ns: span.start_ns,
                end_ns: span.end_ns,
                failed: span.failed,
            };
            self.entry((span.trace_id, parent), span.end_ns, out).children.push(child);
        }
        let own = Own {
            service,
            kind: span.kind,
            start_ns: span.start_ns,
            end_ns: span.end_ns,
            parent: span.parent_span_id,
            failed: span.failed,
            outbound: span.peer.outbound_name().is_some()
                || (span.peer.messaging_destination.is_some() && span.links.is_empty()),
            peer: peer_name(span).map(|name| self.peers.get(name)),
        };
        self.entry((span.trace_id, span.span_id), span.end_ns, out).own = Some(own);
    }

    fn on_watermark(&mut self, _: &(), event_time: TimestampNs, out: &mut Vec<Observation>) {
        self.close_due(event_time, out);
    }

    fn snapshot(&self) -> SelfTimeSnapshot {
        let (entries, next_seq) = self.entries.snapshot();
        SelfTimeSnapshot { entries, next_seq, counters: self.counters }
    }

    fn restore(&mut self, s: SelfTimeSnapshot) {
        self.entries = DeadlineStore::restored(s.entries, s.next_seq);
        self.counters = s.counters;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use devloom_schemas::PeerAttributes;

    use super::*;

    /// A span of `service` from `start_ms` to `end_ms`.
    fn span(id: u64, parent: Option<u64>, service: &str, kind: SpanKind, start_ms: u64, end_ms: u64) -> Span {
        Span {
            trace_id: TraceId(1),
            span_id: SpanId(id),
            parent_span_id: parent.map(SpanId),
            links: vec![],
            service: Arc::from(service),
            region: None,
            version: None,
            environment: None,
            kind,
            name: "op".into(),
            start_ns: start_ms * 1_000_000,
            end_ns: end_ms * 1_000_000,
            failed: false,
            peer: PeerAttributes::default(),
        }
    }

    /// What `spans` give once their children had their time.
    fn observe(spans: &[Span]) -> Vec<Observation> {
        let mut timer =
            SelfTimer::new(PairingConfig { ttl_ms: 1_000, max_pending: 100, ..PairingConfig::default() });
        let mut out = Vec::new();
        for s in spans {
            timer.on_event(&(), s, &mut out);
        }
        assert!(out.is_empty(), "nothing before the children had their time");
        timer.on_watermark(&(), 10_000_000_000, &mut out);
        out
    }

    /// (what, service or edge, milliseconds), sorted.
    fn measure(spans: &[Span]) -> Vec<(&'static str, String, u64)> {
        let mut found: Vec<_> = observe(spans)
            .into_iter()
            .map(|o| match o {
                Observation::SelfTime { service, self_ns, .. } => {
                    ("self", service.to_string(), self_ns / 1_000_000)
                }
                Observation::Gap { caller, callee, gap_ns, .. } => {
                    ("gap", format!("{caller}→{callee}"), gap_ns / 1_000_000)
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        found.sort();
        found
    }

    /// frontend serves 0–100 ms; calls cart 10–60 ms (cart serves 15–55, queries
    /// 20–40 with an internal span) and, concurrently, ads 30–70 ms (served 32–68).
    fn shop_trace(kind: impl Fn(SpanKind) -> SpanKind) -> Vec<Span> {
        vec![
            span(4, Some(3), "cart", kind(SpanKind::Internal), 20, 40),
            span(3, Some(2), "cart", kind(SpanKind::Server), 15, 55),
            span(2, Some(1), "frontend", kind(SpanKind::Client), 10, 60),
            span(6, Some(5), "ads", kind(SpanKind::Server), 32, 68),
            span(5, Some(1), "frontend", kind(SpanKind::Client), 30, 70),
            span(1, None, "frontend", kind(SpanKind::Server), 0, 100),
        ]
    }

    #[test]
    fn self_time_excludes_the_union_of_children_and_clients_measure_the_wire() {
        let expected = vec![
            ("gap", "frontend→ads".to_string(), 4),
            ("gap", "frontend→cart".to_string(), 10),
            ("self", "ads".to_string(), 36),
            ("self", "cart".to_string(), 20),
            ("self", "cart".to_string(), 20),
            // 100 ms minus 10–70 (two overlapping calls): 40, not 100 − 50 − 40.
            ("self", "frontend".to_string(), 40),
        ];
        assert_eq!(measure(&shop_trace(|k| k)), expected);
        let mut reversed = shop_trace(|k| k);
        reversed.reverse();
        assert_eq!(measure(&reversed), expected, "parents first: same result");
        assert_eq!(
            measure(&shop_trace(|_| SpanKind::Unspecified)),
            expected,
            "kinds stripped: a span in its caller's service whose children are all elsewhere is a client"
        );
    }

    #[test]
    fn server_only_traces_give_the_wait_around_each_call_to_its_edge() {
        // web serves 0–100 ms and calls db-api 20–50 and auth 60–90 with no client spans.
        let spans = [
            span(1, None, "web", SpanKind::Unspecified, 0, 100),
            span(2, Some(1), "db-api", SpanKind::Unspecified, 20, 50),
            span(3, Some(1), "auth", SpanKind::Unspecified, 60, 90),
        ];
        assert_eq!(
            measure(&spans),
            vec![
                ("gap", "web→auth".to_string(), 20),
                ("gap", "web→db-api".to_string(), 30),
                ("self", "auth".to_string(), 30),
                ("self", "db-api".to_string(), 30),
                ("self", "web".to_string(), 40),
            ]
        );
    }

    /// The edges whose gap says the caller failed on the answer, in the trace where web
    /// serves 0–100 ms (failing or not) and calls auth 10–40 then api 50–90 (the call
    /// failing or not), with client spans, kind-less ones, or server spans only.
    fn failed_after(web_failed: bool, api_failed: bool) -> Vec<Vec<String>> {
        use SpanKind::{Client, Server, Unspecified as Unset};
        let with_clients = vec![
            span(1, None, "web", Server, 0, 100),
            span(2, Some(1), "web", Client, 10, 40),
            span(3, Some(2), "auth", Server, 12, 38),
            span(4, Some(1), "web", Client, 50, 90),
            span(5, Some(4), "api", Server, 52, 88),
        ];
        let kind_less: Vec<Span> = with_clients.iter().map(|s| Span { kind: Unset, ..s.clone() }).collect();
        let server_only = vec![
            span(1, None, "web", Unset, 0, 100),
            span(3, Some(1), "auth", Unset, 12, 38),
            span(5, Some(1), "api", Unset, 52, 88),
        ];
        let shapes = [with_clients, kind_less, server_only];
        shapes
            .into_iter()
            .map(|shape| {
                let mut timer = SelfTimer::new(PairingConfig { ttl_ms: 1_000, ..PairingConfig::default() });
                let mut out = Vec::new();
                for mut s in shape {
                    let request = s.parent_span_id.is_none();
                    let api_call = s.span_id == SpanId(4)
                        || (&*s.service == "api" && s.parent_span_id == Some(SpanId(1)));
                    s.failed = (request && web_failed) || (api_call && api_failed);
                    timer.on_event(&(), &s, &mut out);
                }
                timer.on_watermark(&(), 10_000_000_000, &mut out);
                out.into_iter()
                    .filter_map(|o| match o {
                        Observation::Gap { caller, callee, failed_after: true, .. } => {
                            Some(format!("{caller}→{callee}"))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_failed_request_failed_on_its_last_call_when_no_call_failed() {
        let last = vec!["web→api".to_string()];
        assert_eq!(failed_after(true, false), vec![last.clone(), last.clone(), last], "api answered last");
        assert_eq!(
            failed_after(true, true),
            vec![Vec::<String>::new(); 3],
            "api failed: its failure, passed on"
        );
        assert_eq!(failed_after(false, false), vec![Vec::<String>::new(); 3], "web did not fail");
    }

    #[test]
    fn a_request_ending_with_its_last_call_is_measured_after_it() {
        // Milliseconds-precision exports (and a handler returning the moment a wrong
        // answer comes) end a request in the same instant as its last call; here the
        // request is also queued before that call. The call must still find its request.
        use SpanKind::{Client, Server, Unspecified as Unset};
        let blamed = |spans: &[Span]| -> Vec<String> {
            observe(spans)
                .into_iter()
                .filter_map(|o| match o {
                    Observation::Gap { caller, callee, failed_after: true, .. } => {
                        Some(format!("{caller}→{callee}"))
                    }
                    _ => None,
                })
                .collect()
        };
        let mut web = span(1, None, "web", Server, 0, 90);
        web.failed = true;
        let spans = vec![
            span(2, Some(1), "web", Client, 10, 40),
            span(3, Some(2), "auth", Server, 12, 38),
            span(5, Some(4), "api", Server, 52, 88),
            span(4, Some(1), "web", Client, 50, 90),
            web,
        ];
        let kind_less: Vec<Span> = spans.iter().map(|s| Span { kind: Unset, ..s.clone() }).collect();
        // The servers' spans last (their exporter is slower), and everything reversed.
        let servers_last: Vec<Span> = [0, 3, 4, 1, 2].iter().map(|&i| spans[i].clone()).collect();
        let reversed: Vec<Span> = spans.iter().rev().cloned().collect();
        for shape in [spans, kind_less, servers_last, reversed] {
            assert_eq!(blamed(&shape), ["web→api"]);
        }
        // A request whose one call spans all of it, to the millisecond.
        let mut mid = span(1, None, "mid", Server, 50, 90);
        mid.failed = true;
        let spans =
            vec![span(2, Some(1), "mid", Client, 50, 90), span(3, Some(2), "api", Server, 52, 88), mid];
        let kind_less: Vec<Span> = spans.iter().map(|s| Span { kind: Unset, ..s.clone() }).collect();
        for shape in [spans, kind_less] {
            assert_eq!(blamed(&shape), ["mid→api"]);
        }
    }

    #[test]
    fn producers_give_nothing_and_a_call_no_span_answered_is_all_wire() {
        let with_peer = |mut s: Span, peer: PeerAttributes| {
            s.peer = peer;
            s
        };
        let postgres = PeerAttributes {
            db_system: Some("postgresql".into()),
            server_address: Some("orders-db".into()),
            ..PeerAttributes::default()
        };
        let payments = PeerAttributes { peer_service: Some("payments".into()), ..PeerAttributes::default() };
        let spans = [
            span(1, None, "orders", SpanKind::Server, 0, 30),
            span(2, Some(1), "orders", SpanKind::Producer, 2, 3),
            // A client span naming nothing, a query, and a kind-less call to a named peer.
            span(3, Some(1), "orders", SpanKind::Client, 4, 8),
            with_peer(span(4, Some(1), "orders", SpanKind::Client, 10, 14), postgres.clone()),
            with_peer(span(5, Some(1), "orders", SpanKind::Unspecified, 15, 22), payments),
        ];
        assert_eq!(
            measure(&spans),
            vec![
                ("gap", "orders→orders-db".to_string(), 4),
                ("gap", "orders→payments".to_string(), 7),
                ("self", "orders".to_string(), 14),
            ]
        );
        // A request failing right after its last call does not blame the peer.
        let mut failing = spans.to_vec();
        failing[0].failed = true;
        let out = observe(&failing);
        let blamed: Vec<bool> = out
            .iter()
            .filter_map(|o| match o {
                Observation::Gap { callee, failed_after, .. } if callee.virtual_node => Some(*failed_after),
                _ => None,
            })
            .collect();
        assert_eq!(blamed, [false, false], "{out:?}");
        // Pairing's virtual node, by the same name: the wire and the calls meet on one edge.
        let mut pairer = crate::SpanPairer::default();
        let mut out = Vec::new();
        pairer.on_event(
            &(),
            &with_peer(span(4, Some(1), "orders", SpanKind::Client, 10, 14), postgres),
            &mut out,
        );
        assert!(out.iter().any(|o| matches!(o, Observation::Call { callee, .. } if callee.to_string() == "orders-db" && callee.virtual_node)));
    }

    /// Observations of `traces` two-span requests (web serving 0–100 ms, api 20–60 ms
    /// of it), one every 100 ms, the call's span first, through a store of `max_pending`
    /// with the engine's watermark (2 s behind); sorted, as text.
    fn through_store(traces: u64, max_pending: usize) -> (Vec<String>, SelfTimeCounters) {
        let mut timer =
            SelfTimer::new(PairingConfig { ttl_ms: 5_000, max_pending, ..PairingConfig::default() });
        let mut out = Vec::new();
        for t in 0..traces {
            let at = t * 100;
            for s in [
                span(2, Some(1), "api", SpanKind::Server, at + 20, at + 60),
                span(1, None, "web", SpanKind::Server, at, at + 100),
            ] {
                timer.on_event(&(), &Span { trace_id: TraceId(u128::from(t)), ..s }, &mut out);
            }
            timer.on_watermark(&(), (at + 100).saturating_sub(2_000) * 1_000_000, &mut out);
        }
        timer.on_watermark(&(), u64::MAX, &mut out);
        let mut seen: Vec<String> = out.iter().map(|o| format!("{o:?}")).collect();
        seen.sort();
        (seen, timer.counters())
    }

    #[test]
    fn a_full_store_measures_the_span_due_first_early_instead_of_losing_it() {
        // 200 requests, 7 s of each in the store at 10 requests/s: 140 entries wanted.
        let (roomy, counters) = through_store(200, 1_000);
        assert_eq!(counters, SelfTimeCounters { measured: 400, evicted: 0 });
        // Ten entries: each is closed half a second in, its child long there. Dropping
        // the oldest instead would have measured only the last ten.
        let (full, counters) = through_store(200, 10);
        assert_eq!(counters, SelfTimeCounters { measured: 400, evicted: 390 });
        assert_eq!(full, roomy);
        assert!(roomy.iter().any(|o| o.contains("SelfTime") && o.contains("self_ns: 60000000")), "{roomy:?}");
    }

    #[test]
    fn snapshot_restore_round_trip() {
        let spans = shop_trace(|k| k);
        let mut first =
            SelfTimer::new(PairingConfig { ttl_ms: 1_000, max_pending: 100, ..PairingConfig::default() });
        let mut out = Vec::new();
        for s in &spans[..3] {
            first.on_event(&(), s, &mut out);
        }
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let mut second = SelfTimer::default();
        second.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(second.snapshot(), first.snapshot());
        // Earlier builds also saved the deadline queue (now rebuilt from the entries), as
        // `[deadline, seq, key]` items, here in a heap's order (unsorted).
        let mut earlier: serde_json::Value = serde_json::from_str(&json).unwrap();
        let queue: Vec<_> = earlier["entries"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|e| serde_json::json!([e[1]["deadline_ns"], e[1]["seq"], e[0]]))
            .collect();
        earlier["queue"] = serde_json::Value::Array(queue);
        assert_eq!(serde_json::from_value::<SelfTimeSnapshot>(earlier).unwrap(), first.snapshot());
        for s in &spans[3..] {
            second.on_event(&(), s, &mut out);
        }
        second.on_watermark(&(), 10_000_000_000, &mut out);
        assert_eq!(out.len(), 6);
        assert_eq!(second.counters().measured, 6);
    }
}
