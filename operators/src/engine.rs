//! The operator loop: one deterministic sequence that routes normalized events through
//! the operators and drives the event-time watermark (max event time seen minus the
//! allowed lateness). The runtime feeds it; it never reads a clock.
//!
//! The operators are the [`stages!`] list below, in data-flow order: a new operator is
//! one line there (which gives it its field and its part of the snapshot) plus the
//! lines in [`Engine::on_event`] / [`Engine::advance`] that feed it. A stage may be
//! optional (`Option<…>`: the candidate stage runs only with a model).

use std::collections::{BTreeMap, VecDeque};

use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{
    Alert, CandidateList, Event, ImpactMap, PostmortemDraft, RemediationPlan, RolloutDecision, Span,
    TimestampNs, TraceId,
};
use serde::{Deserialize, Serialize};

use crate::blast_radius::{BlastConfig, BlastInput, BlastRadius};
use crate::call_aggregates::{AggregateBuckets, CallAggregate, CallAggregator};
use crate::candidates::{CandidateInput, CandidateScorer, CandidatesConfig, PastIncidents};
use crate::catalog::CatalogTracker;
use crate::incidents::{IncidentConfig, IncidentTracker, IncidentUpdate};
use crate::operator::Operator;
use crate::remediation::{RemediationConfig, RemediationPlanner};
use crate::rollout::{RolloutAnalyzer, RolloutConfig};
use crate::scorer::Scorer;
use crate::self_time::SelfTimer;
use crate::service_graph::{GraphConfig, HealthChange, ServiceGraph};
use crate::span_pairing::{Observation, PairingConfig, PairingCounters, SpanPairer};
use crate::timeline::{IncidentTimeline, TimelineConfig, TimelineInput};

/// Every operator setting; the `[engine]` table of `devloom.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How far behind the newest event time the watermark trails, milliseconds.
    pub allowed_lateness_ms: u64,
    /// An event further ahead of the newest event time than this is held aside (one
    /// span stamped in 2100 must not drag the watermark there and freeze every window),
    /// milliseconds; 0: no guard.
    pub max_future_skew_ms: u64,
    /// A span ending further behind the watermark than this is a dead letter: it is
    /// older than any window it could count in (a clock reset, a replayed backup),
    /// milliseconds; 0: no limit. Alerts and changes are never refused for their age.
    pub max_past_skew_ms: u64,
    /// Held-aside events are the new present once this many have arrived before as many
    /// on-time events did (the stream really jumped); if the on-time events get there
    /// first, the held ones are rejected as dead letters.
    pub future_confirm_events: u32,
    /// Span pairing.
    pub pairing: PairingConfig,
    /// Service graph, windows and health thresholds.
    pub graph: GraphConfig,
    /// Incident grouping.
    pub incidents: IncidentConfig,
    /// Blast radius.
    pub blast: BlastConfig,
    /// Root-cause candidates.
    pub candidates: CandidatesConfig,
    /// Remediation diffs.
    pub remediation: RemediationConfig,
    /// Incident timelines and post-mortem drafts.
    pub timeline: TimelineConfig,
    /// Staged-rollout analysis (canary vs stable).
    pub rollouts: RolloutConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: 2_000,
            max_future_skew_ms: 5 * 60_000,
            max_past_skew_ms: 3_600_000,
            future_confirm_events: 1_000,
            pairing: PairingConfig::default(),
            graph: GraphConfig::default(),
            incidents: IncidentConfig::default(),
            blast: BlastConfig::default(),
            candidates: CandidatesConfig::default(),
            remediation: RemediationConfig::default(),
            timeline: TimelineConfig::default(),
            rollouts: RolloutConfig::default(),
        }
    }
}

impl EngineConfig {
    /// Every operator's [`validate`](PairingConfig::validate), the message naming the key
    /// under `engine`.
    pub fn validate(&self) -> Result<(), String> {
        if self.future_confirm_events == 0 {
            return Err("engine.future_confirm_events must be at least 1".into());
        }
        self.pairing.validate().map_err(|e| format!("engine.pairing.{e}"))?;
        self.blast.validate().map_err(|e| format!("engine.blast.{e}"))?;
        self.graph.validate().map_err(|e| format!("engine.graph.{e}"))?;
        self.candidates.validate().map_err(|e| format!("engine.candidates.{e}"))?;
        self.remediation.validate().map_err(|e| format!("engine.remediation.{e}"))?;
        self.timeline.validate().map_err(|e| format!("engine.timeline.{e}"))?;
        self.rollouts.validate().map_err(|e| format!("engine.rollouts.{e}"))
    }
}

