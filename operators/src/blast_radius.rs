//! Blast radius: from the alerted services, walk upstream (callers: who is hurt) and
//! downstream (callees: where the cause may be), transitively, and publish a versioned
//! impact map. A new version is emitted when an alert joins or changes (at once), when
//! any node's state changes (at most once per `min_interval_ms` per incident), and on
//! resolve.
//!
//! The walk follows declared (catalog) edges as well as observed ones. A declared
//! criticality replaces the inferred one, and a caller whose only failing callees it
//! declares optional is amber at most: it degrades, it does not fail with them.

use std::collections::{BTreeMap, BTreeSet};

use devloom_schemas::impact::IMPACT_MAP_SCHEMA_VERSION;
use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{
    Criticality, Direction, EdgeOrigin, HealthState, ImpactEdge, ImpactMap, ImpactNode, IncidentStatus,
    NowVsBaseline, TimestampNs, Verdict,
};
use petgraph::stable_graph::NodeIndex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::incidents::{IncidentUpdate, UpdateKind};
use crate::operator::Operator;
use crate::rolling_stats::WindowSummary;
use crate::service_graph::{HealthChange, ServiceGraph};

/// Blast-radius settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlastConfig {
    /// Least event time between two state-driven versions of one incident, milliseconds.
    pub min_interval_ms: u64,
    /// Deepest walk in hops from a root; 0 walks the whole connected graph.
    pub max_hops: u32,
    /// The most services one map lists: the alerted ones, every red or amber one, then
    /// the nearest clean ones, each with the services on its path; the rest are counted
    /// in the map's `omitted_nodes`. A hub with 80,000 clean callees gives a map a person
    /// can read, in milliseconds.
    pub max_nodes: usize,
}

impl Default for BlastConfig {
    fn default() -> Self {
        Self { min_interval_ms: 5_000, max_hops: 0, max_nodes: 1_000 }
    }
}

impl BlastConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_nodes < 10 {
            return Err("max_nodes must be at least 10".into());
        }
        Ok(())
    }
}

/// What the blast-radius operator listens to.
#[derive(Clone, Debug, PartialEq)]
pub enum BlastInput {
    /// An incident opened, changed or resolved.
    Incident(IncidentUpdate),
    /// A node's health changed.
    Health(HealthChange),
    /// The catalog in force changed: edges, criticality or owners may differ.
    Catalog,
}

/// One node reached by the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Visit {
    /// The node.
    pub node: NodeIndex,
    /// Hops from the nearest root.
    pub hops: u32,
    /// Root, upstream or downstream.
    pub direction: Direction,
    /// The node one hop closer to the root.
    pub parent: Option<NodeIndex>,
}

/// Breadth-first walk from `roots`: first upstream along incoming edges, then
/// downstream along outgoing edges; a node keeps its first visit. Neighbours are taken
/// in node-index order, so the walk is deterministic (indices survive snapshots).
pub fn walk(graph: &ServiceGraph, roots: &[NodeIndex], max_hops: u32) -> Vec<Visit> {
    let g = graph.graph();
    let mut seen: FxHashMap<NodeIndex, ()> = FxHashMap::default();
    let mut visits: Vec<Visit> = Vec::with_capacity(g.node_count().min(4096));
    for &r in roots {
        if seen.insert(r, ()).is_none() {
            visits.push(Visit { node: r, hops: 0, direction: Direction::Root, parent: None });
        }
    }
    let mut buf: Vec<NodeIndex> = Vec::new();
    for (direction, incoming) in [(Direction::Upstream, true), (Direction::Downstream, false)] {
        let dir = if incoming { petgraph::Direction::Incoming } else { petgraph::Direction::Outgoing };
        let mut frontier: Vec<(NodeIndex, u32)> = roots.iter().map(|&r| (r, 0)).collect();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (n, hops) in frontier {
                if max_hops != 0 && hops >= max_hops {
                    continue;
                }
                buf.clear();
                buf.extend(g.neighbors_directed(n, dir));
                buf.sort_unstable();
                buf.dedup();
                for &m in &buf {
                    if seen.insert(m, ()).is_none() {
                        visits.push(Visit { node: m, hops: hops + 1, direction, parent: Some(n) });
                        next.push((m, hops + 1));
                    }
                }
            }
            frontier = next;
        }
    }
    visits
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct View {
    roots: Vec<String>,
    firing: Vec<String>,
    version: u32,
    last_states: BTreeMap<String, HealthState>,
    last_emit_ns: TimestampNs,
    dirty: bool,
}

