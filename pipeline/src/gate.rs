//! The deployment gate: before a service ships, is this a good moment? A pure function
//! of what the pipeline knows (the live graph with health, the open incidents' latest
//! maps, recent changes, the latest rollout decisions), answering pass / warn / block
//! with reasons. `GET /v1/gate` serves it (as a Flagger webhook and an Argo Rollouts
//! `web` metric too) and `devloom gate` prints it for CI.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{
    ChangeKind, Deploy, HealthState, ImpactMap, RolloutDecision, RolloutVerdict, TimestampNs,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::http::views::{EdgeView, GraphView};

/// `[gate]`: what the deployment gate weighs, and the HTTP statuses it answers with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// How many calls downstream a degraded dependency counts.
    pub downstream_hops: u32,
    /// A red dependency within `downstream_hops`: `block` or `warn`.
    pub red_dependency: GateVerdict,
    /// An amber dependency within `downstream_hops`.
    pub amber_dependency: GateVerdict,
    /// A red or amber direct caller (the deploy could hurt it further).
    pub degraded_caller: GateVerdict,
    /// An open incident whose latest map shows the service.
    pub open_incident: GateVerdict,
    /// A rollback of the service within `failed_deploy_window_ms`, or a halted rollout.
    pub failed_deploy: GateVerdict,
    /// How far back a failed deploy counts, ms of event time.
    pub failed_deploy_window_ms: u64,
    /// Warn when a failure of the service would reach at least this many callers
    /// (transitively); 0: never.
    pub warn_blast_radius: usize,
    /// The service is not in the graph (no traffic seen): nothing known about it.
    pub unknown_service: GateVerdict,
    /// HTTP status of a `block` answer (a Flagger webhook fails on any non-2xx).
    pub block_status: u16,
    /// HTTP status of a halted rollout on `/v1/rollouts/{service}`.
    pub halt_status: u16,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            downstream_hops: 2,
            red_dependency: GateVerdict::Block,
            amber_dependency: GateVerdict::Warn,
            degraded_caller: GateVerdict::Warn,
            open_incident: GateVerdict::Warn,
            failed_deploy: GateVerdict::Warn,
            failed_deploy_window_ms: 24 * 3_600_000,
            warn_blast_radius: 10,
            unknown_service: GateVerdict::Warn,
            block_status: 409,
            halt_status: 409,
        }
    }
}

impl GateConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        for (name, status) in [("block_status", self.block_status), ("halt_status", self.halt_status)] {
            if !(400..=599).contains(&status) {
                return Err(format!(
                    "gate.{name} must be a 4xx or 5xx status (controllers treat 2xx as success), not {status}"
                ));
            }
        }
        if self.downstream_hops == 0 || self.downstream_hops > 10 {
            return Err("gate.downstream_hops must be 1 to 10".into());
        }
        Ok(())
    }
}

/// The gate's answer, worst first in severity order pass < warn < block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    /// Nothing against it.
    Pass,
    /// Ship with a second look.
    Warn,
    /// Do not ship now.
    Block,
}

impl GateVerdict {
    /// `pass`, `warn`, `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Block => "block",
        }
    }
}

/// One reason, with the check that raised it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateReason {
    /// `warn` or `block`.
    pub severity: GateVerdict,
    /// `red_dependency`, `amber_dependency`, `degraded_caller`, `open_incident`,
    /// `failed_deploy`, `halted_rollout`, `blast_radius` or `unknown_service`.
    pub check: String,
    /// What was found, naming the services.
    pub message: String,
}

/// A service the decision mentions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateService {
    /// Service name.
    pub service: String,
    /// Calls away from the gated service.
    pub hops: u32,
    /// Its health now.
    pub state: HealthState,
}

/// What a failure of the service would reach.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PotentialBlast {
    /// Every transitive caller, nearest first.
    pub callers: Vec<GateService>,
    /// How many.
    pub count: u32,
    /// Callers nobody calls (gateways, cron jobs, consumers of external queues): where
    /// users feel it.
    pub entry_points: Vec<String>,
}

