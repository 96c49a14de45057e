//! The built-in simulator: seeded and deterministic. It writes what real producers
//! would put on Kafka: OTLP protobuf batches (as the Collector's Kafka exporter),
//! Alertmanager webhook payloads when a service breaks its SLO, and Devloom deploy JSON.
//! Tests, benches and `devloom demo` all use it.

pub mod canaries;
pub mod faults;
pub mod history;
pub mod scenario;
pub mod to_kafka;
pub mod topology;
mod traces;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use devloom_schemas::codec::{Expect, encode_deploy};
use devloom_schemas::ids::stable_digest;
use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{ChangeKind, Deploy, DeploySource, RolloutTool, TimestampNs};
use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use scenario::{AlertRule, Condition, Scenario};
pub use topology::Topology;

use traces::{ConsumerJob, TraceBuilder};

/// 2026-11-27T09:00:00Z, the default start of simulated time.
pub const DEFAULT_START_NS: TimestampNs = 1_795_770_000_000_000_000;

/// Simulator settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// RNG seed: same seed, same records.
    pub seed: u64,
    /// Requests per second arriving at the gateway.
    pub rate_per_s: f64,
    /// Event time of the first tick.
    pub start_ns: TimestampNs,
    /// One OTLP batch per tick, milliseconds.
    pub tick_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { seed: 42, rate_per_s: 50.0, start_ns: DEFAULT_START_NS, tick_ms: 1000 }
    }
}

/// One record as a producer would publish it.
#[derive(Clone, Debug, PartialEq)]
pub struct SimRecord {
    /// Event time.
    pub time_ns: TimestampNs,
    /// Which input it belongs on.
    pub expect: Expect,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// `content-type` header value.
    pub content_type: &'static str,
}

const WINDOW_S: u64 = 30;

#[derive(Debug)]
struct RuleState {
    hist: Histogram<u64>,
    requests: u64,
    failures: u64,
    breaching: u32,
    clean: u32,
    firing_since: Option<TimestampNs>,
}

/// An iterator of [`SimRecord`]s in event-time order.
pub struct Simulator {
    topology: Topology,
    scenario: Scenario,
    config: SimConfig,
    builder: TraceBuilder,
    tick: u64,
    ticks: u64,
    consumers: BinaryHeap<Reverse<ConsumerJob>>,
    rules: Vec<RuleState>,
    ready: VecDeque<SimRecord>,
    spans: u64,
}

impl Simulator {
    /// A simulator of `scenario` on `topology`.
    pub fn new(topology: Topology, scenario: Scenario, config: SimConfig) -> Self {
        let ticks = scenario.duration_s * 1000 / config.tick_ms.max(1);
        let rules = scenario
            .rules
            .iter()
            .map(|_| RuleState {
                hist: Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static bounds are valid"),
                requests: 0,
                failures: 0,
                breaching: 0,
                clean: 0,
                firing_since: None,
            })
            .collect();
        Self {
            builder: TraceBuilder::new(ChaCha8Rng::seed_from_u64(config.seed)),
            topology,
            scenario,
            config,
            tick: 0,
            ticks,
            consumers: BinaryHeap::new(),
            rules,
            ready: VecDeque::new(),
            spans: 0,
        }
    }

    /// The shop topology running a named scenario.
    pub fn shop(scenario: &str, config: SimConfig) -> Option<Self> {
        Some(Self::new(Topology::shop(), Scenario::named(scenario)?, config))
    }

    /// Spans generated so far.
    pub fn spans(&self) -> u64 {
        self.spans
    }

    /// Ticks in the whole run, and ticks done (for progress).
    pub fn progress(&self) -> (u64, u64) {
        (self.tick, self.ticks)
    }

    fn at(&self, seconds: f64) -> TimestampNs {
        self.config.start_ns + (seconds * 1e9) as u64
    }

