//! Kubernetes bundles: object by object, what a rollback reverts and what it does not.
//!
//! `kubectl rollout undo` restores a workload's **pod template** (`spec.template`) and
//! nothing else: replicas, strategy, ConfigMaps, Secrets, Services stay as the deploy
//! left them. `kubectl apply` of a previous manifest restores that object and deletes
//! nothing. Helm, Argo CD and a Git revert restore every object of the release.

use std::collections::BTreeMap;

use devloom_schemas::{FileDiff, KeyChange, ObjectChange, SpecFormat};
use serde_json::Value;

use super::spec::{key_changes, to_yaml};
use super::text_diff::{Limits, file_diff};

/// Kinds `kubectl rollout undo` works on.
const WORKLOADS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];
/// The annotation holding a Deployment's rollout revision (`--to-revision`).
const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// A workload whose pod template the remediation restores.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, when set.
    pub namespace: Option<String>,
    /// The rollout revision `kubectl rollout undo --to-revision` returns to, when the
    /// previous manifest of a Deployment carries it (else its previous manifest is in
    /// [`ObjectsPlan::previous`], to apply).
    pub revision: Option<String>,
}

/// What a remediation of a bundle shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectsPlan {
    /// Pod templates, and with a whole-release rollback every other changed object.
    pub files: Vec<FileDiff>,
    /// Objects the command does not revert.
    pub not_reverted: Vec<ObjectChange>,
    /// Workloads whose pod template changed.
    pub workloads: Vec<Workload>,
    /// Objects as they were before the deploy, for `kubectl apply`: workloads without a
    /// revision to undo to, and every changed object when no workload changed.
    pub previous: Vec<Previous>,
    /// The Helm release the objects belong to, if any.
    pub helm: Option<HelmRelease>,
}

/// A Helm release, from the annotations Helm writes on every object it manages.
#[derive(Clone, Debug, PartialEq)]
pub struct HelmRelease {
    /// `meta.helm.sh/release-name`.
    pub name: String,
    /// `meta.helm.sh/release-namespace`.
    pub namespace: Option<String>,
}

/// An object as it was before the deploy.
#[derive(Clone, Debug, PartialEq)]
pub struct Previous {
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, when set.
    pub namespace: Option<String>,
    /// The object as YAML.
    pub manifest: String,
}

/// The Helm release the objects belong to, if any.
pub fn helm_release(objects: &[Value]) -> Option<HelmRelease> {
    objects.iter().find_map(|o| {
        Some(HelmRelease {
            name: annotation(o, "meta.helm.sh/release-name")?.to_string(),
            namespace: annotation(o, "meta.helm.sh/release-namespace").map(String::from),
        })
    })
}

type Id = (String, String, String);

/// What the remediation's command restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reverts {
    /// Every object of the release, deleting what the deploy added (Helm, Argo CD, Git).
    Release,
    /// `kubectl`: `rollout undo` restores a Deployment's pod template when the previous
    /// manifest names its revision; `kubectl apply` of the previous manifests restores
    /// the other changed workloads, or — when no workload changed — every changed object
    /// (but deletes nothing the deploy added).
    Kubectl,
}

