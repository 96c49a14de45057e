//! Service catalogs: the newest snapshot of each source, merged into one
//! [`CatalogModel`], and the model resolved against the traced service names
//! ([`Resolved`]): declared edges in traced names, and what each catalog says of a
//! service. The service graph lays the declared edges; the blast radius reads them.
//!
//! Name mapping, per catalog service: the `devloom.dev/service-name` annotation, else a
//! Devloom catalog's `names` entry (by entity reference or name), else the catalog name
//! when a traced service has it, else the first `rules` rewrite a traced service has,
//! else the catalog name (and `devloom catalog check` lists it as unmatched).

use std::collections::{BTreeMap, BTreeSet};

use devloom_schemas::catalog::{CatalogDependency, CatalogFormat, CatalogService, NameRule};
use devloom_schemas::catalog::{DriftEdge, UnmatchedEntity};
use devloom_schemas::impact::NodeCatalog;
use devloom_schemas::{CatalogReport, CatalogSnapshot, Criticality, TimestampNs};
use serde::{Deserialize, Serialize};

use crate::operator::Operator;

/// Every source's services and dependencies, in the order they apply: PagerDuty, then
/// Backstage, then Devloom catalogs (which carry what the others lack, so they have the
/// last word), by source name within a format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogModel {
    /// Each service with the source that lists it.
    pub services: Vec<(String, CatalogService)>,
    /// Declared dependencies.
    pub dependencies: Vec<CatalogDependency>,
    /// Explicit name mappings.
    pub names: BTreeMap<String, String>,
    /// Rewrite rules.
    pub rules: Vec<NameRule>,
}

/// A catalog service and the traced name it was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// The source listing it.
    pub source: String,
    /// Its catalog identity.
    pub entity: String,
    /// Its kind, when the catalog says.
    pub kind: Option<String>,
    /// The traced name.
    pub service: String,
    /// Whether a traced service has that name.
    pub traced: bool,
}

/// The model in traced names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// Declared edges, caller → callee → declared criticality.
    pub edges: BTreeMap<String, BTreeMap<String, Option<Criticality>>>,
    /// What the catalogs say of each traced name.
    pub services: BTreeMap<String, NodeCatalog>,
    /// Every catalog service and its traced name, in model order.
    pub matches: Vec<Match>,
    /// Catalog names and entity references that are not themselves traced → the traced
    /// name they resolve to: what alerts and changes named in catalog terms (a PagerDuty
    /// service, an Argo CD application) are read as.
    pub aliases: BTreeMap<String, String>,
}

