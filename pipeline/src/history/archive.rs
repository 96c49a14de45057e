//! The archive sink: normalized events and outputs appended to Parquet files per table
//! and UTC date, rolled by size and age.
//!
//! Crash safety: a file is written under `.staging/` and renamed into the archive only
//! when it is complete and synced, so a reader never sees a half-written file. With
//! `commit_on_roll` off (the Kafka runtime, import), rolled files wait in staging until
//! [`ArchiveWriter::checkpoint`]: the Kafka runtime calls it right before writing its
//! checkpoint, and on restart deletes committed files that start at or after the
//! checkpoint's `seq` — their input is read again — so the archive holds every event
//! exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, TimestampNanosecondArray, UInt64Array};
use devloom_schemas::arrow::ArrowRecord;
use devloom_schemas::{
    Alert, CandidateList, CatalogSnapshot, ConfirmedCause, Deploy, Event, ImpactMap, PostmortemDraft,
    RemediationPlan, Span,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;

use super::lock::WriterLock;
use super::tables::{Kind, STAGING, date_of_day, day_of, relative_path, scan};
use super::{HistoryError, integrity};

/// Rows buffered before they are encoded into the open file.
const CHUNK_ROWS: usize = 8192;
/// Appends between checks of the files' age.
const AGE_CHECK_EVERY: u64 = 4096;

/// Where and how the archive is written.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveConfig {
    /// Archive root.
    pub dir: PathBuf,
    /// A file is closed once it holds about this many bytes.
    pub max_file_bytes: u64,
    /// A file is closed once it has been open this long.
    pub max_file_age: Duration,
}

/// Appends events and outputs to the archive. One writer per archive at a time.
pub struct ArchiveWriter {
    config: ArchiveConfig,
    commit_on_roll: bool,
    next_seq: u64,
    appended: u64,
    spans: Table<Span>,
    alerts: Table<Alert>,
    deploys: Table<Deploy>,
    impact: Table<ImpactMap>,
    candidates: Table<CandidateList>,
    remediations: Table<RemediationPlan>,
    postmortems: Table<PostmortemDraft>,
    causes: Table<ConfirmedCause>,
    catalogs: Table<CatalogSnapshot>,
    staged: Vec<PathBuf>,
    _lock: WriterLock,
}

