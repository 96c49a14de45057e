//! Fixture tests: one realistic payload per format, through [`decode`].

use prost::Message as _;

use super::*;
use crate::alert::{AlertSource, AlertStatus, Severity};
use crate::deploy::{ChangeKind, DeploySource};
use crate::span::SpanKind;
use crate::time::parse_rfc3339;
use crate::{Alert, Deploy, Span};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decode_all(msg: Message<'_>, expect: Expect) -> Result<(Format, Vec<Event>), DecodeError> {
    let mut out = Vec::new();
    let format = decode(&msg, expect, &DecodeOptions::default(), &mut out)?;
    Ok((format, out))
}

fn alerts(events: Vec<Event>) -> Vec<Alert> {
    events
        .into_iter()
        .map(|e| if let Event::Alert(a) = e { a } else { panic!("not an alert: {e:?}") })
        .collect()
}

fn deploys(events: Vec<Event>) -> Vec<Deploy> {
    events
        .into_iter()
        .map(|e| if let Event::Deploy(d) = e { d } else { panic!("not a deploy: {e:?}") })
        .collect()
}

fn spans(events: Vec<Event>) -> Vec<Span> {
    events.into_iter().map(|e| if let Event::Span(s) = e { s } else { panic!("not a span: {e:?}") }).collect()
}

fn ts(text: &str) -> u64 {
    parse_rfc3339(text).unwrap()
}

#[test]
fn alertmanager_multi_alert_payload_with_resolve() {
    let bytes = fixture("alertmanager_v4.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Alerts).unwrap();
    assert_eq!(format, Format::AlertmanagerV4);
    let a = alerts(events);
    assert_eq!(a.len(), 3);
    assert_eq!(
        (a[0].service.as_str(), a[0].severity, a[0].status),
        ("checkout", Severity::Critical, AlertStatus::Firing)
    );
    assert_eq!(a[0].fingerprint, "c5a1c2e4e0d2b3f1");
    assert_eq!(a[0].summary, "checkout 5xx ratio 12% over 5m (SLO 1%)");
    assert_eq!(a[0].ends_at_ns, None, "a firing alert's endsAt is a timeout, not an end");
    assert_eq!(a[0].labels["env"], "production");
    assert_eq!(a[1].service, "payments", "second label in the default list");
    assert_eq!(a[1].summary, "payments 5xx ratio 3%");
    assert_eq!((a[2].service.as_str(), a[2].status), ("cart", AlertStatus::Resolved));
    assert_eq!(a[2].ends_at_ns, Some(ts("2026-11-27T09:01:00Z")));
    assert_eq!(a[2].event_time_ns(), ts("2026-11-27T09:01:00Z"));
    assert!(a.iter().all(|x| x.source == AlertSource::Alertmanager));
}

#[test]
fn alertmanager_service_label_list_is_configurable() {
    let bytes = fixture("alertmanager_v4.json");
    let opts = DecodeOptions { alert_service_labels: vec!["alertname".into()], ..DecodeOptions::default() };
    let mut out = Vec::new();
    decode(&Message::bytes(&bytes), Expect::Alerts, &opts, &mut out).unwrap();
    assert_eq!(alerts(out)[0].service, "HighErrorRate");

    let opts = DecodeOptions { alert_service_labels: vec!["team".into()], ..DecodeOptions::default() };
    let err = decode(&Message::bytes(&bytes), Expect::Alerts, &opts, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Alertmanager webhook v4: 3 of 3 items invalid: invalid at alerts[0].labels: no service label (tried \
         team); invalid at alerts[1].labels: no service label (tried team); invalid at alerts[2].labels: no \
         service label (tried team)"
    );
}

#[test]
fn one_bad_alert_does_not_take_the_good_ones_of_its_webhook_with_it() {
    let mut hook: serde_json::Value = serde_json::from_slice(&fixture("alertmanager_v4.json")).unwrap();
    let alerts_json = hook["alerts"].as_array_mut().unwrap();
    let total = alerts_json.len();
    alerts_json[1]["labels"] = serde_json::json!({"alertname": "NoService", "service": ""});
    hook["commonLabels"] = serde_json::json!({});
    let bytes = serde_json::to_vec(&hook).unwrap();
    let mut out = Vec::new();
    let err =
        decode(&Message::bytes(&bytes), Expect::Alerts, &DecodeOptions::default(), &mut out).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Alertmanager webhook v4: 1 of {total} items invalid: invalid at alerts[1].labels: no service label \
             (tried service, service_name, app, job)"
        ),
        "an empty service label names nothing"
    );
    assert_eq!(out.len(), total - 1, "the other alerts are decoded");
}

