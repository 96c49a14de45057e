//! Service catalogs: what teams declare about their services (owners, on-call, which
//! service depends on which, and how much), normalized from Backstage, PagerDuty and
//! Devloom's own catalog file, and the reports that hold it against live traffic.
//!
//! [`Catalog`] is also the Devloom catalog file (YAML or JSON): a hand-written one
//! usually carries only what the other catalogs lack (criticality, name mappings, extra
//! edges); `devloom catalog import` prints any catalog in this shape.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::impact::Criticality;
use crate::time::TimestampNs;

/// `apiVersion` of a Devloom catalog file.
pub const CATALOG_API_VERSION: &str = "devloom.dev/v1";
/// `kind` of a Devloom catalog file.
pub const CATALOG_KIND: &str = "Catalog";
/// The Backstage annotation (and Devloom catalog key) that names the traced
/// `service.name` of an entity whose catalog name differs.
pub const SERVICE_NAME_ANNOTATION: &str = "devloom.dev/service-name";

/// Which catalog a snapshot was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatalogFormat {
    /// PagerDuty REST API export.
    Pagerduty,
    /// Backstage entity YAML.
    Backstage,
    /// Devloom catalog file.
    Devloom,
}

impl CatalogFormat {
    /// The source name a snapshot of this format takes when none is given.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pagerduty => "pagerduty",
            Self::Backstage => "backstage",
            Self::Devloom => "devloom",
        }
    }
}

/// One service (or resource, or PagerDuty business service) a catalog lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogService {
    /// Its name in the catalog (Backstage `metadata.name`, PagerDuty `name`).
    pub name: String,
    /// Its identity in the catalog: a Backstage entity reference
    /// (`component:default/payments`) or `pagerduty:` and the PagerDuty id; what
    /// dependencies name it by. Defaults to `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The traced `service.name`, when the catalog says (the `devloom.dev/service-name`
    /// annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Backstage kind or PagerDuty type (`Component`, `Resource`, `service`,
    /// `business_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Owner (Backstage `spec.owner`, resolved to an entity reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Teams (PagerDuty `teams[].summary`).
    #[serde(default)]
    pub teams: Vec<String>,
    /// Backstage `spec.system`, resolved to an entity reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Backstage `spec.lifecycle` (`production`, `experimental`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// PagerDuty escalation policy (`escalation_policy.summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<String>,
    /// PagerDuty service id (`id`, or Backstage's `pagerduty.com/service-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty_service_id: Option<String>,
    /// PagerDuty Events v2 integration key (Backstage's `pagerduty.com/integration-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty_integration_key: Option<String>,
}

impl CatalogService {
    /// What dependencies name it by: `entity`, else `name`.
    pub fn key(&self) -> &str {
        self.entity.as_deref().unwrap_or(&self.name)
    }
}

/// A dependency a catalog declares: `caller` needs `callee`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogDependency {
    /// The dependent service: a service's `entity` or `name`, or a traced name.
    pub caller: String,
    /// The service it depends on, named the same ways.
    pub callee: String,
    /// `critical` (the caller fails with it) or `optional` (the caller degrades
    /// gracefully); absent: not declared, inferred from traffic as for observed edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criticality: Option<Criticality>,
    /// The Backstage API it goes through, when declared through `consumesApis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// A rewrite of a catalog name into a traced `service.name`, tried after the exact name
/// matched no traced service. Each part that is set applies, in the order listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameRule {
    /// Removed from the start of the name when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// Removed from the end of the name when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_suffix: Option<String>,
    /// Put in front of the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_prefix: Option<String>,
    /// Lower-cased.
    #[serde(default)]
    pub lowercase: bool,
}

impl NameRule {
    /// The rewritten name; `None` when a `strip_*` part is set and does not match.
    pub fn apply(&self, name: &str) -> Option<String> {
        let mut n = name;
        if let Some(p) = &self.strip_prefix {
            n = n.strip_prefix(p.as_str())?;
        }
        if let Some(s) = &self.strip_suffix {
            n = n.strip_suffix(s.as_str())?;
        }
        let mut out = format!("{}{n}", self.add_prefix.as_deref().unwrap_or(""));
        if self.lowercase {
            out = out.to_lowercase();
        }
        (!out.is_empty()).then_some(out)
    }
}

/// A whole catalog: services, dependencies and how catalog names meet traced names.
/// Also the Devloom catalog file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Catalog {
    /// `devloom.dev/v1` ([`CATALOG_API_VERSION`]).
    pub api_version: String,
    /// `Catalog` ([`CATALOG_KIND`]).
    pub kind: String,
    /// The services.
    #[serde(default)]
    pub services: Vec<CatalogService>,
    /// Declared dependencies.
    #[serde(default)]
    pub dependencies: Vec<CatalogDependency>,
    /// Catalog name or entity reference → traced `service.name`, for names no rule
    /// derives.
    #[serde(default)]
    pub names: std::collections::BTreeMap<String, String>,
    /// Rewrites tried, in order, when a catalog name is not itself traced.
    #[serde(default)]
    pub rules: Vec<NameRule>,
}

impl Catalog {
    /// Adds everything `other` lists (its names replacing equal ones).
    pub fn extend(&mut self, other: Catalog) {
        self.services.extend(other.services);
        self.dependencies.extend(other.dependencies);
        self.names.extend(other.names);
        self.rules.extend(other.rules);
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            api_version: CATALOG_API_VERSION.into(),
            kind: CATALOG_KIND.into(),
            services: Vec::new(),
            dependencies: Vec::new(),
            names: Default::default(),
            rules: Vec::new(),
        }
    }
}

/// A full catalog from one source; a newer snapshot of the same source replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CatalogSnapshot {
    /// The source: the `devloom.catalog` message key, `--source`, or the format's name.
    pub source: String,
    /// What it was read from.
    pub format: CatalogFormat,
    /// When it was taken (the message timestamp, or when it was read), ns since epoch.
    pub time_ns: TimestampNs,
    /// Its content.
    pub catalog: Catalog,
}

/// A catalog service that meets no traced service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnmatchedEntity {
    /// The snapshot's source.
    pub source: String,
    /// Its catalog identity.
    pub entity: String,
    /// Its kind, when the catalog says.
    pub kind: Option<String>,
    /// The traced name it was looked for under.
    pub looked_for: String,
}

/// A declared or observed edge, in traced names, with its traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DriftEdge {
    /// Calling service.
    pub caller: String,
    /// Called service.
    pub callee: String,
    /// Declared criticality, when declared.
    pub criticality: Option<Criticality>,
    /// Calls in the baseline window.
    pub calls: u64,
    /// Calls per second over the baseline window.
    pub calls_per_s: f64,
}

/// `devloom catalog check` / `GET /v1/catalog`: the catalog held against the traced
/// services, and drift both ways.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CatalogReport {
    /// Watermark of the graph it was computed on (RFC 3339); absent before any event.
    pub as_of: Option<String>,
    /// Sources in force, with their snapshot times (RFC 3339).
    pub sources: Vec<(String, String)>,
    /// Catalog services matched to a traced service, as `catalog identity → service.name`.
    pub matched: Vec<(String, String)>,
    /// Catalog services no traced service matched.
    pub unmatched_entities: Vec<UnmatchedEntity>,
    /// Traced services (not virtual nodes) no catalog service matched.
    pub untracked_services: Vec<String>,
    /// Declared edges with no call in the baseline window.
    pub declared_not_observed: Vec<DriftEdge>,
    /// Observed edges no catalog declares, with their traffic.
    pub observed_not_declared: Vec<DriftEdge>,
}
