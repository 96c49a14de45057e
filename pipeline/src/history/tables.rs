//! The archive's tables: their Arrow schemas, the file layout, a scan that validates
//! every file's footer, and their registration with DataFusion.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::{SessionConfig, SessionContext, col};
use devloom_schemas::arrow::ArrowRecord;
use devloom_schemas::time::{format_rfc3339, parse_rfc3339};
use devloom_schemas::{
    Alert, CandidateList, CatalogSnapshot, ConfirmedCause, Deploy, ImpactMap, PostmortemDraft,
    RemediationPlan, Span,
};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;

use super::HistoryError;

/// Column: position in the order the operators saw the rows (one counter, all tables).
pub const SEQ: &str = "seq";
/// Column: event time as a UTC timestamp.
pub const TIME: &str = "time";
/// Partition column: UTC date of the event time, `YYYY-MM-DD`.
pub const DATE: &str = "date";
/// Where files are written before they are committed; never read.
pub const STAGING: &str = ".staging";

const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// A table of the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Normalized spans.
    Spans,
    /// Normalized alerts.
    Alerts,
    /// Deploys and other changes.
    Deploys,
    /// Published impact-map versions.
    Impact,
    /// Published candidate-list versions.
    Candidates,
    /// Published remediation-plan versions.
    Remediations,
    /// Published post-mortem draft versions.
    Postmortems,
    /// Confirmed root causes (labels for training).
    Causes,
    /// Service catalog snapshots.
    Catalogs,
}

impl Kind {
    /// Every table, inputs first.
    pub const ALL: [Kind; 9] = [
        Kind::Spans,
        Kind::Alerts,
        Kind::Deploys,
        Kind::Impact,
        Kind::Candidates,
        Kind::Remediations,
        Kind::Postmortems,
        Kind::Causes,
        Kind::Catalogs,
    ];