/// The v3 webhook as PagerDuty's webhook overview documents it: `event.event_type`,
/// `event.occurred_at`, `event.data` an `incident` with `incident_key`, `service.summary`,
/// `priority.summary`, `urgency`.
#[test]
fn pagerduty_webhook_v3_incident_events() {
    let bytes = fixture("pagerduty_webhook_v3.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Alerts).unwrap();
    assert_eq!(format, Format::PagerDutyWebhookV3);
    let a = &alerts(events)[0];
    assert_eq!(
        a.fingerprint, "d3640fbd41094207a1c11e58e46b1662",
        "the incident_key, as the Events API's dedup_key"
    );
    assert_eq!(
        (a.service.as_str(), a.status, a.severity),
        ("payments", AlertStatus::Firing, Severity::Critical)
    );
    assert_eq!(a.starts_at_ns, ts("2026-11-27T03:10:05.169Z"));
    assert_eq!(a.summary, "payments: error rate above 5%");
    assert_eq!(
        (
            a.labels["incident_id"].as_str(),
            a.labels["escalation_policy"].as_str(),
            a.labels["teams"].as_str()
        ),
        ("PGR0VU2", "Default", "Engineering")
    );

    let text = String::from_utf8(bytes).unwrap();
    let resolved = text
        .replace("\"incident.triggered\"", "\"incident.resolved\"")
        .replace("\"status\": \"triggered\"", "\"status\": \"resolved\"")
        .replace("03:10:05.169Z", "03:40:00Z");
    let a = &alerts(decode_all(Message::bytes(resolved.as_bytes()), Expect::Alerts).unwrap().1)[0];
    assert_eq!(a.status, AlertStatus::Resolved);
    assert_eq!(
        (a.starts_at_ns, a.ends_at_ns),
        (ts("2026-11-27T03:10:05Z"), Some(ts("2026-11-27T03:40:00Z")))
    );

    let note = r#"{"event":{"id":"1","event_type":"incident.annotated","resource_type":"incident",
        "occurred_at":"2026-11-27T03:11:00Z","data":{"id":"P2LA89X","type":"incident_note","content":"looking"}}}"#;
    let (format, events) = decode_all(Message::bytes(note.as_bytes()), Expect::Alerts).unwrap();
    assert_eq!((format, events.len()), (Format::PagerDutyWebhookV3, 0), "a note carries no alert state");

    let bad = text.replace("\"status\": \"triggered\"", "\"status\": \"snoozed\"");
    let err = decode_all(Message::bytes(bad.as_bytes()), Expect::Alerts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PagerDuty webhook v3: invalid at event.data.status: expected triggered, acknowledged or resolved, got \"snoozed\""
    );
}

