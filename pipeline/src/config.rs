//! Configuration: one TOML file, `DEVLOOM_*` environment overrides, command-line flags
//! over both. Unknown keys are errors, with the key named.
//!
//! Environment variables map onto keys with `__` between levels:
//! `DEVLOOM_OUTPUT__PATH=maps.ndjson` sets `[output] path`,
//! `DEVLOOM_ENGINE__GRAPH__HEALTH__FAILURE_THRESHOLD=0.3` sets
//! `[engine.graph.health] failure_threshold`. Values are read as TOML when they parse
//! (numbers, booleans, arrays) and as strings otherwise. `DEVLOOM_LOG` (log filter) and
//! `DEVLOOM_CONFIG` (config path) are not keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devloom_operators::EngineConfig;
use devloom_schemas::codec::DecodeOptions;
use serde::{Deserialize, Serialize};

use crate::history::ArchiveConfig;

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
    /// Impact maps out.
    pub impact: String,
    /// Root-cause candidate lists out.
    pub candidates: String,
    /// Undecodable input out.
    pub deadletter: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            traces: "devloom.traces".into(),
            otlp_spans: String::new(),
            alerts: "devloom.alerts".into(),
            deploys: "devloom.deploys".into(),
            impact: "devloom.impact".into(),
            candidates: "devloom.candidates".into(),
            deadletter: "devloom.deadletter".into(),
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
    /// Dead letters as JSON lines (created on the first one).
    pub dead_letter: PathBuf,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self { path: "-".into(), dead_letter: PathBuf::from("devloom-deadletter.ndjson") }
    }
}

/// `[decode]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// Alert labels naming the service, in order of preference.
    pub alert_service_labels: Vec<String>,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self { alert_service_labels: DecodeOptions::default().alert_service_labels }
    }
}

impl DecodeConfig {
    /// As codec options.
    pub fn options(&self) -> DecodeOptions {
        DecodeOptions { alert_service_labels: self.alert_service_labels.clone() }
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file or an override does not fit the schema.
    #[error("invalid config {origin}: {message}")]
    Invalid {
        /// The file (and overrides).
        origin: String,
        /// What was wrong, naming the key.
        message: String,
    },
}

/// Loads `path` (if any), applies `DEVLOOM_*` variables from `env`, and checks the result.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let origin = path.map_or_else(|| "(defaults)".to_string(), |p| p.display().to_string());
    let mut tree = match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
            toml::from_str::<toml::Table>(&text)
                .map_err(|e| ConfigError::Invalid { origin: origin.clone(), message: e.to_string() })?
        }
        None => toml::Table::new(),
    };
    let mut overridden = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("DEVLOOM_") && !NON_KEY_VARS.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let keys: Vec<String> = var["DEVLOOM_".len()..].split("__").map(str::to_ascii_lowercase).collect();
        set(&mut tree, &keys, parse_value(&raw));
        overridden.push(var);
    }
    let origin =
        if overridden.is_empty() { origin } else { format!("{origin} with {}", overridden.join(", ")) };
    let config: Config = Config::deserialize(toml::Value::Table(tree))
        .map_err(|e| ConfigError::Invalid { origin: origin.clone(), message: e.to_string() })?;
    config.check().map_err(|message| ConfigError::Invalid { origin, message })?;
    Ok(config)
}

fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    match keys {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set(t, rest, value);
            }
        }
    }
}

impl Config {
    /// Rejects settings that parse but cannot work.
    pub fn check(&self) -> Result<(), String> {
        let w = &self.engine.graph.window;
        let h = &self.engine.graph.health;
        if w.bucket_ms == 0 {
            return Err("engine.graph.window.bucket_ms must be above 0".into());
        }
        if w.short_window_ms < w.bucket_ms {
            return Err("engine.graph.window.short_window_ms must be at least bucket_ms".into());
        }
        for (name, v) in
            [("failure_threshold", h.failure_threshold), ("amber_error_increase", h.amber_error_increase)]
        {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("engine.graph.health.{name} must be between 0 and 1, got {v}"));
            }
        }
        if self.engine.pairing.max_pending == 0 {
            return Err("engine.pairing.max_pending must be above 0".into());
        }
        if !self.kafka.brokers.is_empty() && (self.kafka.partitions < 1 || self.kafka.replication < 1) {
            return Err("kafka.partitions and kafka.replication must be at least 1".into());
        }
        if self.history.max_file_mib == 0 || self.history.max_file_age_s == 0 {
            return Err("history.max_file_mib and history.max_file_age_s must be above 0".into());
        }
        if self.decode.alert_service_labels.is_empty() {
            return Err("decode.alert_service_labels must name at least one label".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn example_config_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../devloom.example.toml");
        assert_eq!(load(Some(&path), vec![]).unwrap(), Config::default());
    }

    #[test]
    fn environment_overrides_file_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devloom.toml");
        std::fs::write(
            &path,
            "[output]\npath = \"maps.ndjson\"\n[engine.graph.health]\nfailure_threshold = 0.3\n",
        )
        .unwrap();
        let c = load(
            Some(&path),
            env(&[("DEVLOOM_ENGINE__GRAPH__HEALTH__FAILURE_THRESHOLD", "0.4"), ("DEVLOOM_LOG", "debug")]),
        )
        .unwrap();
        assert_eq!(c.output.path, "maps.ndjson");
        assert_eq!(c.engine.graph.health.failure_threshold, 0.4);

        let err = load(Some(&path), env(&[("DEVLOOM_OUTPUT__COLOUR", "red")])).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(err.contains("DEVLOOM_OUTPUT__COLOUR"), "names the override: {err}");

        std::fs::write(&path, "[engine.graph.window]\nbucket_ms = 0\n").unwrap();
        let err = load(Some(&path), vec![]).unwrap_err().to_string();
        assert!(err.ends_with("engine.graph.window.bucket_ms must be above 0"), "{err}");

        std::fs::write(&path, "[engine]\nallowed_lateness = 5\n").unwrap();
        let err = load(Some(&path), vec![]).unwrap_err().to_string();
        assert!(err.contains("unknown field `allowed_lateness`"), "{err}");
    }
}
