//! Trace generation: one request walks the topology and leaves the spans real
//! instrumentation would (server spans in callees, client spans in callers, database
//! client spans with `db.system.name`, producer spans with consumers in new traces
//! linked back to them), with about ten attributes each.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use devloom_schemas::TimestampNs;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use prost::Message as _;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use super::scenario::{STABLE_VERSION, Scenario};
use super::topology::{Role, Topology};

/// What the trace builder reads.
pub(super) struct Context<'a> {
    pub topology: &'a Topology,
    pub scenario: &'a Scenario,
    pub start_ns: TimestampNs,
}

/// A message waiting for a consumer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ConsumerJob {
    pub start_ns: TimestampNs,
    seq: u64,
    consumer: usize,
    queue: usize,
    link_trace: [u8; 16],
    link_span: [u8; 8],
}

/// One request a service served, for the SLO rules.
pub(super) struct Served {
    pub node: usize,
    pub latency_ns: u64,
    pub failed: bool,
}

/// Spans waiting to be batched, by the node that emitted them and whether its canary did.
pub(super) type Batch = BTreeMap<(usize, bool), Vec<Span>>;

pub(super) struct TraceBuilder {
    rng: ChaCha8Rng,
    seq: u64,
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_string()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

impl TraceBuilder {
    pub fn new(rng: ChaCha8Rng) -> Self {
        Self { rng, seq: 0 }
    }

    /// Poisson arrivals with mean `mean`.
    pub fn arrivals(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        Poisson::new(mean).map(|p| p.sample(&mut self.rng) as u64).unwrap_or(0)
    }

    /// Uniform in `0..span`.
    pub fn uniform_ns(&mut self, span: u64) -> u64 {
        self.rng.random_range(0..span.max(1))
    }

    fn latency_ns(&mut self, median_ms: f64) -> u64 {
        let d = LogNormal::new(median_ms.max(0.01).ln(), 0.35).expect("finite parameters");
        (d.sample(&mut self.rng) * 1e6) as u64
    }

    fn id8(&mut self) -> [u8; 8] {
        self.rng.random::<u64>().max(1).to_be_bytes()
    }

    fn id16(&mut self) -> [u8; 16] {
        self.rng.random::<u128>().max(1).to_be_bytes()
    }

    /// One request arriving at the gateway at `start_ns`.
    pub fn request(
        &mut self,
        ctx: &Context<'_>,
        start_ns: TimestampNs,
        batch: &mut Batch,
        jobs: &mut BinaryHeap<Reverse<ConsumerJob>>,
        served: &mut Vec<Served>,
    ) {
        let trace = self.id16();
        self.serve(ctx, 0, trace, None, start_ns, None, batch, jobs, served);
    }

    /// A consumer processing one message, in a new trace linked to the producer span.
    pub fn consume(
        &mut self,
        ctx: &Context<'_>,
        job: &ConsumerJob,
        batch: &mut Batch,
        jobs: &mut BinaryHeap<Reverse<ConsumerJob>>,
        served: &mut Vec<Served>,
    ) {
        let trace = self.id16();
        let link =
            Link { trace_id: job.link_trace.to_vec(), span_id: job.link_span.to_vec(), ..Default::default() };
        let topic = Some((job.queue, link));
        self.serve(ctx, job.consumer, trace, None, job.start_ns, topic, batch, jobs, served);
    }

