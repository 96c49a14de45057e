//! Root-cause candidates: for every impact-map version, the possible causes (recent
//! changes on affected services, scheduled jobs near the onset, every alerted or
//! degraded service, traffic spikes at entry points, uninstrumented databases and
//! queues), their
//! [`Evidence`], and the scorer's calibrated confidence. A new list version is emitted
//! when the ranking or a confidence changes: a new map version, or a change arriving for
//! an open incident.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use devloom_schemas::{
    CANDIDATES_SCHEMA_VERSION, Candidate, CandidateKind, CandidateList, ChangeKind, Criticality, Deploy,
    Direction, HealthState, ImpactEdge, ImpactMap, ImpactNode, NowVsBaseline, TimestampNs,
};
use serde::{Deserialize, Serialize};

use crate::evidence::{Evidence, FEATURES, features};
use crate::operator::Operator;
use crate::scorer::Scorer;
use crate::service_graph::HealthChange;

const NS_PER_S: f64 = 1e9;
/// Changes stamped up to this long after the onset still count (clocks disagree).
const CLOCK_SKEW_S: f64 = 60.0;

/// Candidate settings; `[engine.candidates]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandidatesConfig {
    /// Deploys and config changes up to this long before the onset are candidates, ms.
    pub change_lookback_ms: u64,
    /// Scheduled jobs that started up to this long before the onset are candidates, ms.
    pub job_window_ms: u64,
    /// An entry point whose requests/s exceed its baseline by this factor is a
    /// traffic-spike candidate.
    pub traffic_spike_ratio: f64,
    /// Changes remembered at most (oldest forgotten first).
    pub max_changes: usize,
}

impl Default for CandidatesConfig {
    fn default() -> Self {
        Self {
            change_lookback_ms: 2 * 3_600_000,
            job_window_ms: 3_600_000,
            traffic_spike_ratio: 1.5,
            max_changes: 10_000,
        }
    }
}

impl CandidatesConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.traffic_spike_ratio.is_finite() && self.traffic_spike_ratio > 1.0) {
            return Err(format!(
                "traffic_spike_ratio must be a finite ratio above 1, got {}",
                self.traffic_spike_ratio
            ));
        }
        if self.max_changes == 0 {
            return Err("max_changes must be above 0".into());
        }
        Ok(())
    }
}

/// Past incidents whose confirmed cause was `kind` on `service`, by alerted service:
/// the "similar past incidents" feature, loaded from the history archive.
pub type PastIncidents = BTreeMap<String, u32>;

/// The key of [`PastIncidents`].
pub fn past_key(root_service: &str, kind: CandidateKind, service: &str) -> String {
    format!("{root_service}|{kind:?}|{service}")
}

/// Input of the candidate operator.
#[derive(Clone, Debug)]
pub enum CandidateInput {
    /// A published impact-map version.
    Map(ImpactMap),
    /// A deploy, config change or scheduled job.
    Change(Deploy),
    /// A service's health changed (for onset order).
    Health(HealthChange),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tracked {
    map: ImpactMap,
    onset_ns: TimestampNs,
    version: u32,
    last: Vec<(String, i64)>,
}

/// Serializable state of [`CandidateScorer`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CandidatesSnapshot {
    changes: VecDeque<Deploy>,
    degraded_since: BTreeMap<String, TimestampNs>,
    open: BTreeMap<String, Tracked>,
}

/// Builds, scores (with its [`Scorer`]) and versions candidate lists.
#[derive(Clone, Debug)]
pub struct CandidateScorer {
    config: CandidatesConfig,
    scorer: Scorer,
    past: PastIncidents,
    state: CandidatesSnapshot,
}

impl CandidateScorer {
    /// An empty operator scoring with `scorer`; `past` feeds the similar-incidents
    /// feature.
    pub fn new(config: CandidatesConfig, scorer: Scorer, past: PastIncidents) -> Self {
        Self { config, scorer, past, state: CandidatesSnapshot::default() }
    }

    /// The remembered change a candidate key names (the latest, if it repeats).
    pub fn change(&self, key: &str) -> Option<&Deploy> {
        let len = |c: &Deploy| candidate_kind(c.kind).1.len() + c.service.len() + c.revision.len() + 2;
        self.state.changes.iter().rev().find(|c| len(c) == key.len() && change_key(c) == key)
    }