impl CatalogModel {
    /// The merged model of `snapshots`.
    pub fn merge<'a>(snapshots: impl IntoIterator<Item = &'a CatalogSnapshot>) -> Self {
        let mut ordered: Vec<&CatalogSnapshot> = snapshots.into_iter().collect();
        let rank = |f: CatalogFormat| match f {
            CatalogFormat::Pagerduty => 0,
            CatalogFormat::Backstage => 1,
            CatalogFormat::Devloom => 2,
        };
        ordered.sort_by(|a, b| (rank(a.format), &a.source).cmp(&(rank(b.format), &b.source)));
        let mut model = Self::default();
        for s in ordered {
            let c = &s.catalog;
            model.services.extend(c.services.iter().map(|svc| (s.source.clone(), svc.clone())));
            model.dependencies.extend(c.dependencies.iter().cloned());
            model.names.extend(c.names.clone());
            model.rules.extend(c.rules.iter().cloned());
        }
        model
    }

    /// Nothing declared.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.dependencies.is_empty()
    }

    /// The traced name of the service `key` named `name` (and `explicit`ly mapped, if
    /// so), given which names are traced. With no traced match, the first rule that
    /// applies still names it, so two catalogs' spellings of one untraced service meet.
    fn name_of(
        &self,
        key: &str,
        name: &str,
        explicit: Option<&String>,
        traced: &dyn Fn(&str) -> bool,
    ) -> String {
        if let Some(explicit) = explicit {
            return explicit.clone();
        }
        if let Some(mapped) = self.names.get(key).or_else(|| self.names.get(name)) {
            return mapped.clone();
        }
        if traced(name) {
            return name.to_string();
        }
        let mut rewrites = self.rules.iter().filter_map(|r| r.apply(name));
        let first = rewrites.next();
        first
            .iter()
            .cloned()
            .chain(rewrites)
            .find(|n| traced(n))
            .or(first)
            .unwrap_or_else(|| name.to_string())
    }

    /// The model in traced names, `traced` saying which names traces carry.
    pub fn resolve(&self, traced: &dyn Fn(&str) -> bool) -> Resolved {
        let mut out = Resolved::default();
        // Dependencies name a service by its entity or its catalog name.
        let mut by_key: BTreeMap<&str, String> = BTreeMap::new();
        for (source, s) in &self.services {
            let name = self.name_of(s.key(), &s.name, s.service_name.as_ref(), traced);
            by_key.entry(s.key()).or_insert_with(|| name.clone());
            by_key.entry(&s.name).or_insert_with(|| name.clone());
            for alias in [s.key(), s.name.as_str()] {
                if alias != name && !traced(alias) {
                    out.aliases.entry(alias.to_string()).or_insert_with(|| name.clone());
                }
            }
            out.matches.push(Match {
                source: source.clone(),
                entity: s.key().to_string(),
                kind: s.kind.clone(),
                service: name.clone(),
                traced: traced(&name),
            });
            let info = out.services.entry(name).or_default();
            info.entities.push(s.key().to_string());
            fill(&mut info.owner, &s.owner);
            fill(&mut info.system, &s.system);
            fill(&mut info.lifecycle, &s.lifecycle);
            fill(&mut info.escalation_policy, &s.escalation_policy);
            fill(&mut info.pagerduty_service_id, &s.pagerduty_service_id);
            for t in &s.teams {
                if !info.teams.contains(t) {
                    info.teams.push(t.clone());
                }
            }
        }
        // A reference to a service no catalog lists (a Backstage entity defined in a file
        // not imported) is named by the name part of the reference.
        let lookup = |key: &str| -> String {
            by_key.get(key).cloned().unwrap_or_else(|| {
                let name =
                    key.split_once(':').map_or(key, |(_, rest)| rest.rsplit('/').next().unwrap_or(rest));
                self.name_of(key, name, None, traced)
            })
        };
        for d in &self.dependencies {
            let (caller, callee) = (lookup(&d.caller), lookup(&d.callee));
            if caller == callee {
                continue;
            }
            let slot = out.edges.entry(caller).or_default().entry(callee).or_insert(None);
            if d.criticality.is_some() {
                *slot = d.criticality;
            }
        }
        out
    }
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

/// The most catalog sources in force at once: a stream of messages with ever new keys
/// must not grow memory without bound. A snapshot from a further source is counted and
/// ignored.
pub const MAX_SOURCES: usize = 64;

/// Serializable state of a [`CatalogTracker`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogTrackerSnapshot {
    snapshots: BTreeMap<String, CatalogSnapshot>,
    #[serde(default)]
    stale: u64,
}

/// Keeps the newest snapshot per source. Emits the merged model whenever it changes.
#[derive(Debug, Default)]
pub struct CatalogTracker {
    snapshots: BTreeMap<String, CatalogSnapshot>,
    stale: u64,
}

impl CatalogTracker {
    /// The sources in force and their snapshot times.
    pub fn sources(&self) -> Vec<(String, TimestampNs)> {
        self.snapshots.values().map(|s| (s.source.clone(), s.time_ns)).collect()
    }

    /// Snapshots ignored: older than the one in force for their source, or from a source
    /// beyond [`MAX_SOURCES`].
    pub fn stale(&self) -> u64 {
        self.stale
    }

    /// The merged model of the snapshots in force.
    pub fn model(&self) -> CatalogModel {
        CatalogModel::merge(self.snapshots.values())
    }
}

