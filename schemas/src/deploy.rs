//! The normalized change event: deploys, config changes, scheduled jobs, rollbacks.

use serde::{Deserialize, Serialize};

use crate::time::TimestampNs;

/// What kind of change happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
}
