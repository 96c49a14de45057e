//! The routes: JSON under `/v1/`, the event stream, the probes and `/metrics`. Only
//! the gate and rollout routes take POST (the webhook bodies controllers send); nothing
//! changes Devloom's state. [`ROUTES`] lists them once, for the router and the OpenAPI
//! document.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use devloom_schemas::RolloutVerdict;

use super::state::ApiState;
use super::stream;
use super::views::{ApiError, RolloutStatus};
use crate::gate::{FlaggerWebhook, GateVerdict};
use crate::receivers::webhooks::{self, Receivers};
use crate::telemetry::Telemetry;

/// What a handler reads.
#[derive(Clone)]
pub struct Shared {
    /// Outputs, graph view, progress.
    pub state: Arc<ApiState>,
    /// The metrics, when telemetry is on.
    pub telemetry: Option<Arc<Telemetry>>,
    /// The webhook receivers, when they are on.
    pub receivers: Option<Arc<Receivers>>,
}

/// One route: path, summary, the response's schema (a component name), its parameters
/// (name, where, description).
pub struct Route {
    /// Path, with `{name}` parameters.
    pub path: &'static str,
    /// What it answers.
    pub summary: &'static str,
    /// Schema of the 200 response (a component), or the media type it answers with.
    pub response: Response200,
    /// Parameters: name, `path` / `query` / `header`, JSON type, description.
    pub params: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// Whether it answers 404 (an unknown incident or service).
    pub not_found: bool,
    /// Also answers POST with a body of this component (a controller's webhook).
    pub post: Option<&'static str>,
    /// Answers a refusal (block, halt) with `[gate] block_status` / `halt_status`
    /// (409 by default) and the same body.
    pub conflict: bool,
}

