//! Reading a spec: its format (from the file name, else from its content), its parsed
//! value, and the key-level summary between two values (`replicas: 5 → 3`).

use std::collections::BTreeMap;

use devloom_schemas::{KeyChange, SpecFormat};
use serde_json::Value;

/// A spec as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// Kubernetes objects (the items of a `List` flattened in).
    Kubernetes(Vec<Value>),
    /// A structured file (YAML, JSON, TOML, properties) and its value.
    Structured(SpecFormat, Value),
    /// Plain text.
    Text,
}

impl Parsed {
    /// The format it was read as.
    pub fn format(&self) -> SpecFormat {
        match self {
            Self::Kubernetes(_) => SpecFormat::Kubernetes,
            Self::Structured(f, _) => *f,
            Self::Text => SpecFormat::Text,
        }
    }
}

/// Reads `text`, named `path` when the source gave a file name.
pub fn parse(path: Option<&str>, text: &str) -> Parsed {
    let extension = path.and_then(|p| p.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("json") => json(text).unwrap_or(Parsed::Text),
        Some("yaml" | "yml") => yaml(text).unwrap_or(Parsed::Text),
        Some("toml") => toml(text).unwrap_or(Parsed::Text),
        Some("env" | "properties") => properties(text).unwrap_or(Parsed::Text),
        _ => sniff(text),
    }
}

fn sniff(text: &str) -> Parsed {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Some(parsed) = json(text)
    {
        return parsed;
    }
    // Kubernetes before TOML; a YAML mapping after it (`a = 1` is a YAML string).
    let yaml = yaml(text);
    if let Some(k8s @ Parsed::Kubernetes(_)) = yaml {
        return k8s;
    }
    toml(text).or(yaml).or_else(|| properties(text)).unwrap_or(Parsed::Text)
}

fn json(text: &str) -> Option<Parsed> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some(kubernetes(std::slice::from_ref(&value)).unwrap_or(Parsed::Structured(SpecFormat::Json, value)))
}

fn yaml(text: &str) -> Option<Parsed> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).ok()?;
    if let Some(k8s) = kubernetes(&docs) {
        return Some(k8s);
    }
    match <[Value; 1]>::try_from(docs) {
        Ok([value @ Value::Object(_)]) => Some(Parsed::Structured(SpecFormat::Yaml, value)),
        _ => None,
    }
}

fn toml(text: &str) -> Option<Parsed> {
    let value: Value = toml::from_str(text).ok()?;
    (value.as_object().is_some_and(|m| !m.is_empty())).then_some(Parsed::Structured(SpecFormat::Toml, value))
}

/// `.env` / `.properties`: `KEY=value` or `key: value` lines, `#`/`!` comments,
/// `export KEY=value`, quoted values.
fn properties(text: &str) -> Option<Parsed> {
    let mut map = serde_json::Map::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=').or_else(|| line.split_once(':'))?;
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        map.insert(key.trim().to_string(), Value::String(unquoted.to_string()));
    }
    (!map.is_empty()).then_some(Parsed::Structured(SpecFormat::Properties, Value::Object(map)))
}

/// Kubernetes objects, when every document is one (`apiVersion` and `kind`).
fn kubernetes(docs: &[Value]) -> Option<Parsed> {
    let is_object = |v: &Value| {
        v.get("apiVersion").is_some_and(Value::is_string) && v.get("kind").is_some_and(Value::is_string)
    };
    if docs.is_empty() || !docs.iter().all(is_object) {
        return None;
    }
    let mut objects = Vec::new();
    for doc in docs {
        match doc.get("items") {
            Some(Value::Array(items)) if doc["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                objects.extend(items.iter().filter(|i| is_object(i)).cloned());
            }
            _ => objects.push(doc.clone()),
        }
    }
    Some(Parsed::Kubernetes(objects))
}

/// For multi-document Kubernetes bundles, the objects of the documents that differ:
/// a document whose text is in both bundles is unchanged and never parsed (parsing is
/// most of the cost of planning). `None` when either text is not such a bundle.
pub fn changed_objects(now: &str, before: &str) -> Option<(Vec<Value>, Vec<Value>)> {
    let (now_docs, before_docs) = (documents(now), documents(before));
    if now_docs.len() < 2 && before_docs.len() < 2 {
        return None;
    }
    let mut unmatched: BTreeMap<&str, usize> = BTreeMap::new();
    for doc in &before_docs {
        *unmatched.entry(doc).or_default() += 1;
    }
    // Takes one of `doc` from the documents of `before` not yet matched.
    let mut take = |doc: &&str| match unmatched.get_mut(*doc) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    };
    let only_now: Vec<&str> = now_docs.iter().copied().filter(|doc| !take(doc)).collect();
    // What is left unmatched of `before`, in its order.
    let only_before: Vec<&str> = before_docs.iter().copied().filter(|doc| take(doc)).collect();
    let objects = |docs: &[&str]| match docs {
        [] => Some(Vec::new()),
        _ => match yaml(&docs.join("\n---\n"))? {
            Parsed::Kubernetes(objects) => Some(objects),
            _ => None,
        },
    };
    Some((objects(&only_now)?, objects(&only_before)?))
}

