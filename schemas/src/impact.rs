//! The impact map: Devloom's answer to "what else is breaking because of this?".

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::time::TimestampNs;

/// Version of the [`ImpactMap`] JSON contract. Bumped on any incompatible change.
pub const IMPACT_MAP_SCHEMA_VERSION: u32 = 1;

/// Whether the incident is still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// At least one alert of the incident is firing.
    Open,
    /// All its alerts resolved.
    Resolved,
    /// No alert of it fired or changed for `[engine.incidents] stale_after_ms`: closed
    /// without a resolve (its alerts were never resolved, or the resolves were lost).
    Stale,
}

impl IncidentStatus {
    /// Resolved or stale: no further versions come.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Resolved | Self::Stale)
    }
}

/// Is the damage staying where it started?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No degraded service beyond the alerted ones and their direct neighbours.
    Contained,
    /// Degradation reaches services more than one hop from an alerted service.
    Spreading,
}

/// Health of a service or edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Alert firing, failure rate over the failure threshold, or gone silent (no
    /// requests where its baseline predicts many).
    Red,
    /// Error rate, latency, self time or network gap elevated against baseline, no
    /// alert yet.
    Amber,
    /// Clean.
    Gray,
    /// No traffic in the window.
    Unknown,
}

/// Where a node sits relative to the alerted services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// An alerted service.
    Root,
    /// A caller, transitively: hurt by the failure.
    Upstream,
    /// A callee, transitively: where the cause may be.
    Downstream,
}

/// Where an edge of the graph comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeOrigin {
    /// Seen in traces.
    Observed,
    /// Declared in a service catalog.
    Declared,
    /// Both.
    Both,
}

/// How much the caller depends on the callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    /// The caller fails when the callee fails (declared, or observed failures propagate).
    Critical,
    /// The caller degrades gracefully.
    Optional,
    /// Not declared and not yet evident.
    Unknown,
}

/// A measurement now (short window) against its baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NowVsBaseline {
    /// Value over the short window.
    pub now: f64,
    /// Value over the baseline window.
    pub baseline: f64,
}

/// What the service catalogs say of a service: whom to page, before the downstream
/// team is paged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeCatalog {
    /// The catalog entities matched to it (`component:default/payments`,
    /// `pagerduty:PXYZ123`).
    pub entities: Vec<String>,
    /// Owner (a Backstage group or user reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Teams (PagerDuty).
    #[serde(default)]
    pub teams: Vec<String>,
    /// System (Backstage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Lifecycle (Backstage: `production`, `experimental`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// PagerDuty escalation policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<String>,
    /// PagerDuty service id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty_service_id: Option<String>,
}

/// One service in the blast radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImpactNode {
    /// Service name (or virtual node name: a database system, a queue).
    pub service: String,
    /// `cloud.region`, part of the node's identity when spans carry it.
    #[serde(default)]
    pub region: Option<String>,
    /// Not instrumented: known only from its callers' client spans.
    #[serde(default)]
    pub virtual_node: bool,
    /// Health now.
    pub state: HealthState,
    /// Hops from the nearest alerted service (0 for roots).
    pub hops: u32,
    /// Root, upstream (caller) or downstream (callee).
    pub direction: Direction,
    /// Services from the root to this node, root first.
    pub path: Vec<String>,
    /// Failed requests / requests served.
    pub error_rate: NowVsBaseline,
    /// 99th percentile latency of requests served, milliseconds.
    pub p99_ms: NowVsBaseline,
    /// Requests per second served.
    pub requests_per_s: NowVsBaseline,
    /// Seconds of traffic the short window and the baseline cover, the time each rate is
    /// over: a run that started a minute before the fault has a baseline of ten seconds
    /// or so, and rates from it are rough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_s: Option<NowVsBaseline>,
    /// Median self time of its spans (duration minus the union of their children's
    /// intervals), milliseconds: its own work, without the time spent waiting on callees.
    /// Absent only in archives written before self time was measured (so are the
    /// edges' `calls_per_s`, `gap_ms` and `caller_error_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_time_ms: Option<NowVsBaseline>,
    /// 90th percentile self time, milliseconds: a process hogging a core slows a third
    /// to two thirds of the requests, which the median may not show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_time_p90_ms: Option<NowVsBaseline>,
    /// Owner, teams, escalation policy and PagerDuty service from the service catalogs;
    /// absent when no catalog lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<NodeCatalog>,
}

