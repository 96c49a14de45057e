//! The normalized change event: deploys, config changes, scheduled jobs, rollbacks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::time::TimestampNs;

/// What kind of change happened.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new revision rolled out.
    #[default]
    Deploy,
    /// Configuration changed without a new build.
    ConfigChange,
    /// A scheduled job (cron, batch) ran.
    ScheduledJob,
    /// A previous revision was restored.
    Rollback,
}

/// Which kind of producer reported the change.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeploySource {
    /// Devloom's own deploy JSON.
    #[default]
    Devloom,
    /// Argo CD `Application` status history.
    ArgoCd,
    /// GitHub `deployment_status` webhook.
    Github,
}

/// One change to a running service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    /// Service that changed.
    pub service: String,
    /// Environment (`production`, `staging`, …) when known.
    #[serde(default)]
    pub environment: Option<String>,
    /// Revision now running.
    pub revision: String,
    /// Revision running before, when known.
    #[serde(default)]
    pub previous_revision: Option<String>,
    /// When the change took effect, ns since epoch.
    pub time_ns: TimestampNs,
    /// Who made it.
    #[serde(default)]
    pub author: Option<String>,
    /// Deploy, config change, scheduled job or rollback.
    pub kind: ChangeKind,
    /// Spec (manifest, config) before the change, when the source carries it.
    #[serde(default)]
    pub spec_before: Option<String>,
    /// Spec after the change.
    #[serde(default)]
    pub spec_after: Option<String>,
    /// The producing system.
    pub source: DeploySource,
    /// The tool that rolled the change out, when known: what a rollback command names.
    #[serde(default)]
    pub tool: Option<RolloutTool>,
    /// The tool's name for what was rolled out: the Argo CD application, the Helm
    /// release, the Git repository (`owner/name`).
    #[serde(default)]
    pub release: Option<String>,
    /// The tool's number for this rollout: Argo CD history id, Helm release revision.
    #[serde(default)]
    pub history_id: Option<i64>,
    /// The tool's number for the rollout before it (what a rollback returns to).
    #[serde(default)]
    pub previous_history_id: Option<i64>,
    /// File name of the spec (`config/payments.toml`): names the diff and tells its
    /// format.
    #[serde(default)]
    pub spec_path: Option<String>,
}

/// Tools that roll changes out, each with its own rollback command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutTool {
    /// `kubectl apply` of Kubernetes manifests (`kubectl rollout undo` reverts).
    Kubectl,
    /// A Helm release (`helm rollback`).
    Helm,
    /// An Argo CD application (`argocd app rollback`).
    #[serde(rename = "argocd")]
    ArgoCd,
    /// A Git commit deployed by CI (`git revert`).
    Git,
}
