//! Configuration: one TOML file, `DEVLOOM_*` environment overrides, command-line flags
//! over both. Unknown keys are errors, with the key named.
//!
//! Environment variables map onto keys with `__` between levels:
//! `DEVLOOM_OUTPUT__PATH=maps.ndjson` sets `[output] path`,
//! `DEVLOOM_ENGINE__GRAPH__HEALTH__FAILURE_THRESHOLD=0.3` sets
//! `[engine.graph.health] failure_threshold`. Values are read as TOML when they parse
//! (numbers, booleans, arrays) and as strings otherwise. Only variables whose first part
//! names a section (`INPUT`, `OUTPUT`, `DECODE`, `ENGINE`, `KAFKA`, `CHECKPOINT`,
//! `HISTORY`, `SCORER`, `POSTMORTEM`, `HTTP`, `TELEMETRY`, `GATE`, `RECEIVERS`) are read; `DEVLOOM_LOG` (log filter), `DEVLOOM_CONFIG` (config
//! path) and any other `DEVLOOM_*` variable are not keys.

mod load;

use std::path::PathBuf;
use std::time::Duration;

use devloom_operators::EngineConfig;
use devloom_schemas::codec::DecodeOptions;
use serde::{Deserialize, Serialize};

use crate::gate::GateConfig;
use crate::history::ArchiveConfig;
use crate::http::{HttpConfig, TelemetryConfig};
use crate::receivers::ReceiversConfig;
pub use load::{ConfigError, Overrides, load};

/// Environment variables that are not configuration keys.
pub const NON_KEY_VARS: [&str; 2] = ["DEVLOOM_LOG", "DEVLOOM_CONFIG"];

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where events come from.
    pub input: InputConfig,
    /// Where outputs go.
    pub output: OutputConfig,
    /// How payloads are read.
    pub decode: DecodeConfig,
    /// Operator settings.
    pub engine: EngineConfig,
    /// Kafka: when `brokers` is set, `devloom run` consumes and publishes topics.
    pub kafka: KafkaConfig,
    /// Checkpoints of the Kafka runtime.
    pub checkpoint: CheckpointConfig,
    /// The Parquet history archive.
    pub history: HistoryConfig,
    /// The root-cause scorer.
    pub scorer: ScorerConfig,
    /// Post-mortem drafts.
    pub postmortem: PostmortemConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Devloom's own metrics.
    pub telemetry: TelemetryConfig,
    /// `[gate]`: the deployment gate (`/v1/gate`, `devloom gate`).
    pub gate: GateConfig,
    /// `[receivers]`: input over HTTP (webhooks, OTLP).
    pub receivers: ReceiversConfig,
    /// `[catalog]`: service catalog files.
    pub catalog: CatalogConfig,
}

/// `[catalog]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// Catalog files put in force before the first input of an embedded run, and before
    /// the replay of `devloom catalog check|drift --history`: `FORMAT=PATH`, FORMAT one of
    /// `backstage`, `pagerduty`, `devloom`. With Kafka, publish catalogs to the catalog
    /// topic instead (`devloom catalog import`).
    pub paths: Vec<String>,
}

/// `[postmortem]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostmortemConfig {
    /// A MiniJinja template for the drafts' Markdown; unset: the built-in one
    /// (`devloom postmortem template` prints it).
    pub template: Option<PathBuf>,
}

/// `[scorer]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorerConfig {
    /// Score root-cause candidates (published beside the impact maps).
    pub enabled: bool,
    /// A model file from `devloom train`; unset: the built-in default model.
    pub model: Option<PathBuf>,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self { enabled: true, model: None }
    }
}

/// `[kafka]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers (`host:port,…`). Empty: the embedded runtime (no Kafka).
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Create missing topics at start.
    pub create_topics: bool,
    /// Partitions of topics Devloom creates.
    pub partitions: i32,
    /// Replication factor of topics Devloom creates.
    pub replication: i32,
    /// Messages held per partition while the event-time merge waits for the others;
    /// beyond this the partition is paused (backpressure, not memory growth).
    pub max_buffered_per_partition: usize,
    /// Threads decoding input messages beside the operator thread; 0: one fewer than
    /// the cores, at least one.
    pub decode_threads: usize,
    /// Topic names.
    pub topics: TopicsConfig,
    /// librdkafka settings passed through untouched (SASL, SSL, timeouts, …).
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            group_id: "devloom".into(),
            create_topics: true,
            partitions: 3,
            replication: 1,
            max_buffered_per_partition: 1000,
            decode_threads: 0,
            topics: TopicsConfig::default(),
            properties: Default::default(),
        }
    }
}

