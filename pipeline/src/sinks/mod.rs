//! The ways out: JSON lines ([`json_lines`]), the terminal picture ([`terminal`], with
//! remediation diffs in [`remediation_view`]), post-mortem Markdown
//! ([`postmortem_markdown`]), the
//! demo's summary ([`recorder`]), outputs collected in memory ([`Collected`]). Kafka
//! topics ([`crate::kafka::sink`]) and the history archive ([`crate::history::sink`])
//! implement the same [`Sink`]. Where each kind of output goes is [`routes`].

pub mod json_lines;
pub mod postmortem_markdown;
pub mod recorder;
pub mod remediation_view;
pub mod routes;
pub mod terminal;

use std::io;

use devloom_schemas::{
    CandidateList, DeadLetter, ImpactMap, PostmortemDraft, RemediationPlan, RolloutDecision,
};

use crate::core::{Output, Sink};
pub use json_lines::{JsonLines, open_output};
pub use routes::{Route, routes};

/// Collects outputs in memory (tests, benches, replay comparisons).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collected {
    /// Impact-map versions in publish order.
    pub maps: Vec<ImpactMap>,
    /// Candidate-list versions in publish order.
    pub candidates: Vec<CandidateList>,
    /// Remediation-plan versions in publish order.
    pub remediations: Vec<RemediationPlan>,
    /// Post-mortem draft versions in publish order.
    pub postmortems: Vec<PostmortemDraft>,
    /// Rollout decisions in publish order.
    pub rollouts: Vec<RolloutDecision>,
    /// Dead letters in publish order.
    pub dead_letters: Vec<DeadLetter>,
}

impl Sink for Collected {
    fn publish(&mut self, output: &Output) -> io::Result<()> {
        match output {
            Output::Impact(m) => self.maps.push(m.clone()),
            Output::Candidates(l) => self.candidates.push(l.clone()),
            Output::Remediation(p) => self.remediations.push(p.clone()),
            Output::Postmortem(d) => self.postmortems.push((**d).clone()),
            Output::Rollout(d) => self.rollouts.push((**d).clone()),
            Output::DeadLetter(r) => self.dead_letters.push(r.dead_letter()),
        }
        Ok(())
    }
}
