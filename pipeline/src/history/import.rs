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
use crate::core::Rejected;
use crate::sources::file::{merge_in_event_time, read_file};

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
    let bar = if progress { ProgressBar::new(paths.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("import {msg:>8} {bar:40} {pos}/{len}").expect("valid template"),
    );
    bar.set_message("reading");
    let mut records = Vec::new();
    for path in paths {
        records.extend(
            read_file(path)
                .map_err(|e| HistoryError::BadFile { path: path.clone(), reason: e.to_string() })?,
        );
        bar.inc(1);
    }
    let mut dead_letters = Vec::new();
    let events = merge_in_event_time(records, opts, &mut dead_letters);
    bar.set_message("writing");
    bar.set_position(0);
    bar.set_length(events.len() as u64);
    let mut archive = ArchiveWriter::open(config, None, false)?;
    for (i, event) in events.iter().enumerate() {
        archive.append_event(event)?;
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
    }
    archive.checkpoint()?;
    bar.finish_and_clear();
    Ok(ImportStats { events: events.len() as u64, dead_letters, elapsed: started.elapsed() })
}