impl Operator for CatalogTracker {
    type In = CatalogSnapshot;
    type Out = CatalogModel;
    type Ctx = ();
    type Snapshot = CatalogTrackerSnapshot;

    /// A snapshot replaces its source's unless it is older (a periodic export re-read
    /// out of order) or its source is one too many; equal content changes nothing.
    fn on_event(&mut self, _: &(), snapshot: &CatalogSnapshot, out: &mut Vec<CatalogModel>) {
        if let Some(current) = self.snapshots.get(&snapshot.source) {
            if snapshot.time_ns < current.time_ns {
                self.stale += 1;
                return;
            }
            if current.catalog == snapshot.catalog && current.format == snapshot.format {
                self.snapshots.insert(snapshot.source.clone(), snapshot.clone());
                return;
            }
        } else if self.snapshots.len() >= MAX_SOURCES {
            self.stale += 1;
            return;
        }
        self.snapshots.insert(snapshot.source.clone(), snapshot.clone());
        out.push(self.model());
    }

    fn on_watermark(&mut self, _: &(), _: TimestampNs, _: &mut Vec<CatalogModel>) {}

    fn snapshot(&self) -> CatalogTrackerSnapshot {
        CatalogTrackerSnapshot { snapshots: self.snapshots.clone(), stale: self.stale }
    }

    fn restore(&mut self, s: CatalogTrackerSnapshot) {
        self.snapshots = s.snapshots;
        self.stale = s.stale;
    }
}

/// The traced names no catalog service resolved to, sorted.
fn untracked<'a>(traced: impl IntoIterator<Item = &'a str>, resolved: &Resolved) -> Vec<String> {
    let listed: BTreeSet<&str> = resolved.services.keys().map(String::as_str).collect();
    let mut out: Vec<String> = traced.into_iter().filter(|n| !listed.contains(n)).map(String::from).collect();
    out.sort();
    out.dedup();
    out
}