#[test]
fn pagerduty_trigger_acknowledge_resolve() {
    let bytes = fixture("pagerduty_trigger.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Alerts).unwrap();
    assert_eq!(format, Format::PagerDutyV2);
    let a = &alerts(events)[0];
    assert_eq!(a.fingerprint, "srv01/HTTP");
    assert_eq!(a.service, "orders-db", "custom_details.service wins over component");
    assert_eq!(a.status, AlertStatus::Firing);
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.starts_at_ns, ts("2026-11-27T03:10:05Z"));
    assert_eq!(a.labels["class"], "disk");
    assert_eq!(a.labels["ping time"], "1500");

    // A resolve has no payload and no time: the transport's timestamp is used, and
    // without one (a file) it is left for the engine to stamp (0).
    let bytes = fixture("pagerduty_resolve.json");
    let a = &alerts(decode_all(Message::bytes(&bytes), Expect::Alerts).unwrap().1)[0];
    assert_eq!((a.status, a.starts_at_ns, a.ends_at_ns), (AlertStatus::Resolved, 0, Some(0)));
    let trigger = br#"{"routing_key":"R","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"error"}}"#;
    let err = decode_all(Message::bytes(trigger), Expect::Alerts).unwrap_err();
    assert!(err.to_string().contains("payload.timestamp"), "a trigger still needs a time: {err}");
    let msg = Message { payload: &bytes, headers: &[], fallback_time_ns: Some(42), key: None };
    let a = &alerts(decode_all(msg, Expect::Alerts).unwrap().1)[0];
    assert_eq!(
        (a.fingerprint.as_str(), a.status, a.ends_at_ns),
        ("srv01/HTTP", AlertStatus::Resolved, Some(42))
    );

    let ack = br#"{"routing_key":"R","dedup_key":"srv01/HTTP","event_action":"acknowledge"}"#;
    let msg = Message { payload: ack, headers: &[], fallback_time_ns: Some(7), key: None };
    let a = &alerts(decode_all(msg, Expect::Alerts).unwrap().1)[0];
    assert_eq!(a.status, AlertStatus::Acknowledged);
    assert!(a.status.is_active());
}

