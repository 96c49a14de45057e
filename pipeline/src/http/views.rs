//! The documents the HTTP API answers with (besides the outputs' own schemas), each with
//! its JSON Schema for the OpenAPI document.

use devloom_operators::Engine;
use devloom_operators::service_graph::NodeState;
use devloom_schemas::{
    CandidateList, Criticality, HealthState, ImpactMap, IncidentStatus, NowVsBaseline, PostmortemDraft,
    RemediationPlan, RolloutDecision, RolloutVerdict, Verdict, VersionHealth,
};
use schemars::JsonSchema;
use serde::Serialize;

/// An error: the HTTP status and what was wrong.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// What was wrong, naming the parameter or the thing not found.
    pub error: String,
}

/// One incident in `GET /v1/incidents`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct IncidentSummary {
    /// The incident id outputs carry.
    pub incident_id: String,
    /// Open, resolved or stale, as of its latest impact map.
    pub status: IncidentStatus,
    /// Contained or spreading, as of its latest impact map.
    pub verdict: Verdict,
    /// Alerted services.
    pub root_services: Vec<String>,
    /// Services red in its latest map.
    pub red: u32,
    /// Services amber in its latest map.
    pub amber: u32,
    /// The top candidate of its latest list, with its confidence.
    pub top_candidate: Option<TopCandidate>,
    /// Latest version of each output kind it has.
    pub versions: Versions,
    /// Wall clock of its latest output (RFC 3339).
    pub updated_at: Option<String>,
}

/// The first root-cause candidate.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TopCandidate {
    /// The suspected service.
    pub service: String,
    /// Calibrated confidence, 0–100 (as in the candidate list).
    pub confidence: f64,
}

/// Latest version per output kind; absent when the incident has none of that kind.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Versions {
    /// Impact map.
    pub impact: Option<u32>,
    /// Candidate list.
    pub candidates: Option<u32>,
    /// Remediation plan.
    pub remediation: Option<u32>,
    /// Post-mortem draft.
    pub postmortem: Option<u32>,
}

/// `GET /v1/incidents`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct IncidentList {
    /// Open incidents first, then the most recently updated.
    pub incidents: Vec<IncidentSummary>,
}

/// `GET /v1/incidents/{id}`: the latest of every output of one incident.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct IncidentDetail {
    /// The incident id.
    pub incident_id: String,
    /// Latest impact map.
    pub impact: Option<ImpactMap>,
    /// Latest candidate list.
    pub candidates: Option<CandidateList>,
    /// Latest remediation plan.
    pub remediation: Option<RemediationPlan>,
    /// Latest post-mortem draft.
    pub postmortem: Option<Box<PostmortemDraft>>,
}

/// `GET /v1/incidents/{id}/history`: every version kept, oldest first.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct IncidentHistory {
    /// The incident id.
    pub incident_id: String,
    /// Impact-map versions.
    pub impact: Vec<ImpactMap>,
    /// Candidate-list versions.
    pub candidates: Vec<CandidateList>,
    /// Remediation-plan versions.
    pub remediation: Vec<RemediationPlan>,
    /// Post-mortem draft versions.
    pub postmortem: Vec<PostmortemDraft>,
    /// Older versions dropped beyond `[http] max_versions` per kind.
    pub dropped: u64,
}

/// One service of the live graph.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ServiceView {
    /// Service name (or virtual node: a database, a queue).
    pub service: String,
    /// `cloud.region`, when spans carry it.
    pub region: Option<String>,
    /// Known only from its callers' client spans.
    pub virtual_node: bool,
    /// Health at the last evaluation.
    pub state: HealthState,
    /// Failed requests / requests served.
    pub error_rate: NowVsBaseline,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: NowVsBaseline,
    /// Requests per second served.
    pub requests_per_s: NowVsBaseline,
    /// Event time it was last seen (RFC 3339).
    pub last_seen: String,
    /// Per-version health while two or more versions serve (a staged rollout), over the
    /// rollout's comparison window; empty otherwise.
    pub versions: Vec<VersionHealth>,
}

/// One call relationship of the live graph.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EdgeView {
    /// Calling service.
    pub caller: String,
    /// Called service.
    pub callee: String,
    /// Producer → consumer.
    pub asynchronous: bool,
    /// Declared by a service catalog.
    pub declared: bool,
    /// The criticality the catalog declares, if it does.
    pub criticality: Option<Criticality>,
    /// Health at the last evaluation.
    pub state: HealthState,
    /// Calls per second.
    pub calls_per_s: NowVsBaseline,
    /// Failed calls / calls.
    pub error_rate: NowVsBaseline,
    /// 99th percentile latency of the calls, milliseconds.
    pub p99_ms: NowVsBaseline,
}

/// `GET /v1/graph`: the service graph with health, as of `as_of`.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct GraphView {
    /// Event time of the view: the watermark when it was taken (RFC 3339); absent before
    /// the first look.
    pub as_of: Option<String>,
    /// Services, by name.
    pub services: Vec<ServiceView>,
    /// Edges, by caller then callee.
    pub edges: Vec<EdgeView>,
    /// Services left out (a neighbourhood query keeps only those within `hops`).
    pub omitted_services: u64,
}

