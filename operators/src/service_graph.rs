//! The rolling service graph: petgraph `StableGraph` plus our own `ServiceId → NodeIndex`
//! map (petgraph reuses freed indices, so the map is the identity). Nodes and edges
//! carry rolling stats and a health state re-evaluated on every bucket boundary; edges
//! unseen for the TTL expire, and nodes left with no edges and no traffic go with them.
//!
//! A service catalog's declared edges are laid into the same graph (marked declared,
//! never expiring), with nodes for declared services no trace has shown yet, so every
//! walk sees them; they are re-laid when the catalog changes or a new service name
//! appears in traces (a catalog name may now meet it).

use devloom_schemas::impact::NodeCatalog;
use devloom_schemas::{Criticality, HealthState, TimestampNs};
use petgraph::Direction as PgDirection;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::call_aggregates::{CallAggregate, Subject};
use crate::catalog::{CatalogModel, Resolved};
use crate::health::{HealthConfig, wilson_lower_bound};
use crate::operator::Operator;
use crate::rolling_stats::{RollingStats, WindowConfig, WindowSummary, count_above};
use crate::service_id::ServiceId;

/// Graph settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// Edges unseen this long (event time) expire, milliseconds.
    pub edge_ttl_ms: u64,
    /// The most services (nodes) the graph holds. Reaching it, the least recently seen
    /// tenth is evicted with their edges (counted), so a flood of distinct service names
    /// cannot grow memory without bound.
    pub max_services: usize,
    /// Window sizes.
    pub window: WindowConfig,
    /// Health thresholds.
    pub health: HealthConfig,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            edge_ttl_ms: 15 * 60_000,
            max_services: 100_000,
            window: WindowConfig::default(),
            health: HealthConfig::default(),
        }
    }
}

impl GraphConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_services < 10 {
            return Err("max_services must be at least 10".into());
        }
        self.window.validate().map_err(|e| format!("window.{e}"))?;
        self.health.validate().map_err(|e| format!("health.{e}"))
    }
}

/// Health of a node or edge at the last evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Red / amber / gray / unknown.
    pub state: HealthState,
    /// The short window.
    pub now: WindowSummary,
    /// The baseline.
    pub baseline: WindowSummary,
    /// Own time: self time for a node, network gap for an edge (short window).
    #[serde(default)]
    pub own_now: WindowSummary,
    /// Own time over the baseline window.
    #[serde(default)]
    pub own_baseline: WindowSummary,
    /// The own time rose ([`HealthConfig::self_time_up`] for a node,
    /// [`HealthConfig::gap_up`] for an edge), the thresholds relaxed when it was red or
    /// amber already.
    #[serde(default)]
    pub own_risen: bool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: HealthState::Unknown,
            now: WindowSummary::default(),
            baseline: WindowSummary::default(),
            own_now: WindowSummary::default(),
            own_baseline: WindowSummary::default(),
            own_risen: false,
        }
    }
}

/// A service in the graph.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeState {
    /// Identity.
    pub id: ServiceId,
    /// Requests it served.
    pub stats: RollingStats,
    /// Self time of its spans (exclusive of their children).
    #[serde(default)]
    pub own: RollingStats,
    /// Last evaluated health.
    pub health: Health,
    /// Last event time it served a request or appeared on an edge.
    pub last_seen_ns: TimestampNs,
    /// Seen in traces; false for a service only a catalog declares.
    #[serde(default = "observed")]
    pub observed: bool,
}

fn observed() -> bool {
    true
}

/// Upper bounds of the latency buckets of [`EdgeTotals`], seconds: the OpenTelemetry
/// Collector servicegraph connector's default `latency_histogram_buckets`.
pub const LATENCY_BUCKETS_S: [f64; 16] =
    [0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0];

/// Latencies counted per bucket of [`LATENCY_BUCKETS_S`] (the last counts the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative.
    pub counts: [u64; LATENCY_BUCKETS_S.len() + 1],
    /// Sum of the observations, seconds.
    pub sum_s: f64,
}

impl LatencyHistogram {
    pub(crate) fn record(&mut self, ns: u64) {
        let s = ns as f64 / 1e9;
        self.counts[LATENCY_BUCKETS_S.partition_point(|b| *b < s)] += 1;
        self.sum_s += s;
    }

    fn merge(&mut self, other: &LatencyHistogram) {
        self.counts.iter_mut().zip(other.counts).for_each(|(mine, theirs)| *mine += theirs);
        self.sum_s += other.sum_s;
    }
}

/// Everything a call relationship carried since it was first seen, never windowed: what
/// service-graph metrics in the Tempo / Collector shape export as counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeTotals {
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub failed: u64,
    /// Latency the caller saw.
    pub client: LatencyHistogram,
    /// Duration of the callee's span.
    pub server: LatencyHistogram,
}

/// A call relationship in the graph.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EdgeState {
    /// Calls over the edge.
    pub stats: RollingStats,
    /// Network gap of its calls (caller's wait beyond the callee's span); its failures
    /// are calls whose caller's request failed.
    #[serde(default)]
    pub own: RollingStats,
    /// Last evaluated health.
    pub health: Health,
    /// Last event time a call was seen.
    pub last_seen_ns: TimestampNs,
    /// Producer → consumer.
    pub asynchronous: bool,
    /// Counts since it was first seen.
    #[serde(default)]
    pub totals: EdgeTotals,
    /// Declared by a service catalog.
    #[serde(default)]
    pub declared: bool,
    /// The criticality the catalog declares, if it does.
    #[serde(default)]
    pub declared_criticality: Option<Criticality>,
}

impl EdgeState {
    /// Seen in traces within `ttl_ns` of `now`.
    pub fn observed_since(&self, now: TimestampNs, ttl_ns: u64) -> bool {
        self.totals.calls > 0 && self.last_seen_ns.saturating_add(ttl_ns) >= now
    }

    fn new(time_ns: TimestampNs) -> Self {
        Self {
            stats: RollingStats::default(),
            own: RollingStats::default(),
            health: Health::default(),
            last_seen_ns: time_ns,
            asynchronous: false,
            totals: EdgeTotals::default(),
            declared: false,
            declared_criticality: None,
        }
    }
}

