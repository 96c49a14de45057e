//! The receivers as producers meet them: real payloads posted over loopback to a running
//! pipeline, the status codes and bodies each producer's documentation expects, and what
//! the pipeline then saw. Embedded mode here; Kafka mode is in `kafka.rs`.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use devloom::config::Config;
use devloom::core::{Pipeline, RawRecord, RunSummary};
use devloom::http::{HttpConfig, Server, TelemetryConfig};
use devloom::receivers::intake::Queue;
use devloom::receivers::webhooks::Receivers;
use devloom::receivers::{Intake, ReceiverAuth, ReceiversConfig, auth};
use devloom::simulator::{SimConfig, Simulator};
use devloom::sinks::Collected;
use devloom::sources::Decoding;
use devloom::sources::received::Received;
use devloom_operators::{Engine, EngineConfig};
use devloom_schemas::ImpactMap;
use devloom_schemas::codec::{DecodeOptions, Expect};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/fixtures").join(name))
        .unwrap()
}

/// A pipeline fed by the receivers, on free loopback ports.
struct Devloom {
    server: Server,
    stop: Arc<AtomicBool>,
    run: Option<JoinHandle<(Collected, RunSummary)>>,
    /// The queue, held unread when the operator loop is not started.
    _unread: Option<Queue>,
}

impl Devloom {
    fn start(receivers: ReceiversConfig) -> Self {
        Self::with(receivers, true)
    }

    fn with(receivers: ReceiversConfig, run: bool) -> Self {
        let config = Config {
            http: HttpConfig { listen: "127.0.0.1:0".into(), ..HttpConfig::default() },
            telemetry: TelemetryConfig { enabled: false, ..TelemetryConfig::default() },
            receivers: ReceiversConfig {
                enabled: true,
                otlp_http_listen: "127.0.0.1:0".into(),
                otlp_grpc_listen: "127.0.0.1:0".into(),
                ..receivers
            },
            ..Config::default()
        };
        let (intake, queue) = Intake::embedded(&config);
        let server =
            Server::start(&config, Some(Receivers::new(config.receivers.clone(), intake))).unwrap().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (run, unread) = if run {
            let mut source = Received::new(queue, stop.clone());
            let handle = std::thread::spawn(move || {
                let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
                pipeline.run(&mut source).unwrap();
                pipeline.finish().unwrap()
            });
            (Some(handle), None)
        } else {
            (None, Some(queue))
        };
        Self { server, stop, run, _unread: unread }
    }

    fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    fn otlp(&self) -> String {
        format!("http://{}/v1/traces", self.server.otlp_addr().unwrap())
    }

    /// Stops as SIGTERM does: later requests are refused, everything accepted processed.
    fn finish(mut self) -> (Collected, RunSummary) {
        self.stop.store(true, Ordering::Relaxed);
        self.run.take().unwrap().join().unwrap()
    }
}

#[path = "common/agent.rs"]
mod agent;
use agent::agent;

/// Posts `body` with `headers`; the status, the headers asked for, and the body.
fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>, ureq::http::HeaderMap) {
    let mut request = agent().post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.body_mut().read_to_vec().unwrap(), headers)
}

fn post_json(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let (status, body, _) = post(url, &all, body);
    (
        status,
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body))),
    )
}

/// An Alertmanager v4 webhook as Alertmanager's documentation shows it: grouped alerts,
/// `send_resolved` sending the resolved state later.
const ALERTMANAGER: &str = r#"{
  "version": "4",
  "groupKey": "{}:{alertname=\"HighErrorRate\"}",
  "truncatedAlerts": 0,
  "status": "firing",
  "receiver": "devloom",
  "groupLabels": {"alertname": "HighErrorRate"},
  "commonLabels": {"alertname": "HighErrorRate", "severity": "critical"},
  "commonAnnotations": {"summary": "5xx above 5%"},
  "externalURL": "http://alertmanager:9093",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "payments", "severity": "critical"},
     "annotations": {"summary": "payments 5xx above 5%"}, "startsAt": "2026-11-27T09:02:00Z",
     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": "a1b2c3"},
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "warning"},
     "annotations": {"summary": "checkout 5xx above 5%"}, "startsAt": "2026-11-27T09:02:10Z",
     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": "d4e5f6"}
  ]
}"#;

