//! Property tests: random, truncated and type-confused inputs never panic a decoder, and
//! the selective OTLP decoder agrees with the generated types on every request.

use devloom_schemas::codec::{DecodeOptions, Expect, Message, decode, otlp, otlp_fast, otlp_json};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use proptest::prelude::*;
use prost::Message as _;
use serde_json::Value;

const EXPECTS: [Expect; 5] = [Expect::Traces, Expect::Alerts, Expect::Deploys, Expect::Catalog, Expect::Any];

/// `fixtures/` of this checkout. Read when the test runs (cargo sets the variable), not
/// baked in when it compiles: a test binary reused from a build of another checkout
/// (a shared target directory) would otherwise read that one's path.
fn fixture(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    std::path::Path::new(&dir).join("fixtures").join(name)
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = fixture("");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn decode_everywhere(payload: &[u8], headers: &[(&str, &[u8])]) {
    for expect in EXPECTS {
        let msg = Message { payload, headers, fallback_time_ns: Some(1), key: Some(b"source") };
        let _ = decode(&msg, expect, &DecodeOptions::default(), &mut Vec::new());
    }
}

/// Keys that steer a JSON document into each decoder.
const KEYS: &[&str] = &[
    "apiVersion",
    "services",
    "relationships",
    "version",
    "alerts",
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "fingerprint",
    "event_action",
    "dedup_key",
    "payload",
    "summary",
    "source",
    "severity",
    "timestamp",
    "custom_details",
    "service",
    "revision",
    "time",
    "kind",
    "metadata",
    "history",
    "deployedAt",
    "deployment_status",
    "deployment",
    "repository",
    "state",
    "created_at",
    "sha",
    "specversion",
    "type",
    "id",
    "data",
    "data_base64",
    "datacontenttype",
    "resourceSpans",
    "scopeSpans",
    "spans",
    "traceId",
    "spanId",
    "resource",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "starts_at",
    "name",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            Just("4".to_string()),
            Just("firing".to_string()),
            Just("resolved".to_string()),
            Just("1.0".to_string()),
            Just("Application".to_string()),
            Just("2026-11-27T09:00:00Z".to_string()),
            Just("5b8efff798038103d269b633813fc60c".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kvs| {
                Value::Object(kvs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// Replaces the value at a pseudo-random path of `doc` with `replacement`.
fn confuse(doc: &mut Value, mut pick: u64, replacement: Value) {
    let mut node = doc;
    loop {
        let n = match node {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if n == 0 || pick.is_multiple_of(5) {
            *node = replacement;
            return;
        }
        let i = (pick % n as u64) as usize;
        pick /= 7;
        node = match node {
            Value::Object(m) => m.values_mut().nth(i).unwrap(),
            Value::Array(a) => &mut a[i],
            _ => unreachable!(),
        };
    }
}

fn id_bytes(len_choice: u8, fill: u8, full: usize) -> Vec<u8> {
    match len_choice % 8 {
        0 => Vec::new(),
        1 => vec![fill; full / 2],
        _ => vec![fill; full],
    }
}

fn attribute() -> impl Strategy<Value = KeyValue> {
    let key = prop::sample::select(vec![
        "http.status_code",
        "http.response.status_code",
        "rpc.grpc.status_code",
        "rpc.response.status_code",
        "peer.service",
        "service.peer.name",
        "server.address",
        "db.system",
        "db.system.name",
        "messaging.destination",
        "messaging.destination.name",
        "rpc.service",
        "http.route",
        "user.id",
    ]);
    let value = prop_oneof![
        "[a-z0-9]{0,6}".prop_map(any_value::Value::StringValue),
        prop_oneof![Just(0i64), Just(200), Just(503), Just(14), any::<i64>()]
            .prop_map(any_value::Value::IntValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
    ];
    (key, prop::option::of(value)).prop_map(|(k, v)| KeyValue {
        key: k.to_string(),
        value: Some(AnyValue { value: v }),
        ..Default::default()
    })
}

fn otlp_span() -> impl Strategy<Value = Span> {
    (
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()),
        -1i32..7,
        (any::<u64>(), any::<u64>()),
        prop::collection::vec(attribute(), 0..8),
        prop::option::of(0i32..4),
        prop::collection::vec((any::<u8>(), any::<u8>()), 0..3),
        "[ -~]{0,10}",
    )
        .prop_map(|((t, s, p, fill), kind, (start, end), attributes, status, links, name)| Span {
            trace_id: id_bytes(t, fill | 1, 16),
            span_id: id_bytes(s, fill | 2, 8),
            parent_span_id: id_bytes(p, fill, 8),
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: status.map(|code| Status { message: String::new(), code }),
            links: links
                .into_iter()
                .map(|(a, b)| span::Link {
                    trace_id: id_bytes(a, 3, 16),
                    span_id: id_bytes(b, 4, 8),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
}

fn otlp_request() -> impl Strategy<Value = otlp::ExportTraceServiceRequest> {
    let resource = prop::collection::vec(
        (prop::sample::select(vec!["service.name", "cloud.region", "host.name"]), "[a-z]{0,5}").prop_map(
            |(k, v)| KeyValue {
                key: k.to_string(),
                value: Some(AnyValue { value: Some(any_value::Value::StringValue(v)) }),
                ..Default::default()
            },
        ),
        0..4,
    );
    let rs =
        (prop::option::of(resource), prop::collection::vec(prop::collection::vec(otlp_span(), 0..4), 0..3))
            .prop_map(|(res, scopes)| ResourceSpans {
                resource: res.map(|attributes| Resource { attributes, ..Default::default() }),
                scope_spans: scopes
                    .into_iter()
                    .map(|spans| ScopeSpans { spans, ..Default::default() })
                    .collect(),
                ..Default::default()
            });
    prop::collection::vec(rs, 0..3)
        .prop_map(|resource_spans| otlp::ExportTraceServiceRequest { resource_spans })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everywhere(&bytes, &[]);
        decode_everywhere(&bytes, &[("content-type", b"application/x-protobuf")]);
        decode_everywhere(&bytes, &[("ce_specversion", b"1.0"), ("content-type", b"application/json")]);
    }

    #[test]
    fn truncated_fixtures_never_panic(cut in 0usize..4096, which in 0usize..64) {
        let all = fixtures();
        let bytes = &all[which % all.len()];
        decode_everywhere(&bytes[..cut.min(bytes.len())], &[]);
        let proto = otlp_fast_fixture();
        decode_everywhere(&proto[..cut.min(proto.len())], &[]);
    }

    #[test]
    fn type_confused_fixtures_never_panic(which in 0usize..64, pick in any::<u64>(), replacement in json_value()) {
        let all = fixtures();
        let mut doc: Value = serde_json::from_slice(&all[which % all.len()]).unwrap();
        confuse(&mut doc, pick, replacement);
        decode_everywhere(&serde_json::to_vec(&doc).unwrap(), &[]);
        let envelope = serde_json::json!({"specversion":"1.0","type":"t","source":"s","id":"i","data":doc});
        decode_everywhere(&serde_json::to_vec(&envelope).unwrap(), &[]);
    }

    #[test]
    fn random_json_never_panics(doc in json_value()) {
        decode_everywhere(&serde_json::to_vec(&doc).unwrap(), &[]);
    }

    /// Differential test: the selective decoder equals the generated types.
    #[test]
    fn fast_otlp_decoder_equals_reference(request in otlp_request()) {
        let bytes = request.encode_to_vec();
        let (mut fast, mut reference) = (Vec::new(), Vec::new());
        let f = otlp_fast::decode(&bytes, &mut fast);
        let r = otlp::decode_reference(&bytes, &mut reference);
        prop_assert_eq!(f.is_ok(), r.is_ok(), "fast {:?} vs reference {:?}", f, r);
        if r.is_ok() {
            prop_assert_eq!(fast, reference);
        }
    }

    /// Differential test of the selective JSON decoder: a request as the generated types
    /// write it as JSON reads the same through both, errors included.
    #[test]
    fn selective_otlp_json_equals_reference(request in otlp_request(), upper in any::<bool>()) {
        let mut json = serde_json::to_string(&request).unwrap();
        if upper {
            // Hex ids in upper case are the same ids.
            let doc: Value = serde_json::from_str(&json).unwrap();
            json = serde_json::to_string(&upper_ids(doc)).unwrap();
        }
        let mut reference = Vec::new();
        let r = otlp::decode_json_reference(json.as_bytes(), &mut reference);
        let mut selective = Vec::new();
        let s = otlp_json::decode(json.as_bytes(), &mut selective);
        match r {
            Ok(()) => {
                prop_assert!(s.is_ok(), "{:?}", s);
                prop_assert_eq!(selective, reference);
            }
            Err(e) => prop_assert_eq!(s.unwrap_err().to_string(), e.to_string()),
        }
    }

    /// Fixtures with a value swapped for another: whatever the generated types still
    /// accept, the selective decoder reads identically.
    #[test]
    fn selective_otlp_json_accepts_what_reference_accepts(pick in any::<u64>(), replacement in json_value()) {
        let json = std::fs::read(fixture("otlp_trace.json")).unwrap();
        let mut doc: Value = serde_json::from_slice(&json).unwrap();
        confuse(&mut doc, pick, replacement);
        let bytes = serde_json::to_vec(&doc).unwrap();
        let mut reference = Vec::new();
        if otlp::decode_json_reference(&bytes, &mut reference).is_ok() {
            let mut selective = Vec::new();
            let s = otlp_json::decode(&bytes, &mut selective);
            prop_assert!(s.is_ok(), "{:?}", s);
            prop_assert_eq!(selective, reference);
        }
    }

    /// Random bytes the generated types accept are read identically by the fast path.
    #[test]
    fn fast_otlp_decoder_accepts_what_reference_accepts(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let (mut fast, mut reference) = (Vec::new(), Vec::new());
        if otlp::decode_reference(&bytes, &mut reference).is_ok() {
            prop_assert!(otlp_fast::decode(&bytes, &mut fast).is_ok());
            prop_assert_eq!(fast, reference);
        }
    }
}

/// `doc` with every id string in upper case.
fn upper_ids(doc: Value) -> Value {
    match doc {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("traceId" | "spanId" | "parentSpanId", Value::String(s)) => {
                        (k, Value::String(s.to_uppercase()))
                    }
                    (_, v) => (k, upper_ids(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(upper_ids).collect()),
        other => other,
    }
}

fn otlp_fast_fixture() -> Vec<u8> {
    let json = std::fs::read(fixture("otlp_trace.json")).unwrap();
    serde_json::from_slice::<otlp::ExportTraceServiceRequest>(&json).unwrap().encode_to_vec()
}