/// The catalog in force and what it resolved to.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Declared {
    model: CatalogModel,
    resolved: Resolved,
}

/// A node's health state changed at a bucket boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    /// The node.
    pub service: ServiceId,
    /// State before.
    pub from: HealthState,
    /// State now.
    pub to: HealthState,
    /// Event time of the evaluation.
    pub time_ns: TimestampNs,
}

/// Serializable state of a [`ServiceGraph`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GraphSnapshot {
    graph: StableDiGraph<NodeState, EdgeState>,
    next_tick_ns: TimestampNs,
    #[serde(default)]
    evicted: u64,
    #[serde(default)]
    declared: Declared,
}

/// The service-graph + health operator.
#[derive(Debug, Default)]
pub struct ServiceGraph {
    config: GraphConfig,
    graph: StableDiGraph<NodeState, EdgeState>,
    index: FxHashMap<ServiceId, NodeIndex>,
    edges: FxHashMap<(NodeIndex, NodeIndex), EdgeIndex>,
    next_tick_ns: TimestampNs,
    evicted: u64,
    declared: Declared,
    /// A service name appeared in traces since the catalog was last resolved.
    names_changed: bool,
}

impl ServiceGraph {
    /// An empty graph with `config`.
    pub fn new(config: GraphConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// The settings.
    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// The petgraph graph, for walks.
    pub fn graph(&self) -> &StableDiGraph<NodeState, EdgeState> {
        &self.graph
    }

    /// The node of `id`, if present.
    pub fn node_index(&self, id: &ServiceId) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// Every node named `name` (one per region), sorted by identity.
    pub fn nodes_named(&self, name: &str) -> Vec<NodeIndex> {
        let mut found: Vec<NodeIndex> =
            self.graph.node_indices().filter(|&i| &*self.graph[i].id.name == name).collect();
        found.sort_by(|a, b| self.graph[*a].id.cmp(&self.graph[*b].id));
        found
    }

    /// Services evicted because the graph reached `max_services`.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Number of nodes and edges.
    pub fn size(&self) -> (usize, usize) {
        (self.graph.node_count(), self.graph.edge_count())
    }

    /// Names of services within `hops` of `name` in either direction, `name` included.
    pub fn names_within(&self, name: &str, hops: u32) -> Vec<String> {
        let mut seen: std::collections::BTreeSet<NodeIndex> = self.nodes_named(name).into_iter().collect();
        let mut frontier: Vec<NodeIndex> = seen.iter().copied().collect();
        for _ in 0..hops {
            let mut next = Vec::new();
            for &n in &frontier {
                for m in self.graph.neighbors_undirected(n) {
                    if seen.insert(m) {
                        next.push(m);
                    }
                }
            }
            frontier = next;
        }
        let names: std::collections::BTreeSet<String> =
            seen.into_iter().map(|i| self.graph[i].id.name.to_string()).chain([name.to_string()]).collect();
        names.into_iter().collect()
    }

    /// The node of an observed service (created on first sight), seen at `time_ns`.
    fn node(&mut self, id: &ServiceId, time_ns: TimestampNs) -> NodeIndex {
        if let Some(&i) = self.index.get(id) {
            let n = &mut self.graph[i];
            n.last_seen_ns = n.last_seen_ns.max(time_ns);
            if !n.observed {
                n.observed = true;
                self.names_changed = true;
            }
            return i;
        }
        self.names_changed = true;
        self.add_node(id, time_ns, true)
    }

    fn add_node(&mut self, id: &ServiceId, time_ns: TimestampNs, observed: bool) -> NodeIndex {
        let i = self.graph.add_node(NodeState {
            id: id.clone(),
            stats: RollingStats::default(),
            own: RollingStats::default(),
            health: Health::default(),
            last_seen_ns: time_ns,
            observed,
        });
        self.index.insert(id.clone(), i);
        i
    }

    /// The traced name a catalog gives `name` (a PagerDuty service's name, an entity
    /// reference) when traces do not carry `name` itself.
    pub fn alias(&self, name: &str) -> Option<&str> {
        self.declared.resolved.aliases.get(name).map(String::as_str)
    }

    /// What the catalogs say of the service `name`.
    pub fn catalog_entry(&self, name: &str) -> Option<&NodeCatalog> {
        self.declared.resolved.services.get(name)
    }

    /// The catalog in force, resolved against the traced names.
    pub fn catalog(&self) -> &Resolved {
        &self.declared.resolved
    }

    /// Takes `model` as the catalog in force and lays its edges.
    pub fn declare(&mut self, model: CatalogModel) {
        self.declared.model = model;
        self.relay();
    }

    /// Resolves the catalog against the names traced now and, when that changes what
    /// is declared, replaces the declared edges (and the nodes only they held).
    fn relay(&mut self) {
        self.names_changed = false;
        let traced: FxHashSet<&str> =
            self.graph.node_weights().filter(|n| n.observed).map(|n| &*n.id.name).collect();
        let resolved = self.declared.model.resolve(&|name| traced.contains(name));
        if resolved == self.declared.resolved {
            return;
        }
        let edges_changed = resolved.edges != self.declared.resolved.edges;
        self.declared.resolved = resolved;
        if !edges_changed {
            return;
        }
        // Unmark the old edges: those never observed go, with the nodes only they held.
        let mut gone_edges = FxHashSet::default();
        for e in self.graph.edge_indices().collect::<Vec<_>>() {
            let edge = &mut self.graph[e];
            if edge.declared {
                edge.declared = false;
                edge.declared_criticality = None;
                if edge.totals.calls == 0 {
                    gone_edges.insert(e);
                }
            }
        }
        self.remove(&FxHashSet::default(), &gone_edges);
        let gone_nodes: FxHashSet<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|&n| !self.graph[n].observed && self.graph.neighbors_undirected(n).next().is_none())
            .collect();
        self.remove(&gone_nodes, &FxHashSet::default());
        // Lay the new ones, between every region of the caller and the callee's nodes in
        // the same region (else all of them).
        let mut by_name: FxHashMap<String, Vec<NodeIndex>> = FxHashMap::default();
        for i in self.graph.node_indices() {
            by_name.entry(self.graph[i].id.name.to_string()).or_default().push(i);
        }
        for v in by_name.values_mut() {
            v.sort_by(|a, b| self.graph[*a].id.cmp(&self.graph[*b].id));
        }
        let edges: Vec<((String, String), Option<Criticality>)> = self
            .declared
            .resolved
            .edges
            .iter()
            .flat_map(|(a, to)| to.iter().map(|(b, c)| ((a.clone(), b.clone()), *c)))
            .collect();
        for ((caller, callee), criticality) in edges {
            let mut ends = |name: &str| -> Vec<NodeIndex> {
                if let Some(found) = by_name.get(name) {
                    return found.clone();
                }
                let i = self.add_node(&ServiceId::service(std::sync::Arc::from(name), None), 0, false);
                by_name.insert(name.to_string(), vec![i]);
                vec![i]
            };
            let (callers, callees) = (ends(&caller), ends(&callee));
            for &a in &callers {
                let region = &self.graph[a].id.region;
                let same: Vec<NodeIndex> =
                    callees.iter().copied().filter(|&b| &self.graph[b].id.region == region).collect();
                for b in if same.is_empty() { callees.clone() } else { same } {
                    let e = self.edge_between(a, b, 0);
                    self.graph[e].declared = true;
                    self.graph[e].declared_criticality = criticality;
                }
            }
        }
    }