/// What the engine has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCounters {
    /// Spans in.
    pub spans: u64,
    /// Alerts in.
    pub alerts: u64,
    /// Deploys and other changes in (repeats not counted).
    pub deploys: u64,
    /// Changes that repeated one already taken (a redelivered webhook, an Argo CD
    /// notification for the same history entry) and were not taken again.
    #[serde(default)]
    pub deploys_repeated: u64,
    /// Confirmed causes in.
    #[serde(default)]
    pub causes: u64,
    /// Catalog snapshots in.
    #[serde(default)]
    pub catalogs: u64,
    /// …of which ignored: older than their source's snapshot in force, or from a source
    /// beyond the most kept (kept by the catalog stage; filled in by
    /// [`Engine::counters`]).
    #[serde(default)]
    pub catalogs_stale: u64,
    /// Events older than the watermark when they arrived (still processed).
    pub late: u64,
    /// …of which spans.
    #[serde(default)]
    pub late_spans: u64,
    /// Call aggregates handed on to the graph (each a subject's bucket, or a late part of
    /// one): spans over this is how much pairing reduces what the graph stage reads.
    #[serde(default)]
    pub call_aggregates: u64,
    /// Impact-map versions out.
    pub impact_maps: u64,
    /// Candidate-list versions out.
    #[serde(default)]
    pub candidate_lists: u64,
    /// Remediation-plan versions out.
    #[serde(default)]
    pub remediation_plans: u64,
    /// Post-mortem draft versions out.
    #[serde(default)]
    pub postmortems: u64,
    /// Rollout decisions out.
    #[serde(default)]
    pub rollout_decisions: u64,
    /// Events held aside for being too far ahead of the stream.
    #[serde(default)]
    pub held_aside: u64,
    /// …of which rejected (dead letters) because the stream did not follow them.
    #[serde(default)]
    pub future_rejected: u64,
    /// Spans rejected (dead letters) for ending more than `max_past_skew_ms` behind the
    /// watermark.
    #[serde(default)]
    pub past_rejected: u64,
    /// Services evicted from the graph at `engine.graph.max_services` (kept by the graph;
    /// filled in by [`Engine::counters`]).
    #[serde(default)]
    pub services_evicted: u64,
    /// Services the rollout analysis forgot at `engine.rollouts.max_services` (kept by
    /// the analyzer; filled in by [`Engine::counters`]).
    #[serde(default)]
    pub rollouts_forgotten: u64,
    /// Self-time entries closed early to make room in the full store
    /// (`engine.pairing.max_pending`): measured with the children that had arrived, any
    /// later ones not counted (kept by the self-time stage; filled in by
    /// [`Engine::counters`]).
    #[serde(default)]
    pub self_time_evicted: u64,
}

/// Which part of the pipeline an engine runs (`devloom run --role`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Spans to post-mortems, in one process.
    #[default]
    All,
    /// Spans → call aggregates, handed out in [`Outputs::calls`] instead of to a graph:
    /// one instance per set of traces partitions.
    Pairing,
    /// Call aggregates from the pairing instances ([`Engine::on_calls`]), alerts,
    /// changes, catalogs and causes → everything after pairing. Its watermark moves
    /// with its events and, for the spans, as every pairing instance's does
    /// ([`Engine::advance_to`]).
    Graph,
}

/// What the engine emits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    /// Impact-map versions.
    pub maps: Vec<ImpactMap>,
    /// Candidate-list versions (only with a scorer).
    pub candidates: Vec<CandidateList>,
    /// Remediation-plan versions (from candidate lists).
    pub remediations: Vec<RemediationPlan>,
    /// Post-mortem draft versions (when incidents close, and on later confirmations).
    pub postmortems: Vec<PostmortemDraft>,
    /// Rollout decisions (when a canary's verdict changes).
    pub rollouts: Vec<RolloutDecision>,
    /// Events the event-time guard held aside and rejected, with the reason.
    pub rejected: Vec<(Event, String)>,
    /// Call aggregates handed on ([`Role::Pairing`] only), in bucket order.
    pub calls: Vec<CallAggregate>,
    /// Spans linking to traces other than their own ([`Role::Pairing`] only), with the
    /// linked trace: the pairing instance holding that trace pairs the hand-off
    /// ([`Engine::on_linked`]).
    pub links: Vec<(TraceId, Span)>,
}

impl Outputs {
    /// Nothing pending.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
            && self.candidates.is_empty()
            && self.remediations.is_empty()
            && self.postmortems.is_empty()
            && self.rollouts.is_empty()
            && self.rejected.is_empty()
            && self.calls.is_empty()
            && self.links.is_empty()
    }
}

/// What the pipeline lost or could not use, cumulative. A [`Role::Pairing`] engine hands
/// its own on with its aggregates; a [`Role::Graph`] engine adds every partition's latest
/// ([`Engine::on_losses`]) to its own, so its maps carry the notes one engine would
/// (counts within a few percent: each partition counts at its own watermark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Losses {
    late_spans: u64,
    evicted: u64,
    expired: u64,
    links_dropped: u64,
    held_aside: u64,
    future_rejected: u64,
    services_evicted: u64,
    #[serde(default)]
    self_time_evicted: u64,
}

impl Losses {
    /// Each count combined with `o`'s by `f`.
    fn zip(self, o: Losses, f: fn(u64, u64) -> u64) -> Losses {
        Losses {
            late_spans: f(self.late_spans, o.late_spans),
            evicted: f(self.evicted, o.evicted),
            expired: f(self.expired, o.expired),
            links_dropped: f(self.links_dropped, o.links_dropped),
            held_aside: f(self.held_aside, o.held_aside),
            future_rejected: f(self.future_rejected, o.future_rejected),
            services_evicted: f(self.services_evicted, o.services_evicted),
            self_time_evicted: f(self.self_time_evicted, o.self_time_evicted),
        }
    }