    fn rescore(&mut self, id: &str, time_ns: TimestampNs, out: &mut Vec<CandidateList>) {
        let scorer = &self.scorer;
        let Some(tracked) = self.state.open.get(id) else { return };
        let found = find(&self.config, &self.state, &self.past, tracked);
        let evidence: Vec<Evidence> = found.iter().map(|(_, e)| e.clone()).collect();
        let scored = scorer.score(&evidence);
        let mut candidates: Vec<Candidate> = found
            .into_iter()
            .zip(scored)
            .map(|((c, e), s)| Candidate {
                confidence: round(s.confidence, 10.0),
                share: round(s.share, 10_000.0),
                unfamiliar: Some(s.unfamiliar),
                features: FEATURES
                    .iter()
                    .zip(features(&e))
                    .map(|(n, v)| (n.to_string(), round(v, 1e6)))
                    .collect(),
                ..c
            })
            .collect();
        candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.key.cmp(&b.key)));
        let signature: Vec<(String, i64)> =
            candidates.iter().map(|c| (c.key.clone(), (c.confidence * 10.0).round() as i64)).collect();
        let tracked = self.state.open.get_mut(id).expect("looked up above");
        let resolved = tracked.map.status.is_closed();
        if signature == tracked.last && tracked.version > 0 && !resolved {
            return;
        }
        tracked.version += 1;
        tracked.last = signature;
        let confidences: Vec<f64> = candidates.iter().map(|c| c.confidence).collect();
        let top_unfamiliar = candidates.first().is_some_and(|c| c.unfamiliar == Some(true));
        out.push(CandidateList {
            schema_version: CANDIDATES_SCHEMA_VERSION,
            incident_id: id.to_string(),
            version: tracked.version,
            status: tracked.map.status,
            root_services: tracked.map.root_services.clone(),
            onset_ns: tracked.onset_ns,
            event_time_ns: time_ns.max(tracked.map.event_time_ns),
            low_confidence: scorer.is_low_confidence(&confidences) || top_unfamiliar,
            model: scorer.id(),
            candidates,
            published_at: None,
        });
        if resolved {
            self.state.open.remove(id);
        }
    }
}

impl Operator for CandidateScorer {
    type In = CandidateInput;
    type Out = CandidateList;
    type Ctx = ();
    type Snapshot = CandidatesSnapshot;

