//! Loading: the TOML file, then `DEVLOOM_*` environment variables, then the command
//! line's [`Overrides`], then [`Config::check`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Config, NON_KEY_VARS};

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
            let invalid = |message: String| ConfigError::Invalid { origin: origin.clone(), message };
            let tree = toml::from_str::<toml::Table>(&text).map_err(|e| invalid(not_toml(p, &text, e)))?;
            // The file alone first, so a wrong key is reported at its line and column.
            toml::from_str::<Config>(&text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
            tree
        }
        None => toml::Table::new(),
    };
    let mut overridden = Vec::new();
    // Only variables naming a section are keys: DEVLOOM_BLESS and other tools'
    // DEVLOOM_* variables are not Devloom's configuration.
    let sections = toml::Table::try_from(Config::default()).unwrap_or_default();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| {
            let key = k.strip_prefix("DEVLOOM_").filter(|_| !NON_KEY_VARS.contains(&k.as_str()));
            key.and_then(|k| k.split("__").next())
                .is_some_and(|s| sections.contains_key(&s.to_ascii_lowercase()))
        })
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

/// The TOML error, with a hint when the file is YAML or JSON (Devloom reads TOML only).
fn not_toml(path: &Path, text: &str, e: toml::de::Error) -> String {
    let message = e.to_string().trim_end().to_string();
    let ext = path.extension().and_then(|x| x.to_str()).unwrap_or_default().to_ascii_lowercase();
    let yaml_like = text.lines().any(|l| {
        let l = l.trim_start();
        !l.starts_with('#') && !l.contains('=') && (l.starts_with("- ") || l.split_once(": ").is_some())
    });
    if matches!(ext.as_str(), "yaml" | "yml" | "json") || (yaml_like && !text.contains('=')) {
        format!(
            "the configuration file is TOML (see devloom.example.toml), and this looks like {}: {message}",
            if ext == "json" { "JSON" } else { "YAML" }
        )
    } else {
        message
    }
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
    /// Rejects settings that parse but cannot work: each operator's own checks, then the
    /// runtime's.
    pub fn check(&self) -> Result<(), String> {
        self.engine.validate()?;
        self.http.validate()?;
        self.telemetry.validate()?;
        self.gate.validate()?;
        self.receivers.validate()?;
        for (i, arg) in self.catalog.paths.iter().enumerate() {
            crate::sources::catalogs::parse_arg(arg).map_err(|e| format!("catalog.paths[{i}]: {e}"))?;
        }
        if !self.kafka.brokers.is_empty() && (self.kafka.partitions < 1 || self.kafka.replication < 1) {
            return Err("kafka.partitions and kafka.replication must be at least 1".into());
        }
        if self.history.max_file_mib == 0 || self.history.max_file_age_s == 0 {
            return Err("history.max_file_mib and history.max_file_age_s must be above 0".into());
        }
        if self.history.max_file_mib.checked_mul(1 << 20).is_none() {
            return Err(format!("history.max_file_mib is too large: {}", self.history.max_file_mib));
        }
        if self.decode.alert_service_labels.is_empty() {
            return Err("decode.alert_service_labels must name at least one label".into());
        }
        if self.decode.alert_service_labels.iter().any(|l| l.trim().is_empty()) {
            return Err("decode.alert_service_labels must not hold an empty label".into());
        }
        if self.decode.max_record_bytes < 4096 {
            return Err(format!(
                "decode.max_record_bytes must be at least 4096, got {}",
                self.decode.max_record_bytes
            ));
        }
        Ok(())
    }
}

/// The command line over the file and the environment: each flag that is set replaces
/// its key. Every command builds one and calls [`Overrides::load`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `--config`: the file (else `$DEVLOOM_CONFIG`, else built-in defaults).
    pub config: Option<PathBuf>,
    /// `--input`: `[input] paths`.
    pub inputs: Vec<String>,
    /// `--simulate`: `[input] simulate`.
    pub simulate: Option<String>,
    /// `--output`: `[output] path`.
    pub output: Option<String>,
    /// `--candidates`: `[output] candidates`.
    pub candidates: Option<String>,
    /// `--remediations`: `[output] remediations`.
    pub remediations: Option<String>,
    /// `--postmortems`: `[output] postmortems`.
    pub postmortems: Option<String>,
    /// `--rollouts`: `[output] rollouts`.
    pub rollouts: Option<String>,
    /// `--dead-letter`: `[output] dead_letter`.
    pub dead_letter: Option<PathBuf>,
    /// `--append`: `[output] append = true`.
    pub append: bool,
    /// `--brokers`: `[kafka] brokers`.
    pub brokers: Option<String>,
    /// `--no-create-topics`: `[kafka] create_topics = false`.
    pub no_create_topics: bool,
    /// `--state-dir`: `[checkpoint] state_dir`.
    pub state_dir: Option<PathBuf>,
    /// `--history`: `[history] dir`.
    pub history: Option<PathBuf>,
    /// `--model`: `[scorer] model`.
    pub model: Option<PathBuf>,
    /// `--listen`: `[http] listen`.
    pub listen: Option<String>,
    /// `--no-http`: `[http] enabled = false`.
    pub no_http: bool,
    /// `--receive`: `[receivers] enabled = true`.
    pub receive: bool,
    /// `--otlp-listen`: `[receivers] otlp_http_listen`.
    pub otlp_listen: Option<String>,
    /// `--otlp-grpc-listen`: `[receivers] otlp_grpc_listen`.
    pub otlp_grpc_listen: Option<String>,
    /// `--catalog`: `[catalog] paths`.
    pub catalogs: Vec<String>,
}