/// Serializable state of a [`BlastRadius`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlastSnapshot {
    open: BTreeMap<String, View>,
}

/// The blast-radius operator. Reads the service graph.
#[derive(Debug, Default)]
pub struct BlastRadius {
    config: BlastConfig,
    open: BTreeMap<String, View>,
    /// Derived from `open` (rebuilt on restore): the views marked dirty, so a watermark
    /// visits those, not every open incident.
    dirty: BTreeSet<String>,
}

impl BlastRadius {
    /// An operator with `config`.
    pub fn new(config: BlastConfig) -> Self {
        Self { config, open: BTreeMap::new(), dirty: BTreeSet::new() }
    }

    /// Publishes `map` as the next version of its incident.
    fn publish(&mut self, mut map: ImpactMap, out: &mut Vec<ImpactMap>) {
        let Some(view) = self.open.get_mut(&map.incident_id) else { return };
        view.version += 1;
        view.last_emit_ns = map.event_time_ns;
        view.dirty = false;
        view.last_states = states_of(&map);
        self.dirty.remove(&map.incident_id);
        map.version = view.version;
        out.push(map);
    }
}

fn states_of(map: &ImpactMap) -> BTreeMap<String, HealthState> {
    map.nodes.iter().map(|n| (node_label(n), n.state)).collect()
}

fn node_label(n: &ImpactNode) -> String {
    match &n.region {
        Some(r) => format!("{}@{r}", n.service),
        None => n.service.clone(),
    }
}

fn now_vs(now: f64, baseline: f64) -> NowVsBaseline {
    NowVsBaseline { now, baseline }
}

fn stats_of(now: &WindowSummary, base: &WindowSummary) -> [NowVsBaseline; 3] {
    [
        now_vs(now.error_rate(), base.error_rate()),
        now_vs(now.p99_ms, base.p99_ms),
        now_vs(now.per_second, base.per_second),
    ]
}

