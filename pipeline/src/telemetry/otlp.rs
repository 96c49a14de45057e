//! Devloom's metrics over OTLP/HTTP (protobuf) when `[telemetry] otlp_endpoint` is set,
//! or when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` variables are: the `opentelemetry-otlp`
//! exporter on a periodic reader, posting through `ureq` from the reader's own thread
//! (no async runtime involved).

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::PeriodicReader;

use super::TelemetryError;
use crate::http::TelemetryConfig;

/// A blocking HTTP client for OTLP exporters (Devloom's metrics; the receivers' tests
/// export traces through it as an SDK would).
#[derive(Debug)]
pub struct Ureq(pub ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for Ureq {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = self.0.run(Request::from_parts(parts, body.to_vec()))?;
        let status = response.status();
        let body = response.body_mut().with_config().limit(4 << 20).read_to_vec()?;
        let mut answer = Response::new(Bytes::from(body));
        *answer.status_mut() = status;
        Ok(answer)
    }
}

/// Whether the standard OpenTelemetry variables ask for an OTLP export.
fn endpoint_in_environment() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// The periodic OTLP reader `config` asks for, if any.
pub fn reader(config: &TelemetryConfig) -> Result<Option<PeriodicReader<MetricExporter>>, TelemetryError> {
    if config.otlp_endpoint.is_none() && !endpoint_in_environment() {
        return Ok(None);
    }
    let timeout = Duration::from_millis(config.otlp_timeout_ms);
    let agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().new_agent();
    let mut builder =
        MetricExporter::builder().with_http().with_http_client(Ureq(agent)).with_timeout(timeout);
    if let Some(endpoint) = &config.otlp_endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let exporter = builder.build().map_err(|e| TelemetryError(format!("OTLP exporter: {e}")))?;
    Ok(Some(
        PeriodicReader::builder(exporter)
            .with_interval(Duration::from_millis(config.otlp_interval_ms))
            .build(),
    ))
}