    /// The edge `a → b`, created (first seen at `time_ns`) when there is none.
    fn edge_between(&mut self, a: NodeIndex, b: NodeIndex, time_ns: TimestampNs) -> EdgeIndex {
        if let Some(&e) = self.edges.get(&(a, b)) {
            return e;
        }
        let e = self.graph.add_edge(a, b, EdgeState::new(time_ns));
        self.edges.insert((a, b), e);
        e
    }

    /// The edge `caller → callee` (created on first sight), seen at `time_ns`.
    fn edge(&mut self, caller: &ServiceId, callee: &ServiceId, time_ns: TimestampNs) -> EdgeIndex {
        let a = self.node(caller, time_ns);
        let b = self.node(callee, time_ns);
        let e = self.edge_between(a, b, time_ns);
        let edge = &mut self.graph[e];
        edge.last_seen_ns = edge.last_seen_ns.max(time_ns);
        e
    }

    /// Re-evaluates all health at `now` and reports node changes sorted by identity.
    fn tick(&mut self, now: TimestampNs, out: &mut Vec<HealthChange>) {
        let cfg = &self.config;
        let mut changes = Vec::new();
        // Edges first: a node's network shows on its edges.
        for e in self.graph.edge_indices().collect::<Vec<_>>() {
            // An edge of a degraded service is part of its evidence (a slow wire, callers
            // failing on its answers): its baseline keeps what came before, as the node's.
            let (caller, callee) = self.graph.edge_endpoints(e).expect("listed");
            let ends_degraded =
                degraded(self.graph[caller].health.state) || degraded(self.graph[callee].health.state);
            let edge = &mut self.graph[e];
            let held = ends_degraded || degraded(edge.health.state);
            edge.stats.advance(&cfg.window, now, held);
            edge.own.advance(&cfg.window, now, held);
            edge.health = evaluate(cfg, &edge.stats, &edge.own, OwnTime::Gap, edge.health.state, now);
        }
        let window_s = cfg.window.short_window_ms as f64 / 1000.0;
        for i in self.graph.node_indices().collect::<Vec<_>>() {
            let slow_wire = self.slow_wire(i);
            let blamed = self.blamed(i);
            let n = &mut self.graph[i];
            let held = degraded(n.health.state);
            n.stats.advance(&cfg.window, now, held);
            n.own.advance(&cfg.window, now, held);
            let mut health = evaluate(cfg, &n.stats, &n.own, OwnTime::SelfTime, n.health.state, now);
            if !n.id.virtual_node && cfg.health.silent(&health.now, &health.baseline, window_s) {
                health.state = HealthState::Red;
            } else if health.state == HealthState::Gray && (slow_wire || blamed) {
                health.state = HealthState::Amber;
            }
            if health.state != n.health.state {
                changes.push(HealthChange {
                    service: n.id.clone(),
                    from: n.health.state,
                    to: health.state,
                    time_ns: now,
                });
            }
            n.health = health;
        }
        self.expire(now);
        if self.names_changed && !self.declared.model.is_empty() {
            self.relay();
        }
        changes.sort_by(|a, b| a.service.cmp(&b.service));
        out.extend(changes);
    }

    /// Whether the node's network is slow: most of its measured incoming edges have a
    /// risen network gap, and so do most of its measured outgoing ones (if it has any).
    /// An edge that did not rise, in or out, counts with `p90_min_requests` calls only:
    /// lost packets delay a tenth to a third of the calls, so a handful of calls that
    /// all went through says little. An edge's gap has risen as the edge's own health
    /// judged it (`own_risen`: median, p90 or tail).
    /// Its callers, with one slow edge among many and healthy incoming edges, are not.
    /// A risen edge whose caller's other measured edges, in and out, all rose too is the
    /// caller's wire, not this node's: a caller with a slow network slows every call it
    /// makes and every answer it gives.
    fn slow_wire(&self, node: NodeIndex) -> bool {
        let h = &self.config.health;
        let measured = |e: &EdgeState| {
            e.health.own_now.requests >= h.min_requests && e.health.own_baseline.requests >= h.min_requests
        };
        let up = |e: &EdgeState| e.health.own_risen;
        let callers_wire = |caller: NodeIndex| {
            let mut others = self
                .graph
                .edges_directed(caller, PgDirection::Outgoing)
                .chain(self.graph.edges_directed(caller, PgDirection::Incoming))
                .filter(|o| o.target() != node && measured(o.weight()))
                .peekable();
            others.peek().is_some() && others.all(|o| up(o.weight()))
        };
        // An edge that did not rise speaks against a slow wire only with calls enough for
        // its p90 to be more than its slowest one or two.
        let enough = |e: &EdgeState| {
            up(e) || e.health.own_now.requests.min(e.health.own_baseline.requests) >= h.p90_min_requests
        };
        let incoming = self
            .graph
            .edges_directed(node, PgDirection::Incoming)
            .filter(|e| measured(e.weight()) && enough(e.weight()));
        let (in_up, ins) = tally(incoming.map(|e| up(e.weight()) && !callers_wire(e.source())));
        // An outgoing one also only to an instrumented callee: a call no span answered is
        // the peer's work as much as the wire, so one that did not slow down says little.
        let counted =
            |e: &EdgeState, callee: NodeIndex| up(e) || (!self.graph[callee].id.virtual_node && enough(e));
        let outgoing = self
            .graph
            .edges_directed(node, PgDirection::Outgoing)
            .filter(|e| measured(e.weight()) && counted(e.weight(), e.target()));
        let (out_up, outs) = tally(outgoing.map(|e| up(e.weight())));
        ins > 0 && 2 * in_up > ins && (outs == 0 || 2 * out_up > outs)
    }