    fn on_event(&mut self, _: &(), input: &CandidateInput, out: &mut Vec<CandidateList>) {
        match input {
            CandidateInput::Map(map) => {
                let tracked = self.state.open.entry(map.incident_id.clone()).or_insert_with(|| Tracked {
                    map: map.clone(),
                    onset_ns: map.event_time_ns,
                    version: 0,
                    last: Vec::new(),
                });
                tracked.map = map.clone();
                self.rescore(&map.incident_id, map.event_time_ns, out);
            }
            CandidateInput::Change(change) => {
                if self.state.changes.len() >= self.config.max_changes {
                    self.state.changes.pop_front();
                }
                self.state.changes.push_back(change.clone());
                let touched: Vec<String> = self
                    .state
                    .open
                    .iter()
                    .filter(|(_, t)| {
                        change.kind == ChangeKind::ScheduledJob
                            || t.map.nodes.iter().any(|n| n.service == change.service)
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in touched {
                    self.rescore(&id, change.time_ns, out);
                }
            }
            CandidateInput::Health(change) => {
                let name = change.service.name.to_string();
                let degraded = |s: HealthState| matches!(s, HealthState::Amber | HealthState::Red);
                if degraded(change.to) {
                    self.state.degraded_since.entry(name).or_insert(change.time_ns);
                } else {
                    self.state.degraded_since.remove(&name);
                }
            }
        }
    }

    fn on_watermark(&mut self, _: &(), event_time: TimestampNs, _: &mut Vec<CandidateList>) {
        let keep_ns =
            (self.config.change_lookback_ms.max(self.config.job_window_ms) * 2).saturating_mul(1_000_000);
        let horizon = event_time.saturating_sub(keep_ns);
        self.state.changes.retain(|c| c.time_ns >= horizon);
    }

    fn snapshot(&self) -> CandidatesSnapshot {
        self.state.clone()
    }

    fn restore(&mut self, snapshot: CandidatesSnapshot) {
        self.state = snapshot;
    }
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

/// The candidates of one incident (unscored, keyed, deduplicated, in key order).
fn find(
    config: &CandidatesConfig,
    state: &CandidatesSnapshot,
    past: &PastIncidents,
    tracked: &Tracked,
) -> Vec<(Candidate, Evidence)> {
    let map = &tracked.map;
    let onset = tracked.onset_ns;
    let nodes: BTreeMap<&str, &ImpactNode> = map.nodes.iter().map(|n| (n.service.as_str(), n)).collect();
    let since = |t: TimestampNs| (onset as f64 - t as f64) / NS_PER_S;
    let lookback = config.change_lookback_ms as f64 / 1000.0;
    let job_window = config.job_window_ms as f64 / 1000.0;
    let jobs: Vec<&Deploy> = state
        .changes
        .iter()
        .filter(|c| {
            c.kind == ChangeKind::ScheduledJob && (-CLOCK_SKEW_S..=job_window).contains(&since(c.time_ns))
        })
        .collect();
    let nearest_job = jobs.iter().map(|j| since(j.time_ns).abs()).reduce(f64::min);
    let mut found: BTreeMap<String, (Candidate, Evidence)> = BTreeMap::new();
    let mut into: BTreeMap<&str, Vec<&ImpactEdge>> = BTreeMap::new();
    let mut out_of: BTreeMap<&str, Vec<&ImpactEdge>> = BTreeMap::new();
    for edge in &map.edges {
        into.entry(edge.callee.as_str()).or_default().push(edge);
        out_of.entry(edge.caller.as_str()).or_default().push(edge);
    }
    let base = |kind: CandidateKind, service: &str| {
        let node = nodes.get(service).copied();
        let edges_into = into.get(service).map_or(&[][..], Vec::as_slice);
        let edges_out = out_of.get(service).map_or(&[][..], Vec::as_slice);
        let mut e = evidence_of(
            &nodes,
            [edges_into, edges_out],
            [&into, &out_of],
            node,
            kind,
            onset,
            &state.degraded_since,
        );
        e.past_incidents = map
            .root_services
            .iter()
            .map(|r| past.get(&past_key(r, kind, service)).copied().unwrap_or(0))
            .sum();
        e
    };
    for change in &state.changes {
        let age = since(change.time_ns);
        let (kind, _) = candidate_kind(change.kind);
        // A change after the onset did not cause it (a minute of clock skew allowed).
        let relevant = age >= -CLOCK_SKEW_S
            && match kind {
                CandidateKind::ScheduledJob => age <= job_window,
                _ => nodes.contains_key(change.service.as_str()) && age <= lookback,
            };
        if !relevant {
            continue;
        }
        let mut e = base(kind, &change.service);
        e.rollback = change.kind == ChangeKind::Rollback;
        e.change_age_s = Some(age);
        if kind == CandidateKind::ScheduledJob {
            e.job_gap_s = Some(age.abs());
        }
        let key = change_key(change);
        let summary = change_summary(change, age);
        found.insert(key.clone(), (candidate(key, kind, &change.service, summary), e));
    }
    let callees: BTreeSet<&str> = map.edges.iter().map(|e| e.callee.as_str()).collect();
    let changed: BTreeSet<String> = found.values().map(|(c, _)| c.service.clone()).collect();
    for node in &map.nodes {
        // Every alerted or degraded service, and every uninstrumented peer, is a suspect:
        // its own code, resources or network, judged by its evidence — unless a change of
        // it (a deploy, a config change, a job run on it) is a candidate already, which
        // carries the same evidence, names the node and says what changed.
        let suspect = (node.virtual_node || node.direction == Direction::Root || degraded(node.state))
            && !changed.contains(&node.service);
        if suspect {
            let (kind, prefix) = if node.virtual_node {
                (CandidateKind::Dependency, "dependency")
            } else {
                (CandidateKind::Service, "service")
            };
            let mut e = base(kind, &node.service);
            if kind == CandidateKind::Dependency {
                e.job_gap_s = nearest_job;
            }
            let key = format!("{prefix}:{}", node.service);
            found.insert(key.clone(), (candidate(key, kind, &node.service, node_summary(node)), e));
        }
        let entry_point = node.direction != Direction::Downstream && !callees.contains(node.service.as_str());
        let rps = &node.requests_per_s;
        if entry_point && rps.baseline > 0.0 && rps.now >= config.traffic_spike_ratio * rps.baseline {
            let e = base(CandidateKind::TrafficSpike, &node.service);
            let key = format!("traffic_spike:{}", node.service);
            let summary = format!(
                "{} receives {:.0} req/s, {:.1}× its baseline {:.0} req/s",
                node.service,
                rps.now,
                rps.now / rps.baseline,
                rps.baseline
            );
            found.insert(
                key.clone(),
                (candidate(key, CandidateKind::TrafficSpike, &node.service, summary), e),
            );
        }
    }
    found.into_values().collect()
}

/// The candidate kind of a change, and its key prefix.
fn candidate_kind(kind: ChangeKind) -> (CandidateKind, &'static str) {
    match kind {
        ChangeKind::Deploy | ChangeKind::Rollback => (CandidateKind::Deploy, "deploy"),
        ChangeKind::ConfigChange => (CandidateKind::ConfigChange, "config_change"),
        ChangeKind::ScheduledJob => (CandidateKind::ScheduledJob, "scheduled_job"),
    }
}

/// A change's candidate key: `deploy:payments@v42`.
fn change_key(change: &Deploy) -> String {
    format!("{}:{}@{}", candidate_kind(change.kind).1, change.service, change.revision)
}

fn candidate(key: String, kind: CandidateKind, service: &str, summary: String) -> Candidate {
    Candidate {
        key,
        kind,
        service: service.to_string(),
        summary,
        confidence: 0.0,
        share: 0.0,
        unfamiliar: None,
        features: BTreeMap::new(),
    }
}

fn change_summary(change: &Deploy, age_s: f64) -> String {
    let when = if age_s >= 0.0 {
        format!("{:.0} min before onset", age_s / 60.0)
    } else {
        format!("{:.0} min after onset", -age_s / 60.0)
    };
    let what = match change.kind {
        ChangeKind::Deploy => "deploy",
        ChangeKind::Rollback => "rollback",
        ChangeKind::ConfigChange => "config change",
        ChangeKind::ScheduledJob => "scheduled job",
    };
    let from = change.previous_revision.as_deref().map(|p| format!("{p} → ")).unwrap_or_default();
    let by = change.author.as_deref().map(|a| format!(" by {a}")).unwrap_or_default();
    format!("{what} of {} {from}{}{by}, {when}", change.service, change.revision)
}

fn degraded(s: HealthState) -> bool {
    matches!(s, HealthState::Amber | HealthState::Red)
}

/// What a service or dependency candidate's node shows, in one line.
fn node_summary(node: &ImpactNode) -> String {
    let mut text = format!(
        "{} is {:?}: error rate {:.1}% (baseline {:.1}%), p99 {:.0} ms (baseline {:.0} ms)",
        node.service,
        node.state,
        node.error_rate.now * 100.0,
        node.error_rate.baseline * 100.0,
        node.p99_ms.now,
        node.p99_ms.baseline
    );
    let own = node.self_time_ms.unwrap_or_default();
    if own.now > 0.0 || own.baseline > 0.0 {
        text.push_str(&format!(", self time {:.1} ms (baseline {:.1} ms)", own.now, own.baseline));
    }
    text.to_lowercase()
}

/// ln((now + floor) / (baseline + floor)).
fn log_ratio(v: &NowVsBaseline, floor: f64) -> f64 {
    ((v.now + floor) / (v.baseline + floor)).ln()
}

/// How much a rate changed: ln(now / baseline) of the counts behind it over the seconds
/// they cover, moved toward 0 by two standard errors (Poisson counts: √(1/n + 1/b)), so
/// that fifteen requests in a ten-second baseline do not read as a precise rate. Without
/// the seconds (a map from before they were recorded), ln((now + 0.1) / (baseline + 0.1)).
fn rate_change(rate: &NowVsBaseline, covered_s: Option<NowVsBaseline>) -> f64 {
    let Some(seconds) = covered_s.filter(|s| s.now > 0.0 && s.baseline > 0.0) else {
        return log_ratio(rate, 0.1);
    };
    let (now, baseline) = (rate.now * seconds.now + 0.5, rate.baseline * seconds.baseline + 0.5);
    let change = (now / seconds.now / (baseline / seconds.baseline)).ln();
    let noise = 2.0 * (1.0 / now + 1.0 / baseline).sqrt();
    change.signum() * (change.abs() - noise).max(0.0)
}

/// How much an edge's network gap rose: ln(now / baseline) of its median, or of its p90
/// or p99 when that rose more (lost packets delay a share of the calls by a
/// retransmission timeout; under one call in ten, only the p99 moves). The tails' 20 ms
/// floor keeps the jitter of a fast wire's slower calls from counting.
fn gap_rise(x: &ImpactEdge) -> f64 {
    let median = log_ratio(&x.gap_ms.unwrap_or_default(), 0.5);
    let tail = |p: Option<NowVsBaseline>| log_ratio(&p.unwrap_or_default(), 20.0);
    median.max(tail(x.gap_p90_ms)).max(tail(x.gap_p99_ms))
}

/// How far a callee's rise (log ratio) may fall short of its caller's own and still
/// explain it: a fifth, about two standard errors of the median self time of a few dozen
/// requests. Closer than that, the two did not differ, and a degraded callee is the
/// likelier story.
const EXPLAIN_MARGIN: f64 = 0.2;

/// Requests (or calls) both windows need before their p90 is more than their slowest one
/// or two (the health rule's `p90_min_requests`).
const P90_MIN_COUNT: f64 = 20.0;

/// Whether both windows of a rate hold [`P90_MIN_COUNT`] requests or calls.
fn p90_counted(rate: Option<NowVsBaseline>, covered_s: Option<NowVsBaseline>) -> bool {
    rate.zip(covered_s).is_some_and(|(r, s)| (r.now * s.now).min(r.baseline * s.baseline) >= P90_MIN_COUNT)
}

/// How much a service's own work rose: ln(now / baseline) of its median self time, or
/// of its p90 when that rose more (a hog starves some requests, not all); 0 for a node
/// without self time (a virtual one). The p90's floor is 20 ms, or 2 ms (the health
/// rule's `amber_own_increase_ms`) once both windows hold [`P90_MIN_COUNT`] requests: a
/// 2 ms service hogged is several times slower on a third of its requests, yet far
/// under 20 ms.
fn self_rise(node: &ImpactNode) -> f64 {
    let tail_floor = if p90_counted(Some(node.requests_per_s), node.covered_s) { 2.0 } else { 20.0 };
    log_ratio(&node.self_time_ms.unwrap_or_default(), 0.5)
        .max(log_ratio(&node.self_time_p90_ms.unwrap_or_default(), tail_floor))
}

/// Whether an edge says something of the wires at its ends: it is red or amber, or it
/// carried calls enough in both windows to have shown a slow wire (lost packets delay
/// a tenth to a third of the calls; a handful that went through says little).
fn says_of_its_wire(x: &ImpactEdge) -> bool {
    degraded(x.state) || p90_counted(x.calls_per_s, x.covered_s)
}

/// The smallest gap rise (at least 0) of `edges`, if any.
fn least_gap_rise<'a>(edges: impl Iterator<Item = &'a &'a ImpactEdge>) -> Option<f64> {
    edges.map(|x| gap_rise(x).max(0.0)).reduce(f64::min)
}

fn error_delta(n: &ImpactNode) -> f64 {
    n.error_rate.now - n.error_rate.baseline
}

/// Evidence from the candidate's node in the map (zeros when it is not in the map);
/// `[into, out]` are the map's edges into and out of it, `[into_of, out_of]` every
/// node's incoming and outgoing edges.
fn evidence_of(
    nodes: &BTreeMap<&str, &ImpactNode>,
    [into, out]: [&[&ImpactEdge]; 2],
    [into_of, out_of]: [&BTreeMap<&str, Vec<&ImpactEdge>>; 2],
    node: Option<&ImpactNode>,
    kind: CandidateKind,
    onset: TimestampNs,
    degraded_since: &BTreeMap<String, TimestampNs>,
) -> Evidence {
    let mut e = Evidence::new(kind, onset);
    let Some(node) = node else { return e };
    e.error_delta = error_delta(node);
    e.latency_log_ratio = log_ratio(&node.p99_ms, 1.0);
    e.traffic_log_ratio = rate_change(&node.requests_per_s, node.covered_s);
    e.self_log_ratio = self_rise(node);
    e.gap_log_ratio = into.iter().map(|x| gap_rise(x)).fold(0.0, f64::max);
    e.gap_out_log_ratio = out.iter().map(|x| gap_rise(x)).fold(0.0, f64::max);
    let wires_of = |service: &str| {
        let edges = into_of.get(service).into_iter().chain(out_of.get(service)).flatten();
        edges.filter(|x| says_of_its_wire(x))
    };
    e.gap_mine = least_gap_rise(into.iter().chain(out).filter(|x| says_of_its_wire(x))).unwrap_or(0.0);
    let slowest = into.iter().chain(out).max_by(|a, b| gap_rise(a).total_cmp(&gap_rise(b)));
    e.gap_peer = slowest
        .filter(|x| gap_rise(x) > 0.0)
        .and_then(|x| {
            let peer = if x.callee == node.service { &x.caller } else { &x.callee };
            least_gap_rise(wires_of(peer).filter(|o| !std::ptr::eq::<ImpactEdge>(**o, *x)))
        })
        .unwrap_or(0.0);
    e.blame = into
        .iter()
        .filter_map(|x| {
            let (rate, calls) = (x.caller_error_rate?, x.calls_per_s?.now);
            let caller = nodes.get(x.caller.as_str())?;
            let failures = caller.error_rate.now * caller.requests_per_s.now;
            let share = if failures > 0.0 { (rate.now * calls / failures).min(1.0) } else { 0.0 };
            Some((rate.now - rate.baseline) * share)
        })
        .fold(0.0, f64::max);
    e.out_error_delta = out.iter().map(|x| x.error_rate.now - x.error_rate.baseline).fold(0.0, f64::max);
    e.upstream = node.direction == Direction::Upstream;
    e.out_rate_log_ratio = out
        .iter()
        .filter_map(|x| x.calls_per_s.map(|r| rate_change(&r, x.covered_s)))
        .fold(0.0, |a: f64, b| if b.abs() > a.abs() { b } else { a });
    e.callees_degraded = out.iter().any(|x| nodes.get(x.callee.as_str()).is_some_and(|c| degraded(c.state)));
    e.callee_explains = out.iter().any(|x| {
        nodes.get(x.callee.as_str()).is_some_and(|c| {
            degraded(c.state) && self_rise(c).max(gap_rise(x)) >= e.self_log_ratio - EXPLAIN_MARGIN
        })
    });
    e.alerted = node.direction == Direction::Root;
    e.hops = node.hops;
    e.virtual_node = node.virtual_node;
    e.caller_error_delta =
        into.iter().filter_map(|x| nodes.get(x.caller.as_str())).map(|n| error_delta(n)).fold(0.0, f64::max);
    e.criticality = into
        .iter()
        .map(|x| match x.criticality {
            Criticality::Critical => 1.0,
            Criticality::Unknown => 0.5,
            Criticality::Optional => 0.0,
        })
        .fold(if into.is_empty() { 0.5 } else { 0.0 }, f64::max);
    e.onset_lead_s =
        degraded_since.get(&node.service).map_or(0.0, |t| ((onset as f64 - *t as f64) / NS_PER_S).max(0.0));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(gap: [f64; 2], p90: [f64; 2], p99: [f64; 2]) -> ImpactEdge {
        let v = |[now, baseline]: [f64; 2]| Some(NowVsBaseline { now, baseline });
        ImpactEdge {
            caller: "cart".into(),
            callee: "redis".into(),
            origin: devloom_schemas::EdgeOrigin::Observed,
            asynchronous: false,
            criticality: Criticality::Unknown,
            traffic_share: 1.0,
            state: HealthState::Amber,
            error_rate: NowVsBaseline::default(),
            calls_per_s: v([9.0, 9.0]),
            covered_s: v([60.0, 600.0]),
            gap_ms: v(gap),
            gap_p90_ms: v(p90),
            gap_p99_ms: v(p99),
            caller_error_rate: None,
        }
    }

    fn node(service: &str, state: HealthState, own: Option<[f64; 2]>) -> ImpactNode {
        let v = |[now, baseline]: [f64; 2]| NowVsBaseline { now, baseline };
        ImpactNode {
            service: service.into(),
            region: None,
            virtual_node: own.is_none(),
            state,
            hops: 1,
            direction: Direction::Downstream,
            path: vec![],
            error_rate: NowVsBaseline::default(),
            p99_ms: v([50.0, 40.0]),
            requests_per_s: v([9.0, 9.0]),
            covered_s: None,
            self_time_ms: own.map(v),
            self_time_p90_ms: own.map(|[now, baseline]| v([now * 1.5, baseline * 1.5])),
            catalog: None,
        }
    }

    /// `cart`'s evidence when its own self time went `cart_own` and it calls `redis`
    /// (`redis_own`; a virtual node when `None`) over a wire whose median gap went `gap`.
    fn cart_calling_redis(cart_own: [f64; 2], redis_own: Option<[f64; 2]>, gap: [f64; 2]) -> Evidence {
        let cart = node("cart", HealthState::Amber, Some(cart_own));
        let redis = node("redis", HealthState::Amber, redis_own);
        let nodes = BTreeMap::from([("cart", &cart), ("redis", &redis)]);
        let wire = edge(gap, [gap[0] + 0.3, gap[1] + 0.3], [gap[0] + 0.7, gap[1] + 0.7]);
        let out = [&wire];
        let out_of = BTreeMap::from([("cart", vec![&wire])]);
        let into_of = BTreeMap::from([("redis", vec![&wire])]);
        let kind = CandidateKind::Service;
        evidence_of(&nodes, [&[], &out], [&into_of, &out_of], Some(&cart), kind, 0, &BTreeMap::new())
    }

    #[test]
    fn a_degraded_callee_explains_a_caller_only_if_its_part_rose_as_much() {
        // A slow spell below a starved service: the callee is amber, but the caller's own
        // work rose three times, the callee's a third.
        let starved = cart_calling_redis([30.0, 10.0], Some([8.0, 6.0]), [0.5, 0.5]);
        assert!(starved.callees_degraded && !starved.callee_explains, "{starved:?}");
        // The callee's own work tripled, the caller's did not move: a victim.
        let victim = cart_calling_redis([10.2, 10.0], Some([18.0, 6.0]), [0.5, 0.5]);
        assert!(victim.callee_explains, "{victim:?}");
        // The wire into the callee: a network fault below, not the caller's work.
        let wire = cart_calling_redis([10.0, 10.0], Some([6.0, 6.0]), [80.0, 0.5]);
        assert!(wire.callee_explains, "{wire:?}");
        // A virtual node's part is its calls' wait.
        let database = cart_calling_redis([10.0, 10.0], None, [40.0, 2.0]);
        assert!(database.callee_explains, "{database:?}");
        // Neither moved beyond the median's noise (a fifth, in log terms): the degraded
        // callee still explains a caller whose own work did not rise either.
        let noise = cart_calling_redis([11.5, 10.0], Some([6.0, 6.0]), [0.5, 0.5]);
        assert!(noise.callee_explains, "{noise:?}");
    }

    /// A wire from `caller` to `callee` whose median gap went from 0.5 ms to `gap_ms`,
    /// carrying `calls_per_s` (60 s now, 600 s of baseline); amber when it slowed.
    fn wire(caller: &str, callee: &str, gap_ms: f64, calls_per_s: f64) -> ImpactEdge {
        let rate = Some(NowVsBaseline { now: calls_per_s, baseline: calls_per_s });
        let state = if gap_ms > 1.0 { HealthState::Amber } else { HealthState::Gray };
        let tail = [gap_ms + 0.3, 0.8];
        ImpactEdge {
            caller: caller.into(),
            callee: callee.into(),
            state,
            calls_per_s: rate,
            ..edge([gap_ms, 0.5], tail, [gap_ms + 0.7, 1.2])
        }
    }

    /// The evidence of `service` in a map of `wires`.
    fn wire_evidence(wires: &[ImpactEdge], service: &str) -> Evidence {
        let names: BTreeSet<&str> =
            wires.iter().flat_map(|x| [x.caller.as_str(), x.callee.as_str()]).collect();
        let nodes: Vec<ImpactNode> =
            names.iter().map(|n| node(n, HealthState::Amber, Some([5.0, 5.0]))).collect();
        let nodes: BTreeMap<&str, &ImpactNode> = nodes.iter().map(|n| (n.service.as_str(), n)).collect();
        let (mut into_of, mut out_of) = (BTreeMap::new(), BTreeMap::new());
        for x in wires {
            into_of.entry(x.callee.as_str()).or_insert_with(Vec::new).push(x);
            out_of.entry(x.caller.as_str()).or_insert_with(Vec::new).push(x);
        }
        let into = into_of.get(service).cloned().unwrap_or_default();
        let out = out_of.get(service).cloned().unwrap_or_default();
        let (kind, since) = (CandidateKind::Service, BTreeMap::new());
        evidence_of(&nodes, [&into, &out], [&into_of, &out_of], nodes.get(service).copied(), kind, 0, &since)
    }

    #[test]
    fn a_slow_wire_is_the_end_whose_every_wire_slowed() {
        let slow = (80.5f64 / 1.0).ln();
        // The entry service's network: its one wire slowed; api's calls to the store and
        // the search did not.
        let entry = [
            wire("gateway", "api", 80.0, 9.0),
            wire("api", "store", 0.5, 9.0),
            wire("api", "search", 0.5, 9.0),
        ];
        let gateway = wire_evidence(&entry, "gateway");
        assert!((gateway.gap_mine - slow).abs() < 1e-9 && gateway.gap_peer < 0.01, "{gateway:?}");
        let api = wire_evidence(&entry, "api");
        assert!(api.gap_mine < 0.01 && api.gap_peer < 0.01, "its own calls are sound: {api:?}");
        // api's network: every call into it and out of it slowed, the gateway's call to
        // auth did not; the store, a leaf, has one wire, and the peer's others slowed too.
        let mut own = [
            wire("gateway", "api", 80.0, 9.0),
            wire("api", "store", 80.0, 9.0),
            wire("api", "search", 80.0, 9.0),
            wire("gateway", "auth", 0.5, 9.0),
        ];
        let api = wire_evidence(&own, "api");
        assert!((api.gap_mine - slow).abs() < 1e-9 && api.gap_peer < 0.01, "{api:?}");
        let store = wire_evidence(&own, "store");
        assert!((store.gap_mine - slow).abs() < 1e-9 && (store.gap_peer - slow).abs() < 1e-9, "{store:?}");
        let gateway = wire_evidence(&own, "gateway");
        assert!(gateway.gap_mine < 0.01, "{gateway:?}");
        // Five calls a minute that met no lost packet say nothing of the wire; thirty do.
        own[3] = wire("gateway", "auth", 0.5, 5.0 / 60.0);
        assert!((wire_evidence(&own, "gateway").gap_mine - slow).abs() < 1e-9);
        own[3] = wire("gateway", "auth", 0.5, 0.5);
        assert!(wire_evidence(&own, "gateway").gap_mine < 0.01);
    }

    #[test]
    fn a_fast_services_starved_tail_counts_once_its_requests_do() {
        // 2 ms of own work; a hog starves a third of its requests: p90 3.1 → 14.2 ms.
        let mut gateway = node("gateway", HealthState::Red, Some([2.6, 2.0]));
        gateway.self_time_p90_ms = Some(NowVsBaseline { now: 14.2, baseline: 3.1 });
        let floored = (34.2f64 / 23.1).ln();
        assert!((self_rise(&gateway) - floored).abs() < 1e-9, "no counts: the 20 ms floor");
        // 9 requests a second: 540 in the window, 2,430 in the baseline.
        gateway.covered_s = Some(NowVsBaseline { now: 60.0, baseline: 270.0 });
        assert!((self_rise(&gateway) - (16.2f64 / 5.1).ln()).abs() < 1e-9, "{}", self_rise(&gateway));
        // Twelve requests in the window: its p90 is its slowest one or two.
        gateway.requests_per_s = NowVsBaseline { now: 0.2, baseline: 9.0 };
        assert!((self_rise(&gateway) - floored).abs() < 1e-9);
    }

    #[test]
    fn a_rate_change_is_discounted_by_the_counts_behind_it() {
        let rate = |now, baseline| NowVsBaseline { now, baseline };
        // 1.5 → 2.6 req/s: from 15 requests in 10 s, noise; from 30 minutes, a rise.
        let rough = rate_change(&rate(2.6, 1.5), Some(rate(60.0, 10.0)));
        assert_eq!(rough, 0.0);
        let sure = rate_change(&rate(2.6, 1.5), Some(rate(60.0, 1800.0)));
        let expected =
            ((156.5f64 / 60.0) / (2700.5 / 1800.0)).ln() - 2.0 * (1.0f64 / 156.5 + 1.0 / 2700.5).sqrt();
        assert!((sure - expected).abs() < 1e-12, "{sure}");
        // Traffic gone: a fall, however short the baseline.
        assert!(rate_change(&rate(0.0, 5.0), Some(rate(60.0, 20.0))) < -2.0);
        // A map without the seconds: the plain ratio.
        assert!((rate_change(&rate(2.0, 1.0), None) - (2.1f64 / 1.1).ln()).abs() < 1e-12);
    }

    #[test]
    fn a_gap_rises_with_its_median_or_either_tail_beyond_jitter() {
        // Lost packets on one call in twenty: median and p90 hold, the p99 is a timeout.
        let lost = gap_rise(&edge([0.5, 0.5], [0.8, 0.8], [205.0, 1.2]));
        assert!((lost - (225.0f64 / 21.2).ln()).abs() < 1e-9, "{lost}");
        // A delay on every call moves the median most.
        let delayed = gap_rise(&edge([80.5, 0.5], [81.0, 0.8], [83.0, 1.2]));
        assert!((delayed - (81.0f64 / 1.0).ln()).abs() < 1e-9, "{delayed}");
        // A fast wire's slowest call doubling is jitter, under the tails' 20 ms floor.
        let jitter = gap_rise(&edge([0.5, 0.5], [0.8, 0.8], [2.4, 1.2]));
        assert!(jitter < 0.06, "{jitter}");
    }
}
