//! Replay: select input events from the archive with DataFusion and run them through
//! the same operators in the order the live run saw them (`seq`), so a replay of a live
//! run's archive reproduces its outputs exactly (wall-clock stamps aside).
//!
//! Each input table (spans, alerts, deploys, causes) is read on its own thread
//! (DataFusion scan, Arrow → events); the operator loop merges the sorted streams by
//! `seq`.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use devloom_schemas::arrow::ArrowRecord;
use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{Alert, CatalogSnapshot, ConfirmedCause, Deploy, Event, Span};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::tables::{
    ArchiveFile, DATE, Kind, SEQ, TIME, date_of_day, day_of, record_columns, register, session,
};
use super::{HistoryError, integrity};
use crate::core::{Input, Pipeline, ReadStamp, Sink, Source};

/// What to replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Events at or after this event time (ns).
    pub from_ns: Option<u64>,
    /// Events before this event time (ns).
    pub to_ns: Option<u64>,
    /// Only these services: their alerts and deploys, and every span of the traces
    /// that touch them (so their calls still pair).
    pub services: Vec<String>,
    /// An SQL predicate applied to each input table (`spans`, `alerts`, `deploys`; the
    /// `causes` confirmations are selected by time only).
    pub filter: Option<String>,
}

impl Selection {
    /// The query that selects `kind`'s rows, in `seq` order.
    pub fn query(&self, kind: Kind) -> String {
        let table = kind.table();
        let mut predicates = Vec::new();
        if let Some(from) = self.from_ns {
            predicates.push(format!("{DATE} >= '{}'", date_of_day(day_of(from))));
            predicates.push(format!("{TIME} >= '{}'", format_rfc3339(from)));
        }
        if let Some(to) = self.to_ns {
            predicates.push(format!("{DATE} <= '{}'", date_of_day(day_of(to))));
            predicates.push(format!("{TIME} < '{}'", format_rfc3339(to)));
        }
        // Confirmations follow their incidents by id, whatever the services or filter;
        // every catalog read before the end is in force, whatever the selection.
        if kind == Kind::Catalogs {
            predicates.clear();
            if let Some(to) = self.to_ns {
                predicates.push(format!("{TIME} < '{}'", format_rfc3339(to)));
            }
        }
        if !self.services.is_empty() && !matches!(kind, Kind::Causes | Kind::Catalogs) {
            let list =
                self.services.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>();
            let list = list.join(", ");
            predicates.push(match kind {
                Kind::Spans => format!("trace_id IN (SELECT trace_id FROM spans WHERE service IN ({list}))"),
                _ => format!("service IN ({list})"),
            });
        }
        if let Some(filter) = self.filter.as_ref().filter(|_| !matches!(kind, Kind::Causes | Kind::Catalogs))
        {
            predicates.push(format!("({filter})"));
        }
        let mut sql = format!("SELECT * FROM {table}");
        if !predicates.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&predicates.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY {SEQ}"));
        sql
    }
}