#[test]
fn each_webhook_takes_its_producers_payload_as_sent() {
    let devloom = Devloom::start(ReceiversConfig {
        pagerduty: ReceiverAuth { token: None, secret: Some("pd-secret".into()) },
        github: ReceiverAuth { token: None, secret: Some("gh-secret".into()) },
        ..ReceiversConfig::default()
    });

    // Alertmanager: any 2xx is success.
    let (status, body) = post_json(&devloom.api("/v1/receivers/alertmanager"), &[], ALERTMANAGER.as_bytes());
    assert_eq!((status, &body["accepted"]), (200, &Value::from(2)), "{body}");

    // PagerDuty v3: a valid X-PagerDuty-Signature is taken, an invalid one is not.
    let v3 = fixture("pagerduty_webhook_v3.json");
    let (header, signature) = auth::sign(devloom::receivers::Receiver::Pagerduty, "pd-secret", &v3);
    assert_eq!(header, "X-PagerDuty-Signature");
    assert!(signature.starts_with("v1="));
    let (status, body) = post_json(&devloom.api("/v1/receivers/pagerduty"), &[(header, &signature)], &v3);
    assert_eq!((status, &body["accepted"]), (200, &Value::from(1)), "{body}");
    let (_, forged) = auth::sign(devloom::receivers::Receiver::Pagerduty, "not-the-secret", &v3);
    let (status, body) = post_json(&devloom.api("/v1/receivers/pagerduty"), &[(header, &forged)], &v3);
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("X-PagerDuty-Signature".to_ascii_lowercase().as_str()));
    // An Events API v2 body on the same receiver gets the Events API's own answer.
    let (status, body) = post_json(
        &devloom.api("/v1/receivers/pagerduty"),
        &[(
            header,
            &auth::sign(
                devloom::receivers::Receiver::Pagerduty,
                "pd-secret",
                &fixture("pagerduty_trigger.json"),
            )
            .1,
        )],
        &fixture("pagerduty_trigger.json"),
    );
    assert_eq!(status, 202);
    assert_eq!((body["status"].as_str(), body["dedup_key"].as_str()), (Some("success"), Some("srv01/HTTP")));

    // GitHub: deployment_status signed with X-Hub-Signature-256; ping answered.
    let hook = fixture("github_deployment_status.json");
    let (header, signature) = auth::sign(devloom::receivers::Receiver::Github, "gh-secret", &hook);
    assert_eq!(header, "X-Hub-Signature-256");
    let github = devloom.api("/v1/receivers/github");
    let event = ("X-GitHub-Event", "deployment_status");
    let (status, body) = post_json(&github, &[(header, &signature), event], &hook);
    assert_eq!((status, &body["accepted"]), (200, &Value::from(1)), "{body}");
    let (status, _) = post_json(&github, &[event], &hook);
    assert_eq!(status, 401, "unsigned");
    // GitHub redelivers on a timeout: taken (200) but not a second change.
    let (status, _) = post_json(&github, &[(header, &signature), event], &hook);
    assert_eq!(status, 200);
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let signed = auth::sign(devloom::receivers::Receiver::Github, "gh-secret", ping).1;
    let (status, body) = post_json(&github, &[(header, &signed), ("X-GitHub-Event", "ping")], ping);
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(0)));

    // Argo CD Notifications: a webhook template whose body is `{{toJson .app}}`.
    let (status, body) =
        post_json(&devloom.api("/v1/receivers/argocd"), &[], &fixture("argocd_application.json"));
    assert_eq!((status, &body["accepted"]), (200, &Value::from(1)), "{body}");

    // CloudEvents over HTTP, binary mode (ce-* headers) and structured mode.
    let deploy = fixture("devloom_deploy.json");
    let binary = [
        ("ce-specversion", "1.0"),
        ("ce-type", "dev.devloom.deploy.v1"),
        ("ce-source", "/ci/pipeline"),
        ("ce-id", "run-1"),
    ];
    let (status, body) = post_json(&devloom.api("/v1/receivers/cloudevents"), &binary, &deploy);
    assert_eq!((status, &body["accepted"]), (200, &Value::from(1)), "{body}");
    let structured = serde_json::json!({
        "specversion": "1.0", "type": "dev.devloom.deploy.v1", "source": "/ci/pipeline", "id": "run-2",
        "datacontenttype": "application/json",
        "data": serde_json::from_slice::<Value>(&deploy).unwrap(),
    });
    let (status, body, _) = post(
        &devloom.api("/v1/receivers/cloudevents"),
        &[("content-type", "application/cloudevents+json")],
        structured.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _) = post_json(&devloom.api("/v1/receivers/cloudevents"), &[], &deploy);
    assert_eq!(status, 415, "neither binary nor structured");

    let (collected, summary) = devloom.finish();
    assert_eq!(summary.engine.alerts, 2 + 1 + 1, "Alertmanager's two, PagerDuty v3 and v2");
    assert_eq!(summary.engine.deploys, 3, "GitHub, Argo CD, the CloudEvents' deploy");
    assert_eq!(
        summary.engine.deploys_repeated, 2,
        "GitHub's redelivery, and the same deploy as a binary then a structured CloudEvent"
    );
    assert!(
        collected.dead_letters.is_empty(),
        "refused requests were not taken: {:?}",
        collected.dead_letters
    );
    assert!(!collected.maps.is_empty(), "the alerts opened an incident");
}

