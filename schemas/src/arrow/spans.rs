//! Spans from a `RecordBatch`, column by column.
//!
//! Replay reads millions of spans, and going through serde cell by cell cost more than
//! decoding the Parquet itself. This reader walks typed columns, parses ids straight
//! from their hex text, and shares one `Arc<str>` per distinct service and region of a
//! batch instead of allocating one per span.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, ListArray, RecordBatch, StringArray, StructArray, UInt64Array,
};
use arrow_schema::ArrowError;
use serde::Deserialize;
use serde::de::value::{Error as ValueError, StrDeserializer};

use crate::ids::{SpanId, TraceId};
use crate::span::{PeerAttributes, Span, SpanKind, SpanLink};

/// Reads the spans of a batch with the `spans` schema.
pub(super) fn spans_from_batch(batch: &RecordBatch) -> Result<Vec<Span>, ArrowError> {
    let links: &ListArray = column(batch, "links")?;
    let link_targets = links.values().as_struct_opt().ok_or_else(|| wrong_type("links", links.values()))?;
    let peer: &StructArray = column(batch, "peer")?;
    let peer_column = |name| typed::<StringArray>(peer.column_by_name(name), name);
    let columns = Columns {
        trace_id: column(batch, "trace_id")?,
        span_id: column(batch, "span_id")?,
        parent_span_id: column(batch, "parent_span_id")?,
        link_offsets: links.value_offsets(),
        link_trace_id: typed(link_targets.column_by_name("trace_id"), "links.trace_id")?,
        link_span_id: typed(link_targets.column_by_name("span_id"), "links.span_id")?,
        service: column(batch, "service")?,
        region: column(batch, "region")?,
        version: optional_column(batch, "version")?,
        environment: optional_column(batch, "environment")?,
        kinds: kinds(batch.column_by_name("kind"))?,
        name: column(batch, "name")?,
        start_ns: column(batch, "start_ns")?,
        end_ns: column(batch, "end_ns")?,
        failed: column(batch, "failed")?,
        peer_service: peer_column("peer_service")?,
        server_address: peer_column("server_address")?,
        db_system: peer_column("db_system")?,
        messaging_destination: peer_column("messaging_destination")?,
        rpc_service: peer_column("rpc_service")?,
    };
    let mut names = Interner::default();
    (0..batch.num_rows()).map(|row| columns.span(row, &mut names)).collect()
}

struct Columns<'a> {
    trace_id: &'a StringArray,
    span_id: &'a StringArray,
    parent_span_id: &'a StringArray,
    link_offsets: &'a [i32],
    link_trace_id: &'a StringArray,
    link_span_id: &'a StringArray,
    service: &'a StringArray,
    region: &'a StringArray,
    version: Option<&'a StringArray>,
    environment: Option<&'a StringArray>,
    kinds: Vec<SpanKind>,
    name: &'a StringArray,
    start_ns: &'a UInt64Array,
    end_ns: &'a UInt64Array,
    failed: &'a BooleanArray,
    peer_service: &'a StringArray,
    server_address: &'a StringArray,
    db_system: &'a StringArray,
    messaging_destination: &'a StringArray,
    rpc_service: &'a StringArray,
}