/// Builds the impact map of one incident from the graph as it is now.
fn build_map(
    graph: &ServiceGraph,
    (max_hops, max_nodes): (u32, usize),
    id: &str,
    view: &View,
    status: IncidentStatus,
    time_ns: TimestampNs,
) -> ImpactMap {
    let g = graph.graph();
    let mut roots: Vec<NodeIndex> = view.roots.iter().flat_map(|r| graph.nodes_named(r)).collect();
    roots.sort_by(|a, b| g[*a].id.cmp(&g[*b].id));
    let visits = walk(graph, &roots, max_hops);
    let reached = visits.len();
    let visits = nearest(graph, visits, max_nodes);
    let omitted = reached - visits.len();
    let firing = |name: &str| {
        status == IncidentStatus::Open && view.firing.binary_search_by(|f| f.as_str().cmp(name)).is_ok()
    };

    let mut paths: FxHashMap<NodeIndex, Vec<String>> = FxHashMap::default();
    // Callers held at amber: their own callers are shielded from them in turn.
    let mut capped: FxHashSet<NodeIndex> = FxHashSet::default();
    let mut nodes: Vec<ImpactNode> = Vec::with_capacity(visits.len() + view.roots.len());
    for v in &visits {
        let n = &g[v.node];
        let mut path = v.parent.and_then(|p| paths.get(&p)).cloned().unwrap_or_default();
        path.push(n.id.to_string());
        paths.insert(v.node, path.clone());
        let state = if v.direction == Direction::Root && firing(&n.id.name) {
            HealthState::Red
        } else if n.health.state == HealthState::Red
            && v.direction != Direction::Root
            && shielded(graph, v.node, &capped)
        {
            capped.insert(v.node);
            HealthState::Amber
        } else {
            n.health.state
        };
        let [error_rate, p99_ms, requests_per_s] = stats_of(&n.health.now, &n.health.baseline);
        nodes.push(ImpactNode {
            service: n.id.name.to_string(),
            region: n.id.region.as_deref().map(String::from),
            virtual_node: n.id.virtual_node,
            state,
            hops: v.hops,
            direction: v.direction,
            path,
            error_rate,
            p99_ms,
            requests_per_s,
            covered_s: Some(now_vs(n.health.now.seconds, n.health.baseline.seconds)),
            self_time_ms: Some(now_vs(n.health.own_now.p50_ms, n.health.own_baseline.p50_ms)),
            self_time_p90_ms: Some(now_vs(n.health.own_now.p90_ms, n.health.own_baseline.p90_ms)),
            catalog: graph.catalog_entry(&n.id.name).cloned(),
        });
    }
    // Alerted services with no traffic yet still appear, as roots.
    for r in &view.roots {
        if !nodes.iter().any(|n| &n.service == r) {
            let empty = WindowSummary::default();
            let [error_rate, p99_ms, requests_per_s] = stats_of(&empty, &empty);
            nodes.push(ImpactNode {
                service: r.clone(),
                region: None,
                virtual_node: false,
                state: if firing(r) { HealthState::Red } else { HealthState::Unknown },
                hops: 0,
                direction: Direction::Root,
                path: vec![r.clone()],
                error_rate,
                p99_ms,
                requests_per_s,
                covered_s: None,
                self_time_ms: None,
                self_time_p90_ms: None,
                catalog: graph.catalog_entry(r).cloned(),
            });
        }
    }

    let included: FxHashMap<NodeIndex, ()> = visits.iter().map(|v| (v.node, ())).collect();
    let health_cfg = &graph.config().health;
    let ttl_ns = graph.config().edge_ttl_ms.saturating_mul(1_000_000);
    let mut edges = Vec::new();
    for v in &visits {
        for (callee, e) in graph.neighbours(v.node, false) {
            if !included.contains_key(&callee) {
                continue;
            }
            let edge = &g[e];
            let caller_now = &g[v.node].health.now;
            let callee_now = &g[callee].health.now;
            let edge_rate = edge.health.now.error_rate();
            let criticality = if let Some(declared) = edge.declared_criticality {
                declared
            } else if edge_rate < health_cfg.amber_error_increase {
                Criticality::Unknown
            } else if caller_now.error_rate() >= 0.5 * edge_rate * share(&edge.health.now, caller_now) {
                Criticality::Critical
            } else {
                Criticality::Optional
            };
            edges.push(ImpactEdge {
                caller: g[v.node].id.to_string(),
                callee: g[callee].id.to_string(),
                origin: match (edge.declared, edge.observed_since(time_ns, ttl_ns)) {
                    (true, true) => EdgeOrigin::Both,
                    (true, false) => EdgeOrigin::Declared,
                    (false, _) => EdgeOrigin::Observed,
                },
                asynchronous: edge.asynchronous,
                criticality,
                traffic_share: share(&edge.health.now, callee_now),
                state: edge.health.state,
                error_rate: now_vs(edge_rate, edge.health.baseline.error_rate()),
                calls_per_s: Some(now_vs(edge.health.now.per_second, edge.health.baseline.per_second)),
                covered_s: Some(now_vs(edge.health.now.seconds, edge.health.baseline.seconds)),
                gap_ms: Some(now_vs(edge.health.own_now.p50_ms, edge.health.own_baseline.p50_ms)),
                gap_p90_ms: Some(now_vs(edge.health.own_now.p90_ms, edge.health.own_baseline.p90_ms)),
                gap_p99_ms: Some(now_vs(edge.health.own_now.p99_ms, edge.health.own_baseline.p99_ms)),
                caller_error_rate: Some(now_vs(
                    edge.health.own_now.error_rate(),
                    edge.health.own_baseline.error_rate(),
                )),
            });
        }
    }
    edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
    nodes.sort_by(|a, b| {
        (a.hops, a.direction, &a.service, &a.region).cmp(&(b.hops, b.direction, &b.service, &b.region))
    });
    let spreading = nodes.iter().any(|n| n.direction != Direction::Root && n.state == HealthState::Red);
    ImpactMap {
        schema_version: IMPACT_MAP_SCHEMA_VERSION,
        incident_id: id.to_string(),
        version: 0, // set by `publish`
        status,
        root_services: view.roots.clone(),
        verdict: if spreading { Verdict::Spreading } else { Verdict::Contained },
        nodes,
        edges,
        omitted_nodes: (omitted > 0).then_some(omitted as u32),
        data_quality: None,
        event_time_ns: time_ns,
        event_time: format_rfc3339(time_ns),
        alert_received_at: None,
        published_at: None,
        latency_ms: None,
    }
}

