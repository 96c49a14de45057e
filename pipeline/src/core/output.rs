//! Everything the pipeline says leaves as one [`Output`] through one
//! [`Sink::publish`]. A sink (JSON lines, Kafka topics, the terminal, the archive,
//! collected in memory) implements it once; where each kind goes is the routing table in
//! [`crate::sinks::routes`].

use std::io;

use devloom_schemas::{CandidateList, Event, ImpactMap, PostmortemDraft, RemediationPlan, RolloutDecision};
use serde::Serialize;

use super::decode::Rejected;

/// One output of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// An impact-map version.
    Impact(ImpactMap),
    /// A root-cause candidate-list version.
    Candidates(CandidateList),
    /// A remediation-plan version.
    Remediation(RemediationPlan),
    /// A post-mortem draft version.
    Postmortem(Box<PostmortemDraft>),
    /// A staged rollout's verdict changed.
    Rollout(Box<RolloutDecision>),
    /// An input that could not be decoded.
    DeadLetter(Box<Rejected>),
}

/// The kinds of output, each with its CloudEvents type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputKind {
    /// [`Output::Impact`].
    Impact,
    /// [`Output::Candidates`].
    Candidates,
    /// [`Output::Remediation`].
    Remediation,
    /// [`Output::Postmortem`].
    Postmortem,
    /// [`Output::Rollout`].
    Rollout,
    /// [`Output::DeadLetter`].
    DeadLetter,
}

impl OutputKind {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::Impact,
        Self::Candidates,
        Self::Remediation,
        Self::Postmortem,
        Self::Rollout,
        Self::DeadLetter,
    ];

    /// The CloudEvents `type` of the kind's events (dead letters are republished as
    /// they arrived, without one).
    pub fn ce_type(self) -> Option<&'static str> {
        match self {
            Self::Impact => Some("dev.devloom.impact.v1"),
            Self::Candidates => Some("dev.devloom.candidates.v1"),
            Self::Remediation => Some("dev.devloom.remediation.v1"),
            Self::Postmortem => Some("dev.devloom.postmortem.v1"),
            Self::Rollout => Some("dev.devloom.rollout.v1"),
            Self::DeadLetter => None,
        }
    }
}

impl Output {
    /// Its kind.
    pub fn kind(&self) -> OutputKind {
        match self {
            Self::Impact(_) => OutputKind::Impact,
            Self::Candidates(_) => OutputKind::Candidates,
            Self::Remediation(_) => OutputKind::Remediation,
            Self::Postmortem(_) => OutputKind::Postmortem,
            Self::Rollout(_) => OutputKind::Rollout,
            Self::DeadLetter(_) => OutputKind::DeadLetter,
        }
    }

    /// `(incident_id, version)`: the key consumers dedupe on; none for dead letters and
    /// rollout decisions (see [`Output::key`]).
    pub fn incident_version(&self) -> Option<(&str, u32)> {
        match self {
            Self::Impact(m) => Some((&m.incident_id, m.version)),
            Self::Candidates(l) => Some((&l.incident_id, l.version)),
            Self::Remediation(p) => Some((&p.incident_id, p.version)),
            Self::Postmortem(d) => Some((&d.incident_id, d.version)),
            Self::Rollout(_) | Self::DeadLetter(_) => None,
        }
    }

    /// `(key, version)` consumers dedupe on: the incident for incident outputs, the
    /// service (and environment, `service/environment`) for rollout decisions.
    pub fn key_version(&self) -> Option<(String, u32)> {
        match self {
            Self::Rollout(d) => {
                let key = match &d.environment {
                    Some(env) => format!("{}/{env}", d.service),
                    None => d.service.clone(),
                };
                Some((key, d.sequence))
            }
            _ => self.incident_version().map(|(id, v)| (id.to_string(), v)),
        }
    }

    /// When it was published (RFC 3339), once the pipeline has stamped it.
    pub fn published_at(&self) -> Option<&str> {
        match self {
            Self::Impact(m) => m.published_at.as_deref(),
            Self::Candidates(l) => l.published_at.as_deref(),
            Self::Remediation(p) => p.published_at.as_deref(),
            Self::Postmortem(d) => d.published_at.as_deref(),
            Self::Rollout(d) => d.published_at.as_deref(),
            Self::DeadLetter(_) => None,
        }
    }

    /// The JSON document of the output, as every JSON sink writes it.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        fn json(v: &impl Serialize) -> serde_json::Result<Vec<u8>> {
            serde_json::to_vec(v)
        }
        match self {
            Self::Impact(m) => json(m),
            Self::Candidates(l) => json(l),
            Self::Remediation(p) => json(p),
            Self::Postmortem(d) => json(d),
            Self::Rollout(d) => json(d),
            Self::DeadLetter(r) => json(&r.dead_letter()),
        }
    }
}

/// Where outputs go.
pub trait Sink {
    /// An input event is about to enter the operators. Only sinks that keep inputs (the
    /// history archive) need it.
    fn input(&mut self, _event: &Event) -> io::Result<()> {
        Ok(())
    }

    /// Publishes one output.
    fn publish(&mut self, output: &Output) -> io::Result<()>;

    /// Makes everything published so far durable (flushes a producer, commits files).
    /// A sink that numbers what it keeps returns its next position (the archive's next
    /// `seq`), which a checkpoint records.
    fn commit(&mut self) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn input(&mut self, event: &Event) -> io::Result<()> {
        (**self).input(event)
    }

    fn publish(&mut self, output: &Output) -> io::Result<()> {
        (**self).publish(output)
    }

    fn commit(&mut self) -> io::Result<Option<u64>> {
        (**self).commit()
    }
}

/// Both sinks, in order.
impl<A: Sink, B: Sink> Sink for (A, B) {
    fn input(&mut self, event: &Event) -> io::Result<()> {
        self.0.input(event)?;
        self.1.input(event)
    }

    fn publish(&mut self, output: &Output) -> io::Result<()> {
        self.0.publish(output)?;
        self.1.publish(output)
    }

    fn commit(&mut self) -> io::Result<Option<u64>> {
        Ok(self.0.commit()?.or(self.1.commit()?))
    }
}
