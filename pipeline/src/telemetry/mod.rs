//! Devloom's own telemetry: instruments on the OpenTelemetry metrics SDK, read out as
//! Prometheus text on `/metrics` (the `opentelemetry-prometheus` reader).
//!
//! Nothing here runs per span. Outputs, dead letters and the alert → map latency are
//! counted as they are published ([`TelemetryTap`]); the engine's counters and sizes are
//! copied at most once per `[http] refresh_ms` ([`TelemetryWatcher`]) and reported by
//! observable instruments when scraped. Other code records through
//! `opentelemetry::global::meter("devloom")` (the Kafka checkpoint duration), which is a
//! no-op when telemetry is off. The service graph is exported the way Grafana draws
//! one ([`service_graph`]).

pub mod otlp;
pub mod service_graph;

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devloom_operators::Engine;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::core::{Output, OutputKind, Progress, Sink, Watcher, wall_clock_ns};
use crate::http::TelemetryConfig;
use service_graph::{GraphCollector, GraphExport};

/// The instrumentation scope of every Devloom instrument.
pub const SCOPE: &str = "devloom";

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// What the watcher last copied from the engine.
#[derive(Clone, Copy, Debug, Default)]
struct Gauges {
    records: u64,
    spans: u64,
    alerts: u64,
    deploys: u64,
    causes: u64,
    late: u64,
    held_aside: u64,
    links_dropped: u64,
    pairing_pending: u64,
    pairing_evicted: u64,
    pairing_expired: u64,
    self_time_evicted: u64,
    services: u64,
    edges: u64,
    services_evicted: u64,
    watermark_lag_s: Option<f64>,
}

/// The meter provider with its Prometheus registry.
pub struct Telemetry {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    gauges: Arc<Mutex<Gauges>>,
    graph: Arc<Mutex<GraphExport>>,
    max_edges: usize,
}

impl Telemetry {
    /// Starts the SDK with a Prometheus reader and makes it the global meter provider.
    pub fn start(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let graph = Arc::default();
        if config.service_graph_max_edges > 0 {
            let collector =
                GraphCollector::new(Arc::clone(&graph)).map_err(|e| TelemetryError(e.to_string()))?;
            registry.register(Box::new(collector)).map_err(|e| TelemetryError(e.to_string()))?;
        }
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        let resource = Resource::builder().with_service_name("devloom").build();
        let mut provider = SdkMeterProvider::builder().with_resource(resource).with_reader(exporter);
        if let Some(reader) = otlp::reader(config)? {
            provider = provider.with_reader(reader);
        }
        let provider = provider.build();
        opentelemetry::global::set_meter_provider(provider.clone());
        let telemetry = Self {
            provider,
            registry,
            gauges: Arc::default(),
            graph,
            max_edges: config.service_graph_max_edges,
        };
        telemetry.observe_gauges();
        Ok(telemetry)
    }

    fn meter(&self) -> Meter {
        self.provider.meter(SCOPE)
    }

