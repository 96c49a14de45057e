//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on its own
//! listener (`[receivers] otlp_grpc_listen`, 4317 as the OTLP specification's default),
//! served by tonic with gzip accepted.
//!
//! Answers as the specification asks: `OK` with an `ExportTraceServiceResponse`;
//! `INVALID_ARGUMENT` naming what was wrong (and a dead letter) for a request that cannot
//! be decoded; while Devloom is behind, `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo`
//! detail (`retry_delay` = `[receivers] retry_after_s`), which tells exporters the
//! condition is temporary and when to retry; `UNAVAILABLE` when the broker refused.
//! The bearer token, when configured, is read from the `authorization` metadata.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};

use super::Receiver;
use super::intake::Taken;
use super::otlp::{Any, RetryInfo, RpcStatus};
use super::webhooks::Receivers;

/// The gRPC service.
struct Export(Arc<Receivers>);

#[tonic::async_trait]
impl TraceService for Export {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let answer = self.answer(request).await;
        let code = match &answer {
            Ok(_) => 200,
            Err(status) => match status.code() {
                Code::Unauthenticated => 401,
                Code::InvalidArgument => 400,
                Code::ResourceExhausted if status.details().is_empty() => 413,
                _ => 503,
            },
        };
        self.0.count(Receiver::Otlp, code);
        answer
    }
}

impl Export {
    async fn answer(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        // tonic has undone the transport's compression: the record is plain protobuf.
        let mut headers = metadata.into_headers();
        headers.remove(header::CONTENT_ENCODING);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
        let record =
            self.0.record(Receiver::Otlp, &headers, &message.encode_to_vec()).map_err(|refused| {
                let code = match refused.status.as_u16() {
                    401 => Code::Unauthenticated,
                    413 => Code::ResourceExhausted,
                    _ => Code::InvalidArgument,
                };
                Status::new(code, refused.message)
            })?;
        match self.0.intake.take(record).await {
            Taken::Accepted { partial, .. } => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: partial
                    .map(|message| ExportTracePartialSuccess { rejected_spans: 0, error_message: message }),
            })),
            Taken::Rejected(message) => Err(Status::invalid_argument(message)),
            Taken::Busy(message) => {
                let retry = RetryInfo::after(self.0.config.retry_after_s);
                let details = RpcStatus {
                    code: Code::ResourceExhausted as i32,
                    message: message.clone(),
                    details: vec![Any {
                        type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                        value: retry.encode_to_vec(),
                    }],
                };
                Err(Status::with_details(Code::ResourceExhausted, message, details.encode_to_vec().into()))
            }
            Taken::Failed(message) => Err(Status::unavailable(message)),
        }
    }
}

/// Serves OTLP/gRPC on `listener` from a thread of its own.
pub fn start(
    listener: std::net::TcpListener,
    receivers: Arc<Receivers>,
) -> std::io::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>)> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let max = receivers.config.max_body_bytes;
    let service = TraceServiceServer::new(Export(receivers))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let (stop, thread) = crate::http::on_thread("devloom-otlp-grpc", move |stopped| async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!("otlp grpc: {e}"),
        };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let served =
            tonic::transport::Server::builder().serve_with_incoming_shutdown(service, incoming, async move {
                let _ = stopped.await;
            });
        if let Err(e) = served.await {
            tracing::error!("otlp grpc: {e}");
        }
    })?;
    Ok((addr, stop, thread))
}
