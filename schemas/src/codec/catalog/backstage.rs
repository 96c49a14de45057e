//! Backstage entity YAML (`catalog-info.yaml`): Components and Resources become catalog
//! services, `spec.dependsOn` / `spec.dependencyOf` and `spec.consumesApis` (to the
//! API's providers, by `spec.providesApis`) become dependencies.
//!
//! Entity references are `[kind:][namespace/]name`, resolved as Backstage does: the
//! namespace defaults to the referring entity's, the kind to the field's (`spec.owner`:
//! `group`, `spec.system`: `system`, the API fields: `api`). `spec.dependsOn` has no
//! default kind; a reference without one names the Component, else the Resource, of
//! that name.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::{in_document, yaml_documents};
use crate::catalog::{Catalog, CatalogDependency, CatalogService, SERVICE_NAME_ANNOTATION};
use crate::codec::{DecodeError, Format, from_json};

const F: Format = Format::BackstageEntities;
/// Backstage's PagerDuty plugin annotations.
const PD_SERVICE_ID: &str = "pagerduty.com/service-id";
const PD_INTEGRATION_KEY: &str = "pagerduty.com/integration-key";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entity {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    lifecycle: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    dependency_of: Vec<String>,
    #[serde(default)]
    consumes_apis: Vec<String>,
    #[serde(default)]
    provides_apis: Vec<String>,
}

/// A parsed reference: kind (lower case) if given, namespace, name.
struct Ref {
    kind: Option<String>,
    namespace: String,
    name: String,
}

impl Ref {
    fn parse(text: &str, namespace: &str) -> Result<Self, String> {
        let text = text.trim();
        let (kind, rest) = match text.split_once(':') {
            Some((k, rest)) => (Some(k.to_ascii_lowercase()), rest),
            None => (None, text),
        };
        let (ns, name) = match rest.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name),
            None => (namespace.to_string(), rest),
        };
        if name.is_empty() || ns.is_empty() || kind.as_deref() == Some("") || name.contains([':', '/']) {
            return Err(format!("{text:?} is not an entity reference ([kind:][namespace/]name)"));
        }
        Ok(Self { kind, namespace: ns.to_ascii_lowercase(), name: name.to_string() })
    }

    fn with_kind(&self, kind: &str) -> String {
        format!("{}:{}/{}", self.kind.as_deref().unwrap_or(kind), self.namespace, self.name)
    }
}

/// One entity as read, with where it came from for errors.
struct Read {
    file: usize,
    doc: usize,
    entity: Entity,
    namespace: String,
}

impl Read {
    fn err(&self, path: String, reason: impl std::fmt::Display) -> (usize, DecodeError) {
        (self.file, in_document(self.doc, DecodeError::invalid(F, path, reason)))
    }

    fn reference(&self, field: &str, i: Option<usize>, text: &str) -> Result<Ref, (usize, DecodeError)> {
        let path = match i {
            Some(i) => format!("spec.{field}[{i}]"),
            None => format!("spec.{field}"),
        };
        Ref::parse(text, &self.namespace).map_err(|reason| self.err(path, reason))
    }

    fn own_ref(&self) -> String {
        format!("{}:{}/{}", self.entity.kind.to_ascii_lowercase(), self.namespace, self.entity.metadata.name)
    }
}

/// Reads the entity documents of every text (one per file) into one catalog; an error
/// comes with the index of the text it is in.
pub fn read_backstage(texts: &[&str]) -> Result<Catalog, (usize, DecodeError)> {
    let mut files = Vec::new();
    for (file, text) in texts.iter().enumerate() {
        files.push(yaml_documents(F, text).map_err(|e| (file, e))?);
    }
    from_documents(files)
}

