//! Arrow schemas of the normalized events and outputs, and `RecordBatch` conversion both
//! ways (the history archive writes these batches to Parquet).
//!
//! Schemas are traced from the Rust types, so they cannot drift from them: ids are hex
//! strings, enums are strings, labels are a map, nested lists stay nested.

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, FieldRef};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};

use crate::alert::Alert;
use crate::candidates::{CandidateList, ConfirmedCause};
use crate::catalog::CatalogSnapshot;
use crate::deploy::Deploy;
use crate::impact::ImpactMap;
use crate::postmortem::PostmortemDraft;
use crate::remediation::RemediationPlan;
use crate::span::Span;

mod spans;

/// A type with an Arrow schema and batch conversion.
pub trait ArrowRecord: Serialize + DeserializeOwned + Sized {
    /// The table name used in the archive and in SQL (`spans`, `alerts`, …).
    const TABLE: &'static str;

    /// Arrow fields of this record type.
    fn arrow_fields() -> Result<Vec<FieldRef>, ArrowError> {
        let options = TracingOptions::default()
            .allow_null_fields(true)
            .enums_without_data_as_strings(true)
            .map_as_struct(false)
            .strings_as_large_utf8(false)
            .sequence_as_large_list(false);
        Vec::<FieldRef>::from_type::<Self>(options).map_err(to_arrow_error)
    }

    /// Converts records into one batch.
    fn to_batch(records: &[Self]) -> Result<RecordBatch, ArrowError> {
        let fields = Self::arrow_fields()?;
        serde_arrow::to_record_batch(&fields, &records).map_err(to_arrow_error)
    }

    /// Reads records back from a batch with this type's schema.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        serde_arrow::from_record_batch(batch).map_err(to_arrow_error)
    }
}

fn to_arrow_error(e: serde_arrow::Error) -> ArrowError {
    ArrowError::ExternalError(Box::new(e))
}

impl ArrowRecord for Span {
    const TABLE: &'static str = "spans";

    /// Column by column rather than through serde: replay reads spans by the million.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        spans::spans_from_batch(batch)
    }
}

impl ArrowRecord for Alert {
    const TABLE: &'static str = "alerts";
}

impl ArrowRecord for Deploy {
    const TABLE: &'static str = "deploys";
}

impl ArrowRecord for ImpactMap {
    const TABLE: &'static str = "impact";
}

impl ArrowRecord for CandidateList {
    const TABLE: &'static str = "candidates";
}

impl ArrowRecord for RemediationPlan {
    const TABLE: &'static str = "remediations";
}

impl ArrowRecord for PostmortemDraft {
    const TABLE: &'static str = "postmortems";
}

impl ArrowRecord for ConfirmedCause {
    const TABLE: &'static str = "causes";
}

impl ArrowRecord for CatalogSnapshot {
    const TABLE: &'static str = "catalogs";
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;
    use crate::codec::{DecodeOptions, Expect, Message, decode};
    use crate::event::Event;
    use crate::impact::*;

    fn events(file: &str) -> Vec<Event> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(file);
        let bytes = std::fs::read(path).unwrap();
        let mut out = Vec::new();
        decode(
            &Message { payload: &bytes, headers: &[], fallback_time_ns: Some(1), key: None },
            Expect::Any,
            &DecodeOptions::default(),
            &mut out,
        )
        .unwrap();
        out
    }

    fn round_trip<T: ArrowRecord + PartialEq + std::fmt::Debug>(records: Vec<T>) -> RecordBatch {
        let batch = T::to_batch(&records).unwrap();
        assert_eq!(batch.num_rows(), records.len());
        assert_eq!(T::from_batch(&batch).unwrap(), records);
        batch
    }

    #[test]
    fn spans_alerts_deploys_round_trip_through_record_batches() {
        let spans: Vec<Span> = events("otlp_trace.json")
            .into_iter()
            .filter_map(|e| if let Event::Span(s) = e { Some(s) } else { None })
            .collect();
        let batch = round_trip(spans);
        let schema = batch.schema();
        assert_eq!(schema.field_with_name("trace_id").unwrap().data_type(), &DataType::Utf8);
        assert_eq!(schema.field_with_name("end_ns").unwrap().data_type(), &DataType::UInt64);
        assert!(matches!(schema.field_with_name("links").unwrap().data_type(), DataType::List(_)));

        let alerts: Vec<Alert> = events("alertmanager_v4.json")
            .into_iter()
            .filter_map(|e| if let Event::Alert(a) = e { Some(a) } else { None })
            .collect();
        let batch = round_trip(alerts);
        assert!(matches!(batch.schema().field_with_name("labels").unwrap().data_type(), DataType::Map(..)));

        let deploys: Vec<Deploy> =
            ["argocd_application.json", "devloom_deploy.json", "github_deployment_status.json"]
                .iter()
                .flat_map(|f| events(f))
                .filter_map(|e| if let Event::Deploy(d) = e { Some(d) } else { None })
                .collect();
        assert_eq!(deploys.len(), 3);
        round_trip(deploys);
    }

    #[test]
    fn impact_maps_round_trip_through_record_batches() {
        let map = ImpactMap {
            schema_version: IMPACT_MAP_SCHEMA_VERSION,
            incident_id: "inc-1".into(),
            version: 2,
            status: IncidentStatus::Open,
            root_services: vec!["checkout".into()],
            verdict: Verdict::Spreading,
            nodes: vec![ImpactNode {
                service: "checkout".into(),
                region: Some("eu-west-1".into()),
                virtual_node: false,
                state: HealthState::Red,
                hops: 0,
                direction: Direction::Root,
                path: vec!["checkout".into()],
                error_rate: NowVsBaseline { now: 0.2, baseline: 0.01 },
                p99_ms: NowVsBaseline { now: 800.0, baseline: 120.0 },
                requests_per_s: NowVsBaseline { now: 50.0, baseline: 48.0 },
                covered_s: Some(NowVsBaseline { now: 60.0, baseline: 1800.0 }),
                self_time_ms: None,
                self_time_p90_ms: None,
                catalog: None,
            }],
            edges: vec![ImpactEdge {
                caller: "frontend".into(),
                callee: "checkout".into(),
                origin: EdgeOrigin::Both,
                asynchronous: false,
                criticality: Criticality::Critical,
                traffic_share: 1.0,
                state: HealthState::Red,
                error_rate: NowVsBaseline::default(),
                calls_per_s: None,
                covered_s: Some(NowVsBaseline { now: 60.0, baseline: 1800.0 }),
                gap_ms: None,
                caller_error_rate: None,
                gap_p90_ms: None,
                gap_p99_ms: None,
            }],
            omitted_nodes: None,
            data_quality: Some(vec!["3 spans arrived behind the watermark".into()]),
            event_time_ns: 5,
            event_time: "1970-01-01T00:00:00.000Z".into(),
            alert_received_at: None,
            published_at: Some("2026-11-27T09:00:00.000Z".into()),
            latency_ms: Some(1.5),
        };
        round_trip(vec![map.clone(), ImpactMap { version: 3, ..map }]);
    }
}
