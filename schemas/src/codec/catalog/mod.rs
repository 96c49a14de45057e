//! Service catalogs: Backstage entity YAML, a PagerDuty services + dependencies export,
//! and the Devloom catalog file, each read into a [`Catalog`].
//!
//! A file (`devloom catalog import`, `devloom run --catalog`) and a `devloom.catalog`
//! message are read by the same functions; an error names the document and the path in
//! it, and the caller names the file or the message.

mod backstage;
mod pagerduty;

use serde_json::Value;

use super::{DecodeError, Format, from_json};
use crate::catalog::{CATALOG_API_VERSION, CATALOG_KIND, Catalog, CatalogFormat, CatalogSnapshot};
use crate::event::Event;
use crate::time::TimestampNs;

pub use backstage::read_backstage;

/// The wire format of a catalog format.
pub fn format_of(format: CatalogFormat) -> Format {
    match format {
        CatalogFormat::Backstage => Format::BackstageEntities,
        CatalogFormat::Pagerduty => Format::PagerDutyServices,
        CatalogFormat::Devloom => Format::DevloomCatalog,
    }
}

/// Reads one catalog document set of `format` from `text` (YAML, of which JSON is a
/// part). Backstage catalogs spread over several files go through [`read_backstage`].
pub fn read_catalog(format: CatalogFormat, text: &str) -> Result<Catalog, DecodeError> {
    from_documents(format, yaml_documents(format_of(format), text)?)
}

fn from_documents(format: CatalogFormat, docs: Vec<Value>) -> Result<Catalog, DecodeError> {
    match format {
        CatalogFormat::Backstage => backstage::from_documents(vec![docs]).map_err(|(_, e)| e),
        CatalogFormat::Pagerduty => pagerduty::read(docs),
        CatalogFormat::Devloom => read_devloom(docs),
    }
}

/// Every YAML document of `text`, empty ones left out.
pub(crate) fn yaml_documents(format: Format, text: &str) -> Result<Vec<Value>, DecodeError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| DecodeError::invalid(format, "(YAML)", e.to_string().replace('\n', " ")))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// `document N, PATH` for errors in multi-document input (N counts from 1).
pub(crate) fn in_document(index: usize, e: DecodeError) -> DecodeError {
    match e {
        DecodeError::Invalid { format, path, reason } => {
            let path = if path.is_empty() || path == "." { String::new() } else { format!(", {path}") };
            DecodeError::Invalid { format, path: format!("document {}{path}", index + 1), reason }
        }
        other => other,
    }
}

fn read_devloom(docs: Vec<Value>) -> Result<Catalog, DecodeError> {
    const F: Format = Format::DevloomCatalog;
    let mut merged = Catalog::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let catalog: Catalog = from_json(F, doc).map_err(|e| in_document(i, e))?;
        if catalog.api_version != CATALOG_API_VERSION {
            let reason =
                format!("is {:?}; a Devloom catalog says {CATALOG_API_VERSION:?}", catalog.api_version);
            return Err(in_document(i, DecodeError::invalid(F, "apiVersion", reason)));
        }
        if catalog.kind != CATALOG_KIND {
            let reason = format!("is {:?}; a Devloom catalog says {CATALOG_KIND:?}", catalog.kind);
            return Err(in_document(i, DecodeError::invalid(F, "kind", reason)));
        }
        for (j, s) in catalog.services.iter().enumerate() {
            if s.name.trim().is_empty() {
                return Err(in_document(
                    i,
                    DecodeError::invalid(F, format!("services[{j}].name"), "is empty"),
                ));
            }
        }
        for (j, d) in catalog.dependencies.iter().enumerate() {
            for (field, value) in [("caller", &d.caller), ("callee", &d.callee)] {
                if value.trim().is_empty() {
                    let path = format!("dependencies[{j}].{field}");
                    return Err(in_document(i, DecodeError::invalid(F, path, "is empty")));
                }
            }
        }
        merged.extend(catalog);
    }
    Ok(merged)
}

/// The catalog format of a parsed document, by what it must hold.
pub(crate) fn sniff(doc: &Value) -> Option<CatalogFormat> {
    let obj = doc.as_object()?;
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api.starts_with("backstage.io/") {
        Some(CatalogFormat::Backstage)
    } else if api == CATALOG_API_VERSION {
        Some(CatalogFormat::Devloom)
    } else if ["services", "business_services", "relationships"].iter().any(|k| obj.contains_key(*k))
        && !obj.contains_key("apiVersion")
    {
        Some(CatalogFormat::Pagerduty)
    } else {
        None
    }
}

/// A YAML catalog payload (documents of one format) as one snapshot event.
pub(crate) fn decode_yaml(
    payload: &[u8],
    time_ns: Option<TimestampNs>,
    out: &mut Vec<Event>,
) -> Result<Format, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::Unrecognized {
        expect: super::Expect::Catalog,
        detail: format!("not UTF-8 text: {e}"),
        accepted: super::accepted_list(super::Expect::Catalog),
    })?;
    let docs = yaml_documents(Format::DevloomCatalog, text).map_err(|e| match e {
        DecodeError::Invalid { path, reason, .. } => DecodeError::Unrecognized {
            expect: super::Expect::Catalog,
            detail: format!("neither JSON nor YAML: {path} {reason}"),
            accepted: super::accepted_list(super::Expect::Catalog),
        },
        other => other,
    })?;
    let Some(format) = docs.first().and_then(sniff) else {
        return Err(DecodeError::Unrecognized {
            expect: super::Expect::Catalog,
            detail: "YAML whose first document is no Backstage entity, Devloom catalog or PagerDuty export"
                .into(),
            accepted: super::accepted_list(super::Expect::Catalog),
        });
    };
    decode_documents(format, docs, time_ns, out)
}

/// Parsed catalog documents as one snapshot event, its source the format's name until
/// the transport's key names it.
pub(crate) fn decode_documents(
    format: CatalogFormat,
    docs: Vec<Value>,
    time_ns: Option<TimestampNs>,
    out: &mut Vec<Event>,
) -> Result<Format, DecodeError> {
    let catalog = from_documents(format, docs)?;
    out.push(Event::Catalog(CatalogSnapshot {
        source: format.name().to_string(),
        format,
        time_ns: time_ns.unwrap_or(0),
        catalog,
    }));
    Ok(format_of(format))
}

#[cfg(test)]
mod tests;
