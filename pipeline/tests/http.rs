//! The HTTP API against a running `devloom run --simulate db-latency` over loopback:
//! every route, the event stream live and resumed, the probes, `/metrics` as
//! Prometheus text, and the errors' bodies.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `devloom run`, stopped (SIGTERM) when dropped.
struct Devloom {
    child: Child,
    base: String,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Devloom {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Devloom {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devloom"))
            .args(args)
            .env_remove("DEVLOOM_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = lines(child.stderr.take().unwrap());
        let mut me = Self { child, base: String::new(), stderr };
        let line = me.wait_for("HTTP API on ");
        me.base = line.rsplit(' ').next().unwrap().to_string();
        me
    }

    /// The db-latency scenario played at `speed`, maps to `maps`, serving on a free port
    /// until dropped.
    fn db_latency(speed: &str, maps: &std::path::Path) -> Self {
        let maps = maps.to_str().unwrap();
        Self::start(&[
            "run",
            "--simulate",
            "db-latency",
            "--speed",
            speed,
            "--listen",
            "127.0.0.1:0",
            "--serve",
            "-o",
            maps,
        ])
    }

    /// Waits for a stderr line containing `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with {text:?}: {e}"),
            }
        }
    }
}

#[path = "common/agent.rs"]
mod agent;
use agent::agent;

/// GET → (status, body).
fn get(base: &str, path: &str) -> (u16, String) {
    let mut response = agent().get(format!("{base}{path}")).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().with_config().limit(64 << 20).read_to_string().unwrap())
}

fn get_json(base: &str, path: &str) -> (u16, Value) {
    let (status, body) = get(base, path);
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
}

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq)]
struct Sse {
    id: Option<u64>,
    event: String,
    data: String,
}

/// Reads events from `/v1/stream` (with `last_id`) on a thread until `until` matches
/// one or the connection ends.
fn subscribe(base: &str, last_id: Option<u64>, until: fn(&Sse) -> bool) -> std::thread::JoinHandle<Vec<Sse>> {
    let url = format!("{base}/v1/stream");
    let mut request = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
        .get(url);
    if let Some(id) = last_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.call().unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    std::thread::spawn(move || {
        let mut events = Vec::new();
        let mut current = Sse { id: None, event: String::new(), data: String::new() };
        let reader = BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if line.is_empty() {
                if !current.event.is_empty() {
                    let done = until(&current);
                    events.push(std::mem::replace(
                        &mut current,
                        Sse { id: None, event: String::new(), data: String::new() },
                    ));
                    if done {
                        break;
                    }
                }
            } else if let Some(v) = line.strip_prefix("id:") {
                current.id = Some(v.trim().parse().unwrap());
            } else if let Some(v) = line.strip_prefix("event:") {
                current.event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                current.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        events
    })
}

fn metric(families: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    families
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => panic!("{name} is not a counter or gauge"),
        })
        .sum()
}

fn scrape(base: &str) -> prometheus_parse::Scrape {
    let (status, text) = get(base, "/metrics");
    assert_eq!(status, 200);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text exposition")
}

