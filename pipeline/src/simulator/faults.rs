//! Fault-injection cases: the kind of labelled incident public fault-injection
//! benchmarks record, generated so Devloom can be measured on shapes it was not built
//! around without ever seeing those benchmarks' data.
//!
//! Each case is one fault from the literature (CPU contention, CPU hog, memory leak,
//! network delay, packet loss, exception, wrong return value, dependency down) injected
//! into one service — the entry one included — of a shop or a generated topology of
//! 10–200 services, after 1 to 30 minutes of normal traffic, with two more minutes of
//! traces. One Alertmanager alert fires on the entry service 45 s after the fault, as in
//! those benchmarks. The traces come in one of four styles: full OpenTelemetry, kind-less
//! (converters and Jaeger/Zipkin-era instrumentation), kind-less without status, and
//! head-sampled (a quarter of the traces).
//!
//! A case is a folder `devloom run --input` reads (`traces.pb`: length-prefixed OTLP
//! protobuf; `events.ndjson`: the alert) plus `truth.json`:
//! `{"faulty_service": …, "fault": …, "style": …}`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use devloom_schemas::codec::Expect;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::scenario::{AlertRule, Condition, Fault, Scenario};
use super::topology::{Role, Topology};
use super::{SimConfig, SimError, SimRecord, Simulator, alert_record, write_otlp_proto};

/// A fault kind from the fault-injection literature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Every request's own work 2.5–5× slower (a noisy neighbour).
    CpuContention,
    /// A third to two thirds of the requests 4–8× slower (a process hogging a core).
    CpuHog,
    /// Own work slowing steadily to 4–8× and a few requests failing (a leak, GC, OOM).
    Memory,
    /// 30–200 ms more on the wire of every call into and out of the service.
    NetworkDelay,
    /// A 200 ms retransmission on 10–30% of the calls into and out of it.
    PacketLoss,
    /// 15–60% of its requests fail.
    Exception,
    /// It answers, wrongly: 20–60% of the calls to it make their caller fail, right
    /// there (the caller makes no further call).
    WrongReturn,
    /// It is gone: no spans, and calls to it are refused.
    DependencyDown,
}

/// Every fault kind, in the order cases cycle through them.
pub const FAULT_KINDS: [FaultKind; 8] = [
    FaultKind::CpuContention,
    FaultKind::CpuHog,
    FaultKind::Memory,
    FaultKind::NetworkDelay,
    FaultKind::PacketLoss,
    FaultKind::Exception,
    FaultKind::WrongReturn,
    FaultKind::DependencyDown,
];

/// How the traces reach Devloom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceStyle {
    /// OpenTelemetry as the SDKs send it: kinds, status, HTTP codes.
    Full,
    /// Every span's kind unset.
    KindLess,
    /// Kind unset, no status, and times in whole milliseconds: the shape of CSV exports
    /// and converters. Failures only from HTTP codes.
    NoStatus,
    /// Full spans, a quarter of the traces kept (head sampling by trace id).
    Sampled,
}

/// Every trace style, in the order cases cycle through them.
pub const TRACE_STYLES: [TraceStyle; 4] =
    [TraceStyle::Full, TraceStyle::KindLess, TraceStyle::NoStatus, TraceStyle::Sampled];

/// `truth.json`: what was injected where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// The service the fault was injected into.
    pub faulty_service: String,
    /// The fault (a [`FaultKind`] name for simulated cases; free text otherwise).
    pub fault: String,
    /// The trace style of simulated cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<TraceStyle>,
    /// Services of simulated cases that slowed without being the fault (see
    /// [`bystanders`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bystanders: Vec<String>,
}

/// One generated case.
#[derive(Clone, Debug)]
pub struct FaultCase {
    /// Folder name: `case-0007-cpu_hog-kind_less`.
    pub name: String,
    /// What was injected.
    pub truth: Truth,
    /// Minutes of traffic before the fault.
    pub baseline_s: u64,
    /// Instrumented services in the topology.
    pub services: usize,
    /// The records, in event-time order.
    pub records: Vec<SimRecord>,
}

/// Requests per second at the entry service, by default.
pub const DEFAULT_RATE_PER_S: f64 = 20.0;
/// Traces after the fault starts, seconds.
const AFTER_S: u64 = 120;
/// The alert fires this long after the fault.
const ALERT_AFTER_S: u64 = 45;