/// The catalog held against the graph: what matched, what did not, and drift both
/// ways over the baseline window (edges aggregated over regions).
pub fn report(
    graph: &crate::service_graph::ServiceGraph,
    sources: &[(String, TimestampNs)],
    watermark_ns: TimestampNs,
) -> CatalogReport {
    use devloom_schemas::time::format_rfc3339;
    let g = graph.graph();
    let resolved = graph.catalog();
    let traced = g.node_weights().filter(|n| n.observed && !n.id.virtual_node).map(|n| &*n.id.name);
    // Per caller and callee name: declared anywhere, and the traffic summed over regions.
    let mut edges: BTreeMap<(String, String), (bool, DriftEdge)> = BTreeMap::new();
    for e in g.edge_indices() {
        let Some((a, b)) = g.edge_endpoints(e) else { continue };
        let edge = &g[e];
        let (caller, callee) = (g[a].id.name.to_string(), g[b].id.name.to_string());
        let blank = DriftEdge {
            caller: caller.clone(),
            callee: callee.clone(),
            criticality: None,
            calls: 0,
            calls_per_s: 0.0,
        };
        let (declared, d) = edges.entry((caller, callee)).or_insert((false, blank));
        *declared |= edge.declared;
        d.criticality = d.criticality.or(edge.declared_criticality);
        d.calls += edge.health.baseline.requests;
        d.calls_per_s += edge.health.baseline.per_second;
    }
    let drift = |want_declared: bool| -> Vec<DriftEdge> {
        edges
            .values()
            .filter(|(declared, d)| *declared == want_declared && (d.calls == 0) == want_declared)
            .map(|(_, d)| d.clone())
            .collect()
    };
    CatalogReport {
        as_of: (watermark_ns > 0).then(|| format_rfc3339(watermark_ns)),
        sources: sources.iter().map(|(s, t)| (s.clone(), format_rfc3339(*t))).collect(),
        matched: resolved
            .matches
            .iter()
            .filter(|m| m.traced)
            .map(|m| (m.entity.clone(), m.service.clone()))
            .collect(),
        unmatched_entities: resolved
            .matches
            .iter()
            .filter(|m| !m.traced)
            .map(|m| UnmatchedEntity {
                source: m.source.clone(),
                entity: m.entity.clone(),
                kind: m.kind.clone(),
                looked_for: m.service.clone(),
            })
            .collect(),
        untracked_services: untracked(traced, resolved),
        declared_not_observed: drift(true),
        observed_not_declared: drift(false),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use devloom_schemas::Catalog;

    use super::*;
    use crate::service_graph::ServiceGraph;
    use crate::service_id::ServiceId;
    use crate::span_pairing::Observation;

    fn service(name: &str, entity: Option<&str>) -> CatalogService {
        CatalogService { name: name.into(), entity: entity.map(String::from), ..CatalogService::default() }
    }

    fn dep(caller: &str, callee: &str, criticality: Option<Criticality>) -> CatalogDependency {
        CatalogDependency { caller: caller.into(), callee: callee.into(), criticality, via: None }
    }

    fn snapshot(source: &str, format: CatalogFormat, time_ns: u64, catalog: Catalog) -> CatalogSnapshot {
        CatalogSnapshot { source: source.into(), format, time_ns, catalog }
    }

    #[test]
    fn names_resolve_by_annotation_mapping_exact_name_then_rule() {
        let mut annotated = service("orders-db", Some("resource:default/orders-db"));
        annotated.service_name = Some("postgres".into());
        let catalog = Catalog {
            services: vec![
                annotated,
                service("Checkout Service", Some("pagerduty:P1")),
                service("cart-service", Some("component:default/cart-service")),
                service("payments-service", None),
                service("ledger-service", None),
                service("Online Shop", Some("pagerduty:P9")),
            ],
            names: [("pagerduty:P9".to_string(), "gateway".to_string())].into(),
            rules: vec![
                NameRule { strip_suffix: Some("-service".into()), ..NameRule::default() },
                NameRule { strip_suffix: Some(" Service".into()), lowercase: true, ..NameRule::default() },
            ],
            ..Catalog::default()
        };
        let model = CatalogModel::merge([&snapshot("s", CatalogFormat::Devloom, 1, catalog)]);
        let traced = ["postgres", "checkout", "cart-service", "payments", "gateway"];
        let resolved = model.resolve(&|n| traced.contains(&n));
        let got: Vec<(&str, &str, bool)> =
            resolved.matches.iter().map(|m| (m.entity.as_str(), m.service.as_str(), m.traced)).collect();
        assert_eq!(
            got,
            [
                ("resource:default/orders-db", "postgres", true),
                ("pagerduty:P1", "checkout", true),
                ("component:default/cart-service", "cart-service", true),
                ("payments-service", "payments", true),
                ("ledger-service", "ledger", false),
                ("pagerduty:P9", "gateway", true),
            ],
            "annotation; second rule; exact name before any rule; first rule; untraced: first rule that applies; names"
        );
        assert_eq!(resolved.aliases.get("Checkout Service").map(String::as_str), Some("checkout"));
        assert_eq!(resolved.aliases.get("Online Shop").map(String::as_str), Some("gateway"));
        assert!(!resolved.aliases.contains_key("cart-service"), "a traced name is never an alias");
    }

    #[test]
    fn later_formats_have_the_last_word_and_older_snapshots_are_ignored() {
        let pd = Catalog {
            dependencies: vec![dep("frontend", "recommendations", Some(Criticality::Critical))],
            ..Catalog::default()
        };
        let devloom = Catalog {
            dependencies: vec![
                dep("frontend", "recommendations", Some(Criticality::Optional)),
                dep("a", "b", None),
            ],
            ..Catalog::default()
        };
        let mut tracker = CatalogTracker::default();
        let mut out = Vec::new();
        // The Devloom catalog arrives first, yet applies after PagerDuty's.
        tracker.on_event(&(), &snapshot("mine", CatalogFormat::Devloom, 10, devloom), &mut out);
        tracker.on_event(&(), &snapshot("pagerduty", CatalogFormat::Pagerduty, 10, pd.clone()), &mut out);
        assert_eq!(out.len(), 2);
        let edges = out[1].resolve(&|_| true).edges;
        assert_eq!(edges["frontend"]["recommendations"], Some(Criticality::Optional));
        assert_eq!(edges["a"]["b"], None, "declared without a criticality");
        tracker.on_event(
            &(),
            &snapshot("pagerduty", CatalogFormat::Pagerduty, 5, Catalog::default()),
            &mut out,
        );
        assert_eq!((out.len(), tracker.stale()), (2, 1), "an older snapshot of a source changes nothing");
        tracker.on_event(&(), &snapshot("pagerduty", CatalogFormat::Pagerduty, 11, pd), &mut out);
        assert_eq!(out.len(), 2, "the same catalog again: no new model");
        assert_eq!(tracker.sources(), [("mine".to_string(), 10), ("pagerduty".to_string(), 11)]);
        for i in 0..MAX_SOURCES {
            tracker.on_event(
                &(),
                &snapshot(&format!("k{i}"), CatalogFormat::Devloom, 1, Catalog::default()),
                &mut out,
            );
        }
        assert_eq!(
            (tracker.sources().len(), tracker.stale()),
            (MAX_SOURCES, 3),
            "ever new keys stay bounded"
        );
    }

    fn call(g: &mut ServiceGraph, caller: &str, callee: &str, time_ns: u64) {
        let id = |n: &str| ServiceId::service(Arc::from(n), None);
        let obs = Observation::Call {
            caller: id(caller),
            callee: id(callee),
            time_ns,
            latency_ns: 1_000_000,
            server_ns: 1_000_000,
            failed: false,
            asynchronous: false,
        };
        g.observe(&obs);
    }

    fn edges(g: &ServiceGraph) -> Vec<(String, String, bool, u64)> {
        let gr = g.graph();
        let mut out: Vec<_> = gr
            .edge_indices()
            .map(|e| {
                let (a, b) = gr.edge_endpoints(e).unwrap();
                (gr[a].id.name.to_string(), gr[b].id.name.to_string(), gr[e].declared, gr[e].totals.calls)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn declared_edges_are_laid_kept_past_the_ttl_and_relaid_when_names_appear() {
        const S: u64 = 1_000_000_000;
        let mut g = ServiceGraph::default();
        call(&mut g, "frontend", "checkout", S);
        let catalog = Catalog {
            services: vec![service("checkout", None), service("payments-svc", None)],
            dependencies: vec![dep("checkout", "payments-svc", None), dep("frontend", "checkout", None)],
            rules: vec![NameRule { strip_suffix: Some("-svc".into()), ..NameRule::default() }],
            ..Catalog::default()
        };
        g.declare(CatalogModel::merge([&snapshot("d", CatalogFormat::Devloom, 1, catalog)]));
        assert_eq!(
            edges(&g),
            [
                ("checkout".into(), "payments".into(), true, 0),
                ("frontend".into(), "checkout".into(), true, 1),
            ],
            "untraced payments-svc is named by its rule; the observed edge is marked declared"
        );
        let ttl = g.config().edge_ttl_ms * 1_000_000;
        g.on_watermark(&(), 2 * ttl, &mut Vec::new());
        assert_eq!(edges(&g).len(), 2, "declared edges do not expire");
        // A traced name appears: the catalog name now matches exactly, and is re-laid.
        call(&mut g, "checkout", "payments-svc", 2 * ttl + S);
        g.on_watermark(&(), 2 * ttl + 10 * S, &mut Vec::new());
        let got = edges(&g);
        assert!(got.contains(&("checkout".into(), "payments-svc".into(), true, 1)), "{got:?}");
        assert!(!got.iter().any(|e| e.1 == "payments"), "the declared-only node went with its edge: {got:?}");
    }
}
