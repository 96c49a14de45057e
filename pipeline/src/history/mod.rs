//! The incident history: a Parquet archive of everything Devloom saw (spans, alerts,
//! deploys) and said (impact maps, candidate lists, remediation plans), confirmed causes, and what is built on it: batch replay through the
//! same operators, SQL queries with DataFusion, and import of existing files.
//!
//! Layout, one directory per table, Hive-style date partitions (UTC event date):
//!
//! ```text
//! history/spans/date=2026-11-27/part-000000000000.parquet
//! history/alerts/date=2026-11-27/part-000000004096.parquet
//! history/spans/date=2026-11-27/.part-000000000000.parquet.sha256   its checksum
//! history/.staging/…   files being written or not yet committed (never read)
//! ```
//!
//! Every row carries `seq`, its position in the order the operators saw it (one counter
//! over all tables; the file name is the first `seq` it holds), and `time`, its event
//! time as a UTC timestamp. Replay orders by `seq`, which is how it reproduces a live
//! run exactly.

pub mod archive;
pub mod import;
pub mod integrity;
pub mod labels;
mod lock;
pub mod query;
pub mod replay;
pub mod sink;
pub mod tables;

use std::path::PathBuf;

pub use archive::{ArchiveConfig, ArchiveWriter};
pub use sink::ArchiveSink;
pub use tables::{ArchiveFile, Kind, scan};

/// What went wrong with the archive, naming the file when there is one.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A file could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file in the archive is not a Parquet file Devloom wrote.
    #[error("{path}: not a readable archive file: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Arrow or Parquet refused a batch.
    #[error("writing {table}: {reason}")]
    Encode {
        /// The table.
        table: &'static str,
        /// Why.
        reason: String,
    },
    /// The archive directory does not exist or holds no table.
    #[error(
        "{0}: no history archive here (expected spans/, alerts/, deploys/, impact/, candidates/, remediations/, postmortems/, causes/ or catalogs/)"
    )]
    NotAnArchive(PathBuf),
    /// DataFusion could not plan or run a query.
    #[error("query failed: {0}")]
    Query(String),
    /// A command-line argument is invalid.
    #[error("{0}")]
    Usage(String),
    /// Another process (a running `devloom run`) is writing the archive.
    #[error(
        "{dir}: the archive is being written by process {holder} (it holds {lock}); one writer at a time"
    )]
    Busy {
        /// The archive.
        dir: PathBuf,
        /// What the lock file says about its holder (its pid).
        holder: String,
        /// The lock file.
        lock: PathBuf,
    },
}

impl HistoryError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

impl From<datafusion::error::DataFusionError> for HistoryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Query(e.to_string())
    }
}