/// Case `index` of the cases seeded `seed`, `rate_per_s` requests a second arriving at
/// the entry service: kinds cycle fastest, then styles, so any 32 consecutive cases hold
/// every kind in every style.
pub fn fault_case(seed: u64, index: u64, rate_per_s: f64) -> FaultCase {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(index));
    let kind = FAULT_KINDS[(index % 8) as usize];
    let style = TRACE_STYLES[((index / 8) % 4) as usize];
    // A generated topology whose entry service reaches no other service with traffic
    // has nothing to break: draw another.
    let (topology, target) = loop {
        let topology = if rng.random_bool(0.25) {
            Topology::shop()
        } else {
            let services = [10, 20, 40, 80, 200][rng.random_range(0..5)];
            Topology::generated(services, rng.random())
        };
        if let Some(target) = pick_target(&topology, kind, rate_per_s, &mut rng) {
            break (topology, target);
        }
    };
    let baseline_s = [60, 60, 120, 300, 600, 1800][rng.random_range(0..6)];
    let mut faults = vec![fault(kind, target.clone(), baseline_s, &mut rng)];
    faults.extend(bystanders(&topology, &target, kind, baseline_s, rate_per_s, &mut rng));
    let mut bystanders: Vec<String> = faults[1..].iter().map(|f| f.target.clone()).collect();
    bystanders.sort();
    bystanders.dedup();
    let scenario = Scenario {
        name: "fault-injection",
        description: "one injected fault",
        duration_s: baseline_s + AFTER_S,
        faults,
        rules: vec![],
        changes: vec![],
        canary: None,
    };
    let config = SimConfig { seed: rng.random(), rate_per_s, ..SimConfig::default() };
    let start_ns = config.start_ns;
    let services = topology.nodes.iter().filter(|n| instrumented(n.role)).count();
    let mut records: Vec<SimRecord> = Simulator::new(topology, scenario, config)
        .filter_map(|mut r| {
            if r.expect == Expect::Traces {
                r.payload = restyle(&r.payload, style)?;
            }
            Some(r)
        })
        .collect();
    let alert_ns = start_ns + (baseline_s + ALERT_AFTER_S) * 1_000_000_000;
    let rule = AlertRule {
        name: "EntryServiceSLOBreach",
        service: "gateway",
        watch: "gateway",
        condition: Condition::ErrorRateAbove(0.0),
        labels: &[],
        severity: "critical",
        summary: "entry service breaks its latency or error SLO",
    };
    let alert = alert_record(&rule, alert_ns, None, alert_ns);
    let at = records.partition_point(|r| r.time_ns <= alert_ns);
    records.insert(at, alert);
    let fault_name =
        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let style_name =
        serde_json::to_value(style).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    FaultCase {
        name: format!("case-{index:04}-{fault_name}-{style_name}"),
        truth: Truth { faulty_service: target, fault: fault_name, style: Some(style), bystanders },
        baseline_s,
        services,
        records,
    }
}

fn instrumented(role: Role) -> bool {
    matches!(role, Role::Gateway | Role::Service | Role::Consumer)
}

/// The instrumented services with traffic enough to be judged: a twentieth of the entry
/// service's or more.
fn judged(topology: &Topology, rate_per_s: f64) -> Vec<usize> {
    let mut rate = vec![0.0; topology.nodes.len()];
    rate[0] = rate_per_s;
    // Callees come after callers in both topologies, except consumers fed by queues.
    for i in 0..topology.nodes.len() {
        for dep in &topology.nodes[i].calls {
            rate[dep.callee] += rate[i] * dep.probability;
        }
    }
    (0..topology.nodes.len())
        .filter(|&i| instrumented(topology.nodes[i].role) && rate[i] >= rate_per_s / 20.0)
        .collect()
}

/// A [`judged`] service; the entry service too, except for a fault that takes it down.
fn pick_target(
    topology: &Topology,
    kind: FaultKind,
    rate_per_s: f64,
    rng: &mut ChaCha8Rng,
) -> Option<String> {
    let eligible: Vec<usize> = judged(topology, rate_per_s)
        .into_iter()
        // A downed consumer would still be handed its queue's messages by the simulator.
        .filter(|&i| {
            !(kind == FaultKind::DependencyDown && (i == 0 || topology.nodes[i].role == Role::Consumer))
        })
        .collect();
    if eligible.is_empty() {
        return None;
    }
    Some(topology.nodes[eligible[rng.random_range(0..eligible.len())]].name.clone())
}

