//! The operator loop: one deterministic sequence that routes normalized events through
//! the operators and drives the event-time watermark (max event time seen minus the
//! allowed lateness). The runtime feeds it; it never reads a clock.

use devloom_schemas::{CandidateList, Event, ImpactMap, TimestampNs};
use serde::{Deserialize, Serialize};

use crate::blast_radius::{BlastConfig, BlastInput, BlastRadius, BlastSnapshot};
use crate::candidates::{
    CandidateInput, CandidateScorer, CandidatesConfig, CandidatesSnapshot, PastIncidents,
};
use crate::incidents::{IncidentConfig, IncidentSnapshot, IncidentTracker, IncidentUpdate};
use crate::operator::Operator;
use crate::scorer::Scorer;
use crate::service_graph::{GraphConfig, GraphSnapshot, HealthChange, ServiceGraph};
use crate::span_pairing::{Observation, PairingConfig, PairingCounters, PairingSnapshot, SpanPairer};

/// Every operator setting; the `[engine]` table of `devloom.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How far behind the newest event time the watermark trails, milliseconds.
    pub allowed_lateness_ms: u64,
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: 2_000,
            pairing: PairingConfig::default(),
            graph: GraphConfig::default(),
            incidents: IncidentConfig::default(),
            blast: BlastConfig::default(),
            candidates: CandidatesConfig::default(),
        }
    }
}

/// What the engine has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCounters {
    /// Spans in.
    pub spans: u64,
    /// Alerts in.
    pub alerts: u64,
    /// Deploys and other changes in.
    pub deploys: u64,
    /// Events older than the watermark when they arrived (still processed).
    pub late: u64,
    /// Impact-map versions out.
    pub impact_maps: u64,
    /// Candidate-list versions out.
    #[serde(default)]
    pub candidate_lists: u64,
}

/// What the engine emits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    /// Impact-map versions.
    pub maps: Vec<ImpactMap>,
    /// Candidate-list versions (only with a scorer).
    pub candidates: Vec<CandidateList>,
}

impl Outputs {
    /// Nothing pending.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty() && self.candidates.is_empty()
    }
}

/// The engine's whole state, for checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineSnapshot {
    watermark_ns: TimestampNs,
    max_event_ns: TimestampNs,
    counters: EngineCounters,
    pairing: PairingSnapshot,
    graph: GraphSnapshot,
    incidents: IncidentSnapshot,
    blast: BlastSnapshot,
    #[serde(default)]
    candidates: CandidatesSnapshot,
}

/// Span pairing → service graph + health → incidents → blast radius.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    pairer: SpanPairer,
    graph: ServiceGraph,
    incidents: IncidentTracker,
    blast: BlastRadius,
    candidates: CandidateScorer,
    scorer: Option<Scorer>,
    watermark_ns: TimestampNs,
    max_event_ns: TimestampNs,
    counters: EngineCounters,
    observations: Vec<Observation>,
    changes: Vec<HealthChange>,
    updates: Vec<IncidentUpdate>,
}

