//! The service graph as the metrics Grafana already draws one from: the names and labels
//! of the OpenTelemetry Collector's servicegraph connector (and Tempo's service graphs),
//! `traces_service_graph_request_total{client, server, connection_type}`,
//! `traces_service_graph_request_failed_total`, and the
//! `traces_service_graph_request_server_seconds` / `_client_seconds` histograms with the
//! connector's default buckets, plus Devloom's own health per service as
//! `devloom_service_health{service, state}` (1 for the current state, 0 for the others).
//!
//! These are cumulative counts the graph keeps per edge ([`EdgeTotals`]), copied by the
//! telemetry watcher and written straight into the Prometheus registry: the
//! OpenTelemetry API has no asynchronous histogram to report a histogram kept elsewhere.

use std::sync::{Arc, Mutex, PoisonError};

use devloom_operators::Engine;
use devloom_operators::service_graph::{EdgeTotals, LATENCY_BUCKETS_S, LatencyHistogram};
use devloom_schemas::HealthState;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use crate::http::picture::state_name;

/// One edge's counts.
#[derive(Clone, Debug)]
struct EdgeExport {
    client: String,
    server: String,
    connection_type: &'static str,
    totals: EdgeTotals,
}

/// What the watcher copied last.
#[derive(Clone, Debug, Default)]
pub struct GraphExport {
    edges: Vec<EdgeExport>,
    nodes: Vec<(String, HealthState)>,
}

impl GraphExport {
    /// The engine's graph now: at most `max_edges` edges (the busiest) and their services.
    pub fn of(engine: &Engine, max_edges: usize) -> Self {
        let g = engine.graph().graph();
        let mut edges: Vec<EdgeExport> = g
            .edge_indices()
            .filter_map(|e| {
                let (a, b) = g.edge_endpoints(e)?;
                let (client, server) = (&g[a].id, &g[b].id);
                let connection_type = if g[e].asynchronous {
                    "messaging_system"
                } else if server.virtual_node {
                    "virtual_node"
                } else {
                    ""
                };
                Some(EdgeExport {
                    client: client.name.to_string(),
                    server: server.name.to_string(),
                    connection_type,
                    totals: g[e].totals,
                })
            })
            .collect();
        if edges.len() > max_edges {
            edges.select_nth_unstable_by_key(max_edges, |e| std::cmp::Reverse(e.totals.calls));
            edges.truncate(max_edges);
        }
        edges.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
        let mut nodes: Vec<(String, HealthState)> =
            g.node_weights().map(|n| (n.id.name.to_string(), n.health.state)).collect();
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        nodes.dedup_by(|a, b| a.0 == b.0);
        Self { edges, nodes }
    }
}

/// Writes the last [`GraphExport`] into every scrape.
pub struct GraphCollector {
    export: Arc<Mutex<GraphExport>>,
    descs: Vec<Desc>,
}

const REQUESTS: &str = "traces_service_graph_request_total";
const FAILED: &str = "traces_service_graph_request_failed_total";
const SERVER: &str = "traces_service_graph_request_server_seconds";
const CLIENT: &str = "traces_service_graph_request_client_seconds";
const HEALTH: &str = "devloom_service_health";

impl GraphCollector {
    /// A collector over `export`.
    pub fn new(export: Arc<Mutex<GraphExport>>) -> prometheus::Result<Self> {
        let edge = || vec!["client".to_string(), "server".to_string(), "connection_type".to_string()];
        let descs = vec![
            Desc::new(REQUESTS.into(), "Requests between two services".into(), edge(), Default::default())?,
            Desc::new(
                FAILED.into(),
                "Failed requests between two services".into(),
                edge(),
                Default::default(),
            )?,
            Desc::new(
                SERVER.into(),
                "Request duration as seen by the server".into(),
                edge(),
                Default::default(),
            )?,
            Desc::new(
                CLIENT.into(),
                "Request duration as seen by the client".into(),
                edge(),
                Default::default(),
            )?,
            Desc::new(
                HEALTH.into(),
                "Devloom's health state of each service (1 for the current state)".into(),
                vec!["service".into(), "state".into()],
                Default::default(),
            )?,
        ];
        Ok(Self { export, descs })
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = proto::LabelPair::default();
            l.set_name((*k).to_string());
            l.set_value((*v).to_string());
            l
        })
        .collect()
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn counter(label: Vec<proto::LabelPair>, value: u64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(value as f64);
    let mut m = proto::Metric::from_label(label);
    m.set_counter(c);
    m
}

fn histogram(label: Vec<proto::LabelPair>, h: &LatencyHistogram) -> proto::Metric {
    let mut cumulative = 0;
    let buckets = LATENCY_BUCKETS_S
        .iter()
        .zip(h.counts)
        .map(|(bound, n)| {
            cumulative += n;
            let mut b = proto::Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    let mut p = proto::Histogram::default();
    p.set_bucket(buckets);
    p.set_sample_count(h.counts.iter().sum());
    p.set_sample_sum(h.sum_s);
    let mut m = proto::Metric::from_label(label);
    m.set_histogram(p);
    m
}

impl Collector for GraphCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let export = self.export.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let edge = |e: &EdgeExport| {
            labels(&[("client", &e.client), ("server", &e.server), ("connection_type", e.connection_type)])
        };
        let health = export
            .nodes
            .iter()
            .flat_map(|(service, state)| {
                [HealthState::Red, HealthState::Amber, HealthState::Gray, HealthState::Unknown].map(|s| {
                    let mut g = proto::Gauge::default();
                    g.set_value(f64::from(u8::from(s == *state)));
                    let mut m =
                        proto::Metric::from_label(labels(&[("service", service), ("state", state_name(s))]));
                    m.set_gauge(g);
                    m
                })
            })
            .collect();
        vec![
            family(
                REQUESTS,
                self.descs[0].help.as_str(),
                MetricType::COUNTER,
                export.edges.iter().map(|e| counter(edge(e), e.totals.calls)).collect(),
            ),
            family(
                FAILED,
                self.descs[1].help.as_str(),
                MetricType::COUNTER,
                export.edges.iter().map(|e| counter(edge(e), e.totals.failed)).collect(),
            ),
            family(
                SERVER,
                self.descs[2].help.as_str(),
                MetricType::HISTOGRAM,
                export.edges.iter().map(|e| histogram(edge(e), &e.totals.server)).collect(),
            ),
            family(
                CLIENT,
                self.descs[3].help.as_str(),
                MetricType::HISTOGRAM,
                export.edges.iter().map(|e| histogram(edge(e), &e.totals.client)).collect(),
            ),
            family(HEALTH, self.descs[4].help.as_str(), MetricType::GAUGE, health),
        ]
    }
}