    /// Table and directory name.
    pub fn table(self) -> &'static str {
        match self {
            Kind::Spans => Span::TABLE,
            Kind::Alerts => Alert::TABLE,
            Kind::Deploys => Deploy::TABLE,
            Kind::Impact => ImpactMap::TABLE,
            Kind::Candidates => CandidateList::TABLE,
            Kind::Remediations => RemediationPlan::TABLE,
            Kind::Postmortems => PostmortemDraft::TABLE,
            Kind::Causes => ConfirmedCause::TABLE,
            Kind::Catalogs => CatalogSnapshot::TABLE,
        }
    }

    fn record_fields(self) -> Result<Vec<FieldRef>, HistoryError> {
        let fields = match self {
            Kind::Spans => Span::arrow_fields(),
            Kind::Alerts => Alert::arrow_fields(),
            Kind::Deploys => Deploy::arrow_fields(),
            Kind::Impact => ImpactMap::arrow_fields(),
            Kind::Candidates => CandidateList::arrow_fields(),
            Kind::Remediations => RemediationPlan::arrow_fields(),
            Kind::Postmortems => PostmortemDraft::arrow_fields(),
            Kind::Causes => ConfirmedCause::arrow_fields(),
            Kind::Catalogs => CatalogSnapshot::arrow_fields(),
        };
        fields.map_err(|e| HistoryError::Encode { table: self.table(), reason: e.to_string() })
    }

    /// Schema of this table's files: `seq`, `time`, then the record's own fields.
    pub fn file_schema(self) -> Result<SchemaRef, HistoryError> {
        let mut fields: Vec<FieldRef> = vec![
            Arc::new(Field::new(SEQ, DataType::UInt64, false)),
            Arc::new(Field::new(TIME, time_type(), false)),
        ];
        fields.extend(self.record_fields()?);
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// The type of the `time` column.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The UTC day an event time falls on (days since the epoch).
pub fn day_of(time_ns: u64) -> u64 {
    time_ns / NS_PER_DAY
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of_day(day: u64) -> String {
    format_rfc3339(day * NS_PER_DAY)[..10].to_string()
}

/// Path of a data file relative to the archive root.
pub fn relative_path(kind: Kind, date: &str, first_seq: u64) -> PathBuf {
    Path::new(kind.table()).join(format!("{DATE}={date}")).join(format!("part-{first_seq:012}.parquet"))
}

/// The record's own columns of a batch read from a table: without `seq`, `time` and
/// the `date` partition.
pub fn record_columns(batch: &RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
    batch.project(&(2..batch.num_columns() - 1).collect::<Vec<_>>())
}

/// One committed data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Its table.
    pub kind: Kind,
    /// Full path.
    pub path: PathBuf,
    /// The first `seq` it holds (from its name).
    pub first_seq: u64,
    /// The last `seq` it holds (from its footer's statistics; `u64::MAX` without them).
    pub last_seq: u64,
    /// Rows (from its footer).
    pub rows: u64,
}

/// Lists and validates the committed files of the archive at `dir` (none if it does not
/// exist), sorted by table and `seq`. Every footer is read: a file that is not a
/// Parquet file of the expected table is an error naming it.
pub fn scan(dir: &Path) -> Result<Vec<ArchiveFile>, HistoryError> {
    let mut files = Vec::new();
    for kind in Kind::ALL {
        let table_dir = dir.join(kind.table());
        if !table_dir.is_dir() {
            continue;
        }
        for partition in sorted_entries(&table_dir)? {
            if hidden(&partition) {
                continue;
            }
            let date = file_name(&partition).strip_prefix("date=");
            if !partition.is_dir() || !date.is_some_and(is_date) {
                return Err(HistoryError::BadFile {
                    path: partition,
                    reason: "expected a date=YYYY-MM-DD directory".into(),
                });
            }
            for path in sorted_entries(&partition)? {
                if hidden(&path) {
                    continue;
                }
                let first_seq = file_name(&path)
                    .strip_prefix("part-")
                    .and_then(|n| n.strip_suffix(".parquet"))
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| HistoryError::BadFile {
                        path: path.clone(),
                        reason: "expected a part-<seq>.parquet file".into(),
                    })?;
                let (rows, last_seq) = validate(kind, &path)?;
                files.push(ArchiveFile { kind, path, first_seq, last_seq, rows });
            }
        }
    }
    files.sort_by_key(|f| (f.kind, f.first_seq));
    // `seq` is one counter and a file is named by its first: two files of a table that
    // start at the same `seq` are one file twice (a copy into another partition).
    if let Some(pair) = files.windows(2).find(|w| w[0].kind == w[1].kind && w[0].first_seq == w[1].first_seq)
    {
        return Err(HistoryError::BadFile {
            path: pair[1].path.clone(),
            reason: format!(
                "starts at the same seq ({}) as {}: one is a copy of the other and would be read twice; remove it",
                pair[1].first_seq,
                pair[0].path.display()
            ),
        });
    }
    Ok(files)
}

/// Whether `text` is a real `YYYY-MM-DD` date.
fn is_date(text: &str) -> bool {
    text.len() == 10
        && parse_rfc3339(&format!("{text}T00:00:00Z")).is_ok_and(|ns| date_of_day(day_of(ns)) == text)
}