/// Plans the way from `current` back to `target`.
pub fn plan(current: &[Value], target: &[Value], reverts: Reverts, limits: Limits) -> ObjectsPlan {
    let mut plan = ObjectsPlan::default();
    let (now, then) = (by_id(current), by_id(target));
    let mut ids: Vec<&Id> = now.keys().chain(then.keys()).collect();
    ids.sort();
    ids.dedup();
    let template_changed = |id: &Id| {
        WORKLOADS.contains(&id.0.as_str())
            && matches!((now.get(id), then.get(id)), (Some(c), Some(t)) if c["spec"]["template"] != t["spec"]["template"])
    };
    // With a workload to roll back, other objects stay as the deploy left them.
    let apply_all = reverts == Reverts::Kubectl && !ids.iter().any(|id| template_changed(id));
    for id in ids {
        let (kind, namespace, name) = id;
        let namespace = (!namespace.is_empty()).then(|| namespace.clone());
        let label = format!("{kind}/{name}");
        let (c, t) = (now.get(id), then.get(id));
        if c == t {
            continue;
        }
        let diff = |c: Option<&Value>, t: Option<&Value>, path: &str, prefix: &str| {
            let (c, t) = (c.unwrap_or(&Value::Null), t.unwrap_or(&Value::Null));
            let keys = key_changes(prefix, c, t);
            file_diff(path, SpecFormat::Kubernetes, &yaml_or_empty(c), &yaml_or_empty(t), keys, limits)
        };
        let apply = |plan: &mut ObjectsPlan, t: &Value| {
            plan.previous.push(Previous {
                kind: kind.clone(),
                name: name.clone(),
                namespace: namespace.clone(),
                manifest: to_yaml(t),
            });
        };
        let revision = (kind == "Deployment")
            .then(|| {
                target.iter().find(|o| &identity(o) == id).and_then(|o| annotation(o, REVISION_ANNOTATION))
            })
            .flatten();
        match (c, t) {
            (Some(c), Some(t)) if reverts == Reverts::Kubectl && template_changed(id) => {
                let (c_tpl, t_tpl) = (&c["spec"]["template"], &t["spec"]["template"]);
                plan.files.push(diff(
                    Some(c_tpl),
                    Some(t_tpl),
                    &format!("{label} spec.template"),
                    "spec.template",
                ));
                let (c_rest, t_rest) = (without_template(c), without_template(t));
                plan.workloads.push(Workload {
                    kind: kind.clone(),
                    name: name.clone(),
                    namespace: namespace.clone(),
                    revision: revision.map(String::from),
                });
                if revision.is_none() {
                    // No revision to undo to: the previous manifest is applied whole.
                    apply(&mut plan, t);
                    if c_rest != t_rest {
                        plan.files.push(diff(Some(&c_rest), Some(&t_rest), &label, ""));
                    }
                } else if c_rest != t_rest {
                    let keys = key_changes("", &c_rest, &t_rest);
                    let note = format!(
                        "{kind} {name}: {} changed in this deploy and will NOT be reverted: `kubectl rollout undo` restores the pod template only",
                        list_keys(&keys)
                    );
                    plan.not_reverted.push(object_change(id, keys, note));
                }
            }
            (Some(c), None) if reverts == Reverts::Kubectl => {
                let note = format!(
                    "{kind} {name} was added in this deploy and will NOT be removed by the rollback (`kubectl delete {}/{name}` if it should go)",
                    kind.to_ascii_lowercase()
                );
                plan.not_reverted.push(object_change(id, key_changes("", c, &Value::Null), note));
            }
            (c, Some(t)) if apply_all => {
                apply(&mut plan, t);
                plan.files.push(diff(c, Some(t), &label, ""));
            }
            (c, t) if reverts == Reverts::Release => {
                let path = match (c, t) {
                    (Some(_), None) => format!("{label} (added in this deploy: removed by the rollback)"),
                    (None, Some(_)) => format!("{label} (deleted in this deploy: restored by the rollback)"),
                    _ => label.clone(),
                };
                plan.files.push(diff(c, t, &path, ""));
            }
            (Some(c), Some(t)) => {
                let keys = key_changes("", c, t);
                let count = keys.len();
                let note = format!(
                    "{kind} {name} changed in this deploy ({count} key{}) and will NOT be reverted by the rollback",
                    if count == 1 { "" } else { "s" }
                );
                plan.not_reverted.push(object_change(id, keys, note));
            }
            (None, Some(t)) => {
                let note = format!(
                    "{kind} {name} was deleted in this deploy and will NOT be recreated by the rollback"
                );
                plan.not_reverted.push(object_change(id, key_changes("", &Value::Null, t), note));
            }
            (_, None) => {}
        }
    }
    plan
}

fn object_change((kind, namespace, name): &Id, keys: Vec<KeyChange>, note: String) -> ObjectChange {
    ObjectChange {
        kind: kind.clone(),
        name: name.clone(),
        namespace: (!namespace.is_empty()).then(|| namespace.clone()),
        keys,
        note,
    }
}

fn list_keys(keys: &[KeyChange]) -> String {
    let mut names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).take(3).collect();
    if keys.len() > 3 {
        names.push("…");
    }
    names.join(", ")
}

fn yaml_or_empty(value: &Value) -> String {
    if value.is_null() { String::new() } else { to_yaml(value) }
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

fn identity(object: &Value) -> Id {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let meta = &object["metadata"];
    (text(&object["kind"]), text(&meta["namespace"]), text(&meta["name"]))
}

/// The objects by identity, without what the cluster writes (status, resource
/// versions, managed fields, the last-applied and revision annotations).
fn by_id(objects: &[Value]) -> BTreeMap<Id, Value> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if let Value::Object(map) = &mut o {
                map.remove("status");
            }
            if let Some(Value::Object(meta)) = o.get_mut("metadata") {
                for key in
                    ["resourceVersion", "uid", "generation", "creationTimestamp", "managedFields", "selfLink"]
                {
                    meta.remove(key);
                }
                if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
                    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                    annotations.remove(REVISION_ANNOTATION);
                    if annotations.is_empty() {
                        meta.remove("annotations");
                    }
                }
            }
            (identity(&o), o)
        })
        .collect()
}

fn without_template(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(Value::Object(spec)) = o.get_mut("spec") {
        spec.remove("template");
    }
    o
}