/// The body of a route's 200 response.
pub enum Response200 {
    /// JSON of this component schema.
    Json(&'static str),
    /// Another media type.
    Media(&'static str),
}

/// Every route, in the order the OpenAPI document lists them.
pub const ROUTES: &[Route] = &[
    Route {
        path: "/v1/incidents",
        summary: "Open and recent incidents, open first, with their latest versions",
        response: Response200::Json("IncidentList"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/incidents/{id}",
        summary: "The latest impact map, candidate list, remediation plan and post-mortem draft of one incident",
        response: Response200::Json("IncidentDetail"),
        params: &[("id", "path", "string", "The incident id outputs carry")],
        not_found: true,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/incidents/{id}/history",
        summary: "Every version kept of each output of one incident, oldest first",
        response: Response200::Json("IncidentHistory"),
        params: &[("id", "path", "string", "The incident id outputs carry")],
        not_found: true,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/incidents/{id}/map.svg",
        summary: "The latest impact map as a standalone SVG picture (callers above, callees below), with the top candidates",
        response: Response200::Media("image/svg+xml"),
        params: &[("id", "path", "string", "The incident id outputs carry")],
        not_found: true,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/graph",
        summary: "The live service graph with health; with service and hops, only that neighbourhood",
        response: Response200::Json("GraphView"),
        params: &[
            (
                "service",
                "query",
                "string",
                "Only services within `hops` calls of this one (either direction)",
            ),
            ("hops", "query", "integer", "Calls from `service`, 0 to 10 (default 1)"),
        ],
        not_found: true,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/catalog",
        summary: "The service catalogs in force held against the traced services: matched and unmatched names, declared edges never observed, observed edges never declared",
        response: Response200::Json("CatalogReport"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/services/{name}",
        summary: "One service: its health, the edges into and out of it, the incidents showing it",
        response: Response200::Json("ServiceDetail"),
        params: &[("name", "path", "string", "The service name (`service.name`)")],
        not_found: true,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/gate",
        summary: "Deployment gate: pass / warn / block for shipping a service now, with reasons and its blast radius. A Flagger webhook (POST body accepted) and an Argo Rollouts web metric (jsonPath $.ok, $.blocking)",
        response: Response200::Json("GateDecision"),
        params: &[
            (
                "service",
                "query",
                "string",
                "The service about to ship (for POST: else metadata.service, else the canary name)",
            ),
            ("revision", "query", "string", "The revision about to ship (for POST: else metadata.revision)"),
            (
                "mode",
                "query",
                "string",
                "`metric`: answer 200 whatever the decision (Argo Rollouts treats non-2xx as an error, not a failure)",
            ),
        ],
        not_found: false,
        post: Some("FlaggerWebhook"),
        conflict: true,
    },
    Route {
        path: "/v1/rollouts",
        summary: "The latest rollout decision (canary vs stable) of every service seen with two versions serving",
        response: Response200::Json("RolloutList"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/rollouts/{service}",
        summary: "The rollout of one service: continue / inconclusive (200) or halt (409): a Flagger rollout webhook (POST body accepted) and an Argo Rollouts web metric (jsonPath $.ok)",
        response: Response200::Json("RolloutStatus"),
        params: &[
            ("service", "path", "string", "The service (`service.name`)"),
            ("environment", "query", "string", "Only this `deployment.environment.name`"),
            ("mode", "query", "string", "`metric`: answer 200 whatever the verdict"),
        ],
        not_found: true,
        post: Some("FlaggerWebhook"),
        conflict: true,
    },
    Route {
        path: "/v1/stream",
        summary: "Every output as Server-Sent Events (event = kind, id = publish order, data = the output's JSON)",
        response: Response200::Media("text/event-stream"),
        params: &[
            (
                "Last-Event-ID",
                "header",
                "integer",
                "Resume after this id (within [http] stream_buffer events)",
            ),
            ("last_event_id", "query", "integer", "The same, for clients that cannot set headers"),
        ],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/healthz",
        summary: "Liveness: the process answers",
        response: Response200::Json("Probe"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/readyz",
        summary: "Readiness: caught up with the input and, under Kafka, checkpointing (503 with the reasons when not)",
        response: Response200::Json("Probe"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/metrics",
        summary: "Devloom's own metrics, Prometheus text exposition",
        response: Response200::Media("text/plain; version=0.0.4"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/",
        summary: "The live impact-map page (HTML, updated from the event stream)",
        response: Response200::Media("text/html"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
    Route {
        path: "/v1/openapi.json",
        summary: "This document",
        response: Response200::Media("application/json"),
        params: &[],
        not_found: false,
        post: None,
        conflict: false,
    },
];

/// Deepest neighbourhood `/v1/graph` answers.
const MAX_HOPS: u32 = 10;

/// An [`ApiError`] answer.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ApiError { status: status.as_u16(), error: message.into() })).into_response()
}

fn unknown_params(query: &HashMap<String, String>, known: &[&str]) -> Option<Response> {
    let mut unknown: Vec<&str> = query.keys().map(String::as_str).filter(|k| !known.contains(k)).collect();
    unknown.sort_unstable();
    (!unknown.is_empty()).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown query parameter(s) {}; this route takes: {}",
                unknown.join(", "),
                known.join(", ")
            ),
        )
    })
}

async fn incidents(State(s): State<Shared>) -> Response {
    Json(super::views::IncidentList { incidents: s.state.incidents() }).into_response()
}

fn no_incident(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no incident {id:?} is kept here; GET /v1/incidents lists those that are"),
    )
}

async fn incident(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    s.state.incident(&id).map_or_else(|| no_incident(&id), |d| Json(d).into_response())
}

async fn history(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    s.state.history(&id).map_or_else(|| no_incident(&id), |h| Json(h).into_response())
}

async fn map_svg(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(detail) = s.state.incident(&id) else { return no_incident(&id) };
    let Some(map) = &detail.impact else {
        return error(StatusCode::NOT_FOUND, format!("incident {id:?} has no impact map yet"));
    };
    let svg = super::picture::map_svg(map, detail.candidates.as_ref());
    ([(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")], svg).into_response()
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], include_str!("page.html")).into_response()
}

async fn graph(State(s): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(bad) = unknown_params(&query, &["service", "hops"]) {
        return bad;
    }
    let hops = match query.get("hops").map(|h| h.parse::<u32>()) {
        None => 1,
        Some(Ok(h)) if h <= MAX_HOPS => h,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("hops must be a whole number from 0 to {MAX_HOPS}, not {:?}", query["hops"]),
            );
        }
    };
    let view = s.state.graph();
    match query.get("service") {
        None if query.contains_key("hops") => error(StatusCode::BAD_REQUEST, "hops needs service=NAME"),
        None => Json(&*view).into_response(),
        Some(service) => view.around(service, hops).map_or_else(
            || error(StatusCode::NOT_FOUND, format!("no service {service:?} in the graph")),
            |v| Json(v).into_response(),
        ),
    }
}

async fn catalog(State(s): State<Shared>) -> Response {
    Json(&*s.state.catalog()).into_response()
}

async fn service(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let view = s.state.graph();
    let nodes: Vec<_> = view.services.iter().filter(|v| v.service == name).cloned().collect();
    if nodes.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no service {name:?} in the graph; GET /v1/graph lists them"),
        );
    }
    let edges = |f: fn(&super::views::EdgeView) -> &String| {
        view.edges.iter().filter(|e| *f(e) == name).cloned().collect::<Vec<_>>()
    };
    Json(super::views::ServiceDetail {
        nodes,
        callers: edges(|e| &e.callee),
        callees: edges(|e| &e.caller),
        incidents: s.state.incidents_showing(&name),
    })
    .into_response()
}

/// A controller's webhook body: none when empty; what is wrong when it is not a
/// Flagger body.
fn webhook(body: &[u8]) -> Result<Option<FlaggerWebhook>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        format!("the body is not a Flagger webhook payload ({{\"name\", \"namespace\", \"phase\", \"metadata\"}}): {e}")
    })
}

