//! Simulated service topologies: a default ~20-service shop, or a generated layered
//! graph of any size.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a node of the topology is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Entry point; requests arrive here.
    Gateway,
    /// An instrumented service.
    Service,
    /// An instrumented service fed from a queue (consumer spans linked to producers).
    Consumer,
    /// An uninstrumented database; callers' client spans carry `db.system.name`.
    Database,
    /// An uninstrumented cache (also a `db.system.name`, e.g. redis).
    Cache,
    /// A message queue / topic; its dependencies are its consumers.
    Queue,
    /// An uninstrumented third-party API, named by `service.peer.name`.
    External,
}

/// One call a service may make per request.
#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    /// Index of the callee in [`Topology::nodes`].
    pub callee: usize,
    /// Chance the call happens in a request.
    pub probability: f64,
    /// Whether a failed call fails the caller (otherwise it degrades gracefully).
    pub critical: bool,
}

/// One node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name (`service.name`, or the peer / database / topic name).
    pub name: String,
    /// What it is.
    pub role: Role,
    /// Own median processing time, milliseconds.
    pub latency_ms: f64,
    /// Own failure probability per request.
    pub error_rate: f64,
    /// Calls it makes (for a queue: its consumers).
    pub calls: Vec<Dependency>,
    /// `db.system.name` for databases and caches.
    pub db_system: Option<&'static str>,
}

/// A topology: nodes, with the gateway first.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// All nodes.
    pub nodes: Vec<Node>,
}