    /// Serves one request at `node` (a message from a queue when `consumed` names the
    /// queue and the link to its producer); returns when it ended and whether it failed.
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &mut self,
        ctx: &Context<'_>,
        node: usize,
        trace: [u8; 16],
        parent: Option<[u8; 8]>,
        start_ns: TimestampNs,
        consumed: Option<(usize, Link)>,
        batch: &mut Batch,
        jobs: &mut BinaryHeap<Reverse<ConsumerJob>>,
        served: &mut Vec<Served>,
    ) -> (TimestampNs, bool) {
        let topo = ctx.topology;
        let n = &topo.nodes[node];
        let at_s = start_ns.saturating_sub(ctx.start_ns) as f64 / 1e9;
        let effect = ctx.scenario.fault_on(&n.name, at_s);
        // Draws only for effects that are on: a run without faults keeps its random stream.
        let starved = effect.affected >= 1.0 || self.rng.random_bool(effect.affected.max(0.0));
        let canary =
            ctx.scenario.canary_on(&n.name, at_s).filter(|c| self.rng.random_bool(c.share.clamp(0.0, 1.0)));
        let on_canary = canary.is_some();
        let factor =
            if starved { effect.latency_factor } else { 1.0 } * canary.map_or(1.0, |c| c.latency_factor);
        let own = (self.latency_ns(n.latency_ms) as f64 * factor) as u64;
        let span_id = self.id8();
        let mut t = start_ns + own / 2;
        let own_error =
            effect.error_rate.unwrap_or(n.error_rate) + canary.map_or(0.0, |c| c.extra_error_rate);
        let mut failed = self.rng.random_bool(own_error.clamp(0.0, 1.0));
        // A failing handler stops where it fails: its own exception is thrown before any
        // of its calls or after any, and a wrong answer or a critical callee's failure
        // ends it as soon as the call returns. The calls after are never made.
        let thrown_at = if failed { self.rng.random_range(0..=n.calls.len()) } else { n.calls.len() };
        for dep in n.calls.iter().take(thrown_at) {
            if !self.rng.random_bool(dep.probability.clamp(0.0, 1.0)) {
                continue;
            }
            let callee = &topo.nodes[dep.callee];
            let client_id = self.id8();
            let at = t.saturating_sub(ctx.start_ns) as f64 / 1e9;
            let far = ctx.scenario.fault_on(&callee.name, at);
            // Wire time a network fault adds: requests leaving this node, replies leaving
            // the callee.
            let wire = |e: &super::scenario::Effect, rng: &mut ChaCha8Rng| {
                if e.network_delay_ms > 0.0 && rng.random_bool(e.network_share.clamp(0.0, 1.0)) {
                    (e.network_delay_ms * rng.random_range(0.8..1.2) * 1e6) as u64
                } else {
                    0
                }
            };
            let (out_wait, back_wait) = (wire(&effect, &mut self.rng), wire(&far, &mut self.rng));
            let answered_wrongly =
                far.caller_error_rate > 0.0 && self.rng.random_bool(far.caller_error_rate.min(1.0));
            let (end, child_failed, attrs, kind, name) = match callee.role {
                _ if far.down && callee.role != Role::Queue => {
                    let refused = t + out_wait + 1_000_000;
                    let attrs = http_client(&callee.name, 503);
                    (refused, true, attrs, SpanKind::Client, format!("GET /{}", callee.name))
                }
                Role::Database | Role::Cache | Role::External => {
                    let f = far.latency_factor;
                    let lat = (self.latency_ns(callee.latency_ms) as f64 * f) as u64 + out_wait + back_wait;
                    let bad =
                        self.rng.random_bool(far.error_rate.unwrap_or(callee.error_rate).clamp(0.0, 1.0));
                    let attrs = if let Some(system) = callee.db_system {
                        vec![
                            s("db.system.name", system),
                            s("db.namespace", "shop"),
                            s("db.operation.name", "SELECT"),
                            s("db.query.text", "SELECT * FROM items WHERE id = $1"),
                            s("service.peer.name", &callee.name),
                            s("server.address", &format!("{}.internal", callee.name)),
                            i("server.port", 5432),
                            s("network.transport", "tcp"),
                            s("db.client.connection.pool.name", "main"),
                            s("code.function.name", "query"),
                        ]
                    } else {
                        http_client(&callee.name, if bad { 503 } else { 200 })
                    };
                    (t + lat, bad, attrs, SpanKind::Client, format!("call {}", callee.name))
                }
                Role::Queue => {
                    for consumer in &callee.calls {
                        let delay = self.latency_ns(callee.latency_ms);
                        self.seq += 1;
                        jobs.push(Reverse(ConsumerJob {
                            start_ns: t + delay,
                            seq: self.seq,
                            consumer: consumer.callee,
                            queue: dep.callee,
                            link_trace: trace,
                            link_span: client_id,
                        }));
                    }
                    let offset = self.rng.random_range(0..1_000_000);
                    let attrs = messaging(
                        &callee.name,
                        &n.name,
                        ("send", "messaging.operation.name", "publish"),
                        offset,
                    );
                    (t + 1_000_000, false, attrs, SpanKind::Producer, format!("publish {}", callee.name))
                }
                Role::Service | Role::Consumer | Role::Gateway => {
                    let (end, bad) = self.serve(
                        ctx,
                        dep.callee,
                        trace,
                        Some(client_id),
                        t + 300_000 + out_wait,
                        None,
                        batch,
                        jobs,
                        served,
                    );
                    let attrs = http_client(&callee.name, if bad { 500 } else { 200 });
                    (end + 300_000 + back_wait, bad, attrs, SpanKind::Client, format!("GET /{}", callee.name))
                }
            };
            batch.entry((node, on_canary)).or_default().push(Span {
                trace_id: trace.to_vec(),
                span_id: client_id.to_vec(),
                parent_span_id: span_id.to_vec(),
                name,
                kind: kind as i32,
                start_time_unix_nano: t,
                end_time_unix_nano: end,
                attributes: attrs,
                status: child_failed.then(error_status),
                ..Default::default()
            });
            t = end;
            if answered_wrongly || (child_failed && dep.critical) {
                failed = true;
                break;
            }
        }
        let end = t + own - own / 2;
        let consumer = consumed.is_some();
        let links: Vec<Link> = consumed.iter().map(|(_, l)| l.clone()).collect();
        let attrs = if let Some((queue, _)) = &consumed {
            let offset = self.rng.random_range(0..1_000_000);
            messaging(
                &topo.nodes[*queue].name,
                &n.name,
                ("process", "messaging.consumer.group.name", &n.name),
                offset,
            )
        } else {
            http_server(&n.name, if failed { 500 } else { 200 })
        };
        batch.entry((node, on_canary)).or_default().push(Span {
            trace_id: trace.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: match &consumed {
                Some((queue, _)) => format!("process {}", topo.nodes[*queue].name),
                None => format!("GET /api/{}", n.name),
            },
            kind: if consumer { SpanKind::Consumer } else { SpanKind::Server } as i32,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: end,
            attributes: attrs,
            links,
            status: failed.then(error_status),
            ..Default::default()
        });
        served.push(Served { node, latency_ns: end - start_ns, failed });
        (end, failed)
    }
}