#[test]
fn devloom_alert_and_deploy_json() {
    let bytes = fixture("devloom_alert.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Alerts).unwrap();
    assert_eq!(format, Format::DevloomAlert);
    let a = alerts(events).remove(0);
    assert_eq!((a.service.as_str(), a.fingerprint.as_str()), ("checkout", "checkout-5xx"));
    // Encoding and decoding again is the identity.
    let again = encode_alert(&a);
    assert_eq!(alerts(decode_all(Message::bytes(again.as_bytes()), Expect::Alerts).unwrap().1)[0], a);

    let bytes = fixture("devloom_deploy.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Deploys).unwrap();
    assert_eq!(format, Format::DevloomDeploy);
    let d = deploys(events).remove(0);
    assert_eq!(d.previous_revision.as_deref(), Some("v41"));
    assert_eq!(d.kind, ChangeKind::Deploy);
    assert!(d.spec_after.as_deref().unwrap().contains("payments:v42"));
    let again = encode_deploy(&d);
    assert_eq!(deploys(decode_all(Message::bytes(again.as_bytes()), Expect::Deploys).unwrap().1)[0], d);
}

#[test]
fn argocd_history_gives_previous_revision_and_specs() {
    let bytes = fixture("argocd_application.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Deploys).unwrap();
    assert_eq!(format, Format::ArgoCdApplication);
    let d = deploys(events).remove(0);
    assert_eq!(d.service, "payments");
    assert_eq!(d.environment.as_deref(), Some("production"));
    assert_eq!((d.revision.as_str(), d.previous_revision.as_deref()), ("9f1c2ab", Some("77aa01c")));
    assert_eq!(d.author.as_deref(), Some("ana"));
    assert_eq!(d.time_ns, ts("2026-11-27T08:58:00Z"));
    assert_eq!(d.kind, ChangeKind::Deploy);
    assert_eq!(d.source, DeploySource::ArgoCd);
    // The history entry's source, as YAML.
    assert!(d.spec_before.as_deref().unwrap().contains("value: v41\n"), "{:?}", d.spec_before);
    assert!(d.spec_after.as_deref().unwrap().contains("value: v42\n"));
    // What `argocd app rollback` needs.
    assert_eq!(d.tool, Some(crate::deploy::RolloutTool::ArgoCd));
    assert_eq!(
        (d.release.as_deref(), d.history_id, d.previous_history_id),
        (Some("payments-prod"), Some(12), Some(11))
    );
}

#[test]
fn argocd_redeploying_an_older_revision_is_a_rollback() {
    let text = String::from_utf8(fixture("argocd_application.json")).unwrap();
    let mut app: serde_json::Value = serde_json::from_str(&text).unwrap();
    let history = app["status"]["history"].as_array_mut().unwrap();
    history.push(serde_json::json!({"id": 13, "revision": "77aa01c", "deployedAt": "2026-11-27T09:10:00Z"}));
    let bytes = serde_json::to_vec(&app).unwrap();
    let d = deploys(decode_all(Message::bytes(&bytes), Expect::Deploys).unwrap().1).remove(0);
    assert_eq!(d.kind, ChangeKind::Rollback);
    assert_eq!(d.previous_revision.as_deref(), Some("9f1c2ab"));
}

#[test]
fn github_deployment_status_success_only() {
    let bytes = fixture("github_deployment_status.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Deploys).unwrap();
    assert_eq!(format, Format::GithubDeploymentStatus);
    let d = deploys(events).remove(0);
    assert_eq!(d.service, "cart");
    assert_eq!(d.revision, "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d");
    assert_eq!(d.author.as_deref(), Some("octocat"));
    assert_eq!(d.environment.as_deref(), Some("production"));
    assert_eq!(d.time_ns, ts("2026-11-27T09:01:30Z"));

    let pending = String::from_utf8(bytes).unwrap().replace("\"success\"", "\"in_progress\"");
    let (_, events) = decode_all(Message::bytes(pending.as_bytes()), Expect::Deploys).unwrap();
    assert!(events.is_empty(), "only a successful deployment is a change");
}

#[test]
fn otlp_json_hex_case_int_enums_and_string_or_number_int64() {
    let bytes = fixture("otlp_trace.json");
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Traces).unwrap();
    assert_eq!(format, Format::OtlpJson);
    let s = spans(events);
    assert_eq!(s.len(), 4);
    assert_eq!(s[0].trace_id.to_string(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(s[0].trace_id, s[1].trace_id, "upper- and lower-case hex are the same id");
    assert_eq!(s[0].parent_span_id, None);
    assert_eq!(s[1].parent_span_id, Some(s[0].span_id));
    assert_eq!(&*s[0].service, "frontend");
    assert_eq!(s[0].region.as_deref(), Some("eu-west-1"));
    assert_eq!(s[0].version.as_deref(), Some("2.4.1"), "resource service.version");
    assert_eq!(
        s[0].environment.as_deref(),
        Some("production"),
        "deployment.environment.name wins over the older deployment.environment, in any order"
    );
    assert_eq!((s[0].kind, s[1].kind, s[3].kind), (SpanKind::Server, SpanKind::Client, SpanKind::Consumer));
    assert_eq!(s[0].end_ns - s[0].start_ns, 120_000_000, "string and number int64 both read");
    assert!(!s[0].failed);
    assert!(s[1].failed);
    assert_eq!(s[1].peer.peer_service.as_deref(), Some("cart"));
    assert_eq!(s[1].peer.server_address.as_deref(), Some("cart.internal"));
    assert_eq!(&*s[2].service, "cart");
    assert_eq!(s[2].region, None);
    assert_eq!((s[2].version.clone(), s[2].environment.clone()), (None, None));
    assert_eq!(s[2].peer.db_system.as_deref(), Some("postgresql"), "new name wins");
    assert_eq!(s[3].links.len(), 1);
    assert_eq!(s[3].links[0].span_id, s[1].span_id);
    assert_eq!(s[3].peer.messaging_destination.as_deref(), Some("orders"));
    assert!(s[3].failed, "gRPC UNAVAILABLE");
}

#[test]
fn a_kind_less_span_takes_its_kind_from_a_span_kind_tag_and_a_kind_field_wins_over_one() {
    let tagged = |kind: &str, tag: &str| {
        format!(
            r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"GET /",{kind}"startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{{"key":"span.kind","value":{{"stringValue":"{tag}"}}}}]}}"#
        )
    };
    let request = |spans: &[String]| {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        )
    };
    let json = request(&[tagged("", "client"), tagged(r#""kind":2,"#, "client"), tagged("", "LLM")]);
    let from_json = spans(decode_all(Message::bytes(json.as_bytes()), Expect::Traces).unwrap().1);
    let kinds: Vec<SpanKind> = from_json.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SpanKind::Client, SpanKind::Server, SpanKind::Unspecified]);
    let official: otlp::ExportTraceServiceRequest = serde_json::from_str(&json).unwrap();
    let bytes = official.encode_to_vec();
    let mut reference = Vec::new();
    otlp::decode_reference(&bytes, &mut reference).unwrap();
    assert_eq!(spans(reference), from_json, "the reference decoder reads the tag the same way");
    let fast = spans(decode_all(Message::bytes(&bytes), Expect::Traces).unwrap().1);
    assert_eq!(fast, from_json, "and the selective protobuf decoder");
}

/// A request built with the official generated types, as the Collector's Kafka exporter
/// would serialize it.
pub(crate) fn official_request() -> otlp::ExportTraceServiceRequest {
    let json = String::from_utf8(fixture("otlp_trace.json")).unwrap();
    serde_json::from_str(&json).unwrap()
}

#[test]
fn otlp_protobuf_from_official_types_fast_equals_reference() {
    let bytes = official_request().encode_to_vec();
    let msg = Message {
        payload: &bytes,
        headers: &[("content-type", b"application/x-protobuf")],
        fallback_time_ns: None,
        key: None,
    };
    let (format, fast) = decode_all(msg, Expect::Traces).unwrap();
    assert_eq!(format, Format::OtlpProtobuf);
    let mut reference = Vec::new();
    otlp::decode_reference(&bytes, &mut reference).unwrap();
    assert_eq!(fast, reference);
    let json = decode_all(Message::bytes(&fixture("otlp_trace.json")), Expect::Traces).unwrap().1;
    assert_eq!(fast, json, "protobuf and JSON of the same request agree");
    // Sniffed without a content type too.
    assert_eq!(decode_all(Message::bytes(&bytes), Expect::Traces).unwrap().1, fast);
}

#[test]
fn cloudevents_binary_mode() {
    let bytes = fixture("devloom_deploy.json");
    let headers: [(&str, &[u8]); 6] = [
        ("ce_specversion", b"1.0"),
        ("ce_type", b"dev.devloom.deploy.v1"),
        ("ce_source", b"/ci/payments"),
        ("ce_id", b"42"),
        ("ce_time", b"2026-11-27T08:58:01Z"),
        ("content-type", b"application/json"),
    ];
    let msg = Message { payload: &bytes, headers: &headers, fallback_time_ns: None, key: None };
    let (format, events) = decode_all(msg, Expect::Deploys).unwrap();
    assert_eq!(format, Format::DevloomDeploy);
    assert_eq!(deploys(events)[0].revision, "v42");

    // Protobuf data in binary mode, found through content-type.
    let otlp = official_request().encode_to_vec();
    let headers: [(&str, &[u8]); 2] = [("ce_specversion", b"1.0"), ("content-type", b"application/protobuf")];
    let msg = Message { payload: &otlp, headers: &headers, fallback_time_ns: None, key: None };
    assert_eq!(decode_all(msg, Expect::Traces).unwrap().1.len(), 4);

    let headers: [(&str, &[u8]); 1] = [("ce_specversion", b"0.3")];
    let msg = Message { payload: &bytes, headers: &headers, fallback_time_ns: None, key: None };
    assert_eq!(
        decode_all(msg, Expect::Deploys).unwrap_err().to_string(),
        "CloudEvents structured JSON: invalid at header ce_specversion: unsupported specversion \"0.3\" (want \"1.0\")"
    );
}

#[test]
fn cloudevents_structured_mode_json_and_base64_data() {
    let am: serde_json::Value = serde_json::from_slice(&fixture("alertmanager_v4.json")).unwrap();
    let envelope = serde_json::json!({
        "specversion": "1.0", "type": "io.prometheus.alertmanager.v4", "source": "/alertmanager",
        "id": "a-1", "time": "2026-11-27T09:02:14Z", "datacontenttype": "application/json", "data": am
    });
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let headers: [(&str, &[u8]); 1] = [("content-type", b"application/cloudevents+json; charset=utf-8")];
    let msg = Message { payload: &bytes, headers: &headers, fallback_time_ns: None, key: None };
    let (format, events) = decode_all(msg, Expect::Alerts).unwrap();
    assert_eq!(format, Format::AlertmanagerV4);
    assert_eq!(events.len(), 3);

    use base64::Engine as _;
    let otlp = official_request().encode_to_vec();
    let envelope = serde_json::json!({
        "specversion": "1.0", "type": "otlp.traces", "source": "/collector", "id": "t-1",
        "datacontenttype": "application/x-protobuf",
        "data_base64": base64::prelude::BASE64_STANDARD.encode(&otlp)
    });
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let (format, events) = decode_all(Message::bytes(&bytes), Expect::Traces).unwrap();
    assert_eq!(format, Format::OtlpProtobuf);
    assert_eq!(events.len(), 4);

    // PagerDuty resolve inside an envelope takes the envelope's time.
    let pd: serde_json::Value = serde_json::from_slice(&fixture("pagerduty_resolve.json")).unwrap();
    let envelope = serde_json::json!({
        "specversion": "1.0", "type": "pd", "source": "/pd", "id": "p-1", "time": "2026-11-27T09:30:00Z", "data": pd
    });
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let a = alerts(decode_all(Message::bytes(&bytes), Expect::Alerts).unwrap().1).remove(0);
    assert_eq!(a.ends_at_ns, Some(ts("2026-11-27T09:30:00Z")));
}

#[test]
fn errors_name_the_format_and_the_path() {
    let bad = br#"{"version":"4","alerts":[{"status":"firing","labels":{"service":"x"},"startsAt":17}]}"#;
    let err = decode_all(Message::bytes(bad), Expect::Alerts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Alertmanager webhook v4: invalid at alerts[0].startsAt: invalid type: integer `17`, expected a string"
    );

    let bad =
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"0102030405060708"}]}]}]}"#;
    let err = decode_all(Message::bytes(bad), Expect::Traces).unwrap_err();
    assert_eq!(
        err.to_string(),
        "OTLP JSON: invalid at resourceSpans[0].scopeSpans[0].spans[0].traceId: trace id must be 16 bytes"
    );

    let err = decode_all(Message::bytes(br#"{"hello":"world"}"#), Expect::Alerts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unrecognized payload for alerts input: JSON object with keys [hello] matches no known format \
         (accepted: Alertmanager webhook v4, PagerDuty Events v2, PagerDuty webhook v3, Devloom alert JSON, \
         CloudEvents structured JSON)"
    );

    let err = decode_all(Message::bytes(&fixture("devloom_alert.json")), Expect::Traces).unwrap_err();
    assert_eq!(err.to_string(), "Devloom alert JSON is not accepted on a traces input");

    let err = decode_all(Message::bytes(b"\x0a\x04\x0a\x03\x0a\x01"), Expect::Traces).unwrap_err();
    assert_eq!(err.to_string(), "OTLP protobuf: invalid at resourceSpans[0].resource: truncated message");

    let err = decode_all(Message::bytes(b"not json"), Expect::Alerts).unwrap_err();
    assert!(
        err.to_string().starts_with("unrecognized payload for alerts input: 8 bytes starting \"not json\"")
    );
}

