//! The normalized span: only what Devloom reads from OTLP.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};
use crate::time::TimestampNs;

/// OpenTelemetry `SpanKind`, with `Unspecified` kept apart from `Internal` so legacy
/// instrumentation can still be paired by parent/child service changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// No kind recorded (OTLP value 0).
    #[default]
    Unspecified,
    /// In-process work (1).
    Internal,
    /// Handles a synchronous request (2).
    Server,
    /// Makes a synchronous request (3).
    Client,
    /// Sends a message (4).
    Producer,
    /// Receives a message (5).
    Consumer,
}

impl SpanKind {
    /// Maps the OTLP integer enum; unknown values are treated as unspecified.
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }
}

/// A link from this span to another span (async messaging, batch fan-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpanLink {
    /// Trace of the linked span.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
}

/// Attributes that name the other side of a client call, used for virtual nodes when the
/// callee is not instrumented. Old and new semantic-convention names fill the same slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAttributes {
    /// `service.peer.name` or `peer.service`.
    #[serde(default)]
    pub peer_service: Option<String>,
    /// `server.address`, `net.peer.name` or OpenTracing's `peer.hostname`.
    #[serde(default)]
    pub server_address: Option<String>,
    /// `db.system.name`, `db.system` or OpenTracing's `db.type`.
    #[serde(default)]
    pub db_system: Option<String>,
    /// `messaging.destination.name` or `messaging.destination`.
    #[serde(default)]
    pub messaging_destination: Option<String>,
    /// `rpc.service` (e.g. `grpc.health.v1.Health`).
    #[serde(default)]
    pub rpc_service: Option<String>,
}

impl PeerAttributes {
    /// The name a virtual node gets, by preference: peer service, messaging destination
    /// (a queue is its topic), server address (which database or API instance), database
    /// system (only its type is known), RPC service. Two databases of one system are two
    /// nodes when their calls name their hosts.
    pub fn virtual_node_name(&self) -> Option<&str> {
        self.peer_service
            .as_deref()
            .or(self.messaging_destination.as_deref())
            .or(self.server_address.as_deref())
            .or(self.db_system.as_deref())
            .or(self.rpc_service.as_deref())
    }

    /// The peer a span without a kind names explicitly: its peer service, or the database
    /// it called (by host, else by system). A server span carries `server.address` too,
    /// so without a database system the address names no peer.
    pub fn outbound_name(&self) -> Option<&str> {
        let database =
            || self.db_system.as_deref().map(|system| self.server_address.as_deref().unwrap_or(system));
        self.peer_service.as_deref().or_else(database)
    }

    /// True when no attribute is set.
    pub fn is_empty(&self) -> bool {
        self.virtual_node_name().is_none()
    }
}

/// One finished span, normalized from OTLP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Trace the span belongs to.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// Parent span, absent for roots.
    #[serde(default)]
    pub parent_span_id: Option<SpanId>,
    /// Links to other spans (producer → consumer hand-offs).
    #[serde(default)]
    pub links: Vec<SpanLink>,
    /// Resource `service.name` (`unknown_service` when absent, as the SDKs do).
    pub service: Arc<str>,
    /// Resource `cloud.region`, when present.
    #[serde(default)]
    pub region: Option<Arc<str>>,
    /// Resource `service.version`, when present: what tells a canary from the stable
    /// version during a staged rollout.
    #[serde(default)]
    pub version: Option<Arc<str>>,
    /// Resource `deployment.environment.name` (or the older `deployment.environment`).
    #[serde(default)]
    pub environment: Option<Arc<str>>,
    /// Span kind.
    pub kind: SpanKind,
    /// Span name.
    pub name: String,
    /// Start, ns since epoch.
    pub start_ns: TimestampNs,
    /// End, ns since epoch.
    pub end_ns: TimestampNs,
    /// Status ERROR, HTTP status ≥ 500, or a gRPC status other than OK.
    pub failed: bool,
    /// The other side of a client call, for virtual nodes.
    #[serde(default)]
    pub peer: PeerAttributes,
}

impl Span {
    /// Duration in nanoseconds (zero when the clock went backwards).
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}