/// Reads the footer of `path`: it must be Parquet with this table's columns. Returns
/// its rows and its last `seq`.
fn validate(kind: Kind, path: &Path) -> Result<(u64, u64), HistoryError> {
    let bad = |reason: String| HistoryError::BadFile { path: path.to_path_buf(), reason };
    let file = File::open(path).map_err(HistoryError::io(path))?;
    let reader = SerializedFileReader::new(file).map_err(|e| bad(e.to_string()))?;
    let meta = reader.metadata().file_metadata();
    let expected = kind.file_schema()?;
    let columns: Vec<&str> = meta.schema().get_fields().iter().map(|f| f.name()).collect();
    let wanted: Vec<&str> = expected.fields().iter().map(|f| f.name().as_str()).collect();
    if columns != wanted {
        return Err(bad(format!("columns {columns:?} are not those of table {}: {wanted:?}", kind.table())));
    }
    let rows = u64::try_from(meta.num_rows()).map_err(|_| bad("negative row count".into()))?;
    let last_seq =
        reader.metadata().row_groups().iter().try_fold(0, |last, group| match group.column(0).statistics() {
            Some(Statistics::Int64(seq)) => seq.max_opt().map(|&max| last.max(max as u64)),
            _ => None,
        });
    Ok((rows, last_seq.unwrap_or(u64::MAX)))
}

/// How many `seq`-ordered chains the files of one table need at least: the most files
/// whose `seq` ranges overlap at any point (for instance one file per date while late
/// spans arrive around midnight).
fn chains(files: &[&ArchiveFile]) -> usize {
    let mut bounds: Vec<(u64, bool)> =
        files.iter().flat_map(|f| [(f.first_seq, true), (f.last_seq, false)]).collect();
    // At equal positions, starts first: ranges are inclusive.
    bounds.sort_by_key(|&(seq, start)| (seq, !start));
    let mut open = 0usize;
    let mut most = 0;
    for (_, start) in bounds {
        if start {
            open += 1;
            most = most.max(open);
        } else {
            open -= 1;
        }
    }
    most
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, HistoryError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(HistoryError::io(dir))? {
        entries.push(entry.map_err(HistoryError::io(dir))?.path());
    }
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn hidden(path: &Path) -> bool {
    let name = file_name(path);
    name.starts_with('.') || name.starts_with('_')
}

/// A DataFusion session with the archive's tables registered (`spans`, `alerts`,
/// `deploys`, `impact`, `candidates`, `causes`; a table without files is empty). Fails if `dir` holds no table.
pub async fn session(dir: &Path) -> Result<(SessionContext, Vec<ArchiveFile>), HistoryError> {
    if !Kind::ALL.iter().any(|k| dir.join(k.table()).is_dir()) {
        return Err(HistoryError::NotAnArchive(dir.to_path_buf()));
    }
    let files = scan(dir)?;
    Ok((register(dir, &files)?, files))
}

/// A DataFusion session over already scanned `files` of the archive at `dir`.
///
/// Each table is read as few `seq`-ordered chains of files as its files allow — one,
/// unless files overlap in `seq` — so DataFusion proves from the footers' statistics
/// that each partition is sorted and `ORDER BY seq` needs no sort, and a merge only
/// where files overlap. (The query runtime has one thread, so more partitions would not
/// read in parallel anyway.)
pub fn register(dir: &Path, files: &[ArchiveFile]) -> Result<SessionContext, HistoryError> {
    let partitions = Kind::ALL
        .iter()
        .map(|&kind| chains(&files.iter().filter(|f| f.kind == kind).collect::<Vec<_>>()))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut config = SessionConfig::new().with_target_partitions(partitions);
    config.options_mut().execution.split_file_groups_by_statistics = true;
    let ctx = SessionContext::new_with_config(config);
    for kind in Kind::ALL {
        let schema = kind.file_schema()?;
        if files.iter().any(|f| f.kind == kind) {
            let path = dir.join(kind.table());
            let url = ListingTableUrl::parse(format!("{}/", path.display()))?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(vec![(DATE.to_string(), DataType::Utf8)])
                .with_file_sort_order(vec![vec![col(SEQ).sort(true, false)]]);
            let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
            ctx.register_table(kind.table(), Arc::new(ListingTable::try_new(config)?))?;
        } else {
            let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
            fields.push(Arc::new(Field::new(DATE, DataType::Utf8, false)));
            let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])?;
            ctx.register_table(kind.table(), Arc::new(empty))?;
        }
    }
    Ok(ctx)
}