/// `official_request()` behind a first ResourceSpans without spans whose encoded length
/// grows with `pad`: the request's second byte (that length's first varint byte) takes
/// every value from about 12 up, `{` (0x7b) and `[` (0x5b) among them.
pub(crate) fn request_with_padding(pad: usize) -> Vec<u8> {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
    let mut request = official_request();
    let value = AnyValue { value: Some(any_value::Value::StringValue("x".repeat(pad))) };
    let resource = Resource {
        attributes: vec![KeyValue { key: "pad".into(), value: Some(value), ..KeyValue::default() }],
        ..Resource::default()
    };
    request.resource_spans.insert(0, ResourceSpans { resource: Some(resource), ..ResourceSpans::default() });
    request.encode_to_vec()
}

#[test]
fn protobuf_is_sniffed_as_protobuf_whatever_its_first_length_byte() {
    let reference =
        spans(decode_all(Message::bytes(&official_request().encode_to_vec()), Expect::Traces).unwrap().1);
    let mut seen = std::collections::BTreeSet::new();
    for pad in 0..400 {
        let bytes = request_with_padding(pad);
        assert_eq!(bytes[0], 0x0a);
        seen.insert(bytes[1]);
        for expect in [Expect::Traces, Expect::Any] {
            let (format, events) = decode_all(Message::bytes(&bytes), expect)
                .unwrap_or_else(|e| panic!("length byte {:#04x}: {e}", bytes[1]));
            assert_eq!(format, Format::OtlpProtobuf, "length byte {:#04x}", bytes[1]);
            assert_eq!(spans(events), reference);
        }
    }
    let lowest = *seen.iter().next().unwrap();
    assert!(lowest < 0x20, "lengths start low: {lowest:#04x}");
    assert!((lowest..=0xff).all(|b| seen.contains(&b)), "every length byte from {lowest:#04x} up is tested");
}