    fn generate_tick(&mut self) {
        let tick_s = self.config.tick_ms as f64 / 1000.0;
        let t0 = self.tick as f64 * tick_s;
        let t1 = t0 + tick_s;
        let (t0_ns, t1_ns) = (self.at(t0), self.at(t1));
        let mut records = Vec::new();

        for c in self.scenario.changes.iter().filter(|c| (c.at_s as f64) >= t0 && (c.at_s as f64) < t1) {
            records.push((self.at(c.at_s as f64), 0, deploy_record(c, self.at(c.at_s as f64))));
        }

        let mut batch = BTreeMap::new();
        let arrivals = self.builder.arrivals(self.config.rate_per_s * tick_s);
        let mut starts: Vec<TimestampNs> =
            (0..arrivals).map(|_| t0_ns + self.builder.uniform_ns(t1_ns - t0_ns)).collect();
        starts.sort_unstable();
        let ctx = traces::Context {
            topology: &self.topology,
            scenario: &self.scenario,
            start_ns: self.config.start_ns,
        };
        let mut served = Vec::new();
        for start in starts {
            self.builder.request(&ctx, start, &mut batch, &mut self.consumers, &mut served);
        }
        while self.consumers.peek().is_some_and(|Reverse(j)| j.start_ns < t1_ns) {
            let Reverse(job) = self.consumers.pop().expect("peeked");
            self.builder.consume(&ctx, &job, &mut batch, &mut self.consumers, &mut served);
        }
        let (request, spans) = traces::encode(&self.topology, &self.scenario, batch);
        self.spans += spans;
        if spans > 0 {
            records.push((
                t1_ns,
                1,
                SimRecord {
                    time_ns: t1_ns,
                    expect: Expect::Traces,
                    payload: request,
                    content_type: "application/x-protobuf",
                },
            ));
        }

        self.observe(&served);
        let window_ns = WINDOW_S * 1_000_000_000;
        if (t1_ns - self.config.start_ns).is_multiple_of(window_ns) {
            for alert in self.evaluate_rules(t1_ns) {
                records.push((t1_ns, 2, alert));
            }
        }
        records.sort_by_key(|(t, order, _)| (*t, *order));
        self.ready.extend(records.into_iter().map(|(_, _, r)| r));
        self.tick += 1;
    }

    fn observe(&mut self, served: &[traces::Served]) {
        for (rule, state) in self.scenario.rules.iter().zip(&mut self.rules) {
            let Some(watch) = self.topology.index(rule.watch) else { continue };
            for s in served.iter().filter(|s| s.node == watch) {
                state.requests += 1;
                state.failures += u64::from(s.failed);
                let _ = state.hist.record(s.latency_ns.max(1) / 1000);
            }
        }
    }

    fn evaluate_rules(&mut self, now: TimestampNs) -> Vec<SimRecord> {
        let mut out = Vec::new();
        for (rule, state) in self.scenario.rules.iter().zip(&mut self.rules) {
            let breach = state.requests > 0
                && match rule.condition {
                    Condition::ErrorRateAbove(x) => state.failures as f64 / state.requests as f64 > x,
                    Condition::P99AboveMs(ms) => state.hist.value_at_quantile(0.99) as f64 / 1000.0 > ms,
                };
            state.hist.reset();
            state.requests = 0;
            state.failures = 0;
            if breach {
                state.breaching += 1;
                state.clean = 0;
            } else {
                state.clean += 1;
                state.breaching = 0;
            }
            let window_ns = WINDOW_S * 1_000_000_000;
            if state.firing_since.is_none() && state.breaching >= 2 {
                let since = now - 2 * window_ns;
                state.firing_since = Some(since);
                out.push(alert_record(rule, since, None, now));
            } else if let Some(since) = state.firing_since.filter(|_| state.clean >= 2) {
                state.firing_since = None;
                out.push(alert_record(rule, since, Some(now - 2 * window_ns), now));
            }
        }
        out
    }
}

impl Iterator for Simulator {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        while self.ready.is_empty() && self.tick < self.ticks {
            self.generate_tick();
        }
        self.ready.pop_front()
    }
}

fn deploy_record(c: &scenario::Change, time_ns: TimestampNs) -> SimRecord {
    let rollout = c.kind != ChangeKind::ScheduledJob;
    // kubectl numbers rollouts: the deploy is revision 42; a rollback after it is 43.
    let (before, after) = if c.kind == ChangeKind::Rollback { (42, 43) } else { (41, 42) };
    let newer = |rev: &str| rev >= c.previous && rev >= c.revision;
    let deploy = Deploy {
        service: c.service.to_string(),
        environment: Some("production".into()),
        revision: c.revision.to_string(),
        previous_revision: (!c.previous.is_empty()).then(|| c.previous.to_string()),
        time_ns,
        author: Some(c.author.to_string()),
        kind: c.kind,
        spec_before: (rollout && !c.previous.is_empty())
            .then(|| manifests(c.service, c.previous, before, newer(c.previous))),
        spec_after: rollout.then(|| manifests(c.service, c.revision, after, newer(c.revision))),
        source: DeploySource::Devloom,
        tool: rollout.then_some(RolloutTool::Kubectl),
        ..Deploy::default()
    };
    SimRecord {
        time_ns,
        expect: Expect::Deploys,
        payload: encode_deploy(&deploy).into_bytes(),
        content_type: "application/json",
    }
}