/// What else slows around the fault, as on a real cluster, each in half the cases: a
/// CPU or memory fault's neighbour on the node slows 1.3–1.8× with it (the injection
/// competes for the node's cores and memory bandwidth), and an unrelated service has a
/// slow spell of 20–60 s, 1.5–3× its own work, starting up to a minute before the
/// fault or half a minute after (a GC pause, a noisy batch). Neither is the fault: a
/// diagnosis that ranks the most changed service first, not the one that explains the
/// incident, is misled by them.
fn bystanders(
    topology: &Topology,
    target: &str,
    kind: FaultKind,
    fault_s: u64,
    rate_per_s: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<Fault> {
    let others: Vec<usize> =
        judged(topology, rate_per_s).into_iter().filter(|&i| topology.nodes[i].name != target).collect();
    if others.is_empty() {
        return Vec::new();
    }
    let pick = |rng: &mut ChaCha8Rng| topology.nodes[others[rng.random_range(0..others.len())]].name.clone();
    let mut faults = Vec::new();
    let resources = matches!(kind, FaultKind::CpuContention | FaultKind::CpuHog | FaultKind::Memory);
    if resources && rng.random_bool(0.5) {
        faults.push(Fault {
            target: pick(rng),
            from_s: fault_s,
            until_s: fault_s + AFTER_S,
            latency_factor: rng.random_range(1.3..1.8),
            ..Fault::default()
        });
    }
    if rng.random_bool(0.5) {
        let from_s = (fault_s + rng.random_range(0..=90)).saturating_sub(60);
        faults.push(Fault {
            target: pick(rng),
            from_s,
            until_s: from_s + rng.random_range(20..=60),
            latency_factor: rng.random_range(1.5..3.0),
            ..Fault::default()
        });
    }
    faults
}

fn fault(kind: FaultKind, target: String, from_s: u64, rng: &mut ChaCha8Rng) -> Fault {
    let until_s = from_s + AFTER_S;
    let base = Fault { target, from_s, until_s, ..Fault::default() };
    match kind {
        FaultKind::CpuContention => Fault { latency_factor: rng.random_range(2.5..5.0), ..base },
        FaultKind::CpuHog => Fault {
            latency_factor: rng.random_range(4.0..8.0),
            affected: rng.random_range(0.35..0.65),
            ..base
        },
        FaultKind::Memory => Fault {
            latency_factor: rng.random_range(4.0..8.0),
            ramp: true,
            error_rate: Some(rng.random_range(0.01..0.05)),
            ..base
        },
        FaultKind::NetworkDelay => Fault { network_delay_ms: rng.random_range(30.0..200.0), ..base },
        FaultKind::PacketLoss => {
            Fault { network_delay_ms: 200.0, network_share: rng.random_range(0.1..0.3), ..base }
        }
        FaultKind::Exception => Fault { error_rate: Some(rng.random_range(0.15..0.6)), ..base },
        FaultKind::WrongReturn => Fault { caller_error_rate: rng.random_range(0.2..0.6), ..base },
        FaultKind::DependencyDown => Fault { down: true, ..base },
    }
}

/// The batch in `style`; None when sampling left nothing of it.
fn restyle(payload: &[u8], style: TraceStyle) -> Option<Vec<u8>> {
    if style == TraceStyle::Full {
        return Some(payload.to_vec());
    }
    let mut request = ExportTraceServiceRequest::decode(payload).ok()?;
    for rs in &mut request.resource_spans {
        for ss in &mut rs.scope_spans {
            match style {
                TraceStyle::Full => {}
                TraceStyle::KindLess | TraceStyle::NoStatus => {
                    for span in &mut ss.spans {
                        span.kind = 0;
                        if style == TraceStyle::NoStatus {
                            span.status = None;
                            span.start_time_unix_nano -= span.start_time_unix_nano % 1_000_000;
                            span.end_time_unix_nano -= span.end_time_unix_nano % 1_000_000;
                        }
                    }
                }
                TraceStyle::Sampled => ss.spans.retain(|s| s.trace_id.last().is_some_and(|b| b % 4 == 0)),
            }
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    request.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    (!request.resource_spans.is_empty()).then(|| request.encode_to_vec())
}

/// Writes `case` as `dir/<name>/` (`traces.pb`, `events.ndjson`, `truth.json`).
pub fn write_case(dir: &Path, case: &FaultCase) -> Result<(), SimError> {
    let folder = dir.join(&case.name);
    let io = |e: std::io::Error| SimError(format!("{}: {e}", folder.display()));
    std::fs::create_dir_all(&folder).map_err(io)?;
    let mut traces = BufWriter::new(File::create(folder.join("traces.pb")).map_err(io)?);
    let mut events = BufWriter::new(File::create(folder.join("events.ndjson")).map_err(io)?);
    write_otlp_proto(case.records.iter().cloned(), &mut traces, &mut events)?;
    traces.flush().map_err(io)?;
    events.flush().map_err(io)?;
    let truth = serde_json::to_string_pretty(&case.truth).map_err(|e| SimError(e.to_string()))? + "\n";
    std::fs::write(folder.join("truth.json"), truth).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_deterministic_and_cycle_kinds_then_styles() {
        let a = fault_case(1, 9, DEFAULT_RATE_PER_S);
        let b = fault_case(1, 9, DEFAULT_RATE_PER_S);
        assert_eq!(a.records, b.records);
        assert_eq!(a.truth, b.truth);
        assert_eq!(a.truth.fault, "cpu_hog");
        assert_eq!(a.truth.style, Some(TraceStyle::KindLess));
        assert_eq!(fault_case(1, 31, DEFAULT_RATE_PER_S).truth.style, Some(TraceStyle::Sampled));
        let alerts = a.records.iter().filter(|r| r.expect == Expect::Alerts).count();
        assert_eq!(alerts, 1, "one alert on the entry service");
        assert!(a.records.windows(2).all(|w| w[0].time_ns <= w[1].time_ns), "in event-time order");
    }

    #[test]
    fn bystanders_slow_beside_the_fault_and_are_never_it() {
        let cases: Vec<FaultCase> = (0..32).map(|i| fault_case(4, i, DEFAULT_RATE_PER_S)).collect();
        let with = cases.iter().filter(|c| !c.truth.bystanders.is_empty()).count();
        assert!((8..=28).contains(&with), "about half the cases have bystanders: {with} of 32");
        for case in &cases {
            assert!(!case.truth.bystanders.contains(&case.truth.faulty_service), "{}", case.name);
        }
        // Only a CPU or memory fault slows a neighbour; a spell can come with any fault,
        // so two bystanders mean a resource fault.
        for case in cases.iter().filter(|c| c.truth.bystanders.len() == 2) {
            assert!(
                ["cpu_contention", "cpu_hog", "memory"].contains(&case.truth.fault.as_str()),
                "{}",
                case.name
            );
        }
        // A bystander's own work really is slower while it is one: its server spans take
        // longer in the two minutes after the fault than over the baseline.
        let case = cases.iter().find(|c| c.truth.bystanders.len() == 2).expect("a case with both bystanders");
        let fault_ns = super::super::DEFAULT_START_NS + case.baseline_s * 1_000_000_000;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for rs in case
            .records
            .iter()
            .filter(|r| r.expect == Expect::Traces)
            .flat_map(|r| ExportTraceServiceRequest::decode(r.payload.as_slice()).unwrap().resource_spans)
        {
            let bystander = rs.resource.iter().flat_map(|r| &r.attributes).any(|kv| {
                kv.key == "service.name"
                    && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()),
                        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(n))
                            if case.truth.bystanders.contains(n))
            });
            if !bystander {
                continue;
            }
            // Each request's own span, whatever the style kept of its kind.
            for span in
                rs.scope_spans.iter().flat_map(|ss| &ss.spans).filter(|s| s.name.starts_with("GET /api/"))
            {
                let d = (span.end_time_unix_nano - span.start_time_unix_nano) as f64;
                if span.start_time_unix_nano < fault_ns { before.push(d) } else { after.push(d) }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        assert!(mean(&after) > 1.1 * mean(&before), "{}: {} → {}", case.name, mean(&before), mean(&after));
    }

    #[test]
    fn no_status_traces_have_no_kind_no_status_and_whole_milliseconds() {
        let case = fault_case(1, 16, DEFAULT_RATE_PER_S);
        assert_eq!(case.truth.style, Some(TraceStyle::NoStatus));
        let spans: Vec<_> = case
            .records
            .iter()
            .filter(|r| r.expect == Expect::Traces)
            .flat_map(|r| ExportTraceServiceRequest::decode(&r.payload[..]).unwrap().resource_spans)
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect();
        assert!(!spans.is_empty());
        for span in spans {
            assert_eq!((span.kind, span.status), (0, None));
            assert_eq!(span.start_time_unix_nano % 1_000_000, 0);
            assert_eq!(span.end_time_unix_nano % 1_000_000, 0);
        }
    }

    #[test]
    fn a_downed_service_emits_no_spans_once_down() {
        let case = fault_case(3, 7, DEFAULT_RATE_PER_S);
        assert_eq!(case.truth.fault, "dependency_down");
        let fault_ns = super::super::DEFAULT_START_NS + case.baseline_s * 1_000_000_000;
        let services_after: std::collections::BTreeSet<String> = case
            .records
            .iter()
            .filter(|r| r.expect == Expect::Traces && r.time_ns > fault_ns + 2_000_000_000)
            .flat_map(|r| ExportTraceServiceRequest::decode(r.payload.as_slice()).unwrap().resource_spans)
            .filter_map(|rs| rs.resource)
            .flat_map(|r| r.attributes)
            .filter(|kv| kv.key == "service.name")
            .filter_map(|kv| match kv.value?.value? {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => Some(s),
                _ => None,
            })
            .collect();
        assert!(!services_after.contains(&case.truth.faulty_service), "{services_after:?}");
    }
}