    /// Whether some caller fails on this node's answers: its requests fail right after
    /// calling it more than before (the error rule, on the lower bound of the Wilson
    /// interval, with `min_requests` calls now and, as a node's errors, whatever baseline
    /// there is), and three in four of the caller's failures are such. A service
    /// answering wrongly looks healthy in its own spans; its callers show it. A caller
    /// failing on its own fails after whichever call it made last, or before any.
    fn blamed(&self, node: NodeIndex) -> bool {
        let h = &self.config.health;
        self.graph.edges_directed(node, PgDirection::Incoming).any(|e| {
            let (now, base) = (&e.weight().health.own_now, &e.weight().health.own_baseline);
            let caller = &self.graph[e.source()].health.now;
            let rate = wilson_lower_bound(now.failures, now.requests);
            now.requests >= h.min_requests
                && rate >= base.error_rate() + h.amber_error_increase
                && rate >= base.error_rate() * h.amber_error_ratio
                && 4 * now.failures >= 3 * caller.failures
        })
    }

    fn expire(&mut self, now: TimestampNs) {
        let cutoff = now.saturating_sub(self.config.edge_ttl_ms.saturating_mul(1_000_000));
        let stale: FxHashSet<EdgeIndex> = self
            .graph
            .edge_indices()
            .filter(|&e| !self.graph[e].declared && self.graph[e].last_seen_ns < cutoff)
            .collect();
        self.remove(&FxHashSet::default(), &stale);
        let orphans: FxHashSet<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|&n| {
                self.graph[n].last_seen_ns < cutoff && self.graph.neighbors_undirected(n).next().is_none()
            })
            .collect();
        self.remove(&orphans, &FxHashSet::default());
    }

    /// The graph is full: the least recently seen tenth of the services go, with their
    /// edges (ties broken by identity, so replay evicts the same ones).
    fn evict_oldest(&mut self) {
        // Declared services stay: the catalog bounds them, not the traffic.
        let mut by_age: Vec<(TimestampNs, NodeIndex)> = self
            .graph
            .node_indices()
            .filter(|&n| self.graph[n].observed)
            .map(|n| (self.graph[n].last_seen_ns, n))
            .collect();
        let count = (self.config.max_services / 10).max(1).min(by_age.len());
        by_age.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| self.graph[a.1].id.cmp(&self.graph[b.1].id)));
        let gone: FxHashSet<NodeIndex> = by_age[..count].iter().map(|&(_, n)| n).collect();
        self.remove(&gone, &FxHashSet::default());
        self.evicted += count as u64;
    }

    /// Removes `nodes` (with their edges) and `edges`, and their index entries. One by
    /// one when they are few; otherwise in one pass over the graph, because removing an
    /// edge walks its endpoints' edge lists and a hub's holds every caller (a thousand
    /// callers of one hub removed one by one cost a million steps). Indices of what stays
    /// are kept either way.
    fn remove(&mut self, nodes: &FxHashSet<NodeIndex>, edges: &FxHashSet<EdgeIndex>) {
        if nodes.is_empty() && edges.is_empty() {
            return;
        }
        if nodes.len() + edges.len() <= 32 {
            // In index order, so the graph's free lists (and later indices) are the same
            // on every run.
            let (mut nodes, mut edges): (Vec<_>, Vec<_>) = (nodes.iter().collect(), edges.iter().collect());
            nodes.sort();
            edges.sort();
            for e in edges.into_iter().copied() {
                if let Some(ends) = self.graph.edge_endpoints(e) {
                    self.edges.remove(&ends);
                }
                self.graph.remove_edge(e);
            }
            for n in nodes.into_iter().copied() {
                let ends: Vec<(NodeIndex, NodeIndex)> = self
                    .graph
                    .edges_directed(n, PgDirection::Outgoing)
                    .chain(self.graph.edges_directed(n, PgDirection::Incoming))
                    .map(|e| (e.source(), e.target()))
                    .collect();
                for key in ends {
                    self.edges.remove(&key);
                }
                if let Some(state) = self.graph.remove_node(n) {
                    self.index.remove(&state.id);
                }
            }
            return;
        }
        let graph = std::mem::take(&mut self.graph);
        self.graph = graph.filter_map_owned(
            |n, state| (!nodes.contains(&n)).then_some(state),
            |e, state| (!edges.contains(&e)).then_some(state),
        );
        let graph = &self.graph;
        self.index.retain(|_, n| graph.contains_node(*n));
        self.edges.retain(|_, e| graph.edge_weight(*e).is_some());
    }

    /// Incoming (caller) or outgoing (callee) edges of `node`, sorted by the other end.
    pub fn neighbours(&self, node: NodeIndex, callers: bool) -> Vec<(NodeIndex, EdgeIndex)> {
        let dir = if callers { PgDirection::Incoming } else { PgDirection::Outgoing };
        let mut found: Vec<(NodeIndex, EdgeIndex)> = self
            .graph
            .edges_directed(node, dir)
            .map(|e| (if callers { e.source() } else { e.target() }, e.id()))
            .collect();
        found.sort_by(|a, b| self.graph[a.0].id.cmp(&self.graph[b.0].id));
        found
    }
}

