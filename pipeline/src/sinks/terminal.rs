//! The terminal picture of an impact map: the tree from each root, callers (▲) and
//! callees (▼), states in colour on a terminal and as words everywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use anstyle::{AnsiColor, Style};
use devloom_schemas::{
    CandidateList, CauseStatus, Direction, EdgeOrigin, HealthState, ImpactEdge, ImpactMap, ImpactNode,
    IncidentStatus, PostmortemDraft, Remediation, RemediationPlan, RolloutDecision, RolloutVerdict, Verdict,
};

use super::remediation_view::{render_remediation, render_rescored};
use crate::core::{Output, Sink};

fn style(state: HealthState) -> Style {
    match state {
        HealthState::Red => AnsiColor::Red.on_default().bold(),
        HealthState::Amber => AnsiColor::Yellow.on_default().bold(),
        HealthState::Gray => AnsiColor::BrightBlack.on_default(),
        HealthState::Unknown => AnsiColor::BrightBlack.on_default().dimmed(),
    }
}

fn word(state: HealthState) -> &'static str {
    match state {
        HealthState::Red => "RED",
        HealthState::Amber => "AMBER",
        HealthState::Gray => "gray",
        HealthState::Unknown => "unknown",
    }
}

fn label(n: &ImpactNode) -> String {
    match &n.region {
        Some(r) => format!("{}@{r}", n.service),
        None => n.service.clone(),
    }
}

fn describe(n: &ImpactNode, color: bool) -> String {
    let s = style(n.state);
    let state = if color { format!("{s}{}{s:#}", word(n.state)) } else { word(n.state).to_string() };
    let mut text = format!("{}{} {state}", label(n), if n.virtual_node { " (virtual)" } else { "" });
    if n.requests_per_s.now > 0.0 || n.requests_per_s.baseline > 0.0 {
        let _ = write!(
            text,
            "  err {:.1}% (base {:.1}%)  p99 {:.0} ms (base {:.0} ms)  {:.0} req/s",
            n.error_rate.now * 100.0,
            n.error_rate.baseline * 100.0,
            n.p99_ms.now,
            n.p99_ms.baseline,
            n.requests_per_s.now,
        );
        if let Some(own) = n.self_time_ms.filter(|o| o.now > 0.0 || o.baseline > 0.0) {
            let _ = write!(text, "  self {:.1} ms (base {:.1} ms)", own.now, own.baseline);
        }
    } else {
        text.push_str("  no traffic");
    }
    // Whom to page, from the service catalogs.
    if let Some(c) = &n.catalog {
        let owner =
            c.owner.as_deref().map(|o| format!("owner {}", o.strip_prefix("group:default/").unwrap_or(o)));
        let page = c.escalation_policy.as_deref().map(|p| format!("page {p}"));
        let whom: Vec<String> = owner.into_iter().chain(page).collect();
        if !whom.is_empty() {
            let _ = write!(text, "  [{}]", whom.join(", "));
        }
    }
    text
}

/// Renders one map version as text (ANSI colours when `color`).
pub fn render_map(map: &ImpactMap, color: bool) -> String {
    let mut out = String::new();
    let status = match map.status {
        IncidentStatus::Open => "OPEN",
        IncidentStatus::Resolved => "RESOLVED",
        IncidentStatus::Stale => "STALE (no alert for stale_after_ms)",
    };
    let verdict = match map.verdict {
        Verdict::Contained => "contained",
        Verdict::Spreading => "SPREADING",
    };
    let _ = write!(
        out,
        "── {} v{} · {status} · {verdict} · roots: {} · {}",
        map.incident_id,
        map.version,
        map.root_services.join(", "),
        map.event_time
    );
    if let Some(ms) = map.latency_ms {
        let _ = write!(out, " · {ms:.2} ms after the alert was read");
    }
    out.push('\n');
    for note in map.data_quality.iter().flatten() {
        let _ = writeln!(out, "   data quality: {note}");
    }
    if let Some(n) = map.omitted_nodes {
        let _ = writeln!(
            out,
            "   {n} more clean services in the blast radius not listed (engine.blast.max_nodes)"
        );
    }
    // Children by (parent label, direction), from each node's path.
    let mut children: BTreeMap<(String, Direction), Vec<&ImpactNode>> = BTreeMap::new();
    for n in map.nodes.iter().filter(|n| n.direction != Direction::Root) {
        if n.path.len() >= 2 {
            children.entry((n.path[n.path.len() - 2].clone(), n.direction)).or_default().push(n);
        }
    }
    let edges: BTreeMap<(String, String), &ImpactEdge> =
        map.edges.iter().map(|e| ((e.caller.clone(), e.callee.clone()), e)).collect();
    for root in map.nodes.iter().filter(|n| n.direction == Direction::Root) {
        let _ = writeln!(out, "{}", describe(root, color));
        let sections: Vec<(Direction, &str)> =
            [(Direction::Upstream, "▲ callers"), (Direction::Downstream, "▼ callees")]
                .into_iter()
                .filter(|(d, _)| children.contains_key(&(label(root), *d)))
                .collect();
        for (i, (direction, title)) in sections.iter().enumerate() {
            let last = i + 1 == sections.len();
            let _ = writeln!(out, "{}{title}", if last { "└─" } else { "├─" });
            let prefix = if last { "   " } else { "│  " };
            subtree(&mut out, &children, &edges, &label(root), *direction, prefix, color);
        }
    }
    out
}

