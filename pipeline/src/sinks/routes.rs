//! The routing table: for each kind of output, its Kafka topic and its file in embedded
//! mode, from the configuration. A new kind of output is one row here (plus its key in
//! `[kafka.topics]` and `[output]`); every sink reads its destinations from this table.

use crate::config::Config;
use crate::core::OutputKind;

/// Where one kind of output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The kind.
    pub kind: OutputKind,
    /// Its Kafka topic.
    pub topic: String,
    /// Its file in embedded mode (`-`: stdout); none: not written.
    pub file: Option<String>,
    /// Append to the file instead of replacing it (`[output] append`).
    pub append: bool,
}

/// Every kind's route under `config`.
pub fn routes(config: &Config) -> Vec<Route> {
    let (topics, files) = (&config.kafka.topics, &config.output);
    OutputKind::ALL
        .into_iter()
        .map(|kind| {
            let (topic, file) = match kind {
                OutputKind::Impact => (&topics.impact, Some(files.path.clone())),
                OutputKind::Candidates => (&topics.candidates, files.candidates.clone()),
                OutputKind::Remediation => (&topics.remediations, files.remediations.clone()),
                OutputKind::Postmortem => (&topics.postmortems, files.postmortems.clone()),
                OutputKind::Rollout => (&topics.rollouts, files.rollouts.clone()),
                OutputKind::DeadLetter => (&topics.deadletter, Some(files.dead_letter.display().to_string())),
            };
            Route { kind, topic: topic.clone(), file, append: files.append }
        })
        .collect()
}
