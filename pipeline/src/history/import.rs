//! Import: existing NDJSON / JSON / OTLP files turned into an archive, merged in event
//! time exactly as `devloom run --input` would feed them, so replaying the import equals
//! running the files.
//!
//! All or nothing: files are written to staging and committed only when every input was
//! read; a missing or unreadable file fails the import and leaves the archive as it was.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use devloom_schemas::codec::DecodeOptions;
use indicatif::{ProgressBar, ProgressStyle};

use super::HistoryError;
use super::archive::{ArchiveConfig, ArchiveWriter};
use crate::core::{Input, Rejected, Source};
use crate::sources::file::Files;

/// What an import did.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportStats {
    /// Events archived.
    pub events: u64,
    /// Records that could not be decoded (written as dead letters).
    pub dead_letters: Vec<Box<Rejected>>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Imports `paths` into the archive `config.dir`.
pub fn import(
    paths: &[PathBuf],
    config: ArchiveConfig,
    opts: &DecodeOptions,
    progress: bool,
) -> Result<ImportStats, HistoryError> {
    let started = Instant::now();
    let bar = if progress { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("import {spinner} {pos} events {per_sec}").expect("valid template"),
    );
    let mut files = Files::open(paths, opts)
        .map_err(|e| HistoryError::BadFile { path: e.path().into(), reason: e.to_string() })?;
    let mut archive = ArchiveWriter::open(config, None, false)?;
    let (mut events, mut dead_letters) = (0u64, Vec::new());
    while let Some(input) = files.next_input() {
        match input.map_err(|e| HistoryError::Usage(e.to_string()))? {
            Input::Event(event, _) => {
                archive.append_event(&event)?;
                events += 1;
                if events.is_multiple_of(4096) {
                    bar.set_position(events);
                }
            }
            Input::Rejected(mut rejected, _) => {
                for event in std::mem::take(&mut rejected.salvaged) {
                    archive.append_event(&event)?;
                    events += 1;
                }
                dead_letters.push(rejected);
            }
            Input::Record(..) | Input::Read(_) | Input::Calls { .. } | Input::Idle => {}
        }
    }
    archive.checkpoint()?;
    bar.finish_and_clear();
    Ok(ImportStats { events, dead_letters, elapsed: started.elapsed() })
}
