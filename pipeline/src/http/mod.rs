//! The HTTP server of every long-running mode: a JSON API under `/v1/` (read-only but
//! for the deployment gate's webhooks), the output stream as Server-Sent Events,
//! `/healthz` and `/readyz`, and `/metrics`.
//!
//! It runs on its own thread (a single-threaded tokio runtime with axum) and never
//! touches the operators: the pipeline hands it every output through a tap and a
//! view of the graph through a watcher, so a slow or hostile client costs the
//! operator loop nothing.

pub mod api;
pub mod openapi;
pub mod picture;
pub mod state;
pub mod stream;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::core::{Pipeline, Sink};
use crate::receivers::webhooks::Receivers;
use crate::receivers::{otlp, otlp_grpc};
use crate::telemetry::{Telemetry, TelemetryError};
use state::{ApiState, ApiTap, ApiWatcher};

/// `[http]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the API in `devloom run` and `devloom replay --serve` (`--no-http` turns it off).
    pub enabled: bool,
    /// Address to listen on (`--listen`). Loopback by default: see the README before
    /// exposing it.
    pub listen: String,
    /// Outputs the stream keeps for clients resuming with `Last-Event-ID`, and how far a
    /// client may fall behind before it is disconnected.
    pub stream_buffer: usize,
    /// Versions of each output kind kept per incident for `/history`.
    pub max_versions: usize,
    /// Incidents kept (open ones last to go).
    pub max_incidents: usize,
    /// `/readyz` fails when the input has not been drained for this long, ms.
    pub ready_max_lag_ms: u64,
    /// The graph view and the telemetry gauges are refreshed at most this often, ms.
    pub refresh_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            stream_buffer: 4096,
            max_versions: 256,
            max_incidents: 256,
            ready_max_lag_ms: 30_000,
            refresh_ms: 1_000,
        }
    }
}

impl HttpConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("stream_buffer", self.stream_buffer as u64),
            ("max_versions", self.max_versions as u64),
            ("max_incidents", self.max_incidents as u64),
            ("refresh_ms", self.refresh_ms),
        ] {
            if value == 0 {
                return Err(format!("http.{name} must be above 0"));
            }
        }
        if self.enabled && self.listen.parse::<SocketAddr>().is_err() {
            return Err(format!("http.listen must be an address like 127.0.0.1:9464, not {:?}", self.listen));
        }
        Ok(())
    }
}

/// `[telemetry]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Measure Devloom itself and serve the measurements on `/metrics`.
    pub enabled: bool,
    /// Export the service graph as `traces_service_graph_*` series for at most this many
    /// edges (the busiest); 0 turns that export off.
    pub service_graph_max_edges: usize,
    /// Also push the metrics over OTLP/HTTP (protobuf) to this URL, e.g.
    /// `http://collector:4318/v1/metrics`; unset: only when `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set.
    pub otlp_endpoint: Option<String>,
    /// How often the OTLP export runs, ms.
    pub otlp_interval_ms: u64,
    /// Give up on one OTLP export after this long, ms.
    pub otlp_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            service_graph_max_edges: 10_000,
            otlp_endpoint: None,
            otlp_interval_ms: 60_000,
            otlp_timeout_ms: 10_000,
        }
    }
}

impl TelemetryConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.otlp_interval_ms == 0 || self.otlp_timeout_ms == 0 {
            return Err("telemetry.otlp_interval_ms and telemetry.otlp_timeout_ms must be above 0".into());
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(format!(
                "telemetry.otlp_endpoint must be an http:// URL like http://localhost:4318/v1/metrics, not {endpoint:?}"
            ));
        }
        Ok(())
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is taken or not ours.
    #[error("http: cannot listen on {addr}: {source} (set --listen ADDR or [http] listen, or --no-http)")]
    Bind {
        /// `[http] listen`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or thread could not start.
    #[error("http: {0}")]
    Start(#[from] std::io::Error),
    /// Telemetry could not start.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
}

/// A running server. Dropping it stops it.
pub struct Server {
    api: Serving,
    otlp: Option<Serving>,
    otlp_grpc: Option<Serving>,
    state: Arc<ApiState>,
    telemetry: Option<Arc<Telemetry>>,
    refresh: Duration,
}

/// One listener served from its own thread (a single-threaded tokio runtime).
struct Serving {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `router` on `listener` from a new thread until the returned sender fires.
fn serve(
    name: &str,
    listener: std::net::TcpListener,
    router: axum::Router,
) -> std::io::Result<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)> {
    listener.set_nonblocking(true)?;
    on_thread(name, move |stopped| async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!("http: {e}"),
        };
        let serve = std::pin::pin!(axum::serve(listener, router).into_future());
        // Not graceful: event streams never end by themselves.
        if let futures_util::future::Either::Left((Err(e), _)) =
            futures_util::future::select(serve, stopped).await
        {
            tracing::error!("http: {e}");
        }
    })
}