/// The documents of a YAML stream, split at `---` lines (which end any block scalar
/// too), without blank lines around them, and without empty ones.
fn documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&text[start..at]);
            start = at + line.len();
        }
        at += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter()
        .map(|d| d.trim_start_matches(['\n', '\r']).trim_end())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Every leaf of `value` by dotted path; list items are named by their `name` when they
/// all have one (`containers[payments].env[FEATURE_X].value`), else by position.
pub fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let names: Option<Vec<&str>> =
                items.iter().map(|i| i.get("name").and_then(Value::as_str)).collect();
            for (i, item) in items.iter().enumerate() {
                let label = names.as_ref().map_or_else(|| i.to_string(), |n| n[i].to_string());
                let path = format!("{prefix}[{label}]");
                match item {
                    // The name is in the path already.
                    Value::Object(fields) if names.is_some() && fields.len() > 1 => {
                        for (k, v) in fields.iter().filter(|(k, _)| *k != "name") {
                            flatten(&format!("{path}.{k}"), v, out);
                        }
                    }
                    _ => flatten(&path, item, out),
                }
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The keys whose values differ from `current` to `target`, in key order.
pub fn key_changes(prefix: &str, current: &Value, target: &Value) -> Vec<KeyChange> {
    let (mut now, mut then) = (BTreeMap::new(), BTreeMap::new());
    flatten(prefix, current, &mut now);
    flatten(prefix, target, &mut then);
    let mut keys: Vec<&String> = now.keys().chain(then.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| now.get(*k) != then.get(*k))
        .map(|k| KeyChange { key: k.clone(), before: now.get(k).cloned(), after: then.get(k).cloned() })
        .collect()
}

/// `value` as YAML, keys sorted (what object and pod-template diffs compare).
pub fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn formats_come_from_the_file_name_or_the_content() {
        assert_eq!(parse(Some("app.toml"), "replicas = 3\n").format(), SpecFormat::Toml);
        assert_eq!(parse(None, "[server]\nport = 8080\n").format(), SpecFormat::Toml);
        assert_eq!(parse(None, "{\"replicas\": 3}").format(), SpecFormat::Json);
        assert_eq!(parse(None, "replicas: 3\nimage: a\n").format(), SpecFormat::Yaml);
        assert_eq!(parse(None, "FEATURE_X=on\nLIMIT=two words\n").format(), SpecFormat::Properties);
        assert_eq!(parse(Some(".env"), "export A=\"1\"\n").format(), SpecFormat::Properties);
        assert_eq!(
            parse(None, "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\n").format(),
            SpecFormat::Kubernetes
        );
        assert_eq!(parse(None, "just some words").format(), SpecFormat::Text);
    }

    #[test]
    fn only_documents_that_differ_are_parsed() {
        let cm = |v: u32| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{v}\ndata:\n  k: \"{v}\"\n")
        };
        let now = format!("---\n{}---\n{}---\n{}", cm(1), cm(2), cm(3));
        let before = format!("{}---\n{}\n---\n{}", cm(1), cm(2), cm(4));
        let (a, b) = changed_objects(&now, &before).unwrap();
        assert_eq!((a.len(), b.len()), (1, 1));
        assert_eq!(
            (a[0]["metadata"]["name"].as_str(), b[0]["metadata"]["name"].as_str()),
            (Some("c3"), Some("c4"))
        );
        assert_eq!(changed_objects("a: 1\n", "a: 2\n"), None, "one document: nothing to skip");
        assert_eq!(changed_objects("a: 1\n---\nb: 2\n", "a: 1\n---\nb: 3\n"), None, "not Kubernetes");
    }

    #[test]
    fn key_changes_name_list_items_and_say_what_is_removed() {
        let now = json!({"replicas": 5, "env": [{"name": "FEATURE_X", "value": "on"}, {"name": "A", "value": "1"}]});
        let then = json!({"replicas": 3, "env": [{"name": "A", "value": "1"}]});
        let text: Vec<String> = key_changes("", &now, &then).iter().map(ToString::to_string).collect();
        assert_eq!(text, ["env[FEATURE_X].value: removed", "replicas: 5 → 3"]);
    }
}
