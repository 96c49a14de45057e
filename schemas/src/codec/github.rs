//! GitHub `deployment_status` webhook. Only `success` means a change took effect; other
//! states (`pending`, `in_progress`, `failure`, `error`, `inactive`) decode to nothing.

use serde::Deserialize;
use serde_json::Value;

use super::{DecodeError, Format, from_json, json_time};
use crate::deploy::{ChangeKind, Deploy, DeploySource, RolloutTool};
use crate::event::Event;

const F: Format = Format::GithubDeploymentStatus;

#[derive(Deserialize)]
struct Hook {
    deployment_status: Status,
    deployment: Deployment,
    repository: Repository,
}

#[derive(Deserialize)]
struct Status {
    state: String,
    created_at: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    creator: Option<User>,
}

#[derive(Deserialize)]
struct Deployment {
    sha: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    creator: Option<User>,
    #[serde(default)]
    original_environment: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    name: String,
    #[serde(default)]
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

pub(crate) fn decode(value: Value, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let hook: Hook = from_json(F, value)?;
    if hook.deployment_status.state != "success" {
        return Ok(());
    }
    let time_ns = json_time(F, "deployment_status.created_at", &hook.deployment_status.created_at)?;
    let payload_str = |k: &str| hook.deployment.payload.get(k).and_then(Value::as_str).map(String::from);
    let kind = match hook.deployment.task.as_deref() {
        Some(t) if t.contains("rollback") => ChangeKind::Rollback,
        Some(t) if t.contains("config") => ChangeKind::ConfigChange,
        _ => ChangeKind::Deploy,
    };
    let repository = hook.repository.full_name.unwrap_or_else(|| hook.repository.name.clone());
    out.push(Event::Deploy(Deploy {
        service: payload_str("service").unwrap_or(hook.repository.name),
        environment: hook
            .deployment_status
            .environment
            .or(hook.deployment.environment)
            .or(hook.deployment.original_environment),
        revision: hook.deployment.sha,
        previous_revision: payload_str("previous_sha"),
        time_ns,
        author: hook.deployment.creator.or(hook.deployment_status.creator).map(|u| u.login),
        kind,
        spec_before: None,
        spec_after: None,
        source: DeploySource::Github,
        tool: Some(RolloutTool::Git),
        release: Some(repository),
        ..Deploy::default()
    }));
    Ok(())
}
