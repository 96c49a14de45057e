//! Devloom's vocabulary: normalized events ([`Span`], [`Alert`], [`Deploy`]), outputs
//! ([`ImpactMap`], [`CandidateList`], [`RemediationPlan`], [`PostmortemDraft`], [`RolloutDecision`],
//! [`DeadLetter`]), wire codecs for what existing producers write
//! ([`codec`]), Arrow schemas ([`arrow`]) and JSON Schemas ([`json_schema`]).
//!
//! No I/O, no async, no clocks.

pub mod alert;
pub mod arrow;
pub mod candidates;
pub mod catalog;
pub mod codec;
pub mod dead_letter;
pub mod deploy;
pub mod event;
pub mod ids;
pub mod impact;
pub mod json_schema;
pub mod postmortem;
pub mod remediation;
pub mod rollout;
pub mod span;
pub mod time;

pub use alert::{Alert, AlertSource, AlertStatus, Severity};
pub use candidates::{CANDIDATES_SCHEMA_VERSION, Candidate, CandidateKind, CandidateList, ConfirmedCause};
pub use catalog::{Catalog, CatalogFormat, CatalogReport, CatalogSnapshot};
pub use dead_letter::DeadLetter;
pub use deploy::{ChangeKind, Deploy, DeploySource, RolloutTool};
pub use event::Event;
pub use ids::{SpanId, TraceId};
pub use impact::{
    Criticality, Direction, EdgeOrigin, HealthState, ImpactEdge, ImpactMap, ImpactNode, IncidentStatus,
    NodeCatalog, NowVsBaseline, Verdict,
};
pub use postmortem::{
    AlertFact, AppliedChange, CauseStatus, Detection, Impact, POSTMORTEM_SCHEMA_VERSION, PostmortemDraft,
    RemediationSummary, RootCause, ServiceImpact, SuggestedRemediation, TimelineEntry, TimelineKind,
};
pub use remediation::{
    ChangeRef, DiffLine, FileDiff, Hunk, KeyChange, LineTag, Manifest, ObjectChange,
    REMEDIATION_SCHEMA_VERSION, Remediation, RemediationAction, RemediationPlan, SpecFormat,
};
pub use rollout::{
    ROLLOUT_SCHEMA_VERSION, RolloutComparison, RolloutDecision, RolloutVerdict, VersionHealth,
};
pub use span::{PeerAttributes, Span, SpanKind, SpanLink};
pub use time::TimestampNs;
