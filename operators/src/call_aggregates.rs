//! Call aggregates: what pairing and self-time measurement learned from spans, summed
//! per subject (a service's requests, an edge's calls, a service's self time, an edge's
//! network gap, a release's requests) and event-time bucket.
//!
//! Everything after pairing reads spans only through these sums: the graph's windows
//! are buckets of the same width, and DDSketch sketches merge exactly, so the graph holds
//! the same counts and percentiles as if it had recorded every call. A bucket is handed
//! on once the watermark has passed its end (late calls follow as a further aggregate of
//! the same bucket), which is when the graph's health tick reads it. The sums are
//! commutative, so aggregates of traces paired on different instances (partitioned by
//! trace id) add up to what one instance pairing every trace hands on.

use std::sync::Arc;

use devloom_schemas::{Span, SpanKind, TimestampNs};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use crate::operator::Operator;
use crate::rollout::RolloutConfig;
use crate::service_graph::{GraphConfig, LatencyHistogram};
use crate::service_id::ServiceId;
use crate::span_pairing::{Observation, Release};

/// What an aggregate sums.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// Requests a service or virtual node served.
    Requests {
        /// Who served them.
        service: ServiceId,
    },
    /// Calls from a caller to a callee.
    Calls {
        /// Calling service.
        caller: ServiceId,
        /// Called service or virtual node.
        callee: ServiceId,
        /// Producer → consumer hand-offs.
        asynchronous: bool,
    },
    /// Exclusive time of a service's spans.
    SelfTime {
        /// Whose work it was.
        service: ServiceId,
    },
    /// Time on the wire of an edge's calls; failures are calls whose caller's request
    /// failed on the answer.
    Gaps {
        /// Calling service.
        caller: ServiceId,
        /// Called service.
        callee: ServiceId,
    },
    /// Requests one release of a service served, for the rollout analysis.
    Release {
        /// `service.name`.
        service: Arc<str>,
        /// `deployment.environment.name`.
        environment: Option<Arc<str>>,
        /// `service.version`.
        version: Arc<str>,
    },
}

/// One subject's observations in one bucket.
#[derive(Clone, Serialize, Deserialize)]
pub struct CallAggregate {
    /// What is summed.
    pub subject: Subject,
    /// Start of the bucket, event time.
    pub bucket_ns: TimestampNs,
    /// Observations.
    pub count: u64,
    /// Failed ones.
    pub failures: u64,
    /// Earliest observation's time.
    pub first_ns: TimestampNs,
    /// Latest observation's time.
    pub last_ns: TimestampNs,
    /// Latencies (self times, gaps), milliseconds.
    pub latency_ms: DDSketch,
    /// The bucket boundary the watermark crossed when it was handed on: the graph
    /// applies it just before its own health tick there, however far ahead of the
    /// other pairing instances the one that made it was.
    #[serde(default)]
    pub handed_ns: TimestampNs,
    /// Calls only: what the caller saw and the callee's span took, as the never-windowed
    /// edge totals count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<Box<CallTotals>>,
}

/// Latency histograms of calls, client and server side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallTotals {
    /// Latency the caller saw.
    pub client: LatencyHistogram,
    /// Duration of the callee's span.
    pub server: LatencyHistogram,
}

/// Equal when every field is; the sketch (which has no `PartialEq`) by its stored form.
impl PartialEq for CallAggregate {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.subject,
            self.bucket_ns,
            self.count,
            self.failures,
            self.first_ns,
            self.last_ns,
            self.handed_ns,
        ) == (
            &other.subject,
            other.bucket_ns,
            other.count,
            other.failures,
            other.first_ns,
            other.last_ns,
            other.handed_ns,
        ) && self.totals == other.totals
            && serde_json::to_value(&self.latency_ms).ok() == serde_json::to_value(&other.latency_ms).ok()
    }
}