#[test]
fn a_malformed_payload_is_answered_400_with_the_decoders_message_and_dead_lettered() {
    let devloom = Devloom::start(ReceiversConfig::default());
    let mut bad = ALERTMANAGER.replace("\"payments\"", "\"\"");
    let (status, body) = post_json(&devloom.api("/v1/receivers/alertmanager"), &[], bad.as_bytes());
    assert_eq!(status, 200, "one alert of two invalid: the other is taken");
    assert_eq!(body["accepted"], 1);
    assert!(body["partial"].as_str().unwrap().contains("alerts[0].labels: no service label"), "{body}");
    bad = r#"{"version":"4","alerts":"none"}"#.into();
    let (status, body) = post_json(&devloom.api("/v1/receivers/alertmanager"), &[], bad.as_bytes());
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("Alertmanager webhook v4: invalid at alerts"),
        "{body}"
    );
    let (status, body) =
        post_json(&devloom.api("/v1/receivers/github"), &[], &fixture("alertmanager_v4.json"));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Alertmanager webhook v4 is not accepted on a deploys input");
    let (status, body) = post_json(&devloom.api("/v1/receivers/nope"), &[], b"{}");
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("alertmanager, pagerduty, github, argocd, cloudevents and catalog")
    );

    let (collected, _) = devloom.finish();
    let reasons: Vec<&str> = collected.dead_letters.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(collected.dead_letters.iter().all(|d| d.source.starts_with("POST /v1/receivers/")));
    let kept = &collected.dead_letters[1];
    assert_eq!(kept.headers["ce_source"], "/devloom/receivers/alertmanager", "CloudEvents attributes added");
    assert_eq!(kept.headers["content-type"], "application/json", "the producer's headers kept");
}

fn otlp_protobuf() -> Vec<u8> {
    let records = Simulator::shop("steady", SimConfig::default()).unwrap();
    records.into_iter().find(|r| r.expect == Expect::Traces).unwrap().payload
}