/// The Flagger webhook body (`name`, `namespace`, `phase`, `metadata`), as Flagger
/// POSTs it to `confirm-rollout`, `pre-rollout`, `rollout` and the other hooks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FlaggerWebhook {
    /// Canary name.
    #[serde(default)]
    pub name: String,
    /// Canary namespace.
    #[serde(default)]
    pub namespace: String,
    /// Canary phase (`Initialized`, `Waiting`, `Progressing`, `Promoting`, `Finalising`,
    /// `Succeeded`, `Failed`).
    #[serde(default)]
    pub phase: String,
    /// The hook's `metadata`: `service` and `revision` here override the canary name.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl FlaggerWebhook {
    /// The service to gate: `metadata.service`, else the canary name.
    pub fn service(&self) -> Option<&str> {
        self.metadata
            .get("service")
            .map(String::as_str)
            .or((!self.name.is_empty()).then_some(self.name.as_str()))
    }
}

/// The gate decision, as `GET /v1/gate` and `devloom gate --format json` answer it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateDecision {
    /// The service gated.
    pub service: String,
    /// The revision about to ship, when given.
    pub revision: Option<String>,
    /// pass / warn / block: the worst of the reasons.
    pub decision: GateVerdict,
    /// `decision != block`: the boolean an Argo Rollouts `web` metric's `jsonPath` reads.
    pub ok: bool,
    /// Reasons that block.
    pub blocking: u32,
    /// Reasons that warn.
    pub warnings: u32,
    /// Every reason, blocking first.
    pub reasons: Vec<GateReason>,
    /// Degraded services within `downstream_hops` calls downstream.
    pub degraded_dependencies: Vec<GateService>,
    /// Degraded direct callers.
    pub degraded_callers: Vec<GateService>,
    /// Open incidents whose latest map shows the service.
    pub open_incidents: Vec<String>,
    /// What its failure would reach.
    pub blast_radius: PotentialBlast,
    /// Event time of the graph the decision read (RFC 3339).
    pub as_of: Option<String>,
    /// The Flagger webhook that asked, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagger: Option<FlaggerWebhook>,
}

/// Everything the gate reads.
pub struct GateFacts<'a> {
    /// The live graph.
    pub graph: &'a GraphView,
    /// The latest map of every open incident.
    pub open_maps: &'a [ImpactMap],
    /// Recent changes, oldest first.
    pub changes: &'a VecDeque<Deploy>,
    /// The latest rollout decisions.
    pub rollouts: &'a [RolloutDecision],
    /// Event time now (the graph's watermark).
    pub now_ns: TimestampNs,
}

fn degraded(state: HealthState) -> bool {
    matches!(state, HealthState::Red | HealthState::Amber)
}

/// Breadth-first from `service` along edges (`downstream`: caller → callee), up to
/// `max_hops` (0: unbounded): every service reached with its distance, nearest first.
fn walk(graph: &GraphView, service: &str, downstream: bool, max_hops: u32) -> Vec<(String, u32)> {
    walk_edges(graph, service, downstream, max_hops, |_| true)
}

/// [`walk`] over the edges `follow` accepts.
fn walk_edges(
    graph: &GraphView,
    service: &str,
    downstream: bool,
    max_hops: u32,
    follow: impl Fn(&EdgeView) -> bool,
) -> Vec<(String, u32)> {
    let mut seen = BTreeSet::from([service.to_string()]);
    let mut frontier = vec![service.to_string()];
    let mut out = Vec::new();
    let mut hops = 0;
    while !frontier.is_empty() && (max_hops == 0 || hops < max_hops) {
        hops += 1;
        let mut next = BTreeSet::new();
        for e in graph.edges.iter().filter(|e| follow(e)) {
            let (from, to) = if downstream { (&e.caller, &e.callee) } else { (&e.callee, &e.caller) };
            if frontier.contains(from) && seen.insert(to.clone()) {
                next.insert(to.clone());
            }
        }
        out.extend(next.iter().map(|s| (s.clone(), hops)));
        frontier = next.into_iter().collect();
    }
    out
}