/// Kafka messaging attributes: `(operation type, extra key, extra value)` distinguish a
/// producer's send from a consumer's processing.
fn messaging(destination: &str, client: &str, operation: (&str, &str, &str), offset: i64) -> Vec<KeyValue> {
    let (kind, extra_key, extra_value) = operation;
    vec![
        s("messaging.system", "kafka"),
        s("messaging.destination.name", destination),
        s("messaging.operation.type", kind),
        s(extra_key, extra_value),
        s("messaging.client.id", client),
        s("server.address", "kafka.internal"),
        i("server.port", 9092),
        i("messaging.kafka.message.offset", offset),
        s("messaging.kafka.message.key", "order"),
        s("network.transport", "tcp"),
    ]
}

fn error_status() -> Status {
    Status { message: "request failed".into(), code: status::StatusCode::Error as i32 }
}

fn http_server(service: &str, status: i64) -> Vec<KeyValue> {
    vec![
        s("http.request.method", "GET"),
        s("http.route", &format!("/api/{service}")),
        s("url.path", &format!("/api/{service}")),
        s("url.scheme", "http"),
        s("server.address", &format!("{service}.internal")),
        i("server.port", 8080),
        s("network.protocol.version", "1.1"),
        s("user_agent.original", "Go-http-client/1.1"),
        s("client.address", "10.0.0.1"),
        i("http.response.status_code", status),
    ]
}

fn http_client(peer: &str, status: i64) -> Vec<KeyValue> {
    vec![
        s("http.request.method", "GET"),
        s("url.full", &format!("http://{peer}.internal:8080/api/{peer}")),
        s("server.address", &format!("{peer}.internal")),
        i("server.port", 8080),
        s("service.peer.name", peer),
        s("network.protocol.version", "1.1"),
        s("network.transport", "tcp"),
        s("http.request.resend_count", "0"),
        s("user_agent.original", "otelhttp/0.49"),
        i("http.response.status_code", status),
    ]
}

/// Encodes a batch as one `ExportTraceServiceRequest` (one `ResourceSpans` per service
/// and version), returning the bytes and the span count.
pub(super) fn encode(topology: &Topology, scenario: &Scenario, batch: Batch) -> (Vec<u8>, u64) {
    let mut count = 0;
    let resource_spans = batch
        .into_iter()
        .map(|((node, on_canary), spans)| {
            count += spans.len() as u64;
            let name = &topology.nodes[node].name;
            let version = match &scenario.canary {
                Some(c) if on_canary => c.version,
                _ => STABLE_VERSION,
            };
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        s("service.name", name),
                        s("service.version", version),
                        s("service.namespace", "shop"),
                        s("deployment.environment.name", "production"),
                        s("host.name", &format!("{name}-7d9f8")),
                        s("telemetry.sdk.language", "go"),
                        s("telemetry.sdk.name", "opentelemetry"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp".into(),
                        version: "0.49.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    (ExportTraceServiceRequest { resource_spans }.encode_to_vec(), count)
}