fn subtree(
    out: &mut String,
    children: &BTreeMap<(String, Direction), Vec<&ImpactNode>>,
    edges: &BTreeMap<(String, String), &ImpactEdge>,
    parent: &str,
    direction: Direction,
    prefix: &str,
    color: bool,
) {
    let Some(kids) = children.get(&(parent.to_string(), direction)) else { return };
    for (i, n) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let (caller, callee) = match direction {
            Direction::Upstream => (label(n), parent.to_string()),
            _ => (parent.to_string(), label(n)),
        };
        let mark = edges.get(&(caller, callee)).map(|e| edge_mark(e)).unwrap_or_default();
        let _ = writeln!(out, "{prefix}{}{}{mark}", if last { "└─ " } else { "├─ " }, describe(n, color));
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        subtree(out, children, edges, &label(n), direction, &deeper, color);
    }
}

/// How the edge to a node was learnt, when it is not a plain observed call.
fn edge_mark(edge: &ImpactEdge) -> String {
    let mut marks = Vec::new();
    if edge.asynchronous {
        marks.push("async");
    }
    match edge.origin {
        EdgeOrigin::Observed => {}
        EdgeOrigin::Declared => marks.push("declared, not seen in traces"),
        EdgeOrigin::Both => marks.push("declared"),
    }
    if marks.is_empty() { String::new() } else { format!("  ⇢ {}", marks.join(", ")) }
}

/// Writes each map as its terminal picture.
pub struct TerminalSink<W: Write> {
    out: W,
    color: bool,
    /// The remediations last drawn in full per open incident, without their ranks and
    /// confidences: a re-scored plan that changes nothing else is drawn in one line.
    drawn: BTreeMap<String, Vec<Remediation>>,
}

impl<W: Write> TerminalSink<W> {
    /// A sink writing to `out`, in colour when `color`.
    pub fn new(out: W, color: bool) -> Self {
        Self { out, color, drawn: BTreeMap::new() }
    }

    fn remediation(&mut self, plan: &RemediationPlan) -> String {
        let plans: Vec<Remediation> =
            plan.remediations.iter().map(|r| Remediation { rank: 0, confidence: 0.0, ..r.clone() }).collect();
        let same = self.drawn.get(&plan.incident_id) == Some(&plans);
        if plan.status.is_closed() {
            self.drawn.remove(&plan.incident_id);
        } else {
            self.drawn.insert(plan.incident_id.clone(), plans);
        }
        if same { render_rescored(plan) } else { render_remediation(plan, self.color) }
    }
}

impl<W: Write> Sink for TerminalSink<W> {
    fn publish(&mut self, output: &Output) -> io::Result<()> {
        let text = match output {
            Output::Impact(map) => render_map(map, self.color),
            Output::Candidates(list) => render_candidates(list, self.color),
            Output::Remediation(plan) => self.remediation(plan),
            Output::Postmortem(draft) => render_postmortem(draft),
            Output::Rollout(decision) => render_rollout(decision, self.color),
            Output::DeadLetter(_) => return Ok(()),
        };
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }
}

/// A post-mortem draft's headline: its title, the cause and where the whole draft is.
pub fn render_postmortem(draft: &PostmortemDraft) -> String {
    let cause = match (draft.root_cause.status, &draft.root_cause.key) {
        (CauseStatus::Confirmed, Some(key)) => format!("cause confirmed: {key}"),
        (CauseStatus::Unconfirmed, Some(key)) => format!("top candidate (unconfirmed): {key}"),
        _ => "cause unknown".to_string(),
    };
    format!(
        "   post-mortem draft v{} for {}: {}\n   {cause}; the whole draft: --postmortems FILE, or devloom postmortem {} --history DIR\n",
        draft.version, draft.incident_id, draft.title, draft.incident_id
    )
}

/// A rollout decision: the verdict (colored), the two versions and the reasons.
pub fn render_rollout(d: &RolloutDecision, color: bool) -> String {
    let verdict = d.verdict.as_str().to_uppercase();
    let styled = if color {
        let c = match d.verdict {
            RolloutVerdict::Halt => AnsiColor::Red,
            RolloutVerdict::Continue => AnsiColor::Green,
            RolloutVerdict::Inconclusive => AnsiColor::Yellow,
        };
        let s = Style::new().fg_color(Some(c.into())).bold();
        format!("{s}{verdict}{s:#}")
    } else {
        verdict
    };
    let env = d.environment.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
    let mut text = format!(
        "── rollout {}{env} #{}  {}  canary {} ({} req, {:.2}% failed) vs stable {} ({} req, {:.2}% failed) @ {}\n",
        d.service,
        d.sequence,
        styled,
        d.canary.version,
        d.canary.requests,
        100.0 * d.canary.error_rate,
        d.stable.version,
        d.stable.requests,
        100.0 * d.stable.error_rate,
        d.event_time
    );
    for r in &d.reasons {
        let _ = writeln!(text, "   {r}");
    }
    text
}