#[test]
fn api_stream_probes_and_metrics_of_a_running_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("maps.ndjson");
    let run = Devloom::db_latency("90", &maps);
    let base = run.base.clone();
    // Subscribed before the first alert: every output arrives live.
    let live = subscribe(&base, None, |e| e.event == "postmortem");

    // Liveness at once.
    let (status, health) = get_json(&base, "/healthz");
    assert_eq!((status, health["ok"].as_bool()), (200, Some(true)));

    // The counters move while the simulation plays: two different counts of spans
    // before the run's end (a loaded machine may not keep the pace, so no count is
    // promised at a given moment, only that counting does not wait for the end).
    let spans =
        |s: &prometheus_parse::Scrape| metric(s, "devloom_input_events_total", Some(("kind", "span")));
    let moving_by = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let count = spans(&scrape(&base));
        if count > 0.0 && seen.last() != Some(&count) {
            seen.push(count);
            continue;
        }
        assert!(Instant::now() < moving_by, "spans counted as they arrive: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen[0] < seen[1], "{seen:?}");

    // Readiness once the paced input has been drained (or has ended).
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ready) = get_json(&base, "/readyz");
        if status == 200 {
            assert_eq!(ready["ok"], true);
            break;
        }
        assert_eq!(status, 503);
        assert!(!ready["reasons"].as_array().unwrap().is_empty(), "a 503 says why: {ready}");
        assert!(Instant::now() < ready_by, "never ready: {ready}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(metric(&scrape(&base), "devloom_graph_services", None) >= 10.0);

    run.wait_for("input ended; serving");
    let streamed = live.join().unwrap();

    // Every map version, in order, as the maps file has them.
    let file_maps: Vec<Value> =
        std::fs::read_to_string(&maps).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let streamed_maps: Vec<Value> = streamed
        .iter()
        .filter(|e| e.event == "impact")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert!(file_maps.len() >= 3, "{} maps", file_maps.len());
    assert_eq!(streamed_maps, file_maps, "the stream carries every map version, in publish order");
    let ids: Vec<u64> = streamed.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "ids count up from 1 without gaps");
    assert!(streamed.iter().any(|e| e.event == "candidates"));

    // Resume: after id k, exactly the events after k.
    let k = 3;
    let resumed = subscribe(&base, Some(k), |e| e.event == "postmortem").join().unwrap();
    assert_eq!(resumed, streamed[k as usize..], "Last-Event-ID resumes after that id");

    // Incidents.
    let incident = file_maps[0]["incident_id"].as_str().unwrap().to_string();
    let (status, list) = get_json(&base, "/v1/incidents");
    assert_eq!(status, 200);
    let summary = &list["incidents"][0];
    assert_eq!(summary["incident_id"], incident.as_str());
    assert_eq!(summary["versions"]["impact"], file_maps.last().unwrap()["version"]);
    assert_eq!(summary["root_services"], file_maps[0]["root_services"]);
    let (status, detail) = get_json(&base, &format!("/v1/incidents/{incident}"));
    assert_eq!(status, 200);
    assert_eq!(&detail["impact"], file_maps.last().unwrap(), "the latest map");
    assert!(detail["candidates"]["candidates"].is_array());
    assert!(detail["postmortem"]["markdown"].is_string(), "the draft, Markdown inside");
    let (status, history) = get_json(&base, &format!("/v1/incidents/{incident}/history"));
    assert_eq!(status, 200);
    assert_eq!(history["impact"].as_array().unwrap(), &file_maps, "every version");

    // The map as a picture for chat and tickets.
    let mut svg = agent().get(format!("{base}/v1/incidents/{incident}/map.svg")).call().unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml; charset=utf-8");
    let svg = svg.body_mut().read_to_string().unwrap();
    let last_map = file_maps.last().unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    for node in last_map["nodes"].as_array().unwrap() {
        let drawn = format!(
            "data-service=\"{}\" data-state=\"{}\"",
            node["service"].as_str().unwrap(),
            node["state"].as_str().unwrap()
        );
        assert!(svg.contains(&drawn), "{drawn} in the picture");
    }

    // The graph, a neighbourhood, a service.
    let (status, graph) = get_json(&base, "/v1/graph");
    assert_eq!(status, 200);
    let services = graph["services"].as_array().unwrap();
    assert!(services.len() >= 10);
    for key in ["service", "state", "error_rate", "p99_ms", "requests_per_s"] {
        assert!(!services[0][key].is_null(), "services carry {key}");
    }
    let root = file_maps[0]["root_services"][0].as_str().unwrap();
    let (status, near) = get_json(&base, &format!("/v1/graph?service={root}&hops=1"));
    assert_eq!(status, 200);
    let near_names: Vec<&str> =
        near["services"].as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert!(near_names.contains(&root) && near_names.len() < services.len(), "{near_names:?}");
    assert!(near["omitted_services"].as_u64().unwrap() > 0);
    let (status, service) = get_json(&base, &format!("/v1/services/{root}"));
    assert_eq!(status, 200);
    assert_eq!(service["nodes"][0]["service"], root);
    assert!(!service["callees"].as_array().unwrap().is_empty());
    assert_eq!(service["incidents"][0], incident.as_str());

    // What was wrong, in the body.
    let (status, body) = get_json(&base, "/v1/incidents/inc-nope");
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));
    assert!(body["error"].as_str().unwrap().contains("no incident \"inc-nope\""), "{body}");
    let (status, body) = get_json(&base, "/v1/services/nobody");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no service \"nobody\""), "{body}");
    let (status, body) = get_json(&base, &format!("/v1/graph?service={root}&hops=many"));
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("hops must be a whole number from 0 to 10, not \"many\""),
        "{body}"
    );
    let (status, body) = get_json(&base, "/v1/graph?colour=red");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("unknown query parameter(s) colour"), "{body}");
    let (status, body) = get_json(&base, "/v2/incidents");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no route GET /v2/incidents"), "{body}");
    let mut post = agent().post(format!("{base}/v1/incidents")).send("").unwrap();
    assert_eq!(post.status().as_u16(), 405, "read-only");
    let mut text = String::new();
    post.body_mut().as_reader().read_to_string(&mut text).unwrap();
    assert!(text.contains("read-only"), "{text}");

    // The OpenAPI document is served and documents every route answered above.
    let (status, doc) = get_json(&base, "/v1/openapi.json");
    assert_eq!(status, 200);
    for path in
        ["/v1/incidents", "/v1/incidents/{id}/history", "/v1/graph", "/v1/services/{name}", "/v1/stream"]
    {
        assert!(doc["paths"][path]["get"].is_object(), "{path} documented");
    }

    // Outputs and the alert → map latency, counted by kind.
    let last = scrape(&base);
    assert_eq!(metric(&last, "devloom_outputs_total", Some(("kind", "impact"))), file_maps.len() as f64);
    let latencies =
        last.samples.iter().find(|s| s.metric == "devloom_alert_to_map_duration_seconds").unwrap();
    let prometheus_parse::Value::Histogram(buckets) = &latencies.value else { panic!("a histogram") };
    assert!(buckets.last().unwrap().count >= 1.0, "alert → map latencies observed: {buckets:?}");
    assert!(
        last.samples
            .iter()
            .any(|s| s.metric == "target_info" && s.labels.get("service_name") == Some("devloom"))
    );
}