    /// What was lost since `earlier`, one line each saying where or when (`w`: "in the
    /// last 60 s"), or none.
    fn since(self, earlier: Losses, w: &str) -> Option<Vec<String>> {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        let lines: Vec<String> = [
            (d(self.late_spans, earlier.late_spans), format!("spans arrived behind the watermark {w}: counted in a later window than they belong to")),
            (d(self.evicted, earlier.evicted), format!("spans closed early to make room in the full pairing store {w}: calls arriving for them after that are missed (engine.pairing.max_pending)")),
            (d(self.self_time_evicted, earlier.self_time_evicted), format!("spans measured early to make room in the full self-time store {w}: their children arriving after that are not counted (engine.pairing.max_pending)")),
            (d(self.expired, earlier.expired), format!("spans never met their other half {w} (sampling, or parents outside the trace): those calls are not counted")),
            (d(self.links_dropped, earlier.links_dropped), format!("span links ignored {w} beyond engine.pairing.max_links_per_span")),
            (d(self.held_aside, earlier.held_aside), format!("events from too far ahead held aside {w}")),
            (d(self.future_rejected, earlier.future_rejected), format!("held-aside events rejected as dead letters {w}")),
            (d(self.services_evicted, earlier.services_evicted), format!("least recently seen services evicted {w} at engine.graph.max_services")),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, text)| format!("{n} {text}"))
        .collect();
        (!lines.is_empty()).then_some(lines)
    }
}

/// An alert or change named in catalog terms (PagerDuty's "Checkout Service", an Argo CD
/// application) as the traced service the catalog maps it to; `None` when it needs no
/// renaming.
fn in_traced_names(graph: &ServiceGraph, event: &Event) -> Option<Event> {
    match event {
        Event::Alert(a) => {
            graph.alias(&a.service).map(|n| Event::Alert(Alert { service: n.into(), ..a.clone() }))
        }
        Event::Deploy(d) => graph
            .alias(&d.service)
            .map(|n| Event::Deploy(devloom_schemas::Deploy { service: n.into(), ..d.clone() })),
        _ => None,
    }
}

/// A mark of the cumulative losses every this many ns of event time; a map's note
/// covers the short window to within one step.
const LOSS_STEP_NS: TimestampNs = 10_000_000_000;

/// How many of each output there were before a step: what the step added starts there.
#[derive(Clone, Copy)]
struct Marks {
    maps: usize,
    lists: usize,
    plans: usize,
    drafts: usize,
}

impl Marks {
    fn of(out: &Outputs) -> Self {
        Self {
            maps: out.maps.len(),
            lists: out.candidates.len(),
            plans: out.remediations.len(),
            drafts: out.postmortems.len(),
        }
    }
}

/// Events held aside by the event-time guard, in arrival order, and the on-time events
/// seen since the first of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct FutureGuard {
    held: Vec<Event>,
    on_time_since: u32,
}

/// A stage's state for checkpoints: an operator's snapshot, or for an optional stage
/// the snapshot of the operator if it runs.
pub trait Stage {
    /// The serializable state.
    type State: Serialize + for<'de> Deserialize<'de>;
    /// The state.
    fn state(&self) -> Self::State;
    /// Replaces the state.
    fn set_state(&mut self, state: Self::State);
}

impl<T: Operator> Stage for T
where
    T::Snapshot: Serialize + for<'de> Deserialize<'de>,
{
    type State = T::Snapshot;

    fn state(&self) -> T::Snapshot {
        self.snapshot()
    }

    fn set_state(&mut self, state: T::Snapshot) {
        self.restore(state);
    }
}

impl<T: Operator> Stage for Option<T>
where
    T::Snapshot: Serialize + for<'de> Deserialize<'de>,
{
    type State = Option<T::Snapshot>;

    fn state(&self) -> Option<T::Snapshot> {
        self.as_ref().map(Operator::snapshot)
    }

    fn set_state(&mut self, state: Option<T::Snapshot>) {
        if let (Some(op), Some(state)) = (self, state) {
            op.restore(state);
        }
    }
}