/// The candidate list under a map: the top five with confidence, the flag when set.
pub fn render_candidates(list: &CandidateList, color: bool) -> String {
    let mut text = format!("   root-cause candidates v{} ({}):\n", list.version, list.model);
    if list.low_confidence {
        let flag = "⚠ low confidence — investigate before acting";
        let styled = if color {
            let s = Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold();
            format!("{s}{flag}{s:#}")
        } else {
            flag.to_string()
        };
        let _ = writeln!(text, "   {styled}");
    }
    for c in list.candidates.iter().take(5) {
        let unfamiliar =
            if c.unfamiliar == Some(true) { "  (unlike anything the model was trained on)" } else { "" };
        let _ = writeln!(text, "   {:>5.1}  {}{unfamiliar}", c.confidence, c.summary);
    }
    if list.candidates.is_empty() {
        text.push_str("   (none: no change, job, degraded dependency or spike in view)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use devloom_schemas::NowVsBaseline;

    use super::*;

    fn node(service: &str, state: HealthState, hops: u32, direction: Direction, path: &[&str]) -> ImpactNode {
        ImpactNode {
            service: service.into(),
            region: None,
            virtual_node: service == "postgres",
            state,
            hops,
            direction,
            path: path.iter().map(|s| s.to_string()).collect(),
            error_rate: NowVsBaseline { now: 0.12, baseline: 0.002 },
            p99_ms: NowVsBaseline { now: 350.0, baseline: 40.0 },
            requests_per_s: NowVsBaseline { now: 20.0, baseline: 19.0 },
            covered_s: None,
            self_time_ms: None,
            self_time_p90_ms: None,
            catalog: None,
        }
    }

    #[test]
    fn renders_the_tree_from_the_root() {
        let map = ImpactMap {
            schema_version: 1,
            incident_id: "inc-1".into(),
            version: 2,
            status: IncidentStatus::Open,
            root_services: vec!["checkout".into()],
            verdict: Verdict::Spreading,
            nodes: vec![
                node("checkout", HealthState::Red, 0, Direction::Root, &["checkout"]),
                node("frontend", HealthState::Amber, 1, Direction::Upstream, &["checkout", "frontend"]),
                ImpactNode {
                    catalog: Some(devloom_schemas::NodeCatalog {
                        entities: vec!["component:payments/payments-service".into()],
                        owner: Some("group:default/team-checkout".into()),
                        escalation_policy: Some("Payments On-Call".into()),
                        ..Default::default()
                    }),
                    ..node("payments", HealthState::Red, 1, Direction::Downstream, &["checkout", "payments"])
                },
                node(
                    "gateway",
                    HealthState::Gray,
                    2,
                    Direction::Upstream,
                    &["checkout", "frontend", "gateway"],
                ),
                node(
                    "postgres",
                    HealthState::Amber,
                    2,
                    Direction::Downstream,
                    &["checkout", "payments", "postgres"],
                ),
            ],
            edges: vec![ImpactEdge {
                caller: "checkout".into(),
                callee: "payments".into(),
                origin: EdgeOrigin::Declared,
                asynchronous: false,
                criticality: devloom_schemas::Criticality::Critical,
                traffic_share: 0.0,
                state: HealthState::Unknown,
                error_rate: NowVsBaseline::default(),
                calls_per_s: None,
                covered_s: None,
                gap_ms: None,
                caller_error_rate: None,
                gap_p90_ms: None,
                gap_p99_ms: None,
            }],
            omitted_nodes: None,
            data_quality: None,
            event_time_ns: 0,
            event_time: "2026-11-27T09:07:00.000Z".into(),
            alert_received_at: None,
            published_at: None,
            latency_ms: Some(0.5),
        };
        let text = render_map(&map, false);
        let expected = "\
── inc-1 v2 · OPEN · SPREADING · roots: checkout · 2026-11-27T09:07:00.000Z · 0.50 ms after the alert was read
checkout RED  err 12.0% (base 0.2%)  p99 350 ms (base 40 ms)  20 req/s
├─▲ callers
│  └─ frontend AMBER  err 12.0% (base 0.2%)  p99 350 ms (base 40 ms)  20 req/s
│     └─ gateway gray  err 12.0% (base 0.2%)  p99 350 ms (base 40 ms)  20 req/s
└─▼ callees
   └─ payments RED  err 12.0% (base 0.2%)  p99 350 ms (base 40 ms)  20 req/s  [owner team-checkout, page Payments On-Call]  ⇢ declared, not seen in traces
      └─ postgres (virtual) AMBER  err 12.0% (base 0.2%)  p99 350 ms (base 40 ms)  20 req/s
";
        assert_eq!(text, expected);
        assert!(render_map(&map, true).contains("\u{1b}["), "colour on a terminal");
    }
}
