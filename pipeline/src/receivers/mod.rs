//! Receivers: alerts, deploys and traces taken the way their producers already send
//! them, over HTTP.
//!
//! - [`webhooks`]: `POST /v1/receivers/{alertmanager,pagerduty,github,argocd,cloudevents}`
//!   on the API server.
//! - [`otlp`]: OTLP/HTTP `POST /v1/traces` on its own port (4318); [`otlp_grpc`]:
//!   OTLP/gRPC `TraceService/Export` (4317).
//! - [`intake`]: where a received payload goes. Embedded, into the operator loop through
//!   a bounded queue ([`crate::sources::received`] is its reading end); with brokers, onto
//!   the matching input topic, answered only once the broker acknowledged, so the
//!   pipeline stays the single reader and replay and checkpoints stay exact.
//! - [`auth`]: per-receiver bearer tokens and the producers' HMAC signatures.
//!
//! Every receiver decodes what it was sent with the codecs every other input uses, so a
//! malformed payload is answered 400 with the decoder's message and becomes a dead
//! letter like any other.

pub mod auth;
pub mod intake;
pub mod otlp;
pub mod otlp_grpc;
pub mod webhooks;

use std::net::SocketAddr;

use devloom_schemas::codec::Expect;
use serde::{Deserialize, Serialize};

pub use intake::Intake;

/// `[receivers]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiversConfig {
    /// Take input over HTTP (`devloom run --receive`): the webhook routes on the API
    /// server and the OTLP listener. Embedded, they are the run's input; with brokers,
    /// they produce to the input topics.
    pub enabled: bool,
    /// Where OTLP/HTTP (`POST /v1/traces`) listens; `""` turns it off. Loopback by default.
    pub otlp_http_listen: String,
    /// Where OTLP/gRPC (`TraceService/Export`) listens; `""` turns it off.
    pub otlp_grpc_listen: String,
    /// The largest request body accepted, bytes, after `Content-Encoding: gzip` is undone.
    pub max_body_bytes: usize,
    /// Received payloads waiting for the operators (embedded). When it is full a
    /// receiver waits `queue_wait_ms`, then answers 503 with `Retry-After`.
    pub queue: usize,
    /// How long a receiver waits for room in the queue, ms.
    pub queue_wait_ms: u64,
    /// The `Retry-After` a sender is given when Devloom is behind, seconds.
    pub retry_after_s: u64,
    /// With brokers: how long a receiver waits for the broker's acknowledgement before
    /// answering 503, ms.
    pub ack_timeout_ms: u64,
    /// `POST /v1/receivers/alertmanager`.
    pub alertmanager: ReceiverAuth,
    /// `POST /v1/receivers/pagerduty` (`secret`: the v3 webhook subscription's).
    pub pagerduty: ReceiverAuth,
    /// `POST /v1/receivers/github` (`secret`: the webhook's).
    pub github: ReceiverAuth,
    /// `POST /v1/receivers/argocd`.
    pub argocd: ReceiverAuth,
    /// `POST /v1/receivers/cloudevents`.
    pub cloudevents: ReceiverAuth,
    /// OTLP `POST /v1/traces`.
    pub otlp: ReceiverAuth,
    /// Service catalogs, `POST /v1/receivers/catalog?source=NAME`.
    pub catalog: ReceiverAuth,
}

impl Default for ReceiversConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            otlp_http_listen: "127.0.0.1:4318".into(),
            otlp_grpc_listen: "127.0.0.1:4317".into(),
            max_body_bytes: 16 << 20,
            queue: 1024,
            queue_wait_ms: 200,
            retry_after_s: 1,
            ack_timeout_ms: 10_000,
            alertmanager: ReceiverAuth::default(),
            pagerduty: ReceiverAuth::default(),
            github: ReceiverAuth::default(),
            argocd: ReceiverAuth::default(),
            cloudevents: ReceiverAuth::default(),
            otlp: ReceiverAuth::default(),
            catalog: ReceiverAuth::default(),
        }
    }
}

/// What a receiver requires of a request. Both unset: nothing (fine on loopback).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverAuth {
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Require the producer's HMAC-SHA256 signature of the body with this secret
    /// (GitHub `X-Hub-Signature-256`, PagerDuty `X-PagerDuty-Signature`); only those two
    /// receivers take one.
    pub secret: Option<String>,
}