impl std::fmt::Debug for CallAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallAggregate")
            .field("subject", &self.subject)
            .field("bucket_ns", &self.bucket_ns)
            .field("count", &self.count)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl CallAggregate {
    fn new(subject: Subject, bucket_ns: TimestampNs, time_ns: TimestampNs) -> Self {
        let totals = matches!(subject, Subject::Calls { .. }).then(Box::default);
        Self {
            subject,
            bucket_ns,
            count: 0,
            failures: 0,
            first_ns: time_ns,
            last_ns: time_ns,
            latency_ms: DDSketch::new(SketchConfig::defaults()),
            handed_ns: 0,
            totals,
        }
    }

    fn add(&mut self, time_ns: TimestampNs, latency_ns: u64, failed: bool) {
        self.count += 1;
        self.failures += u64::from(failed);
        self.first_ns = self.first_ns.min(time_ns);
        self.last_ns = self.last_ns.max(time_ns);
        self.latency_ms.add(latency_ns as f64 / 1e6);
    }
}

/// Bucket widths: the graph's window bucket for services and edges, the rollout
/// analysis's bucket for releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregateBuckets {
    /// `engine.graph.window.bucket_ms`, nanoseconds.
    pub graph_ns: u64,
    /// `engine.rollouts.bucket_ms`, nanoseconds.
    pub release_ns: u64,
}

impl AggregateBuckets {
    /// The widths `graph` and `rollouts` bucket by.
    pub fn new(graph: &GraphConfig, rollouts: &RolloutConfig) -> Self {
        Self {
            graph_ns: graph.window.bucket_ms.saturating_mul(1_000_000),
            release_ns: rollouts.bucket_ms.saturating_mul(1_000_000),
        }
    }
}

impl Default for AggregateBuckets {
    fn default() -> Self {
        Self::new(&GraphConfig::default(), &RolloutConfig::default())
    }
}

/// Serializable state of a [`CallAggregator`]: the open aggregates, in hand-on order,
/// and the boundaries last handed on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AggregatorSnapshot {
    open: Vec<CallAggregate>,
    handed: [TimestampNs; 2],
}

/// Sums observations into aggregates and hands on, whenever the watermark crosses a
/// bucket boundary, every aggregate whose bucket ended by then (a late part of an older
/// bucket waits for the next boundary too, so what reaches the graph before a tick does
/// not depend on when each instance's watermark moved).
#[derive(Debug)]
pub struct CallAggregator {
    buckets: AggregateBuckets,
    open: FxHashMap<(TimestampNs, Subject), CallAggregate>,
    /// The boundary last handed on: graph buckets, release buckets.
    handed: [TimestampNs; 2],
}

impl CallAggregator {
    /// An aggregator with these bucket widths (each at least 1 ns).
    pub fn new(buckets: AggregateBuckets) -> Self {
        let buckets =
            AggregateBuckets { graph_ns: buckets.graph_ns.max(1), release_ns: buckets.release_ns.max(1) };
        Self { buckets, open: FxHashMap::default(), handed: [0; 2] }
    }

    fn width(&self, subject: &Subject) -> u64 {
        self.widths()[usize::from(matches!(subject, Subject::Release { .. }))]
    }

    fn widths(&self) -> [u64; 2] {
        [self.buckets.graph_ns, self.buckets.release_ns]
    }

    fn add(
        &mut self,
        subject: Subject,
        time_ns: TimestampNs,
        latency_ns: u64,
        failed: bool,
    ) -> &mut CallAggregate {
        let width = self.width(&subject);
        let bucket_ns = time_ns - time_ns % width;
        let aggregate = self
            .open
            .entry((bucket_ns, subject))
            .or_insert_with_key(|(bucket, subject)| CallAggregate::new(subject.clone(), *bucket, time_ns));
        aggregate.add(time_ns, latency_ns, failed);
        aggregate
    }

    /// A server or consumer span naming its `service.version`: one request its release
    /// served. (A kind-less span's release comes with the request pairing finds it
    /// served.)
    pub fn on_span(&mut self, span: &Span) {
        if let (SpanKind::Server | SpanKind::Consumer, Some(version)) = (span.kind, &span.version) {
            let subject = Subject::Release {
                service: span.service.clone(),
                environment: span.environment.clone(),
                version: version.clone(),
            };
            self.add(subject, span.end_ns, span.duration_ns(), span.failed);
        }
    }