/// Declares the stages: the [`Stages`] struct and the per-stage part of
/// [`EngineSnapshot`], with snapshot and restore over all of them.
macro_rules! stages {
    ($($(#[$doc:meta])* $field:ident: $op:ty,)*) => {
        /// The operators, in data-flow order.
        #[derive(Debug)]
        struct Stages {
            $($(#[$doc])* $field: $op,)*
        }

        /// Every stage's state, named as its stage.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub struct StageStates {
            $($(#[$doc])* $field: <$op as Stage>::State,)*
        }

        impl Stages {
            fn states(&self) -> StageStates {
                StageStates { $($field: self.$field.state(),)* }
            }

            fn set_states(&mut self, states: StageStates) {
                $(self.$field.set_state(states.$field);)*
            }
        }
    };
}

stages! {
    /// Catalog snapshots → the catalog in force (laid into the graph).
    catalog: CatalogTracker,
    /// Spans → calls and requests.
    pairing: SpanPairer,
    /// Spans → self time and network gaps.
    self_time: SelfTimer,
    /// Calls, requests, self times, gaps and releases → per-bucket aggregates, handed on
    /// once the watermark passes their bucket.
    calls: CallAggregator,
    /// Call aggregates → the service graph with health; health changes.
    graph: ServiceGraph,
    /// Alerts (reading the graph) → incidents.
    incidents: IncidentTracker,
    /// Incidents and health changes (reading the graph) → impact maps.
    blast: BlastRadius,
    /// Maps, changes and health → scored candidate lists (with a model).
    candidates: Option<CandidateScorer>,
    /// Candidate lists (reading the changes the candidates remember) → remediations.
    remediation: RemediationPlanner,
    /// Alerts, changes, causes and every output above → timelines and post-mortem drafts.
    timeline: IncidentTimeline,
    /// Release aggregates → rollout decisions.
    rollouts: RolloutAnalyzer,
}

/// The engine's whole state, for checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineSnapshot {
    watermark_ns: TimestampNs,
    max_event_ns: TimestampNs,
    counters: EngineCounters,
    #[serde(default)]
    guard: FutureGuard,
    #[serde(default)]
    loss_marks: VecDeque<(TimestampNs, Losses)>,
    #[serde(default)]
    pending: Vec<CallAggregate>,
    #[serde(default)]
    partition_losses: BTreeMap<i32, Losses>,
    #[serde(flatten)]
    stages: StageStates,
}

/// Span pairing → service graph + health → incidents → blast radius → candidates →
/// remediations → timelines and post-mortem drafts.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    role: Role,
    stages: Stages,
    watermark_ns: TimestampNs,
    max_event_ns: TimestampNs,
    counters: EngineCounters,
    guard: FutureGuard,
    /// Cumulative losses at past watermarks, covering the short window.
    loss_marks: VecDeque<(TimestampNs, Losses)>,
    observations: Vec<Observation>,
    aggregates: Vec<CallAggregate>,
    /// Handed on, waiting for the watermark to reach the boundary they were handed on at
    /// ([`Role::Graph`]; empty otherwise between steps).
    pending: Vec<CallAggregate>,
    /// [`Role::Graph`]: the latest cumulative losses of each traces partition's pairing.
    partition_losses: BTreeMap<i32, Losses>,
    changes: Vec<HealthChange>,
    updates: Vec<IncidentUpdate>,
}

impl Engine {
    /// A fresh engine without the candidate stage.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            stages: Stages {
                catalog: CatalogTracker::default(),
                pairing: SpanPairer::new(config.pairing.clone()),
                self_time: SelfTimer::new(config.pairing.clone()),
                calls: CallAggregator::new(AggregateBuckets::new(&config.graph, &config.rollouts)),
                graph: ServiceGraph::new(config.graph.clone()),
                incidents: IncidentTracker::new(config.incidents.clone()),
                blast: BlastRadius::new(config.blast.clone()),
                candidates: None,
                remediation: RemediationPlanner::new(config.remediation.clone()),
                timeline: IncidentTimeline::new(config.timeline.clone()),
                rollouts: RolloutAnalyzer::new(config.rollouts.clone()),
            },
            config,
            role: Role::All,
            watermark_ns: 0,
            max_event_ns: 0,
            counters: EngineCounters::default(),
            guard: FutureGuard::default(),
            loss_marks: VecDeque::new(),
            observations: Vec::new(),
            aggregates: Vec::new(),
            pending: Vec::new(),
            partition_losses: BTreeMap::new(),
            changes: Vec::new(),
            updates: Vec::new(),
        }
    }

    /// Adds the candidate stage, scoring with `scorer`; `past` feeds the
    /// similar-incidents feature.
    pub fn with_candidates(mut self, scorer: Scorer, past: PastIncidents) -> Self {
        self.stages.candidates = Some(CandidateScorer::new(self.config.candidates.clone(), scorer, past));
        self
    }

    /// Runs `role`'s part of the pipeline only.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// [`Role::Pairing`]: a span another pairing instance read, linking to `trace`, which
    /// this one holds: the consumer side of that hand-off.
    pub fn on_linked(&mut self, span: &Span, trace: TraceId) {
        self.stages.pairing.on_linked(span, trace, &mut self.observations);
        for obs in self.observations.drain(..) {
            self.stages.calls.on_event(&(), &obs, &mut self.aggregates);
        }
    }

    /// [`Role::Graph`]: call aggregates a pairing instance handed on. Each goes into the
    /// graph and the rollout analysis when this engine's watermark reaches the boundary it
    /// was handed on at, just before the health tick there, as in one engine running
    /// everything.
    pub fn on_calls(&mut self, aggregates: &[CallAggregate]) {
        self.counters.call_aggregates += aggregates.len() as u64;
        for a in aggregates {
            self.max_event_ns = self.max_event_ns.max(a.last_ns);
        }
        self.pending.extend_from_slice(aggregates);
    }

    /// [`Role::Graph`]: what the pairing of traces `partition` has lost so far
    /// (cumulative, as [`Engine::losses`] gave it there). Counts never go back: an engine
    /// restored from its checkpoint counts again from there up to what it had said.
    pub fn on_losses(&mut self, partition: i32, losses: Losses) {
        let known = self.partition_losses.entry(partition).or_default();
        *known = known.zip(losses, u64::max);
    }

    /// [`Role::Graph`]: every pairing instance's watermark has reached `watermark` (the
    /// minimum over them), and the newest span any of them read ended at `newest_ns`:
    /// health ticks and timers fire as far as `watermark`; an alert arriving now is
    /// stamped no earlier than `newest_ns` less the allowed lateness, as one engine
    /// reading every span would stamp it.
    pub fn advance_to(&mut self, watermark: TimestampNs, newest_ns: TimestampNs, out: &mut Outputs) {
        self.max_event_ns = self.max_event_ns.max(newest_ns);
        let lateness = self.config.allowed_lateness_ms.saturating_mul(1_000_000);
        self.stages.incidents.reached(newest_ns.saturating_sub(lateness));
        let marks = Marks::of(out);
        self.advance(watermark, out);
        self.settle(marks, out);
    }

    /// The newest event time read ([`Role::Pairing`]: what [`Engine::advance_to`] takes
    /// as `newest_ns`).
    pub fn newest_ns(&self) -> TimestampNs {
        self.max_event_ns
    }

    /// The current watermark.
    pub fn watermark_ns(&self) -> TimestampNs {
        self.watermark_ns
    }

    /// The service graph.
    pub fn graph(&self) -> &ServiceGraph {
        &self.stages.graph
    }

    /// The catalog in force held against the graph: matches and drift.
    pub fn catalog_report(&self) -> devloom_schemas::CatalogReport {
        crate::catalog::report(&self.stages.graph, &self.stages.catalog.sources(), self.watermark_ns)
    }

    /// Rollout analysis: per-version health of services with two versions serving.
    pub fn rollouts(&self) -> &RolloutAnalyzer {
        &self.stages.rollouts
    }

    /// Spans waiting in the pairing store for their other half.
    pub fn pending_spans(&self) -> usize {
        self.stages.pairing.pending()
    }

    /// Counters of the engine and of span pairing.
    pub fn counters(&self) -> (EngineCounters, PairingCounters) {
        let counters = EngineCounters {
            services_evicted: self.stages.graph.evicted(),
            rollouts_forgotten: self.stages.rollouts.forgotten(),
            catalogs_stale: self.stages.catalog.stale(),
            self_time_evicted: self.stages.self_time.counters().evicted,
            ..self.counters
        };
        (counters, self.stages.pairing.counters())
    }

    /// Handles one event; the outputs it causes are appended to `out`.
    pub fn on_event(&mut self, event: &Event, out: &mut Outputs) {
        // An alert without a time of its own (a PagerDuty resolve read from a file) takes
        // the newest event time seen: deterministic, so replay still equals live.
        let stamped;
        let event = match event {
            Event::Alert(a) if a.starts_at_ns == 0 => {
                let now = self.max_event_ns;
                stamped = Event::Alert(Alert {
                    starts_at_ns: now,
                    ends_at_ns: a.ends_at_ns.map(|_| now),
                    ..a.clone()
                });
                &stamped
            }
            _ => event,
        };
        let time = event.event_time_ns();
        let skew = self.config.max_future_skew_ms.saturating_mul(1_000_000);
        // A confirmation may come days after its incident: it is a label, not a moment of
        // the stream, so it neither moves the watermark nor waits for it. Nor does a
        // catalog: it is in force from when it is read.
        if matches!(event, Event::Cause(_) | Event::Catalog(_)) {
            self.process(event, out);
            return;
        }
        let past = self.config.max_past_skew_ms.saturating_mul(1_000_000);
        if past > 0 && matches!(event, Event::Span(_)) && time.saturating_add(past) < self.watermark_ns {
            self.counters.past_rejected += 1;
            let behind_s = (self.watermark_ns - time) / 1_000_000_000;
            let reason = format!(
                "span ending {} is {behind_s} s behind the stream (watermark {}; engine.max_past_skew_ms = {}): older than any window it could count in",
                format_rfc3339(time),
                format_rfc3339(self.watermark_ns),
                self.config.max_past_skew_ms
            );
            out.rejected.push((event.clone(), reason));
            return;
        }
        if skew > 0 && self.max_event_ns > 0 && time > self.max_event_ns.saturating_add(skew) {
            self.hold(event.clone(), out);
            return;
        }
        self.process(event, out);
        if !self.guard.held.is_empty() {
            self.guard.on_time_since += 1;
            if self.guard.on_time_since >= self.config.future_confirm_events {
                self.reject_held(out);
            }
        }
    }

    /// Holds an event from too far ahead; enough of them in a row are the new present.
    fn hold(&mut self, event: Event, out: &mut Outputs) {
        self.counters.held_aside += 1;
        self.guard.held.push(event);
        if self.guard.held.len() >= self.config.future_confirm_events as usize {
            self.release_held(out);
        }
    }

    /// The stream did jump: the held events are processed, in arrival order.
    fn release_held(&mut self, out: &mut Outputs) {
        let held = std::mem::take(&mut self.guard);
        for event in &held.held {
            self.process(event, out);
        }
    }

    /// The stream stayed where it was: the held events are dead letters.
    fn reject_held(&mut self, out: &mut Outputs) {
        let FutureGuard { held, on_time_since } = std::mem::take(&mut self.guard);
        let newest = format_rfc3339(self.max_event_ns);
        for event in held {
            let time = event.event_time_ns();
            let ahead_s = (time - self.max_event_ns.min(time)) / 1_000_000_000;
            let reason = format!(
                "event time {} is {ahead_s} s ahead of the stream (newest event time {newest}; engine.max_future_skew_ms = {}): held aside, then {on_time_since} on-time events arrived before as many confirmed the jump",
                format_rfc3339(time),
                self.config.max_future_skew_ms
            );
            self.counters.future_rejected += 1;
            out.rejected.push((event, reason));
        }
    }

    fn process(&mut self, event: &Event, out: &mut Outputs) {
        let time = event.event_time_ns();
        if time < self.watermark_ns && !matches!(event, Event::Cause(_) | Event::Catalog(_)) {
            self.counters.late += 1;
            self.counters.late_spans += u64::from(matches!(event, Event::Span(_)));
        }
        let marks = Marks::of(out);
        let renamed = in_traced_names(&self.stages.graph, event);
        let event = renamed.as_ref().unwrap_or(event);
        let s = &mut self.stages;
        match event {
            Event::Span(span) => {
                self.counters.spans += 1;
                s.calls.on_span(span);
                let foreign = |l: &devloom_schemas::SpanLink| l.trace_id != span.trace_id;
                if self.role == Role::Pairing && span.links.iter().any(foreign) {
                    // Hand-offs into another trace are paired where that trace is.
                    let mut traces: Vec<TraceId> =
                        span.links.iter().filter(|l| foreign(l)).map(|l| l.trace_id).collect();
                    traces.sort_unstable();
                    traces.dedup();
                    out.links.extend(traces.into_iter().map(|t| (t, span.clone())));
                    let own = Span {
                        links: span.links.iter().filter(|l| !foreign(l)).cloned().collect(),
                        ..span.clone()
                    };
                    s.pairing.on_event(&(), &own, &mut self.observations);
                } else {
                    s.pairing.on_event(&(), span, &mut self.observations);
                }
                s.self_time.on_event(&(), span, &mut self.observations);
                for obs in self.observations.drain(..) {
                    s.calls.on_event(&(), &obs, &mut self.aggregates);
                }
            }
            Event::Alert(alert) => {
                self.counters.alerts += 1;
                s.incidents.on_event(&s.graph, alert, &mut self.updates);
                for u in self.updates.drain(..) {
                    let input =
                        TimelineInput::Alert { incident_id: u.incident_id.clone(), alert: alert.clone() };
                    s.timeline.on_event(&(), &input, &mut out.postmortems);
                    s.blast.on_event(&s.graph, &BlastInput::Incident(u), &mut out.maps);
                }
            }
            // A webhook redelivered, or one sync notified twice: the same change once.
            Event::Deploy(deploy) if s.timeline.has_seen(deploy) => self.counters.deploys_repeated += 1,
            Event::Deploy(deploy) => {
                self.counters.deploys += 1;
                s.timeline.on_event(&(), &TimelineInput::Change(deploy.clone()), &mut out.postmortems);
                if let Some(c) = &mut s.candidates {
                    c.on_event(&(), &CandidateInput::Change(deploy.clone()), &mut out.candidates);
                }
            }
            Event::Cause(cause) => {
                self.counters.causes += 1;
                s.timeline.on_event(&(), &TimelineInput::Cause(cause.clone()), &mut out.postmortems);
            }
            Event::Catalog(snapshot) => {
                self.counters.catalogs += 1;
                let mut models = Vec::new();
                s.catalog.on_event(&(), snapshot, &mut models);
                if let Some(model) = models.pop() {
                    s.graph.declare(model);
                    s.blast.on_event(&s.graph, &BlastInput::Catalog, &mut out.maps);
                }
            }
        }
        if time > self.max_event_ns && !matches!(event, Event::Cause(_) | Event::Catalog(_)) {
            self.max_event_ns = time;
            let wm = time.saturating_sub(self.config.allowed_lateness_ms.saturating_mul(1_000_000));
            self.advance(wm, out);
        }
        self.settle(marks, out);
    }

    /// The maps from `marks` on get scored, the lists planned, and everything new goes
    /// to the timeline, which then writes the drafts due.
    fn settle(&mut self, marks: Marks, out: &mut Outputs) {
        if out.maps.len() > marks.maps {
            let notes = self.loss_notes();
            for map in &mut out.maps[marks.maps..] {
                map.data_quality.clone_from(&notes);
            }
        }
        self.score_maps(marks.maps, out);
        self.plan_remediations(marks.lists, out);
        let timeline = &mut self.stages.timeline;
        let drafts = &mut out.postmortems;
        for map in &out.maps[marks.maps..] {
            timeline.on_event(&(), &TimelineInput::Map(map.clone()), drafts);
        }
        for list in &out.candidates[marks.lists..] {
            timeline.on_event(&(), &TimelineInput::Candidates(list.clone()), drafts);
        }
        for plan in &out.remediations[marks.plans..] {
            timeline.on_event(&(), &TimelineInput::Remediation(plan.clone()), drafts);
        }
        timeline.on_watermark(&(), self.watermark_ns, drafts);
        self.counters.postmortems += (out.postmortems.len() - marks.drafts) as u64;
    }

    /// Cumulative losses now, the pairing partitions' included.
    pub fn losses(&self) -> Losses {
        let pairing = self.stages.pairing.counters();
        let own = Losses {
            late_spans: self.counters.late_spans,
            evicted: pairing.evicted,
            expired: pairing.expired,
            links_dropped: pairing.links_dropped,
            held_aside: self.counters.held_aside,
            future_rejected: self.counters.future_rejected,
            services_evicted: self.stages.graph.evicted(),
            self_time_evicted: self.stages.self_time.counters().evicted,
        };
        own.zip(self.partition_sum(), u64::saturating_add)
    }

    /// Every pairing partition's latest losses, added up.
    fn partition_sum(&self) -> Losses {
        self.partition_losses.values().fold(Losses::default(), |sum, l| sum.zip(*l, u64::saturating_add))
    }

    /// What was lost over the short window before the watermark, for a map's note.
    fn loss_notes(&self) -> Option<Vec<String>> {
        let window_ms = self.config.graph.window.short_window_ms;
        let base = self.loss_marks.front().map_or_else(Losses::default, |(_, l)| *l);
        self.losses().since(base, &format!("in the last {} s", window_ms / 1000))
    }

    /// What the pairing instances reported losing ([`Engine::on_losses`]), one line each,
    /// or none: a graph instance's run summary shows them beside its own counters, which
    /// stay its own (every instance exports its own metrics; adding them there would count
    /// them twice).
    pub fn reported_losses(&self) -> Option<Vec<String>> {
        self.partition_sum().since(Losses::default(), "so far")
    }

    /// Marks the cumulative losses every [`LOSS_STEP_NS`] of event time, keeping the
    /// newest mark at least a short window old (or the oldest one) first.
    fn mark_losses(&mut self, watermark: TimestampNs) {
        if self.loss_marks.back().is_none_or(|(t, _)| watermark >= t.saturating_add(LOSS_STEP_NS)) {
            let losses = self.losses();
            self.loss_marks.push_back((watermark, losses));
        }
        let window = self.config.graph.window.short_window_ms.saturating_mul(1_000_000);
        let start = watermark.saturating_sub(window);
        while self.loss_marks.len() > 1 && self.loss_marks[1].0 <= start {
            self.loss_marks.pop_front();
        }
    }

    /// Counts the candidate lists from `before` on and plans their remediations.
    fn plan_remediations(&mut self, before: usize, out: &mut Outputs) {
        self.counters.candidate_lists += (out.candidates.len() - before) as u64;
        let Some(changes) = &self.stages.candidates else { return };
        let plans = out.remediations.len();
        for list in &out.candidates[before..] {
            self.stages.remediation.on_event(changes, list, &mut out.remediations);
        }
        self.counters.remediation_plans += (out.remediations.len() - plans) as u64;
    }

    /// Counts the maps from `before` on and scores their candidates.
    fn score_maps(&mut self, before: usize, out: &mut Outputs) {
        self.counters.impact_maps += (out.maps.len() - before) as u64;
        let Some(c) = &mut self.stages.candidates else { return };
        for map in &out.maps[before..] {
            c.on_event(&(), &CandidateInput::Map(map.clone()), &mut out.candidates);
        }
    }

    /// End of input: moves the watermark to the newest event time (no lateness left to
    /// wait for), expiring and flushing what that allows.
    pub fn flush(&mut self, out: &mut Outputs) {
        // Held events the stream never contradicted are where it ended; the others were
        // outvoted.
        if self.guard.held.len() > self.guard.on_time_since as usize {
            self.release_held(out);
        } else if !self.guard.held.is_empty() {
            self.reject_held(out);
        }
        let marks = Marks::of(out);
        self.advance(self.max_event_ns, out);
        self.settle(marks, out);
    }

    /// Moves the watermark to `watermark`, stopping first at the first bucket boundary
    /// it crosses: what pairing hands on and the health tick reads there is what pairing
    /// knew at exactly that boundary, however large the step (a pairing instance reading
    /// one partition steps differently from one instance reading all).
    fn advance(&mut self, watermark: TimestampNs, out: &mut Outputs) {
        if watermark <= self.watermark_ns {
            return;
        }
        let bucket_ns = self.config.graph.window.bucket_ms.max(1).saturating_mul(1_000_000);
        let boundary = (self.watermark_ns / bucket_ns).saturating_add(1).saturating_mul(bucket_ns);
        if self.watermark_ns > 0 && boundary < watermark {
            self.step(boundary, out);
        }
        self.step(watermark, out);
    }

    fn step(&mut self, watermark: TimestampNs, out: &mut Outputs) {
        self.watermark_ns = watermark;
        let s = &mut self.stages;
        s.pairing.on_watermark(&(), watermark, &mut self.observations);
        s.self_time.on_watermark(&(), watermark, &mut self.observations);
        for obs in self.observations.drain(..) {
            s.calls.on_event(&(), &obs, &mut self.aggregates);
        }
        s.calls.on_watermark(&(), watermark, &mut self.aggregates);
        self.counters.call_aggregates += self.aggregates.len() as u64;
        if self.role == Role::Pairing {
            out.calls.append(&mut self.aggregates);
            self.mark_losses(watermark);
            return;
        }
        self.pending.append(&mut self.aggregates);
        if !self.pending.is_empty() {
            // In (boundary, bucket, subject) order: the graph is the same whichever
            // pairing instance's part of a bucket came first.
            let (mut due, waiting): (Vec<CallAggregate>, Vec<CallAggregate>) =
                std::mem::take(&mut self.pending).into_iter().partition(|a| a.handed_ns <= watermark);
            self.pending = waiting;
            due.sort_by(|a, b| {
                (a.handed_ns, a.bucket_ns, &a.subject).cmp(&(b.handed_ns, b.bucket_ns, &b.subject))
            });
            for a in &due {
                s.rollouts.on_event(&(), a, &mut out.rollouts);
                s.graph.on_event(&(), a, &mut self.changes);
            }
        }
        let decisions = out.rollouts.len();
        s.rollouts.on_watermark(&(), watermark, &mut out.rollouts);
        self.counters.rollout_decisions += (out.rollouts.len() - decisions) as u64;
        s.incidents.on_watermark(&s.graph, watermark, &mut self.updates);
        for u in self.updates.drain(..) {
            s.blast.on_event(&s.graph, &BlastInput::Incident(u), &mut out.maps);
        }
        s.graph.on_watermark(&(), watermark, &mut self.changes);
        for c in self.changes.drain(..) {
            if let Some(candidates) = &mut s.candidates {
                candidates.on_event(&(), &CandidateInput::Health(c.clone()), &mut out.candidates);
            }
            s.blast.on_event(&s.graph, &BlastInput::Health(c), &mut out.maps);
        }
        s.blast.on_watermark(&s.graph, watermark, &mut out.maps);
        if let Some(c) = &mut s.candidates {
            c.on_watermark(&(), watermark, &mut out.candidates);
        }
        self.mark_losses(watermark);
    }

    /// The whole state.
    pub fn snapshot(&self) -> EngineSnapshot {
        EngineSnapshot {
            watermark_ns: self.watermark_ns,
            max_event_ns: self.max_event_ns,
            counters: self.counters,
            guard: self.guard.clone(),
            loss_marks: self.loss_marks.clone(),
            pending: self.pending.clone(),
            partition_losses: self.partition_losses.clone(),
            stages: self.stages.states(),
        }
    }

    /// Replaces the state with `snapshot` (configuration stays as constructed).
    pub fn restore(&mut self, snapshot: EngineSnapshot) {
        self.watermark_ns = snapshot.watermark_ns;
        self.max_event_ns = snapshot.max_event_ns;
        self.counters = snapshot.counters;
        self.guard = snapshot.guard;
        self.loss_marks = snapshot.loss_marks;
        self.pending = snapshot.pending;
        self.partition_losses = snapshot.partition_losses;
        self.stages.set_states(snapshot.stages);
    }
}