impl Topology {
    /// Index of the node named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Names of the instrumented services.
    pub fn service_names(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.role, Role::Gateway | Role::Service | Role::Consumer))
            .map(|n| n.name.as_str())
            .collect()
    }

    /// The default shop: an edge gateway, 17 services, postgres, redis, an Elasticsearch
    /// index, an `orders` topic with two async consumers, and an email API.
    pub fn shop() -> Self {
        use Role::*;
        let spec: &[(&str, Role, f64, f64, Option<&'static str>)] = &[
            ("gateway", Gateway, 2.0, 0.0005, None),
            ("frontend", Service, 8.0, 0.001, None),
            ("auth", Service, 3.0, 0.001, None),
            ("catalog", Service, 6.0, 0.001, None),
            ("search", Service, 12.0, 0.002, None),
            ("recommendations", Service, 15.0, 0.002, None),
            ("cart", Service, 4.0, 0.001, None),
            ("checkout", Service, 10.0, 0.002, None),
            ("payments", Service, 20.0, 0.002, None),
            ("fraud", Service, 8.0, 0.001, None),
            ("inventory", Service, 5.0, 0.001, None),
            ("shipping", Service, 7.0, 0.001, None),
            ("pricing", Service, 3.0, 0.001, None),
            ("fulfillment", Consumer, 25.0, 0.002, None),
            ("notifications", Consumer, 5.0, 0.001, None),
            ("reviews", Service, 6.0, 0.001, None),
            ("ads", Service, 4.0, 0.003, None),
            ("currency", Service, 1.0, 0.0005, None),
            ("postgres", Database, 3.0, 0.0002, Some("postgresql")),
            ("redis", Cache, 0.5, 0.0001, Some("redis")),
            ("search-index", Database, 8.0, 0.0005, Some("elasticsearch")),
            ("orders", Queue, 200.0, 0.0, None),
            ("email-api", External, 60.0, 0.002, None),
        ];
        let calls: &[(&str, &str, f64, bool)] = &[
            ("gateway", "auth", 1.0, true),
            ("gateway", "frontend", 1.0, true),
            ("frontend", "currency", 0.5, true),
            ("frontend", "catalog", 0.6, true),
            ("frontend", "search", 0.2, true),
            ("frontend", "recommendations", 0.3, false),
            ("frontend", "cart", 0.3, true),
            ("frontend", "checkout", 0.15, true),
            ("frontend", "ads", 0.5, false),
            ("frontend", "reviews", 0.2, false),
            ("auth", "redis", 1.0, true),
            ("catalog", "redis", 0.8, false),
            ("catalog", "postgres", 0.7, true),
            ("search", "search-index", 1.0, true),
            ("recommendations", "catalog", 0.5, true),
            ("cart", "redis", 1.0, true),
            ("checkout", "cart", 1.0, true),
            ("checkout", "currency", 0.5, true),
            ("checkout", "inventory", 1.0, true),
            ("checkout", "payments", 1.0, true),
            ("checkout", "shipping", 0.8, true),
            ("checkout", "orders", 1.0, false),
            ("payments", "fraud", 0.8, true),
            ("payments", "postgres", 1.0, true),
            ("fraud", "redis", 0.5, false),
            ("inventory", "postgres", 1.0, true),
            ("shipping", "pricing", 1.0, true),
            ("pricing", "postgres", 0.3, true),
            ("reviews", "postgres", 0.5, true),
            ("orders", "fulfillment", 1.0, false),
            ("orders", "notifications", 1.0, false),
            ("fulfillment", "inventory", 1.0, true),
            ("fulfillment", "postgres", 1.0, true),
            ("notifications", "email-api", 1.0, true),
        ];
        let mut t = Topology {
            nodes: spec
                .iter()
                .map(|&(name, role, latency_ms, error_rate, db_system)| Node {
                    name: name.to_string(),
                    role,
                    latency_ms,
                    error_rate,
                    calls: Vec::new(),
                    db_system,
                })
                .collect(),
        };
        for &(a, b, probability, critical) in calls {
            let (a, b) = (t.index(a).expect("declared"), t.index(b).expect("declared"));
            t.nodes[a].calls.push(Dependency { callee: b, probability, critical });
        }
        t
    }

    /// A generated layered topology of `services` instrumented services (one gateway,
    /// layers of services each calling 1–3 in deeper layers) over a few databases and
    /// caches. Deterministic for a seed.
    pub fn generated(services: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let services = services.max(2);
        let stores = (services / 50).max(2);
        let mut nodes: Vec<Node> = Vec::with_capacity(services + stores);
        nodes.push(Node {
            name: "gateway".into(),
            role: Role::Gateway,
            latency_ms: 2.0,
            error_rate: 0.0005,
            calls: vec![],
            db_system: None,
        });
        for i in 1..services {
            nodes.push(Node {
                name: format!("svc-{i:05}"),
                role: Role::Service,
                latency_ms: rng.random_range(1.0..15.0),
                error_rate: rng.random_range(0.0002..0.003),
                calls: vec![],
                db_system: None,
            });
        }
        for s in 0..stores {
            let cache = s % 2 == 1;
            nodes.push(Node {
                name: format!("{}-{s:03}", if cache { "cache" } else { "db" }),
                role: if cache { Role::Cache } else { Role::Database },
                latency_ms: if cache { 0.5 } else { 3.0 },
                error_rate: 0.0002,
                calls: vec![],
                db_system: Some(if cache { "redis" } else { "postgresql" }),
            });
        }
        // Each service calls 1–3 services with a higher index (a DAG), fanning out
        // rarely enough that a request touches a bounded number of spans.
        for (i, node) in nodes.iter_mut().enumerate().take(services) {
            let fan = rng.random_range(1..=3usize);
            for _ in 0..fan {
                let callee = if i + 1 < services && rng.random_bool(0.8) {
                    rng.random_range(i + 1..services.min(i + 1 + services / 4 + 1))
                } else {
                    services + rng.random_range(0..stores)
                };
                if node.calls.iter().all(|d| d.callee != callee) {
                    let probability = if i == 0 { 1.0 } else { rng.random_range(0.05..0.4) };
                    node.calls.push(Dependency { callee, probability, critical: rng.random_bool(0.7) });
                }
            }
        }
        Topology { nodes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_has_gateway_db_cache_and_queue_with_consumers() {
        let t = Topology::shop();
        assert_eq!(t.nodes[0].role, Role::Gateway);
        assert_eq!(t.service_names().len(), 18);
        let orders = &t.nodes[t.index("orders").unwrap()];
        assert_eq!(orders.role, Role::Queue);
        let consumers: Vec<&str> = orders.calls.iter().map(|d| t.nodes[d.callee].name.as_str()).collect();
        assert_eq!(consumers, vec!["fulfillment", "notifications"]);
    }

    #[test]
    fn generated_is_deterministic_and_sized() {
        let a = Topology::generated(2000, 7);
        assert_eq!(a, Topology::generated(2000, 7));
        assert_ne!(a, Topology::generated(2000, 8));
        assert_eq!(a.service_names().len(), 2000);
        assert!(a.nodes.iter().all(|n| n.calls.iter().all(|d| d.callee < a.nodes.len())));
    }
}