    fn release(
        &mut self,
        service: &ServiceId,
        release: &Release,
        time_ns: TimestampNs,
        latency_ns: u64,
        failed: bool,
    ) {
        let subject = Subject::Release {
            service: service.name.clone(),
            environment: release.environment.clone(),
            version: release.version.clone(),
        };
        self.add(subject, time_ns, latency_ns, failed);
    }
}

impl Operator for CallAggregator {
    type In = Observation;
    type Out = CallAggregate;
    type Ctx = ();
    type Snapshot = AggregatorSnapshot;

    fn on_event(&mut self, _: &(), obs: &Observation, _out: &mut Vec<CallAggregate>) {
        match obs {
            Observation::Request { service, time_ns, latency_ns, failed, release } => {
                if let Some(release) = release {
                    self.release(service, release, *time_ns, *latency_ns, *failed);
                }
                self.add(Subject::Requests { service: service.clone() }, *time_ns, *latency_ns, *failed);
            }
            Observation::Call { caller, callee, time_ns, latency_ns, server_ns, failed, asynchronous } => {
                let subject = Subject::Calls {
                    caller: caller.clone(),
                    callee: callee.clone(),
                    asynchronous: *asynchronous,
                };
                let aggregate = self.add(subject, *time_ns, *latency_ns, *failed);
                if let Some(totals) = &mut aggregate.totals {
                    totals.client.record(*latency_ns);
                    totals.server.record(*server_ns);
                }
            }
            Observation::SelfTime { service, time_ns, self_ns } => {
                self.add(Subject::SelfTime { service: service.clone() }, *time_ns, *self_ns, false);
            }
            Observation::Gap { caller, callee, time_ns, gap_ns, failed_after } => {
                let subject = Subject::Gaps { caller: caller.clone(), callee: callee.clone() };
                self.add(subject, *time_ns, *gap_ns, *failed_after);
            }
        }
    }

    /// At a bucket boundary, hands on every aggregate whose bucket ended by then, oldest
    /// bucket first, then by subject.
    fn on_watermark(&mut self, _: &(), event_time: TimestampNs, out: &mut Vec<CallAggregate>) {
        let start = out.len();
        for (kind, width) in self.widths().into_iter().enumerate() {
            let boundary = event_time - event_time % width;
            if boundary <= self.handed[kind] {
                continue;
            }
            self.handed[kind] = boundary;
            let due = |(bucket, subject): &(TimestampNs, Subject), _: &mut CallAggregate| {
                usize::from(matches!(subject, Subject::Release { .. })) == kind
                    && bucket.saturating_add(width) <= boundary
            };
            out.extend(self.open.extract_if(due).map(|(_, a)| CallAggregate { handed_ns: boundary, ..a }));
        }
        out[start..].sort_unstable_by(|a, b| (a.bucket_ns, &a.subject).cmp(&(b.bucket_ns, &b.subject)));
    }

    fn snapshot(&self) -> AggregatorSnapshot {
        let mut open: Vec<_> = self.open.iter().collect();
        open.sort_by(|a, b| a.0.cmp(b.0));
        AggregatorSnapshot { open: open.into_iter().map(|(_, a)| a.clone()).collect(), handed: self.handed }
    }

    fn restore(&mut self, snapshot: AggregatorSnapshot) {
        self.open = snapshot.open.into_iter().map(|a| ((a.bucket_ns, a.subject.clone()), a)).collect();
        self.handed = snapshot.handed;
    }
}

/// The aggregates one observation makes alone (default widths), handed on at once: how
/// tests build graphs call by call.
#[cfg(test)]
pub(crate) fn alone(obs: &Observation) -> Vec<CallAggregate> {
    let mut calls = CallAggregator::new(AggregateBuckets::default());
    let mut out = Vec::new();
    calls.on_event(&(), obs, &mut out);
    calls.on_watermark(&(), TimestampNs::MAX, &mut out);
    out
}