#[test]
fn explicit_listen_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--simulate", "steady", "--listen", &addr, "-o", "/dev/null"])
        .env_remove("DEVLOOM_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("http: cannot listen on {addr}")) && err.contains("--no-http"), "{err}");
}

#[test]
fn two_hundred_stream_clients_each_get_every_output_and_the_run_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("maps.ndjson");
    let run = Devloom::db_latency("120", &maps);
    let clients: Vec<_> = (0..200).map(|_| subscribe(&run.base, None, |e| e.event == "postmortem")).collect();
    run.wait_for("input ended; serving");
    let streams: Vec<Vec<Sse>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let file_maps: Vec<String> =
        std::fs::read_to_string(&maps).unwrap().lines().map(str::to_string).collect();
    assert!(file_maps.len() >= 3);
    for (i, s) in streams.iter().enumerate() {
        let streamed: Vec<&str> = s.iter().filter(|e| e.event == "impact").map(|e| e.data.as_str()).collect();
        assert_eq!(streamed, file_maps, "client {i} got every map version, in order");
        assert_eq!(s, &streams[0], "client {i} saw the same stream as client 0");
    }
}

#[test]
fn metrics_are_pushed_over_otlp_http_when_an_endpoint_is_set() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use prost::Message;

    // A real OTLP/HTTP receiver: POST /v1/metrics, protobuf bodies kept for the test.
    let (tx, rx) = mpsc::channel::<(String, Vec<u8>)>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/metrics",
                axum::routing::post(
                    move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                        let content_type = headers["content-type"].to_str().unwrap().to_string();
                        let _ = tx.send((content_type, body.to_vec()));
                        ""
                    },
                ),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });

    let out = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--simulate", "regression", "--listen", "127.0.0.1:0", "-o", "/dev/null"])
        .env_remove("DEVLOOM_CONFIG")
        .env("DEVLOOM_TELEMETRY__OTLP_ENDPOINT", &endpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The run ends by flushing its metrics to the endpoint.
    let (content_type, body) = rx.recv_timeout(Duration::from_secs(30)).expect("an OTLP export");
    assert_eq!(content_type, "application/x-protobuf");
    let request = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
    let resource = request.resource_metrics[0].resource.as_ref().unwrap();
    assert!(
        resource
            .attributes
            .iter()
            .any(|a| a.key == "service.name" && format!("{:?}", a.value).contains("devloom"))
    );
    let names: Vec<&str> = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    for name in
        ["devloom.input.events", "devloom.outputs", "devloom.alert_to_map.duration", "devloom.graph.services"]
    {
        assert!(names.contains(&name), "{name} exported: {names:?}");
    }
}

#[test]
fn a_replay_serves_the_archived_incidents_with_serve() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let maps = dir.path().join("maps.ndjson");
    let out = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--simulate", "regression", "--no-http", "--history", history.to_str().unwrap()])
        .args(["-o", maps.to_str().unwrap()])
        .env_remove("DEVLOOM_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = Devloom::start(&[
        "replay",
        "--history",
        history.to_str().unwrap(),
        "--serve",
        "--listen",
        "127.0.0.1:0",
        "-o",
        dir.path().join("replayed.ndjson").to_str().unwrap(),
    ]);
    run.wait_for("input ended; serving");
    let live: Vec<Value> =
        std::fs::read_to_string(&maps).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let id = live[0]["incident_id"].as_str().unwrap();
    let (status, history) = get_json(&run.base, &format!("/v1/incidents/{id}/history"));
    assert_eq!(status, 200);
    let versions: Vec<&Value> = history["impact"].as_array().unwrap().iter().map(|m| &m["version"]).collect();
    assert_eq!(
        versions,
        live.iter().map(|m| &m["version"]).collect::<Vec<_>>(),
        "every replayed version served"
    );
}