#[test]
fn otlp_http_answers_as_the_specification_says() {
    let devloom = Devloom::start(ReceiversConfig::default());
    let proto = otlp_protobuf();
    let (status, body, headers) =
        post(&devloom.otlp(), &[("content-type", "application/x-protobuf")], &proto);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(ExportTraceServiceResponse::decode(body.as_slice()).unwrap().partial_success, None);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&proto).unwrap();
    let (status, _, _) = post(
        &devloom.otlp(),
        &[("content-type", "application/x-protobuf"), ("content-encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(status, 200, "gzip");

    let (status, body) = post_json(&devloom.otlp(), &[], &fixture("otlp_trace.json"));
    assert_eq!((status, body), (200, serde_json::json!({})), "a full success is an empty response");

    // Undecodable: 400 with a google.rpc.Status (code 3, INVALID_ARGUMENT) naming why.
    let (status, body, _) =
        post(&devloom.otlp(), &[("content-type", "application/x-protobuf")], b"\x0a\xff\xff");
    assert_eq!(status, 400);
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let rpc = Status::decode(body.as_slice()).unwrap();
    assert_eq!(rpc.code, 3);
    assert!(rpc.message.starts_with("OTLP protobuf"), "{}", rpc.message);
    let (status, _, _) = post(&devloom.otlp(), &[("content-type", "text/plain")], b"hi");
    assert_eq!(status, 415);

    let (collected, summary) = devloom.finish();
    assert!(summary.engine.spans > 0);
    // The fixture's spans are a year older than the simulator's: the event-time guard
    // dead-letters them too. The undecodable request is the receiver's one.
    let received: Vec<_> = collected.dead_letters.iter().filter(|d| d.source == "POST /v1/traces").collect();
    assert_eq!(received.len(), 1);
    assert!(received[0].reason.starts_with("OTLP protobuf"));
}

/// An application instrumented with the OpenTelemetry SDK, exporting with the official
/// `opentelemetry-otlp` exporter over OTLP/HTTP protobuf, as `OTEL_EXPORTER_OTLP_ENDPOINT`
/// would point it at Devloom.
#[test]
fn the_opentelemetry_sdks_otlp_http_exporter_exports_to_devloom() {
    use opentelemetry::trace::{SpanKind, Tracer as _, TracerProvider as _};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};

    let devloom = Devloom::start(ReceiversConfig::default());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(devloom::telemetry::otlp::Ureq(agent()))
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(devloom.otlp())
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("checkout").build())
        .build();
    let tracer = provider.tracer("shop");
    for _ in 0..5 {
        tracer.span_builder("POST /checkout").with_kind(SpanKind::Server).start(&tracer);
    }
    provider.shutdown().unwrap();
    let (collected, summary) = devloom.finish();
    assert_eq!(summary.engine.spans, 5, "every span the SDK ended arrived");
    assert!(collected.dead_letters.is_empty(), "{:?}", collected.dead_letters);
}

/// A real gRPC client (tonic's, generated from the OTLP protos) exporting over HTTP/2,
/// gzip-compressed as Collectors send by default.
fn grpc_export(
    devloom: &Devloom,
    request: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let url = format!("http://{}", devloom.server.otlp_grpc_addr().unwrap());
        let mut client = TraceServiceClient::connect(url)
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        client.export(request).await.map(tonic::Response::into_inner)
    })
}

#[test]
fn otlp_grpc_answers_as_the_specification_says() {
    let devloom = Devloom::start(ReceiversConfig::default());
    let request = ExportTraceServiceRequest::decode(otlp_protobuf().as_slice()).unwrap();
    let spans: usize =
        request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(grpc_export(&devloom, request.clone()).unwrap().partial_success, None);

    let mut bad = request;
    bad.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1, 2, 3];
    let status = grpc_export(&devloom, bad).unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("traceId: trace id must be 16 bytes"), "{}", status.message());

    let (collected, summary) = devloom.finish();
    assert_eq!(summary.engine.spans as usize, spans, "the good request's spans, once");
    assert_eq!(collected.dead_letters.len(), 1);
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_never_grows() {
    let devloom =
        Devloom::with(ReceiversConfig { queue: 1, queue_wait_ms: 20, ..ReceiversConfig::default() }, false);
    let alertmanager = devloom.api("/v1/receivers/alertmanager");
    let (status, _) = post_json(&alertmanager, &[], ALERTMANAGER.as_bytes());
    assert_eq!(status, 200, "the queue has room for one");
    let (status, _, headers) =
        post(&alertmanager, &[("content-type", "application/json")], ALERTMANAGER.as_bytes());
    assert_eq!((status, headers["retry-after"].to_str().unwrap()), (503, "1"));
    // OTLP: 503 with Retry-After and a Status of code 14 (UNAVAILABLE), which exporters retry.
    let (status, _, headers) =
        post(&devloom.otlp(), &[("content-type", "application/x-protobuf")], &otlp_protobuf());
    assert_eq!((status, headers["retry-after"].to_str().unwrap()), (503, "1"));
}

