//! Which scorer a run uses: the model file named in `[scorer] model`, else the default
//! model shipped in the binary (trained on the default simulated history), plus the
//! similar-past-incidents counts from the history archive when one is configured.

use std::path::Path;

use devloom_operators::scorer::{Model, Scorer};
use devloom_operators::{PastIncidents, past_key};
use devloom_schemas::{CandidateList, ConfirmedCause};

use crate::config::Config;
use crate::history::query::records;
use crate::history::tables::Kind;

/// The default model: `devloom history simulate` and `devloom train` with their defaults.
pub const DEFAULT_MODEL: &str = include_str!("../../models/default.json");

/// A model that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// The file is missing or not a model.
    #[error("model {path}: {reason}")]
    Model {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The history archive could not be read.
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
}

/// Reads a model file.
pub fn read_model(path: &Path) -> Result<Model, ScorerError> {
    let bad = |reason: String| ScorerError::Model { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

/// The scorer of `config` (none when `[scorer] enabled = false`) and past incidents.
pub fn scorer(config: &Config) -> Result<Option<(Scorer, PastIncidents)>, ScorerError> {
    if !config.scorer.enabled {
        return Ok(None);
    }
    let (model, path) = match &config.scorer.model {
        Some(path) => (read_model(path)?, path.display().to_string()),
        None => (
            serde_json::from_str(DEFAULT_MODEL)
                .map_err(|e| ScorerError::Model { path: "<built-in>".into(), reason: e.to_string() })?,
            "<built-in>".to_string(),
        ),
    };
    let scorer = Scorer::new(model).map_err(|e| ScorerError::Model { path, reason: e.to_string() })?;
    let past = match &config.history.dir {
        Some(dir) if dir.join(Kind::Causes.table()).is_dir() => past_incidents(dir)?,
        _ => PastIncidents::new(),
    };
    Ok(Some((scorer, past)))
}

/// Confirmed causes in the archive, counted by alerted service, kind and service.
pub fn past_incidents(dir: &Path) -> Result<PastIncidents, ScorerError> {
    let causes: Vec<ConfirmedCause> = records(dir, Kind::Causes)?;
    let lists: Vec<CandidateList> = records(dir, Kind::Candidates)?;
    let by_id: std::collections::BTreeMap<&str, &CandidateList> =
        lists.iter().map(|l| (l.incident_id.as_str(), l)).collect();
    let mut past = PastIncidents::new();
    for cause in &causes {
        let Some(list) = by_id.get(cause.incident_id.as_str()) else { continue };
        let Some(c) = list.candidates.iter().find(|c| c.key == cause.candidate) else { continue };
        for root in &list.root_services {
            *past.entry(past_key(root, c.kind, &c.service)).or_default() += 1;
        }
    }
    Ok(past)
}