impl Overrides {
    /// The config file, `DEVLOOM_*` variables from the process environment, then these
    /// flags; checked.
    pub fn load(self) -> Result<Config, ConfigError> {
        let path = self.config.clone().or_else(|| std::env::var_os("DEVLOOM_CONFIG").map(PathBuf::from));
        let mut config = load(path.as_deref(), std::env::vars())?;
        self.apply(&mut config);
        let origin = path.map_or_else(|| "(defaults)".to_string(), |p| p.display().to_string());
        config
            .check()
            .map_err(|message| ConfigError::Invalid { origin: format!("{origin} with flags"), message })?;
        Ok(config)
    }

    /// Sets the keys of the flags that are set.
    pub fn apply(self, c: &mut Config) {
        if !self.inputs.is_empty() {
            c.input.paths = self.inputs;
        }
        replace(&mut c.input.simulate, self.simulate.map(Some));
        replace(&mut c.output.path, self.output);
        replace(&mut c.output.candidates, self.candidates.map(Some));
        replace(&mut c.output.remediations, self.remediations.map(Some));
        replace(&mut c.output.postmortems, self.postmortems.map(Some));
        replace(&mut c.output.rollouts, self.rollouts.map(Some));
        replace(&mut c.output.dead_letter, self.dead_letter);
        c.output.append |= self.append;
        replace(&mut c.kafka.brokers, self.brokers);
        c.kafka.create_topics &= !self.no_create_topics;
        replace(&mut c.checkpoint.state_dir, self.state_dir);
        replace(&mut c.history.dir, self.history.map(Some));
        replace(&mut c.scorer.model, self.model.map(Some));
        replace(&mut c.http.listen, self.listen);
        c.http.enabled &= !self.no_http;
        c.receivers.enabled |= self.receive;
        replace(&mut c.receivers.otlp_http_listen, self.otlp_listen);
        replace(&mut c.receivers.otlp_grpc_listen, self.otlp_grpc_listen);
        if !self.catalogs.is_empty() {
            c.catalog.paths = self.catalogs;
        }
    }
}

fn replace<T>(key: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *key = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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

    #[test]
    fn nonsense_values_are_refused_naming_the_key() {
        let cases = [
            (
                "DEVLOOM_ENGINE__GRAPH__HEALTH__AMBER_LATENCY_RATIO",
                "nan",
                "engine.graph.health.amber_latency_ratio",
            ),
            ("DEVLOOM_ENGINE__GRAPH__HEALTH__HYSTERESIS", "-5.0", "engine.graph.health.hysteresis"),
            ("DEVLOOM_ENGINE__GRAPH__HEALTH__HYSTERESIS", "inf", "engine.graph.health.hysteresis"),
            (
                "DEVLOOM_ENGINE__GRAPH__WINDOW__BASELINE_WINDOW_MS",
                "0",
                "engine.graph.window.baseline_window_ms",
            ),
            (
                "DEVLOOM_ENGINE__CANDIDATES__TRAFFIC_SPIKE_RATIO",
                "nan",
                "engine.candidates.traffic_spike_ratio",
            ),
            ("DEVLOOM_DECODE__ALERT_SERVICE_LABELS", "[\"\"]", "decode.alert_service_labels"),
            ("DEVLOOM_DECODE__MAX_RECORD_BYTES", "100", "decode.max_record_bytes"),
            ("DEVLOOM_ENGINE__FUTURE_CONFIRM_EVENTS", "0", "engine.future_confirm_events"),
            ("DEVLOOM_ENGINE__REMEDIATION__MAX_DIFF_LINES", "0", "engine.remediation.max_diff_lines"),
            ("DEVLOOM_HISTORY__MAX_FILE_MIB", "17592186044416", "history.max_file_mib"),
        ];
        for (var, value, key) in cases {
            let err = load(None, env(&[(var, value)])).unwrap_err().to_string();
            assert!(err.contains(key), "{var}={value}: {err}");
        }
    }

    #[test]
    fn flags_replace_only_the_keys_they_set() {
        let mut c = Config::default();
        c.output.path = "from-file.ndjson".into();
        c.history.dir = Some(PathBuf::from("h"));
        Overrides {
            output: Some("maps.ndjson".into()),
            candidates: Some("-".into()),
            brokers: Some("127.0.0.1:9092".into()),
            no_create_topics: true,
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(c.output.path, "maps.ndjson");
        assert_eq!(c.output.candidates.as_deref(), Some("-"));
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert!(!c.kafka.create_topics);
        assert_eq!(c.history.dir, Some(PathBuf::from("h")), "unset flags leave keys alone");
        assert_eq!(c.input, Config::default().input);
    }
}