#[test]
fn span_times_beyond_2262_are_rejected_not_clamped() {
    let mut request = official_request();
    request.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = u64::MAX;
    let bytes = request.encode_to_vec();
    for decoded in [decode_all(Message::bytes(&bytes), Expect::Traces), {
        let mut out = Vec::new();
        otlp::decode_reference(&bytes, &mut out).map(|()| (Format::OtlpProtobuf, out))
    }] {
        let err = decoded.unwrap_err().to_string();
        assert_eq!(
            err,
            "OTLP protobuf: invalid at resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano: out of range: \
             after 2262-04-11, the latest time Devloom represents"
        );
    }
}

#[test]
fn a_repeated_key_or_an_empty_service_is_refused_with_the_reason() {
    let hook = br#"{"version":"4","status":"firing","alerts":[{"status":"firing","status":"resolved","labels":{"service":"checkout"},"startsAt":"2026-11-27T09:00:00Z"}]}"#;
    let e = decode_all(Message::bytes(hook), Expect::Alerts).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "unrecognized payload for alerts input: an object repeats the key \"status\" (which value was meant is unknown) at line 1 column"
        ),
        "{e}"
    );
    let deploy = br#"{"service":" ","revision":"v2","time":"2026-11-27T09:00:00Z"}"#;
    let e = decode_all(Message::bytes(deploy), Expect::Deploys).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Devloom deploy JSON: invalid at service: is empty: a change must name its service"
    );
}