#[test]
fn tokens_and_size_limits_are_enforced() {
    let devloom = Devloom::start(ReceiversConfig {
        max_body_bytes: 4096,
        otlp: ReceiverAuth { token: Some("otlp-token".into()), secret: None },
        ..ReceiversConfig::default()
    });
    let proto = otlp_protobuf();
    let (status, _, headers) =
        post(&devloom.otlp(), &[("content-type", "application/x-protobuf")], &proto[..100]);
    assert_eq!((status, headers["www-authenticate"].to_str().unwrap()), (401, "Bearer"));
    let big = vec![b' '; 5000];
    let (status, _, _) =
        post(&devloom.api("/v1/receivers/alertmanager"), &[("content-type", "application/json")], &big);
    assert_eq!(status, 413);
    let (collected, summary) = devloom.finish();
    assert_eq!((summary.records, collected.dead_letters.len()), (0, 0), "nothing refused was taken");
}

/// The simulator's services export over OTLP/HTTP, its alerts arrive as Alertmanager
/// webhooks and its deploys as CloudEvents: the impact maps equal the file run's.
#[test]
fn a_scenario_received_over_http_maps_as_the_file_run_does() {
    let records: Vec<_> =
        Simulator::shop("regression", SimConfig { rate_per_s: 20.0, ..SimConfig::default() })
            .unwrap()
            .collect();

    let mut file_run = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    let raw = records.iter().cloned().map(RawRecord::from).map(Ok).collect::<Vec<_>>();
    file_run.run(&mut Decoding::start(raw.into_iter(), DecodeOptions::default())).unwrap();
    let (from_files, _) = file_run.finish().unwrap();

    let devloom = Devloom::start(ReceiversConfig::default());
    for r in &records {
        let (url, headers): (String, Vec<(&str, &str)>) = match r.expect {
            Expect::Traces => (devloom.otlp(), vec![("content-type", r.content_type)]),
            Expect::Alerts => {
                (devloom.api("/v1/receivers/alertmanager"), vec![("content-type", r.content_type)])
            }
            _ => (
                devloom.api("/v1/receivers/cloudevents"),
                vec![
                    ("content-type", r.content_type),
                    ("ce-specversion", "1.0"),
                    ("ce-type", "dev.devloom.deploy.v1"),
                    ("ce-source", "/simulator"),
                    ("ce-id", "deploy"),
                ],
            ),
        };
        let (status, body, _) = post(&url, &headers, &r.payload);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let (received, summary) = devloom.finish();
    assert_eq!(summary.engine.deploys, 2);
    let stripped = |maps: &[ImpactMap]| maps.iter().map(ImpactMap::without_wall_clock).collect::<Vec<_>>();
    assert!(!from_files.maps.is_empty());
    assert_eq!(stripped(&received.maps), stripped(&from_files.maps));
}

#[test]
fn a_catalog_posted_with_its_source_is_in_force_for_the_next_alert() {
    let devloom = Devloom::start(ReceiversConfig::default());
    let url = devloom.api("/v1/receivers/catalog?source=backstage");
    let yaml =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog/catalog-info.yaml")).unwrap();
    let (status, body, _) = post(&url, &[("content-type", "application/yaml")], &yaml);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["accepted"], 1);
    let bad = b"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: x}\nspec: {dependsOn: [':']}\n";
    let (status, body) = post_json(&url, &[], bad);
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Backstage entity YAML: invalid at document 1, spec.dependsOn[0]"),
        "{body}"
    );
    let (status, _) = post_json(&devloom.api("/v1/receivers/catalog?source=%20"), &[], bad);
    assert_eq!(status, 400, "an empty source");
    let alert =
        br#"{"service":"ledger","status":"firing","starts_at":"2026-11-27T09:00:00Z","fingerprint":"l1"}"#;
    let (status, _) = post_json(&devloom.api("/v1/receivers/alertmanager"), &[], alert);
    assert_eq!(status, 200);
    let (collected, summary) = devloom.finish();
    assert_eq!(summary.engine.catalogs, 1, "the bad snapshot is a dead letter, not a catalog");
    let names: Vec<&str> = collected.maps[0].nodes.iter().map(|n| n.service.as_str()).collect();
    assert_eq!(
        names,
        ["ledger", "payments-service", "checkout", "frontend"],
        "the first catalog stays in force; no rule maps the name here"
    );
    assert_eq!(collected.dead_letters.len(), 1);
}