/// What a replay did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayStats {
    /// Events fed to the operators.
    pub events: u64,
    /// Of which spans.
    pub spans: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl ReplayStats {
    /// Events per second.
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

type Chunk = Result<Vec<(u64, Event)>, HistoryError>;

/// Replays `selection` of the archive at `dir` into `pipeline` (which is not finished:
/// the caller decides). `progress` draws a bar on stderr.
pub fn replay<S: Sink>(
    dir: &Path,
    selection: &Selection,
    pipeline: &mut Pipeline<S>,
    progress: bool,
) -> Result<ReplayStats, HistoryError> {
    let mut source = Replay::open(dir, selection, progress)?;
    pipeline.run(&mut source).map_err(|e| match e.into_inner().map(|e| e.downcast::<HistoryError>()) {
        Some(Ok(history)) => *history,
        Some(Err(other)) => {
            HistoryError::Io { path: dir.to_path_buf(), source: std::io::Error::other(other) }
        }
        None => HistoryError::Io { path: dir.to_path_buf(), source: std::io::Error::other("replay failed") },
    })?;
    Ok(source.finish())
}

/// The archive as a source: each input table is read on its own thread (DataFusion
/// scan, Arrow → events) and the sorted streams are merged by `seq`.
pub struct Replay {
    cursors: Vec<Cursor>,
    readers: Vec<JoinHandle<()>>,
    bar: ProgressBar,
    stats: ReplayStats,
    started: Instant,
}

impl Replay {
    /// Validates the archive at `dir` and starts reading `selection` of it.
    pub fn open(dir: &Path, selection: &Selection, progress: bool) -> Result<Self, HistoryError> {
        let started = Instant::now();
        let files = Arc::new(check(dir)?);
        let inputs = [Kind::Spans, Kind::Alerts, Kind::Deploys, Kind::Causes, Kind::Catalogs];
        integrity::ensure_intact(
            files.iter().filter(|f| inputs.contains(&f.kind)).map(|f| f.path.as_path()),
        )?;
        let total: u64 = files.iter().filter(|f| inputs.contains(&f.kind)).map(|f| f.rows).sum();
        let bar = if progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("replay {bar:40} {pos}/{len} events {per_sec} eta {eta}")
                .expect("valid template"),
        );
        let mut readers = Vec::new();
        let cursors = inputs
            .into_iter()
            .map(|kind| {
                let (tx, rx) = sync_channel::<Chunk>(4);
                let sql = selection.query(kind);
                let (dir, files) = (dir.to_path_buf(), files.clone());
                readers.push(std::thread::spawn(move || {
                    let result = read_table(&dir, &files, kind, &sql, |chunk| tx.send(Ok(chunk)).is_ok());
                    if let Err(e) = result {
                        let _ = tx.send(Err(integrity::name_damage(&dir, e)));
                    }
                }));
                Cursor { rx, chunk: Vec::new().into_iter().peekable(), read: ReadStamp::now(), done: false }
            })
            .collect();
        let stats = ReplayStats { events: 0, spans: 0, elapsed: Duration::ZERO };
        Ok(Self { cursors, readers, bar, stats, started })
    }

    /// Ends the progress bar and returns what was replayed.
    pub fn finish(mut self) -> ReplayStats {
        self.bar.set_position(self.stats.events);
        self.bar.finish_and_clear();
        self.stats.elapsed = self.started.elapsed();
        self.stats.clone()
    }

    fn next_event(&mut self) -> Result<Option<(Event, ReadStamp)>, HistoryError> {
        let mut next: Option<usize> = None;
        let mut best = u64::MAX;
        for (i, cursor) in self.cursors.iter_mut().enumerate() {
            if let Some(seq) = cursor.head()?
                && seq < best
            {
                best = seq;
                next = Some(i);
            }
        }
        let Some(i) = next else { return Ok(None) };
        let read = self.cursors[i].read;
        let (_, event) = self.cursors[i].chunk.next().expect("head exists");
        self.stats.events += 1;
        self.stats.spans += u64::from(matches!(event, Event::Span(_)));
        if self.stats.events.is_multiple_of(4096) {
            self.bar.set_position(self.stats.events);
        }
        Ok(Some((event, read)))
    }
}

impl Source for Replay {
    fn next_input(&mut self) -> Option<std::io::Result<Input>> {
        match self.next_event() {
            Ok(Some((event, read))) => Some(Ok(Input::Event(event, read))),
            Ok(None) => None,
            Err(e) => Some(Err(std::io::Error::other(e))),
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.cursors.clear(); // readers stop at their next send
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// Validates the archive (every file's footer) and returns its files.
fn check(dir: &Path) -> Result<Vec<ArchiveFile>, HistoryError> {
    let runtime = runtime()?;
    runtime.block_on(session(dir)).map(|(_, files)| files)
}

/// A single-threaded Tokio runtime for DataFusion.
pub fn runtime() -> Result<tokio::runtime::Runtime, HistoryError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| HistoryError::Query(format!("cannot start the query runtime: {e}")))
}

struct Cursor {
    rx: Receiver<Chunk>,
    chunk: std::iter::Peekable<std::vec::IntoIter<(u64, Event)>>,
    /// When the current chunk was read: the stamp its events carry.
    read: ReadStamp,
    done: bool,
}

impl Cursor {
    /// The `seq` of the next event, waiting for the reader if needed.
    fn head(&mut self) -> Result<Option<u64>, HistoryError> {
        loop {
            if let Some((seq, _)) = self.chunk.peek() {
                return Ok(Some(*seq));
            }
            if self.done {
                return Ok(None);
            }
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?.into_iter().peekable();
                    self.read = ReadStamp::now();
                }
                Err(_) => self.done = true,
            }
        }
    }
}

