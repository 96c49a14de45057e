//! The archive as a sink: a tap on the pipeline that keeps every input event and every
//! impact map, candidate list and remediation plan (dead letters have their own file or topic).

use std::io;

use devloom_schemas::Event;

use super::ArchiveWriter;
use crate::core::{Output, Sink};

/// Tees the pipeline into the archive.
pub struct ArchiveSink(pub ArchiveWriter);

impl Sink for ArchiveSink {
    fn input(&mut self, event: &Event) -> io::Result<()> {
        self.0.append_event(event).map_err(io::Error::other)
    }

    fn publish(&mut self, output: &Output) -> io::Result<()> {
        match output {
            Output::Impact(map) => self.0.append_impact(map),
            Output::Candidates(list) => self.0.append_candidates(list),
            Output::Remediation(plan) => self.0.append_remediation(plan),
            Output::Postmortem(draft) => self.0.append_postmortem(draft),
            // Rollout decisions are derived again by replay; dead letters have their own
            // file or topic.
            Output::Rollout(_) | Output::DeadLetter(_) => Ok(()),
        }
        .map_err(io::Error::other)
    }

    /// Commits the archive up to here; its next `seq` goes into the checkpoint.
    fn commit(&mut self) -> io::Result<Option<u64>> {
        self.0.checkpoint().map(Some).map_err(io::Error::other)
    }
}