fn degraded(state: HealthState) -> bool {
    matches!(state, HealthState::Red | HealthState::Amber)
}

/// How many of `risen` are true, and how many there are.
fn tally(risen: impl Iterator<Item = bool>) -> (usize, usize) {
    risen.fold((0, 0), |(up, all), r| (up + usize::from(r), all + 1))
}

/// What a node's or an edge's own time is, and so how its rise is judged.
#[derive(Clone, Copy)]
enum OwnTime {
    /// A node's self time: [`HealthConfig::self_time_up`].
    SelfTime,
    /// An edge's network gap: [`HealthConfig::gap_up`], its slow calls counted in the
    /// short window's sketch.
    Gap,
}

/// Health from the requests (or calls) and the own time (self time or network gap): a
/// rise in own time alone makes a gray node or edge amber.
fn evaluate(
    cfg: &GraphConfig,
    stats: &RollingStats,
    own: &RollingStats,
    kind: OwnTime,
    previous: HealthState,
    tick_ns: TimestampNs,
) -> Health {
    let now = stats.short(&cfg.window, tick_ns);
    let baseline = stats.baseline(&cfg.window);
    let (own_now, own_sketch) = own.short_with_sketch(&cfg.window, tick_ns);
    let own_baseline = own.baseline(&cfg.window);
    let mut state = cfg.health.classify(&now, &baseline, previous);
    let held = matches!(previous, HealthState::Red | HealthState::Amber);
    let h = &cfg.health;
    let own_risen = match kind {
        OwnTime::SelfTime => h.self_time_up(&own_now, &own_baseline, held),
        OwnTime::Gap => h.gap_up(&own_now, &own_baseline, held, |ms| count_above(&own_sketch, ms)),
    };
    if state == HealthState::Gray && own_risen {
        state = HealthState::Amber;
    }
    Health { state, now, baseline, own_now, own_baseline, own_risen }
}

impl Operator for ServiceGraph {
    type In = CallAggregate;
    type Out = HealthChange;
    type Ctx = ();
    type Snapshot = GraphSnapshot;

    fn on_event(&mut self, _: &(), a: &CallAggregate, _out: &mut Vec<HealthChange>) {
        if self.index.len() >= self.config.max_services {
            self.evict_oldest();
        }
        let window = self.config.window.clone();
        let (time, count, failures, sketch) = (a.bucket_ns, a.count, a.failures, &a.latency_ms);
        match &a.subject {
            Subject::Requests { service } => {
                let i = self.node(service, a.last_ns);
                self.graph[i].stats.merge(&window, time, count, failures, sketch);
            }
            Subject::Calls { caller, callee, asynchronous } => {
                let e = self.edge(caller, callee, a.last_ns);
                let edge = &mut self.graph[e];
                edge.asynchronous |= *asynchronous;
                edge.stats.merge(&window, time, count, failures, sketch);
                let totals = &mut edge.totals;
                totals.calls += count;
                totals.failed += failures;
                if let Some(calls) = &a.totals {
                    totals.client.merge(&calls.client);
                    totals.server.merge(&calls.server);
                }
            }
            Subject::SelfTime { service } => {
                let i = self.node(service, a.last_ns);
                self.graph[i].own.merge(&window, time, count, failures, sketch);
            }
            Subject::Gaps { caller, callee } => {
                let e = self.edge(caller, callee, a.last_ns);
                self.graph[e].own.merge(&window, time, count, failures, sketch);
            }
            Subject::Release { .. } => {}
        }
    }

    fn on_watermark(&mut self, _: &(), event_time: TimestampNs, out: &mut Vec<HealthChange>) {
        let bucket = self.config.window.bucket_ms.max(1).saturating_mul(1_000_000);
        if event_time < self.next_tick_ns {
            return;
        }
        let boundary = event_time - event_time % bucket;
        self.tick(boundary, out);
        self.next_tick_ns = boundary + bucket;
    }

    fn snapshot(&self) -> GraphSnapshot {
        GraphSnapshot {
            graph: self.graph.clone(),
            next_tick_ns: self.next_tick_ns,
            evicted: self.evicted,
            declared: self.declared.clone(),
        }
    }

    fn restore(&mut self, s: GraphSnapshot) {
        self.graph = s.graph;
        self.next_tick_ns = s.next_tick_ns;
        self.evicted = s.evicted;
        self.declared = s.declared;
        self.names_changed = false;
        self.index = self.graph.node_indices().map(|i| (self.graph[i].id.clone(), i)).collect();
        self.edges = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e).map(|ends| (ends, e)))
            .collect();
    }
}