#[cfg(test)]
mod tests {
    use devloom_schemas::{ChangeKind, Deploy};

    use super::*;

    #[test]
    fn partition_losses_add_up_and_never_go_back() {
        let mut graph = Engine::new(EngineConfig::default()).with_role(Role::Graph);
        let expired = |n| Losses { expired: n, ..Losses::default() };
        graph.on_losses(0, expired(5));
        graph.on_losses(1, Losses { evicted: 2, ..expired(1) });
        assert_eq!(graph.losses(), Losses { evicted: 2, ..expired(6) });
        // Partition 0's engine restored from a checkpoint counts up again from 3.
        graph.on_losses(0, expired(3));
        assert_eq!(graph.losses().expired, 6, "not back to 4");
        graph.on_losses(0, expired(8));
        assert_eq!(graph.losses().expired, 9);
        let restored = {
            let mut e = Engine::new(EngineConfig::default()).with_role(Role::Graph);
            e.restore(graph.snapshot());
            e
        };
        assert_eq!(restored.losses(), graph.losses(), "in the checkpoint");
        assert_eq!(
            graph.reported_losses(),
            Some(vec![
                "2 spans closed early to make room in the full pairing store so far: calls arriving for them after that are missed (engine.pairing.max_pending)".to_string(),
                "9 spans never met their other half so far (sampling, or parents outside the trace): those calls are not counted".to_string(),
            ])
        );
        assert_eq!(Engine::new(EngineConfig::default()).with_role(Role::Graph).reported_losses(), None);
    }

