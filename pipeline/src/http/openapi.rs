//! The OpenAPI 3.1 document of the HTTP API, generated from [`ROUTES`] and the Rust
//! types' JSON Schemas (OpenAPI 3.1 schemas are JSON Schema 2020-12), and checked in as
//! `pipeline/openapi.json`: a test fails when the code and the file differ
//! (`DEVLOOM_BLESS=1 cargo test -p devloom --lib openapi` rewrites it).

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::api::{ROUTES, Response200};
use super::views;

/// The checked-in document `/v1/openapi.json` serves.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// The document, from the code.
pub fn generate() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "#/components/schemas/".into();
        s.meta_schema = None;
    }));
    generator.subschema_for::<views::IncidentList>();
    generator.subschema_for::<views::IncidentDetail>();
    generator.subschema_for::<views::IncidentHistory>();
    generator.subschema_for::<views::GraphView>();
    generator.subschema_for::<views::ServiceDetail>();
    generator.subschema_for::<devloom_schemas::CatalogReport>();
    generator.subschema_for::<views::Probe>();
    generator.subschema_for::<views::ApiError>();
    generator.subschema_for::<views::RolloutList>();
    generator.subschema_for::<views::RolloutStatus>();
    generator.subschema_for::<crate::gate::GateDecision>();
    generator.subschema_for::<crate::gate::FlaggerWebhook>();
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    let mut paths = Map::new();
    for route in ROUTES {
        let parameters: Vec<Value> = route
            .params
            .iter()
            .map(|(name, place, kind, description)| {
                json!({
                    "name": name,
                    "in": place,
                    "required": *place == "path",
                    "description": description,
                    "schema": { "type": kind },
                })
            })
            .collect();
        let ok = match route.response {
            Response200::Json(component) => {
                json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{component}") } } })
            }
            Response200::Media(media) => json!({ media: { "schema": { "type": "string" } } }),
        };
        let error = json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ApiError" } } });
        let mut responses = Map::new();
        responses.insert("200".into(), json!({ "description": "OK", "content": ok }));
        if !route.params.is_empty() {
            responses
                .insert("400".into(), json!({ "description": "A parameter is invalid", "content": error }));
        }
        if route.not_found {
            responses.insert("404".into(), json!({ "description": "Not found", "content": error }));
        }
        if route.conflict {
            let Response200::Json(component) = route.response else { continue };
            responses.insert(
                "409".into(),
                json!({ "description": "Refused (block / halt; the status is [gate] block_status / halt_status): the same body, saying why",
                        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{component}") } } } }),
            );
        }
        if route.path == "/readyz" {
            responses.insert(
                "503".into(),
                json!({ "description": "Not ready; the reasons say why",
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Probe" } } } }),
            );
        }
        let id = route.path.trim_start_matches('/').replace(['/', '{', '}', '.'], "_");
        let operation = json!({
            "operationId": id,
            "summary": route.summary,
            "parameters": parameters,
            "responses": responses,
        });
        let mut methods = Map::new();
        if let Some(body) = route.post {
            let mut post = operation.clone();
            post["operationId"] = json!(format!("{id}_webhook"));
            post["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } },
            });
            methods.insert("post".into(), post);
        }
        methods.insert("get".into(), operation);
        paths.insert(route.path.to_string(), Value::Object(methods));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Devloom HTTP API",
            "version": "1",
            "description": "Read-only: every route answers GET, and the gate and rollout routes also take the webhook POST controllers send; nothing changes Devloom's state.",
        },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_matches_the_code() {
        let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        if std::env::var_os("DEVLOOM_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        assert!(
            generated == DOCUMENT,
            "pipeline/openapi.json differs from the routes and types; run DEVLOOM_BLESS=1 cargo test -p devloom --lib openapi"
        );
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        for route in ROUTES {
            assert!(doc["paths"][route.path]["get"].is_object(), "{} documented", route.path);
        }
        assert!(doc["components"]["schemas"]["ImpactMap"]["properties"]["nodes"].is_object());
    }
}
