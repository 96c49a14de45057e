//! `devloom history query`: SQL over the archive's tables, printed as a table, CSV or
//! JSON lines.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use devloom_schemas::arrow::ArrowRecord;
use futures_util::StreamExt;

use super::replay::runtime;
use super::tables::{Kind, SEQ, record_columns, session};
use super::{HistoryError, integrity};

/// How query results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row (NDJSON).
    Json,
}

/// Runs `sql` over the archive at `dir` and writes the result to `out`; returns the
/// number of rows.
pub fn query(dir: &Path, sql: &str, format: QueryFormat, out: &mut dyn Write) -> Result<u64, HistoryError> {
    let runtime = runtime()?;
    let batches = runtime
        .block_on(async {
            let (ctx, _) = session(dir).await?;
            let mut stream = ctx.sql(sql).await?.execute_stream().await?;
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                batches.push(batch?);
            }
            Ok::<_, HistoryError>(batches)
        })
        .map_err(|e| integrity::name_damage(dir, e))?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let failed =
        |e: datafusion::arrow::error::ArrowError| HistoryError::Query(format!("printing the result: {e}"));
    match format {
        QueryFormat::Table => {
            let table = pretty_format_batches(&batches).map_err(failed)?;
            writeln!(out, "{table}").map_err(HistoryError::io("<stdout>"))?;
        }
        QueryFormat::Csv => {
            let mut writer = WriterBuilder::new().with_header(true).build(&mut *out);
            for batch in &batches {
                writer.write(batch).map_err(failed)?;
            }
        }
        QueryFormat::Json => {
            let mut writer = LineDelimitedWriter::new(&mut *out);
            for batch in &batches {
                writer.write(batch).map_err(failed)?;
            }
            writer.finish().map_err(failed)?;
        }
    }
    out.flush().map_err(HistoryError::io("<stdout>"))?;
    Ok(rows)
}

/// Every row of `kind` in `seq` order, as records (`T` must be the table's type).
pub fn records<T: ArrowRecord>(dir: &Path, kind: Kind) -> Result<Vec<T>, HistoryError> {
    records_where(dir, kind, "TRUE")
}

/// The rows of `kind` that match the SQL `predicate`, as records, in `seq` order.
pub fn records_where<T: ArrowRecord>(
    dir: &Path,
    kind: Kind,
    predicate: &str,
) -> Result<Vec<T>, HistoryError> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let (ctx, _) = session(dir).await?;
        let sql = format!("SELECT * FROM {} WHERE {predicate} ORDER BY {SEQ}", kind.table());
        let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = record_columns(&batch?).and_then(|b| T::from_batch(&b));
            out.extend(batch.map_err(|e| HistoryError::Query(format!("reading {}: {e}", kind.table())))?);
        }
        Ok(out)
    })
}
