//! Devloom's operators: pure, deterministic, event-time state machines. No I/O, no
//! async, no wall clock, no unseeded randomness. Same input ⇒ same output.
//!
//! ```text
//! CatalogSnapshot ─► CatalogTracker ─► CatalogModel ─► ServiceGraph (declared edges)
//! Span ─► SpanPairer + SelfTimer ─► Observation ─► CallAggregator ─► CallAggregate (per bucket)
//! CallAggregate ─► ServiceGraph (+ health) ─► HealthChange ──────────────────────────────────┐
//! Alert ─► IncidentTracker (reads the graph) ─► IncidentUpdate ──────────────────────────────┤
//!                                                              BlastRadius (reads the graph) ◄┘─► ImpactMap
//! ImpactMap, Deploy, HealthChange ─► CandidateScorer (with its Scorer) ─► CandidateList
//! CandidateList ─► RemediationPlanner (reads the changes) ─► RemediationPlan
//! Alert, Deploy, ConfirmedCause + every output above ─► IncidentTimeline ─► PostmortemDraft
//! CallAggregate (requests of a `service.version`) ─► RolloutAnalyzer ─► RolloutDecision
//! ```
//! [`Engine`] wires them in that order and drives the watermark.

pub mod blast_radius;
pub mod call_aggregates;
pub mod candidates;
pub mod catalog;
mod deadline_store;
mod deadlines;
pub mod engine;
pub mod evidence;
pub mod health;
pub mod incidents;
pub mod operator;
pub mod postmortem;
pub mod remediation;
pub mod rolling_stats;
pub mod rollout;
pub mod scorer;
pub mod self_time;
pub mod service_graph;
pub mod service_id;
mod sharded_map;
pub mod span_pairing;
pub mod timeline;

pub use blast_radius::{BlastConfig, BlastInput, BlastRadius};
pub use call_aggregates::{AggregateBuckets, CallAggregate, CallAggregator, Subject};
pub use candidates::{CandidateInput, CandidateScorer, CandidatesConfig, PastIncidents, past_key};
pub use engine::{Engine, EngineConfig, EngineCounters, EngineSnapshot, Losses, Outputs, Role};
pub use evidence::{Evidence, FEATURES};
pub use health::HealthConfig;
pub use incidents::{IncidentConfig, IncidentTracker, IncidentUpdate};
pub use operator::Operator;
pub use remediation::{RemediationConfig, RemediationPlanner};
pub use rolling_stats::{RollingStats, WindowConfig, WindowSummary};
pub use rollout::{RolloutAnalyzer, RolloutConfig};
pub use scorer::{Model, Scorer};
pub use self_time::{SelfTimeCounters, SelfTimer};
pub use service_graph::{GraphConfig, HealthChange, ServiceGraph};
pub use service_id::ServiceId;
pub use span_pairing::{Observation, PairingConfig, PairingCounters, SpanPairer};
pub use timeline::{IncidentTimeline, TimelineConfig, TimelineInput};