impl Engine {
    /// A fresh engine.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            pairer: SpanPairer::new(config.pairing.clone()),
            graph: ServiceGraph::new(config.graph.clone()),
            incidents: IncidentTracker::new(config.incidents.clone()),
            blast: BlastRadius::new(config.blast.clone()),
            candidates: CandidateScorer::new(config.candidates.clone(), PastIncidents::new()),
            scorer: None,
            config,
            watermark_ns: 0,
            max_event_ns: 0,
            counters: EngineCounters::default(),
            observations: Vec::new(),
            changes: Vec::new(),
            updates: Vec::new(),
        }
    }

    /// Also scores root-cause candidates with `scorer`; `past` feeds the similar-incidents
    /// feature.
    pub fn with_scorer(mut self, scorer: Scorer, past: PastIncidents) -> Self {
        self.candidates = CandidateScorer::new(self.config.candidates.clone(), past);
        self.scorer = Some(scorer);
        self
    }

    /// The current watermark.
    pub fn watermark_ns(&self) -> TimestampNs {
        self.watermark_ns
    }

    /// The service graph.
    pub fn graph(&self) -> &ServiceGraph {
        &self.graph
    }

    /// Counters of the engine and of span pairing.
    pub fn counters(&self) -> (EngineCounters, PairingCounters) {
        (self.counters, self.pairer.counters())
    }

    /// Handles one event; the outputs it causes are appended to `out`.
    pub fn on_event(&mut self, event: &Event, out: &mut Outputs) {
        let time = event.event_time_ns();
        if time < self.watermark_ns {
            self.counters.late += 1;
        }
        let before = out.maps.len();
        match event {
            Event::Span(span) => {
                self.counters.spans += 1;
                self.pairer.on_event(&(), span, &mut self.observations);
                self.feed_graph();
            }
            Event::Alert(alert) => {
                self.counters.alerts += 1;
                self.incidents.on_event(&self.graph, alert, &mut self.updates);
                for u in self.updates.drain(..) {
                    self.blast.on_event(&self.graph, &BlastInput::Incident(u), &mut out.maps);
                }
            }
            Event::Deploy(deploy) => {
                self.counters.deploys += 1;
                if let Some(scorer) = &self.scorer {
                    let before = out.candidates.len();
                    self.candidates.on_event(
                        scorer,
                        &CandidateInput::Change(deploy.clone()),
                        &mut out.candidates,
                    );
                    self.counters.candidate_lists += (out.candidates.len() - before) as u64;
                }
            }
        }
        if time > self.max_event_ns {
            self.max_event_ns = time;
            let wm = time.saturating_sub(self.config.allowed_lateness_ms.saturating_mul(1_000_000));
            self.advance(wm, out);
        }
        self.score_maps(before, out);
    }

    /// Counts the maps from `before` on and scores their candidates.
    fn score_maps(&mut self, before: usize, out: &mut Outputs) {
        self.counters.impact_maps += (out.maps.len() - before) as u64;
        let Some(scorer) = &self.scorer else { return };
        let lists = out.candidates.len();
        for map in &out.maps[before..] {
            self.candidates.on_event(scorer, &CandidateInput::Map(map.clone()), &mut out.candidates);
        }
        self.counters.candidate_lists += (out.candidates.len() - lists) as u64;
    }

    /// End of input: moves the watermark to the newest event time (no lateness left to
    /// wait for), expiring and flushing what that allows.
    pub fn flush(&mut self, out: &mut Outputs) {
        let before = out.maps.len();
        self.advance(self.max_event_ns, out);
        self.score_maps(before, out);
    }

    fn feed_graph(&mut self) {
        for obs in self.observations.drain(..) {
            self.graph.on_event(&(), &obs, &mut self.changes);
        }
    }

    fn advance(&mut self, watermark: TimestampNs, out: &mut Outputs) {
        if watermark <= self.watermark_ns {
            return;
        }
        self.watermark_ns = watermark;
        self.pairer.on_watermark(&(), watermark, &mut self.observations);
        self.feed_graph();
        self.incidents.on_watermark(&self.graph, watermark, &mut self.updates);
        self.graph.on_watermark(&(), watermark, &mut self.changes);
        for c in self.changes.drain(..) {
            if let Some(scorer) = &self.scorer {
                self.candidates.on_event(scorer, &CandidateInput::Health(c.clone()), &mut out.candidates);
            }
            self.blast.on_event(&self.graph, &BlastInput::Health(c), &mut out.maps);
        }
        self.blast.on_watermark(&self.graph, watermark, &mut out.maps);
        if let Some(scorer) = &self.scorer {
            self.candidates.on_watermark(scorer, watermark, &mut out.candidates);
        }
    }

    /// The whole state.
    pub fn snapshot(&self) -> EngineSnapshot {
        EngineSnapshot {
            watermark_ns: self.watermark_ns,
            max_event_ns: self.max_event_ns,
            counters: self.counters,
            pairing: self.pairer.snapshot(),
            graph: self.graph.snapshot(),
            incidents: self.incidents.snapshot(),
            blast: self.blast.snapshot(),
            candidates: self.candidates.snapshot(),
        }
    }

    /// Replaces the state with `snapshot` (configuration stays as constructed).
    pub fn restore(&mut self, snapshot: EngineSnapshot) {
        self.watermark_ns = snapshot.watermark_ns;
        self.max_event_ns = snapshot.max_event_ns;
        self.counters = snapshot.counters;
        self.pairer.restore(snapshot.pairing);
        self.graph.restore(snapshot.graph);
        self.incidents.restore(snapshot.incidents);
        self.blast.restore(snapshot.blast);
        self.candidates.restore(snapshot.candidates);
    }
}