    fn deploy(minute: u64) -> Event {
        Event::Deploy(Deploy {
            service: "payments".into(),
            revision: format!("r{minute}"),
            time_ns: 1_795_770_000_000_000_000 + minute * 60_000_000_000,
            kind: ChangeKind::Deploy,
            ..Deploy::default()
        })
    }

    fn engine() -> Engine {
        Engine::new(EngineConfig { future_confirm_events: 3, ..EngineConfig::default() })
    }

    #[test]
    fn a_stream_that_really_jumps_is_followed_once_enough_events_confirm_it() {
        let mut e = engine();
        let mut out = Outputs::default();
        for minute in [0, 1, 60, 61] {
            e.on_event(&deploy(minute), &mut out);
        }
        assert_eq!((e.counters.deploys, e.counters.held_aside), (2, 2), "an hour ahead: held");
        let before = e.watermark_ns();
        e.on_event(&deploy(62), &mut out);
        assert_eq!((e.counters.deploys, e.counters.future_rejected), (5, 0), "the third confirms the jump");
        assert!(e.watermark_ns() > before + 59 * 60_000_000_000);
        assert!(out.rejected.is_empty());
    }

    #[test]
    fn events_the_stream_does_not_follow_are_rejected_and_survive_a_snapshot_meanwhile() {
        let mut e = engine();
        let mut out = Outputs::default();
        for minute in [0, 600, 1, 2] {
            e.on_event(&deploy(minute), &mut out);
        }
        let mut restored = engine();
        restored.restore(serde_json::from_str(&serde_json::to_string(&e.snapshot()).unwrap()).unwrap());
        for engine in [&mut e, &mut restored] {
            engine.on_event(&deploy(3), &mut out);
        }
        assert_eq!(out.rejected.len(), 2, "one per engine");
        assert_eq!(out.rejected[0], out.rejected[1]);
        assert_eq!(out.rejected[0].0, deploy(600));
        assert!(
            out.rejected[0].1.contains("held aside, then 3 on-time events arrived"),
            "{}",
            out.rejected[0].1
        );
        assert_eq!((e.counters.deploys, e.counters.held_aside, e.counters.future_rejected), (4, 1, 1));
    }