/// Whether every failing callee of `node` is one a catalog declares optional, or one
/// already held at amber for that reason (and it has one): the node is hurt by a
/// dependency it is built to do without. Callers are visited after the callees on their
/// path to the root, so the hold passes up the chain.
fn shielded(graph: &ServiceGraph, node: NodeIndex, capped: &FxHashSet<NodeIndex>) -> bool {
    let g = graph.graph();
    let mut any = false;
    for (callee, e) in graph.neighbours(node, false) {
        if matches!(g[callee].health.state, HealthState::Red | HealthState::Amber) {
            if g[e].declared_criticality != Some(Criticality::Optional) && !capped.contains(&callee) {
                return false;
            }
            any = true;
        }
    }
    any
}

/// At most `max` of the walk's visits, in walk order: the roots, every red or amber
/// node, then the nearest others — each with the nodes on its path, so every listed node
/// hangs under a listed parent.
fn nearest(graph: &ServiceGraph, visits: Vec<Visit>, max: usize) -> Vec<Visit> {
    if visits.len() <= max {
        return visits;
    }
    let g = graph.graph();
    let at: FxHashMap<NodeIndex, usize> = visits.iter().enumerate().map(|(i, v)| (v.node, i)).collect();
    let mut keep = vec![false; visits.len()];
    let mut kept = 0;
    let degraded = |v: &Visit| matches!(g[v.node].health.state, HealthState::Red | HealthState::Amber);
    let roots = visits.iter().filter(|v| v.direction == Direction::Root);
    let hurt = visits.iter().filter(|v| v.direction != Direction::Root && degraded(v));
    let rest = visits.iter().filter(|v| v.direction != Direction::Root && !degraded(v));
    for v in roots.chain(hurt).chain(rest) {
        // The node and the ancestors not yet kept, if they all fit.
        let mut chain = Vec::new();
        let mut next = Some(v.node);
        while let Some(n) = next {
            let i = at[&n];
            if keep[i] {
                break;
            }
            chain.push(i);
            next = visits[i].parent;
        }
        if kept + chain.len() > max {
            continue;
        }
        kept += chain.len();
        for i in chain {
            keep[i] = true;
        }
        if kept == max {
            break;
        }
    }
    visits.into_iter().zip(keep).filter_map(|(v, k)| k.then_some(v)).collect()
}

/// `part` requests as a share (0–1) of `whole` requests.
fn share(part: &WindowSummary, whole: &WindowSummary) -> f64 {
    if whole.requests == 0 { 0.0 } else { (part.requests as f64 / whole.requests as f64).min(1.0) }
}

impl Operator for BlastRadius {
    type In = BlastInput;
    type Out = ImpactMap;
    type Ctx = ServiceGraph;
    type Snapshot = BlastSnapshot;

    fn on_event(&mut self, graph: &ServiceGraph, input: &BlastInput, out: &mut Vec<ImpactMap>) {
        match input {
            BlastInput::Incident(u) => {
                let view = self.open.entry(u.incident_id.clone()).or_insert_with(|| View {
                    roots: Vec::new(),
                    firing: Vec::new(),
                    version: 0,
                    last_states: BTreeMap::new(),
                    last_emit_ns: 0,
                    dirty: false,
                });
                view.roots = u.root_services.clone();
                view.firing = u.firing_services.clone();
                let status = match u.kind {
                    UpdateKind::Resolved => IncidentStatus::Resolved,
                    UpdateKind::Stale => IncidentStatus::Stale,
                    UpdateKind::Opened | UpdateKind::Changed => IncidentStatus::Open,
                };
                let map = build_map(
                    graph,
                    (self.config.max_hops, self.config.max_nodes),
                    &u.incident_id,
                    view,
                    status,
                    u.time_ns,
                );
                self.publish(map, out);
                if status.is_closed() {
                    self.open.remove(&u.incident_id);
                    self.dirty.remove(&u.incident_id);
                }
            }
            BlastInput::Health(_) | BlastInput::Catalog => {
                for (id, view) in &mut self.open {
                    view.dirty = true;
                    self.dirty.insert(id.clone());
                }
            }
        }
    }