/// Runs the future `run` makes on a new thread's single-threaded tokio runtime; the
/// returned sender tells it to stop (it gets the receiving end).
pub(crate) fn on_thread<F, Fut>(
    name: &str,
    run: F,
) -> std::io::Result<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>
where
    F: FnOnce(tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread =
        std::thread::Builder::new().name(name.into()).spawn(move || runtime.block_on(run(stopped)))?;
    Ok((stop, thread))
}

impl Server {
    /// Listens on `[http] listen` and serves from its own thread; `None` when
    /// `[http] enabled` is false. With `receivers`, the webhook routes take input, and
    /// OTLP/HTTP and OTLP/gRPC listen on `[receivers] otlp_http_listen` and
    /// `otlp_grpc_listen`, each from a thread of its own.
    pub fn start(config: &Config, receivers: Option<Arc<Receivers>>) -> Result<Option<Self>, HttpError> {
        let http = &config.http;
        if !http.enabled {
            if receivers.is_some() {
                return Err(HttpError::Start(std::io::Error::other(
                    "the receivers are served by the HTTP server, but [http] enabled is false",
                )));
            }
            return Ok(None);
        }
        let listener = match std::net::TcpListener::bind(&http.listen) {
            Ok(listener) => listener,
            // The default port taken (another Devloom on this host): run without the API
            // rather than refuse to read a file. An address asked for (or receivers, which
            // are the input) is a hard error.
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && http.listen == HttpConfig::default().listen
                    && receivers.is_none() =>
            {
                eprintln!(
                    "devloom: warning: HTTP API off: {} is in use (set --listen ADDR, or --no-http)",
                    http.listen
                );
                return Ok(None);
            }
            Err(source) => return Err(HttpError::Bind { addr: http.listen.clone(), source }),
        };
        let otlp = match receivers.as_ref().filter(|_| !config.receivers.otlp_http_listen.is_empty()) {
            Some(receivers) => {
                let addr = &config.receivers.otlp_http_listen;
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|source| HttpError::Bind { addr: addr.clone(), source })?;
                let local = listener.local_addr()?;
                let (stop, thread) = serve("devloom-otlp", listener, otlp::router(receivers.clone()))?;
                tracing::info!(addr = %local, "serving OTLP/HTTP");
                Some(Serving { addr: local, stop: Some(stop), thread: Some(thread) })
            }
            None => None,
        };
        let otlp_grpc = match receivers.as_ref().filter(|_| !config.receivers.otlp_grpc_listen.is_empty()) {
            Some(receivers) => {
                let addr = &config.receivers.otlp_grpc_listen;
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|source| HttpError::Bind { addr: addr.clone(), source })?;
                let (local, stop, thread) = otlp_grpc::start(listener, receivers.clone())?;
                tracing::info!(addr = %local, "serving OTLP/gRPC");
                Some(Serving { addr: local, stop: Some(stop), thread: Some(thread) })
            }
            None => None,
        };
        let addr = listener.local_addr()?;
        let telemetry = if config.telemetry.enabled {
            Some(Arc::new(Telemetry::start(&config.telemetry)?))
        } else {
            None
        };
        let state = Arc::new(ApiState::new(http.clone(), config.gate.clone()));
        let router =
            api::router(api::Shared { state: state.clone(), telemetry: telemetry.clone(), receivers });
        let (stop, thread) = serve("devloom-http", listener, router)?;
        tracing::info!(%addr, "serving the HTTP API");
        Ok(Some(Self {
            api: Serving { addr, stop: Some(stop), thread: Some(thread) },
            otlp,
            otlp_grpc,
            state,
            telemetry,
            refresh: Duration::from_millis(http.refresh_ms),
        }))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.api.addr
    }

    /// Where OTLP/HTTP listens, when the receivers are on.
    pub fn otlp_addr(&self) -> Option<SocketAddr> {
        self.otlp.as_ref().map(|o| o.addr)
    }

    /// Where OTLP/gRPC listens, when the receivers are on.
    pub fn otlp_grpc_addr(&self) -> Option<SocketAddr> {
        self.otlp_grpc.as_ref().map(|o| o.addr)
    }

    /// The API's state (the Kafka runtime marks it as checkpointing).
    pub fn state(&self) -> &Arc<ApiState> {
        &self.state
    }

    /// `pipeline`, publishing to the API and its telemetry as well.
    pub fn attach<S: Sink>(&self, pipeline: Pipeline<S>) -> Pipeline<S> {
        let mut pipeline = pipeline
            .tap(Box::new(ApiTap(self.state.clone())))
            .watch(Box::new(ApiWatcher(self.state.clone())));
        if let Some(t) = &self.telemetry {
            pipeline = pipeline.tap(Box::new(t.tap())).watch(Box::new(t.watcher(self.refresh)));
        }
        pipeline
    }

    /// Keeps serving until SIGINT or SIGTERM (`--serve`, after the input ended).
    pub fn serve_until_signalled(&self) -> std::io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, stop.clone())?;
        }
        eprintln!("devloom: input ended; serving http://{} until Ctrl-C or SIGTERM", self.api.addr);
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = &self.telemetry {
            t.shutdown();
        }
    }
}