    #[test]
    fn at_the_end_held_events_nothing_contradicted_are_processed() {
        let mut e = engine();
        let mut out = Outputs::default();
        for minute in [0, 1, 90] {
            e.on_event(&deploy(minute), &mut out);
        }
        e.flush(&mut out);
        assert_eq!((e.counters.deploys, e.counters.future_rejected), (3, 0));
    }

    /// A webhook delivered twice (GitHub and Argo CD retry; Argo CD notifies a sync and
    /// then its health with the same history entry) is one change, also after a restore.
    #[test]
    fn a_change_delivered_twice_is_taken_once() {
        let mut e = engine();
        let mut out = Outputs::default();
        for minute in [0, 1, 1, 2] {
            e.on_event(&deploy(minute), &mut out);
        }
        let mut restored = engine();
        restored.restore(serde_json::from_str(&serde_json::to_string(&e.snapshot()).unwrap()).unwrap());
        restored.on_event(&deploy(2), &mut out);
        assert_eq!((restored.counters.deploys, restored.counters.deploys_repeated), (3, 2));
        let Event::Deploy(mut later) = deploy(1) else { unreachable!() };
        later.time_ns += 1;
        restored.on_event(&Event::Deploy(later), &mut out);
        assert_eq!(restored.counters.deploys, 4, "the same revision at another time is another change");
    }
}