/// `GET /v1/services/{name}`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ServiceDetail {
    /// The service (one entry per region it runs in).
    pub nodes: Vec<ServiceView>,
    /// Edges into it.
    pub callers: Vec<EdgeView>,
    /// Edges out of it.
    pub callees: Vec<EdgeView>,
    /// Incidents whose latest impact map shows it.
    pub incidents: Vec<String>,
}

/// `GET /v1/rollouts/{service}`: the latest rollout decisions of one service.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RolloutStatus {
    /// The service.
    pub service: String,
    /// The worst verdict over its environments (halt > inconclusive > continue).
    pub verdict: RolloutVerdict,
    /// `verdict != halt`: the boolean an Argo Rollouts `web` metric's `jsonPath` reads.
    pub ok: bool,
    /// The latest decision per environment.
    pub decisions: Vec<RolloutDecision>,
}

/// `GET /v1/rollouts`: the latest decision of every rollout seen.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RolloutList {
    /// By service, then environment.
    pub rollouts: Vec<RolloutDecision>,
}

/// `GET /readyz` and `GET /healthz`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Probe {
    /// Ready (readyz) or alive (healthz).
    pub ok: bool,
    /// Why not, or what it is waiting for.
    pub reasons: Vec<String>,
    /// Records read so far.
    pub records: u64,
    /// Milliseconds since the source last had nothing more to give; absent before.
    pub caught_up_ms_ago: Option<u64>,
    /// Milliseconds since the last checkpoint; absent where nothing checkpoints.
    pub checkpoint_ms_ago: Option<u64>,
    /// Clients connected to `/v1/stream`.
    pub stream_clients: u64,
}

fn now_vs(now: f64, baseline: f64) -> NowVsBaseline {
    NowVsBaseline { now, baseline }
}

fn service_view(n: &NodeState, engine: &Engine) -> ServiceView {
    let (now, base) = (&n.health.now, &n.health.baseline);
    ServiceView {
        service: n.id.name.to_string(),
        region: n.id.region.as_deref().map(str::to_string),
        virtual_node: n.id.virtual_node,
        state: n.health.state,
        error_rate: now_vs(now.error_rate(), base.error_rate()),
        p99_ms: now_vs(now.p99_ms, base.p99_ms),
        requests_per_s: now_vs(now.per_second, base.per_second),
        last_seen: devloom_schemas::time::format_rfc3339(n.last_seen_ns),
        versions: if n.id.virtual_node { Vec::new() } else { versions(engine, &n.id.name) },
    }
}

/// The versions of `service` while two or more serve.
fn versions(engine: &Engine, service: &str) -> Vec<VersionHealth> {
    engine.rollouts().versions(service).into_iter().map(|(_, v)| v).collect()
}

impl GraphView {
    /// The engine's graph now.
    pub fn of(engine: &Engine) -> Self {
        let g = engine.graph().graph();
        let mut services: Vec<ServiceView> = g.node_weights().map(|n| service_view(n, engine)).collect();
        services.sort_by(|a, b| (&a.service, &a.region).cmp(&(&b.service, &b.region)));
        let mut edges: Vec<EdgeView> = g
            .edge_indices()
            .filter_map(|e| {
                let (a, b) = g.edge_endpoints(e)?;
                let (s, now, base) = (&g[e], &g[e].health.now, &g[e].health.baseline);
                Some(EdgeView {
                    caller: g[a].id.name.to_string(),
                    callee: g[b].id.name.to_string(),
                    asynchronous: s.asynchronous,
                    declared: s.declared,
                    criticality: s.declared_criticality,
                    state: s.health.state,
                    calls_per_s: now_vs(now.per_second, base.per_second),
                    error_rate: now_vs(now.error_rate(), base.error_rate()),
                    p99_ms: now_vs(now.p99_ms, base.p99_ms),
                })
            })
            .collect();
        edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
        let as_of =
            (engine.watermark_ns() > 0).then(|| devloom_schemas::time::format_rfc3339(engine.watermark_ns()));
        Self { as_of, services, edges, omitted_services: 0 }
    }

    /// The services within `hops` calls of `service` (either direction) and the edges
    /// between them; `None` when no service has that name.
    pub fn around(&self, service: &str, hops: u32) -> Option<Self> {
        let mut keep: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
        if !self.services.iter().any(|s| s.service == service) {
            return None;
        }
        keep.insert(service);
        let mut frontier = vec![service];
        for _ in 0..hops {
            let mut next = Vec::new();
            for e in &self.edges {
                for (from, to) in [(&e.caller, &e.callee), (&e.callee, &e.caller)] {
                    if frontier.contains(&from.as_str()) && keep.insert(to) {
                        next.push(to.as_str());
                    }
                }
            }
            frontier = next;
        }
        let services: Vec<ServiceView> =
            self.services.iter().filter(|s| keep.contains(s.service.as_str())).cloned().collect();
        let edges = self
            .edges
            .iter()
            .filter(|e| keep.contains(e.caller.as_str()) && keep.contains(e.callee.as_str()))
            .cloned()
            .collect();
        let omitted_services = (self.services.len() - services.len()) as u64;
        Some(Self { as_of: self.as_of.clone(), services, edges, omitted_services })
    }
}