/// `?mode=metric`: answer 200 whatever the verdict.
fn metric_mode(query: &HashMap<String, String>) -> Result<bool, String> {
    match query.get("mode").map(String::as_str) {
        None => Ok(false),
        Some("metric") => Ok(true),
        Some(other) => Err(format!("mode must be \"metric\" (always answer 200), not {other:?}")),
    }
}

fn refusal_status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::CONFLICT)
}

async fn gate_get(State(s): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    gate(&s, &query, None)
}

async fn gate_post(
    State(s): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    match webhook(&body) {
        Ok(hook) => gate(&s, &query, hook),
        Err(why) => error(StatusCode::BAD_REQUEST, why),
    }
}

fn gate(s: &Shared, query: &HashMap<String, String>, hook: Option<FlaggerWebhook>) -> Response {
    if let Some(bad) = unknown_params(query, &["service", "revision", "mode"]) {
        return bad;
    }
    let metric = match metric_mode(query) {
        Ok(m) => m,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let service =
        query.get("service").map(String::as_str).or(hook.as_ref().and_then(FlaggerWebhook::service));
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "service=NAME is required (or a Flagger webhook body with metadata.service or name)",
        );
    };
    let revision = query.get("revision").or(hook.as_ref().and_then(|h| h.metadata.get("revision")));
    let mut decision = s.state.gate(service, revision.map(String::as_str));
    decision.flagger = hook;
    let status = if decision.decision == GateVerdict::Block && !metric {
        refusal_status(s.state.gate_config().block_status)
    } else {
        StatusCode::OK
    };
    (status, Json(decision)).into_response()
}

async fn rollouts(State(s): State<Shared>) -> Response {
    Json(s.state.rollouts()).into_response()
}

async fn rollout_get(
    State(s): State<Shared>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    rollout(&s, &service, &query)
}

async fn rollout_post(
    State(s): State<Shared>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    match webhook(&body) {
        Ok(_) => rollout(&s, &service, &query),
        Err(why) => error(StatusCode::BAD_REQUEST, why),
    }
}