/// The decision for `service` (and `revision`) over `facts` under `config`.
pub fn decide(
    facts: &GateFacts<'_>,
    config: &GateConfig,
    service: &str,
    revision: Option<&str>,
) -> GateDecision {
    let graph = facts.graph;
    // A service's state: the worse of its live health and its state on an open
    // incident's map (an alerted root is red there while its traffic is merely amber).
    let state_of = |name: &str| {
        let live = graph.services.iter().filter(|s| s.service == name).map(|s| s.state);
        let mapped =
            facts.open_maps.iter().flat_map(|m| &m.nodes).filter(|n| n.service == name).map(|n| n.state);
        let known = graph.services.iter().any(|s| s.service == name);
        live.chain(mapped).max_by_key(|s| severity(*s)).filter(|_| known)
    };
    let entry = |(name, hops): (String, u32)| GateService {
        state: state_of(&name).unwrap_or(HealthState::Unknown),
        service: name,
        hops,
    };
    let mut reasons = Vec::new();
    let mut reason = |severity: GateVerdict, check: &str, message: String| {
        if severity != GateVerdict::Pass {
            reasons.push(GateReason { severity, check: check.into(), message });
        }
    };
    if state_of(service).is_none() {
        reason(
            config.unknown_service,
            "unknown_service",
            format!(
                "{service} is not in the service graph (no traffic seen): its dependencies and callers are unknown"
            ),
        );
    }
    let dependencies: Vec<GateService> = walk(graph, service, true, config.downstream_hops)
        .into_iter()
        .map(entry)
        .filter(|s| degraded(s.state))
        .collect();
    // Dependencies reached only through one a catalog declares optional: the service is
    // built to do without them, so a red one weighs as an amber one.
    let critical: BTreeSet<String> = walk_edges(graph, service, true, config.downstream_hops, |e| {
        e.criticality != Some(devloom_schemas::Criticality::Optional)
    })
    .into_iter()
    .map(|(name, _)| name)
    .collect();
    for d in &dependencies {
        let behind_optional = !critical.contains(&d.service);
        let (severity, check) = match d.state {
            HealthState::Red if !behind_optional => (config.red_dependency, "red_dependency"),
            HealthState::Red => (config.amber_dependency, "red_dependency"),
            _ => (config.amber_dependency, "amber_dependency"),
        };
        let mut hops = if d.hops == 1 {
            "a direct dependency".to_string()
        } else {
            format!("{} calls downstream", d.hops)
        };
        if behind_optional {
            hops.push_str(", behind a dependency the catalog declares optional");
        }
        reason(
            severity,
            check,
            format!(
                "{} is {} ({hops}): a deploy now lands on a degraded path",
                d.service,
                state_word(d.state)
            ),
        );
    }
    let callers: Vec<GateService> =
        walk(graph, service, false, 1).into_iter().map(entry).filter(|s| degraded(s.state)).collect();
    for c in &callers {
        reason(
            config.degraded_caller,
            "degraded_caller",
            format!(
                "its caller {} is {}: a bad deploy would hurt it further",
                c.service,
                state_word(c.state)
            ),
        );
    }
    let mut open_incidents: Vec<String> = facts
        .open_maps
        .iter()
        .filter(|m| m.nodes.iter().any(|n| n.service == service))
        .map(|m| m.incident_id.clone())
        .collect();
    open_incidents.sort();
    for m in facts.open_maps.iter().filter(|m| open_incidents.contains(&m.incident_id)) {
        let here = m.nodes.iter().find(|n| n.service == service).map_or(HealthState::Unknown, |n| n.state);
        reason(
            config.open_incident,
            "open_incident",
            format!(
                "open incident {} (alerted on {}) shows {service} {} in its blast radius",
                m.incident_id,
                m.root_services.join(", "),
                state_word(here)
            ),
        );
    }
    let since = facts.now_ns.saturating_sub(config.failed_deploy_window_ms.saturating_mul(1_000_000));
    for c in facts
        .changes
        .iter()
        .filter(|c| c.service == service && c.time_ns >= since && c.kind == ChangeKind::Rollback)
    {
        let bad = c.previous_revision.as_deref().unwrap_or("an earlier revision");
        let same = revision.is_some_and(|r| Some(r) == c.previous_revision.as_deref());
        let severity = if same { GateVerdict::Block } else { config.failed_deploy };
        let again = if same { " — the revision about to ship again" } else { "" };
        reason(
            severity,
            "failed_deploy",
            format!("{bad} was rolled back to {} at {}{again}", c.revision, format_rfc3339(c.time_ns)),
        );
    }
    let halted = |d: &&RolloutDecision| {
        d.service == service && d.verdict == RolloutVerdict::Halt && d.event_time_ns >= since
    };
    for d in facts.rollouts.iter().filter(halted) {
        let same = revision.is_some_and(|r| r == d.canary.version);
        let severity = if same { GateVerdict::Block } else { config.failed_deploy };
        reason(
            severity,
            "halted_rollout",
            format!(
                "the rollout of {} was halted at {}: {}",
                d.canary.version,
                d.event_time,
                d.reasons.first().map_or("", String::as_str)
            ),
        );
    }
    let blast_callers: Vec<GateService> = walk(graph, service, false, 0).into_iter().map(entry).collect();
    let entry_points: Vec<String> = blast_callers
        .iter()
        .filter(|c| !graph.edges.iter().any(|e| e.callee == c.service))
        .map(|c| c.service.clone())
        .collect();
    if config.warn_blast_radius > 0 && blast_callers.len() >= config.warn_blast_radius {
        reason(
            GateVerdict::Warn,
            "blast_radius",
            format!(
                "a failure of {service} would reach {} callers (warns at {}), up to {}",
                blast_callers.len(),
                config.warn_blast_radius,
                entry_points.join(", ")
            ),
        );
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.severity));
    let decision = reasons.iter().map(|r| r.severity).max().unwrap_or(GateVerdict::Pass);
    let count = |v| reasons.iter().filter(|r| r.severity == v).count() as u32;
    GateDecision {
        service: service.to_string(),
        revision: revision.map(str::to_string),
        decision,
        ok: decision != GateVerdict::Block,
        blocking: count(GateVerdict::Block),
        warnings: count(GateVerdict::Warn),
        degraded_dependencies: dependencies,
        degraded_callers: callers,
        open_incidents,
        blast_radius: PotentialBlast {
            count: blast_callers.len() as u32,
            callers: blast_callers,
            entry_points,
        },
        as_of: graph.as_of.clone(),
        reasons,
        flagger: None,
    }
}