/// `[kafka.topics]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// Traces in (OTLP protobuf or JSON).
    pub traces: String,
    /// Also consume the Collector Kafka exporter's topic (usually `otlp_spans`); empty: no.
    pub otlp_spans: String,
    /// Alerts in.
    pub alerts: String,
    /// Deploys and other changes in.
    pub deploys: String,
    /// Confirmed causes in (what `devloom history confirm --print` writes).
    pub causes: String,
    /// Service catalog snapshots in (Backstage YAML, PagerDuty export, Devloom catalog),
    /// keyed by source: the newest per source is in force.
    pub catalog: String,
    /// Impact maps out.
    pub impact: String,
    /// Root-cause candidate lists out.
    pub candidates: String,
    /// Remediation plans (diffs) out.
    pub remediations: String,
    /// Post-mortem drafts out.
    pub postmortems: String,
    /// Rollout decisions out.
    pub rollouts: String,
    /// Undecodable input out.
    pub deadletter: String,
    /// `--role pairing` → `--role pairing|graph`: per traces partition, call aggregates,
    /// spans linking into other partitions' traces, and progress (one partition).
    pub calls: String,
    /// `--role graph`: the one-partition topic whose consumer group picks the active
    /// graph instance.
    pub graph_leader: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            traces: "devloom.traces".into(),
            otlp_spans: String::new(),
            alerts: "devloom.alerts".into(),
            deploys: "devloom.deploys".into(),
            causes: "devloom.causes".into(),
            catalog: "devloom.catalog".into(),
            impact: "devloom.impact".into(),
            candidates: "devloom.candidates".into(),
            remediations: "devloom.remediations".into(),
            postmortems: "devloom.postmortems".into(),
            rollouts: "devloom.rollouts".into(),
            deadletter: "devloom.deadletter".into(),
            calls: "devloom.calls".into(),
            graph_leader: "devloom.graph-leader".into(),
        }
    }
}

/// `[checkpoint]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Directory of the checkpoint file (operator state + input offsets).
    pub state_dir: PathBuf,
    /// Checkpoint at least this often, milliseconds.
    pub interval_ms: u64,
    /// …or after this many input messages, whichever comes first.
    pub max_messages: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { state_dir: PathBuf::from("devloom-state"), interval_ms: 5_000, max_messages: 10_000 }
    }
}

/// `[history]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Archive every input event and output here (Parquet); unset: no archive.
    pub dir: Option<PathBuf>,
    /// Roll a file once it holds this many MiB.
    pub max_file_mib: u64,
    /// Roll a file once it has been open this many seconds.
    pub max_file_age_s: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { dir: None, max_file_mib: 128, max_file_age_s: 300 }
    }
}

impl HistoryConfig {
    /// The archive writer's settings, when an archive is configured.
    pub fn archive(&self) -> Option<ArchiveConfig> {
        self.dir.as_ref().map(|dir| ArchiveConfig {
            dir: dir.clone(),
            max_file_bytes: self.max_file_mib * 1024 * 1024,
            max_file_age: Duration::from_secs(self.max_file_age_s),
        })
    }
}

/// `[input]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Files to read (`-` for stdin). Empty: stdin.
    pub paths: Vec<String>,
    /// Run the built-in simulator with this scenario instead of reading inputs.
    pub simulate: Option<String>,
}

/// `[output]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Impact maps as JSON lines: a file, or `-` for stdout.
    pub path: String,
    /// Root-cause candidate lists as JSON lines (a file, or `-`); unset: not written.
    pub candidates: Option<String>,
    /// Remediation plans as JSON lines (a file, or `-`); unset: not written.
    pub remediations: Option<String>,
    /// Post-mortem drafts as JSON lines (a file, or `-`); unset: not written.
    pub postmortems: Option<String>,
    /// Rollout decisions as JSON lines (a file, or `-`); unset: not written.
    pub rollouts: Option<String>,
    /// Dead letters as JSON lines (created on the first one).
    pub dead_letter: PathBuf,
    /// Append to these files instead of replacing them on each run.
    pub append: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            path: "-".into(),
            candidates: None,
            remediations: None,
            postmortems: None,
            rollouts: None,
            dead_letter: PathBuf::from("devloom-deadletter.ndjson"),
            append: false,
        }
    }
}

/// `[decode]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// Alert labels naming the service, in order of preference.
    pub alert_service_labels: Vec<String>,
    /// The largest record read (a line of a file or stdin, a Kafka message), bytes; a
    /// longer one is dead-lettered with its size and first 1 KiB.
    pub max_record_bytes: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        let d = DecodeOptions::default();
        Self { alert_service_labels: d.alert_service_labels, max_record_bytes: d.max_record_bytes }
    }
}

impl DecodeConfig {
    /// As codec options.
    pub fn options(&self) -> DecodeOptions {
        DecodeOptions {
            alert_service_labels: self.alert_service_labels.clone(),
            max_record_bytes: self.max_record_bytes,
        }
    }
}