    fn on_watermark(&mut self, graph: &ServiceGraph, event_time: TimestampNs, out: &mut Vec<ImpactMap>) {
        let interval = self.config.min_interval_ms.saturating_mul(1_000_000);
        let due: Vec<String> = self
            .dirty
            .iter()
            .filter(|id| event_time >= self.open[*id].last_emit_ns.saturating_add(interval))
            .cloned()
            .collect();
        for id in due {
            let view = self.open.get_mut(&id).expect("dirty views are open");
            view.dirty = false;
            self.dirty.remove(&id);
            let map = build_map(
                graph,
                (self.config.max_hops, self.config.max_nodes),
                &id,
                view,
                IncidentStatus::Open,
                event_time,
            );
            if states_of(&map) != view.last_states {
                self.publish(map, out);
            }
        }
    }

    fn snapshot(&self) -> BlastSnapshot {
        BlastSnapshot { open: self.open.clone() }
    }

    fn restore(&mut self, s: BlastSnapshot) {
        self.open = s.open;
        self.dirty = self.open.iter().filter(|(_, v)| v.dirty).map(|(id, _)| id.clone()).collect();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::service_id::ServiceId;
    use crate::span_pairing::Observation;

    const S: u64 = 1_000_000_000;

    fn id(n: &str) -> ServiceId {
        ServiceId::service(Arc::from(n), None)
    }

    /// frontend → checkout → payments → db, checkout → cart; `failing` fail all requests.
    fn graph(failing: &[&str], seconds: u64) -> ServiceGraph {
        let mut g = ServiceGraph::default();
        let edges =
            [("frontend", "checkout"), ("checkout", "payments"), ("payments", "db"), ("checkout", "cart")];
        for t in 0..seconds * 10 {
            let time_ns = t * S / 10;
            let mut out = Vec::new();
            g.on_watermark(&(), time_ns, &mut out);
            for (a, b) in edges {
                let failed = failing.contains(&b);
                for obs in [
                    Observation::Request {
                        service: id(b),
                        time_ns,
                        latency_ns: 1_000_000,
                        failed,
                        release: None,
                    },
                    Observation::Call {
                        caller: id(a),
                        callee: id(b),
                        time_ns,
                        latency_ns: 1_000_000,
                        server_ns: 1_000_000,
                        failed,
                        asynchronous: false,
                    },
                ] {
                    g.observe(&obs);
                }
            }
        }
        g
    }

    fn update(kind: UpdateKind, roots: &[&str], firing: &[&str], t: u64) -> BlastInput {
        BlastInput::Incident(IncidentUpdate {
            incident_id: "inc-1".into(),
            kind,
            root_services: roots.iter().map(|s| s.to_string()).collect(),
            firing_services: firing.iter().map(|s| s.to_string()).collect(),
            time_ns: t * S,
        })
    }

    #[test]
    fn walk_directions_hops_and_paths() {
        let g = graph(&[], 30);
        let mut b = BlastRadius::default();
        let mut out = Vec::new();
        b.on_event(&g, &update(UpdateKind::Opened, &["payments"], &["payments"], 30), &mut out);
        let map = &out[0];
        let got: Vec<(&str, Direction, u32, String)> =
            map.nodes.iter().map(|n| (n.service.as_str(), n.direction, n.hops, n.path.join(">"))).collect();
        assert_eq!(
            got,
            vec![
                ("payments", Direction::Root, 0, "payments".into()),
                ("checkout", Direction::Upstream, 1, "payments>checkout".into()),
                ("db", Direction::Downstream, 1, "payments>db".into()),
                ("frontend", Direction::Upstream, 2, "payments>checkout>frontend".into()),
            ],
            "cart is a sibling, neither caller nor callee of payments"
        );
        assert_eq!(map.nodes[0].state, HealthState::Red, "alert firing");
        assert_eq!(map.verdict, Verdict::Contained);
        assert_eq!(map.version, 1);
        let edges: Vec<(&str, &str)> =
            map.edges.iter().map(|e| (e.caller.as_str(), e.callee.as_str())).collect();
        assert_eq!(edges, vec![("checkout", "payments"), ("frontend", "checkout"), ("payments", "db")]);
        assert!((map.edges[0].traffic_share - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_map_says_how_much_traffic_its_rates_cover() {
        // 90 s of traffic, ticked to 80 s: the short window is 20–80 s, the baseline what
        // came before it.
        let g = graph(&[], 90);
        let mut b = BlastRadius::default();
        let mut out = Vec::new();
        b.on_event(&g, &update(UpdateKind::Opened, &["payments"], &["payments"], 90), &mut out);
        let twenty_of_sixty = Some(NowVsBaseline { now: 60.0, baseline: 20.0 });
        let payments = out[0].nodes.iter().find(|n| n.service == "payments").unwrap();
        assert_eq!(payments.covered_s, twenty_of_sixty);
        assert!((payments.requests_per_s.baseline - 10.0).abs() < 1e-9, "200 requests over those 20 s");
        assert!(out[0].edges.iter().all(|e| e.covered_s == twenty_of_sixty));
    }

    #[test]
    fn a_map_shows_the_tail_of_a_wire_that_loses_packets() {
        // One call in twenty from payments to db waits out a 200 ms retransmission from
        // 30 s on: the median and p90 gap hold, the p99 shows it.
        let mut g = ServiceGraph::default();
        let mut out = Vec::new();
        for t in 0..900 {
            let time_ns = t * S / 10;
            g.on_watermark(&(), time_ns, &mut out);
            let gap_ns = if t >= 300 && t % 20 == 0 { 200_000_000 } else { 1_000_000 };
            let gap = Observation::Gap {
                caller: id("payments"),
                callee: id("db"),
                time_ns,
                gap_ns,
                failed_after: false,
            };
            g.observe(&gap);
        }
        let mut b = BlastRadius::default();
        let mut maps = Vec::new();
        b.on_event(&g, &update(UpdateKind::Opened, &["payments"], &["payments"], 90), &mut maps);
        let wire = maps[0].edges.iter().find(|e| e.callee == "db").unwrap();
        let (median, p90, p99) = (wire.gap_ms.unwrap(), wire.gap_p90_ms.unwrap(), wire.gap_p99_ms.unwrap());
        assert!(median.now < 1.1 && p90.now < 1.1, "{median:?} {p90:?}");
        assert!(p99.now > 190.0 && p99.baseline > 0.9 && p99.baseline < 1.1, "{p99:?}");
    }

    #[test]
    fn red_dependency_means_spreading() {
        let g = graph(&["db"], 30);
        let mut b = BlastRadius::default();
        let mut out = Vec::new();
        b.on_event(&g, &update(UpdateKind::Opened, &["payments"], &["payments"], 30), &mut out);
        let db = out[0].nodes.iter().find(|n| n.service == "db").unwrap();
        assert_eq!(db.state, HealthState::Red);
        assert!((db.error_rate.now - 1.0).abs() < 1e-9);
        assert_eq!(out[0].verdict, Verdict::Spreading);
        let edge = out[0].edges.iter().find(|e| e.callee == "db").unwrap();
        assert_eq!(edge.state, HealthState::Red);
    }

    #[test]
    fn a_map_past_max_nodes_keeps_the_hurt_and_the_nearest_and_counts_the_rest() {
        let mut g = graph(&["db"], 30);
        for i in 0..30 {
            let callee = id(&format!("x-{i:02}"));
            let call = Observation::Call {
                caller: id("payments"),
                callee,
                time_ns: 29 * S,
                latency_ns: 1_000_000,
                server_ns: 1_000_000,
                failed: false,
                asynchronous: false,
            };
            g.observe(&call);
        }
        let config = BlastConfig { max_nodes: 10, ..BlastConfig::default() };
        let mut b = BlastRadius::new(config);
        let mut out = Vec::new();
        b.on_event(&g, &update(UpdateKind::Opened, &["payments"], &["payments"], 30), &mut out);
        let map = &out[0];
        let names: Vec<&str> = map.nodes.iter().map(|n| n.service.as_str()).collect();
        assert_eq!(names.len(), 10);
        assert_eq!(map.omitted_nodes, Some(24), "34 reached: {names:?}");
        for kept in ["payments", "db", "checkout", "frontend", "x-00"] {
            assert!(names.contains(&kept), "{kept} in {names:?}");
        }
        assert!(!names.contains(&"x-29"), "the farthest clean callee goes first");
        assert_eq!(map.verdict, Verdict::Spreading, "the red dependency is kept");
        for n in &map.nodes {
            let parent = n.path.len().checked_sub(2).map(|i| n.path[i].as_str());
            assert!(parent.is_none_or(|p| names.contains(&p)), "{} hangs under a listed parent", n.service);
        }
        assert!(
            map.edges
                .iter()
                .all(|e| names.contains(&e.caller.as_str()) && names.contains(&e.callee.as_str()))
        );
    }

    #[test]
    fn versions_on_state_change_rate_limited_and_on_resolve() {
        let g = graph(&[], 30);
        let mut b = BlastRadius::default();
        let mut out = Vec::new();
        b.on_event(&g, &update(UpdateKind::Opened, &["payments"], &["payments"], 30), &mut out);
        // A health change with no state difference in the map: no new version.
        let change = |t| {
            BlastInput::Health(HealthChange {
                service: id("x"),
                from: HealthState::Gray,
                to: HealthState::Amber,
                time_ns: t,
            })
        };
        b.on_event(&g, &change(31 * S), &mut out);
        b.on_watermark(&g, 40 * S, &mut out);
        assert_eq!(out.len(), 1);
        // The database starts failing: a new version, but not before the interval.
        let failing = graph(&["db"], 30);
        b.on_event(&failing, &change(41 * S), &mut out);
        b.on_watermark(&failing, 40 * S + 1, &mut out);
        assert_eq!(out.len(), 2, "dirty and interval elapsed since version 1 at 30 s");
        b.on_event(&g, &change(42 * S), &mut out);
        b.on_watermark(&g, 42 * S, &mut out);
        assert_eq!(out.len(), 2, "rate-limited: 2 s after version 2");
        b.on_watermark(&g, 46 * S, &mut out);
        assert_eq!(out.len(), 3, "db healthy again");
        b.on_event(&g, &update(UpdateKind::Resolved, &["payments"], &[], 50), &mut out);
        let versions: Vec<(u32, IncidentStatus)> = out.iter().map(|m| (m.version, m.status)).collect();
        assert_eq!(
            versions,
            vec![
                (1, IncidentStatus::Open),
                (2, IncidentStatus::Open),
                (3, IncidentStatus::Open),
                (4, IncidentStatus::Resolved)
            ]
        );
        assert_eq!(out[3].nodes[0].state, HealthState::Gray, "no alert overlay once resolved");
    }

    #[test]
    fn snapshot_restore_round_trip_and_determinism() {
        let g = graph(&["db"], 30);
        let inputs = [
            update(UpdateKind::Opened, &["payments"], &["payments"], 30),
            update(UpdateKind::Changed, &["frontend", "payments"], &["frontend", "payments"], 31),
            update(UpdateKind::Resolved, &["frontend", "payments"], &[], 60),
        ];
        let run = |b: &mut BlastRadius, inputs: &[BlastInput]| {
            let mut out = Vec::new();
            for i in inputs {
                b.on_event(&g, i, &mut out);
            }
            out
        };
        let expected = run(&mut BlastRadius::default(), &inputs);
        let mut first = BlastRadius::default();
        let mut got = run(&mut first, &inputs[..1]);
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let mut second = BlastRadius::default();
        second.restore(serde_json::from_str(&json).unwrap());
        got.extend(run(&mut second, &inputs[1..]));
        assert_eq!(got, expected);
        assert_eq!(run(&mut BlastRadius::default(), &inputs), expected);
        assert_eq!(expected[1].root_services, vec!["frontend", "payments"]);
    }
}