/// One observation, handed on alone: how tests build graphs call by call.
#[cfg(test)]
impl ServiceGraph {
    pub(crate) fn observe(&mut self, obs: &crate::span_pairing::Observation) {
        for a in crate::call_aggregates::alone(obs) {
            self.on_event(&(), &a, &mut Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::span_pairing::Observation;

    const S: u64 = 1_000_000_000;

    fn id(name: &str) -> ServiceId {
        ServiceId::service(Arc::from(name), None)
    }

    fn call(caller: &str, callee: &str, t: u64, ms: u64, failed: bool) -> [Observation; 2] {
        [
            Observation::Request {
                service: id(callee),
                time_ns: t,
                latency_ns: ms * 1_000_000,
                failed,
                release: None,
            },
            Observation::Call {
                caller: id(caller),
                callee: id(callee),
                time_ns: t,
                latency_ns: ms * 1_000_000,
                server_ns: ms * 1_000_000,
                failed,
                asynchronous: false,
            },
        ]
    }

    /// 20 calls/s frontend → cart → db for `secs` seconds from `from`, the db slow after `slow_at`.
    fn traffic(from: u64, secs: u64, slow_at: u64) -> Vec<Observation> {
        (from * 20..(from + secs) * 20)
            .flat_map(|i| {
                let t = i * S / 20;
                let db_ms = if t >= slow_at.saturating_mul(S) { 300 } else { 5 };
                let mut v = call("cart", "db", t, db_ms, false).to_vec();
                v.extend(call("frontend", "cart", t, db_ms + 10, false));
                v
            })
            .collect()
    }

    fn drive(g: &mut ServiceGraph, obs: &[Observation]) -> Vec<HealthChange> {
        let mut out = Vec::new();
        for o in obs {
            if let Observation::Request { time_ns, .. } = o {
                g.on_watermark(&(), *time_ns, &mut out);
            }
            g.observe(o);
        }
        out
    }

    #[test]
    fn edge_totals_count_every_call_into_the_collector_buckets() {
        let mut g = ServiceGraph::default();
        let mut obs = call("cart", "db", S, 5, false).to_vec();
        obs.extend(call("cart", "db", 2 * S, 300, true));
        obs.extend(call("cart", "db", 3 * S, 20_000, false));
        drive(&mut g, &obs);
        let e = g.graph().edge_indices().next().unwrap();
        let t = g.graph()[e].totals;
        assert_eq!((t.calls, t.failed), (3, 1));
        // 5 ms ≤ 6 ms (bucket 2), 300 ms ≤ 400 ms (bucket 8), 20 s past 15 s (the last).
        let mut expected = [0; LATENCY_BUCKETS_S.len() + 1];
        expected[2] = 1;
        expected[8] = 1;
        expected[16] = 1;
        assert_eq!(t.client.counts, expected);
        assert!((t.client.sum_s - 20.305).abs() < 1e-9);
    }

    #[test]
    fn slow_database_turns_callers_amber() {
        let mut g = ServiceGraph::default();
        let changes = drive(&mut g, &traffic(0, 20 * 60, 18 * 60));
        let to_amber: Vec<String> =
            changes.iter().filter(|c| c.to == HealthState::Amber).map(|c| c.service.to_string()).collect();
        assert!(to_amber.contains(&"db".to_string()), "{changes:?}");
        assert!(to_amber.contains(&"cart".to_string()), "{changes:?}");
        let db = g.node_index(&id("db")).unwrap();
        assert_eq!(g.graph()[db].health.state, HealthState::Amber);
        assert!(g.graph()[db].health.now.p99_ms > 250.0);
        assert_eq!(g.size(), (3, 2));
        assert_eq!(g.names_within("db", 1), vec!["cart", "db"]);
        assert_eq!(g.names_within("db", 2), vec!["cart", "db", "frontend"]);
    }

    #[test]
    fn a_flood_of_service_names_is_capped_evicting_the_least_recently_seen() {
        let config = GraphConfig { max_services: 10, ..GraphConfig::default() };
        let mut g = ServiceGraph::new(config.clone());
        for i in 0..50u64 {
            // gateway is seen all along; every other service once.
            for o in call("gateway", &format!("svc-{i:02}"), i * S, 5, false) {
                g.observe(&o);
                assert!(g.size().0 <= 10, "at most max_services: {}", g.size().0);
            }
        }
        assert!(g.evicted() >= 40, "{}", g.evicted());
        assert!(g.node_index(&id("gateway")).is_some(), "the recently seen hub stays");
        assert!(g.node_index(&id("svc-49")).is_some() && g.node_index(&id("svc-00")).is_none());
        let (nodes, edges) = g.size();
        assert_eq!(edges, nodes - 1, "no edge left dangling: every remaining callee has its edge");
        let mut restored = ServiceGraph::new(config);
        restored.restore(g.snapshot());
        assert_eq!(restored.evicted(), g.evicted());
    }

    #[test]
    fn edges_expire_when_unseen() {
        let mut g = ServiceGraph::new(GraphConfig { edge_ttl_ms: 60_000, ..GraphConfig::default() });
        drive(&mut g, &traffic(0, 10, u64::MAX));
        assert_eq!(g.size(), (3, 2));
        let mut out = Vec::new();
        g.on_watermark(&(), 200 * S, &mut out);
        assert_eq!(g.size(), (0, 0));
        assert!(g.node_index(&id("cart")).is_none());
        // A returning service gets a fresh node and the index stays consistent.
        drive(&mut g, &call("frontend", "cart", 201 * S, 5, false));
        assert_eq!(g.size(), (2, 1));
        let cart = g.node_index(&id("cart")).unwrap();
        assert_eq!(&*g.graph()[cart].id.name, "cart");
    }

    #[test]
    fn snapshot_restore_round_trip_and_determinism() {
        let obs = traffic(0, 300, 200);
        let (head, tail) = obs.split_at(obs.len() / 3);
        let mut whole = ServiceGraph::default();
        let expected = drive(&mut whole, &obs);

        let mut first = ServiceGraph::default();
        let mut got = drive(&mut first, head);
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let mut second = ServiceGraph::default();
        second.restore(serde_json::from_str(&json).unwrap());
        got.extend(drive(&mut second, tail));
        assert_eq!(got, expected);
        assert_eq!(
            serde_json::to_string(&second.snapshot()).unwrap(),
            serde_json::to_string(&whole.snapshot()).unwrap()
        );
        let mut again = ServiceGraph::default();
        assert_eq!(drive(&mut again, &obs), expected, "same input, same output");
    }

    /// What happens from minute five of a ten-minute run in which web serves 10 req/s,
    /// calling api every time and auth every other time, and api calls store.
    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        /// api's wire slows by 50 ms both ways.
        SlowWire,
        /// api's wire loses packets: one call in five waits 200 ms for a retransmission,
        /// the rest are as fast as before (the median gap does not move).
        LostPackets,
        /// As `LostPackets`, one call in twenty: the p90 gap does not move either.
        FewLostPackets,
        /// As `LostPackets`, and api also calls audit and ledger, once in a hundred
        /// requests each: their six calls a minute happen to miss the lost packets.
        LostPacketsRarelyCalling,
        /// As `LostPackets`, and a batch job calls api once in a hundred requests: its six
        /// calls a minute happen to miss the lost packets.
        LostPacketsRarelyCalled,
        /// As `LostPackets`, and api also queries a database and a cache (virtual nodes)
        /// for every request, and those answers happen not to slow down.
        LostPacketsBesideQueries,
        /// web calls auth for every request and fails on two in five of its answers
        /// (wrong ones), making no further call.
        WrongAnswers,
        /// As `WrongAnswers`, but web calls auth only from the fault on (a new
        /// dependency): no baseline to compare its callers' failures with.
        FreshWrongAnswers,
        /// web throws on two in five of its requests: before its calls, between them or
        /// after them, in turn.
        Throws,
        /// api is gone.
        Down,
    }

    fn run(fault: Fault) -> ServiceGraph {
        let mut g = ServiceGraph::default();
        let mut out = Vec::new();
        for i in 0..6_000u64 {
            let t = i * S / 10;
            let on = t >= 300 * S;
            let wrong = matches!(fault, Fault::WrongAnswers | Fault::FreshWrongAnswers);
            let failing = on && (wrong || fault == Fault::Throws) && i % 5 < 2;
            let calls_auth = match fault {
                Fault::FreshWrongAnswers => on,
                Fault::WrongAnswers | Fault::Throws => true,
                _ => i % 2 == 0,
            };
            // How many of web's two call slots (auth, api) it reaches.
            let reached = match fault {
                _ if wrong && failing => 1,
                Fault::Throws if failing => (i / 5) % 3,
                _ => 2,
            };
            let last_call = ["", "auth", "api"][reached as usize];
            let gap = |slow: bool| match (slow, fault) {
                (
                    true,
                    Fault::LostPackets
                    | Fault::LostPacketsRarelyCalling
                    | Fault::LostPacketsRarelyCalled
                    | Fault::LostPacketsBesideQueries,
                ) if i % 5 == 0 => 200_000_000,
                (true, Fault::FewLostPackets) if i % 20 == 0 => 200_000_000,
                (true, Fault::SlowWire) => 50_000_000,
                _ => 1_000_000,
            };
            let mut obs = vec![Observation::Request {
                service: id("web"),
                time_ns: t,
                latency_ns: 30_000_000,
                failed: failing,
                release: None,
            }];
            let down = on && fault == Fault::Down;
            let slow = on
                && matches!(
                    fault,
                    Fault::SlowWire
                        | Fault::LostPackets
                        | Fault::FewLostPackets
                        | Fault::LostPacketsRarelyCalling
                        | Fault::LostPacketsRarelyCalled
                        | Fault::LostPacketsBesideQueries
                );
            let rarely = fault == Fault::LostPacketsRarelyCalling;
            let rarely_called = fault == Fault::LostPacketsRarelyCalled;
            let mut callees = vec![
                ("web", "auth", calls_auth && reached >= 1, false),
                ("web", "api", !down && reached >= 2, slow),
                ("api", "store", !down, slow),
                ("api", "search", !down, slow),
                ("api", "audit", rarely && i % 100 == 0, false),
                ("api", "ledger", rarely && i % 100 == 50, false),
                ("batch", "api", rarely_called && i % 100 == 25, false),
            ];
            callees.retain(|c| c.2);
            for (caller, callee, _, slow) in callees {
                obs.extend(call(caller, callee, t, 5, false));
                obs.push(Observation::Gap {
                    caller: id(caller),
                    callee: id(callee),
                    time_ns: t,
                    gap_ns: gap(slow),
                    failed_after: failing && caller == "web" && callee == last_call,
                });
            }
            if fault == Fault::LostPacketsBesideQueries {
                // As pairing and self time see a call no span answered: all of it is wait.
                for peer in [ServiceId::virtual_node("db"), ServiceId::virtual_node("cache")] {
                    let latency_ns = 5_000_000;
                    obs.push(Observation::Request {
                        service: peer.clone(),
                        time_ns: t,
                        latency_ns,
                        failed: false,
                        release: None,
                    });
                    obs.push(Observation::Call {
                        caller: id("api"),
                        callee: peer.clone(),
                        time_ns: t,
                        latency_ns,
                        server_ns: latency_ns,
                        failed: false,
                        asynchronous: false,
                    });
                    obs.push(Observation::Gap {
                        caller: id("api"),
                        callee: peer,
                        time_ns: t,
                        gap_ns: latency_ns,
                        failed_after: false,
                    });
                }
            }
            for o in &obs {
                g.observe(o);
            }
            g.on_watermark(&(), t, &mut out);
        }
        g
    }

    fn state(g: &ServiceGraph, name: &str) -> HealthState {
        g.graph()[g.node_index(&id(name)).unwrap()].health.state
    }

    #[test]
    fn a_slow_wire_makes_its_service_amber_not_its_callers() {
        for fault in [Fault::SlowWire, Fault::LostPackets] {
            let g = run(fault);
            assert_eq!(state(&g, "api"), HealthState::Amber, "its incoming and outgoing gaps rose");
            assert_eq!(
                state(&g, "web"),
                HealthState::Gray,
                "one slow edge of two, its own edges in are fine"
            );
            assert_eq!(state(&g, "auth"), HealthState::Gray);
            for callee in ["store", "search"] {
                assert_eq!(
                    state(&g, callee),
                    HealthState::Gray,
                    "every call api makes is slow: api's wire, not {callee}'s"
                );
            }
        }
    }

    #[test]
    fn a_service_slowed_on_a_third_of_its_requests_is_amber_from_its_slowest_tenth() {
        // 10 req/s with 5 ms of own work; from minute five, every third request takes
        // 40 ms (a process hogging a core): the median self time stays at 5 ms.
        let mut g = ServiceGraph::default();
        let mut out = Vec::new();
        for i in 0..6_000u64 {
            let t = i * S / 10;
            let hogged = t >= 300 * S && i % 3 == 0;
            let self_ns = if hogged { 40_000_000 } else { 5_000_000 };
            let obs = [
                Observation::Request {
                    service: id("api"),
                    time_ns: t,
                    latency_ns: 30_000_000,
                    failed: false,
                    release: None,
                },
                Observation::SelfTime { service: id("api"), time_ns: t, self_ns },
            ];
            for o in &obs {
                g.observe(o);
            }
            g.on_watermark(&(), t, &mut out);
        }
        let api = &g.graph()[g.node_index(&id("api")).unwrap()].health;
        assert!((api.own_now.p50_ms - 5.0).abs() < 0.5, "the median did not move: {:?}", api.own_now);
        assert_eq!(api.state, HealthState::Amber, "its slowest tenth is 8x slower: {:?}", api.own_now);
    }

    #[test]
    fn a_fast_service_hogged_at_a_request_every_two_seconds_is_amber_and_a_tail_half_again_slower_is_not() {
        // 0.5 req/s (30 in the short window) of about 1 ms own work; from minute five,
        // "api" takes 7 ms on every third request (a process hogging a core), "web" 1.8 ms
        // (a tail 1.7x as slow: noise at 30 requests). Both stay under every millisecond
        // floor but the self time's own.
        let mut g = ServiceGraph::default();
        let mut out = Vec::new();
        for i in 0..1_200u64 {
            let t = i * S;
            let (service, slow_ms) = if i % 2 == 0 { ("api", 7.0) } else { ("web", 1.8) };
            let jitter_ms = [0.9, 1.0, 1.1, 1.05][(i / 2 % 4) as usize];
            let slow = t >= 300 * S && i / 2 % 3 == 0;
            let self_ns = ((if slow { slow_ms } else { jitter_ms }) * 1e6) as u64;
            let obs = [
                Observation::Request {
                    service: id(service),
                    time_ns: t,
                    latency_ns: 30_000_000,
                    failed: false,
                    release: None,
                },
                Observation::SelfTime { service: id(service), time_ns: t, self_ns },
            ];
            for o in &obs {
                g.observe(o);
            }
            g.on_watermark(&(), t, &mut out);
        }
        let health = |name: &str| &g.graph()[g.node_index(&id(name)).unwrap()].health;
        let api = health("api");
        assert_eq!(
            api.state,
            HealthState::Amber,
            "p90 7 ms against 1.1 ms: {:?} {:?}",
            api.own_now,
            api.own_baseline
        );
        let web = health("web");
        assert_eq!(
            web.state,
            HealthState::Gray,
            "p90 1.8 ms against 1.1 ms: {:?} {:?}",
            web.own_now,
            web.own_baseline
        );
    }

    /// The health of the edge `caller → callee`.
    fn wire_health<'g>(g: &'g ServiceGraph, caller: &str, callee: &str) -> &'g Health {
        let (a, b) = (g.node_index(&id(caller)).unwrap(), g.node_index(&id(callee)).unwrap());
        &g.graph()[g.graph().find_edge(a, b).unwrap()].health
    }