impl<'a> Columns<'a> {
    fn span(&self, row: usize, names: &mut Interner<'a>) -> Result<Span, ArrowError> {
        let links = (self.link_offsets[row]..self.link_offsets[row + 1])
            .map(|i| {
                let i = i as usize;
                Ok(SpanLink {
                    trace_id: trace_id(self.link_trace_id.value(i))?,
                    span_id: span_id(self.link_span_id.value(i))?,
                })
            })
            .collect::<Result<_, ArrowError>>()?;
        Ok(Span {
            trace_id: trace_id(self.trace_id.value(row))?,
            span_id: span_id(self.span_id.value(row))?,
            parent_span_id: optional(self.parent_span_id, row).map(span_id).transpose()?,
            links,
            service: names.get(self.service.value(row)),
            region: optional(self.region, row).map(|r| names.get(r)),
            version: self.version.and_then(|c| optional(c, row)).map(|v| names.get(v)),
            environment: self.environment.and_then(|c| optional(c, row)).map(|e| names.get(e)),
            kind: self.kinds[row],
            name: self.name.value(row).to_string(),
            start_ns: self.start_ns.value(row),
            end_ns: self.end_ns.value(row),
            failed: self.failed.value(row),
            peer: PeerAttributes {
                peer_service: optional(self.peer_service, row).map(str::to_string),
                server_address: optional(self.server_address, row).map(str::to_string),
                db_system: optional(self.db_system, row).map(str::to_string),
                messaging_destination: optional(self.messaging_destination, row).map(str::to_string),
                rpc_service: optional(self.rpc_service, row).map(str::to_string),
            },
        })
    }
}

/// One shared `Arc<str>` per distinct text.
#[derive(Default)]
struct Interner<'a>(HashMap<&'a str, Arc<str>>);

impl<'a> Interner<'a> {
    fn get(&mut self, text: &'a str) -> Arc<str> {
        self.0.entry(text).or_insert_with(|| Arc::from(text)).clone()
    }
}

fn optional(column: &StringArray, row: usize) -> Option<&str> {
    column.is_valid(row).then(|| column.value(row))
}

/// The empty string is the all-zero (invalid) id, as in OTLP JSON.
fn trace_id(hex: &str) -> Result<TraceId, ArrowError> {
    if hex.is_empty() {
        return Ok(TraceId(0));
    }
    TraceId::from_hex(hex).ok_or_else(|| bad_id("trace", hex, 32))
}

fn span_id(hex: &str) -> Result<SpanId, ArrowError> {
    if hex.is_empty() {
        return Ok(SpanId(0));
    }
    SpanId::from_hex(hex).ok_or_else(|| bad_id("span", hex, 16))
}

fn bad_id(what: &str, hex: &str, digits: usize) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("invalid {what} id {hex:?} (want {digits} hex digits)"))
}