    /// Registers the observable instruments over the watcher's copy of the engine.
    fn observe_gauges(&self) {
        let meter = self.meter();
        type Read = fn(&Gauges) -> u64;
        let counters: [(&'static str, &'static str, Read, Option<KeyValue>); 11] = [
            (
                "devloom.input.records",
                "Records read (messages, lines, simulator batches)",
                |g| g.records,
                None,
            ),
            (
                "devloom.input.events",
                "Events decoded, by kind",
                |g| g.spans,
                Some(KeyValue::new("kind", "span")),
            ),
            (
                "devloom.input.events",
                "Events decoded, by kind",
                |g| g.alerts,
                Some(KeyValue::new("kind", "alert")),
            ),
            (
                "devloom.input.events",
                "Events decoded, by kind",
                |g| g.deploys,
                Some(KeyValue::new("kind", "change")),
            ),
            (
                "devloom.input.events",
                "Events decoded, by kind",
                |g| g.causes,
                Some(KeyValue::new("kind", "cause")),
            ),
            ("devloom.late_events", "Events that arrived behind the watermark", |g| g.late, None),
            (
                "devloom.pairing.evicted",
                "Spans closed early to make room in the full pairing store",
                |g| g.pairing_evicted,
                None,
            ),
            ("devloom.pairing.expired", "Spans that never met their other half", |g| g.pairing_expired, None),
            (
                "devloom.self_time.evicted",
                "Spans measured early to make room in the full self-time store",
                |g| g.self_time_evicted,
                None,
            ),
            (
                "devloom.held_aside",
                "Events from too far ahead held aside by the event-time guard",
                |g| g.held_aside,
                None,
            ),
            (
                "devloom.pairing.links_dropped",
                "Span links beyond engine.pairing.max_links_per_span",
                |g| g.links_dropped,
                None,
            ),
        ];
        // One observable counter per name, reporting each of its attribute sets.
        let mut names: Vec<&'static str> = counters.iter().map(|c| c.0).collect();
        names.dedup();
        for name in names {
            let series: Vec<(Read, Option<KeyValue>)> =
                counters.iter().filter(|c| c.0 == name).map(|c| (c.2, c.3.clone())).collect();
            let description = counters.iter().find(|c| c.0 == name).map_or("", |c| c.1);
            let gauges = self.gauges.clone();
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |observer| {
                    let g = *gauges.lock().unwrap_or_else(PoisonError::into_inner);
                    for (read, attribute) in &series {
                        observer.observe(read(&g), attribute.as_slice());
                    }
                })
                .build();
        }
        let sizes: [(&'static str, &'static str, Read); 4] = [
            ("devloom.pairing.pending", "Spans waiting in the pairing store for their other half", |g| {
                g.pairing_pending
            }),
            ("devloom.graph.services", "Services in the live graph", |g| g.services),
            ("devloom.graph.edges", "Call relationships in the live graph", |g| g.edges),
            ("devloom.graph.evicted", "Services evicted at engine.graph.max_services", |g| {
                g.services_evicted
            }),
        ];
        for (name, description, read) in sizes {
            let gauges = self.gauges.clone();
            meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| {
                    observer.observe(read(&gauges.lock().unwrap_or_else(PoisonError::into_inner)), &[])
                })
                .build();
        }
        let gauges = self.gauges.clone();
        meter
            .f64_observable_gauge("devloom.watermark.lag")
            .with_description("Wall clock minus the event-time watermark")
            .with_unit("s")
            .with_callback(move |observer| {
                if let Some(lag) = gauges.lock().unwrap_or_else(PoisonError::into_inner).watermark_lag_s {
                    observer.observe(lag, &[]);
                }
            })
            .build();
    }

    /// Sends what is left to the OTLP endpoint, if there is one.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("telemetry: {e}");
        }
    }

    /// Everything measured so far, as Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> io::Result<String> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather()).map_err(io::Error::other)
    }

    /// The tap that counts outputs as they are published.
    pub fn tap(&self) -> TelemetryTap {
        let meter = self.meter();
        TelemetryTap {
            outputs: meter
                .u64_counter("devloom.outputs")
                .with_description("Outputs published, by kind")
                .build(),
            dead_letters: meter
                .u64_counter("devloom.dead_letters")
                .with_description("Records and events that became dead letters, by reason")
                .build(),
            alert_to_map: meter
                .f64_histogram("devloom.alert_to_map.duration")
                .with_description("Alert read → impact map published")
                .with_unit("s")
                .with_boundaries(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                .build(),
        }
    }

    /// The watcher that copies the engine's counters and sizes for the observable
    /// instruments, at most every `interval`.
    pub fn watcher(&self, interval: Duration) -> TelemetryWatcher {
        TelemetryWatcher {
            gauges: self.gauges.clone(),
            graph: self.graph.clone(),
            max_edges: self.max_edges,
            interval,
        }
    }
}

/// Counts outputs by kind, dead letters by reason, and the alert → map latency.
pub struct TelemetryTap {
    outputs: Counter<u64>,
    dead_letters: Counter<u64>,
    alert_to_map: Histogram<f64>,
}

/// The `kind` label of an output kind.
pub fn kind_label(kind: OutputKind) -> &'static str {
    match kind {
        OutputKind::Impact => "impact",
        OutputKind::Candidates => "candidates",
        OutputKind::Remediation => "remediation",
        OutputKind::Postmortem => "postmortem",
        OutputKind::Rollout => "rollout",
        OutputKind::DeadLetter => "deadletter",
    }
}

impl Sink for TelemetryTap {
    fn publish(&mut self, output: &Output) -> io::Result<()> {
        self.outputs.add(1, &[KeyValue::new("kind", kind_label(output.kind()))]);
        match output {
            Output::DeadLetter(r) => self.dead_letters.add(1, &[KeyValue::new("reason", r.kind.as_str())]),
            Output::Impact(map) => {
                if let Some(ms) = map.latency_ms {
                    self.alert_to_map.record(ms / 1000.0, &[]);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Copies the engine's counters and sizes for the observable instruments.
pub struct TelemetryWatcher {
    gauges: Arc<Mutex<Gauges>>,
    graph: Arc<Mutex<GraphExport>>,
    max_edges: usize,
    interval: Duration,
}

impl Watcher for TelemetryWatcher {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn watch(&mut self, engine: &Engine, progress: &Progress) {
        let (e, p) = engine.counters();
        let (services, edges) = engine.graph().size();
        let watermark = engine.watermark_ns();
        let g = Gauges {
            records: progress.records,
            spans: e.spans,
            alerts: e.alerts,
            deploys: e.deploys,
            causes: e.causes,
            late: e.late,
            held_aside: e.held_aside,
            links_dropped: p.links_dropped,
            pairing_pending: engine.pending_spans() as u64,
            pairing_evicted: p.evicted,
            pairing_expired: p.expired,
            self_time_evicted: e.self_time_evicted,
            services: services as u64,
            edges: edges as u64,
            services_evicted: e.services_evicted,
            watermark_lag_s: (watermark > 0).then(|| (wall_clock_ns() as f64 - watermark as f64) / 1e9),
        };
        *self.gauges.lock().unwrap_or_else(PoisonError::into_inner) = g;
        if self.max_edges > 0 {
            let export = GraphExport::of(engine, self.max_edges);
            *self.graph.lock().unwrap_or_else(PoisonError::into_inner) = export;
        }
    }
}