/// [`alone`] for a span's release.
#[cfg(test)]
pub(crate) fn span_alone(span: &Span) -> Vec<CallAggregate> {
    let mut calls = CallAggregator::new(AggregateBuckets::default());
    let mut out = Vec::new();
    calls.on_span(span);
    calls.on_watermark(&(), TimestampNs::MAX, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use devloom_schemas::HealthState;

    use super::*;
    use crate::service_graph::{Health, HealthChange, ServiceGraph};

    const S: u64 = 1_000_000_000;

    fn id(name: &str) -> ServiceId {
        ServiceId::service(Arc::from(name), None)
    }

    /// Twenty minutes of web → api → db, db slowing down and failing from minute 15; a
    /// few calls arrive late (behind the bucket they belong to).
    fn stream() -> Vec<Observation> {
        let mut out = Vec::new();
        let mut x: u64 = 11;
        for i in 0..12_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let late = if x.is_multiple_of(97) { 4 * S } else { 0 };
            let t = 100 * S + i * S / 10 - late;
            let bad = i > 9_000 && x % 5 < 2;
            let ms = 2 + (x >> 40) % 8 + if bad { 150 } else { 0 };
            for (caller, callee, latency) in [("web", "api", ms + 3), ("api", "db", ms)] {
                out.push(Observation::Call {
                    caller: id(caller),
                    callee: id(callee),
                    time_ns: t,
                    latency_ns: latency * 1_000_000,
                    server_ns: (latency - 1) * 1_000_000,
                    failed: bad && callee == "db",
                    asynchronous: false,
                });
                out.push(Observation::Request {
                    service: id(callee),
                    time_ns: t,
                    latency_ns: latency * 1_000_000,
                    failed: bad,
                    release: None,
                });
                out.push(Observation::Gap {
                    caller: id(caller),
                    callee: id(callee),
                    time_ns: t,
                    gap_ns: 300_000,
                    failed_after: false,
                });
            }
            out.push(Observation::SelfTime { service: id("db"), time_ns: t, self_ns: ms * 1_000_000 });
        }
        out
    }

    /// Every node's and edge's health, by name.
    fn health(g: &ServiceGraph) -> Vec<(String, Health)> {
        let gr = g.graph();
        let mut out: Vec<_> = gr.node_indices().map(|i| (gr[i].id.to_string(), gr[i].health)).collect();
        for e in gr.edge_indices() {
            let (a, b) = gr.edge_endpoints(e).expect("listed");
            out.push((format!("{} -> {}", gr[a].id, gr[b].id), gr[e].health));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The graph fed `shards` aggregators, each given the observations `shard_of` picks
    /// for it; each hands on at a watermark 2 s behind the newest time it saw, and the
    /// graph ticks at the minimum over them once every one has handed on.
    fn run(observations: &[Observation], shards: usize) -> (Vec<HealthChange>, Vec<(String, Health)>) {
        let mut aggregators: Vec<_> =
            (0..shards).map(|_| CallAggregator::new(AggregateBuckets::default())).collect();
        let mut graph = ServiceGraph::default();
        let mut changes = Vec::new();
        let mut handed = Vec::new();
        let mut newest = 0;
        for (n, obs) in observations.iter().enumerate() {
            let time = match obs {
                Observation::Call { time_ns, .. }
                | Observation::Request { time_ns, .. }
                | Observation::Gap { time_ns, .. }
                | Observation::SelfTime { time_ns, .. } => *time_ns,
            };
            aggregators[n / 7 % shards].on_event(&(), obs, &mut handed);
            if time > newest + S {
                newest = time;
                let watermark = newest - 2 * S;
                for a in &mut aggregators {
                    a.on_watermark(&(), watermark, &mut handed);
                }
                handed.sort_by(|a, b| (a.bucket_ns, &a.subject).cmp(&(b.bucket_ns, &b.subject)));
                for a in handed.drain(..) {
                    graph.on_event(&(), &a, &mut changes);
                }
                graph.on_watermark(&(), watermark, &mut changes);
            }
        }
        (changes, health(&graph))
    }

    #[test]
    fn a_graph_fed_aggregates_judges_as_one_fed_every_call() {
        let observations = stream();
        let mut one_by_one = ServiceGraph::default();
        let mut changes = Vec::new();
        let mut newest = 0;
        for obs in &observations {
            one_by_one.observe(obs);
            let Observation::SelfTime { time_ns, .. } = obs else { continue };
            if *time_ns > newest + S {
                newest = *time_ns;
                one_by_one.on_watermark(&(), newest - 2 * S, &mut changes);
            }
        }
        let (from_aggregates, _) = run(&observations, 1);
        assert!(
            changes.iter().any(|c| c.service == id("db") && c.to == HealthState::Red),
            "the fault shows: {changes:?}"
        );
        // A service enters the graph with its first bucket handed on: up to a bucket
        // after a graph fed call by call shows it. Every change after that agrees.
        let known = |changes: Vec<HealthChange>| -> Vec<HealthChange> {
            changes.into_iter().filter(|c| c.from != HealthState::Unknown).collect()
        };
        // (Its windows also held the first seconds of the bucket after the tick, which
        // aggregates leave to the next tick: the counts differ, not the judgement.)
        assert_eq!(known(from_aggregates), known(changes));
    }

    #[test]
    fn aggregates_of_traces_paired_apart_add_up_to_one_pairers() {
        let observations = stream();
        let one = run(&observations, 1);
        assert_eq!(run(&observations, 3), one);
        assert_eq!(run(&observations, 6), one);
    }

    #[test]
    fn a_bucket_is_handed_on_once_the_watermark_passes_its_end_and_survives_a_snapshot() {
        let mut calls = CallAggregator::new(AggregateBuckets::default());
        let mut out = Vec::new();
        let call = |t: u64| Observation::Call {
            caller: id("web"),
            callee: id("api"),
            time_ns: t,
            latency_ns: 5_000_000,
            server_ns: 4_000_000,
            failed: t % 2 == 1,
            asynchronous: false,
        };
        for t in [11 * S, 12 * S + 1, 19 * S, 21 * S] {
            calls.on_event(&(), &call(t), &mut out);
        }
        calls.on_watermark(&(), 20 * S - 1, &mut out);
        assert!(out.is_empty(), "the 10-20 s bucket is not over");
        let mut restored = CallAggregator::new(AggregateBuckets::default());
        restored.restore(serde_json::from_str(&serde_json::to_string(&calls.snapshot()).unwrap()).unwrap());
        for calls in [&mut calls, &mut restored] {
            calls.on_watermark(&(), 20 * S, &mut out);
        }
        assert_eq!(out.len(), 2, "one aggregate each");
        let a = &out[0];
        assert_eq!((a.bucket_ns, a.count, a.failures, a.first_ns, a.last_ns), (10 * S, 3, 1, 11 * S, 19 * S));
        assert_eq!(a.totals.as_ref().unwrap().client.counts.iter().sum::<u64>(), 3);
        assert_eq!(serde_json::to_value(&out[0]).unwrap(), serde_json::to_value(&out[1]).unwrap());
        assert_eq!((calls.open.len(), restored.open.len()), (1, 1), "20-30 s still open");
        assert_eq!(out[0].handed_ns, 20 * S);

        // A late call of the bucket handed on waits for the next boundary, with the rest.
        out.clear();
        calls.on_event(&(), &call(15 * S), &mut out);
        calls.on_watermark(&(), 29 * S, &mut out);
        assert!(out.is_empty(), "between boundaries nothing is handed on");
        calls.on_watermark(&(), 30 * S, &mut out);
        let handed: Vec<_> = out.iter().map(|a| (a.bucket_ns, a.count, a.handed_ns)).collect();
        assert_eq!(handed, [(10 * S, 1, 30 * S), (20 * S, 1, 30 * S)]);
    }
}