    #[test]
    fn calls_too_few_to_show_lost_packets_do_not_clear_a_slow_wire() {
        let g = run(Fault::LostPacketsRarelyCalling);
        let calls = wire_health(&g, "api", "audit").own_now.requests;
        assert!((5..20).contains(&calls), "measured ({calls} calls), but its p90 is its slowest call or two");
        assert_eq!(
            state(&g, "api"),
            HealthState::Amber,
            "two of its four outgoing edges are quiet, and rare"
        );
    }

    #[test]
    fn a_wire_losing_few_packets_is_slow_by_its_tail() {
        let g = run(Fault::FewLostPackets);
        let wire = wire_health(&g, "web", "api");
        assert!(wire.own_now.p90_ms < 5.0, "one call in twenty: the p90 holds ({:?})", wire.own_now);
        assert!(wire.own_risen, "a twentieth of the calls 200 ms slower: {:?}", wire.own_now);
        assert_eq!(state(&g, "api"), HealthState::Amber, "every wire into it and out of it");
        assert_eq!(state(&g, "web"), HealthState::Gray, "one slow edge of its two");
    }

    #[test]
    fn callers_too_rare_to_show_lost_packets_do_not_clear_a_slow_wire() {
        let g = run(Fault::LostPacketsRarelyCalled);
        let calls = wire_health(&g, "batch", "api").own_now.requests;
        assert!((5..20).contains(&calls), "measured ({calls} calls), but its p90 is its slowest call or two");
        assert_eq!(state(&g, "api"), HealthState::Amber, "web's calls into it and its own calls wait");
        assert_eq!(state(&g, "batch"), HealthState::Unknown, "its one wire did not slow down");
    }

