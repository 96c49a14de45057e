//! Argo CD `Application` resources (as `kubectl get application -o json` or an Argo CD
//! notification webhook writes them): the newest `status.history` entry is the change,
//! the entry before it gives the previous revision and spec, and both history ids name
//! the `argocd app rollback` target.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{DecodeError, Format, from_json, json_time};
use crate::deploy::{ChangeKind, Deploy, DeploySource, RolloutTool};
use crate::event::Event;

const F: Format = Format::ArgoCdApplication;

#[derive(Deserialize)]
struct Application {
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
    status: Status,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default)]
    destination: Destination,
}

#[derive(Deserialize, Default)]
struct Destination {
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    history: Vec<History>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct History {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    revisions: Vec<String>,
    deployed_at: String,
    #[serde(default)]
    source: Option<Value>,
    #[serde(default)]
    sources: Option<Value>,
    #[serde(default)]
    initiated_by: Option<InitiatedBy>,
}

#[derive(Deserialize)]
struct InitiatedBy {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    automated: bool,
}

impl History {
    fn revision(&self) -> String {
        self.revision.clone().unwrap_or_else(|| self.revisions.join(","))
    }

    /// The entry's application source(s) as YAML, the way Argo CD users read them.
    /// (History keeps sources — repository, path, revision, Helm values — not rendered
    /// manifests.)
    fn spec_text(&self) -> Option<String> {
        let spec = self.source.as_ref().or(self.sources.as_ref())?;
        serde_saphyr::to_string(spec).ok()
    }
}

pub(crate) fn decode(value: Value, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let mut app: Application = from_json(F, value)?;
    app.status.history.sort_by_key(|h| h.id);
    let Some(latest) = app.status.history.last() else {
        return Err(DecodeError::invalid(F, "status.history", "no deployment history"));
    };
    let position = app.status.history.len() - 1;
    let time_ns = json_time(F, &format!("status.history[{position}].deployedAt"), &latest.deployed_at)?;
    let previous = position.checked_sub(1).map(|p| &app.status.history[p]);
    let revision = latest.revision();
    let earlier = &app.status.history[..position.saturating_sub(1)];
    let kind = if previous.is_some_and(|p| p.revision() != revision)
        && earlier.iter().any(|h| h.revision() == revision)
    {
        ChangeKind::Rollback
    } else if previous.is_some_and(|p| p.revision() == revision) {
        ChangeKind::ConfigChange
    } else {
        ChangeKind::Deploy
    };
    let author = latest.initiated_by.as_ref().and_then(|i| {
        i.username.clone().or_else(|| i.automated.then(|| "argocd (automated sync)".to_string()))
    });
    let service =
        app.metadata.labels.get("app.kubernetes.io/name").cloned().unwrap_or(app.metadata.name.clone());
    out.push(Event::Deploy(Deploy {
        service,
        environment: app.spec.destination.namespace,
        revision,
        previous_revision: previous.map(History::revision),
        time_ns,
        author,
        kind,
        spec_before: previous.and_then(History::spec_text),
        spec_after: latest.spec_text(),
        source: DeploySource::ArgoCd,
        tool: Some(RolloutTool::ArgoCd),
        release: Some(app.metadata.name.clone()),
        history_id: Some(latest.id),
        previous_history_id: previous.map(|p| p.id),
        spec_path: Some(format!("Application/{} source", app.metadata.name)),
    }));
    Ok(())
}