impl ArchiveWriter {
    /// Opens (creating) the archive at `config.dir`. Leftovers in staging are deleted:
    /// they were never committed. With `resume_seq` (from a checkpoint), committed files
    /// starting at or after it are deleted too and numbering continues from it;
    /// otherwise numbering continues after the last committed row.
    pub fn open(
        config: ArchiveConfig,
        resume_seq: Option<u64>,
        commit_on_roll: bool,
    ) -> Result<Self, HistoryError> {
        fs::create_dir_all(&config.dir).map_err(HistoryError::io(&config.dir))?;
        let lock = WriterLock::take(&config.dir)?;
        let staging = config.dir.join(STAGING);
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(HistoryError::io(&staging))?;
        }
        let files = scan(&config.dir)?;
        let next_seq = match resume_seq {
            Some(seq) => {
                for file in files.iter().filter(|f| f.first_seq >= seq) {
                    tracing::info!(path = %file.path.display(), "removing archive file written after the checkpoint");
                    fs::remove_file(&file.path).map_err(HistoryError::io(&file.path))?;
                    let checksum = integrity::checksum_path(&file.path);
                    fs::remove_file(&checksum)
                        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                        .map_err(HistoryError::io(&checksum))?;
                }
                seq
            }
            None => files.iter().map(|f| f.first_seq + f.rows).max().unwrap_or(0),
        };
        Ok(Self {
            config,
            commit_on_roll,
            next_seq,
            appended: 0,
            spans: Table::new(Kind::Spans),
            alerts: Table::new(Kind::Alerts),
            deploys: Table::new(Kind::Deploys),
            impact: Table::new(Kind::Impact),
            candidates: Table::new(Kind::Candidates),
            remediations: Table::new(Kind::Remediations),
            postmortems: Table::new(Kind::Postmortems),
            causes: Table::new(Kind::Causes),
            catalogs: Table::new(Kind::Catalogs),
            staged: Vec::new(),
            _lock: lock,
        })
    }

    /// The `seq` the next row gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends one normalized input event.
    pub fn append_event(&mut self, event: &Event) -> Result<(), HistoryError> {
        let seq = self.take_seq();
        let time = event.event_time_ns();
        let rolled = match event {
            Event::Span(s) => self.spans.append(&self.config, seq, time, s.clone())?,
            Event::Alert(a) => self.alerts.append(&self.config, seq, time, a.clone())?,
            Event::Deploy(d) => self.deploys.append(&self.config, seq, time, d.clone())?,
            Event::Cause(c) => self.causes.append(&self.config, seq, time, c.clone())?,
            Event::Catalog(c) => self.catalogs.append(&self.config, seq, time, c.clone())?,
        };
        self.after_append(rolled)
    }

    /// Appends one published impact-map version.
    pub fn append_impact(&mut self, map: &ImpactMap) -> Result<(), HistoryError> {
        let seq = self.take_seq();
        let rolled = self.impact.append(&self.config, seq, map.event_time_ns, map.clone())?;
        self.after_append(rolled)
    }

    /// Appends one published candidate-list version.
    pub fn append_candidates(&mut self, list: &CandidateList) -> Result<(), HistoryError> {
        let seq = self.take_seq();
        let rolled = self.candidates.append(&self.config, seq, list.event_time_ns, list.clone())?;
        self.after_append(rolled)
    }

    /// Appends one published remediation-plan version.
    pub fn append_remediation(&mut self, plan: &RemediationPlan) -> Result<(), HistoryError> {
        let seq = self.take_seq();
        let rolled = self.remediations.append(&self.config, seq, plan.event_time_ns, plan.clone())?;
        self.after_append(rolled)
    }

    /// Appends one published post-mortem draft version.
    pub fn append_postmortem(&mut self, draft: &PostmortemDraft) -> Result<(), HistoryError> {
        let seq = self.take_seq();
        let rolled = self.postmortems.append(&self.config, seq, draft.event_time_ns, draft.clone())?;
        self.after_append(rolled)
    }

    /// Appends one confirmed root cause.
    pub fn append_cause(&mut self, cause: &ConfirmedCause) -> Result<(), HistoryError> {
        let seq = self.take_seq();
        let rolled = self.causes.append(&self.config, seq, cause.time_ns, cause.clone())?;
        self.after_append(rolled)
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    fn after_append(&mut self, rolled: Option<PathBuf>) -> Result<(), HistoryError> {
        self.staged.extend(rolled);
        self.appended += 1;
        if self.appended.is_multiple_of(AGE_CHECK_EVERY) {
            let max_age = self.config.max_file_age;
            self.staged.extend(self.spans.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.alerts.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.deploys.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.impact.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.candidates.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.remediations.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.postmortems.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.causes.close_where(|f| f.opened.elapsed() >= max_age)?);
            self.staged.extend(self.catalogs.close_where(|f| f.opened.elapsed() >= max_age)?);
        }
        if self.commit_on_roll && !self.staged.is_empty() {
            self.commit()?;
        }
        Ok(())
    }

    /// Closes every open file and commits everything staged; returns the `seq` the next
    /// row will get, which is what a checkpoint records.
    pub fn checkpoint(&mut self) -> Result<u64, HistoryError> {
        self.staged.extend(self.spans.close_where(|_| true)?);
        self.staged.extend(self.alerts.close_where(|_| true)?);
        self.staged.extend(self.deploys.close_where(|_| true)?);
        self.staged.extend(self.impact.close_where(|_| true)?);
        self.staged.extend(self.candidates.close_where(|_| true)?);
        self.staged.extend(self.remediations.close_where(|_| true)?);
        self.staged.extend(self.postmortems.close_where(|_| true)?);
        self.staged.extend(self.causes.close_where(|_| true)?);
        self.staged.extend(self.catalogs.close_where(|_| true)?);
        self.commit()?;
        Ok(self.next_seq)
    }

    /// Renames staged files into the archive and syncs the directories.
    fn commit(&mut self) -> Result<(), HistoryError> {
        let mut dirs = BTreeSet::new();
        for rel in self.staged.drain(..) {
            let from = self.config.dir.join(STAGING).join(&rel);
            let to = self.config.dir.join(&rel);
            let parent = to.parent().expect("archive paths have a partition directory");
            fs::create_dir_all(parent).map_err(HistoryError::io(parent))?;
            // The checksum first: a committed file always has one.
            integrity::write_checksum(&from, &integrity::checksum_path(&to))?;
            fs::rename(&from, &to).map_err(HistoryError::io(&to))?;
            dirs.insert(parent.to_path_buf());
            // Staging folders go once empty (a folder still in use is not empty).
            for emptied in from.ancestors().skip(1).take(2) {
                let _ = fs::remove_dir(emptied);
            }
        }
        for dir in dirs {
            File::open(&dir).and_then(|d| d.sync_all()).map_err(HistoryError::io(&dir))?;
        }
        Ok(())
    }
}