    #[test]
    fn queries_that_did_not_slow_down_do_not_clear_a_slow_wire() {
        let g = run(Fault::LostPacketsBesideQueries);
        assert_eq!(
            state(&g, "api"),
            HealthState::Amber,
            "both its instrumented callees' gaps rose; a query's time is the database's work as much as the wire"
        );
    }

    #[test]
    fn a_service_whose_callers_fail_when_they_call_it_is_amber() {
        let g = run(Fault::WrongAnswers);
        assert_eq!(state(&g, "web"), HealthState::Red, "two in five of its requests fail");
        assert_eq!(
            state(&g, "auth"),
            HealthState::Amber,
            "its own spans are clean, and web calls it for every request; but web fails on its answers"
        );
        assert_eq!(state(&g, "api"), HealthState::Gray, "web fails before it calls api");
    }

    #[test]
    fn a_new_dependency_whose_callers_fail_on_its_answers_is_amber_without_a_baseline() {
        // As a node's errors count from its first request, so do its callers' failures.
        let g = run(Fault::FreshWrongAnswers);
        assert_eq!(state(&g, "web"), HealthState::Red);
        assert_eq!(state(&g, "auth"), HealthState::Amber, "web fails right after two in five of its calls");
    }

    #[test]
    fn a_service_failing_on_its_own_blames_none_of_its_callees() {
        let g = run(Fault::Throws);
        assert_eq!(state(&g, "web"), HealthState::Red, "two in five of its requests fail");
        for callee in ["auth", "api"] {
            assert_eq!(
                state(&g, callee),
                HealthState::Gray,
                "web's failures follow {callee} a third of the time"
            );
        }
    }

    #[test]
    fn a_service_that_stops_serving_is_red() {
        let g = run(Fault::Down);
        assert_eq!(state(&g, "api"), HealthState::Red, "600 requests a minute expected, none came");
        assert_eq!(state(&g, "auth"), HealthState::Gray);
    }
}
