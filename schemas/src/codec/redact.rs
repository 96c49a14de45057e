//! Redaction at the door: the values of Kubernetes Secrets (`data`, `stringData`) in a
//! change's specs become short digests when the change is decoded, before it reaches
//! operator state, checkpoints, the archive, any topic or any dead letter. The digest
//! still shows *that* a value changed (a `data` value is digested after base64 decoding,
//! so the same value written as `data` or `stringData` has the same digest).

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::deploy::Deploy;

/// What replaces a spec that names a Secret but cannot be parsed to redact it.
pub const WITHHELD_SPEC: &str = "# withheld by Devloom: this spec names a Kubernetes Secret but is not valid YAML or JSON,\n\
     # so its values could not be redacted\n";

/// The digest shown in place of a Secret value: `sha256:` and 12 hex digits.
pub fn secret_digest(value: &[u8]) -> String {
    let hash = Sha256::digest(value);
    format!("sha256:{}", const_hex::encode(&hash[..6]))
}

/// Redacts the Secret values in both specs of `deploy`.
pub fn redact_deploy(deploy: &mut Deploy) {
    for spec in [&mut deploy.spec_before, &mut deploy.spec_after].into_iter().flatten() {
        if let Some(redacted) = redact_spec(spec) {
            *spec = redacted;
        }
    }
}

/// The spec with every Secret's values replaced by digests (re-written as YAML, one
/// document per object), [`WITHHELD_SPEC`] if it names a Secret but does not parse, or
/// `None` when it holds no Secret and stays as written.
pub fn redact_spec(text: &str) -> Option<String> {
    if !names_secret(text) {
        return None;
    }
    let Ok(mut docs) = serde_saphyr::from_multiple::<Value>(text) else {
        return Some(WITHHELD_SPEC.to_string());
    };
    if !docs.iter_mut().fold(false, |found, doc| redact_objects(doc) | found) {
        // "kind: Secret" inside a string, a comment or a Helm template: nothing to
        // redact structurally, but nothing to trust either.
        return Some(WITHHELD_SPEC.to_string());
    }
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(doc).unwrap_or_default());
    }
    Some(out)
}