impl ReceiversConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("queue", self.queue as u64),
            ("ack_timeout_ms", self.ack_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("receivers.{name} must be above 0"));
            }
        }
        for (name, value, example) in [
            ("otlp_http_listen", &self.otlp_http_listen, "127.0.0.1:4318"),
            ("otlp_grpc_listen", &self.otlp_grpc_listen, "127.0.0.1:4317"),
        ] {
            if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
                return Err(format!(
                    "receivers.{name} must be an address like {example} (or \"\" for off), not {value:?}"
                ));
            }
        }
        for receiver in Receiver::ALL {
            let auth = self.auth(receiver);
            if auth.secret.is_some() && !receiver.signs() {
                return Err(format!(
                    "receivers.{}.secret: {} does not sign its requests; use token (a bearer token) instead",
                    receiver.name(),
                    receiver.name()
                ));
            }
            if [&auth.token, &auth.secret].into_iter().flatten().any(|s| s.is_empty()) {
                return Err(format!(
                    "receivers.{}: an empty token or secret would accept anyone",
                    receiver.name()
                ));
            }
        }
        Ok(())
    }

    /// What `receiver` requires.
    pub fn auth(&self, receiver: Receiver) -> &ReceiverAuth {
        match receiver {
            Receiver::Alertmanager => &self.alertmanager,
            Receiver::Pagerduty => &self.pagerduty,
            Receiver::Github => &self.github,
            Receiver::Argocd => &self.argocd,
            Receiver::Cloudevents => &self.cloudevents,
            Receiver::Otlp => &self.otlp,
            Receiver::Catalog => &self.catalog,
        }
    }
}

/// Where the receivers listen, printed at start (tests and scripts read the addresses).
pub fn print_addresses(server: &crate::http::Server) {
    eprintln!(
        "devloom: receiving webhooks on http://{}/v1/receivers/{{alertmanager,pagerduty,github,argocd,cloudevents,catalog}}",
        server.addr()
    );
    match server.otlp_addr() {
        Some(addr) => eprintln!("devloom: receiving OTLP/HTTP on http://{addr}/v1/traces"),
        None => eprintln!("devloom: OTLP/HTTP off (receivers.otlp_http_listen is empty)"),
    }
    match server.otlp_grpc_addr() {
        Some(addr) => eprintln!("devloom: receiving OTLP/gRPC on {addr}"),
        None => eprintln!("devloom: OTLP/gRPC off (receivers.otlp_grpc_listen is empty)"),
    }
    eprintln!("devloom: Ctrl-C or SIGTERM stops after processing everything accepted");
}

/// One receiver: who sends to it and what it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// Prometheus Alertmanager `webhook_configs`.
    Alertmanager,
    /// PagerDuty Events API v2 bodies and v3 webhooks.
    Pagerduty,
    /// GitHub `deployment_status` (and `deployment`) webhooks.
    Github,
    /// Argo CD Notifications webhooks and `Application` JSON.
    Argocd,
    /// CloudEvents over HTTP, binary or structured.
    Cloudevents,
    /// OTLP/HTTP traces.
    Otlp,
    /// Service catalog snapshots (Backstage YAML, a PagerDuty export, a Devloom catalog).
    Catalog,
}

impl Receiver {
    /// Every receiver.
    pub const ALL: [Self; 7] = [
        Self::Alertmanager,
        Self::Pagerduty,
        Self::Github,
        Self::Argocd,
        Self::Cloudevents,
        Self::Otlp,
        Self::Catalog,
    ];

    /// Its name in config and paths.
    pub fn name(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Pagerduty => "pagerduty",
            Self::Github => "github",
            Self::Argocd => "argocd",
            Self::Cloudevents => "cloudevents",
            Self::Otlp => "otlp",
            Self::Catalog => "catalog",
        }
    }

    /// The path it is posted to.
    pub fn route(self) -> &'static str {
        match self {
            Self::Alertmanager => "/v1/receivers/alertmanager",
            Self::Pagerduty => "/v1/receivers/pagerduty",
            Self::Github => "/v1/receivers/github",
            Self::Argocd => "/v1/receivers/argocd",
            Self::Cloudevents => "/v1/receivers/cloudevents",
            Self::Otlp => "/v1/traces",
            Self::Catalog => "/v1/receivers/catalog",
        }
    }

    /// The input family it takes (CloudEvents carry any).
    pub fn expect(self) -> Expect {
        match self {
            Self::Alertmanager | Self::Pagerduty => Expect::Alerts,
            Self::Github | Self::Argocd => Expect::Deploys,
            Self::Cloudevents => Expect::Any,
            Self::Otlp => Expect::Traces,
            Self::Catalog => Expect::Catalog,
        }
    }

    /// Whether its producer signs requests with a shared secret.
    fn signs(self) -> bool {
        matches!(self, Self::Pagerduty | Self::Github)
    }
}