#[test]
fn otlp_json_read_straight_from_its_bytes_still_refuses_a_repeated_field_and_trailing_data() {
    let span = r#"{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"GET /","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}"#;
    let doc = |spans: &str| format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    let (format, events) = decode_all(Message::bytes(doc(span).as_bytes()), Expect::Traces).unwrap();
    assert_eq!((format, events.len()), (Format::OtlpJson, 1));
    let twice = span.replace(r#""kind":2"#, r#""kind":2,"kind":3"#);
    let e = decode_all(Message::bytes(doc(&twice).as_bytes()), Expect::Traces).unwrap_err();
    assert_eq!(
        e.to_string(),
        "OTLP JSON: invalid at resourceSpans[0].scopeSpans[0].spans[0]: duplicate field `kind` at line 1 column 147"
    );
    let trailing = doc(span) + " {}";
    let e = decode_all(Message::bytes(trailing.as_bytes()), Expect::Traces).unwrap_err();
    assert!(e.to_string().starts_with("OTLP JSON: invalid at .: trailing characters"), "{e}");
    // What JSON forbids inside strings is refused, with serde_json's words, whichever
    // parser read the document first.
    for (bad, says) in [
        ("GET\u{1}/", "control character (\\u0000-\\u001F) found while parsing a string"),
        ("GET \\x41", "invalid escape"),
        ("GET \\ud800", "hex escape"),
    ] {
        let doc = doc(&span.replace("GET /", bad));
        let e = decode_all(Message::bytes(doc.as_bytes()), Expect::Traces).unwrap_err().to_string();
        assert!(e.starts_with("OTLP JSON: invalid at resourceSpans[0].scopeSpans[0].spans[0].name: "), "{e}");
        assert!(e.contains(says), "{e}");
    }
    // On an alerts input the same document is still refused as the wrong family.
    let e = decode_all(Message::bytes(doc(span).as_bytes()), Expect::Alerts).unwrap_err();
    assert_eq!(e.to_string(), "OTLP JSON is not accepted on a alerts input");
}
