//! The one place that interprets OTLP attributes, shared by the reference decoder (the
//! generated `opentelemetry-proto` types) and the selective protobuf decoder, so both
//! read old and new semantic-convention names identically.

use std::sync::Arc;

use crate::span::PeerAttributes;

/// An attribute value, borrowed from whichever decoder read it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Other,
}

impl AttrValue<'_> {
    fn as_int(self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(i),
            Self::Str(s) => s.trim().parse().ok(),
            Self::Bool(_) | Self::Other => None,
        }
    }

    fn as_string(self) -> Option<String> {
        match self {
            Self::Str(s) if !s.is_empty() => Some(s.to_string()),
            Self::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

/// Is `key` one that [`SpanAttributes::apply`] reads? Lets a decoder skip the value.
pub(crate) fn is_span_key(key: &str) -> bool {
    matches!(
        key,
        "http.status_code"
            | "http.response.status_code"
            | "rpc.grpc.status_code"
            | "rpc.response.status_code"
            | "rpc.service"
            | "peer.service"
            | "service.peer.name"
            | "server.address"
            | "net.peer.name"
            | "peer.hostname"
            | "db.system"
            | "db.type"
            | "db.system.name"
            | "messaging.destination"
            | "messaging.destination.name"
            | "error"
            | "otel.status_code"
            | "status.code"
            | "span.kind"
    )
}

/// Is `key` one that [`ResourceAttributes::apply`] reads?
pub(crate) fn is_resource_key(key: &str) -> bool {
    matches!(
        key,
        "service.name"
            | "cloud.region"
            | "service.version"
            | "deployment.environment.name"
            | "deployment.environment"
    )
}

/// Span attributes Devloom keeps. New semantic-convention names win over old ones,
/// whatever order they arrive in.
#[derive(Default)]
pub(crate) struct SpanAttributes {
    http_status: Option<(i64, bool)>,
    grpc_failed: Option<(bool, bool)>,
    /// A legacy error marker: OpenTracing's `error=true`, `otel.status_code=ERROR` of
    /// Zipkin / Jaeger conversions, or a `status.code` tag of 2 / ERROR.
    legacy_error: bool,
    /// The OTLP kind a `span.kind` tag names (OpenTracing's convention, kept as an
    /// attribute by Jaeger and Zipkin conversions): 0 when there is none.
    pub kind_tag: i32,
    pub peer: PeerAttributes,
    peer_new: u8,
}

const PEER_SERVICE: u8 = 1;
const SERVER_ADDRESS: u8 = 2;
const DB_SYSTEM: u8 = 4;
const MESSAGING: u8 = 8;

impl SpanAttributes {
    pub(crate) fn apply(&mut self, key: &str, value: AttrValue<'_>) {
        match key {
            "http.response.status_code" => set_int(&mut self.http_status, value, true),
            "http.status_code" => set_int(&mut self.http_status, value, false),
            "rpc.grpc.status_code" => {
                if let Some(code) = value.as_int() {
                    set_pref(&mut self.grpc_failed, code != 0, false);
                }
            }
            "rpc.response.status_code" => {
                let failed = match value {
                    AttrValue::Str(s) => !(s.eq_ignore_ascii_case("OK") || s == "0"),
                    AttrValue::Int(i) => i != 0,
                    AttrValue::Bool(_) | AttrValue::Other => return,
                };
                set_pref(&mut self.grpc_failed, failed, true);
            }
            "error" => {
                self.legacy_error |= matches!(value, AttrValue::Bool(true))
                    || matches!(value, AttrValue::Str(s) if s.eq_ignore_ascii_case("true"));
            }
            "otel.status_code" | "status.code" => {
                self.legacy_error |= match value {
                    AttrValue::Str(s) => {
                        let s = s.trim();
                        s.eq_ignore_ascii_case("ERROR")
                            || s.eq_ignore_ascii_case("STATUS_CODE_ERROR")
                            || s == "2"
                    }
                    AttrValue::Int(code) => code == 2,
                    AttrValue::Bool(_) | AttrValue::Other => false,
                };
            }
            "span.kind" => {
                // Other values (OpenInference's `LLM`, say) name no OTLP kind.
                let AttrValue::Str(s) = value else { return };
                self.kind_tag = match s.trim().to_ascii_lowercase().as_str() {
                    "internal" => 1,
                    "server" => 2,
                    "client" => 3,
                    "producer" => 4,
                    "consumer" => 5,
                    _ => 0,
                };
            }
            "rpc.service" if self.peer.rpc_service.is_none() => {
                self.peer.rpc_service = value.as_string();
            }
            "service.peer.name" => self.set_peer(PEER_SERVICE, value, true),
            "peer.service" => self.set_peer(PEER_SERVICE, value, false),
            "server.address" => self.set_peer(SERVER_ADDRESS, value, true),
            // OpenTracing's names, kept as attributes by Jaeger and Zipkin conversions.
            "net.peer.name" | "peer.hostname" => self.set_peer(SERVER_ADDRESS, value, false),
            "db.system.name" => self.set_peer(DB_SYSTEM, value, true),
            "db.system" | "db.type" => self.set_peer(DB_SYSTEM, value, false),
            "messaging.destination.name" => self.set_peer(MESSAGING, value, true),
            "messaging.destination" => self.set_peer(MESSAGING, value, false),
            _ => {}
        }
    }

    fn set_peer(&mut self, slot: u8, value: AttrValue<'_>, new_name: bool) {
        if !new_name && self.peer_new & slot != 0 {
            return;
        }
        let Some(text) = value.as_string() else { return };
        let field = match slot {
            PEER_SERVICE => &mut self.peer.peer_service,
            SERVER_ADDRESS => &mut self.peer.server_address,
            DB_SYSTEM => &mut self.peer.db_system,
            _ => &mut self.peer.messaging_destination,
        };
        if new_name || field.is_none() {
            *field = Some(text);
        }
        if new_name {
            self.peer_new |= slot;
        }
    }

    /// Status ERROR (code 2), HTTP ≥ 500, a gRPC status other than OK, or a legacy
    /// error marker (for spans without a status).
    pub(crate) fn failed(&self, status_code: i32) -> bool {
        status_code == 2
            || self.http_status.is_some_and(|(s, _)| s >= 500)
            || self.grpc_failed.is_some_and(|(f, _)| f)
            || self.legacy_error
    }
}

fn set_int(slot: &mut Option<(i64, bool)>, value: AttrValue<'_>, new_name: bool) {
    if let Some(v) = value.as_int() {
        set_pref(slot, v, new_name);
    }
}

fn set_pref<T>(slot: &mut Option<(T, bool)>, v: T, new_name: bool) {
    if new_name || !slot.as_ref().is_some_and(|(_, was_new)| *was_new) {
        *slot = Some((v, new_name));
    }
}

/// Resource attributes Devloom keeps.
#[derive(Default)]
pub(crate) struct ResourceAttributes {
    service: Option<Arc<str>>,
    region: Option<Arc<str>>,
    version: Option<Arc<str>>,
    environment: Option<(Arc<str>, bool)>,
}

/// What every span of one resource shares.
pub(crate) struct ResourceParts {
    pub service: Arc<str>,
    pub region: Option<Arc<str>>,
    pub version: Option<Arc<str>>,
    pub environment: Option<Arc<str>>,
}

impl ResourceAttributes {
    pub(crate) fn apply(&mut self, key: &str, value: AttrValue<'_>) {
        let AttrValue::Str(s) = value else { return };
        if s.is_empty() {
            return;
        }
        match key {
            "service.name" => self.service = Some(Arc::from(s)),
            "cloud.region" => self.region = Some(Arc::from(s)),
            "service.version" => self.version = Some(Arc::from(s)),
            "deployment.environment.name" => set_pref(&mut self.environment, Arc::from(s), true),
            "deployment.environment" => set_pref(&mut self.environment, Arc::from(s), false),
            _ => {}
        }
    }

    /// `service.name`, or `unknown_service` as the SDKs report a missing one.
    pub(crate) fn into_parts(self) -> ResourceParts {
        ResourceParts {
            service: self.service.unwrap_or_else(|| Arc::from("unknown_service")),
            region: self.region,
            version: self.version,
            environment: self.environment.map(|(e, _)| e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_win_in_any_order() {
        let mut a = SpanAttributes::default();
        a.apply("db.system.name", AttrValue::Str("postgresql"));
        a.apply("db.system", AttrValue::Str("mysql"));
        a.apply("http.response.status_code", AttrValue::Int(200));
        a.apply("http.status_code", AttrValue::Int(503));
        assert_eq!(a.peer.db_system.as_deref(), Some("postgresql"));
        assert!(!a.failed(0));

        let mut b = SpanAttributes::default();
        b.apply("peer.service", AttrValue::Str("old"));
        b.apply("service.peer.name", AttrValue::Str("new"));
        b.apply("http.status_code", AttrValue::Str("502"));
        assert_eq!(b.peer.peer_service.as_deref(), Some("new"));
        assert!(b.failed(0));
    }

    #[test]
    fn grpc_and_status_failures() {
        let mut a = SpanAttributes::default();
        a.apply("rpc.grpc.status_code", AttrValue::Int(14));
        assert!(a.failed(0));
        let mut b = SpanAttributes::default();
        b.apply("rpc.response.status_code", AttrValue::Str("OK"));
        b.apply("rpc.grpc.status_code", AttrValue::Int(14));
        assert!(!b.failed(0), "new name says OK");
        assert!(b.failed(2), "status ERROR always fails");
    }

    #[test]
    fn legacy_error_markers_fail_a_span_without_status() {
        for (key, value) in [
            ("error", AttrValue::Bool(true)),
            ("error", AttrValue::Str("true")),
            ("otel.status_code", AttrValue::Str("ERROR")),
            ("status.code", AttrValue::Int(2)),
            ("status.code", AttrValue::Str("STATUS_CODE_ERROR")),
        ] {
            let mut a = SpanAttributes::default();
            assert!(is_span_key(key));
            a.apply(key, value);
            assert!(a.failed(0), "{key} = {value:?}");
        }
        for (key, value) in [("error", AttrValue::Bool(false)), ("otel.status_code", AttrValue::Str("OK"))] {
            let mut a = SpanAttributes::default();
            a.apply(key, value);
            assert!(!a.failed(0), "{key} = {value:?}");
        }
    }

    #[test]
    fn opentracing_peer_tags_name_a_database_and_lose_to_the_semantic_conventions() {
        let mut jaeger = SpanAttributes::default();
        jaeger.apply("db.type", AttrValue::Str("sql"));
        jaeger.apply("peer.hostname", AttrValue::Str("ts-order-mysql"));
        assert_eq!(jaeger.peer.db_system.as_deref(), Some("sql"));
        assert_eq!(jaeger.peer.virtual_node_name(), Some("ts-order-mysql"), "the host names the instance");
        assert_eq!(
            jaeger.peer.outbound_name(),
            Some("ts-order-mysql"),
            "kind-less too, being a database call"
        );
        let mut both = SpanAttributes::default();
        both.apply("db.system.name", AttrValue::Str("mysql"));
        both.apply("db.type", AttrValue::Str("sql"));
        both.apply("server.address", AttrValue::Str("orders.db"));
        both.apply("peer.hostname", AttrValue::Str("old-host"));
        assert_eq!(both.peer.db_system.as_deref(), Some("mysql"));
        assert_eq!(both.peer.server_address.as_deref(), Some("orders.db"));
        let mut server = SpanAttributes::default();
        server.apply("server.address", AttrValue::Str("cart.internal"));
        assert_eq!(server.peer.outbound_name(), None, "a server span's own address names no peer");
    }

    #[test]
    fn a_span_kind_tag_names_the_otlp_kind() {
        assert!(is_span_key("span.kind"));
        for (tag, kind) in
            [("server", 2), ("client", 3), ("producer", 4), ("consumer", 5), ("internal", 1), ("SERVER", 2)]
        {
            let mut a = SpanAttributes::default();
            a.apply("span.kind", AttrValue::Str(tag));
            assert_eq!(a.kind_tag, kind, "{tag}");
        }
        for value in [AttrValue::Str("LLM"), AttrValue::Str(""), AttrValue::Int(2)] {
            let mut a = SpanAttributes::default();
            a.apply("span.kind", value);
            assert_eq!(a.kind_tag, 0, "{value:?}");
        }
    }
}