fn severity(state: HealthState) -> u8 {
    match state {
        HealthState::Red => 3,
        HealthState::Amber => 2,
        HealthState::Gray => 1,
        HealthState::Unknown => 0,
    }
}

fn state_word(state: HealthState) -> &'static str {
    match state {
        HealthState::Red => "red",
        HealthState::Amber => "amber",
        HealthState::Gray => "healthy",
        HealthState::Unknown => "of unknown health",
    }
}

/// The decision as Markdown for a pull-request comment or `$GITHUB_STEP_SUMMARY`: the
/// verdict, the reasons, and the blast radius as a small table.
pub fn markdown(d: &GateDecision) -> String {
    let icon = match d.decision {
        GateVerdict::Pass => "✅",
        GateVerdict::Warn => "⚠️",
        GateVerdict::Block => "⛔",
    };
    let revision = d.revision.as_deref().map(|r| format!(" `{r}`")).unwrap_or_default();
    let mut text = format!(
        "### {icon} Devloom deploy gate: **{}** for `{}`{revision}\n\n",
        d.decision.as_str(),
        d.service
    );
    if let Some(as_of) = &d.as_of {
        let _ = writeln!(text, "Service graph as of {as_of}.\n");
    }
    if d.reasons.is_empty() {
        text.push_str("No degraded dependency or caller, no open incident, no recent failed deploy.\n");
    }
    for r in &d.reasons {
        let _ = writeln!(text, "- **{}** ({}): {}", r.severity.as_str(), r.check, r.message);
    }
    let _ = writeln!(
        text,
        "\n**Blast radius if `{}` fails:** {} caller(s){}\n",
        d.service,
        d.blast_radius.count,
        if d.blast_radius.entry_points.is_empty() {
            String::new()
        } else {
            format!(", reaching {}", d.blast_radius.entry_points.join(", "))
        }
    );
    let rows: Vec<(&GateService, &str)> = d
        .degraded_dependencies
        .iter()
        .map(|s| (s, "dependency"))
        .chain(d.degraded_callers.iter().map(|s| (s, "caller")))
        .chain(d.blast_radius.callers.iter().take(10).map(|s| (s, "in blast radius")))
        .collect();
    if !rows.is_empty() {
        text.push_str("| service | relation | hops | state |\n|---|---|---:|---|\n");
        for (s, relation) in rows {
            let _ = writeln!(text, "| {} | {relation} | {} | {} |", s.service, s.hops, state_word(s.state));
        }
        if d.blast_radius.callers.len() > 10 {
            let _ = writeln!(text, "\n…and {} more callers.", d.blast_radius.callers.len() - 10);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use devloom_schemas::impact::IMPACT_MAP_SCHEMA_VERSION;
    use devloom_schemas::{Direction, ImpactNode, IncidentStatus, NowVsBaseline, Verdict};

    use super::*;
    use crate::http::views::ServiceView;

    const S: u64 = 1_000_000_000;

    fn service(name: &str, state: HealthState) -> ServiceView {
        ServiceView {
            service: name.into(),
            region: None,
            virtual_node: false,
            state,
            error_rate: NowVsBaseline::default(),
            p99_ms: NowVsBaseline::default(),
            requests_per_s: NowVsBaseline::default(),
            last_seen: String::new(),
            versions: Vec::new(),
        }
    }

    fn edge(caller: &str, callee: &str) -> EdgeView {
        EdgeView {
            caller: caller.into(),
            callee: callee.into(),
            asynchronous: false,
            declared: false,
            criticality: None,
            state: HealthState::Gray,
            calls_per_s: NowVsBaseline::default(),
            error_rate: NowVsBaseline::default(),
            p99_ms: NowVsBaseline::default(),
        }
    }

    /// gateway → frontend → checkout → payments → postgres, with the given states.
    fn shop(states: [HealthState; 5]) -> GraphView {
        let names = ["gateway", "frontend", "checkout", "payments", "postgres"];
        GraphView {
            as_of: Some("2026-11-27T09:08:00.000Z".into()),
            services: names.iter().zip(states).map(|(n, s)| service(n, s)).collect(),
            edges: names.windows(2).map(|w| edge(w[0], w[1])).collect(),
            omitted_services: 0,
        }
    }

    fn open_map(root: &str, showing: &[(&str, HealthState)]) -> ImpactMap {
        ImpactMap {
            schema_version: IMPACT_MAP_SCHEMA_VERSION,
            incident_id: format!("inc-{root}"),
            version: 1,
            status: IncidentStatus::Open,
            root_services: vec![root.into()],
            verdict: Verdict::Contained,
            nodes: showing
                .iter()
                .map(|(name, state)| ImpactNode {
                    service: (*name).into(),
                    region: None,
                    virtual_node: false,
                    state: *state,
                    hops: 0,
                    direction: Direction::Root,
                    path: vec![],
                    error_rate: NowVsBaseline::default(),
                    p99_ms: NowVsBaseline::default(),
                    requests_per_s: NowVsBaseline::default(),
                    covered_s: None,
                    self_time_ms: None,
                    self_time_p90_ms: None,
                    catalog: None,
                })
                .collect(),
            edges: vec![],
            omitted_nodes: None,
            data_quality: None,
            event_time_ns: 0,
            event_time: String::new(),
            alert_received_at: None,
            published_at: None,
            latency_ms: None,
        }
    }

    fn gate(
        graph: &GraphView,
        maps: &[ImpactMap],
        changes: &[Deploy],
        service: &str,
        rev: Option<&str>,
    ) -> GateDecision {
        let changes: VecDeque<Deploy> = changes.iter().cloned().collect();
        let facts = GateFacts { graph, open_maps: maps, changes: &changes, rollouts: &[], now_ns: 600 * S };
        decide(&facts, &GateConfig::default(), service, rev)
    }

    use HealthState::{Amber, Gray, Red};

    #[test]
    fn passes_on_a_healthy_graph_with_the_blast_radius_it_would_have() {
        let d = gate(&shop([Gray; 5]), &[], &[], "checkout", None);
        assert_eq!((d.decision, d.ok, d.blocking, d.warnings), (GateVerdict::Pass, true, 0, 0), "{d:#?}");
        let callers: Vec<(&str, u32)> =
            d.blast_radius.callers.iter().map(|c| (c.service.as_str(), c.hops)).collect();
        assert_eq!(callers, [("frontend", 1), ("gateway", 2)]);
        assert_eq!(d.blast_radius.entry_points, ["gateway"]);
    }

    #[test]
    fn blocks_when_a_dependency_downstream_is_red_and_warns_when_amber() {
        let d = gate(&shop([Gray, Gray, Gray, Gray, Red]), &[], &[], "checkout", None);
        assert_eq!((d.decision, d.ok), (GateVerdict::Block, false), "{d:#?}");
        assert_eq!(d.reasons[0].check, "red_dependency");
        assert!(
            d.reasons[0].message.contains("postgres is red (2 calls downstream)"),
            "{}",
            d.reasons[0].message
        );
        assert_eq!(d.degraded_dependencies[0].service, "postgres");

        let d = gate(&shop([Gray, Gray, Gray, Amber, Gray]), &[], &[], "checkout", None);
        assert_eq!(d.decision, GateVerdict::Warn);
        assert_eq!(d.reasons[0].check, "amber_dependency");

        let mut optional = shop([Gray, Gray, Gray, Gray, Red]);
        optional.edges[3].criticality = Some(devloom_schemas::Criticality::Optional);
        let d = gate(&optional, &[], &[], "checkout", None);
        assert_eq!(d.decision, GateVerdict::Warn, "payments can do without postgres, says the catalog");
        assert_eq!(d.reasons[0].check, "red_dependency");
        assert!(
            d.reasons[0]
                .message
                .contains("(2 calls downstream, behind a dependency the catalog declares optional)"),
            "{}",
            d.reasons[0].message
        );

        let beyond = gate(&shop([Gray, Gray, Gray, Gray, Red]), &[], &[], "frontend", None);
        assert_eq!(
            beyond.decision,
            GateVerdict::Pass,
            "postgres is 3 calls from frontend, beyond downstream_hops"
        );
    }

    #[test]
    fn warns_on_an_open_incident_upstream_and_on_a_degraded_caller() {
        // checkout alerted; its incident's map shows payments (downstream of the alert).
        let map = open_map("checkout", &[("checkout", Red), ("payments", Gray)]);
        let d = gate(&shop([Gray, Gray, Gray, Gray, Gray]), &[map], &[], "payments", None);
        assert_eq!(d.decision, GateVerdict::Warn, "{d:#?}");
        assert_eq!(d.open_incidents, ["inc-checkout"]);
        let messages: Vec<&str> = d.reasons.iter().map(|r| r.message.as_str()).collect();
        assert!(
            messages.iter().any(|m| m.contains("open incident inc-checkout (alerted on checkout)")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("its caller checkout is red")),
            "red on the incident's map though its traffic looks healthy: {messages:?}"
        );

        let d = gate(&shop([Gray, Gray, Red, Gray, Gray]), &[], &[], "payments", None);
        assert_eq!(d.decision, GateVerdict::Warn);
        assert_eq!(d.reasons[0].check, "degraded_caller");
    }

    #[test]
    fn a_rolled_back_revision_blocks_and_another_revision_warns() {
        let rollback = Deploy {
            service: "payments".into(),
            revision: "v1.8.2".into(),
            previous_revision: Some("v1.9.0".into()),
            time_ns: 500 * S,
            kind: ChangeKind::Rollback,
            ..Deploy::default()
        };
        let graph = shop([Gray; 5]);
        let again = gate(&graph, &[], std::slice::from_ref(&rollback), "payments", Some("v1.9.0"));
        assert_eq!(again.decision, GateVerdict::Block);
        assert!(again.reasons[0].message.contains("v1.9.0 was rolled back to v1.8.2"));
        let other = gate(&graph, &[], &[rollback], "payments", Some("v1.9.1"));
        assert_eq!(other.decision, GateVerdict::Warn);
    }

    #[test]
    fn an_unknown_service_warns() {
        let d = gate(&shop([Gray; 5]), &[], &[], "nope", None);
        assert_eq!(d.decision, GateVerdict::Warn);
        assert_eq!(d.reasons[0].check, "unknown_service");
    }

    /// The body Flagger POSTs to every webhook, as its documentation shows it.
    #[test]
    fn reads_flaggers_webhook_payload() {
        let body = r#"{"name": "podinfo", "namespace": "test", "phase": "Progressing",
                       "metadata": {"test": "all", "token": "16688eb5e9f289f1991c"}}"#;
        let hook: FlaggerWebhook = serde_json::from_str(body).unwrap();
        assert_eq!(
            (hook.name.as_str(), hook.namespace.as_str(), hook.phase.as_str()),
            ("podinfo", "test", "Progressing")
        );
        assert_eq!(hook.service(), Some("podinfo"), "the canary name, without metadata.service");
        let named: FlaggerWebhook =
            serde_json::from_str(r#"{"name": "podinfo", "metadata": {"service": "frontend"}}"#).unwrap();
        assert_eq!(named.service(), Some("frontend"));
    }

    #[test]
    fn markdown_has_the_verdict_the_reasons_and_a_table() {
        let d = gate(&shop([Gray, Gray, Gray, Gray, Red]), &[], &[], "checkout", Some("abc123"));
        let text = markdown(&d);
        assert!(text.starts_with("### ⛔ Devloom deploy gate: **block** for `checkout` `abc123`"), "{text}");
        assert!(text.contains("- **block** (red_dependency): postgres is red"));
        assert!(text.contains("| service | relation | hops | state |"));
        assert!(text.contains("| postgres | dependency | 2 | red |"));
        assert!(text.contains("| gateway | in blast radius | 2 | healthy |"));
    }
}
