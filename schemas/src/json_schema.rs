//! JSON Schemas of every output (and of the Devloom catalog file, for editors),
//! generated from the Rust types. The checked-in copies under `schemas/` are the
//! published contract; a test keeps them equal.

use schemars::{JsonSchema, schema_for};

use crate::candidates::CandidateList;
use crate::catalog::Catalog;
use crate::dead_letter::DeadLetter;
use crate::impact::ImpactMap;
use crate::postmortem::PostmortemDraft;
use crate::remediation::RemediationPlan;
use crate::rollout::RolloutDecision;

/// `(file name, pretty JSON)` of every output's JSON Schema, in a fixed order.
pub fn output_schemas() -> Vec<(&'static str, String)> {
    vec![
        ("impact_map.schema.json", render::<ImpactMap>()),
        ("candidates.schema.json", render::<CandidateList>()),
        ("remediation.schema.json", render::<RemediationPlan>()),
        ("postmortem.schema.json", render::<PostmortemDraft>()),
        ("rollout.schema.json", render::<RolloutDecision>()),
        ("dead_letter.schema.json", render::<DeadLetter>()),
        ("catalog.schema.json", render::<Catalog>()),
    ]
}

fn render<T: JsonSchema>() -> String {
    let schema = schema_for!(T);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when a checked-in schema differs from the types. To update after an
    /// intended change: `DEVLOOM_BLESS=1 cargo test -p devloom-schemas json_schema`.
    #[test]
    fn checked_in_schemas_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let bless = std::env::var_os("DEVLOOM_BLESS").is_some();
        for (name, generated) in output_schemas() {
            let path = dir.join(name);
            if bless {
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == generated,
                "{} differs from the Rust types; run DEVLOOM_BLESS=1 cargo test -p devloom-schemas json_schema",
                path.display()
            );
        }
    }
}
