//! Builds the pipeline a configuration describes, in one place: the engine with the
//! candidate stage and its model, the post-mortem template, the caller's sink, and the
//! history archive as a tap when `[history] dir` is set.

use devloom_operators::Engine;

use crate::config::Config;
use crate::core::{Pipeline, Sink};
use crate::history::{ArchiveSink, ArchiveWriter, HistoryError};
use crate::learning::model::{ScorerError, scorer};
use crate::sinks::postmortem_markdown::{Template, TemplateError};

/// When the archive's files become visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveCommits {
    /// As each file rolls (a run over files or the simulator: it ends, nothing to resume).
    OnRoll,
    /// Only at checkpoints (Kafka), resuming from the checkpoint's `seq` if there is one.
    AtCheckpoint(Option<u64>),
}

/// The pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The scorer's model could not be loaded.
    #[error(transparent)]
    Scorer(#[from] ScorerError),
    /// The history archive could not be opened.
    #[error("history archive: {0}")]
    Archive(#[from] HistoryError),
    /// The post-mortem template does not compile.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The operators `config` describes: `[engine]`, and the candidate stage with the model
/// of `[scorer]` unless it is disabled.
pub fn engine(config: &Config) -> Result<Engine, ScorerError> {
    let engine = Engine::new(config.engine.clone());
    Ok(match scorer(config)? {
        Some((scorer, past)) => engine.with_candidates(scorer, past),
        None => engine,
    })
}

/// The post-mortem template of `[postmortem] template`, else the built-in one.
pub fn postmortem_template(config: &Config) -> Result<Template, TemplateError> {
    config.postmortem.template.as_deref().map_or_else(|| Ok(Template::default()), Template::load)
}

/// The pipeline `config` describes, publishing to `sink`.
pub fn pipeline<S: Sink>(
    config: &Config,
    sink: S,
    commits: ArchiveCommits,
) -> Result<Pipeline<S>, BuildError> {
    let mut pipeline = Pipeline::new(engine(config)?, sink).postmortem_template(postmortem_template(config)?);
    if let Some(archive) = config.history.archive() {
        let writer = match commits {
            ArchiveCommits::OnRoll => ArchiveWriter::open(archive, None, true)?,
            ArchiveCommits::AtCheckpoint(resume) => ArchiveWriter::open(archive, resume, false)?,
        };
        pipeline = pipeline.tap(Box::new(ArchiveSink(writer)));
    }
    Ok(pipeline)
}