/// The `kind` of each row: a dictionary of the kinds' serde names.
fn kinds(array: Option<&ArrayRef>) -> Result<Vec<SpanKind>, ArrowError> {
    let array = array.ok_or_else(|| missing("kind"))?;
    let dictionary = array.as_any_dictionary_opt().ok_or_else(|| wrong_type("kind", array))?;
    if array.null_count() > 0 || (dictionary.values().is_empty() && !array.is_empty()) {
        return Err(ArrowError::InvalidArgumentError("column kind has rows without a kind".into()));
    }
    if array.is_empty() {
        return Ok(Vec::new());
    }
    let names: &StringArray = typed(Some(dictionary.values()), "kind")?;
    let known = names
        .iter()
        .map(|name| {
            let name = name.unwrap_or_default();
            SpanKind::deserialize(StrDeserializer::<ValueError>::new(name))
                .map_err(|e| ArrowError::InvalidArgumentError(format!("column kind: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dictionary.normalized_keys().into_iter().map(|key| known[key]).collect())
}

fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, ArrowError> {
    typed(batch.column_by_name(name), name)
}

/// A column archives written before it existed lack: absent is all nulls.
fn optional_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<Option<&'a StringArray>, ArrowError> {
    batch.column_by_name(name).map(|c| typed(Some(c), name)).transpose()
}

fn typed<'a, T: Array + 'static>(array: Option<&'a ArrayRef>, name: &str) -> Result<&'a T, ArrowError> {
    let array = array.ok_or_else(|| missing(name))?;
    array.as_any().downcast_ref::<T>().ok_or_else(|| wrong_type(name, array))
}

fn missing(name: &str) -> ArrowError {
    ArrowError::SchemaError(format!("no column {name}"))
}

fn wrong_type(name: &str, array: &ArrayRef) -> ArrowError {
    ArrowError::SchemaError(format!("column {name} has unexpected type {}", array.data_type()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::arrow::ArrowRecord;

    fn text() -> impl Strategy<Value = String> {
        "[a-z0-9./ -]{0,12}"
    }

    fn link() -> impl Strategy<Value = SpanLink> {
        (any::<u128>(), any::<u64>()).prop_map(|(t, s)| SpanLink { trace_id: TraceId(t), span_id: SpanId(s) })
    }

    prop_compose! {
        fn span()(
            ids in (any::<u128>(), any::<u64>(), proptest::option::of(any::<u64>())),
            links in proptest::collection::vec(link(), 0..3),
            service in "[a-c]",
            region in proptest::option::of("(eu|us)-[12]"),
            version in proptest::option::of("v[12]"),
            environment in proptest::option::of("(prod|staging)"),
            kind in 0i32..6,
            name in text(),
            times in (any::<u64>(), any::<u64>(), any::<bool>()),
            peer in proptest::collection::vec(proptest::option::of(text()), 5),
        ) -> Span {
            Span {
                trace_id: TraceId(ids.0),
                span_id: SpanId(ids.1),
                parent_span_id: ids.2.map(SpanId),
                links,
                service: service.into(),
                region: region.map(Into::into),
                version: version.map(Into::into),
                environment: environment.map(Into::into),
                kind: SpanKind::from_otlp(kind),
                name,
                start_ns: times.0,
                end_ns: times.1,
                failed: times.2,
                peer: PeerAttributes {
                    peer_service: peer[0].clone(),
                    server_address: peer[1].clone(),
                    db_system: peer[2].clone(),
                    messaging_destination: peer[3].clone(),
                    rpc_service: peer[4].clone(),
                },
            }
        }
    }

    proptest! {
        #[test]
        fn any_spans_round_trip_through_a_batch(spans in proptest::collection::vec(span(), 0..40)) {
            let batch = Span::to_batch(&spans).unwrap();
            prop_assert_eq!(Span::from_batch(&batch).unwrap(), spans);
        }
    }

    fn example() -> Span {
        Span {
            trace_id: TraceId(1),
            span_id: SpanId(2),
            parent_span_id: None,
            links: Vec::new(),
            service: "checkout".into(),
            region: Some("eu-west-1".into()),
            version: Some("1.4.2".into()),
            environment: None,
            kind: SpanKind::Server,
            name: "POST /pay".into(),
            start_ns: 10,
            end_ns: 20,
            failed: false,
            peer: PeerAttributes::default(),
        }
    }

    #[test]
    fn archives_from_before_the_version_columns_still_read() {
        let batch = Span::to_batch(&[example()]).unwrap();
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|i| !matches!(batch.schema().field(*i).name().as_str(), "version" | "environment"))
            .collect();
        let old = batch.project(&keep).unwrap();
        let spans = Span::from_batch(&old).unwrap();
        assert_eq!(spans[0].version, None);
        assert_eq!(spans[0].service.as_ref(), "checkout");
    }

    #[test]
    fn spans_of_a_batch_share_their_service_names() {
        let span = example();
        let batch = Span::to_batch(&[span.clone(), span]).unwrap();
        let spans = Span::from_batch(&batch).unwrap();
        assert!(Arc::ptr_eq(&spans[0].service, &spans[1].service));
    }

    #[test]
    fn a_bad_id_or_a_missing_column_is_a_clear_error() {
        let span = example();
        let batch = Span::to_batch(&[span]).unwrap();
        let (i, _) = batch.schema().column_with_name("span_id").unwrap();
        let mut columns = batch.columns().to_vec();
        columns[i] = Arc::new(StringArray::from(vec!["not-hex-at-all!!"]));
        let bad = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let error = Span::from_batch(&bad).unwrap_err().to_string();
        assert!(error.contains("invalid span id \"not-hex-at-all!!\""), "{error}");

        let error = Span::from_batch(&batch.project(&[0, 1]).unwrap()).unwrap_err().to_string();
        assert!(error.contains("no column"), "{error}");
    }
}
