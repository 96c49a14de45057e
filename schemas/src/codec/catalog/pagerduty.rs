//! A PagerDuty REST API export: `GET /services` (`services`), `GET /business_services`
//! (`business_services`) and the service dependencies endpoints (`relationships`, each
//! `dependent_service` depending on its `supporting_service`), as one JSON object or as
//! several documents (one per page). PagerDuty defines a dependency as critical for
//! the dependent's operation, so its dependencies are `critical`.

use serde::Deserialize;
use serde_json::Value;

use super::in_document;
use crate::catalog::{Catalog, CatalogDependency, CatalogService};
use crate::codec::{DecodeError, Format, from_json};
use crate::impact::Criticality;

const F: Format = Format::PagerDutyServices;

#[derive(Deserialize)]
struct Export {
    #[serde(default)]
    services: Vec<Service>,
    #[serde(default)]
    business_services: Vec<Service>,
    #[serde(default)]
    relationships: Vec<Relationship>,
}

#[derive(Deserialize)]
struct Service {
    id: String,
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    escalation_policy: Option<Reference>,
    #[serde(default)]
    teams: Vec<Reference>,
    /// A business service's single team.
    #[serde(default)]
    team: Option<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    id: String,
    #[serde(default)]
    summary: Option<String>,
}

#[derive(Deserialize)]
struct Relationship {
    supporting_service: Reference,
    dependent_service: Reference,
}

fn entity(id: &str) -> String {
    format!("pagerduty:{id}")
}

pub(super) fn read(docs: Vec<Value>) -> Result<Catalog, DecodeError> {
    let mut catalog = Catalog::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let export: Export = from_json(F, doc).map_err(|e| in_document(i, e))?;
        for (j, s) in export.services.iter().chain(&export.business_services).enumerate() {
            if s.id.trim().is_empty() || s.name.trim().is_empty() {
                let list = if j < export.services.len() { "services" } else { "business_services" };
                let at = if j < export.services.len() { j } else { j - export.services.len() };
                return Err(in_document(
                    i,
                    DecodeError::invalid(F, format!("{list}[{at}]"), "id and name must not be empty"),
                ));
            }
            let teams =
                s.teams.iter().chain(&s.team).map(|t| t.summary.clone().unwrap_or_else(|| t.id.clone()));
            catalog.services.push(CatalogService {
                name: s.name.clone(),
                entity: Some(entity(&s.id)),
                kind: s.kind.clone(),
                teams: teams.collect(),
                escalation_policy: s
                    .escalation_policy
                    .as_ref()
                    .map(|p| p.summary.clone().unwrap_or_else(|| p.id.clone())),
                pagerduty_service_id: Some(s.id.clone()),
                ..CatalogService::default()
            });
        }
        for (j, r) in export.relationships.iter().enumerate() {
            if r.supporting_service.id.is_empty() || r.dependent_service.id.is_empty() {
                return Err(in_document(
                    i,
                    DecodeError::invalid(F, format!("relationships[{j}]"), "a service id is empty"),
                ));
            }
            catalog.dependencies.push(CatalogDependency {
                caller: entity(&r.dependent_service.id),
                callee: entity(&r.supporting_service.id),
                criticality: Some(Criticality::Critical),
                via: None,
            });
        }
    }
    Ok(catalog)
}