/// The open files of one table, one per date.
struct Table<T> {
    kind: Kind,
    open: BTreeMap<u64, OpenFile<T>>,
}

struct OpenFile<T> {
    rel: PathBuf,
    writer: ArrowWriter<File>,
    opened: Instant,
    seqs: Vec<u64>,
    times: Vec<i64>,
    rows: Vec<T>,
}

impl<T: ArrowRecord> Table<T> {
    fn new(kind: Kind) -> Self {
        Self { kind, open: BTreeMap::new() }
    }

    /// Appends a row; returns the file it closed, if it rolled over.
    fn append(
        &mut self,
        config: &ArchiveConfig,
        seq: u64,
        time_ns: u64,
        row: T,
    ) -> Result<Option<PathBuf>, HistoryError> {
        let day = day_of(time_ns);
        let file = match self.open.entry(day) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(OpenFile::create(config, self.kind, &date_of_day(day), seq)?)
            }
        };
        file.seqs.push(seq);
        file.times.push(i64::try_from(time_ns).unwrap_or(i64::MAX));
        file.rows.push(row);
        if file.rows.len() < CHUNK_ROWS {
            return Ok(None);
        }
        file.write_chunk(self.kind)?;
        if file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64 >= config.max_file_bytes
        {
            let file = self.open.remove(&day).expect("present");
            return file.close(self.kind).map(Some);
        }
        Ok(None)
    }

    /// Closes the files `pred` selects; returns their staged paths.
    fn close_where(&mut self, pred: impl Fn(&OpenFile<T>) -> bool) -> Result<Vec<PathBuf>, HistoryError> {
        let days: Vec<u64> = self.open.iter().filter(|(_, f)| pred(f)).map(|(d, _)| *d).collect();
        days.into_iter().map(|d| self.open.remove(&d).expect("present").close(self.kind)).collect()
    }
}

impl<T: ArrowRecord> OpenFile<T> {
    fn create(config: &ArchiveConfig, kind: Kind, date: &str, first_seq: u64) -> Result<Self, HistoryError> {
        let rel = relative_path(kind, date, first_seq);
        let path = config.dir.join(STAGING).join(&rel);
        let parent = path.parent().expect("archive paths have a partition directory");
        fs::create_dir_all(parent).map_err(HistoryError::io(parent))?;
        let file = File::create(&path).map_err(HistoryError::io(&path))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            }]))
            .build();
        let writer = ArrowWriter::try_new(file, kind.file_schema()?, Some(props)).map_err(encode(kind))?;
        Ok(Self {
            rel,
            writer,
            opened: Instant::now(),
            seqs: Vec::new(),
            times: Vec::new(),
            rows: Vec::new(),
        })
    }

    fn write_chunk(&mut self, kind: Kind) -> Result<(), HistoryError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let records = T::to_batch(&self.rows).map_err(encode(kind))?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(&mut self.seqs))),
            Arc::new(TimestampNanosecondArray::from(std::mem::take(&mut self.times)).with_timezone("UTC")),
        ];
        columns.extend(records.columns().iter().cloned());
        let batch = RecordBatch::try_new(kind.file_schema()?, columns).map_err(encode(kind))?;
        self.rows.clear();
        self.writer.write(&batch).map_err(encode(kind))
    }

    /// Writes the rest, the footer, syncs; returns the path relative to the staging root.
    fn close(mut self, kind: Kind) -> Result<PathBuf, HistoryError> {
        self.write_chunk(kind)?;
        let file = self.writer.into_inner().map_err(encode(kind))?;
        file.sync_all().map_err(HistoryError::io(&self.rel))?;
        Ok(self.rel)
    }
}

