//! Archive integrity. Every file gets a SHA-256 written beside it when it is committed
//! (`.part-<seq>.parquet.sha256`, hidden from the tables); `devloom history verify`
//! checks it and decodes every row group, so damage is found in files written before
//! checksums existed too; and a replay or query that fails on damaged data names the
//! file.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use super::HistoryError;
use super::tables::scan;

/// What `verify` found for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its checksum matches and every row group decodes.
    Intact,
    /// Every row group decodes; written before checksums (nothing to compare).
    NoChecksum,
    /// The bytes are not those committed.
    Mismatch {
        /// The checksum written at commit.
        expected: String,
        /// The checksum of the file now.
        actual: String,
    },
    /// A row group does not decode.
    Unreadable(String),
}

impl Verdict {
    /// Whether the file can be trusted.
    pub fn is_sound(&self) -> bool {
        matches!(self, Self::Intact | Self::NoChecksum)
    }
}

/// The checksum file of an archive file.
pub fn checksum_path(file: &Path) -> PathBuf {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    file.with_file_name(format!(".{name}.sha256"))
}

/// Writes the checksum of `file` (as `sha256sum` prints it) to `at`.
pub fn write_checksum(file: &Path, at: &Path) -> Result<(), HistoryError> {
    let digest = digest(file)?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    fs::write(at, format!("{digest}  {name}\n")).map_err(HistoryError::io(at))?;
    File::open(at).and_then(|f| f.sync_all()).map_err(HistoryError::io(at))
}

fn digest(file: &Path) -> Result<String, HistoryError> {
    let mut hasher = Sha256::new();
    let mut reader = File::open(file).map_err(HistoryError::io(file))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(HistoryError::io(file))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(const_hex::encode(hasher.finalize()))
}

/// Fails on the first of `files` whose checksum differs from the one committed (files
/// without one pass): replay runs this first, so flipped bits never become a wrong map.
pub fn ensure_intact<'a>(files: impl IntoIterator<Item = &'a Path>) -> Result<(), HistoryError> {
    for path in files {
        if let Some(verdict @ Verdict::Mismatch { .. }) = compare_checksum(path)? {
            return Err(HistoryError::BadFile {
                path: path.to_path_buf(),
                reason: format!("{}: restore it from a backup or delete it", describe(&verdict)),
            });
        }
    }
    Ok(())
}

/// `None` without a checksum file; else `Intact` or `Mismatch`.
fn compare_checksum(path: &Path) -> Result<Option<Verdict>, HistoryError> {
    let expected = match fs::read_to_string(checksum_path(path)) {
        Ok(text) => text.split_whitespace().next().unwrap_or_default().to_string(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(HistoryError::Io { path: checksum_path(path), source: e }),
    };
    let actual = digest(path)?;
    Ok(Some(if actual == expected { Verdict::Intact } else { Verdict::Mismatch { expected, actual } }))
}

/// Checks every file of the archive at `dir`, in table and `seq` order.
pub fn verify(dir: &Path) -> Result<Vec<(PathBuf, Verdict)>, HistoryError> {
    scan(dir)?.into_iter().map(|f| Ok((f.path.clone(), verify_file(&f.path)?))).collect()
}

fn verify_file(path: &Path) -> Result<Verdict, HistoryError> {
    let checked = compare_checksum(path)?;
    if let Some(mismatch @ Verdict::Mismatch { .. }) = checked {
        return Ok(mismatch);
    }
    let file = File::open(path).map_err(HistoryError::io(path))?;
    let builder = match ParquetRecordBatchReaderBuilder::try_new(file) {
        Ok(builder) => builder,
        Err(e) => return Ok(Verdict::Unreadable(format!("footer: {e}"))),
    };
    for group in 0..builder.metadata().num_row_groups() {
        let file = File::open(path).map_err(HistoryError::io(path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_row_groups(vec![group]).build())
            .map_err(|e| e.to_string());
        let failed = match reader {
            Ok(mut batches) => batches.find_map(|b| b.err()).map(|e| e.to_string()),
            Err(e) => Some(e),
        };
        if let Some(reason) = failed {
            return Ok(Verdict::Unreadable(format!("row group {group}: {reason}")));
        }
    }
    Ok(checked.unwrap_or(Verdict::NoChecksum))
}

/// A replay or query that failed with `error`: the same error, naming the damaged file
/// when verification finds one.
pub fn name_damage(dir: &Path, error: HistoryError) -> HistoryError {
    let HistoryError::Query(reason) = &error else { return error };
    match verify(dir) {
        Ok(files) => match files.into_iter().find(|(_, v)| !v.is_sound()) {
            Some((path, verdict)) => {
                HistoryError::BadFile { path, reason: format!("{} ({reason})", describe(&verdict)) }
            }
            None => error,
        },
        Err(e) => e,
    }
}

/// One line about a verdict.
pub fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Intact => "intact".into(),
        Verdict::NoChecksum => "readable, no checksum (written before checksums)".into(),
        Verdict::Mismatch { expected, actual } => {
            format!(
                "checksum mismatch: committed {}…, now {}…",
                &expected[..12.min(expected.len())],
                &actual[..12]
            )
        }
        Verdict::Unreadable(reason) => format!("unreadable: {reason}"),
    }
}