/// One call relationship inside the blast radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImpactEdge {
    /// Calling service.
    pub caller: String,
    /// Called service.
    pub callee: String,
    /// Observed, declared or both.
    pub origin: EdgeOrigin,
    /// Asynchronous (messaging) edge, found through span links or producer/consumer pairs.
    #[serde(default)]
    pub asynchronous: bool,
    /// How much the caller depends on the callee.
    pub criticality: Criticality,
    /// This edge's share of the callee's incoming requests (0–1) in the short window.
    pub traffic_share: f64,
    /// Health of the edge.
    pub state: HealthState,
    /// Failed / total calls over the edge.
    pub error_rate: NowVsBaseline,
    /// Calls per second over the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_s: Option<NowVsBaseline>,
    /// Seconds of traffic the short window and the baseline of `calls_per_s` cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_s: Option<NowVsBaseline>,
    /// Median network gap of its calls (the caller's wait beyond the callee's own span;
    /// all of a call to a virtual node, which has none), milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<NowVsBaseline>,
    /// 90th percentile network gap of its calls, milliseconds: lost packets delay a
    /// share of the calls by a retransmission timeout, which the median does not show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_p90_ms: Option<NowVsBaseline>,
    /// 99th percentile network gap of its calls, milliseconds (the median of its 10 s
    /// buckets' p99s): lost packets that delay fewer than one call in ten show here only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_p99_ms: Option<NowVsBaseline>,
    /// Share of its calls whose caller's request failed right after, on the answer: the
    /// call succeeded, no other call of that request failed, and the request called
    /// nothing after it. Rises when the callee answers, but wrongly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_error_rate: Option<NowVsBaseline>,
}

/// A versioned impact map for one incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImpactMap {
    /// [`IMPACT_MAP_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Deterministic incident id (same alerts ⇒ same id).
    pub incident_id: String,
    /// 1, 2, … per incident; `(incident_id, version)` identifies a payload.
    pub version: u32,
    /// Open, resolved or stale.
    pub status: IncidentStatus,
    /// Alerted services, sorted.
    pub root_services: Vec<String>,
    /// Contained or spreading.
    pub verdict: Verdict,
    /// Nodes ordered by hops, direction, service.
    pub nodes: Vec<ImpactNode>,
    /// Edges ordered by caller, callee.
    pub edges: Vec<ImpactEdge>,
    /// Services of the blast radius left out of `nodes` (beyond `[engine.blast]
    /// max_nodes`: the map keeps the alerted, every red or amber, then the nearest clean
    /// ones). Absent when none were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_nodes: Option<u32>,
    /// What the pipeline lost or could not use over the last short window (late spans,
    /// pairing-store evictions, unpaired spans, ignored links, events held aside,
    /// evicted services), one line each, so a reader knows when the map may be
    /// missing something. Absent when nothing was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_quality: Option<Vec<String>>,
    /// Event time of the map (the watermark it was computed at), ns since epoch.
    pub event_time_ns: TimestampNs,
    /// Event time as RFC 3339.
    pub event_time: String,
    /// Wall clock when the runtime read the alert that led to this version (RFC 3339).
    #[serde(default)]
    pub alert_received_at: Option<String>,
    /// Wall clock when the runtime published this version (RFC 3339).
    #[serde(default)]
    pub published_at: Option<String>,
    /// `published_at − alert_received_at`, milliseconds.
    #[serde(default)]
    pub latency_ms: Option<f64>,
}

impl ImpactMap {
    /// The map with the wall-clock stamps removed: what determinism is defined on.
    pub fn without_wall_clock(&self) -> Self {
        Self { alert_received_at: None, published_at: None, latency_ms: None, ..self.clone() }
    }
}