fn encode<E: std::fmt::Display>(kind: Kind) -> impl Fn(E) -> HistoryError {
    move |e| HistoryError::Encode { table: kind.table(), reason: e.to_string() }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use devloom_schemas::{SpanId, SpanKind, TraceId};

    use super::*;
    use crate::history::tables::scan;

    /// Span number `i`: 2 s after span `i - 1`, from 2025-11-27T00:00Z.
    pub(crate) fn span(i: u64) -> Event {
        Event::Span(Span {
            trace_id: TraceId(u128::from(i) + 1),
            span_id: SpanId(i + 1),
            parent_span_id: None,
            links: vec![],
            service: format!("svc-{}", i % 7).into(),
            region: None,
            version: None,
            environment: None,
            kind: SpanKind::Server,
            name: "GET /".into(),
            // Two UTC days: partitions by date.
            start_ns: 1_764_201_600_000_000_000 + i * 2_000_000_000,
            end_ns: 1_764_201_600_000_000_000 + i * 2_000_000_000 + 1_000,
            failed: i.is_multiple_of(11),
            peer: Default::default(),
        })
    }

    pub(crate) fn config(dir: &Path, max_file_bytes: u64) -> ArchiveConfig {
        ArchiveConfig { dir: dir.to_path_buf(), max_file_bytes, max_file_age: Duration::from_secs(3600) }
    }

    #[test]
    fn rolls_by_size_partitions_by_date_and_numbers_by_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::open(config(dir.path(), 64 * 1024), None, true).unwrap();
        for i in 0..60_000 {
            w.append_event(&span(i)).unwrap();
        }
        assert_eq!(w.checkpoint().unwrap(), 60_000);
        let files = scan(dir.path()).unwrap();
        assert!(files.len() > 4, "rolled by size: {}", files.len());
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 60_000);
        let dates: BTreeSet<String> = files
            .iter()
            .map(|f| f.path.parent().unwrap().file_name().unwrap().to_str().unwrap().into())
            .collect();
        assert_eq!(dates, BTreeSet::from(["date=2025-11-27".into(), "date=2025-11-28".into()]));
        assert!(scan(&dir.path().join(STAGING)).unwrap().is_empty(), "nothing left in staging");
        drop(w);
        // Numbering continues after the last committed row.
        let w = ArchiveWriter::open(config(dir.path(), 64 * 1024), None, true).unwrap();
        assert_eq!(w.next_seq(), 60_000);
    }

    #[test]
    fn uncommitted_files_are_never_visible_and_resume_drops_what_the_checkpoint_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::open(config(dir.path(), 32 * 1024), None, false).unwrap();
        for i in 0..10_000 {
            w.append_event(&span(i)).unwrap();
        }
        let checkpoint = w.checkpoint().unwrap();
        for i in 10_000..30_000 {
            w.append_event(&span(i)).unwrap();
        }
        // Rolled files wait in staging: a reader sees only the checkpointed rows.
        assert_eq!(scan(dir.path()).unwrap().iter().map(|f| f.rows).sum::<u64>(), 10_000);
        assert!(dir.path().join(STAGING).exists());
        w.checkpoint().unwrap();
        drop(w);
        assert_eq!(scan(dir.path()).unwrap().iter().map(|f| f.rows).sum::<u64>(), 30_000);
        // A crash after that commit but before the checkpoint was saved: the restart
        // resumes from the older checkpoint, and the rows after it go.
        let w = ArchiveWriter::open(config(dir.path(), 32 * 1024), Some(checkpoint), false).unwrap();
        assert_eq!(w.next_seq(), checkpoint);
        assert_eq!(scan(dir.path()).unwrap().iter().map(|f| f.rows).sum::<u64>(), 10_000);
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let first = ArchiveWriter::open(config(dir.path(), 1 << 20), None, true).unwrap();
        // A second open file description is refused by the OS lock, whatever the pid
        // (two containers on one volume are both pid 1).
        let err = ArchiveWriter::open(config(dir.path(), 1 << 20), None, true).err().unwrap().to_string();
        let me = std::process::id();
        assert!(err.contains(&format!("being written by process {me}")), "{err}");
        drop(first);
        // Released with its writer; a stale lock file of a dead process does not block.
        std::fs::write(dir.path().join(".lock"), "1").unwrap();
        ArchiveWriter::open(config(dir.path(), 1 << 20), None, true).unwrap();
    }
}
