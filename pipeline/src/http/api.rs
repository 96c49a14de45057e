//! The routes: read-only JSON under `/v1/`, the event stream, the probes and
//! `/metrics`. [`ROUTES`] lists them once, for the router and the OpenAPI document.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::state::ApiState;
use super::stream;
use super::views::ApiError;
use crate::telemetry::Telemetry;

/// What a handler reads.
#[derive(Clone)]
pub struct Shared {
    /// Outputs, graph view, progress.
    pub state: Arc<ApiState>,
    /// The metrics, when telemetry is on.
    pub telemetry: Option<Arc<Telemetry>>,
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
    },
    Route {
        path: "/v1/incidents/{id}",
        summary: "The latest impact map, candidate list, remediation plan and post-mortem draft of one incident",
        response: Response200::Json("IncidentDetail"),
        params: &[("id", "path", "string", "The incident id outputs carry")],
        not_found: true,
    },
    Route {
        path: "/v1/incidents/{id}/history",
        summary: "Every version kept of each output of one incident, oldest first",
        response: Response200::Json("IncidentHistory"),
        params: &[("id", "path", "string", "The incident id outputs carry")],
        not_found: true,
    },
    Route {
        path: "/v1/incidents/{id}/map.svg",
        summary: "The latest impact map as a standalone SVG picture (callers above, callees below), with the top candidates",
        response: Response200::Media("image/svg+xml"),
        params: &[("id", "path", "string", "The incident id outputs carry")],
        not_found: true,
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
    },
    Route {
        path: "/v1/services/{name}",
        summary: "One service: its health, the edges into and out of it, the incidents showing it",
        response: Response200::Json("ServiceDetail"),
        params: &[("name", "path", "string", "The service name (`service.name`)")],
        not_found: true,
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
    },
    Route {
        path: "/healthz",
        summary: "Liveness: the process answers",
        response: Response200::Json("Probe"),
        params: &[],
        not_found: false,
    },
    Route {
        path: "/readyz",
        summary: "Readiness: caught up with the input and, under Kafka, checkpointing (503 with the reasons when not)",
        response: Response200::Json("Probe"),
        params: &[],
        not_found: false,
    },
    Route {
        path: "/metrics",
        summary: "Devloom's own metrics, Prometheus text exposition",
        response: Response200::Media("text/plain; version=0.0.4"),
        params: &[],
        not_found: false,
    },
    Route {
        path: "/",
        summary: "The live impact-map page (HTML, updated from the event stream)",
        response: Response200::Media("text/html"),
        params: &[],
        not_found: false,
    },
    Route {
        path: "/v1/openapi.json",
        summary: "This document",
        response: Response200::Media("application/json"),
        params: &[],
        not_found: false,
    },
];

/// Deepest neighbourhood `/v1/graph` answers.
const MAX_HOPS: u32 = 10;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
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
        format!("{method} {}: the API is read-only, every route answers GET only", uri.path()),
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
        .route("/v1/services/{name}", get(service))
        .route("/v1/stream", get(events))
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
        let shared = Shared { state: Arc::new(ApiState::new(HttpConfig::default())), telemetry: None };
        for route in ROUTES {
            let path = route.path.replace("{id}", "inc-x").replace("{name}", "checkout");
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