/// A rejected payload fit for a dead letter: `None` when it names no Secret (kept
/// byte for byte), else the JSON with every Secret redacted (in objects and in spec
/// strings), or a note in place of a payload that cannot be parsed.
pub fn scrub_payload(payload: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(payload);
    // A structured CloudEvent's `data_base64` may hide one.
    if !names_secret(&text) && !text.contains("\"data_base64\"") {
        return None;
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(payload) else {
        return names_secret(&text).then(|| WITHHELD_SPEC.as_bytes().to_vec());
    };
    let before = value.clone();
    scrub_value(&mut value);
    (value != before).then(|| serde_json::to_vec(&value).unwrap_or_default())
}

fn scrub_value(value: &mut Value) {
    if is_secret(value) {
        redact_objects(value);
        return;
    }
    if let Some(Value::String(encoded)) = value.get_mut("data_base64")
        && let Ok(data) = BASE64_STANDARD.decode(encoded.as_bytes())
        && let Some(scrubbed) = scrub_payload(&data)
    {
        *encoded = BASE64_STANDARD.encode(scrubbed);
    }
    match value {
        Value::String(s) => {
            if let Some(redacted) = redact_spec(s) {
                *s = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        Value::Object(map) => map.values_mut().for_each(scrub_value),
        _ => {}
    }
}

fn is_secret(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Redacts every Secret in `doc` (itself, or the `items` of a `List`); true if any.
fn redact_objects(doc: &mut Value) -> bool {
    if is_secret(doc) {
        let Value::Object(map) = doc else { return false };
        for (field, base64) in [("data", true), ("stringData", false)] {
            if let Some(Value::Object(values)) = map.get_mut(field) {
                for v in values.values_mut() {
                    *v = Value::String(digest_value(v, base64));
                }
            }
        }
        return true;
    }
    match doc.get_mut("items") {
        Some(Value::Array(items)) => items.iter_mut().fold(false, |found, item| redact_objects(item) | found),
        _ => false,
    }
}

fn digest_value(value: &Value, base64: bool) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bytes = if base64 {
        BASE64_STANDARD.decode(text.trim().as_bytes()).unwrap_or_else(|_| text.clone().into_bytes())
    } else {
        text.into_bytes()
    };
    secret_digest(&bytes)
}

/// Whether `text` declares a Secret: `kind: Secret` (YAML) or `"kind": "Secret"` (JSON,
/// also inside an escaped JSON string).
fn names_secret(text: &str) -> bool {
    text.match_indices("Secret").any(|(at, _)| {
        let before = text[..at].trim_end_matches(['"', '\\', ' ', '\'']);
        let before = before.strip_suffix(':').unwrap_or("").trim_end_matches(['"', '\\', ' ']);
        before.ends_with("kind")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: payments-config\ndata:\n  LIMIT: \"10\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: payments-db\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\nstringData:\n  token: hunter2\n";

    #[test]
    fn secret_values_become_digests_and_other_objects_stay() {
        let out = redact_spec(BUNDLE).unwrap();
        assert!(!out.contains("hunter2") && !out.contains("aHVudGVyMg=="), "{out}");
        // The same value as base64 `data` or plain `stringData`: the same digest.
        let digest = secret_digest(b"hunter2");
        assert_eq!(out.matches(&digest).count(), 2, "{out}");
        assert!(out.contains("LIMIT: \"10\"") && out.contains("name: payments-db"), "{out}");
    }

    #[test]
    fn specs_without_a_secret_are_kept_as_written() {
        assert_eq!(redact_spec("replicas: 3\n# a comment mentioning Secrets\n"), None);
        assert_eq!(redact_spec("[server]\nSecretKeyRef = \"x\"\n"), None);
    }

    #[test]
    fn a_secret_that_cannot_be_parsed_is_withheld() {
        let broken = "kind: Secret\nstringData:\n  token: [hunter2\n";
        assert_eq!(redact_spec(broken).as_deref(), Some(WITHHELD_SPEC));
    }

    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        let mut bomb = String::from("kind: Secret\na: &a [x, x, x, x, x, x, x, x, x, x]\n");
        // Eleven levels of ten aliases each: 10^12 scalars if expanded.
        for i in 1..12u8 {
            let (name, prev) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        assert_eq!(redact_spec(&bomb).as_deref(), Some(WITHHELD_SPEC));
    }

    #[test]
    fn secrets_in_lists_and_json_are_redacted() {
        let list = r#"{"kind":"List","items":[{"kind":"Secret","data":{"k":"aHVudGVyMg=="}}]}"#;
        let out = redact_spec(list).unwrap();
        assert!(!out.contains("aHVudGVyMg==") && out.contains(&secret_digest(b"hunter2")), "{out}");
    }

    #[test]
    fn dead_letter_payloads_are_scrubbed_in_place() {
        let payload = serde_json::json!({"service": "payments", "time": "not a time", "spec_after": BUNDLE});
        let bytes = serde_json::to_vec(&payload).unwrap();
        let scrubbed = String::from_utf8(scrub_payload(&bytes).unwrap()).unwrap();
        assert!(!scrubbed.contains("hunter2") && !scrubbed.contains("aHVudGVyMg=="), "{scrubbed}");
        assert!(scrubbed.contains("not a time"), "the rest stays for the reader: {scrubbed}");
        assert_eq!(scrub_payload(br#"{"service":"payments"}"#), None);
        let garbage = b"{\"kind\": \"Secret\", \"data\": {\"k\": \"aHVudGVyMg==\"";
        assert_eq!(scrub_payload(garbage).unwrap(), WITHHELD_SPEC.as_bytes());
    }
}