/// Runs `sql` over the archive and hands its rows to `emit` as events, batch by batch,
/// until the result ends or `emit` returns false.
fn read_table(
    dir: &Path,
    files: &[ArchiveFile],
    kind: Kind,
    sql: &str,
    mut emit: impl FnMut(Vec<(u64, Event)>) -> bool,
) -> Result<(), HistoryError> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let ctx = register(dir, files)?;
        let frame = ctx
            .sql(sql)
            .await
            .map_err(|e| HistoryError::Query(format!("selecting from {}: {e}", kind.table())))?;
        let mut stream = frame.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let events = to_events(kind, &batch?)?;
            if !emit(events) {
                break;
            }
        }
        Ok(())
    })
}

/// Rows of an input table as `(seq, event)`.
fn to_events(kind: Kind, batch: &RecordBatch) -> Result<Vec<(u64, Event)>, HistoryError> {
    let bad = |e: arrow_schema::ArrowError| HistoryError::Query(format!("reading {}: {e}", kind.table()));
    let seqs = batch.column(0).as_primitive::<UInt64Type>().values().to_vec();
    let record = record_columns(batch).map_err(bad)?;
    let events: Vec<Event> = match kind {
        Kind::Spans => Span::from_batch(&record).map_err(bad)?.into_iter().map(Event::Span).collect(),
        Kind::Alerts => Alert::from_batch(&record).map_err(bad)?.into_iter().map(Event::Alert).collect(),
        Kind::Deploys => Deploy::from_batch(&record).map_err(bad)?.into_iter().map(Event::Deploy).collect(),
        Kind::Causes => {
            ConfirmedCause::from_batch(&record).map_err(bad)?.into_iter().map(Event::Cause).collect()
        }
        Kind::Catalogs => {
            CatalogSnapshot::from_batch(&record).map_err(bad)?.into_iter().map(Event::Catalog).collect()
        }
        Kind::Impact | Kind::Candidates | Kind::Remediations | Kind::Postmortems => {
            return Err(HistoryError::Query(format!("{} holds outputs, not inputs to replay", kind.table())));
        }
    };
    Ok(seqs.into_iter().zip(events).collect())
}

#[cfg(test)]
mod tests {
    use devloom_schemas::Event;

    use super::*;
    use crate::history::ArchiveWriter;
    use crate::history::archive::tests::{config, span};

    /// Writes `events` into an archive of small files; returns the physical plan of the
    /// replay's span query and the `seq`s it reads, in order.
    fn plan_and_seqs(events: impl Iterator<Item = Event>) -> (String, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ArchiveWriter::open(config(dir.path(), 64 * 1024), None, true).unwrap();
        for event in events {
            writer.append_event(&event).unwrap();
        }
        writer.checkpoint().unwrap();
        let files = check(dir.path()).unwrap();
        assert!(files.len() > 4, "several files: {}", files.len());
        let sql = Selection::default().query(Kind::Spans);
        let plan = runtime()
            .unwrap()
            .block_on(async {
                let frame = register(dir.path(), &files)?.sql(&sql).await?;
                Ok::<_, HistoryError>(frame.create_physical_plan().await?)
            })
            .unwrap();
        let plan = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        let mut seqs = Vec::new();
        read_table(dir.path(), &files, Kind::Spans, &sql, |chunk| {
            seqs.extend(chunk.into_iter().map(|(seq, _)| seq));
            true
        })
        .unwrap();
        (plan, seqs)
    }

    #[test]
    fn files_in_seq_order_are_read_as_they_are_without_a_sort_or_a_merge() {
        let (plan, seqs) = plan_and_seqs((0..60_000).map(span));
        assert!(!plan.contains("SortExec:") && !plan.contains("SortPreservingMergeExec"), "{plan}");
        assert_eq!(seqs, (0..60_000).collect::<Vec<_>>());
    }

    #[test]
    fn files_overlapping_around_midnight_are_merged_not_sorted() {
        // Late spans of the day before keep its file open while the new day's fills:
        // the two dates' files overlap in seq.
        let day = 86_400 * 1_000_000_000;
        let events = (0..60_000).map(|i| {
            let mut event = span(i);
            if let Event::Span(s) = &mut event
                && i % 3 == 0
            {
                s.start_ns -= day;
                s.end_ns -= day;
            }
            event
        });
        let (plan, seqs) = plan_and_seqs(events);
        assert!(plan.contains("SortPreservingMergeExec") && !plan.contains("SortExec:"), "{plan}");
        assert_eq!(seqs, (0..60_000).collect::<Vec<_>>());
    }
}