/// What `kubectl get deployment,configmap -o yaml` shows of a simulated service at a
/// revision: a Deployment (image, env) and its ConfigMap. The newer revision turns a
/// feature flag on and tightens the capture timeout, so a rollback changes both the pod
/// template and a ConfigMap that `kubectl rollout undo` does not revert.
fn manifests(service: &str, revision: &str, rollout: u32, newer: bool) -> String {
    let (flag, timeout, retries) = if newer { ("on", 800, 5) } else { ("off", 2000, 3) };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {service}
  namespace: production
  annotations:
    deployment.kubernetes.io/revision: \"{rollout}\"
spec:
  replicas: 3
  selector:
    matchLabels:
      app: {service}
  template:
    metadata:
      labels:
        app: {service}
    spec:
      containers:
      - name: {service}
        image: registry.internal/{service}:{revision}
        env:
        - name: FEATURE_ASYNC_CAPTURE
          value: \"{flag}\"
        - name: LOG_LEVEL
          value: info
        envFrom:
        - configMapRef:
            name: {service}-config
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {service}-config
  namespace: production
data:
  capture.timeout_ms: \"{timeout}\"
  retry.max: \"{retries}\"
  region: eu-west-1
"
    )
}

/// An Alertmanager webhook v4 payload with one alert, as Alertmanager sends on a
/// state transition.
pub(crate) fn alert_record(
    rule: &AlertRule,
    since: TimestampNs,
    ended: Option<TimestampNs>,
    now: TimestampNs,
) -> SimRecord {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), rule.name.into());
    labels.insert("service".into(), rule.service.into());
    labels.insert("severity".into(), rule.severity.into());
    for (k, v) in rule.labels {
        labels.insert((*k).into(), (*v).into());
    }
    let status = if ended.is_some() { "resolved" } else { "firing" };
    let alert = serde_json::json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": rule.summary},
        "startsAt": format_rfc3339(since),
        "endsAt": format_rfc3339(ended.unwrap_or(now + 5 * 60 * 1_000_000_000)),
        "generatorURL": "http://prometheus.sim:9090/graph",
        "fingerprint": stable_digest([rule.name, rule.service]),
    });
    let payload = serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\"}}", rule.name),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "devloom",
        "groupLabels": {"alertname": rule.name},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.sim:9093",
        "alerts": [alert],
    });
    SimRecord {
        time_ns: now,
        expect: Expect::Alerts,
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
        content_type: "application/json",
    }
}

/// One record as a single NDJSON line: OTLP protobuf batches become OTLP JSON (hex
/// ids), JSON payloads are compacted.
pub fn to_ndjson_line(record: &SimRecord) -> Result<String, SimError> {
    use prost::Message as _;
    if record.expect == Expect::Traces {
        let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
            record.payload.as_slice(),
        )
        .map_err(|e| SimError(e.to_string()))?;
        return serde_json::to_string(&request).map_err(|e| SimError(e.to_string()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&record.payload).map_err(|e| SimError(e.to_string()))?;
    Ok(value.to_string())
}

/// Writes `records` as `devloom simulate --format otlp-proto` does: trace batches
/// length-prefixed (4-byte big-endian length, then the OTLP protobuf) to `traces`, every
/// other record as one NDJSON line to `events`.
pub fn write_otlp_proto(
    records: impl Iterator<Item = SimRecord>,
    traces: &mut impl std::io::Write,
    events: &mut impl std::io::Write,
) -> Result<(), SimError> {
    let io = |e: std::io::Error| SimError(e.to_string());
    for record in records {
        if record.expect == Expect::Traces {
            let len = u32::try_from(record.payload.len()).map_err(|e| SimError(e.to_string()))?;
            traces.write_all(&len.to_be_bytes()).map_err(io)?;
            traces.write_all(&record.payload).map_err(io)?;
        } else {
            events.write_all(to_ndjson_line(&record)?.as_bytes()).map_err(io)?;
            events.write_all(b"\n").map_err(io)?;
        }
    }
    Ok(())
}

/// A simulator record could not be re-encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot write simulated record: {0}")]
pub struct SimError(pub(crate) String);