fn rollout(s: &Shared, service: &str, query: &HashMap<String, String>) -> Response {
    if let Some(bad) = unknown_params(query, &["environment", "mode"]) {
        return bad;
    }
    let metric = match metric_mode(query) {
        Ok(m) => m,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let status = match s.state.rollout(service, query.get("environment").map(String::as_str)) {
        Some(status) => status,
        None if s.state.graph().services.iter().any(|v| v.service == service) => RolloutStatus {
            service: service.to_string(),
            verdict: RolloutVerdict::Inconclusive,
            ok: true,
            decisions: Vec::new(),
        },
        None => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no service {service:?} in the graph and no rollout of it; GET /v1/rollouts lists them"
                ),
            );
        }
    };
    let code = if status.verdict == RolloutVerdict::Halt && !metric {
        refusal_status(s.state.gate_config().halt_status)
    } else {
        StatusCode::OK
    };
    (code, Json(status)).into_response()
}

async fn events(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(bad) = unknown_params(&query, &["last_event_id"]) {
        return bad;
    }
    let header = headers.get("last-event-id").map(|v| v.to_str().unwrap_or("").to_string());
    let last = match header.as_ref().or(query.get("last_event_id")).map(|v| v.trim().parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return error(StatusCode::BAD_REQUEST, "Last-Event-ID must be an event id (a whole number)");
        }
    };
    stream::response(&s.state, last).into_response()
}

async fn healthz(State(s): State<Shared>) -> Response {
    Json(s.state.health()).into_response()
}

async fn readyz(State(s): State<Shared>) -> Response {
    let probe = s.state.readiness();
    let status = if probe.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(probe)).into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    let Some(telemetry) = &s.telemetry else {
        return error(StatusCode::NOT_FOUND, "telemetry is off ([telemetry] enabled = false)");
    };
    match telemetry.render() {
        Ok(text) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering metrics: {e}")),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::DOCUMENT).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}; GET /v1/openapi.json lists the routes", uri.path()),
    )
}

async fn read_only(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} {}: the API is read-only; routes answer GET, and only /v1/gate and /v1/rollouts/{{service}} also take a webhook POST (input is POSTed to /v1/receivers/{{name}})",
            uri.path()
        ),
    )
}

/// The router over `shared`.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v1/incidents", get(incidents))
        .route("/v1/incidents/{id}", get(incident))
        .route("/v1/incidents/{id}/history", get(history))
        .route("/v1/incidents/{id}/map.svg", get(map_svg))
        .route("/v1/graph", get(graph))
        .route("/v1/catalog", get(catalog))
        .route("/v1/services/{name}", get(service))
        .route("/v1/gate", get(gate_get).post(gate_post))
        .route("/v1/rollouts", get(rollouts))
        .route("/v1/rollouts/{service}", get(rollout_get).post(rollout_post))
        .route("/v1/stream", get(events))
        .route(
            "/v1/receivers/{name}",
            post(webhooks::receive).with_state(shared.receivers.clone()).layer(DefaultBodyLimit::max(
                shared.receivers.as_ref().map_or(0, |r| r.config.max_body_bytes),
            )),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/", get(page))
        .fallback(not_found)
        .method_not_allowed_fallback(read_only)
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;
    use crate::http::HttpConfig;

    /// The route table the OpenAPI document is made from and the router list the same
    /// paths: each documented path reaches a handler, not the fallback.
    #[test]
    fn every_documented_route_is_served() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let shared = Shared {
            state: Arc::new(ApiState::new(HttpConfig::default(), Default::default())),
            telemetry: None,
            receivers: None,
        };
        for route in ROUTES {
            let path = route
                .path
                .replace("{id}", "inc-x")
                .replace("{name}", "checkout")
                .replace("{service}", "checkout");
            let response = runtime.block_on(
                router(shared.clone())
                    .oneshot(axum::http::Request::get(&path).body(axum::body::Body::empty()).unwrap()),
            );
            let response = response.unwrap();
            if route.path == "/v1/stream" {
                assert_eq!(response.status(), StatusCode::OK, "the stream is routed");
            }
            let body = runtime.block_on(async {
                if route.path == "/v1/stream" {
                    return String::new(); // an endless stream: its status says enough
                }
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                String::from_utf8_lossy(&bytes).into_owned()
            });
            assert!(!body.contains("no route"), "{} is documented but not routed: {body}", route.path);
        }
    }
}
