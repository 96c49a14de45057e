//! Confirmed root causes: the labels `devloom train` learns from. Once an incident is
//! resolved, someone who knows what caused it records which candidate that was.

use devloom_schemas::{CandidateList, ConfirmedCause};

use super::HistoryError;
use super::archive::{ArchiveConfig, ArchiveWriter};
use super::query::records_where;
use super::tables::Kind;

/// Records `cause` in the archive at `config.dir`. The incident must have a candidate
/// list there and, unless `unlisted`, the cause must be one of the candidates of its
/// latest list (an unlisted cause is a miss the evaluation counts). Confirming again
/// replaces the earlier label: training reads the latest.
pub fn confirm(config: ArchiveConfig, cause: &ConfirmedCause, unlisted: bool) -> Result<(), HistoryError> {
    let incident = cause.incident_id.replace('\'', "''");
    let lists: Vec<CandidateList> =
        records_where(&config.dir, Kind::Candidates, &format!("incident_id = '{incident}'"))?;
    let Some(latest) = lists.last() else {
        return Err(HistoryError::Usage(format!(
            "{}: no candidate list for incident {:?} (list them with: devloom history query \"SELECT DISTINCT incident_id FROM candidates\")",
            config.dir.display(),
            cause.incident_id
        )));
    };
    if !unlisted && !latest.candidates.iter().any(|c| c.key == cause.candidate) {
        let keys: Vec<&str> = latest.candidates.iter().map(|c| c.key.as_str()).collect();
        return Err(HistoryError::Usage(format!(
            "{:?} is not a candidate of incident {:?} (its candidates: {}); pass --unlisted to record a cause Devloom did not list",
            cause.candidate,
            cause.incident_id,
            keys.join(", ")
        )));
    }
    let mut writer = ArchiveWriter::open(config, None, false)?;
    writer.append_cause(cause)?;
    writer.checkpoint()?;
    Ok(())
}