/// The entity documents of each file, parsed, into one catalog.
pub(super) fn from_documents(files: Vec<Vec<Value>>) -> Result<Catalog, (usize, DecodeError)> {
    let mut entities = Vec::new();
    for (file, docs) in files.into_iter().enumerate() {
        for (doc, value) in docs.into_iter().enumerate() {
            entities.push(entity(file, doc, value)?);
        }
    }
    // Which references exist, for kind-less dependsOn and for consumed APIs' providers.
    let known: BTreeSet<String> = entities.iter().map(Read::own_ref).collect();
    let mut providers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in entities.iter().filter(|r| is_service(&r.entity.kind)) {
        for (i, api) in r.entity.spec.provides_apis.iter().enumerate() {
            let api = r.reference("providesApis", Some(i), api)?.with_kind("api");
            providers.entry(api).or_default().push(r.own_ref());
        }
    }
    let mut catalog = Catalog::default();
    for r in &entities {
        if !is_service(&r.entity.kind) {
            continue;
        }
        let me = r.own_ref();
        let (spec, meta) = (&r.entity.spec, &r.entity.metadata);
        let annotation = |key: &str| meta.annotations.get(key).filter(|v| !v.trim().is_empty()).cloned();
        catalog.services.push(CatalogService {
            name: meta.name.clone(),
            entity: Some(me.clone()),
            service_name: annotation(SERVICE_NAME_ANNOTATION),
            kind: Some(r.entity.kind.clone()),
            owner: spec
                .owner
                .as_deref()
                .map(|o| r.reference("owner", None, o))
                .transpose()?
                .map(|o| o.with_kind("group")),
            teams: Vec::new(),
            system: spec
                .system
                .as_deref()
                .map(|s| r.reference("system", None, s))
                .transpose()?
                .map(|s| s.with_kind("system")),
            lifecycle: spec.lifecycle.clone(),
            escalation_policy: None,
            pagerduty_service_id: annotation(PD_SERVICE_ID),
            pagerduty_integration_key: annotation(PD_INTEGRATION_KEY),
        });
        let dependency = |text: &str, field: &str, i: usize| -> Result<String, (usize, DecodeError)> {
            let target = r.reference(field, Some(i), text)?;
            Ok(match target.kind {
                Some(_) => target.with_kind(""),
                None if known.contains(&target.with_kind("component")) => target.with_kind("component"),
                None if known.contains(&target.with_kind("resource")) => target.with_kind("resource"),
                None => target.with_kind("component"),
            })
        };
        for (i, d) in spec.depends_on.iter().enumerate() {
            let callee = dependency(d, "dependsOn", i)?;
            catalog.dependencies.push(CatalogDependency {
                caller: me.clone(),
                callee,
                criticality: None,
                via: None,
            });
        }
        for (i, d) in spec.dependency_of.iter().enumerate() {
            let caller = dependency(d, "dependencyOf", i)?;
            catalog.dependencies.push(CatalogDependency {
                caller,
                callee: me.clone(),
                criticality: None,
                via: None,
            });
        }
        for (i, api) in spec.consumes_apis.iter().enumerate() {
            let api = r.reference("consumesApis", Some(i), api)?.with_kind("api");
            for provider in providers.get(&api).into_iter().flatten().filter(|p| **p != me) {
                catalog.dependencies.push(CatalogDependency {
                    caller: me.clone(),
                    callee: provider.clone(),
                    criticality: None,
                    via: Some(api.clone()),
                });
            }
        }
    }
    Ok(catalog)
}

/// Kinds that run (or are run on) and so can meet a traced service.
fn is_service(kind: &str) -> bool {
    kind.eq_ignore_ascii_case("component") || kind.eq_ignore_ascii_case("resource")
}

fn entity(file: usize, doc: usize, value: Value) -> Result<Read, (usize, DecodeError)> {
    let at = |e| (file, in_document(doc, e));
    if !value.is_object() {
        return Err(at(DecodeError::invalid(F, "", "a document is not a mapping (an entity)")));
    }
    let entity: Entity = from_json(F, value).map_err(at)?;
    if !entity.api_version.starts_with("backstage.io/") {
        let reason = format!("is {:?}; Backstage entities say backstage.io/v1alpha1", entity.api_version);
        return Err(at(DecodeError::invalid(F, "apiVersion", reason)));
    }
    if entity.metadata.name.trim().is_empty() {
        return Err(at(DecodeError::invalid(F, "metadata.name", "is empty")));
    }
    let namespace =
        entity.metadata.namespace.clone().unwrap_or_else(|| "default".into()).to_ascii_lowercase();
    Ok(Read { file, doc, entity, namespace })
}
